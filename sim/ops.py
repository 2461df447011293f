"""One set of formulas, two evaluators: Python floats (live driver) or numpy arrays (batch).

The signal model in :mod:`gpu_health.sim.signals` is written against the small interface below;
:data:`SCALAR` evaluates it for one GPU at one instant without numpy (the exporter's base install
has none), :func:`numpy_ops` for a (GPUs x time) grid. Both use the same counter-based hash for
noise, so they agree on every value up to float rounding.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from typing import Any

from gpu_health.sim import rng

Num = Any  # a float or a numpy array: the formulas do not care which


class ScalarOps:
    """Evaluate on Python floats."""

    vector = False

    @staticmethod
    def sin(x: Num) -> Num:
        return math.sin(x)

    @staticmethod
    def exp(x: Num) -> Num:
        return math.exp(x)

    @staticmethod
    def ifloor(x: Num) -> Num:
        return math.floor(x)

    @staticmethod
    def where(cond: Num, a: Num, b: Num) -> Num:
        return a if cond else b

    @staticmethod
    def clip(x: Num, lo: float, hi: float) -> Num:
        return lo if x < lo else hi if x > hi else x

    @staticmethod
    def minimum(a: Num, b: Num) -> Num:
        return a if a < b else b

    @staticmethod
    def maximum(a: Num, b: Num) -> Num:
        return a if a > b else b

    @staticmethod
    def rint(x: Num) -> Num:
        return float(round(x))

    @staticmethod
    def u(stream: Num, index: Num) -> Num:
        return rng.uniform(int(stream), int(index))

    @staticmethod
    def step(times: Sequence[float], values: Sequence[float], t: Num) -> Num:
        """Value of a right-continuous step function (0 before the first time) at ``t``."""
        i = bisect.bisect_right(times, t)
        return values[i - 1] if i else 0.0

    @staticmethod
    def band(lo: Num, hi: Num) -> Num:
        """Helper for boolean and: both operands are bools/arrays."""
        return lo and hi


SCALAR = ScalarOps()


def numpy_ops() -> Any:
    """The numpy evaluator (imported lazily: the live driver never needs numpy)."""
    import numpy as np

    class NumpyOps:
        vector = True
        sin = staticmethod(np.sin)
        exp = staticmethod(np.exp)
        where = staticmethod(np.where)
        minimum = staticmethod(np.minimum)
        maximum = staticmethod(np.maximum)
        rint = staticmethod(np.rint)

        @staticmethod
        def ifloor(x: Num) -> Num:
            return np.floor(x).astype(np.int64)

        @staticmethod
        def clip(x: Num, lo: float, hi: float) -> Num:
            return np.clip(x, lo, hi)

        @staticmethod
        def u(stream: Num, index: Num) -> Num:
            with np.errstate(over="ignore"):
                idx = np.asarray(index).astype(np.int64).astype(np.uint64)
                s = np.asarray(stream, dtype=np.uint64)
                z = _splitmix_np(np, s ^ _splitmix_np(np, idx))
            return (z >> np.uint64(11)).astype(np.float64) * rng.INV_2_53

        @staticmethod
        def step(times: Sequence[float], values: Sequence[float], t: Num) -> Num:
            if not len(times):
                return np.zeros(np.shape(t))
            i = np.searchsorted(np.asarray(times), t, side="right")
            v = np.concatenate(([0.0], np.asarray(values, dtype=np.float64)))
            return v[i]

        @staticmethod
        def band(lo: Num, hi: Num) -> Num:
            return np.logical_and(lo, hi)

    return NumpyOps()


def _splitmix_np(np: Any, x: Any) -> Any:
    z = x + np.uint64(rng.GOLDEN)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(rng.M1)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(rng.M2)
    return z ^ (z >> np.uint64(31))
