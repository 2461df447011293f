"""The one small interface every telemetry source implements: inventory once, then samples."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from gpu_health.telemetry.readings import GpuIdentity, GpuSample


@runtime_checkable
class Backend(Protocol):
    """A source of GPU readings.

    ``inventory`` is called once at start-up (and again only when the backend reports a change,
    e.g. after a driver reload); ``sample`` is called on every scrape and must be cheap: anything
    that costs more than a few microseconds belongs in a background poller whose cached values the
    sample returns. ``sample`` raises :class:`~gpu_health.telemetry.readings.GpuLostError` for a GPU
    that stopped answering; other GPUs must keep being served.
    """

    name: str

    def inventory(self) -> list[GpuIdentity]: ...

    def sample(self, gpu: GpuIdentity) -> GpuSample: ...

    def close(self) -> None: ...


@dataclass
class BackendStats:
    """What a backend tells about its own health, rendered as ``gpu_exporter_*`` self-metrics."""

    #: cumulative failed calls by (call, error); "not supported" is discovery, not an error
    call_errors: dict[tuple[str, str], int] = field(default_factory=dict)
    #: seconds the last background poll cycle took (None: the backend has no poller)
    poll_duration_seconds: float | None = None
    #: completed background poll cycles
    polls_total: int = 0
    #: calls found unsupported per GPU index (discovered once, never called again)
    unsupported_calls: dict[int, int] = field(default_factory=dict)


@runtime_checkable
class Instrumented(Protocol):
    """Optional: a backend that reports its own errors and poller timing."""

    def stats(self) -> BackendStats: ...
