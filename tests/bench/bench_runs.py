"""Running a bench as a command in a test, and reading what it reports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.scorer_fleet import DAY, make_fleet, openmetrics


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


#: Where :func:`scorer_fleet_history` starts, and the time to score it at (6.4 of its 6.5 days).
SCORER_FLEET_START = 1_700_000_000
SCORER_FLEET_AT = SCORER_FLEET_START + 6.4 * DAY


def scorer_fleet_history(tmp_path: Path) -> Path:
    """A TSDB of ``tests/scorer_fleet.py``'s fleet in dcgm-exporter's schema (12 GPUs under
    ``Hostname``, one failed; 6.5 days at 30 minutes; score it at :data:`SCORER_FLEET_AT`),
    for the benches that compare two ways of reading one data directory."""
    from gpu_health import stack

    source = tmp_path / "fleet.om"
    text = openmetrics(make_fleet(), days=6.5, step=1800, schema="dcgm", start=SCORER_FLEET_START)
    source.write_text(text)
    data = tmp_path / "tsdb"
    stack.promtool_backfill(source, data, block_duration="480h")
    return data
