"""The backfill's health series: scored at a coarser cadence than the raw samples."""

from __future__ import annotations

import re
import time

import numpy as np

from gpu_health.sim import openmetrics as om
from gpu_health.sim.batch import Windows
from gpu_health.sim.faults import parse_fault
from gpu_health.sim.fleet import build_fleet
from gpu_health.sim.health import HealthSeries
from gpu_health.sim.live import inject

# Within the simulated fleet's board lifetimes (they are laid out around the present).
START = time.time() // 3600 * 3600 - 7200


def test_a_gpu_that_fell_off_the_bus_is_scored_down_at_a_coarse_cadence() -> None:
    # 1-minute samples, health every 5 minutes (the backfill's default): the scored times are a
    # subset of the samples, and a GPU that fell off the bus (present, unreadable) must be
    # read as down at those times, not as a sample of NaNs from another time.
    fleet = build_fleet(8, 3)
    fault = parse_fault("gpu=3,fault=xid79,after=20m")
    slot = fleet.slots[fault.gpu]
    board = next(b for b in slot.boards if b.start <= START < b.end)
    inject(slot, board, fault, START)
    ts = np.arange(START, START + 3600.0, 60.0)
    rows = list(Windows(fleet).window(ts))
    text = HealthSeries(om.Writer("ours"), 60.0, every=300.0)(rows, ts)
    uuid = slot.identity(board)
    overall = [
        (int(m.group(2)), float(m.group(1)))
        for m in re.finditer(r'gpu_health_score\{[^}]*dimension="overall"[^}]*\} (\S+) (\d+)', text)
        if uuid.uuid in m.group(0)
    ]
    assert overall, "no health score for the faulty GPU"
    before = [v for t, v in overall if t < START + 15 * 60]
    after = [v for t, v in overall if t > START + 30 * 60]
    assert before and after
    assert min(before) > max(after)


def test_the_cadence_is_a_whole_number_of_samples_within_the_lookback() -> None:
    # 2-minute samples and a 5-minute cadence: every other sample (4 minutes), not every
    # 10 minutes where both happen to meet, which left a bare selector (5-minute lookback)
    # without a health score half of the time.
    for resolution, spacing in ((120.0, 240.0), (90.0, 270.0), (45.0, 270.0), (60.0, 300.0)):
        ts = np.arange(START, START + 6 * 3600.0, resolution)
        series = HealthSeries(om.Writer("ours"), resolution, every=300.0)
        picked = ts[series.scored(ts)]
        assert set(np.diff(picked).tolist()) == {spacing}, resolution
        # windows cut anywhere pick the same times
        halves = np.split(ts, [37])
        again = np.concatenate([h[series.scored(h)] for h in halves])
        assert again.tolist() == picked.tolist()
    coarse = np.arange(START, START + 3600.0, 600.0)
    assert HealthSeries(om.Writer("ours"), 600.0).scored(coarse).tolist() == list(range(6))
