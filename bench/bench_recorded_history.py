"""Scoring from the mixin's 5-minute recorded history against the raw history: time and answer.

Writes :func:`bench_scorer.write_history`'s fleet at ``--step`` (default 60 s), backfills it
into Debian's Prometheus and serves it; then backfills the 5-minute group of
``rules/gpu-health-scorer-history.yaml`` over the whole history with ``promtool tsdb
create-blocks-from rules`` (what an operator does to give the rules the history before them),
restarts Prometheus on both and lets it compact promtool's blocks. Then, as of the history's end:

* whole scoring runs (the shipped default model, the economics) reading the raw series and
  reading the recorded ones (``--history raw`` and ``recorded``), interleaved, one cold run of
  each first; the medians and their ratio;
* what ``--history auto`` would read there;
* the answer: each GPU's 7-day failure probability from both (as a hazard, the largest and
  median ``|ln(recorded / raw)|``), the top tenth by risk in both, and each feature's largest
  difference;
* the operator's one-time cost: promtool's seconds and the blocks it wrote.

    .venv/bin/python bench/bench_recorded_history.py --gpus 500 --days 14 --step 60
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_scorer import scoring_run_s, tsdb_blocks, write_history

from gpu_health import stack
from gpu_health.mixin.render import HISTORY_FILE, REPO_ROOT
from gpu_health.scorer.feature_frame import FeatureFrame, compute_features, presence_window
from gpu_health.scorer.feature_schema import DCGM
from gpu_health.scorer.history_source import HISTORY_MODES, HistoryMode, why_not_recorded
from gpu_health.scorer.model import load_model
from gpu_health.scorer.promclient import PromClient, PromConfig
from gpu_health.scorer.service import score_frame

ARMS: tuple[HistoryMode, ...] = ("raw", "recorded")
assert set(ARMS) <= set(HISTORY_MODES)


def group_file(name: str, out: Path, sent: set[str] | None = None) -> Path:
    """The mixin's rule group ``name`` alone (``rules/gpu-health-scorer-history.yaml`` holds
    the 5-minute and the hourly group), as a rule file promtool can backfill; with ``sent``
    (the metric names a fleet has), only the rules whose input is among them: the others record
    nothing, but promtool still queries each of them at every evaluation."""
    groups = yaml.safe_load((REPO_ROOT / HISTORY_FILE).read_text())["groups"]
    kept = [g for g in groups if g["name"] == name]
    if sent is not None:
        kept = [
            {**g, "rules": [r for r in g["rules"] if _input_name(r["expr"]) in sent]} for g in kept
        ]
    out.write_text(yaml.safe_dump({"groups": kept}))
    return out


def _input_name(expr: str) -> str:
    """The series a history rule reads: ``fn(NAME[window])``."""
    return expr.partition("(")[2].split("[")[0]


def _settled(data: Path, quiet_s: float, limit_s: float = 1800.0) -> int:
    """Wait until Prometheus has stopped merging blocks (their count unchanged for
    ``quiet_s``); the count then."""
    began = last_change = time.monotonic()
    count = tsdb_blocks(data)
    while time.monotonic() - last_change < quiet_s and time.monotonic() - began < limit_s:
        time.sleep(5)
        now = tsdb_blocks(data)
        if now != count:
            count, last_change = now, time.monotonic()
    return count


def _hazards(frame: FeatureFrame) -> dict[str, float]:
    return {
        s.uuid: -math.log1p(-min(s.probability["7d"], 1 - 1e-12)) / 7.0
        for s in score_frame(load_model(None), frame)
    }


def _agreement(raw: FeatureFrame, recorded: FeatureFrame) -> dict[str, object]:
    """How far the recorded history's answer is from the raw one's."""
    a, b = _hazards(raw), _hazards(recorded)
    common = sorted(set(a) & set(b))
    moved = np.abs(np.log(np.array([b[u] for u in common]) / np.array([a[u] for u in common])))
    tenth = max(1, len(common) // 10)
    top_a = set(sorted(common, key=lambda u: -a[u])[:tenth])
    top_b = set(sorted(common, key=lambda u: -b[u])[:tenth])
    rows_a = {g[2]: i for i, g in enumerate(raw.gpus)}
    rows_b = {g[2]: i for i, g in enumerate(recorded.gpus)}
    differing = {}
    for j, name in enumerate(raw.names):
        x = np.array([raw.values[rows_a[u], j] for u in common])
        y = np.array([recorded.values[rows_b[u], j] for u in common])
        scale = np.maximum(np.abs(x), 1e-9)
        with np.errstate(invalid="ignore"):
            rel = np.where(np.isnan(x) & np.isnan(y), 0.0, np.abs(x - y) / scale)
        worst = float(np.nanmax(np.where(np.isnan(rel), np.inf, rel))) if len(rel) else 0.0
        if worst > 1e-6:
            differing[name] = round(worst, 4)
    return {
        "gpus_raw": len(a),
        "gpus_recorded": len(b),
        "hazard_abs_log_ratio_max": round(float(moved.max()), 4),
        "hazard_abs_log_ratio_median": round(float(np.median(moved)), 4),
        "top_tenth_shared": f"{len(top_a & top_b)}/{tenth}",
        "features_differing": dict(sorted(differing.items(), key=lambda kv: -kv[1])),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gpus", type=int, default=500)
    parser.add_argument("--days", type=float, default=14)
    parser.add_argument("--step", type=int, default=60, help="raw history resolution (s)")
    parser.add_argument("--pairs", type=int, default=3, help="interleaved rounds of the arms")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument(
        "--settle-s",
        type=float,
        default=150.0,
        help="blocks unchanged this long count as compacted (default: %(default)s)",
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-recorded-") as tmp:
        work = Path(tmp)
        rules = group_file("gpu-health-scorer-history.rules", work / "rules.yaml")
        end = int(time.time()) // 3600 * 3600 - 3600
        start = end - int(args.days * 86400)
        print(f"building {args.gpus} GPUs x {args.days:g} d at {args.step} s ...", flush=True)
        began = time.monotonic()
        samples = write_history(work / "h.om", args.gpus, args.days, args.step, end)
        data = work / "tsdb"
        stack.promtool_backfill(work / "h.om", data, block_duration="480h")
        (work / "h.om").unlink()
        build_s = time.monotonic() - began
        config = stack.write_prometheus_config(work / "prometheus.yml")
        print(f"history built in {build_s:.0f} s; backfilling the rules ...", flush=True)
        with stack.prometheus(work, config, data_dir=data) as prom:
            began = time.monotonic()
            stack.promtool_backfill_rules(rules, prom.url, start, end, work / "rec")
            rules_s = time.monotonic() - began
        written = tsdb_blocks(work / "rec")
        for block in (work / "rec").iterdir():
            shutil.move(str(block), data / block.name)
        with stack.prometheus(work, config, data_dir=data) as prom:
            print(f"rules backfilled in {rules_s:.0f} s ({written} blocks); compacting ...")
            compacted = _settled(data, args.settle_s)
            client = PromClient(PromConfig(prom.url, timeout_s=300))
            s = replace(DCGM, fresh=presence_window(client, end))
            auto = why_not_recorded(client, s, end) or "recorded"
            frames = {arm: compute_features(client, "dcgm", end, history=arm) for arm in ARMS}
            runs = interleaved_runs(client, args.workers, end, ARMS, args.pairs)
    result = {
        "gpus": args.gpus,
        "days": args.days,
        "step_s": args.step,
        "samples": samples,
        "history_build_s": round(build_s, 1),
        "rules_backfill_s": round(rules_s, 1),
        "rules_blocks_written": written,
        "blocks_after_compaction": compacted,
        "auto_reads": auto,
        **timings(runs, "recorded"),
        **_agreement(frames["raw"], frames["recorded"]),
    }
    return report(result, args.json)


def interleaved_runs(
    client: PromClient, workers: int, at: float, arms: tuple[HistoryMode, ...], pairs: int
) -> dict[str, list[float]]:
    """Whole scoring runs reading each arm's history, ``pairs`` rounds of them interleaved so
    that the machine's drift hits every arm alike, after one cold run of each (chunks into the
    page cache): each arm's seconds."""
    for arm in arms:
        scoring_run_s(client, workers, at, arm)
    runs: dict[str, list[float]] = {arm: [] for arm in arms}
    for k in range(pairs):
        for arm in arms:
            runs[arm].append(scoring_run_s(client, workers, at, arm))
        print(f"round {k + 1}/{pairs}", file=sys.stderr, flush=True)
    return runs


def timings(runs: dict[str, list[float]], arm: str) -> dict[str, Any]:
    """Each arm's runs and median, and ``arm``'s median over the raw arm's."""
    medians = {a: statistics.median(v) for a, v in runs.items()}
    return {
        "runs_s": {k: [round(x, 2) for x in v] for k, v in runs.items()},
        "median_s": {k: round(v, 2) for k, v in medians.items()},
        f"{arm}_over_raw": round(medians[arm] / medians["raw"], 3),
    }


def report(result: dict[str, Any], path: Path | None) -> int:
    """Print ``result`` as JSON, and write it to ``path`` when given."""
    print(json.dumps(result, indent=1))
    if path:
        path.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
