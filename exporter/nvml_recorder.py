"""Record a real GPU's NVML answers as a fixture that :class:`FakeNvml` can replay.

Why it exists: every test of the NVML backend runs against the fake binding, so the fake is only
as true as the readings it is fed. The H100 readings it shipped with were taken by hand; this is
the command that takes the same readings from any board, in the same format, so that a new board
(an H200, a Blackwell) becomes a fixture in one step and the fake can be checked against the
driver it stands in for (``bench/nvml_fake_vs_real.py``).

Usage, on a machine with an NVIDIA driver::

    python -m gpu_health.exporter.nvml_recorder --out nvml_h200.json

The fixture's keys are the ones :class:`~gpu_health.exporter.fake_nvml.FakeNvml` reads:
``calls`` (the value of each reading, None where the board refused it), ``errors`` (NVML's
message for each refusal, under the fake's error key), ``timing_us`` (mean cost of each call),
``gpm`` (every GPM metric over a one-second window; None on a board without GPM).
The UUID and serial number are replaced by placeholders: they identify a machine and nothing in
the fake depends on their value.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from gpu_health.exporter.backends.nvml_poll import gpm_metrics
from gpu_health.exporter.backends.nvml_values import raw_field_value

#: Placeholders written instead of the board's identity (the fake derives more GPUs from them).
PLACEHOLDER_UUID = "GPU-00000000-0000-4000-8000-000000000001"
PLACEHOLDER_SERIAL = "1650000000001"

#: Getters of one device handle, recorded under their own name (as in ``nvml_h100.json``).
SIMPLE_GETTERS = (
    "nvmlDeviceGetName",
    "nvmlDeviceGetUUID",
    "nvmlDeviceGetSerial",
    "nvmlDeviceGetPciInfo",
    "nvmlDeviceGetMinorNumber",
    "nvmlDeviceGetVbiosVersion",
    "nvmlDeviceGetBoardPartNumber",
    "nvmlDeviceGetInforomImageVersion",
    "nvmlDeviceGetArchitecture",
    "nvmlDeviceGetCudaComputeCapability",
    "nvmlDeviceGetMemoryInfo",
    "nvmlDeviceGetUtilizationRates",
    "nvmlDeviceGetPowerUsage",
    "nvmlDeviceGetTotalEnergyConsumption",
    "nvmlDeviceGetEnforcedPowerLimit",
    "nvmlDeviceGetPowerManagementLimit",
    "nvmlDeviceGetPowerManagementDefaultLimit",
    "nvmlDeviceGetPowerManagementLimitConstraints",
    "nvmlDeviceGetPerformanceState",
    "nvmlDeviceGetFanSpeed",
    "nvmlDeviceGetCurrentClocksEventReasons",
    "nvmlDeviceGetCurrentClocksThrottleReasons",
    "nvmlDeviceGetSupportedClocksEventReasons",
    "nvmlDeviceGetRetiredPagesPendingStatus",
    "nvmlDeviceGetRemappedRows",
    "nvmlDeviceGetPcieReplayCounter",
    "nvmlDeviceGetCurrPcieLinkGeneration",
    "nvmlDeviceGetCurrPcieLinkWidth",
    "nvmlDeviceGetMaxPcieLinkGeneration",
    "nvmlDeviceGetMaxPcieLinkWidth",
    "nvmlDeviceGetPersistenceMode",
    "nvmlDeviceGetEccMode",
    "nvmlDeviceGetComputeMode",
    "nvmlDeviceGetMigMode",
    "nvmlDeviceGetComputeRunningProcesses",
    "nvmlDeviceGetBAR1MemoryInfo",
    "nvmlDeviceGetEncoderUtilization",
    "nvmlDeviceGetDecoderUtilization",
    "nvmlDeviceGetRowRemapperHistogram",
    "nvmlDeviceGetGpuOperationMode",
    "nvmlDeviceGetDisplayMode",
    "nvmlDeviceGetBoardId",
    "nvmlDeviceGetNumGpuCores",
    "nvmlDeviceGetMemoryBusWidth",
    "nvmlDeviceGetPowerSource",
    "nvmlDeviceGetCurrentClockFreqs",
)
CLOCKS = (
    ("graphics", "NVML_CLOCK_GRAPHICS"),
    ("sm", "NVML_CLOCK_SM"),
    ("mem", "NVML_CLOCK_MEM"),
    ("video", "NVML_CLOCK_VIDEO"),
)
MEMORY_LOCATIONS = (
    ("dram", "NVML_MEMORY_LOCATION_DRAM"),
    ("device_memory", "NVML_MEMORY_LOCATION_DEVICE_MEMORY"),
    ("l1", "NVML_MEMORY_LOCATION_L1_CACHE"),
    ("l2", "NVML_MEMORY_LOCATION_L2_CACHE"),
    ("sram", "NVML_MEMORY_LOCATION_SRAM"),
    ("rf", "NVML_MEMORY_LOCATION_REGISTER_FILE"),
)
#: NVLink error counters the backend polls, by the id the fake's key uses.
NVLINK_COUNTERS = (
    "NVML_NVLINK_ERROR_DL_REPLAY",
    "NVML_NVLINK_ERROR_DL_RECOVERY",
    "NVML_NVLINK_ERROR_DL_CRC_FLIT",
    "NVML_NVLINK_ERROR_DL_CRC_DATA",
)
#: How long each call is repeated to time it (at least once, at most this many seconds).
TIMING_BUDGET_S = 0.05
TIMING_MAX_CALLS = 20
#: Field ids asked per nvmlDeviceGetFieldValues call while sweeping every id the binding knows.
FIELD_BATCH = 64


def plain(value: Any) -> Any:
    """An NVML answer as JSON: structures become objects, byte strings text."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    fields = getattr(value, "_fields_", None)
    if fields:
        return {str(f[0]): plain(getattr(value, f[0])) for f in fields}
    if isinstance(value, SimpleNamespace):  # the fake binding's structures
        return {key: plain(item) for key, item in vars(value).items()}
    return str(value)


class Recorder:
    """Calls one binding for one device handle and keeps values, errors and costs."""

    def __init__(self, nvml: Any, codes: Any, handle: Any) -> None:
        self.nvml = nvml
        self.codes = codes
        self.handle = handle
        self.calls: dict[str, Any] = {}
        self.errors: dict[str, str] = {}
        self.timing_us: dict[str, float] = {}

    def timed(self, fn: Callable[[], Any], timing_key: str) -> Any:
        """The first answer of ``fn``, after timing it (errors propagate, untimed)."""
        value = fn()
        started = time.perf_counter()
        calls = 0
        while calls < TIMING_MAX_CALLS and time.perf_counter() - started < TIMING_BUDGET_S:
            fn()
            calls += 1
        self.timing_us[timing_key] = round((time.perf_counter() - started) / calls * 1e6, 1)
        return value

    def read(
        self,
        key: str,
        call: str,
        *args: Any,
        error_key: str | None = None,
        timing_key: str | None = None,
    ) -> Any:
        """Record ``call(handle, *args)`` under ``key``; a refusal is None plus its message."""
        fn = getattr(self.nvml, call, None)
        if fn is None:
            self.calls[key] = None
            self.errors[error_key or key] = "Function Not Found"
            return None
        try:
            value = plain(self.timed(lambda: fn(self.handle, *args), timing_key or key))
        except self.codes.NVMLError as exc:
            self.calls[key] = None
            self.errors[error_key or key] = str(exc)
            return None
        self.calls[key] = value
        return value


def _field_values(nvml: Any, codes: Any, handle: Any) -> dict[str, dict[str, Any]]:
    """Every ``NVML_FI_*`` id the binding knows, in the fake's format."""
    # Several names can share one id (the binding keeps the "throttle" spellings as aliases of
    # the "clocks event" ones): each answer is recorded under every name of its id.
    names: dict[int, list[str]] = {}
    for name in dir(codes):
        field_id = getattr(codes, name)
        if name.startswith("NVML_FI_") and name != "NVML_FI_MAX" and isinstance(field_id, int):
            names.setdefault(field_id, []).append(name)
    ids = sorted(names)
    out: dict[str, dict[str, Any]] = {}
    for start in range(0, len(ids), FIELD_BATCH):
        batch = ids[start : start + FIELD_BATCH]
        try:
            answers = nvml.nvmlDeviceGetFieldValues(handle, batch)
        except codes.NVMLError as exc:
            for field_id in batch:
                for name in names[field_id]:
                    out[name] = {"ret": int(getattr(exc, "value", 999))}
            continue
        for field_id, answer in zip(batch, answers, strict=True):
            ret = int(answer.nvmlReturn)
            if ret != 0:
                out.update((name, {"ret": ret}) for name in names[field_id])
                continue
            kind = int(answer.valueType)
            raw = raw_field_value(codes, answer)
            out.update((name, {"valueType": kind, "value": plain(raw)}) for name in names[field_id])
    return dict(sorted(out.items()))


def _gpm(nvml: Any, codes: Any, handle: Any, window_s: float) -> dict[str, dict[str, Any]] | None:
    """Every GPM metric over one window, in ``gpm_probe_h100.json``'s ``gpm`` format."""
    try:
        if not nvml.nvmlGpmQueryDeviceSupport(handle).isSupportedDevice:
            return None
        first, second = nvml.nvmlGpmSampleAlloc(), nvml.nvmlGpmSampleAlloc()
        nvml.nvmlGpmSampleGet(handle, first)
        time.sleep(window_s)
        nvml.nvmlGpmSampleGet(handle, second)
    except (codes.NVMLError, AttributeError):
        return None
    metrics = sorted(
        (getattr(codes, name), name.removeprefix("NVML_GPM_METRIC_"))
        for name in dir(codes)
        if name.startswith("NVML_GPM_METRIC_")
        and name != "NVML_GPM_METRIC_MAX"
        and isinstance(getattr(codes, name), int)
    )
    out: dict[str, dict[str, Any]] = {}
    try:
        for start in range(0, len(metrics), 32):
            batch = metrics[start : start + 32]
            try:
                answers = gpm_metrics(nvml, codes, first, second, [m for m, _ in batch])
            except codes.NVMLError as exc:
                for _, name in batch:
                    out[name] = {"ret": int(getattr(exc, "value", 999))}
                continue
            for (_, name), (ret, value) in zip(batch, answers, strict=True):
                out[name] = {"ret": ret, "value": round(value, 3)} if ret == 0 else {"ret": ret}
    finally:
        for sample in (first, second):
            with contextlib.suppress(codes.NVMLError):
                nvml.nvmlGpmSampleFree(sample)
    return out


def _event_wait(nvml: Any, codes: Any, handle: Any) -> tuple[int | None, str]:
    """Supported event types, and what one 100 ms wait for an XID answers (normally Timeout)."""
    try:
        supported = int(nvml.nvmlDeviceGetSupportedEventTypes(handle))
    except (codes.NVMLError, AttributeError):
        supported = None
    try:
        event_set = nvml.nvmlEventSetCreate()
        nvml.nvmlDeviceRegisterEvents(handle, codes.nvmlEventTypeXidCriticalError, event_set)
    except (codes.NVMLError, AttributeError) as exc:
        return supported, f"register: {exc}"
    try:
        nvml.nvmlEventSetWait_v2(event_set, 100)
        answer = "an event"
    except codes.NVMLError as exc:
        answer = str(exc)
    finally:
        with contextlib.suppress(codes.NVMLError):
            nvml.nvmlEventSetFree(event_set)
    return supported, answer


def record(
    nvml: Any, codes: Any = None, index: int = 0, gpm_window_s: float = 1.0
) -> dict[str, Any]:
    """The fixture of GPU ``index``.

    ``nvml`` answers the calls; ``codes`` (default: ``nvml``) holds the binding's constants and
    error class, as for :class:`NvmlBackend`, so a fake binding can be recorded too.
    """
    codes = nvml if codes is None else codes
    started = time.perf_counter()
    nvml.nvmlInit()
    init_ms = (time.perf_counter() - started) * 1e3
    try:
        handle = nvml.nvmlDeviceGetHandleByIndex(index)
        rec = Recorder(nvml, codes, handle)
        for call in SIMPLE_GETTERS:
            rec.read(call, call)
        if hasattr(codes, "nvmlMemory_v2"):
            rec.read("nvmlDeviceGetMemoryInfo_v2", "nvmlDeviceGetMemoryInfo", codes.nvmlMemory_v2)
        rec.read(
            "temp_gpu",
            "nvmlDeviceGetTemperature",
            codes.NVML_TEMPERATURE_GPU,
            timing_key="nvmlDeviceGetTemperature",
        )
        for name in sorted(dir(codes)):
            if name.startswith("NVML_TEMPERATURE_THRESHOLD_") and not name.endswith("COUNT"):
                rec.read(
                    name,
                    "nvmlDeviceGetTemperatureThreshold",
                    getattr(codes, name),
                    error_key=f"threshold:{name}",
                    timing_key=f"threshold:{name}",
                )
        for short, const in CLOCKS:
            rec.read(
                f"clock_{short}",
                "nvmlDeviceGetClockInfo",
                getattr(codes, const),
                timing_key=f"clock:{short}",
            )
            rec.read(
                f"maxclock_{short}",
                "nvmlDeviceGetMaxClockInfo",
                getattr(codes, const),
                timing_key=f"maxclock:{short}",
            )
        _record_ecc(codes, rec)
        for short, const in (
            ("sbe", "NVML_PAGE_RETIREMENT_CAUSE_MULTIPLE_SINGLE_BIT_ECC_ERRORS"),
            ("dbe", "NVML_PAGE_RETIREMENT_CAUSE_DOUBLE_BIT_ECC_ERROR"),
        ):
            rec.read(
                f"retired_pages_{short}",
                "nvmlDeviceGetRetiredPages",
                getattr(codes, const),
                error_key=f"retired:{short}",
                timing_key=f"retired:{short}",
            )
        for short, const in (("tx", "NVML_PCIE_UTIL_TX_BYTES"), ("rx", "NVML_PCIE_UTIL_RX_BYTES")):
            rec.read(
                f"pcie_throughput_{short}",
                "nvmlDeviceGetPcieThroughput",
                getattr(codes, const),
                timing_key=f"pcie_throughput:{short}",
            )
        for name in sorted(dir(codes)):
            if name.startswith("NVML_PERF_POLICY_") and not name.endswith("COUNT"):
                rec.read(
                    f"violation_{name}",
                    "nvmlDeviceGetViolationStatus",
                    getattr(codes, name),
                    timing_key=f"violation:{name}",
                )
        _record_nvlink(nvml, codes, rec)
        fields_started = time.perf_counter()
        rec.calls["field_values"] = _field_values(nvml, codes, handle)
        field_seconds = time.perf_counter() - fields_started
        supported, event_wait = _event_wait(nvml, codes, handle)
        gpm = _gpm(nvml, codes, handle, gpm_window_s)
        fixture: dict[str, Any] = {
            "calls": rec.calls,
            "timing_us": rec.timing_us,
            "errors": rec.errors,
            "init_ms": round(init_ms, 3),
            "driver": plain(nvml.nvmlSystemGetDriverVersion()),
            "nvml_version": plain(getattr(nvml, "nvmlSystemGetNVMLVersion", str)()),
            "cuda_driver": int(nvml.nvmlSystemGetCudaDriverVersion()),
            "count": int(nvml.nvmlDeviceGetCount()),
            "field_id_count": len(rec.calls["field_values"]),
            "field_sweep_ms": round(field_seconds * 1e3, 1),
            "supported_event_types": supported,
            "event_wait": event_wait,
            "gpm": gpm,
        }
    finally:
        nvml.nvmlShutdown()
    calls = fixture["calls"]
    if calls.get("nvmlDeviceGetUUID") is not None:
        calls["nvmlDeviceGetUUID"] = PLACEHOLDER_UUID
    if calls.get("nvmlDeviceGetSerial") is not None:
        calls["nvmlDeviceGetSerial"] = PLACEHOLDER_SERIAL
    return fixture


def _record_ecc(codes: Any, rec: Recorder) -> None:
    """Total ECC counts, and per memory location where the board reports them."""
    for kind, error_type in (
        ("corrected", codes.NVML_MEMORY_ERROR_TYPE_CORRECTED),
        ("uncorrected", codes.NVML_MEMORY_ERROR_TYPE_UNCORRECTED),
    ):
        for scope, counter in (
            ("volatile", codes.NVML_VOLATILE_ECC),
            ("aggregate", codes.NVML_AGGREGATE_ECC),
        ):
            rec.read(
                f"ecc_{kind}_{scope}",
                "nvmlDeviceGetTotalEccErrors",
                error_type,
                counter,
                timing_key=f"ecc:{kind}:{scope}",
            )
            for location, const in MEMORY_LOCATIONS:
                key = f"ecccounter:{kind}:{scope}:{location}"
                rec.read(
                    f"ecc_{kind}_{scope}_{location}",
                    "nvmlDeviceGetMemoryErrorCounter",
                    error_type,
                    counter,
                    getattr(codes, const),
                    error_key=key,
                    timing_key=key,
                )


def _record_nvlink(nvml: Any, codes: Any, rec: Recorder) -> None:
    """Each link's state (``"state:<error>"`` where refused) and active links' error counters."""
    links: dict[str, Any] = {}
    for link in range(int(getattr(codes, "NVML_NVLINK_MAX_LINKS", 18))):
        try:
            links[str(link)] = int(nvml.nvmlDeviceGetNvLinkState(rec.handle, link))
        except codes.NVMLError as exc:
            links[str(link)] = f"state:{exc}"
            continue
        if links[str(link)]:
            for name in NVLINK_COUNTERS:
                counter = int(getattr(codes, name))
                rec.read(
                    f"nvlink_errors_{link}_{counter}",
                    "nvmlDeviceGetNvLinkErrorCounter",
                    link,
                    counter,
                    timing_key="nvmlDeviceGetNvLinkErrorCounter",
                )
    rec.calls["nvlink"] = links


def write_json(path: Path, data: Any) -> None:
    """Write whole or not at all: a temporary file beside the target, then a rename."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(data, indent=1, sort_keys=False) + "\n")
    partial.replace(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m gpu_health.exporter.nvml_recorder",
        description="Record one GPU's NVML answers as a fixture the fake NVML binding replays "
        "(the format of exporter/data/nvml_h100.json). Needs an NVIDIA driver.",
    )
    parser.add_argument("--out", type=Path, required=True, help="fixture file to write (JSON)")
    parser.add_argument("--index", type=int, default=0, help="NVML index of the GPU (default 0)")
    args = parser.parse_args(argv)
    try:
        import pynvml
    except ImportError as exc:
        print(f"error: nvidia-ml-py is not installed ({exc})", file=sys.stderr)
        return 1
    try:
        fixture = record(pynvml, index=args.index)
    except pynvml.NVMLError as exc:
        print(
            f"error: NVML: {exc} (is the NVIDIA driver loaded? nvidia-smi should work)",
            file=sys.stderr,
        )
        return 1
    try:
        write_json(args.out, fixture)
    except OSError as exc:
        print(f"error: {args.out}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    supported = sum(v is not None for k, v in fixture["calls"].items() if k != "field_values")
    print(
        f"{args.out}: {fixture['calls'].get('nvmlDeviceGetName')}, driver {fixture['driver']}: "
        f"{supported} readings, {len(fixture['errors'])} refused, "
        f"{sum('value' in v for v in fixture['calls']['field_values'].values())} of "
        f"{fixture['field_id_count']} field ids answered"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
