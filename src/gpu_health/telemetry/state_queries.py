"""The PromQL evidence of the GPU state model (:mod:`gpu_health.telemetry.state`), both schemas.

Kept apart from the classification so each stays small: this module only builds query text (the
windows and XID lists it uses are the model's constants), the state module runs the queries and
classifies the answers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gpu_health.telemetry.catalogue import by_name
from gpu_health.telemetry.freshness import DEFAULT_FRESH, DEFAULT_FRESH_S
from gpu_health.telemetry.schema import DCGM_NODE_ALIAS, DCGM_NODE_LABEL, node_named
from gpu_health.telemetry.xids import APPLICATION_XIDS, DCGM_XID_CODE_LABEL, RESET_REQUIRED_XIDS

#: XIDs that leave the GPU unusable until a reset (the project's one list,
#: :data:`~gpu_health.telemetry.xids.RESET_REQUIRED_XIDS`: the codes the mixin pages for).
HARD_XIDS: tuple[int, ...] = RESET_REQUIRED_XIDS
#: How long a hard XID or an uncorrectable error keeps a GPU failed (awaiting its reset) once
#: the count that reported it has cleared (our exporter's XID counts and the volatile
#: uncorrectable count keep it failed for as long as they stay above zero).
HARD_WINDOW = "24h"
#: A GPU with no sample in this window is absent (at scrape intervals up to 20 minutes; one and
#: a half intervals of sparser data: :mod:`gpu_health.telemetry.freshness`).
FRESH = DEFAULT_FRESH
#: :data:`FRESH` in seconds: a silent GPU whose last sample is this much older than its node's
#: last sample fell silent on its own, before its node.
FRESH_S = DEFAULT_FRESH_S
#: How far back GPUs are remembered (absent and replaced are only known within it).
LOOKBACK = "7d"
#: Resolution of the last-seen time (a subquery step: cost grows with LOOKBACK / this).
LAST_SEEN_STEP = "5m"
#: A scrape target that failed every scrape this long (``up`` 0) no longer reports its GPUs
#: (a run's window is at least two scrape intervals:
#: :func:`gpu_health.telemetry.freshness.scrapes_failed_range`).
SCRAPES_FAILED = "2m"
#: A single health penalty of at least this many points makes a reporting GPU degraded.
DEGRADED_PENALTY = 10.0

Identity = tuple[str, str, str, str]


@dataclass(frozen=True)
class Labels:
    """The identity label names of one schema."""

    node: str
    gpu: str
    uuid: str
    model: str
    #: Another name of the node label, read as :attr:`node` (dcgm-exporter's ``hostname``).
    node_alias: str = ""

    @property
    def by(self) -> str:
        return f"{self.node}, {self.gpu}, {self.uuid}, {self.model}"

    def named(self, expr: str) -> str:
        """``expr`` with the node under :attr:`node` on every series (:func:`node_named`)."""
        return node_named(expr, self.node, self.node_alias)

    def identity(self, metric: Mapping[str, Any]) -> Identity:
        return (
            str(metric.get(self.node, "")),
            str(metric.get(self.gpu, "")),
            str(metric.get(self.uuid, "")),
            str(metric.get(self.model, "")),
        )


LABELS = {
    "ours": Labels("node", "gpu", "uuid", "model"),
    "dcgm": Labels(DCGM_NODE_LABEL, "gpu", "UUID", "modelName", node_alias=DCGM_NODE_ALIAS),
}


def _dcgm(metric: str, **labels: str) -> list[str]:
    """dcgm-exporter field names carrying our ``metric{labels}`` (from the catalogue), each
    under both names dcgm-exporter has sent it (DCGM 4.6's since dcgm-exporter 4.9,
    :data:`~gpu_health.telemetry.catalogue.DCGM_RENAMED`): every query reads each name apart
    and joins them with ``or``, so a GPU counts under either."""
    fields = [
        f for f in by_name()[metric].dcgm if all(f.labels.get(k) == v for k, v in labels.items())
    ]
    return sorted({n for f in fields for n in (f.name, f.renamed) if n})


def _any_of(names: Sequence[str], template: str, lab: Labels) -> str:
    """``max by (identity)`` of ``template`` over each field, joined with ``or`` ("" for none)."""
    return " or ".join(f"max by ({lab.by}) ({lab.named(template.format(sel=n))})" for n in names)


def state_queries(
    schema: str, fresh: str = FRESH, change: str = FRESH, scrapes_failed: str = SCRAPES_FAILED
) -> dict[str, str]:
    """Evidence name -> PromQL returning one series per GPU (plus ``xid`` for hard XIDs in our
    schema; dcgm-exporter's hard XIDs are read out of ``recent_xid``, whose value is the code).

    Every evidence query is a filter: a GPU in the result has that evidence. ``fresh`` lists
    the GPUs reporting now (a sample within the ``fresh`` range: :data:`FRESH`, or one and a
    half scrape intervals of sparser data, :mod:`gpu_health.telemetry.freshness`); ``seen``
    every GPU that reported in the LOOKBACK. The time of an absent GPU's last sample comes from
    :func:`last_seen_query`, asked only for absent GPUs. ``change``: the recent window of the
    evidence read over samples (a health penalty, an increase of a violation counter), which
    must always hold two of them (:func:`gpu_health.telemetry.freshness.change_seconds`).

    A GPU whose scrape target (``job``, ``instance``) failed every scrape of the last
    ``scrapes_failed`` (Prometheus' ``up`` 0) is not ``fresh`` however recent its last sample:
    a hung exporter or host leaves 30 minutes of samples in the presence window, and the
    fleet's GPUs read healthy meanwhile while GPUExporterDown paged. Where no ``up`` is stored
    (a backfilled history) nothing changes.
    """
    return {name: q for name, q in _queries(schema, fresh, change, scrapes_failed).items() if q}


def _presence_series(schema: str) -> tuple[str, ...]:
    """The series whose samples say a GPU is reporting (an exporter always sends one)."""
    if schema == "ours":
        return ("gpu_up", "gpu_power_watts")
    return tuple(_dcgm("gpu_temperature_celsius", sensor="gpu"))


def regex_literal(text: str) -> str:
    """``text`` as a literal inside a PromQL regex in a double-quoted string: letters, digits,
    ``-`` and ``_`` as they are (a UUID reads as itself), anything else escaped for the regex
    and then for the string."""
    out = []
    for c in text:
        if c.isalnum() or c in "-_":
            out.append(c)
        elif c == '"':
            out.append('\\"')  # not a regex character: escaped for the string only
        elif c == "\\":
            out.append("\\" * 4)  # \\\\ in the string is \\ in the regex: one backslash
        elif not c.isprintable():
            out.append(f"\\\\x{{{ord(c):x}}}")  # RE2's \x{hh}
        else:
            out.append("\\\\" + c)  # \\. in the string is \. in the regex
    return "".join(out)


def last_seen_query(schema: str, uuids: Sequence[str]) -> str:
    """The last LAST_SEEN_STEP step of the LOOKBACK at which each of ``uuids`` had a sample
    (within the engine's lookback: 5 minutes on Prometheus by default, about a scrape interval
    on VictoriaMetrics): a step time at most that long after the GPU's last sample, which
    :func:`last_sample_query` then reads exactly.

    Why the step's time and not ``timestamp()``: Prometheus evaluates ``timestamp()`` of a
    series selector inside a subquery by looking the series up again at every step (10.87 s
    against 0.61 s for both steps of this form, for 200 absent GPUs of a 2,000-GPU history:
    ``bench/bench_last_seen.py``), while ``time()`` times a ``group`` of the series is read as
    every other subquery is."""
    lab = LABELS[schema]
    pattern = "|".join(regex_literal(u) for u in uuids)
    names = [f'{n}{{{lab.uuid}=~"{pattern}"}}' for n in _presence_series(schema)]
    stepped = f"max_over_time((time() * group without () ({{sel}}))[{LOOKBACK}:{LAST_SEEN_STEP}])"
    return _any_of(names, stepped, lab)


def last_sample_query(schema: str, stepped: Mapping[str, float], reach: str = FRESH) -> str:
    """The exact time of each GPU's last sample, read back from the step
    :func:`last_seen_query` found for it (``uuid -> step time``): the latest ``timestamp()`` in
    a short subquery ending at that step (the ``@`` modifier), ``reach`` long. The step may lie
    up to the engine's lookback after the sample, which on VictoriaMetrics grows with the
    scrape interval (a 30-minute sample was seen from a step 1,795 s on, where an instant
    lookup at that step found nothing), so ``reach`` is the presence window, which is at least
    one and a half scrape intervals. A subquery of a few steps per GPU costs little however
    ``timestamp()`` is evaluated. GPUs found at the same step (a node, or a fleet, that went
    silent at once) share one term: the query stays short (the report sends it in a URL)."""
    lab = LABELS[schema]
    by_step: dict[float, list[str]] = {}
    for uuid, at in stepped.items():  # GPUs silent since the same step share one term
        by_step.setdefault(at, []).append(uuid)
    parts = []
    for name in _presence_series(schema):
        terms = " or ".join(
            f'max_over_time(timestamp({name}{{{lab.uuid}=~"'
            f'{"|".join(regex_literal(u) for u in sorted(uuids))}"}})'
            f"[{reach}:{LAST_SEEN_STEP}] @ {at:.3f})"
            for at, uuids in sorted(by_step.items())
        )
        parts.append(f"max by ({lab.by}) ({lab.named(terms)})")
    return " or ".join(parts)


def _queries(schema: str, fresh: str, change: str, scrapes_failed: str) -> dict[str, str]:
    lab = LABELS[schema]
    # the presence window, less the targets that failed every recent scrape
    reporting = (
        f"last_over_time({{sel}}[{fresh}]) unless on (job, instance) "
        f"(max_over_time(up[{scrapes_failed}]) == 0)"
    )
    by = lab.by
    hard = "|".join(str(x) for x in HARD_XIDS)
    app_codes = "|".join(str(x) for x in APPLICATION_XIDS)
    app_reasons = f"xid_({app_codes})"
    if schema == "ours":
        xid = f'gpu_xid_errors_total{{xid=~"{hard}"}}'
        # A GPU without health series (gpu_health_* dropped by relabelling, or an exporter
        # run with the health model off) has no penalty to read: it is judged as
        # dcgm-exporter's GPUs are, by a new XID and by PCIe replays or thermal/board-limit
        # violations. Not a GPU the health model scores: its penalties already weigh them.
        unscored = (
            f'unless on (uuid) last_over_time(gpu_health_score{{dimension="overall"}}[{fresh}])'
        )
        soft_xid = f'gpu_xid_errors_total{{xid!~"{hard}|{app_codes}"}}'
        violations = " or ".join(
            f"increase({name}[{change}]) > 0"
            for name in (
                "gpu_pcie_replays_total",
                'gpu_clock_event_seconds_total{reason=~"thermal|board_limit"}',
            )
        )
        return {
            # gpu_up (0 for a lost GPU) or power: an exporter always sends one of them
            "seen": _any_of(
                ("gpu_up", "gpu_power_watts"), f"last_over_time({{sel}}[{LOOKBACK}])", lab
            ),
            "fresh": _any_of(("gpu_up", "gpu_power_watts"), reporting, lab),
            "lost": f"max by ({by}) (last_over_time(gpu_up[{fresh}])) == 0",
            # The second part counts a counter first seen above zero inside the window (an
            # exporter that creates XID counters at their first event). The third: a count
            # still above zero, however old the event. Our exporter's XID counts run since boot
            # (kernel log) or since it started, and the XID alerts page on exactly that count
            # until it clears, so the GPU is failed as long as they page: before, a drained GPU
            # read healthy once its XID was 24 h old while GPUXidNvlinkError still paged.
            "hard_xid": (
                f"sum by ({by}, xid) (increase({xid}[{HARD_WINDOW}])) > 0 or "
                f"(max by ({by}, xid) (last_over_time({xid}[{HARD_WINDOW}])) > 0 unless "
                f"max by ({by}, xid) (last_over_time({xid}[{HARD_WINDOW}] offset {HARD_WINDOW})))"
                f" or max by ({by}, xid) (last_over_time({xid}[{fresh}])) > 0"
            ),
            # an error in the window, or a volatile count no reset has cleared since
            "uncorrectable_ecc": (
                f'sum by ({by}) (increase(gpu_ecc_errors_total{{type="uncorrected"}}'
                f"[{HARD_WINDOW}])) > 0 or max by ({by}) (last_over_time("
                f'gpu_ecc_errors_total{{type="uncorrected",scope="volatile"}}[{fresh}])) > 0'
            ),
            "remap_failed": f"max by ({by}) (last_over_time(gpu_row_remap_failed[{fresh}])) > 0",
            "remap_pending": f"max by ({by}) (last_over_time(gpu_row_remap_pending[{fresh}])) > 0",
            "health_penalty": (
                f"max by ({by}, reason) (max_over_time(gpu_health_penalty"
                f'{{dimension!="overall",reason!~"{app_reasons}"}}'
                f"[{change}])) >= {DEGRADED_PENALTY:g}"
            ),
            "recent_xid": f"max by ({by}, xid) (increase({soft_xid}[{change}]) > 0) {unscored}",
            "violations": f"max by ({by}) ({violations}) {unscored}",
        }
    xid_fields = _dcgm("gpu_xid_errors_total")
    # dcgm-exporter keeps only the last XID code in a gauge (the value is the code) until a
    # reset, so a non-zero value is not an event: an XID happened in the window when the gauge
    # changed in it (its last change then landed on the code it holds now), or when the GPU's
    # gauge first appeared in it, no sample of that UUID (under any Hostname) in the window
    # before: a new GPU whose first sample already holds a code. A GPU that kept an old code
    # (from days ago) through the window, or reappears under a new Hostname after an exporter
    # restart, has no new event. Only the code held at the end of the window is judged: a 74
    # followed by a 43 in the same window reads as a 43. The look before is one window, not
    # the LOOKBACK: this expression is repeated in five branches and a 7-day range over every
    # GPU in each would multiply the query's samples by 7 (a GPU silent for more than a day
    # that comes back still holding a code therefore reads as a new event).
    # dcgm-exporter since 3.3.6-3.4.2 puts the code in a label as well (a new code is a new
    # series that never changes: DCGM_XID_CODE_LABEL), so series are matched on (UUID, code):
    # the new code's series appeared in the window. Without the label that is the UUID alone.
    # The gauge under either of its names (dcgm-exporter 4.9 renamed it) is read apart and the
    # two joined with ``or``; a series that first appeared in the window is new only when the
    # GPU had the code under neither name the window before: an exporter upgrade that renames
    # a gauge still holding an old code is no event.
    code = DCGM_XID_CODE_LABEL
    not_app = "".join(f" != {x}" for x in APPLICATION_XIDS)
    before = "".join(
        f" unless on ({lab.uuid}, {code}) last_over_time({n}[{HARD_WINDOW}] offset {HARD_WINDOW})"
        for n in xid_fields
    )

    def recent_xid(name: str) -> str:
        last_xid = f"last_over_time({name}[{HARD_WINDOW}])"
        recent = (
            f"and on ({lab.uuid}, {code}) (changes({name}[{HARD_WINDOW}]) > 0 or "
            f"({last_xid}{before}))"
        )
        return f"(max by ({by}, {code}) ({lab.named(f'({last_xid} > 0){not_app}')}) {recent})"

    # No "hard_xid" query: the gauge's value is the code, so the hard XIDs are the
    # "recent_xid" answers holding one of HARD_XIDS (gpu_health.telemetry.state reads them out).
    # One query instead of a branch per code: each branch scanned every GPU's gauge over
    # HARD_WINDOW again, twelve times over for the twelve codes.
    return {
        "seen": _any_of(
            _dcgm("gpu_temperature_celsius", sensor="gpu"),
            f"last_over_time({{sel}}[{LOOKBACK}])",
            lab,
        ),
        "fresh": _any_of(_dcgm("gpu_temperature_celsius", sensor="gpu"), reporting, lab),
        "uncorrectable_ecc": " or ".join(
            (
                _any_of(
                    _dcgm("gpu_ecc_errors_total", type="uncorrected"),
                    f"increase({{sel}}[{HARD_WINDOW}]) > 0",
                    lab,
                ),
                _any_of(
                    _dcgm("gpu_ecc_errors_total", type="uncorrected", scope="volatile"),
                    f"last_over_time({{sel}}[{fresh}]) > 0",
                    lab,
                ),
            )
        ),
        "remap_failed": _any_of(
            _dcgm("gpu_row_remap_failed"), f"last_over_time({{sel}}[{fresh}]) > 0", lab
        ),
        "remap_pending": _any_of(
            _dcgm("gpu_row_remap_pending"), f"last_over_time({{sel}}[{fresh}]) > 0", lab
        ),
        "recent_xid": " or ".join(recent_xid(n) for n in xid_fields),
        "violations": _any_of(
            _dcgm("gpu_pcie_replays_total")
            + _dcgm("gpu_clock_event_seconds_total", reason="thermal")
            + _dcgm("gpu_clock_event_seconds_total", reason="board_limit"),
            f"increase({{sel}}[{change}]) > 0",
            lab,
        ),
    }
