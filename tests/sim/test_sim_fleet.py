"""The batch and live drivers agree; precursors show before failures; sudden failures exist."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gpu_health.sim.batch import FleetData, simulate_fleet
from gpu_health.sim.fleet import build_fleet
from gpu_health.sim.hazard import MODE_BY_NAME
from gpu_health.sim.live import SimBackend
from gpu_health.sim.models import MODELS
from gpu_health.telemetry.readings import GpuSample

END = 1_795_492_800.0  # 2026-11-24 04:00 UTC


def test_inventory_has_realistic_per_model_limits() -> None:
    inv = SimBackend(gpus=32, seed=1, start_time=END).inventory()
    assert {g.node for g in inv} == {f"gpu-node-00{i}" for i in range(1, 5)}
    assert {g.model for g in inv} == {m.name for m in MODELS.values()}
    h100 = next(g for g in inv if "H100" in g.model)
    assert (h100.slowdown_temp_celsius, h100.shutdown_temp_celsius) == (89.0, 95.0)
    assert h100.power_limit_default_watts == 700.0 and h100.nvlink_count == 18
    assert h100.pcie_max_generation == 5 and h100.max_sm_clock_hertz == 1980e6
    l40s = next(g for g in inv if "L40S" in g.model)
    assert l40s.nvlink_count == 0 and l40s.memory_max_temp_celsius is None
    assert len({g.uuid for g in inv}) == 32


def test_live_continues_the_batch_history_sample_for_sample() -> None:
    """Backfill ends at END; the live driver started at END reads the same values."""
    data = simulate_fleet(16, 0.5, seed=9, resolution=60, end_time=END)
    live = SimBackend(gpus=16, seed=9, start_time=float(data.timestamps[-1]), clock=lambda: 0.0)
    inv = live.inventory()
    assert [g.uuid for g in inv] == [b["uuid"] for b in data.boards]
    compared = 0
    for row, gpu in enumerate(inv):
        sample = live.sample(gpu)
        for name, series in data.series.items():
            if name not in GpuSample.__dataclass_fields__:
                continue  # model-only columns (e.g. last_xid_code for the dcgm schema)
            value = getattr(sample, name, None)
            batch = series[row, -1]
            if value is None:
                assert math.isnan(batch), name
                continue
            assert float(value) == pytest.approx(batch, rel=1e-9, abs=1e-6), name
            compared += 1
    assert compared > 16 * 30


def test_normal_behaviour_follows_the_h100_trace() -> None:
    data = simulate_fleet(8, 3, seed=2, resolution=60, end_time=END)  # one H100 node
    power = data.series["power_watts"]
    temp = data.series["temperature_gpu_celsius"]
    reasons = data.series["clock_event_reasons"]
    idle = reasons == 1
    capped = reasons == 4
    assert idle.mean() > 0.05 and capped.mean() > 0.1  # job churn: both idle and capped time
    assert 65 <= np.nanmedian(power[idle]) <= 80  # trace: ~72 W idle
    assert 30 <= np.nanmedian(temp[idle]) <= 45  # trace: 37 °C idle
    assert 690 <= np.nanmedian(power[capped]) <= 700  # trace: at the 700 W cap
    assert 66 <= np.nanmedian(temp[capped]) <= 78  # trace: ~71 °C under load
    assert np.nanmax(temp) < 89  # a healthy fleet never reaches slowdown


def _precursor_visible(data: FleetData, row: int, onset: int, fail: int, mode: str) -> bool:
    """The mode's physical precursor is in the telemetry between onset and failure."""
    s = data.series

    def moved(a: np.ndarray) -> bool:
        w = a[row][onset:fail]
        w = w[~np.isnan(w)]
        return bool(w.size and (w.max() > w.min() or w.max() > 0))

    def xid_seen(*codes: int) -> bool:
        return any(c in data.xids and moved(data.xids[c]) for c in codes)

    if mode in ("hbm_uncorrectable", "sram_uncorrectable"):
        return moved(np.diff(s["ecc_corrected_aggregate"], axis=1, prepend=np.nan))
    if mode == "fell_off_bus":
        replays = np.diff(s["pcie_replays"][row][onset:fail])
        minutes = (data.timestamps[1] - data.timestamps[0]) / 60
        return bool(np.nanmax(replays, initial=0) > 31 * minutes) or xid_seen(32)
    if mode == "nvlink":
        return moved(data.nvlink_errors["crc_flit"])
    if mode == "thermal":
        return bool(np.nanmax(s["temperature_gpu_celsius"][row][onset:fail]) >= 80)
    if mode == "power_delivery":
        bits = np.nan_to_num(s["clock_event_reasons"][row][onset:fail]).astype(int)
        return bool((bits & 0x80).any())
    if mode == "hang":
        return xid_seen(8, 45)
    raise AssertionError(mode)


@pytest.mark.slow
def test_every_precursor_failure_shows_its_precursor_before_failing() -> None:
    data = simulate_fleet(48, 20, seed=5, resolution=300, end_time=END, hazard_scale=150)
    ts = data.timestamps
    rows = {b["uuid"]: i for i, b in enumerate(data.boards)}
    checked, sudden = 0, 0
    for f in data.failures:
        if f.precursor_start is None:
            sudden += 1
            continue
        onset = int(np.searchsorted(ts, f.precursor_start))
        fail = int(np.searchsorted(ts, f.time))
        if onset <= 0 or fail - onset < 2 or f.uuid not in rows:
            continue  # precursor began before the window or between two samples
        assert MODE_BY_NAME[f.mode].precursor_probability("h100") > 0
        assert _precursor_visible(data, rows[f.uuid], onset, fail, f.mode), f
        checked += 1
    assert checked >= 10 and sudden >= 10, (checked, sudden)


def test_healthy_gpus_show_benign_noise_too() -> None:
    """Corrected ECC, replays and application XIDs appear on GPUs that never fail."""
    data = simulate_fleet(64, 10, seed=3, resolution=3600, end_time=END)
    failed = {f.uuid for f in data.failures}
    healthy = [i for i, b in enumerate(data.boards) if b["uuid"] not in failed]
    assert len(healthy) > 40
    sbe = data.series["ecc_corrected_aggregate"][healthy]
    replays = data.series["pcie_replays"][healthy]
    assert (np.nanmax(sbe, axis=1) > 0).mean() > 0.2
    assert (np.nanmax(replays, axis=1) > 0).mean() > 0.5
    assert any(np.nanmax(a[healthy]) > 0 for a in data.xids.values())


def test_same_seed_same_fleet_other_seed_other_fleet() -> None:
    a, b, c = build_fleet(16, 1), build_fleet(16, 1), build_fleet(16, 2)
    assert [x.boards[0].uuid for x in a.slots] == [x.boards[0].uuid for x in b.slots]
    assert [f.time for f in a.failures()] == [f.time for f in b.failures()]
    assert a.slots[0].boards[0].uuid != c.slots[0].boards[0].uuid
