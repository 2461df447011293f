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


def load_trace(path: Path) -> list[TraceRow]:
    """Read the trace CSV (columns as in ``tests/fixtures/h100/h100_load_trace.csv``)."""
    try:
        table = read_csv(path)
        rows = [
            TraceRow(
                t=float(r["t"]),
                gpu_temp_c=float(r["gpu_temp_c"]),
                mem_temp_c=float(r["mem_temp_c"]),
                power_w=float(r["power_w"]),
                sm_clock_mhz=int(float(r["sm_clock_mhz"])),
                mem_clock_mhz=int(float(r["mem_clock_mhz"])),
                util_gpu_pct=int(float(r["util_gpu_pct"])),
                util_mem_pct=int(float(r["util_mem_pct"])),
                mem_used_mib=int(float(r["mem_used_mib"])),
                clock_event_reasons=int(float(r["clock_event_reasons"])),
                pstate=int(float(r["pstate"])),
            )
            for _line, r in table.rows()
        ]
    except UserError as exc:  # not a regular file, too large, not UTF-8, malformed
        raise BackendUnavailableError(f"cannot read replay trace {exc}") from None
    except (KeyError, ValueError, OverflowError) as exc:
        raise BackendUnavailableError(f"cannot read replay trace {path}: {exc}") from None
    if not rows:
        raise BackendUnavailableError(f"replay trace {path} has no rows")
    return rows


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
