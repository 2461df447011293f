"""Durations (``60s``, ``5m``, ``2h``, ``30d``); times are :mod:`gpu_health.unix_time`'s."""

from __future__ import annotations

import math
import re

from gpu_health.config import show
from gpu_health.errors import UserError

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")


def parse_duration(text: str | float | int, what: str = "duration") -> float:
    """Seconds from ``90``, ``90s``, ``5m``, ``1.5h``, ``2d``; a one-line error otherwise,
    also for NaN and infinity (a fault ``after: .nan`` would never fire, silently)."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        try:
            seconds = float(text)
        except OverflowError:  # an integer beyond any float
            seconds = math.inf
        if seconds < 0:
            raise UserError(f"{what}: {show(text)} is negative")
    else:
        match = _DURATION.match(str(text))
        if not match:
            raise UserError(f"{what}: {show(text)} is not a duration (e.g. 90s, 5m, 2h, 30d)")
        seconds = float(match.group(1)) * _UNITS[match.group(2) or "s"]
    if not math.isfinite(seconds):
        raise UserError(f"{what}: {show(text)} is not a finite duration")
    return seconds
