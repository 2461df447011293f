"""bench/bench_run_phases.py runs end to end on a small history and reports what it says.

Its numbers are in docs/benchmarks.md ("The state and reach queries at once"); this runs the
bench as a command on the state tests' hand-made fleet (one GPU per state, absent and replaced
ones among them, so the states are also read at past times) and checks that its report holds
together: the same choice and states both ways, every GPU's state, ratios that are the
report's own medians, and a pair of whole scoring runs.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from gpu_health import stack
from tests.bench.bench_runs import run_bench
from tests.scorer import state_fleet

pytestmark = [pytest.mark.integration]

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_run_phases.py"


def test_the_bench_times_both_phases_both_ways(tmp_path: Path) -> None:
    end = float(int(time.time()) - 30)
    source = tmp_path / "history.om"
    source.write_text(state_fleet.openmetrics(end))
    data = tmp_path / "tsdb"
    stack.promtool_backfill(source, data)
    args = ("--data-dir", str(data), "--at", str(end), "--schema", "ours", "--rounds", "2")
    args += ("--whole-runs", "1")
    _, report = run_bench(BENCH, tmp_path, *args)
    assert report["history_read"] == "raw"  # no recorded tier in this history
    assert report["gpus_with_a_state"] == len(state_fleet.FLEET)
    assert report["absent_or_replaced"] == 2
    for phase in ("reach", "states"):
        entry = report[phase]
        assert entry["same_answer"] is True
        assert set(entry["runs_s"]) == {"one_at_a_time", "at_once"}
        assert all(len(v) == 2 for v in entry["runs_s"].values())
        # the ratio is of the medians before they were rounded to the millisecond
        a, b = entry["median_s"]["at_once"], entry["median_s"]["one_at_a_time"]
        low, high = (a - 5e-4) / (b + 5e-4), (a + 5e-4) / max(b - 5e-4, 1e-9)
        assert low - 1e-3 <= entry["ratio"] <= high + 1e-3, entry
    whole = report["whole_runs"]
    assert set(whole["runs_s"]) == {"one_at_a_time", "at_once"}
    assert all(len(v) == 1 and v[0] > 0 for v in whole["runs_s"].values())
    assert whole["median_s"] == {k: v[0] for k, v in whole["runs_s"].items()}
