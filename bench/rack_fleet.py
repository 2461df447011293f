"""PROVENANCE: written blind, without reading this project's simulator, scorer, exporter, tests
or documentation, from public facts only (dcgm-exporter's default-counters.csv field types and
units, NVML clock-event-reason bits and violation counters, NVIDIA's XID catalogue, published GPU
failure studies such as Llama 3, Delta/Summit/Titan) plus readings of one real H100 kept in
shared/fixtures. It exists only to EVALUATE the failure-prediction scorer on data its authors did
not design. Never train, tune, calibrate or choose weights or thresholds on its output.

Blind GPU-fleet telemetry generator ("rack fleet").

Writes, for one seed:
  DIR/prometheus/   a Prometheus TSDB (promtool tsdb create-blocks-from openmetrics, 2 h blocks)
                    with dcgm-exporter-shaped series (job="dcgm-exporter", 5-minute resolution)
  DIR/failures.csv  uuid,time,mode,precursor,precursor_start (one row per failed board)
  DIR/truth.json    summary counts and the design choices (read only after scoring)

Usage:
  python bench/rack_fleet.py --seed 1 --out /tmp/rack/s1 [--end 1796083200] [--promtool promtool]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

STEP = 300
WIN = 7200
DEFAULT_END = 1796083200

MODELS = {
    "h100": {
        "name": "NVIDIA H100 80GB HBM3",
        "tdp": 700.0,
        "idle": 72.0,
        "fb": 81559,
        "reserved": 480,
        "sm_max": 1980,
        "sm_idle": 345,
        "mem_clk": 2619,
        "r": 0.047,
        "rm": 0.0335,
        "goff": 9.0,
        "moff": 13.0,
        "t_sw": 87.0,
        "t_hw": 89.0,
        "t_shut": 95.0,
        "m_max": 95.0,
        "caps": (500.0, 550.0, 600.0),
        "nvlink": True,
        "bus": ("18", "2A", "3A", "5D", "9A", "AB", "BA", "DB"),
    },
    "h200": {
        "name": "NVIDIA H200",
        "tdp": 700.0,
        "idle": 78.0,
        "fb": 143771,
        "reserved": 512,
        "sm_max": 1980,
        "sm_idle": 345,
        "mem_clk": 3201,
        "r": 0.046,
        "rm": 0.038,
        "goff": 9.0,
        "moff": 12.0,
        "t_sw": 87.0,
        "t_hw": 89.0,
        "t_shut": 95.0,
        "m_max": 95.0,
        "caps": (550.0, 600.0, 650.0),
        "nvlink": True,
        "bus": ("19", "3B", "4C", "5D", "9B", "BB", "CB", "DB"),
    },
    "a100": {
        "name": "NVIDIA A100-SXM4-80GB",
        "tdp": 400.0,
        "idle": 58.0,
        "fb": 81920,
        "reserved": 0,
        "sm_max": 1410,
        "sm_idle": 210,
        "mem_clk": 1593,
        "r": 0.088,
        "rm": 0.08,
        "goff": 3.0,
        "moff": 5.0,
        "t_sw": 85.0,
        "t_hw": 88.0,
        "t_shut": 92.0,
        "m_max": 95.0,
        "caps": (300.0, 330.0, 350.0),
        "nvlink": True,
        "bus": ("07", "0F", "47", "4E", "87", "90", "B7", "BD"),
    },
}

DRIVERS = ("550.90.07", "550.127.08")

# (name, OpenMetrics type, format) — format: "i" integer, "fN" float with N decimals.
METRICS = (
    ("DCGM_FI_DEV_SM_CLOCK", "gauge", "i"),
    ("DCGM_FI_DEV_MEM_CLOCK", "gauge", "i"),
    ("DCGM_FI_DEV_MEMORY_TEMP", "gauge", "i"),
    ("DCGM_FI_DEV_GPU_TEMP", "gauge", "i"),
    ("DCGM_FI_DEV_POWER_USAGE", "gauge", "f3"),
    ("DCGM_FI_DEV_POWER_MGMT_LIMIT", "gauge", "i"),
    ("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", "counter", "i"),
    ("DCGM_FI_DEV_PCIE_REPLAY_COUNTER", "counter", "i"),
    ("DCGM_FI_DEV_GPU_UTIL", "gauge", "i"),
    ("DCGM_FI_DEV_FB_FREE", "gauge", "i"),
    ("DCGM_FI_DEV_FB_USED", "gauge", "i"),
    ("DCGM_FI_DEV_XID_ERRORS", "gauge", "i"),
    ("DCGM_FI_DEV_ECC_SBE_VOL_TOTAL", "counter", "i"),
    ("DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", "counter", "i"),
    ("DCGM_FI_DEV_ECC_SBE_AGG_TOTAL", "counter", "i"),
    ("DCGM_FI_DEV_ECC_DBE_AGG_TOTAL", "counter", "i"),
    ("DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS", "counter", "i"),
    ("DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS", "counter", "i"),
    ("DCGM_FI_DEV_ROW_REMAP_FAILURE", "gauge", "i"),
    ("DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL", "counter", "i"),
    ("DCGM_FI_DEV_NVLINK_CRC_DATA_ERROR_COUNT_TOTAL", "counter", "i"),
    ("DCGM_FI_DEV_NVLINK_REPLAY_ERROR_COUNT_TOTAL", "counter", "i"),
    ("DCGM_FI_DEV_NVLINK_RECOVERY_ERROR_COUNT_TOTAL", "counter", "i"),
    ("DCGM_FI_DEV_POWER_VIOLATION", "counter", "i"),
    ("DCGM_FI_DEV_THERMAL_VIOLATION", "counter", "i"),
    ("DCGM_FI_DEV_BOARD_LIMIT_VIOLATION", "counter", "i"),
    ("DCGM_FI_DEV_RELIABILITY_VIOLATION", "counter", "i"),
    ("DCGM_FI_DEV_CLOCK_THROTTLE_REASONS", "gauge", "i"),
    ("DCGM_FI_PROF_GR_ENGINE_ACTIVE", "gauge", "f4"),
    ("DCGM_FI_PROF_DRAM_ACTIVE", "gauge", "f4"),
)

# clock-event-reason bits (NVML nvmlClocksEventReason*)
B_IDLE, B_SWPOWER, B_HWSLOW, B_SWTHERM, B_HWTHERM, B_BRAKE = 0x1, 0x4, 0x8, 0x20, 0x40, 0x80
NS = 1e9  # violation counters in nanoseconds

MODES = ("hbm", "pcie", "nvlink", "thermal", "power", "other")
FATAL_XID = {
    "hbm": (48, 94, 95, 63),
    "pcie": (79, 79, 32),
    "nvlink": (74,),
    "thermal": (79, 62, 109),
    "power": (79, 62, 119),
    "other": (119, 120, 109, 62, 45),
}


def steps(hours: float) -> int:
    return max(1, round(hours * 3600 / STEP))


def shape_fn(rng: np.random.Generator, x: np.ndarray) -> tuple[str, np.ndarray]:
    """A monotone progress curve on [0, 1]; names are for truth.json only."""
    kind = str(rng.choice(["linear", "accelerating", "steep", "early_plateau", "step_ramp"]))
    if kind == "linear":
        y = x
    elif kind == "accelerating":
        y = x**2
    elif kind == "steep":
        y = x**3.5
    elif kind == "early_plateau":
        y = np.sqrt(x)
    else:
        y = np.where(x > 0, 0.35 + 0.65 * x, 0.0)
    return kind, y


def cum_reset(inc: np.ndarray, reset: np.ndarray) -> np.ndarray:
    cs = np.cumsum(inc, axis=1)
    prev = cs - inc
    n = inc.shape[1]
    idx = np.where(reset, np.arange(n)[None, :], 0)
    idx = np.maximum.accumulate(idx, axis=1)
    return cs - np.take_along_axis(prev, idx, axis=1)


def ffill_last(ev: np.ndarray, clear: np.ndarray) -> np.ndarray:
    setm = (ev > 0) | clear
    n = ev.shape[1]
    idx = np.where(setm, np.arange(n)[None, :], 0)
    idx = np.maximum.accumulate(idx, axis=1)
    return np.take_along_axis(ev, idx, axis=1)


def new_uuid(rng: np.random.Generator) -> str:
    h = "".join(f"{b:02x}" for b in rng.integers(0, 256, 16))
    return f"GPU-{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


# --------------------------------------------------------------------------------------------
# fleet plan
# --------------------------------------------------------------------------------------------


def plan_hosts(rng: np.random.Generator, nt: int) -> list[dict]:
    n_hosts = int(rng.integers(25, 31))
    hosts = []
    n_racks = (n_hosts + 3) // 4
    rack_models = ["h100"] * n_racks
    others = rng.choice(n_racks, size=max(2, n_racks // 3), replace=False)
    for k, r in enumerate(others):
        rack_models[int(r)] = "a100" if k % 2 == 0 else "h200"
    warm_rack = int(rng.integers(0, n_racks))
    for h in range(n_hosts):
        rack = h // 4
        model = rack_models[rack]
        hosts.append(
            {
                "idx": h,
                "rack": rack,
                "model": model,
                "name": f"gpu-{chr(97 + rack)}{rack + 1:02d}-n{h % 4 + 1:02d}",
                "instance": f"10.40.{rack + 1}.{h % 4 + 11}:9400",
                "warm_rack": rack == warm_rack,
            }
        )
    return hosts


def host_workload(rng: np.random.Generator, nt: int) -> dict[str, np.ndarray]:
    kind = np.zeros(nt, np.int8)
    dem = np.zeros(nt)
    fbf = np.zeros(nt)
    dram = np.zeros(nt)
    p_train = rng.uniform(0.35, 0.8)
    p_idle = rng.uniform(0.08, 0.3)
    tod = (np.arange(nt) * STEP / 3600.0) % 24
    t = 0
    while t < nt:
        u = rng.random()
        if u < p_train:
            k, dur = 2, int(np.clip(rng.lognormal(np.log(288), 0.9), 12, 1800))
        elif u < p_train + p_idle:
            k, dur = 0, int(np.clip(rng.lognormal(np.log(36), 1.0), 6, 864))
        else:
            k, dur = 1, int(np.clip(rng.lognormal(np.log(96), 0.8), 12, 900))
        e = min(nt, t + dur)
        n = e - t
        kind[t:e] = k
        if k == 2:
            base = rng.uniform(1.04, 1.55) if rng.random() < 0.9 else rng.uniform(0.8, 1.0)
            d = base * (1 + rng.normal(0, 0.03, n))
            ck = rng.integers(12, 40)
            dips = (np.arange(n) % ck == 0) | (rng.random(n) < 0.02)
            d[dips] *= rng.uniform(0.25, 0.6, dips.sum())
            dem[t:e] = d
            fbf[t:e] = rng.uniform(0.6, 0.97)
            dram[t:e] = np.clip(rng.uniform(0.25, 0.65) + rng.normal(0, 0.03, n), 0, 1)
        elif k == 1:
            base = rng.uniform(0.3, 0.8)
            diurnal = 0.6 + 0.4 * np.sin((tod[t:e] - 9) / 24 * 2 * np.pi)
            dem[t:e] = np.clip(base * diurnal + rng.normal(0, 0.06, n), 0.15, 0.98)
            fbf[t:e] = rng.uniform(0.2, 0.8)
            dram[t:e] = np.clip(dem[t:e] * rng.uniform(0.3, 0.6), 0, 1)
        t = e
    return {"kind": kind, "dem": dem, "fbf": fbf, "dram": dram}


def main_sim(args: argparse.Namespace) -> None:
    rng = np.random.default_rng(args.seed)
    days = args.days
    end = int(args.end) // STEP * STEP
    start = end - days * 86400
    nt = days * 86400 // STEP
    hosts = plan_hosts(rng, nt)
    nh = len(hosts)
    ns = nh * 8
    design: list[str] = []
    tlog = time.time()

    def log(msg: str) -> None:
        print(f"[{time.time() - tlog:6.1f}s] {msg}", file=sys.stderr, flush=True)

    # ---------------- host-level timelines ----------------
    wl = [host_workload(rng, nt) for _ in range(nh)]
    tod = (np.arange(nt) * STEP / 3600.0) % 24
    inlet = np.zeros((nh, nt))
    n_racks = max(h["rack"] for h in hosts) + 1
    rack_off = rng.normal(0, 1.2, n_racks)
    sm = min(577, nt // 2 * 2 - 1)
    for h in hosts:
        base = rng.uniform(22.0, 27.0) + rack_off[h["rack"]] + (4.0 if h["warm_rack"] else 0.0)
        amp = rng.uniform(0.8, 2.5)
        walk = np.cumsum(rng.normal(0, 0.08, nt))
        walk = walk - np.convolve(walk, np.ones(sm) / sm, mode="same")
        inlet[h["idx"]] = base + amp * np.sin((tod - 10) / 24 * 2 * np.pi) + walk
    hot_events = []
    for _ in range(int(rng.integers(3, 6))):
        r = int(rng.integers(0, n_racks))
        a = int(rng.integers(0, nt - 12))
        dur = steps(rng.uniform(3, 72))
        mag = rng.uniform(5, 12)
        ramp = np.minimum(1, np.minimum(np.arange(dur) + 1, dur - np.arange(dur)) / 6)
        for h in hosts:
            if h["rack"] == r:
                b = min(nt, a + dur)
                inlet[h["idx"], a:b] += mag * ramp[: b - a]
        hot_events.append((r, a, dur, round(mag, 1)))

    limit = np.zeros((nh, nt))
    capped_hosts = rng.choice(nh, size=max(3, nh // 6), replace=False)
    midrun = rng.choice([h for h in range(nh) if h not in capped_hosts], size=2, replace=False)
    for h in hosts:
        m = MODELS[h["model"]]
        limit[h["idx"]] = m["tdp"]
        if h["idx"] in capped_hosts:
            limit[h["idx"]] = float(rng.choice(m["caps"]))
        if h["idx"] in midrun:
            a = int(rng.integers(nt // 6, nt // 2))
            b = int(rng.integers(a + 288, nt)) if rng.random() < 0.5 else nt
            limit[h["idx"], a:b] = float(rng.choice(m["caps"]))

    host_gap = np.zeros((nh, nt), bool)
    host_clear = np.zeros((nh, nt), bool)  # exporter restart / reboot: XID gauge back to 0
    host_reset = np.zeros((nh, nt), bool)  # reboot: volatile counters back to 0
    host_brake = np.zeros((nh, nt))  # facility power event: fraction of limit allowed (0 = none)
    driver = np.zeros((nh, nt), np.int8)
    fa = int(rng.integers(0, nt - 20))
    host_gap[:, fa : fa + int(rng.integers(6, 15))] = True  # whole-Prometheus outage
    up_start = int(nt * rng.uniform(0.35, 0.45))
    up_order = rng.permutation(nh)
    up_spacing = int(rng.integers(24, 60))

    def reboot(h: int, a: int, gap: int) -> None:
        b = min(nt, a + gap)
        host_gap[h, a:b] = True
        if b < nt:
            host_clear[h, b] = True
            host_reset[h, b] = True
            idle_to = min(nt, b + int(rng.integers(6, 48)))
            wl[h]["kind"][a:idle_to] = 0
            wl[h]["dem"][a:idle_to] = 0

    for pos, h in enumerate(up_order):
        a = min(nt - 2, up_start + pos * up_spacing + int(rng.integers(0, 12)))
        driver[h, a:] = 1
        reboot(int(h), a, int(rng.integers(3, 9)))
    for h in range(nh):
        for _ in range(rng.poisson(days / 50)):
            reboot(h, int(rng.integers(0, nt)), int(rng.integers(2, 7)))
        for _ in range(rng.poisson(days / 9)):
            a = int(rng.integers(0, nt))
            host_gap[h, a : a + int(rng.integers(1, 3))] = True
            if a + 3 < nt:
                host_clear[h, a + 2] = True
        host_gap[h] |= rng.random(nt) < 0.002
        for _ in range(rng.poisson(1.0)):
            a = int(rng.integers(0, nt))
            host_gap[h, a : a + int(rng.integers(2, 24))] = True
    fac_events = []
    for _ in range(int(rng.integers(2, 4))):
        a = int(rng.integers(0, nt - 30))
        dur = int(rng.integers(2, 18))
        racks = rng.choice(n_racks, size=int(rng.integers(1, 4)), replace=False)
        frac = rng.uniform(0.3, 0.55)
        for h in hosts:
            if h["rack"] in racks:
                host_brake[h["idx"], a : a + dur] = frac
                if rng.random() < 0.3:
                    reboot(h["idx"], a + dur, int(rng.integers(3, 10)))
        fac_events.append((a, dur, [int(r) for r in racks]))
    log(f"{nh} hosts, {ns} slots, {nt} steps")

    # ---------------- failure plan ----------------
    counts = {
        ("power", True): int(rng.integers(24, 30)),
        ("power", False): int(rng.integers(4, 8)),
        ("thermal", True): int(rng.integers(18, 23)),
        ("thermal", False): int(rng.integers(3, 6)),
        ("hbm", True): int(rng.integers(8, 12)),
        ("hbm", False): int(rng.integers(7, 11)),
        ("pcie", True): int(rng.integers(4, 7)),
        ("pcie", False): int(rng.integers(5, 9)),
        ("nvlink", True): int(rng.integers(4, 7)),
        ("nvlink", False): int(rng.integers(3, 6)),
        ("other", True): int(rng.integers(4, 6)),
        ("other", False): int(rng.integers(10, 15)),
    }
    plan = []
    for (mode, pre), n in counts.items():
        for _ in range(n):
            if pre:
                u = rng.random()
                if u < 0.3:
                    lead_h = float(np.exp(rng.uniform(np.log(3), np.log(24))))
                elif u < 0.7:
                    lead_h = float(np.exp(rng.uniform(np.log(24), np.log(168))))
                else:
                    lead_h = float(np.exp(rng.uniform(np.log(168), np.log(504))))
                lead = steps(lead_h)
            else:
                lead = 0
            lead = min(lead, max(1, nt - 12 - 288 - 2)) if pre else 0  # only bites with --days < 25
            lo = lead + 288
            fail = int(rng.integers(lo, nt - 12))
            plan.append({"mode": mode, "pre": pre, "lead": lead, "fail": fail})
    plan.sort(key=lambda f: f["fail"])

    # boards: every GPU board (UUID) that ever sits in a slot, in slot order of installation
    boards: list[dict] = []
    slot_boards: list[list[dict]] = [[] for _ in range(ns)]

    def add_board(slot: int, a: int) -> dict:
        h = hosts[slot // 8]
        b = {
            "id": len(boards),
            "slot": slot,
            "host": slot // 8,
            "gpu": slot % 8,
            "model": h["model"],
            "start": a,
            "end": nt,
            "uuid": new_uuid(rng),
            "fail": None,
        }
        boards.append(b)
        slot_boards[slot].append(b)
        return b

    for s in range(ns):
        add_board(s, 0)
    host_weight = np.array([1.6 if h["warm_rack"] else 1.0 for h in hosts])
    for f in plan:
        onset = f["fail"] - f["lead"]
        need = onset - (288 if f["pre"] else 72)
        cands = []
        for s in range(ns):
            cur = slot_boards[s][-1]
            if cur["fail"] is None and cur["start"] <= need and cur["end"] == nt:
                cands.append(s)
        if not cands:
            continue
        w = np.array([host_weight[s // 8] if f["mode"] == "thermal" else 1.0 for s in cands])
        s = int(rng.choice(cands, p=w / w.sum()))
        b = slot_boards[s][-1]
        f["onset"] = onset
        post = int(rng.integers(0, 4))
        if f["mode"] in ("pcie", "thermal", "power") and rng.random() < 0.3:
            post = -1  # falls off the bus: no sample at the failure step
        b["fail"] = f
        b["end"] = min(nt, f["fail"] + post + 1)
        f["board"] = b
        # the host's job dies with the board
        hw = wl[b["host"]]
        idle_to = min(nt, f["fail"] + int(rng.integers(6, 96)))
        hw["kind"][f["fail"] : idle_to] = 0
        hw["dem"][f["fail"] : idle_to] = 0
        if rng.random() < 0.8:
            rep = f["fail"] + int(np.clip(rng.lognormal(np.log(steps(30)), 0.9), 36, 2016))
            if rep < nt - 12:
                add_board(s, rep)
    plan = [f for f in plan if "board" in f]
    log(f"{len(plan)} failures planned, {len(boards)} boards")

    # ---------------- per-slot arrays ----------------
    shp = (ns, nt)
    present = np.zeros(shp, bool)
    board_of = np.full(shp, -1, np.int32)
    P = np.zeros(shp)
    T_g = np.zeros(shp)
    T_m = np.zeros(shp)
    smc = np.zeros(shp)
    memc = np.zeros(shp)
    util = np.zeros(shp)
    fbu = np.zeros(shp)
    fbfree = np.zeros(shp)
    gr = np.zeros(shp)
    dr = np.zeros(shp)
    lim = np.zeros(shp)
    flags = np.zeros(shp, np.int64)
    v_pow = np.zeros(shp)
    v_th = np.zeros(shp)
    v_bl = np.zeros(shp)
    v_rel = np.zeros(shp)
    sbe = np.zeros(shp)
    dbe = np.zeros(shp)
    remc = np.zeros(shp)
    remu = np.zeros(shp)
    rrf = np.zeros(shp)
    pcie = np.zeros(shp)
    nvf = np.zeros(shp)
    nvd = np.zeros(shp)
    nvr = np.zeros(shp)
    nvc = np.zeros(shp)
    xid_ev = np.zeros(shp, np.int64)
    vreset = np.zeros(shp, bool)
    breset = np.zeros(shp, bool)
    clear = np.zeros(shp, bool)
    agg_off = np.zeros((4, ns, nt))
    quirk_counts: dict[str, int] = {}

    def q(name: str, p: float) -> bool:
        hit = bool(rng.random() < p)
        if hit:
            quirk_counts[name] = quirk_counts.get(name, 0) + 1
        return hit

    # host-level bad-job XIDs
    for h in range(nh):
        k = wl[h]["kind"]
        ends = np.flatnonzero((k[:-1] > 0) & (k[1:] != k[:-1])) + 1
        bad = ends[rng.random(len(ends)) < 0.12]
        for e in bad:
            code = int(rng.choice([13, 31, 43, 13]))
            gpus = rng.choice(8, size=int(rng.integers(1, 9)), replace=False)
            for g in gpus:
                xid_ev[h * 8 + int(g), e] = code

    for b in boards:
        s, h, a, e = b["slot"], b["host"], b["start"], b["end"]
        if e <= a:
            continue
        m = MODELS[b["model"]]
        n = e - a
        sl = slice(a, e)
        board_of[s, sl] = b["id"]
        present[s, sl] = True
        breset[s, a] = True
        vreset[s, a] = True
        clear[s, a] = True
        hw = wl[h]
        kind = hw["kind"][sl].copy()
        dem = hw["dem"][sl] * rng.uniform(0.97, 1.03) * m["tdp"]
        lm = limit[h, sl].copy()
        f = b["fail"]
        x = np.zeros(n)
        if f is not None and f["pre"]:
            tt = np.arange(a, e)
            x = np.clip((tt - f["onset"]) / max(1, f["fail"] - f["onset"]), 0, 1)
            x[tt < f["onset"]] = 0
            f["shape"], g = shape_fn(rng, x)
            sev = rng.uniform(0.35, 1.0)
            f["severity"] = round(float(sev), 2)
            f["components"] = []
        else:
            g = x
            sev = 0.0

        # --- benign quirks
        r_mult = rng.normal(1.0, 0.06)
        if q("warm_board", 0.08):
            r_mult *= rng.uniform(1.2, 1.45)
        rm_mult = rng.normal(1.0, 0.06)
        goff = m["goff"] + rng.normal(0, 1.5)
        moff = m["moff"] + rng.normal(0, 2.0)
        idle_off = rng.normal(0, 3.0)
        eff = rng.normal(1.0, 0.025)
        if q("leaky_board", 0.05):
            idle_off += rng.uniform(12, 35)
            eff *= rng.uniform(0.9, 0.96)
        noise = 0.006
        if q("noisy_power_sensor", 0.05):
            noise = rng.uniform(0.02, 0.04)
        r_t = np.full(n, r_mult)
        if q("tim_plateau_benign", 0.04):
            o = int(rng.integers(0, n))
            ln = steps(rng.uniform(72, 240))
            r_t[o:] *= 1 + rng.uniform(0.1, 0.3) * np.clip((np.arange(n - o)) / ln, 0, 1)
        rm_t = np.full(n, rm_mult)
        toff = np.zeros(n)
        moff_t = np.zeros(n)

        # --- base power
        p = np.where(kind == 0, m["idle"] + idle_off + rng.normal(0, 1.0, n), dem)
        p = np.maximum(p, m["idle"] * 0.9)
        fl = np.where(kind == 0, B_IDLE, 0).astype(np.int64)
        capped = p > lm
        over = np.where(capped, dem / lm, 1.0)
        pc = lm * (1 - np.abs(rng.normal(0.012, 0.006, n)))
        blip = capped & (rng.random(n) < 0.01)
        pc[blip] = lm[blip] * rng.uniform(1.0, 1.025, blip.sum())
        p = np.where(capped, pc, p * (1 + rng.normal(0, noise, n)))
        p[capped] += lm[capped] * rng.normal(0, max(0.0, noise - 0.006), capped.sum())
        fl[capped] |= B_SWPOWER
        vp = np.where(capped, np.clip(0.8 + (over - 1) * 2.0, 0.5, 1.0), 0.0) * STEP * NS
        vp[(kind == 1) & (dem > 0.9 * lm)] = 0.05 * STEP * NS
        clk = np.where(
            kind == 0,
            m["sm_idle"],
            m["sm_max"] * np.clip(eff * over ** (-0.9), 0.45, 1.0),
        )
        clk = np.where((kind == 1) & ~capped, m["sm_max"] * rng.uniform(0.96, 1.0, n), clk)
        vb = np.zeros(n)
        vr = np.zeros(n)
        busy = kind > 0

        if q("sporadic_brake_benign", 0.04):
            ev = rng.random(n) < rng.uniform(0.5, 3) / 288
            p[ev] = np.minimum(p[ev], lm[ev] * rng.uniform(0.3, 0.6, ev.sum()))
            fl[ev] |= B_BRAKE | B_HWSLOW
            clk[ev] *= 0.5
            vb[ev] += rng.uniform(5, 60, ev.sum()) * NS
        if q("power_excursion_benign", 0.04):
            ev = busy & (rng.random(n) < rng.uniform(1, 6) / 288)
            p[ev] = lm[ev] * rng.uniform(1.03, 1.2, ev.sum())
            vb[ev] += rng.uniform(0.1, 2, ev.sum()) * NS

        # --- power-delivery degradation precursor
        if f is not None and f["pre"] and f["mode"] == "power":
            comps = []
            while not comps:
                for c, pr in (
                    ("excursions", 0.5),
                    ("brake_dips", 0.45),
                    ("leakage_creep", 0.35),
                    ("regulation_noise", 0.35),
                    ("sagging_cap", 0.35),
                ):
                    if rng.random() < pr:
                        comps.append(c)
            f["components"] = comps
            if "excursions" in comps:
                pm = rng.uniform(0.03, 0.25) * sev
                ev = busy & (rng.random(n) < pm * g)
                p[ev] = lm[ev] * rng.uniform(1.03, 1.3, ev.sum())
                if rng.random() < 0.6:
                    fl[ev] |= B_BRAKE
                vb[ev] += rng.uniform(0.5, 15, ev.sum()) * NS
            if "brake_dips" in comps:
                pm = rng.uniform(0.01, 0.12) * sev
                ev = (rng.random(n) < pm * g) & (busy | (rng.random(n) < 0.3))
                p[ev] = np.minimum(p[ev], lm[ev] * rng.uniform(0.2, 0.55, ev.sum()))
                clk[ev] = np.where(busy[ev], clk[ev] * rng.uniform(0.3, 0.6, ev.sum()), clk[ev])
                fl[ev] |= B_BRAKE | B_HWSLOW
                vb[ev] += rng.uniform(0.1, 0.8, ev.sum()) * STEP * NS
                if rng.random() < 0.5:
                    vr[ev] += rng.uniform(0.01, 0.2, ev.sum()) * STEP * NS
            if "leakage_creep" in comps:
                lk = sev * g
                p = np.where(kind == 0, p + lk * rng.uniform(15, 60), p)
                clk = np.where(capped, clk * (1 - lk * rng.uniform(0.05, 0.2)), clk)
            if "regulation_noise" in comps:
                sd = m["tdp"] * 0.006 * (1 + sev * g * rng.uniform(3, 10))
                jit = rng.normal(0, 1, n) * sd
                p = np.where(busy, p + jit, p + 0.3 * jit)
                p = np.maximum(p, m["idle"] * 0.8)
                flick = capped & (jit < 0) & (rng.random(n) < 0.5)
                fl[flick] &= ~B_SWPOWER
            if "sagging_cap" in comps:
                sag = 1 - sev * g * rng.uniform(0.05, 0.25)
                cap2 = lm * sag
                hit = busy & (p > cap2)
                clk[hit] *= (cap2[hit] / np.maximum(p[hit], 1)) ** 0.9
                p[hit] = cap2[hit] * (1 + rng.normal(0, 0.005, hit.sum()))
                hs = hit & (rng.random(n) < 0.5) & (g > 0.2)
                fl[hs] = (fl[hs] & ~B_SWPOWER) | B_HWSLOW
                vr[hit] += (1 - sag[hit]) * STEP * NS
        # --- facility power event (whole rack)
        hb = host_brake[h, sl]
        ev = hb > 0
        if ev.any():
            p[ev] = np.minimum(p[ev], lm[ev] * hb[ev])
            fl[ev] |= B_BRAKE | B_HWSLOW
            clk[ev] = np.minimum(clk[ev], m["sm_max"] * hb[ev])
            vb[ev] += STEP * NS * rng.uniform(0.7, 1.0, ev.sum())

        # --- cooling degradation precursor
        if f is not None and f["pre"] and f["mode"] == "thermal":
            comps = []
            while not comps:
                for c, pr in (
                    ("tim_degradation", 0.5),
                    ("coolant_or_fan_loss", 0.4),
                    ("hot_spot_spikes", 0.35),
                    ("hbm_contact_loss", 0.3),
                    ("airflow_offset_drift", 0.3),
                ):
                    if rng.random() < pr:
                        comps.append(c)
            f["components"] = comps
            if "tim_degradation" in comps:
                r_t *= 1 + sev * g * rng.uniform(0.3, 1.0)
                rm_t *= 1 + sev * g * rng.uniform(0.0, 0.3)
            if "coolant_or_fan_loss" in comps:
                st = (x > 0) * rng.uniform(0.08, 0.3) * sev + g * rng.uniform(0.1, 0.5) * sev
                r_t *= 1 + st
                rm_t *= 1 + st * rng.uniform(0.6, 1.0)
                toff += g * rng.uniform(2, 8) * sev
            if "hbm_contact_loss" in comps:
                rm_t *= 1 + sev * g * rng.uniform(0.4, 1.2)
                moff_t += sev * g * rng.uniform(2, 10)
            if "airflow_offset_drift" in comps:
                d = sev * g * rng.uniform(4, 15)
                toff += d
                moff_t += d * rng.uniform(0.5, 1.0)

        # --- thermal solution with throttling
        inl = inlet[h, sl]
        tg0 = inl + goff + toff
        tm0 = inl + moff + moff_t
        rg = m["r"] * r_t
        rmm = m["rm"] * rm_t
        teq = tg0 + rg * p
        meq = tm0 + rmm * p
        tsw = m["t_sw"] + rng.uniform(0, 1.5, n)
        msw = m["m_max"] - 2 + rng.uniform(0, 1.5, n)
        pthr = np.minimum((tsw - tg0) / rg, (msw - tm0) / rmm)
        hot = (teq > tsw) | (meq > msw)
        floor = 0.3 * m["tdp"]
        newp = np.where(hot, np.maximum(np.minimum(p, pthr), floor), p)
        frac_thr = np.clip(np.maximum(teq - tsw, meq - msw) / 6.0, 0.05, 1.0)
        clk = np.where(hot, clk * (newp / np.maximum(p, 1)) ** 0.9, clk)
        p = newp
        tg = tg0 + rg * p + rng.normal(0, 0.6, n)
        tm = tm0 + rmm * p + rng.normal(0, 0.6, n)
        fl[hot] |= B_SWTHERM
        fl[hot & (p < lm * 0.97)] &= ~B_SWPOWER
        fl[hot & (newp <= floor + 1e-6)] |= B_HWTHERM | B_HWSLOW
        vt = np.where(hot, frac_thr * STEP * NS, 0.0)
        if (
            f is not None
            and f["pre"]
            and f["mode"] == "thermal"
            and "hot_spot_spikes" in f["components"]
        ):
            ev = rng.random(n) < rng.uniform(0.02, 0.2) * sev * g
            bump = rng.uniform(6, 20, ev.sum())
            tg[ev] = np.minimum(tg[ev] + bump, m["t_shut"] - rng.uniform(1, 3, ev.sum()))
            tm[ev] += bump * rng.uniform(0.3, 1.0)
            over_t = ev & (tg > m["t_sw"])
            fl[over_t] |= B_SWTHERM
            vt[over_t] += rng.uniform(0.05, 0.5, over_t.sum()) * STEP * NS

        # nothing reads above the shutdown point while the board is still up
        tg = np.minimum(tg, m["t_shut"] - 1 + rng.uniform(0, 1, n))
        tm = np.minimum(tm, m["m_max"] + 1 + rng.uniform(0, 1, n))

        # --- utilisation, memory, profiling
        u = np.where(kind == 2, np.clip(rng.normal(99, 1.5, n), 85, 100), 0.0)
        u = np.where(kind == 1, np.clip(hw["dem"][sl] * 110 + rng.normal(0, 6, n), 3, 100), u)
        fb_used = np.where(kind > 0, hw["fbf"][sl] * (m["fb"] - m["reserved"]), 0.0)
        fb_used = np.where(kind == 0, rng.choice([0, 0, 0, 2, 4, 512], n), fb_used)
        fb_used = np.round(fb_used + np.where(kind > 0, rng.normal(0, 40, n), 0)).clip(0)
        gre = np.where(kind > 0, np.clip(u / 100 * rng.uniform(0.85, 0.99, n), 0, 1), 0.0)
        dra = np.where(kind > 0, hw["dram"][sl] * (1 + rng.normal(0, 0.03, n)), 0.0).clip(0, 1)
        tr = (fl & (B_HWTHERM | B_BRAKE | B_HWSLOW)) > 0
        gre[tr] *= 0.7
        dra[tr] *= 0.7

        # --- error counters (benign noise)
        i_sbe = np.zeros(n)
        i_dbe = np.zeros(n)
        i_remc = np.zeros(n)
        i_remu = np.zeros(n)
        rrf_b = np.zeros(n)
        i_pcie = np.zeros(n)
        i_nvf = np.zeros(n)
        i_nvd = np.zeros(n)
        i_nvr = np.zeros(n)
        i_nvc = np.zeros(n)
        xe = xid_ev[s, sl]
        if q("sbe_noise_benign", 0.12):
            ev = rng.random(n) < rng.uniform(0.1, 1.0) / 288
            i_sbe[ev] = rng.geometric(1 / rng.uniform(3, 50), ev.sum())
            rr = ev & (rng.random(n) < 0.05)
            i_remc[rr] = 1
        if q("pcie_replay_noise_benign", 0.12):
            lam = rng.uniform(0.5, 20) / 288
            i_pcie += rng.poisson(lam, n) * rng.choice([1, 1, 1, 4, 16], n)
        if q("nvlink_crc_noise_benign", 0.1):
            i_nvf += rng.poisson(rng.uniform(1, 30) / 288, n)
            i_nvd += rng.poisson(rng.uniform(0.01, 0.3) / 288, n)
            i_nvr += rng.poisson(rng.uniform(0.1, 3) / 288, n)
        if q("hbm_ue_reset_and_return_benign", 0.015) and n > 100:
            o = int(rng.integers(0, n - 10))
            i_sbe[max(0, o - 3) : o] += rng.integers(1, 20)
            i_dbe[o] += 1
            i_remu[o] += 1
            xe[o] = int(rng.choice([63, 94]))
            vreset[s, a + o + 2] = True
        # GPU resets (zero volatile counters)
        for o in np.flatnonzero(rng.random(n) < 1 / (60 * 288)):
            vreset[s, a + o] = True

        # --- failure-mode precursors on counters
        if f is not None and f["pre"] and f["mode"] == "hbm":
            comps = ["sbe_bursts"]
            ev = rng.random(n) < sev * g * rng.uniform(0.02, 0.15)
            i_sbe[ev] += rng.geometric(1 / rng.uniform(5, 200), ev.sum())
            rr = ev & (rng.random(n) < rng.uniform(0.05, 0.4))
            if rr.any():
                comps.append("correctable_row_remaps")
            i_remc[rr] += 1
            xe[rr & (rng.random(n) < 0.3)] = 63
            f["components"] = comps
        if f is not None and f["pre"] and f["mode"] == "pcie":
            lam = rng.uniform(0.2, 3) * np.exp(np.log(rng.uniform(50, 2000)) * g) * (g > 0)
            i_pcie += rng.poisson(lam * sev)
            f["components"] = ["replay_rate_rise"]
        if f is not None and f["pre"] and f["mode"] == "nvlink":
            lam = rng.uniform(0.2, 2) * np.exp(np.log(rng.uniform(30, 1000)) * g) * (g > 0) * sev
            i_nvf += rng.poisson(lam)
            i_nvd += rng.poisson(lam * rng.uniform(0.02, 0.2))
            i_nvr += rng.poisson(lam * rng.uniform(0.1, 0.5))
            i_nvc += rng.poisson(lam * rng.uniform(0.001, 0.02))
            f["components"] = ["crc_replay_rise"]
        if f is not None and f["pre"] and f["mode"] == "other":
            ev = busy & (rng.random(n) < sev * g * rng.uniform(0.01, 0.06))
            p[ev] = m["idle"] + rng.uniform(10, 40, ev.sum())
            clk[ev] = m["sm_max"]
            u[ev] = 100
            gre[ev] = 0.0
            dra[ev] = 0.0
            fl[ev] = 0
            xe[ev & (rng.random(n) < 0.5)] = rng.choice([109, 119, 8], int(ev.sum()) or 1)[0]
            f["components"] = ["hang_episodes"]

        # --- when does the precursor first show?  Load-dependent signs need a busy GPU.
        if f is not None and f["pre"]:
            load_only = {"excursions", "sagging_cap", "tim_degradation", "hang_episodes"}
            o = max(0, f["onset"] - a)
            k_end = f["fail"] - a
            f["visible"] = f["onset"]
            if set(f["components"]) <= load_only:
                busy_idx = np.flatnonzero(busy[o:k_end])
                if len(busy_idx) == 0:
                    f["pre"] = False  # the board idled through its whole lead: nothing to see
                    f["masked_by_idle"] = True
                else:
                    f["visible"] = f["onset"] + int(busy_idx[0])

        # --- the failure itself
        if f is not None:
            k = f["fail"] - a
            mode = f["mode"]
            if 0 <= k < n:
                xe[k] = int(rng.choice(FATAL_XID[mode]))
                tail = slice(k, n)
                if mode == "hbm":
                    i_dbe[k] += int(rng.integers(1, 4))
                    i_remu[k] += 1
                    i_sbe[k] += int(rng.integers(0, 50))
                    if rng.random() < 0.3:
                        rrf_b[k:] = 1
                        xe[k] = 64
                elif mode == "pcie":
                    i_pcie[k] += int(rng.integers(0, 500))
                elif mode == "nvlink":
                    i_nvf[k] += int(rng.integers(50, 5000))
                    i_nvr[k] += int(rng.integers(5, 200))
                    i_nvc[k] += int(rng.integers(1, 10))
                elif mode == "thermal":
                    j = max(0, k - int(rng.integers(0, 4)))
                    ramp = np.linspace(0, 1, k - j + 1)
                    tg[j : k + 1] = np.maximum(
                        tg[j : k + 1], m["t_sw"] + ramp * (m["t_shut"] - m["t_sw"] + 3)
                    )
                    fl[j : k + 1] |= B_SWTHERM | B_HWTHERM | B_HWSLOW
                    vt[j : k + 1] += STEP * NS
                elif mode == "power":
                    if rng.random() < 0.5:
                        p[k] = lm[k] * rng.uniform(1.1, 1.4)
                    else:
                        p[k] = rng.uniform(20, 60)
                    fl[k] |= B_BRAKE | B_HWSLOW
                    vb[k] += STEP * NS * 0.5
                # after the fatal event the board idles until it vanishes
                u[k + 1 :] = 0
                gre[tail] = np.where(np.arange(k, n) > k, 0, gre[tail])
                dra[tail] = np.where(np.arange(k, n) > k, 0, dra[tail])
                p[k + 1 :] = m["idle"] + rng.uniform(0, 30)
                clk[k + 1 :] = m["sm_idle"]
                fl[k + 1 :] = B_IDLE

        # --- store
        P[s, sl] = p
        T_g[s, sl] = tg
        T_m[s, sl] = tm
        smc[s, sl] = np.round(np.clip(clk, m["sm_idle"], m["sm_max"]) / 15) * 15
        memc[s, sl] = m["mem_clk"]
        util[s, sl] = np.round(u)
        fbu[s, sl] = fb_used
        fbfree[s, sl] = m["fb"] - m["reserved"] - fb_used
        gr[s, sl] = gre
        dr[s, sl] = dra
        lim[s, sl] = lm
        flags[s, sl] = fl
        v_pow[s, sl] = vp
        v_th[s, sl] = vt
        v_bl[s, sl] = vb
        v_rel[s, sl] = vr
        sbe[s, sl] = i_sbe
        dbe[s, sl] = i_dbe
        remc[s, sl] = i_remc
        remu[s, sl] = i_remu
        rrf[s, sl] = rrf_b
        pcie[s, sl] = i_pcie
        nvf[s, sl] = i_nvf
        nvd[s, sl] = i_nvd
        nvr[s, sl] = i_nvr
        nvc[s, sl] = i_nvc
        xid_ev[s, sl] = xe
        a0 = 0 if rng.random() < 0.7 else float(np.round(rng.lognormal(3, 1.8)))
        agg_off[0, s, sl] = a0
        d0 = 1.0 if rng.random() < 0.03 else 0.0
        agg_off[1, s, sl] = d0
        agg_off[2, s, sl] = 0 if rng.random() < 0.85 else float(rng.integers(1, 5))
        agg_off[3, s, sl] = d0
    log("physics done")

    # ---------------- host-level masks onto slots ----------------
    hg = np.repeat(host_gap, 8, axis=0)
    present &= ~hg
    hr = np.repeat(host_reset, 8, axis=0)
    vreset |= hr | breset
    clear |= np.repeat(host_clear, 8, axis=0) | hr | breset
    drv = np.repeat(driver, 8, axis=0)

    series = {}
    series["DCGM_FI_DEV_SM_CLOCK"] = smc
    series["DCGM_FI_DEV_MEM_CLOCK"] = memc
    series["DCGM_FI_DEV_MEMORY_TEMP"] = np.round(T_m)
    series["DCGM_FI_DEV_GPU_TEMP"] = np.round(T_g)
    series["DCGM_FI_DEV_POWER_USAGE"] = P
    series["DCGM_FI_DEV_POWER_MGMT_LIMIT"] = lim
    series["DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION"] = cum_reset(np.round(P * STEP * 1000), vreset)
    series["DCGM_FI_DEV_PCIE_REPLAY_COUNTER"] = cum_reset(pcie, vreset)
    series["DCGM_FI_DEV_GPU_UTIL"] = util
    series["DCGM_FI_DEV_FB_FREE"] = fbfree
    series["DCGM_FI_DEV_FB_USED"] = fbu
    series["DCGM_FI_DEV_XID_ERRORS"] = ffill_last(xid_ev, clear)
    series["DCGM_FI_DEV_ECC_SBE_VOL_TOTAL"] = cum_reset(sbe, vreset)
    series["DCGM_FI_DEV_ECC_DBE_VOL_TOTAL"] = cum_reset(dbe, vreset)
    series["DCGM_FI_DEV_ECC_SBE_AGG_TOTAL"] = cum_reset(sbe, breset) + agg_off[0]
    series["DCGM_FI_DEV_ECC_DBE_AGG_TOTAL"] = cum_reset(dbe, breset) + agg_off[1]
    series["DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS"] = cum_reset(remc, breset) + agg_off[2]
    series["DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS"] = cum_reset(remu, breset) + agg_off[3]
    series["DCGM_FI_DEV_ROW_REMAP_FAILURE"] = rrf
    series["DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL"] = cum_reset(nvf, vreset)
    series["DCGM_FI_DEV_NVLINK_CRC_DATA_ERROR_COUNT_TOTAL"] = cum_reset(nvd, vreset)
    series["DCGM_FI_DEV_NVLINK_REPLAY_ERROR_COUNT_TOTAL"] = cum_reset(nvr, vreset)
    series["DCGM_FI_DEV_NVLINK_RECOVERY_ERROR_COUNT_TOTAL"] = cum_reset(nvc, vreset)
    series["DCGM_FI_DEV_POWER_VIOLATION"] = cum_reset(np.round(v_pow), vreset)
    series["DCGM_FI_DEV_THERMAL_VIOLATION"] = cum_reset(np.round(v_th), vreset)
    series["DCGM_FI_DEV_BOARD_LIMIT_VIOLATION"] = cum_reset(np.round(v_bl), vreset)
    series["DCGM_FI_DEV_RELIABILITY_VIOLATION"] = cum_reset(np.round(v_rel), vreset)
    series["DCGM_FI_DEV_CLOCK_THROTTLE_REASONS"] = flags
    series["DCGM_FI_PROF_GR_ENGINE_ACTIVE"] = gr
    series["DCGM_FI_PROF_DRAM_ACTIVE"] = dr
    del P, T_g, T_m, sbe, dbe, remc, remu, pcie, nvf, nvd, nvr, nvc, v_pow, v_th, v_bl, v_rel
    log("counters done")

    # ---------------- label sets ----------------
    lab_id = np.where(present, board_of * 2 + drv, -1)
    labels: dict[int, str] = {}
    for b in boards:
        hst = hosts[b["host"]]
        m = MODELS[b["model"]]
        for d in (0, 1):
            labels[b["id"] * 2 + d] = (
                f'{{gpu="{b["gpu"]}",UUID="{b["uuid"]}",pci_bus_id="00000000:'
                f'{m["bus"][b["gpu"]]}:00.0",device="nvidia{b["gpu"]}",'
                f'modelName="{m["name"]}",Hostname="{hst["name"]}",'
                f'DCGM_FI_DRIVER_VERSION="{DRIVERS[d]}",instance="{hst["instance"]}",'
                f'job="dcgm-exporter"}} '
            )

    # ---------------- write TSDB ----------------
    out = Path(args.out)
    db = out / "prometheus"
    if db.exists():
        shutil.rmtree(db)
    db.mkdir(parents=True)
    tmpd = out / ".openmetrics_tmp"
    tmpd.mkdir(exist_ok=True)
    ts = [str(start + k * STEP) for k in range(nt)]
    w_edges = [0]
    k = 0
    while k < nt:
        t_abs = start + k * STEP
        nxt = (t_abs // WIN + 1) * WIN
        k = min(nt, (nxt - start + STEP - 1) // STEP)
        w_edges.append(k)
    # promtool is single-threaded: run args.jobs imports at once, each into its own directory
    # (promtool locks its output directory), and move the blocks into DIR/prometheus at the end.
    streams = [tmpd / f"db{j}" for j in range(args.jobs)]
    for d in streams:
        d.mkdir(exist_ok=True)
    inflight: list[tuple[subprocess.Popen, Path]] = []
    n_samples = 0

    def finish() -> None:
        pr, fpath = inflight.pop(0)
        _, err = pr.communicate()
        if pr.returncode != 0:
            sys.exit(f"promtool failed on {fpath}: {err.decode()[-2000:]}")
        fpath.unlink()

    for wi in range(len(w_edges) - 1):
        w0, w1 = w_edges[wi], w_edges[wi + 1]
        lid = lab_id[:, w0:w1]
        anyp = (lid >= 0).any(axis=1)
        full = (lid == lid[:, :1]).all(axis=1) & (lid[:, 0] >= 0)
        tsw = ts[w0:w1]
        parts: list[str] = []
        for name, typ, fmt in METRICS:
            arr = series[name][:, w0:w1]
            vals = (
                np.round(arr, int(fmt[1:])).tolist()
                if fmt[0] == "f"
                else arr.astype(np.int64).tolist()
            )
            parts.append(f"# TYPE {name} {typ}\n")
            for s in range(ns):
                if not anyp[s]:
                    continue
                if full[s]:
                    pre = name + labels[int(lid[s, 0])]
                    parts.append(
                        "".join([f"{pre}{v} {t}\n" for v, t in zip(vals[s], tsw, strict=True)])
                    )
                else:
                    row = lid[s]
                    for j in range(w1 - w0):
                        if row[j] >= 0:
                            parts.append(f"{name}{labels[int(row[j])]}{vals[s][j]} {tsw[j]}\n")
        parts.append("# EOF\n")
        n_samples += int((lid >= 0).sum()) * len(METRICS)
        fpath = tmpd / f"w{wi:05d}.om"
        with open(fpath, "w") as fh:
            fh.write("".join(parts))
        del parts
        if len(inflight) >= args.jobs:
            finish()
        cmd = [args.promtool, "tsdb", "create-blocks-from", "openmetrics", "-q", str(fpath)]
        cmd.append(str(streams[wi % args.jobs]))
        pr = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        inflight.append((pr, fpath))
        if wi % 48 == 0:
            log(f"window {wi}/{len(w_edges) - 1}")
    while inflight:
        finish()
    for d in streams:
        for blk in d.iterdir():
            if blk.is_dir() and len(blk.name) == 26:
                blk.rename(db / blk.name)
    shutil.rmtree(tmpd, ignore_errors=True)
    log(f"TSDB written, {n_samples} samples")

    # ---------------- failures.csv + truth.json ----------------
    rows = []
    for f in sorted(plan, key=lambda f: f["fail"]):
        t_fail = start + f["fail"] * STEP
        ps = start + f["visible"] * STEP if f["pre"] else ""
        rows.append(f"{f['board']['uuid']},{t_fail},{f['mode']},{str(f['pre']).lower()},{ps}")
    (out / "failures.csv").write_text(
        "uuid,time,mode,precursor,precursor_start\n" + "\n".join(rows) + "\n"
    )
    per_mode = {md: sum(1 for f in plan if f["mode"] == md) for md in MODES}
    pre_mode = {md: sum(1 for f in plan if f["mode"] == md and f["pre"]) for md in MODES}
    for f in plan:
        f["lead"] = f["fail"] - f["visible"] if f["pre"] else 0
    leads = np.array([f["lead"] * STEP / 3600 for f in plan if f["pre"]])

    def qs(v: np.ndarray) -> dict[str, float]:
        if len(v) == 0:
            return {}
        return {
            f"p{int(p)}": round(float(np.percentile(v, p)), 1) for p in (0, 10, 25, 50, 75, 90, 100)
        }

    comp_counts: dict[str, dict[str, int]] = {}
    for f in plan:
        for c in f.get("components", []):
            comp_counts.setdefault(f["mode"], {})
            comp_counts[f["mode"]][c] = comp_counts[f["mode"]].get(c, 0) + 1
    model_count: dict[str, int] = {}
    for hst in hosts:
        model_count[MODELS[hst["model"]]["name"]] = (
            model_count.get(MODELS[hst["model"]]["name"], 0) + 1
        )
    design += DESIGN
    truth = {
        "seed": args.seed,
        "start": start,
        "end": end,
        "resolution_s": STEP,
        "days": days,
        "hosts": nh,
        "hosts_per_model": model_count,
        "gpu_slots": ns,
        "boards_total": len(boards),
        "replacement_boards": len(boards) - ns,
        "samples_written": n_samples,
        "failures": len(plan),
        "failures_per_mode": per_mode,
        "precursor_per_mode": pre_mode,
        "precursor_total": int(sum(pre_mode.values())),
        "precursor_masked_by_idle": sum(1 for f in plan if f.get("masked_by_idle")),
        "lead_time_hours_quantiles": qs(leads),
        "lead_time_hours_quantiles_power": qs(
            np.array([f["lead"] * STEP / 3600 for f in plan if f["pre"] and f["mode"] == "power"])
        ),
        "lead_time_hours_quantiles_thermal": qs(
            np.array([f["lead"] * STEP / 3600 for f in plan if f["pre"] and f["mode"] == "thermal"])
        ),
        "precursor_components_per_mode": comp_counts,
        "benign_quirk_boards": quirk_counts,
        "violation_counter_unit": "ns",
        "driver_versions": list(DRIVERS),
        "hot_aisle_events": [
            {"rack": r, "start": start + a * STEP, "hours": d * STEP / 3600, "plus_c": mg}
            for r, a, d, mg in hot_events
        ],
        "facility_power_events": [
            {"start": start + a * STEP, "minutes": d * 5, "racks": rk} for a, d, rk in fac_events
        ],
        "capped_hosts": [hosts[int(i)]["name"] for i in capped_hosts],
        "midrun_limit_change_hosts": [hosts[int(i)]["name"] for i in midrun],
        "failure_rate_note": "far above real fleets (Llama 3 ~0.11 GPU-interruptions/GPU-yr); "
        "this fleet fails roughly 30-40x more often so that a 45-day run has enough events",
        "design_choices": design,
    }
    (out / "truth.json").write_text(json.dumps(truth, indent=1) + "\n")
    log("done")


DESIGN = [
    "Provenance: written blind from public facts (dcgm-exporter default-counters.csv, NVML "
    "clock-event reasons and violation policies, NVIDIA XID catalogue, Llama 3 / Delta / Summit / "
    "Titan failure studies) and one real H100's readings; for evaluation only.",
    "Fleet: racks of 4 hosts x 8 GPUs, one model per rack (H100 80GB HBM3, H200, A100-SXM4-80GB); "
    "one 'warm' rack with +4 C inlet; per-rack inlet offsets, diurnal inlet swing, slow drift.",
    "Workload per host: training jobs (hours-days, power demand mostly 1.04-1.55x TDP so the SW "
    "power cap (0x4) is active on nearly every busy sample, with checkpoint dips), inference "
    "(diurnal, below cap), idle (reason 0x1, ~72 W on H100); a board failure or reboot idles "
    "the host's job for hours.",
    "Power: capped samples sit 0.6-2 % under POWER_MGMT_LIMIT (1 % of them 0-2.5 % above), "
    "SM clock falls with demand/limit; ~1/6 of hosts have a lowered limit, two change it mid-run.",
    "Thermal: GPU temp = inlet + offset + R*P (R per board, H100 ~0.047 C/W from the fixture), "
    "HBM temp likewise; above the SKU slowdown point (H100 87 C, A100 85 C; HBM 93 C) power and "
    "clocks are reduced (0x20), at a 30 % TDP floor HW thermal slowdown (0x40|0x8).",
    "Violation counters in ns: POWER accumulates while capped, THERMAL while thermally throttled, "
    "BOARD_LIMIT on power brakes / excursions, RELIABILITY on some power-delivery faults.",
    "Counters are cumulative; volatile ECC, PCIe replay, NVLink, violation and energy counters "
    "reset at node reboots, GPU resets and board replacement; aggregate ECC and remapped rows "
    "only at board replacement (some boards start with historical aggregate SBEs / remaps).",
    "Power-delivery precursors (1-3 per board): intermittent power excursions above the limit "
    "(with or without the HW power-brake bit), power-brake dips (0x80|0x8, power collapses "
    "while util stays high), leakage creep (idle power up, capped clocks down), regulation "
    "noise (power jitter, SW-cap bit flicker), sagging cap (cannot reach the limit, HW slowdown, "
    "reliability violation). Each ramps with a per-board shape (linear, accelerating, steep, "
    "early plateau, step+ramp) and severity.",
    "Cooling precursors (1-3 per board): TIM degradation (R rises, GPU more than HBM), coolant or "
    "fan loss (step then ramp, also lifts idle temps), hot-spot spikes (intermittent +6..20 C "
    "samples), HBM contact loss (HBM temp only), airflow offset drift (temps up at all loads). "
    "Throttling emerges from the physics only when the margin is used up.",
    "Other precursors: HBM SBE bursts and correctable row remaps (some XID 63); PCIe replay rate "
    "rising exponentially; NVLink CRC flit/data/replay/recovery rates rising; 'other' = hang "
    "episodes (util 100, power near idle, GR engine 0, XID 109/119/8). Many failures have none.",
    "Failure: fatal XID in the last sample (mode-specific: 48/94/95/63/64, 79/32, 74, 79/62/109, "
    "79/62/119, 119/120/109/62/45), thermal failures climb to the shutdown temperature, the "
    "board reports idle for 0-3 more scrapes (30 % of pcie/thermal/power vanish at once), then "
    "its series stop; 80 % of slots get a new UUID after 3 h-7 d.",
    "Confounders: benign warm boards (R +20-45 %), leaky boards, noisy power sensors, benign TIM "
    "drift that plateaus, sporadic benign power brakes and excursions, corrected-ECC, PCIe-replay "
    "and NVLink-CRC noise, HBM UE reset-and-return boards, application XIDs 13/31/43 after bad "
    "jobs, rack hot-aisle events (+5..12 C for hours-days), facility power events on whole racks "
    "(0x80|0x8, BOARD_LIMIT violation, some followed by reboots).",
    "Operations: rolling driver upgrade 550.90.07 -> 550.127.08 host by host with a reboot "
    "(label DCGM_FI_DRIVER_VERSION changes on every series), random reboots, exporter restarts "
    "(1-2 missed scrapes, XID gauge back to 0), random single missed scrapes, host outages, "
    "one fleet-wide Prometheus outage.",
    "XID gauge holds the last XID since exporter start (0 after restart), as dcgm-exporter does.",
    "precursor_start is the onset of the degradation process; when every component of a board's "
    "precursor needs load to show (excursions, sagging cap, TIM degradation, hang episodes) it is "
    "moved to the first busy sample after the onset, and a board that idled through its whole "
    "lead is recorded without a precursor (counted in precursor_masked_by_idle). Early in a "
    "steep or accelerating ramp the precursor can be very faint.",
    "Counters are typed 'counter' in the OpenMetrics input but keep dcgm-exporter's names "
    "(no _total suffix), as a Prometheus scrape of dcgm-exporter stores them.",
    "Failure rates, lead times and mode mix are deliberately inflated: precursor leads are a "
    "mixture of 3-24 h (30 %), 1-7 d (40 %) and 7-21 d (30 %).",
]


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--seed", type=int, required=True, help="random seed")
    ap.add_argument("--out", required=True, help="output directory (created)")
    ap.add_argument(
        "--end",
        type=int,
        default=DEFAULT_END,
        help="end of the run, unix seconds (default %(default)s)",
    )
    ap.add_argument("--promtool", default="promtool", help="promtool binary (default: on PATH)")
    ap.add_argument("--jobs", type=int, default=2, help="parallel promtool imports (default 2)")
    ap.add_argument(
        "--days",
        type=int,
        default=45,
        help="length of the run in days (default 45; shorter runs are for smoke tests only)",
    )
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    main_sim(args)


if __name__ == "__main__":
    main()
