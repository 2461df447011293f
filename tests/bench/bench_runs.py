"""Running a bench as a command in a test, and reading what it reports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any


def run_bench(
    bench: Path, tmp_path: Path, *args: str, timeout: float = 300
) -> tuple[subprocess.CompletedProcess[str], Any]:
    """Run ``bench`` with ``args`` and ``--json``; its completed process and its JSON result
    (the exit status must be 0)."""
    out = tmp_path / "result.json"
    result = subprocess.run(
        [sys.executable, str(bench), *args, "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result, json.loads(out.read_text())


def small_dcgm_history(tmp_path: Path) -> Path:
    """A TSDB of the random dcgm-exporter history of ``tests/scorer/test_active_hours.py``
    (12 GPUs; score it at that module's ``AT``), for the benches that read a data directory."""
    from gpu_health import stack
    from tests.scorer.test_active_hours import _fleet

    source = tmp_path / "fleet.om"
    source.write_text(_fleet(seed=3, gpus=12))
    data = tmp_path / "tsdb"
    stack.promtool_backfill(source, data, block_duration="480h")
    return data


def ratio_of_rounded_medians(ratio: float, numerator: float, denominator: float) -> bool:
    """Whether ``ratio`` is ``numerator / denominator`` for medians the report rounded to
    0.01 s (the ratio is taken before rounding)."""
    low = (numerator - 0.005) / (denominator + 0.005)
    high = (numerator + 0.005) / max(denominator - 0.005, 1e-9)
    return low - 0.001 <= ratio <= high + 0.001
