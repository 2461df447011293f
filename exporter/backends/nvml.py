"""The NVML backend: nvidia-ml-py on a real driver (or :class:`FakeNvml` for replay and tests).

Design follows the costs measured on an H100 (``tests/fixtures/h100/README.md``):

- identity, limits and NVLink presence are read once at inventory;
- getters of 1–30 µs are read at scrape time (a scrape of one GPU makes ~20 of them);
- energy (4 ms), PCIe throughput (21 ms per direction), violation time (~0.9 ms per policy),
  the PCIe replay counter (0.2 ms) and NVLink error counters are refreshed by a background
  poller at ``poll_interval``; a scrape serves them from the cache and says how old they are
  (``GpuSample.cache_age_seconds``), so no scrape ever waits on an expensive call;
- a call a board answers NOT_SUPPORTED is remembered per GPU and never made again, so the
  series is absent rather than 0 (fan on SXM, NVLink on PCIe boards, retired pages on H100);
- an event thread waits on NVML events and counts XIDs per code with the time of the last one;
- GPU_IS_LOST / UNKNOWN raise :class:`GpuLostError` for that GPU only; the next scrape retries
  (re-acquiring the handle by UUID), so a GPU that comes back is served again.

One concern per file: the poller is :mod:`.nvml_poll`, the XID event thread :mod:`.nvml_events`,
the per-GPU state :mod:`.nvml_device`, unit and name conversions :mod:`.nvml_values`.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from gpu_health.exporter.backend import BackendStats
from gpu_health.exporter.backends.nvml_device import Device
from gpu_health.exporter.backends.nvml_events import NvmlXidEvents
from gpu_health.exporter.backends.nvml_poll import NvmlPoller
from gpu_health.exporter.backends.nvml_values import (
    as_float,
    as_int,
    div,
    error_name,
    field_value,
    scale,
)
from gpu_health.exporter.label_values import from_driver
from gpu_health.telemetry.readings import (
    BackendUnavailableError,
    GpuIdentity,
    GpuLostError,
    GpuSample,
)

log = logging.getLogger(__name__)

#: NVML return codes that mean "this GPU is gone", not "this reading failed".
_LOST_ERRORS = ("NVML_ERROR_GPU_IS_LOST", "NVML_ERROR_UNKNOWN")
#: Return codes that mean "this board does not have it": remembered and never asked again.
_UNSUPPORTED_ERRORS = ("NVML_ERROR_NOT_SUPPORTED", "NVML_ERROR_FUNCTION_NOT_FOUND")


def _load_pynvml() -> Any:
    try:
        import pynvml
    except ImportError as exc:  # pragma: no cover - base dependency
        raise BackendUnavailableError(
            f"nvidia-ml-py is not installed ({exc}); pip install nvidia-ml-py"
        ) from None
    return pynvml


class NvmlBackend(NvmlPoller, NvmlXidEvents):
    """Backend over an NVML binding (``pynvml`` or anything with its functions)."""

    name = "nvml"

    def __init__(
        self,
        nvml: Any = None,
        node: str = "",
        poll_interval: float = 10.0,
        watch_events: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.nvml = nvml if nvml is not None else _load_pynvml()
        self.node = node
        self.poll_interval = poll_interval
        self._clock = clock
        self._codes = _load_pynvml()
        self._lost = {getattr(self._codes, n) for n in _LOST_ERRORS}
        self._unsupported_codes = {getattr(self._codes, n) for n in _UNSUPPORTED_ERRORS}
        self._devices: dict[str, Device] = {}
        self._stats = BackendStats()
        self._stats_lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        try:
            self.nvml.nvmlInit()
        except self._codes.NVMLError as exc:
            raise BackendUnavailableError(
                f"NVML could not start: {exc} (is the NVIDIA driver loaded? nvidia-smi should work)"
            ) from None
        except OSError as exc:
            raise BackendUnavailableError(f"NVML could not start: {exc}") from None
        self._watch_events = watch_events
        # nvidia-ml-py renamed "throttle" reasons to "clocks event" reasons in 12.535.
        self._reasons_call = (
            "nvmlDeviceGetCurrentClocksEventReasons"
            if hasattr(self.nvml, "nvmlDeviceGetCurrentClocksEventReasons")
            else "nvmlDeviceGetCurrentClocksThrottleReasons"
        )

    # -- error accounting --------------------------------------------------------------------

    def _count_error(self, call: str, exc: Exception) -> None:
        error = error_name(self._codes, exc)
        with self._stats_lock:
            key = (call, error)
            self._stats.call_errors[key] = self._stats.call_errors.get(key, 0) + 1

    def _read(self, dev: Device, key: str, fn: str, *args: Any) -> Any:
        """One NVML call for one GPU: None when unsupported or failed, GpuLostError when lost."""
        if key in dev.unsupported:
            return None
        try:
            return getattr(self.nvml, fn)(dev.handle, *args)
        except AttributeError:
            dev.unsupported.add(key)  # the binding or driver is older than the call
            return None
        except self._codes.NVMLError as exc:
            code = getattr(exc, "value", None)
            if code in self._unsupported_codes:
                dev.unsupported.add(key)
                log.debug("GPU %s: %s not supported, not asking again", dev.identity.index, key)
                return None
            self._count_error(fn, exc)
            if code in self._lost:
                raise GpuLostError(
                    f"GPU {dev.identity.index} ({dev.identity.uuid}): {exc}"
                ) from None
            return None

    # -- inventory ---------------------------------------------------------------------------

    def inventory(self) -> list[GpuIdentity]:
        n = self._codes
        try:
            driver = from_driver(self.nvml.nvmlSystemGetDriverVersion(), "the driver version")
        except n.NVMLError:
            driver = None
        try:
            cuda = int(self.nvml.nvmlSystemGetCudaDriverVersion())
            cuda_text: str | None = f"{cuda // 1000}.{cuda % 1000 // 10}"
        except n.NVMLError:
            cuda_text = None
        try:
            count = int(self.nvml.nvmlDeviceGetCount())
        except n.NVMLError as exc:
            raise BackendUnavailableError(f"NVML could not count GPUs: {exc}") from None
        devices: dict[str, Device] = {}
        for index in range(count):
            try:
                handle = self.nvml.nvmlDeviceGetHandleByIndex(index)
                dev = self._identify(index, handle, driver, cuda_text)
            except (n.NVMLError, GpuLostError) as exc:
                log.warning("GPU %d did not answer at start-up, skipping it: %s", index, exc)
                continue
            devices[dev.identity.uuid] = dev
        self._devices = devices
        self._poll_once()
        if not self._threads:
            self._start_threads()
        return [d.identity for d in devices.values()]

    def _identify(self, index: int, handle: Any, driver: str | None, cuda: str | None) -> Device:
        n = self._codes
        # Every string below becomes a label value: from_driver keeps a broken answer (not UTF-8,
        # huge) from failing every scrape. A real driver answers short ASCII, left as it is.
        uuid = from_driver(self.nvml.nvmlDeviceGetUUID(handle), f"GPU {index} UUID") or ""
        probe = Device(GpuIdentity(index=index, uuid=uuid, model=""), handle)

        def read(key: str, fn: str, *args: Any) -> Any:
            return self._read(probe, key, fn, *args)

        def scaled(value: Any, factor: float) -> float | None:
            return None if value is None else float(value) * factor

        pci = read("pci", "nvmlDeviceGetPciInfo")
        memory = read("memory", "nvmlDeviceGetMemoryInfo")
        thresholds = {
            name: read(f"threshold:{name}", "nvmlDeviceGetTemperatureThreshold", getattr(n, const))
            for name, const in (
                ("slowdown", "NVML_TEMPERATURE_THRESHOLD_SLOWDOWN"),
                ("shutdown", "NVML_TEMPERATURE_THRESHOLD_SHUTDOWN"),
                ("memory_max", "NVML_TEMPERATURE_THRESHOLD_MEM_MAX"),
                ("gpu_max", "NVML_TEMPERATURE_THRESHOLD_GPU_MAX"),
            )
        }
        nvlinks = []
        for link in range(int(getattr(n, "NVML_NVLINK_MAX_LINKS", 18))):
            try:
                state = self.nvml.nvmlDeviceGetNvLinkState(handle, link)
            except (n.NVMLError, AttributeError):
                continue
            if state:
                nvlinks.append(link)
        identity = GpuIdentity(
            index=index,
            uuid=uuid,
            model=from_driver(read("name", "nvmlDeviceGetName"), f"GPU {index} name") or "unknown",
            pci_bus_id=from_driver(getattr(pci, "busId", None), f"GPU {index} PCI bus id") or "",
            node=self.node,
            serial=from_driver(read("serial", "nvmlDeviceGetSerial"), f"GPU {index} serial"),
            vbios_version=from_driver(
                read("vbios", "nvmlDeviceGetVbiosVersion"), f"GPU {index} VBIOS version"
            ),
            driver_version=driver,
            cuda_driver_version=cuda,
            memory_total_bytes=int(memory.total) if memory is not None else None,
            slowdown_temp_celsius=scaled(thresholds["slowdown"], 1),
            shutdown_temp_celsius=scaled(thresholds["shutdown"], 1),
            memory_max_temp_celsius=scaled(thresholds["memory_max"], 1),
            gpu_max_operating_temp_celsius=scaled(thresholds["gpu_max"], 1),
            power_limit_default_watts=div(
                read("power_default", "nvmlDeviceGetPowerManagementDefaultLimit"), 1000
            ),
            max_sm_clock_hertz=scaled(
                read("maxclock:sm", "nvmlDeviceGetMaxClockInfo", n.NVML_CLOCK_SM), 1e6
            ),
            max_memory_clock_hertz=scaled(
                read("maxclock:mem", "nvmlDeviceGetMaxClockInfo", n.NVML_CLOCK_MEM), 1e6
            ),
            pcie_max_generation=read("pcie_max_gen", "nvmlDeviceGetMaxPcieLinkGeneration"),
            pcie_max_width=read("pcie_max_width", "nvmlDeviceGetMaxPcieLinkWidth"),
            nvlink_count=len(nvlinks),
        )
        probe.identity = identity
        probe.nvlinks = tuple(nvlinks)
        try:
            probe.gpm = bool(self.nvml.nvmlGpmQueryDeviceSupport(handle).isSupportedDevice)
        except (n.NVMLError, AttributeError):
            probe.gpm = False
        probe.unsupported.clear()  # identity probes do not decide what the sample path asks
        return probe

    # -- the scrape path ---------------------------------------------------------------------

    def sample(self, gpu: GpuIdentity) -> GpuSample:
        dev = self._devices.get(gpu.uuid)
        if dev is None:
            raise GpuLostError(f"GPU {gpu.index} ({gpu.uuid}) is not in the inventory")
        try:
            if dev.lost:
                self._reacquire(dev)
            sample = self._sample_cheap(dev)
        except GpuLostError as exc:
            dev.lost = True
            events = GpuSample(timestamp=self._clock(), up=False)
            events.xid_counts = dict(dev.xid_counts)
            events.last_xid_timestamp = dev.last_xid
            events.xids_watched = self._watch_events
            raise GpuLostError(str(exc), events) from None
        dev.lost = False
        self._merge_cache(dev, sample)
        sample.xid_counts = dict(dev.xid_counts)
        sample.last_xid_timestamp = dev.last_xid
        sample.xids_watched = self._watch_events
        return sample

    def _reacquire(self, dev: Device) -> None:
        try:
            dev.handle = self.nvml.nvmlDeviceGetHandleByUUID(dev.identity.uuid)
        except self._codes.NVMLError as exc:
            self._count_error("nvmlDeviceGetHandleByUUID", exc)
            raise GpuLostError(f"GPU {dev.identity.index} ({dev.identity.uuid}): {exc}") from None

    def _sample_cheap(self, dev: Device) -> GpuSample:
        n = self._codes
        r = self._read
        s = GpuSample(timestamp=self._clock())
        s.temperature_gpu_celsius = as_float(r(dev, "temp", "nvmlDeviceGetTemperature", 0))
        s.temperature_memory_celsius = self._memory_temperature(dev)
        s.fan_speed_ratio = div(r(dev, "fan", "nvmlDeviceGetFanSpeed"), 100)
        s.power_watts = div(r(dev, "power", "nvmlDeviceGetPowerUsage"), 1000)
        s.power_limit_watts = div(r(dev, "power_limit", "nvmlDeviceGetEnforcedPowerLimit"), 1000)
        s.sm_clock_hertz = scale(r(dev, "clock:sm", "nvmlDeviceGetClockInfo", n.NVML_CLOCK_SM), 1e6)
        s.memory_clock_hertz = scale(
            r(dev, "clock:mem", "nvmlDeviceGetClockInfo", n.NVML_CLOCK_MEM), 1e6
        )
        s.performance_state = as_int(r(dev, "pstate", "nvmlDeviceGetPerformanceState"))
        s.clock_event_reasons = as_int(r(dev, "clock_events", self._reasons_call))
        util = r(dev, "util", "nvmlDeviceGetUtilizationRates")
        if util is not None:
            s.utilization_gpu_ratio = float(util.gpu) / 100
            s.utilization_memory_ratio = float(util.memory) / 100
        enc = r(dev, "enc", "nvmlDeviceGetEncoderUtilization")
        s.utilization_encoder_ratio = None if enc is None else float(enc[0]) / 100
        dec = r(dev, "dec", "nvmlDeviceGetDecoderUtilization")
        s.utilization_decoder_ratio = None if dec is None else float(dec[0]) / 100
        memory = None
        v2 = getattr(n, "nvmlMemory_v2", None)
        if v2 is not None and "memory_v2" not in dev.unsupported:
            # v2 separates driver-reserved memory from "used" (DCGM's FB_RESERVED).
            memory = r(dev, "memory_v2", "nvmlDeviceGetMemoryInfo", v2)
        if memory is None:
            memory = r(dev, "memory", "nvmlDeviceGetMemoryInfo")
        if memory is not None:
            s.memory_used_bytes = int(memory.used)
            s.memory_free_bytes = int(memory.free)
            s.memory_total_bytes = int(memory.total)
            reserved = getattr(memory, "reserved", None)
            s.memory_reserved_bytes = None if reserved is None else int(reserved)
        corrected, uncorrected = (
            n.NVML_MEMORY_ERROR_TYPE_CORRECTED,
            n.NVML_MEMORY_ERROR_TYPE_UNCORRECTED,
        )
        volatile, aggregate = n.NVML_VOLATILE_ECC, n.NVML_AGGREGATE_ECC
        ecc = "nvmlDeviceGetTotalEccErrors"
        s.ecc_corrected_volatile = as_int(r(dev, "ecc:c:v", ecc, corrected, volatile))
        s.ecc_uncorrected_volatile = as_int(r(dev, "ecc:u:v", ecc, uncorrected, volatile))
        s.ecc_corrected_aggregate = as_int(r(dev, "ecc:c:a", ecc, corrected, aggregate))
        s.ecc_uncorrected_aggregate = as_int(r(dev, "ecc:u:a", ecc, uncorrected, aggregate))
        remap = r(dev, "remap", "nvmlDeviceGetRemappedRows")
        if remap is not None:
            corr, unc, pending, failure = remap
            s.remapped_rows_correctable = int(corr)
            s.remapped_rows_uncorrectable = int(unc)
            s.row_remap_pending = bool(pending)
            s.row_remap_failed = bool(failure)
        retired = "nvmlDeviceGetRetiredPages"
        sbe = r(
            dev, "retired:sbe", retired, n.NVML_PAGE_RETIREMENT_CAUSE_MULTIPLE_SINGLE_BIT_ECC_ERRORS
        )
        s.retired_pages_single_bit = None if sbe is None else len(sbe)
        dbe = r(dev, "retired:dbe", retired, n.NVML_PAGE_RETIREMENT_CAUSE_DOUBLE_BIT_ECC_ERROR)
        s.retired_pages_double_bit = None if dbe is None else len(dbe)
        pending_pages = r(dev, "retired:pending", "nvmlDeviceGetRetiredPagesPendingStatus")
        s.retired_pages_pending = None if pending_pages is None else bool(pending_pages)
        s.pcie_link_generation = as_int(r(dev, "pcie_gen", "nvmlDeviceGetCurrPcieLinkGeneration"))
        s.pcie_link_width = as_int(r(dev, "pcie_width", "nvmlDeviceGetCurrPcieLinkWidth"))
        return s

    def _memory_temperature(self, dev: Device) -> float | None:
        """HBM temperature: a one-id field-value call (3 µs on H100, unlike large batches)."""
        fid = int(self._codes.NVML_FI_DEV_MEMORY_TEMP)
        values = self._read(dev, "field:memory_temp", "nvmlDeviceGetFieldValues", [fid])
        if not values:
            return None
        value = values[0]
        if int(value.nvmlReturn) != 0:
            if int(value.nvmlReturn) in self._unsupported_codes:
                dev.unsupported.add("field:memory_temp")
            return None
        return field_value(self._codes, value)

    def _merge_cache(self, dev: Device, s: GpuSample) -> None:
        now = self._clock()
        caches = dict(dev.caches)  # the poller swaps entries; take a consistent view
        for group, cache in caches.items():
            s.cache_age_seconds[group] = max(0.0, now - cache.read_at)
            v = cache.values
            if group == "energy":
                s.energy_joules = v.get("energy_joules")
            elif group == "pcie_throughput":
                s.pcie_tx_bytes_per_second = v.get("tx")
                s.pcie_rx_bytes_per_second = v.get("rx")
            elif group == "violation":
                s.clock_event_seconds = dict(v)
            elif group == "pcie_replay":
                s.pcie_replays = v.get("replays")
            elif group == "nvlink":
                s.nvlink_errors = dict(v)
            elif group == "gpm":
                s.graphics_engine_active_ratio = v.get("graphics_engine_active")
                s.sm_active_ratio = v.get("sm_active")
                s.sm_occupancy_ratio = v.get("sm_occupancy")
                s.tensor_active_ratio = v.get("tensor_active")
                s.dram_active_ratio = v.get("dram_active")

    def _start_threads(self) -> None:
        poller = threading.Thread(target=self._poll_loop, name="nvml-poller", daemon=True)
        self._threads.append(poller)
        poller.start()
        if self._watch_events:
            events = threading.Thread(target=self._event_loop, name="nvml-events", daemon=True)
            self._threads.append(events)
            events.start()

    # -- lifecycle ---------------------------------------------------------------------------

    def stats(self) -> BackendStats:
        with self._stats_lock:
            return BackendStats(
                call_errors=dict(self._stats.call_errors),
                poll_duration_seconds=self._stats.poll_duration_seconds,
                polls_total=self._stats.polls_total,
                unsupported_calls={
                    d.identity.index: len(d.unsupported) for d in self._devices.values()
                },
            )

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=2.0)
        with contextlib.suppress(Exception):
            self.nvml.nvmlShutdown()
