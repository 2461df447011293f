"""Simulated fleet history for training and evaluating the model, in long windows.

``gpu-health backfill`` renders 2-hour windows (right for 1-minute data); a training history is
months of coarser data, where per-window overhead dominates. This renders the same simulator
(:mod:`gpu_health.sim`) with the same OpenMetrics writer in multi-day windows and lets promtool
cut larger blocks, then writes the same ``failures.csv`` / ``gpus.csv`` ground truth.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import Any

from gpu_health import stack

CHUNK_DAYS = 6.0


def build_history(
    out: Path,
    gpus: int,
    days: float,
    resolution: float,
    seed: int,
    schema: str,
    hazard_scale: float = 1.0,
    end_time: float | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Write ``out/prometheus`` (TSDB) and ``out/failures.csv``, ``out/gpus.csv``."""
    import numpy as np

    from gpu_health.sim.backfill import write_ground_truth
    from gpu_health.sim.batch import Windows
    from gpu_health.sim.fleet import build_fleet
    from gpu_health.sim.openmetrics import Writer

    began = time.monotonic()
    windows = Windows(build_fleet(gpus, seed, hazard_scale))
    writer = Writer(schema)
    end = math.floor((time.time() if end_time is None else end_time) / resolution) * resolution
    start = end - days * 86400.0
    ts_all = np.arange(
        math.ceil(start / resolution) * resolution,
        end + resolution / 2,
        resolution,
        dtype=np.float64,
    )
    per_chunk = max(1, int(CHUNK_DAYS * 86400 / resolution))
    out.mkdir(parents=True, exist_ok=True)
    tsdb = out / "prometheus"
    chunks = [ts_all[i : i + per_chunk] for i in range(0, len(ts_all), per_chunk)]
    for k, ts in enumerate(chunks):
        text = writer.render(list(windows.window(ts)), ts)
        path = out / f"chunk-{k}.om"
        path.write_text(text + "# EOF\n")
        try:
            stack.promtool_backfill(path, tsdb, block_duration=f"{int(CHUNK_DAYS * 24 * 2)}h")
        finally:
            path.unlink(missing_ok=True)
        if progress:
            print(
                f"history {out.name}: {k + 1}/{len(chunks)} windows, {writer.samples:,} samples",
                file=sys.stderr,
                flush=True,
            )
    fleet = windows.fleet
    first, last = float(ts_all[0]), float(ts_all[-1]) + resolution
    write_ground_truth(out, fleet, first, last)
    return {
        "samples": writer.samples,
        "seconds": time.monotonic() - began,
        "failures": len(fleet.failures(first, last)),
        "start": first,
        "end": last,
    }
