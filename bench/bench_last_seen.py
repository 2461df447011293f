"""What an absent GPU's last-seen lookup costs: the ``timestamp()`` subquery against the shipped
two-step form, an A/B in one Prometheus.

A GPU that stops reporting is ``absent``, and the GPU state says since when: the time of its
last sample in the last 7 days. That was one subquery per 50 absent GPUs,
``max_over_time(timestamp(SEL)[7d:5m])``, which Prometheus evaluates by looking the series up
again at every one of its 2,016 steps. The scorer now asks for the last 5-minute step with a
sample (``time()`` times a ``group`` of the series, read as every other subquery is) and then
the sample's own time in a short subquery ending at that step, with the ``@`` modifier
(:func:`gpu_health.telemetry.state_queries.last_seen_query` and ``last_sample_query``). This
bench serves a TSDB with Debian's Prometheus, finds the GPUs absent at ``--at`` as the GPU state
does, and times both forms over the same GPUs (at most ``--limit``, in the state's batches of
50), interleaved over ``--rounds`` after a cold pass of each; it reports whether both give every
GPU the same time.

    .venv/bin/python bench/bench_last_seen.py --data-dir DIR --at 1796086740 \
        [--schema dcgm] [--limit 200] [--rounds 3] [--json out.json]

Score a time after the history's end (an hour after ``bench/bench_hourly_history.py``'s
``W/dcgm`` ends, 1796083140 + 3600) to have every GPU absent: a whole fleet's outage, the
lookup's worst case.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_query_profile import served, served_args, served_options
from bench_recorded_history import report  # same directory: print, and write with --json

from gpu_health.scorer.promclient import PromClient, PromConfig
from gpu_health.telemetry import state, state_queries

ARMS = ("timestamp() subquery", "step subquery, then the short one at that step")

Query = Callable[[str, float], list[Any]]


def timestamp_subquery(query: Query, schema: str, uuids: Sequence[str], at: float) -> list[Any]:
    """The form before: one subquery per batch, ``timestamp()`` at every 5-minute step."""
    lab = state_queries.LABELS[schema]
    pattern = "|".join(state_queries.regex_literal(u) for u in uuids)
    names = [f'{n}{{{lab.uuid}=~"{pattern}"}}' for n in state_queries._presence_series(schema)]
    template = (
        f"max_over_time(timestamp({{sel}})[{state_queries.LOOKBACK}:"
        f"{state_queries.LAST_SEEN_STEP}])"
    )
    return query(state_queries._any_of(names, template, lab), at)


def times_of(schema: str, samples: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    lab = state_queries.LABELS[schema]
    return {lab.identity(s["metric"])[2]: float(s["value"][1]) for s in samples}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    served_options(parser)
    parser.add_argument(
        "--schema", choices=("dcgm", "ours"), default="dcgm", help="(default: %(default)s)"
    )
    parser.add_argument(
        "--limit",
        type=int,
        default=state.LAST_SEEN_MAX,
        help="absent GPUs looked up, as the state's bound (default: %(default)s)",
    )
    args = served_args(parser)
    if args.limit < 1:
        parser.error("--limit: must be at least 1")
    state.LAST_SEEN_MAX = args.limit  # the shipped path, with the bench's bound
    with served(args.data_dir, compacted=not args.no_compaction_wait) as prom:
        client = PromClient(PromConfig(prom.url, timeout_s=600))
        query: Query = client.query
        asked = state_queries.state_queries(args.schema)
        results = {name: query(asked[name], args.at) for name in ("seen", "fresh")}
        shipped = times_of(args.schema, state._last_seen(query, args.schema, results, args.at))
        absent = sorted(shipped)
        if not absent:
            parser.error(f"no GPU is absent at --at {args.at:.0f}: score after the history ends")
        batches = [
            absent[i : i + state.LAST_SEEN_BATCH]
            for i in range(0, len(absent), state.LAST_SEEN_BATCH)
        ]

        def before() -> list[Any]:
            return [s for b in batches for s in timestamp_subquery(query, args.schema, b, args.at)]

        def now() -> list[Any]:
            return state._last_seen(query, args.schema, results, args.at)

        seconds: dict[str, list[float]] = {arm: [] for arm in ARMS}
        answers: dict[str, dict[str, float]] = {}
        for round_ in range(args.rounds + 1):  # round 0: the cold pass of each, not kept
            for arm, run in zip(ARMS, (before, now), strict=True):
                started = time.monotonic()
                answers[arm] = times_of(args.schema, run())
                if round_:
                    seconds[arm].append(round(time.monotonic() - started, 3))
            print(f"round {round_}: {seconds}", file=sys.stderr, flush=True)
    medians = {arm: statistics.median(seconds[arm]) for arm in ARMS}
    first, second = (answers[arm] for arm in ARMS)
    return report(
        {
            "schema": args.schema,
            "at": args.at,
            "absent_looked_up": len(absent),
            "batches": len(batches),
            "runs_s": seconds,
            "median_s": medians,
            "ratio": round(medians[ARMS[1]] / medians[ARMS[0]], 4),
            "same_times": sum(1 for u in first if second.get(u) == first[u]),
            "gpus_compared": len(first),
        },
        args.json,
    )


if __name__ == "__main__":
    sys.exit(main())
