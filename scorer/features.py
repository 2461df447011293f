"""Failure-model features, computed server-side in PromQL for our schema and dcgm-exporter's.

One instant query per feature returns every GPU at once; serving evaluates it at "now", training
evaluates the very same query string at past timestamps (``time=``), so there is no train/serve
skew. Features are chosen to travel between fleets and simulators: rates per day, ratios, trends
and deltas against the GPU's own model peers, never absolute levels that depend on a SKU or on
an identity. A signal a schema lacks yields a missing feature (NaN), never an error.

Metric names come from :mod:`gpu_health.telemetry.catalogue`; the dcgm-exporter names and unit
scales come from the same table's :class:`DcgmField` entries.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import numpy.typing as npt

from gpu_health.scorer.promclient import PromClient, PrometheusError
from gpu_health.telemetry.catalogue import by_name

log = logging.getLogger(__name__)

SchemaName = Literal["ours", "dcgm"]
SCHEMAS: tuple[SchemaName, ...] = ("ours", "dcgm")

IDENTITY = ("node", "gpu", "uuid", "model")


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

    @property
    def by(self) -> str:
        return f"{self.node}, {self.gpu}, {self.uuid}, {self.model}"

    def selectors(self, metric: str, **labels: str) -> tuple[list[str], float] | None:
        """Series selectors for ``metric{labels}`` and the factor to our units (None: absent).

        dcgm-exporter may spread one of our metrics over several fields (one per label value);
        each is returned separately because a range function over ``{__name__=~"a|b"}`` drops
        the names and then fails on identical label sets.
        """
        extra = [self.shard_matcher] if self.shard_matcher else []
        if self.name == "ours":
            matchers = ",".join([*(f'{k}="{v}"' for k, v in sorted(labels.items())), *extra])
            return [f"{metric}{{{matchers}}}"], 1.0
        spec = by_name()[metric]
        fields = [f for f in spec.dcgm if all(f.labels.get(k) == v for k, v in labels.items())]
        if not labels:
            fields = list(spec.dcgm)
        if not fields:
            return None
        scales = {f.scale for f in fields}
        if len(scales) != 1:
            raise ValueError(f"{metric}{labels}: dcgm fields with different scales")
        suffix = f"{{{self.shard_matcher}}}" if self.shard_matcher else ""
        return sorted(f.name + suffix for f in fields), scales.pop()

    def selector(self, metric: str, **labels: str) -> tuple[str, float] | None:
        """The single selector of a one-field signal (see :meth:`selectors`)."""
        found = self.selectors(metric, **labels)
        if found is None:
            return None
        if len(found[0]) != 1:
            raise ValueError(f"{metric}{labels}: several dcgm fields; use selectors()")
        return found[0][0], found[1]

    def aggregate(
        self, agg: str, fn: str, metric: str, window: str, **labels: str
    ) -> tuple[str, float] | None:
        """``agg by (identity) (fn(selector[window]))`` summed over every field of the signal."""
        found = self.selectors(metric, **labels)
        if found is None:
            return None
        names, scale = found
        parts = [f"{agg} by ({self.by}) ({fn}({n}[{window}]))" for n in names]
        if len(parts) == 1:
            return parts[0], scale
        tagged = " or ".join(
            f'label_replace({p}, "dcgm_field", "{i}", "", "")' for i, p in enumerate(parts)
        )
        return f"sum by ({self.by}) ({tagged})", scale


OURS = Schema("ours", "node", "gpu", "uuid", "model")
DCGM = Schema("dcgm", "Hostname", "gpu", "UUID", "modelName")


def schema_by_name(name: str) -> Schema:
    return {"ours": OURS, "dcgm": DCGM}[name]


#: A feature builds its PromQL for a schema, or returns None when the schema lacks the signal.
Builder = Callable[[Schema], str | None]


@dataclass(frozen=True)
class Feature:
    name: str
    help: str
    build: Builder
    #: "model": used by the failure model; "econ": only an input to the economics.
    role: Literal["model", "econ"] = "model"


def _scaled(expr: str, scale: float) -> str:
    return expr if scale == 1.0 else f"({expr}) * {scale:g}"


def _counter(metric: str, window: str, per: float = 1.0, **labels: str) -> Builder:
    """Increase of a counter over ``window`` summed over its labels, divided by ``per``."""

    def build(s: Schema) -> str | None:
        found = s.aggregate("sum", "increase", metric, window, **labels)
        return None if found is None else _scaled(found[0], found[1] / per)

    return build


def _gauge(fn: str, metric: str, window: str, **labels: str) -> Builder:
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


def _first(*builders: Builder) -> Builder:
    """The first builder's value, falling back to the next where it has none (PromQL ``or``)."""

    def build(s: Schema) -> str | None:
        parts = [e for e in (b(s) for b in builders) if e is not None]
        return " or ".join(f"({p})" for p in parts) if parts else None

    return build


def _health_score(s: Schema) -> str | None:
    """The exporter's overall health score (dcgm-exporter has none)."""
    found = s.selectors("gpu_health_score", dimension="overall") if s.name == "ours" else None
    if found is None:
        return None
    return f"max by ({s.by}) (last_over_time({found[0][0]}[1h]))"


def _vs_model(inner: Builder, op: Literal["-", "/"]) -> Builder:
    """The GPU's value relative to the median of GPUs of the same model (scale-free)."""

    def build(s: Schema) -> str | None:
        e = inner(s)
        if e is None:
            return None
        # The median is the whole fleet's, also for a scorer shard that asks only for its GPUs.
        fleet = inner(replace(s, shard_matcher="")) if s.shard_matcher else e
        return f"({e}) {op} on ({s.model}) group_left() quantile by ({s.model}) (0.5, {fleet})"

    return build


def _binary(op: Literal["/", "-"], left: Builder, right: Builder) -> Builder:
    """``(left) op (right)``, absent when either side is absent in the schema."""

    def build(s: Schema) -> str | None:
        a, b = left(s), right(s)
        if a is None or b is None:
            return None
        return f"({a}) {op} ({b})"

    return build


def _ratio(num: Builder, den: Builder) -> Builder:
    return _binary("/", num, den)


def _diff(a: Builder, b: Builder) -> Builder:
    return _binary("-", a, b)


def _offset(inner: Builder, offset: str) -> Builder:
    """The same expression evaluated ``offset`` ago (every range selector shifted)."""

    def build(s: Schema) -> str | None:
        e = inner(s)
        if e is None:
            return None
        return e.replace("])", f"] offset {offset})")

    return build


def _xid_events(window: str) -> Builder:
    """XID events in the window: our counters' increase; dcgm's last-XID gauge's changes."""

    def build(s: Schema) -> str | None:
        if s.name == "ours":
            return _counter("gpu_xid_errors_total", window)(s)
        sel = s.selector("gpu_xid_errors_total")
        assert sel is not None
        return f"max by ({s.by}) (changes({sel[0]}[{window}]))"

    return build


def _times(inner: Builder, factor: float) -> Builder:
    def build(s: Schema) -> str | None:
        e = inner(s)
        return None if e is None else _scaled(e, factor)

    return build


def _level(metric: str, window: str) -> Builder:
    """Latest value of a cumulative gauge or counter, summed over its labels."""

    def build(s: Schema) -> str | None:
        found = s.aggregate("max", "last_over_time", metric, window)
        return None if found is None else _scaled(*found)

    return build


_TEMP_GPU = {"sensor": "gpu"}
_TEMP_MEM = {"sensor": "memory"}
_ECC_CORR_VOL = {"type": "corrected", "scope": "volatile"}
_ECC_CORR_AGG = {"type": "corrected", "scope": "aggregate"}
_ECC_UNC_VOL = {"type": "uncorrected", "scope": "volatile"}
_ECC_UNC_AGG = {"type": "uncorrected", "scope": "aggregate"}
_DAY = 86400.0


def _ecc(window: str, days: float, corrected: bool) -> Builder:
    # Aggregate (board-life) counters first: volatile ones reset on the driver reload that
    # follows an uncorrectable error, often before a scrape could see the increment.
    vol, agg = (_ECC_CORR_VOL, _ECC_CORR_AGG) if corrected else (_ECC_UNC_VOL, _ECC_UNC_AGG)
    return _first(
        _counter("gpu_ecc_errors_total", window, per=days, **agg),
        _counter("gpu_ecc_errors_total", window, per=days, **vol),
    )


def _reporting_gap(window: str) -> Builder:
    """Share of the window a GPU did not report, relative to the best-reporting GPU.

    Resets, fallen-off-the-bus episodes and driver reloads leave gaps; normalising by the fleet's
    median count makes it independent of the scrape interval. Samples are summed over every
    series of the GPU, so a label change (driver upgrade: one series ends, another begins)
    does not read as a gap; clamped to [0, 1] against duplicated series.
    """

    def build(s: Schema) -> str | None:
        sel = s.selector("gpu_power_watts")
        if sel is None:
            return None
        count = f"sum by ({s.by}) (count_over_time({sel[0]}[{window}]))"
        return f"clamp_min(1 - ({count}) / scalar(quantile(0.5, {count})), 0)"

    return build


def _temp_excess(sensor: dict[str, str], window: str) -> Builder:
    return _vs_model(_gauge("avg_over_time", "gpu_temperature_celsius", window, **sensor), "-")


def _temp_per_watt(sensor: dict[str, str], window: str) -> Builder:
    """Temperature per watt relative to model peers: thermal resistance, load-normalised."""
    return _vs_model(
        _ratio(
            _gauge("avg_over_time", "gpu_temperature_celsius", window, **sensor),
            _gauge("avg_over_time", "gpu_power_watts", window),
        ),
        "/",
    )


def _violation_share(window: str, seconds: float, reason: str = "thermal") -> Builder:
    """Share of the window the clocks were held by ``reason`` (violation time / wall time)."""
    return _counter("gpu_clock_event_seconds_total", window, per=seconds, reason=reason)


#: XID codes by the failure class they announce (NVIDIA's XID catalogue, docs.nvidia.com/deploy/
#: xid-errors): memory = double-bit ECC, page retirement/row remap events, high single-bit
#: rate, contained/uncontained ECC; bus = GPU fell off the bus; NVLink = NVLink error.
XID_CLASSES: dict[str, tuple[int, ...]] = {
    "memory": (48, 63, 64, 92, 94, 95),
    "bus": (79,),
    "nvlink": (74,),
}
_CLASSIFIED = tuple(code for codes in XID_CLASSES.values() for code in codes)


def _xid_class_events(xid_class: str, window: str) -> Builder:
    """XID events of one class (``other``: any code not in a class) in the window.

    Ours counts per code. dcgm-exporter exports only the last XID code as a gauge, so its
    changes in the window count as events of the class of the latest code in the window (a
    memory XID followed by another class's XID within the week is attributed to the latter):
    plain range functions, no subquery, so the cost does not grow with resolution.
    """

    def build(s: Schema) -> str | None:
        codes = _CLASSIFIED if xid_class == "other" else XID_CLASSES[xid_class]
        regex = "|".join(str(c) for c in codes)
        shard = f",{s.shard_matcher}" if s.shard_matcher else ""
        if s.name == "ours":
            op = "!~" if xid_class == "other" else "=~"
            sel = f'gpu_xid_errors_total{{xid{op}"{regex}"{shard}}}'
            return f"sum by ({s.by}) (increase({sel}[{window}]))"
        found = s.selector("gpu_xid_errors_total")
        assert found is not None
        sel = found[0]
        last = f"last_over_time({sel}[{window}])"
        hit = " + ".join(f"({last} == bool {c})" for c in codes)
        if xid_class == "other":
            hit = f"({last} > bool 0) - ({hit})"
        return f"max by ({s.by}) (changes({sel}[{window}])) * max by ({s.by}) ({hit})"

    return build


def _active_hours(metric: str, window: str, **labels: str) -> Builder:
    """Hours of the window in which a counter rose: unit- and magnitude-free evidence.

    A burst of 30 corrected errors and one of 3,000 both read as "active"; whether the counter
    is in seconds, nanoseconds or events does not matter. The counter is first summed over the
    GPU's series (label churn does not split it), then its 2-hour increase is sampled every 2
    hours (hours = 2 × active slots): data as coarse as one sample an hour still shows
    activity, and the subquery costs about as much as one 7-day range function.
    """

    def build(s: Schema) -> str | None:
        # Summed over the fields a fleet exports (a field it lacks must not blank the sum).
        found = s.aggregate("sum", "increase", metric, "2h", **labels)
        if found is None:
            return None
        return f"2 * sum_over_time((({found[0]}) > bool 0)[{window}:2h])"

    return build


def _log_change(recent: Builder, baseline: Builder) -> Builder:
    """``ln(1 + recent) - ln(1 + baseline)``: activity against the GPU's own past, scale-free."""

    def build(s: Schema) -> str | None:
        a, b = recent(s), baseline(s)
        if a is None or b is None:
            return None
        return f"ln(1 + clamp_min({a}, 0)) - ln(1 + clamp_min({b}, 0))"

    return build


def _resets(window: str) -> Builder:
    """Driver reloads / GPU resets: resets of the volatile corrected-ECC counter in the window."""

    def build(s: Schema) -> str | None:
        found = s.aggregate("max", "resets", "gpu_ecc_errors_total", window, **_ECC_CORR_VOL)
        return None if found is None else found[0]

    return build


def _node_lost_gpus(window: str) -> Builder:
    """GPUs that reported on this GPU's node within the window and no longer do.

    Faults cluster by node (in the public stepfun-ai/InfiniteHBD-Trace, 23 % of GPU faults were
    followed by another on the same node within 30 days): a node that lost a GPU recently is at
    risk. Only presence is used, so any schema and any replacement policy (new UUIDs) works.
    """

    def build(s: Schema) -> str | None:
        sel = s.selector("gpu_power_watts")
        if sel is None:
            return None
        name = sel[0]
        seen = f"group by ({s.node}, {s.uuid}) (last_over_time({name}[{window}]))"
        now = f"group by ({s.node}, {s.uuid}) (last_over_time({name}[{PRESENCE_LOOKBACK}]))"
        lost = f"count by ({s.node}) ({seen} unless on ({s.uuid}) {now})"
        here = f"group by ({s.by}) (last_over_time({name}[{PRESENCE_LOOKBACK}]))"
        return f"(({here}) * on ({s.node}) group_left () ({lost})) or (({here}) * 0)"

    return build


FEATURES: tuple[Feature, ...] = (
    # --- memory (HBM) ---------------------------------------------------------------------
    Feature(
        "ecc_corrected_per_day_1h",
        "Corrected ECC errors per day, last hour.",
        _ecc("1h", 1 / 24, True),
    ),
    Feature(
        "ecc_corrected_per_day_24h",
        "Corrected ECC errors per day, last 24 h.",
        _ecc("24h", 1, True),
    ),
    Feature(
        "ecc_corrected_per_day_7d",
        "Corrected ECC errors per day, last 7 days.",
        _ecc("7d", 7, True),
    ),
    Feature("ecc_uncorrected_7d", "Uncorrected ECC errors, last 7 days.", _ecc("7d", 1, False)),
    Feature("ecc_uncorrected_30d", "Uncorrected ECC errors, last 30 days.", _ecc("30d", 1, False)),
    Feature(
        "remapped_rows_correctable_7d",
        "Rows remapped after correctable errors, 7 d.",
        _counter("gpu_remapped_rows_total", "7d", cause="correctable"),
    ),
    Feature(
        "remapped_rows_uncorrectable_30d",
        "Rows remapped after uncorrectable errors, 30 d.",
        _counter("gpu_remapped_rows_total", "30d", cause="uncorrectable"),
    ),
    Feature(
        "remapped_rows_total",
        "Rows remapped over the board's life (spares used).",
        _level("gpu_remapped_rows_total", "1h"),
    ),
    Feature(
        "row_remap_pending_7d",
        "A row remap was pending (needs reset) in the last 7 d.",
        _gauge("max_over_time", "gpu_row_remap_pending", "7d"),
    ),
    Feature(
        "row_remap_failed_30d",
        "A row remap failed (no spare rows) in the last 30 d.",
        _gauge("max_over_time", "gpu_row_remap_failed", "30d"),
    ),
    Feature(
        "retired_pages_30d",
        "Pages retired in the last 30 days (pre-Ampere boards).",
        _counter("gpu_retired_pages", "30d"),
    ),
    # --- thermal / cooling ----------------------------------------------------------------
    Feature(
        "temp_gpu_excess_24h",
        "GPU temperature minus its model's median, 24 h avg (°C).",
        _temp_excess(_TEMP_GPU, "24h"),
    ),
    Feature(
        "temp_memory_excess_24h",
        "HBM temperature minus its model's median, 24 h (°C).",
        _temp_excess(_TEMP_MEM, "24h"),
    ),
    Feature(
        "temp_gpu_excess_change_7d",
        "Change of the GPU temperature excess over 7 days.",
        _diff(_temp_excess(_TEMP_GPU, "24h"), _offset(_temp_excess(_TEMP_GPU, "24h"), "7d")),
    ),
    Feature(
        "temp_gpu_per_watt_vs_model_24h",
        "°C per W relative to model peers, 24 h.",
        _temp_per_watt(_TEMP_GPU, "24h"),
    ),
    Feature(
        "temp_gpu_per_watt_vs_model_7d",
        "°C per W relative to model peers, 7 d.",
        _temp_per_watt(_TEMP_GPU, "7d"),
    ),
    Feature(
        "temp_gpu_trend_per_day_7d",
        "GPU temperature trend (°C/day): 24 h average now minus 6 days earlier, over 6 days.",
        _times(
            _diff(
                _gauge("avg_over_time", "gpu_temperature_celsius", "24h", **_TEMP_GPU),
                _offset(
                    _gauge("avg_over_time", "gpu_temperature_celsius", "24h", **_TEMP_GPU), "6d"
                ),
            ),
            1 / 6,
        ),
    ),
    Feature(
        "thermal_violation_share_24h",
        "Share of the last 24 h clocks were thermally held.",
        _violation_share("24h", _DAY),
    ),
    Feature(
        "thermal_violation_share_7d",
        "Share of the last 7 d clocks were thermally held.",
        _violation_share("7d", 7 * _DAY),
    ),
    Feature(
        "board_limit_violation_share_24h",
        "Share of the last 24 h clocks were held by the board limit (power-delivery brake).",
        _violation_share("24h", _DAY, "board_limit"),
    ),
    Feature(
        "sm_clock_vs_model_24h",
        "SM clock relative to its model's median, 24 h avg.",
        _vs_model(_gauge("avg_over_time", "gpu_clock_hertz", "24h", clock="sm"), "/"),
    ),
    # --- power ----------------------------------------------------------------------------
    Feature(
        "power_cv_24h",
        "Power swings: standard deviation / mean of power, 24 h.",
        _ratio(
            _gauge("stddev_over_time", "gpu_power_watts", "24h"),
            _gauge("avg_over_time", "gpu_power_watts", "24h"),
        ),
    ),
    Feature(
        "power_vs_model_7d",
        "Average power relative to its model's median, 7 d.",
        _vs_model(_gauge("avg_over_time", "gpu_power_watts", "7d"), "/"),
    ),
    # --- PCIe / NVLink --------------------------------------------------------------------
    Feature(
        "pcie_replays_per_min_1h",
        "PCIe replays per minute, last hour.",
        _counter("gpu_pcie_replays_total", "1h", per=60),
    ),
    Feature(
        "pcie_replays_per_min_24h",
        "PCIe replays per minute, last 24 h.",
        _counter("gpu_pcie_replays_total", "24h", per=1440),
    ),
    Feature(
        "pcie_replays_per_min_7d",
        "PCIe replays per minute, last 7 d.",
        _counter("gpu_pcie_replays_total", "7d", per=7 * 1440),
    ),
    Feature(
        "pcie_link_width_ratio_24h",
        "Narrowest link width / maximum width, 24 h.",
        _ratio(
            _gauge("min_over_time", "gpu_pcie_link_width", "24h"),
            _gauge("max_over_time", "gpu_pcie_link_max_width", "24h"),
        ),
    ),
    Feature(
        "nvlink_errors_per_min_1h",
        "NVLink errors (CRC, replay, recovery) per min, 1 h.",
        _counter("gpu_nvlink_errors_total", "1h", per=60),
    ),
    Feature(
        "nvlink_errors_per_min_24h",
        "NVLink errors per minute, last 24 h.",
        _counter("gpu_nvlink_errors_total", "24h", per=1440),
    ),
    Feature(
        "nvlink_errors_per_min_7d",
        "NVLink errors per minute, last 7 d.",
        _counter("gpu_nvlink_errors_total", "7d", per=7 * 1440),
    ),
    # --- events ---------------------------------------------------------------------------
    Feature("xid_events_24h", "XID events in the last 24 h.", _xid_events("24h")),
    Feature("xid_events_7d", "XID events in the last 7 days.", _xid_events("7d")),
    Feature("xid_events_30d", "XID events in the last 30 days.", _xid_events("30d")),
    Feature(
        "reporting_gap_share_7d",
        "Share of the last 7 d the GPU did not report (resets, lost), vs the best GPU.",
        _reporting_gap("7d"),
    ),
    Feature(
        "xid_memory_events_7d",
        "Memory-class XID events (48, 63, 64, 92, 94, 95), last 7 days.",
        _xid_class_events("memory", "7d"),
    ),
    Feature(
        "xid_bus_events_7d",
        "Bus-class XID events (79: fell off the bus), last 7 days.",
        _xid_class_events("bus", "7d"),
    ),
    Feature(
        "xid_nvlink_events_7d",
        "NVLink-class XID events (74), last 7 days.",
        _xid_class_events("nvlink", "7d"),
    ),
    Feature(
        "xid_other_events_7d",
        "XID events of any other code, last 7 days.",
        _xid_class_events("other", "7d"),
    ),
    Feature(
        "resets_30d",
        "GPU resets / driver reloads (volatile ECC counter resets), last 30 days.",
        _resets("30d"),
    ),
    Feature(
        "node_lost_gpus_30d",
        "GPUs of this node that reported in the last 30 d and no longer do (failed, replaced).",
        _node_lost_gpus("30d"),
    ),
    # --- scale-free activity (hours with activity; change vs own baseline) ---------------
    Feature(
        "ecc_corrected_active_hours_7d",
        "Hours of the last 7 d with new corrected ECC errors.",
        _first(
            _active_hours("gpu_ecc_errors_total", "7d", **_ECC_CORR_AGG),
            _active_hours("gpu_ecc_errors_total", "7d", **_ECC_CORR_VOL),
        ),
    ),
    Feature(
        "ecc_corrected_log_change_7d",
        "ln(1 + corrected/day, 24 h) - ln(1 + corrected/day, the week before).",
        _log_change(_ecc("24h", 1, True), _offset(_ecc("7d", 7, True), "1d")),
    ),
    Feature(
        "pcie_replay_active_hours_7d",
        "Hours of the last 7 d with PCIe replays.",
        _active_hours("gpu_pcie_replays_total", "7d"),
    ),
    Feature(
        "pcie_replays_log_change_7d",
        "ln(1 + replays/min, 24 h) - ln(1 + replays/min, the week before).",
        _log_change(
            _counter("gpu_pcie_replays_total", "24h", per=1440),
            _offset(_counter("gpu_pcie_replays_total", "7d", per=7 * 1440), "1d"),
        ),
    ),
    Feature(
        "nvlink_error_active_hours_7d",
        "Hours of the last 7 d with NVLink errors.",
        _active_hours("gpu_nvlink_errors_total", "7d"),
    ),
    Feature(
        "power_violation_share_7d",
        "Share of the last 7 d clocks were held by the power policy (power brake, cap).",
        _violation_share("7d", 7 * _DAY, "power"),
    ),
    Feature(
        "power_violation_active_hours_7d",
        "Hours of the last 7 d with power-policy clock holds (any counter unit).",
        _active_hours("gpu_clock_event_seconds_total", "7d", reason="power"),
    ),
    Feature(
        "thermal_violation_active_hours_7d",
        "Hours of the last 7 d with thermal clock holds (any counter unit).",
        _active_hours("gpu_clock_event_seconds_total", "7d", reason="thermal"),
    ),
    # --- usage (scale-free) ---------------------------------------------------------------
    Feature(
        "utilization_avg_7d",
        "Average GPU utilisation, 7 d (0..1).",
        _gauge("avg_over_time", "gpu_utilization_ratio", "7d", engine="gpu"),
    ),
    # --- economics inputs (not model features) --------------------------------------------
    Feature(
        "utilization_avg_30d",
        "Average GPU utilisation, 30 d (0..1).",
        _gauge("avg_over_time", "gpu_utilization_ratio", "30d", engine="gpu"),
        "econ",
    ),
    Feature(
        "power_avg_30d_watts",
        "Average board power, 30 d (W).",
        _gauge("avg_over_time", "gpu_power_watts", "30d"),
        "econ",
    ),
    Feature(
        "health_score",
        "Exporter health score 0..100 (our schema only).",
        _health_score,
        "econ",
    ),
    Feature(
        "hard_fault",
        "1 when a hard fault is active: remap failure or uncorrectable remap in the last 24 h.",
        _first(
            _gauge("max_over_time", "gpu_row_remap_failed", "24h"),
            _counter("gpu_remapped_rows_total", "24h", cause="uncorrectable"),
        ),
        "econ",
    ),
)


MODEL_FEATURES: tuple[str, ...] = tuple(f.name for f in FEATURES if f.role == "model")
ECON_FEATURES: tuple[str, ...] = tuple(f.name for f in FEATURES if f.role == "econ")
#: How far back a GPU must have reported to count as present at the evaluation time.
PRESENCE_LOOKBACK = "30m"


def inventory_query(s: Schema) -> str:
    """All GPUs that reported power or temperature recently, one series each."""
    names = (
        ["gpu_power_watts", "gpu_temperature_celsius"]
        if s.name == "ours"
        else ["DCGM_FI_DEV_POWER_USAGE", "DCGM_FI_DEV_GPU_TEMP"]
    )
    regex = "|".join(names)
    return f'group by ({s.by}) (last_over_time({{__name__=~"{regex}"}}[{PRESENCE_LOOKBACK}]))'


def count_gpus(client: PromClient, schema: SchemaName, start: float, end: float) -> int:
    """GPUs (UUIDs) that reported at any time in [start, end]: zero means a wrong source."""
    s = schema_by_name(schema)
    names = (
        "gpu_power_watts|gpu_temperature_celsius"
        if s.name == "ours"
        else ("DCGM_FI_DEV_POWER_USAGE|DCGM_FI_DEV_GPU_TEMP")
    )
    span = max(1, math.ceil(end - start))
    query = f'count(group by ({s.uuid}) (last_over_time({{__name__=~"{names}"}}[{span}s])))'
    result = client.query(query, end)
    return int(float(result[0]["value"][1])) if result else 0


def identity_of(s: Schema, labels: dict[str, str]) -> tuple[str, str, str, str]:
    """``(node, gpu, uuid, model)`` from a result's labels in either schema."""
    return (
        labels.get(s.node, ""),
        labels.get(s.gpu, ""),
        labels.get(s.uuid, ""),
        labels.get(s.model, ""),
    )


@dataclass
class FeatureFrame:
    """Feature values of every present GPU at one evaluation time (NaN = missing)."""

    at: float | None
    schema: SchemaName
    gpus: list[tuple[str, str, str, str]]
    names: tuple[str, ...]
    values: npt.NDArray[np.float64]
    failed_queries: int = 0

    def column(self, name: str) -> npt.NDArray[np.float64]:
        return self.values[:, self.names.index(name)]

    def select(self, names: Sequence[str]) -> npt.NDArray[np.float64]:
        """Columns in the given order; a name this frame lacks is all-NaN."""
        out = np.full((len(self.gpus), len(names)), np.nan)
        for j, name in enumerate(names):
            if name in self.names:
                out[:, j] = self.values[:, self.names.index(name)]
        return out


def detect_schema(client: PromClient, at: float | None = None) -> SchemaName:
    """The schema with more GPUs reporting; ours when neither has any (then nothing scores)."""
    counts = {
        name: len(client.query(inventory_query(schema_by_name(name)), at)) for name in SCHEMAS
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
) -> FeatureFrame:
    """Run the inventory and one query per feature; a failed feature query leaves NaN.

    With ``shard_regex`` (``Shard.uuid_regex()``) every per-GPU selector carries
    ``uuid=~shard_regex`` so Prometheus evaluates only this shard's series; the inventory and the
    fleet medians still cover the whole fleet. Raises :class:`PrometheusError` only when the
    inventory itself cannot be read.
    """
    s = schema_by_name(schema)
    feats = tuple(features)
    inventory = client.query(inventory_query(s), at)
    gpus = sorted({identity_of(s, r["metric"]) for r in inventory})
    if keep is not None:
        gpus = [g for g in gpus if keep(g[2])]
    if shard_regex and all(re.fullmatch(shard_regex, g[2]) for g in gpus):
        # Server-side filtering only when the regex covers every GPU this shard owns (UUIDs not
        # of the GPU-/MIG- form are assigned by hash and can only be filtered here).
        s = replace(s, shard_matcher=f'{s.uuid}=~"{shard_regex}"')
    row = {g[2]: i for i, g in enumerate(gpus)}
    values = np.full((len(gpus), len(feats)), np.nan)
    queries = [(j, f.build(s)) for j, f in enumerate(feats)]
    failed = 0

    def run(item: tuple[int, str | None]) -> tuple[int, list[dict[str, object]] | None]:
        j, promql = item
        if promql is None or not gpus:
            return j, []
        try:
            return j, client.query(promql, at)
        except PrometheusError as exc:
            log.warning("feature %s failed: %s", feats[j].name, exc)
            return j, None

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for j, result in pool.map(run, queries):
            if result is None:
                failed += 1
                continue
            for r in result:
                labels = r["metric"]
                assert isinstance(labels, dict)
                i = row.get(labels.get(s.uuid, ""))
                if i is None:
                    continue
                values[i, j] = _finite_or_nan(r["value"][1])  # type: ignore[index]
    return FeatureFrame(at, schema, gpus, tuple(f.name for f in feats), values, failed)


def _finite_or_nan(raw: object) -> float:
    """A sample value as a finite float, or NaN (missing) for NaN, ±Inf and anything unparsable."""
    try:
        value = float(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan
    return value if math.isfinite(value) else math.nan


def feature_table_markdown() -> str:
    """The feature reference for docs/model-card.md: name, role, meaning, PromQL per schema."""
    lines = ["| feature | role | meaning | our schema | dcgm-exporter |", "|---|---|---|---|---|"]
    for f in FEATURES:
        cells = []
        for s in (OURS, DCGM):
            q = f.build(s)
            cells.append("*(absent)*" if q is None else "`" + q.replace("|", "\\|") + "`")
        lines.append(f"| `{f.name}` | {f.role} | {f.help} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines)
