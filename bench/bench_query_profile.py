"""Where a scoring run's Prometheus time goes: each query of one run, timed by Prometheus.

A whole scoring run on a 2-core machine is bound by Prometheus' CPU: the scorer itself spends
about a second of it at 2,000 GPUs, and Prometheus evaluates each query on one core. So the
sum of the queries' own evaluation times, and how it splits between them, says what a change
to one query can buy a run. This bench serves a TSDB with Debian's Prometheus and sends each
query a run sends, one at a time, ``--rounds`` times (after one cold pass over all of them):
the feature queries as :func:`~gpu_health.scorer.feature_plan.plan_queries` plans them, read
through ``--history`` (``raw``, ``hourly``: the long windows on the hourly samples, or
``recorded``), and the GPU-state queries. For each it reports the median of Prometheus' own
``evalTotalTime`` (``stats=all``), the samples it read, the features that read it, and its
kind (then ``--whole-runs`` whole scoring runs, each one's seconds and the scorer's own CPU
seconds in it):

* ``subquery``: it steps a subquery (``[7d:2h]``), evaluating its inner expression at every
  step;
* ``long``: a range of 7 days or more (the windows the hourly samples serve);
* ``short``: only ranges under 7 days;
* ``state``: a GPU-state query (``gpu_health.telemetry.state_queries``).

    .venv/bin/python bench/bench_query_profile.py --data-dir DIR --at 1796083140 \
        [--schema dcgm] [--history hourly] [--rounds 3] [--top 15] [--whole-runs 1] \
        [--json out.json]

``DIR`` is a Prometheus data directory, such as the ``W/dcgm`` that
``bench/bench_hourly_history.py --work W`` leaves (its hourly samples included).
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, get_args

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_recorded_history import report  # same directory: print, and write with --json
from bench_scorer import query_stats, scoring_run_s, tsdb_blocks, wait_compacted

from gpu_health import stack
from gpu_health.scorer.feature_frame import presence_window, totals_readable
from gpu_health.scorer.feature_plan import plan_queries
from gpu_health.scorer.feature_promql import window_seconds
from gpu_health.scorer.feature_schema import SchemaName
from gpu_health.scorer.features import FEATURES, schema_by_name
from gpu_health.scorer.history_source import HistoryMode, to_hourly, to_recorded
from gpu_health.scorer.node_label import node_read_once
from gpu_health.scorer.promclient import PromClient, PromConfig
from gpu_health.telemetry.state_queries import state_queries

KINDS = ("subquery", "long", "short", "state")
#: A subquery's range and step (``[7d:2h]``, ``[24h:10m]``; an empty step is the default).
_SUBQUERY = re.compile(r"\[[0-9smhdwy]+:[0-9smhdwy]*\]")
#: Any range (``[30m]``, ``[608400s]``, a subquery's range).
_RANGE = re.compile(r"\[([0-9]+[smhdwy](?:[0-9]+[smhdwy])*)[:\]]")
LONG_S = 7 * 86400


@dataclass(frozen=True)
class Timed:
    """One query's median evaluation time (s), the samples it read, its kind and readers."""

    seconds: float
    samples: int
    kind: str
    features: tuple[str, ...]
    query: str


def kind_of(promql: str) -> str:
    """``subquery``, ``long`` or ``short`` (a feature query; see the module docstring)."""
    if _SUBQUERY.search(promql):
        return "subquery"
    longest = max((window_seconds(w) for w in _RANGE.findall(promql)), default=0.0)
    return "long" if longest >= LONG_S else "short"


def run_queries(
    schema: SchemaName,
    client: PromClient,
    at: float,
    history: HistoryMode,
    one_node_name: bool = True,
) -> list[tuple[str, tuple[str, ...], str]]:
    """(query, the features that read it, kind) for every query of one run, as sent
    (``one_node_name=False``: reading both of dcgm-exporter's node names, as a run did before
    it looked up which one the fleet carries)."""
    s = replace(schema_by_name(schema), fresh=presence_window(client, at))
    if one_node_name:
        s = node_read_once(client, s, at)
    s = replace(s, totals=totals_readable(client, s, at))
    plan = plan_queries(s, FEATURES)
    readers: dict[int, list[str]] = {}
    for feature, uses in zip(FEATURES, plan.uses, strict=True):
        for i in uses:
            readers.setdefault(i, []).append(feature.name)
    as_sent: Callable[[str], str] = {
        "raw": lambda q: q,
        "hourly": to_hourly,
        "recorded": to_recorded,
    }[history]
    found = [
        (as_sent(q), tuple(readers.get(i, ())), kind_of(q)) for i, q in enumerate(plan.queries)
    ]
    for name, q in state_queries(schema, s.fresh, s.fresh).items():
        found.append((q, (f"state:{name}",), "state"))
    return found


def profile(
    url: str, queries: list[tuple[str, tuple[str, ...], str]], at: float, rounds: int
) -> list[Timed]:
    """Each query timed ``rounds`` times, one at a time, after one cold pass over all; slowest
    first."""
    with requests.Session() as session:
        for q, _, _ in queries:
            query_stats(session, url, q, at)
        seconds: list[list[float]] = [[] for _ in queries]
        samples = [0] * len(queries)
        for _ in range(rounds):  # rounds over all queries: drift hits each alike
            for i, (q, _, _) in enumerate(queries):
                took, samples[i] = query_stats(session, url, q, at)
                seconds[i].append(took)
    timed = [
        Timed(statistics.median(s), n, kind, features, q)
        for s, n, (q, features, kind) in zip(seconds, samples, queries, strict=True)
    ]
    return sorted(timed, key=lambda t: -t.seconds)


def whole_runs(
    client: PromClient, schema: SchemaName, at: float, history: HistoryMode, runs: int
) -> dict[str, Any]:
    """``runs`` whole scoring runs (the shipped default model, the economics) after a cold
    one: each one's seconds, and the CPU seconds the scorer's own process spent in it (the
    rest of a run is Prometheus' time)."""
    scoring_run_s(client, 4, at, history, schema)
    seconds, cpu = [], []
    for _ in range(runs):
        began = time.process_time()
        seconds.append(scoring_run_s(client, 4, at, history, schema))
        cpu.append(time.process_time() - began)
    return {
        "runs_s": [round(x, 2) for x in seconds],
        "scorer_cpu_s": [round(x, 2) for x in cpu],
        "median_s": round(statistics.median(seconds), 2),
        "median_scorer_cpu_s": round(statistics.median(cpu), 2),
    }


def summary(timed: list[Timed], top: int) -> dict[str, Any]:
    """Totals, the split by kind, and the ``top`` slowest queries."""
    total = sum(t.seconds for t in timed)
    by_kind = {
        k: {
            "queries": sum(t.kind == k for t in timed),
            "seconds": round(sum(t.seconds for t in timed if t.kind == k), 3),
            "share": round(sum(t.seconds for t in timed if t.kind == k) / total, 3)
            if total
            else 0.0,
            "samples": sum(t.samples for t in timed if t.kind == k),
        }
        for k in KINDS
    }
    return {
        "queries": len(timed),
        "seconds": round(total, 3),
        "samples": sum(t.samples for t in timed),
        "by_kind": by_kind,
        "slowest": [
            {
                "seconds": round(t.seconds, 3),
                "share": round(t.seconds / total, 3) if total else 0.0,
                "samples": t.samples,
                "kind": t.kind,
                "features": list(t.features),
                "query": t.query,
            }
            for t in timed[:top]
        ],
    }


def served_options(parser: argparse.ArgumentParser, rounds: bool = True) -> None:
    """The options of a bench that times queries on a data directory: ``--data-dir``,
    ``--at``, ``--rounds`` (unless ``rounds`` is false: a bench of whole runs only), ``--json``
    (:func:`served_args` checks them)."""
    parser.add_argument("--data-dir", type=Path, required=True, help="a Prometheus data dir")
    parser.add_argument("--at", type=float, required=True, help="evaluation time (unix s)")
    if rounds:
        parser.add_argument("--rounds", type=int, default=3, help="(default: %(default)s)")
    parser.add_argument("--json", type=Path, help="also write the result here")
    parser.add_argument(
        "--no-compaction-wait",
        action="store_true",
        help="time at once, without waiting for Prometheus' first compaction cycle to merge "
        "the 2-hour blocks of a fresh backfill (a small test history)",
    )


def history_option(parser: argparse.ArgumentParser) -> None:
    """``--history``: how the feature queries read history (one tier, not ``auto``)."""
    parser.add_argument(
        "--history",
        choices=[m for m in get_args(HistoryMode) if m != "auto"],
        default="hourly",
        help="how the feature queries read history (default: %(default)s)",
    )


def served_args(parser: argparse.ArgumentParser) -> argparse.Namespace:
    """The parsed arguments, with :func:`served_options`' checked (a one-line error)."""
    args = parser.parse_args()
    if not args.data_dir.is_dir():
        parser.error(f"--data-dir: {args.data_dir} is not a directory")
    if getattr(args, "rounds", 1) < 1:
        parser.error("--rounds: must be at least 1")
    return args


@contextmanager
def served(data: Path, compacted: bool = False) -> Iterator[stack.Server]:
    """Debian's Prometheus serving ``data`` until the context exits; with ``compacted``, once
    its first compaction cycle is over (a fresh backfill's 2-hour blocks merged, as in any
    Prometheus serving weeks: on a blind generator's 238 boards × 14 days, one run's queries
    took 17.1 s of Prometheus' time on the 169 blocks promtool wrote, 3.2 s on the 7 merged)."""
    with tempfile.TemporaryDirectory(prefix="bench-served-") as tmp:
        work = Path(tmp)
        config = stack.write_prometheus_config(work / "prometheus.yml")
        with stack.prometheus(work, config, data_dir=data) as prom:
            if compacted:
                print("waiting for Prometheus' first compaction", file=sys.stderr, flush=True)
                wait_compacted(prom.url)
            yield prom


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    served_options(parser)
    parser.add_argument(
        "--schema", choices=("dcgm", "ours"), default="dcgm", help="(default: %(default)s)"
    )
    history_option(parser)
    parser.add_argument("--top", type=int, default=15, help="slowest queries listed")
    parser.add_argument(
        "--whole-runs",
        type=int,
        default=1,
        help="whole scoring runs timed after the queries (0: none; default: %(default)s)",
    )
    args = served_args(parser)
    if args.whole_runs < 0:
        parser.error("--whole-runs: must not be negative")
    with served(args.data_dir, not args.no_compaction_wait) as prom:
        blocks = tsdb_blocks(args.data_dir)
        client = PromClient(PromConfig(prom.url, timeout_s=600))
        queries = run_queries(args.schema, client, args.at, args.history)
        timed = profile(prom.url, queries, args.at, args.rounds)
        runs = (
            whole_runs(client, args.schema, args.at, args.history, args.whole_runs)
            if args.whole_runs
            else {}
        )
    result = {
        "schema": args.schema,
        "history": args.history,
        "blocks_served": blocks,
        **summary(timed, args.top),
        "whole_runs": runs,
    }
    return report(result, args.json)


if __name__ == "__main__":
    sys.exit(main())
