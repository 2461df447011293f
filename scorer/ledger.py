"""The failure ledger: signals found in the history merged into one row per failure, as CSV.

:mod:`gpu_health.scorer.labels` turns Prometheus history into :class:`Signal` objects (an XID, an
uncorrectable-error increase, a stretch of ``gpu_up 0``, a GPU that vanished, a board replaced in
its slot). One failure usually leaves several of them within minutes — a memory failure writes XID
48, a DBE and then the GPU goes down for its reset — so signals of one GPU are chained into an
:class:`Event` while each starts within ``merge_window`` of the previous one's end. The event's
kind is its most specific signal (a row-remap failure says more than "the GPU was down"), its
confidence combines the signals' own.

The CSV keeps the ``uuid,time,mode`` columns that ``gpu-health-scorer train --failures`` reads
(``mode`` holds the kind); the other columns are for the operator who reviews the file, deletes
rows or adds RMA tickets by hand. Only UUIDs, node names and slot indexes appear in it.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from gpu_health.output_file import write_atomically

#: Kinds from the most to the least specific; an event takes the first kind any signal gives.
KIND_PRIORITY: tuple[str, ...] = (
    "row_remap_failure",
    "uncorrectable_memory",
    "fell_off_bus",
    "nvlink",
    "gpu_reset_required",
    "lost",
    "disappeared",
    "replaced",
)
KIND_HELP: dict[str, str] = {
    "row_remap_failure": "a row remap failed (XID 64 or the remap-failure flag): RMA criterion",
    "uncorrectable_memory": (
        "uncorrectable memory error: XID 48/94/95/140, DBE or uncorrectable remap"
    ),
    "fell_off_bus": "the GPU fell off the bus (XID 79)",
    "nvlink": "NVLink hardware error (XID 74, or 144-150 on NVLink5 boards)",
    "gpu_reset_required": "the GPU stopped or needs a reset (XID 46/62/109/119/120/143/154)",
    "lost": "gpu_up was 0 (GPU lost or unreadable) without a hardware XID",
    "disappeared": "the GPU's series vanished while its node kept reporting",
    "replaced": "a new UUID appeared in the same node and slot after this one vanished",
}
#: Columns written; ``uuid,time,mode`` are the ones ``train --failures`` needs.
LEDGER_COLUMNS: tuple[str, ...] = (
    "uuid",
    "time",
    "mode",
    "time_iso",
    "node",
    "gpu",
    "confidence",
    "evidence",
    "source",
)
EVIDENCE_LIMIT = 400


@dataclass(frozen=True)
class Signal:
    """One piece of evidence about one GPU over [start, end] (an instant when equal)."""

    uuid: str
    node: str
    gpu: str
    start: float
    end: float
    kind: str
    confidence: float
    evidence: str
    #: The board reports nowhere after this signal: it left the fleet (a replacement, or a
    #: disappearance it never came back from). After one of its failures, its removal.
    final: bool = False


@dataclass
class Event:
    """One failure: the chained signals of one GPU."""

    uuid: str
    node: str
    gpu: str
    signals: list[Signal] = field(default_factory=list)

    @property
    def time(self) -> float:
        return min(s.start for s in self.signals)

    @property
    def end(self) -> float:
        return max(s.end for s in self.signals)

    @property
    def kind(self) -> str:
        kinds = {s.kind for s in self.signals}
        return next(k for k in KIND_PRIORITY if k in kinds)

    @property
    def confidence(self) -> float:
        """1 - prod(1 - c) over the strongest signal of each kind (independent witnesses)."""
        best: dict[str, float] = {}
        for s in self.signals:
            best[s.kind] = max(best.get(s.kind, 0.0), s.confidence)
        miss = math.prod(1.0 - c for c in best.values())
        return min(0.99, 1.0 - miss)

    @property
    def evidence(self) -> str:
        text = "; ".join(dict.fromkeys(s.evidence for s in sorted(self.signals, key=_start)))
        return text if len(text) <= EVIDENCE_LIMIT else text[: EVIDENCE_LIMIT - 3] + "..."


def _start(s: Signal) -> float:
    return s.start


def merge(
    signals: Iterable[Signal], merge_window: float = 1800.0, removal_window: float = 7 * 86400.0
) -> list[Event]:
    """Chain each GPU's signals into events; a signal joins while it starts within
    ``merge_window`` of the event's latest end (a reset's downtime, then removal, then the
    replacement all belong to the failure that began it).

    A board is drained and pulled hours or days after a failure that ends its service (a
    remap failure, an uncorrectable error, off the bus: :func:`_leaves_service`), so a signal
    that it left for good (:attr:`Signal.final`: it was replaced in its slot, or vanished and
    never came back) joins that event while it starts within ``removal_window`` of its end:
    one failure, one row, at the time it failed. Chained by ``merge_window`` alone, a board
    that failed and was swapped a day later was two failures (three with its replacement).
    A disappearance the board came back from, or followed by any other signal of the board,
    is an outage of its own (a GPU that fell off the bus), never joined from that far; so is
    the leaving of a board that came back from an outage within the event, or whose event
    was an NVLink or reset-required XID (often the failure's forerunner, not the failure)."""
    by_uuid: dict[str, list[Signal]] = {}
    for s in signals:
        by_uuid.setdefault(s.uuid, []).append(s)
    events: list[Event] = []
    for uuid, sigs in by_uuid.items():
        sigs.sort(key=_start)
        # a board that left shows nothing afterwards: one with a signal later (an XID read
        # after its temperature stopped) was still there
        last_other = max((s.start for s in sigs if not s.final), default=-math.inf)
        current: Event | None = None
        for s in sigs:
            window = merge_window
            if s.final and s.start >= last_other and current and _leaves_service(current):
                window = max(removal_window, merge_window)
            if current is not None and s.start <= current.end + window:
                current.signals.append(s)
                continue
            current = Event(uuid, s.node, s.gpu, [s])
            events.append(current)
    events.sort(key=lambda e: (e.time, e.uuid))
    return events


#: Signals of a board that was out of service for a while (its ``gpu_up`` 0, its series
#: gone) and, unless :attr:`Signal.final`, came back.
OUTAGE_KINDS = frozenset(("lost", "disappeared"))


#: Failures that take a board out of service or call for its return to the vendor (NVIDIA's
#: XID catalogue: no spare rows left, an uncorrectable memory error, off the bus): the board
#: is drained and pulled. An NVLink or reset-required XID is often followed by the failure
#: itself (a board that vanished hours after an XID 74 or 119 had failed then, not at the
#: XID), so a board leaving after one of those is a failure of its own.
SERVICE_ENDING_KINDS = frozenset(("row_remap_failure", "uncorrectable_memory", "fell_off_bus"))


def _leaves_service(event: Event) -> bool:
    """Whether the board's leaving after ``event`` is that failure's removal: ``event`` ends
    its service (:data:`SERVICE_ENDING_KINDS`) and the board did not come back from an
    outage within it (reset or rebooted in place, it went back into service, so its leaving
    later is a failure of its own); or ``event`` is the board leaving (a board leaves once:
    replaced while its node was down, it is seen gone only once the node is back)."""
    if all(s.final for s in event.signals):
        return True
    back = any(s.kind in OUTAGE_KINDS and not s.final for s in event.signals)
    return not back and any(s.kind in SERVICE_ENDING_KINDS for s in event.signals)


def hand_rows(path: Path) -> list[tuple[float, dict[str, str]]]:
    """The rows of the ledger at ``path`` that ``labels`` did not derive (``source`` other than
    ``derived``, or no ``source`` column: an RMA ticket added by hand, a row of a list written
    elsewhere), each with its time read, in the ledger's columns; none when there is no file.

    The ledger is reviewed and added to by hand; a rerun of ``labels --out`` over it replaced
    it, and the rows the operator had added were gone. An unreadable file is an error, so it
    is never replaced unread."""
    from gpu_health.csv_file import read_csv
    from gpu_health.scorer.training import load_failures

    if not path.exists():
        return []
    # the checks train --failures makes (uuid, time and mode readable), one failure per row
    failures = load_failures(path)
    rows = [row for _line, row in read_csv(path).rows()]
    return [
        (failure.time, {column: (row.get(column) or "").strip() for column in LEDGER_COLUMNS})
        for failure, row in zip(failures, rows, strict=True)
        if (row.get("source") or "").strip() != "derived"
    ]


def write_ledger(
    events: Sequence[Event],
    path: Path | None,
    min_confidence: float = 0.0,
    kept: Sequence[tuple[float, Mapping[str, str]]] = (),
) -> str:
    """Write (or return, with ``path`` None) the ledger CSV; events below the floor are left out.
    ``kept`` rows (:func:`hand_rows`) are written as they are, all rows in time order."""
    import io

    buffer = io.StringIO()
    w = csv.writer(buffer, lineterminator="\n")
    w.writerow(LEDGER_COLUMNS)
    rows: list[tuple[float, Sequence[str]]] = [
        (when, [row[c] for c in LEDGER_COLUMNS]) for when, row in kept
    ]
    for e in events:
        if e.confidence < min_confidence:
            continue
        rows.append(
            (
                e.time,
                (
                    e.uuid,
                    f"{e.time:.0f}",
                    e.kind,
                    dt.datetime.fromtimestamp(e.time, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    e.node,
                    e.gpu,
                    f"{e.confidence:.2f}",
                    e.evidence,
                    "derived",
                ),
            )
        )
    for _time, cells in sorted(rows, key=lambda r: r[0]):
        w.writerow(cells)
    text = buffer.getvalue()
    if path is not None:
        write_atomically(path, text, "--out")
    return text


# ---- judging a ledger against ground truth ------------------------------------------------


class Judged(Protocol):
    """What scoring needs of a ledger row: an :class:`Event` or a row read back from CSV."""

    @property
    def uuid(self) -> str: ...
    @property
    def time(self) -> float: ...
    @property
    def kind(self) -> str: ...


@dataclass(frozen=True)
class LedgerRow:
    uuid: str
    time: float
    kind: str


def read_ledger(path: Path) -> list[LedgerRow]:
    """The rows of a ledger CSV (as written, or as an operator edited it)."""
    from gpu_health.scorer.training import load_failures

    return [LedgerRow(f.uuid, f.time, f.mode) for f in load_failures(path)]


@dataclass(frozen=True)
class Truth:
    """A known failure (the simulator's failures.csv or an RMA list)."""

    uuid: str
    time: float
    mode: str
    #: The row's line in its file (0: not read from a file).
    line: int = 0


def truth_modes() -> frozenset[str]:
    """The failure modes a ``--truth`` file may name: the ledger's kinds (an RMA list written in
    them) and the simulators' modes (``gpu_health.sim.hazard``, whose fleets ``backfill`` writes,
    and ``gpu_health.sim.families``, as ``bench/rack_fleet.py``)."""
    from gpu_health.sim.families import MODES as FAMILY_MODES
    from gpu_health.sim.hazard import MODE_BY_NAME

    return frozenset(KIND_PRIORITY) | frozenset(MODE_BY_NAME) | frozenset(FAMILY_MODES)


def read_truth(path: Path) -> list[Truth]:
    """The known failures of a ``uuid,time,mode`` CSV (other columns are ignored), checked
    whole before a scan starts: every problem is one line naming the file and line.

    A mode that is no known one (``melted``) is refused with the modes allowed: it made a
    recall row of its own that no ledger kind could ever match. A failure listed twice (the
    same GPU at the same time) is refused with both lines: it was counted twice, and the copy
    could never be found, halving the recall."""
    from gpu_health.csv_file import read_csv
    from gpu_health.errors import UserError
    from gpu_health.safetext import shown
    from gpu_health.unix_time import iso_utc, parse_time

    table = read_csv(path)
    missing = sorted({"uuid", "time", "mode"} - set(table.header))
    if missing:
        raise UserError(f"{path}: missing column(s) {', '.join(missing)} (uuid,time,mode)")
    allowed = truth_modes()
    first: dict[tuple[str, float], int] = {}
    truth: list[Truth] = []
    for line, row in table.rows():
        where = f"{path}: line {line}"
        uuid, mode = row["uuid"].strip(), row["mode"].strip()
        if not uuid:
            raise UserError(f"{where}: uuid: empty")
        try:
            when = parse_time(row["time"])
        except UserError as exc:
            raise UserError(f"{where}: {exc}") from None
        if mode not in allowed:
            raise UserError(
                f"{where}: mode: {shown(mode, 60)!r} is not a known failure mode (allowed: "
                f"{', '.join(sorted(allowed))})"
            )
        if (uuid, when) in first:
            raise UserError(
                f"{where}: {shown(uuid, 80)} at {iso_utc(when)} is already listed on line "
                f"{first[(uuid, when)]} (a failure counted twice)"
            )
        first[(uuid, when)] = line
        truth.append(Truth(uuid, when, mode, line))
    return truth


@dataclass
class Score:
    """Matches of a ledger against ground truth, per true mode and per ledger kind."""

    recall: dict[str, tuple[int, int]]  # true mode -> (found, total)
    precision: dict[str, tuple[int, int]]  # ledger kind -> (true, total)

    @staticmethod
    def _share(pairs: Iterable[tuple[int, int]]) -> float:
        hit = total = 0
        for a, b in pairs:
            hit, total = hit + a, total + b
        return hit / total if total else float("nan")

    @property
    def overall_recall(self) -> float:
        return self._share(self.recall.values())

    @property
    def overall_precision(self) -> float:
        return self._share(self.precision.values())

    def markdown(self) -> str:
        """The two tables of docs/closed-loop.md."""
        lines = ["| simulated failure mode | failures | found | recall |", "|---|---:|---:|---:|"]
        for mode, (hit, total) in sorted(self.recall.items()):
            lines.append(f"| {mode} | {total} | {hit} | {hit / total:.0%} |")
        lines.append(
            f"| **all** | {sum(t for _, t in self.recall.values())} | "
            f"{sum(h for h, _ in self.recall.values())} | {self.overall_recall:.0%} |"
        )
        lines += ["", "| ledger kind | rows | true failures | precision |", "|---|---:|---:|---:|"]
        for kind in KIND_PRIORITY:
            if kind in self.precision:
                hit, total = self.precision[kind]
                lines.append(f"| {kind} | {total} | {hit} | {hit / total:.0%} |")
        lines.append(
            f"| **all** | {sum(t for _, t in self.precision.values())} | "
            f"{sum(h for h, _ in self.precision.values())} | {self.overall_precision:.0%} |"
        )
        return "\n".join(lines)


def score(
    events: Sequence[Judged],
    truth: Sequence[Truth],
    tolerance: float = 3600.0,
) -> Score:
    """One-to-one matching: a ledger event matches an unmatched true failure of the same GPU
    whose time is within ``tolerance`` of the event's time (earliest first)."""
    by_uuid: dict[str, list[Truth]] = {}
    for t in truth:
        by_uuid.setdefault(t.uuid, []).append(t)
    matched: set[int] = set()
    precision: dict[str, list[int]] = {}
    for e in sorted(events, key=lambda ev: ev.time):
        best: Truth | None = None
        for t in by_uuid.get(e.uuid, ()):
            if id(t) in matched or abs(t.time - e.time) > tolerance:
                continue
            if best is None or abs(t.time - e.time) < abs(best.time - e.time):
                best = t
        entry = precision.setdefault(e.kind, [0, 0])
        entry[1] += 1
        if best is not None:
            matched.add(id(best))
            entry[0] += 1
    recall: dict[str, list[int]] = {}
    for t in truth:
        entry = recall.setdefault(t.mode, [0, 0])
        entry[1] += 1
        entry[0] += id(t) in matched
    return Score(
        {k: (v[0], v[1]) for k, v in recall.items()},
        {k: (v[0], v[1]) for k, v in precision.items()},
    )
