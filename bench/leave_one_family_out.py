"""Leave one physics family out: a trained XGBoost against the rule, on a family it never saw.

For every family of :mod:`gpu_health.sim.families` the bench builds two fleets (dcgm-exporter
schema, backfilled with promtool into a real Prometheus): a training fleet (``--train-days``,
``--train-seed``) and a test fleet (``--days``, ``--seed``). It collects their GPU-time rows
through the same code as ``gpu-health-scorer train``/``evaluate``, then, for each family in
turn, trains an XGBoost model on the training fleets of all the *other* families and
evaluates it, the rule and the one-line SRE rule (which have no training, so every family is
held out for them) on the held-out family's test fleet with
:func:`gpu_health.scorer.evaluation.evaluate`: GPU-bootstrap 95 % intervals, the same rows
for all three. The table it prints is the one in docs/model-card.md.

    .venv/bin/python bench/leave_one_family_out.py --work /tmp/lofo --json /tmp/lofo.json

Test fleets of 45 days are too short to train a 30-day horizon with a time split, hence the
longer training fleets. A few minutes per family to build and collect, and a few minutes per
training, on 2 cores (200 GPUs, 1-hour data, one row per GPU a day).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from gpu_health.errors import UserError
from gpu_health.scorer.cli import build_parser
from gpu_health.scorer.cli_history import _collect
from gpu_health.scorer.evaluation import evaluate
from gpu_health.scorer.training import concat, fit
from gpu_health.sim.families import FAMILIES, build

#: The end of every fleet of the card's family tables (2026-12-01T00:00Z).
END = 1796083200.0

LINES = (
    ("7d", "all", "roc_auc"),
    ("7d", "precursor_visible", "recall_at_5pct_fpr"),
    ("30d", "all", "roc_auc"),
    ("30d", "precursor_visible", "recall_at_5pct_fpr"),
)


def _cell(entry: dict[str, Any], who: str, metric: str) -> str:
    m = entry.get(who)
    if not m:
        return "-"
    ci = m.get(f"{metric}_ci95")
    interval = f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else ""
    return f"{m[metric]:.2f}{interval}"


def _worst_mode(report: dict[str, Any], who: str) -> str:
    """The lowest 7-day ROC AUC over failure modes with at least 10 positive rows."""
    modes = [
        (name[5:], s[who]["roc_auc"])
        for name, s in report["horizons"]["7d"].items()
        if name.startswith("mode:") and isinstance(s, dict) and s.get("positives", 0) >= 10
    ]
    if not modes:
        return "-"
    name, auc = min(modes, key=lambda m: m[1])
    return f"{name} {auc:.2f}"


def markdown(results: dict[str, dict[str, Any]]) -> str:
    head = "| held-out family | scorer | " + " | ".join(
        f"{h} {subset.replace('_', ' ')} {metric.split('_')[0].replace('roc', 'ROC AUC')}"
        for h, subset, metric in LINES
    )
    lines = [head + " | worst mode 7d |", "|---|---|" + "---:|" * (len(LINES) + 1)]
    for family, report in results.items():
        for who, label in (
            ("rule", "rule"),
            ("model", "XGBoost (other families)"),
            ("sre_line", "SRE one-line rule"),
        ):
            cells = [_cell(report["horizons"][h].get(subset, {}), who, m) for h, subset, m in LINES]
            lines.append(
                f"| {family} | {label} | " + " | ".join(cells) + f" | {_worst_mode(report, who)} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--work", type=Path, required=True, help="folder for the family fleets")
    ap.add_argument("--families", nargs="+", default=sorted(FAMILIES), choices=sorted(FAMILIES))
    ap.add_argument("--gpus", type=int, default=200)
    ap.add_argument("--days", type=float, default=45.0)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--train-days", type=float, default=90.0)
    ap.add_argument("--train-seed", type=int, default=7)
    ap.add_argument("--resolution", type=float, default=3600.0, help="seconds between samples")
    ap.add_argument(
        "--end",
        type=float,
        default=END,
        help="Unix seconds every fleet ends at (default: 2026-12-01T00:00Z, the card's); "
        "a fixed end makes the table the same on every run",
    )
    ap.add_argument("--trees", type=int, default=200)
    ap.add_argument("--bootstrap", type=int, default=200)
    ap.add_argument("--json", type=Path, help="write every report as JSON")
    args = ap.parse_args(argv)
    if len(args.families) < 2:
        raise SystemExit("leave_one_family_out: need at least two families")
    from dataclasses import replace

    def collect(name: str, days: float, seed: int, part: str) -> Any:
        out = args.work / part / name
        if not (out / "prometheus").is_dir():
            family = replace(FAMILIES[name], resolution=args.resolution)
            print(f"building {part} {name} ...", file=sys.stderr, flush=True)
            build(family, args.gpus, days, seed, out, args.end)
        ns = build_parser().parse_args(
            ["evaluate", "--data-dir", str(out), "--schema", "dcgm", "--step", "24h"]
        )
        return _collect(ns, f"collect {part} {name}")[:2]

    test = {n: collect(n, args.days, args.seed, "test") for n in args.families}
    training = {n: collect(n, args.train_days, args.train_seed, "train")[0] for n in args.families}
    results: dict[str, dict[str, Any]] = {}
    for held in args.families:
        began = time.monotonic()
        train = concat([training[n] for n in args.families if n != held])
        model, _ = fit(train, n_estimators=args.trees, metadata={"held_out": held})
        trained_s = time.monotonic() - began
        rows, failures = test[held]
        report = evaluate(model, rows, failures, bootstrap=args.bootstrap)
        report["training_s"] = trained_s
        results[held] = report
        print(f"{held}: trained on the others in {trained_s:.0f} s", file=sys.stderr, flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    print(markdown(results))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except UserError as exc:
        print(f"leave_one_family_out: {exc}", file=sys.stderr)
        sys.exit(1)
