"""What a long window costs Prometheus: per chunk and per sample, on a history it serves.

Prometheus stores each series in chunks, and a chunk never spans two of its 2-hour head
blocks; compaction joins blocks but keeps their chunks. So a series holds at least one chunk
for every 2 hours it has samples in, whatever its resolution: 24 samples a chunk at 5 minutes,
2 for the hourly samples of ``gpu-health-scorer-hourly.rules``. This bench serves a Prometheus
data directory with Debian's Prometheus, reads one series name and its hourly samples over
several windows (``count(sum_over_time(NAME[W]))``, the median of ``--runs``), counts the
samples each read (Prometheus' own query statistics) and the chunks (from the data
directory's blocks: one per series and 2-hour span with samples, checked against each block's
own count), and fits ``seconds = per_read + per_chunk × chunks + per_sample × samples`` by least
squares.

    .venv/bin/python bench/bench_chunk_cost.py --data-dir W/dcgm --at 1796083140 \
        [--name DCGM_FI_DEV_POWER_USAGE] [--json out.json]

``W/dcgm`` is the history ``bench/bench_hourly_history.py --work W`` leaves (hourly samples
included).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import requests

from gpu_health import stack
from gpu_health.scorer.history_source import hourly_name

WINDOWS = ("1d", "3d", "7d", "13d")
#: Prometheus' head block, which no chunk spans.
BLOCK_S = 7200


def chunks_per_span(data_dir: Path) -> float:
    """Chunks per series and 2-hour span over the data directory's blocks: 1.0 where every
    chunk holds one series' samples of one 2-hour head block."""
    ratios = []
    for meta_path in sorted(data_dir.glob("*/meta.json")):
        meta = json.loads(meta_path.read_text())
        spans = max(1, round((meta["maxTime"] - meta["minTime"]) / 1000 / BLOCK_S))
        stats = meta["stats"]
        if stats.get("numSeries"):
            ratios.append(stats["numChunks"] / (stats["numSeries"] * spans))
    if not ratios:
        raise SystemExit(f"--data-dir: no blocks in {data_dir}")
    return float(statistics.median(ratios))


def timed_read(url: str, promql: str, at: float, runs: int) -> tuple[float, int, int]:
    """Median seconds of ``runs`` reads of ``promql`` (after one cold read), the samples one
    read, and the series count it answered."""
    times, samples, series = [], 0, 0
    for k in range(runs + 1):
        began = time.perf_counter()
        response = requests.post(
            f"{url}/api/v1/query", data={"query": promql, "time": at, "stats": "all"}, timeout=600
        )
        took = time.perf_counter() - began
        body = response.json()
        if body.get("status") != "success":
            raise SystemExit(f"{promql}: {body.get('error')}")
        if k:
            times.append(took)
        samples = int(body["data"]["stats"]["samples"]["totalQueryableSamples"])
        series = int(float(body["data"]["result"][0]["value"][1])) if body["data"]["result"] else 0
    return statistics.median(times), samples, series


def spans_with_samples(url: str, name: str, window: str, at: float) -> int:
    """Series x 2-hour spans of ``window`` in which ``name`` has a sample: its chunks."""
    promql = f"count(count_over_time({name}[{BLOCK_S}s]))"
    total = 0
    start = at - _seconds(window)
    t = start - start % BLOCK_S + BLOCK_S  # each head block's end: a span of (end - 2h, end]
    while t - BLOCK_S < at:
        found = stack.query(url, promql, t - 0.001)  # the block [t - 2h, t)
        total += int(float(found[0]["value"][1])) if found else 0
        t += BLOCK_S
    return total


def _seconds(window: str) -> float:
    return float(window[:-1]) * {"h": 3600, "d": 86400}[window[-1]]


def measure(url: str, name: str, at: float, runs: int) -> list[dict[str, Any]]:
    rows = []
    for window in WINDOWS:
        for tier, series in (("raw", name), ("hourly", hourly_name(name))):
            seconds, samples, count = timed_read(
                url, f"count(sum_over_time({series}[{window}]))", at, runs
            )
            rows.append(
                {
                    "tier": tier,
                    "window": window,
                    "series": count,
                    "samples": samples,
                    "chunks": spans_with_samples(url, series, window, at),
                    "median_s": round(seconds, 4),
                }
            )
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    return rows


def fit(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Least squares of seconds on a fixed cost per read (the series' lookup, the answer),
    chunks and samples."""
    x = np.array([[1.0, r["chunks"], r["samples"]] for r in rows], dtype=float)
    y = np.array([r["median_s"] for r in rows])
    coefficients, *_ = np.linalg.lstsq(x, y, rcond=None)
    fixed, per_chunk, per_sample = (float(c) for c in coefficients)
    predicted = x @ coefficients
    return {
        "per_read_s": round(fixed, 4),
        "per_chunk_us": round(per_chunk * 1e6, 3),
        "per_sample_ns": round(per_sample * 1e9, 2),
        "largest_misfit": round(float(np.max(np.abs(predicted - y) / y)), 3),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True, help="a Prometheus data dir")
    parser.add_argument("--at", type=float, required=True, help="evaluation time (unix s)")
    parser.add_argument(
        "--name", default="DCGM_FI_DEV_POWER_USAGE", help="series name (default: %(default)s)"
    )
    parser.add_argument("--runs", type=int, default=5, help="(default: %(default)s)")
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args()
    if not args.data_dir.is_dir():
        parser.error(f"--data-dir: {args.data_dir} is not a directory")
    layout = chunks_per_span(args.data_dir)
    with tempfile.TemporaryDirectory(prefix="bench-chunks-") as tmp:
        work = Path(tmp)
        config = stack.write_prometheus_config(work / "prometheus.yml")
        with stack.prometheus(work, config, data_dir=args.data_dir) as prom:
            rows = measure(prom.url, args.name, args.at, args.runs)
    result = {
        "name": args.name,
        "chunks_per_series_and_span": round(layout, 3),
        "reads": rows,
        "fit": fit(rows),
    }
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
