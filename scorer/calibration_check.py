"""What a calibrated model would show on the same rows: the yardstick for per-decile calibration.

Issue #16 asks for the expected and observed failures of every decile of predicted probability
to agree within ±30 %. Whether that can be seen depends on the fleet as much as on the model:
a 45-day history of a few hundred GPUs holds 50–75 failures, five to eight per decile, and the
daily rows of one failure are not independent (each failure makes up to seven positive 7-day
rows). Poisson noise on six failures alone is ±40 %. So this module asks what the deciles
would look like **if the model's probabilities were the truth**: it draws the GPUs' failures
from the model's own hazards many times over the same rows and reports

* how many deciles a calibrated model gets within ±30 % (median and 90 % range over the draws,
  and how often all of them), the number a reader should hold the real count against, and
* per decile, the range of observed / expected that a calibrated model gives 95 % of the time,
  and the deciles whose real ratio falls outside it: miscalibration that is more than chance.

The draw follows how the rows were labelled (:func:`~gpu_health.scorer.training.label_rows`):
each row's probability over the horizon is read as a constant hazard from its time until the
GPU's next row (for its last row, over one horizon), a GPU fails at most once, its rows after a
simulated failure do not exist, and a row is positive when the failure falls within the horizon
after it. Decile membership is the real rows' (by predicted probability), so each simulated
decile holds the same rows less those a simulated failure removed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

#: A decile is calibrated when its expected failures are within this share of the observed.
CALIBRATION_TOLERANCE = 0.3
#: Simulated histories per check: enough for a 95 % range per decile.
DEFAULT_DRAWS = 200
#: Histories simulated together (memory: a few bytes per row and draw).
DRAWS_AT_ONCE = 25


def decile_index(p: FloatArray, bins: int = 10) -> npt.NDArray[np.int64]:
    """Each row's decile of ``p`` (0 = lowest), split as
    :func:`~gpu_health.scorer.evaluation.calibration` splits them (stable sort, equal counts)."""
    out = np.empty(len(p), dtype=np.int64)
    for k, chunk in enumerate(np.array_split(np.argsort(p, kind="stable"), bins)):
        out[chunk] = k
    return out


def within_tolerance(expected: FloatArray, observed: FloatArray) -> FloatArray:
    """1 where a decile's expected failures are within the tolerance of its observed ones (a
    decile with nothing observed is never within), along the last axis."""
    ratio = np.divide(expected, observed, out=np.full(expected.shape, np.inf), where=observed > 0)
    result: FloatArray = (np.abs(ratio - 1.0) <= CALIBRATION_TOLERANCE).astype(np.float64)
    return result


def simulate_labels(
    p: FloatArray,
    times: FloatArray,
    gpu_index: npt.NDArray[np.int64],
    horizon: float,
    draws: int,
    rng: np.random.Generator,
) -> tuple[BoolArray, BoolArray]:
    """``(exists, positive)``, each ``draws × rows``: in each simulated history, whether the row
    exists (its GPU had not failed before its time) and whether a failure follows it within
    ``horizon`` seconds. ``p`` is every row's probability of failing within ``horizon``."""
    n = len(p)
    hazard = -np.log1p(-np.clip(p, 0.0, 1.0 - 1e-12)) / horizon
    exists = np.ones((draws, n), dtype=bool)
    positive = np.zeros((draws, n), dtype=bool)
    order = np.lexsort((times, gpu_index))
    bounds = np.flatnonzero(np.diff(gpu_index[order])) + 1
    for rows in np.split(order, bounds):
        t = times[rows]
        ends = np.append(t[1:], t[-1] + horizon)
        cumulative = np.cumsum(hazard[rows] * (ends - t))
        need = rng.exponential(size=draws)
        k = np.searchsorted(cumulative, need)  # the segment in which the failure falls
        fails = k < len(rows)
        k = np.minimum(k, len(rows) - 1)
        before = np.where(k > 0, cumulative[np.maximum(k - 1, 0)], 0.0)
        rate = np.maximum(hazard[rows][k], 1e-300)
        when = np.where(fails, t[k] + (need - before) / rate, np.inf)
        exists[:, rows] = t[np.newaxis, :] < when[:, np.newaxis]
        positive[:, rows] = (when[:, np.newaxis] > t) & (when[:, np.newaxis] <= t + horizon)
    return exists, positive


def against_chance(
    p: FloatArray,
    labelled: BoolArray,
    y: FloatArray,
    times: FloatArray,
    gpu_index: npt.NDArray[np.int64],
    horizon: float,
    draws: int = DEFAULT_DRAWS,
    seed: int = 0,
    bins: int = 10,
) -> dict[str, Any]:
    """The real deciles of the ``labelled`` rows held against ``draws`` histories drawn from
    the model's own probabilities. ``p`` and ``times``/``gpu_index`` cover every row (a GPU's
    unlabelled rows at the end of the history still carry its hazard); ``y`` is read only where
    ``labelled``."""
    rng = np.random.default_rng(seed)
    rows = np.flatnonzero(labelled)
    decile = decile_index(p[rows], bins)
    onehot = np.zeros((len(rows), bins))
    onehot[np.arange(len(rows)), decile] = 1.0
    expected_real = p[rows] @ onehot
    observed_real = y[rows] @ onehot
    expected_parts, observed_parts = [], []
    # Draws in chunks, so memory stays a few times (rows x DRAWS_AT_ONCE) whatever ``draws``.
    for start in range(0, draws, DRAWS_AT_ONCE):
        chunk = min(DRAWS_AT_ONCE, draws - start)
        exists, positive = simulate_labels(p, times, gpu_index, horizon, chunk, rng)
        kept = exists[:, rows]
        expected_parts.append(np.where(kept, p[rows][np.newaxis, :], 0.0) @ onehot)
        observed_parts.append((kept & positive[:, rows]).astype(np.float64) @ onehot)
    expected_sim = np.vstack(expected_parts)
    observed_sim = np.vstack(observed_parts)
    within_sim = within_tolerance(expected_sim, observed_sim).sum(axis=1)
    ratio_sim = np.divide(
        observed_sim,
        expected_sim,
        out=np.full(observed_sim.shape, np.nan),
        where=expected_sim > 0,
    )
    seen = np.isfinite(ratio_sim).any(axis=0)  # a decile of zeros expects nothing in any draw
    low = np.full(bins, np.nan)
    high = np.full(bins, np.nan)
    low[seen] = np.nanpercentile(ratio_sim[:, seen], 2.5, axis=0)
    high[seen] = np.nanpercentile(ratio_sim[:, seen], 97.5, axis=0)
    ratio_real = np.divide(
        observed_real,
        expected_real,
        out=np.full(bins, np.nan),
        where=expected_real > 0,
    )
    outside = [
        {"decile": k + 1, "side": "under" if ratio_real[k] > high[k] else "over"}
        for k in range(bins)
        if np.isfinite(ratio_real[k]) and not low[k] <= ratio_real[k] <= high[k]
    ]
    return {
        "draws": draws,
        "deciles_within_tolerance": int(within_tolerance(expected_real, observed_real).sum()),
        "calibrated_within_tolerance_median": float(np.median(within_sim)),
        "calibrated_within_tolerance_90pct": [
            float(np.percentile(within_sim, 5)),
            float(np.percentile(within_sim, 95)),
        ],
        "calibrated_all_within_share": float(np.mean(within_sim == bins)),
        # None where a decile expects no failure (JSON has no NaN)
        "observed_over_expected": [_finite(r) for r in ratio_real],
        "calibrated_ratio_95pct": [
            [_finite(a), _finite(b)] for a, b in zip(low, high, strict=True)
        ],
        "deciles_outside_calibrated_range": outside,
    }


def _finite(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def against_chance_summary(check: dict[str, Any]) -> str:
    """One line: the real count of deciles within the tolerance against a calibrated model's,
    and the deciles that are off by more than chance ("over": the model predicts too many)."""
    low, high = check["calibrated_within_tolerance_90pct"]
    outside = check["deciles_outside_calibrated_range"]
    named = ", ".join(f"{d['decile']} {d['side']}" for d in outside) or "none"
    return (
        f"{check['deciles_within_tolerance']} deciles within ±{CALIBRATION_TOLERANCE:.0%}, where "
        f"a calibrated model would have {check['calibrated_within_tolerance_median']:.0f} "
        f"[{low:.0f}, {high:.0f}] (all {len(check['observed_over_expected'])} in "
        f"{check['calibrated_all_within_share']:.0%} of "
        f"{check['draws']} histories drawn from its own probabilities); deciles off by more "
        f"than chance (outside a calibrated model's 95 % range): {named}"
    )
