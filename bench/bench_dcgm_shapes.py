"""What reading every dcgm-exporter shape costs a scoring run: an A/B in one Prometheus.

The dcgm-exporter reader takes the node under ``Hostname`` or ``hostname`` (``label_replace``
before every grouping by node), sums a MIG GPU's series per GPU instance before taking the
largest, and counts XID codes whose series appeared in the window (dcgm-exporter 3.3.6 and
later label the XID gauge with its code). This bench serves ``bench_scorer.write_history``'s
fleet (the older shape: ``Hostname``, no MIG, one XID series per GPU), runs whole scoring runs
with the reader of the release before (A: ``Hostname`` only, plain sums, XID changes only) and
the shipped one (B), interleaved so that the machine's drift hits both alike, checks that both
give the same feature values on this shape, and prints the medians and their ratio (and JSON
with ``--json``).

    .venv/bin/python bench/bench_dcgm_shapes.py --gpus 2000 --days 14 --step 300
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_scorer

from gpu_health.scorer import feature_promql, feature_schema
from gpu_health.telemetry import state_queries

ARMS = ("one shape (before)", "every shape")


@contextmanager
def reading(arm: str) -> Iterator[None]:
    """The shipped reader, or the one before it: no node alias, no MIG instance grouping,
    XID changes only."""
    schema, labels, plus_born = (
        feature_schema.DCGM,
        state_queries.LABELS["dcgm"],
        feature_promql._plus_born,
    )
    if arm == ARMS[0]:
        feature_schema.DCGM = dataclasses.replace(schema, node_alias="", instance="")
        state_queries.LABELS["dcgm"] = dataclasses.replace(labels, node_alias="")
        feature_promql._plus_born = lambda s, changed, born: changed
    try:
        yield
    finally:
        feature_schema.DCGM = schema
        state_queries.LABELS["dcgm"] = labels
        feature_promql._plus_born = plus_born


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    bench_scorer.ab_options(parser)
    args = parser.parse_args()
    arms = {arm: functools.partial(reading, arm) for arm in ARMS}
    frames, runs = bench_scorer.frames_and_runs(args, arms, "bench-shapes-")
    same = frames[0].gpus == frames[1].gpus and np.allclose(
        frames[0].values, frames[1].values, rtol=0, atol=1e-9, equal_nan=True
    )
    return bench_scorer.report_ab(
        args,
        runs,
        "ratio_every_shape_to_one",
        f"same feature values: {same}",
        bool(same),
        same_values=bool(same),
    )


if __name__ == "__main__":
    raise SystemExit(main())
