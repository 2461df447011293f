"""What sending a run's state and reach queries at once saves, on any Prometheus data directory.

Before its feature queries a scoring run asks which history tiers hold every GPU (three reach
queries, :func:`gpu_health.scorer.history_source.choose`); after them it reads every GPU's
state (six evidence queries, then four more at each absent GPU's last-seen time,
:func:`gpu_health.telemetry.state.gather_states`). Prometheus has nothing else to do at those
moments, so one query at a time leaves its other cores idle. This bench serves the directory
with Debian's Prometheus and times both phases one query at a time and as shipped (several at
once), in interleaved rounds after one cold run of each, checks that both give the same
choice and the same states, and prints the medians and their ratios (JSON with ``--json``).
With ``--whole-runs N`` it also times N interleaved pairs of whole scoring runs (the shipped
default model with the economics, as ``bench/bench_scorer.py`` times them), with both phases
one query at a time and as shipped.

    .venv/bin/python bench/bench_run_phases.py --data-dir W/dcgm --at 1796083140 [--rounds 10] \
        [--whole-runs 5]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, get_args

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_scorer

from gpu_health import stack
from gpu_health.scorer import history_source
from gpu_health.scorer.feature_schema import schema_by_name
from gpu_health.scorer.history_source import REACH_WORKERS, HistoryMode, choose
from gpu_health.scorer.promclient import PromClient, PromConfig
from gpu_health.telemetry import freshness
from gpu_health.telemetry import state as state_module
from gpu_health.telemetry.state import STATE_WORKERS, gather_states


@contextlib.contextmanager
def one_at_a_time() -> Iterator[None]:
    """Both phases one query at a time (the release before), for whole runs."""
    saved = state_module.STATE_WORKERS, history_source.REACH_WORKERS
    state_module.STATE_WORKERS = history_source.REACH_WORKERS = 1
    try:
        yield
    finally:
        state_module.STATE_WORKERS, history_source.REACH_WORKERS = saved


@contextlib.contextmanager
def as_shipped() -> Iterator[None]:
    yield


def interleaved(arms: dict[str, Callable[[], Any]], rounds: int) -> tuple[dict[str, Any], Any]:
    """Each arm's seconds over ``rounds`` interleaved rounds after one cold call of each, and
    whether every call of every arm gave the same answer."""
    first = {name: arm() for name, arm in arms.items()}
    same = len({repr(v) for v in first.values()}) == 1
    seconds: dict[str, list[float]] = {name: [] for name in arms}
    for _ in range(rounds):
        for name, arm in arms.items():
            began = time.perf_counter()
            answer = arm()
            seconds[name].append(time.perf_counter() - began)
            same = same and repr(answer) == repr(first[name])
    medians = {name: statistics.median(v) for name, v in seconds.items()}
    one, shipped = list(arms)
    return {
        "runs_s": {k: [round(x, 3) for x in v] for k, v in seconds.items()},
        "median_s": {k: round(v, 3) for k, v in medians.items()},
        "ratio": round(medians[shipped] / medians[one], 3),
        "same_answer": same,
    }, first[shipped]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True, help="a Prometheus data dir")
    parser.add_argument("--at", type=float, required=True, help="evaluation time (unix s)")
    parser.add_argument("--schema", choices=("dcgm", "ours"), default="dcgm")
    parser.add_argument(
        "--history", choices=get_args(HistoryMode), default="auto", help="(default: auto)"
    )
    parser.add_argument("--rounds", type=int, default=10, help="(default: %(default)s)")
    parser.add_argument(
        "--whole-runs", type=int, default=0, help="pairs of whole scoring runs (default: none)"
    )
    parser.add_argument("--workers", type=int, default=4, help="feature query workers")
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args()
    if not args.data_dir.is_dir():
        parser.error(f"--data-dir: {args.data_dir} is not a directory")
    with tempfile.TemporaryDirectory(prefix="bench-run-phases-") as tmp:
        work = Path(tmp)
        config = stack.write_prometheus_config(work / "prometheus.yml")
        with stack.prometheus(work, config, data_dir=args.data_dir) as prom:
            client = PromClient(PromConfig(prom.url, timeout_s=600))
            interval = freshness.measure(lambda promql: client.query(promql, args.at))
            s = replace(schema_by_name(args.schema), fresh=freshness.fresh_range(interval))

            def reach(workers: int) -> Callable[[], Any]:
                return lambda: choose(client, s, args.at, args.history, workers)[1]

            def states(workers: int) -> Callable[[], Any]:
                return lambda: gather_states(
                    client.query, args.schema, args.at, interval_s=interval, workers=workers
                )

            tiers, source = interleaved(
                {"one_at_a_time": reach(1), "at_once": reach(REACH_WORKERS)}, args.rounds
            )
            gathered, found = interleaved(
                {"one_at_a_time": states(1), "at_once": states(STATE_WORKERS)}, args.rounds
            )
            whole: dict[str, Any] = {}
            if args.whole_runs:
                arms = {"one_at_a_time": one_at_a_time, "at_once": as_shipped}
                runs = bench_scorer.interleaved_runs(
                    client, arms, args.whole_runs, args.workers, args.at, args.history, args.schema
                )
                medians = {k: statistics.median(v) for k, v in runs.items()}
                whole = {
                    "runs_s": {k: [round(x, 2) for x in v] for k, v in runs.items()},
                    "median_s": {k: round(v, 2) for k, v in medians.items()},
                    "ratio": round(medians["at_once"] / medians["one_at_a_time"], 3),
                }
    result = {
        "history_read": source,
        "gpus_with_a_state": len(found),
        "absent_or_replaced": sum(g.state in ("absent", "replaced") for g in found.values()),
        "reach": tiers,
        "states": gathered,
        "whole_runs": whole,
    }
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0 if tiers["same_answer"] and gathered["same_answer"] else 1


if __name__ == "__main__":
    sys.exit(main())
