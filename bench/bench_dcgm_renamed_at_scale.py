"""What dcgm-exporter 4.9's field names cost a whole scoring run at fleet size: the scorer
bench's history (``bench/bench_scorer.py``: 2,000 GPUs x 14 days at 5-minute data by default)
written twice, with the names up to 4.8 and with 4.9's (every field DCGM 4.6 renamed under its
new name, the SM clock in Hz, utilization as a 0-1 ratio), each served by its own Debian
Prometheus and scored at the same time by the shipped default model with the economics.

Three arms, one cold run each, then ``--pairs`` rounds taking them in turn:

* ``legacy`` — the legacy history, read in the legacy view (the run's check finds no new name);
* ``legacy, check refused`` — the same history with Prometheus refusing that check, so the run
  reads every field under both names (what a failed check costs a fleet that sends no new name);
* ``4.9's names`` — the renamed history, read in the renamed view.

Before timing, every arm's feature frame at the scored time is compared with the legacy one's;
the exit status is 1 when any feature of any GPU differs (NaN where it is NaN, 1e-9 relative).

    .venv/bin/python bench/bench_dcgm_renamed_at_scale.py --gpus 2000 --days 14 --step 300
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from bench_dcgm_renamed import CheckRefused  # same directory: the refused check
from bench_scorer import (  # same directory: its history and scoring run
    history_options,
    scoring_run_s,
    served_history,
)

from gpu_health.scorer.feature_frame import FeatureFrame
from gpu_health.scorer.features import compute_features
from gpu_health.scorer.promclient import PromClient, PromConfig


def differing(expected: FeatureFrame, actual: FeatureFrame) -> list[str]:
    """The features whose value differs on some GPU (or whose GPUs differ), by name."""
    if [g[2] for g in expected.gpus] != [g[2] for g in actual.gpus]:
        return ["(the GPUs)"]
    return [
        name
        for name in expected.names
        if not np.allclose(
            actual.column(name), expected.column(name), rtol=1e-9, atol=0.0, equal_nan=True
        )
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    history_options(parser)
    parser.add_argument("--pairs", type=int, default=5, help="interleaved rounds of the arms")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    end = int(time.time()) // 60 * 60  # both histories end here, and are scored here
    with contextlib.ExitStack() as stack:
        legacy_client, _ = stack.enter_context(
            served_history(args.gpus, args.days, args.step, "bench-legacy-", 300, end=end)
        )
        renamed_client, _ = stack.enter_context(
            served_history(
                args.gpus, args.days, args.step, "bench-renamed-", 300, renamed=True, end=end
            )
        )
        refused = CheckRefused(PromConfig(legacy_client.config.url, timeout_s=300))
        arms: dict[str, PromClient] = {
            "legacy": legacy_client,
            "legacy, check refused": refused,
            "4.9's names": renamed_client,
        }
        frames = {name: compute_features(c, "dcgm", end) for name, c in arms.items()}
        differ = {name: differing(frames["legacy"], f) for name, f in frames.items()}
        for client in arms.values():  # cold: chunks into the page cache
            scoring_run_s(client, args.workers, end)
        logging.disable(logging.WARNING)  # the cold runs said once what each run would repeat
        runs: dict[str, list[float]] = {name: [] for name in arms}
        for k in range(args.pairs):
            for name, client in arms.items():
                runs[name].append(scoring_run_s(client, args.workers, end))
            print(f"round {k + 1}/{args.pairs}", file=sys.stderr, flush=True)
    medians = {name: statistics.median(v) for name, v in runs.items()}
    print(f"whole scoring run at {args.gpus} GPUs, median of {args.pairs}:")
    for name, median in medians.items():
        same = "same features" if not differ[name] else f"DIFFER: {', '.join(differ[name])}"
        print(
            f"  {name:22s} {median:6.2f} s  x{median / medians['legacy']:.3f}  "
            f"{len(frames[name].gpus)} GPUs  {same}"
        )
    print(f"  the check was refused {refused.refused} times (once per reading of that arm)")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "gpus": args.gpus,
                    "days": args.days,
                    "step_s": args.step,
                    "runs_s": {k: [round(x, 2) for x in v] for k, v in runs.items()},
                    "median_s": {k: round(v, 2) for k, v in medians.items()},
                    "ratio_to_legacy": {
                        k: round(v / medians["legacy"], 3) for k, v in medians.items()
                    },
                    "differing_features": differ,
                    "gpus_scored": {k: len(f.gpus) for k, f in frames.items()},
                    "check_refused": refused.refused,
                },
                indent=1,
            )
        )
    return 1 if any(differ.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
