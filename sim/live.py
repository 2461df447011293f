"""The live driver: the exporter's ``--backend sim``, one pure-Python sample at a time.

GPU *i* is slot *i* of the same fleet the backfill writes for the same seed (8 GPUs per node,
``gpu-node-001``...), showing the board installed there at the start time, so a demo can backfill
N days and then continue live from "now" with consistent uuids, counters and failures. Time runs
``speed`` times faster than the wall clock from ``start_time`` (default: now).

Live fault injection: the faults file (``--sim-faults-file``) is watched while the exporter runs.
Entries present at start count ``after`` from the start (an invalid one there refuses the start,
like a bad ``--sim-fault``); an entry added later counts ``after`` from the moment the backend
sees it (within :data:`WATCH_EVERY` wall seconds), so ``gpu-health demo fault
'gpu=3,fault=thermal'`` (which appends to the demo's file) starts the fault now. Entries are
compared by what they say (slot, fault, after, for), not by their place in the file: an entry is
injected when it appears, one more of it than at the last look (a new or changed entry, an
invalid one fixed, the same entry written twice is two faults); removing an entry does not heal
a GPU, and an edit that leaves the others as they were (spacing, ``1m`` for ``60s``, an entry
removed before them) injects nothing. An invalid entry added while the exporter runs is skipped
and the file's other entries apply: each change of the file logs one line per invalid entry
(file, ``faults[N]``, reason). A file that cannot be read as a whole (broken YAML, too many
entries) is logged once per change and none of its entries is read until it is fixed (its
entries count as they were). This is a file on the exporter's own host, read only by the
simulator backend: no endpoint is opened for it.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from gpu_health.errors import ConfigError, UserError
from gpu_health.sim import faults as faultlib
from gpu_health.sim import fleet as fleetlib
from gpu_health.sim import rng
from gpu_health.sim.faults import FAULT_HELP, Fault
from gpu_health.sim.fleet import Board, Episode, Slot
from gpu_health.sim.model import is_down, sample_at
from gpu_health.telemetry.readings import GpuIdentity, GpuLostError, GpuSample

__all__ = ["FAULT_HELP", "SimBackend"]

#: how long an injected storm takes to reach full strength
INJECT_RAMP = 120.0
#: wall seconds between two looks at the watched faults file
WATCH_EVERY = 1.0
#: invalid entries logged, one line each, per change of the watched file (then one line more)
MAX_LOGGED_ENTRIES = 20
#: Faults one board takes over the exporter's life; a further one is dropped, with one warning
#: line per board. Every injected fault stays on its board (a storm, counter events) and every
#: injection redraws the board's events from all of them, so a faults file rewritten with new
#: entries every second grew a soak's exporter by ~10 MB an hour without end. A demo injects a
#: handful per GPU; a board replaced in its slot (a new UUID) starts again from none.
MAX_FAULTS_PER_BOARD = 32

log = logging.getLogger(__name__)


class SimBackend:
    """A simulated fleet behind the :class:`~gpu_health.exporter.backend.Backend` protocol."""

    name = "sim"

    def __init__(
        self,
        gpus: int = 8,
        seed: int = 0,
        speed: float = 1.0,
        faults: list[Fault] | None = None,
        start_time: float | None = None,
        clock: Callable[[], float] = time.time,
        hazard_scale: float = 1.0,
        faults_file: Path | None = None,
    ) -> None:
        if gpus < 1:
            raise UserError("sim: gpus must be at least 1")
        if not speed > 0 or math.isinf(speed):
            raise UserError(f"sim: speed {speed} must be a positive number")
        self._clock = clock
        self._wall0 = clock()
        self.start_time = self._wall0 if start_time is None else float(start_time)
        self.speed = speed
        self.seed = seed
        self._lock = threading.Lock()
        self._slots: list[Slot] = fleetlib.build_fleet(gpus, seed, hazard_scale).slots
        self._boards: dict[str, tuple[Slot, Board]] = {}
        #: faults injected per board UUID (:data:`MAX_FAULTS_PER_BOARD`)
        self._injected: Counter[str] = Counter()
        #: boards with an injected corrected-ECC storm, drawn ahead as time goes on, by UUID
        self._storms: dict[str, tuple[Slot, Board]] = {}
        for fault in faults or []:
            problem = self._gpu_problem(fault)
            if problem:
                raise UserError(f"--sim-fault gpu={fault.gpu},fault={fault.fault}: {problem}")
            self._inject(fault, self.start_time)
        self._faults_file = faults_file
        self._file_state: tuple[float, int] | None = None
        #: the valid entries of the file at the last look that could read it, counted by what
        #: they say: an entry is injected when it appears beyond these
        self._file_entries: Counter[Fault] = Counter()
        self._next_look = self._wall0
        if faults_file is not None:
            self._file_state = _file_state(faults_file)
            entries = faultlib.load_faults_file(faults_file)
            for i, fault in enumerate(entries):
                problem = self._gpu_problem(fault)
                if problem:
                    raise ConfigError(str(faults_file), f"faults[{i}]", problem)
            for fault in entries:
                self._inject(fault, self.start_time)
                self._file_entries[fault] += 1

    def _gpu_problem(self, fault: Fault) -> str:
        """Why the fleet cannot take ``fault`` (``the simulated fleet has GPUs 0-7``), or ""."""
        if fault.gpu >= len(self._slots):
            return f"the simulated fleet has GPUs 0-{len(self._slots) - 1}"
        # A fault the board's model cannot show (nvlink_errors on an L40S) would be taken and
        # never fire: refused like a slot that does not exist.
        slot = self._slots[fault.gpu]
        reason = faultlib.never_fires(fault.fault, slot.spec)
        if reason:
            return (
                f"slot {fault.gpu} (GPU {slot.gpu} on {slot.node}, "
                f"{faultlib.model_name(slot.spec)}) {reason}; a fault there would never fire"
            )
        return ""

    def _inject(self, fault: Fault, start_time: float) -> None:
        """Inject ``fault``, or say in the log why it never will: a slot whose board is away
        for RMA serves no GPU to fault."""
        slot = self._slots[fault.gpu]
        board = slot.board_at(self.start_time)
        if board is None:
            log.warning(
                "fault gpu=%d fault=%s dropped: slot %d has no board installed (away for RMA)",
                fault.gpu,
                fault.fault,
                fault.gpu,
            )
            return
        taken = self._injected[board.uuid]
        if taken >= MAX_FAULTS_PER_BOARD:
            if taken == MAX_FAULTS_PER_BOARD:
                log.warning(
                    "fault gpu=%d fault=%s dropped: GPU %d has taken %d injected faults, the "
                    "most one board takes (restart the exporter to inject more); later ones "
                    "are dropped without a line",
                    fault.gpu,
                    fault.fault,
                    fault.gpu,
                    MAX_FAULTS_PER_BOARD,
                )
                self._injected[board.uuid] += 1
            return
        self._injected[board.uuid] += 1
        inject(slot, board, fault, start_time)
        if any(ep.drawn_until is not None for ep in board.episodes):
            self._storms[board.uuid] = (slot, board)
        log.info("fault injected: gpu=%d fault=%s", fault.gpu, fault.fault)

    def _extend_storms(self) -> None:
        """Draw the bursts of injected corrected-ECC storms on ahead of simulated time
        (:func:`~gpu_health.sim.fleet.injected_storm_events`): once it is within half of
        :data:`~gpu_health.sim.fleet.INJECTED_STORM_AHEAD` of what is drawn, a storm is drawn
        that far ahead of now, and its board's events drawn again (lock held)."""
        now = self.now()
        ahead = fleetlib.INJECTED_STORM_AHEAD
        for slot, board in self._storms.values():
            moved = False
            for i, ep in enumerate(board.episodes):
                drawn = ep.drawn_until
                due = drawn is not None and now > drawn - ahead / 2
                if drawn is not None and due and drawn < min(ep.end, fleetlib.HORIZON):
                    board.episodes[i] = dataclasses.replace(ep, drawn_until=now + ahead)
                    moved = True
            if moved:
                fleetlib._draw_events(slot, board)

    def _watch(self) -> None:
        """Inject the faults file's valid entries that were not in it at the last look, and log
        each invalid one, once per change of the file (lock held)."""
        path = self._faults_file
        if path is None or self._clock() < self._next_look:
            return
        self._next_look = self._clock() + WATCH_EVERY
        state = _file_state(path)
        if state == self._file_state:
            return
        self._file_state = state
        try:
            entries = faultlib.read_faults_file(path)
        except ConfigError as exc:  # unreadable as a whole: no entry can be told from another
            log.warning(
                "live faults: %s; no entry of the file is read until it is fixed (faults "
                "injected before stay)",
                exc,
            )
            return
        now = self.now()
        seen: Counter[Fault] = Counter()
        invalid = 0
        for i, entry in enumerate(entries):
            if isinstance(entry, Fault):
                problem = self._gpu_problem(entry)
                if not problem:
                    seen[entry] += 1
                    if seen[entry] > self._file_entries[entry]:
                        self._inject(entry, now)
                    continue
                entry = ConfigError(str(path), f"faults[{i}]", problem)
            invalid += 1
            if invalid <= MAX_LOGGED_ENTRIES:
                log.warning(
                    "live faults: %s; entry skipped, the file's other entries apply (fixing it "
                    "injects it from then)",
                    entry,
                )
        self._file_entries = seen
        if invalid > MAX_LOGGED_ENTRIES:
            log.warning(
                "live faults: %s: %d more invalid entries skipped",
                path,
                invalid - MAX_LOGGED_ENTRIES,
            )

    @classmethod
    def from_options(
        cls,
        gpus: int,
        seed: int,
        speed: float,
        faults: list[str],
        faults_file: Path | None,
        start_time: float | None,
        hazard_scale: float = 1.0,
    ) -> SimBackend:
        """Build from the exporter's command-line options (fault text parsed here)."""
        parsed = [faultlib.parse_fault(text) for text in faults]
        return cls(
            gpus=gpus,
            seed=seed,
            speed=speed,
            faults=parsed,
            start_time=start_time,
            hazard_scale=hazard_scale,
            faults_file=faults_file,
        )

    def now(self) -> float:
        """Simulated time."""
        return self.start_time + (self._clock() - self._wall0) * self.speed

    def inventory(self) -> list[GpuIdentity]:
        out = []
        with self._lock:
            for slot in self._slots:
                board = slot.board_at(self.start_time)
                if board is None:
                    continue  # slot empty: the board is away for RMA
                self._boards[board.uuid] = (slot, board)
                out.append(slot.identity(board))
        return out

    def sample(self, gpu: GpuIdentity) -> GpuSample:
        with self._lock:  # a live injection redraws a board's events: never read half of it
            self._watch()
            self._extend_storms()
            return self._sample(gpu)

    def _sample(self, gpu: GpuIdentity) -> GpuSample:
        try:
            slot, board = self._boards[gpu.uuid]
        except KeyError:
            raise GpuLostError(f"{gpu.uuid} is not part of this simulated fleet") from None
        t = self.now()
        if t >= board.end or is_down(board, t):
            # The XIDs that came with the loss (79 above all) are still known to the exporter.
            seen = sample_at(slot, board, min(t, board.end))
            events = GpuSample(timestamp=t, up=False)
            events.xid_counts = dict(seen.xid_counts)
            events.last_xid_timestamp = seen.last_xid_timestamp
            events.xids_watched = True
            raise GpuLostError(f"simulated GPU {gpu.index} ({gpu.uuid}) is lost at {t:.0f}", events)
        return sample_at(slot, board, t)

    def close(self) -> None:
        """Nothing to release."""


def inject(slot: Slot, board: Board, fault: Fault, start_time: float) -> None:
    """Turn a fault into episodes and counter events on ``board``, then redraw its events."""
    t0 = start_time + fault.after
    t1 = t0 + fault.duration
    key = rng.key(board.uuid, "fault", fault.fault, t0)
    ev = board.extra_events

    def episode(
        kind: str, strength: float = 1.5, downgrade: bool = False, ahead: float | None = None
    ) -> None:
        drawn_until = None if ahead is None else t0 + ahead
        ep = Episode(kind, t0, t1, strength, 0, key, downgrade, INJECT_RAMP, drawn_until)
        board.episodes.append(ep)

    name = fault.fault
    if name in ("xid79", "gpu_lost"):
        ev.append((t0, "xid:79", 1.0))
        board.down.append((t0, math.inf))
    elif name == "ecc_storm":
        episode("ecc", ahead=fleetlib.INJECTED_STORM_AHEAD)
        ev.append((t0, "xid:92", 1.0))  # its help promises XID 92: with the first burst
    elif name == "uncorrectable_ecc":
        ev += [(t0, "xid:48", 1.0), (t0 + 1, "xid:94", 1.0), (t0, "dbe", 2.0)]
        if slot.spec.hbm:
            ev += [(t0, "rr_unc", 1.0), (t0 + 2, "xid:63", 1.0)]
    elif name == "row_remap_pending":
        ev += [(t0, "rr_corr", 1.0), (t0, "xid:63", 1.0)]
    elif name == "row_remap_failure":
        ev += [(t0, "xid:48", 1.0), (t0 + 1, "xid:95", 1.0), (t0, "dbe", 4.0)]
        ev += [(t0, "rr_unc", 1.0), (t0 + 2, "xid:64", 1.0), (t0 + 2, "remap_failed", 1.0)]
    elif name == "thermal":
        episode("thermal")
    elif name == "pcie_replay_storm":
        episode("pcie", strength=3.0, downgrade=True)
        ev.append((t0, "xid:32", 1.0))
    elif name == "nvlink_errors":
        if slot.spec.nvlink_count:
            episode("nvlink", strength=2.0)
            ev.append((t0 + INJECT_RAMP, "xid:74", 1.0))
    elif name == "power_brake":
        episode("power_brake", strength=2.0)
    elif fault.xid is not None:
        ev.append((t0, f"xid:{fault.xid}", 1.0))
    fleetlib._draw_events(slot, board)


def _file_state(path: Path) -> tuple[float, int]:
    """(mtime, size) of the watched file; (0, -1) while it does not exist."""
    try:
        st = os.stat(path)
    except OSError:
        return (0.0, -1)
    return (st.st_mtime, st.st_size)
