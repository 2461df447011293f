"""The Poisson-binomial distribution: the number of failures among GPUs with unequal odds.

GPU ``i`` fails within the horizon with probability ``p_i``, independently of the others; the
count of failures then follows a Poisson-binomial law. Its probabilities are computed exactly by
adding one GPU at a time (``P_new[k] = P[k] (1 - p) + P[k-1] p``). Counts far above the mean
are dropped: the support stops at ``mean + 12 sd + 40``, beyond which a Bernstein bound puts less
than 1e-26 of the probability, so the cost is O(n x that cap) rather than O(n^2) and a 100,000-GPU
fleet stays cheap. A normal or Poisson approximation would be faster but wrong exactly where
planning needs it: a rack of 16 GPUs with one at risk.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


def support_cap(probs: FloatArray) -> int:
    """Largest count worth computing: ``mean + 12 sd + 40``, at most the number of GPUs."""
    mean = float(probs.sum())
    sd = math.sqrt(float((probs * (1.0 - probs)).sum()))
    return min(len(probs), math.ceil(mean + 12.0 * sd + 40.0))


def failure_pmf(probabilities: Iterable[float]) -> FloatArray:
    """``pmf[k]`` = P(exactly k failures) for k up to :func:`support_cap`; clipped to [0, 1]."""
    probs = np.clip(np.asarray(list(probabilities), dtype=np.float64), 0.0, 1.0)
    cap = support_cap(probs)
    pmf = np.zeros(cap + 1, dtype=np.float64)
    pmf[0] = 1.0
    for n, p in enumerate(probs, start=1):
        top = min(n, cap)
        # The right-hand side is computed from the old values before the slice is overwritten.
        pmf[1 : top + 1] = pmf[1 : top + 1] * (1.0 - p) + pmf[0:top] * p
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
