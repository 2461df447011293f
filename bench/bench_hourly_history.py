"""Scoring with the mixin's hourly samples for the long windows against the raw history.

Nearly all the samples a scoring run reads lie in the windows of 7 to 30 days. The mixin's
``gpu-health-scorer-hourly.rules`` group keeps each series those windows read as its last
reading (or its average) of each hour, so a week is 168 samples a series whatever the scrape
interval (:func:`gpu_health.scorer.history_source.to_hourly`). Prometheus still reads one
chunk per series and 2-hour block for them, as for the raw series (``bench_chunk_cost.py``),
so the time falls less than the samples.

Writes dcgm-exporter's full-field history as an operator backfills it (``gpu-health backfill
--schema dcgm``, every field the scorer reads, :func:`bench_schema_cost.build`), serves it in
Debian's Prometheus and waits for its first compaction; backfills the hourly group alone over
the whole history with ``promtool tsdb create-blocks-from rules``, restarts Prometheus on both
and lets it merge promtool's blocks. Then, as of the history's end:

* the samples Prometheus read for one run's queries in each arm (``stats=all``);
* whole scoring runs (the shipped default model, the economics) reading the raw series and
  the hourly ones (``--history raw`` and ``hourly``), interleaved, one cold run of each first;
  the medians and their ratio;
* what ``--history auto`` reads there;
* the answer: each GPU's 7-day hazard from both (the largest and median
  ``|ln(hourly / raw)|``), the top tenth by risk in both, and each feature's largest relative
  difference.

    .venv/bin/python bench/bench_hourly_history.py --gpus 2000 --days 14 --work /tmp/hourly-2000
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_query_profile import run_queries
from bench_recorded_history import (
    _agreement,
    _settled,
    group_file,
    interleaved_runs,
    report,
    timings,
)
from bench_schema_cost import END, build
from bench_scorer import samples_per_query, tsdb_blocks, wait_compacted

from gpu_health import stack
from gpu_health.scorer.feature_frame import compute_features
from gpu_health.scorer.features import schema_by_name
from gpu_health.scorer.history_source import HistoryMode, choose
from gpu_health.scorer.promclient import PromClient, PromConfig

ARMS: tuple[HistoryMode, ...] = ("raw", "hourly")
HOURLY_GROUP = "gpu-health-scorer-hourly.rules"


def backfill_hourly(work: Path, data: Path, days: float, compacted: bool) -> dict[str, float]:
    """Give the history its hourly samples (once: a ``--work`` that has them keeps them)."""
    done = work / "hourly-backfilled.json"
    if done.exists():
        cost: dict[str, float] = json.loads(done.read_text())
        return cost
    config = stack.write_prometheus_config(work / "prometheus.yml")
    rules = group_file(HOURLY_GROUP, work / "hourly.yaml")
    out = work / "hourly-blocks"
    shutil.rmtree(out, ignore_errors=True)
    with stack.prometheus(work, config, data_dir=data) as prom:
        if compacted:  # else promtool's queries read the backfill's 2-hour blocks (slower)
            print("waiting for Prometheus to compact the raw history", file=sys.stderr)
            wait_compacted(prom.url)
        print("backfilling the hourly group", file=sys.stderr, flush=True)
        began = time.monotonic()
        stack.promtool_backfill_rules(rules, prom.url, END - days * 86400, END, out)
        seconds = time.monotonic() - began
    written = tsdb_blocks(out)
    for block in out.iterdir():
        shutil.move(str(block), data / block.name)
    cost = {"rules_backfill_s": round(seconds, 1), "rules_blocks_written": written}
    done.write_text(json.dumps(cost))
    return cost


def samples_read(client: PromClient, at: float, arm: HistoryMode) -> int:
    """The samples one run's feature queries read in ``arm`` (the frame's checks and the GPU
    states left out)."""
    queries = tuple(q for q, _, kind in run_queries("dcgm", client, at, arm) if kind != "state")
    return sum(samples_per_query(client.base_url, queries, at))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gpus", type=int, default=200)
    parser.add_argument("--days", type=float, default=14)
    parser.add_argument("--step", type=int, default=300, help="raw history resolution (s)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--pairs", type=int, default=5, help="interleaved rounds of the arms")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument(
        "--work", type=Path, help="keep the history here (reused when present, with its samples)"
    )
    parser.add_argument(
        "--settle-s",
        type=float,
        default=150.0,
        help="blocks unchanged this long count as compacted (default: %(default)s)",
    )
    parser.add_argument(
        "--no-compaction-wait",
        action="store_true",
        help="backfill the hourly group without waiting for Prometheus to merge the raw "
        "history's 2-hour blocks first (a minute saved on a small fleet)",
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    at = float(END - 60)
    with ExitStack() as stack_:
        work = args.work or Path(stack_.enter_context(tempfile.TemporaryDirectory()))
        work.mkdir(parents=True, exist_ok=True)
        data = work / "dcgm"
        print(f"writing {args.gpus} GPUs x {args.days:g} d (reused when there)", file=sys.stderr)
        began = time.monotonic()
        build(data, "dcgm", args.gpus, args.days, args.step, args.seed)
        build_s = time.monotonic() - began
        cost = backfill_hourly(work, data, args.days, not args.no_compaction_wait)
        config = stack.write_prometheus_config(work / "prometheus.yml")
        prom = stack_.enter_context(stack.prometheus(work, config, data_dir=data))
        print("letting Prometheus merge the blocks", file=sys.stderr, flush=True)
        blocks = _settled(data, args.settle_s)
        client = PromClient(PromConfig(prom.url, timeout_s=600))
        _, auto = choose(client, replace(schema_by_name("dcgm"), fresh="30m"), at, "auto")
        read = {arm: samples_read(client, at, arm) for arm in ARMS}
        frames = {arm: compute_features(client, "dcgm", at, history=arm) for arm in ARMS}
        runs = interleaved_runs(client, args.workers, at, ARMS, args.pairs)
    result = {
        "gpus": args.gpus,
        "days": args.days,
        "step_s": args.step,
        "history_build_s": round(build_s, 1),
        **cost,
        "blocks_served": blocks,
        "auto_reads": auto,
        "samples_read": read,
        **timings(runs, "hourly"),
        **_agreement(frames["raw"], frames["hourly"]),
    }
    return report(result, args.json)


if __name__ == "__main__":
    sys.exit(main())
