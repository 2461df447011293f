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
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_scorer

from gpu_health.scorer import feature_frame

ARMS = ("volatile side always read (before)", "only where needed")


@contextmanager
def reading(arm: str) -> Iterator[None]:
    """The shipped check, or the volatile side read whatever the fleet sends."""
    shipped = feature_frame.volatile_ecc_needed
    if arm == ARMS[0]:
        feature_frame.volatile_ecc_needed = lambda *args: True  # type: ignore[assignment]
    try:
        yield
    finally:
        feature_frame.volatile_ecc_needed = shipped  # type: ignore[assignment]


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
    result, medians = bench_scorer.ab_summary(args, runs, same_values=same)
    ratio = medians[ARMS[1]] / medians[ARMS[0]]
    result["ratio_needed_to_always"] = round(ratio, 3)
    print(f"whole scoring run, median of {args.pairs} (same feature values: {same}):")
    for arm, median in medians.items():
        print(f"  {arm:36s} {median:6.2f} s")
    print(f"  only where needed / always           {ratio:.3f}x")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
