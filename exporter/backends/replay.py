"""The replay backend: real H100 readings served through the NVML code path.

Why through the NVML backend: the readings are NVML answers, so serving them with
:class:`FakeNvml` under :class:`NvmlBackend` exercises the exact code that runs on hardware
(unit conversion, unsupported-field discovery, the poller) and the numbers on /metrics are the
recorded ones, exactly. Optionally the 10 Hz load trace is stepped through at ``rate`` trace
seconds per wall second (looping), which moves temperature, power, clocks, utilisation, memory
used, clock-event reasons and P-state the way the real GPU did under a bf16 matmul.
"""

from __future__ import annotations

import bisect
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from gpu_health.csv_file import read_csv
from gpu_health.errors import UserError
from gpu_health.exporter.backends.nvml import NvmlBackend
from gpu_health.exporter.data import H100_LOAD_TRACE, NVML_H100, data_path
from gpu_health.exporter.fake_nvml import ERRORS, FakeNvml
from gpu_health.telemetry.readings import BackendUnavailableError, GpuIdentity, GpuSample

MIB = 1024 * 1024


@dataclass(frozen=True)
class TraceRow:
    t: float
    gpu_temp_c: float
    mem_temp_c: float
    power_w: float
    sm_clock_mhz: int
    mem_clock_mhz: int
    util_gpu_pct: int
    util_mem_pct: int
    mem_used_mib: int
    clock_event_reasons: int
    pstate: int


#: The trace's columns and the range each value must lie in: a reading outside it is a wrong
#: file or a wrong unit (milliwatts for watts), not something to serve as the GPU's.
TRACE_COLUMNS: dict[str, tuple[float, float]] = {
    "t": (0.0, 1e9),
    "gpu_temp_c": (-50.0, 200.0),
    "mem_temp_c": (-50.0, 200.0),
    "power_w": (0.0, 10_000.0),
    "sm_clock_mhz": (0.0, 100_000.0),
    "mem_clock_mhz": (0.0, 100_000.0),
    "util_gpu_pct": (0.0, 100.0),
    "util_mem_pct": (0.0, 100.0),
    "mem_used_mib": (0.0, 16_777_216.0),
    "clock_event_reasons": (0.0, 2.0**64 - 1),
    "pstate": (0.0, 32.0),
}


#: The columns whose readings are whole numbers (clocks, percentages, MiB, bitmask, P-state).
_INTEGER_COLUMNS = (
    "sm_clock_mhz",
    "mem_clock_mhz",
    "util_gpu_pct",
    "util_mem_pct",
    "mem_used_mib",
    "clock_event_reasons",
    "pstate",
)


def load_trace(path: Path) -> list[TraceRow]:
    """Read the trace CSV (columns as in ``tests/fixtures/h100/h100_load_trace.csv``).

    Every problem is one line naming the file, and the line and column where there is one: a
    missing column, a cell that is not a finite number in its column's range, or a time that
    goes backwards (the replay looks a moment up by bisecting the times, which must not
    decrease).
    """
    try:
        table = read_csv(path)
        missing = [name for name in TRACE_COLUMNS if name not in table.header]
        if missing:
            what = (
                "not a load trace"
                if len(missing) == len(TRACE_COLUMNS)
                else (f"no column {', '.join(missing)}")
            )
            raise UserError(
                f"{path}: line 1: {what} (a trace has the columns {', '.join(TRACE_COLUMNS)})"
            )
        rows: list[TraceRow] = []
        for line, cells in table.rows():
            values = {name: _trace_value(path, line, name, cells[name]) for name in TRACE_COLUMNS}
            if rows and values["t"] < rows[-1].t:
                raise UserError(
                    f"{path}: line {line}: t {values['t']:g} is before the line above's "
                    f"{rows[-1].t:g} (the times must not decrease)"
                )
            rows.append(
                TraceRow(
                    t=values["t"],
                    gpu_temp_c=values["gpu_temp_c"],
                    mem_temp_c=values["mem_temp_c"],
                    power_w=values["power_w"],
                    **{name: int(values[name]) for name in _INTEGER_COLUMNS},
                )
            )
    except UserError as exc:  # not a regular file, too large, not UTF-8, malformed, a bad cell
        raise BackendUnavailableError(f"cannot read replay trace {exc}") from None
    if not rows:
        raise BackendUnavailableError(f"replay trace {path} has no rows")
    return rows


def _trace_value(path: Path, line: int, name: str, cell: str) -> float:
    """One cell of the trace as a number inside its column's range, else a one-line error."""
    low, high = TRACE_COLUMNS[name]
    try:
        value = float(cell)
    except ValueError:
        value = math.nan
    if not low <= value <= high:  # also refuses nan and an empty cell
        raise UserError(
            f"{path}: line {line}: {name} {cell.strip()[:40]!r}: expected a number from "
            f"{low:g} to {high:g}"
        )
    return value


def parse_fault(text: str) -> tuple[str, int | None, str]:
    """``CALL[@GPU][=ERROR]`` (``*`` = every call; error default GPU_IS_LOST) for the fake."""
    spec, _, error = text.partition("=")
    call, _, gpu_text = spec.partition("@")
    error = error or "GPU_IS_LOST"
    if not call or (gpu_text and not gpu_text.isdigit()) or error.upper() not in ERRORS:
        raise BackendUnavailableError(
            f"--replay.fault {text!r}: expected CALL[@GPU][=ERROR] with ERROR one of "
            f"{', '.join(sorted(ERRORS))}, e.g. '*@1=GPU_IS_LOST'"
        )
    return call, int(gpu_text) if gpu_text else None, error.upper()


def resolve_trace(value: str | None) -> Path | None:
    """``None``: no trace; ``h100``: the bundled trace; anything else: a CSV path."""
    if value is None:
        return None
    return data_path(H100_LOAD_TRACE) if value == "h100" else Path(value)


class ReplayBackend(NvmlBackend):
    """Serves a recorded NVML fixture (default: the bundled H100) as ``gpus`` identical GPUs."""

    name = "replay"

    def __init__(
        self,
        fixture: Path | None = None,
        gpus: int = 1,
        trace: Path | None = None,
        rate: float = 1.0,
        node: str = "",
        poll_interval: float = 10.0,
        clock: Callable[[], float] = time.time,
        faults: Sequence[str] = (),
    ) -> None:
        self._faults = [parse_fault(text) for text in faults]
        path = fixture or data_path(NVML_H100)
        try:
            self.fake = FakeNvml.from_file(path, gpus=gpus)
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise BackendUnavailableError(f"cannot read replay fixture {path}: {exc}") from None
        self._trace = load_trace(trace) if trace is not None else []
        self._trace_times = [row.t for row in self._trace]
        self._rate = rate
        self._start = clock()
        super().__init__(nvml=self.fake, node=node, poll_interval=poll_interval, clock=clock)

    def inventory(self) -> list[GpuIdentity]:
        identities = super().inventory()
        # Faults start after start-up, as if the GPU failed while the exporter was running.
        for call, gpu, error in self._faults:
            self.fake.fail(call, gpu=gpu, error=error)
        return identities

    def trace_row(self, now: float) -> TraceRow:
        """The trace row in effect ``now`` (the trace loops)."""
        span = self._trace_times[-1] + 0.1
        elapsed = ((now - self._start) * self._rate) % span
        index = max(0, bisect.bisect_right(self._trace_times, elapsed) - 1)
        return self._trace[index]

    def sample(self, gpu: GpuIdentity) -> GpuSample:
        if self._trace:
            self._apply(gpu, self.trace_row(self._clock()))
        return super().sample(gpu)

    def _apply(self, gpu: GpuIdentity, row: TraceRow) -> None:
        fake, i = self.fake, gpu.index
        fake.set(i, "temp_gpu", row.gpu_temp_c)
        fake.set_field(i, "NVML_FI_DEV_MEMORY_TEMP", row.mem_temp_c)
        fake.set(i, "nvmlDeviceGetPowerUsage", round(row.power_w * 1000))
        fake.set(i, "clock_sm", row.sm_clock_mhz)
        fake.set(i, "clock_graphics", row.sm_clock_mhz)
        fake.set(i, "clock_mem", row.mem_clock_mhz)
        fake.set(
            i,
            "nvmlDeviceGetUtilizationRates",
            {"gpu": row.util_gpu_pct, "memory": row.util_mem_pct},
        )
        total = int(fake.fixture["calls"]["nvmlDeviceGetMemoryInfo"]["total"])
        used = row.mem_used_mib * MIB
        fake.set(i, "nvmlDeviceGetMemoryInfo", {"total": total, "used": used, "free": total - used})
        fake.set(i, "nvmlDeviceGetCurrentClocksEventReasons", row.clock_event_reasons)
        fake.set(i, "nvmlDeviceGetPerformanceState", row.pstate)
