"""The feature table: every failure-model and economics feature, its meaning and its PromQL.

One entry per feature, built from :mod:`gpu_health.scorer.feature_promql`; the order of
:data:`FEATURES` is the column order of every feature frame, training set and model.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from gpu_health.scorer.feature_promql import (
    DAY,
    ECC_CORR_AGG,
    ECC_CORR_VOL,
    TEMP_GPU,
    TEMP_MEM,
    Builder,
    active_hours,
    aggregate_first,
    board_life_counter,
    counter,
    diff,
    ecc,
    first_of,
    fleet_gpu_days,
    fleet_lost_gpus,
    gauge,
    hardware_hold_hours,
    health_score,
    level,
    log_change,
    node_excess,
    node_lost_gpus,
    node_noise,
    offset_by,
    ratio,
    reporting_gap,
    resets,
    temp_excess,
    temp_per_watt,
    times,
    violation_share,
    vs_model,
    xid_class_events,
    xid_events,
)
from gpu_health.scorer.feature_schema import DCGM, OURS


@dataclass(frozen=True)
class Feature:
    name: str
    help: str
    build: Builder
    #: "model": used by the failure model; "econ": only an input to the economics; "peers":
    #: who a GPU's peers are (never evidence, never a training input); "fleet": the same value
    #: on every GPU of a snapshot, the rule's base rate (never a training input, see
    #: :data:`FLEET_FEATURES`).
    role: Literal["model", "econ", "peers", "fleet"] = "model"
    #: Computed from the inventory's (node, gpu, uuid, model) instead of a query.
    from_inventory: Callable[[tuple[str, str, str, str]], float] | None = None


def _no_query(_schema: object) -> None:
    return None


def model_key(identity: tuple[str, str, str, str]) -> float:
    """A stable number per GPU model name (CRC-32 folded to 24 bits, exact in float32), so
    the rule can take fleet medians among same-model peers; NaN when the label is missing."""
    name = identity[3]
    return float(zlib.crc32(name.encode()) & 0xFFFFFF) if name else math.nan


#: The feature that groups GPUs of the same model (see :func:`model_key`).
MODEL_KEY = "gpu_model_key"

#: A GPU's temperature and power against the other GPUs of its node, 24 h (the rule's
#: temperature terms and the load they take off; each also with its change over a week).
NODE_TEMP_24H = node_excess("gpu_temperature_celsius", "24h", **TEMP_GPU)
NODE_POWER_24H = node_excess("gpu_power_watts", "24h")


FEATURES: tuple[Feature, ...] = (
    # --- memory (HBM) ---------------------------------------------------------------------
    Feature(
        "ecc_corrected_per_day_1h",
        "Corrected ECC errors per day, last hour.",
        ecc("1h", 1 / 24, True),
    ),
    Feature(
        "ecc_corrected_per_day_24h",
        "Corrected ECC errors per day, last 24 h.",
        ecc("24h", 1, True),
    ),
    Feature(
        "ecc_corrected_per_day_7d",
        "Corrected ECC errors per day, last 7 days.",
        ecc("7d", 7, True),
    ),
    Feature("ecc_uncorrected_7d", "Uncorrected ECC errors, last 7 days.", ecc("7d", 1, False)),
    Feature("ecc_uncorrected_30d", "Uncorrected ECC errors, last 30 days.", ecc("30d", 1, False)),
    Feature(
        "remapped_rows_correctable_7d",
        "Rows remapped after correctable errors, 7 d.",
        board_life_counter("gpu_remapped_rows_total", "7d", cause="correctable"),
    ),
    Feature(
        "remapped_rows_uncorrectable_30d",
        "Rows remapped after uncorrectable errors, 30 d.",
        board_life_counter("gpu_remapped_rows_total", "30d", cause="uncorrectable"),
    ),
    Feature(
        "remapped_rows_total",
        "Rows remapped over the board's life (spares used).",
        level("gpu_remapped_rows_total", "1h"),
    ),
    Feature(
        "row_remap_pending_7d",
        "A row remap was pending (needs reset) in the last 7 d.",
        gauge("max_over_time", "gpu_row_remap_pending", "7d"),
    ),
    Feature(
        "row_remap_failed_30d",
        "A row remap failed (no spare rows) in the last 30 d.",
        gauge("max_over_time", "gpu_row_remap_failed", "30d"),
    ),
    Feature(
        "retired_pages_30d",
        "Pages retired in the last 30 days (pre-Ampere boards).",
        board_life_counter("gpu_retired_pages", "30d"),
    ),
    # --- thermal / cooling ----------------------------------------------------------------
    Feature(
        "temp_gpu_excess_24h",
        "GPU temperature minus its model's median, 24 h avg (°C).",
        temp_excess(TEMP_GPU, "24h"),
    ),
    Feature(
        "temp_memory_excess_24h",
        "HBM temperature minus its model's median, 24 h (°C).",
        temp_excess(TEMP_MEM, "24h"),
    ),
    Feature(
        "temp_gpu_excess_change_7d",
        "Change of the GPU temperature excess over 7 days.",
        diff(temp_excess(TEMP_GPU, "24h"), offset_by(temp_excess(TEMP_GPU, "24h"), "7d")),
    ),
    Feature(
        "temp_gpu_node_excess_24h",
        "GPU temperature minus its node's median, 24 h avg (°C).",
        NODE_TEMP_24H,
    ),
    Feature(
        "temp_gpu_node_excess_change_7d",
        "Change of the GPU temperature above its node over 7 days.",
        diff(NODE_TEMP_24H, offset_by(NODE_TEMP_24H, "7d")),
    ),
    Feature(
        "power_node_excess_24h",
        "Board power minus its node's median, 24 h avg (W): the load behind a temperature excess.",
        NODE_POWER_24H,
    ),
    Feature(
        "power_node_excess_change_7d",
        "Change of the board power above its node over 7 days (W).",
        diff(NODE_POWER_24H, offset_by(NODE_POWER_24H, "7d")),
    ),
    Feature(
        "power_noise_node_log_24h",
        "ln(1 + std. dev. in W) of board power minus its node's median at each instant, 24 h.",
        node_noise("gpu_power_watts", "24h"),
    ),
    Feature(
        "temp_gpu_per_watt_vs_model_24h",
        "°C per W relative to model peers, 24 h.",
        temp_per_watt(TEMP_GPU, "24h"),
    ),
    Feature(
        "temp_gpu_per_watt_vs_model_7d",
        "°C per W relative to model peers, 7 d.",
        temp_per_watt(TEMP_GPU, "7d"),
    ),
    Feature(
        "temp_gpu_trend_per_day_7d",
        "GPU temperature trend (°C/day): 24 h average now minus 6 days earlier, over 6 days.",
        times(
            diff(
                gauge("avg_over_time", "gpu_temperature_celsius", "24h", **TEMP_GPU),
                offset_by(
                    gauge("avg_over_time", "gpu_temperature_celsius", "24h", **TEMP_GPU), "6d"
                ),
            ),
            1 / 6,
        ),
    ),
    Feature(
        "thermal_violation_share_24h",
        "Share of the last 24 h clocks were thermally held.",
        violation_share("24h", DAY),
    ),
    Feature(
        "thermal_violation_share_7d",
        "Share of the last 7 d clocks were thermally held.",
        violation_share("7d", 7 * DAY),
    ),
    Feature(
        "board_limit_violation_share_24h",
        "Share of the last 24 h clocks were held by the board limit (power-delivery brake).",
        violation_share("24h", DAY, "board_limit"),
    ),
    Feature(
        "sm_clock_vs_model_24h",
        "SM clock relative to its model's median, 24 h avg.",
        vs_model(gauge("avg_over_time", "gpu_clock_hertz", "24h", clock="sm"), "/"),
    ),
    # --- power ----------------------------------------------------------------------------
    Feature(
        "power_cv_24h",
        "Power swings: standard deviation / mean of power, 24 h.",
        ratio(
            gauge("stddev_over_time", "gpu_power_watts", "24h"),
            gauge("avg_over_time", "gpu_power_watts", "24h"),
        ),
    ),
    Feature(
        "power_vs_model_7d",
        "Average power relative to its model's median, 7 d.",
        vs_model(gauge("avg_over_time", "gpu_power_watts", "7d"), "/"),
    ),
    # --- PCIe / NVLink --------------------------------------------------------------------
    Feature(
        "pcie_replays_per_min_1h",
        "PCIe replays per minute, last hour.",
        counter("gpu_pcie_replays_total", "1h", per=60),
    ),
    Feature(
        "pcie_replays_per_min_24h",
        "PCIe replays per minute, last 24 h.",
        counter("gpu_pcie_replays_total", "24h", per=1440),
    ),
    Feature(
        "pcie_replays_per_min_7d",
        "PCIe replays per minute, last 7 d.",
        counter("gpu_pcie_replays_total", "7d", per=7 * 1440),
    ),
    Feature(
        "pcie_link_width_ratio_24h",
        "Narrowest link width / maximum width, 24 h.",
        ratio(
            gauge("min_over_time", "gpu_pcie_link_width", "24h"),
            gauge("max_over_time", "gpu_pcie_link_max_width", "24h"),
        ),
    ),
    Feature(
        "nvlink_errors_per_min_1h",
        "NVLink errors (CRC, replay, recovery) per min, 1 h.",
        counter("gpu_nvlink_errors_total", "1h", per=60),
    ),
    Feature(
        "nvlink_errors_per_min_24h",
        "NVLink errors per minute, last 24 h.",
        counter("gpu_nvlink_errors_total", "24h", per=1440),
    ),
    Feature(
        "nvlink_errors_per_min_7d",
        "NVLink errors per minute, last 7 d.",
        counter("gpu_nvlink_errors_total", "7d", per=7 * 1440),
    ),
    # --- events ---------------------------------------------------------------------------
    Feature("xid_events_24h", "XID events in the last 24 h.", xid_events("24h")),
    Feature("xid_events_7d", "XID events in the last 7 days.", xid_events("7d")),
    Feature("xid_events_30d", "XID events in the last 30 days.", xid_events("30d")),
    Feature(
        "reporting_gap_share_7d",
        "Share of the last 7 d the GPU did not report (resets, lost), vs the best GPU.",
        reporting_gap("7d"),
    ),
    Feature(
        "xid_memory_events_7d",
        "Memory-class XID events (48, 63, 64, 92, 94, 95), last 7 days.",
        xid_class_events("memory", "7d"),
    ),
    Feature(
        "xid_bus_events_7d",
        "Bus-class XID events (79: fell off the bus), last 7 days.",
        xid_class_events("bus", "7d"),
    ),
    Feature(
        "xid_nvlink_events_7d",
        "NVLink-class XID events (74, and 144-150 on NVLink5 boards), last 7 days.",
        xid_class_events("nvlink", "7d"),
    ),
    Feature(
        "xid_other_events_7d",
        "XID events of any other code but application errors (13, 31, 43, ...), last 7 days.",
        xid_class_events("other", "7d"),
    ),
    Feature(
        "resets_30d",
        "GPU resets / driver reloads (volatile ECC counter resets), last 30 days.",
        resets("30d"),
    ),
    Feature(
        "node_lost_gpus_30d",
        "GPUs of this node that reported in the last 30 d and no longer do (failed, replaced).",
        node_lost_gpus("30d"),
    ),
    Feature(
        "fleet_lost_gpus_30d",
        "GPUs of the whole fleet that reported in the last 30 d and no longer do (the same "
        "value on every GPU): the fleet's own recent failures.",
        fleet_lost_gpus("30d"),
        "fleet",
    ),
    Feature(
        "fleet_gpu_days_30d",
        "GPU-days the whole fleet reported in the last 30 d (the same value on every GPU): "
        "the exposure behind fleet_lost_gpus_30d.",
        fleet_gpu_days("30d"),
        "fleet",
    ),
    Feature(
        MODEL_KEY,
        "Which GPU model (a number per model label): the rule compares a GPU's counts with "
        "the median of its same-model peers. Not evidence; never a training input.",
        _no_query,
        "peers",
        model_key,
    ),
    # --- scale-free activity (hours with activity; change vs own baseline) ---------------
    Feature(
        "ecc_corrected_active_hours_7d",
        "Hours of the last 7 d with new corrected ECC errors.",
        aggregate_first(
            active_hours("gpu_ecc_errors_total", "7d", **ECC_CORR_AGG),
            active_hours("gpu_ecc_errors_total", "7d", **ECC_CORR_VOL),
        ),
    ),
    Feature(
        "ecc_corrected_log_change_7d",
        "ln(1 + corrected/day, 24 h) - ln(1 + corrected/day, the week before).",
        log_change(ecc("24h", 1, True), offset_by(ecc("7d", 7, True), "1d")),
    ),
    Feature(
        "pcie_replay_active_hours_7d",
        "Hours of the last 7 d with PCIe replays.",
        active_hours("gpu_pcie_replays_total", "7d"),
    ),
    Feature(
        "pcie_replays_log_change_7d",
        "ln(1 + replays/min, 24 h) - ln(1 + replays/min, the week before).",
        log_change(
            counter("gpu_pcie_replays_total", "24h", per=1440),
            offset_by(counter("gpu_pcie_replays_total", "7d", per=7 * 1440), "1d"),
        ),
    ),
    Feature(
        "ecc_corrected_per_day_prior_23d",
        "Corrected ECC errors per day in the 23 days before the last 7 (the GPU's own "
        "baseline: a board that has always logged errors is not a new precursor).",
        offset_by(ecc("23d", 23, True), "7d"),
    ),
    Feature(
        "pcie_replays_per_min_prior_23d",
        "PCIe replays per minute in the 23 days before the last 7 (the GPU's own baseline).",
        offset_by(counter("gpu_pcie_replays_total", "23d", per=23 * 1440), "7d"),
    ),
    Feature(
        "nvlink_errors_per_min_prior_23d",
        "NVLink errors per minute in the 23 days before the last 7 (the GPU's own baseline).",
        offset_by(counter("gpu_nvlink_errors_total", "23d", per=23 * 1440), "7d"),
    ),
    Feature(
        "nvlink_error_active_hours_7d",
        "Hours of the last 7 d with NVLink errors.",
        active_hours("gpu_nvlink_errors_total", "7d"),
    ),
    Feature(
        "power_violation_share_7d",
        "Share of the last 7 d clocks were held by the power policy (power brake, cap).",
        violation_share("7d", 7 * DAY, "power"),
    ),
    Feature(
        "power_violation_active_hours_7d",
        "Hours of the last 7 d with power-policy clock holds (any counter unit).",
        active_hours("gpu_clock_event_seconds_total", "7d", reason="power"),
    ),
    Feature(
        "thermal_violation_active_hours_7d",
        "Hours of the last 7 d with thermal clock holds (any counter unit).",
        active_hours("gpu_clock_event_seconds_total", "7d", reason="thermal"),
    ),
    Feature(
        "hardware_hold_hours_7d",
        "Hours of the last 7 d with a hardware clock hold (HW thermal slowdown, HW power brake).",
        hardware_hold_hours("7d"),
    ),
    # --- usage (scale-free) ---------------------------------------------------------------
    Feature(
        "utilization_avg_7d",
        "Average GPU utilisation, 7 d (0..1).",
        gauge("avg_over_time", "gpu_utilization_ratio", "7d", engine="gpu"),
    ),
    # --- economics inputs (not model features) --------------------------------------------
    Feature(
        "utilization_avg_30d",
        "Average GPU utilisation, 30 d (0..1).",
        gauge("avg_over_time", "gpu_utilization_ratio", "30d", engine="gpu"),
        "econ",
    ),
    Feature(
        "power_avg_30d_watts",
        "Average board power, 30 d (W).",
        gauge("avg_over_time", "gpu_power_watts", "30d"),
        "econ",
    ),
    Feature(
        "health_score",
        "Exporter health score 0..100 (our schema only).",
        health_score,
        "econ",
    ),
    Feature(
        "hard_fault",
        "1 when a hard fault is active: remap failure or uncorrectable remap in the last 24 h.",
        first_of(
            gauge("max_over_time", "gpu_row_remap_failed", "24h"),
            board_life_counter("gpu_remapped_rows_total", "24h", cause="uncorrectable"),
        ),
        "econ",
    ),
)


MODEL_FEATURES: tuple[str, ...] = tuple(f.name for f in FEATURES if f.role == "model")
ECON_FEATURES: tuple[str, ...] = tuple(f.name for f in FEATURES if f.role == "econ")
PEER_FEATURES: tuple[str, ...] = tuple(f.name for f in FEATURES if f.role == "peers")
#: The fleet's recent losses and exposure, copied onto every GPU: they set the rule's base rate
#: (the fleet's own failure rate) but say nothing about which GPU fails. A classifier trained on
#: one history can only learn *when* from them (the 30-day window fills as the history goes
#: on), so training leaves them out, as it leaves out the peer groups.
FLEET_FEATURES: tuple[str, ...] = tuple(f.name for f in FEATURES if f.role == "fleet")


def feature_table_markdown() -> str:
    """The feature reference for docs/model-card.md: name, role, meaning, PromQL per schema."""
    lines = ["| feature | role | meaning | our schema | dcgm-exporter |", "|---|---|---|---|---|"]
    for f in FEATURES:
        cells = []
        if f.from_inventory is not None:
            lines.append(f"| `{f.name}` | {f.role} | {f.help} | *(model label)* | *(modelName)* |")
            continue
        for s in (OURS, DCGM):
            q = f.build(s)
            cells.append("*(absent)*" if q is None else "`" + q.replace("|", "\\|") + "`")
        lines.append(f"| `{f.name}` | {f.role} | {f.help} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines)
