"""The demo's backfilled history: computed once per fleet, topped up, and served from a copy.

Backfilling two weeks of a fleet takes a minute or two, so the blocks are cached under
``WORKDIR/history/KEY`` (KEY names every parameter that changes them) and a second run reuses
them. When the cached history ends more than a few minutes ago, only the gap up to now is
backfilled and added, so the live exporter continues a history without a hole. Prometheus gets a
fresh data dir of hard links to the cached blocks on every run: it may compact or delete its own
copy freely, and the samples scraped live by one run never overlap the gap backfilled for the
next.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from gpu_health.errors import UserError

#: Backfill only the gap when the cached history ends at least this long ago.
TOPUP_AFTER = 300.0
#: Cached histories are re-made from scratch when the gap exceeds this share of their length.
REBUILD_FRACTION = 0.5


@dataclass(frozen=True)
class HistorySpec:
    """Everything that changes the backfilled blocks."""

    gpus: int
    days: float
    seed: int
    resolution: float
    hazard_scale: float
    #: the ``instance`` label of every series, the one the live exporter's target gets
    instance: str = "demo-exporter:9840"

    @property
    def key(self) -> str:
        return (
            f"gpus{self.gpus}-days{self.days:g}-seed{self.seed}-"
            f"res{self.resolution:g}s-hazard{self.hazard_scale:g}-{self.instance.replace(':', '_')}"
        )


@dataclass
class History:
    """A ready cache entry: its TSDB blocks and the time span they cover."""

    tsdb: Path
    start: float
    end: float
    failures: int
    reused: bool


def _meta_path(entry: Path) -> Path:
    return entry / "history.json"


def _backfill(
    spec: HistorySpec, out: Path, days: float, end: float, progress: TextIO
) -> dict[str, Any]:
    from gpu_health.sim.backfill import backfill

    report: dict[str, Any] = backfill(
        gpus=spec.gpus,
        days=days,
        out=out,
        resolution=spec.resolution,
        seed=spec.seed,
        end_time=end,
        hazard_scale=spec.hazard_scale,
        progress=progress,
        instance=spec.instance,
    )
    return report


def _blocks(tsdb: Path) -> list[Path]:
    """Block directories (ULID names holding meta.json) of a TSDB dir."""
    return sorted(p for p in tsdb.iterdir() if p.is_dir() and (p / "meta.json").is_file())


def prepare(
    workdir: Path, spec: HistorySpec, progress: TextIO, now: float | None = None
) -> History:
    """Return the cached history for ``spec``, backfilling what is missing up to ``now``."""
    now = time.time() if now is None else now
    entry = workdir / "history" / spec.key
    meta_file = _meta_path(entry)
    meta: dict[str, float] | None = None
    if meta_file.is_file():
        with contextlib.suppress(ValueError, OSError):
            meta = json.loads(meta_file.read_text())
    if meta is not None:
        gap = now - meta["end"]
        if gap > REBUILD_FRACTION * spec.days * 86400 or gap < -spec.resolution:
            meta = None
    if meta is None:
        # Missing, interrupted (no history.json) or too old: start from scratch.
        shutil.rmtree(entry, ignore_errors=True)
        entry.mkdir(parents=True)
        print(
            f"backfilling {spec.days:g} days of history for {spec.gpus} simulated GPUs "
            f"(seed {spec.seed}, one sample every {spec.resolution:g}s); cached in {entry}",
            file=progress,
            flush=True,
        )
        report = _backfill(spec, entry / "tsdb", spec.days, now, progress)
        meta = {
            "start": float(report["start"]),
            "end": float(report["end"]),
            "failures": float(report["failures"]),
        }
        meta_file.write_text(json.dumps(meta))
        return History(entry / "tsdb", meta["start"], meta["end"], int(meta["failures"]), False)
    gap = now - meta["end"]
    # Whole resolution steps after the cached end, so the two sample grids coincide.
    steps = math.floor(gap / spec.resolution)
    if gap >= TOPUP_AFTER and steps >= 1:
        print(
            f"reusing the cached history in {entry}; backfilling the last {gap / 60:.0f} minutes",
            file=progress,
            flush=True,
        )
        scratch = entry / "topup"
        shutil.rmtree(scratch, ignore_errors=True)
        end = meta["end"] + steps * spec.resolution
        report = _backfill(spec, scratch, (steps - 0.5) * spec.resolution / 86400, end, progress)
        for block in _blocks(scratch):
            block.rename(entry / "tsdb" / block.name)
        shutil.rmtree(scratch, ignore_errors=True)
        meta["end"] = float(report["end"])
        meta["failures"] += float(report["failures"])
        meta_file.write_text(json.dumps(meta))
    else:
        print(f"reusing the cached history in {entry}", file=progress, flush=True)
    return History(entry / "tsdb", meta["start"], meta["end"], int(meta["failures"]), True)


def link_data_dir(history: History, data_dir: Path) -> None:
    """Make ``data_dir`` a fresh TSDB holding the history's blocks (hard links when possible)."""
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True)
    for block in _blocks(history.tsdb):
        try:
            shutil.copytree(block, data_dir / block.name, copy_function=os.link)
        except OSError:
            shutil.rmtree(data_dir / block.name, ignore_errors=True)
            shutil.copytree(block, data_dir / block.name)
    if not _blocks(data_dir):
        raise UserError(f"{history.tsdb}: the cached history holds no TSDB blocks")
