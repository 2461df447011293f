"""The report's "Prediction accuracy" section: how the scorer's past flags turned out.

``gpu-health-scorer outcomes`` publishes, per horizon and rolling window, the true/false
positives and false negatives of past flags against the failure ledger, with precision, recall
and the median lead time (docs/closed-loop.md). It usually reaches Prometheus through the
node-exporter textfile collector, so the queries assume no job; ``max by`` folds the copies a
second collector or a push would add. Four queries, whatever the fleet size.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

from gpu_health.report.model import AccuracyRow

Query = Callable[[str], list[Any]]

#: Shown in place of the table when no outcome series exist (both HTML and text).
NO_ACCURACY = (
    "No live accuracy: gpu_prediction_* series are absent (run gpu-health-scorer outcomes "
    "with a failure ledger on a timer; docs/closed-loop.md)."
)
#: Bound on rows: a handful of horizons times a handful of windows in practice.
MAX_ROWS = 50
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def _seconds(text: str) -> float:
    """``7d`` -> seconds, so horizons sort 7d < 30d < 90d; an odd label sorts last."""
    match = _DURATION.match(text)
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)] if match else math.inf


def _finite(sample: dict[str, Any]) -> float | None:
    try:
        value = float(sample["value"][1])
    except (KeyError, IndexError, TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def gather_accuracy(query: Query) -> list[AccuracyRow]:
    """One row per (horizon, window) that has any outcome series, 7d before 30d before 90d."""
    rows: dict[tuple[str, str], AccuracyRow] = {}

    def row(sample: dict[str, Any]) -> AccuracyRow:
        labels = sample.get("metric", {})
        key = (str(labels.get("horizon", "")), str(labels.get("window", "")))
        if key not in rows:
            rows[key] = AccuracyRow(horizon=key[0], window=key[1])
        return rows[key]

    counts = "max by (horizon, window, outcome) (gpu_prediction_outcomes)"
    for sample in query(counts):
        value = _finite(sample)
        outcome = sample.get("metric", {}).get("outcome", "")
        if value is not None and outcome in ("true_positive", "false_positive", "false_negative"):
            setattr(row(sample), outcome, round(value))
    for metric, attr in (
        ("gpu_prediction_precision", "precision"),
        ("gpu_prediction_recall", "recall"),
        ("gpu_prediction_lead_time_days", "lead_days"),
    ):
        for sample in query(f"max by (horizon, window) ({metric})"):
            setattr(row(sample), attr, _finite(sample))
    ordered = sorted(rows.values(), key=lambda r: (_seconds(r.horizon), _seconds(r.window)))
    return ordered[:MAX_ROWS]
