"""What a simulated fleet is made of: slots, the boards that fill them, failures, episodes, events.

Plain records, kept apart from :mod:`gpu_health.sim.fleet` (which draws them) so that the drawing
code stays small; ``fleet`` re-exports every name here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from gpu_health.sim.models import ModelSpec
from gpu_health.telemetry.readings import GpuIdentity

DRIVER_VERSION = "580.159.04"
CUDA_VERSION = "13.0"


@dataclass(frozen=True)
class Episode:
    """A stretch of abnormal telemetry; ``strength`` scales it, ``link`` picks the NVLink."""

    kind: str
    start: float
    end: float
    strength: float
    link: int
    key: int
    #: the PCIe link downgrades in the last third (fell-off-bus precursor only)
    downgrade: bool = False
    #: seconds to reach full strength (None: ramps over the whole episode, as precursors do;
    #: injected faults ramp in a couple of minutes and then hold until ``end``)
    ramp_seconds: float | None = None
    #: an injected corrected-ECC storm's bursts are drawn up to here, and the live backend moves
    #: it on as simulated time nears it (:func:`gpu_health.sim.fleet.injected_storm_events`)
    drawn_until: float | None = None

    @property
    def span(self) -> float:
        if self.ramp_seconds is not None:
            return max(self.ramp_seconds, 1.0)
        return max(self.end - self.start, 1.0)


@dataclass
class Failure:
    """One failure of one board: the ground truth the scorer is trained and judged on."""

    uuid: str
    slot: int
    time: float
    mode: str
    precursor_start: float | None
    outcome: str  # "reset" or "rma"
    down_from: float
    down_to: float
    repeat: bool
    age_seconds: float

    @property
    def lead_seconds(self) -> float | None:
        return None if self.precursor_start is None else self.time - self.precursor_start


@dataclass
class Events:
    """Discrete counter increments of one board, per counter: sorted times and running totals."""

    times: dict[str, list[float]] = field(default_factory=dict)
    totals: dict[str, list[float]] = field(default_factory=dict)

    def add_all(self, raw: list[tuple[float, str, float]]) -> None:
        raw.sort()
        for t, name, inc in raw:
            ts = self.times.setdefault(name, [])
            tot = self.totals.setdefault(name, [])
            ts.append(t)
            tot.append((tot[-1] if tot else 0.0) + inc)


@dataclass
class Board:
    """One physical GPU in a slot from ``start`` (installed) to ``end`` (removed after an RMA)."""

    slot: int
    generation: int
    uuid: str
    serial: str
    start: float
    end: float
    lemon: bool
    sbe_active: bool
    failures: list[Failure] = field(default_factory=list)
    episodes: list[Episode] = field(default_factory=list)
    #: (from, to): GPU not readable (lost, resetting, or waiting for removal)
    down: list[tuple[float, float]] = field(default_factory=list)
    #: driver reloads caused by recoveries (maintenance reloads are computed, not stored)
    reloads: list[float] = field(default_factory=list)
    events: Events = field(default_factory=Events)
    #: counter events added by fault injection (kept across event regeneration)
    extra_events: list[tuple[float, str, float]] = field(default_factory=list)
    lost_after_end: bool = True
    #: per-board lifetime noise levels
    replay_rate: float = 0.0


@dataclass
class Slot:
    """A GPU position in a node: fixed identity labels, one board after another."""

    index: int
    node: str
    node_index: int
    gpu: int
    pci_bus_id: str
    spec: ModelSpec
    key: int
    node_key: int
    temp_offset: float
    power_scale: float
    maintenance_period: float
    maintenance_phase: float
    boards: list[Board] = field(default_factory=list)

    def board_at(self, t: float) -> Board | None:
        for board in self.boards:
            if board.start <= t < board.end:
                return board
        return None

    def identity(self, board: Board) -> GpuIdentity:
        s = self.spec
        return GpuIdentity(
            index=self.gpu,
            uuid=board.uuid,
            model=s.name,
            pci_bus_id=self.pci_bus_id,
            node=self.node,
            serial=board.serial,
            vbios_version="96.00.99.00.01" if s.hbm else "95.02.5D.00.01",
            driver_version=DRIVER_VERSION,
            cuda_driver_version=CUDA_VERSION,
            memory_total_bytes=s.memory_total_bytes,
            slowdown_temp_celsius=s.slowdown_temp,
            shutdown_temp_celsius=s.shutdown_temp,
            memory_max_temp_celsius=s.memory_max_temp,
            gpu_max_operating_temp_celsius=s.gpu_max_operating_temp,
            power_limit_default_watts=s.tdp_watts,
            max_sm_clock_hertz=s.max_sm_clock_hertz,
            max_memory_clock_hertz=s.memory_clock_hertz,
            pcie_max_generation=s.pcie_generation,
            pcie_max_width=s.pcie_width,
            nvlink_count=s.nvlink_count,
        )

    def last_reload(self, board: Board, t: float) -> float:
        """When the driver was last loaded on this board before ``t`` (volatile counters reset)."""
        k = math.floor((t - self.maintenance_phase) / self.maintenance_period)
        maint = self.maintenance_phase + k * self.maintenance_period
        best = max(board.start, maint)
        for r in board.reloads:
            if best < r <= t:
                best = r
        return best
