"""bench/bench_active_hours.py runs end to end on a small history and reports what it says.

Its numbers are in docs/benchmarks.md; this runs the bench as a command on the random history
of ``tests/scorer/test_active_hours.py`` (12 GPUs, real Prometheus and promtool) and checks
that its report holds together: both forms give every GPU the same hours, some GPUs have
activity, and the ratios are the medians'.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bench.bench_runs import ratio_of_rounded_medians, run_bench, small_dcgm_history
from tests.scorer.test_active_hours import AT

pytestmark = [pytest.mark.integration]

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_active_hours.py"


def test_the_bench_compares_both_forms_on_a_small_history(tmp_path: Path) -> None:
    data = small_dcgm_history(tmp_path)
    _, report = run_bench(
        BENCH, tmp_path, "--data-dir", str(data), "--at", str(AT), "--rounds", "1"
    )
    assert report["history"] == "raw"
    features = report["per_feature"]
    assert len(features) == 6
    assert all(f["same_values"] for f in features.values())
    assert any(f["gpus_active"] > 0 for f in features.values())
    assert all(f["gpus"] <= 12 for f in features.values())
    # the history sends every signal but thermal holds, and some GPUs lack each
    assert features["thermal_violation_active_hours_7d"]["gpus"] == 0
    assert sum(0 < f["gpus"] < 12 for f in features.values()) >= 4
    whole = report["whole_frame"]
    assert len(whole["runs_s"]["shipped"]) == len(whole["runs_s"]["summed"]) == 1
    medians = whole["median_s"]
    assert ratio_of_rounded_medians(
        whole["shipped_over_summed"], medians["shipped"], medians["summed"]
    )
