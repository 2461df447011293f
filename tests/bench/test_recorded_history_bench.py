"""bench/bench_recorded_history.py runs end to end on a small fleet and reports what it says.

Its numbers are in docs/scorer.md ("Recorded history") and docs/benchmarks.md; this runs the
bench as a command on 8 GPUs and half a day (real Prometheus, real promtool) and checks that its
report holds together: the rules were backfilled, ``auto`` reads the recorded history, both
histories score every GPU, and the ratio is the medians'.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bench.bench_runs import ratio_of_rounded_medians, run_bench

pytestmark = [pytest.mark.integration]

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_recorded_history.py"


def test_the_bench_reports_both_histories_on_a_small_fleet(tmp_path: Path) -> None:
    _, report = run_bench(
        BENCH, tmp_path, "--gpus", "8", "--days", "0.5", "--pairs", "1", "--settle-s", "5"
    )
    assert report["rules_blocks_written"] > 0
    assert report["auto_reads"] == "recorded"
    assert report["gpus_raw"] == report["gpus_recorded"] == 8
    # the ratio is of the medians before they were rounded to 0.01 s for the report
    raw, recorded = report["median_s"]["raw"], report["median_s"]["recorded"]
    assert ratio_of_rounded_medians(report["recorded_over_raw"], recorded, raw)
    assert 0 <= report["hazard_abs_log_ratio_median"] <= report["hazard_abs_log_ratio_max"]
