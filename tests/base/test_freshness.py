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
    change_seconds,
    fresh_range,
    fresh_seconds,
    interval_query,
    measure,
    scrape_interval,
)
from tests.conftest import import_openmetrics

END = 1_780_000_000  # in the past: VictoriaMetrics refuses samples far ahead of now


@pytest.mark.parametrize(
    ("interval_s", "window_s", "change_s"),
    [
        (15, DEFAULT_FRESH_S, DEFAULT_FRESH_S),  # 120 scrapes in 30 minutes: the default holds
        (600, DEFAULT_FRESH_S, DEFAULT_FRESH_S),  # three 10-minute scrapes
        (1200, DEFAULT_FRESH_S, 2340.0),
        (1800, 2700.0, 3540.0),
        (3600, 5400.0, 7140.0),  # hourly data: absent once a sample is 30 minutes late
        (7200, 10800.0, 14340.0),
    ],
)
def test_windows_follow_the_scrape_interval_and_never_go_below_the_default(
    interval_s: float, window_s: float, change_s: float
) -> None:
    """One and a half intervals to report now, two for evidence read over two samples; the
    same whether the engine counts a sample on the window's start (Prometheus 2: one more
    sample than intervals) or not (VictoriaMetrics, Prometheus 3)."""
    open_start = MEASURE_WINDOW_S / interval_s
    for samples in (open_start, open_start + 1):
        assert scrape_interval(samples) == interval_s
        assert fresh_seconds(scrape_interval(samples)) == window_s
        assert change_seconds(scrape_interval(samples)) == change_s


def test_missed_scrapes_only_widen_the_windows() -> None:
    hourly = scrape_interval(6.0)
    assert scrape_interval(5.0) >= hourly and scrape_interval(3.0) > hourly
    assert fresh_seconds(scrape_interval(1.0)) == MEASURE_WINDOW_S
    assert change_seconds(scrape_interval(1.0)) == MEASURE_WINDOW_S


@pytest.mark.parametrize("samples", [None, 0.0, -1.0, math.nan, math.inf, 0.5])
def test_no_usable_count_gives_bounded_windows(samples: float | None) -> None:
    interval = scrape_interval(samples)
    for window in (fresh_seconds(interval), change_seconds(interval)):
        assert DEFAULT_FRESH_S <= window <= MEASURE_WINDOW_S
        if samples is None or not math.isfinite(samples) or samples <= 0:
            assert interval == 0.0 and window == DEFAULT_FRESH_S


@pytest.mark.parametrize(
    ("seconds", "text"), [(1800, "30m"), (7200, "2h"), (7260, "121m"), (90.2, "91s")]
)
def test_ranges_read_as_promql_durations(seconds: float, text: str) -> None:
    assert as_range(seconds) == text


@pytest.mark.parametrize(("interval", "text"), [(0.0, "30m"), (600.0, "30m"), (3600.0, "90m")])
def test_the_presence_window_reads_as_a_promql_range(interval: float, text: str) -> None:
    assert fresh_range(interval) == text


@pytest.mark.parametrize(
    ("answer", "interval"),
    [
        ([{"value": [END, "7"]}], 3600.0),
        ([{"value": [END, "6"]}], 3600.0),
        ([], 0.0),
        ([{"value": [END, "NaN"]}], 0.0),
        ([{"no value": True}], 0.0),
    ],
)
def test_measure_reads_the_median_count(answer: list[dict[str, object]], interval: float) -> None:
    asked: list[str] = []

    def query(promql: str) -> list[dict[str, object]]:
        asked.append(promql)
        return answer

    assert measure(query) == interval
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
    interval = measure(lambda promql: stack.query(server.url, promql, at=END))
    assert fresh_seconds(interval) == window


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
    interval = measure(lambda promql: stack.query(server.url, promql, at=END))
    assert fresh_seconds(interval) == window
