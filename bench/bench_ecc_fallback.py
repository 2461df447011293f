"""What reading the volatile ECC counters only for GPUs without aggregate ones saves: an A/B.

An ECC feature reads a GPU's aggregate (board-life) counters, and its volatile ones where the
aggregate ones are missing (``feature_promql.aggregate_first``). PromQL evaluates both sides of
that ``or`` for every GPU, so a fleet that sends both (the project's dcgm-exporter counters
file does) paid for the volatile side for nothing. Each run now asks once whether any GPU
reporting now lacks the aggregate counters (``feature_frame.volatile_ecc_needed``) and leaves
the volatile side out when none does. This bench serves ``bench_scorer.write_history``'s fleet
with the aggregate ECC counters too, runs whole scoring runs with the volatile side always
read (A, the release before) and as shipped (B), interleaved so that the machine's drift hits
both alike, checks that both give the same feature values, and prints the medians and their
ratio (and JSON with ``--json``).

    .venv/bin/python bench/bench_ecc_fallback.py --gpus 2000 --days 14 --step 300
"""

from __future__ import annotations

import argparse
import functools
import sys
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from unittest import mock

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_scorer

from gpu_health.scorer import feature_frame

ARMS = ("volatile side always read (before)", "only where needed")


def reading(arm: str) -> AbstractContextManager[object]:
    """The shipped check, or the volatile side read whatever the fleet sends."""
    if arm == ARMS[0]:
        return mock.patch.object(feature_frame, "volatile_ecc_needed", lambda *args: True)
    return nullcontext()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    bench_scorer.ab_options(parser)
    parser.set_defaults(aggregate_ecc=True)
    args = parser.parse_args()
    arms = {arm: functools.partial(reading, arm) for arm in ARMS}
    frames, runs = bench_scorer.frames_and_runs(args, arms, "bench-ecc-")
    same = frames[0].gpus == frames[1].gpus and np.array_equal(
        frames[0].values, frames[1].values, equal_nan=True
    )
    return bench_scorer.report_ab(
        args, runs, "ratio_needed_to_always", f"same feature values: {same}", same, same_values=same
    )


if __name__ == "__main__":
    raise SystemExit(main())
