"""Backfill throughput: samples/s our writer produces vs promtool's own ingestion, same run.

Run: ``.venv/bin/python bench/bench_backfill.py [--gpus 256] [--days 1]``. First line: each
2-hour window is rendered, then ingested by promtool, never overlapping, so both rates are clean
and the ratio (promtool time / render time) is the claim. Then the CLI as users run it (promtool
ingests window N while window N+1 is rendered, both sharing the 2 cores), without and with the
gpu_health_* series, to show what the pipeline and the health scoring cost.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from gpu_health.sim.backfill import backfill


def sequential(gpus: int, days: float, resolution: float, schema: str, end: float) -> None:
    """Render each window, then let promtool ingest it, never overlapping: clean timings."""
    import numpy as np

    from gpu_health import stack
    from gpu_health.sim.backfill import BLOCK_SECONDS, _scratch_dir
    from gpu_health.sim.batch import Windows
    from gpu_health.sim.fleet import build_fleet
    from gpu_health.sim.openmetrics import Writer

    windows = Windows(build_fleet(gpus, 1))
    writer = Writer(schema)
    out = Path(tempfile.mkdtemp(prefix="bench-backfill-"))
    scratch = _scratch_dir(out)
    scratch.mkdir(parents=True, exist_ok=True)
    ts_all = np.arange(end - days * 86400 + resolution, end + 1, resolution)
    chunks = np.split(ts_all, np.flatnonzero(np.diff(np.floor(ts_all / BLOCK_SECONDS))) + 1)
    render = promtool = 0.0
    try:
        for ts in chunks:
            t0 = time.perf_counter()
            text = writer.render(list(windows.window(ts)), ts)
            render += time.perf_counter() - t0
            path = scratch / "window.om"
            path.write_text(text + "# EOF\n")
            t1 = time.perf_counter()
            stack.promtool_backfill(path, out / "data")
            promtool += time.perf_counter() - t1
    finally:
        shutil.rmtree(out, ignore_errors=True)
        shutil.rmtree(scratch, ignore_errors=True)
    n = writer.samples
    print(
        f"{'render vs promtool':<22}{n:>14,}{n / render:>14,.0f}{n / promtool:>14,.0f}"
        f"{promtool / render:>8.2f}{render + promtool:>9.1f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--gpus", type=int, default=256)
    parser.add_argument("--days", type=float, default=1.0)
    parser.add_argument("--resolution", type=float, default=60.0)
    parser.add_argument("--schema", default="ours", choices=("ours", "dcgm"))
    parser.add_argument(
        "--skip-cli", action="store_true", help="only the clean render/promtool line"
    )
    args = parser.parse_args()
    end = float(int(time.time() // 7200 * 7200))
    print(
        f"backfill {args.gpus} GPUs x {args.days:g} days at {args.resolution:g}s, "
        f"schema {args.schema}"
    )
    print(
        f"{'variant':<22}{'samples':>14}{'write/s':>14}{'promtool/s':>14}{'ratio':>8}{'wall s':>9}"
    )
    sequential(args.gpus, args.days, args.resolution, args.schema, end)
    for health in (False, True):
        if args.skip_cli or (health and args.schema != "ours"):
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
        name = "CLI, + health series" if health else "CLI pipelined"
        print(
            f"{name:<22}{r['samples']:>14,}{r['write_rate']:>14,.0f}"
            f"{r['promtool_rate']:>14,.0f}{ratio:>8.2f}{r['wall_seconds']:>9.1f}"
        )


if __name__ == "__main__":
    main()
