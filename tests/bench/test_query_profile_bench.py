"""bench/bench_query_profile.py runs end to end on a small history and reports what it says.

Its numbers are in docs/benchmarks.md; this runs the bench as a command on the random history
of ``tests/scorer/test_active_hours.py`` (12 GPUs, real Prometheus and promtool) and checks that
its report holds together: one row per query a run sends, kinds that add up, the slowest first,
each feature query named by the features that read it.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from gpu_health.scorer.feature_plan import plan_queries
from gpu_health.scorer.features import FEATURES, schema_by_name
from gpu_health.telemetry.state_queries import state_queries
from tests.bench.bench_runs import run_bench, small_dcgm_history
from tests.scorer.test_active_hours import AT

pytestmark = [pytest.mark.integration]

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_query_profile.py"


def test_the_bench_times_every_query_of_a_run(tmp_path: Path) -> None:
    data = small_dcgm_history(tmp_path)
    _, report = run_bench(
        BENCH,
        tmp_path,
        "--data-dir",
        str(data),
        "--at",
        str(AT),
        "--history",
        "raw",
        "--rounds",
        "1",
        "--top",
        "200",
        "--no-compaction-wait",
    )
    features = plan_queries(replace(schema_by_name("dcgm"), fresh="30m"), FEATURES).queries
    states = state_queries("dcgm")
    assert report["queries"] == len(features) + len(states)
    assert report["blocks_served"] >= 1
    kinds = report["by_kind"]
    assert sum(k["queries"] for k in kinds.values()) == report["queries"]
    assert kinds["state"]["queries"] == len(states)
    # the six hours-with-activity features step a subquery; every window length is read
    assert kinds["subquery"]["queries"] >= 6
    assert kinds["long"]["queries"] > 0 and kinds["short"]["queries"] > 0
    assert sum(k["seconds"] for k in kinds.values()) == pytest.approx(report["seconds"], abs=0.01)
    rows = report["slowest"]
    assert len(rows) == report["queries"]
    assert [r["seconds"] for r in rows] == sorted((r["seconds"] for r in rows), reverse=True)
    assert sum(r["samples"] for r in rows) == report["samples"] > 0
    named = {f for r in rows if r["kind"] != "state" for f in r["features"]}
    assert "nvlink_error_active_hours_7d" in named
    assert all(r["features"] for r in rows)
    # the raw history: no query reads the hourly samples
    assert not any(":last_over_time1h" in r["query"] for r in rows)
    whole = report["whole_runs"]
    assert len(whole["runs_s"]) == len(whole["scorer_cpu_s"]) == 1
    assert whole["median_s"] == whole["runs_s"][0] > 0
    assert 0 < whole["median_scorer_cpu_s"] == whole["scorer_cpu_s"][0]


def test_the_bench_refuses_a_missing_data_directory(tmp_path: Path) -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, str(BENCH), "--data-dir", str(tmp_path / "none"), "--at", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "is not a directory" in done.stderr.splitlines()[-1]
