"""How each input schema names a GPU's identity labels and its signals, in PromQL selectors.

Our exporter and dcgm-exporter name the same signal differently (and dcgm-exporter sometimes
spreads one of ours over several fields with their own unit scale); every feature query is built
through :class:`Schema` so one feature definition serves both. Split from
:mod:`gpu_health.scorer.features`, which re-exports every public name here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from gpu_health.telemetry.catalogue import BASE_UNIT_FACTORS, DCGM_RENAMED, by_name
from gpu_health.telemetry.freshness import DEFAULT_FRESH
from gpu_health.telemetry.schema import (
    DCGM_INSTANCE_LABEL,
    DCGM_NODE_ALIAS,
    DCGM_NODE_LABEL,
    node_named,
)

SchemaName = Literal["ours", "dcgm"]
SCHEMAS: tuple[SchemaName, ...] = ("ours", "dcgm")

IDENTITY = ("node", "gpu", "uuid", "model")

#: How far back a GPU must have reported to count as present at the evaluation time, at scrape
#: intervals up to 20 minutes; the scorer measures the data's interval on every run and widens
#: it to one and a half intervals of sparser data (:attr:`Schema.fresh`,
#: :mod:`gpu_health.telemetry.freshness`).
PRESENCE_LOOKBACK = DEFAULT_FRESH


#: Our exporter's counters that it splits per link or per code, and the per-GPU totals it sends
#: beside them. A counter's rise over a long window reads every series of it three times, and
#: these hold 57 (NVLink) and 26 (XID) series per GPU of the bench fleet: four queries reading
#: them read 82-87 % of a scoring run's samples (``bench/bench_schema_cost.py``).
PER_GPU_TOTALS: dict[str, str] = {
    "gpu_nvlink_errors_total": "gpu_nvlink_errors_all_links_total",
    "gpu_xid_errors_total": "gpu_xid_errors_all_codes_total",
}


@dataclass(frozen=True)
class Schema:
    """How one schema names the GPU identity labels and the signals."""

    name: SchemaName
    node: str
    gpu: str
    uuid: str
    model: str
    #: An extra matcher on every GPU series (``uuid=~"..."``: this scorer shard's GPUs only).
    shard_matcher: str = ""
    #: The range within which a GPU's last sample makes it present now (a PromQL duration).
    fresh: str = PRESENCE_LOOKBACK
    #: Another name the exporter gives the node label, read as :attr:`node` (see :meth:`named`;
    #: dcgm-exporter's ``hostname``, :data:`~gpu_health.telemetry.schema.DCGM_NODE_ALIAS`).
    node_alias: str = ""
    #: The label that tells a MIG GPU's instances apart (dcgm-exporter's ``GPU_I_ID``): a
    #: MIG-enabled GPU reports each device-level series once per GPU instance, with the same
    #: value (see :meth:`per_gpu`).
    instance: str = ""
    #: Whether the ECC features read a GPU's volatile counters where its aggregate ones are
    #: missing (:func:`~gpu_health.scorer.feature_promql.aggregate_first`). A run turns it off
    #: when no GPU reporting now sends volatile ECC counters without aggregate ones
    #: (:func:`~gpu_health.scorer.feature_frame.volatile_ecc_only_query`): every such feature
    #: then reads its aggregate counter alone, which is what the fallback gave those GPUs, and
    #: Prometheus no longer evaluates the volatile side of each expression for nothing.
    volatile_ecc_fallback: bool = True
    #: Which name of a field DCGM 4.6 renamed (:data:`~gpu_health.telemetry.catalogue.DCGM_RENAMED`)
    #: the selectors give: the one dcgm-exporter sent up to 4.8 ("legacy"), or the one 4.9's
    #: default counters file uses ("renamed"), set per run when a GPU sends one
    #: (:func:`~gpu_health.scorer.feature_frame.renamed_fields_sent`). Every reading of the
    #: renamed view also reads the legacy name (:meth:`aggregate`, :meth:`rise`,
    #: :meth:`selectors_over_names`): a GPU not upgraded yet reads as in the legacy view, and
    #: one whose exporter was upgraded mid-window keeps the part of the window before it.
    names: Literal["legacy", "renamed"] = "legacy"
    #: Whether our schema's split counters are read as the per-GPU totals our exporter sends
    #: beside them (:data:`PER_GPU_TOTALS`): one series per NVLink error type instead of one
    #: per link and type, one XID series instead of one per code. Set per run only where every
    #: GPU sent the totals through the longest window read
    #: (:func:`~gpu_health.scorer.feature_frame.totals_readable`): history written by an
    #: exporter from before them keeps the per-link and per-code reading.
    totals: bool = False

    @property
    def by(self) -> str:
        """The identity labels: what the inventory lists and a node-level join needs."""
        return f"{self.node}, {self.gpu}, {self.uuid}, {self.model}"

    @property
    def key(self) -> str:
        """The labels every per-GPU feature is aggregated by: the UUID (and the model, which a
        board never changes, for the same-model peer joins).

        Not the node or the GPU index: dcgm-exporter on Kubernetes without ``NODE_NAME``
        reports its own pod name as ``Hostname``, so every exporter restart renames the node
        of every series, and a reboot that loses a board can renumber the others. Grouping by
        those would split one GPU's week into pieces and read only one of them.
        """
        return f"{self.uuid}, {self.model}"

    def named(self, expr: str) -> str:
        """``expr`` (an instant vector) with the node under :attr:`node` on every series
        (:func:`~gpu_health.telemetry.schema.node_named`)."""
        return node_named(expr, self.node, self.node_alias)

    def per_gpu(self, agg: str, expr: str, *extra: str) -> str:
        """``agg by (key) (expr)``, counting a MIG GPU once: its instances' series are summed
        per instance first (each instance's own label churn), then the largest instance is
        taken (every instance repeats the device's counters). Without MIG every series of a
        GPU is in one instance group, so this is the plain sum. ``extra`` labels are kept
        beside the key (one value per sub-counter, :meth:`_sub_counters`)."""
        by = ", ".join((self.key, *extra))
        if agg != "sum" or not self.instance:
            return f"{agg} by ({by}) ({expr})"
        return f"max by ({by}) (sum by ({by}, {self.instance}) ({expr}))"

    def selectors(self, metric: str, **labels: str) -> tuple[list[str], float] | None:
        """Series selectors for ``metric{labels}`` and the factor to our units (None: absent).

        dcgm-exporter may spread one of our metrics over several fields (one per label value);
        each is returned separately because a range function over ``{__name__=~"a|b"}`` drops
        the names and then fails on identical label sets.
        """
        return self._selectors(metric, False, labels)

    def selectors_and_aliases(self, metric: str) -> tuple[list[str], float] | None:
        """As :meth:`selectors`, with each field's other names too (:attr:`DcgmField.aliases`),
        which the caller must combine without summing."""
        return self._selectors(metric, True, {})

    def _selectors(
        self, metric: str, aliases: bool, labels: dict[str, str]
    ) -> tuple[list[str], float] | None:
        found = self._fields(metric, labels, every_name=False)
        if found is None:
            return None
        groups, scale = found
        if aliases:
            # a field's other names, found by either name this view may give it
            fields = by_name()[metric].dcgm
            extra = {n: f.aliases for f in fields for n in (f.name, f.renamed) if n}
            groups = [
                [*g, *(a + self.shard_suffix for a in extra.get(_bare(g[0]), ()))] for g in groups
            ]
        return sorted(n for g in groups for n in g), scale

    @property
    def shard_suffix(self) -> str:
        """``{shard matcher}`` to append to a metric name, or "" for the whole fleet."""
        return f"{{{self.shard_matcher}}}" if self.shard_matcher else ""

    def _fields(
        self, metric: str, labels: dict[str, str], every_name: bool, base_units: bool = False
    ) -> tuple[list[list[str]], float] | None:
        """The selectors of ``metric{labels}``, one list per field (ours: one field), and the
        factor to our units; None when the schema lacks it. A field's list holds the name of
        this view, and with ``every_name`` in the renamed view its legacy name after it. With
        ``base_units`` in the renamed view, a field 4.9 sends in base units instead
        (:data:`~gpu_health.telemetry.catalogue.DCGM_BASE_UNITS`) has that field's name first:
        the caller scales its readings (:meth:`_in_field_unit`)."""
        if self.name == "ours":
            metric = self._ours(metric)
            extra = [self.shard_matcher] if self.shard_matcher else []
            matchers = ",".join([*(f'{k}="{v}"' for k, v in sorted(labels.items())), *extra])
            return [[f"{metric}{{{matchers}}}"]], 1.0
        spec = by_name()[metric]
        fields = [f for f in spec.dcgm if all(f.labels.get(k) == v for k, v in labels.items())]
        if not labels:
            fields = list(spec.dcgm)
        if not fields:
            return None
        scales = {f.scale for f in fields}
        if len(scales) != 1:
            raise ValueError(f"{metric}{labels}: dcgm fields with different scales")
        groups = []
        for f in sorted(fields, key=lambda f: f.name):
            names = [f.name]
            if self.names == "renamed" and f.renamed:
                names = [f.renamed, f.name] if every_name else [f.renamed]
            elif self.names == "renamed" and base_units and f.base_unit:
                names = [f.base_unit, f.name]
            groups.append([n + self.shard_suffix for n in names])
        return groups, scales.pop()

    def selectors_over_names(self, metric: str, **labels: str) -> list[str] | None:
        """The selectors of a one-field signal: its name in this view, and in the renamed view
        its legacy name after it (the same series before an exporter upgrade)."""
        found = self._fields(metric, labels, every_name=True)
        if found is None:
            return None
        if len(found[0]) != 1:
            raise ValueError(f"{metric}{labels}: several dcgm fields")
        return found[0][0]

    def selector(self, metric: str, **labels: str) -> tuple[str, float] | None:
        """The single selector of a one-field signal (see :meth:`selectors`)."""
        found = self.selectors(metric, **labels)
        if found is None:
            return None
        if len(found[0]) != 1:
            raise ValueError(f"{metric}{labels}: several dcgm fields; use selectors()")
        return found[0][0], found[1]

    def every_selector(self, metric: str, **labels: str) -> list[str] | None:
        """Every selector of ``metric{labels}``: each field of the signal under each name of
        this view (the renamed view's legacy and base-unit names too). For a test that any one
        series passes, where the unit and the field do not matter; None when absent."""
        found = self._fields(metric, labels, every_name=True, base_units=True)
        return None if found is None else [n for names in found[0] for n in names]

    def aggregate(
        self, agg: str, fn: str, metric: str, window: str, **labels: str
    ) -> tuple[str, float] | None:
        """``agg by (identity) (fn(selector[window]))`` summed over every field of the signal."""
        found = self._fields(metric, labels, every_name=True, base_units=True)
        if found is None:
            return None
        groups, scale = found
        parts = []
        for names in groups:
            # one field under both its names (a rename mid-window): ``agg`` over the two, the
            # sum of a count or an increase, the largest of a largest or a last reading
            each = [_in_field_unit(self.per_gpu(agg, f"{fn}({n}[{window}])"), fn, n) for n in names]
            parts.append(each[0] if len(each) == 1 else self.tagged(agg, each))
        if len(parts) == 1:
            return parts[0], scale
        return self._field_sum(parts), scale

    def rise(
        self, metric: str, window: str, persistent: bool, **labels: str
    ) -> tuple[str, float] | None:
        """How much a counter rose over ``window``, one value per GPU, summed over the fields
        of the signal: the smaller of its series' summed increases and its span.

        The sum of the increases of a GPU's series is right when a label change ends one
        series and starts another (a driver upgrade, a job's pod), but not when a label set
        comes back: dcgm-exporter on Kubernetes writes a GPU's series without pod labels in
        every idle gap between jobs, and that series' increase spans the gaps, so the rise
        during each job is counted twice. The span of the GPU's readings counts each rise
        once, and the sum can only be above it (interleaving, and Prometheus' extrapolation
        to the window's edges), as long as the counter does not reset.

        ``persistent``: a board-life counter (aggregate ECC, remapped rows, retired pages),
        which never resets. Its span is its reading now minus its reading at the window's
        start (the largest of the GPU's series each time, two short lookups); a GPU without a
        reading at the start, or whose counter was cleared (a negative span), keeps the sum.

        Otherwise a volatile counter, which restarts at zero on a GPU reset or reboot: its span
        is the largest minus the smallest reading in the window, over all its series (two
        range functions), taken only while its reading now is its largest (one short lookup):
        a reset that left the counter below its earlier level keeps the sum, which reads a
        reset as a restart from zero. A counter that climbs back past its earlier level hides
        its reset; its span then still holds the rise since the reset, at least half the rise
        over the window. A per-GPU total of our exporter's (:attr:`totals`) sums counters that
        rise at different times, so it climbs back past its top far sooner than each of them
        would: its span is also left out where it reset in the window (``resets()``, one more
        reading of a few series).
        """
        found = self._fields(metric, labels, every_name=True)
        if found is None:
            return None
        # A field's two names (the renamed view) hold the counter after and before an exporter
        # upgrade: their rises add up. The legacy name of an upgraded GPU has no reading now;
        # its span ends at its last reading in the window instead.
        groups, scale = found
        names = [(n, i > 0) for g in groups for i, n in enumerate(g)]
        sub = self._sub_counters(metric, labels)
        total = self.name == "ours" and self._ours(metric) != metric
        by = ", ".join((self.key, *sub))
        parts = []
        for n, ended in names:
            summed = self.per_gpu("sum", f"increase({n}[{window}])", *sub)
            now = f"max by ({by}) (last_over_time({n}[{window if ended else self.fresh}]))"
            if persistent:
                start = f"max by ({by}) (last_over_time({n}[{self.fresh}] offset {window}))"
                span = f"(({now} - {start}) >= 0)"
            else:
                top = f"max by ({by}) (max_over_time({n}[{window}]))"
                bottom = f"min by ({by}) (min_over_time({n}[{window}]))"
                # ``now >= top`` keeps the reading now (equal to the top) only without a reset
                span = f"(({now} >= {top}) - {bottom})"
                if total:
                    # a total sums counters that rise at different times: after a reset it
                    # climbs back past its top sooner than any of them, hiding the reset from
                    # ``now >= top``; where it reset in the window the summed increase counts
                    resets = f"max by ({by}) (resets({n}[{window}])) > 0"
                    span = f"({span} unless on ({by}) {resets})"
            # the smaller of the two, each evaluated once (PromQL has no binary min): both
            # in one vector, told apart by a label, then the least per GPU (per sub-counter
            # first, then their sum)
            both = f'label_replace({span}, "reading", "span", "", "") or {summed}'
            least = f"min by ({by}) ({both})"
            parts.append(f"sum by ({self.key}) ({least})" if sub else least)
        return (parts[0] if len(parts) == 1 else self._field_sum(parts)), scale

    def _sub_counters(self, metric: str, labels: dict[str, str]) -> tuple[str, ...]:
        """The labels that split one GPU's ``metric`` into counters of their own, which the
        selector leaves open: our exporter's NVLink errors (one counter per ``link`` and
        ``type``), retired pages (one per ``cause``) and XIDs (one per ``xid``).

        A span is a difference of readings of one counter: over several counters the largest
        minus the smallest reading is no rise at all (18 links that each count one error read
        as one), so each counter's rise is read on its own and the rises are summed.
        dcgm-exporter sends each of these as fields without such labels, already apart.
        """
        if self.name != "ours":
            return ()
        spec = by_name().get(self._ours(metric))
        return () if spec is None else tuple(k for k in spec.labels if k not in labels)

    def _ours(self, metric: str) -> str:
        """The name our exporter's ``metric`` is read under: its per-GPU total where
        :attr:`totals` is set and it has one."""
        return PER_GPU_TOTALS.get(metric, metric) if self.totals else metric

    def _field_sum(self, parts: list[str]) -> str:
        """Per-GPU parts of one signal (one per dcgm field) summed."""
        return self.tagged("sum", parts)

    def tagged(self, agg: str, parts: list[str], by: str = "") -> str:
        """``agg by (by)`` (the GPU's :attr:`key` by default) over parts, tagged apart so that
        ``or`` keeps every part's series."""
        tagged = " or ".join(
            f'label_replace({p}, "dcgm_field", "{i}", "", "")' for i, p in enumerate(parts)
        )
        return f"{agg} by ({by or self.key}) ({tagged})"


#: Range functions whose value does not depend on the unit of the readings: they count them.
UNIT_FREE = frozenset(
    ("count_over_time", "present_over_time", "absent_over_time", "changes", "resets")
)


def _in_field_unit(expr: str, fn: str, selector: str) -> str:
    """``expr``, ``fn`` over ``selector``, in the unit of the field the selector stands for: a
    field in base units (``DCGM_FI_DEV_SM_CLOCK_HERTZ``) scaled to its legacy field's (MHz).
    Every other range function read here (sums, averages, extremes, last readings,
    increases) is linear in the readings, so scaling its value scales theirs."""
    factor = BASE_UNIT_FACTORS.get(_bare(selector))
    if factor is None or fn in UNIT_FREE:
        return expr
    return f"({expr}) * {factor!r}"


def _bare(selector: str) -> str:
    """A selector's metric name, without its matchers."""
    return selector.split("{", 1)[0]


OURS = Schema("ours", "node", "gpu", "uuid", "model")
DCGM = Schema(
    "dcgm",
    DCGM_NODE_LABEL,
    "gpu",
    "UUID",
    "modelName",
    node_alias=DCGM_NODE_ALIAS,
    instance=DCGM_INSTANCE_LABEL,
)


#: The signals dcgm-exporter's default counters leave out, by the feature name prefixes that
#: read them.
_OUTSIDE_DCGM_DEFAULTS: dict[str, tuple[str, ...]] = {
    "ECC": ("ecc_", "resets_"),
    "clock-hold violations": ("power_violation", "thermal_violation", "board_limit_violation"),
    "retired pages": ("retired_pages",),
    "NVLink errors": ("nvlink_error",),
}


def counters_hint(schema: str, read: Sequence[str], empty: Sequence[str]) -> str | None:
    """One line for the log naming the signals dcgm-exporter sent none of (every feature of the
    signal among ``read`` is in ``empty``: not one that merely lacks history for its window)
    and the counters file that collects them; None when there are none."""
    if schema != "dcgm":
        return None
    gone = set(empty)
    missing = []
    for signal, prefixes in _OUTSIDE_DCGM_DEFAULTS.items():
        mine = [name for name in read if name.startswith(prefixes)]
        if mine and gone.issuperset(mine):
            missing.append(signal)
    if not missing:
        return None
    return (
        f"dcgm-exporter sends no {', '.join(missing)} (its default counters leave them out): "
        "start it with -f set to deploy/dcgm-exporter/gpu-health-counters.csv "
        "(gpu-health-counters-blackwell.csv on NVLink5 boards; docs/scorer.md)"
    )


def schema_by_name(name: str) -> Schema:
    return {"ours": OURS, "dcgm": DCGM}[name]


def presence_names(s: Schema) -> str:
    """A ``__name__`` regex of the series that say a GPU is present: power or temperature,
    which every exporter of the schema sends for every GPU."""
    if s.name == "ours":
        return "gpu_power_watts|gpu_temperature_celsius"
    return "|".join(DCGM_PRESENCE_NAMES)


#: dcgm-exporter's power and temperature fields under both their names (dcgm-exporter 4.9
#: renamed them, :data:`~gpu_health.telemetry.catalogue.DCGM_RENAMED`): its GPUs are present
#: under either.
DCGM_PRESENCE_NAMES: tuple[str, ...] = (
    "DCGM_FI_DEV_POWER_USAGE",
    "DCGM_FI_DEV_GPU_TEMP",
    DCGM_RENAMED["DCGM_FI_DEV_POWER_USAGE"],
    DCGM_RENAMED["DCGM_FI_DEV_GPU_TEMP"],
)


def inventory_query(s: Schema) -> str:
    """All GPUs that reported power or temperature recently, one series each."""
    names = presence_names(s)
    latest = f'last_over_time({{__name__=~"{names}"}}[{s.fresh}])'
    return f"group by ({s.by}) ({s.named(latest)})"


def identity_of(s: Schema, labels: dict[str, str]) -> tuple[str, str, str, str]:
    """``(node, gpu, uuid, model)`` from a result's labels in either schema."""
    return (
        labels.get(s.node, ""),
        labels.get(s.gpu, ""),
        labels.get(s.uuid, ""),
        labels.get(s.model, ""),
    )
