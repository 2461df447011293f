"""The telemetry model: what a GPU reads at time ``t``, written once for floats and arrays.

Normal behaviour is the H100 trace (tests/fixtures/h100/h100_load_trace.csv) scaled per model:
idle at ~72 W / 37 °C / 345 MHz with the "GPU idle" reason; a training job holds the board at its
power cap ("SW power cap", SM clock ~68 % of max, ~71 °C GPU / ~67 °C HBM); inference runs below
the cap. Jobs churn on 4-hour node blocks whose occupancy follows the time of day. Precursor
episodes and failures are overlaid per board (:func:`apply_episodes`, :func:`counters`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from gpu_health.sim.fleet import Board, Episode, Slot
from gpu_health.sim.ops import Num

BLOCK = 4 * 3600.0
NOISE_STEP = 10.0
DAY = 86400.0
MIB = 1024 * 1024
IDLE_MEMORY_BYTES = 480 * MIB  # H100 trace, idle
TRAINING_SHARE = 0.75
#: mean share of time a training board is power-capped (feeds the power violation counter)
CAP_SHARE = 0.5

# reason bits (readings.CLOCK_EVENT_REASONS)
GPU_IDLE, SW_POWER_CAP, HW_SLOWDOWN = 0x1, 0x4, 0x8
SW_THERMAL, HW_THERMAL, HW_POWER_BRAKE = 0x20, 0x40, 0x80


@dataclass
class Params:
    """Per-slot constants: floats (live) or (GPUs x 1) arrays (batch)."""

    node_key: Num
    slot_key: Num
    node_phase: Num
    tdp: Num
    idle_w: Num
    idle_temp: Num
    load_temp: Num
    idle_mem_temp: Num
    load_mem_temp: Num
    max_sm: Num
    idle_sm: Num
    capped_ratio: Num
    mem_total: Num
    reserved: Num
    temp_offset: Num
    power_scale: Num
    has_fan: Num
    p0_idle: Num


def params_of(slot: Slot) -> Params:
    s = slot.spec
    return Params(
        node_key=slot.node_key,
        slot_key=slot.key,
        node_phase=(slot.node_key % 1000) / 1000.0 * BLOCK,
        tdp=s.tdp_watts,
        idle_w=s.idle_watts,
        idle_temp=s.idle_temp,
        load_temp=s.load_temp,
        idle_mem_temp=s.idle_mem_temp if s.idle_mem_temp is not None else math.nan,
        load_mem_temp=s.load_mem_temp if s.load_mem_temp is not None else math.nan,
        max_sm=s.max_sm_clock_hertz,
        idle_sm=s.idle_sm_clock_hertz,
        capped_ratio=s.capped_sm_clock_ratio,
        mem_total=float(s.memory_total_bytes),
        reserved=float(s.reserved_bytes),
        temp_offset=slot.temp_offset,
        power_scale=slot.power_scale,
        has_fan=1.0 if s.has_fan else 0.0,
        p0_idle=1.0 if s.hbm else 0.0,
    )


def base_signals(xp: Any, t: Num, p: Params) -> dict[str, Num]:
    """Healthy behaviour: job churn, day/night, power cap, first-order thermals, noise."""
    shifted = t + p.node_phase
    block = xp.ifloor(shifted / BLOCK)
    in_block = shifted - block * BLOCK
    block_start = block * BLOCK - p.node_phase
    hour = (block_start % DAY) / 3600.0
    p_busy = 0.80 + 0.12 * xp.sin(2 * math.pi * (hour - 9.0) / 24.0)
    u_busy = xp.u(p.node_key, block * 8)
    u_kind = xp.u(p.node_key, block * 8 + 1)
    u_start = xp.u(p.node_key, block * 8 + 2)
    u_end = xp.u(p.node_key, block * 8 + 3)
    u_level = xp.u(p.node_key, block * 8 + 4)
    job_end = xp.where(u_end > 0.6, BLOCK, BLOCK * (0.75 + 0.6 * u_end))
    running = (u_busy < p_busy) * (in_block >= u_start * 0.2 * BLOCK) * (in_block < job_end)
    training = running * (u_kind < TRAINING_SHARE)
    inference = running * (u_kind >= TRAINING_SHARE)
    idle = 1 - running

    step = xp.ifloor(t / NOISE_STEP)
    n1 = xp.u(p.slot_key, step * 4)
    n2 = xp.u(p.slot_key, step * 4 + 1)
    n3 = xp.u(p.slot_key, step * 4 + 2)

    dyn = p.tdp - p.idle_w
    level = 0.35 + 0.5 * u_level
    raw_train = p.tdp * (0.82 + 0.32 * n1) * p.power_scale
    capped = training * (raw_train >= p.tdp)
    p_train = xp.minimum(raw_train, p.tdp - 2.5 * n2)
    p_infer = p.idle_w + dyn * level * (0.75 + 0.25 * n1) * 0.85 * p.power_scale
    p_idle = p.idle_w * (0.99 + 0.02 * n1)
    power = training * p_train + inference * p_infer + idle * p_idle

    frac = (power - p.idle_w) / dyn
    diurnal = 1.2 * xp.sin(2 * math.pi * ((t % DAY) / DAY - 0.375))
    temp = p.idle_temp + (p.load_temp - p.idle_temp) * frac + p.temp_offset + diurnal
    temp = temp + 1.2 * (n3 - 0.5)
    mem_temp = p.idle_mem_temp + (p.load_mem_temp - p.idle_mem_temp) * frac
    mem_temp = mem_temp + 0.8 * p.temp_offset + diurnal + 0.8 * (n2 - 0.5)

    sm_busy = xp.where(capped, p.max_sm * p.capped_ratio * (0.985 + 0.03 * n2), p.max_sm)
    sm_infer = p.max_sm * (0.96 + 0.04 * n3)
    sm = training * sm_busy + inference * sm_infer + idle * p.idle_sm

    util = training * (0.97 + 0.03 * n2) + inference * xp.clip(level + 0.2 * (n2 - 0.5), 0, 1)
    mem_util = training * (0.28 + 0.15 * n3) + inference * 0.4 * level * (0.8 + 0.4 * n3)
    u_mem = xp.u(p.node_key, block * 8 + 5)
    used_frac = training * (0.8 + 0.15 * u_mem) + inference * (0.3 + 0.5 * u_mem)
    used = xp.maximum(used_frac * (p.mem_total - p.reserved), IDLE_MEMORY_BYTES)

    reasons = idle * GPU_IDLE + capped * SW_POWER_CAP
    return {
        "running": running,
        "training": training,
        "power": power,
        "temp": temp,
        "mem_temp": mem_temp,
        "sm": sm,
        "util": util,
        "mem_util": mem_util,
        "used": used,
        "reasons": reasons,
        "tensor": training * (0.4 + 0.15 * n1) + inference * 0.2 * level,
        "pcie_tx": running * (1.5e9 + 2e9 * n1) + 2e6,
        "pcie_rx": running * (2.5e9 + 3e9 * n2) + 3e6,
        "pstate": xp.where(idle * (1 - p.p0_idle), 8, 0),
        "fan": p.has_fan * xp.clip(0.3 + 0.6 * (temp - 35.0) / 50.0, 0.3, 1.0),
    }


def apply_episodes(
    xp: Any, t: Num, sig: dict[str, Num], slot: Slot, episodes: list[Episode]
) -> None:
    """Overlay continuous precursor effects (thermal, power brake, PCIe downgrade) on one GPU."""
    spec = slot.spec
    sig["pcie_gen"] = spec.pcie_generation + 0 * t
    sig["pcie_width"] = spec.pcie_width + 0 * t
    for ep in episodes:
        prog = _progress(xp, t, ep)
        active = (t >= ep.start) * (t < ep.end)
        if ep.kind == "thermal":
            # TIM/fan degradation: more °C per watt, reaching past slowdown at the failure
            # An injected fault drives the GPU past slowdown at any load: measured from its
            # temperature now, not from the load temperature (an idle GPU between 4-hour jobs
            # blocks otherwise stayed cool for the whole block and never alerted).
            injected = ep.ramp_seconds is not None
            start = sig["temp"] if injected else spec.load_temp
            target = (spec.slowdown_temp + 4.0 - start) * min(max(ep.strength, 0.8), 1.5)
            extra = active * target * prog**1.5
            frac = (sig["power"] - spec.idle_watts) / (spec.tdp_watts - spec.idle_watts)
            # degraded cooling shows most under load; an injected fault shows at any load
            weight = 1.0 if injected else 0.3 + 0.7 * frac
            temp = sig["temp"] + extra * weight
            hot = temp >= spec.gpu_max_operating_temp
            slow = temp >= spec.slowdown_temp
            sig["temp"] = xp.minimum(temp, spec.slowdown_temp + 1.0)
            sig["mem_temp"] = sig["mem_temp"] + 0.6 * extra * weight
            sig["reasons"] = sig["reasons"] + hot * SW_THERMAL + slow * (HW_THERMAL + HW_SLOWDOWN)
            sig["sm"] = sig["sm"] * (1 - 0.12 * hot - 0.2 * slow)
            sig["fan"] = sig["fan"] + spec.has_fan * active * 0.3 * prog
        elif ep.kind == "power_brake":
            slot_idx = xp.ifloor(t / 300.0)
            # A precursor brakes in ever more 5-minute slots (up to 40 %). An injected fault
            # (a held ramp) brakes in 90 % of them once ramped in: at 40 % a demo's injected
            # brake went unseen for 5 minutes about one time in eight.
            top = 0.85 if ep.ramp_seconds is not None else 0.35
            brake = active * (xp.u(ep.key, slot_idx) < 0.05 + top * prog)
            sig["power"] = sig["power"] * (1 - 0.55 * brake)
            sig["sm"] = sig["sm"] * (1 - 0.5 * brake)
            sig["reasons"] = sig["reasons"] + brake * (HW_POWER_BRAKE + HW_SLOWDOWN)
        elif ep.kind == "pcie" and ep.downgrade:
            late = active * (prog > 0.66)
            sig["pcie_width"] = sig["pcie_width"] - late * spec.pcie_width / 2
    sig["fan"] = xp.clip(sig["fan"], 0.0, 1.0)


def _progress(xp: Any, t: Num, ep: Episode) -> Num:
    return xp.clip((t - ep.start) / ep.span, 0.0, 1.0)


def _ramp_integral(xp: Any, t: Num, ep: Episode, power: float) -> Num:
    """∫ rate from the start to t (seconds at full rate) for a rate rising as progress**power
    over the ramp, then held until the episode ends."""
    span = ep.span
    prog = xp.clip((t - ep.start) / span, 0.0, 1.0)
    held = xp.maximum(xp.minimum(t, ep.end) - (ep.start + span), 0.0)
    return span * prog ** (power + 1) / (power + 1) + held


def counters(xp: Any, t: Num, slot: Slot, board: Board, reload: Num) -> dict[str, Num]:
    """Cumulative counters at ``t``: events since board start (aggregate) or since ``reload``."""
    ev = board.events

    def since(name: str, volatile: bool = True) -> Num:
        times, totals = ev.times.get(name, ()), ev.totals.get(name, ())
        now = xp.step(times, totals, t)
        return now - xp.step(times, totals, reload) if volatile else now

    out: dict[str, Num] = {
        "sbe_vol": since("sbe"),
        "sbe_agg": since("sbe", False),
        "dbe_vol": since("dbe"),
        "dbe_agg": since("dbe", False),
        "rr_corr": since("rr_corr", False),
        "rr_unc": since("rr_unc", False),
        "remap_failed": xp.minimum(since("remap_failed", False), 1.0),
    }
    pending = since("rr_corr") + since("rr_unc")
    out["remap_pending"] = xp.minimum(pending, 1.0)
    uptime = t - reload
    replays = since("replay") + xp.ifloor(board.replay_rate * uptime)
    nvl: dict[tuple[int, str], Num] = {}
    for name in ev.times:
        if name.startswith("nvl:"):
            _, link, kind = name.split(":")
            nvl[(int(link), kind)] = since(name)
    for ep in board.episodes:
        if ep.kind == "pcie":
            rate = 3.0 * ep.strength  # replays/s at the failure: ~180/min vs DCGM's 31/min
            replays = replays + xp.ifloor(
                rate * (_ramp_integral(xp, t, ep, 2) - _ramp_integral(xp, reload, ep, 2))
            )
        elif ep.kind == "nvlink":
            rate = 150.0 * ep.strength  # CRC flits/s at the failure vs DCGM's 100/s
            area = _ramp_integral(xp, t, ep, 3) - _ramp_integral(xp, reload, ep, 3)
            for kind, share in (
                ("crc_flit", 1.0),
                ("crc_data", 0.1),
                ("replay", 0.02),
                ("recovery", 0.001),
            ):
                k = (ep.link, kind)
                nvl[k] = nvl.get(k, 0.0) + xp.ifloor(rate * share * area)
    out["replays"] = replays
    out["nvlink"] = nvl
    xids: dict[int, Num] = {}
    for name in ev.times:
        if name.startswith("xid:"):
            xids[int(name[4:])] = since(name)
    out["xids"] = xids
    last: Num = 0.0 * t
    code: Num = 0.0 * t
    for name, times in ev.times.items():
        if name.startswith("xid:"):
            hit = xp.step(times, times, t)
            newer = (hit > reload) * (hit > last)
            code = xp.where(newer, float(name[4:]), code)
            last = xp.where(newer, hit, last)
    out["last_xid"] = last
    out["last_xid_code"] = code
    out.update(_integrals(xp, t, slot, board, reload))
    return out


def _integrals(xp: Any, t: Num, slot: Slot, board: Board, reload: Num) -> dict[str, Num]:
    """Counters that integrate a rate (energy, NVLink bytes, throttle time) since the reload.

    They use the slot's long-run mean rather than integrating every sample, so that any instant
    can be evaluated alone; rate() over them is smooth, which is what these counters look like
    on a busy fleet at scrape resolution.
    """
    spec = slot.spec
    uptime = xp.maximum(t - reload, 0.0)
    mean_power = (spec.idle_watts + 0.55 * (spec.tdp_watts - spec.idle_watts)) * slot.power_scale
    out: dict[str, Num] = {
        "energy": mean_power * uptime,
        "nvlink_bytes": (25e9 if spec.nvlink_count else 0.0) * uptime,
        "violation_power": CAP_SHARE * 0.6 * uptime,
        "violation_thermal": 0.0 * uptime,
        "violation_board_limit": 0.0 * uptime,
    }
    for ep in board.episodes:
        if ep.kind == "thermal":
            throttled_from = ep.start + 0.7 * ep.span

            def area(x: Num, since: float = throttled_from, ep: Episode = ep) -> Num:
                return 0.5 * xp.maximum(xp.minimum(x, ep.end) - since, 0.0)

            out["violation_thermal"] = out["violation_thermal"] + area(t) - area(reload)
        elif ep.kind == "power_brake":
            share = 0.2 * (_ramp_integral(xp, t, ep, 1) - _ramp_integral(xp, reload, ep, 1))
            out["violation_board_limit"] = out["violation_board_limit"] + share
    return out
