"""Follow the kernel log in a background thread: ``/dev/kmsg``, else the systemd journal.

Why both, and in this order: ``/dev/kmsg`` is the kernel's own ring buffer — every message since
boot as long as the buffer has not wrapped (its first record then has sequence number 0), no
daemon involved, readable by an unprivileged container when ``kernel.dmesg_restrict=0`` (with
CAP_SYSLOG otherwise). When the ring has wrapped, the journal (``journalctl -k -b``) still holds
the kernel messages of the whole boot, so it is preferred then; when neither is readable the
exporter says so in one log line and counts XIDs from NVML events alone.

Start-up reads the whole backlog before the first scrape is served (bounded by ``wait``): a
count served before the backlog is read would look like a counter reset followed by a burst of
new events.

Two kinds of record are read but not believed (each logged once, then only counted): an
Xid/SXid line that user space wrote into the log (facility other than the kernel's, see
:mod:`~gpu_health.exporter.kmsg.parser`), which is not counted at all; and a record whose time
lies outside this boot (before it, or more than :data:`CLOCK_SLACK` s ahead of now), which is
counted without that time — ``gpu_last_xid_timestamp_seconds`` only ever moves forward, so one
record dated in the year 5000 would otherwise stick until the exporter restarts.
"""

from __future__ import annotations

import contextlib
import errno
import io
import logging
import os
import select
import shutil
import stat
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import cast

from gpu_health import die_with_parent
from gpu_health.exporter.kmsg.counts import KernelLogCounts
from gpu_health.exporter.kmsg.parser import (
    MAX_RECORD,
    Record,
    parse_journal_line,
    parse_kmsg_record,
    parse_nvidia,
)

log = logging.getLogger(__name__)

KMSG = "/dev/kmsg"
#: The kernel log's character device (major, minor), the same in a container it is mounted into.
KMSG_DEVICE = (1, 11)

JOURNALCTL = ("journalctl", "-k", "-b", "-o", "json", "--no-pager")
#: one /dev/kmsg read returns one record; the kernel refuses buffers smaller than the record
_READ_SIZE = 2 * MAX_RECORD
_POLL_SECONDS = 0.5
#: Seconds a record's time may lie ahead of the clock (printk's clock drifts a little from
#: CLOCK_MONOTONIC) or before the boot time derived from it.
CLOCK_SLACK = 60.0


def other_device(path: str) -> str | None:
    """Why ``path`` is a character device other than the kernel log, or None. ``/dev/zero``
    given by mistake was read for ever at a third of a core; a regular file (a saved log, the
    tests') or a FIFO is read as the log it holds."""
    try:
        info = os.stat(path)
    except OSError:
        return None  # the open that follows says why
    if not stat.S_ISCHR(info.st_mode):
        return None
    device = (os.major(info.st_rdev), os.minor(info.st_rdev))
    if device == KMSG_DEVICE:
        return None
    return f"character device {device[0]}:{device[1]}, not the kernel log (1:11)"


class LineSplitter:
    """Bytes in, complete lines out; a line longer than MAX_RECORD is cut, never buffered whole."""

    def __init__(self) -> None:
        self._tail = b""
        self._overlong = False

    def feed(self, chunk: bytes) -> Iterator[bytes]:
        data = self._tail + chunk
        lines = data.split(b"\n")
        self._tail = lines.pop()
        for line in lines:
            if self._overlong:
                self._overlong = False  # the rest of a line already emitted in part
                continue
            yield line
        if len(self._tail) > MAX_RECORD:
            yield self._tail[:MAX_RECORD]
            self._tail = b""
            self._overlong = True


class KernelLogReader:
    """Feeds :class:`KernelLogCounts` from the kernel log; ``source`` says from where."""

    def __init__(
        self,
        counts: KernelLogCounts,
        kmsg_path: str = KMSG,
        journal_command: Sequence[str] | None = JOURNALCTL,
        clock: Callable[[], float] = time.time,
        host_gpus: bool = True,
    ) -> None:
        self.counts = counts
        self.kmsg_path = kmsg_path
        self.journal_command = tuple(journal_command) if journal_command else None
        self._clock = clock
        self._stop = threading.Event()
        self._caught_up = threading.Event()
        self._thread: threading.Thread | None = None
        self._process: subprocess.Popen[bytes] | None = None
        #: "kmsg", "journal" or None (not readable); set by start()
        self.source: str | None = None
        #: records lost because the ring buffer overwrote them before they were read
        self.overwritten = 0
        #: Xid/SXid lines ignored because user space, not the kernel, wrote them
        self.not_from_kernel = 0
        #: Xid/SXid records counted without their time, which lay outside this boot
        self.bad_times = 0
        #: which GPUs the counts are for: the host's (NVML's fallback applies) or simulated ones
        self.host_gpus = host_gpus
        # kmsg timestamps are microseconds since boot; this turns them into Unix time
        self._boot = clock() - time.clock_gettime(time.CLOCK_MONOTONIC)

    # -- choosing the source -----------------------------------------------------------------

    def start(self, wait: float = 10.0) -> str | None:
        """Pick the source, start the thread, wait up to ``wait`` s for the backlog; the source."""
        kmsg_error, first_seq = self._probe_kmsg()
        kmsg_complete = kmsg_error is None and first_seq == 0  # the ring still holds boot
        journal_ok = not kmsg_complete and self._probe_journal()
        if kmsg_complete or (kmsg_error is None and not journal_ok):
            if first_seq not in (0, None):
                log.warning(
                    "kernel log: %s has wrapped (first record %d) and the journal has no kernel "
                    "messages: XIDs logged before it are not counted",
                    self.kmsg_path,
                    first_seq,
                )
            self.source, target = "kmsg", self._follow_kmsg
        elif journal_ok:
            self.source, target = "journal", self._follow_journal
        elif self.host_gpus:
            log.warning(
                "kernel log not readable (%s: %s%s): XIDs are counted from NVML events only and "
                "NVSwitch SXids not at all; mount /dev/kmsg read-only and, where "
                "kernel.dmesg_restrict=1, grant CAP_SYSLOG",
                self.kmsg_path,
                kmsg_error,
                "; journal: no kernel messages" if self.journal_command else "",
            )
            return None
        else:  # simulated or replayed GPUs: neither NVML nor the host's /dev/kmsg is theirs
            log.warning(
                "kernel log not readable (%s: %s): XIDs come from the backend alone",
                self.kmsg_path,
                kmsg_error,
            )
            return None
        self._thread = threading.Thread(target=self._run, args=(target,), name="kernel-log")
        self._thread.daemon = True
        self._thread.start()
        if not self._caught_up.wait(wait):
            log.warning("kernel log: backlog not read within %.0f s; serving anyway", wait)
        return self.source

    def _probe_kmsg(self) -> tuple[str | None, int | None]:
        """(error, sequence number of the oldest record still in the ring)."""
        not_kmsg = other_device(self.kmsg_path)
        if not_kmsg is not None:
            return not_kmsg, None
        try:
            fd = os.open(self.kmsg_path, os.O_RDONLY | os.O_NONBLOCK)
        except OSError as exc:
            return exc.strerror or str(exc), None
        try:
            for _ in range(64):  # a record overwritten while we look: try the next one
                try:
                    raw = os.read(fd, _READ_SIZE)
                except BlockingIOError:
                    return None, None  # empty ring
                except BrokenPipeError:
                    continue
                except OSError as exc:
                    return exc.strerror or str(exc), None
                for line in raw.split(b"\n"):
                    record = parse_kmsg_record(line)
                    if record is not None:
                        return None, record.seq
                return None, None
            return None, None
        finally:
            os.close(fd)

    def _probe_journal(self) -> bool:
        if not self.journal_command or shutil.which(self.journal_command[0]) is None:
            return False
        try:
            done = subprocess.run(
                [*self.journal_command, "-n", "1"],
                capture_output=True,
                timeout=10,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            return False
        return done.returncode == 0 and parse_journal_line(done.stdout.strip()) is not None

    # -- the thread --------------------------------------------------------------------------

    def _run(self, target: Callable[[], None]) -> None:
        try:
            target()
        except Exception:  # the reader must never take the exporter down
            log.exception("kernel log reader stopped")
        finally:
            self._caught_up.set()

    def _handle(self, record: Record | None) -> None:
        if record is None:
            return
        event = parse_nvidia(record.text)
        if event is None:
            return
        if not record.from_kernel:
            self.not_from_kernel += 1
            if self.not_from_kernel == 1:
                log.warning(
                    "kernel log: ignored an NVIDIA Xid/SXid line with syslog facility %s: user "
                    "space wrote it, the driver logs with facility 0 (kern); further ones are "
                    "ignored without a log line",
                    "unknown" if record.facility is None else record.facility,
                )
            return
        self.counts.add(event, self._when(record))

    def _when(self, record: Record) -> float | None:
        """The record's Unix time if it lies within this boot, else the time it was read (a
        record arriving live) or None (one from the backlog: its real time is unknown, and "now"
        would make an old XID look recent to the health model)."""
        if record.realtime_usec is not None:
            when = record.realtime_usec / 1e6
        elif record.monotonic_usec is not None:
            when = self._boot + record.monotonic_usec / 1e6
        else:
            return None
        now = self._clock()
        if self._boot - CLOCK_SLACK <= when <= now + CLOCK_SLACK:
            return when
        self.bad_times += 1
        if self.bad_times == 1:
            log.warning(
                "kernel log: an Xid/SXid record dated %.0f s from now, outside this boot, is "
                "counted without its time; further ones without a log line",
                when - now,
            )
        return now if self._caught_up.is_set() else None

    def _follow_kmsg(self) -> None:
        fd = os.open(self.kmsg_path, os.O_RDONLY | os.O_NONBLOCK)
        splitter = LineSplitter()
        try:
            while not self._stop.is_set():
                try:
                    chunk = os.read(fd, _READ_SIZE)
                except BlockingIOError:
                    chunk = b""
                except BrokenPipeError:
                    self.overwritten += 1  # the ring overwrote records we had not read yet
                    continue
                except InterruptedError:
                    continue
                except OSError as exc:
                    # EINVAL: a record larger than our buffer, which the kernel never hands
                    # out in part — retrying would spin, so stop following (counts so far stay).
                    too_big = f"a record larger than {_READ_SIZE} bytes"
                    reason = too_big if exc.errno == errno.EINVAL else exc
                    log.warning("kernel log: stopped reading %s: %s", self.kmsg_path, reason)
                    self._caught_up.set()
                    return
                if not chunk:  # end of the backlog (EAGAIN on kmsg, EOF on a plain file)
                    self._caught_up.set()
                    with contextlib.suppress(OSError, ValueError):
                        select.select([fd], [], [], _POLL_SECONDS)
                    if not os.path.exists(self.kmsg_path):
                        break
                    if not _is_char_device(fd):
                        self._stop.wait(_POLL_SECONDS)  # a plain file never becomes readable
                    continue
                for line in splitter.feed(chunk):
                    if line[:1].isdigit():  # " KEY=value" continuation lines are skipped
                        self._handle(parse_kmsg_record(line))
        finally:
            os.close(fd)

    def _follow_journal(self) -> None:
        assert self.journal_command is not None
        cursor = self._journal_pass([*self.journal_command], follow=False)
        self._caught_up.set()
        follow = [*self.journal_command, "--follow"]
        follow += [f"--after-cursor={cursor}"] if cursor else ["--lines=0"]
        while not self._stop.is_set():
            cursor = self._journal_pass(follow, follow=True) or cursor
            if cursor:
                follow = [*self.journal_command, "--follow", f"--after-cursor={cursor}"]
            self._stop.wait(5.0)  # journalctl exited (journald restarted?): resume after it

    def _journal_pass(self, command: list[str], follow: bool) -> str | None:
        """Run journalctl once, count what it prints; the last cursor seen."""
        cursor = None
        # journalctl --follow would outlive a SIGKILLed exporter until the next kernel message.
        process = die_with_parent.spawn(
            command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL
        )
        self._process = process
        # a BufferedReader: read1 returns what is there (up to n) without waiting for n
        stdout = cast(io.BufferedReader, process.stdout)
        splitter = LineSplitter()
        try:
            while not self._stop.is_set():
                chunk = stdout.read1(_READ_SIZE)
                if not chunk:
                    break
                for line in splitter.feed(chunk):
                    record = parse_journal_line(line)
                    if record is not None and record.cursor:
                        cursor = record.cursor
                    self._handle(record)
        finally:
            if follow or process.poll() is None:
                process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=5)
            self._process = None
        return cursor

    def close(self) -> None:
        self._stop.set()
        process = self._process
        if process is not None and process.poll() is None:
            process.terminate()
        if self._thread is not None:
            self._thread.join(timeout=2.0)


def _is_char_device(fd: int) -> bool:
    try:
        return stat.S_ISCHR(os.fstat(fd).st_mode)
    except OSError:
        return False
