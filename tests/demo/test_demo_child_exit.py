"""A child of ``gpu-health demo`` stopped by hand (``kill PID``, the OOM killer) ends the demo
with one line saying so: stopped from outside, or, for a server that ends cleanly with 0 on
SIGTERM, exited with code 0 although the demo did not stop it; the demo stops the rest."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from gpu_health.demo import processes
from tests.demo.small_demo import small_demo_argv

#: How long the demo may take to notice a child gone and stop the rest (it looks every 0.5 s,
#: then gives each child up to 10 s to stop).
BOUND = 60.0


def _up_demo(workdir: Path) -> tuple[subprocess.Popen[str], dict[str, int]]:
    """A small demo started and up, and its children's pids by name."""
    # --duration: were the child's end never noticed, the demo would still end by itself.
    argv = [*small_demo_argv(workdir), "--duration", "240", "--no-summary"]
    demo = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 180
    while not (workdir / "urls.json").is_file():  # written once every child answers
        if demo.poll() is not None:
            pytest.fail(f"demo exited early: {demo.communicate()[1][-2000:]}")
        if time.monotonic() > deadline:
            demo.kill()
            pytest.fail(f"the demo did not come up in 180 s: {demo.communicate()[1][-2000:]}")
        time.sleep(0.5)
    pids = {}
    for line in (workdir / "pids").read_text().splitlines():
        name, pid = line.split()
        pids[name] = int(pid)
    assert sorted(pids) == ["alertmanager", "exporter", "prometheus", "scorer"]
    return demo, pids


def _ended(demo: subprocess.Popen[str]) -> str:
    """The demo's stderr once it has ended by itself (within :data:`BOUND`)."""
    try:
        _, err = demo.communicate(timeout=BOUND)
    except subprocess.TimeoutExpired:
        demo.kill()
        err = demo.communicate()[1]
        pytest.fail(f"the demo still ran {BOUND:.0f} s after its child ended: {err[-2000:]}")
    return err


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:  # a zombie is not running
            return handle.read().split(") ")[-1][:1] == "Z"
    except OSError:
        return True


def _kill_a_child(workdir: Path, name: str, sig: signal.Signals) -> tuple[dict[str, int], str]:
    """Start a demo in ``workdir``, send ``sig`` to its child ``name`` and wait for the demo to
    end (exit status 1); its pids and its stderr."""
    demo, pids = _up_demo(workdir)
    try:
        os.kill(pids[name], sig)
        err = _ended(demo)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.communicate()
        processes.stop_leftovers(workdir)
    assert demo.returncode == 1, err
    return pids, err


@pytest.mark.slow
@pytest.mark.integration
def test_a_child_stopped_from_outside_is_said_and_the_rest_stopped(tmp_path: Path) -> None:
    workdir = tmp_path / "demo"
    # `kill PID` of the exporter: it handles SIGTERM and exits cleanly, with code 0.
    pids, err = _kill_a_child(workdir, "exporter", signal.SIGTERM)
    lines = err.splitlines()
    assert "stopping (the exporter ended) ..." in lines
    assert lines[-1] == (
        f"error: the exporter (pid {pids['exporter']}) exited with code 0 although the demo did "
        f"not stop it (stopped from outside, e.g. kill {pids['exporter']}?); the demo stopped "
        f"the rest (log: {workdir / 'exporter.log'})"
    )
    assert all(_gone(pid) for pid in pids.values())
    assert not (workdir / "pids").exists() and not (workdir / "urls.json").exists()

    # Prometheus killed hard (the OOM killer): the signal is named. Before, the demo did not
    # watch Prometheus and Alertmanager at all, and ran on without them.
    pids, err = _kill_a_child(workdir, "prometheus", signal.SIGKILL)  # the cached history
    assert "stopping (Prometheus ended) ..." in err.splitlines()
    assert err.splitlines()[-1] == (
        f"error: Prometheus (pid {pids['prometheus']}) was stopped from outside (signal "
        f"SIGKILL); the demo stopped the rest (log: {workdir / 'prometheus.log'})"
    )
    assert all(_gone(pid) for pid in pids.values())
