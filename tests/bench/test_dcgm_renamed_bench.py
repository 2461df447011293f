"""The renamed-fields benches keep working (tiny runs; real figures: docs/benchmarks.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_dcgm_renamed.py"
AT_SCALE = BENCH.with_name("bench_dcgm_renamed_at_scale.py")


def _run(bench: Path, tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], Any]:
    """Run ``bench`` with ``args``; its completed process and its JSON result (exit status 0)."""
    out = tmp_path / "result.json"
    result = subprocess.run(
        [sys.executable, str(bench), *args, "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result, json.loads(out.read_text())


@pytest.mark.integration
def test_the_bench_scores_each_history_alike_and_reports_ratios(tmp_path: Path) -> None:
    result, rows = _run(BENCH, tmp_path, "--gpus", "8", "--days", "3", "--rounds", "1")
    assert set(rows) == {"legacy", "renamed", "upgraded", "legacy, check refused"}
    assert rows["legacy"]["gpus"] >= 6
    assert len({row["gpus"] for row in rows.values()}) == 1
    assert len({row["queries"] for row in rows.values()}) == 1
    assert {name: row["refused"] for name, row in rows.items() if row["refused"]} == {
        "legacy, check refused": 1
    }
    assert rows["legacy"]["ratio_to_legacy"] == 1.0
    assert all(row["median_s"] > 0 for row in rows.values())
    assert "upgraded" in result.stdout


@pytest.mark.integration
def test_the_bench_at_scale_scores_whole_runs_with_equal_features(tmp_path: Path) -> None:
    """The fleet-size bench's two histories (legacy and 4.9's names) give every GPU the same
    features in each arm, and every arm scores whole runs; the exit status says so."""
    _, row = _run(
        AT_SCALE, tmp_path, "--gpus", "16", "--days", "2", "--step", "600", "--pairs", "1"
    )
    arms = {"legacy", "legacy, check refused", "4.9's names"}
    assert set(row["runs_s"]) == arms and all(len(v) == 1 for v in row["runs_s"].values())
    assert row["differing_features"] == {arm: [] for arm in arms}
    assert row["gpus_scored"] == {arm: 16 for arm in arms}
    assert row["check_refused"] == 3  # the frame, the cold run and the one timed run
    assert row["ratio_to_legacy"]["legacy"] == 1.0
