"""How recent a GPU's last sample must be for it to report now: 30 minutes, or one and a half
scrape intervals of sparser data, measured from the data itself."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import pytest

from gpu_health import stack
from gpu_health.telemetry.freshness import (
    DEFAULT_FRESH_S,
    MEASURE_WINDOW_S,
    as_range,
    fresh_seconds,
    interval_query,
    measure,
)
from tests.conftest import import_openmetrics

END = 1_780_000_000  # in the past: VictoriaMetrics refuses samples far ahead of now


@pytest.mark.parametrize(
    ("interval_s", "window_s"),
    [
        (15, DEFAULT_FRESH_S),  # 120 scrapes in 30 minutes: the default holds
        (600, DEFAULT_FRESH_S),  # three 10-minute scrapes
        (1200, DEFAULT_FRESH_S),
        (1800, 2700.0),
        (3600, 5400.0),  # hourly data: absent once a sample is 30 minutes late
        (7200, 10800.0),
    ],
)
def test_one_and_a_half_scrape_intervals_and_never_less_than_the_default(
    interval_s: float, window_s: float
) -> None:
    """The same window whether the engine counts a sample on the window's start (Prometheus 2:
    one more sample than intervals) or not (VictoriaMetrics, Prometheus 3)."""
    open_start = MEASURE_WINDOW_S / interval_s
    assert fresh_seconds(open_start) == window_s
    assert fresh_seconds(open_start + 1) == window_s


def test_missed_scrapes_only_widen_the_window() -> None:
    hourly = fresh_seconds(6.0)
    assert fresh_seconds(5.0) >= hourly and fresh_seconds(3.0) > hourly
    assert fresh_seconds(1.0) == MEASURE_WINDOW_S


@pytest.mark.parametrize("samples", [None, 0.0, -1.0, math.nan, math.inf, 0.5])
def test_no_usable_count_gives_a_bounded_window(samples: float | None) -> None:
    window = fresh_seconds(samples)
    assert DEFAULT_FRESH_S <= window <= MEASURE_WINDOW_S
    if samples is None or not math.isfinite(samples) or samples <= 0:
        assert window == DEFAULT_FRESH_S


@pytest.mark.parametrize(
    ("seconds", "text"), [(1800, "30m"), (7200, "2h"), (7260, "121m"), (90.2, "91s")]
)
def test_ranges_read_as_promql_durations(seconds: float, text: str) -> None:
    assert as_range(seconds) == text


@pytest.mark.parametrize(
    ("answer", "window"),
    [
        ([{"value": [END, "7"]}], 5400.0),
        ([{"value": [END, "6"]}], 5400.0),
        ([], DEFAULT_FRESH_S),
        ([{"value": [END, "NaN"]}], DEFAULT_FRESH_S),
        ([{"no value": True}], DEFAULT_FRESH_S),
    ],
)
def test_measure_reads_the_median_count(answer: list[dict[str, object]], window: float) -> None:
    asked: list[str] = []

    def query(promql: str) -> list[dict[str, object]]:
        asked.append(promql)
        return answer

    assert measure(query) == window
    assert asked == [interval_query()]


def _history(every_s: int, split_every_s: int, gpus: int = 8) -> str:
    """dcgm-exporter power samples every ``every_s`` seconds for 8 hours, the ``pod`` label
    changing every ``split_every_s`` (a new job on the GPU: a new series)."""
    lines = ["# TYPE DCGM_FI_DEV_POWER_USAGE gauge"]
    for g in range(gpus):
        for t in range(END - 8 * 3600, END + 1, every_s):
            pod = f"job-{g}-{t // split_every_s}"
            labels = f'UUID="GPU-{g:04d}",Hostname="node-0",gpu="{g}",pod="{pod}"'
            lines.append(f"DCGM_FI_DEV_POWER_USAGE{{{labels}}} {300 + g} {t}")
    return "\n".join([*lines, "# EOF", ""])


CASES = [
    (600, 1200, DEFAULT_FRESH_S),  # a job every 20 minutes splits the series in twos
    (3600, 10**9, 5400.0),
    (3600, 7200, 5400.0),
    (1800, 10**9, 2700.0),
]


@pytest.mark.parametrize(("every_s", "split_every_s", "window"), CASES)
def test_measured_on_a_real_prometheus_per_gpu_not_per_series(
    backfill: Callable[[str], Path],
    prometheus_factory: Callable[..., stack.Server],
    every_s: int,
    split_every_s: int,
    window: float,
) -> None:
    server = prometheus_factory(data_dir=backfill(_history(every_s, split_every_s)))
    assert measure(lambda promql: stack.query(server.url, promql, at=END)) == window


@pytest.mark.parametrize(("every_s", "split_every_s", "window"), CASES)
def test_victoriametrics_measures_the_same_window(
    victoriametrics_factory: Callable[[], stack.Server],
    every_s: int,
    split_every_s: int,
    window: float,
) -> None:
    """VictoriaMetrics leaves a sample on the window's start out of the count (Prometheus 2
    counts it): the window is the same."""
    server = victoriametrics_factory()
    import_openmetrics(server, _history(every_s, split_every_s))
    assert measure(lambda promql: stack.query(server.url, promql, at=END)) == window
