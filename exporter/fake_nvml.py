"""A stand-in for the ``pynvml`` module that answers from recorded readings of a real GPU.

Why it exists: the NVML backend is the code that runs on real hardware, so it is what the replay
backend, the tests and the benchmarks should exercise — without a GPU. :class:`FakeNvml` has the
same function names and return shapes as nvidia-ml-py and raises the binding's own
``pynvml.NVMLError`` subclasses, so the backend cannot tell it from the driver.

It is also the fault injector: failing a chosen call on a chosen GPU is one line::

    fake.fail("nvmlDeviceGetPowerUsage", gpu=1, error="TIMEOUT")   # one call, one GPU
    fake.fail("*", gpu=0, error="GPU_IS_LOST")                     # the whole GPU falls off
    fake.fail("nvmlInit", error="DRIVER_NOT_LOADED")               # start-up failure
    fake.heal()                                                    # everything answers again

The fixture format is ``tests/fixtures/h100/nvml_h100.json``: ``calls`` (values), ``errors``
(error strings of calls that failed), ``timing_us`` (mean cost, replayed when ``cost_scale`` > 0).
"""

from __future__ import annotations

import copy
import functools
import json
import queue
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pynvml

from gpu_health.cli_validate import MAX_EXPORTER_GPUS
from gpu_health.config import read_text_file, show
from gpu_health.errors import UserError
from gpu_health.exporter.label_values import MAX_LABEL_VALUE, label_value_problem

#: A recorded fixture is a few hundred KB; a larger file is not one.
FIXTURE_MAX_BYTES = 16 * 1024 * 1024

#: Short error names accepted by :meth:`FakeNvml.fail`, mapped to NVML return codes.
ERRORS: dict[str, int] = {
    "NOT_SUPPORTED": pynvml.NVML_ERROR_NOT_SUPPORTED,
    "GPU_IS_LOST": pynvml.NVML_ERROR_GPU_IS_LOST,
    "UNKNOWN": pynvml.NVML_ERROR_UNKNOWN,
    "TIMEOUT": pynvml.NVML_ERROR_TIMEOUT,
    "NO_PERMISSION": pynvml.NVML_ERROR_NO_PERMISSION,
    "DRIVER_NOT_LOADED": pynvml.NVML_ERROR_DRIVER_NOT_LOADED,
    "LIBRARY_NOT_FOUND": pynvml.NVML_ERROR_LIBRARY_NOT_FOUND,
    "UNINITIALIZED": pynvml.NVML_ERROR_UNINITIALIZED,
    "INVALID_ARGUMENT": pynvml.NVML_ERROR_INVALID_ARGUMENT,
}

_CLOCKS = {
    pynvml.NVML_CLOCK_GRAPHICS: "graphics",
    pynvml.NVML_CLOCK_SM: "sm",
    pynvml.NVML_CLOCK_MEM: "mem",
    pynvml.NVML_CLOCK_VIDEO: "video",
}
_THRESHOLDS = {
    getattr(pynvml, name): name
    for name in dir(pynvml)
    if name.startswith("NVML_TEMPERATURE_THRESHOLD_") and not name.endswith("COUNT")
}
_POLICIES = {
    getattr(pynvml, name): name
    for name in dir(pynvml)
    if name.startswith("NVML_PERF_POLICY_") and not name.endswith("COUNT")
}
#: GPM metric id -> the name a fixture's ``gpm`` answers are keyed by (``SM_UTIL``...).
_GPM_METRIC_NAMES = {
    getattr(pynvml, name): name.removeprefix("NVML_GPM_METRIC_")
    for name in dir(pynvml)
    if name.startswith("NVML_GPM_METRIC_") and isinstance(getattr(pynvml, name), int)
}
_FIELD_NAMES = {
    getattr(pynvml, name): name
    for name in dir(pynvml)
    if name.startswith("NVML_FI_") and isinstance(getattr(pynvml, name), int)
}


def _error_code(error: int | str) -> int:
    if isinstance(error, int):
        return error
    key = error.upper().removeprefix("NVML_ERROR_")
    if key in ERRORS:
        return ERRORS[key]
    # A recorded error string such as "Not Supported".
    for code, text in pynvml.NVMLError._errcode_to_string.items():
        if text == error:
            return int(code)
    return int(pynvml.NVML_ERROR_UNKNOWN)


@dataclass(frozen=True)
class FakeHandle:
    """A device handle: the GPU's index (real handles are opaque pointers)."""

    index: int


def _json_kind(value: Any) -> str:
    """The JSON type of a fixture value, as a person reading the file would name it."""
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object" if isinstance(value, dict) else "null"


@functools.cache
def _bundled_fixture() -> dict[str, Any]:
    """The bundled H100 fixture: the shape every fixture's answers must have."""
    from gpu_health.exporter.data import NVML_H100, data_path

    loaded: dict[str, Any] = json.loads(data_path(NVML_H100).read_text(encoding="utf-8"))
    return loaded


#: What every fixture must hold: the driver's version strings and the identity the exporter
#: labels each GPU with (and numbers the cloned GPUs of ``--replay.gpus`` from).
_REQUIRED = {"driver": "a string", "cuda_driver": "a number"}
_REQUIRED_CALLS = {
    "nvmlDeviceGetUUID": "a string",
    "nvmlDeviceGetPciInfo": "an object",
}


#: Answers the H100 does not support (``null`` in the bundled fixture) but another board may
#: record, with the JSON type the fake reads them as.
_KINDS_THE_H100_LACKS = {
    "nvmlDeviceGetFanSpeed": "a number",
    "nvmlDeviceGetRetiredPagesPendingStatus": "a number",
    "retired_pages_sbe": "a list",
    "retired_pages_dbe": "a list",
}


def check_fixture_shape(fixture: Mapping[str, Any], reference: Mapping[str, Any]) -> None:
    """Raise ValueError naming the first key whose answer is missing or of another JSON type
    than the ``reference`` fixture's (a recorded board's answers have the bundled one's
    types; ``null`` is an unsupported call and always allowed). Why: a hand-edited or
    truncated fixture otherwise failed at start with a traceback (no driver version), or on
    every scrape, in the collector's thread, which then served the GPU with no readings."""
    calls = fixture["calls"]
    for where, table, required in (("", fixture, _REQUIRED), ("calls.", calls, _REQUIRED_CALLS)):
        for key, kind in required.items():
            if key not in table:
                raise ValueError(f"{where}{key}: missing (expected {kind})")
            if _json_kind(table[key]) != kind:
                raise ValueError(f"{where}{key}: expected {kind}, found {_json_kind(table[key])}")
    for key, found in calls.items():
        want = reference["calls"].get(key)
        if want is None and (
            key.startswith(("ecc_", "NVML_TEMPERATURE_THRESHOLD_")) or key in _KINDS_THE_H100_LACKS
        ):
            kind = _KINDS_THE_H100_LACKS.get(key, "a number")
            if found is not None and _json_kind(found) != kind:
                raise ValueError(f"calls.{key}: expected {kind}, found {_json_kind(found)}")
            continue
        mismatch = _kind_mismatch(found, want)
        if mismatch:
            raise ValueError(f"calls.{key}{mismatch} (as the bundled H100 fixture has)")


#: The fixture's strings the exporter serves as label values (``driver`` at the top level, the
#: rest under ``calls``), with the longest each may be: a cloned GPU of ``--replay.gpus`` appends
#: its number (up to 4 digits) to the serial.
_LABEL_STRINGS: dict[str, int] = {
    "driver": MAX_LABEL_VALUE,
    "calls.nvmlDeviceGetName": MAX_LABEL_VALUE,
    "calls.nvmlDeviceGetUUID": MAX_LABEL_VALUE,
    "calls.nvmlDeviceGetSerial": MAX_LABEL_VALUE - len(str(MAX_EXPORTER_GPUS - 1)),
    "calls.nvmlDeviceGetVbiosVersion": MAX_LABEL_VALUE,
    "calls.nvmlDeviceGetPciInfo.busId": MAX_LABEL_VALUE,
}
#: ``cuda_driver`` as NVML answers it (13000 for CUDA 13.0), served as the label ``13.0``.
MAX_CUDA_DRIVER = 999_999


def check_fixture_labels(fixture: Mapping[str, Any]) -> None:
    """Raise ValueError naming the first label value of the fixture that cannot be served:
    a string of :data:`_LABEL_STRINGS` that is not valid UTF-8 text (JSON spells lone
    surrogates as ``\\udcff`` escapes, which no scrape could encode: every /metrics failed) or
    longer than its bound (a 100,000-character name made an 11 MB /metrics), or a
    ``cuda_driver`` that is not a whole number from 0 to :data:`MAX_CUDA_DRIVER`."""
    for key, limit in _LABEL_STRINGS.items():
        value: Any = fixture
        for part in key.split("."):
            value = value.get(part) if isinstance(value, Mapping) else None
        if isinstance(value, str):
            problem = label_value_problem(value, limit)
            if problem:
                raise ValueError(f"{key}: {problem}; it is served as a label value")
    cuda = fixture["cuda_driver"]
    if isinstance(cuda, bool) or not isinstance(cuda, int) or not 0 <= cuda <= MAX_CUDA_DRIVER:
        raise ValueError(
            f"cuda_driver: expected a whole number from 0 to {MAX_CUDA_DRIVER:,} "
            f"(13000 is CUDA 13.0), found {show(cuda)}"
        )


def _kind_mismatch(value: Any, want: Any) -> str:
    """``""`` where ``value`` has ``want``'s JSON type (one level into an object), else the
    key path and the types, e.g. ``.total: expected a number, found a string``."""
    if value is None or want is None:
        return ""
    if _json_kind(value) != _json_kind(want):
        return f": expected {_json_kind(want)}, found {_json_kind(value)}"
    if isinstance(want, dict):
        for key, inner in want.items():
            if key not in value:
                return f".{key}: missing"
            found = value[key]
            if inner is not None and found is not None and _json_kind(found) != _json_kind(inner):
                return f".{key}: expected {_json_kind(inner)}, found {_json_kind(found)}"
    return ""


class FakeGpmSample:
    """A GPM sample: opaque to its caller, as the driver's pointer is; holds the answers."""

    def __init__(self) -> None:
        self.values: dict[str, Any] | None = None


class FakeEventSet:
    """An event set: an opaque token, as the driver's pointer is."""


class FakeNvml:
    """The subset of ``pynvml`` the NVML backend uses, answering from a fixture."""

    def __init__(
        self,
        fixture: Mapping[str, Any],
        gpus: int = 1,
        cost_scale: float = 0.0,
        gpm: Mapping[str, Any] | None = None,
    ) -> None:
        """``gpm``: GPM metric answers (``gpm_probe_h100.json`` ``gpm``); None = no GPM."""
        self.fixture = fixture
        self.gpm: dict[str, Any] | None = dict(gpm) if gpm is not None else None
        self.cost_scale = cost_scale
        self._timing: dict[str, float] = dict(fixture.get("timing_us", {}))
        self._errors: dict[str, str] = dict(fixture.get("errors", {}))
        self._gpus: list[dict[str, Any]] = [self._clone(i) for i in range(gpus)]
        #: (call or "*", gpu index or None) -> NVML error code
        self._faults: dict[tuple[str, int | None], int] = {}
        self._events: queue.Queue[SimpleNamespace] = queue.Queue()
        self._lock = threading.Lock()
        self.initialized = False
        #: calls made, by name (tests assert on what a scrape costs)
        self.calls: dict[str, int] = {}

    @classmethod
    def from_file(cls, path: Path, gpus: int = 1, cost_scale: float = 0.0) -> FakeNvml:
        """A fixture file (a regular JSON file of at most 16 MiB whose ``calls`` is an object);
        anything else raises ValueError saying what is wrong. A fixture with a ``gpm`` object
        answers GPM as that board did; one without it is a board without GPM."""
        try:
            fixture = json.loads(read_text_file(path, FIXTURE_MAX_BYTES))
        except RecursionError:
            raise ValueError("JSON nested too deeply") from None
        except UserError as exc:
            raise ValueError(str(exc).removeprefix(f"{path}: ")) from None
        if not isinstance(fixture, dict) or not isinstance(fixture.get("calls"), dict):
            raise ValueError('expected a JSON object with a "calls" object')
        gpm = fixture.get("gpm")  # recorded by gpu_health.exporter.nvml_recorder on GPM boards
        if gpm is not None and not isinstance(gpm, dict):
            raise ValueError('"gpm" must be an object of GPM metric answers')
        check_fixture_shape(fixture, _bundled_fixture())
        check_fixture_labels(fixture)
        return cls(fixture, gpus=gpus, cost_scale=cost_scale, gpm=gpm)

    def _clone(self, index: int) -> dict[str, Any]:
        calls: dict[str, Any] = copy.deepcopy(dict(self.fixture["calls"]))
        if index:
            # Distinct identities for GPUs beyond the recorded one; values stay as recorded.
            uuid = str(calls["nvmlDeviceGetUUID"])
            calls["nvmlDeviceGetUUID"] = f"{uuid[:-4]}{index + 1:04x}"
            if calls.get("nvmlDeviceGetSerial") is not None:  # a board may not report one
                calls["nvmlDeviceGetSerial"] = f"{calls['nvmlDeviceGetSerial']}{index}"
            pci = dict(calls["nvmlDeviceGetPciInfo"])
            pci["bus"] = index
            pci["busId"] = f"00000000:{index:02X}:06.0"
            calls["nvmlDeviceGetPciInfo"] = pci
            calls["nvmlDeviceGetMinorNumber"] = index
        return calls

    # -- fault injection and value overrides -------------------------------------------------

    def fail(
        self, call: str = "*", gpu: int | None = None, error: int | str = "GPU_IS_LOST"
    ) -> None:
        """Make ``call`` (``"*"``: every device call) on ``gpu`` (None: every GPU) fail."""
        with self._lock:
            self._faults[(call, gpu)] = _error_code(error)

    def heal(self, call: str | None = None, gpu: int | None = None) -> None:
        """Remove injected faults (all of them, or those matching ``call``/``gpu``)."""
        with self._lock:
            for key in list(self._faults):
                if (call is None or key[0] == call) and (gpu is None or key[1] == gpu):
                    del self._faults[key]

    def set(self, gpu: int, key: str, value: Any) -> None:
        """Override a recorded value (``key`` as in the fixture's ``calls``)."""
        self._gpus[gpu][key] = value

    def set_field(self, gpu: int, name: str, value: float) -> None:
        """Override a field value (``name`` like ``NVML_FI_DEV_MEMORY_TEMP``)."""
        fields = self._gpus[gpu]["field_values"]
        fields[name] = {"valueType": pynvml.NVML_VALUE_TYPE_DOUBLE, "value": value}

    def emit_xid(self, gpu: int, xid: int) -> None:
        """Deliver an XID critical-error event, as the driver does when one is logged."""
        self._events.put(
            SimpleNamespace(
                device=FakeHandle(gpu),
                eventType=pynvml.nvmlEventTypeXidCriticalError,
                eventData=xid,
                gpuInstanceId=0xFFFFFFFF,
                computeInstanceId=0xFFFFFFFF,
            )
        )

    def emit_ecc(self, gpu: int) -> None:
        """Deliver a single-bit (corrected) ECC event, as the driver does for each one."""
        self._events.put(
            SimpleNamespace(
                device=FakeHandle(gpu),
                eventType=pynvml.nvmlEventTypeSingleBitEccError,
                eventData=0,
                gpuInstanceId=0xFFFFFFFF,
                computeInstanceId=0xFFFFFFFF,
            )
        )

    # -- plumbing ----------------------------------------------------------------------------

    def _check(self, call: str, gpu: int | None, timing_key: str | None = None) -> None:
        self.calls[call] = self.calls.get(call, 0) + 1
        if self.cost_scale > 0:
            cost_us = self._timing.get(timing_key or call, 1.0)
            time.sleep(cost_us * self.cost_scale / 1e6)
        if call not in ("nvmlInit", "nvmlInitWithFlags") and not self.initialized:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_UNINITIALIZED)
        faults = self._faults
        for key in ((call, gpu), (call, None), ("*", gpu), ("*", None)):
            if key in faults and (key[0] != "*" or gpu is not None):
                raise pynvml.NVMLError(faults[key])

    def _value(
        self,
        call: str,
        handle: FakeHandle,
        key: str | None = None,
        error_key: str | None = None,
        timing_key: str | None = None,
    ) -> Any:
        gpu = handle.index
        if not 0 <= gpu < len(self._gpus):
            raise pynvml.NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        self._check(call, gpu, timing_key)
        value = self._gpus[gpu].get(key or call)
        if value is None:
            error = self._errors.get(error_key or key or call, "Not Supported")
            raise pynvml.NVMLError(_error_code(error))
        return value

    # -- system ------------------------------------------------------------------------------

    def nvmlInit(self) -> None:
        self._check("nvmlInit", None)
        self.initialized = True

    def nvmlShutdown(self) -> None:
        self.initialized = False

    def nvmlSystemGetDriverVersion(self) -> str:
        self._check("nvmlSystemGetDriverVersion", None)
        return str(self.fixture["driver"])

    def nvmlSystemGetCudaDriverVersion(self) -> int:
        self._check("nvmlSystemGetCudaDriverVersion", None)
        return int(self.fixture["cuda_driver"])

    def nvmlDeviceGetCount(self) -> int:
        self._check("nvmlDeviceGetCount", None)
        return len(self._gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> FakeHandle:
        self._check("nvmlDeviceGetHandleByIndex", index)
        if not 0 <= index < len(self._gpus):
            raise pynvml.NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return FakeHandle(index)

    def nvmlDeviceGetHandleByUUID(self, uuid: str) -> FakeHandle:
        for index, calls in enumerate(self._gpus):
            if calls["nvmlDeviceGetUUID"] == uuid:
                self._check("nvmlDeviceGetHandleByUUID", index)
                return FakeHandle(index)
        raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_FOUND)

    # -- identity ----------------------------------------------------------------------------

    def nvmlDeviceGetName(self, h: FakeHandle) -> str:
        return str(self._value("nvmlDeviceGetName", h))

    def nvmlDeviceGetUUID(self, h: FakeHandle) -> str:
        return str(self._value("nvmlDeviceGetUUID", h))

    def nvmlDeviceGetSerial(self, h: FakeHandle) -> str:
        return str(self._value("nvmlDeviceGetSerial", h))

    def nvmlDeviceGetVbiosVersion(self, h: FakeHandle) -> str:
        return str(self._value("nvmlDeviceGetVbiosVersion", h))

    def nvmlDeviceGetPciInfo(self, h: FakeHandle) -> SimpleNamespace:
        return SimpleNamespace(**self._value("nvmlDeviceGetPciInfo", h))

    def nvmlDeviceGetPowerManagementDefaultLimit(self, h: FakeHandle) -> int:
        return int(self._value("nvmlDeviceGetPowerManagementDefaultLimit", h))

    def nvmlDeviceGetMaxPcieLinkGeneration(self, h: FakeHandle) -> int:
        return int(self._value("nvmlDeviceGetMaxPcieLinkGeneration", h))

    def nvmlDeviceGetMaxPcieLinkWidth(self, h: FakeHandle) -> int:
        return int(self._value("nvmlDeviceGetMaxPcieLinkWidth", h))

    def nvmlDeviceGetTemperatureThreshold(self, h: FakeHandle, threshold: int) -> int:
        name = _THRESHOLDS.get(threshold, f"threshold{threshold}")
        return int(
            self._value(
                "nvmlDeviceGetTemperatureThreshold",
                h,
                name,
                f"threshold:{name}",
                f"threshold:{name}",
            )
        )

    def nvmlDeviceGetMaxClockInfo(self, h: FakeHandle, clock: int) -> int:
        name = _CLOCKS[clock]
        return int(
            self._value(
                "nvmlDeviceGetMaxClockInfo", h, f"maxclock_{name}", None, f"maxclock:{name}"
            )
        )

    def nvmlDeviceGetNvLinkState(self, h: FakeHandle, link: int) -> int:
        links = self._value("nvmlDeviceGetNvLinkState", h, "nvlink")
        state = links.get(str(link))
        if state is None:
            # A link past those recorded (newer bindings ask up to 36): a board that refused
            # every recorded link refuses it alike, as the driver does; else it does not exist.
            answers = {str(v) for v in links.values()}
            if len(answers) == 1 and next(iter(answers)).startswith("state:"):
                state = answers.pop()
            else:
                raise pynvml.NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        if isinstance(state, str) and state.startswith("state:"):
            raise pynvml.NVMLError(_error_code(state.removeprefix("state:")))
        return int(state)

    # -- cheap readings ----------------------------------------------------------------------

    def nvmlDeviceGetTemperature(self, h: FakeHandle, sensor: int) -> int:
        return int(self._value("nvmlDeviceGetTemperature", h, "temp_gpu"))

    def nvmlDeviceGetFanSpeed(self, h: FakeHandle) -> int:
        return int(self._value("nvmlDeviceGetFanSpeed", h))

    def nvmlDeviceGetPowerUsage(self, h: FakeHandle) -> int:
        return int(self._value("nvmlDeviceGetPowerUsage", h))

    def nvmlDeviceGetEnforcedPowerLimit(self, h: FakeHandle) -> int:
        return int(self._value("nvmlDeviceGetEnforcedPowerLimit", h))

    def nvmlDeviceGetClockInfo(self, h: FakeHandle, clock: int) -> int:
        name = _CLOCKS[clock]
        return int(self._value("nvmlDeviceGetClockInfo", h, f"clock_{name}", None, f"clock:{name}"))

    def nvmlDeviceGetPerformanceState(self, h: FakeHandle) -> int:
        return int(self._value("nvmlDeviceGetPerformanceState", h))

    def nvmlDeviceGetCurrentClocksEventReasons(self, h: FakeHandle) -> int:
        return int(self._value("nvmlDeviceGetCurrentClocksEventReasons", h))

    def nvmlDeviceGetUtilizationRates(self, h: FakeHandle) -> SimpleNamespace:
        return SimpleNamespace(**self._value("nvmlDeviceGetUtilizationRates", h))

    def nvmlDeviceGetEncoderUtilization(self, h: FakeHandle) -> list[int]:
        return list(self._value("nvmlDeviceGetEncoderUtilization", h))

    def nvmlDeviceGetDecoderUtilization(self, h: FakeHandle) -> list[int]:
        return list(self._value("nvmlDeviceGetDecoderUtilization", h))

    def nvmlDeviceGetMemoryInfo(self, h: FakeHandle, version: Any = None) -> SimpleNamespace:
        if version is None:
            return SimpleNamespace(**self._value("nvmlDeviceGetMemoryInfo", h))
        # v2 (with "reserved") only where the fixture recorded it; else as an old driver would
        return SimpleNamespace(
            **self._value("nvmlDeviceGetMemoryInfo", h, "nvmlDeviceGetMemoryInfo_v2")
        )

    def nvmlDeviceGetTotalEccErrors(self, h: FakeHandle, error_type: int, counter: int) -> int:
        kind = (
            "corrected" if error_type == pynvml.NVML_MEMORY_ERROR_TYPE_CORRECTED else "uncorrected"
        )
        scope = "volatile" if counter == pynvml.NVML_VOLATILE_ECC else "aggregate"
        key = f"ecc_{kind}_{scope}"
        return int(self._value("nvmlDeviceGetTotalEccErrors", h, key, None, f"ecc:{kind}:{scope}"))

    def nvmlDeviceGetRemappedRows(self, h: FakeHandle) -> tuple[int, int, int, int]:
        corr, unc, pending, failure = self._value("nvmlDeviceGetRemappedRows", h)
        return int(corr), int(unc), int(pending), int(failure)

    def nvmlDeviceGetRetiredPages(self, h: FakeHandle, cause: int) -> list[int]:
        short = (
            "sbe"
            if cause == pynvml.NVML_PAGE_RETIREMENT_CAUSE_MULTIPLE_SINGLE_BIT_ECC_ERRORS
            else "dbe"
        )
        return list(
            self._value(
                "nvmlDeviceGetRetiredPages", h, f"retired_pages_{short}", f"retired:{short}"
            )
        )

    def nvmlDeviceGetRetiredPagesPendingStatus(self, h: FakeHandle) -> int:
        return int(self._value("nvmlDeviceGetRetiredPagesPendingStatus", h))

    def nvmlDeviceGetCurrPcieLinkGeneration(self, h: FakeHandle) -> int:
        return int(self._value("nvmlDeviceGetCurrPcieLinkGeneration", h))

    def nvmlDeviceGetCurrPcieLinkWidth(self, h: FakeHandle) -> int:
        return int(self._value("nvmlDeviceGetCurrPcieLinkWidth", h))

    def nvmlDeviceGetFieldValues(
        self, h: FakeHandle, field_ids: list[int]
    ) -> list[SimpleNamespace]:
        fields = self._value(
            "nvmlDeviceGetFieldValues", h, "field_values", None, "fieldvalues_batch_63"
        )
        out = []
        for field_id in field_ids:
            record = fields.get(
                _FIELD_NAMES.get(field_id, ""), {"ret": pynvml.NVML_ERROR_NOT_SUPPORTED}
            )
            value = record.get("value")
            raw = SimpleNamespace(
                dVal=value, uiVal=value, ulVal=value, ullVal=value, sllVal=value, siVal=value
            )
            out.append(
                SimpleNamespace(
                    fieldId=field_id,
                    scopeId=0,
                    timestamp=int(time.time() * 1e6),  # the driver's: microseconds since 1970
                    latencyUsec=0,
                    nvmlReturn=int(record.get("ret", pynvml.NVML_SUCCESS)),
                    valueType=int(record.get("valueType", pynvml.NVML_VALUE_TYPE_DOUBLE)),
                    value=raw,
                )
            )
        return out

    # -- expensive readings (the backend polls these in the background) ----------------------

    def nvmlDeviceGetTotalEnergyConsumption(self, h: FakeHandle) -> int:
        return int(self._value("nvmlDeviceGetTotalEnergyConsumption", h))

    def nvmlDeviceGetPcieThroughput(self, h: FakeHandle, counter: int) -> int:
        direction = "tx" if counter == pynvml.NVML_PCIE_UTIL_TX_BYTES else "rx"
        return int(
            self._value(
                "nvmlDeviceGetPcieThroughput",
                h,
                f"pcie_throughput_{direction}",
                None,
                f"pcie_throughput:{direction}",
            )
        )

    def nvmlDeviceGetViolationStatus(self, h: FakeHandle, policy: int) -> SimpleNamespace:
        name = _POLICIES[policy]
        value = self._value(
            "nvmlDeviceGetViolationStatus", h, f"violation_{name}", None, f"violation:{name}"
        )
        return SimpleNamespace(**value)

    def nvmlDeviceGetPcieReplayCounter(self, h: FakeHandle) -> int:
        return int(self._value("nvmlDeviceGetPcieReplayCounter", h))

    def nvmlDeviceGetNvLinkErrorCounter(self, h: FakeHandle, link: int, counter: int) -> int:
        return int(
            self._value("nvmlDeviceGetNvLinkErrorCounter", h, f"nvlink_errors_{link}_{counter}")
        )

    # -- GPM (Hopper+ profiling metrics) ----------------------------------------------------

    def nvmlGpmQueryDeviceSupport(self, h: FakeHandle) -> SimpleNamespace:
        self._check("nvmlGpmQueryDeviceSupport", h.index)
        return SimpleNamespace(
            version=pynvml.NVML_GPM_SUPPORT_VERSION, isSupportedDevice=int(self.gpm is not None)
        )

    def nvmlGpmSampleAlloc(self) -> FakeGpmSample:
        self._check("nvmlGpmSampleAlloc", None)
        return FakeGpmSample()

    def nvmlGpmSampleGet(self, h: FakeHandle, sample: FakeGpmSample) -> FakeGpmSample:
        self._check("nvmlGpmSampleGet", h.index, "gpm_sampleget")
        if self.gpm is None:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
        sample.values = dict(self.gpm)
        return sample  # the binding returns the sample it filled

    def nvmlGpmSampleFree(self, sample: FakeGpmSample) -> None:
        sample.values = None

    class c_nvmlGpmMetricsGet_t:  # the binding's name
        """Python stand-in for the binding's ctypes request structure."""

        def __init__(self) -> None:
            self.version = 0
            self.numMetrics = 0
            self.sample1: Any = None
            self.sample2: Any = None
            self.metrics = [
                SimpleNamespace(
                    metricId=0,
                    nvmlReturn=0,
                    value=0.0,
                    metricInfo=SimpleNamespace(shortName=None, longName=None, unit=None),
                )
                for _ in range(210)
            ]

    def nvmlGpmMetricsGet(self, request: Any) -> Any:
        self._check("nvmlGpmMetricsGet", None, "gpm_metricsget")
        values = request.sample2.values or {}
        for metric in request.metrics[: request.numMetrics]:
            record = values.get(_GPM_METRIC_NAMES.get(metric.metricId, ""))
            if record is None:
                metric.nvmlReturn = pynvml.NVML_ERROR_NOT_SUPPORTED
            elif record.get("ret", 0) != 0:
                metric.nvmlReturn = int(record["ret"])  # as the board refused it
            else:
                metric.nvmlReturn = 0
                metric.value = float(record["value"])
        return request

    # -- events ------------------------------------------------------------------------------

    def nvmlEventSetCreate(self) -> FakeEventSet:
        self._check("nvmlEventSetCreate", None)
        return FakeEventSet()

    def nvmlDeviceRegisterEvents(
        self, h: FakeHandle, event_types: int, event_set: FakeEventSet
    ) -> None:
        self._check("nvmlDeviceRegisterEvents", h.index)

    def nvmlDeviceGetSupportedEventTypes(self, h: FakeHandle) -> int:
        self._check("nvmlDeviceGetSupportedEventTypes", h.index)
        return int(self.fixture.get("supported_event_types", 0))

    def nvmlEventSetWait_v2(self, event_set: FakeEventSet, timeout_ms: int) -> SimpleNamespace:
        self._check("nvmlEventSetWait_v2", None)
        try:
            return self._events.get(timeout=timeout_ms / 1000)
        except queue.Empty:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_TIMEOUT) from None

    def nvmlEventSetFree(self, event_set: FakeEventSet) -> None:
        return None
