"""bench/bench_prometheus_gogc.py runs end to end on a small history and reports what it says.

Its numbers are in docs/benchmarks.md; this runs the bench as a command on the test fleet of
``tests/scorer_fleet.py`` in dcgm-exporter's schema (12 GPUs, real Prometheus and promtool) and
checks that each Prometheus it started ran with the GOGC asked for and that the report holds
together.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.bench.bench_runs import SCORER_FLEET_AT, run_bench, scorer_fleet_history

pytestmark = [pytest.mark.integration]

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_prometheus_gogc.py"
AT = SCORER_FLEET_AT


def test_each_prometheus_runs_with_the_gogc_asked_for(tmp_path: Path) -> None:
    data = scorer_fleet_history(tmp_path)
    args = ("--data-dir", str(data), "--at", str(AT), "--history", "raw", "--rounds", "1")
    _, report = run_bench(
        BENCH, tmp_path, *args, "--gogc", "50,400", "--runs", "2", "--no-compaction-wait"
    )
    assert report["baseline_gogc"] == 50
    arms = report["gogc"]
    assert set(arms) == {"50", "400"}
    for value, arm in arms.items():
        assert arm["seen_gogc"] == [value]
        assert len(arm["runs_s"]) == len(arm["prometheus_cpu_s"]) == 2
        assert all(r > 0 for r in arm["runs_s"])
        assert all(c > 0 for c in arm["prometheus_cpu_s"])
        assert arm["largest_peak_rss_mb"] == arm["peak_rss_mb"][0] > 10
    assert arms["50"]["ratio"] == 1.0


@pytest.mark.parametrize(
    ("gogc", "says"),
    [("75,x", "not a list of whole numbers"), ("0", "distinct percentages"), ("75,75", "distinct")],
)
def test_the_bench_refuses_a_bad_gogc_list(gogc: str, says: str, tmp_path: Path) -> None:
    args = ["--data-dir", str(tmp_path), "--at", "0", "--gogc", gogc]
    done = subprocess.run(
        [sys.executable, str(BENCH), *args], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2 and says in done.stderr, done.stderr
