"""Backfill throughput: samples/s our writer produces vs promtool's own ingestion, same run.

Run: ``.venv/bin/python bench/bench_backfill.py [--gpus 256] [--days 1]``. The writer and promtool
run as the CLI runs them (pipelined: promtool ingests window N while window N+1 is computed), so
both rates are measured on the same loaded machine; the ratio is the claim, not the absolutes.
A second pass adds the gpu_health_* series to show what scoring costs.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from gpu_health.sim.backfill import backfill


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--gpus", type=int, default=256)
    parser.add_argument("--days", type=float, default=1.0)
    parser.add_argument("--resolution", type=float, default=60.0)
    parser.add_argument("--schema", default="ours", choices=("ours", "dcgm"))
    args = parser.parse_args()
    end = float(int(time.time() // 7200 * 7200))
    print(
        f"backfill {args.gpus} GPUs x {args.days:g} days at {args.resolution:g}s, "
        f"schema {args.schema}"
    )
    print(f"{'variant':<22}{'samples':>14}{'write/s':>14}{'promtool/s':>14}{'ratio':>8}{'wall s':>9}")
    for health in (False, True):
        if health and args.schema != "ours":
            continue
        out = Path(tempfile.mkdtemp(prefix="bench-backfill-"))
        try:
            r = backfill(
                gpus=args.gpus,
                days=args.days,
                out=out,
                resolution=args.resolution,
                seed=1,
                schema=args.schema,
                end_time=end,
                health=health,
            )
        finally:
            shutil.rmtree(out, ignore_errors=True)
        ratio = r["write_rate"] / r["promtool_rate"] if r["promtool_rate"] else float("nan")
        name = "raw + health series" if health else "raw metrics"
        print(
            f"{name:<22}{r['samples']:>14,}{r['write_rate']:>14,.0f}"
            f"{r['promtool_rate']:>14,.0f}{ratio:>8.2f}{r['wall_seconds']:>9.1f}"
        )


if __name__ == "__main__":
    main()
