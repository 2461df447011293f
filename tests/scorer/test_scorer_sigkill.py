"""``gpu-health-scorer evaluate --data-dir`` killed with SIGKILL takes its private Prometheus along.

The scorer cannot stop Prometheus itself after SIGKILL; Prometheus was started through
``gpu_health.die_with_parent`` (by ``stack.prometheus``), so the kernel sends it SIGTERM, and it
releases the data dir's lock for the next run.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gpu_health import die_with_parent, stack
from tests import proctree
from tests.scorer_fleet import DAY, failures_csv, make_fleet, openmetrics

SCORER = [sys.executable, "-m", "gpu_health.scorer.cli"]
DAYS = 30
BOUND = 15.0

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(not die_with_parent.supported(), reason="Linux only"),
]


def test_sigkilled_evaluate_takes_its_private_prometheus_along(tmp_path: Path) -> None:
    start = int(time.time()) - DAYS * DAY - 60
    gpus = make_fleet(12, {1: 12, 5: 20, 7: 25})
    om = tmp_path / "history.om"
    om.write_text(openmetrics(gpus, days=DAYS, step=6 * 3600, schema="dcgm", start=start))
    stack.promtool_backfill(om, tmp_path / "prometheus", block_duration="2400h")
    failures_csv(gpus, tmp_path / "failures.csv", start=start)

    scorer = subprocess.Popen(
        [*SCORER, "evaluate", "--data-dir", str(tmp_path), "--step", "1d", "--bootstrap", "0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    tree: list[proctree.Proc] = []
    try:
        assert scorer.stderr is not None
        for line in scorer.stderr:  # printed while it queries its running Prometheus
            if "time steps" in line:
                break
        tree = proctree.descendants(scorer.pid)
        commands = [proctree.command(p) for p in tree]
        assert len(tree) == 1 and commands[0].startswith(stack.find_binary("prometheus")), commands
        assert scorer.poll() is None and proctree.alive(tree[0])

        scorer.kill()
        assert scorer.wait(timeout=10) == -signal.SIGKILL  # killed, not finished on its own
        left = proctree.wait_gone(tree, BOUND)
        assert left == [], [proctree.command(p) for p in left]
    finally:
        if scorer.poll() is None:
            tree += proctree.descendants(scorer.pid)
            scorer.kill()
            scorer.wait(timeout=10)
        proctree.kill(tree)
