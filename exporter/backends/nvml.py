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
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gpu_health.exporter.backend import BackendStats
from gpu_health.telemetry.readings import (
    VIOLATION_POLICIES,
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
#: NVML reports PCIe throughput in KB/s (1024 bytes, as its other byte counters).
_KIB = 1024.0
_MIB = 1024.0 * 1024.0
#: GPM metrics read by the poller: (our name, pynvml constant). Values are 0-100 % or MiB/s.
_GPM_METRICS = (
    ("graphics_engine_active", "NVML_GPM_METRIC_GRAPHICS_UTIL"),
    ("sm_active", "NVML_GPM_METRIC_SM_UTIL"),
    ("sm_occupancy", "NVML_GPM_METRIC_SM_OCCUPANCY"),
    ("tensor_active", "NVML_GPM_METRIC_ANY_TENSOR_UTIL"),
    ("dram_active", "NVML_GPM_METRIC_DRAM_BW_UTIL"),
    ("pcie_tx", "NVML_GPM_METRIC_PCIE_TX_PER_SEC"),
    ("pcie_rx", "NVML_GPM_METRIC_PCIE_RX_PER_SEC"),
)
_GPM_RATIOS = {name for name, _ in _GPM_METRICS if not name.startswith("pcie_")}
_EVENT_WAIT_MS = 500


def _load_pynvml() -> Any:
    try:
        import pynvml
    except ImportError as exc:  # pragma: no cover - base dependency
        raise BackendUnavailableError(
            f"nvidia-ml-py is not installed ({exc}); pip install nvidia-ml-py"
        ) from None
    return pynvml


@dataclass
class _Cache:
    """Values of one poll group for one GPU, with the time they were read."""

    read_at: float
    values: dict[Any, Any]


@dataclass
class _Device:
    identity: GpuIdentity
    handle: Any
    unsupported: set[str] = field(default_factory=set)
    caches: dict[str, _Cache] = field(default_factory=dict)
    xid_counts: dict[int, int] = field(default_factory=dict)
    last_xid: float | None = None
    nvlinks: tuple[int, ...] = ()
    lost: bool = False
    #: GPM (Hopper+) supported: profiling ratios and cheap PCIe throughput come from it
    gpm: bool = False
    gpm_sample: Any = None


class NvmlBackend:
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
        self._devices: dict[str, _Device] = {}
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
        error = _error_name(self._codes, exc)
        with self._stats_lock:
            key = (call, error)
            self._stats.call_errors[key] = self._stats.call_errors.get(key, 0) + 1

    def _read(self, dev: _Device, key: str, fn: str, *args: Any) -> Any:
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
            driver = str(self.nvml.nvmlSystemGetDriverVersion())
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
        devices: dict[str, _Device] = {}
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

    def _identify(self, index: int, handle: Any, driver: str | None, cuda: str | None) -> _Device:
        n = self._codes
        uuid = str(self.nvml.nvmlDeviceGetUUID(handle))
        probe = _Device(GpuIdentity(index=index, uuid=uuid, model=""), handle)

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
            model=str(read("name", "nvmlDeviceGetName") or "unknown"),
            pci_bus_id=_text(getattr(pci, "busId", None)) or "",
            node=self.node,
            serial=_text(read("serial", "nvmlDeviceGetSerial")),
            vbios_version=_text(read("vbios", "nvmlDeviceGetVbiosVersion")),
            driver_version=driver,
            cuda_driver_version=cuda,
            memory_total_bytes=int(memory.total) if memory is not None else None,
            slowdown_temp_celsius=scaled(thresholds["slowdown"], 1),
            shutdown_temp_celsius=scaled(thresholds["shutdown"], 1),
            memory_max_temp_celsius=scaled(thresholds["memory_max"], 1),
            gpu_max_operating_temp_celsius=scaled(thresholds["gpu_max"], 1),
            power_limit_default_watts=_div(
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

    def _reacquire(self, dev: _Device) -> None:
        try:
            dev.handle = self.nvml.nvmlDeviceGetHandleByUUID(dev.identity.uuid)
        except self._codes.NVMLError as exc:
            self._count_error("nvmlDeviceGetHandleByUUID", exc)
            raise GpuLostError(f"GPU {dev.identity.index} ({dev.identity.uuid}): {exc}") from None

    def _sample_cheap(self, dev: _Device) -> GpuSample:
        n = self._codes
        r = self._read
        s = GpuSample(timestamp=self._clock())
        s.temperature_gpu_celsius = _float(r(dev, "temp", "nvmlDeviceGetTemperature", 0))
        s.temperature_memory_celsius = self._memory_temperature(dev)
        s.fan_speed_ratio = _div(r(dev, "fan", "nvmlDeviceGetFanSpeed"), 100)
        s.power_watts = _div(r(dev, "power", "nvmlDeviceGetPowerUsage"), 1000)
        s.power_limit_watts = _div(r(dev, "power_limit", "nvmlDeviceGetEnforcedPowerLimit"), 1000)
        s.sm_clock_hertz = _scale(
            r(dev, "clock:sm", "nvmlDeviceGetClockInfo", n.NVML_CLOCK_SM), 1e6
        )
        s.memory_clock_hertz = _scale(
            r(dev, "clock:mem", "nvmlDeviceGetClockInfo", n.NVML_CLOCK_MEM), 1e6
        )
        s.performance_state = _int(r(dev, "pstate", "nvmlDeviceGetPerformanceState"))
        s.clock_event_reasons = _int(r(dev, "clock_events", self._reasons_call))
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
        s.ecc_corrected_volatile = _int(r(dev, "ecc:c:v", ecc, corrected, volatile))
        s.ecc_uncorrected_volatile = _int(r(dev, "ecc:u:v", ecc, uncorrected, volatile))
        s.ecc_corrected_aggregate = _int(r(dev, "ecc:c:a", ecc, corrected, aggregate))
        s.ecc_uncorrected_aggregate = _int(r(dev, "ecc:u:a", ecc, uncorrected, aggregate))
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
        s.pcie_link_generation = _int(r(dev, "pcie_gen", "nvmlDeviceGetCurrPcieLinkGeneration"))
        s.pcie_link_width = _int(r(dev, "pcie_width", "nvmlDeviceGetCurrPcieLinkWidth"))
        return s

    def _memory_temperature(self, dev: _Device) -> float | None:
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
        return _field_value(self._codes, value)

    def _merge_cache(self, dev: _Device, s: GpuSample) -> None:
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

    # -- the background poller ---------------------------------------------------------------

    def _poll_device(self, dev: _Device) -> None:
        n = self._codes
        r = self._read
        if dev.lost:
            return
        energy = r(dev, "energy", "nvmlDeviceGetTotalEnergyConsumption")
        self._store(dev, "energy", {} if energy is None else {"energy_joules": energy / 1000.0})
        gpm = self._poll_gpm(dev) if dev.gpm else None
        if gpm is not None:
            self._store(dev, "gpm", {k: v / 100 for k, v in gpm.items() if k in _GPM_RATIOS})
        if dev.gpm:
            # GPM's PCIe rates (MiB/s over the poll window) cost nothing extra; the legacy
            # call blocks 21 ms per direction. Until a second GPM sample exists: nothing.
            throughput = {
                k: gpm[f"pcie_{k}"] * _MIB for k in ("tx", "rx") if gpm and f"pcie_{k}" in gpm
            }
        else:
            tx = r(dev, "pcie_tx", "nvmlDeviceGetPcieThroughput", n.NVML_PCIE_UTIL_TX_BYTES)
            rx = r(dev, "pcie_rx", "nvmlDeviceGetPcieThroughput", n.NVML_PCIE_UTIL_RX_BYTES)
            throughput = {k: v * _KIB for k, v in (("tx", tx), ("rx", rx)) if v is not None}
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
            self._store(dev, "nvlink", errors)

    def _poll_gpm(self, dev: _Device) -> dict[str, float] | None:
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
            request = nvml.c_nvmlGpmMetricsGet_t()
            request.version = n.NVML_GPM_METRICS_GET_VERSION
            request.numMetrics = len(_GPM_METRICS)
            request.sample1 = previous
            request.sample2 = sample
            for i, (_, const) in enumerate(_GPM_METRICS):
                request.metrics[i].metricId = getattr(n, const)
            nvml.nvmlGpmMetricsGet(request)
        except n.NVMLError as exc:
            self._gpm_failed(dev, "nvmlGpmMetricsGet", exc)
            return None
        finally:
            with contextlib.suppress(Exception):
                nvml.nvmlGpmSampleFree(previous)
        return {
            name: float(request.metrics[i].value)
            for i, (name, _) in enumerate(_GPM_METRICS)
            if int(request.metrics[i].nvmlReturn) == 0
        }

    def _gpm_failed(self, dev: _Device, call: str, exc: Exception) -> None:
        code = getattr(exc, "value", None)
        if code in self._unsupported_codes:
            dev.gpm = False  # fall back to the legacy PCIe call; no profiling series
        else:
            self._count_error(call, exc)
        if code in self._lost:
            raise GpuLostError(f"GPU {dev.identity.index} ({dev.identity.uuid}): {exc}") from None

    def _store(self, dev: _Device, group: str, values: dict[Any, Any]) -> None:
        if values:
            dev.caches[group] = _Cache(self._clock(), values)
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

    def _start_threads(self) -> None:
        poller = threading.Thread(target=self._poll_loop, name="nvml-poller", daemon=True)
        self._threads.append(poller)
        poller.start()
        if self._watch_events:
            events = threading.Thread(target=self._event_loop, name="nvml-events", daemon=True)
            self._threads.append(events)
            events.start()

    # -- events (XID) ------------------------------------------------------------------------

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
        by_handle: dict[Any, _Device] = {}
        for dev in self._devices.values():
            for types in (wanted | wanted_ecc, wanted):
                try:
                    self.nvml.nvmlDeviceRegisterEvents(dev.handle, types, event_set)
                    by_handle[_handle_key(dev.handle)] = dev
                    break
                except n.NVMLError as exc:
                    log.debug("GPU %s: registering events %#x: %s", dev.identity.index, types, exc)
        backoff = 0.1
        while not self._stop.is_set():
            try:
                data = self.nvml.nvmlEventSetWait_v2(event_set, _EVENT_WAIT_MS)
            except n.NVMLError as exc:
                if getattr(exc, "value", None) == n.NVML_ERROR_TIMEOUT:
                    backoff = 0.1
                    continue
                self._count_error("nvmlEventSetWait_v2", exc)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            source = by_handle.get(_handle_key(data.device))
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


def _handle_key(handle: Any) -> Any:
    """Real handles are ctypes pointers (compare by address); fakes are hashable values."""
    try:
        return ctypes.cast(handle, ctypes.c_void_p).value
    except (TypeError, ctypes.ArgumentError):
        return handle


def _error_name(codes: Any, exc: Exception) -> str:
    value = getattr(exc, "value", None)
    for name in dir(codes):
        if name.startswith("NVML_ERROR_") and getattr(codes, name) == value:
            return name.removeprefix("NVML_ERROR_").lower()
    return "unknown" if value is None else str(value)


def _field_value(codes: Any, value: Any) -> float | None:
    kind = int(value.valueType)
    attr = {
        codes.NVML_VALUE_TYPE_DOUBLE: "dVal",
        codes.NVML_VALUE_TYPE_UNSIGNED_INT: "uiVal",
        codes.NVML_VALUE_TYPE_UNSIGNED_LONG: "ulVal",
        codes.NVML_VALUE_TYPE_UNSIGNED_LONG_LONG: "ullVal",
        codes.NVML_VALUE_TYPE_SIGNED_LONG_LONG: "sllVal",
        codes.NVML_VALUE_TYPE_SIGNED_INT: "siVal",
    }.get(kind)
    if attr is None:
        return None
    raw = getattr(value.value, attr, None)
    return None if raw is None else float(raw)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def _scale(value: Any, factor: float) -> float | None:
    return None if value is None else float(value) * factor


def _div(value: Any, divisor: float) -> float | None:
    """Unit conversion by division: 73361 mW / 1000 is exactly 73.361, unlike * 1e-3."""
    return None if value is None else float(value) / divisor
