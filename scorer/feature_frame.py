"""Computing a feature frame: the inventory of present GPUs and the features' queries.

Serving runs it at "now", training at past timestamps, with the same query strings. Split from
:mod:`gpu_health.scorer.features`, which re-exports every public name here.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from gpu_health.scorer import node_label
from gpu_health.scorer.feature_plan import Answer, combine, plan_queries
from gpu_health.scorer.feature_promql import PART_LABEL, window_seconds
from gpu_health.scorer.feature_schema import (
    SCHEMAS,
    Schema,
    SchemaName,
    identity_of,
    inventory_query,
    presence_names,
    schema_by_name,
)
from gpu_health.scorer.feature_table import FEATURES, Feature
from gpu_health.scorer.history_source import (
    CHECKED_OFFSETS,
    HistoryMode,
    HistorySource,
    Querier,
    choose,
)
from gpu_health.scorer.promclient import PromClient, PrometheusError
from gpu_health.telemetry.catalogue import DCGM_BASE_UNITS, DCGM_RENAMED
from gpu_health.telemetry.freshness import fresh_range, measure
from gpu_health.telemetry.state import regex_literal

# The logger keeps the name it had before the split so log filters and configs still match.
log = logging.getLogger("gpu_health.scorer.features")


def count_gpus(client: PromClient, schema: SchemaName, start: float, end: float) -> int:
    """GPUs (UUIDs) that reported at any time in [start, end]: zero means a wrong source."""
    s = schema_by_name(schema)
    names = presence_names(s)
    span = max(1, math.ceil(end - start))
    query = f'count(group by ({s.uuid}) (last_over_time({{__name__=~"{names}"}}[{span}s])))'
    result = client.query(query, end)
    return int(float(result[0]["value"][1])) if result else 0


@dataclass
class FeatureFrame:
    """Feature values of every present GPU at one evaluation time (NaN = missing)."""

    at: float | None
    schema: SchemaName
    gpus: list[tuple[str, str, str, str]]
    names: tuple[str, ...]
    values: npt.NDArray[np.float64]
    failed_queries: int = 0
    #: Which history the features were read from (:mod:`gpu_health.scorer.history_source`).
    history: HistorySource = "raw"

    def column(self, name: str) -> npt.NDArray[np.float64]:
        return self.values[:, self.names.index(name)]

    def select(self, names: Sequence[str]) -> npt.NDArray[np.float64]:
        """Columns in the given order; a name this frame lacks is all-NaN."""
        out = np.full((len(self.gpus), len(names)), np.nan)
        for j, name in enumerate(names):
            if name in self.names:
                out[:, j] = self.values[:, self.names.index(name)]
        return out


def presence_window(client: Querier, at: float | None) -> str:
    """How recent a GPU's last sample must be at ``at`` for it to count as present: 30
    minutes, or one and a half scrape intervals of sparser data
    (:mod:`gpu_health.telemetry.freshness`)."""
    return fresh_range(measure(lambda promql: client.query(promql, at)))


def detect_schema(client: PromClient, at: float | None = None) -> SchemaName:
    """The schema with more GPUs reporting; ours when neither has any (then nothing scores)."""
    fresh = presence_window(client, at)
    counts = {
        name: len(client.query(inventory_query(replace(schema_by_name(name), fresh=fresh)), at))
        for name in SCHEMAS
    }
    best: SchemaName = "dcgm" if counts["dcgm"] > counts["ours"] else "ours"
    log.debug("schema detection: %s -> %s", counts, best)
    return best


def compute_features(
    client: PromClient,
    schema: SchemaName,
    at: float | None = None,
    features: Iterable[Feature] = FEATURES,
    workers: int = 4,
    keep: Callable[[str], bool] | None = None,
    shard_regex: str | None = None,
    share_parts: bool = True,
    fresh: str | None = None,
    history: HistoryMode = "raw",
    totals: bool | None = None,
) -> FeatureFrame:
    """Run the inventory and the features' queries, each distinct query once
    (:func:`~gpu_health.scorer.feature_plan.plan_queries`; ``share_parts=False`` sends every
    feature's whole expression instead); a failed query leaves NaN in every feature that
    reads it.

    With ``shard_regex`` (``Shard.uuid_regex()``) every per-GPU selector carries
    ``uuid=~shard_regex`` so Prometheus evaluates only this shard's series; the inventory and the
    fleet medians still cover the whole fleet. ``fresh``: the presence window
    (:func:`presence_window`), measured here when not given. Raises :class:`PrometheusError`
    only when the presence window or the inventory cannot be read.

    ``history``: read the raw series, the 5-minute samples the mixin's recording rules keep
    of them, their hourly samples for windows of a week or more, or each of those where it
    holds every GPU the raw series hold, now and up to 30 days back (``auto``;
    :mod:`gpu_health.scorer.history_source`). The 5-minute series' own presence window is
    measured then: ``fresh`` is the raw data's.

    ``totals``: read our exporter's per-GPU totals of its split counters
    (:attr:`~gpu_health.scorer.feature_schema.Schema.totals`); None: where every GPU sent them
    through the window (:func:`totals_readable`).
    """
    s = replace(schema_by_name(schema), fresh=fresh or presence_window(client, at))
    s = node_label.node_read_once(client, s, at)
    reader, source = choose(client, s, at, history)
    if source.startswith("recorded"):
        s = replace(s, fresh=presence_window(reader, at))
    feats = tuple(features)
    inventory = reader.query(inventory_query(s), at)
    identities = {identity_of(s, r["metric"]) for r in inventory}
    _warn_without_uuid(s, sum(1 for ident in identities if not ident[2]))
    _warn_repeated(s, _repeated(reader, s, at))
    s = replace(s, volatile_ecc_fallback=volatile_ecc_needed(reader, s, at))
    s = replace(s, names="renamed" if renamed_fields_sent(reader, s, at) else "legacy")
    identities = {ident for ident in identities if ident[2]}
    gpus = one_identity_per_gpu(reader, s, at, identities)
    if keep is not None:
        gpus = [g for g in gpus if keep(g[2])]
    if shard_regex and all(re.fullmatch(shard_regex, g[2]) for g in gpus):
        # Server-side filtering only when the regex covers every GPU this shard owns (UUIDs not
        # of the GPU-/MIG- form are assigned by hash and can only be filtered here).
        s = replace(s, shard_matcher=f'{s.uuid}=~"{shard_regex}"')
    s = replace(s, totals=totals_readable(reader, s, at) if totals is None else totals)
    row = {g[2]: i for i, g in enumerate(gpus)}
    plan = plan_queries(s, feats, share_parts)

    def run(k: int) -> Answer | None:
        if not gpus:
            return []
        try:
            result = reader.query(plan.queries[k], at)
        except PrometheusError as exc:
            readers = ", ".join(
                f.name for f, uses in zip(feats, plan.uses, strict=True) if k in uses
            )
            log.warning("feature %s failed: %s", readers, exc)
            return None
        answer: Answer = []
        for r in result:
            labels = r["metric"]
            assert isinstance(labels, dict)
            value = _float_or_nan(r["value"][1])
            part = labels.get(PART_LABEL, "")
            answer.append((labels.get(s.uuid, ""), labels.get(s.model, ""), value, part))
        return answer

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        answers = list(pool.map(run, range(len(plan.queries))))
    failed = sum(a is None for a in answers)
    values = np.full((len(gpus), len(feats)), np.nan)
    for j, (f, uses) in enumerate(zip(feats, plan.uses, strict=True)):
        parts = [answers[k] for k in uses]
        if not uses or any(a is None for a in parts):
            continue
        values[:, j] = combine(f.build, (a for a in parts if a is not None), row, s, share_parts)
    for j, f in enumerate(feats):
        if f.from_inventory is not None:
            values[:, j] = [f.from_inventory(g) for g in gpus]
    return FeatureFrame(at, schema, gpus, tuple(f.name for f in feats), values, failed, source)


Identity = tuple[str, str, str, str]


#: The last count of GPUs without a UUID label that was logged (logged again only when it
#: changes, so a serving scorer does not repeat it every run).
_last_without_uuid: dict[str, int] = {}


def _warn_without_uuid(s: Schema, count: int) -> None:
    """One log line when GPUs report without the schema's UUID label: dcgm-exporter started
    with ``-o``/``--use-old-namespace`` names it ``uuid``, and every such GPU would otherwise
    collapse into one nameless row per model holding their sums."""
    if _last_without_uuid.get(s.name, 0) == count:
        return
    _last_without_uuid[s.name] = count
    if count:
        hint = " (dcgm-exporter -o/--use-old-namespace names it uuid)" if s.name == "dcgm" else ""
        log.warning(
            "%d GPU series of the %s schema have no %s label%s: they are left out",
            count,
            s.name,
            s.uuid,
            hint,
        )


def repetition_window(s: Schema) -> str:
    """The window of :func:`repeated_series_query`: four presence windows, so at least six
    scrape intervals (a presence window holds at least one and a half)."""
    return f"{round(4 * window_seconds(s.fresh))}s"


def repeated_series_query(s: Schema) -> str:
    """PromQL: each GPU (a MIG GPU's instance) with more than one power series that reports
    now and was reported all through :func:`repetition_window`, valued by how many.

    Copies reported side by side (two scrape jobs on one exporter, dcgm-exporter's
    ``KUBERNETES_VIRTUAL_GPUS``) each hold a sample of every scrape, and each reports now.
    Series that follow one another split the window's samples between them: a rename (an
    exporter restart), or Kubernetes job churn (a job's pod labels the series, the idle GPU's
    label set comes back between jobs). A series was reported all through when it holds at
    least three samples and at most one fewer than the most any series of its scrape job holds
    there (the job's targets share one scrape interval; one sample for the jitter of the
    window's edges). Two series that follow one another and both report now: the later one
    started within the presence window, so both pass only when no series of the job holds
    more than a presence window's samples plus two, every job and idle stretch of the fleet
    that short. Under three samples the check cannot tell and names nobody."""
    # power under each of dcgm-exporter's names (4.9 renamed it): a GPU's series under the
    # name it had before an upgrade does not report now, so it is never a copy
    names = replace(s, names="renamed").selectors_over_names("gpu_power_watts")
    assert names is not None
    by = ", ".join(x for x in (s.uuid, s.instance) if x)

    def copies(name: str) -> str:
        held = f"count_over_time({name}[{repetition_window(s)}])"
        whole = f"({held} >= on (job) group_left () (max by (job) ({held}) - 1)) > 2"
        return f"{whole} and last_over_time({name}[{s.fresh}])"

    each = [copies(n) for n in names]
    reported = each[0] if len(each) == 1 else " or ".join(f"({e})" for e in each)
    return f"count by ({by}) ({reported}) > 1"


def _repeated(client: Querier, s: Schema, at: float | None) -> tuple[int, int]:
    """(GPUs reported more than once at the same time, the most copies of one)."""
    try:
        result = client.query(repeated_series_query(s), at)
    except PrometheusError as exc:
        log.debug("repeated-series check failed: %s", exc)
        return 0, 0
    values = (_finite_or_nan(r["value"][1]) for r in result)
    copies = [int(v) for v in values if math.isfinite(v)]  # a broken engine's "abc" is no copy
    return len(copies), max(copies, default=0)


def volatile_ecc_only_query(s: Schema) -> str | None:
    """PromQL: how many GPUs reporting now (a sample in the presence window) send a volatile
    ECC counter of a type (corrected, uncorrected) but not its aggregate one; empty when none.
    None when the schema lacks either."""

    def reporting(names: list[str]) -> str:
        return " or ".join(f"group by ({s.uuid}) (last_over_time({n}[{s.fresh}]))" for n in names)

    parts = []
    for kind in ("corrected", "uncorrected"):
        volatile = s.selectors("gpu_ecc_errors_total", type=kind, scope="volatile")
        aggregate = s.selectors("gpu_ecc_errors_total", type=kind, scope="aggregate")
        if volatile is None or aggregate is None:
            return None
        parts.append(f"({reporting(volatile[0])}) unless on ({s.uuid}) ({reporting(aggregate[0])})")
    return f"count({' or '.join(f'({p})' for p in parts)})"


def volatile_ecc_needed(client: Querier, s: Schema, at: float | None) -> bool:
    """:attr:`Schema.volatile_ecc_fallback` for this run: whether some GPU reporting now sends
    volatile ECC counters without aggregate ones (True, as before the check, when it cannot
    be told)."""
    return _answers(client, volatile_ecc_only_query(s), at, True, "volatile-ECC")


def _answers(
    client: Querier, query: str | None, at: float | None, otherwise: bool, what: str
) -> bool:
    """Whether ``query`` returns a series; ``otherwise`` when there is no query or it fails
    (logged as the ``what`` check)."""
    if query is None:
        return otherwise
    try:
        return bool(client.query(query, at))
    except PrometheusError as exc:
        log.debug("%s check failed: %s", what, exc)
        return otherwise


#: How far back the features read our exporter's split counters: XIDs of the last 30 days, and
#: NVLink errors of the 23 days before the last week (tests/scorer/test_per_gpu_totals.py checks
#: that no feature reads them further back than the check looks).
TOTALS_REACH = "30d"


def missing_totals_query(s: Schema) -> str | None:
    """PromQL: the GPUs that sent a split counter without its per-GPU total (an exporter from
    before the totals) at the scored time or at any of the recorded history's check points
    back to :data:`TOTALS_REACH` (:data:`~gpu_health.scorer.history_source.CHECKED_OFFSETS`);
    empty when none. None for dcgm-exporter's schema.

    Two pairs are looked up in the presence window at each point: XID 79's counter, which our
    exporter starts at 0 on every board while it watches XIDs, against the XID total; NVLink
    link 0's replay counter against the replay total (the totals come from the same exporter
    release, so a GPU not watched for XIDs is still checked through its NVLink). Counting both
    over the whole 30 days would catch an older exporter between two points too, but read the
    four series whole: 6.06 M samples and 0.35-0.41 s on a 200-GPU fleet's 14 days, where the points
    read 13.5 k samples in 0.08-0.11 s (docs/scorer.md, "Reading history at scale")."""
    if s.name != "ours":
        return None
    # Only a GPU's series: the kernel log's XIDs at PCI addresses no inventoried GPU has are one
    # series without a uuid (gpu="unknown") and no total, in every current exporter that reads
    # the kernel log; they are no GPU, and counting them kept every run on the split counters.
    shard = f',{s.uuid}!=""' + (f",{s.shard_matcher}" if s.shard_matcher else "")
    pairs = (
        (
            f'gpu_xid_errors_total{{xid="79"{shard}}}',
            f"gpu_xid_errors_all_codes_total{s.shard_suffix}",
        ),
        (
            f'gpu_nvlink_errors_total{{link="0",type="replay"{shard}}}',
            f'gpu_nvlink_errors_all_links_total{{type="replay"{shard}}}',
        ),
    )
    parts = []
    for point in CHECKED_OFFSETS:
        back = round(window_seconds(point)) if point != "0s" else 0
        offset = f" offset {back}s" if back else ""
        for split, total in pairs:
            sent = f"group by ({s.uuid}) (last_over_time({split}[{s.fresh}]{offset}))"
            covered = f"group by ({s.uuid}) (last_over_time({total}[{s.fresh}]{offset}))"
            parts.append(f"({sent} unless on ({s.uuid}) {covered})")
    return " or ".join(parts)


#: The last count of GPUs without per-GPU totals that was logged (logged again only when it
#: changes).
_last_missing_totals: list[int] = []


def totals_readable(client: Querier, s: Schema, at: float | None) -> bool:
    """:attr:`Schema.totals` for this run: whether every GPU sent our exporter's per-GPU
    totals wherever it sent the split counters, over the whole reach of the features (False
    when it cannot be told, or on dcgm-exporter's schema: the split counters are always
    right, only slower). One log line says how many GPUs lack them, each time that changes:
    until their history ages out, every run reads the split counters, about five times the
    samples and four times the time (docs/benchmarks.md, "Our exporter's schema against
    dcgm-exporter's")."""
    query = missing_totals_query(s)
    if query is None:
        return False
    try:
        found = client.query(query, at)
    except PrometheusError as exc:
        log.debug("per-GPU totals check failed: %s", exc)
        return False
    missing = len({str(r["metric"].get(s.uuid, "")) for r in found})
    if _last_missing_totals != [missing]:
        _last_missing_totals[:] = [missing]
        if missing:
            log.info(
                "reading NVLink errors per link and XIDs per code: %d GPUs sent them without "
                "their per-GPU totals within %s (an exporter from before the totals); "
                "scoring reads more until that history is older than the window",
                missing,
                TOTALS_REACH,
            )
    return not missing


def renamed_fields_query(s: Schema) -> str | None:
    """PromQL: one series when some GPU reporting now (a sample in the presence window) sends a
    field under its DCGM 4.6 name (:data:`~gpu_health.telemetry.catalogue.DCGM_RENAMED`) or a
    field in base units in place of an older one
    (:data:`~gpu_health.telemetry.catalogue.DCGM_BASE_UNITS`), as dcgm-exporter 4.9's default
    counters file names them; empty when none. None for our schema. One lookup per name: a name
    no series has costs Prometheus an index lookup."""
    if s.name != "dcgm":
        return None
    names = {*DCGM_RENAMED.values(), *(new for new, _ in DCGM_BASE_UNITS.values())}
    return " or ".join(
        f"group(last_over_time({n}{s.shard_suffix}[{s.fresh}]))" for n in sorted(names)
    )


def renamed_fields_sent(client: Querier, s: Schema, at: float | None) -> bool:
    """Whether a GPU sends renamed fields now, which sets :attr:`Schema.names` for this run.
    True when the check fails: the renamed view reads every field under both names, so it reads
    a fleet on either naming (a legacy one as the legacy view does, in 1.07-1.20x the time:
    ``bench/bench_dcgm_renamed.py``, ``bench/bench_dcgm_renamed_at_scale.py``), while the
    legacy view would leave a 4.9 fleet without most of its features."""
    return _answers(client, renamed_fields_query(s), at, True, "renamed dcgm-exporter fields")


#: The last (GPUs, copies) of repeated series that was logged, per schema.
_last_repeated: dict[str, tuple[int, int]] = {}


def _warn_repeated(s: Schema, found: tuple[int, int]) -> None:
    """One log line when GPUs are reported more than once at the same time: two scrape jobs on
    one exporter, or dcgm-exporter with ``KUBERNETES_VIRTUAL_GPUS`` (a copy of every series per
    pod sharing the GPU). Their counters over less than a day are then summed once per copy
    (over a day or more the span reads each rise once: :meth:`Schema.rise`)."""
    if _last_repeated.get(s.name, (0, 0)) == found:
        return
    _last_repeated[s.name] = found
    gpus, copies = found
    if gpus:
        log.warning(
            "%d GPUs of the %s schema report each series up to %d times at once (two scrape "
            "jobs on one exporter, or dcgm-exporter's KUBERNETES_VIRTUAL_GPUS): their counters "
            "over less than a day read that many times",
            gpus,
            s.name,
            copies,
        )


#: One feature per signal whose dcgm-exporter fields a counters file decides, read to tell
#: which GPUs send none of it (every datacenter GPU has these; NVLink and page retirement are
#: absent on some boards by design, so they are not probed).
SIGNAL_PROBES: dict[str, str] = {
    "ECC": "ecc_corrected_per_day_7d",
    "clock-hold violations": "thermal_violation_active_hours_7d",
}


def partial_signals(frame: FeatureFrame) -> str | None:
    """One log line naming the GPUs (by node) that send none of a probed signal while other
    GPUs of the fleet do: part of a dcgm-exporter fleet runs its default counters. None when
    the whole fleet agrees (a signal nobody sends is named with the empty features)."""
    if frame.schema != "dcgm" or not frame.gpus:
        return None
    parts = []
    for signal, name in SIGNAL_PROBES.items():
        if name not in frame.names:
            continue
        missing = np.isnan(frame.column(name))
        if missing.any() and not missing.all():
            nodes = sorted({frame.gpus[i][0] for i in np.flatnonzero(missing)})
            shown = ", ".join(nodes[:5]) + (f" and {len(nodes) - 5} more" if len(nodes) > 5 else "")
            parts.append(f"{int(missing.sum())} of {len(missing)} GPUs send no {signal} ({shown})")
    if not parts:
        return None
    return "; ".join(parts) + (
        ": their dcgm-exporter runs without deploy/dcgm-exporter/gpu-health-counters.csv "
        "(its default counters leave them out), so those signals cannot be seen there"
    )


def one_identity_per_gpu(
    client: Querier, s: Schema, at: float | None, identities: set[Identity]
) -> list[Identity]:
    """One (node, gpu, uuid, model) per UUID, sorted: the one with the latest sample.

    Within the presence window (:attr:`Schema.fresh`) of a relabelling (an exporter pod restart
    renaming ``Hostname``, a reboot renumbering the GPUs) the inventory lists a UUID under both
    names; two rows for one GPU would rank it twice, once with no features. Only then one more query
    asks when each name last reported (a subquery, for those few GPUs only).
    """
    names: dict[str, list[Identity]] = {}
    for ident in identities:
        names.setdefault(ident[2], []).append(ident)
    split = sorted(u for u, idents in names.items() if len(idents) > 1)
    if not split:
        return sorted(identities)
    latest: dict[Identity, float] = {}
    signals = presence_names(s)
    for start in range(0, len(split), 50):  # bounded query size for a mass relabelling
        pattern = "|".join(regex_literal(u) for u in split[start : start + 50])
        selector = f'{{__name__=~"{signals}",{s.uuid}=~"{pattern}"}}'
        last_sample = f"max_over_time(timestamp({selector})[{s.fresh}:1m])"
        query = f"max by ({s.by}) ({s.named(last_sample)})"
        try:
            result = client.query(query, at)
        except PrometheusError as exc:
            log.warning("could not tell which name of a relabelled GPU is current: %s", exc)
            result = []
        for r in result:
            latest[identity_of(s, r["metric"])] = _finite_or_nan(r["value"][1])

    def recency(ident: Identity) -> tuple[float, Identity]:
        t = latest.get(ident, math.nan)
        return (t if math.isfinite(t) else -math.inf, ident)

    return sorted(max(idents, key=recency) for idents in names.values())


def _float_or_nan(raw: object) -> float:
    """A sample value as Prometheus wrote it (±Inf kept for a median), NaN if unparsable."""
    try:
        return float(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan


def _finite_or_nan(raw: object) -> float:
    """A sample value as a finite float, or NaN (missing) for NaN, ±Inf and anything unparsable."""
    value = _float_or_nan(raw)
    return value if math.isfinite(value) else math.nan
