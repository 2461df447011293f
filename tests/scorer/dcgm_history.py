"""Serve one dcgm-exporter history from a real Prometheus and score it as of a past time: shared
by the tests that write one history under several field names and compare the answers."""

from __future__ import annotations

import json
import subprocess
import sys
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from gpu_health import stack
from tests.conftest import ONE_PASS_BLOCKS

SCORER = [sys.executable, "-m", "gpu_health.scorer.cli"]


def serve(root: Path, text: str, name: str, days: float) -> AbstractContextManager[stack.Server]:
    """A Prometheus (a context manager) serving OpenMetrics ``text`` of ``days`` of history,
    backfilled into ``root``/tsdb-``name``."""
    om = root / f"{name}.om"
    om.write_text(text)
    data = root / f"tsdb-{name}"
    stack.promtool_backfill(om, data, ONE_PASS_BLOCKS)
    work = root / f"prom-{name}"
    work.mkdir()
    config = stack.write_prometheus_config(work / "prometheus.yml")
    return stack.prometheus(work, config, data_dir=data)


def score_at(url: str, at: float, *extra: str) -> dict[str, Any]:
    """``gpu-health-scorer score --at`` with the rule, over dcgm-exporter's schema (``extra``
    options after): its JSON."""
    result = subprocess.run(
        [
            *(*SCORER, "score", "--prometheus.url", url, "--schema", "dcgm"),
            *("--at", str(at), "--json", "--model", "rules", *extra),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    body: dict[str, Any] = json.loads(result.stdout)
    return body
