"""The Poisson-binomial distribution: the number of failures among GPUs with unequal odds.

GPU ``i`` fails within the horizon with probability ``p_i``, independently of the others; the
count of failures then follows a Poisson-binomial law. Its probabilities are computed exactly by
adding one GPU at a time (``P_new[k] = P[k] (1 - p) + P[k-1] p``), which is O(n^2) but
vectorised: 10,000 GPUs take well under a second. A normal or Poisson approximation would be
faster but wrong exactly where planning needs it: a rack of 16 GPUs with one at risk.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


def failure_pmf(probabilities: Iterable[float]) -> FloatArray:
    """``pmf[k]`` = P(exactly k failures); probabilities are clipped to [0, 1]."""
    probs = np.clip(np.asarray(list(probabilities), dtype=np.float64), 0.0, 1.0)
    pmf = np.zeros(len(probs) + 1, dtype=np.float64)
    pmf[0] = 1.0
    for n, p in enumerate(probs, start=1):
        # Slots 0..n are the support after n GPUs; update from the top so pmf[k-1] is still old.
        pmf[1 : n + 1] = pmf[1 : n + 1] * (1.0 - p) + pmf[0:n] * p
        pmf[0] *= 1.0 - p
    return pmf


def quantile(pmf: FloatArray, q: float) -> int:
    """The smallest k with P(N <= k) >= q (a tolerance absorbs rounding in the cumulative sum)."""
    cdf = np.cumsum(pmf)
    index = int(np.searchsorted(cdf, q - 1e-12, side="left"))
    return min(index, len(pmf) - 1)


def coverage(pmf: FloatArray, low: int, high: int) -> float:
    """P(low <= N <= high)."""
    return float(pmf[low : high + 1].sum())


def central_interval(pmf: FloatArray, level: float = 0.8) -> tuple[int, int, float]:
    """``(low, high, exact probability)`` of an interval around the middle holding ~``level``.

    A count is discrete, so no interval holds exactly 80 %. Start from the equal-tailed interval
    (10 % quantile to 90 % quantile, which holds at least 80 %) and, where dropping an end brings
    the exact probability closer to ``level``, drop it: over many months the count then falls
    inside about ``level`` of the time instead of systematically more. The exact probability
    is returned so a reader can see what the interval really holds.
    """
    tail = (1.0 - level) / 2.0
    low, high = quantile(pmf, tail), quantile(pmf, 1.0 - tail)
    best = (low, high, coverage(pmf, low, high))
    for lo, hi in ((low + 1, high), (low, high - 1), (low + 1, high - 1)):
        if lo <= hi:
            cov = coverage(pmf, lo, hi)
            if abs(cov - level) < abs(best[2] - level):
                best = (lo, hi, cov)
    return best


def spares_needed(pmf: FloatArray, service_level: float) -> int:
    """Spares to hold so that, with probability ``service_level``, none runs out."""
    return quantile(pmf, service_level)
