"""Start child processes that are sent SIGTERM when this process dies, even by SIGKILL.

Why: the demo, the scorer's private Prometheus and the test fixtures stop their children on
SIGTERM and Ctrl-C, but SIGKILL (a test runner's timeout, the OOM killer) cannot be caught, and
the children used to keep running as orphans, holding ports and the TSDB lock. Linux can send a
signal to a process when its parent dies (``prctl(PR_SET_PDEATHSIG)``); every long-running child
is started through :func:`spawn`, which asks for SIGTERM. A child that does the same for its own
children (``gpu-health-scorer`` for its Prometheus) makes a whole chain collapse.

How, and the three traps it avoids:

* The prctl must run in the child between fork and exec. ``preexec_fn`` does that, but runs
  Python in a forked copy of a threaded process, which can deadlock (the demo runs HTTP threads).
  So the child is a tiny ``python -I -S -c`` guard instead: it calls prctl on itself and then
  ``execv``\\ s the real program in the same process (the setting survives exec; it is cleared
  only for a set-user-ID or file-capability program, which none of ours are).
* The parent may die before the guard's prctl ran; the guard then checks ``os.getppid()``
  against the pid that started it and exits (status 143, as if it got the SIGTERM) rather than
  start the program as an orphan.
* The kernel sends the signal when the *thread* that forked the child ends, not the process.
  A child started from a worker thread (the backfill's promtool thread, the exporter's kernel
  log reader) would be stopped as soon as that thread finished, unless the thread finished
  before the guard's prctl ran (then it is attached to another thread already): a bug that
  shows only with some timings. So :func:`spawn` forks on the main thread when called there
  and otherwise on one daemon thread that lives as long as the process; both end only when the
  process does.

A child can get the signal more than once: the demo's Python children log two SIGTERMs when the
demo is SIGKILLed (presumably its threads end one after another and each hands the child on).
Each program started here treats a repeated SIGTERM like the first.

On other systems than Linux there is no such signal: :func:`spawn` is plain ``subprocess.Popen``
and a SIGKILLed parent still leaves its children running there.
"""

from __future__ import annotations

import errno
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any

#: prctl option number from <linux/prctl.h>.
PR_SET_PDEATHSIG = 1

#: Exit status of a guard whose parent was already gone: 128 + SIGTERM, as if it got the signal.
PARENT_GONE_STATUS = 128 + signal.SIGTERM

#: The guard run between fork and exec. argv: PARENT_PID PROGRAM ARGV0 ARGS...
#: A failed prctl is reported and the program started anyway (it cannot fail for a valid signal).
GUARD = f"""\
import ctypes, os, sys
sig = ctypes.c_ulong({int(signal.SIGTERM)})  # prctl reads unsigned longs
if ctypes.CDLL(None, use_errno=True).prctl({PR_SET_PDEATHSIG}, sig, *[ctypes.c_ulong(0)] * 3):
    print("die-with-parent: prctl failed:", os.strerror(ctypes.get_errno()), file=sys.stderr)
if os.getppid() != int(sys.argv[1]):
    os._exit({PARENT_GONE_STATUS})
try:
    os.execv(sys.argv[2], sys.argv[3:])
except OSError as exc:
    print(f"{{sys.argv[2]}}: {{exc.strerror}}", file=sys.stderr)
    os._exit(127)
"""


def supported() -> bool:
    """True where the kernel can signal a child when its parent dies (Linux)."""
    return sys.platform.startswith("linux") and bool(sys.executable)


def spawn(argv: Sequence[str], **popen_kwargs: Any) -> subprocess.Popen[Any]:
    """``subprocess.Popen(argv, **popen_kwargs)`` whose child gets SIGTERM when this process dies.

    The returned process's pid is the program's own (the guard execs into it), so waiting,
    signalling and process groups work as with Popen. A program that is not found raises
    FileNotFoundError here, as Popen would. ``shell`` and ``executable`` are not supported.
    No-op wrapper (plain Popen) where :func:`supported` is false.
    """
    if popen_kwargs.get("shell") or "executable" in popen_kwargs:
        raise ValueError("die_with_parent.spawn takes an argv list, not shell/executable")
    argv = list(argv)
    if not supported():
        return subprocess.Popen(argv, **popen_kwargs)
    program = _resolve(argv[0], popen_kwargs.get("cwd"), popen_kwargs.get("env"))
    guarded = [sys.executable, "-I", "-S", "-c", GUARD, str(os.getpid()), program, *argv]
    return _on_a_lasting_thread(lambda: subprocess.Popen(guarded, **popen_kwargs))


def _resolve(program: str, cwd: Any, env: Any) -> str:
    """The path the guard will exec; FileNotFoundError now, as Popen would raise it."""
    if os.path.dirname(program):
        path = os.path.join(os.fspath(cwd), program) if cwd is not None else program
        if os.access(path, os.X_OK) and not os.path.isdir(path):
            return program  # exec'd relative to cwd by the guard, which runs there
    else:
        search = (env if env is not None else os.environ).get("PATH", os.defpath)
        found = shutil.which(program, path=search)
        if found:
            return found
    raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), program)


# -- forking on a thread that lives as long as the process -----------------------------------

_jobs: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]]] = queue.SimpleQueue()
_spawner: threading.Thread | None = None
_spawner_lock = threading.Lock()


def _on_a_lasting_thread(start: Callable[[], subprocess.Popen[Any]]) -> subprocess.Popen[Any]:
    """Run ``start`` on the main thread if called there, else on the long-lived spawner thread."""
    if threading.current_thread() is threading.main_thread():
        return start()
    global _spawner
    with _spawner_lock:
        if _spawner is None or not _spawner.is_alive():
            _spawner = threading.Thread(target=_serve_jobs, name="die-with-parent", daemon=True)
            _spawner.start()
    done: Future[subprocess.Popen[Any]] = Future()
    _jobs.put((start, done))
    return done.result()


def _forget_spawner() -> None:
    """In a forked child only the forking thread survives: start afresh (lock and queue too)."""
    global _jobs, _spawner, _spawner_lock
    _jobs, _spawner, _spawner_lock = queue.SimpleQueue(), None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_spawner)


def _serve_jobs() -> None:
    while True:
        start, done = _jobs.get()
        try:
            done.set_result(start())
        except BaseException as exc:  # handed to the caller, who re-raises it
            done.set_exception(exc)
