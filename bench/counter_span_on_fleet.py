#!/usr/bin/env python3
"""How far the summed increases read a fleet's counters from the shipped reading, per feature.

Serves a Prometheus data directory (for instance ``bench/k8s_fleet.py``'s, whose GPUs are
written without pod labels between jobs, so that label set comes back in every idle gap),
computes the feature frame at one time twice, with every counter read as the summed increases
of the GPU's series (the release before) and as shipped (the smaller of those and the span,
``feature_schema.Schema.rise``), and prints, per feature that differs, the ratio of the two
over the GPUs where both are above zero (log changes left out): median, 90th percentile and largest.

    .venv/bin/python bench/counter_span_on_fleet.py --data-dir /tmp/k8s/fleet-s1/prometheus \
        --at 1795900000
"""

from __future__ import annotations

import argparse
import math
import tempfile
from pathlib import Path

import numpy as np

from gpu_health import stack
from gpu_health.scorer import feature_promql
from gpu_health.scorer.feature_frame import compute_features
from gpu_health.scorer.promclient import PromClient, PromConfig


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True, help="a Prometheus TSDB")
    parser.add_argument("--at", type=float, required=True, help="Unix time to read at")
    parser.add_argument("--schema", default="dcgm", choices=("ours", "dcgm"))
    args = parser.parse_args()
    shipped = feature_promql.SPAN_WINDOW_HOURS
    with tempfile.TemporaryDirectory(prefix="span-on-fleet-") as tmp:
        config = stack.write_prometheus_config(Path(tmp) / "prometheus.yml")
        with stack.prometheus(Path(tmp), config, data_dir=args.data_dir) as prom:
            client = PromClient(PromConfig(prom.url, timeout_s=300))
            feature_promql.SPAN_WINDOW_HOURS = math.inf  # type: ignore[assignment]
            summed = compute_features(client, args.schema, args.at)
            feature_promql.SPAN_WINDOW_HOURS = shipped
            read = compute_features(client, args.schema, args.at)
    if summed.gpus != read.gpus:
        print("the two readings list different GPUs")
        return 1
    print(f"{len(read.gpus)} GPUs; summed increases / shipped reading, where both are above 0")
    for j, name in enumerate(read.names):
        if "log_change" in name:  # a difference of logarithms: its ratio means nothing
            continue
        a, b = summed.values[:, j], read.values[:, j]
        ok = np.isfinite(a) & np.isfinite(b) & (a > 0) & (b > 0)
        if ok.any() and not np.allclose(a[ok], b[ok], rtol=1e-6):
            r = a[ok] / b[ok]
            print(
                f"  {name:36s} GPUs {ok.sum():4d}  median {np.median(r):.3f}  "
                f"p90 {np.quantile(r, 0.9):.3f}  max {r.max():.2f}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
