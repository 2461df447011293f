"""What sending features as parts saves a scoring run: an A/B in one Prometheus.

Two kinds of feature are a function of more than one evaluation. A 7-day change or log change
(``feature_promql.TwoPart``) reads a recent value that is usually another feature's whole query,
so sent as one expression Prometheus evaluates that value twice. A value against its model's
median (``feature_promql.VsModel``) evaluates the fleet's values once for the GPU and once for
the median. The scorer now sends the parts, each once, and combines them per GPU
(``feature_plan``). This bench serves ``bench_scorer.write_history``'s fleet and runs whole
scoring runs sending the whole expressions (A, the release before) and the parts (B),
interleaved so that the machine's drift hits both alike, checks that both give the same feature
values, and prints the medians and their ratio (and JSON with ``--json``).

    .venv/bin/python bench/bench_feature_queries.py --gpus 2000 --days 14 --step 300
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_scorer

from gpu_health.scorer import service
from gpu_health.scorer.feature_frame import compute_features
from gpu_health.scorer.feature_plan import plan_queries
from gpu_health.scorer.features import FEATURES, schema_by_name

ARMS = ("whole expressions", "parts")


@contextmanager
def sending(arm: str) -> Iterator[None]:
    """The scorer as it is (parts), or sending every feature's whole expression."""
    shipped = service.compute_features
    if arm == ARMS[0]:
        service.compute_features = functools.partial(compute_features, share_parts=False)
    try:
        yield
    finally:
        service.compute_features = shipped


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    bench_scorer.ab_options(parser)
    args = parser.parse_args()
    s = schema_by_name("dcgm")
    plans = {arm: plan_queries(s, FEATURES, arm == ARMS[1]) for arm in ARMS}
    with bench_scorer.served_history(args.gpus, args.days, args.step, "bench-queries-") as (
        client,
        end,
    ):
        # at one fixed time: two frames "now" would read windows a few seconds apart
        frames = [compute_features(client, "dcgm", end, share_parts=p) for p in (False, True)]
        same = frames[0].gpus == frames[1].gpus and np.allclose(
            frames[0].values, frames[1].values, rtol=0, atol=1e-9, equal_nan=True
        )
        arms = {arm: functools.partial(sending, arm) for arm in ARMS}
        runs = bench_scorer.interleaved_runs(client, arms, args.pairs, args.workers)
    return bench_scorer.report_ab(
        args,
        runs,
        "ratio_parts_to_whole",
        f"same feature values: {same}",
        bool(same),
        notes={arm: f"({len(plan.queries)} queries)" for arm, plan in plans.items()},
        queries={arm: len(plan.queries) for arm, plan in plans.items()},
        same_values=bool(same),
    )


if __name__ == "__main__":
    raise SystemExit(main())
