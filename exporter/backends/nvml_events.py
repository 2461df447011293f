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
from collections.abc import Callable
from typing import Any

from gpu_health.exporter.backends.nvml_device import Device
from gpu_health.exporter.backends.nvml_values import handle_key

log = logging.getLogger("gpu_health.exporter.backends.nvml")

#: How long one wait on the event set blocks, so that close() is noticed promptly.
EVENT_WAIT_MS = 500


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
                source.xid_counts[xid] = source.xid_counts.get(xid, 0) + 1
                source.last_xid = self._clock()
                log.warning("GPU %s: XID %d", source.identity.index, xid)
            elif data.eventType & wanted_ecc:
                log.info("GPU %s: ECC event %#x", source.identity.index, data.eventType)
        with contextlib.suppress(Exception):
            self.nvml.nvmlEventSetFree(event_set)
