"""Which processes hold files of a Prometheus data directory open.

``gpu-health-scorer evaluate``, ``train``, ``labels`` and ``models promote`` read a data
directory by starting a private Prometheus on it. Pointed at the directory of a Prometheus that
is running, a second one writes its own write-ahead log, head chunks and compactions into the
database the first one is writing. Debian's Prometheus 2.42 takes no lock by default
(``--storage.tsdb.use-lockfile`` is off), so nothing stopped it; a running Prometheus holds its
blocks' files and its write-ahead log open, which ``/proc/PID/fd`` shows. Processes whose
``fd`` directory cannot be read (another user's, where this one could not write the directory
either) are passed over, as is every system without ``/proc``.
"""

from __future__ import annotations

import os
from pathlib import Path

#: Where the running processes are listed (Linux).
PROC = Path("/proc")


def holders(directory: Path, proc: Path = PROC) -> list[tuple[int, str]]:
    """(PID, command name) of every other process with a file under ``directory`` open."""
    root = str(directory.resolve())
    inside = root.rstrip("/") + "/"
    mine = os.getpid()
    found: list[tuple[int, str]] = []
    try:
        entries = sorted(proc.iterdir(), key=lambda p: p.name)
    except OSError:
        return found
    for entry in entries:
        if not entry.name.isdigit() or int(entry.name) == mine:
            continue
        try:
            fds = os.listdir(entry / "fd")
        except OSError:  # gone, or another user's
            continue
        for fd in fds:
            try:
                target = os.readlink(entry / "fd" / fd)
            except OSError:
                continue
            if target == root or target.startswith(inside):
                found.append((int(entry.name), _command(entry)))
                break
    return found


def _command(entry: Path) -> str:
    try:
        return (entry / "comm").read_text(encoding="utf-8", errors="replace").strip() or "?"
    except OSError:
        return "?"
