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

from gpu_health.sim.backfill import _Promtool, backfill

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


def test_a_cancelled_worker_stops_promtool_and_skips_the_queued_window(tmp_path: Path) -> None:
    """An interrupted backfill waited for promtool to finish the window it was reading and the
    one queued behind it: over 30 s on a loaded CI machine, where the SIGTERM test above timed
    out. cancel() stops the running promtool and the queued window is never read."""
    first, second = tmp_path / "first.om", tmp_path / "second.om"
    _big_openmetrics(first)
    shutil.copy(first, second)
    data = tmp_path / "data"
    worker = _Promtool(data, keep=False)
    worker.start()
    worker.jobs.put(first)
    deadline = time.monotonic() + 60
    while worker._running is None:  # promtool has started on the first window
        assert worker.is_alive() and time.monotonic() < deadline, worker.error
        time.sleep(0.001)
    worker.cancel()
    worker.jobs.put(second)
    worker.jobs.put(None)
    worker.join(timeout=60)
    assert not worker.is_alive()
    assert isinstance(worker.error, RuntimeError), worker.error  # promtool was stopped
    assert "promtool could not backfill" in str(worker.error)
    # no block written (a stopped promtool may leave its scratch dir: the staging dir goes)
    assert not list(data.glob("*/meta.json")), list(data.iterdir())
    assert not first.exists() and not second.exists()  # window files removed all the same


def _big_openmetrics(path: Path) -> None:
    """About 2.4 million samples in one 2-hour window: promtool needs seconds to read them,
    far longer than the worker takes to be cancelled once promtool has started."""
    start = 1_700_000_000 - 1_700_000_000 % 7200
    with path.open("w") as out:
        out.write("# TYPE load gauge\n")
        for series in range(20_000):
            out.writelines(
                f'load{{gpu="{series}"}} {step % 7} {start + 60 * step}\n' for step in range(120)
            )
        out.write("# EOF\n")


def test_a_finished_backfill_is_moved_into_place_and_extends(tmp_path: Path) -> None:
    out = tmp_path / "data"
    end = time.time() - 86400
    backfill(gpus=8, days=0.2, out=out, end_time=end, health=False)
    first = {p.name for p in out.iterdir()}
    assert {"failures.csv", "gpus.csv"} <= first and any(len(n) == 26 for n in first)  # a ULID
    # the same fleet, later: its range overlaps the first's (one apart is refused)
    backfill(gpus=8, days=0.2, out=out, end_time=end + 0.1 * 86400, health=False)
    second = {p.name for p in out.iterdir()}
    assert first < second  # earlier blocks kept, new ones added
    assert [p.name for p in tmp_path.iterdir()] == ["data"]  # no staging dir left
    assert out.stat().st_mode & 0o055 == 0o055 & ~_umask()  # not mkdtemp's private 0700


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current
