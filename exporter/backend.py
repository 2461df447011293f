"""The one small interface every telemetry source implements: inventory once, then samples."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from gpu_health.exporter.readings import GpuIdentity, GpuSample


@runtime_checkable
class Backend(Protocol):
    """A source of GPU readings.

    ``inventory`` is called once at start-up (and again only when the backend reports a change,
    e.g. after a driver reload); ``sample`` is called on every scrape and must be cheap: anything
    that costs more than a few microseconds belongs in a background poller whose cached values the
    sample returns. ``sample`` raises :class:`~gpu_health.exporter.readings.GpuLostError` for a GPU
    that stopped answering; other GPUs must keep being served.
    """

    name: str

    def inventory(self) -> list[GpuIdentity]: ...

    def sample(self, gpu: GpuIdentity) -> GpuSample: ...

    def close(self) -> None: ...
