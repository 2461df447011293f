#!/usr/bin/env python3
"""How many GPUs the scorer's repeated-series check names on a fleet, now and one release ago.

The check names GPUs reported more than once at the same time (two scrape jobs on one exporter,
dcgm-exporter's ``KUBERNETES_VIRTUAL_GPUS``), whose counters under a day then read that many
times. Serves a Prometheus data directory (for instance ``bench/k8s_fleet.py``'s, whose GPUs
change series with every job and have none reported twice), evaluates the check's query at
``--times`` instants spread over the last ``--days`` before ``--at``, and prints how many GPUs
each version names per instant: the release before (more than one series in the presence
window and in the window before it) and the shipped one
(``feature_frame.repeated_series_query``: more than one series reported all through a window).

    .venv/bin/python bench/repeated_series_on_fleet.py \
        --data-dir /tmp/k8s/fleet-s1/prometheus --at 1795900000
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

from gpu_health import stack
from gpu_health.scorer.feature_frame import presence_window, repeated_series_query
from gpu_health.scorer.feature_schema import Schema
from gpu_health.scorer.features import schema_by_name
from gpu_health.scorer.promclient import PromClient, PromConfig


def release_before(s: Schema) -> str:
    """The check one release ago: more than one power series in the presence window and in
    the window before it."""
    found = s.selector("gpu_power_watts")
    assert found is not None
    by = ", ".join(x for x in (s.uuid, s.instance) if x)
    now = f"count by ({by}) (last_over_time({found[0]}[{s.fresh}])) > 1"
    before = f"count by ({by}) (last_over_time({found[0]}[{s.fresh}] offset {s.fresh})) > 1"
    return f"({now}) and ({before})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True, help="a Prometheus TSDB")
    parser.add_argument("--at", type=float, required=True, help="Unix time of the last instant")
    parser.add_argument("--days", type=float, default=7.0, help="instants spread over this")
    parser.add_argument("--times", type=int, default=48, help="instants to evaluate at")
    parser.add_argument("--schema", default="dcgm", choices=("ours", "dcgm"))
    args = parser.parse_args()
    instants = np.linspace(args.at - args.days * 86400, args.at, args.times)
    named: dict[str, list[int]] = {"release before": [], "shipped": []}
    with tempfile.TemporaryDirectory(prefix="repeated-on-fleet-") as tmp:
        config = stack.write_prometheus_config(Path(tmp) / "prometheus.yml")
        with stack.prometheus(Path(tmp), config, data_dir=args.data_dir) as prom:
            client = PromClient(PromConfig(prom.url, timeout_s=300))
            for at in instants:
                s = replace(schema_by_name(args.schema), fresh=presence_window(client, at))
                for version, query in (
                    ("release before", release_before(s)),
                    ("shipped", repeated_series_query(s)),
                ):
                    named[version].append(len(client.query(query, at)))
    print(f"{args.times} instants over {args.days:g} days; GPUs named as reported more than once")
    for version, counts in named.items():
        c = np.array(counts)
        print(
            f"  {version:15s} instants with any {int((c > 0).sum()):3d}  "
            f"median {np.median(c):.0f}  max {c.max()}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
