"""What reading a counter robustly to returning label sets costs a scoring run: an A/B.

Over a day or more a counter feature is the smaller of the summed increases of the GPU's series
and the span of its readings (``feature_schema.Schema.rise``): dcgm-exporter on Kubernetes
writes a GPU's series without pod labels in every idle gap, so that label set comes back and
the summed increases count every job's rise twice. The span costs two more range functions
per counter. This bench serves ``bench_scorer.write_history``'s fleet, runs whole scoring runs
with the summed increases only (A, the release before) and the shipped reading (B),
interleaved so that the machine's drift hits both alike, reports how far the feature values of
the two arms are apart on this fleet (whose label sets never come back: only by Prometheus'
extrapolation, which the span does not do), and prints the medians and their ratio (and JSON
with ``--json``).

    .venv/bin/python bench/bench_counter_span.py --gpus 2000 --days 14 --step 300
"""

from __future__ import annotations

import argparse
import functools
import math
import sys
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from unittest import mock

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_scorer

from gpu_health.scorer import feature_promql

ARMS = ("summed increases (before)", "smaller of sum and span")


def reading(arm: str) -> AbstractContextManager[object]:
    """The shipped counter reading, or the summed increases at every window."""
    if arm == ARMS[0]:
        return mock.patch.object(feature_promql, "SPAN_WINDOW_HOURS", math.inf)
    return nullcontext()


def largest_gap(a: np.ndarray, b: np.ndarray) -> float:
    """The largest relative difference between two feature frames' values (NaN where both
    are missing counts as equal; a count of 1 is the smallest denominator)."""
    both = np.isfinite(a) & np.isfinite(b)
    if not np.array_equal(np.isnan(a), np.isnan(b)):
        return math.inf
    if not both.any():
        return 0.0
    return float((np.abs(a[both] - b[both]) / np.maximum(np.abs(a[both]), 1.0)).max())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    bench_scorer.ab_options(parser)
    args = parser.parse_args()
    arms = {arm: functools.partial(reading, arm) for arm in ARMS}
    frames, runs = bench_scorer.frames_and_runs(args, arms, "bench-span-")
    same_gpus = frames[0].gpus == frames[1].gpus
    gap = largest_gap(frames[0].values, frames[1].values)
    return bench_scorer.report_ab(
        args,
        runs,
        "ratio_span_to_sum",
        f"largest feature gap: {gap:.2%}",
        same_gpus and gap < 0.1,
        same_values=same_gpus,
        largest_feature_gap=gap,
    )


if __name__ == "__main__":
    raise SystemExit(main())
