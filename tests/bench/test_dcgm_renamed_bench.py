"""The renamed-fields bench keeps working (a tiny run; real figures: docs/benchmarks.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_dcgm_renamed.py"


@pytest.mark.integration
def test_the_bench_scores_each_history_alike_and_reports_ratios(tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    result = subprocess.run(
        [
            *(sys.executable, str(BENCH), "--gpus", "8", "--days", "3", "--rounds", "1"),
            *("--json", str(out)),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    rows = json.loads(out.read_text())
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
