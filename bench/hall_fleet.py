"""PROVENANCE: written blind, without reading this project's simulator, scorer, exporter, tests or documentation, from public facts only (NVIDIA NVML/DCGM and dcgm-exporter documentation and behaviour, NVIDIA's Xid catalogue, published GPU fleet failure studies such as the Llama 3 paper, Meta's RSC clusters, NCSA Delta, Summit and Titan, and data-centre cooling and power-delivery engineering) plus readings of one real H100 kept in shared/fixtures. It exists only to EVALUATE the failure-prediction scorer on data its authors did not design. Never train, tune, calibrate or choose weights or thresholds on its output.

A "data hall" of GPU hosts (8 GPUs each, several models, air- and liquid-cooled rows) scraped
by Prometheus from dcgm-exporter every 10 minutes, with failures, degradations, facility events
and everyday operations. Stand-alone: numpy and the standard library, plus promtool.

Usage:
    python bench/hall_fleet.py --seed N --out DIR [--end EPOCH] [--days D] [--promtool PATH]

Outputs under DIR:
    prometheus/   a Prometheus TSDB (2 h blocks, `promtool tsdb create-blocks-from openmetrics`,
                  one OpenMetrics file per 2 h window, deleted after import). Series are shaped as
                  dcgm-exporter writes them with deploy/dcgm-exporter/gpu-health-counters.csv
                  (names, units, labels gpu/UUID/pci_bus_id/device/modelName/Hostname/
                  DCGM_FI_DRIVER_VERSION, plus job="dcgm-exporter" and instance="<host>:9400";
                  the XID gauge also carries err_code/err_msg). Every family is declared
                  `# TYPE <name> gauge` in the import file: TSDB blocks store no metric type, and
                  dcgm-exporter's counter names lack the `_total` suffix OpenMetrics wants.
    failures.csv  uuid,time,mode,precursor,precursor_start (one row per failed board).
    truth.json    summary counts, timings and "design_choices" (read those only after scoring).
"""  # noqa: E501

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass

import numpy as np

STEP = 600  # seconds between scrapes
BLOCK = 7200  # promtool's default (and only) block range
DEFAULT_END = 1796083200
PER_HOUR = 3600 // STEP
PER_DAY = 86400 // STEP

IDLE, TRAIN, INFER, TUNE, DEV, STRESS = 0, 1, 2, 3, 4, 5


@dataclass(frozen=True)
class Sku:
    key: str
    model: str
    tdp: float
    idle_lo: float  # W at idle clocks
    idle_hi: float  # W idle with clocks held high (context open / just after a job)
    fmax: int
    fidle: int
    mclk: int
    fb_total: int
    fb_res: int
    t_op: float  # software thermal slowdown target (GPU max operating temperature)
    t_slow: float  # hardware slowdown
    t_shut: float
    cooling: str  # "air" or "dlc"
    r_die: float  # C/W, die to heat-sink/cold-plate (thermal interface)
    r_sink: float  # C/W, heat-sink to air, or cold-plate convection for dlc
    off_gpu: float  # C above inlet/supply at zero power
    r_hbm: float
    off_hbm: float
    nvlink: bool
    nvl_scale: float
    fb_scale: float
    pcie_gen: int


SKUS = {
    "h100": Sku(
        "h100",
        "NVIDIA H100 80GB HBM3",
        700,
        72,
        128,
        1980,
        345,
        2619,
        81559,
        480,
        87,
        89,
        95,
        "air",
        0.020,
        0.034,
        9.1,
        0.0407,
        13.6,
        True,
        1.0,
        1.0,
        5,
    ),
    "a100": Sku(
        "a100",
        "NVIDIA A100-SXM4-80GB",
        400,
        56,
        88,
        1410,
        210,
        1593,
        81920,
        531,
        85,
        89,
        92,
        "air",
        0.030,
        0.050,
        7.0,
        0.065,
        11.0,
        True,
        0.67,
        1.0,
        4,
    ),
    "h200": Sku(
        "h200",
        "NVIDIA H200",
        700,
        78,
        135,
        1980,
        345,
        3201,
        143771,
        562,
        87,
        89,
        95,
        "dlc",
        0.011,
        0.017,
        3.0,
        0.024,
        5.0,
        True,
        1.0,
        1.76,
        5,
    ),
    "h100p": Sku(
        "h100p",
        "NVIDIA H100 PCIe",
        350,
        48,
        80,
        1755,
        345,
        1593,
        81559,
        480,
        85,
        88,
        93,
        "air",
        0.045,
        0.080,
        6.0,
        0.11,
        10.0,
        False,
        0.0,
        1.0,
        5,
    ),
}

# (row letter, sku, hosts, hosts per rack)
ROWS = (("a", "h100", 12, 2), ("b", "a100", 6, 2), ("c", "h200", 6, 3), ("d", "h100p", 2, 2))

BUS_HGX = ("18", "2A", "3A", "5D", "9A", "AB", "BA", "DB")
BUS_A100 = ("07", "0F", "47", "4E", "87", "90", "B7", "BD")
BUS_PCIE = ("1B", "1C", "3D", "3E", "9F", "A0", "C3", "C4")

DRIVERS = ("570.172.08", "580.95.05", "550.163.01")

XID_MSG = {
    0: "No Error",
    8: "GPU stopped processing",
    13: "Graphics Engine Exception",
    31: "GPU memory page fault",
    43: "GPU stopped processing",
    45: "Preemptive cleanup, due to previous errors",
    46: "GPU stopped processing",
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
}

MODES = ("hbm", "pcie", "nvlink", "thermal", "power", "other")

# Expected failures per mode for 208 slots over 45 days (scaled with slots x days). An
# accelerated fleet: real fleets see ~0.1-0.3 GPU-attributable events per GPU-year.
MODE_MEAN = {
    "power": 25.0,
    "thermal": 22.0,
    "hbm": 17.0,
    "pcie": 10.0,
    "nvlink": 9.0,
    "other": 13.0,
}

METRICS = (
    ("DCGM_FI_DEV_SM_CLOCK", "SM clock frequency (in MHz)."),
    ("DCGM_FI_DEV_MEM_CLOCK", "Memory clock frequency (in MHz)."),
    ("DCGM_FI_DEV_MEMORY_TEMP", "Memory temperature (in C)."),
    ("DCGM_FI_DEV_GPU_TEMP", "GPU temperature (in C)."),
    ("DCGM_FI_DEV_POWER_USAGE", "Power draw (in W)."),
    ("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", "Total energy consumption since boot (in mJ)."),
    ("DCGM_FI_DEV_PCIE_REPLAY_COUNTER", "Total number of PCIe retries."),
    ("DCGM_FI_DEV_GPU_UTIL", "GPU utilization (in %)."),
    ("DCGM_FI_DEV_MEM_COPY_UTIL", "Memory utilization (in %)."),
    ("DCGM_FI_DEV_ENC_UTIL", "Encoder utilization (in %)."),
    ("DCGM_FI_DEV_DEC_UTIL", "Decoder utilization (in %)."),
    ("DCGM_FI_DEV_XID_ERRORS", "Value of the last XID error encountered."),
    ("DCGM_FI_DEV_POWER_VIOLATION", "Throttling duration due to power constraints (in ns)."),
    ("DCGM_FI_DEV_THERMAL_VIOLATION", "Throttling duration due to thermal constraints (in ns)."),
    (
        "DCGM_FI_DEV_SYNC_BOOST_VIOLATION",
        "Throttling duration due to sync-boost constraints (in ns).",
    ),
    (
        "DCGM_FI_DEV_BOARD_LIMIT_VIOLATION",
        "Throttling duration due to board limit constraints (in ns).",
    ),
    ("DCGM_FI_DEV_LOW_UTIL_VIOLATION", "Throttling duration due to low utilization (in ns)."),
    (
        "DCGM_FI_DEV_RELIABILITY_VIOLATION",
        "Throttling duration due to reliability constraints (in ns).",
    ),
    (
        "DCGM_FI_DEV_CLOCK_THROTTLE_REASONS",
        "Current clock event (throttle) reasons as a bitmask of NVML reasons.",
    ),
    ("DCGM_FI_DEV_FB_FREE", "Framebuffer memory free (in MiB)."),
    ("DCGM_FI_DEV_FB_USED", "Framebuffer memory used (in MiB)."),
    ("DCGM_FI_DEV_FB_RESERVED", "Framebuffer memory reserved (in MiB)."),
    ("DCGM_FI_DEV_ECC_SBE_VOL_TOTAL", "Total number of single-bit volatile ECC errors."),
    ("DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", "Total number of double-bit volatile ECC errors."),
    ("DCGM_FI_DEV_ECC_SBE_AGG_TOTAL", "Total number of single-bit persistent ECC errors."),
    ("DCGM_FI_DEV_ECC_DBE_AGG_TOTAL", "Total number of double-bit persistent ECC errors."),
    (
        "DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL",
        "Total number of NVLink flow-control CRC errors.",
    ),
    ("DCGM_FI_DEV_NVLINK_CRC_DATA_ERROR_COUNT_TOTAL", "Total number of NVLink data CRC errors."),
    ("DCGM_FI_DEV_NVLINK_REPLAY_ERROR_COUNT_TOTAL", "Total number of NVLink retries."),
    ("DCGM_FI_DEV_NVLINK_RECOVERY_ERROR_COUNT_TOTAL", "Total number of NVLink recovery errors."),
    (
        "DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL",
        "Total number of NVLink bandwidth counters for all lanes.",
    ),
    ("DCGM_FI_DEV_VGPU_LICENSE_STATUS", "vGPU License status"),
    ("DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS", "Number of remapped rows for uncorrectable errors"),
    ("DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS", "Number of remapped rows for correctable errors"),
    ("DCGM_FI_DEV_ROW_REMAP_FAILURE", "Whether remapping of rows has failed"),
)


def lognorm(rng: np.random.Generator, median: float, sigma: float, lo: float, hi: float) -> float:
    return float(np.clip(median * math.exp(sigma * rng.standard_normal()), lo, hi))


def new_uuid(rng: np.random.Generator) -> str:
    h = rng.integers(0, 16, 32)
    s = "".join("0123456789abcdef"[int(x)] for x in h)
    return f"GPU-{s[:8]}-{s[8:12]}-{s[12:16]}-{s[16:20]}-{s[20:]}"


class Hall:
    """All state of one simulated data hall."""

    def __init__(self, seed: int, end: int, days: float) -> None:
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.T = max(12, round(days * 86400 / STEP))
        self.end = end - end % STEP
        self.start = self.end - self.T * STEP
        self.days = self.T * STEP / 86400
        self.ts = self.start + STEP * np.arange(self.T, dtype=np.int64)
        self.hour = ((self.ts % 86400) / 3600.0).astype(np.float64)
        self.build_fleet()

    # ------------------------------------------------------------------ fleet
    def build_fleet(self) -> None:
        rng = self.rng
        self.hosts: list[dict] = []
        self.racks: list[dict] = []
        for row, sku, nh, per_rack in ROWS:
            nr = math.ceil(nh / per_rack)
            for r in range(nr):
                rack = {
                    "row": row,
                    "idx": len(self.racks),
                    "name": f"{row}{r + 1:02d}",
                    "base": 23.0 + rng.normal(0, 0.9) + (1.8 if r == nr - 1 else 0.0),
                }
                self.racks.append(rack)
                for k in range(per_rack):
                    if r * per_rack + k >= nh:
                        break
                    self.hosts.append(
                        {
                            "idx": len(self.hosts),
                            "sku": sku,
                            "row": row,
                            "rack": rack["idx"],
                            "name": f"dh2-{row}{r + 1:02d}-n{k + 1}",
                            "offset": float(rng.uniform(0, STEP - 1)),
                            "hoff": float(rng.normal(0, 0.7)),
                        }
                    )
        H = len(self.hosts)
        self.H = H
        # per-host configured GPU power limit (rack budgets)
        for h in self.hosts:
            sk = SKUS[h["sku"]]
            lim = sk.tdp
            u = rng.random()
            if h["sku"] == "h100" and u < 0.17:
                lim = float(rng.choice([600.0, 650.0]))
            elif h["sku"] == "a100" and u < 0.34:
                lim = 350.0
            elif h["sku"] == "h200" and u < 0.17:
                lim = 650.0
            h["plimit"] = lim
        self.slots: list[dict] = []
        for h in self.hosts:
            bus = {"h100": BUS_HGX, "h200": BUS_HGX, "a100": BUS_A100, "h100p": BUS_PCIE}[h["sku"]]
            for g in range(8):
                self.slots.append(
                    {
                        "idx": len(self.slots),
                        "host": h["idx"],
                        "gi": g,
                        "bus": f"00000000:{bus[g]}:00.0",
                        "sku": h["sku"],
                    }
                )
        self.S = len(self.slots)
        self.slot_host = np.array([s["host"] for s in self.slots])
        self.slot_gi = np.array([s["gi"] for s in self.slots])
        sk = [SKUS[s["sku"]] for s in self.slots]
        self.sk = sk
        self.s_tdp = np.array([k.tdp for k in sk])
        self.s_nvl = np.array([k.nvlink for k in sk])
        self.s_dlc = np.array([k.cooling == "dlc" for k in sk])
        self.boards: list[dict] = []
        for s in self.slots:
            self.new_board(s["idx"], 0, original=True)

    def new_board(self, slot: int, install: int, original: bool) -> int:
        rng = self.rng
        sk = self.sk[slot]
        hbm = True
        b = {
            "idx": len(self.boards),
            "slot": slot,
            "uuid": new_uuid(rng),
            "install": install,
            "remove": self.T,
            "original": original,
            "q": float(np.clip(rng.normal(1.0, 0.035), 0.9, 1.1)),
            "leak": float(np.exp(rng.normal(0, 0.08))),
            "rdie": float(np.clip(rng.normal(1.0, 0.08), 0.8, 1.3)),
            "rsink": float(np.clip(rng.normal(1.0, 0.06), 0.85, 1.2)),
            "goff": float(rng.normal(0, 0.8)),
            "hoff": float(rng.normal(0, 1.3)),
            "fbias": float(rng.normal(0, 0.012)),
            "sbe": bool(hbm and rng.random() < 0.06),
            "pcien": bool(rng.random() < 0.08),
            "nvln": bool(sk.nvlink and rng.random() < 0.10),
            "rel": bool(rng.random() < 0.10),
        }
        old = original
        if old and rng.random() < 0.2:
            b["i_sbe"] = int(np.exp(rng.normal(math.log(30), 2.0)))
        elif not old and rng.random() < 0.1:
            b["i_sbe"] = int(rng.integers(1, 12))
        else:
            b["i_sbe"] = 0
        b["i_cor"] = int(rng.integers(1, 5)) if (old and rng.random() < 0.08) else 0
        b["i_unc"] = 1 if (old and rng.random() < 0.02) else 0
        self.boards.append(b)
        return b["idx"]

    # ------------------------------------------------------------------ time helpers
    def k_of(self, t: float) -> int:
        """First sample index at or after time t."""
        return math.ceil((t - self.start) / STEP)

    # ------------------------------------------------------------------ workload
    def schedule(self) -> None:
        rng = self.rng
        S, T = self.S, self.T
        self.kind = np.zeros((S, T), np.int8)
        self.jobid = np.full((S, T), -1, np.int32)
        self.kapm = np.ones((S, T), np.float32)
        self.fbj = np.zeros((S, T), np.float32)
        self.jobs: list[dict] = []
        parts = {
            "h100": dict(
                p=(0.55, 0.15, 0.30),
                nm=(2, 2, 3, 4, 4, 6, 8),
                kap=1.35,
                gap=(0.35, 2.0),
                task=(0.45, 0.2, 0.2, 0.15),
            ),
            "a100": dict(
                p=(0.25, 0.25, 0.50),
                nm=(2, 2, 3),
                kap=1.25,
                gap=(0.5, 5.0),
                task=(0.35, 0.25, 0.25, 0.15),
            ),
            "h200": dict(
                p=(0.60, 0.10, 0.30),
                nm=(2, 3, 4, 6),
                kap=1.35,
                gap=(0.3, 2.0),
                task=(0.6, 0.15, 0.15, 0.10),
            ),
            "h100p": dict(
                p=(0.0, 0.0, 1.0), nm=(1,), kap=1.0, gap=(0.2, 2.0), task=(0.65, 0.05, 0.2, 0.10)
            ),
        }
        t_begin = self.start - 5 * 86400
        for sku, par in parts.items():
            hosts = [h["idx"] for h in self.hosts if h["sku"] == sku]
            free = {h: t_begin + rng.uniform(0, 2 * 86400) for h in hosts}
            while min(free.values()) < self.end:
                u = rng.random()
                p = par["p"]
                if u < p[0]:
                    n = int(rng.choice(par["nm"]))
                    n = min(n, len(hosts))
                    typ = "multi"
                elif u < p[0] + p[1]:
                    n, typ = 1, "single"
                else:
                    n, typ = 1, "mixed"
                chosen = sorted(hosts, key=lambda x: free[x])[:n]
                js = max(free[x] for x in chosen) + rng.uniform(120, 1200)
                if typ == "mixed":
                    dur = lognorm(rng, 40 * 3600, 0.8, 4 * 3600, 12 * 86400)
                else:
                    dur = lognorm(rng, 30 * 3600, 0.9, 3 * 3600, 9 * 86400)
                je = js + dur
                if typ in ("multi", "single"):
                    j = self.add_job(
                        TRAIN,
                        kap=float(np.clip(rng.normal(par["kap"], 0.17), 0.85, 2.3)),
                        pcomm=float(rng.uniform(0.08, 0.30)),
                        pckpt=float(rng.uniform(0.02, 0.06)),
                    )
                    fbf = rng.uniform(0.70, 0.95)
                    hot = rng.random() < 0.3
                    for x in chosen:
                        slots = range(8 * x, 8 * x + 8)
                        mult = rng.normal(1.0, 0.03, 8)
                        if hot:
                            mult[int(rng.integers(0, 8))] *= 1.08
                        for g, s in enumerate(slots):
                            self.fill(s, js, je, TRAIN, j, float(mult[g]), fbf)
                else:
                    self.fill_mixed(chosen[0], js, je, par["task"])
                for x in chosen:
                    gap = 0.0
                    if rng.random() < par["gap"][0]:
                        gap = lognorm(rng, par["gap"][1] * 3600, 1.0, 600, 3 * 86400)
                    free[x] = je + gap

    def add_job(
        self,
        kind: int,
        kap: float,
        pcomm: float = 0.0,
        pckpt: float = 0.0,
        base: float = 0.0,
        peak: float = 0.0,
        dec: float = 0.0,
    ) -> int:
        self.jobs.append(
            {
                "kind": kind,
                "kap": kap,
                "pcomm": pcomm,
                "pckpt": pckpt,
                "base": base,
                "peak": peak,
                "dec": dec,
            }
        )
        return len(self.jobs) - 1

    def fill(
        self, s: int, js: float, je: float, kind: int, j: int, mult: float, fbf: float
    ) -> None:
        i0 = max(0, self.k_of(js))
        i1 = min(self.T, self.k_of(je))
        if i1 <= i0:
            return
        sk = self.sk[s]
        self.kind[s, i0:i1] = kind
        self.jobid[s, i0:i1] = j
        self.kapm[s, i0:i1] = mult
        self.fbj[s, i0:i1] = fbf * (sk.fb_total - sk.fb_res) * self.rng.uniform(0.985, 1.0)

    def fill_mixed(self, host: int, js: float, je: float, w: tuple) -> None:
        rng = self.rng
        layouts = ((4, 2, 1, 1), (2, 2, 2, 2), (4, 4), (1,) * 8, (8,), (2, 2, 4), (1, 1, 2, 4))
        lay = layouts[int(rng.integers(0, len(layouts)))]
        g0 = 0
        pcie = self.hosts[host]["sku"] == "h100p"
        for size in lay:
            slots = list(range(8 * host + g0, 8 * host + g0 + size))
            g0 += size
            t = js + rng.uniform(0, 1800)
            while t < je:
                u = rng.random()
                if u < w[0]:
                    dur = lognorm(rng, 20 * 3600, 0.7, 2 * 3600, 10 * 86400)
                    j = self.add_job(
                        INFER,
                        kap=float(np.clip(rng.normal(0.85, 0.2), 0.4, 1.4)),
                        base=float(rng.uniform(0.35, 0.95)),
                        peak=float(rng.uniform(13, 21)),
                        dec=float(rng.uniform(10, 60)) if (pcie and rng.random() < 0.15) else 0.0,
                    )
                    kind, fbf = INFER, rng.uniform(0.4, 0.93)
                elif u < w[0] + w[1]:
                    dur = lognorm(rng, 5 * 3600, 0.8, 1800, 2 * 86400)
                    j = self.add_job(
                        TUNE,
                        kap=float(rng.uniform(0.8, 1.3)),
                        pcomm=float(rng.uniform(0.1, 0.25)),
                        pckpt=float(rng.uniform(0.03, 0.08)),
                    )
                    kind, fbf = TUNE, rng.uniform(0.35, 0.9)
                elif u < w[0] + w[1] + w[2]:
                    dur = lognorm(rng, 3 * 3600, 0.9, 1200, 86400)
                    j = self.add_job(DEV, kap=float(rng.uniform(0.4, 1.0)))
                    kind, fbf = DEV, rng.uniform(0.03, 0.5)
                else:
                    dur = lognorm(rng, 2 * 3600, 1.0, 600, 86400)
                    t += dur
                    continue
                for s in slots:
                    self.fill(s, t, min(t + dur, je), kind, j, float(rng.normal(1.0, 0.02)), fbf)
                t += dur + rng.uniform(60, 900)

    # ------------------------------------------------------------------ facility
    def facility(self) -> None:
        """Inlet air / coolant supply temperatures, power-limit and PSU events."""
        rng = self.rng
        T, H, S = self.T, self.H, self.S
        tt = np.arange(T)
        # weather: smooth random walk shared by the hall (economiser), +-1.5 C
        w = np.cumsum(rng.normal(0, 0.05, T))
        k = np.ones(min(PER_DAY, T)) / min(PER_DAY, T)
        w = np.convolve(w - w.mean(), k, mode="same")
        w = 1.5 * w / max(1e-6, np.abs(w).max())
        diurnal = 0.6 * np.cos(2 * np.pi * (self.hour - 15.0) / 24.0)
        nr = len(self.racks)
        inlet_r = np.zeros((nr, T))
        for r in self.racks:
            inlet_r[r["idx"]] = r["base"] + w + diurnal + rng.normal(0, 0.15, T)
        self.events: list[dict] = []
        scale = self.days / 45.0
        # CRAH / cooling-unit trips in air rows
        for _ in range(rng.poisson(1.6 * scale) + (1 if scale >= 0.5 else 0)):
            row = str(rng.choice(["a", "a", "b", "d"]))
            k0 = int(rng.integers(0, T))
            dur = int(lognorm(rng, 3 * PER_HOUR, 0.6, PER_HOUR, 10 * PER_HOUR))
            amp = rng.uniform(5.0, 9.5)
            prof = amp * np.clip(np.minimum(tt - k0 + 1, k0 + dur - tt) / 2.0, 0, 1)
            for r in self.racks:
                if r["row"] == row:
                    inlet_r[r["idx"]] += prof * rng.uniform(0.7, 1.0)
            self.events.append({"type": "crah_trip", "row": row, "k": k0, "dur": dur})
        # liquid loop: one CDU for row c
        sup = 28.0 + np.convolve(rng.normal(0, 0.25, T), np.ones(3) / 3, mode="same")
        sup += 0.2 * np.cos(2 * np.pi * (self.hour - 15.0) / 24.0)
        if rng.random() < 0.7 * min(1.0, scale * 2):
            k0 = int(rng.integers(0, T))
            dur = int(lognorm(rng, 2 * PER_HOUR, 0.6, PER_HOUR, 8 * PER_HOUR))
            amp = rng.uniform(4.0, 8.0)
            sup += amp * np.clip(np.minimum(tt - k0 + 1, k0 + dur - tt) / 2.0, 0, 1)
            self.events.append({"type": "cdu_excursion", "k": k0, "dur": dur})
        if rng.random() < 0.5 * min(1.0, scale * 2):
            # pump wear: supply creeps up under load for days, then the pump is serviced
            k0 = int(rng.integers(0, max(1, T - 4 * PER_DAY)))
            k1 = min(T, k0 + int(rng.uniform(6, 20) * PER_DAY))
            ramp = np.clip((tt - k0) / max(1, k1 - k0), 0, 1) * (tt < k1)
            sup += rng.uniform(1.5, 3.0) * ramp
            self.events.append({"type": "cdu_pump_wear", "k": k0, "k_fixed": k1})
        self.supply = sup
        # slot inlet (air) / supply (dlc) with position effects
        inlet = np.zeros((S, T))
        for s in self.slots:
            h = self.hosts[s["host"]]
            g = s["gi"]
            if self.sk[s["idx"]].cooling == "dlc":
                inlet[s["idx"]] = sup + 0.3 * h["hoff"]
            else:
                pos = 0.0
                if h["sku"] in ("h100", "a100"):
                    pos = (3.5 + rng.normal(0, 0.5)) if g >= 4 else rng.normal(0, 0.4)
                else:
                    pos = (1.0, 2.5, 4.0, 5.0, 5.0, 4.0, 2.5, 1.0)[g] + rng.normal(0, 0.4)
                inlet[s["idx"]] = inlet_r[h["rack"]] + h["hoff"] + pos
        self.inlet = inlet
        self.sink_add = np.zeros((S, T), np.float32)  # fan-path / airflow resistance increase
        # benign fan-module failures: two neighbouring GPUs run hot until the fan is swapped
        air_hosts = [h["idx"] for h in self.hosts if SKUS[h["sku"]].cooling == "air"]
        for _ in range(rng.poisson(2.0 * scale)):
            h = int(rng.choice(air_hosts))
            g = int(rng.integers(0, 4))
            k0 = int(rng.integers(0, T))
            dur = int(lognorm(rng, 14 * PER_HOUR, 0.8, 3 * PER_HOUR, 3 * PER_DAY))
            amp = rng.uniform(0.35, 0.8)
            for gg in (g, g + 4):
                self.sink_add[8 * h + gg, k0 : k0 + dur] += amp * rng.uniform(0.8, 1.0)
            self.events.append(
                {"type": "fan_module", "host": self.hosts[h]["name"], "k": k0, "dur": dur}
            )
        # power limit per slot-time
        lim = np.array([self.hosts[h]["plimit"] for h in self.slot_host], np.float64)
        self.plim = np.repeat(lim[:, None], T, axis=1)
        # facility power capping (demand response) on a row
        for _ in range(rng.poisson(1.3 * scale)):
            row = str(rng.choice(["a", "c", "b"]))
            k0 = int(rng.integers(0, T))
            dur = int(lognorm(rng, 6 * PER_HOUR, 0.5, 2 * PER_HOUR, 14 * PER_HOUR))
            frac = rng.uniform(0.7, 0.82)
            for s in self.slots:
                if self.hosts[s["host"]]["row"] == row:
                    seg = self.plim[s["idx"], k0 : k0 + dur]
                    self.plim[s["idx"], k0 : k0 + dur] = np.minimum(
                        seg, frac * self.s_tdp[s["idx"]]
                    )
            self.events.append({"type": "demand_response_cap", "row": row, "k": k0, "dur": dur})
        # PSU failures on hosts: redundancy lost -> power brake at load, or a BMC node cap
        self.brake = np.zeros((H, T), bool)
        for _ in range(rng.poisson(3.0 * scale)):
            h = int(rng.integers(0, H))
            k0 = int(rng.integers(0, T))
            dur = int(lognorm(rng, 20 * PER_HOUR, 0.8, 4 * PER_HOUR, 4 * PER_DAY))
            if rng.random() < 0.5:
                self.brake[h, k0 : k0 + dur] = True
                typ = "psu_loss_power_brake"
            else:
                cap = rng.uniform(0.6, 0.8)
                for s in range(8 * h, 8 * h + 8):
                    seg = self.plim[s, k0 : k0 + dur]
                    self.plim[s, k0 : k0 + dur] = np.minimum(seg, cap * self.s_tdp[s])
                typ = "psu_loss_bmc_cap"
            self.events.append({"type": typ, "host": self.hosts[h]["name"], "k": k0, "dur": dur})
        # marginal PSU rail on a PCIe host: occasional dips on all eight cards (benign)
        self.host_dip = np.zeros(H)
        for h in self.hosts:
            if h["sku"] == "h100p" and rng.random() < 0.5:
                self.host_dip[h["idx"]] = rng.uniform(0.004, 0.015)

    # ------------------------------------------------------------------ host operations
    def operations(self) -> None:
        rng = self.rng
        H, T, S = self.H, self.T, self.S
        scale = self.days / 45.0
        self.down = np.zeros((H, T), bool)
        self.boot = np.zeros((H, T), bool)
        self.exp_restart = np.zeros((H, T), bool)
        self.gap = np.zeros((H, T), bool)
        self.drain_h = np.zeros((H, T), bool)
        self.drain_s = np.zeros((S, T), bool)
        self.stress = np.zeros((S, T), bool)
        self.gpu_reset = np.zeros((S, T), bool)
        self.drv = np.zeros((H, T), np.int8)
        self.uptime0 = rng.uniform(1, 60, H) * 86400
        for h in self.hosts:
            if h["sku"] == "a100":
                self.drv[h["idx"]] = 2
        # rolling driver upgrade of the Hopper rows, in batches, with drain + reboot
        hop = [h["idx"] for h in self.hosts if h["sku"] != "a100"]
        rng.shuffle(hop)
        u0 = int(T * rng.uniform(0.38, 0.5))
        for n, h in enumerate(hop):
            k = u0 + int((n // 3) * rng.uniform(0.3, 0.7) * PER_DAY) + int(rng.integers(0, 60))
            if k >= T - 2:
                continue
            pre = int(rng.integers(PER_HOUR, 3 * PER_HOUR))
            self.drain_h[h, max(0, k - pre) : k] = True
            dur = int(rng.integers(2, 5))
            self.mark_down(h, k, dur)
            self.drv[h, k:] = 1
        # routine reboots (kernel patches, hangs)
        for h in range(H):
            for _ in range(rng.poisson(0.6 * scale)):
                k = int(rng.integers(1, T - 1))
                self.mark_down(h, k, int(rng.integers(0, 4)))
        # a rack loses power (breaker trip)
        if rng.random() < 0.7 * min(1.0, scale * 2):
            r = int(rng.integers(0, len(self.racks)))
            k = int(rng.integers(1, T - 1))
            dur = int(lognorm(rng, 2 * PER_HOUR, 0.5, 4, 8 * PER_HOUR))
            for h in self.hosts:
                if h["rack"] == r:
                    self.mark_down(h["idx"], k, dur)
            self.events.append(
                {"type": "rack_power_loss", "rack": self.racks[r]["name"], "k": k, "dur": dur}
            )
        # exporter restarts (pod restarts, OOM kills): XID gauge resets, sometimes a missed scrape
        for h in range(H):
            for _ in range(rng.poisson(2.0 * scale)):
                k = int(rng.integers(1, T))
                self.exp_restart[h, k] = True
                if rng.random() < 0.3:
                    self.gap[h, k] = True
        # exporter hangs (metrics vanish until restart)
        for h in range(H):
            if rng.random() < 0.15 * min(1.0, scale * 2):
                k = int(rng.integers(1, T))
                dur = int(lognorm(rng, 4 * PER_HOUR, 0.7, PER_HOUR, 14 * PER_HOUR))
                self.gap[h, k : k + dur] = True
                if k + dur < T:
                    self.exp_restart[h, k + dur] = True
        # random missed scrapes and short network gaps
        self.gap |= rng.random((H, T)) < 0.002
        for h in range(H):
            for _ in range(rng.poisson(1.5 * scale)):
                k = int(rng.integers(0, T))
                self.gap[h, k : k + int(rng.integers(2, 12))] = True
        # Prometheus itself down: hall-wide hole
        if rng.random() < 0.8 * min(1.0, scale * 2):
            k = int(rng.integers(0, T))
            dur = int(rng.integers(6, 19))
            self.gap[:, k : k + dur] = True
            self.events.append({"type": "prometheus_outage", "k": k, "dur": dur})

    def mark_down(self, h: int, k: int, dur: int) -> None:
        """Host down for `dur` samples from k (0 = a quick reboot between scrapes)."""
        if k >= self.T:
            return
        self.down[h, k : k + dur] = True
        kb = k + dur
        if kb < self.T:
            self.boot[h, kb] = True
            self.exp_restart[h, kb] = True

    # ------------------------------------------------------------------ failures
    def plan_failures(self) -> None:
        rng = self.rng
        S = self.S
        scale = (S * self.days) / (208 * 45.0)
        while True:
            counts = {m: int(rng.poisson(MODE_MEAN[m] * scale)) for m in MODES}
            tot = sum(counts.values())
            if tot == 0 or (counts["power"] + counts["thermal"]) >= 0.45 * tot:
                break
        # slot weights per mode
        sku = np.array([s["sku"] for s in self.slots])
        w_pow = np.where(np.isin(sku, ["h100", "h200"]), 1.5, np.where(sku == "a100", 0.8, 1.2))
        lemon = int(rng.choice([h["idx"] for h in self.hosts if h["sku"] == "h100"]))
        self.lemon_host = lemon
        w_pow = w_pow * np.where(self.slot_host == lemon, 5.0, 1.0)
        hot = self.inlet.mean(axis=1)
        w_th = np.exp((hot - hot.mean()) / 2.5) * np.where(sku == "a100", 1.4, 1.0)
        w_th = w_th * np.where(sku == "h100p", 1.3, 1.0)
        sbe = np.array([self.boards[s]["sbe"] for s in range(S)])
        w_hbm = np.where(sku == "a100", 0.7, 1.5) * np.where(sbe, 3.0, 1.0)
        riser = rng.random(self.H) < 0.15
        w_pcie = np.where(riser[self.slot_host], 3.0, 1.0)
        w_nvl = np.where(self.s_nvl, 1.0, 0.0)
        w_oth = np.ones(S)
        weights = {
            "power": w_pow,
            "thermal": w_th,
            "hbm": w_hbm,
            "pcie": w_pcie,
            "nvlink": w_nvl,
            "other": w_oth,
        }
        used = np.zeros(S, bool)
        plan = []
        order = sorted(MODES, key=lambda m: -counts[m])
        for m in order:
            for _ in range(counts[m]):
                w = weights[m] * ~used
                if w.sum() <= 0:
                    break
                s = int(rng.choice(S, p=w / w.sum()))
                used[s] = True
                tf = self.start + rng.uniform(
                    0.4 * 86400 if self.days > 2 else 3600, self.T * STEP - 1200
                )
                plan.append(self.make_failure(m, s, tf))
        self.failures: list[dict] = []
        self.repairs: list[tuple] = []
        plan.sort(key=lambda f: f["tf"])
        queue = plan
        while queue:
            f = queue.pop(0)
            extra = self.apply_failure(f)
            if extra is not None:
                queue.append(extra)
                queue.sort(key=lambda x: x["tf"])

    def make_failure(self, mode: str, s: int, tf: float, infant: bool = False) -> dict:
        rng = self.rng
        sk = self.sk[s]
        f = {
            "mode": mode,
            "slot": s,
            "tf": tf,
            "infant": infant,
            "sub": "",
            "pre": False,
            "lead": 0.0,
        }
        if infant:
            f["sub"] = "infant"
            return f
        u = rng.random()
        if mode == "thermal":
            if sk.cooling == "dlc":
                f["sub"] = "plate" if u < 0.75 else ("sensor" if u < 0.85 else "tsudden")
            else:
                f["sub"] = (
                    "tim" if u < 0.5 else "fan" if u < 0.75 else "sensor" if u < 0.85 else "tsudden"
                )
            f["pre"] = f["sub"] != "tsudden"
            med = {"tim": 12, "plate": 9, "fan": 3, "sensor": 4}.get(f["sub"], 1)
            f["lead"] = lognorm(rng, med * 86400, 0.7, 1.5 * 86400, 60 * 86400)
        elif mode == "power":
            f["sub"] = "vrm" if u < 0.45 else ("input" if u < 0.70 else "psudden")
            f["pre"] = f["sub"] != "psudden"
            med = 6 if f["sub"] == "vrm" else 3
            f["lead"] = lognorm(rng, med * 86400, 0.9, 12 * 3600, 40 * 86400)
        elif mode == "hbm":
            f["sub"] = "hbm"
            f["pre"] = u < 0.5
            f["lead"] = lognorm(rng, 2.5 * 86400, 1.3, 3600, 30 * 86400)
        elif mode == "pcie":
            f["sub"] = "pcie"
            f["pre"] = u < 0.3
            f["lead"] = lognorm(rng, 18 * 3600, 1.2, 1800, 10 * 86400)
        elif mode == "nvlink":
            f["sub"] = "nvlink"
            f["pre"] = u < 0.5
            f["lead"] = lognorm(rng, 1.5 * 86400, 1.0, 3600, 15 * 86400)
        else:
            f["sub"] = "gsp" if u < 0.3 else "hang" if u < 0.6 else "sram" if u < 0.8 else "sdc"
            p = {"gsp": 0.2, "hang": 0.1, "sram": 0.25, "sdc": 0.0}[f["sub"]]
            f["pre"] = rng.random() < p
            f["lead"] = lognorm(rng, 1.5 * 86400, 1.0, 3600, 10 * 86400)
        return f

    def board_at(self, s: int, k: int) -> int:
        for b in reversed(self.slot_boards(s)):
            if self.boards[b]["install"] <= k < self.boards[b]["remove"]:
                return b
        return -1

    def slot_boards(self, s: int) -> list[int]:
        return [b["idx"] for b in self.boards if b["slot"] == s]

    def apply_failure(self, f: dict) -> dict | None:
        rng = self.rng
        T = self.T
        s = f["slot"]
        h = int(self.slot_host[s])
        off = self.hosts[h]["offset"]
        k = max(1, self.k_of(f["tf"] - off))
        while k < T and self.down[h, k]:
            k += 1
        if k >= T:
            return None
        b = self.board_at(s, k)
        if b < 0:
            return None
        f["tf"] = max(f["tf"], float(self.ts[k - 1]) + off + 1.0)
        f["tf"] = min(f["tf"], float(self.ts[k]) + off)
        f["k"] = k
        f["board"] = b
        f["uuid"] = self.boards[b]["uuid"]
        self.failures.append(f)
        # the job on the failed GPU crashes; everything sharing its job restarts after a gap
        j = int(self.jobid[s, k]) if self.jobid[s, k] >= 0 else -1
        if j >= 0:
            same = np.nonzero(self.jobid[:, k] == j)[0]
            g = int(rng.integers(2, 10))
            for x in same:
                self.drain_s[x, k : k + g] = True
        # repair: drain, take the host down, swap the board
        km = k + int(lognorm(rng, 18 * PER_HOUR, 0.9, 6, 6 * PER_DAY))
        self.drain_s[s, k:km] = True
        if rng.random() < (0.6 if self.sk[s].nvlink else 0.3):
            self.drain_h[h, min(T, k + int(rng.integers(1, 7))) : km] = True
        self.boards[b]["remove"] = min(T, km)
        f["k_removed"] = min(T, km)
        if km >= T:
            return None
        dur = int(lognorm(rng, 3 * PER_HOUR, 0.5, 3, 48))
        self.mark_down(h, km, dur)
        kr = km + dur
        if kr >= T:
            return None
        if rng.random() < 0.8:
            nb = self.new_board(s, kr, original=False)
        else:
            # no spare on site: the host runs without this GPU until a second visit
            k2 = kr + int(lognorm(rng, 4 * PER_DAY, 0.6, PER_DAY, 12 * PER_DAY))
            if k2 >= T:
                return None
            d2 = int(lognorm(rng, 2 * PER_HOUR, 0.5, 3, 24))
            self.mark_down(h, k2, d2)
            kr = k2 + d2
            if kr >= T:
                return None
            nb = self.new_board(s, kr, original=False)
        if rng.random() < 0.7:
            self.stress[8 * h : 8 * h + 8, kr : kr + int(rng.integers(3, 7))] = True
        if rng.random() < 0.06:
            tf2 = self.start + (kr + lognorm(rng, 4 * PER_DAY, 0.8, 3, 30 * PER_DAY)) * STEP
            if tf2 < self.end - STEP:
                m2 = str(rng.choice(["pcie", "other", "power", "hbm"]))
                f2 = self.make_failure(m2, s, tf2, infant=True)
                f2["board_hint"] = nb
                return f2
        return None

    # ------------------------------------------------------------------ degradation arrays
    def degradations(self) -> None:
        """Per slot-time effect arrays for failures, benign drifts and censored degradations."""
        rng = self.rng
        S, T = self.S, self.T
        z = np.zeros((S, T), np.float32)
        self.tim = z.copy()  # fractional increase of the die-side thermal resistance
        self.foul = z.copy()  # cold-plate fouling: convection resistance increase
        self.flow = np.ones((S, T), np.float32)  # loop flow fraction (dlc pairs in series)
        self.vrm = z.copy()  # fractional conversion loss added by a degrading VRM
        self.vrm_idle = z.copy()  # W added at idle by VRM degradation
        self.vrm_noise = z.copy()  # W sd of power regulation noise under load
        self.hwslow_p = z.copy()  # probability of a HW slowdown in a loaded sample
        self.dip_p = z.copy()  # probability of an input brown-out dip in a loaded sample
        self.glitch_p = z.copy()  # temperature sensor glitch probability
        self.ev_sbe = np.zeros((S, T), np.int64)
        self.ev_dbe = np.zeros((S, T), np.int64)
        self.ev_cor = np.zeros((S, T), np.int64)
        self.ev_unc = np.zeros((S, T), np.int64)
        self.ev_rfail = np.zeros((S, T), np.int64)
        self.ev_pcie = np.zeros((S, T), np.int64)
        self.ev_flit = np.zeros((S, T), np.int64)
        self.ev_data = np.zeros((S, T), np.int64)
        self.ev_replay = np.zeros((S, T), np.int64)
        self.ev_recov = np.zeros((S, T), np.int64)
        self.offbus = np.zeros((S, T), bool)
        self.xid_ev: list[tuple[int, int, int]] = []
        self.pre_events: dict[int, int] = {}
        tt = np.arange(T)
        for n, f in enumerate(self.failures):
            s, k = f["slot"], f["k"]
            b = self.boards[f["board"]]
            kend = b["remove"]
            k0 = max(b["install"], self.k_of(f["tf"] - f["lead"])) if f["pre"] else k
            f["k0"] = k0
            sub = f["sub"]
            span = max(1, k - self.k_of(f["tf"] - f["lead"]))
            ramp = np.clip((tt - (k - span)) / span, 0, 1)
            live = (tt >= b["install"]) & (tt < kend)
            if sub in ("tim", "fan", "plate", "sensor", "vrm", "input"):
                g = rng.uniform(1.3, 2.4)
                sv = np.where(live, np.where(tt < k, ramp**g, 1.0), 0.0)
            else:
                sv = np.zeros(T)
            if sub == "tim":
                amp = max(0.6, self.tim_needed(s) * rng.uniform(1.05, 1.4))
                self.tim[s] += (amp * sv).astype(np.float32)
            elif sub == "fan":
                nst = int(rng.integers(2, 5))
                cuts = np.sort(rng.uniform(0, 1, nst))
                amp = max(0.3, self.fan_needed(s) * rng.uniform(1.05, 1.4))
                stepv = np.zeros(T)
                for c in cuts:
                    stepv += (ramp >= c) * (amp / nst)
                stepv = np.where(live, np.where(tt < k, stepv, amp), 0.0)
                partner = s + 4 if self.slot_gi[s] < 4 else s - 4
                self.sink_add[s] += stepv.astype(np.float32)
                self.sink_add[partner, :kend] += 0.7 * stepv[:kend].astype(np.float32)
            elif sub == "plate":
                amp = max(1.0, self.plate_needed(s) * rng.uniform(1.05, 1.4))
                self.foul[s] += (amp * sv).astype(np.float32)
                pair = s - 1 if self.slot_gi[s] % 2 else s
                loss = rng.uniform(0.35, 0.6) * sv
                self.flow[pair] = np.minimum(self.flow[pair], 1 - loss)
                self.flow[pair + 1] = np.minimum(self.flow[pair + 1], 1 - loss)
            elif sub == "sensor":
                self.glitch_p[s] += (0.003 + 0.3 * sv**2) * (sv > 0)
            elif sub == "vrm":
                d = rng.uniform(0.05, 0.11)
                self.vrm[s] += (d * sv).astype(np.float32)
                self.vrm_idle[s] += (rng.uniform(3, 9) * self.s_tdp[s] / 700 * sv).astype(
                    np.float32
                )
                self.vrm_noise[s] += (rng.uniform(15, 35) * self.s_tdp[s] / 700 * sv**2).astype(
                    np.float32
                )
                self.hwslow_p[s] += (0.15 * (sv > 0.8)).astype(np.float32)
            elif sub == "input":
                self.dip_p[s] += ((0.004 + 0.3 * sv**1.5) * (sv > 0)).astype(np.float32)
                self.vrm_noise[s] += (4 * sv * self.s_tdp[s] / 700).astype(np.float32)
            if f["pre"] and sub in ("hbm", "pcie", "nvlink", "gsp", "hang", "sram"):
                self.counter_precursor(n, f, k0, k)
            self.terminal(f)
        self.benign_degradations()

    def tim_needed(self, s: int) -> float:
        sk = self.sk[s]
        b = self.boards[s]
        p = 0.93 * self.plim[s].mean()
        base = self.inlet[s].mean() + sk.off_gpu + (sk.r_die * b["rdie"] + sk.r_sink) * p
        return max(0.0, (sk.t_op + 3 - base) / (sk.r_die * b["rdie"] * p))

    def fan_needed(self, s: int) -> float:
        sk = self.sk[s]
        b = self.boards[s]
        p = 0.93 * self.plim[s].mean()
        base = self.inlet[s].mean() + sk.off_gpu + (sk.r_die * b["rdie"] + sk.r_sink) * p
        return max(0.0, (sk.t_op + 3 - base) / (sk.r_sink * b["rsink"] * p))

    def plate_needed(self, s: int) -> float:
        sk = self.sk[s]
        p = 0.93 * self.plim[s].mean()
        base = self.supply.mean() + sk.off_gpu + (sk.r_die + sk.r_sink) * p + 7.4 * p / 700
        return max(0.0, ((sk.t_op + 3 - base) / (sk.r_sink * p) + 1) / 1.5 - 1)

    def counter_precursor(self, n: int, f: dict, k0: int, k: int) -> None:
        rng = self.rng
        s = f["slot"]
        sub = f["sub"]
        k0 = max(0, min(k0, k - 1))
        span = max(1, k - k0)
        first = k
        if sub == "hbm":
            nb = 1 + int(rng.poisson(min(12, 1.5 * span / PER_DAY)))
            ks = np.sort(k0 + (rng.random(nb) ** 0.6 * span).astype(int))
            ks[0] = k0
            for i, kk in enumerate(ks):
                size = int(np.exp(rng.normal(math.log(40) + 1.5 * i / nb, 1.5))) + 1
                self.ev_sbe[s, kk] += size
                if rng.random() < 0.5:
                    self.ev_cor[s, kk] += 1
                    self.xid_ev.append((s, int(kk), 63))
                if size > 2000:
                    self.xid_ev.append((s, int(kk), 92))
            if rng.random() < 0.3:
                kk = int(rng.integers(k0, k))
                self.ev_dbe[s, kk] += 1
                self.ev_unc[s, kk] += 1
                self.xid_ev.append((s, kk, 94))
            first = int(ks[0])
        elif sub == "pcie":
            x = np.arange(span)
            rate = 2.0 * np.exp(np.log(1000.0) * x / span)
            self.ev_pcie[s, k0:k] += rng.poisson(rate * rng.lognormal(0, 0.6, span))
            first = k0
        elif sub == "nvlink":
            x = np.arange(span)
            rate = 50.0 * np.exp(np.log(600.0) * x / span)
            flit = rng.poisson(rate * rng.lognormal(0, 0.8, span))
            self.ev_flit[s, k0:k] += flit
            self.ev_data[s, k0:k] += rng.poisson(0.05 * flit)
            self.ev_replay[s, k0:k] += rng.poisson(0.2 * flit)
            self.ev_recov[s, k0:k] += rng.poisson(0.02 + 1.5 * (x / span) ** 3)
            first = k0
        elif sub == "gsp":
            nb = int(rng.integers(1, 4))
            ks = np.sort(rng.integers(k0, k, nb))
            for kk in ks:
                self.xid_ev.append((s, int(kk), 119))
                self.gpu_reset[s, kk] = True
            first = int(ks[0])
        elif sub == "hang":
            ks = np.sort(rng.integers(k0, k, int(rng.integers(1, 3))))
            for kk in ks:
                self.xid_ev.append((s, int(kk), 8))
            first = int(ks[0])
        elif sub == "sram":
            ks = np.sort(rng.integers(k0, k, int(rng.integers(1, 4))))
            for kk in ks:
                self.ev_sbe[s, kk] += int(rng.integers(1, 6))
            first = int(ks[0])
        self.pre_events[n] = first

    def terminal(self, f: dict) -> None:
        """Terminal signals at the failure sample."""
        rng = self.rng
        s, k, sub = f["slot"], f["k"], f["sub"]
        h = int(self.slot_host[s])
        kend = f["k_removed"]
        off = False
        code = 0
        if sub in ("tim", "fan", "plate", "tsudden"):
            u = rng.random()
            code = 79 if u < 0.55 else (62 if u < 0.8 else 0)
            off = code == 79
        elif sub == "sensor":
            code = 79 if rng.random() < 0.5 else 0
            off = code == 79
        elif sub in ("vrm", "input", "psudden"):
            u = rng.random()
            code = 79 if u < 0.6 else (62 if u < 0.8 else 119)
            off = code == 79
        elif sub == "hbm":
            self.ev_sbe[s, k] += int(rng.integers(1, 400))
            nd = int(rng.integers(1, 4))
            self.ev_dbe[s, k] += nd
            self.ev_unc[s, k] += int(rng.integers(1, 3))
            self.xid_ev.append((s, k, 48))
            u = rng.random()
            if u < 0.35:
                self.ev_rfail[s, k] = 1
                code = 64
            else:
                code = 95 if u < 0.8 else 94
            # other processes of the same job see a preemptive cleanup
            j = self.jobid[s, k]
            if j >= 0:
                for x in np.nonzero(self.jobid[8 * h : 8 * h + 8, k] == j)[0]:
                    if 8 * h + x != s and rng.random() < 0.7:
                        self.xid_ev.append((8 * h + int(x), k, 45))
        elif sub == "pcie":
            code, off = 79, True
        elif sub == "nvlink":
            code = 74
            self.ev_recov[s, k] += int(rng.integers(1, 4))
            self.ev_flit[s, k] += int(rng.integers(0, 5000))
            peers = [x for x in range(8 * h, 8 * h + 8) if x != s]
            for x in rng.choice(peers, int(rng.integers(1, 3)), replace=False):
                self.xid_ev.append((int(x), k, 74))
                self.ev_recov[int(x), k] += 1
        elif sub == "gsp":
            code = 119 if rng.random() < 0.6 else 120
        elif sub == "hang":
            code = int(rng.choice([109, 46, 62]))
        elif sub == "sram":
            self.ev_dbe[s, k] += 1
            code = 48
        elif sub == "sdc":
            code = 0
        elif sub == "infant":
            m = f["mode"]
            code = {"pcie": 79, "power": 79, "hbm": 95, "other": 119}[m]
            off = code == 79
            if m == "hbm":
                self.ev_dbe[s, k] += 1
                self.ev_unc[s, k] += 1
                self.xid_ev.append((s, k, 48))
        if code:
            self.xid_ev.append((s, k, code))
        f["xid"] = code
        if off:
            self.offbus[s, k:kend] = True
        f["offbus"] = off

    def benign_degradations(self) -> None:
        """Drifts that never end in a failure inside the window, and censored ones."""
        rng = self.rng
        S, T = self.S, self.T
        scale = self.days / 45.0
        failed = {f["slot"] for f in self.failures}
        tt = np.arange(T)
        healthy = [s for s in range(S) if s not in failed]
        self.benign: dict[str, int] = {}

        def pick(pred) -> int:
            c = [s for s in healthy if pred(s)]
            return int(rng.choice(c)) if c else -1

        # thermal interface drift that plateaus, sometimes fixed by a re-seat at a reboot
        for _ in range(rng.poisson(6 * scale)):
            s = pick(lambda x: self.sk[x].cooling == "air")
            if s < 0:
                continue
            k0 = int(rng.integers(-10 * PER_DAY, T))
            L = lognorm(rng, 8 * PER_DAY, 0.6, PER_DAY, 30 * PER_DAY)
            amp = rng.uniform(0.4, 0.9) * min(1.0, 0.8 * self.tim_needed(s) + 0.2)
            v = amp * np.clip((tt - k0) / L, 0, 1) ** 1.5
            if rng.random() < 0.35:
                kf = min(T, int(k0 + L + rng.uniform(1, 10) * PER_DAY))
                v[kf:] = 0
            self.tim[s] += v.astype(np.float32)
            self.benign["tim_drift"] = self.benign.get("tim_drift", 0) + 1
        # VRM-like drift on the lemon host's healthy boards and a few others (plateau)
        for _ in range(rng.poisson(5 * scale)):
            s = pick(lambda x: self.slot_host[x] == self.lemon_host or rng.random() < 0.05)
            if s < 0:
                continue
            k0 = int(rng.integers(-5 * PER_DAY, T))
            L = lognorm(rng, 6 * PER_DAY, 0.6, PER_DAY, 20 * PER_DAY)
            v = np.clip((tt - k0) / L, 0, 1)
            self.vrm[s] += (rng.uniform(0.015, 0.04) * v).astype(np.float32)
            self.vrm_idle[s] += (rng.uniform(1, 3) * v).astype(np.float32)
            self.vrm_noise[s] += (rng.uniform(2, 8) * v).astype(np.float32)
            self.benign["vrm_drift"] = self.benign.get("vrm_drift", 0) + 1
        # mild cold-plate fouling that stays below the throttle point
        for _ in range(rng.poisson(2 * scale)):
            s = pick(lambda x: self.sk[x].cooling == "dlc")
            if s < 0:
                continue
            k0 = int(rng.integers(-5 * PER_DAY, T))
            L = lognorm(rng, 10 * PER_DAY, 0.5, 2 * PER_DAY, 30 * PER_DAY)
            v = np.clip((tt - k0) / L, 0, 1)
            self.foul[s] += (rng.uniform(0.4, 1.2) * v).astype(np.float32)
            self.benign["plate_fouling_mild"] = self.benign.get("plate_fouling_mild", 0) + 1
        # censored: a real degradation that would end in a failure after the window
        for _ in range(rng.poisson(5 * scale)):
            sub = str(rng.choice(["tim", "plate", "vrm", "input", "fan"]))
            if sub == "plate":
                s = pick(lambda x: self.sk[x].cooling == "dlc")
            elif sub in ("tim", "fan"):
                s = pick(lambda x: self.sk[x].cooling == "air")
            else:
                s = pick(lambda x: True)
            if s < 0:
                continue
            L = lognorm(rng, 10 * PER_DAY, 0.6, 2 * PER_DAY, 40 * PER_DAY)
            k0 = int(T - rng.uniform(0.1, 0.7) * L)
            sv = np.clip((tt - k0) / L, 0, 1) ** rng.uniform(1.3, 2.4)
            if sub == "tim":
                self.tim[s] += (max(1.4, self.tim_needed(s) + 0.3) * sv).astype(np.float32)
            elif sub == "fan":
                self.sink_add[s] += (max(0.5, self.fan_needed(s) + 0.2) * sv).astype(np.float32)
            elif sub == "plate":
                self.foul[s] += (max(2.5, self.plate_needed(s) + 0.5) * sv).astype(np.float32)
            elif sub == "vrm":
                self.vrm[s] += (0.08 * sv).astype(np.float32)
                self.vrm_idle[s] += (6 * sv).astype(np.float32)
                self.vrm_noise[s] += (25 * sv**2).astype(np.float32)
            else:
                self.dip_p[s] += ((0.004 + 0.3 * sv**1.5) * (sv > 0)).astype(np.float32)
            self.benign["censored_" + sub] = self.benign.get("censored_" + sub, 0) + 1
            healthy.remove(s)

    # ------------------------------------------------------------------ background counters
    def background_counters(self) -> None:
        rng = self.rng
        S, T = self.S, self.T
        scale = self.days / 45.0
        bidx = self.board_idx
        busy = (self.kind != IDLE) & (bidx >= 0)
        # application XIDs on busy GPUs (~8 per GPU-year), latched by the gauge
        lam = 8.0 / 365 / PER_DAY
        ev = (rng.random((S, T)) < lam) & busy
        for s, k in zip(*np.nonzero(ev), strict=True):
            code = int(rng.choice([31, 31, 31, 13, 13, 43, 45]))
            self.xid_ev.append((int(s), int(k), code))
        b_sbe = np.array([b["sbe"] for b in self.boards])
        b_pcie = np.array([b["pcien"] for b in self.boards])
        b_nvl = np.array([b["nvln"] for b in self.boards])
        valid = bidx >= 0
        bi = np.where(valid, bidx, 0)
        # benign correctable ECC bursts (a few % of boards, bursty, never fatal here)
        sb = b_sbe[bi] & valid
        burst = sb & (rng.random((S, T)) < 0.1 / PER_DAY)
        sizes = np.exp(rng.normal(math.log(20), 1.8, (S, T))).astype(np.int64) + 1
        self.ev_sbe += np.where(burst, sizes, 0)
        for s, k in zip(*np.nonzero(burst & (rng.random((S, T)) < 0.08)), strict=True):
            self.ev_cor[s, k] += 1
            self.xid_ev.append((int(s), int(k), 63))
        # rare contained uncorrectable error that row remapping absorbs (board keeps running)
        hbm_ok = valid & (rng.random((S, T)) < 0.012 * scale / max(1, T))
        for s, k in zip(*np.nonzero(hbm_ok), strict=True):
            self.ev_dbe[s, k] += 1
            self.ev_unc[s, k] += 1
            self.xid_ev.append((int(s), int(k), 94))
            kr = min(T - 1, k + int(rng.integers(1, 12)))
            self.gpu_reset[s, kr] = True
        # transient GSP timeouts on healthy boards, cleared by a GPU reset
        for s, k in zip(
            *np.nonzero(valid & (rng.random((S, T)) < 0.5 / 365 / PER_DAY)), strict=True
        ):
            self.xid_ev.append((int(s), int(k), 119))
            self.gpu_reset[s, min(T - 1, k + 1)] = True
        # PCIe replays: marginal risers/retimers on some slots, bursts at link training
        pn = b_pcie[bi] & valid
        rate = np.where(pn, 0.15, 0.002) * np.where(self.kind != IDLE, 1.0, 0.3)
        self.ev_pcie += rng.poisson(rate * rng.lognormal(0, 1.0, (S, T)))
        bootp = np.repeat(self.boot, 8, axis=0)
        self.ev_pcie += np.where(bootp & (rng.random((S, T)) < 0.1), rng.integers(1, 40, (S, T)), 0)
        # NVLink CRC noise on a few links while traffic flows
        nl = b_nvl[bi] & valid & self.s_nvl[:, None] & (self.kind != IDLE)
        flit = rng.poisson(np.where(nl, 0.6, 0.0) * rng.lognormal(0, 1.2, (S, T)))
        self.ev_flit += flit
        self.ev_data += rng.binomial(flit, 0.05)
        self.ev_replay += rng.binomial(flit, 0.2)
        self.ev_recov += (nl & (rng.random((S, T)) < 0.0005)).astype(np.int64)

    # ------------------------------------------------------------------ occupancy
    def occupancy(self) -> None:
        S, T = self.S, self.T
        self.board_idx = np.full((S, T), -1, np.int32)
        for b in self.boards:
            self.board_idx[b["slot"], b["install"] : b["remove"]] = b["idx"]
        # enumeration: a removed board renumbers the remaining GPUs at the next boot
        have = self.board_idx >= 0
        self.enum = np.zeros((S, T), np.int8)
        for h in range(self.H):
            hv = have[8 * h : 8 * h + 8]
            self.enum[8 * h : 8 * h + 8] = (np.cumsum(hv, axis=0) - 1).clip(0)

    def overrides(self) -> None:
        """Drains, downtime and burn-in override the scheduled workload."""
        rng = self.rng
        down = np.repeat(self.down, 8, axis=0)
        drain = self.drain_s | np.repeat(self.drain_h, 8, axis=0) | down | self.offbus
        drain |= self.board_idx < 0
        self.kind[drain] = IDLE
        self.jobid[drain] = -1
        st = self.stress & ~drain
        self.kind[st] = STRESS
        self.jobid[st] = -1
        self.kapm[st] = 1.0
        # after a job ends the clocks often stay high for a while
        ended = np.zeros_like(self.kind, dtype=bool)
        ended[:, 1:] = (self.kind[:, 1:] == IDLE) & (self.kind[:, :-1] != IDLE)
        hi = ended & (rng.random(ended.shape) < 0.6)
        hi[:, 1:] |= ended[:, :-1] & (rng.random((self.S, self.T - 1)) < 0.3)
        self.idle_hi = hi & (self.kind == IDLE)

    # ------------------------------------------------------------------ physics
    def physics(self) -> None:
        rng = self.rng
        S, T = self.S, self.T
        sk = self.sk
        col = lambda xs: np.array(xs, np.float64)[:, None]  # noqa: E731
        tdp = col([k.tdp for k in sk])
        idle_lo = col([k.idle_lo for k in sk])
        idle_hi = col([k.idle_hi for k in sk])
        fmax = col([k.fmax for k in sk])
        fidle = col([k.fidle for k in sk])
        r_die0 = col([k.r_die for k in sk])
        r_sink0 = col([k.r_sink for k in sk])
        off_g = col([k.off_gpu for k in sk])
        r_hbm0 = col([k.r_hbm for k in sk])
        off_h = col([k.off_hbm for k in sk])
        t_op = col([k.t_op for k in sk])
        t_slow = col([k.t_slow for k in sk])
        dlc = self.s_dlc[:, None]
        bi = np.where(self.board_idx >= 0, self.board_idx, 0)
        bp = {
            key: np.array([b[key] for b in self.boards], np.float64)[bi]
            for key in ("q", "leak", "rdie", "rsink", "goff", "hoff", "fbias", "rel")
        }
        jid = np.where(self.jobid >= 0, self.jobid, len(self.jobs))
        jt = {
            key: np.array([j[key] for j in self.jobs] + [0.0], np.float64)[jid]
            for key in ("kap", "pcomm", "pckpt", "base", "peak", "dec")
        }
        kind = self.kind
        loaded = kind != IDLE
        is_tr = (kind == TRAIN) | (kind == TUNE)
        is_inf = kind == INFER
        is_dev = kind == DEV
        is_st = kind == STRESS
        hostu = rng.random((self.H, T))[self.slot_host]
        u2 = rng.random((S, T))
        # --- training phases at the scrape instant (shared by a host's GPUs)
        ck = is_tr & (hostu < jt["pckpt"])
        cm = is_tr & ~ck & (hostu < jt["pckpt"] + jt["pcomm"])
        cp = is_tr & ~ck & ~cm
        kap = jt["kap"] * self.kapm
        util = np.zeros((S, T))
        memu = np.zeros((S, T))
        kinst = np.zeros((S, T))
        kavg = np.zeros((S, T))
        util = np.where(cp, 100 - np.abs(rng.normal(0, 1.5, (S, T))), util)
        util = np.where(cm, rng.uniform(85, 100, (S, T)), util)
        util = np.where(ck, rng.uniform(0, 35, (S, T)), util)
        kinst = np.where(cp, kap * (0.96 + 0.08 * u2), kinst)
        kinst = np.where(cm, kap * (0.30 + 0.35 * u2), kinst)
        kinst = np.where(ck, 0.1 + 0.2 * u2, kinst)
        pc = 1 - jt["pckpt"] - jt["pcomm"]
        kavg = np.where(is_tr, kap * (pc + 0.48 * jt["pcomm"]) + 0.2 * jt["pckpt"], kavg)
        kavg = np.where(ck, 0.5 * kavg + 0.5 * kinst, kavg)
        memu = np.where(cp, rng.normal(35, 4, (S, T)), memu)
        memu = np.where(cm, rng.uniform(12, 30, (S, T)), memu)
        memu = np.where(ck, rng.uniform(0, 10, (S, T)), memu)
        # --- inference: diurnal request load
        load = jt["base"] * (
            0.62 + 0.38 * np.cos(2 * np.pi * (self.hour[None, :] - jt["peak"]) / 24.0)
        )
        load = load * (1 + rng.normal(0, 0.15, (S, T)))
        ui = np.clip(100 * load + rng.normal(0, 6, (S, T)), 0, 100)
        util = np.where(is_inf, ui, util)
        kinst = np.where(is_inf, kap * (0.12 + 0.88 * ui / 100), kinst)
        kavg = np.where(
            is_inf,
            kap
            * (
                0.12
                + 0.88
                * np.clip(
                    100
                    * jt["base"]
                    * (0.62 + 0.38 * np.cos(2 * np.pi * (self.hour[None, :] - jt["peak"]) / 24.0)),
                    0,
                    100,
                )
                / 100
            ),
            kavg,
        )
        memu = np.where(is_inf, ui * rng.uniform(0.55, 0.9, (S, T)), memu)
        # --- development / notebooks
        act = is_dev & (u2 < 0.35)
        ud = rng.uniform(5, 95, (S, T))
        util = np.where(act, ud, util)
        kinst = np.where(act, kap * ud / 100, kinst)
        kavg = np.where(is_dev, kap * 0.35 * 0.5, kavg)
        memu = np.where(act, ud * 0.4, memu)
        # --- stress / burn-in (dcgm diag)
        util = np.where(is_st, 100.0, util)
        kinst = np.where(is_st, 2.2, kinst)
        kavg = np.where(is_st, 2.2, kavg)
        memu = np.where(is_st, rng.uniform(60, 90, (S, T)), memu)
        util = np.clip(np.round(util), 0, 100)
        memu = np.clip(np.round(memu), 0, 100)
        hi_idle = self.idle_hi | (is_dev & ~act)
        # --- thermal resistances
        r_die = r_die0 * bp["rdie"] * (1 + self.tim)
        sinkm = bp["rsink"] * (1 + self.sink_add)
        flow = self.flow.astype(np.float64)
        r_sink = np.where(dlc, r_sink0 * sinkm * (1 + self.foul) * flow**-0.8, r_sink0 * sinkm)
        r_tot = r_die + r_sink
        r_tot_base = r_die0 * bp["rdie"] + r_sink0 * bp["rsink"]
        mcp = 95.0  # W/K, coolant flow of a two-plate series loop
        tin = self.inlet.copy()
        vrm = self.vrm.astype(np.float64)
        leak_w = 0.0015 * tdp
        pidle = np.where(hi_idle, idle_hi, idle_lo) * bp["leak"]
        plim = self.plim

        def power(kv: np.ndarray, temp: np.ndarray) -> tuple:
            static = np.where(loaded, idle_lo * bp["leak"], pidle) + leak_w * (temp - 38)
            static = np.maximum(static, 0.5 * idle_lo)
            dyn = np.where(loaded, kv * (tdp - idle_lo) * bp["q"], 0.0)
            read = (static + dyn) * (1 + vrm) + self.vrm_idle
            capped = loaded & (read > plim)
            budget = np.maximum((plim - self.vrm_idle) / (1 + vrm) - static, 0.0)
            dyn_eff = np.where(capped, np.minimum(dyn, budget), dyn)
            return static, dyn, dyn_eff, capped

        # thermal-average state (temperature follows the few-minute mean power)
        temp = tin + off_g + r_tot * (idle_lo + 0.6 * kavg * (tdp - idle_lo))
        for _ in range(3):
            st_a, _dyn_a, dyn_ae, _cap_a = power(kavg, temp)
            pchip = st_a + dyn_ae
            temp = self.die_temp(tin, off_g, r_tot, pchip, dlc, flow, mcp)
        # thermal limiter (software slowdown holds the GPU at its max operating temperature)
        base_t = temp - r_tot * pchip
        allowed = np.maximum((t_op - 0.5 - base_t) / r_tot, 0.0)
        th_lim = loaded & (pchip > allowed)
        pchip_a = np.where(th_lim, np.maximum(allowed, st_a), pchip)
        temp = np.where(th_lim, base_t + r_tot * pchip_a, temp)
        hw_th = th_lim & (base_t + r_tot * st_a > t_slow)
        read_avg = pchip_a * (1 + vrm) + self.vrm_idle
        # instantaneous state at the scrape
        st_i, dyn_i, dyn_ie, cap_i = power(kinst, temp)
        pchip_i = st_i + dyn_ie
        th_i = loaded & (pchip_i > allowed) & th_lim
        pchip_i = np.where(th_i, np.maximum(np.minimum(pchip_i, allowed), st_i), pchip_i)
        dyn_ie = np.maximum(pchip_i - st_i, 0.0)
        ratio = np.where(dyn_i > 1e-6, dyn_ie / np.maximum(dyn_i, 1e-6), 1.0)
        f = fmax * np.clip(ratio, 1e-3, 1.0) ** (1 / 2.3)
        lim_any = cap_i | th_i
        f = np.where(lim_any, f * (1 + bp["fbias"]) + rng.normal(0, 22, (S, T)), f)
        f = np.where(loaded & ~lim_any, fmax - 15 * (rng.random((S, T)) < 0.08), f)
        f = np.where(loaded, f, np.where(hi_idle, fmax, fidle))
        reasons = np.zeros((S, T), np.int64)
        reasons = np.where(loaded & cap_i & ~th_i, 0x4, reasons)
        reasons = np.where(th_i, 0x20, reasons)
        reasons = np.where(~loaded & ~hi_idle, 0x1, reasons)
        read = pchip_i * (1 + vrm) + self.vrm_idle
        noise_l = self.vrm_noise * rng.standard_normal((S, T))
        read = np.where(
            cap_i & ~th_i,
            plim - np.abs(rng.normal(1.6, 1.2, (S, T))) + noise_l,
            read * (1 + rng.normal(0, 0.012, (S, T))) + noise_l * loaded,
        )
        read = np.where(loaded, read, read + rng.normal(0, 0.3, (S, T)))
        # degraded power delivery: HW slowdowns and brown-out dips under load
        heavy = loaded & (read > 0.55 * tdp)
        hws = heavy & (rng.random((S, T)) < self.hwslow_p)
        dip_p = self.dip_p + self.host_dip[self.slot_host][:, None]
        dip = heavy & (rng.random((S, T)) < dip_p)
        hw8 = hws | (dip & (rng.random((S, T)) < 0.3))
        dipf = rng.uniform(0.4, 0.75, (S, T))
        read = np.where(dip | hws, read * dipf, read)
        f = np.where(dip | hws, f * rng.uniform(0.45, 0.8, (S, T)), f)
        reasons = np.where(hw8, reasons | 0x8, reasons)
        # PSU redundancy lost: power brake at load
        brk = np.repeat(self.brake, 8, axis=0) & loaded & (read > 0.4 * tdp)
        brk &= rng.random((S, T)) < 0.55
        read = np.where(brk, read * rng.uniform(0.3, 0.5, (S, T)), read)
        f = np.where(brk, fmax * rng.uniform(0.35, 0.55, (S, T)), f)
        reasons = np.where(brk, (reasons & ~0x4) | 0x88, reasons)
        reasons = np.where(hw_th & loaded, reasons | 0x48, reasons)
        f = np.where(hw_th & loaded, f * 0.5, f)
        f = np.clip(15 * np.round(f / 15), fidle, fmax)
        # temperatures
        tg = temp + bp["goff"] + rng.normal(0, 0.5, (S, T))
        loss_w = read_avg - pchip_a
        tg = tg + 0.015 * loss_w
        r_h = r_hbm0 * np.where(
            dlc,
            0.35 + 0.65 * (1 + 0.8 * self.foul) * flow**-0.8,
            0.3 + 0.7 * sinkm + 0.15 * self.tim,
        )
        th = (
            tin
            + off_h
            + bp["hoff"]
            + r_h * pchip_a
            + 0.06 * (memu - 33) * loaded
            + 0.03 * loss_w
            + rng.normal(0, 0.5, (S, T))
        )
        if self.s_dlc.any():
            th = np.where(dlc, th + (temp - tin - off_g - r_tot * pchip_a), th)
        glitch = rng.random((S, T)) < self.glitch_p
        tg = np.where(glitch, tg + rng.uniform(15, 60, (S, T)), tg)
        late_glitch = glitch & (self.glitch_p > 0.1) & loaded
        reasons = np.where(late_glitch, reasons | 0x48, reasons)
        f = np.where(late_glitch, np.clip(15 * np.round(f * 0.5 / 15), fidle, fmax), f)
        self.glitch = glitch
        # outputs
        self.o_temp = np.round(tg).astype(np.int64)
        self.o_mtemp = np.round(th).astype(np.int64)
        self.o_power = np.round(np.maximum(read, 5.0), 3)
        self.o_clock = f.astype(np.int64)
        self.o_util = util.astype(np.int64)
        self.o_memu = memu.astype(np.int64)
        self.o_reasons = reasons
        dec = np.where(is_inf & (jt["dec"] > 0), np.round(jt["dec"] * ui / 100), 0)
        self.o_dec = dec.astype(np.int64)
        fbt = col([k.fb_total - k.fb_res for k in sk])
        fbu = np.where(loaded | (kind == DEV), self.fbj + rng.normal(0, 60, (S, T)), 0.0)
        fbu = np.where(is_st, 0.9 * fbt, fbu)
        fbu = np.clip(np.round(fbu), 0, fbt)
        self.o_fbused = fbu.astype(np.int64)
        self.o_fbfree = (fbt - fbu).astype(np.int64)
        # nvlink throughput gauge
        nv = col([k.nvl_scale for k in sk])
        bw = np.zeros((S, T))
        bw = np.where(cm, rng.uniform(120e3, 320e3, (S, T)), bw)
        bw = np.where(cp, rng.uniform(5e3, 60e3, (S, T)), bw)
        bw = np.where(ck, rng.uniform(0, 2e3, (S, T)), bw)
        bw = np.where(is_inf, ui / 100 * rng.uniform(2e3, 40e3, (S, T)), bw)
        bw = np.where(is_st, rng.uniform(50e3, 200e3, (S, T)), bw)
        self.o_nvbw = np.round(bw * nv).astype(np.int64)
        # violation / energy increments (ns and mJ per interval)
        iv = STEP * 1e9
        p_comp_cap = power(kap, temp)[3]
        cap_frac = np.where(is_tr, pc * p_comp_cap, 0.0)
        cap_frac = np.where(is_inf | (kind == DEV), 0.8 * cap_i, cap_frac)
        cap_frac = np.where(is_st, 1.0, cap_frac)
        cap_frac = np.where(brk, 0.3 * cap_frac, cap_frac)
        self.i_pviol = np.round(cap_frac * iv * rng.uniform(0.9, 1.0, (S, T))).astype(np.int64)
        th_frac = np.where(th_lim, rng.uniform(0.6, 1.0, (S, T)), 0.0)
        th_frac = np.where(hw_th & loaded, 1.0, th_frac)
        self.i_tviol = np.round(th_frac * iv).astype(np.int64)
        low = np.where(~loaded, rng.uniform(0.85, 1.0, (S, T)), 0.0)
        low = np.where(is_dev & ~act, 0.9, low)
        low = np.where(is_inf, np.clip(1 - util / 30, 0, 1) * 0.5, low)
        self.i_lowviol = np.round(low * iv).astype(np.int64)
        bl = np.where(brk, rng.uniform(0.3, 0.8, (S, T)), 0.0)
        bl = np.where(hws, rng.uniform(0.05, 0.2, (S, T)), bl)
        self.i_blviol = np.round(bl * iv).astype(np.int64)
        rl = (bp["rel"] > 0) & loaded & ~cap_i & (rng.random((S, T)) < 0.2)
        self.i_relviol = np.where(rl, rng.integers(0, 2_000_000_000, (S, T)), 0).astype(np.int64)
        self.i_energy = np.round(np.maximum(read_avg, 5.0) * STEP * 1000).astype(np.int64)
        # what a precursor looks like in the model (for the ground truth only)
        self.m_dT = (r_tot - r_tot_base) * pchip_a
        if self.s_dlc.any():
            self.m_dT = np.where(
                dlc,
                temp
                - self.die_temp(
                    tin, off_g, r_tot_base + 0 * r_tot, pchip_a, dlc, np.ones_like(flow), mcp
                ),
                self.m_dT,
            )
        self.m_vrm_w = vrm * pchip_a + self.vrm_idle
        self.m_dip = dip
        self.loaded = loaded & (util >= 50)

    def die_temp(self, tin, off_g, r_tot, pchip, dlc, flow, mcp) -> np.ndarray:
        """Die temperature; dlc plates sit in series pairs (even slot upstream)."""
        temp = tin + off_g + r_tot * pchip
        if not self.s_dlc.any():
            return temp
        m = mcp * np.maximum(flow, 0.05)
        half = pchip / (2 * m)
        up = np.zeros_like(pchip)
        idx = np.nonzero(self.s_dlc & (self.slot_gi % 2 == 1))[0]
        up[idx] = pchip[idx - 1] / m[idx]
        return np.where(dlc, temp + half + up, temp)

    # ------------------------------------------------------------------ counters
    def counters(self) -> None:
        S, T = self.S, self.T
        H8 = lambda a: np.repeat(a, 8, axis=0)  # noqa: E731
        boot = H8(self.boot)
        down = H8(self.down)
        present_b = self.board_idx >= 0
        alive = present_b & ~down
        bchange = np.zeros((S, T), bool)
        bchange[:, 1:] = self.board_idx[:, 1:] != self.board_idx[:, :-1]
        vreset = boot | bchange
        vreset[:, 0] = True
        rng = self.rng
        up0 = self.uptime0[self.slot_host]
        tdp = self.s_tdp

        def cum(inc: np.ndarray, reset: np.ndarray, init: np.ndarray) -> np.ndarray:
            inc = np.where(alive, inc, 0)
            c = np.cumsum(inc, axis=1)
            cprev = np.concatenate([np.zeros((S, 1), c.dtype), c[:, :-1]], axis=1)
            r = np.where(reset, np.arange(T)[None, :], 0)
            r = np.maximum.accumulate(r, axis=1)
            base = np.take_along_axis(cprev, r, 1)
            start = np.take_along_axis(init, r, 1)
            return start + c - base

        def init_at(first: np.ndarray) -> np.ndarray:
            a = np.zeros((S, T), np.int64)
            a[:, 0] = first
            return a

        e0 = (up0 * 0.55 * tdp * 1000).astype(np.int64)
        self.c_energy = cum(self.i_energy, vreset, init_at(e0))
        self.c_pviol = cum(self.i_pviol, vreset, init_at((up0 * 0.4e9).astype(np.int64)))
        self.c_tviol = cum(self.i_tviol, vreset, init_at(np.zeros(S, np.int64)))
        self.c_lowviol = cum(self.i_lowviol, vreset, init_at((up0 * 0.2e9).astype(np.int64)))
        self.c_blviol = cum(self.i_blviol, vreset, init_at(np.zeros(S, np.int64)))
        rel0 = np.where(rng.random(S) < 0.1, (up0 * 2e6).astype(np.int64), 0)
        self.c_relviol = cum(self.i_relviol, vreset, init_at(rel0))
        self.c_pcie = cum(self.ev_pcie, vreset, init_at(rng.poisson(0.3, S).astype(np.int64)))
        self.c_flit = cum(self.ev_flit, vreset, init_at(np.zeros(S, np.int64)))
        self.c_data = cum(self.ev_data, vreset, init_at(np.zeros(S, np.int64)))
        self.c_replay = cum(self.ev_replay, vreset, init_at(np.zeros(S, np.int64)))
        self.c_recov = cum(self.ev_recov, vreset, init_at(np.zeros(S, np.int64)))
        ecc_reset = vreset | self.gpu_reset
        self.c_sbev = cum(self.ev_sbe, ecc_reset, init_at(np.zeros(S, np.int64)))
        self.c_dbev = cum(self.ev_dbe, ecc_reset, init_at(np.zeros(S, np.int64)))
        # persistent (InfoROM) counters follow the board
        preset = bchange.copy()
        preset[:, 0] = True
        bi = np.where(self.board_idx >= 0, self.board_idx, 0)

        def binit(key: str) -> np.ndarray:
            v = np.array([b[key] for b in self.boards], np.int64)[bi]
            return np.where(preset, v, 0)

        self.c_sbea = cum(self.ev_sbe, preset, binit("i_sbe"))
        self.c_dbea = cum(self.ev_dbe, preset, binit("i_unc"))
        self.c_unc = cum(self.ev_unc, preset, binit("i_unc"))
        self.c_cor = cum(self.ev_cor, preset, binit("i_cor"))
        self.c_rfail = np.minimum(cum(self.ev_rfail, preset, init_at(np.zeros(S, np.int64))), 1)
        # XID gauge: last code since the exporter (its DCGM host engine) started
        xr = H8(self.exp_restart) | bchange
        ev = np.full((S, T), -1, np.int64)
        ev[xr] = 0
        for s, k, code in sorted(self.xid_ev, key=lambda x: (x[1], x[0])):
            if 0 <= k < T:
                ev[s, k] = code
        init = np.where(rng.random(S) < 0.12, rng.choice([31, 31, 13, 43], S), 0)
        ev[:, 0] = np.where(ev[:, 0] >= 0, ev[:, 0], init)
        idx = np.where(ev >= 0, np.arange(T)[None, :], 0)
        idx = np.maximum.accumulate(idx, axis=1)
        self.c_xid = np.take_along_axis(ev, idx, 1)

    # ------------------------------------------------------------------ labels
    def labels(self) -> None:
        H8 = lambda a: np.repeat(a, 8, axis=0)  # noqa: E731
        up = ~H8(self.down) & ~H8(self.gap) & (self.board_idx >= 0)
        drv = H8(self.drv).astype(np.int64)
        code = (self.board_idx.astype(np.int64) * 8 + drv) * 8 + self.enum
        self.lab_x = np.where(up, code, -1)
        self.lab = np.where(up & ~self.offbus, code, -1)
        self.labstr: dict[int, str] = {}
        for c in np.unique(self.lab_x[self.lab_x >= 0]):
            c = int(c)
            b = self.boards[c // 64]
            d = (c // 8) % 8
            g = c % 8
            s = self.slots[b["slot"]]
            h = self.hosts[s["host"]]
            self.labstr[c] = (
                f'gpu="{g}",UUID="{b["uuid"]}",pci_bus_id="{s["bus"]}",device="nvidia{g}",'
                f'modelName="{SKUS[s["sku"]].model}",Hostname="{h["name"]}",'
                f'DCGM_FI_DRIVER_VERSION="{DRIVERS[d]}",instance="{h["name"]}:9400",'
                f'job="dcgm-exporter"'
            )

    # ------------------------------------------------------------------ ground truth
    def truth(self) -> None:
        up = self.lab >= 0
        for n, f in enumerate(self.failures):
            s, k = f["slot"], f["k"]
            k0 = f.get("k0", k)
            f["precursor"] = False
            f["pstart"] = None
            if not f["pre"] or k0 >= k:
                continue
            sub = f["sub"]
            rngk = slice(k0, k)
            pres = up[s, rngk]
            if sub == "tim":
                vis = pres & self.loaded[s, rngk] & (self.m_dT[s, rngk] >= 3.0)
            elif sub in ("fan", "plate"):
                vis = pres & (self.m_dT[s, rngk] >= 2.0)
            elif sub == "sensor":
                vis = pres & self.glitch[s, rngk]
            elif sub == "vrm":
                vis = pres & ((self.m_vrm_w[s, rngk] >= 15.0) | (self.vrm_noise[s, rngk] >= 5.0))
            elif sub == "input":
                vis = pres & self.m_dip[s, rngk]
            else:
                first = self.pre_events.get(n, k)
                vis = pres & (np.arange(k0, k) >= first)
            hit = np.nonzero(vis)[0]
            if hit.size:
                f["precursor"] = True
                f["pstart"] = int(self.ts[k0 + hit[0]] + self.hosts[self.slot_host[s]]["offset"])

    # ------------------------------------------------------------------ output
    def metric_arrays(self) -> list[tuple]:
        S = self.S
        sk = self.sk
        const = lambda xs: np.array(xs, np.int64)  # noqa: E731
        nvl = self.s_nvl
        allm = np.ones(S, bool)
        arrs = {
            "DCGM_FI_DEV_SM_CLOCK": self.o_clock,
            "DCGM_FI_DEV_MEM_CLOCK": const([k.mclk for k in sk]),
            "DCGM_FI_DEV_MEMORY_TEMP": self.o_mtemp,
            "DCGM_FI_DEV_GPU_TEMP": self.o_temp,
            "DCGM_FI_DEV_POWER_USAGE": self.o_power,
            "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION": self.c_energy,
            "DCGM_FI_DEV_PCIE_REPLAY_COUNTER": self.c_pcie,
            "DCGM_FI_DEV_GPU_UTIL": self.o_util,
            "DCGM_FI_DEV_MEM_COPY_UTIL": self.o_memu,
            "DCGM_FI_DEV_ENC_UTIL": const([0] * S),
            "DCGM_FI_DEV_DEC_UTIL": self.o_dec,
            "DCGM_FI_DEV_XID_ERRORS": self.c_xid,
            "DCGM_FI_DEV_POWER_VIOLATION": self.c_pviol,
            "DCGM_FI_DEV_THERMAL_VIOLATION": self.c_tviol,
            "DCGM_FI_DEV_SYNC_BOOST_VIOLATION": const([0] * S),
            "DCGM_FI_DEV_BOARD_LIMIT_VIOLATION": self.c_blviol,
            "DCGM_FI_DEV_LOW_UTIL_VIOLATION": self.c_lowviol,
            "DCGM_FI_DEV_RELIABILITY_VIOLATION": self.c_relviol,
            "DCGM_FI_DEV_CLOCK_THROTTLE_REASONS": self.o_reasons,
            "DCGM_FI_DEV_FB_FREE": self.o_fbfree,
            "DCGM_FI_DEV_FB_USED": self.o_fbused,
            "DCGM_FI_DEV_FB_RESERVED": const([k.fb_res for k in sk]),
            "DCGM_FI_DEV_ECC_SBE_VOL_TOTAL": self.c_sbev,
            "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL": self.c_dbev,
            "DCGM_FI_DEV_ECC_SBE_AGG_TOTAL": self.c_sbea,
            "DCGM_FI_DEV_ECC_DBE_AGG_TOTAL": self.c_dbea,
            "DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL": self.c_flit,
            "DCGM_FI_DEV_NVLINK_CRC_DATA_ERROR_COUNT_TOTAL": self.c_data,
            "DCGM_FI_DEV_NVLINK_REPLAY_ERROR_COUNT_TOTAL": self.c_replay,
            "DCGM_FI_DEV_NVLINK_RECOVERY_ERROR_COUNT_TOTAL": self.c_recov,
            "DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL": self.o_nvbw,
            "DCGM_FI_DEV_VGPU_LICENSE_STATUS": const([0] * S),
            "DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS": self.c_unc,
            "DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS": self.c_cor,
            "DCGM_FI_DEV_ROW_REMAP_FAILURE": self.c_rfail,
        }
        out = []
        for name, help_ in METRICS:
            a = arrs[name]
            applies = nvl if "NVLINK" in name else allm
            out.append((name, help_, a, np.nonzero(applies)[0].tolist()))
        return out

    def write_tsdb(self, out_dir: str, promtool: str) -> dict:
        T = self.T
        db = os.path.join(out_dir, "prometheus")
        tmp = os.path.join(out_dir, ".openmetrics-tmp")
        os.makedirs(db, exist_ok=True)
        os.makedirs(tmp, exist_ok=True)
        metrics = self.metric_arrays()
        offs = np.array([h["offset"] for h in self.hosts])
        jit = self.rng.uniform(0, 0.05, (self.H, T))
        tsv = self.ts[None, :] + offs[:, None] + jit
        ts_str = [[f" {x:.3f}\n" for x in row] for row in tsv.tolist()]
        win = (self.ts - (self.start - self.start % BLOCK)) // BLOCK
        bounds = np.nonzero(np.diff(win))[0] + 1
        starts = [0, *bounds.tolist()]
        ends = [*bounds.tolist(), T]
        prefix: dict[tuple[int, int], str] = {}
        samples = 0
        env = dict(os.environ, GOGC="off", GOMAXPROCS="1")
        running: list[tuple[subprocess.Popen, str]] = []

        def reap(wait: bool) -> None:
            """Collect finished promtool runs (with wait: at least the oldest one)."""
            while running and (wait or running[0][0].poll() is not None):
                p, path = running.pop(0)
                err = p.communicate()[1]
                if p.returncode != 0:
                    raise RuntimeError(f"promtool failed on {path}: {err.decode()[-2000:]}")
                os.remove(path)
                wait = False

        sh = self.slot_host
        for wi, (i0, i1) in enumerate(zip(starts, ends, strict=True)):
            buf: list[str] = []
            n0 = samples
            labw = self.lab[:, i0:i1].tolist()
            labxw = self.lab_x[:, i0:i1].tolist()
            tsw = [row[i0:i1] for row in ts_str]
            for mi, (name, help_, arr, slots) in enumerate(metrics):
                buf.append(f"# HELP {name} {help_}\n# TYPE {name} gauge\n")
                isx = name == "DCGM_FI_DEV_XID_ERRORS"
                if arr.ndim == 1:
                    vals = None
                    cvals = [str(int(v)) for v in arr.tolist()]
                else:
                    sub = arr[:, i0:i1]
                    vals = sub.tolist()
                    cvals = None
                lw = labxw if isx else labw
                for s in slots:
                    lr = lw[s]
                    tr = tsw[sh[s]]
                    vr = vals[s] if vals is not None else None
                    first = lr[0]
                    if first >= 0 and not isx and lr.count(first) == len(lr):
                        key = (mi, first)
                        pre = prefix.get(key)
                        if pre is None:
                            pre = f"{name}{{{self.labstr[first]}}} "
                            prefix[key] = pre
                        if vr is None:
                            v = cvals[s]
                            buf.append("".join([pre + v + t for t in tr]))
                        else:
                            buf.append(
                                "".join([pre + str(v) + t for v, t in zip(vr, tr, strict=True)])
                            )
                        samples += len(lr)
                        continue
                    parts = []
                    for j, c in enumerate(lr):
                        if c < 0:
                            continue
                        v = vr[j] if vr is not None else cvals[s]
                        if isx:
                            key = (-int(v) - 1, c)
                            pre = prefix.get(key)
                            if pre is None:
                                pre = (
                                    f'{name}{{{self.labstr[c]},err_code="{int(v)}",'
                                    f'err_msg="{XID_MSG.get(int(v), "Unknown Error")}"}} '
                                )
                                prefix[key] = pre
                        else:
                            key = (mi, c)
                            pre = prefix.get(key)
                            if pre is None:
                                pre = f"{name}{{{self.labstr[c]}}} "
                                prefix[key] = pre
                        parts.append(pre + str(v) + tr[j])
                    samples += len(parts)
                    buf.append("".join(parts))
            if samples == n0:
                continue
            buf.append("# EOF\n")
            path = os.path.join(tmp, f"w{wi:05d}.om")
            with open(path, "w") as fh:
                fh.write("".join(buf))
            del buf
            reap(False)
            while len(running) >= 2:
                reap(True)
            p = subprocess.Popen(
                [promtool, "tsdb", "create-blocks-from", "openmetrics", "-q", path, db],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                env=env,
            )
            running.append((p, path))
        while running:
            reap(True)
        shutil.rmtree(tmp, ignore_errors=True)
        nblocks = sum(
            1 for x in os.listdir(db) if os.path.isdir(os.path.join(db, x)) and len(x) == 26
        )
        return {"samples": samples, "blocks": nblocks, "windows": len(starts)}


def run(args: argparse.Namespace) -> dict:
    t0 = time.time()
    promtool = args.promtool or shutil.which("promtool")
    if not promtool:
        sys.exit("promtool not found: pass --promtool PATH")
    out = args.out
    if os.path.exists(os.path.join(out, "prometheus")):
        shutil.rmtree(os.path.join(out, "prometheus"))
    os.makedirs(out, exist_ok=True)
    hall = Hall(args.seed, args.end, args.days)
    hall.schedule()
    hall.facility()
    hall.operations()
    hall.plan_failures()
    hall.occupancy()
    hall.degradations()
    hall.overrides()
    hall.background_counters()
    hall.physics()
    hall.counters()
    hall.labels()
    hall.truth()
    t_sim = time.time() - t0
    w = hall.write_tsdb(out, promtool)
    t_write = time.time() - t0 - t_sim
    return finish(hall, args, out, w, t_sim, t_write, time.time() - t0)


def finish(
    hall: Hall, args, out: str, w: dict, t_sim: float, t_write: float, t_total: float
) -> dict:
    fails = sorted(hall.failures, key=lambda f: f["tf"])
    with open(os.path.join(out, "failures.csv"), "w", newline="") as fh:
        wr = csv.writer(fh)
        wr.writerow(["uuid", "time", "mode", "precursor", "precursor_start"])
        for f in fails:
            wr.writerow(
                [
                    f["uuid"],
                    int(f["tf"]),
                    f["mode"],
                    "true" if f["precursor"] else "false",
                    "" if f["pstart"] is None else int(f["pstart"]),
                ]
            )
    by_mode = {m: sum(1 for f in fails if f["mode"] == m) for m in MODES}
    pre_mode = {m: sum(1 for f in fails if f["mode"] == m and f["precursor"]) for m in MODES}
    leads = [(f["tf"] - f["pstart"]) / 3600 for f in fails if f["precursor"]]
    q = {}
    if leads:
        for p in (10, 25, 50, 75, 90):
            q[f"p{p}"] = round(float(np.percentile(leads, p)), 2)
    models: dict[str, int] = {}
    for b in hall.boards:
        m = SKUS[hall.slots[b["slot"]]["sku"]].model
        models[m] = models.get(m, 0) + 1
    subtypes = {
        sub: sum(1 for f in fails if f["sub"] == sub) for sub in sorted({f["sub"] for f in fails})
    }
    realised = (
        f"This seed: failure subtypes {json.dumps(subtypes)}; non-failing degradations "
        f"{json.dumps(hall.benign)}; facility/host events "
        f"{json.dumps(sorted(e['type'] for e in hall.events))}; lemon host "
        f"{hall.hosts[hall.lemon_host]['name']}."
    )
    truth = {
        "generator": "bench/hall_fleet.py",
        "seed": args.seed,
        "start": hall.start,
        "end": hall.end,
        "days": hall.days,
        "step_seconds": STEP,
        "hosts": hall.H,
        "slots": hall.S,
        "boards": len(hall.boards),
        "boards_by_model": models,
        "failures": len(fails),
        "failures_by_mode": by_mode,
        "precursors_by_mode": pre_mode,
        "precursor_share": round(sum(pre_mode.values()) / max(1, len(fails)), 3),
        "power_plus_thermal_share": round(
            (by_mode["power"] + by_mode["thermal"]) / max(1, len(fails)), 3
        ),
        "lead_time_hours_quantiles": q,
        "samples_written": w["samples"],
        "tsdb_blocks": w["blocks"],
        "timing_seconds": {
            "simulate": round(t_sim, 1),
            "write_and_promtool": round(t_write, 1),
            "total": round(t_total, 1),
        },
        "design_choices": [*DESIGN_CHOICES, realised],
    }
    with open(os.path.join(out, "truth.json"), "w") as fh:
        json.dump(truth, fh, indent=1)
    return truth


DESIGN_CHOICES: list[str] = [
    "Accelerated hazard: about 4 failures per GPU-year (real fleets: ~0.1-0.3 GPU-attributable "
    "interruptions per GPU-year) so that one 45-day seed holds ~100 failures. Expected counts "
    "for 208 slots x 45 days (scaled with slots x days): power 25, thermal 22, hbm 17, pcie 10, "
    "nvlink 9, other 13, Poisson per mode, redrawn until power+thermal >= 45 % of all.",
    "Hall: 26 hosts x 8 GPUs = 208 slots. Row a: 12 HGX H100 80GB HBM3 (air). Row b: 6 HGX "
    "A100-SXM4-80GB (air, older, driver 550.163.01 throughout). Row c: 6 HGX H200 with direct "
    "liquid cooling, one CDU, 28 C warm-water supply, cold plates in series pairs (even GPU "
    "upstream). Row d: 2 PCIe servers with 8 H100 PCIe each (air, no NVLink bridges). 2-3 hosts "
    "per rack; the last rack of each row ~1.8 C hotter; rear-row HGX GPUs (4-7) +3.5 C inlet; "
    "middle PCIe slots up to +5 C.",
    "Scrapes every 600 s at a fixed per-host offset in [0, 600) s plus <= 50 ms jitter. Labels as "
    "dcgm-exporter: gpu, UUID, pci_bus_id, device=nvidiaN, modelName, Hostname, "
    "DCGM_FI_DRIVER_VERSION, plus job and instance; the XID gauge adds err_code/err_msg, so each "
    "code is its own series.",
    "Families written: every field of deploy/dcgm-exporter/gpu-health-counters.csv except "
    "RETIRED_SBE/DBE/PENDING (page retirement is not supported on Ampere/Hopper, dcgm-exporter "
    "skips unsupported fields) and, on the H100 PCIe boards, the five NVLink families. ENC_UTIL "
    "is 0 (no NVENC), VGPU_LICENSE_STATUS 0 (bare metal), SYNC_BOOST_VIOLATION 0 (no sync-boost "
    "groups). All families are declared gauge in the import file (blocks keep no type).",
    "Units as the CSV: clocks MHz (15 MHz bins), temperatures integer C, power W with 3 decimals "
    "(a 1 s average), energy mJ since driver load, violations ns since driver load, framebuffer "
    "MiB (free = total - reserved - used), counts. NVLINK_BANDWIDTH_TOTAL is written as the "
    "rate-like value dcgm-exporter actually shows (MB/s scale), not a counter.",
    "Workloads: per SKU partition a list scheduler places multi-host training (2-8 hosts, all 8 "
    "GPUs, lognormal 30 h median), single-host training and 'mixed' hosts split into groups of "
    "1/2/4/8 GPUs running inference (diurnal request load, util-proportional power, memory-bound "
    "copy utilisation, rare NVDEC use on the PCIe hosts), fine-tunes, notebooks (mostly an open "
    "context at high idle clocks) and idle gaps. Training samples fall in a compute phase, a "
    "communication phase (power 30-65 % of compute, util stays high, NVLink traffic high) or a "
    "checkpoint stall, drawn per host and scrape. Pipeline stages give +-3 % per-GPU demand, one "
    "hot stage (+8 %) in 30 % of jobs. After a job the clocks often stay at max (~128 W on H100, "
    "reason 0) for 10-20 min, as the H100 fixture's cool-down shows.",
    "Power: chip power = static (idle power x board leakage factor + 0.15 % of TDP per C above "
    "38 C) + kappa x (TDP - idle) x board dynamic factor; the NVML reading is chip power x (1 + "
    "VRM loss) + VRM idle loss. When the reading would pass the enforced limit the SW power cap "
    "(0x4) holds it 0-4 W below the limit and the SM clock falls as (dynamic budget / dynamic "
    "demand)^(1/2.3) (a bf16 matmul at 700 W gives ~1350 MHz, as in the fixture); +-1.2 % "
    "per-board clock bias at the cap and +-22 MHz jitter. POWER_VIOLATION accrues the capped "
    "share of each interval.",
    "Temperature follows the few-minute mean power of the job, not the scrape-instant power: "
    "T_gpu = inlet (air) or local coolant temperature (dlc) + offset + (R_die + R_sink) x mean "
    "chip power (H100 air: 37 C at 72 W, ~71 C at 698 W as in the fixture); HBM has its own "
    "resistance plus a memory-activity term. DLC: convection resistance ~ flow^-0.8 and coolant "
    "rise P/(m_dot c_p) with plates in series, so a downstream GPU runs hotter when its upstream "
    "neighbour works. SW thermal slowdown (0x20, THERMAL_VIOLATION) holds the GPU at its max "
    "operating temperature (H100/H200 87 C, A100 and H100 PCIe 85 C) by cutting power and "
    "clock; HW thermal slowdown (0x48) only at the slowdown temperature.",
    "Per-host configured power limits: 17 % of H100 hosts at 600/650 W, 34 % of A100 hosts at "
    "350 W, 17 % of H200 hosts at 650 W. Board spread: leakage +-8 %, dynamic power +-3.5 %, "
    "die resistance +-8 %, sink resistance +-6 %, temperature offsets ~1 C.",
    "Facility: weather drift +-1.5 C and diurnal +-0.6 C on inlets; CRAH trips (+5..9.5 C on a "
    "row for 1-10 h); CDU supply excursion (+4..8 C for hours) and CDU pump wear (supply creeps "
    "up 1.5-3 C over 6-20 days, then serviced); demand-response capping of a row (limit 70-82 % "
    "of TDP for 2-14 h); host PSU losses for 4 h-4 d, either power brake (0x88, clocks 35-55 %, "
    "power 30-50 % in ~55 % of loaded scrapes, BOARD_LIMIT_VIOLATION accrues) or a BMC node cap "
    "(limit 60-80 % of TDP); a marginal PSU rail on some PCIe hosts (rare dips on all cards); a "
    "rack power loss; hot-swappable fan-module failures (two GPUs in one airflow column, sink "
    "resistance +35..80 % for hours to days).",
    "Operations: rolling driver upgrade 570.172.08 -> 580.95.05 of the Hopper hosts in batches "
    "from 38-50 % into the window (drain 1-3 h, reboot); routine reboots; exporter restarts "
    "(XID gauge back to 0, 30 % lose a scrape); exporter hangs (hours without series); 0.2 % "
    "missed scrapes, short network gaps, one hall-wide Prometheus outage of 1-3 h.",
    "Counters: volatile ones (ECC VOL, PCIe replay, NVLink errors, violations, energy) restart "
    "at every driver load (reboot) and board change, volatile ECC also at GPU resets; aggregate "
    "ECC and remapped rows follow the board (InfoROM) across reboots; initial values reflect "
    "1-60 days of uptime; 20 % of original boards start with aggregate SBE history and 8 % with "
    "1-4 correctable remaps.",
    "XID gauge: the last code since the exporter's DCGM started, repeats invisible, cleared by an "
    "exporter restart or reboot; 12 % of GPUs start the window with a latched application XID. "
    "Background: application XIDs 13/31/43/45 at ~8 per GPU-year on busy GPUs; benign 63 and "
    "92 with SBE bursts; 94 contained errors absorbed by a row remap (GPU reset after); "
    "transient 119 cleared by a GPU reset; sympathetic 74 on NVLink peers; 45 on job peers "
    "after an uncorrectable ECC.",
    "Failure handling: failures.csv time is the event time between two scrapes; the next scrape "
    "shows the terminal signal. The job on the GPU crashes; every GPU sharing that job idles "
    "20-90 min; the failed GPU is drained, often the whole host (60 % SXM, 30 % PCIe). A repair "
    "visit ~18 h later (median; 1 h-6 d) takes the host down ~3 h; 80 % get a new board (new "
    "UUID), otherwise the host returns with 7 GPUs (gpu/device labels renumbered) until a "
    "second visit ~4 days later; 70 % of repairs are followed by 30-60 min of burn-in stress. "
    "6 % of replacement boards fail young (no precursor).",
    "Board choice per mode (weights): power: 700 W parts x1.5, A100 x0.8, PCIe x1.2, one 'lemon' "
    "H100 host x5; thermal: exp((mean inlet - hall mean)/2.5 C), A100 x1.4, H100 PCIe x1.3; hbm: "
    "Hopper x1.5, A100 x0.7, SBE-cohort boards x3; pcie: hosts with marginal risers x3; nvlink: "
    "NVLink boards only; other: uniform. Failure times uniform after the first ~10 h.",
    "thermal/tim (air, 50 %): die-side (interface) resistance grows as s^g (g 1.3-2.4) over a "
    "lognormal lead (median 12 d, sigma 0.7) to 1.05-1.4x what pushes the loaded GPU 3 C past "
    "its max operating temperature. Seen first as a hotter GPU under load at the same power "
    "(idle barely moves), then more leakage and a lower clock at the cap, SW thermal slowdown "
    "only near the end; HBM follows weakly.",
    "thermal/fan (air, 25 %): heat-sink/airflow resistance rises in 2-4 steps (median lead 3 d) "
    "to 1.05-1.4x the throttle point; idle and load, GPU and HBM; the GPU sharing the airflow "
    "column gets 70 % of the effect and does not fail.",
    "thermal/plate (dlc, 75 % of dlc thermal): cold-plate fouling raises the plate's convection "
    "resistance and cuts the pair loop's flow by 35-60 %, so the partner plate warms too "
    "(median lead 9 d).",
    "thermal/sensor (10 %): temperature glitches (+15..60 C spikes) at rising frequency; late "
    "glitches assert HW thermal slowdown falsely. thermal/sudden (15 %): no precursor. Terminal "
    "thermal: XID 79 (55 %: falls off the bus, every series but the XID gauge vanishes), XID 62 "
    "(25 %) or an operator drain without XID (20 %).",
    "power/vrm (45 %): VRM conversion loss grows to 5-11 % (median lead 6 d): more input power "
    "for the same delivered power, so under the cap the chip gets less and the SM clock sits "
    "2.5-5 % below its own baseline for the same job; idle draw +3..9 W (x TDP/700); regulation "
    "noise in the power reading growing to 15-35 W sd (healthy ~1.2 W at the cap); in the last "
    "part HW slowdown (0x8) in 15 % of loaded scrapes.",
    "power/input (25 %): contact degradation in the input path: brown-out dips under heavy load "
    "(power 40-75 %, clock 45-80 % with utilisation unchanged; 30 % of dips show 0x8), rising "
    "from 0.4 % to 30 % of heavy scrapes (median lead 3 d); nothing at idle. power/sudden "
    "(30 %): no precursor. Terminal power: XID 79 (60 %), 62 (20 %), 119 (20 %).",
    "hbm: 50 % with precursors (lead median 2.5 d, sigma 1.3): bursty SBE increments (lognormal, "
    "median ~40, growing), correctable remaps +1 with XID 63 in half the bursts, XID 92 for "
    "bursts > 2000, in 30 % an earlier contained uncorrectable (XID 94, DBE +1, uncorrectable "
    "remap +1). Terminal: XID 48, DBE +1..3, uncorrectable remaps +1..2, then 95 (45 %), 94 "
    "(20 %) or 64 with ROW_REMAP_FAILURE=1 (35 %).",
    "pcie: 30 % with a precursor: replays rising exponentially from ~2 to ~2000 per 10 min "
    "(median lead 18 h); terminal XID 79, off the bus. nvlink (NVLink boards): 50 % with a "
    "precursor: CRC flit errors rising from ~50 to ~30000 per 10 min, data CRC 5 %, replays "
    "20 %, recovery errors late; terminal XID 74 with recovery errors.",
    "other: GSP (XID 119/120; 20 % with earlier transient 119s cleared by a GPU reset), hang "
    "(109/46/62; 10 % with earlier XID 8), SRAM (XID 48 + volatile DBE; 25 % with small SBE "
    "increments), silent data corruption (no telemetry signal; drained).",
    "precursor / precursor_start: true only when the modelled degradation shows in a present "
    "scrape before the failure: tim: a loaded scrape (util >= 50 %) with >= 3 C model excess; "
    "fan/plate: >= 2 C excess; sensor: the first glitch; vrm: >= 15 W modelled loss or >= 5 W "
    "regulation noise; input: the first dip; counter modes: the first present scrape at or after "
    "the first precursor increment or XID. precursor_start is that scrape's time; a degradation "
    "older than the window starts at the first scrape.",
    "Non-failing look-alikes: interface drift that plateaus below the throttle point (35 % fixed "
    "by a re-seat), VRM-like drift on the lemon host's healthy boards and a few others "
    "(plateau), mild cold-plate fouling, degradations begun inside the window that would fail "
    "after it (censored), the fan-column and cooling-loop partners, 6 % SBE-active boards "
    "(bursts ~0.1/day, some remaps and XID 63), 8 % PCIe-noisy slots, 10 % NVLink-noisy links, "
    "replays at link training after boot, reliability-violation ticks on 10 % of boards.",
    "Not modelled: fan speeds (N/A on these boards), PCIe link width/generation, DCP/PROF "
    "fields, Kubernetes pod labels, MIG.",
]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[1] if __doc__ else "")
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--end", type=int, default=DEFAULT_END)
    ap.add_argument("--days", type=float, default=45.0)
    ap.add_argument("--promtool", default=None)
    args = ap.parse_args(argv)
    truth = run(args)
    summary = {
        k: truth[k]
        for k in (
            "slots",
            "boards",
            "failures",
            "failures_by_mode",
            "precursors_by_mode",
            "samples_written",
            "timing_seconds",
        )
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
