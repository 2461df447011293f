"""bench/bench_last_seen.py runs end to end on a small history and reports what it says.

Its numbers are in docs/benchmarks.md; this runs the bench as a command on the test fleet of
``tests/scorer_fleet.py`` in dcgm-exporter's schema (12 GPUs, 6.5 days at 30 minutes), scored
three hours after its end so every GPU is absent, and checks that its report holds together:
every absent GPU looked up both ways, the same time both ways, both arms timed.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.bench.bench_runs import SCORER_FLEET_START, run_bench, scorer_fleet_history
from tests.scorer_fleet import DAY

pytestmark = [pytest.mark.integration]

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_last_seen.py"
AFTER_THE_END = SCORER_FLEET_START + 6.5 * DAY + 3 * 3600


def test_the_bench_times_both_forms_on_the_same_gpus(tmp_path: Path) -> None:
    data = scorer_fleet_history(tmp_path)
    args = ("--data-dir", str(data), "--at", str(AFTER_THE_END), "--rounds", "1")
    _, report = run_bench(BENCH, tmp_path, *args, "--limit", "5", "--no-compaction-wait")
    # 12 GPUs seen in the last 7 days, none reporting: the bound of 5 holds, in one batch
    assert report["absent_looked_up"] == 5 and report["batches"] == 1
    assert report["gpus_compared"] == 5 and report["same_times"] == 5
    for arm, runs in report["runs_s"].items():
        assert len(runs) == 1 and report["median_s"][arm] == runs[0] > 0
    first, second = (report["median_s"][arm] for arm in report["runs_s"])
    assert report["ratio"] == pytest.approx(second / first, rel=0.01)


def test_the_bench_refuses_a_time_with_no_absent_gpu(tmp_path: Path) -> None:
    data = scorer_fleet_history(tmp_path)
    done = subprocess.run(
        [sys.executable, str(BENCH), "--data-dir", str(data), "--no-compaction-wait",
         "--at", str(SCORER_FLEET_START + 3 * DAY)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 2 and "no GPU is absent" in done.stderr, done.stderr[-2000:]
