"""What one feature costs a scoring run, on a fleet directory that has the data it reads.

A feature that reads a field the fleet does not export matches no series and costs nothing, so
its cost is measured where the field is written: ``hardware_hold_hours_7d`` (the default)
reads dcgm-exporter's clock-event bitmask (``DCGM_FI_DEV_CLOCK_THROTTLE_REASONS``, which
``bench/rack_fleet.py`` writes). This bench serves the fleet with Debian's Prometheus and computes
every feature at one time, with and without the one named, in interleaved rounds (one cold run
of each first), and prints the medians and their ratio (JSON with ``--json``).

    .venv/bin/python bench/bench_feature_cost.py --data-dir /tmp/rack/s1 --at 1796083200 \
        [--feature NAME]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from gpu_health import stack
from gpu_health.scorer.feature_table import FEATURES
from gpu_health.scorer.features import compute_features
from gpu_health.scorer.promclient import PromClient, PromConfig

DEFAULT_FEATURE = "hardware_hold_hours_7d"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True, help="DIR with DIR/prometheus")
    parser.add_argument("--at", type=float, required=True, help="evaluation time (unix s)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--feature", default=DEFAULT_FEATURE, help=f"feature to cost (default {DEFAULT_FEATURE})"
    )
    args = parser.parse_args()
    if args.feature not in {f.name for f in FEATURES}:
        parser.error(f"--feature: no feature named {args.feature}")
    feature = args.feature
    arms = {
        "without": tuple(f for f in FEATURES if f.name != feature),
        "with": tuple(FEATURES),
    }
    runs: dict[str, list[float]] = {arm: [] for arm in arms}
    with tempfile.TemporaryDirectory(prefix="bench-feature-") as tmp:
        work = Path(tmp)
        config = stack.write_prometheus_config(work / "prometheus.yml")
        with stack.prometheus(work, config, data_dir=args.data_dir / "prometheus") as prom:
            client = PromClient(PromConfig(prom.url, timeout_s=300))
            held = compute_features(client, "dcgm", args.at, features=arms["with"])
            column = held.column(feature)
            gpus_with_data = int((column == column).sum())
            for features in arms.values():  # one cold run of each (chunks into the page cache)
                compute_features(client, "dcgm", args.at, features, args.workers)
            for k in range(args.rounds):
                for arm, features in arms.items():
                    start = time.perf_counter()
                    compute_features(client, "dcgm", args.at, features, args.workers)
                    runs[arm].append(time.perf_counter() - start)
                print(f"round {k + 1}/{args.rounds}", file=sys.stderr, flush=True)
    medians = {arm: statistics.median(v) for arm, v in runs.items()}
    ratio = medians["with"] / medians["without"]
    print(f"every feature at one time, median of {args.rounds} ({gpus_with_data} GPUs with data):")
    for arm, median in medians.items():
        print(f"  {arm} {feature}: {median:6.2f} s")
    print(f"  with / without: {ratio:.3f}x")
    if args.json:
        result = {
            "feature": feature,
            "gpus_with_data": gpus_with_data,
            "runs_s": {k: [round(x, 3) for x in v] for k, v in runs.items()},
            "median_s": {k: round(v, 3) for k, v in medians.items()},
            "ratio_with_to_without": round(ratio, 3),
        }
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
