"""Which metric schema to read: ours (gpu-health-exporter) or dcgm-exporter's, decided once.

A Prometheus can hold both schemas (a migration, or both exporters on some nodes). The scorer,
the report and the dashboards must then look at the same GPUs, so the decision lives here:
``--schema ours|dcgm`` is always honoured; ``auto`` picks the schema with more GPUs reporting now
(a sample in the last 30 minutes, or one and a half scrape intervals of sparser data:
:mod:`gpu_health.telemetry.freshness`; ours on a tie), and the choice is returned with its
reason so every output can say which schema it used and why. The dashboards follow the same
rule with their ``schema`` variable (docs/dashboards.md).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from gpu_health.errors import UserError
from gpu_health.telemetry.freshness import DEFAULT_FRESH, fresh_range, measure

SCHEMAS: tuple[str, ...] = ("ours", "dcgm")
_SIGNALS = {
    "ours": ("uuid", "gpu_up|gpu_power_watts|gpu_temperature_celsius"),
    # under both names dcgm-exporter has given them (4.9 renamed them to DCGM 4.6's names)
    "dcgm": (
        "UUID",
        "DCGM_FI_DEV_POWER_USAGE|DCGM_FI_DEV_GPU_TEMP"
        "|DCGM_FI_DEV_BOARD_POWER_WATTS|DCGM_FI_DEV_GPU_TEMP_CELSIUS",
    ),
}


#: dcgm-exporter's node label, and the name it has had since NVIDIA/dcgm-exporter#655 (May
#: 2026). Every reader takes either as the node (:func:`node_named`), so a fleet on a newer
#: exporter keeps its nodes and one that upgrades keeps each node under one name.
DCGM_NODE_LABEL = "Hostname"
DCGM_NODE_ALIAS = "hostname"
#: The label dcgm-exporter tells a MIG GPU's instances apart by: a MIG-enabled GPU is reported
#: once per GPU instance, every instance repeating the device's fields (its default flexible
#: mode), so a per-GPU sum takes one instance's series, not all of them.
DCGM_INSTANCE_LABEL = "GPU_I_ID"


#: The fields dcgm-exporter's own etc/default-counters.csv collects (NVIDIA/dcgm-exporter at
#: d5e5f51, May 2026) with the metric types it declares: what a fleet on the defaults exports.
#: deploy/dcgm-exporter/gpu-health-counters.csv keeps all of them and adds what the readers need.
DCGM_EXPORTER_DEFAULTS: dict[str, str] = {
    "DCGM_FI_DEV_SM_CLOCK": "gauge",
    "DCGM_FI_DEV_MEM_CLOCK": "gauge",
    "DCGM_FI_DEV_MEMORY_TEMP": "gauge",
    "DCGM_FI_DEV_GPU_TEMP": "gauge",
    "DCGM_FI_DEV_POWER_USAGE": "gauge",
    "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION": "counter",
    "DCGM_FI_DEV_PCIE_REPLAY_COUNTER": "counter",
    "DCGM_FI_DEV_GPU_UTIL": "gauge",
    "DCGM_FI_DEV_MEM_COPY_UTIL": "gauge",
    "DCGM_FI_DEV_ENC_UTIL": "gauge",
    "DCGM_FI_DEV_DEC_UTIL": "gauge",
    "DCGM_FI_DEV_XID_ERRORS": "gauge",
    "DCGM_FI_DEV_FB_FREE": "gauge",
    "DCGM_FI_DEV_FB_USED": "gauge",
    "DCGM_FI_DEV_FB_RESERVED": "gauge",
    "DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL": "counter",
    "DCGM_FI_DEV_VGPU_LICENSE_STATUS": "gauge",
    "DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS": "counter",
    "DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS": "counter",
    "DCGM_FI_DEV_ROW_REMAP_FAILURE": "gauge",
    "DCGM_FI_DRIVER_VERSION": "label",
}


def node_named(expr: str, node: str, alias: str) -> str:
    """``expr`` (an instant vector) with the node under ``node`` on every series: a series
    labelled ``alias`` instead gets its value copied (``label_replace``). Wrap every expression
    whose result is grouped or matched by the node; without an alias it is ``expr``."""
    if not alias:
        return expr
    return f'label_replace({expr}, "{node}", "$1", "{alias}", "(.+)")'


def count_query(schema: str, fresh: str = DEFAULT_FRESH) -> str:
    """PromQL counting the GPUs (distinct UUIDs) that report in ``schema``: ``gpu_up`` (also 0
    for a lost GPU), power or temperature within ``fresh``."""
    uuid, names = _SIGNALS[schema]
    return f'count(group by ({uuid}) (last_over_time({{__name__=~"{names}"}}[{fresh}])))'


#: How far back the schema choice looks when no GPU reports now: the GPU state's LOOKBACK, the
#: span in which a silent GPU is still known (absent) rather than forgotten.
SEEN_WINDOW = "7d"


@dataclass(frozen=True)
class SchemaChoice:
    name: str
    counts: dict[str, int]
    #: One line for logs and outputs: which schema and why.
    reason: str


def _count(result: Sequence[Any]) -> int:
    try:
        return int(float(result[0]["value"][1])) if result else 0
    except (KeyError, IndexError, TypeError, ValueError):
        return 0


def choose_schema(
    query: Callable[[str], Sequence[Any]], requested: str = "auto", interval_s: float | None = None
) -> SchemaChoice:
    """The schema to read and why; ``query(promql)`` runs an instant query. ``interval_s``: the
    data's scrape interval, which sets how recent a sample must be (measured when not given).

    Raises :class:`UserError` when the requested schema (or, with ``auto``, both) has no GPU
    reporting now nor in the last :data:`SEEN_WINDOW`, so a report never prints "0 GPUs" over
    data it read from the other schema. GPUs seen in that window but silent now are an outage:
    their schema is chosen, and their states say absent.
    """
    if requested not in ("auto", *SCHEMAS):
        raise UserError(f"--schema {requested!r}: expected auto, ours or dcgm")
    fresh = fresh_range(measure(query) if interval_s is None else interval_s)
    counts = {name: _count(query(count_query(name, fresh))) for name in SCHEMAS}
    summary = f"ours {counts['ours']} GPUs, dcgm-exporter {counts['dcgm']} GPUs"
    if requested != "auto":
        if counts[requested] == 0:
            seen_recently = _count(query(count_query(requested, SEEN_WINDOW)))
            if seen_recently == 0:
                raise UserError(
                    f"--schema {requested}: no GPU reports in that schema in the last {fresh} "
                    f"({summary}); use --schema auto or the other schema"
                )
            recent = f"{seen_recently} seen in the last {SEEN_WINDOW}"
            reason = f"{requested} (--schema; {summary}; {recent})"
            return SchemaChoice(requested, counts, reason)
        return SchemaChoice(requested, counts, f"{requested} (--schema; {summary})")
    if counts["ours"] == 0 and counts["dcgm"] == 0:
        # Nothing reports now: a fleet-wide outage (every exporter, or the scrape, down) or a
        # wrong source. The GPUs seen in the last days tell which, and in which schema: their
        # states then say absent, where reading the wrong schema showed no GPU at all.
        seen = {name: _count(query(count_query(name, SEEN_WINDOW))) for name in SCHEMAS}
        if any(seen.values()):
            name = "dcgm" if seen["dcgm"] > seen["ours"] else "ours"
            reason = (
                f"{name} (no GPU reports in the last {fresh}; seen in the last {SEEN_WINDOW}: "
                f"ours {seen['ours']} GPUs, dcgm-exporter {seen['dcgm']} GPUs)"
            )
            return SchemaChoice(name, counts, reason)
        raise UserError(
            f"no GPU reports in the last {fresh}: neither gpu-health-exporter metrics "
            "(gpu_up, gpu_power_watts, gpu_temperature_celsius) nor dcgm-exporter metrics "
            "(DCGM_FI_DEV_POWER_USAGE, DCGM_FI_DEV_GPU_TEMP, or their names since "
            "dcgm-exporter 4.9: DCGM_FI_DEV_BOARD_POWER_WATTS, DCGM_FI_DEV_GPU_TEMP_CELSIUS)"
        )
    name = "dcgm" if counts["dcgm"] > counts["ours"] else "ours"
    return SchemaChoice(name, counts, f"{name} (most GPUs: {summary})")
