"""What reading the node under one name buys a scoring run: an A/B in one Prometheus.

dcgm-exporter calls the node ``Hostname``, and ``hostname`` since NVIDIA/dcgm-exporter#655. A
run used to read both in every query that reads the node (a ``label_replace`` per selector,
evaluated per series and per step); it now asks which of the two the fleet's GPU series carry
and reads the one it has (:mod:`gpu_health.scorer.node_label`). This bench serves a TSDB with
Debian's Prometheus and measures both ways on it:

* the lookup's own time (``/api/v1/labels``, an index lookup);
* each query the two ways write differently, timed by Prometheus (``evalTotalTime``, the
  median of ``--rounds`` after a cold pass), and their sum beside the whole run's queries;
* whether every feature of the run reads the same both ways (the feature frames, exactly);
* ``--pairs`` whole scoring runs of each way, interleaved so the machine's drift hits both.

    .venv/bin/python bench/bench_node_label.py --data-dir DIR --at 1796083140 \
        [--history hourly] [--rounds 3] [--pairs 3] [--json out.json]

``DIR`` is a Prometheus data directory in dcgm-exporter's schema, such as the ``W/dcgm`` that
``bench/bench_hourly_history.py --work W`` leaves.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_query_profile import (
    history_option,
    profile,
    run_queries,
    served,
    served_args,
    served_options,
)
from bench_recorded_history import report  # same directory: print, and write with --json
from bench_scorer import interleaved_runs

from gpu_health.scorer import node_label
from gpu_health.scorer.feature_frame import compute_features
from gpu_health.scorer.feature_promql import window_seconds
from gpu_health.scorer.feature_schema import Schema, schema_by_name
from gpu_health.scorer.history_source import HistoryMode
from gpu_health.scorer.node_label import NODE_LABEL_REACH, node_read_once, presence_match
from gpu_health.scorer.promclient import PromClient, PromConfig

ARMS = ("one name", "both names merged")


@contextmanager
def both_names() -> Iterator[None]:
    """Runs read the node as before the lookup: both names merged in every query."""
    shipped = node_label.node_read_once

    def merged(client: PromClient, s: Schema, at: float | None) -> Schema:
        return s

    node_label.node_read_once = merged
    try:
        yield
    finally:
        node_label.node_read_once = shipped


def lookup_s(client: PromClient, at: float, rounds: int) -> float:
    """The median time of the lookup a run makes (seconds, as the scorer sees it)."""
    s = schema_by_name("dcgm")
    times = []
    for _ in range(rounds):
        began = time.monotonic()
        client.label_names(presence_match(s), at - window_seconds(NODE_LABEL_REACH), at)
        times.append(time.monotonic() - began)
    return statistics.median(times)


def rewritten_queries(
    client: PromClient, at: float, history: HistoryMode
) -> tuple[list[tuple[str, str]], list[str]]:
    """The run's queries written both ways where they differ ((one name, merged) pairs), and
    all of the run's queries as it sends them."""
    ours = [q for q, _, _ in run_queries("dcgm", client, at, history)]
    before = [q for q, _, _ in run_queries("dcgm", client, at, history, one_node_name=False)]
    return [(a, b) for a, b in zip(ours, before, strict=True) if a != b], ours


def timed(url: str, queries: list[str], at: float, rounds: int) -> list[float]:
    """Each query's Prometheus time (:func:`bench_query_profile.profile`: the median of
    ``rounds`` after a cold pass over all), in the order given."""
    found = profile(url, [(q, (), "") for q in queries], at, rounds)
    seconds = {t.query: t.seconds for t in found}
    return [seconds[q] for q in queries]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    served_options(parser)
    history_option(parser)
    parser.add_argument("--pairs", type=int, default=3, help="(default: %(default)s)")
    args = served_args(parser)
    if args.pairs < 0:
        parser.error("--pairs: must not be negative")
    with served(args.data_dir, not args.no_compaction_wait) as prom:
        client = PromClient(PromConfig(prom.url, timeout_s=600))
        s = node_read_once(client, schema_by_name("dcgm"), args.at)
        pairs, every = rewritten_queries(client, args.at, args.history)
        one = timed(prom.url, [a for a, _ in pairs], args.at, args.rounds)
        merged = timed(prom.url, [b for _, b in pairs], args.at, args.rounds)
        run_total = sum(
            t.seconds for t in profile(prom.url, [(q, (), "") for q in every], args.at, args.rounds)
        )
        arms: dict[str, Callable[[], AbstractContextManager[object]]] = {
            ARMS[0]: nullcontext,
            ARMS[1]: both_names,
        }
        frames = []
        for context in arms.values():
            with context():
                frames.append(compute_features(client, "dcgm", args.at, history=args.history))
        a, b = frames
        same = a.gpus == b.gpus and np.array_equal(a.values, b.values, equal_nan=True)
        runs = interleaved_runs(client, arms, args.pairs, 4, args.at, args.history)
        lookup = lookup_s(client, args.at, max(args.rounds, 3))
    medians = {k: statistics.median(v) for k, v in runs.items() if v}
    result: dict[str, Any] = {
        "history": args.history,
        "read_as": {"node": s.node, "alias": s.node_alias},
        "lookup_s": round(lookup, 4),
        "queries_rewritten": len(pairs),
        "rewritten_s": {ARMS[0]: round(sum(one), 3), ARMS[1]: round(sum(merged), 3)},
        "run_queries": len(every),
        "run_queries_s": round(run_total, 3),
        "per_query_s": sorted(  # the largest saving first, as reported (rounded)
            (
                {ARMS[0]: round(x, 3), ARMS[1]: round(y, 3), "query": q[:160]}
                for x, y, (q, _) in zip(one, merged, pairs, strict=True)
            ),
            key=lambda r: float(r[ARMS[0]]) - float(r[ARMS[1]]),
        ),
        "same_features": bool(same),
        "gpus": len(a.gpus),
        "runs_s": {k: [round(x, 2) for x in v] for k, v in runs.items()},
        "median_s": {k: round(v, 2) for k, v in medians.items()},
    }
    if len(medians) == 2:
        result["ratio"] = round(medians[ARMS[0]] / medians[ARMS[1]], 3)
    return report(result, args.json)


if __name__ == "__main__":
    sys.exit(main())
