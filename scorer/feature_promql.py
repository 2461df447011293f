"""PromQL builders the feature table is written in: counters, gauges, ratios, peers, XIDs.

Each builder returns a function of the :class:`Schema` that yields the PromQL of one feature, or
None when the schema lacks the signal (the feature is then missing, never an error). Kept apart
from the table in :mod:`gpu_health.scorer.feature_table` so the table reads as a list of
definitions and the PromQL details live in one place.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

from gpu_health import cli_validate
from gpu_health.scorer.feature_schema import Schema
from gpu_health.telemetry.readings import CLOCK_EVENT_REASONS
from gpu_health.telemetry.xids import (
    APPLICATION_XIDS,
    DCGM_XID_CODE_LABEL,
    NVLINK5_XIDS,
    XID_CATALOGUE,
)

#: A feature builds its PromQL for a schema, or returns None when the schema lacks the signal.
Builder = Callable[[Schema], str | None]


def _scaled(expr: str, scale: float) -> str:
    return expr if scale == 1.0 else f"({expr}) * {scale:g}"


#: Windows at least this long read a counter as the smaller of its series' summed increases
#: and its span (:meth:`Schema.rise`); a shorter one holds too few samples of coarse data for
#: the span (which does not extrapolate to the window's edges) to match the increase: over
#: one hour of 30-minute data it would read half of it.
SPAN_WINDOW_HOURS = 24


#: Seconds in a PromQL window of the feature table or the schema (``24h``, ``7d``, ``45m``).
window_seconds = cli_validate.duration(0.0, 366 * 86400.0)


def _hours(window: str) -> float:
    """Hours in a PromQL window of the feature table (``24h``, ``7d``)."""
    return window_seconds(window) / 3600


def counter(metric: str, window: str, per: float = 1.0, **labels: str) -> Builder:
    """How much a volatile counter (one that restarts at zero on a GPU reset) rose over
    ``window``, one value per GPU, divided by ``per``: robust to a GPU's label sets coming
    back (:meth:`Schema.rise`) over a day or more, the summed increase of its series over
    less."""
    return _counter(metric, window, per, False, labels)


def board_life_counter(metric: str, window: str, per: float = 1.0, **labels: str) -> Builder:
    """:func:`counter` of a counter that never resets (aggregate ECC, remapped rows, retired
    pages), whose span is cheaper to read (:meth:`Schema.rise`)."""
    return _counter(metric, window, per, True, labels)


def _counter(
    metric: str, window: str, per: float, persistent: bool, labels: dict[str, str]
) -> Builder:
    hours = _hours(window)

    def build(s: Schema) -> str | None:
        if hours >= SPAN_WINDOW_HOURS:
            found = s.rise(metric, window, persistent, **labels)
        else:
            found = s.aggregate("sum", "increase", metric, window, **labels)
        return None if found is None else _scaled(found[0], found[1] / per)

    return build


def gauge(fn: str, metric: str, window: str, **labels: str) -> Builder:
    """``fn_over_time`` of a gauge, one value per GPU (extra labels dropped).

    An average is the GPU's sum of samples over its count of samples, both summed over its
    series: a label change (driver upgrade) that splits the series mid-window leaves it exact.
    """

    def build(s: Schema) -> str | None:
        if fn == "avg_over_time":
            total = s.aggregate("sum", "sum_over_time", metric, window, **labels)
            count = s.aggregate("sum", "count_over_time", metric, window, **labels)
            if total is None or count is None:
                return None
            return _scaled(f"({total[0]}) / ({count[0]})", total[1])
        found = s.aggregate("max", fn, metric, window, **labels)
        return None if found is None else _scaled(*found)

    return build


def first_of(*builders: Builder) -> Builder:
    """The first builder's value, falling back to the next where it has none (PromQL ``or``)."""

    def build(s: Schema) -> str | None:
        parts = [e for e in (b(s) for b in builders) if e is not None]
        return " or ".join(f"({p})" for p in parts) if parts else None

    return build


def health_score(s: Schema) -> str | None:
    """The exporter's overall health score (dcgm-exporter has none)."""
    found = s.selectors("gpu_health_score", dimension="overall") if s.name == "ours" else None
    if found is None:
        return None
    return f"max by ({s.key}) (last_over_time({found[0][0]}[1h]))"


@dataclass(frozen=True)
class VsModel:
    """The GPU's value relative to the median of the GPUs of the same model (scale-free).

    As a :data:`Builder` it yields the whole expression, in which Prometheus evaluates the
    GPU's value twice: once for the GPU, once over the fleet for the median. The feature frame
    sends only the fleet's values and takes each model's median itself
    (:mod:`gpu_health.scorer.feature_plan`): one evaluation instead of two. The median is the
    whole fleet's, also for a scorer shard that asks only for its GPUs."""

    inner: Builder
    op: Literal["-", "/"]

    def fleet(self, s: Schema) -> str | None:
        """The values of every GPU of the fleet (a shard's matcher left out)."""
        return self.inner(replace(s, shard_matcher=""))

    def __call__(self, s: Schema) -> str | None:
        e = self.inner(s)
        if e is None:
            return None
        fleet = self.fleet(s) if s.shard_matcher else e
        return f"({e}) {self.op} on ({s.model}) group_left() quantile by ({s.model}) (0.5, {fleet})"


def vs_model(inner: Builder, op: Literal["-", "/"]) -> VsModel:
    """The GPU's value relative to its model's median (see :class:`VsModel`)."""
    return VsModel(inner, op)


def ratio(num: Builder, den: Builder) -> Builder:
    """``(num) / (den)``, absent when either side is absent in the schema."""

    def build(s: Schema) -> str | None:
        a, b = num(s), den(s)
        if a is None or b is None:
            return None
        return f"({a}) / ({b})"

    return build


@dataclass(frozen=True)
class TwoPart:
    """A feature that is a function of two queries: a recent value and the same value earlier.

    As a :data:`Builder` it yields the whole expression (the feature reference, and what a
    caller without a feature frame sends). The feature frame sends the two parts as queries of
    their own instead and combines them per GPU (:mod:`gpu_health.scorer.feature_plan`). Why:
    the recent part is usually another feature's whole query (the 24 h node excess inside its
    7-day change), and Prometheus then evaluates it once per scoring run instead of twice. Both
    parts are aggregated by the GPU's UUID and model, so matching them per GPU is the whole
    expression's vector matching."""

    kind: Literal["diff", "log_change"]
    recent: Builder
    baseline: Builder

    def __call__(self, s: Schema) -> str | None:
        a, b = self.recent(s), self.baseline(s)
        if a is None or b is None:
            return None
        if self.kind == "diff":
            return f"({a}) - ({b})"
        return f"ln(1 + clamp_min({a}, 0)) - ln(1 + clamp_min({b}, 0))"


def diff(a: Builder, b: Builder) -> TwoPart:
    """``(a) - (b)``, sent as two queries by the feature frame (see :class:`TwoPart`)."""
    return TwoPart("diff", a, b)


_EARLIER = re.compile(r"\] offset (\d+[hd])\)")


def offset_by(inner: Builder, offset: str) -> Builder:
    """The same expression evaluated ``offset`` ago (every range selector shifted). A
    :class:`VsModel` stays one, with its GPU's value shifted (the same PromQL), so the feature
    frame can still take its median itself; a :class:`NodeExcess` stays one, with its whole
    expression and its parts shifted."""
    if isinstance(inner, VsModel):
        return VsModel(offset_by(inner.inner, offset), inner.op)
    if isinstance(inner, NodeExcess):
        return NodeExcess(offset_by(inner.whole, offset), offset_by(inner.pieces, offset))

    shift = _hours(offset)

    def later(found: re.Match[str]) -> str:
        return f"] offset {_hours(found.group(1)) + shift:g}h)"

    def build(s: Schema) -> str | None:
        e = inner(s)
        if e is None:
            return None
        # a selector already read some time ago (a board-life counter's reading at the start
        # of its window) moves back by as much
        e = _EARLIER.sub(later, e)
        return e.replace("])", f"] offset {offset})")

    return build


def xid_events(window: str) -> Builder:
    """XID events in the window: our counters' increase; dcgm's last-XID gauge's changes, plus
    the codes whose series appeared in the window (:func:`_codes_born`)."""

    def build(s: Schema) -> str | None:
        if s.name == "ours":
            counted = counter("gpu_xid_errors_total", window)(s)
            assert counted is not None
            if s.totals:  # a code born in the window raises the total by its first count
                return counted
            return _plus_born(s, counted, _first_counts_born(s, window))
        return _plus_born(s, _xid_changes(s, window), _codes_born(s, window))

    return build


def _xid_names(s: Schema) -> list[str]:
    """dcgm-exporter's XID gauge: its name, and in the renamed view its legacy name after it."""
    found = s.selectors_over_names("gpu_xid_errors_total")
    assert found is not None
    return found


def _xid_changes(s: Schema, window: str) -> str:
    """Per GPU: the changes of dcgm-exporter's XID gauge in the window, summed over its names
    (an exporter upgrade that renames it ends one series and starts the other on the code the
    GPU holds, which is no change)."""
    parts = [f"max by ({s.key}) (changes({n}[{window}]))" for n in _xid_names(s)]
    return parts[0] if len(parts) == 1 else s.tagged("sum", parts)


def with_matchers(selector: str, matchers: str) -> str:
    """``selector`` (a metric name, with or without ``{...}``) with ``matchers`` added."""
    if not matchers:
        return selector
    if selector.endswith("}"):
        return f"{selector[:-1]},{matchers}}}"
    return f"{selector}{{{matchers}}}"


def _plus_born(s: Schema, changed: str, born: str) -> str:
    """``changed + born`` per GPU, ``changed`` alone where no code was born: both tagged apart
    and summed, so neither expression is written (and evaluated) twice."""
    parts = " or ".join(
        f'label_replace({e}, "xid_part", "{tag}", "", "")'
        for e, tag in ((changed, "changes"), (born, "born"))
    )
    return f"sum by ({s.key}) ({parts})"


def _first_counts_born(s: Schema, window: str) -> str:
    """Per GPU: the first reading of each of our XID counters of a code outside the catalogue
    whose series appeared in the window, with nothing of that GPU and code in the window before.

    Our exporter starts every catalogued code at 0, so ``increase()`` sees its first event; any
    other code appears only at its first event in a boot, already at 1 or more, and
    ``increase()`` has no earlier reading to rise from. Its smallest reading in the window is
    that first count (the counter only rises until the next boot). A code whose series began
    before the window, or came back after a reboot inside it (a reset, which ``increase()``
    counts), is left to ``increase()``. Only the codes outside the catalogue are read: they are
    rare, so this costs next to nothing, while reading every code's series twice more made a
    whole feature run of our schema 1.2 times as long. Such codes are in no class, so only the
    "other" class and the all-codes count add them."""
    shard = f",{s.shard_matcher}" if s.shard_matcher else ""
    catalogued = "|".join(str(code) for code in XID_CATALOGUE)
    sel = f'gpu_xid_errors_total{{xid!~"{catalogued}"{shard}}}'
    first = f"min by ({s.key}, xid) (min_over_time({sel}[{window}]))"
    before = f"last_over_time({sel}[{window}] offset {window})"
    return f"sum by ({s.key}) ({first} unless on ({s.uuid}, xid) {before})"


def _codes_born(s: Schema, window: str, matchers: str = "") -> str:
    """Per GPU: the XID codes (of the series ``matchers`` keeps) whose dcgm-exporter series
    appeared in the window, with nothing of that GPU and code in the window before it.

    Since 3.3.6-3.4.2 dcgm-exporter puts the gauge's code in a label too
    (:data:`~gpu_health.telemetry.xids.DCGM_XID_CODE_LABEL`): each new code is a new series
    whose value never changes, so ``changes()`` reads 0 for every GPU and an XID is the birth
    of a series. Codes are counted once per GPU (a pod rename that splits a code's series is
    one code) and once per MIG instance group (every instance repeats the gauge). Only series
    that carry the label are read: on the older shape (one series whose value changes) both
    selections are empty, cost nothing, and the changes count alone, as before."""
    per_instance = _per_instance(s)
    codes = f"count by ({per_instance}) ({_codes_born_per_instance(s, window, matchers)})"
    return f"max by ({s.key}) ({codes})"


def _per_instance(s: Schema) -> str:
    """The GPU's key and, on MIG, its instance label: XID codes are counted per instance."""
    return ", ".join(x for x in (s.key, s.instance) if x)


def _codes_born_per_instance(s: Schema, window: str, matchers: str = "") -> str:
    """One series per GPU (MIG instance) and XID code born in the window
    (:func:`_codes_born`), labelled with the code."""
    names, code = _xid_names(s), DCGM_XID_CODE_LABEL
    coded = f'{code}!=""'

    def had(name: str, offset: str) -> str:
        return (
            f" unless on ({s.uuid}, {code}) "
            f"last_over_time({with_matchers(name, coded)}[{window}]{offset})"
        )

    # A code is born under a name when none of the GPU's names held it the window before; under
    # the renamed one (first), also when the legacy one did not hold it in the window: an
    # exporter upgrade carries the code a GPU holds over to the new name.
    before = "".join(had(n, f" offset {window}") for n in names)
    each = [
        f"(min_over_time({with_matchers(n, f'{coded},{matchers}' if matchers else coded)}"
        f"[{window}]) > 0){before}{''.join(had(m, '') for m in names[i + 1 :])}"
        for i, n in enumerate(names)
    ]
    born = each[0] if len(each) == 1 else " or ".join(f"({e})" for e in each)
    return f"group by ({_per_instance(s)}, {code}) ({born})"


def times(inner: Builder, factor: float) -> Builder:
    def build(s: Schema) -> str | None:
        e = inner(s)
        return None if e is None else _scaled(e, factor)

    return build


def level(metric: str, window: str) -> Builder:
    """Latest value of a cumulative gauge or counter, summed over its labels."""

    def build(s: Schema) -> str | None:
        found = s.aggregate("max", "last_over_time", metric, window)
        return None if found is None else _scaled(*found)

    return build


TEMP_GPU = {"sensor": "gpu"}
TEMP_MEM = {"sensor": "memory"}
ECC_CORR_VOL = {"type": "corrected", "scope": "volatile"}
ECC_CORR_AGG = {"type": "corrected", "scope": "aggregate"}
ECC_UNC_VOL = {"type": "uncorrected", "scope": "volatile"}
ECC_UNC_AGG = {"type": "uncorrected", "scope": "aggregate"}
DAY = 86400.0


def aggregate_first(aggregate: Builder, volatile: Builder) -> Builder:
    """An ECC signal from the aggregate (board-life) counters, from the volatile ones for GPUs
    without them (:func:`first_of`), or from the aggregate ones alone when the run found no
    such GPU (:attr:`Schema.volatile_ecc_fallback`). Aggregate counters come first: volatile
    ones reset on the driver reload that follows an uncorrectable error, often before a
    scrape could see the increment."""
    both = first_of(aggregate, volatile)

    def build(s: Schema) -> str | None:
        alone = None if s.volatile_ecc_fallback else aggregate(s)
        return alone if alone is not None else both(s)

    return build


def ecc(window: str, days: float, corrected: bool) -> Builder:
    vol, agg = (ECC_CORR_VOL, ECC_CORR_AGG) if corrected else (ECC_UNC_VOL, ECC_UNC_AGG)
    return aggregate_first(
        board_life_counter("gpu_ecc_errors_total", window, per=days, **agg),
        counter("gpu_ecc_errors_total", window, per=days, **vol),
    )


def reporting_gap(window: str) -> Builder:
    """Share of the window a GPU did not report, relative to the best-reporting GPU.

    Resets, fallen-off-the-bus episodes and driver reloads leave gaps; normalising by the fleet's
    median count makes it independent of the scrape interval. Samples are summed over every
    series of the GPU, so a label change (driver upgrade: one series ends, another begins)
    does not read as a gap; clamped to [0, 1] against duplicated series.
    """

    def build(s: Schema) -> str | None:
        # both of dcgm-exporter's names for power in its renamed view (Schema.names): an
        # exporter upgrade mid-window is a label change too
        found = s.aggregate("sum", "count_over_time", "gpu_power_watts", window)
        if found is None:
            return None
        count = found[0]
        return f"clamp_min(1 - ({count}) / scalar(quantile(0.5, {count})), 0)"

    return build


def temp_excess(sensor: dict[str, str], window: str) -> Builder:
    return vs_model(gauge("avg_over_time", "gpu_temperature_celsius", window, **sensor), "-")


#: A node's median is the reference for its GPUs only when at least this many of them report:
#: half of a common 8-GPU board, and never a board compared with one or two neighbours.
MIN_NODE_PEERS = 4


def _node_median(s: Schema, values: str, counted: str) -> str:
    """The median of ``values`` per node, for the nodes where ``counted`` has at least
    :data:`MIN_NODE_PEERS` series only: the reference both node comparisons take."""
    return (
        f"quantile by ({s.node}) (0.5, {values}) "
        f"and on ({s.node}) (count by ({s.node}) ({counted}) >= {MIN_NODE_PEERS})"
    )


@dataclass(frozen=True)
class NodeExcess:
    """The GPU's average of a gauge minus the median of the GPUs on its node
    (:func:`node_excess`).

    As a :data:`Builder` it yields the whole expression (the reference, and what
    ``share_parts=False`` sends). The feature frame sends :meth:`parts` instead, the sum and the
    count of the samples per (GPU, node name) piece of the window across the fleet, and takes
    the medians and the weighted average in the scorer
    (:func:`~gpu_health.scorer.feature_parts.node_excess_value`). Why: the whole expression
    reads the window eleven times (the GPU's average, its node's, its model's, the node's
    size and the weights each evaluate the range functions again), the parts twice."""

    whole: Builder
    pieces: Builder

    def __call__(self, s: Schema) -> str | None:
        return self.whole(s)

    def parts(self, s: Schema) -> str | None:
        """The sum (``sum:<node>``) and the count (``count:<node>``) of the samples per GPU
        and node name, over the whole fleet (the node's and the model's medians need every
        GPU, also for a scorer shard)."""
        return self.pieces(s)


def node_excess(metric: str, window: str, **labels: str) -> NodeExcess:
    """The GPU's average of a gauge minus the median of the GPUs on its node (our units).

    A node's GPUs share the inlet air, the aisle and usually the job, so a hot aisle, a warm
    rack or a busy job warms all of them alike and leaves the temperature's excess at zero,
    while one board whose own cooling fails stands out from its neighbours. The power's excess
    says how much of a temperature excess the GPU's own load explains (where jobs hold part of
    a node, an idle GPU beside busy ones reads cold and a busy one hot): the rule removes that
    part (``load`` in :class:`gpu_health.scorer.rules.Term`). Nodes with fewer than
    :data:`MIN_NODE_PEERS` reporting GPUs use the model's median instead.

    The node label is volatile on Kubernetes (dcgm-exporter without ``NODE_NAME`` reports its
    pod name as ``Hostname``), so the comparison is made per (GPU, node name) piece of the
    window, where a restart renames every GPU of the node at once, and the pieces are then
    averaged per GPU weighted by their samples: a restart mid-window leaves the value as it was.
    """

    def summed(s: Schema, fn: str, sels: list[str], group: str) -> str:
        """``fn`` over the window per ``group`` (labels), summed over the group's series and
        over the field's names (exact across series splits and across a rename)."""
        parts = [s.named(f"{fn}({n}[{window}])") for n in sels]
        if len(parts) == 1:
            return f"sum by ({group}) ({parts[0]})"
        return s.tagged("sum", parts, group)

    def average(s: Schema, sels: list[str], group: str) -> tuple[str, str]:
        """The mean of the samples per ``group`` and the group's sample count."""
        count = summed(s, "count_over_time", sels, group)
        return f"({summed(s, 'sum_over_time', sels, group)} / {count})", count

    def selected(
        make: Callable[[Schema, list[str], list[str], float], str],
    ) -> Builder:
        """``make`` of the schema, the GPU's (this shard's) selectors, the whole fleet's and
        the factor to our units; None where the schema lacks the gauge."""

        def build(s: Schema) -> str | None:
            found = s.selector(metric, **labels)
            names = s.selectors_over_names(metric, **labels)
            fleet_names = replace(s, shard_matcher="").selectors_over_names(metric, **labels)
            if found is None or names is None or fleet_names is None:
                return None
            return make(s, names, fleet_names, found[1])

        return build

    def whole(s: Schema, names: list[str], fleet_names: list[str], scale: float) -> str:
        by = f"{s.key}, {s.node}"
        mine, count = average(s, names, by)
        peers, peer_count = average(s, fleet_names, by)
        # The model's median is over GPUs, not pieces: a renamed node's GPUs count once.
        gpus, _ = average(s, fleet_names, s.key)
        node_ref = _node_median(s, peers, peer_count)
        model_ref = f"quantile by ({s.model}) (0.5, {gpus})"
        excess = (
            f"(({mine} - on ({s.node}) group_left () ({node_ref})) "
            f"or ({mine} - on ({s.model}) group_left () ({model_ref})))"
        )
        weighted = f"sum by ({s.key}) ({excess} * on ({by}) {count}) / sum by ({s.key}) ({count})"
        return _scaled(weighted, scale)

    def pieces(s: Schema, _: list[str], fleet_names: list[str], scale: float) -> str:
        by = f"{s.key}, {s.node}"
        tagged = []
        for part, fn in (("sum", "sum_over_time"), ("count", "count_over_time")):
            e = summed(s, fn, fleet_names, by)
            e = _scaled(e, scale) if part == "sum" else e
            tagged.append(f'label_replace({e}, "{PART_LABEL}", "{part}:$1", "{s.node}", "(.*)")')
        return " or ".join(tagged)

    return NodeExcess(selected(whole), selected(pieces))


#: How often :func:`node_noise` samples a reading (the last one within it): the scrape interval
#: of the coarsest fleets it was measured on, so those are read at every scrape and a
#: 15-second fleet at every 40th (a sample of its readings, not all of them).
NOISE_STEP = "10m"


def node_noise(metric: str, window: str) -> Builder:
    """``ln(1 + s)``, ``s`` the standard deviation over the window of the GPU's reading minus
    the median reading of its node's GPUs at the same instant (every :data:`NOISE_STEP`; our
    units).

    A node's GPUs usually run one job: when it ramps, pauses for communication or stops, all
    of them move together and the difference stays flat. What moves one board alone is its
    own: a voltage regulator losing regulation, a sagging input that browns the board out
    under load. Nodes with fewer than :data:`MIN_NODE_PEERS` reporting GPUs give no value (a
    model-wide median at each instant would mix unrelated jobs).

    Logarithmic because a healthy board's spread is skewed: where jobs hold parts of nodes,
    a few boards beside idle neighbours wander by tens of watts. Counted in watts against the
    lower half of their peers, those boards doubled (bench/rack_fleet.py) to sextupled
    (bench/k8s_fleet.py) the healthy GPU-days the rule alarmed on; on the logarithm a board
    counts by the ratio of its wandering to its peers' (docs/model-card.md, "Power wandering
    apart from its node").

    Per (GPU, node name) piece, as :func:`node_excess`, and the largest piece's value: a
    restart that renames the node mid-window leaves each piece's spread as it was.
    """

    def build(s: Schema) -> str | None:
        found = s.selector(metric)
        names = s.selectors_over_names(metric)
        fleet_names = replace(s, shard_matcher="").selectors_over_names(metric)
        if found is None or names is None or fleet_names is None:
            return None
        by = f"{s.key}, {s.node}"

        def last(sels: list[str]) -> str:
            """The GPU's last reading, under whichever name it had then (a rename)."""
            each = [s.named(f"last_over_time({n}[{NOISE_STEP}])") for n in sels]
            return f"max by ({by}) ({' or '.join(each)})"

        peers = last(fleet_names)
        node_ref = _node_median(s, peers, peers)
        apart = f"{last(names)} - on ({s.node}) group_left () ({node_ref})"
        spread = f"max by ({s.key}) (stddev_over_time(({apart})[{window}:{NOISE_STEP}]))"
        return f"ln(1 + {_scaled(spread, found[1])})"

    return build


def temp_per_watt(sensor: dict[str, str], window: str) -> Builder:
    """Temperature per watt relative to model peers: thermal resistance, load-normalised."""
    return vs_model(
        ratio(
            gauge("avg_over_time", "gpu_temperature_celsius", window, **sensor),
            gauge("avg_over_time", "gpu_power_watts", window),
        ),
        "/",
    )


def violation_share(window: str, seconds: float, reason: str = "thermal") -> Builder:
    """Share of the window the clocks were held by ``reason`` (violation time / wall time)."""
    return counter("gpu_clock_event_seconds_total", window, per=seconds, reason=reason)


#: XID codes by the failure class they announce (NVIDIA's XID catalogue, docs.nvidia.com/deploy/
#: xid-errors): memory = double-bit ECC, page retirement/row remap events, high single-bit
#: rate, contained/uncontained ECC; bus = GPU fell off the bus; NVLink = NVLink error (74, and
#: 144-150 on NVLink5 boards).
XID_CLASSES: dict[str, tuple[int, ...]] = {
    "memory": (48, 63, 64, 92, 94, 95),
    "bus": (79,),
    "nvlink": (74, *NVLINK5_XIDS),
}
_CLASSIFIED = tuple(code for codes in XID_CLASSES.values() for code in codes)
#: Codes the "other" class leaves out: the classified ones and the application XIDs (a job's
#: own bug: evidence about the job, not the GPU).
_NOT_OTHER = (*_CLASSIFIED, *APPLICATION_XIDS)


#: The label a query several features share names each answer's part with
#: (:mod:`gpu_health.scorer.feature_plan`): ``changes``, ``hit:<class>``, ``born:<class>``.
PART_LABEL = "feature_part"
#: The label :func:`_classified` writes an XID code's class into (``none``: code 0 or an
#: application error, evidence of no class).
CLASS_LABEL = "xid_class"


@dataclass(frozen=True)
class XidClassEvents:
    """XID events of one class (``other``: any code neither in a class nor an application
    error) in the window.

    Ours counts per code. dcgm-exporter exports only the last XID code as a gauge, so its
    changes in the window count as events of the class of the latest code in the window (a
    memory XID followed by another class's XID within the week is attributed to the latter):
    plain range functions, no subquery, so the cost does not grow with resolution. Since
    3.3.6 dcgm-exporter also labels the gauge with its code, a new code is a new series, and
    the codes of the class whose series appeared in the window count
    (:func:`_codes_born`), each in its own class.

    As a :data:`Builder` it yields the class's whole expression (the reference, and what
    ``share_parts=False`` sends). On dcgm-exporter's gauge the feature frame sends
    :meth:`parts` instead, one query for every class, and takes the class's value from its
    parts (:func:`~gpu_health.scorer.feature_plan.combine`). Why: each class's expression reads
    the week of the gauge two to three times (its changes, twice where PromQL fills the GPUs of
    other classes with 0, and its last code), so the four classes read it eleven times where
    the shared query reads it twice."""

    xid_class: str
    window: str

    def __call__(self, s: Schema) -> str | None:
        xid_class, window = self.xid_class, self.window
        codes = _NOT_OTHER if xid_class == "other" else XID_CLASSES[xid_class]
        regex = "|".join(str(c) for c in codes)
        shard = f",{s.shard_matcher}" if s.shard_matcher else ""
        if s.name == "ours":
            op = "!~" if xid_class == "other" else "=~"
            matcher = f'xid{op}"{regex}"'
            sel = f"gpu_xid_errors_total{{{matcher}{shard}}}"
            counted = f"sum by ({s.key}) (increase({sel}[{window}]))"
            if xid_class != "other":  # every code of a class is catalogued: born at 0
                return counted
            return _plus_born(s, counted, _first_counts_born(s, window))
        events = _xid_changes(s, window)
        last = _last_codes(s, window)
        if len(codes) == 1:
            changed = f"{events} * max by ({s.key}) ({last} == bool {codes[0]})"
        else:
            in_class = _in_class(s, last, regex, xid_class)
            changed = f"({events} * on ({s.key}) {in_class}) or ({events} * 0)"
        code = DCGM_XID_CODE_LABEL
        # "other": a code that is neither 0, in a class, nor an application error
        matchers = f'{code}!~"0|{regex}"' if xid_class == "other" else f'{code}=~"{regex}"'
        return _plus_born(s, changed, _codes_born(s, window, matchers))

    def parts(self, s: Schema) -> str | None:
        """Every class's parts in one query, on dcgm-exporter's gauge (None on ours, whose
        counters are per code: each class reads only its own codes already). Parts, by
        :data:`PART_LABEL`: ``changes`` (the gauge's changes per GPU), ``hit:<class>`` (1 where
        the GPU's last code in the window is of the class) and ``born:<class>`` (codes of the
        class born in the window, :func:`_codes_born`), combined as :meth:`__call__`'s
        expression combines them (:func:`~gpu_health.scorer.feature_parts.xid_class_value`)."""
        if s.name == "ours":
            return None
        window, key = self.window, s.key
        last_codes = f'count_values by ({key}) ("xid", {_last_codes(s, window)})'
        hit = f"group by ({key}, {CLASS_LABEL}) ({_classified(last_codes, 'xid')})"
        born_codes = _classified(_codes_born_per_instance(s, window), DCGM_XID_CODE_LABEL)
        per_class = f"{_per_instance(s)}, {CLASS_LABEL}"
        born = f"max by ({key}, {CLASS_LABEL}) (count by ({per_class}) ({born_codes}))"
        parts = (
            f'label_replace({_xid_changes(s, window)}, "{PART_LABEL}", "changes", "", "")',
            f'label_replace({hit}, "{PART_LABEL}", "hit:$1", "{CLASS_LABEL}", "(.+)")',
            f'label_replace({born}, "{PART_LABEL}", "born:$1", "{CLASS_LABEL}", "(.+)")',
        )
        return " or ".join(parts)


def xid_class_events(xid_class: str, window: str) -> XidClassEvents:
    """XID events of one class in the window (:class:`XidClassEvents`)."""
    return XidClassEvents(xid_class, window)


def _last_codes(s: Schema, window: str) -> str:
    """Each series' last XID code in the window, under every name of the gauge (the renamed
    one first: an upgraded GPU's code is the renamed series')."""
    names = _xid_names(s)
    last = " or ".join(f"last_over_time({n}[{window}])" for n in names)
    return last if len(names) == 1 else f"({last})"


def _classified(vector: str, label: str) -> str:
    """``vector`` with :data:`CLASS_LABEL` naming the class of the XID code in ``label``:
    ``other`` for any code, then ``none`` for 0 and the application errors, then each class's
    own codes (label_replace keeps a label where its anchored regex does not match, so the
    last match wins); the vector is evaluated once, whatever the number of classes."""
    application = "|".join(str(c) for c in APPLICATION_XIDS)
    e = f'label_replace({vector}, "{CLASS_LABEL}", "other", "{label}", ".*")'
    e = f'label_replace({e}, "{CLASS_LABEL}", "none", "{label}", "0|{application}")'
    for name, codes in XID_CLASSES.items():
        regex = "|".join(str(c) for c in codes)
        e = f'label_replace({e}, "{CLASS_LABEL}", "{name}", "{label}", "{regex}")'
    return e


def xid_class_events_per_code(xid_class: str, window: str) -> Builder:
    """The dcgm-exporter form :func:`xid_class_events` replaced: the week's last XID compared
    with each code of the class, so the range function is read once per code. Kept as the
    reference the shipped form is tested (``tests/scorer/test_scorer_xid_classes.py``) and
    benchmarked (``bench/bench_xid_classes.py``) against; never sent by the scorer."""

    def build(s: Schema) -> str | None:
        codes = _NOT_OTHER if xid_class == "other" else XID_CLASSES[xid_class]
        found = s.selector("gpu_xid_errors_total")
        if s.name != "dcgm" or found is None:
            return None
        last = f"last_over_time({found[0]}[{window}])"
        hit = " + ".join(f"({last} == bool {c})" for c in codes)
        if xid_class == "other":
            hit = f"({last} > bool 0) - ({hit})"
        return f"max by ({s.key}) (changes({found[0]}[{window}])) * max by ({s.key}) ({hit})"

    return build


def _in_class(s: Schema, last: str, regex: str, xid_class: str) -> str:
    """1 for each GPU any of whose series' last XID code is in the class (``other``: a code
    that is neither 0, classified nor an application error), absent otherwise, reading ``last``
    once.

    Comparing the value with each code (``last == bool 48`` + ...) re-evaluates the week-long
    range function once per code; instead the code becomes a label (``count_values``), codes
    of the class get a ``cls`` marker label by regex (a new label, so two series of one GPU
    never collapse into one label set), and a constant series carrying the marker keeps them
    (``and on``) or drops them (``unless on``).
    """
    codes = f'count_values by ({s.key}) ("xid", {last})'
    if xid_class == "other":
        marked = f'label_replace({codes}, "cls", "known", "xid", "0|{regex}")'
        kept = f"{marked} unless on (cls) {_marker('known')}"
    else:
        marked = f'label_replace({codes}, "cls", "hit", "xid", "{regex}")'
        kept = f"{marked} and on (cls) {_marker('hit')}"
    return f"group by ({s.key}) ({kept})"


def _marker(value: str) -> str:
    """A constant one-series vector whose only label is ``cls="value"``."""
    return f'label_replace(vector(1), "cls", "{value}", "__name__", ".*")'


#: The slots the hours-with-activity features count: a counter's rise is looked for once per
#: slot, and each slot with one counts as this many hours.
ACTIVITY_SLOT = "2h"


def active_hours(metric: str, window: str, **labels: str) -> Builder:
    """Hours of the window in which a counter rose: unit- and magnitude-free evidence.

    A burst of 30 corrected errors and one of 3,000 both read as "active"; whether the counter
    is in seconds, nanoseconds or events does not matter. The window is cut into 2-hour slots
    (a subquery stepped by :data:`ACTIVITY_SLOT`), and a slot counts when any series of the
    GPU, of any field of the signal, rose in it: data as coarse as one sample an hour still
    shows activity, and label churn (a series that ends, another that begins) does not split
    the GPU. A GPU that sends the signal and never rose reads 0 (:func:`_counted_slots`).

    Keeping only the series that rose before combining them, instead of summing every field's
    increase per GPU and slot and comparing the sum with 0 (:func:`active_hours_by_sum`, the
    same value), leaves almost nothing for the subquery's joins and aggregations to do: the
    NVLink errors' 8 fields took 2.00 s instead of 4.47 s at 2,000 GPUs
    (``bench/bench_active_hours.py``).
    """

    def build(s: Schema) -> str | None:
        found = s.every_selector(metric, **labels)
        if found is None:
            return None
        rose = [f"increase({n}[{ACTIVITY_SLOT}]) > 0" for n in found]
        return _counted_slots(s, rose, found, window)

    return build


def _counted_slots(s: Schema, tests: list[str], selectors: list[str], window: str) -> str:
    """Hours of ``window`` (two per :data:`ACTIVITY_SLOT` slot) in which any of ``tests`` (each
    a filter of one field's series over one slot) kept a series of the GPU; 0 for a GPU with a
    sample of ``selectors`` in the window (or the slot before it) and no such slot.

    The GPUs the tests keep are combined with ``or``, which is a union here: the answer is
    grouped by GPU, so which field's series a GPU's label set came from does not matter."""
    kept = " or ".join(f"group by ({s.key}) ({t})" for t in tests)
    slots = f"2 * count_over_time(({kept})[{window}:{ACTIVITY_SLOT}])"
    reach = f"{round(window_seconds(window) + window_seconds(ACTIVITY_SLOT))}s"
    seen = " or ".join(f"group by ({s.key}) (last_over_time({n}[{reach}]))" for n in selectors)
    return f"{slots} or 0 * ({seen})"


def active_hours_by_sum(metric: str, window: str, **labels: str) -> Builder:
    """The form :func:`active_hours` replaced: each slot's increases summed per GPU over every
    field, then compared with 0. The same hours (increases are never negative, so the sum is
    positive exactly where one is); kept as the reference the shipped form is tested
    (``tests/scorer/test_active_hours.py``) and benchmarked against, never sent by the scorer."""

    def build(s: Schema) -> str | None:
        # Summed over the fields a fleet exports (a field it lacks must not blank the sum).
        found = s.aggregate("sum", "increase", metric, ACTIVITY_SLOT, **labels)
        if found is None:
            return None
        return f"2 * sum_over_time((({found[0]}) > bool 0)[{window}:{ACTIVITY_SLOT}])"

    return build


#: Clock-event reasons that are the hardware's own brakes: HW thermal slowdown and HW power
#: brake (an external power-brake assertion: the baseboard or PSU), bits 0x40 and 0x80 of
#: NVML's clock-event reasons. The software power cap (0x4), which a busy board holds most of
#: the time, and the other reasons are not. HW slowdown (0x8) is left out: a bitmask's bit 3
#: cannot be told from its largest value in a slot, and NVML sets it for these two causes but
#: also "during PState or clock change" (its reference), so alone it is partly noise.
HARDWARE_HOLDS: tuple[str, ...] = ("hw_thermal_slowdown", "hw_power_brake_slowdown")


def hardware_hold_hours(window: str) -> Builder:
    """Hours of the window (2-hour slots, as :func:`active_hours`) in which any sample of the
    GPU had a hardware clock hold (:data:`HARDWARE_HOLDS`): unit-free, and rare on a healthy
    board, where "any power hold" is almost every hour of a busy one.

    Ours sends one 0/1 series per reason. dcgm-exporter sends the reasons as one bitmask
    (``DCGM_FI_DEV_CLOCK_THROTTLE_REASONS``, not among its default counters). Bits 6 and 7 are
    the top two of the lowest byte, so a slot is held when its largest value, modulo 256, is at
    least 64: one range function per slot, where testing each sample's bits took a subquery
    that made every scoring run 1.6 times as long (``bench/bench_feature_cost.py``). A board
    that sets a higher reason (display clocks, 0x100, or the newer drivers' board-limit and
    reliability reasons) in only part of a slot can hide a hold there.

    The bitmask is read under both its names (``DCGM_FI_DEV_CLOCKS_EVENT_REASONS`` since DCGM
    3.3), each series tested on its own, so that a slot in which an exporter upgrade changed
    the name keeps the readings of each. As in :func:`active_hours`, only the series that held
    are combined (:func:`hardware_hold_hours_by_max`: the same value, combining them all).
    """

    def build(s: Schema) -> str | None:
        found = _hold_selectors(s)
        if found is None:
            return None
        return _counted_slots(s, [_held(s, n) for n in found], found, window)

    return build


def _hold_selectors(s: Schema) -> list[str] | None:
    """The series :func:`hardware_hold_hours` reads: ours, the hardware reasons' 0/1 series;
    dcgm-exporter's, the bitmask under each of its names."""
    found = s.selectors_and_aliases("gpu_clock_event_active")
    if found is None:
        return None
    if s.name == "ours":
        held = f'reason=~"{"|".join(HARDWARE_HOLDS)}"'
        return [with_matchers(found[0][0].removesuffix("{}"), held)]
    return found[0]


def _held(s: Schema, selector: str) -> str:
    """The series of ``selector`` with a hardware hold in the last slot (a filter)."""
    largest = f"max_over_time({selector}[{ACTIVITY_SLOT}])"
    return f"{largest} > 0" if s.name == "ours" else f"{largest} % 256 >= {_HOLD_BITS_FROM}"


def _lowest_hold_bit() -> int:
    bits = [bit for bit, name in CLOCK_EVENT_REASONS.items() if name in HARDWARE_HOLDS]
    lowest = min(bits)
    assert sorted(bits) == [lowest, 2 * lowest] and 4 * lowest == 256  # the top two of 8 bits
    return lowest


#: A bitmask's value modulo 256 at or above which a hardware hold's bit is set.
_HOLD_BITS_FROM = _lowest_hold_bit()


def hardware_hold_hours_by_max(window: str) -> Builder:
    """The form :func:`hardware_hold_hours` replaced: each slot's largest value per GPU over
    every series (tagged apart), compared once. The same hours; kept as the reference the
    shipped form is tested against, never sent by the scorer."""

    def build(s: Schema) -> str | None:
        found = _hold_selectors(s)
        if found is None:
            return None
        if s.name == "ours":
            slot = f"{s.per_gpu('max', f'max_over_time({found[0]}[{ACTIVITY_SLOT}])')} > bool 0"
        else:
            each = [
                f'label_replace(max_over_time({n}[{ACTIVITY_SLOT}]), "field", "{i}", "", "")'
                for i, n in enumerate(found)
            ]
            largest = "(" + " or ".join(each) + ") % 256"
            slot = f"{s.per_gpu('max', largest)} >= bool {_HOLD_BITS_FROM}"
        return f"2 * sum_over_time(({slot})[{window}:{ACTIVITY_SLOT}])"

    return build


def log_change(recent: Builder, baseline: Builder) -> TwoPart:
    """``ln(1 + recent) - ln(1 + baseline)``: activity against the GPU's own past, scale-free
    (sent as two queries by the feature frame, see :class:`TwoPart`)."""
    return TwoPart("log_change", recent, baseline)


def resets(window: str) -> Builder:
    """Driver reloads / GPU resets: resets of the volatile corrected-ECC counter in the window."""

    def build(s: Schema) -> str | None:
        found = s.aggregate("max", "resets", "gpu_ecc_errors_total", window, **ECC_CORR_VOL)
        return None if found is None else found[0]

    return build


def _from_presence(make: Callable[[Schema, list[str]], str]) -> Builder:
    """A builder over the presence series (board power, which every GPU reports in both
    schemas); ``make`` gets the schema and that series' selectors (a scorer shard's GPUs
    only, when sharded): one, or in dcgm-exporter's renamed view its two names
    (:attr:`Schema.names`), which each reader takes as one series of the GPU."""

    def build(s: Schema) -> str | None:
        found = s.selectors_over_names("gpu_power_watts")
        return None if found is None else make(s, found)

    return build


def _from_fleet_presence(make: Callable[[Schema, list[str]], str]) -> Builder:
    """Like :func:`_from_presence` for a fleet-wide value copied onto every GPU: ``make`` gets
    the whole fleet's selectors, also for a scorer shard (a shard's fleet is the fleet)."""

    def build(s: Schema) -> str | None:
        mine = s.selectors_over_names("gpu_power_watts")
        whole = replace(s, shard_matcher="").selectors_over_names("gpu_power_watts")
        if mine is None or whole is None:
            return None
        return _on_every_gpu(s, mine, make(s, whole))

    return build


def _grouped(s: Schema, names: list[str], window: str, keys: str, named: bool = True) -> str:
    """``group by (keys)`` of the GPUs with a sample of any of ``names`` within ``window`` (a
    range, with its offset if any); ``named``: under the node label (:meth:`Schema.named`)."""

    def one(name: str) -> str:
        last = f"last_over_time({name}[{window}])"
        return f"group by ({keys}) ({s.named(last) if named else last})"

    return one(names[0]) if len(names) == 1 else "(" + " or ".join(map(one, names)) + ")"


def _reporting_now(s: Schema, names: list[str], keys: str) -> str:
    return _grouped(s, names, s.fresh, keys)


def _lost(s: Schema, names: list[str], window: str, keys: str) -> str:
    """The (``keys``) groups that reported within ``window`` and do not report now."""
    seen = _grouped(s, names, window, keys)
    return f"{seen} unless on ({s.uuid}) {_reporting_now(s, names, keys)}"


@dataclass(frozen=True)
class LostGpus:
    """GPUs that reported within the window and no longer do: on this GPU's node
    (:func:`node_lost_gpus`) or in the whole fleet (:func:`fleet_lost_gpus`).

    As a :data:`Builder` it yields the whole expression (the reference, and what
    ``share_parts=False`` sends). The feature frame sends :meth:`parts` instead, one query for
    both counts, and counts in the scorer
    (:func:`~gpu_health.scorer.feature_parts.lost_gpus_value`). Why: each whole expression reads
    every presence series over the window (30 days) again, the node count once and the fleet
    count twice (its lost GPUs and its nodes still alive); the parts read it once for both."""

    scope: Literal["node", "fleet"]
    window: str
    whole: Builder

    def __call__(self, s: Schema) -> str | None:
        return self.whole(s)

    def parts(self, s: Schema) -> str | None:
        """The (node, UUID) pairs that reported within the window (``seen:<node>``) and the
        (node, GPU) pairs reporting now (``here:<node>``), over the whole fleet; None for a
        scorer shard, whose node count reads its own GPUs only (the whole expression is sent)."""
        names = s.selectors_over_names("gpu_power_watts")
        if s.shard_matcher or names is None:
            return None
        seen = _grouped(s, names, self.window, f"{s.node}, {s.uuid}")
        here = _reporting_now(s, names, f"{s.node}, {s.key}")
        return " or ".join(
            f'label_replace({e}, "{PART_LABEL}", "{part}:$1", "{s.node}", "(.*)")'
            for e, part in ((seen, "seen"), (here, "here"))
        )


def node_lost_gpus(window: str) -> LostGpus:
    """GPUs that reported on this GPU's node within the window and no longer do.

    Faults cluster by node (in the public stepfun-ai/InfiniteHBD-Trace, 23 % of GPU faults were
    followed by another on the same node within 30 days): a node that lost a GPU recently is at
    risk. Only presence is used, so any schema and any replacement policy (new UUIDs) works.
    """

    def make(s: Schema, names: list[str]) -> str:
        lost = f"count by ({s.node}) ({_lost(s, names, window, f'{s.node}, {s.uuid}')})"
        here = _reporting_now(s, names, s.by)
        return f"(({here}) * on ({s.node}) group_left () ({lost})) or (({here}) * 0)"

    return LostGpus("node", window, _from_presence(make))


def _on_every_gpu(s: Schema, names: list[str], fleet_value: str) -> str:
    """A fleet-wide scalar (one sample, no labels) copied onto every GPU reporting now; 0 when
    the fleet expression is empty."""
    here = _reporting_now(s, names, s.key)
    return f"(({here}) * on () group_left () ({fleet_value})) or (({here}) * 0)"


def fleet_lost_gpus(window: str) -> LostGpus:
    """GPUs of the whole fleet that reported within the window and no longer do.

    The fleet's own recent failure rate, read from presence alone (a failed board stops
    reporting; a replacement has a new UUID), is what the rule calibrates its base rate to: a
    fleet failing twenty times more often than the public rate must not be told every GPU is
    at the public rate.

    A GPU counts only while some GPU seen under its node's name in the window reports now
    (under any name): the GPUs of a node that stopped reporting as a whole are its exporter or
    host being down, not failures (the GPU state says the same,
    :mod:`gpu_health.telemetry.state`), and a two-hour node outage told every other GPU of the
    fleet it was 40 times likelier to fail. A node renamed since (an exporter pod restart) still
    has its GPUs reporting, so a GPU lost under the old name counts.
    """

    def make(s: Schema, names: list[str]) -> str:
        keys = f"{s.node}, {s.uuid}"
        seen = _grouped(s, names, window, keys)
        now = _grouped(s, names, s.fresh, s.uuid, named=False)
        alive = f"group by ({s.node}) ({seen} and on ({s.uuid}) {now})"
        lost = f"({seen} unless on ({s.uuid}) {now}) and on ({s.node}) {alive}"
        return f"count(group by ({s.uuid}) ({lost}))"  # a GPU lost under two names is one

    return LostGpus("fleet", window, _from_fleet_presence(make))


def fleet_gpu_days(window: str, step_hours: int = 6) -> Builder:
    """GPU-days the fleet reported within the window (exposure for the fleet failure rate).

    Sampled every ``step_hours`` (each GPU counts for a step when it reported in that step), so
    a history shorter than the window, or GPUs that came and went, give the exposure they had.
    """
    step = f"{step_hours}h"

    def make(s: Schema, names: list[str]) -> str:
        present = _grouped(s, names, step, s.uuid, named=False)
        return f"sum(count_over_time(({present})[{window}:{step}])) * {step_hours / 24:g}"

    return _from_fleet_presence(make)
