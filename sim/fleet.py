"""The fleet's layout and history: nodes, slots, boards, failures, episodes and counter events.

Everything here is a pure function of (seed, slot index): the failure schedule of a slot is drawn
from the board's purchase date to a far horizon with one generator per (board, mode), so it does
not depend on which window a driver asks for. The live driver and the batch writer therefore see
the same boards (uuids), the same failures and the same counter events.
"""

from __future__ import annotations

import calendar
import math
import time
import uuid as uuidlib
from dataclasses import dataclass, field

from gpu_health.sim import hazard, rng
from gpu_health.sim.models import MODELS, ModelSpec
from gpu_health.telemetry.readings import GpuIdentity

DAY = hazard.DAY
HOUR = hazard.HOUR
GPUS_PER_NODE = 8
#: Fixed origin of node maintenance schedules (UTC), so schedules do not move with "now".
FLEET_EPOCH = calendar.timegm((2020, 1, 1, 0, 0, 0))
#: Failures are drawn up to here; every draw is prefix-stable, so a later horizon adds only events.
HORIZON = calendar.timegm((2036, 1, 1, 0, 0, 0))
#: Node model pattern: 11 H100, 5 A100, 2 H200, 2 L40S per 20 nodes (§5(a) mix plus L40S),
#: interleaved so that even four nodes show all four models.
NODE_PATTERN: tuple[str, ...] = (
    "h100", "a100", "h200", "l40s", "h100", "a100", "h100", "h100", "a100", "h100",
    "l40s", "h100", "h200", "a100", "h100", "h100", "a100", "h100", "h100", "h100",
)  # fmt: skip
PCI_BUSES: tuple[str, ...] = ("18", "2A", "3A", "5D", "9A", "AB", "BA", "DB")
DRIVER_VERSION = "580.159.04"
CUDA_VERSION = "13.0"

#: Episode kinds: a precursor (or an injected fault) that changes telemetry over [start, end).
EPISODE_KINDS = (
    "ecc",
    "sram_ecc",
    "pcie",
    "nvlink",
    "power_brake",
    "thermal",
    "hang_xids",
)
PRECURSOR_OF_MODE: dict[str, str] = {
    "hbm_uncorrectable": "ecc",
    "sram_uncorrectable": "sram_ecc",
    "fell_off_bus": "pcie",
    "power_delivery": "power_brake",
    "nvlink": "nvlink",
    "hang": "hang_xids",
    "thermal": "thermal",
}


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


def _iso_to_time(text: str) -> float:
    return calendar.timegm(time.strptime(text, "%Y-%m-%d"))


def node_name(node_index: int) -> str:
    return f"gpu-node-{node_index + 1:03d}"


def _board(slot: Slot, generation: int, start: float, seed: int) -> Board:
    bkey = rng.key(seed, "board", slot.index, generation)
    g = rng.generator(bkey, "cohort")
    cohort = hazard.draw_cohort(g)
    raw = bkey.to_bytes(8, "little") + rng.key(bkey, "uuid").to_bytes(8, "little")
    ident = uuidlib.UUID(bytes=raw, version=4)
    return Board(
        slot=slot.index,
        generation=generation,
        uuid=f"GPU-{ident}",
        serial=f"{1650000000000 + bkey % 9_000_000_000:013d}",
        start=start,
        end=math.inf,
        lemon=cohort.lemon,
        sbe_active=cohort.sbe_active,
        replay_rate=math.exp(g.gauss(math.log(0.2 / HOUR), 1.5)),
    )


def build_slot(index: int, seed: int, hazard_scale: float = 1.0) -> Slot:
    """Lay out slot ``index`` and draw its whole history (boards, failures, events)."""
    node_index, gpu = divmod(index, GPUS_PER_NODE)
    spec = MODELS[NODE_PATTERN[node_index % len(NODE_PATTERN)]]
    skey = rng.key(seed, "slot", index)
    nkey = rng.key(seed, "node", node_index)
    g = rng.generator(skey, "params")
    ng = rng.generator(nkey, "params")
    period = ng.uniform(30.0, 90.0) * DAY
    slot = Slot(
        index=index,
        node=node_name(node_index),
        node_index=node_index,
        gpu=gpu,
        pci_bus_id=f"00000000:{PCI_BUSES[gpu]}:00.0",
        spec=spec,
        key=skey,
        node_key=nkey,
        temp_offset=g.uniform(-2.0, 4.0),
        power_scale=g.uniform(0.97, 1.03),
        maintenance_period=period,
        maintenance_phase=FLEET_EPOCH + ng.uniform(0.0, period),
    )
    bought = ng.uniform(_iso_to_time(spec.bought_from), _iso_to_time(spec.bought_to))
    generation, start = 0, bought
    while start < HORIZON:
        board = _board(slot, generation, start, seed)
        slot.boards.append(board)
        _draw_history(slot, board, seed, hazard_scale)
        _draw_events(slot, board)
        if board.end >= HORIZON:
            break
        turnaround = rng.generator(board.uuid, "rma").uniform(hazard.RMA_MIN, hazard.RMA_MAX)
        generation, start = generation + 1, board.end + turnaround
    return slot


def _draw_history(slot: Slot, board: Board, seed: int, hazard_scale: float) -> None:
    """Failures, their precursor episodes, downtime and the board's end (at an RMA)."""
    model = slot.spec.key
    cohort = hazard.Cohort(board.lemon, board.sbe_active)
    draws: list[hazard.Draw] = []
    for mode in hazard.MODES:
        g = rng.generator(board.uuid, "mode", mode.name)
        draws += hazard.draw_board_failures(
            model, cohort, 0.0, HORIZON - board.start, g, hazard_scale, (mode,)
        )
    draws.sort(key=lambda d: d.age)
    busy_until = board.start
    for i, d in enumerate(draws):
        t = board.start + d.age
        if t < busy_until + HOUR:
            continue  # the board was down or just back: this draw falls in the repair window
        mode = hazard.MODE_BY_NAME[d.mode]
        g = rng.generator(board.uuid, "failure", i)
        precursor_start: float | None = None
        if g.random() < mode.precursor_probability(model):
            onset = max(t - hazard.lead_time(mode, g), busy_until + HOUR)
            if t - onset >= hazard.MIN_LEAD:
                precursor_start = onset
        rma = g.random() < mode.rma_probability(model)
        down_from = t if mode.lost else t + hazard.DRAIN_SECONDS
        if rma:
            down_to = down_from + DAY  # waits for removal, then the slot is empty
        else:
            reset = hazard.RESET_MEDIAN * math.exp(hazard.RESET_SIGMA * g.gauss(0.0, 1.0))
            down_to = down_from + min(max(reset, 15 * 60.0), 6 * HOUR)
        board.failures.append(
            Failure(
                board.uuid,
                slot.index,
                t,
                d.mode,
                precursor_start,
                "rma" if rma else "reset",
                down_from,
                down_to,
                d.repeat,
                t - board.start,
            )
        )
        if precursor_start is not None:
            kind = PRECURSOR_OF_MODE[d.mode]
            board.episodes.append(
                Episode(
                    kind=kind,
                    start=precursor_start,
                    end=t,
                    strength=math.exp(g.gauss(0.0, 0.7)),
                    link=g.randrange(max(slot.spec.nvlink_count, 1)),
                    key=rng.key(seed, board.uuid, "episode", i),
                    downgrade=kind == "pcie" and g.random() < 0.5,
                )
            )
        board.down.append((down_from, down_to))
        if rma:
            board.end = down_to
            break
        board.reloads.append(down_to)
        busy_until = down_to


def _poisson_times(
    g: object, rate: float, start: float, end: float
) -> list[float]:  # g: random.Random
    import random

    assert isinstance(g, random.Random)
    out: list[float] = []
    if rate <= 0:
        return out
    t = start
    while True:
        t += g.expovariate(rate)
        if t >= end:
            return out
        out.append(t)


#: Benign noise every GPU shows (none of it is a failure): per-second rates.
APP_XID_RATE = 8.0 / hazard.YEAR  # Delta A100 XID 31 ≈ 8/GPU-yr (§5(a) noise)
APP_XIDS = (13, 31, 31, 31, 43, 45, 69)
SBE_BLIP_RATE = 0.02 / DAY  # isolated corrected errors on ordinary boards
SBE_BURST_RATE = 0.3 / DAY  # SBE-active cohort: benign bursts (Zhu: ~5 % of A100s)
BENIGN_REMAP_RATE = 0.01 / DAY  # SBE-active cohort: an occasional correctable remap
NVLINK_BLIP_RATE = 0.05 / DAY
REPLAY_BURST_RATE = 0.1 / DAY


def _draw_events(slot: Slot, board: Board) -> None:
    """Counter events: benign noise over the board's life, precursors, and failure signatures."""
    import random

    end = min(board.end, HORIZON)
    board.events = Events()
    raw: list[tuple[float, str, float]] = list(board.extra_events)
    g = random.Random(rng.key(board.uuid, "noise"))
    for t in _poisson_times(g, APP_XID_RATE, board.start, end):
        raw.append((t, f"xid:{g.choice(APP_XIDS)}", 1.0))
    for t in _poisson_times(g, SBE_BLIP_RATE, board.start, end):
        raw.append((t, "sbe", 1.0))
    for t in _poisson_times(g, REPLAY_BURST_RATE, board.start, end):
        raw.append((t, "replay", float(int(math.exp(g.gauss(math.log(20.0), 1.0))) + 1)))
    if slot.spec.nvlink_count:
        for t in _poisson_times(g, NVLINK_BLIP_RATE, board.start, end):
            link = g.randrange(slot.spec.nvlink_count)
            raw.append((t, f"nvl:{link}:crc_flit", float(int(g.expovariate(0.2)) + 1)))
    if board.sbe_active:
        for t in _poisson_times(g, SBE_BURST_RATE, board.start, end):
            raw.append((t, "sbe", float(int(math.exp(g.gauss(math.log(30.0), 1.8))) + 1)))
        if slot.spec.hbm:
            for t in _poisson_times(g, BENIGN_REMAP_RATE, board.start, end):
                raw += [(t, "rr_corr", 1.0), (t, "xid:63", 1.0)]
    for ep in board.episodes:
        raw += _episode_events(slot, ep)
    for f in board.failures:
        raw += _failure_events(slot, board, f)
    board.events.add_all(raw)


def _episode_events(slot: Slot, ep: Episode) -> list[tuple[float, str, float]]:
    """Discrete signs of a precursor; the first one lands at onset so none goes unseen."""
    import random

    g = random.Random(ep.key)
    out: list[tuple[float, str, float]] = []
    span = ep.span
    end = min(ep.end, HORIZON, ep.start + 60 * DAY)
    if ep.kind in ("ecc", "sram_ecc"):
        base = (4.0 if ep.kind == "ecc" else 2.0) / DAY * ep.strength
        median = 200.0 if ep.kind == "ecc" else 10.0
        if ep.ramp_seconds is not None:  # injected storm: a burst every ~30 s
            base, median = 1.0 / 180.0, 500.0
        times = [ep.start]
        t = ep.start
        while True:  # rate rises x6 towards the failure (thinning of a ramped Poisson process)
            t += g.expovariate(base * 6.0)
            if t >= end:
                break
            if g.random() < (1.0 + 5.0 * min((t - ep.start) / span, 1.0)) / 6.0:
                times.append(t)
        for t in times:
            out.append((t, "sbe", float(int(math.exp(g.gauss(math.log(median), 1.5))) + 1)))
            if ep.kind == "ecc" and slot.spec.hbm and g.random() < 0.3:
                out += [(t, "rr_corr", 1.0), (t, "xid:63", 1.0)]
            if g.random() < 0.2:
                out.append((t, "xid:92", 1.0))
    elif ep.kind == "pcie":
        out.append((ep.start, "xid:32", 1.0))
        for t in _poisson_times(g, 2.0 / DAY, ep.start, end):
            out.append((t, "xid:32", 1.0))
    elif ep.kind == "hang_xids":
        out.append((ep.start, "xid:8", 1.0))
        for t in _poisson_times(g, 3.0 / DAY, ep.start, end):
            out.append((t, f"xid:{g.choice((8, 45))}", 1.0))
    return out


def _failure_events(slot: Slot, board: Board, f: Failure) -> list[tuple[float, str, float]]:
    mode = hazard.MODE_BY_NAME[f.mode]
    g = rng.generator(board.uuid, "signature", f.time)
    out: list[tuple[float, str, float]] = []
    for i, choice in enumerate(mode.xids):
        out.append((f.time + i, f"xid:{g.choice(choice)}", 1.0))
    if mode.memory:
        out.append((f.time, "dbe", float(g.randint(1, 4))))
        if slot.spec.hbm and f.mode == "hbm_uncorrectable":
            out.append((f.time, "rr_unc", 1.0))
            if f.outcome == "rma":
                out += [(f.time + 2, "xid:64", 1.0), (f.time + 2, "remap_failed", 1.0)]
    return out


@dataclass
class Fleet:
    """All slots of a simulated fleet."""

    seed: int
    slots: list[Slot]
    hazard_scale: float = 1.0

    def failures(self, start: float = -math.inf, end: float = math.inf) -> list[Failure]:
        out = [f for s in self.slots for b in s.boards for f in b.failures if start <= f.time < end]
        out.sort(key=lambda f: (f.time, f.slot))
        return out

    def boards(self, start: float, end: float) -> list[tuple[Slot, Board]]:
        """Boards installed at some time in [start, end)."""
        return [(s, b) for s in self.slots for b in s.boards if b.start < end and b.end > start]


def build_fleet(gpus: int, seed: int, hazard_scale: float = 1.0) -> Fleet:
    """The fleet of ``gpus`` slots (8 per node) for ``seed``; cheap (< 1 ms per slot)."""
    return Fleet(seed, [build_slot(i, seed, hazard_scale) for i in range(gpus)], hazard_scale)
