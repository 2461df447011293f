"""bench/bench_node_label.py runs end to end on a small history and reports what it says.

Its numbers are in docs/benchmarks.md; this runs the bench as a command on the test fleet of
``tests/scorer_fleet.py`` in dcgm-exporter's schema (12 GPUs under ``Hostname``, one failed,
real Prometheus and promtool) and checks that its report holds together: the node read under
the one name the history has, the queries that differ both ways timed both ways, the same
features either way.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bench.bench_runs import SCORER_FLEET_AT, run_bench, scorer_fleet_history

pytestmark = [pytest.mark.integration]

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_node_label.py"
AT = SCORER_FLEET_AT


def test_the_bench_reads_one_name_and_times_both_ways(tmp_path: Path) -> None:
    data = scorer_fleet_history(tmp_path)
    args = ("--data-dir", str(data), "--at", str(AT), "--history", "raw", "--rounds", "1")
    _, report = run_bench(BENCH, tmp_path, *args, "--pairs", "1", "--no-compaction-wait")
    assert report["read_as"] == {"node": "Hostname", "alias": ""}
    assert report["same_features"] is True and report["gpus"] == 11
    # the inventory's relabelled-GPU check aside, every query that reads the node: the power
    # and temperature against the node, the power noise, the lost neighbours
    rows = report["per_query_s"]
    assert report["queries_rewritten"] == len(rows) >= 5
    saved = [r["one name"] - r["both names merged"] for r in rows]  # the largest saving first
    assert saved == sorted(saved)
    for arm in ("one name", "both names merged"):
        assert report["rewritten_s"][arm] == pytest.approx(sum(r[arm] for r in rows), abs=0.01)
        assert len(report["runs_s"][arm]) == 1
        assert report["median_s"][arm] == report["runs_s"][arm][0] > 0
    assert report["run_queries"] > report["queries_rewritten"]
    assert report["run_queries_s"] >= report["rewritten_s"]["one name"]
    assert report["lookup_s"] > 0


def test_the_bench_refuses_negative_pairs(tmp_path: Path) -> None:
    import subprocess
    import sys

    args = ["--data-dir", str(tmp_path), "--at", "0", "--pairs", "-1"]
    done = subprocess.run(
        [sys.executable, str(BENCH), *args], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2 and "--pairs: must not be negative" in done.stderr
