"""The NVML backend's event thread: XIDs as NVML reports them, counted per GPU and code.

NVML delivers an XID only while this thread waits on the event set, so these counts run from
the exporter's start; the kernel-log source (``gpu_health.exporter.kmsg``) counts the same XIDs
since boot and the collector keeps the larger of the two. A mixin of
:class:`~gpu_health.exporter.backends.nvml.NvmlBackend`.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from gpu_health.exporter.backends.nvml_device import Device
from gpu_health.exporter.backends.nvml_values import handle_key
from gpu_health.exporter.kmsg.counts import MAX_UNCATALOGUED_XIDS, is_uncatalogued
from gpu_health.telemetry.xids import bounded_code

log = logging.getLogger("gpu_health.exporter.backends.nvml")

#: How long one wait on the event set blocks, so that close() is noticed promptly.
EVENT_WAIT_MS = 500


def count_xid(dev: Device, xid: int) -> None:
    """Count one XID event on ``dev`` under its code (a code outside 1-999 as ``other``).

    Counted exactly, at most one entry per code; what is served is folded later
    (:func:`~gpu_health.exporter.kmsg.counts.fold_counts`: every catalogued code its own series,
    the first :data:`~gpu_health.exporter.kmsg.counts.MAX_UNCATALOGUED_XIDS` other codes, then
    ``other``). Before any bound, a driver or a corrupted event stream reporting hundreds of
    distinct codes made as many series per GPU for the exporter's life. The first code beyond
    the served ones is logged, once per GPU.
    """
    counts = dev.xid_counts
    code = bounded_code(xid)
    first_beyond = (
        code not in counts
        and is_uncatalogued(code)
        and sum(1 for c in counts if is_uncatalogued(c)) == MAX_UNCATALOGUED_XIDS
    )
    if first_beyond:
        log.warning(
            'GPU %s: XID %d is served as xid="other", as is any later code outside NVIDIA\'s '
            "catalogue beyond the first %d such codes (or outside 1-999) that no health policy "
            "scores; logged once per GPU",
            dev.identity.index,
            xid,
            MAX_UNCATALOGUED_XIDS,
        )
    counts[code] = counts.get(code, 0) + 1


#: Event lines of one kind (XIDs; ECC events) logged per GPU in :data:`EVENT_LOG_WINDOW_S`
#: before the rest of that window's are left to the counters: a GPU in an ECC storm raises
#: hundreds of events a second, and a driver in trouble can repeat an XID as fast; one line each
#: filled the log (and the node's disk under journald) with what ``/metrics`` already counts.
#: Each kind has its own budget, so an ECC storm does not silence the XID 79 that follows it.
EVENT_LOG_LINES = 10
EVENT_LOG_WINDOW_S = 60.0


class EventLogLimit:
    """Whether one GPU's next event of one kind gets its own log line (:data:`EVENT_LOG_LINES`
    per :data:`EVENT_LOG_WINDOW_S`), and the one line that says the rest of the window is not
    logged. Timed on the monotonic clock: on the wall clock, a step back of an hour silenced
    every event line for the hour."""

    def __init__(self, kind: str, clock: Callable[[], float] = time.monotonic) -> None:
        self._kind = kind
        self._clock = clock
        #: per GPU index: (window start, lines logged in it)
        self._windows: dict[int, tuple[float, int]] = {}

    def allow(self, gpu: int) -> bool:
        now = self._clock()
        start, lines = self._windows.get(gpu, (now, 0))
        if now - start >= EVENT_LOG_WINDOW_S:
            start, lines = now, 0
        self._windows[gpu] = (start, lines + 1)
        if lines < EVENT_LOG_LINES:
            return True
        if lines == EVENT_LOG_LINES:
            log.warning(
                "GPU %s: more than %d %s events within %.0f s; the rest of them are counted in "
                "/metrics but not logged until %.0f s after the first",
                gpu,
                EVENT_LOG_LINES,
                self._kind,
                EVENT_LOG_WINDOW_S,
                EVENT_LOG_WINDOW_S,
            )
        return False


class NvmlXidEvents:
    """Counts XID events into each :class:`Device` (mixin; state lives on the backend)."""

    nvml: Any
    _codes: Any
    _devices: dict[str, Device]
    _stop: threading.Event
    _clock: Callable[[], float]
    _watch_events: bool

    def _count_error(self, call: str, exc: Exception) -> None:
        raise NotImplementedError

    def _event_loop(self) -> None:
        n = self._codes
        try:
            event_set = self.nvml.nvmlEventSetCreate()
        except (n.NVMLError, AttributeError) as exc:
            log.warning("NVML events unavailable, XIDs will not be counted: %s", exc)
            self._watch_events = False
            return
        wanted = n.nvmlEventTypeXidCriticalError
        wanted_ecc = n.nvmlEventTypeSingleBitEccError | n.nvmlEventTypeDoubleBitEccError
        by_handle: dict[Any, Device] = {}
        for dev in self._devices.values():
            for types in (wanted | wanted_ecc, wanted):
                try:
                    self.nvml.nvmlDeviceRegisterEvents(dev.handle, types, event_set)
                    by_handle[handle_key(dev.handle)] = dev
                    break
                except n.NVMLError as exc:
                    log.debug("GPU %s: registering events %#x: %s", dev.identity.index, types, exc)
        backoff = 0.1
        xid_lines, ecc_lines = EventLogLimit("XID"), EventLogLimit("ECC")
        while not self._stop.is_set():
            try:
                data = self.nvml.nvmlEventSetWait_v2(event_set, EVENT_WAIT_MS)
            except n.NVMLError as exc:
                if getattr(exc, "value", None) == n.NVML_ERROR_TIMEOUT:
                    backoff = 0.1
                    continue
                self._count_error("nvmlEventSetWait_v2", exc)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            source = by_handle.get(handle_key(data.device))
            if source is None:
                continue
            if data.eventType & wanted:
                xid = int(data.eventData)
                count_xid(source, xid)
                source.last_xid = self._clock()
                if xid_lines.allow(source.identity.index):
                    log.warning("GPU %s: XID %d", source.identity.index, xid)
            elif data.eventType & wanted_ecc and ecc_lines.allow(source.identity.index):
                log.info("GPU %s: ECC event %#x", source.identity.index, data.eventType)
        with contextlib.suppress(Exception):
            self.nvml.nvmlEventSetFree(event_set)
