"""The fleet's layout and history: nodes, slots, boards, failures, episodes and counter events.

Everything here is a pure function of (seed, node index): the failure schedule of a node is drawn
from its purchase date to a far horizon with one generator per (board, mode) and per failure, so
it does not depend on which window or how many of its slots a driver asks for. Failures recur on
a node (:func:`build_node`), which is why a node, not a slot, is the unit drawn. The live driver
and the batch writer therefore see the same boards (uuids), the same failures and the same
counter events.
"""

from __future__ import annotations

import calendar
import heapq
import math
import random
import time
import uuid as uuidlib
from dataclasses import dataclass

from gpu_health.sim import hazard, recurrence, rng
from gpu_health.sim.boards import (
    CUDA_VERSION,
    DRIVER_VERSION,
    Board,
    Episode,
    Events,
    Failure,
    Slot,
)
from gpu_health.sim.models import MODELS

__all__ = [
    "CUDA_VERSION",
    "DRIVER_VERSION",
    "Board",
    "Episode",
    "Events",
    "Failure",
    "Fleet",
    "Slot",
    "build_fleet",
    "build_node",
    "build_slot",
]

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
#: Share of faults that the board's own memory-error streaks (hazard.REPEAT_MULT, after Summit)
#: already follow within 30 days on the same board, at the reference rates: 3.7 %, measured with
#: node recurrence off by bench/bench_recurrence.py --seeds 20. It grows about in proportion to
#: the rate.
SAME_BOARD_STREAK_SHARE = 0.037
PCI_BUSES: tuple[str, ...] = ("18", "2A", "3A", "5D", "9A", "AB", "BA", "DB")

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
    """Slot ``index`` with its whole history (boards, failures, events).

    Failures recur on a node (:func:`build_node`), so the slot's whole node is drawn: a slot is
    the same whatever fleet size or driver asks for it.
    """
    node_index, gpu = divmod(index, GPUS_PER_NODE)
    return build_node(node_index, seed, hazard_scale)[gpu]


def build_node(
    node_index: int,
    seed: int,
    hazard_scale: float = 1.0,
    recurrence_on: bool = True,
    events: bool = True,
) -> list[Slot]:
    """The 8 slots of node ``node_index`` with their whole history (boards, failures, events).

    Each board fails by its own hazard (:func:`hazard.draw_board_failures`) and, besides, a
    fault makes another on the same node likely (:mod:`gpu_health.sim.recurrence`, after the
    public stepfun-ai/InfiniteHBD-Trace): with probability ``follow`` it schedules a follow-up
    fault on one of the node's 8 slots, drawn uniformly (another GPU, or the same slot's board
    or its replacement), after a lognormal gap of median 22 days. The boards' own hazard is
    scaled by ``1 - follow`` so that follow-ups, which may themselves be followed, keep the
    fleet's failure rate at the reference. The node's failures are therefore drawn in time
    order across its slots; a follow-up that lands on an empty slot (awaiting its replacement)
    or on a board under repair is lost, as a board's own draws are. ``recurrence_on=False``
    draws the boards' own hazard alone (the baseline the recurrence is measured against);
    ``events=False`` leaves out the counter events (a failure schedule only, ~8x faster).
    """
    laid = [_layout(node_index * GPUS_PER_NODE + gpu, seed) for gpu in range(GPUS_PER_NODE)]
    model = laid[0][0].spec.key
    daily = hazard.reference_rate(model) * hazard_scale * DAY / hazard.YEAR
    follow = recurrence.follow_probability(daily, SAME_BOARD_STREAK_SHARE * hazard_scale)
    follow = follow if recurrence_on else 0.0
    lives = [_Life(slot, bought, seed, hazard_scale * (1.0 - follow)) for slot, bought in laid]
    pending: list[tuple[float, int]] = []  # follow-ups not yet due: (time, gpu)
    while True:
        life = min(lives, key=_Life.next_time)
        if pending and pending[0][0] < life.next_time():
            at, gpu = heapq.heappop(pending)
            failure = lives[gpu].follow_up(at)
        elif life.next_time() < HORIZON:
            failure = life.primary()
        else:
            break
        if failure is None or follow <= 0.0:
            continue
        g = rng.generator(failure.uuid, "node-follow", failure.time)
        if g.random() < follow:
            at = failure.time + recurrence.gap_seconds(g.gauss(0.0, 1.0))
            if at < HORIZON:
                heapq.heappush(pending, (at, g.randrange(GPUS_PER_NODE)))
    for slot, _ in laid:
        for board in slot.boards:
            if events:
                _draw_events(slot, board)
    return [slot for slot, _ in laid]


def _layout(index: int, seed: int) -> tuple[Slot, float]:
    """Slot ``index`` without boards, and its node's purchase date."""
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
    return slot, ng.uniform(_iso_to_time(spec.bought_from), _iso_to_time(spec.bought_to))


class _Life:
    """One slot's boards, one after another, as its node's failures unfold in time order."""

    def __init__(self, slot: Slot, bought: float, seed: int, hazard_scale: float) -> None:
        self.slot = slot
        self.seed = seed
        self.hazard_scale = hazard_scale
        self._install(0, bought)

    def _install(self, generation: int, start: float) -> None:
        """Put a new board in the slot at ``start`` and draw its own failures to the horizon."""
        self.board: Board | None = None
        self.draws: list[hazard.Draw] = []
        self.next = 0
        self.busy_until = start
        if start >= HORIZON:
            return
        board = _board(self.slot, generation, start, self.seed)
        self.slot.boards.append(board)
        self.board = board
        cohort = hazard.Cohort(board.lemon, board.sbe_active)
        for mode in hazard.MODES:
            g = rng.generator(board.uuid, "mode", mode.name)
            self.draws += hazard.draw_board_failures(
                self.slot.spec.key, cohort, 0.0, HORIZON - start, g, self.hazard_scale, (mode,)
            )
        self.draws.sort(key=lambda d: d.age)

    def next_time(self) -> float:
        """When the current board's next own failure is due (inf: none before the horizon)."""
        if self.board is None or self.next >= len(self.draws):
            return math.inf
        return self.board.start + self.draws[self.next].age

    def primary(self) -> Failure | None:
        """The board's next own failure, unless it falls in a repair window."""
        assert self.board is not None
        i, board = self.next, self.board
        self.next += 1
        d = self.draws[i]
        t = board.start + d.age
        if t < self.busy_until + HOUR:
            return None  # the board was down or just back: this draw falls in the repair window
        g = rng.generator(board.uuid, "failure", i)
        return self._fail(t, d.mode, d.repeat, g, rng.key(self.seed, board.uuid, "episode", i))

    def follow_up(self, t: float) -> Failure | None:
        """A node follow-up at ``t`` on whatever board serves the slot then (none: it is lost)."""
        board = self.board
        if board is None or t < board.start or t < self.busy_until + HOUR:
            return None
        g = rng.generator(board.uuid, "follow-up", t)
        model = self.slot.spec.key
        modes = [m.name for m in hazard.MODES]
        mode = g.choices(modes, weights=[m.rate(model) for m in hazard.MODES])[0]
        return self._fail(t, mode, True, g, rng.key(self.seed, board.uuid, "follow-episode", t))

    def _fail(
        self, t: float, mode_name: str, repeat: bool, g: random.Random, episode_key: int
    ) -> Failure:
        """Record a failure at ``t``: precursor episode, downtime, and an RMA's new board."""
        board, slot = self.board, self.slot
        assert board is not None
        model = slot.spec.key
        mode = hazard.MODE_BY_NAME[mode_name]
        precursor_start: float | None = None
        if g.random() < mode.precursor_probability(model):
            onset = max(t - hazard.lead_time(mode, g), self.busy_until + HOUR)
            if t - onset >= hazard.MIN_LEAD:
                precursor_start = onset
        rma = g.random() < mode.rma_probability(model)
        down_from = t if mode.lost else t + hazard.DRAIN_SECONDS
        if rma:
            down_to = down_from + DAY  # waits for removal, then the slot is empty
        else:
            reset = hazard.RESET_MEDIAN * math.exp(hazard.RESET_SIGMA * g.gauss(0.0, 1.0))
            down_to = down_from + min(max(reset, 15 * 60.0), 6 * HOUR)
        failure = Failure(
            board.uuid,
            slot.index,
            t,
            mode_name,
            precursor_start,
            "rma" if rma else "reset",
            down_from,
            down_to,
            repeat,
            t - board.start,
        )
        board.failures.append(failure)
        if precursor_start is not None:
            kind = PRECURSOR_OF_MODE[mode_name]
            board.episodes.append(
                Episode(
                    kind=kind,
                    start=precursor_start,
                    end=t,
                    strength=math.exp(g.gauss(0.0, 0.7)),
                    link=g.randrange(max(slot.spec.nvlink_count, 1)),
                    key=episode_key,
                    downgrade=kind == "pcie" and g.random() < 0.5,
                )
            )
        board.down.append((down_from, down_to))
        if rma:
            board.end = down_to
            repair = rng.generator(board.uuid, "rma")
            start = down_to + repair.uniform(hazard.RMA_MIN, hazard.RMA_MAX)
            self._install(board.generation + 1, start if down_to < HORIZON else HORIZON)
        else:
            board.reloads.append(down_to)
            self.busy_until = down_to
        return failure


def _poisson_times(
    g: object, rate: float, start: float, end: float
) -> list[float]:  # g: random.Random
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


#: An injected corrected-ECC storm (a burst every ~30 s) has its bursts drawn this far ahead of
#: simulated time, and no further (:func:`injected_storm_events`). Drawn to its end, or for 60
#: days when it had none, a storm injected without ``for`` was ~290,000 events (17 MB), drawn
#: again with every later injection on its board under the live backend's lock: 3 s the first,
#: 6 s the second, 10 s the third, scrapes waiting meanwhile; two days ahead, 0.1 s and 0.6 MB.
INJECTED_STORM_AHEAD = 2 * DAY


def injected_storm_events(slot: Slot, ep: Episode) -> list[tuple[float, str, float]]:
    """The bursts of an injected corrected-ECC storm from its start to ``ep.drawn_until``.

    Each candidate time, its acceptance and its burst are drawn in turn from one stream, so a
    later ``drawn_until`` only adds bursts after the ones already drawn: the live backend moves
    it on as simulated time nears it, and the counters never change behind the present. A storm
    without ``for`` so lasts until exit, at a cost bounded by how far the run has got."""
    g = random.Random(ep.key)
    ahead = ep.drawn_until if ep.drawn_until is not None else ep.start + INJECTED_STORM_AHEAD
    until = min(ep.end, HORIZON, ahead)
    out: list[tuple[float, str, float]] = []
    t = ep.start
    first = True
    while t < until:
        # the rate rises x6 over the ramp (thinning); the first burst lands at onset
        if first or g.random() < (1.0 + 5.0 * min((t - ep.start) / ep.span, 1.0)) / 6.0:
            out.append((t, "sbe", float(int(math.exp(g.gauss(math.log(500.0), 1.5))) + 1)))
            if ep.kind == "ecc" and slot.spec.hbm and g.random() < 0.3:
                out += [(t, "rr_corr", 1.0), (t, "xid:63", 1.0)]
            if g.random() < 0.2:
                out.append((t, "xid:92", 1.0))
        first = False
        t += g.expovariate(6.0 / 180.0)
    return out


def _episode_events(slot: Slot, ep: Episode) -> list[tuple[float, str, float]]:
    """Discrete signs of a precursor; the first one lands at onset so none goes unseen."""
    g = random.Random(ep.key)
    out: list[tuple[float, str, float]] = []
    span = ep.span
    end = min(ep.end, HORIZON, ep.start + 60 * DAY)
    if ep.kind in ("ecc", "sram_ecc") and ep.ramp_seconds is not None:
        return injected_storm_events(slot, ep)
    if ep.kind in ("ecc", "sram_ecc"):
        base = (4.0 if ep.kind == "ecc" else 2.0) / DAY * ep.strength
        median = 200.0 if ep.kind == "ecc" else 10.0
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


def build_fleet(
    gpus: int,
    seed: int,
    hazard_scale: float = 1.0,
    recurrence_on: bool = True,
    events: bool = True,
) -> Fleet:
    """The fleet of ``gpus`` slots (8 per node) for ``seed``; cheap (~1.5 ms per slot).

    Whole nodes are drawn (a partial last node too), so a slot does not depend on ``gpus``.
    """
    slots: list[Slot] = []
    for node_index in range(-(-gpus // GPUS_PER_NODE)):
        slots += build_node(node_index, seed, hazard_scale, recurrence_on, events)
    return Fleet(seed, slots[:gpus], hazard_scale)
