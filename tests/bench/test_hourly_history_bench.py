"""bench/bench_hourly_history.py runs end to end on a small fleet and reports what it says.

Its numbers are in docs/scorer.md ("Recorded history") and docs/benchmarks.md; this runs the
bench as a command on 8 GPUs and half a day (real Prometheus, real promtool; the raw history's
blocks served as written, without waiting for Prometheus' first compaction) and checks that its
report holds together: the hourly group was backfilled, ``auto`` reads it, the hourly arm read
fewer samples, both arms score every GPU, and the ratio is the medians'.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bench.bench_runs import ratio_of_rounded_medians, run_bench

pytestmark = [pytest.mark.integration]

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_hourly_history.py"


def test_the_bench_reports_both_arms_on_a_small_fleet(tmp_path: Path) -> None:
    _, report = run_bench(
        BENCH,
        tmp_path,
        "--gpus",
        "8",
        "--days",
        "0.5",
        "--pairs",
        "1",
        "--settle-s",
        "5",
        "--no-compaction-wait",
    )
    assert report["rules_blocks_written"] > 0
    assert report["auto_reads"] == "hourly"
    assert report["samples_read"]["hourly"] < report["samples_read"]["raw"]
    assert report["gpus_raw"] == report["gpus_recorded"] == 8
    raw, hourly = report["median_s"]["raw"], report["median_s"]["hourly"]
    assert ratio_of_rounded_medians(report["hourly_over_raw"], hourly, raw)
    assert 0 <= report["hazard_abs_log_ratio_median"] <= report["hazard_abs_log_ratio_max"]
