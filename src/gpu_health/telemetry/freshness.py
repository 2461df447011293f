"""How long after its last sample a GPU still counts as reporting: 30 minutes, or one and a
half scrape intervals of the data when that is longer.

Everything that tells a present GPU from an absent one (the schema choice, the scorer's
inventory and its node and fleet losses, the GPU state model) asks whether the GPU has a sample
in a recent window. A fixed 30 minutes is 120 scrapes at a 15 s interval, but history kept at
one sample an hour (a long scrape interval, Thanos' 1-hour downsampling, an hourly export) has
no sample in the last 30 minutes for half of every hour: scored at 40 minutes past, every GPU
of such a fleet read as lost, with failure probability 1. The window is therefore measured from
the data at the time asked: the median number of power samples per GPU in the last
:data:`MEASURE_WINDOW` gives the scrape interval (taken up to the next common one), and a GPU
counts as reporting when it sent a sample within one and a half of them (absent once its next
sample is half an interval late), never less than :data:`DEFAULT_FRESH_S` and never more than
the measuring window.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

#: The window at any scrape interval up to 20 minutes (the state model's and the scorer's
#: "reporting now" before it adapted).
DEFAULT_FRESH_S = 1800.0
#: How far back the samples are counted, which also bounds the window: data sparser than one
#: sample in two hours gets this whole window.
MEASURE_WINDOW = "6h"
MEASURE_WINDOW_S = 6 * 3600.0
#: One series per GPU that every exporter of either schema sends while the GPU reports: board
#: power, under dcgm-exporter's two names for it (``DCGM_FI_DEV_BOARD_POWER_WATTS`` from 4.9).
PRESENCE: tuple[str, ...] = (
    "gpu_power_watts",
    "DCGM_FI_DEV_POWER_USAGE",
    "DCGM_FI_DEV_BOARD_POWER_WATTS",
)


def interval_query(names: Sequence[str] = PRESENCE) -> str:
    """Median samples per GPU in :data:`MEASURE_WINDOW` of the series ``names`` (board power
    by default; ``labels`` counts the series it reads a GPU's presence from), both schemas at
    once. Summed per
    UUID (``uuid`` in ours, ``UUID`` in dcgm-exporter's): on Kubernetes the ``pod`` label of
    the job holding a GPU splits its series every few hours, and counting per series would
    read those splits as a long scrape interval. Each name's counts are tagged apart: a GPU
    whose exporter was upgraded within the window sends power under both of dcgm-exporter's
    names, which a range function over a ``__name__`` regex would merge into one label set
    (an error)."""
    counts = " or ".join(
        f'label_replace(count_over_time({n}[{MEASURE_WINDOW}]), "presence", "{n}", "", "")'
        for n in names
    )
    return f"quantile(0.5, sum by (uuid, UUID) ({counts}))"


#: Scrape intervals in use (seconds): the measured interval is taken up to the next of them, so
#: that a window whose first sample counts (Prometheus 2) and one where it does not
#: (VictoriaMetrics, Prometheus 3) give the same answer on regular data: hourly samples are 7
#: or 6 in six hours, 51 or 60 minutes apart, and both read as hourly.
COMMON_INTERVALS_S: tuple[float, ...] = (
    15.0,
    30.0,
    60.0,
    120.0,
    300.0,
    600.0,
    900.0,
    1200.0,
    1800.0,
    3600.0,
    7200.0,
)


#: How many scrape intervals the window spans: a GPU is absent once a sample it should have
#: sent is half an interval late (time stamps of a slow scrape or a downsampling job wander).
INTERVALS = 1.5


def scrape_interval(median_samples: float | None) -> float:
    """The scrape interval of a median of ``median_samples`` samples per GPU in the measuring
    window, taken up to the next of :data:`COMMON_INTERVALS_S` (the whole window past them);
    0 when nothing reported in it (unknown)."""
    if median_samples is None or not math.isfinite(median_samples) or median_samples <= 0:
        return 0.0
    interval = MEASURE_WINDOW_S / median_samples
    common = [c for c in COMMON_INTERVALS_S if c >= interval * (1.0 - 1e-9)]
    return common[0] if common else MEASURE_WINDOW_S


def fresh_seconds(interval_s: float) -> float:
    """How recent a GPU's last sample must be for it to report now: :data:`INTERVALS` scrape
    intervals, within [:data:`DEFAULT_FRESH_S`, :data:`MEASURE_WINDOW_S`]."""
    return min(MEASURE_WINDOW_S, max(DEFAULT_FRESH_S, INTERVALS * interval_s))


def change_seconds(interval_s: float) -> float:
    """A recent window that holds the last two samples, for evidence read as a change between
    samples (an ``increase``) or in either of them: two scrape intervals less a minute (so a
    window that ends on a sample does not also take the one two intervals back), within
    [:data:`DEFAULT_FRESH_S`, :data:`MEASURE_WINDOW_S`]. In the presence window alone an hourly
    series holds two samples in the first half of every hour and one in the second, and a GPU's
    "degraded" would come and go with the minute it is asked."""
    return min(MEASURE_WINDOW_S, max(DEFAULT_FRESH_S, 2.0 * interval_s - 60.0))


def measure(query: Callable[[str], Sequence[Any]], names: Sequence[str] = PRESENCE) -> float:
    """The data's scrape interval (:func:`scrape_interval`; 0 when unknown), with
    ``query(promql)`` an instant query at the time asked (the caller's client: the scorer's
    PromClient, the report's stack query), counted on the series ``names``."""
    result = query(interval_query(names))
    try:
        value = float(result[0]["value"][1]) if result else None
    except (KeyError, IndexError, TypeError, ValueError):
        value = None
    return scrape_interval(value)


def as_range(seconds: float) -> str:
    """A PromQL range for ``seconds`` (rounded up to a second), in the largest unit that
    divides it: ``30m``, ``2h``, ``90s``."""
    whole = math.ceil(seconds)
    for unit, size in (("h", 3600), ("m", 60)):
        if whole % size == 0:
            return f"{whole // size}{unit}"
    return f"{whole}s"


def scrapes_failed_range(interval_s: float) -> str:
    """How long a scrape target must have failed every scrape (``up`` 0) for its GPUs to stop
    reporting now: two scrape intervals, at least two minutes (a single failed scrape is no
    outage; GPUExporterDown pages after five)."""
    return as_range(max(120.0, 2.0 * interval_s))


def fresh_range(interval_s: float) -> str:
    """:func:`fresh_seconds` as a PromQL range: the presence window every query of a run uses."""
    return as_range(fresh_seconds(interval_s))


#: :data:`DEFAULT_FRESH_S` as a PromQL range (``30m``).
DEFAULT_FRESH = as_range(DEFAULT_FRESH_S)
