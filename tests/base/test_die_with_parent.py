"""Children started through ``die_with_parent.spawn`` end when their parent is SIGKILLed.

Each test runs a small Python parent that starts ``sleep`` (directly, through a chain of further
Python parents, or from a worker thread), SIGKILLs that parent and watches /proc. A control test
starts the same child with plain Popen and shows it survives, so the others can fail.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gpu_health import die_with_parent
from tests import proctree

pytestmark = pytest.mark.skipif(not die_with_parent.supported(), reason="Linux only")

# argv: MODE DEPTH READY. Starts `sleep 300` (DEPTH 1) or another copy of itself with DEPTH - 1,
# through spawn() ("guarded"), from a thread that lives on a second and then ends ("thread"), or
# with plain Popen ("plain"); then creates the file READY (the top parent's only).
PARENT = """
import pathlib, subprocess, sys, threading, time
from gpu_health import die_with_parent
mode, depth, ready = sys.argv[1], int(sys.argv[2]), sys.argv[3]
argv = ["sleep", "300"] if depth == 1 else [sys.executable, __file__, mode, str(depth - 1), ""]
def start():
    return subprocess.Popen(argv) if mode == "plain" else die_with_parent.spawn(argv)
if mode == "thread":
    worker = threading.Thread(target=lambda: (start(), time.sleep(1.0)))
    worker.start()
    worker.join()
else:
    start()
if ready:
    pathlib.Path(ready).touch()
time.sleep(300)
"""


def _parent(tmp_path: Path, mode: str, depth: int) -> subprocess.Popen[bytes]:
    script = tmp_path / "parent.py"
    script.write_text(PARENT)
    ready = tmp_path / "ready"
    process = subprocess.Popen([sys.executable, str(script), mode, str(depth), str(ready)])
    deadline = time.monotonic() + 30
    while not ready.exists():
        assert process.poll() is None, f"parent exited with {process.returncode}"
        assert time.monotonic() < deadline, "the parent never got ready"
        time.sleep(0.05)
    return process


def _started_tree(parent: subprocess.Popen[bytes], depth: int) -> list[proctree.Proc]:
    """The parent's descendants once all ``depth`` of them run their own program."""
    deadline = time.monotonic() + 30
    tree: list[proctree.Proc] = []
    while time.monotonic() < deadline:
        assert parent.poll() is None, f"parent exited with {parent.returncode}"
        tree = proctree.descendants(parent.pid)
        commands = [proctree.command(p) for p in tree]
        if (
            len(tree) == depth
            and commands[-1] == "sleep 300"
            and not any("prctl" in c for c in commands)
        ):
            return tree
        time.sleep(0.05)
    pytest.fail(f"the tree never reached depth {depth}: {tree}")


def _kill_parent_and_wait(
    tmp_path: Path, mode: str, depth: int, bound: float
) -> tuple[list[proctree.Proc], list[proctree.Proc]]:
    """(the tree, what of it still runs ``bound`` s after the parent's SIGKILL)."""
    parent = _parent(tmp_path, mode, depth)
    tree: list[proctree.Proc] = []
    try:
        tree = _started_tree(parent, depth)
        time.sleep(0.3)  # a child bound to the parent's ended thread would be signalled by now
        assert all(proctree.alive(p) for p in tree), "a child died before its parent"
        parent.kill()
        parent.wait(timeout=10)
        return tree, proctree.wait_gone(tree, bound)
    finally:
        parent.kill()
        parent.wait(timeout=10)
        proctree.kill(tree)


def test_child_ends_when_its_parent_is_sigkilled(tmp_path: Path) -> None:
    tree, left = _kill_parent_and_wait(tmp_path, "guarded", 1, bound=5)
    assert left == [], [proctree.command(p) for p in left]
    assert len(tree) == 1


def test_a_chain_of_guarded_parents_collapses_from_the_top(tmp_path: Path) -> None:
    tree, left = _kill_parent_and_wait(tmp_path, "guarded", 3, bound=5)
    assert len(tree) == 3  # python -> python -> sleep under the killed parent
    assert left == [], [proctree.command(p) for p in left]


def test_child_started_from_an_ended_thread_lives_until_the_process_dies(tmp_path: Path) -> None:
    # _kill_parent_and_wait checks the child outlived the thread that asked for it.
    _tree, left = _kill_parent_and_wait(tmp_path, "thread", 1, bound=5)
    assert left == [], [proctree.command(p) for p in left]


def test_control_a_plain_popen_child_is_orphaned(tmp_path: Path) -> None:
    tree, left = _kill_parent_and_wait(tmp_path, "plain", 1, bound=2)
    assert left == tree  # what the guard prevents; proctree.kill cleaned it up


def test_guard_does_not_start_the_program_when_its_parent_is_already_gone(
    tmp_path: Path,
) -> None:
    marker = tmp_path / "ran"
    touch = shutil.which("touch")
    assert touch

    def guard(expected_parent: int) -> int:
        guard = [sys.executable, "-I", "-S", "-c", die_with_parent.GUARD, str(expected_parent)]
        return subprocess.call([*guard, touch, "touch", str(marker)])

    # This test process is not pid 1, so the guard sees another parent than it was told.
    assert guard(1) == die_with_parent.PARENT_GONE_STATUS
    assert not marker.exists()
    assert guard(os.getpid()) == 0
    assert marker.exists()


def test_spawned_pid_is_the_program_and_output_passes_through(tmp_path: Path) -> None:
    process = die_with_parent.spawn(
        ["sh", "-c", "echo $$ $PWD"], stdout=subprocess.PIPE, text=True, cwd=tmp_path
    )
    out, _ = process.communicate(timeout=10)
    assert process.returncode == 0
    assert out.split() == [str(process.pid), str(tmp_path)]


def test_missing_program_raises_like_popen(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no-such-program"):
        die_with_parent.spawn(["no-such-program-7f3a"])
    with pytest.raises(FileNotFoundError, match="no-such-program"):
        die_with_parent.spawn(["./no-such-program-7f3a"], cwd=tmp_path)


def test_elsewhere_than_linux_it_is_plain_popen(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "darwin")
    process = die_with_parent.spawn(["true"])
    assert process.wait(timeout=10) == 0
    assert process.args == ["true"]
