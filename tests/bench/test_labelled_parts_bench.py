"""bench/bench_labelled_parts.py runs end to end on a small fleet and reports what it says.

Its numbers are in docs/benchmarks.md ("Parts labelled in one query"); this runs the bench as a
command on 16 GPUs and two days (real Prometheus, real promtool) and checks that its report
holds together: every arm gives every GPU the same features, the XID classes' arm sends three
queries fewer than the release before (four class queries become one), the node comparisons'
as many as that one (each is still one query, of parts, four of them new), the lost GPUs' one
fewer (two counts, one query), each arm reads fewer samples than the one before, and the ratios
are the medians'.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from tests.bench.bench_runs import ratio_of_rounded_medians, run_bench

pytestmark = [pytest.mark.integration]

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_labelled_parts.py"


def test_the_bench_scores_every_arm_alike_on_a_small_fleet(tmp_path: Path) -> None:
    result, report = run_bench(
        BENCH, tmp_path, "--gpus", "16", "--days", "2", "--step", "600", "--pairs", "1"
    )
    assert report["same_values"] is True and report["gpus_scored"] == 16
    queries = list(report["queries"].values())
    assert [a - b for a, b in itertools.pairwise(queries)] == [3, 0, 1]
    # one shared XID query; the temperature and power comparisons, now and a week ago; one
    # query for both lost-GPU counts
    assert list(report["queries_not_sent_before"].values()) == [0, 1, 5, 6]
    read = list(report["samples_read"].values())
    assert all(a > b > 0 for a, b in itertools.pairwise(read))
    assert len(report["runs_s"]) == 4 and all(len(r) == 1 for r in report["runs_s"].values())
    first = next(iter(report["median_s"].values()))
    for arm, ratio in zip(report["median_s"], report["ratio_to_before"].values(), strict=True):
        assert ratio_of_rounded_medians(ratio, report["median_s"][arm], first)
    assert "same feature values: True" in result.stdout
