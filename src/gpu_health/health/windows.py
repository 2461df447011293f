"""Short in-memory windows that turn cumulative counters into recent increases and rates.

The exporter must not grow without bound on a node that runs for months, so a window keeps at
most ``ANCHORS`` points however often it is fed: a new point is kept only when it is at least
``window / ANCHORS`` seconds after the previous kept one (the latest reading is held apart).
The increase is taken from the newest kept point at or before the window's start, so it may
cover up to one resolution step more than the window — the same trade Prometheus makes.
"""

from __future__ import annotations

from collections import deque

#: Kept points per window (plus one baseline and the latest reading).
ANCHORS = 60


class CounterWindow:
    """Increase of a cumulative counter over the last ``window`` seconds of sample time.

    Time is the samples' own timestamps, not the wall clock, so replayed and simulated history
    gives the same answers as live scraping. A counter that goes down (driver reload, GPU reset)
    is treated as restarted from zero, like Prometheus' ``increase``.
    """

    __slots__ = ("_adjusted", "_anchors", "_last_raw", "_latest", "resolution", "window")

    def __init__(self, window: float) -> None:
        self.window = float(window)
        self.resolution = self.window / ANCHORS
        self._anchors: deque[tuple[float, float]] = deque(maxlen=ANCHORS + 2)
        self._latest: tuple[float, float] | None = None
        self._last_raw: float | None = None
        self._adjusted = 0.0

    def __len__(self) -> int:
        return len(self._anchors)

    def seed(self, timestamp: float, value: float) -> None:
        """Declare the counter's value at an earlier time (e.g. zero before the first event)."""
        if self._latest is None:
            self._anchors.append((timestamp, value))
            self._latest = (timestamp, value)
            self._last_raw = value
            self._adjusted = value

    def add(self, timestamp: float, value: float) -> None:
        if self._latest is not None and timestamp < self._latest[0]:
            # Time went backwards (a replay restarted): start over rather than mix histories.
            self.clear()
        if self._last_raw is None:
            self._adjusted = value
        elif value >= self._last_raw:
            self._adjusted += value - self._last_raw
        else:
            self._adjusted += value
        self._last_raw = value
        self._latest = (timestamp, self._adjusted)
        if not self._anchors or timestamp - self._anchors[-1][0] >= self.resolution:
            self._anchors.append(self._latest)
        cutoff = timestamp - self.window
        while len(self._anchors) >= 2 and self._anchors[1][0] <= cutoff:
            self._anchors.popleft()

    def clear(self) -> None:
        self._anchors.clear()
        self._latest = None
        self._last_raw = None
        self._adjusted = 0.0

    def increase(self) -> float | None:
        """Increase since the window's baseline; None before the first reading."""
        if self._latest is None or not self._anchors:
            return None
        return self._latest[1] - self._anchors[0][1]

    def span(self) -> float:
        """Seconds between the baseline and the latest reading."""
        if self._latest is None or not self._anchors:
            return 0.0
        return self._latest[0] - self._anchors[0][0]

    def rate(self, unit: float, min_span: float) -> float | None:
        """Increase per ``unit`` seconds, never extrapolating from less than ``min_span``."""
        increase = self.increase()
        if increase is None:
            return None
        return increase / max(self.span(), min_span) * unit
