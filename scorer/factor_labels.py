"""Operator words for the failure model's features, shown next to each risk factor.

A risk factor is published under its feature name (``ecc_corrected_per_day_24h``), which is exact
but reads like code. The report, the JSON API and the alert notifications show these words
instead, next to the name. The table is a plain dict so that it stays readable and easy to
extend; a feature that is not in it (a new or renamed one) still gets words, derived from its
name by :func:`words_from_name`, so a feature change never breaks a label.

Pure Python without imports from the scorer: the base ``gpu-health report`` uses it too.
"""

from __future__ import annotations

import re

#: Feature name -> what it measures, in an operator's words (no unit jargon, window last).
FACTOR_LABELS: dict[str, str] = {
    "ecc_corrected_per_day_1h": "corrected memory errors per day, last hour",
    "ecc_corrected_per_day_24h": "corrected memory errors per day, last 24 h",
    "ecc_corrected_per_day_7d": "corrected memory errors per day, last 7 days",
    "ecc_uncorrected_7d": "uncorrected memory errors, last 7 days",
    "ecc_uncorrected_30d": "uncorrected memory errors, last 30 days",
    "remapped_rows_correctable_7d": "memory rows remapped after corrected errors, last 7 days",
    "remapped_rows_uncorrectable_30d": "memory rows remapped after uncorrected errors, 30 days",
    "remapped_rows_total": "spare memory rows used over the board's life",
    "row_remap_pending_7d": "memory row remap waiting for a GPU reset, last 7 days",
    "row_remap_failed_30d": "memory row remap failed (no spare rows left), last 30 days",
    "retired_pages_30d": "memory pages retired, last 30 days",
    "temp_gpu_excess_24h": "GPU temperature above the model's peers, last 24 h",
    "temp_memory_excess_24h": "memory (HBM) temperature above the model's peers, last 24 h",
    "temp_gpu_excess_change_7d": "GPU running hotter than its peers than a week ago",
    "temp_gpu_node_excess_24h": "GPU temperature above the other GPUs of its node, last 24 h",
    "temp_gpu_node_excess_change_7d": "GPU running hotter than its node's GPUs than a week ago",
    "power_node_excess_24h": "power draw above the other GPUs of its node, last 24 h",
    "power_node_excess_change_7d": "power draw rising against its node's GPUs over a week",
    "power_noise_node_log_24h": "power draw wandering apart from its node's GPUs, last 24 h",
    "temp_gpu_per_watt_vs_model_24h": "GPU heat per watt compared with the model's peers, 24 h",
    "temp_gpu_per_watt_vs_model_7d": "GPU heat per watt compared with the model's peers, 7 days",
    "temp_gpu_trend_per_day_7d": "GPU temperature rising day by day, last 7 days",
    "thermal_violation_share_24h": "time clocks were held back by heat, last 24 h",
    "thermal_violation_share_7d": "time clocks were held back by heat, last 7 days",
    "board_limit_violation_share_24h": "time clocks were held by the board power limit, last 24 h",
    "sm_clock_vs_model_24h": "GPU clock compared with the model's peers, last 24 h",
    "power_cv_24h": "power draw swings, last 24 h",
    "power_vs_model_7d": "power draw compared with the model's peers, last 7 days",
    "pcie_replays_per_min_1h": "PCIe retransmissions per minute, last hour",
    "pcie_replays_per_min_24h": "PCIe retransmissions per minute, last 24 h",
    "pcie_replays_per_min_7d": "PCIe retransmissions per minute, last 7 days",
    "pcie_link_width_ratio_24h": "PCIe link running narrower than its full width, last 24 h",
    "nvlink_errors_per_min_1h": "NVLink errors per minute, last hour",
    "nvlink_errors_per_min_24h": "NVLink errors per minute, last 24 h",
    "nvlink_errors_per_min_7d": "NVLink errors per minute, last 7 days",
    "xid_events_24h": "driver-reported GPU errors (XIDs), last 24 h",
    "xid_events_7d": "driver-reported GPU errors (XIDs), last 7 days",
    "xid_events_30d": "driver-reported GPU errors (XIDs), last 30 days",
    "reporting_gap_share_7d": "time the GPU stopped reporting (resets, lost), last 7 days",
    "utilization_avg_7d": "average utilisation, last 7 days",
    "utilization_avg_30d": "average utilisation, last 30 days",
    "power_avg_30d_watts": "average power draw, last 30 days",
    "health_score": "health score",
    "hard_fault": "hard fault (GPU out of service)",
    # The rule's temperature terms (its factors are named by term): say what they compare with.
    "temperature_excess_24h": (
        "GPU temperature above the other GPUs of its node, beyond its load, last 24 h"
    ),
    "temperature_rise_7d": "GPU running hotter than its node's GPUs than a week ago, load aside",
}

#: Name parts and the words they stand for, for features not in the table.
_WORDS: dict[str, str] = {
    "ecc": "memory (ECC)",
    "temp": "temperature",
    "gpu": "GPU",
    "hbm": "HBM",
    "sm": "SM",
    "pcie": "PCIe",
    "nvlink": "NVLink",
    "xid": "XID",
    "xids": "XIDs",
    "cv": "variation",
    "avg": "average",
    "min": "minute",
    "max": "maximum",
    "pct": "percent",
    "vs": "compared with",
    "model": "the model's peers",
    "watts": "(W)",
}

_WINDOW = re.compile(r"^(\d+)([mhdw])$")
_UNITS = {"m": "minute", "h": "hour", "d": "day", "w": "week"}
#: Longest accepted feature name: a label is built for a name from the network (the API).
MAX_NAME = 200


def _window(token: str) -> str | None:
    """``24h`` -> ``last 24 h``, ``1h`` -> ``last hour``, ``7d`` -> ``last 7 days``."""
    match = _WINDOW.match(token)
    if not match:
        return None
    count, unit = int(match.group(1)), _UNITS[match.group(2)]
    if count == 1:
        return f"last {unit}"
    return f"last {count} h" if unit == "hour" else f"last {count} {unit}s"


def words_from_name(feature: str) -> str:
    """Readable words for any feature name: parts spelled out, the time window last."""
    tokens = [t for t in feature[:MAX_NAME].lower().split("_") if t]
    windows = [w for w in map(_window, tokens) if w]
    words = [_WORDS.get(t, t) for t in tokens if not _window(t)]
    text = " ".join(words) or "unnamed feature"
    return f"{text}, {windows[-1]}" if windows else text


def factor_label(feature: str) -> str:
    """The operator words for ``feature``: from the table, else derived from the name."""
    return FACTOR_LABELS.get(feature) or words_from_name(feature)
