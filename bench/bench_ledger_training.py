"""A model trained on the derived ledger alone vs one trained on the simulator's ground truth.

Run: ``.venv/bin/python bench/bench_ledger_training.py [--gpus 32] [--days 60] [--seed 11]
[--work DIR]``. Two simulated dcgm-exporter histories are built (a training fleet and a held-out
fleet, another seed); ``labels`` derives a ledger from the training fleet with no failures file;
``train`` fits one model on that ledger and one on the simulator's failures.csv, same options;
``evaluate`` judges both on the held-out fleet against its ground truth. The claim is the ROC AUC
difference per horizon, measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

from gpu_health.scorer.cli import main as scorer
from gpu_health.scorer.simhistory import build_history

END = 1_790_000_000.0
RESOLUTION = 900.0


def run() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--gpus", type=int, default=32)
    p.add_argument("--days", type=float, default=60.0)
    p.add_argument("--hazard-scale", type=float, default=50.0)
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--trees", type=int, default=100)
    p.add_argument("--work", type=Path, help="keep (and reuse) the histories here")
    args = p.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-ledger-training-"))
    fleets = {"train": args.seed, "heldout": args.seed + 1}
    for name, seed in fleets.items():
        out = work / name
        if not (out / "failures.csv").exists():
            build_history(
                out, args.gpus, args.days, RESOLUTION, seed, "dcgm",
                hazard_scale=args.hazard_scale, end_time=END,
            )  # fmt: skip
    train = work / "train"
    ledger = train / "ledger.csv"
    scorer(
        ["labels", "--data-dir", str(train), "--schema", "dcgm", "--min-outage", "15m",
         "--since", f"{args.days + 1:g}d", "--out", str(ledger), "--truth",
         str(train / "failures.csv")]
    )  # fmt: skip
    results = {}
    for source, failures in (("ground_truth", train / "failures.csv"), ("ledger", ledger)):
        model = work / f"model-{source}"
        scorer(
            ["train", "--data-dir", str(train), "--failures", str(failures), "--schema", "dcgm",
             "--trees", str(args.trees), "--hazard-scale", str(args.hazard_scale),
             "--out", str(model)]
        )  # fmt: skip
        report = work / f"eval-{source}.json"
        scorer(
            ["evaluate", "--data-dir", str(work / "heldout"), "--model", str(model),
             "--schema", "dcgm", "--json", str(report)]
        )  # fmt: skip
        results[source] = json.loads(report.read_text())["horizons"]
    print("horizon  ROC AUC (ground truth)  ROC AUC (ledger)  difference")
    for h in results["ground_truth"]:
        a, b = (_auc(results[source][h]) for source in ("ground_truth", "ledger"))
        diff = "-" if a is None or b is None else f"{b - a:+.3f}"
        shown = ["-" if v is None else f"{v:.3f}" for v in (a, b)]
        print(f"{h:>7}  {shown[0]:>22}  {shown[1]:>16}  {diff:>10}")


def _auc(horizon: dict[str, Any]) -> float | None:
    """The model's ROC AUC on all failures in ``evaluate --json``'s horizon (None where the
    horizon was not evaluated)."""
    value = horizon.get("all", {}).get("model", {}).get("roc_auc")
    return None if value is None else float(value)


if __name__ == "__main__":
    run()
