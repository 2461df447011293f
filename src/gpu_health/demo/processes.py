"""The demo's child processes: started in their own sessions, recorded, and always stopped.

Every child gets its own process group (so stopping it also stops anything it forked) and the
demo's work dir as its working directory; on Linux each also gets SIGTERM when the demo dies,
even by SIGKILL (:mod:`gpu_health.die_with_parent`). Their pids are written to ``WORKDIR/pids``
as they start; a later run reads that file and stops leftovers of a run that was killed too hard
to clean up (SIGKILL on another system, or a child that ignored its SIGTERM), recognising them by
that working directory so a recycled pid is never touched.

One demo runs in a work dir at a time: it holds an exclusive flock on ``WORKDIR/demo.lock`` for
as long as it runs (the kernel drops the lock when it dies, even by SIGKILL), and a second demo
started there is refused instead of stopping the first one's processes under it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from gpu_health import die_with_parent, stack
from gpu_health.errors import UserError

PIDS_FILE = "pids"
#: held (flock, exclusive) by the demo running in the work dir
LOCK_FILE = "demo.lock"


def open_lock_file(path: Path) -> int:
    """A descriptor of ``path`` (created) to flock, not inherited by children; a one-line
    UserError when it cannot be opened. Closing it releases the lock."""
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    except OSError as exc:
        raise UserError(f"{path}: cannot open the lock file: {exc.strerror or exc}") from None


@contextlib.contextmanager
def one_demo_per_workdir(workdir: Path) -> Iterator[None]:
    """Hold the work dir's lock while the demo runs; a one-line UserError naming the running
    demo's pid when another demo holds it. The lock file is not inherited by the children."""
    fd = open_lock_file(workdir / LOCK_FILE)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            who = f"pid {pid}" if pid.isdigit() else "another process"
            raise UserError(
                f"another demo ({who}) is running in {workdir}; stop it first (Ctrl-C where it "
                "runs) or give this one another --workdir"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


def port_or_free(preferred: int) -> int:
    """``preferred`` when nothing listens on it (or binds it) on 127.0.0.1, else a free port.

    The probe sets SO_REUSEADDR, as Prometheus, Alertmanager and the exporter do on their own
    listening sockets: a demo that was just stopped leaves connections in TIME_WAIT on its
    ports for a minute, which block a plain bind() but not the servers, so without it a restart
    would move every server to a random port although the usual one is free.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", preferred))
        except OSError:
            return stack.free_port()
    return preferred


class ProcessTable:
    """The processes one demo run started, in start order."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.path = workdir / PIDS_FILE
        self.entries: list[tuple[str, int]] = []
        self._owned: list[subprocess.Popen[bytes]] = []
        self.path.write_text("")

    def record(self, name: str, pid: int) -> None:
        self.entries.append((name, pid))
        self.path.write_text("".join(f"{n} {p}\n" for n, p in self.entries))

    def spawn(self, name: str, argv: Sequence[str]) -> subprocess.Popen[bytes]:
        """Start ``argv`` in a new session, logging to ``WORKDIR/NAME.log``."""
        with (self.workdir / f"{name}.log").open("ab") as log:
            process = die_with_parent.spawn(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.workdir,
                start_new_session=True,
            )
        self._owned.append(process)
        self.record(name, process.pid)
        return process

    def stop_owned(self) -> None:
        """Stop the processes :meth:`spawn` started, newest first."""
        for process in reversed(self._owned):
            stack.stop_process(process, grace=10.0)
        self._owned.clear()


def _cwd(pid: int) -> Path | None:
    try:
        return Path(os.readlink(f"/proc/{pid}/cwd"))
    except OSError:
        return None


def stop_leftovers(workdir: Path) -> list[str]:
    """Stop processes of an earlier run in ``workdir`` that are still alive; returns their names."""
    path = workdir / PIDS_FILE
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return []
    here = workdir.resolve()
    stopped = []
    for line in lines:
        name, _, pid_text = line.partition(" ")
        if not pid_text.strip().isdigit():
            continue
        pid = int(pid_text)
        if pid == os.getpid() or _cwd(pid) != here:
            continue
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGTERM)
            stopped.append(f"{name} (pid {pid})")
    deadline = time.monotonic() + 10.0
    for line in lines:
        _, _, pid_text = line.partition(" ")
        if not pid_text.strip().isdigit():
            continue
        pid = int(pid_text)
        while _cwd(pid) == here and time.monotonic() < deadline:
            time.sleep(0.1)
        if _cwd(pid) == here:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
    return stopped
