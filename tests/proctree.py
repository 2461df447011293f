"""Process-tree helpers for tests that kill a parent and check what is left (Linux /proc).

A process is named by (pid, start time) so a pid the kernel hands to a new process after the old
one died is never mistaken for the old one, and a zombie counts as gone (an orphan's zombie
waits for a PID 1 that may never reap it in a container).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

Proc = tuple[int, int]  # (pid, start time in clock ticks since boot)


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # "pid (comm) state ppid ...": comm may hold spaces and ")", so split after the last ")".
    return text[text.rindex(")") + 2 :].split()


def start_time(pid: int) -> int | None:
    fields = _stat(pid)
    return int(fields[19]) if fields else None


def proc(pid: int) -> Proc:
    started = start_time(pid)
    assert started is not None, f"pid {pid} is not running"
    return (pid, started)


def descendants(pid: int) -> list[Proc]:
    """Every process below ``pid`` in the tree, parents before children."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat(int(entry))
            if fields:
                children.setdefault(int(fields[1]), []).append(int(entry))
    found: list[Proc] = []
    queue = [pid]
    while queue:
        for child in children.get(queue.pop(0), []):
            started = start_time(child)
            if started is not None:
                found.append((child, started))
                queue.append(child)
    return found


def alive(process: Proc) -> bool:
    fields = _stat(process[0])
    return fields is not None and int(fields[19]) == process[1] and fields[0] not in ("Z", "X")


def command(process: Proc) -> str:
    with contextlib.suppress(OSError):
        raw = Path(f"/proc/{process[0]}/cmdline").read_bytes()
        return raw.replace(b"\0", b" ").decode(errors="replace").strip()[:200]
    return "?"


def wait_gone(processes: list[Proc], timeout: float) -> list[Proc]:
    """Wait until none of ``processes`` runs or ``timeout`` s pass; those still running."""
    deadline = time.monotonic() + timeout
    while True:
        left = [p for p in processes if alive(p)]
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(0.1)


def kill(processes: list[Proc]) -> None:
    """SIGKILL whichever of ``processes`` still runs (test clean-up, never a recycled pid)."""
    for process in processes:
        if alive(process):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(process[0], signal.SIGKILL)


def kill_all(parent: subprocess.Popen[Any], known: list[Proc]) -> None:
    """Test clean-up: SIGKILL ``parent`` if it still runs, its descendants, and ``known``."""
    processes = list(known)
    if parent.poll() is None:
        processes += descendants(parent.pid)
        parent.kill()
        parent.wait(timeout=10)
    kill(processes)
