"""Per-GPU isolation of bad feature values before they reach the model.

XGBoost converts its input to float32. A value Prometheus answers as finite (``1e39`` parses as a
float64 just fine) is infinite in float32, and XGBoost then refuses the *whole* matrix ("Input data
contains inf"): one GPU's broken sensor would stop scoring for the fleet. Here each such value
becomes missing (NaN, which the model handles as it does an absent series) for that GPU and
feature only, and is counted per feature (``gpu_scorer_bad_values_total{feature}``) so the bad
source can be found.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Mapping

import numpy as np

from gpu_health.scorer.features import FeatureFrame

#: The largest magnitude float32 can hold; anything beyond is inf once the model sees it.
FLOAT32_MAX = float(np.finfo(np.float32).max)


class BadValues:
    """Cleans feature frames and counts what it removed (thread-safe)."""

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def clean(self, frame: FeatureFrame) -> FeatureFrame:
        """``frame`` with every value that is not finite in float32 made NaN (missing).

        NaN itself is "missing" already (the feature code turns NaN and ±Inf answers into NaN)
        and is not counted; only values that would have broken the model are.
        """
        values = frame.values
        with np.errstate(invalid="ignore"):
            bad = np.isfinite(values) & (np.abs(values) > FLOAT32_MAX)
        if not bad.any():
            return frame
        cleaned = np.where(bad, np.nan, values)
        per_feature = bad.sum(axis=0)
        with self._lock:
            for j, count in enumerate(per_feature):
                if count:
                    name = frame.names[j]
                    self._counts[name] = self._counts.get(name, 0) + int(count)
        return dataclasses.replace(frame, values=cleaned)

    def counts(self) -> Mapping[str, int]:
        with self._lock:
            return dict(self._counts)
