"""PROVENANCE: written blind, without reading this project's simulator, scorer, exporter, tests or
documentation, from public facts only (NVIDIA/dcgm-exporter source: metric and label rendering, XID
err_code/err_msg attributes, hpc mapping; NVIDIA/DCGM and dcgm-exporter issue threads on sticky XID
values and on XIDs 79/119/120/62 missing from DCGM_FI_DEV_XID_ERRORS; NVIDIA Xid catalogue; NVML
clock-event-reason bits and violation-policy counters; recorded H100 readings shipped with this
project under shared/fixtures/h100; Cui et al. 2025, GPU resilience of NCSA Delta A100/H100; Dubey
et al. 2024, The Llama 3 Herd of Models, interruption table; Kokolis et al. 2024, Meta RSC
reliability; Ostrouchov et al. SC20, Titan GPU lifetimes; DRAM/HBM field studies by Schroeder et
al. 2009, Sridharan et al. 2015 and later HBM error characterisations). It exists only to EVALUATE
the failure-prediction scorer on data its authors did not design. Never train, tune, calibrate or
choose weights or thresholds on its output.

Synthetic dcgm-exporter telemetry of a university / national HPC centre GPU fleet.

Fleet: 60 Slurm nodes, 268 GPU slots -- 34 x 4-GPU A100-SXM4-40GB, 12 x 4-GPU A100-SXM4-80GB,
7 x 8-GPU H100 80GB HBM3 (HGX), 4 x 4-GPU GH200 (aarch64) and 3 x 4-GPU H100 NVL (PCIe).
Prometheus scrapes dcgm-exporter (port 9400) every 15 minutes; the TSDB keeps 45 days.

Operations modelled: queue-full Slurm utilisation (single and multi-node jobs from minutes to
the 48 h wall limit, weekend lulls, idle gaps), one system maintenance window with a driver and
DCGM upgrade (the DCGM_FI_DRIVER_VERSION label changes, so every series splits), nodes that are
reimaged early after a repair, node reboots and GPU resets that zero the volatile counters (ECC
volatile, PCIe replay, NVLink error counters, energy and violation counters since driver load),
persistent aggregate ECC and remapped-row counters, board replacements after failures (a new UUID
in the same slot, pci_bus_id and gpu index), node drains, exporter restarts and Prometheus
outages (scrape gaps), random lost scrapes, sticky DCGM_FI_DEV_XID_ERRORS (last XID until the
exporter or driver restarts, with dcgm-exporter's err_code / err_msg labels, and several XIDs that
older DCGM does not report at all), user-application XIDs (13, 31, 43, 45) on healthy GPUs, and
benign noisy boards, slots and nodes that never fail.

Failures: the ground truth lists GPUs taken out of service. The failure rate is enriched roughly
30-50x above real life (public studies give per-GPU mean times between hardware failures of
months to years) so that 45 days hold 60-90 failures per seed. The mode mix follows the public
record: GPU-processor / firmware / hang faults and memory faults lead, NVLink and bus faults
follow, thermal and power faults are rarer; H100 memory is less resilient than A100 memory and
A100 has more processor-side (GSP and similar) faults. A share of failures, different per mode,
carries a precursor whose onset time is listed in failures.csv; the rest come without warning.
The precursor physics is documented in the code only (the evaluator stays blind to it).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field

import numpy as np

STEP = 900  # scrape interval, seconds
DAY = 86400
SPD = DAY // STEP  # scrapes per day
BLOCK = 64800  # promtool block length (18 h) and chunk length of the OpenMetrics input
DEFAULT_END = 1796083200
MODES = ("hbm", "pcie", "nvlink", "thermal", "power", "other")

# NVML clock event reason bits
R_IDLE, R_SWPOWER, R_HWSLOW, R_SYNC, R_SWTHERM, R_HWTHERM, R_HWBRAKE = (
    0x1,
    0x4,
    0x8,
    0x10,
    0x20,
    0x40,
    0x80,
)

XID_TEXT = {
    0: "No Error",
    8: "GPU stopped processing",
    13: "Graphics Engine Exception",
    31: "GPU memory page fault",
    43: "GPU stopped processing",
    45: (
        "Preemptive cleanup, due to previous errors -- "
        "Most likely to see when running multiple cuda"
    ),
    48: "Double Bit ECC Error",
    62: "Internal micro-controller halt",
    63: "ECC page retirement or row remapping recording event",
    64: "ECC page retirement or row remapper recording failure",
    74: "NVLINK Error",
    79: "GPU has fallen off the bus",
    92: "High single-bit ECC error rate",
    94: "Contained ECC error",
    95: "Uncontained ECC error",
    109: "Context Switch Timeout Error",
    119: "GSP RPC Timeout",
    120: "GSP Error",
    140: "Unrecovered ECC Error",
}
# XIDs that the pre-upgrade DCGM cannot report through DCGM_FI_DEV_XID_ERRORS
XID_HIDDEN_OLD = {62, 79, 119, 120}


@dataclass
class Model:
    key: str
    name: str
    gpus: int
    fb_total: int
    fb_reserved: int
    tdp: float
    idle_w: float
    rth: float
    base_c: float
    sm_max: int
    sm_idle: int
    mem_clk: int
    t_sw: float
    t_hw: float
    nvlinks: int
    buses: tuple[str, ...]
    arch: str
    hazard: dict[str, float] = field(default_factory=dict)


BUS_A100 = ("00000000:07:00.0", "00000000:46:00.0", "00000000:85:00.0", "00000000:C7:00.0")
BUS_HGX = (
    "00000000:18:00.0",
    "00000000:2A:00.0",
    "00000000:3A:00.0",
    "00000000:5D:00.0",
    "00000000:9A:00.0",
    "00000000:AB:00.0",
    "00000000:BA:00.0",
    "00000000:DB:00.0",
)
BUS_GH = ("00000009:01:00.0", "00000019:01:00.0", "00000029:01:00.0", "00000039:01:00.0")
BUS_NVL = ("00000000:17:00.0", "00000000:31:00.0", "00000000:B1:00.0", "00000000:CA:00.0")

HZ_A100 = {"hbm": 1.0, "pcie": 1.0, "nvlink": 1.0, "thermal": 0.5, "power": 0.5, "other": 2.0}
HZ_HOP = {"hbm": 2.6, "pcie": 0.8, "nvlink": 1.0, "thermal": 0.5, "power": 0.5, "other": 1.0}
HZ_NVL = {"hbm": 2.6, "pcie": 1.3, "nvlink": 0.6, "thermal": 0.7, "power": 0.5, "other": 1.0}

MODELS = {
    "a40": Model(
        "a40", "NVIDIA A100-SXM4-40GB", 4, 40960, 571, 400, 55, 0.095, 27, 1410, 210, 1215,
        86, 92, 12, BUS_A100, "x86", HZ_A100,
    ),
    "a80": Model(
        "a80", "NVIDIA A100-SXM4-80GB", 4, 81920, 610, 400, 60, 0.095, 27, 1410, 210, 1593,
        86, 92, 12, BUS_A100, "x86", HZ_A100,
    ),
    "h100": Model(
        "h100", "NVIDIA H100 80GB HBM3", 8, 81559, 480, 700, 72, 0.052, 29, 1980, 345, 2619,
        87, 92, 18, BUS_HGX, "x86", HZ_HOP,
    ),
    "gh200": Model(
        "gh200", "NVIDIA GH200 480GB", 4, 97871, 620, 900, 90, 0.042, 28, 1980, 345, 2619,
        87, 92, 18, BUS_GH, "arm", HZ_HOP,
    ),
    "nvl": Model(
        "nvl", "NVIDIA H100 NVL", 4, 95830, 590, 400, 60, 0.115, 26, 1785, 345, 2619,
        85, 90, 12, BUS_NVL, "x86", HZ_NVL,
    ),
}  # fmt: skip
FLEET = (("gpua", "a40", 34), ("gpub", "a80", 12), ("gpuh", "h100", 7), ("gpug", "gh200", 4),
         ("gpun", "nvl", 3))  # fmt: skip

DRIVERS = {"x86": ("535.161.08", "550.127.08"), "arm": ("550.54.15", "550.127.08")}

# Per-mode law of failure handling: share with precursor, lognormal lead (median h, sigma,
# min h, max h), probability that the board is replaced, probability it drops off the bus.
PREC_SHARE = {"hbm": 0.45, "pcie": 0.35, "nvlink": 0.5, "thermal": 0.65, "power": 0.35}
LEAD = {
    "hbm": (96.0, 0.9, 3.0, 600.0),
    "pcie": (48.0, 1.0, 2.0, 360.0),
    "nvlink": (72.0, 1.0, 3.0, 480.0),
    "thermal": (168.0, 0.8, 12.0, 720.0),
    "power": (36.0, 1.0, 1.0, 240.0),
    "other": (24.0, 1.0, 1.0, 240.0),
}
REPLACE_P = {"hbm": 0.95, "pcie": 0.7, "nvlink": 0.8, "thermal": 0.85, "power": 0.8, "other": 0.6}
OTHER_SUB = (("gsp", 0.4, 0.35), ("hang", 0.2, 0.25), ("sram", 0.15, 0.5), ("sdc", 0.15, 0.0),
             ("init", 0.1, 0.0))  # fmt: skip


def log(msg: str) -> None:
    print(f"[hpc_fleet] {msg}", file=sys.stderr, flush=True)


def die(msg: str) -> None:
    print(f"hpc_fleet: error: {msg}", file=sys.stderr)
    sys.exit(2)


class Fleet:
    """All state of one simulated fleet on the 15-minute grid."""

    def __init__(self, seed: int, days: int, end: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.seed = seed
        self.days = days
        self.end = end
        self.T = days * SPD
        self.start = end - days * DAY
        self.grid = self.start + np.arange(self.T, dtype=np.int64) * STEP
        rng = self.rng
        nodes: list[tuple[str, Model]] = []
        for prefix, key, n in FLEET:
            for i in range(n):
                nodes.append((f"{prefix}{i + 1:03d}", MODELS[key]))
        self.nodes = nodes
        self.N = len(nodes)
        slot_node, slot_idx = [], []
        for n, (_, m) in enumerate(nodes):
            for g in range(m.gpus):
                slot_node.append(n)
                slot_idx.append(g)
        self.slot_node = np.array(slot_node)
        self.slot_idx = np.array(slot_idx)
        self.S = len(slot_node)
        self.smodel = [nodes[n][1] for n in slot_node]
        # Prometheus spreads targets over the interval with a fixed per-target offset.
        self.node_off = np.round(rng.uniform(0.5, STEP - 1.0, self.N), 3)
        self.boards: list[str] = []  # uuid per global board id
        self.failures: list[dict] = []
        self.xid_events: list[tuple[int, int, int]] = []  # slot, step, code

    # ---- helpers -------------------------------------------------------------------------
    def k_of(self, t: float) -> int:
        return int(np.clip((t - self.start) // STEP, 0, self.T - 1))

    def new_uuid(self) -> int:
        h = self.rng.integers(0, 16, 32)
        s = "".join("0123456789abcdef"[x] for x in h)
        self.boards.append(f"GPU-{s[:8]}-{s[8:12]}-{s[12:16]}-{s[16:20]}-{s[20:]}")
        return len(self.boards) - 1

    def slots_of(self, n: int) -> np.ndarray:
        return np.nonzero(self.slot_node == n)[0]

    # ---- operations ----------------------------------------------------------------------
    def operations(self) -> None:
        rng, T, N = self.rng, self.T, self.N
        self.node_up = np.ones((N, T), bool)  # node powered and exporter reachable
        self.node_avail = np.ones((N, T), bool)  # schedulable by Slurm
        self.reboot = np.zeros((N, T), bool)  # driver (re)load at this step
        self.exp_restart = np.zeros((N, T), bool)
        self.scrape_ok = rng.random((N, T)) > 0.003
        # system maintenance: one 10 h window at ~55 % of the history, driver + DCGM upgrade
        mday = int(self.days * 0.55)
        m0 = min(max(mday * SPD + 8 * 4, 0), T - 1)
        m1 = min(m0 + 40, T)
        self.maint = (m0, m1)
        self.node_avail[:, max(0, m0 - 4) : m1 + 2] = False
        self.maint_reboot = np.full(N, m1)
        for n in range(N):
            d0 = m0 + int(rng.integers(4, 12))
            d1 = min(m1 - int(rng.integers(0, 8)), T)
            if d0 < T:
                self.node_up[n, d0:d1] = False
                self.reboot[n, min(d1, T - 1)] = True
                self.maint_reboot[n] = min(d1, T - 1)
        self.upgrade_k = m1
        self.stage_k = int(self.days * 0.4) * SPD  # new image staged: reimaged nodes pick it up
        # random reboots (kernel panic, admin) ~1 per node per 40 days
        for n in range(N):
            for _ in range(rng.poisson(self.days / 40)):
                k = int(rng.integers(1, T))
                dn = int(rng.integers(1, 4))
                self.node_up[n, k : k + dn] = False
                self.node_avail[n, k : k + dn + 2] = False
                self.reboot[n, min(k + dn, T - 1)] = True
            # drains for non-GPU reasons (IB link, DIMM, filesystem client)
            for _ in range(rng.poisson(self.days / 60)):
                k = int(rng.integers(0, T))
                self.node_avail[n, k : k + int(rng.uniform(24, 300))] = False
            # exporter restarts ~1 per 15 days (also clears the sticky XID)
            for _ in range(rng.poisson(self.days / 15)):
                k = int(rng.integers(1, T))
                self.exp_restart[n, k] = True
                self.scrape_ok[n, k : k + int(rng.integers(0, 3))] = False
        self.exp_restart[:, m1 : m1 + 1] = True
        # Prometheus server outages: whole-fleet gaps
        for _ in range(max(1, rng.poisson(self.days / 20))):
            k = int(rng.integers(0, T))
            self.scrape_ok[:, k : k + int(rng.integers(1, 9))] = False

    # ---- Slurm workload -----------------------------------------------------------------
    def workload(self) -> None:
        rng, T, S = self.rng, self.T, self.S
        self.util = np.zeros((S, T), np.float32)
        self.inten = np.zeros((S, T), np.float32)
        self.fbfrac = np.zeros((S, T), np.float32)
        self.mcu = np.zeros((S, T), np.float32)
        self.nvtraf = np.zeros((S, T), np.float32)
        self.njobs = 0
        dow = ((self.grid // DAY) + 4) % 7  # 0 = Monday
        weekend = dow >= 5
        classes = (  # util lo/hi, intensity lo/hi, fb lo/hi, memcopy lo/hi, weight
            ("dl", 88, 100, 0.85, 1.05, 0.55, 0.95, 25, 60, 0.40),
            ("hpc", 55, 95, 0.45, 0.80, 0.15, 0.60, 35, 85, 0.30),
            ("light", 4, 40, 0.15, 0.35, 0.03, 0.30, 2, 20, 0.18),
            ("infer", 15, 65, 0.25, 0.55, 0.30, 0.80, 5, 35, 0.12),
        )
        cw = np.array([c[-1] for c in classes])
        for prefix, _key, _n in FLEET:
            pn = [i for i, (h, _) in enumerate(self.nodes) if h.startswith(prefix)]
            free = {n: int(rng.integers(0, 8)) for n in pn}
            while True:
                order = sorted(pn, key=lambda x: free[x])
                if free[order[0]] >= T:
                    break
                size = int(rng.choice([1, 2, 4, 8, 16], p=[0.7, 0.12, 0.1, 0.06, 0.02]))
                size = min(size, len(pn))
                sel = order[:size]
                k0 = max(free[x] for x in sel)
                if k0 >= T - 1:
                    free[order[0]] = T
                    continue
                dur_h = float(np.clip(rng.lognormal(np.log(2.5), 1.3), 0.25, 48.0))
                k1 = min(T, k0 + max(1, round(dur_h * 4)))
                c = classes[int(rng.choice(len(classes), p=cw / cw.sum()))]
                self.njobs += 1
                for n in sel:
                    sl = self.slots_of(n)
                    if size == 1 and rng.random() < 0.4:
                        sl = rng.choice(sl, int(rng.integers(1, len(sl))), replace=False)
                    L = k1 - k0
                    for s in sl:
                        base = rng.uniform(c[1], c[2])
                        u = np.clip(base + rng.normal(0, 4, L), 0, 100)
                        self.util[s, k0:k1] = u
                        self.inten[s, k0:k1] = rng.uniform(c[3], c[4])
                        self.fbfrac[s, k0:k1] = rng.uniform(c[5], c[6])
                        self.mcu[s, k0:k1] = np.clip(
                            rng.uniform(c[7], c[8]) * u / max(base, 1) + rng.normal(0, 3, L), 0, 100
                        )
                        if len(sl) > 1 or size > 1:
                            self.nvtraf[s, k0:k1] = rng.uniform(0.2, 1.0) * (c[0] in ("dl", "hpc"))
                    gap_mean = 3.0 if weekend[min(k1, T - 1)] else 1.2
                    gap = rng.exponential(gap_mean)
                    if rng.random() < 0.07:
                        gap += rng.uniform(8, 48)
                    free[n] = k1 + int(gap)
        log(f"workload: {self.njobs} Slurm jobs")

    # ---- failures ------------------------------------------------------------------------
    def choose_failures(self) -> None:
        rng, S, T = self.rng, self.S, self.T
        node_frail = rng.lognormal(0, 0.6, self.N)
        lemons = rng.choice(self.N, 3, replace=False)
        node_frail[lemons] *= 3.0
        frail = node_frail[self.slot_node] * rng.lognormal(0, 0.4, S)
        w = np.array([[m.hazard[md] for md in MODES] for m in self.smodel]) * frail[:, None]
        share = w.sum(0) / w.sum()
        floor = max(6, round(64 * min(1.0, self.days / 45)))
        total = int(max(floor, rng.poisson(74 * self.days / 45)))
        big = [MODES.index(x) for x in ("hbm", "pcie", "nvlink", "other")]
        for _ in range(1000):
            counts = rng.multinomial(total, share)
            if all(counts[i] >= 10 for i in big):
                break
        busy = self.util > 0
        used: set[int] = set()
        lo_k, hi_k = 24, T - 4
        for mi, md in enumerate(MODES):
            for _ in range(int(counts[mi])):
                p = w[:, mi].copy()
                p[list(used)] = 0
                s = int(rng.choice(S, p=p / p.sum()))
                used.add(s)
                k = int(rng.integers(lo_k, hi_k))
                if rng.random() < 0.8 and not busy[s, k]:
                    cand = np.nonzero(busy[s, max(lo_k, k - 48) : min(hi_k, k + 48)])[0]
                    if len(cand):
                        k = max(lo_k, k - 48) + int(rng.choice(cand))
                # the failure happens between the scrapes k-1 and k of its node
                tf = float(self.grid[k] + self.node_off[self.slot_node[s]] - rng.uniform(1, STEP))
                sub = ""
                if md == "other":
                    names = [o[0] for o in OTHER_SUB]
                    pr = np.array([o[1] for o in OTHER_SUB])
                    j = int(rng.choice(len(names), p=pr / pr.sum()))
                    sub, pshare = names[j], OTHER_SUB[j][2]
                else:
                    pshare = PREC_SHARE[md]
                prec = bool(rng.random() < pshare)
                ps = None
                if prec:
                    med, sig, lo, hi = LEAD[md]
                    lead_h = float(np.clip(rng.lognormal(np.log(med), sig), lo, hi))
                    ps = tf - lead_h * 3600.0
                scope = "board"
                if prec and md in ("thermal", "power") and rng.random() < 0.3:
                    scope = "node"
                if prec and md == "nvlink" and self.smodel[s].gpus == 8 and rng.random() < 0.3:
                    scope = "node"
                rep_h = float(np.clip(rng.lognormal(np.log(48), 0.7), 4, 288))
                self.failures.append(
                    {
                        "slot": s,
                        "mode": md,
                        "sub": sub,
                        "tf": tf,
                        "kf": k,
                        "prec": prec,
                        "ps": ps,
                        "scope": scope,
                        "repair_k": k + int(rep_h * 4),
                        "replace": bool(rng.random() < REPLACE_P[md]),
                    }
                )
        self.failures.sort(key=lambda f: f["tf"])
        # repairs: node drained from the failure to the repair, powered off for the swap
        for f in self.failures:
            n = int(self.slot_node[f["slot"]])
            k, r = f["kf"], f["repair_k"]
            self.node_avail[n, k : r + 4] = False
            if r < T:
                off = int(rng.integers(2, 12))
                self.node_up[n, max(k + 1, r - off) : r] = False
                self.reboot[n, r] = True
        # jobs are killed at the failure and nothing runs on drained / down nodes
        mask = (self.node_avail & self.node_up)[self.slot_node]
        for arr in (self.util, self.inten, self.fbfrac, self.mcu, self.nvtraf):
            arr *= mask
        mix = ", ".join(f"{m}={c}" for m, c in zip(MODES, counts, strict=True))
        log(f"failures: {len(self.failures)} ({mix})")

    # ---- boards, drivers, presence -------------------------------------------------------
    def identities(self) -> None:
        rng, S, T = self.rng, self.S, self.T
        # driver per node: upgraded at maintenance or at a reboot after the image was staged
        self.drv = np.zeros((self.N, T), np.int8)
        for n in range(self.N):
            ks = np.nonzero(self.reboot[n])[0]
            ks = ks[ks >= self.stage_k]
            k_up = int(ks[0]) if len(ks) else T
            k_up = min(k_up, int(self.maint_reboot[n]))
            self.drv[n, k_up:] = 1
        self.board = np.zeros((S, T), np.int32)
        self.gpu_reset = np.zeros((S, T), bool)
        self.repl = np.zeros((S, T), bool)
        for s in range(S):
            self.board[s, :] = self.new_uuid()
        self.present = (self.node_up & self.scrape_ok)[self.slot_node].copy()
        for f in self.failures:
            s, k, r = f["slot"], f["kf"], min(f["repair_k"], T)
            gone = f["mode"] in ("pcie",) or (
                f["mode"] in ("thermal", "power") and rng.random() < 0.65
            )
            if f["mode"] == "other" and f["sub"] in ("init",):
                gone = True
            if f["mode"] == "other" and f["sub"] == "gsp" and self.drv[self.slot_node[s], k] == 0:
                gone = True  # old DCGM: NVML calls time out, every field comes back blank
            f["gone"] = gone
            if gone:
                self.present[s, k:r] = False
            if f["replace"] and r < T:
                b = self.new_uuid()
                self.board[s, r:] = b
                self.repl[s, r] = True

    # ---- physics -------------------------------------------------------------------------
    def physics(self) -> None:
        rng, S, T = self.rng, self.S, self.T
        col = lambda attr: np.array([getattr(m, attr) for m in self.smodel], np.float64)[:, None]  # noqa: E731
        tdp, idle_w, rth, base_c = col("tdp"), col("idle_w"), col("rth"), col("base_c")
        t_sw, t_hw = col("t_sw"), col("t_hw")
        hours = (self.grid % DAY) / 3600.0
        inlet_n = (
            rng.normal(0, 1.5, self.N)[:, None]
            + 1.5 * np.sin(2 * np.pi * (hours - 9) / 24)[None, :]
            + np.cumsum(rng.normal(0, 0.08, (self.N, T)), 1) * 0.3
        )
        hot = rng.choice(self.N, 2, replace=False)  # benign: poor airflow rack position
        inlet_n[hot] += rng.uniform(5, 8, (2, 1))
        # benign node cooling episodes (fan fault fixed within days)
        self.extra_t = np.zeros((S, T), np.float32)
        for _ in range(max(1, rng.poisson(self.days / 25))):
            n = int(rng.integers(0, self.N))
            k = int(rng.integers(0, T))
            d = int(rng.uniform(8, 72) * 4)
            self.extra_t[self.slots_of(n), k : k + d] += rng.uniform(6, 12)
        self.brake = np.zeros((S, T), np.float32)  # fraction of interval in HW power brake
        for _ in range(max(1, rng.poisson(self.days / 20))):  # benign PSU redundancy loss
            n = int(rng.integers(0, self.N))
            k = int(rng.integers(0, T))
            d = int(rng.uniform(6, 48) * 4)
            sl = self.slots_of(n)
            ev = (rng.random((len(sl), min(d, T - k))) < 0.15) * rng.uniform(0.05, 0.4)
            self.brake[sl, k : k + d] = np.maximum(self.brake[sl, k : k + d], ev)
        self.pnoise = np.full((S, 1), 0.012, np.float32) * np.ones((1, T), np.float32)
        self.toff = rng.normal(0, 1.8, (S, 1))
        self.clk_pen = np.zeros((S, T), np.float32)
        self.inlet_n = inlet_n
        self.cols = (tdp, idle_w, rth, base_c, t_sw, t_hw)

    def finish_physics(self) -> None:
        rng, S, T = self.rng, self.S, self.T
        tdp, idle_w, rth, base_c, t_sw, t_hw = self.cols
        u = self.util.astype(np.float64)
        busy = u > 0
        demand = idle_w + (tdp * 1.1 - idle_w) * self.inten * (u / 100.0) ** 0.9
        demand = np.where(busy, demand, idle_w * rng.normal(1.0, 0.02, (S, T)))
        cap = tdp
        frac_pc = np.clip((demand - 0.96 * cap) / (0.08 * cap), 0, 1) * busy
        power = np.minimum(demand, cap * rng.normal(0.995, 0.004, (S, T)))
        power *= 1 + rng.normal(0, 1, (S, T)) * self.pnoise
        # power brake: clocks and power drop while the external brake is asserted
        br = self.brake * busy
        power *= 1 - 0.45 * br
        temp = (
            base_c
            + self.inlet_n[self.slot_node]
            + self.toff
            + rth * power
            + self.extra_t
            + rng.normal(0, 0.6, (S, T))
        )
        over = np.maximum(temp - t_sw, 0)
        frac_th = np.clip(over / 4.0, 0, 1)
        temp = np.where(over > 0, t_sw + over * 0.35, temp)
        power *= 1 - 0.12 * frac_th
        hwth = temp > t_hw - 1.5
        self.power = np.round(np.maximum(power, 0.5 * idle_w), 3)
        self.temp = np.round(temp)
        mem_a = np.array([0.8 if m.key in ("h100", "gh200") else 0.9 for m in self.smodel])[:, None]
        self.mtemp = np.round(mem_a * temp + (1 - mem_a) * 60 + 3 + rng.normal(0, 0.5, (S, T)))
        sm_max = np.array([m.sm_max for m in self.smodel], np.float64)[:, None]
        sm_idle = np.array([m.sm_idle for m in self.smodel], np.float64)[:, None]
        capr = np.where(frac_pc > 0, np.clip(cap / np.maximum(demand, 1), 0.6, 1.0) ** 0.7, 1.0)
        clk = sm_max * capr * (1 - 0.25 * frac_th) * (1 - 0.4 * br) * (1 - self.clk_pen)
        clk = np.where(busy, np.round(clk / 15) * 15, sm_idle)
        self.smclk = clk
        self.memclk = np.array([m.mem_clk for m in self.smodel], np.float64)[:, None] * np.ones(
            (1, T)
        )
        # instantaneous clock-event reasons at the scrape
        r = rng.random((S, T))
        reasons = np.where(busy, 0, R_IDLE).astype(np.int64)
        reasons |= np.where(r < np.maximum(frac_pc, 0.97 * (frac_pc > 0.6)), R_SWPOWER, 0)
        reasons |= np.where(frac_th > 0.05, R_SWTHERM, 0)
        reasons |= np.where(hwth, R_HWTHERM | R_HWSLOW, 0)
        reasons |= np.where(rng.random((S, T)) < br * 2.0, R_HWBRAKE | R_HWSLOW, 0)
        self.reasons = reasons
        ns = STEP * 1e9
        self.inc = {
            "POWER_VIOLATION": frac_pc * ns * rng.uniform(0.8, 1.0, (S, T)),
            "THERMAL_VIOLATION": frac_th * ns,
            "SYNC_BOOST_VIOLATION": np.zeros((S, T)),
            "BOARD_LIMIT_VIOLATION": br * ns * 0.6,
            "LOW_UTIL_VIOLATION": (~busy) * ns * rng.uniform(0.9, 1.0, (S, T)),
            "RELIABILITY_VIOLATION": np.zeros((S, T)),
            "TOTAL_ENERGY_CONSUMPTION": self.power * STEP * 1000.0,
        }
        nvl = np.array([m.nvlinks for m in self.smodel], np.float64)[:, None]
        self.inc["NVLINK_BANDWIDTH_TOTAL"] = np.round(
            self.nvtraf * nvl * 25e3 * STEP * rng.uniform(0.7, 1.0, (S, T))
        )
        fbt = np.array([m.fb_total for m in self.smodel], np.float64)[:, None]
        fbr = np.array([m.fb_reserved for m in self.smodel], np.float64)[:, None]
        used = np.where(busy, np.round(self.fbfrac * (fbt - fbr)), 0.0)
        self.fb_used = used
        self.fb_res = fbr * np.ones((1, T))
        self.fb_free = fbt - fbr - used

    # ---- errors: benign noise, precursors, failures ---------------------------------------
    def errors(self) -> None:
        rng, S, T = self.rng, self.S, self.T
        z = lambda: np.zeros((S, T))  # noqa: E731
        self.e = {
            k: z()
            for k in (
                "SBE",
                "DBE",
                "PCIE",
                "FLIT",
                "DATA",
                "REPLAY",
                "RECOV",
                "RROW_C",
                "RROW_U",
            )
        }
        self.remap_fail = np.zeros((S, T))
        busy = self.util > 0
        load = 0.25 + 0.75 * self.util / 100.0
        days_per_step = 1.0 / SPD
        # user-application XIDs on healthy GPUs (MMU page faults lead, per Delta)
        for code, rate in ((31, 0.03), (13, 0.01), (43, 0.008)):
            nev = rng.poisson(rate * self.days * S)
            ss = rng.integers(0, S, nev)
            kk = rng.integers(0, T, nev)
            for s, k in zip(ss.tolist(), kk.tolist(), strict=True):
                if busy[s, k]:
                    self.xid_events.append((s, k, code))
                    if code in (31, 13) and rng.random() < 0.3:
                        self.xid_events.append((s, k, 45))
                    if code == 43 and rng.random() < 0.3 and k + 2 < T:
                        self.gpu_reset[s, k + 2] = True
        # benign noisy boards: steady corrected ECC, never failing
        nb = rng.choice(S, int(0.05 * S), replace=False)
        for s in nb.tolist():
            lam = rng.uniform(0.5, 25) * days_per_step * load[s]
            self.e["SBE"][s] += rng.poisson(lam)
        self.agg_init_sbe = np.where(np.isin(np.arange(S), nb), rng.integers(5, 400, S), 0)
        self.agg_init_rrc = np.where(
            np.isin(np.arange(S), nb) & (rng.random(S) < 0.5), rng.integers(1, 4, S), 0
        )
        # benign PCIe replay trickle (slot / riser property) and NVLink CRC trickle
        for s in rng.choice(S, int(0.04 * S), replace=False).tolist():
            lam = rng.uniform(1, 60) * days_per_step * (rng.random(T) < 0.2)
            self.e["PCIE"][s] += rng.poisson(lam * 5)
        for s in rng.choice(S, int(0.04 * S), replace=False).tolist():
            lam = rng.uniform(2, 150) * days_per_step * self.nvtraf[s]
            self.e["FLIT"][s] += rng.poisson(lam)
            self.e["REPLAY"][s] += rng.poisson(lam * 0.2)
        for f in self.failures:
            self._failure(f, busy, load)

    def _ramp(self, f: dict) -> tuple[int, int, np.ndarray]:
        """Steps of the precursor window and its progress 0..1."""
        off = self.node_off[self.slot_node[f["slot"]]]
        k0 = int(np.clip(np.ceil((f["ps"] - self.start - off) / STEP), 0, f["kf"] - 1))
        k1 = f["kf"] - 1
        ts = self.grid[k0 : k1 + 1] + off
        x = (ts - f["ps"]) / max(1.0, f["tf"] - f["ps"])
        return k0, k1, np.clip(x, 0.0, 1.0)

    def _failure(self, f: dict, busy: np.ndarray, load: np.ndarray) -> None:
        rng, T = self.rng, self.T
        s, kf, md, sub = f["slot"], f["kf"], f["mode"], f["sub"]
        m = self.smodel[s]
        n = int(self.slot_node[s])
        hop = m.key in ("h100", "gh200", "nvl")
        ev = self.xid_events
        if f["prec"]:
            k0, k1, x = self._ramp(f)
            sl = slice(k0, k1 + 1)
            dps = 1.0 / SPD
            if md == "hbm":
                g = rng.uniform(4, 8)
                lam = rng.uniform(1, 4) * np.exp(g * x) * dps * load[s, sl]
                inc = rng.poisson(lam)
                self.e["SBE"][s, sl] += inc
                nrm = int(rng.integers(1, 5))
                for kk in np.sort(rng.choice(np.arange(k0, k1 + 1), nrm, p=x / x.sum())):
                    self.e["RROW_C"][s, kk] += 1
                    ev.append((s, int(kk), 63))
                if rng.random() < 0.3:
                    ev.append((s, int(k0 + 0.9 * (k1 - k0)), 92))
            elif md == "pcie":
                lam = rng.uniform(3, 10) * np.exp(rng.uniform(4, 6) * x) * dps
                burst = rng.random(len(x)) < (0.2 + 0.6 * x)
                self.e["PCIE"][s, sl] += rng.poisson(lam * burst * 3)
            elif md == "nvlink":
                targets = [(s, 1.0)]
                if f["scope"] == "node":
                    others = [int(o) for o in self.slots_of(n) if o != s]
                    for o in rng.choice(others, int(rng.integers(1, 3)), replace=False):
                        targets.append((int(o), rng.uniform(0.05, 0.3)))
                for t, amp in targets:
                    lam = amp * rng.uniform(5, 20) * np.exp(rng.uniform(5, 8) * x) * dps
                    lam = lam * (0.15 + 0.85 * (self.nvtraf[t, sl] > 0))
                    fl = rng.poisson(lam)
                    self.e["FLIT"][t, sl] += fl
                    self.e["DATA"][t, sl] += rng.binomial(fl, 0.1)
                    self.e["REPLAY"][t, sl] += rng.binomial(fl, 0.3)
                    self.e["RECOV"][t, sl] += rng.poisson(0.002 * fl)
                if rng.random() < 0.5:
                    for kk in rng.choice(np.arange(k0, k1 + 1), int(rng.integers(1, 4))):
                        if kk > k0 + 0.6 * (k1 - k0):
                            ev.append((s, int(kk), 74))
            elif md == "thermal":
                amp = rng.uniform(12, 25)
                prof = amp * x**1.5
                self.extra_t[s, sl] += prof
                if f["scope"] == "node":
                    for o in self.slots_of(n):
                        if o != s:
                            self.extra_t[o, sl] += prof * rng.uniform(0.3, 0.7)
            elif md == "power":
                tg = [(s, 1.0)]
                if f["scope"] == "node":
                    tg += [(int(o), rng.uniform(0.2, 0.5)) for o in self.slots_of(n) if o != s]
                for t, amp in tg:
                    pr = amp * (0.05 + 0.45 * x**2)
                    evm = rng.random(len(x)) < pr
                    self.brake[t, sl] = np.maximum(self.brake[t, sl], evm * rng.uniform(0.1, 0.6))
                self.pnoise[s, sl] = 0.012 + 0.06 * x
            elif md == "other":
                if sub == "gsp":
                    pr = 0.02 + 0.2 * x**2
                    hit = np.nonzero(rng.random(len(x)) < pr)[0] + k0
                    for kk in hit.tolist():
                        if rng.random() < 0.5:
                            ev.append((s, kk, 119))
                        self.present[s, kk] = False
                elif sub == "hang":
                    nh = int(rng.integers(1, 4))
                    for kk in rng.choice(np.arange(k0, k1 + 1), nh):
                        if busy[s, kk]:
                            ev.append((s, int(kk), int(rng.choice([109, 8]))))
                elif sub == "sram":
                    lam = rng.uniform(0.5, 3) * np.exp(rng.uniform(3, 6) * x) * dps
                    self.e["SBE"][s, sl] += rng.poisson(lam * 3 * (rng.random(len(x)) < 0.3))
        # the failure itself
        if md == "hbm":
            nd = int(rng.integers(1, 4))
            self.e["DBE"][s, kf] += nd
            if rng.random() < 0.35:
                self.remap_fail[s, kf:] = 1
                ev.append((s, kf, 64))
            else:
                self.e["RROW_U"][s, kf] += int(rng.integers(1, 3))
                ev.append((s, kf, int(rng.choice([94, 95])) if hop else 48))
        elif md == "nvlink":
            self.e["RECOV"][s, kf] += int(rng.integers(1, 6))
            self.e["REPLAY"][s, kf] += int(rng.integers(10, 500))
            ev.append((s, kf, 74))
        elif md in ("thermal", "power"):
            if f["prec"] and md == "thermal":
                self.extra_t[s, kf] += 8
            ev.append((s, kf, 79 if f["gone"] else 62))
        elif md == "other":
            if sub == "gsp":
                ev.append((s, kf, int(rng.choice([119, 120]))))
            elif sub == "hang":
                ev.append((s, kf, int(rng.choice([109, 8, 43]))))
                r = min(f["repair_k"], T)
                self.util[s, kf:r] = 100.0  # hung context: SM busy, nothing progresses
                self.inten[s, kf:r] = 0.35
            elif sub == "sram":
                self.e["DBE"][s, kf] += 1
                ev.append((s, kf, int(rng.choice([94, 95, 140]))))
            elif sub == "init":
                ev.append((s, kf, 79))

    # ---- counters --------------------------------------------------------------------------
    def counters(self) -> None:
        rng, S, T = self.rng, self.S, self.T
        rb = self.reboot[self.slot_node]
        vol_reset = rb | self.gpu_reset | self.repl
        agg_reset = self.repl

        def acc(inc: np.ndarray, reset: np.ndarray, init: np.ndarray) -> np.ndarray:
            inc = inc.astype(np.float64).copy()
            inc[:, 0] += init
            cum = np.cumsum(inc, axis=1)
            base = np.where(reset, cum - inc, 0.0)
            return cum - np.maximum.accumulate(base, axis=1)

        up_days = rng.uniform(1, 60, self.N)[self.slot_node]  # uptime at the history start
        zero = np.zeros(S)
        out = {}
        for k, inc in self.inc.items():
            mean = inc[:, : min(T, 4 * SPD)].mean(1)
            init = np.round(mean * SPD * up_days)
            out[k] = np.round(acc(inc, vol_reset, init))
        e = self.e
        out["ECC_SBE_VOL_TOTAL"] = acc(e["SBE"], vol_reset, zero)
        out["ECC_DBE_VOL_TOTAL"] = acc(e["DBE"], vol_reset, zero)
        out["ECC_SBE_AGG_TOTAL"] = acc(e["SBE"], agg_reset, self.agg_init_sbe.astype(float))
        out["ECC_DBE_AGG_TOTAL"] = acc(e["DBE"], agg_reset, zero)
        out["PCIE_REPLAY_COUNTER"] = acc(e["PCIE"], vol_reset, zero)
        out["NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL"] = acc(e["FLIT"], vol_reset, zero)
        out["NVLINK_CRC_DATA_ERROR_COUNT_TOTAL"] = acc(e["DATA"], vol_reset, zero)
        out["NVLINK_REPLAY_ERROR_COUNT_TOTAL"] = acc(e["REPLAY"], vol_reset, zero)
        out["NVLINK_RECOVERY_ERROR_COUNT_TOTAL"] = acc(e["RECOV"], vol_reset, zero)
        out["CORRECTABLE_REMAPPED_ROWS"] = acc(
            e["RROW_C"], agg_reset, self.agg_init_rrc.astype(float)
        )
        out["UNCORRECTABLE_REMAPPED_ROWS"] = acc(e["RROW_U"], agg_reset, zero)
        rf = self.remap_fail.copy()
        for s, k in zip(*np.nonzero(self.repl), strict=True):
            rf[s, k:] = 0
        out["ROW_REMAP_FAILURE"] = rf
        self.ctr = out
        # sticky XID: last reported code until exporter restart, driver reload or GPU reset
        xid = np.full((S, T), -1, np.int64)
        clear = rb | self.gpu_reset | self.repl | self.exp_restart[self.slot_node]
        xid[clear] = 0
        xid[:, 0] = np.where(rng.random(S) < 0.06, rng.choice([31, 13, 43], S), 0)
        for s, k, code in sorted(self.xid_events, key=lambda e: e[1]):
            if code in XID_HIDDEN_OLD and self.drv[self.slot_node[s], k] == 0:
                continue
            xid[s, k] = code
        idx = np.where(xid >= 0, np.arange(T)[None, :], 0)
        idx = np.maximum.accumulate(idx, axis=1)
        self.xid = np.take_along_axis(xid, idx, 1)

    # ---- output ----------------------------------------------------------------------------
    def metric_table(self) -> list[tuple[str, np.ndarray, bool]]:
        c = self.ctr
        z = np.zeros((self.S, self.T))
        t = [
            ("SM_CLOCK", self.smclk, False),
            ("MEM_CLOCK", self.memclk, False),
            ("MEMORY_TEMP", self.mtemp, False),
            ("GPU_TEMP", self.temp, False),
            ("POWER_USAGE", self.power, True),
            ("TOTAL_ENERGY_CONSUMPTION", c["TOTAL_ENERGY_CONSUMPTION"], False),
            ("PCIE_REPLAY_COUNTER", c["PCIE_REPLAY_COUNTER"], False),
            ("GPU_UTIL", np.round(self.util), False),
            ("MEM_COPY_UTIL", np.round(self.mcu * (self.util > 0)), False),
            ("ENC_UTIL", z, False),
            ("DEC_UTIL", z, False),
            ("POWER_VIOLATION", c["POWER_VIOLATION"], False),
            ("THERMAL_VIOLATION", c["THERMAL_VIOLATION"], False),
            ("SYNC_BOOST_VIOLATION", c["SYNC_BOOST_VIOLATION"], False),
            ("BOARD_LIMIT_VIOLATION", c["BOARD_LIMIT_VIOLATION"], False),
            ("LOW_UTIL_VIOLATION", c["LOW_UTIL_VIOLATION"], False),
            ("RELIABILITY_VIOLATION", c["RELIABILITY_VIOLATION"], False),
            ("CLOCK_THROTTLE_REASONS", self.reasons, False),
            ("FB_FREE", self.fb_free, False),
            ("FB_USED", self.fb_used, False),
            ("FB_RESERVED", self.fb_res, False),
        ]
        for k in (
            "ECC_SBE_VOL_TOTAL",
            "ECC_DBE_VOL_TOTAL",
            "ECC_SBE_AGG_TOTAL",
            "ECC_DBE_AGG_TOTAL",
            "NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL",
            "NVLINK_CRC_DATA_ERROR_COUNT_TOTAL",
            "NVLINK_REPLAY_ERROR_COUNT_TOTAL",
            "NVLINK_RECOVERY_ERROR_COUNT_TOTAL",
            "NVLINK_BANDWIDTH_TOTAL",
            "UNCORRECTABLE_REMAPPED_ROWS",
            "CORRECTABLE_REMAPPED_ROWS",
            "ROW_REMAP_FAILURE",
        ):
            t.append((k, c[k], False))
        return [("DCGM_FI_DEV_" + n, a, f) for n, a, f in t]

    def write_tsdb(self, out: str, promtool: str) -> int:
        S, T = self.S, self.T
        tsdb = os.path.join(out, "prometheus")
        work = os.path.join(out, ".chunks")
        os.makedirs(tsdb)
        os.makedirs(work)
        tstr = np.array(
            [[f"{x:.3f}" for x in (self.grid + self.node_off[n]).tolist()] for n in range(self.N)]
        )
        # series identity per step: board and driver (-1 = no sample)
        drv = self.drv[self.slot_node]
        seg = np.where(self.present, self.board.astype(np.int64) * 2 + drv, -1)
        labels: dict[tuple[int, int], str] = {}
        for s in range(S):
            n = int(self.slot_node[s])
            host, m = self.nodes[n]
            g = int(self.slot_idx[s])
            for sg in np.unique(seg[s][seg[s] >= 0]).tolist():
                dv = DRIVERS[m.arch][sg % 2]
                labels[(s, sg)] = (
                    f'gpu="{g}",UUID="{self.boards[sg // 2]}",pci_bus_id="{m.buses[g]}",'
                    f'device="nvidia{g}",modelName="{m.name}",Hostname="{host}",'
                    f'DCGM_FI_DRIVER_VERSION="{dv}"'
                )
        inst = [f'instance="{h}:9400",job="dcgm-exporter"' for h, _ in self.nodes]
        table = self.metric_table()
        first = (self.start // BLOCK) * BLOCK
        bounds = list(range(first, self.end + BLOCK, BLOCK))
        samples = 0
        proc: subprocess.Popen | None = None
        prev_file = ""
        nchunks = len(bounds) - 1
        for ci in range(nchunks):
            b0, b1 = bounds[ci], bounds[ci + 1]
            # steps whose (grid + node offset) timestamp falls in [b0, b1)
            klo = np.clip(np.ceil((b0 - self.start - self.node_off) / STEP), 0, T).astype(int)
            khi = np.clip(np.ceil((b1 - self.start - self.node_off) / STEP), 0, T).astype(int)
            if (khi <= klo).all():
                continue
            fn = os.path.join(work, f"chunk{ci:04d}.om")
            with open(fn, "w", buffering=1 << 22) as fh:
                # the same samples (slot-major, time-ascending: every series is contiguous
                # because board and driver only move forward) for every plain metric
                lo, hi = int(klo.min()), int(khi.max())
                kk = np.arange(lo, hi)
                sn = self.slot_node
                valid = (kk[None, :] >= klo[sn][:, None]) & (kk[None, :] < khi[sn][:, None])
                valid &= seg[:, lo:hi] >= 0
                ss, cc = np.nonzero(valid)
                cc += lo
                code = ss.astype(np.int64) * 100000 + seg[ss, cc]
                ucode, inv = np.unique(code, return_inverse=True)
                ulab = [
                    f"{labels[(int(c // 100000), int(c % 100000))]},{inst[sn[c // 100000]]}"
                    for c in ucode.tolist()
                ]
                inv_l = inv.tolist()
                ts_l = tstr[sn[ss], cc].tolist()
                for name, arr, isfloat in table:
                    vals = arr[ss, cc]
                    if isfloat:
                        v_l = vals.astype(str).tolist()
                    else:
                        uv, vinv = np.unique(vals.astype(np.int64), return_inverse=True)
                        v_l = uv.astype(str)[vinv].tolist()
                    pre = [f"{name}{{{lab}}} " for lab in ulab]
                    fh.write(
                        "".join(
                            [f"{pre[i]}{v} {t}\n" for i, v, t in zip(inv_l, v_l, ts_l, strict=True)]
                        )
                    )
                    samples += len(v_l)
                    del vals, v_l
                # XID with err_code / err_msg labels (a new series whenever the code changes)
                name = "DCGM_FI_DEV_XID_ERRORS"
                for s in range(S):
                    n = int(self.slot_node[s])
                    a, b = klo[n], khi[n]
                    sg = seg[s, a:b]
                    ok = np.nonzero(sg >= 0)[0]
                    if not len(ok):
                        continue
                    xv = self.xid[s, a:b]
                    key = sg * 1000 + xv
                    order = np.lexsort((ok, key[ok]))
                    okk = ok[order]
                    cut = np.nonzero(np.diff(key[okk]))[0] + 1
                    for grp in np.split(okk, cut):
                        code = int(xv[grp[0]])
                        msg = XID_TEXT.get(code, "Unknown Error")
                        pre = (
                            f'{name}{{{labels[(s, int(sg[grp[0]]))]},err_code="{code}",'
                            f'err_msg="{msg}",{inst[n]}}} '
                        )
                        tl = tstr[n, grp + a].tolist()
                        fh.write("".join([f"{pre}{code} {t}\n" for t in tl]))
                        samples += len(grp)
                fh.write("# EOF\n")
            if proc is not None:
                self._wait(proc, prev_file)
            proc = subprocess.Popen(
                [promtool, "tsdb", "create-blocks-from", "openmetrics", "--max-block-duration=18h",
                 fn, tsdb],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )  # fmt: skip
            prev_file = fn
            log(f"chunk {ci + 1}/{nchunks} written ({samples / 1e6:.1f} M samples so far)")
        if proc is not None:
            self._wait(proc, prev_file)
        shutil.rmtree(work, ignore_errors=True)
        return samples

    @staticmethod
    def _wait(proc: subprocess.Popen, fn: str) -> None:
        _, err = proc.communicate()
        if proc.returncode != 0:
            die(f"promtool failed on {fn}: {err.decode(errors='replace').strip()[-300:]}")
        os.remove(fn)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Blind synthetic HPC GPU fleet (dcgm-exporter TSDB).")
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--days", type=int, default=45)
    ap.add_argument("--end", type=int, default=DEFAULT_END)
    ap.add_argument("--promtool", default="promtool")
    args = ap.parse_args(argv)
    t_start = time.time()
    promtool = shutil.which(args.promtool)
    if promtool is None:
        die(f"promtool not found: {args.promtool}")
    if os.path.exists(args.out) and (not os.path.isdir(args.out) or os.listdir(args.out)):
        die(f"output directory is not empty: {args.out}")
    if args.days < 1:
        die("--days must be at least 1")
    os.makedirs(args.out, exist_ok=True)
    fl = Fleet(args.seed, args.days, args.end)
    log(f"seed {args.seed}: {fl.N} nodes, {fl.S} GPU slots, {args.days} days")
    fl.operations()
    fl.workload()
    fl.choose_failures()
    fl.identities()
    fl.physics()
    fl.errors()
    fl.finish_physics()
    fl.counters()
    log("physics done, writing TSDB")
    samples = fl.write_tsdb(args.out, promtool)
    write_truth(fl, args, samples, time.time() - t_start)
    log(f"done: {samples} samples in {time.time() - t_start:.1f} s")
    return 0


def write_truth(fl: Fleet, args: argparse.Namespace, samples: int, wall: float) -> None:
    rows = ["uuid,time,mode,precursor,precursor_start"]
    by_mode = dict.fromkeys(MODES, 0)
    prec_mode = dict.fromkeys(MODES, 0)
    leads = []
    for f in fl.failures:
        uuid = fl.boards[int(fl.board[f["slot"], f["kf"]])]
        ps = "" if f["ps"] is None else str(round(f["ps"]))
        rows.append(f"{uuid},{round(f['tf'])},{f['mode']},{str(f['prec']).lower()},{ps}")
        by_mode[f["mode"]] += 1
        if f["prec"]:
            prec_mode[f["mode"]] += 1
            leads.append((f["tf"] - f["ps"]) / 3600.0)
    with open(os.path.join(args.out, "failures.csv"), "w") as fh:
        fh.write("\n".join(rows) + "\n")
    models: dict[str, dict[str, int]] = {}
    for s in range(fl.S):
        m = fl.smodel[s].name
        d = models.setdefault(m, {"slots": 0, "gpus": 0})
        d["slots"] += 1
        d["gpus"] += len(set(fl.board[s][fl.present[s]].tolist()))
    q = [0.1, 0.25, 0.5, 0.75, 0.9]
    truth = {
        "generator": "bench/hpc_fleet.py (blind, public facts only; evaluation only)",
        "seed": args.seed,
        "days": args.days,
        "start": fl.start,
        "end": fl.end,
        "scrape_interval_s": STEP,
        "nodes": fl.N,
        "slots": fl.S,
        "gpus_present": int(sum(d["gpus"] for d in models.values())),
        "models": models,
        "failures": len(fl.failures),
        "failures_by_mode": by_mode,
        "precursor_by_mode": prec_mode,
        "lead_time_hours_quantiles": (
            dict(zip([str(x) for x in q], np.round(np.quantile(leads, q), 2).tolist(), strict=True))
            if leads
            else {}
        ),
        "slurm_jobs": fl.njobs,
        "samples": samples,
        "wall_time_s": round(wall, 1),
    }
    with open(os.path.join(args.out, "truth.json"), "w") as fh:
        json.dump(truth, fh, indent=1)
        fh.write("\n")


if __name__ == "__main__":
    sys.exit(main())
