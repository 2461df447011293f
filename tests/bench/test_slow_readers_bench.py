"""bench/bench_slow_readers.py runs end to end on a tiny size and reports every scenario.

Its numbers are in docs/reliability.md; this runs the bench as a command (4 GPUs, 20 clients,
5 s of scraping per scenario) and checks that the JSON has the baseline and both kinds of
clients with every field, that the baseline answered its scrapes, and that the clients
connected and the readers read. No timing is asserted.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import pytest

from tests.bench.bench_runs import run_bench

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_slow_readers.py"


def _scenario_fields() -> set[str]:
    sys.path.insert(0, str(BENCH.parent))
    try:
        import bench_slow_readers
    finally:
        sys.path.remove(str(BENCH.parent))
    return {f.name for f in dataclasses.fields(bench_slow_readers.Scenario)}


def test_the_bench_reports_every_scenario_and_field(tmp_path: Path) -> None:
    args = ("--gpus", "4", "--clients", "20", "--rate", "21000,0", "--seconds", "5")
    done, report = run_bench(BENCH, tmp_path, *args, "--warmup", "2", timeout=180)
    for key in ("gpus", "fd_limit", "connection_cap", "answer_plain_bytes", "answer_gzip_bytes",
                "cpus", "loadavg_1m_end", "scenarios"):  # fmt: skip
        assert key in report, key
    assert report["connection_cap"] == 272  # --fd-limit 400 less the 128 kept for files
    assert report["answer_plain_bytes"] > report["answer_gzip_bytes"] > 0
    scenarios = {s["name"]: s for s in report["scenarios"]}
    assert set(scenarios) == {"baseline", "slow readers", "never reads"}
    wanted = _scenario_fields()
    for name, scenario in scenarios.items():
        assert set(scenario) == wanted, (name, wanted ^ set(scenario))
        assert scenario["scrapes_asked"] >= 1, name
        assert scenario["rss_peak_mb"] > 0 and scenario["fds_peak"] > 0, name
        assert scenario["exporter_exit"] is None, name
    base = scenarios["baseline"]
    assert base["scrapes_answered"] == base["scrapes_asked"], base["scrape_errors"]
    assert base["p50_ratio"] == 1.0 and base["answered_ratio"] == 1.0
    readers, idle = scenarios["slow readers"], scenarios["never reads"]
    assert readers["rate_set"] == 21000 and idle["rate_set"] == 0
    for scenario in (readers, idle):
        assert scenario["clients"] == 20 and scenario["client_connects"] >= 20
    assert readers["rate_taken_mean"] > 0 and idle["rate_taken_mean"] == 0
    for line in ("| baseline | 0 |", "| slow readers | 20 | 21000 |", "| never reads | 20 | 0 |"):
        assert line in done.stdout, done.stdout
