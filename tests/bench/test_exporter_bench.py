"""``bench/bench_exporter.py``'s served-process figures, which ``bench_nvml_vs_nvidia_smi.py``
shares on a GPU machine (tiny runs; real figures: docs/benchmarks.md)."""

from __future__ import annotations

import math
import os
import sys
import time
from pathlib import Path

from gpu_health import stack

BENCH = Path(__file__).resolve().parents[2] / "bench"


def test_a_served_exporter_is_scraped_and_its_cost_measured() -> None:
    sys.path.insert(0, str(BENCH))
    try:
        import bench_exporter
    finally:
        sys.path.remove(str(BENCH))
    numbers = bench_exporter.process_numbers(gpus=2, scrapes=5)
    assert numbers["gpus"] == 2
    assert 0 < numbers["http_ms"] < 10_000
    assert math.isfinite(numbers["cpu_ms_per_scrape"]) and numbers["cpu_ms_per_scrape"] > 0
    assert numbers["rss_mb"] > numbers["python_rss_mb"] > 1


def test_cpu_seconds_counts_this_process_and_none_for_a_gone_one() -> None:
    before = stack.cpu_seconds(os.getpid())
    assert before is not None
    deadline = time.process_time() + 0.2
    while time.process_time() < deadline:
        pass
    after = stack.cpu_seconds(os.getpid())
    assert after is not None and after - before >= 0.1
    assert stack.cpu_seconds(None) is None
    assert stack.cpu_seconds(2**22 + 12345) is None  # above pid_max's default: no such process
