"""Measure what one GPU costs Prometheus, and size storage for 1k, 10k and 100k GPUs.

Backfills a small simulated fleet with ``gpu-health backfill`` (the same series the live exporter
serves), then reads the resulting TSDB: series per GPU, samples, and bytes per sample on disk.
From those it derives ingest rate, head-series memory and retention sizing for large fleets, and
prints a Markdown table for docs/scaling.md.

    .venv/bin/python bench/bench_scaling.py --gpus 32 --days 1 [--scrape-interval 15]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: Prometheus head memory per active series: the Prometheus docs' planning figure and the
#: operators' rule of thumb is 3-4 KiB per series with labels of our size; we use the high end.
HEAD_BYTES_PER_SERIES = 4096
FLEETS = (1_000, 10_000, 100_000)


def _run(argv: list[str]) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout


def tsdb_stats(data_dir: Path) -> tuple[int, int, int]:
    """(series, samples, bytes) over every block of a TSDB data dir."""
    series = samples = size = 0
    seen_series: set[str] = set()
    for meta_path in data_dir.glob("*/meta.json"):
        meta = json.loads(meta_path.read_text())
        samples += int(meta["stats"]["numSamples"])
        seen_series.add(meta["ulid"])
        series = max(series, int(meta["stats"]["numSeries"]))
        size += sum(p.stat().st_size for p in meta_path.parent.rglob("*") if p.is_file())
    return series, samples, size


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gpus", type=int, default=32)
    parser.add_argument("--days", type=float, default=1.0)
    parser.add_argument("--resolution", default="60s")
    parser.add_argument("--scrape-interval", type=float, default=15.0)
    parser.add_argument("--retention-days", type=float, default=30.0)
    parser.add_argument("--data-dir", type=Path, help="reuse an existing backfill")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        data_dir = args.data_dir or Path(tmp) / "tsdb"
        if args.data_dir is None:
            started = time.perf_counter()
            _run(
                [
                    str(Path(sys.executable).parent / "gpu-health"),
                    "backfill",
                    "--gpus",
                    str(args.gpus),
                    "--days",
                    str(args.days),
                    "--resolution",
                    args.resolution,
                    "--out",
                    str(data_dir),
                ]
            )
            print(f"backfill took {time.perf_counter() - started:.1f}s", file=sys.stderr)
        series, samples, size = tsdb_stats(data_dir)

    series_per_gpu = series / args.gpus
    bytes_per_sample = size / samples
    print(f"series per GPU: {series_per_gpu:.1f}")
    print(f"bytes per sample on disk (2h blocks, uncompacted): {bytes_per_sample:.2f}")
    print()
    print(
        "| GPUs | active series | samples/s ingested | head memory | disk per day | "
        f"disk for {args.retention_days:.0f} d |"
    )
    print("|---:|---:|---:|---:|---:|---:|")
    for fleet in FLEETS:
        active = series_per_gpu * fleet
        rate = active / args.scrape_interval
        per_day = rate * 86400 * bytes_per_sample
        print(
            f"| {fleet:,} | {active / 1e6:.2f} M | {rate / 1e3:,.0f} k | "
            f"{active * HEAD_BYTES_PER_SERIES / 2**30:.1f} GiB | {per_day / 2**30:.1f} GiB | "
            f"{per_day * args.retention_days / 2**30:,.0f} GiB |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
