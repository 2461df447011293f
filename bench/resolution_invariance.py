"""The same fleet at several scrape intervals: does the rule say the same thing?

One physics family of :mod:`gpu_health.sim.families` is written once at a fine interval
(``--base``), then thinned to coarser ones (``--every``: only the samples at multiples of
each interval are kept, :mod:`gpu_health.sim.resample`), so every history holds the same
counters, resets, gaps and failures, only seen less often. Each history is backfilled with
promtool into a real Prometheus and read through the code of ``gpu-health-scorer evaluate``
(``--step 24h``). Against the finest history the bench prints, per interval:

* how far each GPU-time's rule score moves (log of its hazard over a GPU without evidence in
  the same fleet at the same time: 0.1 is a 10 % change of hazard), over the GPUs that have
  not failed yet (one that died between two coarse samples is rightly seen later);
* the rank correlation of the scores within each time step (Spearman, mean over steps);
* how many 7-day flags agree;
* the rule's 7-day ROC AUC on all failures and recall at 5 % FPR on visible precursors, as
  ``evaluate`` reports them, so a change of interval that moves a GPU's score can be weighed
  against what it does to the result.

    .venv/bin/python bench/resolution_invariance.py --work /tmp/resolution \\
        --family steps --gpus 200 --days 45 --base 600 --every 1800 3600

``--openmetrics DIR`` reads another generator's history instead of a family (a folder of
OpenMetrics files with seconds timestamps and its failures.csv), e.g. the outside trial's:

    .venv/bin/python bench/outside_fleet.py --seed 1 --end 1796083200 --keep-text \\
        --out /tmp/outside-text
    .venv/bin/python bench/resolution_invariance.py --work /tmp/resolution-outside \\
        --openmetrics /tmp/outside-text --base 600 --every 1800 3600

A few minutes per history on 2 cores at 200 GPUs, 45 days and 10-minute data; a 15 s base
costs about 40× the samples of a 10-minute one.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from gpu_health import stack
from gpu_health.errors import UserError
from gpu_health.scorer.cli import build_parser
from gpu_health.scorer.cli_history import _collect
from gpu_health.scorer.evaluation import evaluate, flag_snapshots
from gpu_health.scorer.rules import RuleModel
from gpu_health.scorer.training import Dataset, Failure
from gpu_health.sim.families import FAMILIES, write
from gpu_health.sim.resample import thin_file

DAY = 86400.0


def write_family(args: argparse.Namespace) -> list[Path]:
    """The family's history at ``--base`` (written once into ``--work``): its text files."""
    root: Path = args.work
    coarsest = max(args.every)
    family = replace(FAMILIES[args.family], resolution=float(args.base))
    if args.warmup_days is not None:
        family = replace(family, warmup_days=args.warmup_days)
    # Start on a multiple of the coarsest interval, so every thinned history keeps samples.
    start = math.floor((args.end - args.days * DAY) / coarsest) * coarsest
    text = root / "fleet.om"
    if not (root / "failures.csv").exists() or not text.exists():
        began = time.monotonic()
        root.mkdir(parents=True, exist_ok=True)
        write(family, args.gpus, args.days, args.seed, start, root)
        elapsed = time.monotonic() - began
        print(f"wrote {args.family} at {args.base} s in {elapsed:.0f} s", flush=True)
    return [text]


def build_histories(args: argparse.Namespace) -> dict[int, Path]:
    """Each interval's history (the finest included), thinned from the same text and
    backfilled: ``--work``/every-Ns/prometheus and its failures.csv."""
    root: Path = args.work
    if args.openmetrics is not None:
        # Another generator's text, e.g. bench/outside_fleet.py --keep-text (its chunk_*.om).
        texts = sorted(args.openmetrics.glob("*.om"))
        failures = args.openmetrics / "failures.csv"
        if not texts or not failures.is_file():
            raise UserError(f"{args.openmetrics}: no *.om files or no failures.csv")
    else:
        texts, failures = write_family(args), root / "failures.csv"
    dirs: dict[int, Path] = {}
    for interval in sorted({int(args.base), *args.every}):
        out = root / f"every-{interval}s"
        dirs[interval] = out
        if (out / "prometheus").is_dir():
            continue
        began = time.monotonic()
        out.mkdir(parents=True, exist_ok=True)
        (out / "failures.csv").write_bytes(failures.read_bytes())
        thinned = out / "thinned.om"
        for text in texts:
            thin_file(text, thinned, interval)
            stack.promtool_backfill(
                thinned, out / "prometheus", block_duration=f"{int(args.days * 24) + 48}h"
            )
        thinned.unlink()
        print(f"backfilled {interval} s in {time.monotonic() - began:.0f} s", flush=True)
    return dirs


def collect(path: Path, label: str, warmup: str) -> tuple[Dataset, list[Failure]]:
    ns = build_parser().parse_args(
        [
            *("evaluate", "--data-dir", str(path), "--schema", "dcgm"),
            *("--step", "24h"),
            "--warmup",
            warmup,
        ]
    )
    data, failures, _ = _collect(ns, label)
    return data, failures


def _per_time(data: Dataset, fn: Any) -> np.ndarray:
    rule = RuleModel()
    x = data.matrix(rule.features)
    out = np.empty(len(data))
    for t in np.unique(data.times):
        sel = data.times == t
        out[sel] = fn(rule, x[sel])
    return out


def _flags(rule: RuleModel, data: Dataset) -> np.ndarray:
    """The rule's 7-day flags, one time step at a time as ``serve`` flags."""
    p = _per_time(data, lambda m, x: m.predict("7d", x))
    return flag_snapshots(rule, "7d", data.matrix(rule.features), data.times, p)


def _ranks(v: np.ndarray) -> np.ndarray:
    return np.argsort(np.argsort(v, kind="stable"), kind="stable").astype(np.float64)


def compare(fine: Dataset, coarse: Dataset, failures: list[Failure]) -> dict[str, Any]:
    """Row-by-row agreement of the rule on two histories of the same fleet, over the rows of
    GPUs that had not failed yet (a board that died between two coarse scrapes is seen
    differently for a while, rightly: its last samples fell between them)."""
    rule = RuleModel()
    failed = {f.uuid: f.time for f in failures}
    where = {(t, u): k for k, (t, u) in enumerate(zip(fine.times, fine.uuids, strict=True))}
    pairs = [
        (where[(t, u)], k)
        for k, (t, u) in enumerate(zip(coarse.times, coarse.uuids, strict=True))
        if (t, u) in where and t < failed.get(u, math.inf)
    ]
    a = np.array([p[0] for p in pairs], dtype=np.int64)
    b = np.array([p[1] for p in pairs], dtype=np.int64)
    sa = _per_time(fine, lambda m, x: m.score(x))[a]
    sb = _per_time(coarse, lambda m, x: m.score(x))[b]
    fa, fb = _flags(rule, fine)[a], _flags(rule, coarse)[b]
    times = fine.times[a]
    spearman = []
    for t in np.unique(times):
        sel = times == t
        if sel.sum() > 2 and np.ptp(sa[sel]) > 0 and np.ptp(sb[sel]) > 0:
            spearman.append(float(np.corrcoef(_ranks(sa[sel]), _ranks(sb[sel]))[0, 1]))
    diff = np.abs(sa - sb)
    return {
        "rows_fine": len(fine),
        "rows_coarse": len(coarse),
        "rows_common_alive": len(pairs),
        "score_diff_max": float(diff.max()),
        "score_diff_mean": float(diff.mean()),
        "score_diff_p99": float(np.quantile(diff, 0.99)),
        "spearman_mean": float(np.mean(spearman)) if spearman else math.nan,
        "flags_fine": int(fa.sum()),
        "flags_coarse": int(fb.sum()),
        "flags_both": int((fa & fb).sum()),
    }


def headline(report: dict[str, Any]) -> dict[str, float]:
    """The rule's 7-day ROC AUC on all failures and recall on visible precursors."""
    h = report["horizons"].get("7d", {})
    out = {"roc_auc_7d_all": math.nan, "recall_7d_visible": math.nan}
    if "all" in h:
        out["roc_auc_7d_all"] = h["all"]["model"]["roc_auc"]
    if "precursor_visible" in h:
        out["recall_7d_visible"] = h["precursor_visible"]["model"]["recall_at_5pct_fpr"]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, required=True, help="folder for the histories")
    ap.add_argument("--family", default="steps", choices=sorted(FAMILIES))
    ap.add_argument("--gpus", type=int, default=200)
    ap.add_argument("--days", type=float, default=45.0)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--base", type=int, default=600, help="finest interval, seconds")
    ap.add_argument(
        "--every", type=int, nargs="+", default=[1800, 3600], help="coarser intervals, seconds"
    )
    ap.add_argument("--warmup-days", type=float, help="days without failures at the start")
    ap.add_argument(
        "--openmetrics",
        type=Path,
        help="use another generator's history instead of a family: a folder of *.om files "
        "(timestamps in seconds) and failures.csv, e.g. bench/outside_fleet.py --keep-text",
    )
    ap.add_argument("--warmup", default="7d", help="history skipped before the first row")
    ap.add_argument("--end", type=float, default=1796083200.0, help="end of the history")
    ap.add_argument("--bootstrap", type=int, default=0, help="resamples for the intervals")
    ap.add_argument("--json", type=Path, help="write the results as JSON")
    args = ap.parse_args(argv)
    if any(e <= args.base or e % args.base for e in args.every):
        ap.error("every --every must be a multiple of --base and larger than it")
    dirs = build_histories(args)
    rows = {r: collect(d, f"collect every {r} s", args.warmup) for r, d in dirs.items()}
    base = min(rows)
    source = str(args.openmetrics) if args.openmetrics else args.family
    results: dict[str, Any] = {"fleet": source, "gpus": args.gpus, "days": args.days}
    for interval, (data, failures) in rows.items():
        entry = headline(evaluate(RuleModel(), data, failures, bootstrap=args.bootstrap))
        if interval != base:
            entry.update(compare(rows[base][0], data, failures))
        results[str(interval)] = entry
    print(
        "| interval | rows (common, not failed yet) | score Δ mean / p99 / max | Spearman "
        "| 7d flags (both / fine / coarse) | ROC AUC 7d all | recall 7d visible |"
    )
    print("|---|---:|---|---:|---|---:|---:|")
    for interval in sorted(rows):
        e = results[str(interval)]
        if interval == base:
            cells = f"{len(rows[base][0])} | - | - | -"
        else:
            cells = (
                f"{e['rows_coarse']} ({e['rows_common_alive']}) | {e['score_diff_mean']:.3f} / "
                f"{e['score_diff_p99']:.3f} / {e['score_diff_max']:.3f} | "
                f"{e['spearman_mean']:.3f} | {e['flags_both']} / {e['flags_fine']} / "
                f"{e['flags_coarse']}"
            )
        print(
            f"| {interval} s | {cells} | {e['roc_auc_7d_all']:.3f} | {e['recall_7d_visible']:.2f} |"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except UserError as exc:
        print(f"resolution_invariance: {exc}", file=sys.stderr)
        sys.exit(1)
