"""Failures found in the history: the signals a failed GPU leaves in Prometheus.

Every query asks Prometheus to do the detection and return only the steps where something
happened (``gpu_up == 0``, a counter that rose, a series that vanished), so the answer stays small
on a large fleet; the history is read in chunks of ``chunk`` seconds at ``step`` resolution (at
most 11,000 points per series and query, Prometheus' own limit). Both our schema and
dcgm-exporter's are read. Application XIDs (13, 31, 43, 45, 69 …: a user's program crashed) and
warning XIDs (63 a row remap was recorded, 92 high corrected-error rate) are *not* failures and
are never asked for. :mod:`gpu_health.scorer.ledger` merges the signals into one row per failure.

A step sees a series through Prometheus' 5-minute lookback: on history sampled every 10 minutes
or more (a long scrape interval, downsampled or backfilled data) most steps would see no sample,
and a step 300 s after a sample compares nothing. :func:`scan` therefore measures the history's
interval and, where it is longer than the lookback allows, reads each series' last sample of
1.1 intervals instead (``last_over_time``); on denser history the queries are Prometheus' own.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

from gpu_health.errors import UserError
from gpu_health.scorer.feature_promql import with_matchers
from gpu_health.scorer.ledger import Signal
from gpu_health.telemetry import freshness
from gpu_health.telemetry.catalogue import DCGM_RENAMED
from gpu_health.telemetry.schema import DCGM_NODE_ALIAS, DCGM_NODE_LABEL, node_named
from gpu_health.telemetry.state_queries import regex_literal
from gpu_health.telemetry.xids import DCGM_XID_CODE_LABEL, NVLINK5_XIDS
from gpu_health.unix_time import iso_utc

log = logging.getLogger(__name__)

#: Hardware XIDs that mean a failure, with the ledger kind and the confidence each carries alone
#: (NVIDIA XID catalogue: 48 DBE, 94/95 contained/uncontained ECC error, 140 unrecovered ECC
#: error, 64 row-remapper failure, 79 fell off the bus, 74 NVLink error (144-150 on NVLink5
#: boards), 46/62/109 GPU or
#: micro-controller stopped, 143 GPU initialisation failure, 119/120 GSP timeout/error, 154
#: recovery action required). Every code of
#: :data:`~gpu_health.telemetry.xids.RESET_REQUIRED_XIDS` is here
#: (tests/base/test_xid_agreement.py).
FAILURE_XIDS: dict[int, tuple[str, float]] = {
    48: ("uncorrectable_memory", 0.9),
    94: ("uncorrectable_memory", 0.9),
    95: ("uncorrectable_memory", 0.9),
    140: ("uncorrectable_memory", 0.9),
    64: ("row_remap_failure", 0.9),
    79: ("fell_off_bus", 0.9),
    74: ("nvlink", 0.6),
    **dict.fromkeys(NVLINK5_XIDS, ("nvlink", 0.6)),
    46: ("gpu_reset_required", 0.6),
    62: ("gpu_reset_required", 0.6),
    109: ("gpu_reset_required", 0.6),
    143: ("gpu_reset_required", 0.6),
    119: ("gpu_reset_required", 0.6),
    120: ("gpu_reset_required", 0.6),
    154: ("gpu_reset_required", 0.6),
}
#: How far back a counter that (re)appears is compared: one that existed within this window
#: and reappears (after a scrape gap) is not a new event.
APPEAR_WINDOW = "6h"
APPEAR_SECONDS = 6 * 3600.0
#: The confidence of a disappearance no longer than one missed sample (:meth:`Scan.signals`):
#: below the ledger's default floor of 0.5, kept for an operator who asks for it.
ONE_MISSED_SAMPLE = 0.4
#: Prometheus refuses more than 11,000 points per series in one range query.
MAX_POINTS_PER_SERIES = 11_000
#: Range queries per signal a scan may split its history into: 2,000 weeks at the default
#: --chunk; a chunk of seconds over days would ask for hundreds of thousands.
MAX_CHUNKS = 2_000
#: Bound on what one scan may collect (signal points, all queries together).
MAX_POINTS = 5_000_000
#: Prometheus' default lookback: an instant selector sees a series' last sample this recent.
LOOKBACK_S = 300.0
#: On sparse history a step looks back this many sample intervals: a sample a tenth of an
#: interval late still counts, and one that never came leaves a gap the steps see for 0.9 of an
#: interval (0.5 at the scorer's presence window of 1.5 intervals; at 15-minute samples one
#: missed sample is a GPU gone for up to half an hour). On the two sparse fleets of
#: docs/closed-loop.md 1.5 found the same failures: the margin is reasoned, not measured.
LATE = 1.1


@dataclass(frozen=True)
class SchemaNames:
    """Label and metric names of one exporter schema."""

    node: str
    gpu: str
    uuid: str
    presence: str
    up: str | None
    xid_counter: str | None
    xid_last_value: str | None
    dbe: str
    remapped_uncorrectable: str
    remap_failed: str
    #: Another name of the node label, read as :attr:`node` (dcgm-exporter's ``hostname``).
    node_alias: str = ""
    #: The names the same exporter sent before an upgrade renamed them (dcgm-exporter 4.9's
    #: DCGM 4.6 names, :data:`DCGM_RENAMED_NAMES`): a code or flag the GPU held under those
    #: and carried over to the new name is no new event.
    previous: SchemaNames | None = None

    def named(self, expr: str) -> str:
        """``expr`` with the node under :attr:`node` on every series (:func:`node_named`): one
        node before and after an exporter upgrade that renames the label, and never one
        ``""`` node for the whole fleet."""
        return node_named(expr, self.node, self.node_alias)


OURS = SchemaNames(
    node="node",
    gpu="gpu",
    uuid="uuid",
    presence="gpu_up",
    up="gpu_up",
    xid_counter="gpu_xid_errors_total",
    xid_last_value=None,
    dbe='gpu_ecc_errors_total{type="uncorrected",scope="aggregate"}',
    remapped_uncorrectable='gpu_remapped_rows_total{cause="uncorrectable"}',
    remap_failed="gpu_row_remap_failed",
)
DCGM = SchemaNames(
    node=DCGM_NODE_LABEL,
    gpu="gpu",
    uuid="UUID",
    presence="DCGM_FI_DEV_GPU_TEMP",
    up=None,
    xid_counter=None,
    xid_last_value="DCGM_FI_DEV_XID_ERRORS",
    dbe="DCGM_FI_DEV_ECC_DBE_AGG_TOTAL",
    remapped_uncorrectable="DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS",
    remap_failed="DCGM_FI_DEV_ROW_REMAP_FAILURE",
    node_alias=DCGM_NODE_ALIAS,
)
#: dcgm-exporter's fields under the names 4.9 gives them (DCGM 4.6's, :data:`DCGM_RENAMED`);
#: ECC kept its names, so its DBE counter is read in :data:`DCGM` alone.
DCGM_RENAMED_NAMES = replace(
    DCGM,
    presence=DCGM_RENAMED[DCGM.presence],
    xid_last_value=DCGM_RENAMED["DCGM_FI_DEV_XID_ERRORS"],
    dbe="",
    remapped_uncorrectable=DCGM_RENAMED[DCGM.remapped_uncorrectable],
    remap_failed=DCGM_RENAMED[DCGM.remap_failed],
    previous=DCGM,
)
SCHEMAS = {"ours": OURS, "dcgm": DCGM}


@dataclass(frozen=True)
class ScanConfig:
    start: float
    end: float
    step: float = 300.0
    chunk: float = 7 * 86400.0
    #: shortest ``gpu_up 0`` or disappearance counted as a failure
    min_outage: float = 600.0
    #: How far back each step looks for a series' last sample: Prometheus' own lookback, or
    #: longer on sparse history (:func:`lookback_for`; :func:`scan` measures it when None).
    lookback: float | None = None
    #: The history's sample interval (:func:`history_interval`; :func:`scan` measures it
    #: with the lookback; 0: not known).
    interval: float = 0.0

    def validate(self) -> None:
        if self.end <= self.start:
            raise UserError("labels: the history is empty (--since reaches past the end)")
        if not 15 <= self.step <= 3600:
            raise UserError("labels: --step must be between 15s and 1h")
        if self.chunk / self.step > MAX_POINTS_PER_SERIES:
            raise UserError(
                f"labels: --chunk / --step gives more than {MAX_POINTS_PER_SERIES} points"
            )
        if self.min_outage < self.step:
            raise UserError("labels: --min-outage must be at least one --step")
        if self.chunk < self.step:  # Prometheus refused the range with an HTTP 400
            raise UserError("labels: --chunk must be at least one --step")
        chunks = math.ceil((self.end - self.start) / self.chunk)
        if chunks > MAX_CHUNKS:  # --chunk 1s over 10 days was 864,000 lookups, no progress
            raise UserError(
                f"labels: --chunk {self.chunk:g}s splits the {(self.end - self.start) / 86400:.0f}"
                f" days into {chunks:,} range queries per signal (at most {MAX_CHUNKS:,}): "
                "raise --chunk"
            )

    def chunks(self) -> Iterator[tuple[float, float]]:
        """The scan's range queries: ``(first step, last step)`` of each chunk."""
        step = self.step
        t = (self.start // step + 1) * step
        while t <= self.end:
            end = min(t + self.chunk - step, self.end)
            yield t, end
            t = end + step


Query = Callable[[str, float, float, float], list[dict[str, Any]]]


class Scan:
    """Reads one schema's failure signals from Prometheus over [start, end]."""

    def __init__(
        self,
        client: Any,
        names: SchemaNames,
        config: ScanConfig,
        slots_by: tuple[str, ...] | None = None,
    ) -> None:
        config.validate()
        self.client = client
        self.n = names
        self.c = config
        self.points = 0
        #: The presence series whose UUIDs are compared slot by slot (a board replaced while
        #: its exporter was upgraded is seen under one name, its replacement under the other):
        #: the schema's own by default; none for a scan whose slots another scan compares.
        self.slots_by = (names.presence,) if slots_by is None else slots_by

    # ---- queries ------------------------------------------------------------------------

    @property
    def lookback(self) -> float:
        return LOOKBACK_S if self.c.lookback is None else max(LOOKBACK_S, self.c.lookback)

    def _now(self, selector: str) -> str:
        """``selector`` as a step sees it: its last sample within the lookback."""
        if self.lookback <= LOOKBACK_S:
            return selector
        return f"last_over_time({selector}[{self.lookback:.0f}s])"

    def _before(self, selector: str) -> str:
        """``selector`` as the step before saw it."""
        s = f"{self.c.step:.0f}s"
        if self.lookback <= LOOKBACK_S:
            return f"{selector} offset {s}"
        return f"last_over_time({selector}[{self.lookback:.0f}s] offset {s})"

    def _range(self, promql: str, start: float | None = None) -> dict[tuple[str, ...], Any]:
        """Points per series over the whole scan: {(uuid, node, gpu, extra): [(t, v), ...]}."""
        out: dict[tuple[str, ...], list[tuple[float, float]]] = {}
        promql = self.n.named(promql)  # the node under one label, whichever the exporter used
        for a, b in self.c.chunks():
            if start is not None and b < start:
                continue
            a = max(a, start) if start is not None else a
            for series in self.client.query_range(promql, a, b, self.c.step):
                m = series["metric"]
                key = (
                    m.get(self.n.uuid, ""),
                    m.get(self.n.node, ""),
                    m.get(self.n.gpu, ""),
                    m.get("xid", ""),
                )
                if not key[0]:
                    continue
                values = out.setdefault(key, [])
                for t, v in series["values"]:
                    values.append((float(t), float(v)))
                self.points += len(series["values"])
                if self.points > MAX_POINTS:
                    raise UserError(
                        f"labels: more than {MAX_POINTS:,} signal points; scan a shorter "
                        "--since or a coarser --step"
                    )
        return out

    def _runs(self, points: list[tuple[float, float]]) -> Iterator[tuple[float, float, float]]:
        """Consecutive steps as (start, end, first value)."""
        points.sort()
        run_start = prev = points[0][0]
        first = points[0][1]
        for t, v in points[1:]:
            if t - prev > 1.5 * self.c.step:
                yield run_start, prev, first
                run_start, first = t, v
            prev = t
        yield run_start, prev, first

    def _has_earlier_data(self) -> bool:
        # Data at least one appearance window before the scan: the first steps can compare.
        got = self.client.query(
            f"count(last_over_time({self.n.presence}[1d]))",
            self.c.start - APPEAR_SECONDS - self.c.step,
        )
        return bool(got) and float(got[0]["value"][1]) > 0

    def _rise(self, selector: str) -> str:
        """A lifetime counter above its last value before this step — also across an outage,
        when the sample that would show the rise falls inside the GPU's downtime."""
        s = f"{self.c.step:.0f}s"
        before = f"last_over_time({selector}[{APPEAR_WINDOW}] offset {s})"
        return f"({self._now(selector)} - {before}) > 0"

    def _appear(self, selector: str, by: str, previous: str | None = None) -> str:
        """A counter or gauge that changed to a non-zero value, or appeared non-zero where none
        was in APPEAR_WINDOW (nor of its ``previous`` name). Zero is never an event: the
        exporter creates every catalogued XID counter at 0 when it first sees a GPU (a new
        board, an exporter restart), and a reset back to 0 is a repair, not a failure."""
        s = f"{self.c.step:.0f}s"
        before = "".join(
            f" unless on({by}) last_over_time({n}[{APPEAR_WINDOW}] offset {s})"
            for n in (selector, previous)
            if n
        )
        now = self._now(selector)
        return f"(({now} != {self._before(selector)}) > 0) or (({now} > 0){before})"

    # ---- signals ------------------------------------------------------------------------

    def signals(self) -> list[Signal]:
        out: list[Signal] = []
        out += self._xid_signals()
        if self.n.dbe:
            out += self._counter_signal(self.n.dbe, "uncorrectable_memory", 0.9, "DBE")
        out += self._counter_signal(
            self.n.remapped_uncorrectable, "uncorrectable_memory", 0.8, "uncorrectable remap"
        )
        out += self._flag_signal()
        if self.n.up:
            out += self._down_signals()
        spans = self._slot_spans() if self.slots_by else {}
        out += self._gone_signals(_last_anywhere(spans) if spans else None)
        out += self._replaced_signals(spans)
        log.info("labels: %d signals from %d points", len(out), self.points)
        return out

    def _xid_signals(self) -> list[Signal]:
        # Without data before the scan, every existing series "appears" at its first step.
        blind = None if self._has_earlier_data() else self.c.start + APPEAR_SECONDS + self.c.step
        codes = "|".join(str(c) for c in sorted(FAILURE_XIDS))
        out: list[Signal] = []
        if self.n.xid_counter:
            sel = f'{self.n.xid_counter}{{xid=~"{codes}"}}'
            found = self._range(self._appear(sel, f"{self.n.uuid},xid"), blind)
            for (uuid, node, gpu, xid), pts in found.items():
                if not xid.isdigit() or int(xid) not in FAILURE_XIDS:
                    continue
                kind, conf = FAILURE_XIDS[int(xid)]
                for t, _end, _v in self._runs(pts):
                    out.append(Signal(uuid, node, gpu, t, t, kind, conf, f"XID {xid}"))
        if self.n.xid_last_value:
            sel = self.n.xid_last_value
            # a new code is a new series since dcgm-exporter 3.3.6 (DCGM_XID_CODE_LABEL)
            by = f"{self.n.uuid},{DCGM_XID_CODE_LABEL}"
            previous = self.n.previous.xid_last_value if self.n.previous else None
            found = self._range(self._appear(sel, by, previous), blind)
            for (uuid, node, gpu, _x), pts in found.items():
                for t, v in pts:
                    code = int(v) if v == v else 0
                    if code in FAILURE_XIDS:
                        kind, conf = FAILURE_XIDS[code]
                        ev = f"{sel}={code}"
                        out.append(Signal(uuid, node, gpu, t, t, kind, conf, ev))
        return out

    def _counter_signal(self, selector: str, kind: str, conf: float, what: str) -> list[Signal]:
        out = []
        for (uuid, node, gpu, _x), pts in self._range(self._rise(selector)).items():
            for t, _end, v in self._runs(pts):
                out.append(Signal(uuid, node, gpu, t, t, kind, conf, f"{what} +{v:g}"))
        return out

    def _flag_signal(self) -> list[Signal]:
        sel = self.n.remap_failed
        # The flag stays 1 until the board is serviced: it turned 1 only where its last value in
        # the APPEAR_WINDOW before was not 1, as for an XID. Compared with the step before
        # alone, every gap in a flagged board's series was another remap failure (16 rows
        # for one GPU of a 15-minute fleet that missed a sample now and then).
        held = f"last_over_time({sel}[{APPEAR_WINDOW}] offset {self.c.step:.0f}s)"
        promql = f"({self._now(sel)} == 1) unless on({self.n.uuid}) ({held} == 1)"
        if self.n.previous:  # a failed flag carried over an exporter upgrade is no new event
            old = self.n.previous.remap_failed
            promql += f" unless on({self.n.uuid}) (last_over_time({old}[{APPEAR_WINDOW}]) == 1)"
        out = []
        for (uuid, node, gpu, _x), pts in self._range(promql).items():
            for t, _end, _v in self._runs(pts):
                ev = f"{sel.split('{')[0]}=1"
                out.append(Signal(uuid, node, gpu, t, t, "row_remap_failure", 0.95, ev))
        return out

    def _down_signals(self) -> list[Signal]:
        out = []
        up = self.n.up or ""
        for (uuid, node, gpu, _x), pts in self._range(f"{self._now(up)} == 0").items():
            for a, b, _v in self._runs(pts):
                length = b - a + self.c.step
                if length < self.c.min_outage:
                    continue
                conf = 0.8 if length >= 1800 else 0.5
                ev = f"gpu_up=0 for {_duration(length)}"
                out.append(Signal(uuid, node, gpu, a, b, "lost", conf, ev))
        return out

    def _gone_signals(self, last_seen: dict[str, float] | None) -> list[Signal]:
        """GPUs whose series vanished while their node kept reporting. ``last_seen``: each
        board's last step seen anywhere (:meth:`_slot_spans`); a disappearance after which the
        board is never seen again is :attr:`~gpu_health.scorer.ledger.Signal.final`."""
        p, node = self.n.presence, self.n.node
        seen = self.n.named(f"last_over_time({p}[{APPEAR_WINDOW}])")
        promql = (  # the node is matched here, so named inside too (_range names the result)
            f"({seen} unless on({self.n.uuid}) {self._now(p)}) "
            f"and on({node}) group by ({node}) ({self.n.named(self._now(p))})"
        )
        out = []
        for (uuid, nd, gpu, _x), pts in self._range(promql).items():
            for a, b, _v in self._runs(pts):
                # No sample in the lookback before the first absent step: absent this long at
                # least (one step on dense history; on sparse history the steps see a gap only
                # once it is a lookback old, and counting them alone would shorten it).
                length = b - a + max(self.c.step, self.lookback)
                if length < self.c.min_outage:
                    continue
                conf = 0.7 if length >= 3600 else 0.5
                if length < self.lookback + self.c.interval:
                    # One sample missed, as a missed scrape leaves: on sparse history it reads
                    # as an absence of two intervals or less (26 minutes at 15-minute samples),
                    # longer than --min-outage. Below the default --min-confidence.
                    conf = ONE_MISSED_SAMPLE
                # The series was last seen up to one lookback before it counted as gone.
                ev = f"{p.split('{')[0]} absent for {_duration(length)}"
                if length >= APPEAR_SECONDS - 2 * self.c.step:  # the query looks back no further
                    ev = f"{p.split('{')[0]} absent for {APPEAR_WINDOW} or more"
                final = last_seen is not None and last_seen.get(uuid, -math.inf) <= b
                if final:
                    ev += ", not seen again"
                out.append(
                    Signal(uuid, nd, gpu, a - self.lookback, b, "disappeared", conf, ev, final)
                )
        return out

    def _replaced_signals(self, spans: dict[tuple[str, str, str], list[float]]) -> list[Signal]:
        """A board whose slot (node, index) later shows another UUID, and which reports nowhere
        after it left the slot: failed at its last sample there.

        A board that reports on under another index or node moved (the driver numbers a node's
        GPUs in bus order, so a board that leaves or returns renumbers those after it): it is
        not replaced, and its slot's next board replaced nothing."""
        last_anywhere = _last_anywhere(spans)
        by_slot: dict[tuple[str, str], list[tuple[float, float, str]]] = {}
        for (node, gpu, uuid), (first, last) in spans.items():
            by_slot.setdefault((node, gpu), []).append((first, last, uuid))
        gone: list[tuple[str, str, str, float, str]] = []
        for (node, gpu), boards in by_slot.items():
            boards.sort()
            for (_f, last, uuid), (nfirst, _l, nuuid) in itertools.pairwise(boards):
                if nfirst > last and last_anywhere[uuid] <= last:
                    gone.append((node, gpu, uuid, last, nuuid))
        exact = self._last_sample_times({(uuid, last) for _n, _g, uuid, last, _nu in gone})
        out = []
        for node, gpu, uuid, last, nuuid in gone:
            ev = f"replaced by {nuuid} in {node} slot {gpu}"
            t = exact.get(uuid, last)
            out.append(Signal(uuid, node, gpu, t, t, "replaced", 0.6, ev, final=True))
        return out

    def _slot_spans(self) -> dict[tuple[str, str, str], list[float]]:
        """The first and last step at which each board was seen in each slot:
        ``{(node, gpu, uuid): [first, last]}``, from the chunks' subqueries.

        The steps are those of a subquery of ``time()`` wherever a presence sample is in
        view, not the samples' own ``timestamp()``: Prometheus 2.42 evaluates
        ``timestamp()`` of a selector over a range by reading each series again from the start
        of the range at every step, which is quadratic in the chunk (one week of 208 GPUs at
        10-minute samples: 28.6 s a query, against 0.38 s this way). A step sees a sample
        through Prometheus' 5-minute lookback, so the subquery steps no further apart than
        that (with ``--step 10m`` on 10-minute samples 400 s before each step, it saw none):
        a board's first step is under 5 minutes after its first sample, its last step up to
        a lookback after its last on Prometheus, longer on VictoriaMetrics
        (:meth:`_last_sample_times` reads the exact time)."""
        seen: dict[tuple[str, str, str], list[float]] = {}
        n = self.n
        by = f"{n.node},{n.gpu},{n.uuid}"
        res = f"{min(self.c.step, LOOKBACK_S):.0f}s"
        for (a, b), p in itertools.product(self.c.chunks(), self.slots_by):
            window = f"{b - a + self.c.step:.0f}s"
            in_view = f"(time() * group by ({by}) ({n.named(p)}))"
            for fn, agg in (("min", min), ("max", max)):
                for sample in self.client.query(f"{fn}_over_time({in_view}[{window}:{res}])", b):
                    m = sample["metric"]
                    key = (m.get(n.node, ""), m.get(n.gpu, ""), m.get(n.uuid, ""))
                    if not key[2]:
                        continue
                    t = float(sample["value"][1])
                    span = seen.setdefault(key, [t, t])
                    span[0] = agg(span[0], t) if fn == "min" else span[0]
                    span[1] = agg(span[1], t) if fn == "max" else span[1]
        return seen

    def _last_sample_times(self, boards: set[tuple[str, float]]) -> dict[str, float]:
        """The exact time of each board's last presence sample, read at the last step that
        saw it (``(uuid, step)``; one query per step and presence name): the ledger's time of
        a replaced board, the same on every engine.

        Read as the latest ``timestamp()`` in a subquery of two lookbacks before the step:
        the engines see a sample for different times after it (VictoriaMetrics' subquery
        steps saw a 10-minute sample 583 s on, an instant query no longer), and a subquery
        this short over a few boards costs nothing however it is evaluated."""
        at: dict[float, list[str]] = {}
        for uuid, step in boards:
            at.setdefault(step, []).append(uuid)
        found: dict[str, float] = {}
        res = min(self.c.step, LOOKBACK_S)
        window = f"{2 * self.lookback + res:.0f}s:{res:.0f}s"
        for step, uuids in sorted(at.items()):
            match = f'{self.n.uuid}=~"{"|".join(regex_literal(u) for u in sorted(uuids))}"'
            for p in self.slots_by:
                times = f"max_over_time(timestamp({with_matchers(p, match)})[{window}])"
                q = f"max by ({self.n.uuid}) ({times})"
                for sample in self.client.query(q, step):
                    uuid = sample["metric"].get(self.n.uuid, "")
                    t = float(sample["value"][1])
                    found[uuid] = max(t, found.get(uuid, t))
        return found


def _last_anywhere(spans: dict[tuple[str, str, str], list[float]]) -> dict[str, float]:
    """Each board's last step seen in any slot (:meth:`Scan._slot_spans`)."""
    last_anywhere: dict[str, float] = {}
    for (_node, _gpu, uuid), (_first, last) in spans.items():
        last_anywhere[uuid] = max(last, last_anywhere.get(uuid, last))
    return last_anywhere


def _duration(seconds: float) -> str:
    if seconds >= 86400:
        return f"{seconds / 86400:.1f}d"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 60:.0f}m"


def lookback_for(interval_s: float, step: float) -> float:
    """How far back a step looks: Prometheus' 5 minutes, or :data:`LATE` sample intervals, or
    one step (no sample falls between two steps), whichever is longest."""
    return max(LOOKBACK_S, LATE * interval_s, step)


def history_interval(client: Any, names: Sequence[str], config: ScanConfig) -> float:
    """The longest sample interval of the presence series ``names`` at the end of any chunk
    of the scan (:func:`~gpu_health.telemetry.freshness.measure`, as the scorer measures it,
    on the series the scan reads presence from; 0 where nothing reported): older history may
    be sparser than new (downsampled), and one lookback serves the whole scan."""
    ends = (b for _start, b in config.chunks())
    return max((freshness.measure(partial(client.query, at=b), names) for b in ends), default=0.0)


def scan(client: Any, schema: str, config: ScanConfig) -> list[Signal]:
    """All failure signals of ``schema`` (``ours`` or ``dcgm``) in [start, end]."""
    if schema not in SCHEMAS:
        raise UserError(f"labels: unknown schema {schema!r} (ours or dcgm)")
    config.validate()  # before any query walks its chunks
    names = [SCHEMAS[schema].presence]
    if schema == "dcgm":
        names.append(DCGM_RENAMED_NAMES.presence)
    if config.lookback is None:
        interval = history_interval(client, names, config)
        config = replace(config, lookback=lookback_for(interval, config.step), interval=interval)
        if config.lookback and config.lookback > LOOKBACK_S:
            log.info(
                "labels: a sample every %s in the history: each step reads a series' last "
                "sample of the %s before it (Prometheus' lookback is 5m)",
                _duration(interval),
                _duration(config.lookback),
            )
    sent = [name for name in names if _sent(client, name, config)]
    if not sent:
        # a wrong source, schema or range, not a fleet without failures: the header-only
        # ledger it gave (exit 0) replaced a reviewed one under --out
        raise UserError(
            f"labels: no GPU series ({schema} schema: {' or '.join(names)}) from "
            f"{iso_utc(config.start)} to {iso_utc(config.end)}: wrong --data-dir/--prometheus.url, "
            "--schema or time range?"
        )
    if DCGM_RENAMED_NAMES.presence not in sent:
        return Scan(client, SCHEMAS[schema], config).signals()
    both = (DCGM.presence, DCGM_RENAMED_NAMES.presence)
    out = Scan(client, DCGM, config, slots_by=both).signals()
    return out + Scan(client, DCGM_RENAMED_NAMES, config, slots_by=()).signals()


def _sent(client: Any, name: str, config: ScanConfig) -> bool:
    """Whether any GPU sent ``name`` in the scan's range (then its scan is worth its queries):
    asked chunk by chunk, as the scan reads the history, never over the whole range at once."""
    for a, b in config.chunks():
        span = f"{b - a + APPEAR_SECONDS:.0f}s"
        got = client.query(f"count(last_over_time({name}[{span}]))", b)
        if got and float(got[0]["value"][1]) > 0:
            return True
    return False
