"""The NVML backend's background poller: the expensive calls, off the scrape path.

Energy (4 ms), PCIe throughput (21 ms per direction), violation time (~0.9 ms per policy), the
PCIe replay counter, NVLink error counters and GPM profiling metrics are read every
``poll_interval`` seconds into per-GPU caches; a scrape serves the cache and says how old it is.
A mixin of :class:`~gpu_health.exporter.backends.nvml.NvmlBackend`, split out to keep one
concern per file; it uses the backend's NVML handle, error accounting and device table.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from gpu_health.exporter.backend import BackendStats
from gpu_health.exporter.backends.nvml_device import (
    GPM_METRICS,
    GPM_RATIOS,
    KIB,
    MIB,
    Cache,
    Device,
)
from gpu_health.telemetry.readings import VIOLATION_POLICIES, GpuLostError

log = logging.getLogger("gpu_health.exporter.backends.nvml")


def gpm_metrics(
    nvml: Any, codes: Any, first: Any, second: Any, metric_ids: list[int]
) -> list[tuple[int, float]]:
    """GPM metrics over the window between two samples: (NVML return, value) per id, in order.

    One request holds at most as many metrics as the binding's structure has room for; a
    request that fails as a whole raises the binding's ``NVMLError``.
    """
    request = nvml.c_nvmlGpmMetricsGet_t()
    request.version = codes.NVML_GPM_METRICS_GET_VERSION
    request.numMetrics = len(metric_ids)
    request.sample1 = first
    request.sample2 = second
    for i, metric_id in enumerate(metric_ids):
        request.metrics[i].metricId = metric_id
    nvml.nvmlGpmMetricsGet(request)
    return [
        (int(request.metrics[i].nvmlReturn), float(request.metrics[i].value))
        for i in range(len(metric_ids))
    ]


class NvmlPoller:
    """Refreshes the cached poll groups of every GPU (mixin; state lives on the backend)."""

    nvml: Any
    poll_interval: float
    _codes: Any
    _devices: dict[str, Device]
    _stats: BackendStats
    _stats_lock: threading.Lock
    _stop: threading.Event
    _clock: Callable[[], float]
    _lost: set[Any]
    _unsupported_codes: set[Any]

    def _read(self, dev: Device, key: str, fn: str, *args: Any) -> Any:
        raise NotImplementedError

    def _count_error(self, call: str, exc: Exception) -> None:
        raise NotImplementedError

    def _poll_device(self, dev: Device) -> None:
        n = self._codes
        r = self._read
        if dev.lost:
            return
        energy = r(dev, "energy", "nvmlDeviceGetTotalEnergyConsumption")
        self._store(dev, "energy", {} if energy is None else {"energy_joules": energy / 1000.0})
        gpm = self._poll_gpm(dev) if dev.gpm else None
        if gpm is not None:
            self._store(dev, "gpm", {k: v / 100 for k, v in gpm.items() if k in GPM_RATIOS})
        if dev.gpm:
            # GPM's PCIe rates (MiB/s over the poll window) cost nothing extra; the legacy
            # call blocks 21 ms per direction. Until a second GPM sample exists: nothing.
            throughput = {
                k: gpm[f"pcie_{k}"] * MIB for k in ("tx", "rx") if gpm and f"pcie_{k}" in gpm
            }
        else:
            tx = r(dev, "pcie_tx", "nvmlDeviceGetPcieThroughput", n.NVML_PCIE_UTIL_TX_BYTES)
            rx = r(dev, "pcie_rx", "nvmlDeviceGetPcieThroughput", n.NVML_PCIE_UTIL_RX_BYTES)
            throughput = {k: v * KIB for k, v in (("tx", tx), ("rx", rx)) if v is not None}
        self._store(dev, "pcie_throughput", throughput)
        violations: dict[str, float] = {}
        for policy in VIOLATION_POLICIES:
            const = getattr(n, f"NVML_PERF_POLICY_{policy.upper()}", None)
            if const is None:
                continue
            status = r(dev, f"violation:{policy}", "nvmlDeviceGetViolationStatus", const)
            if status is not None:
                violations[policy] = float(status.violationTime) / 1e9
        self._store(dev, "violation", violations)
        replays = r(dev, "pcie_replay", "nvmlDeviceGetPcieReplayCounter")
        self._store(dev, "pcie_replay", {} if replays is None else {"replays": int(replays)})
        if dev.nvlinks:
            errors: dict[tuple[int, str], int] = {}
            kinds = (
                ("crc_flit", "NVML_NVLINK_ERROR_DL_CRC_FLIT"),
                ("crc_data", "NVML_NVLINK_ERROR_DL_CRC_DATA"),
                ("replay", "NVML_NVLINK_ERROR_DL_REPLAY"),
                ("recovery", "NVML_NVLINK_ERROR_DL_RECOVERY"),
            )
            for link in dev.nvlinks:
                for kind, const in kinds:
                    value = r(
                        dev,
                        f"nvlink:{link}:{kind}",
                        "nvmlDeviceGetNvLinkErrorCounter",
                        link,
                        getattr(n, const),
                    )
                    if value is not None:
                        errors[(link, kind)] = int(value)
            # A counter that could not be read this time keeps its last count: a gap in one
            # link would make the per-GPU total (gpu_nvlink_errors_all_links_total) fall, and
            # Prometheus would read the fall as a reset and the whole remaining count as new.
            previous = dev.caches.get("nvlink")
            if previous is not None:
                for key, count in previous.values.items():
                    errors.setdefault(key, count)
            self._store(dev, "nvlink", errors)

    def _poll_gpm(self, dev: Device) -> dict[str, float] | None:
        """GPM metrics over the window since the previous poll (None on the first poll)."""
        n, nvml = self._codes, self.nvml
        try:
            sample = nvml.nvmlGpmSampleAlloc()
            nvml.nvmlGpmSampleGet(dev.handle, sample)
        except n.NVMLError as exc:
            self._gpm_failed(dev, "nvmlGpmSampleGet", exc)
            return None
        previous, dev.gpm_sample = dev.gpm_sample, sample
        if previous is None:
            return None
        try:
            answers = gpm_metrics(
                nvml, n, previous, sample, [getattr(n, const) for _, const in GPM_METRICS]
            )
        except n.NVMLError as exc:
            self._gpm_failed(dev, "nvmlGpmMetricsGet", exc)
            return None
        finally:
            with contextlib.suppress(Exception):
                nvml.nvmlGpmSampleFree(previous)
        return {
            name: value
            for (name, _), (ret, value) in zip(GPM_METRICS, answers, strict=True)
            if ret == 0
        }

    def _gpm_failed(self, dev: Device, call: str, exc: Exception) -> None:
        code = getattr(exc, "value", None)
        if code in self._unsupported_codes:
            dev.gpm = False  # fall back to the legacy PCIe call; no profiling series
        else:
            self._count_error(call, exc)
        if code in self._lost:
            raise GpuLostError(f"GPU {dev.identity.index} ({dev.identity.uuid}): {exc}") from None

    def _store(self, dev: Device, group: str, values: dict[Any, Any]) -> None:
        if values:
            dev.caches[group] = Cache(self._clock(), values)
        else:
            dev.caches.pop(group, None)  # nothing supported: no series and no cache age

    def _poll_once(self) -> None:
        started = time.perf_counter()
        for dev in list(self._devices.values()):
            try:
                self._poll_device(dev)
            except GpuLostError as exc:
                dev.lost = True
                log.warning("%s", exc)
            except Exception:  # the poller must survive anything a driver throws at it
                log.exception("polling GPU %s failed", dev.identity.index)
        with self._stats_lock:
            self._stats.poll_duration_seconds = time.perf_counter() - started
            self._stats.polls_total += 1

    def _poll_loop(self) -> None:
        while not self._stop.wait(self.poll_interval):
            self._poll_once()
