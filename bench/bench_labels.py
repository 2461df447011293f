"""How well ``gpu-health-scorer labels`` recovers a simulated fleet's failures, per kind.

Run: ``.venv/bin/python bench/bench_labels.py [--gpus 64] [--days 30] [--hazard-scale 50]
[--seed 3] [--schema ours]``. The history is the scorer's training history
(:func:`gpu_health.scorer.simhistory.build_history`: every metric family, 5-minute resolution,
failure rates multiplied by ``--hazard-scale`` so a month shows enough failures); the ledger is
derived from it with no failures file given, then judged against the simulator's failures.csv:
recall per simulated failure mode, precision per ledger kind (a ledger row is true when the
same GPU failed within an hour of its time). ``--reuse DIR`` scans a history built before.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from gpu_health.scorer.cli import main as scorer_main
from gpu_health.scorer.labels_cli import judge_file
from gpu_health.scorer.simhistory import build_history


def run() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--gpus", type=int, default=64)
    p.add_argument("--days", type=float, default=30.0)
    p.add_argument("--hazard-scale", type=float, default=50.0)
    p.add_argument("--seed", type=int, default=3)
    p.add_argument("--schema", choices=("ours", "dcgm"), default="ours")
    p.add_argument("--end-time", type=float, default=1_790_000_000.0)
    p.add_argument("--reuse", type=Path, help="a history directory built with the same options")
    args = p.parse_args()
    out = args.reuse or Path(tempfile.mkdtemp(prefix="bench-labels-"))
    if not (out / "failures.csv").exists():
        began = time.monotonic()
        build_history(
            out, args.gpus, args.days, 300.0, args.seed, args.schema,
            hazard_scale=args.hazard_scale, end_time=args.end_time,
        )  # fmt: skip
        print(f"history: {time.monotonic() - began:.0f}s")
    ledger = out / "ledger.csv"
    began = time.monotonic()
    argv = ["labels", "--data-dir", str(out), "--schema", args.schema, "--out", str(ledger)]
    scorer_main([*argv, "--since", f"{args.days + 1:g}d"])
    print(f"labels scan: {time.monotonic() - began:.0f}s")
    start = args.end_time - args.days * 86400
    result = judge_file(ledger, out / "failures.csv", start, args.end_time)
    print(result.markdown())


if __name__ == "__main__":
    run()
