"""Assemble one GPU's reading from the signal model: the GpuSample fields, or arrays of them.

:func:`fields` is the single mapping from the model's signals to :class:`GpuSample` attribute
names and units (NVML's resolutions: whole °C, MHz, MiB, mW), shared by the live driver (floats)
and the batch writer (numpy rows). Dict-valued fields (XIDs, NVLink errors, throttle time) come back
as dicts of the same.
"""

from __future__ import annotations

import math
from typing import Any

from gpu_health.sim import signals
from gpu_health.sim.fleet import Board, Slot
from gpu_health.sim.ops import Num
from gpu_health.telemetry.readings import GpuSample

MIB = 1024 * 1024
NVLINK_TYPES = ("crc_flit", "crc_data", "replay", "recovery")


def fields(xp: Any, t: Num, slot: Slot, board: Board, base: dict[str, Num]) -> dict[str, Any]:
    """GpuSample attribute -> value (scalar fields) or dict of key -> value (keyed fields)."""
    spec = slot.spec
    sig = dict(base)
    episodes = [e for e in board.episodes if e.start <= _max(t)] if board.episodes else []
    signals.apply_episodes(xp, t, sig, slot, episodes)
    reload = _reload(xp, t, slot, board)
    c = signals.counters(xp, t, slot, board, reload)
    used = xp.rint(sig["used"] / MIB) * MIB
    total = float(spec.memory_total_bytes)
    util = xp.rint(sig["util"] * 100) / 100
    mem_util = xp.rint(sig["mem_util"] * 100) / 100
    out: dict[str, Any] = {
        "temperature_gpu_celsius": xp.rint(sig["temp"]),
        "temperature_memory_celsius": xp.rint(sig["mem_temp"]) if spec.hbm else None,
        "fan_speed_ratio": xp.rint(sig["fan"] * 100) / 100 if spec.has_fan else None,
        "power_watts": xp.rint(sig["power"] * 1000) / 1000,
        "power_limit_watts": spec.tdp_watts + 0 * t,
        "energy_joules": xp.rint(c["energy"]),
        "sm_clock_hertz": xp.rint(sig["sm"] / 1e6) * 1e6,
        "memory_clock_hertz": spec.memory_clock_hertz + 0 * t,
        "performance_state": sig["pstate"] + 0 * t,
        "clock_event_reasons": sig["reasons"] + 0 * t,
        "utilization_gpu_ratio": util,
        "utilization_memory_ratio": mem_util,
        "utilization_encoder_ratio": 0 * t,
        "utilization_decoder_ratio": 0 * t,
        "graphics_engine_active_ratio": xp.rint(sig["util"] * 980) / 1000,
        "sm_active_ratio": xp.rint(sig["util"] * 900) / 1000,
        "sm_occupancy_ratio": xp.rint(sig["util"] * 450) / 1000,
        "tensor_active_ratio": xp.rint(sig["tensor"] * 1000) / 1000,
        "dram_active_ratio": xp.rint(xp.minimum(sig["mem_util"] * 1.1, 1.0) * 1000) / 1000,
        "memory_used_bytes": used,
        "memory_free_bytes": total - float(spec.reserved_bytes) - used,
        "memory_reserved_bytes": float(spec.reserved_bytes) + 0 * t,
        "memory_total_bytes": total + 0 * t,
        "ecc_corrected_volatile": c["sbe_vol"],
        "ecc_uncorrected_volatile": c["dbe_vol"],
        "ecc_corrected_aggregate": c["sbe_agg"],
        "ecc_uncorrected_aggregate": c["dbe_agg"],
        "remapped_rows_correctable": c["rr_corr"],
        "remapped_rows_uncorrectable": c["rr_unc"],
        "row_remap_pending": c["remap_pending"],
        "row_remap_failed": c["remap_failed"],
        "pcie_replays": c["replays"],
        "pcie_link_generation": sig["pcie_gen"],
        "pcie_link_width": sig["pcie_width"],
        "pcie_tx_bytes_per_second": xp.rint(sig["pcie_tx"] / 1000) * 1000,
        "pcie_rx_bytes_per_second": xp.rint(sig["pcie_rx"] / 1000) * 1000,
        "nvlink_tx_bytes": c["nvlink_bytes"] if spec.nvlink_count else None,
        "nvlink_rx_bytes": c["nvlink_bytes"] if spec.nvlink_count else None,
        "last_xid_timestamp": c["last_xid"],
        "last_xid_code": c["last_xid_code"],
        "clock_event_seconds": {
            "power": c["violation_power"],
            "thermal": c["violation_thermal"],
            "board_limit": c["violation_board_limit"],
            "sync_boost": 0 * t,
            "low_utilization": 0 * t,
            "reliability": 0 * t,
        },
        "xid_counts": c["xids"],
    }
    nvl: dict[tuple[int, str], Num] = {}
    for link in range(spec.nvlink_count):
        for kind in NVLINK_TYPES:
            nvl[(link, kind)] = c["nvlink"].get((link, kind), 0 * t)
    out["nvlink_errors"] = nvl
    return out


def _max(t: Num) -> float:
    return float(t if isinstance(t, float | int) else t.max())


def _reload(xp: Any, t: Num, slot: Slot, board: Board) -> Num:
    """Time of the last driver load before each ``t`` (maintenance reboot or recovery)."""
    k = xp.ifloor((t - slot.maintenance_phase) / slot.maintenance_period)
    maint = xp.maximum(slot.maintenance_phase + k * slot.maintenance_period, board.start)
    if not board.reloads:
        return maint
    last = xp.step(board.reloads, board.reloads, t)
    return xp.maximum(maint, last)


def is_down(board: Board, t: float) -> bool:
    return any(a <= t < b for a, b in board.down)


def sample_at(slot: Slot, board: Board, t: float) -> GpuSample:
    """One reading in pure Python (the live driver's path)."""
    from gpu_health.sim.ops import SCALAR

    base = signals.base_signals(SCALAR, t, signals.params_of(slot))
    f = fields(SCALAR, t, slot, board, base)
    sample = GpuSample(timestamp=t, xids_watched=True)
    for name, value in f.items():
        if name == "xid_counts":
            sample.xid_counts = {k: int(v) for k, v in value.items() if v > 0}
        elif name == "nvlink_errors":
            sample.nvlink_errors = {k: int(v) for k, v in value.items()}
        elif name == "clock_event_seconds":
            sample.clock_event_seconds = {k: float(v) for k, v in value.items()}
        elif name == "last_xid_code":
            continue
        elif name == "last_xid_timestamp":
            sample.last_xid_timestamp = float(value) if value > 0 else None
        elif value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        else:
            setattr(sample, name, _typed(name, value))
    return sample


_INT_FIELDS = {
    "performance_state",
    "clock_event_reasons",
    "memory_used_bytes",
    "memory_free_bytes",
    "memory_reserved_bytes",
    "memory_total_bytes",
    "ecc_corrected_volatile",
    "ecc_uncorrected_volatile",
    "ecc_corrected_aggregate",
    "ecc_uncorrected_aggregate",
    "remapped_rows_correctable",
    "remapped_rows_uncorrectable",
    "pcie_replays",
    "pcie_link_generation",
    "pcie_link_width",
}
_BOOL_FIELDS = {"row_remap_pending", "row_remap_failed"}


def _typed(name: str, value: float) -> Any:
    if name in _INT_FIELDS:
        return int(value)
    if name in _BOOL_FIELDS:
        return bool(value)
    return float(value)
