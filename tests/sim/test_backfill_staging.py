"""Issue #19: a backfill is written beside --out and moved in only when complete, so an
interrupted run never leaves a partial block directory for Prometheus to load."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gpu_health.sim.backfill import backfill

pytestmark = pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool missing")


@pytest.mark.slow
def test_sigterm_mid_backfill_leaves_nothing_behind(tmp_path: Path) -> None:
    out = tmp_path / "data"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gpu_health.cli",
            "backfill",
            "--gpus",
            "64",
            "--days",
            "20",
            "--out",
            str(out),
            "--no-health",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not any(tmp_path.glob(".data.partial-*/*")):  # writing has begun
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline
            time.sleep(0.1)
        time.sleep(1.0)
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode != 0
    assert not out.exists()
    assert list(tmp_path.iterdir()) == [], list(tmp_path.iterdir())


def test_a_finished_backfill_is_moved_into_place_and_extends(tmp_path: Path) -> None:
    out = tmp_path / "data"
    end = time.time() - 86400
    backfill(gpus=8, days=0.2, out=out, end_time=end, health=False)
    first = {p.name for p in out.iterdir()}
    assert {"failures.csv", "gpus.csv"} <= first and any(len(n) == 26 for n in first)  # a ULID
    backfill(gpus=8, days=0.2, out=out, end_time=end + 86400, health=False)
    second = {p.name for p in out.iterdir()}
    assert first < second  # earlier blocks kept, new ones added
    assert [p.name for p in tmp_path.iterdir()] == ["data"]  # no staging dir left
    assert out.stat().st_mode & 0o055 == 0o055 & ~_umask()  # not mkdtemp's private 0700


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current
