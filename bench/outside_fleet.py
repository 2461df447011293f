#!/usr/bin/env python3
"""Independent GPU-fleet telemetry simulator in NVIDIA dcgm-exporter's schema.

Provenance and use: this generator was written blind, by a separate session that never saw
this project's simulator (``gpu_health.sim``), from the description of the outside trial in
issue #16. It is kept in the repository only to *evaluate* the scorer on a fleet whose physics
we did not write: never train, tune or choose weights or thresholds on what it generates, or it
stops being held out. The numbers the scorer ships with on it are in docs/model-card.md.

Writes a Prometheus TSDB (built with ``promtool tsdb create-blocks-from
openmetrics``) plus ``failures.csv`` (ground truth) and ``truth.json`` (a
summary of everything the fleet contains).

Design notes (the public facts used, and why):

* Metric and label names follow NVIDIA/dcgm-exporter (``etc/default-counters.csv``
  and ``etc/dcp-metrics-included.csv``): ``DCGM_FI_DEV_*`` fields, every one
  exposed as a gauge, labelled ``gpu``, ``UUID``, ``device`` (``nvidiaN``),
  ``modelName``, ``Hostname``, ``DCGM_FI_DRIVER_VERSION`` and ``pci_bus_id``;
  a Prometheus scrape adds ``job`` and ``instance`` (port 9400, the exporter's
  default).
* ``DCGM_FI_DEV_XID_ERRORS`` is "Value of the last XID error encountered", so it
  is a step gauge, 0 until the first XID after the exporter/driver started.
* Volatile ECC counters (``*_VOL_*``), PCIe replay, NVLink error and violation
  counters are kept by the driver since it loaded: a reboot / GPU reset zeroes
  them.  Aggregate ECC counters and remapped-row counts live in the InfoROM and
  survive resets
  they start at 0 on a brand-new (replacement) board.
* Failure rate: Meta's Llama 3 paper (2024) reports 419 unexpected interruptions
  in 54 days on 16,384 H100s, 268 of them GPU-related (faulty GPU 148, HBM3
  memory 72, SRAM 19, GSP 17, thermal interface/sensor 6, ...), i.e. about
  3e-4 GPU failures per GPU-day.  This fleet deliberately runs ~25x hotter (86
  failures on 240 GPUs in 45 days) so the statistics are usable.  The mode mix
  is loosely shaped after that breakdown: memory (HBM) is the largest named
  class, "faulty GPU"/GSP/SRAM end up in ``other``.
* Row remapping (A100/H100, replaces page retirement): a correctable error
  pattern can remap a row (``CORRECTABLE_REMAPPED_ROWS``), an uncorrectable one
  remaps it after a DBE (``UNCORRECTABLE_REMAPPED_ROWS``)
  running out of spare
  rows sets ``ROW_REMAP_FAILURE`` and the board has to be RMA'd.  XID 63 is the
  row-remap recording event, XID 64 the recording failure, XID 48 a DBE,
  XID 94/95 contained/uncontained ECC errors, XID 79 "GPU has fallen off the
  bus", XID 74 an NVLink error, XID 13/31/43 application faults (benign for the
  hardware), XID 119/120 GSP RPC timeouts, XID 62 internal micro-controller halt.
* Violation counters (``POWER_VIOLATION``, ``THERMAL_VIOLATION``) count
  microseconds of throttling
  at most 600e6 us can accrue in a 10-minute
  sample.  H100 SXM is a 700 W part and A100 SXM4 a 400 W part
  H100 SM clocks
  boost to 1980 MHz, A100 to 1410 MHz.
"""
from __future__ import annotations

import argparse
import csv
import datetime as _dt
import json
import math
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field

import numpy as np

MODES: tuple[str, ...] = ("hbm", "pcie", "nvlink", "thermal", "power", "other")
#: share of failures per mode (Llama 3 breakdown, re-binned; see module docstring)
MODE_MIX: dict[str, float] = {"hbm": 0.30, "pcie": 0.15, "nvlink": 0.14,
                              "thermal": 0.10, "power": 0.09, "other": 0.22}
#: relative chance a failure of this mode shows a precursor: memory and cooling
#: problems degrade visibly (corrected errors, drift) far more often than
#: "faulty GPU"/GSP crashes, which are mostly sudden.
PREC_WEIGHT: dict[str, float] = {"hbm": 1.6, "pcie": 1.0, "nvlink": 1.1,
                                 "thermal": 1.5, "power": 1.1, "other": 0.2}

MODELS = {
    # name, TDP W, idle W, max SM MHz, idle SM MHz, degC per W (die), degC per W (HBM),
    # PCI bus ids of the 8 SXM slots on a typical HGX/DGX board, driver versions
    "H100": dict(name="NVIDIA H100 80GB HBM3", tdp=700.0, idle=72.0, fmax=1980.0,
                 fidle=345.0, k_die=0.056, k_mem=0.066,
                 bus=["18", "2A", "3A", "5D", "9A", "AB", "BA", "DB"],
                 drivers=["535.129.03", "535.183.01", "550.54.15"]),
    "A100": dict(name="NVIDIA A100-SXM4-80GB", tdp=400.0, idle=58.0, fmax=1410.0,
                 fidle=210.0, k_die=0.095, k_mem=0.105,
                 bus=["07", "0F", "47", "4E", "87", "90", "B7", "BD"],
                 drivers=["525.147.05", "535.129.03", "535.183.01"]),
}

METRICS: list[tuple[str, str]] = [
    ("DCGM_FI_DEV_GPU_TEMP", "GPU temperature (in C)."),
    ("DCGM_FI_DEV_MEMORY_TEMP", "Memory temperature (in C)."),
    ("DCGM_FI_DEV_POWER_USAGE", "Power draw (in W)."),
    ("DCGM_FI_DEV_GPU_UTIL", "GPU utilization (in %)."),
    ("DCGM_FI_DEV_SM_CLOCK", "SM clock frequency (in MHz)."),
    ("DCGM_FI_DEV_XID_ERRORS", "Value of the last XID error encountered."),
    ("DCGM_FI_DEV_ECC_SBE_VOL_TOTAL", "Total number of single-bit volatile ECC errors."),
    ("DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", "Total number of double-bit volatile ECC errors."),
    ("DCGM_FI_DEV_ECC_SBE_AGG_TOTAL", "Total number of single-bit persistent ECC errors."),
    ("DCGM_FI_DEV_ECC_DBE_AGG_TOTAL", "Total number of double-bit persistent ECC errors."),
    ("DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS", "Number of remapped rows for correctable errors"),
    ("DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS", "Number of remapped rows for uncorrectable errors"),
    ("DCGM_FI_DEV_ROW_REMAP_FAILURE", "Whether remapping of rows has failed"),
    ("DCGM_FI_DEV_PCIE_REPLAY_COUNTER", "Total number of PCIe retries."),
    ("DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL",
     "Total number of NVLink flow-control CRC errors."),
    ("DCGM_FI_DEV_NVLINK_REPLAY_ERROR_COUNT_TOTAL", "Total number of NVLink retries."),
    ("DCGM_FI_DEV_NVLINK_RECOVERY_ERROR_COUNT_TOTAL", "Total number of NVLink recovery errors."),
    ("DCGM_FI_DEV_POWER_VIOLATION", "Throttling duration due to power constraints (in us)."),
    ("DCGM_FI_DEV_THERMAL_VIOLATION", "Throttling duration due to thermal constraints (in us)."),
]

#: promtool groups samples into blocks aligned to this duration (an allowed
#: Prometheus block range: 2h * 3^3); one text file per block keeps each file
#: parsed only twice by promtool.
BLOCK_S = 54 * 3600


@dataclass
class Occupant:
    """One physical board in one slot (host, gpu index) for part of the history."""
    slot: int
    uuid: str
    start: int                 # first sample index
    end: int                   # last sample index (inclusive)
    failed: bool
    generation: int            # 0 = original board, 1+ = replacements
    mode: str | None = None
    precursor: bool = False
    prec_start: int | None = None
    benign: list[str] = field(default_factory=list)


def _uuid(rng: np.random.Generator) -> str:
    h = "".join(f"{x:08x}" for x in rng.integers(0, 2 ** 32, size=4))
    return f"GPU-{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def seg_cumsum(inc: np.ndarray, reset: np.ndarray) -> np.ndarray:
    """Cumulative sum along axis 1 that restarts from 0 wherever ``reset`` is set
    (the value at a reset index equals that index's increment)."""
    c = np.cumsum(inc, axis=1)
    T = inc.shape[1]
    r = np.where(reset, np.arange(T)[None, :], 0)
    r = np.maximum.accumulate(r, axis=1)
    prev = np.take_along_axis(c, np.maximum(r - 1, 0), axis=1)
    prev = np.where(r > 0, prev, 0.0)
    return c - prev


def ffill_events(ev: np.ndarray, zero: np.ndarray) -> np.ndarray:
    """Step gauge: last event code seen; ``zero`` marks points where the gauge
    restarts at 0 (exporter/driver restart); an event at the same index wins."""
    e = np.where(ev > 0, ev.astype(float), np.where(zero, 0.0, np.nan))
    T = e.shape[1]
    idx = np.where(~np.isnan(e), np.arange(T)[None, :], 0)
    idx = np.maximum.accumulate(idx, axis=1)
    out = np.take_along_axis(e, idx, axis=1)
    return np.nan_to_num(out, nan=0.0)


def accel_times(rng: np.random.Generator, n: int, a: int, b: int) -> np.ndarray:
    """n event indices in [a, b], density rising towards b (degradation
    accelerates before a hard failure)
    the first one is pinned at a so the
    precursor is visible from its recorded start."""
    u = rng.random(n) ** 0.5
    idx = a + (u * (b - a)).astype(int)
    idx[0] = a
    return np.clip(idx, a, b)


class Fleet:
    """Builds all per-slot arrays (shape: slots x samples) deterministically."""

    def __init__(self, gpus: int, days: float, res: int, seed: int, end: int,
                 n_fail: int | None, prec_share: float, confounders: bool = True,
                 terminal: bool = True) -> None:
        self.confounders = confounders
        self.terminal = terminal
        self.rng = np.random.default_rng(seed)
        self.G = gpus
        self.H = math.ceil(gpus / 8)
        self.res = res
        self.T = round(days * 86400 / res)
        self.spd = 86400 / res                       # samples per day
        self.t0 = end - self.T * res
        self.times = self.t0 + np.arange(self.T, dtype=np.int64) * res
        self.days = days
        self.n_fail_target = n_fail if n_fail is not None else round(86 * gpus / 240 * days / 45)
        self.prec_share = prec_share
        self.log: dict = {}

    # ------------------------------------------------------------------ layout
    def layout(self) -> None:
        """Hosts, models, warm hosts, power-capped hosts, driver versions."""
        rng, H = self.rng, self.H
        # ~60 % H100 hosts, the rest A100 (a typical mixed fleet mid-transition)
        kinds = np.array(["H100"] * H, dtype=object)
        kinds[rng.permutation(H)[: round(0.4 * H)]] = "A100"
        self.host_kind = kinds
        self.hostnames = [f"gpu-node-{i + 1:03d}" for i in range(H)]
        perm = rng.permutation(H)
        n_warm = max(1, round(0.1 * H))
        self.warm_hosts = sorted(perm[:n_warm].tolist())
        self.warm_offset = {h: float(rng.uniform(6.0, 10.0)) for h in self.warm_hosts}
        n_cap = max(1, round(0.07 * H))
        self.capped_hosts = sorted(perm[n_warm:n_warm + n_cap].tolist())
        if not self.confounders:   # diagnostic: no warm hosts, no rack power capping
            self.warm_hosts, self.warm_offset, self.capped_hosts = [], {}, []
        self.slot_host = np.arange(self.G) // 8
        self.slot_idx = np.arange(self.G) % 8

    # -------------------------------------------------------------- occupants
    def occupants_and_failures(self) -> None:
        """Renewal process per slot: exponential lifetimes (constant hazard of
        random hardware faults) with a 1.3x hazard for replacement boards
        (refurbished RMA units), lognormal swap delay (median 3 d: triage, RMA
        ticket, technician visit).  Warm hosts never fail (by design of the
        trial).  Redrawn until the count is within 4 % of the target."""
        rng = self.rng
        eligible = [s for s in range(self.G) if self.slot_host[s] not in self.warm_hosts]
        lam = self.n_fail_target / (len(eligible) * self.days * 0.96)   # per day
        for _attempt in range(500):
            occs: list[Occupant] = []
            for s in range(self.G):
                start, gen = 0, 0
                while start < self.T:
                    if self.slot_host[s] in self.warm_hosts:
                        life = np.inf
                    else:
                        life = rng.exponential(1.0 / (lam * (1.3 if gen else 1.0))) * self.spd
                    f = start + int(life) if np.isfinite(life) else self.T
                    if f < self.T and f >= start + 6:
                        occs.append(Occupant(s, _uuid(rng), start, f, True, gen))
                        delay = float(np.clip(rng.lognormal(math.log(3.0), 0.6), 1.0, 14.0))
                        start = f + int(delay * self.spd)
                        gen += 1
                    else:
                        occs.append(Occupant(s, _uuid(rng), start, self.T - 1, False, gen))
                        break
            nf = sum(o.failed for o in occs)
            if abs(nf - self.n_fail_target) <= max(2, 0.04 * self.n_fail_target):
                break
        self.occs = occs
        fails = [o for o in occs if o.failed]
        modes = rng.choice(list(MODE_MIX), size=len(fails), p=np.array(list(MODE_MIX.values())))
        for o, m in zip(fails, modes, strict=True):
            o.mode = str(m)
        # precursors: exactly round(share * N) failures, weighted by mode, among
        # boards that have >= 1 day of history before failing
        cand = [i for i, o in enumerate(fails) if o.end - o.start >= self.spd]
        k = min(len(cand), round(self.prec_share * len(fails)))
        w = np.array([PREC_WEIGHT[fails[i].mode] for i in cand])
        chosen = rng.choice(cand, size=k, replace=False, p=w / w.sum())
        for i in chosen:
            o = fails[i]
            o.precursor = True
            # lead-time law: mixture of hours (fast-developing faults), days and
            # weeks (slow wear-out such as HBM row exhaustion or pump decay)
            comp = rng.choice(3, p=[0.45, 0.35, 0.20])
            med, sig = [(10 / 24, 0.7), (3.0, 0.5), (12.0, 0.4)][comp]
            lead_d = float(np.clip(rng.lognormal(math.log(med), sig), 2 / 24, 30.0))
            lead = int(lead_d * self.spd)
            lead = max(2, min(lead, o.end - o.start - 3))
            o.prec_start = o.end - lead
        self.fails = fails

    # ------------------------------------------------------------- host events
    def host_events(self) -> None:
        """Busy/idle job schedule, scrape gaps, reboots, driver upgrades,
        replacement maintenance windows, per-GPU resets."""
        rng, H, T, spd = self.rng, self.H, self.T, self.spd
        busy = np.zeros((H, T), bool)
        for h in range(H):
            t, on = 0, rng.random() < 0.8
            while t < T:
                d = (rng.lognormal(math.log(2.0), 0.8) if on
                     else rng.lognormal(math.log(4 / 24), 0.8))
                n = max(1, int(d * spd))
                busy[h, t:t + n] = on
                t += n
                on = not on
        self.busy = busy
        present = np.ones((H, T), bool)
        host_reset = np.zeros((H, T), bool)
        gaps, reboots, upgrades = [], [], []
        # whole-host scrape gaps (exporter restart, network blip, Prometheus
        # hiccup): ~1 per 10 days per host, 10 min .. 6 h
        for h in range(H):
            for _ in range(rng.poisson(self.days / 10)):
                a = int(rng.integers(0, T))
                n = int(np.clip(rng.lognormal(math.log(4), 0.9), 1, 36))
                present[h, a:a + n] = False
                gaps.append((h, a, min(n, T - a), "scrape"))
        # plain reboots (kernel patching, hung jobs): ~1 per 20 days per host,
        # 20-40 min down, volatile counters and last-XID restart from 0
        for h in range(H):
            for _ in range(rng.poisson(self.days / 20)):
                a = int(rng.integers(1, T - 6))
                n = int(rng.integers(2, 5))
                present[h, a:a + n] = False
                host_reset[h, min(a + n, T - 1)] = True
                reboots.append((h, a + n, "reboot"))
                gaps.append((h, a, n, "reboot"))
        # driver upgrades on ~27 % of hosts, in the middle of the history
        n_up = max(1, round(0.27 * H))
        self.driver_change: dict[int, int] = {}
        for h in sorted(rng.permutation(H)[:n_up].tolist()):
            a = int(rng.uniform(0.2, 0.8) * T)
            n = int(rng.integers(2, 7))
            present[h, a:a + n] = False
            self.driver_change[h] = a + n
            host_reset[h, a + n] = True
            upgrades.append((h, a + n))
            gaps.append((h, a, n, "upgrade"))
            reboots.append((h, a + n, "upgrade"))
        # replacement swap: host drained and powered off 1-3 h before the new
        # board shows up; reboot resets all volatile counters on the host
        for o in self.occs:
            if o.generation > 0:
                h = self.slot_host[o.slot]
                n = int(rng.integers(6, 19))
                a = max(0, o.start - n)
                present[h, a:o.start] = False
                host_reset[h, o.start] = True
                gaps.append((h, a, o.start - a, "swap"))
                reboots.append((h, o.start, "swap"))
        self.present_host = present
        self.host_reset = host_reset
        self.gaps, self.reboots, self.upgrades = gaps, reboots, upgrades

    # ---------------------------------------------------------------- metrics
    def build(self) -> None:
        """All metric arrays, slot x sample."""
        rng, G, T, spd, res = self.rng, self.G, self.T, self.spd, self.res
        sh = self.slot_host
        kind = self.host_kind[sh]
        P = {k: np.array([MODELS[x][k] for x in kind]) for k in
             ("tdp", "idle", "fmax", "fidle", "k_die", "k_mem")}
        occ_id = np.full((G, T), -1, int)
        occ_start = np.zeros((G, T), bool)
        for i, o in enumerate(self.occs):
            occ_id[o.slot, o.start:o.end + 1] = i
            occ_start[o.slot, o.start] = True
        self.occ_id = occ_id
        present = self.present_host[sh] & (occ_id >= 0)
        # the last samples of a failing board are always scraped (last sample = failure)
        for o in self.fails:
            present[o.slot, max(o.start, o.end - 2):o.end + 1] = True
        self.present = present
        busy = self.busy[sh]

        # per-GPU resets (nvidia-smi -r after a hung job): ~1 per 100 GPU-days
        gpu_reset = np.zeros((G, T), bool)
        n_gres = rng.poisson(G * self.days / 100)
        gs, gt = rng.integers(0, G, n_gres), rng.integers(1, T, n_gres)
        gpu_reset[gs, gt] = True
        self.n_gpu_resets = int(gpu_reset.sum())
        vol_reset = self.host_reset[sh] | gpu_reset | occ_start
        agg_reset = occ_start

        # --- load: utilisation, power, clock
        util = np.where(busy, np.clip(rng.normal(96.5, 2.5, (G, T)), 60, 100),
                        np.clip(rng.normal(0.3, 0.5, (G, T)), 0, 5))
        eff = rng.normal(1.0, 0.03, G)[:, None]
        load_w = P["tdp"][:, None] * 0.88 * eff
        power = P["idle"][:, None] + (util / 100.0) * (load_w - P["idle"][:, None])
        power = power + rng.normal(0, 0.015, (G, T)) * P["tdp"][:, None]
        clock = np.where(busy, P["fmax"][:, None] - np.abs(rng.normal(0, 55, (G, T))),
                         P["fidle"][:, None])
        # H100s under training sit at the 700 W cap part of the time: small
        # baseline power-violation on most busy H100s (normal, not a fault)
        base_pv = np.where(kind == "H100", rng.beta(0.6, 12, G), rng.beta(0.3, 40, G))[:, None]
        pv_inc = busy * base_pv * rng.random((G, T)) * 2 * 600e6 * (res / 600)
        ev_xid = np.zeros((G, T), int)
        sbe = np.zeros((G, T))
        dbe = np.zeros((G, T))
        pcie = np.zeros((G, T))
        crc = np.zeros((G, T))
        nrep = np.zeros((G, T))
        nrec = np.zeros((G, T))
        crow = np.zeros((G, T))
        urow = np.zeros((G, T))
        rfail_ev = np.zeros((G, T))
        temp_add = np.zeros((G, T))

        # --- benign: rack power capping on a couple of hosts (all 8 GPUs throttle)
        self.cap_episodes = 0
        for h in self.capped_hosts:
            for _ in range(rng.poisson(self.days / 4)):
                a = int(rng.integers(0, T))
                n = int(rng.integers(3, 19))
                sl = slice(h * 8, h * 8 + 8)
                frac = rng.uniform(0.3, 0.9)
                pv_inc[sl, a:a + n] += frac * 600e6 * (res / 600) * busy[sl, a:a + n]
                clock[sl, a:a + n] *= rng.uniform(0.6, 0.8)
                power[sl, a:a + n] *= rng.uniform(0.65, 0.85)
                self.cap_episodes += 1

        # --- benign XIDs 13/31/43 (application faults), ~1 per 25 GPU-days
        n_app = rng.poisson(G * self.days / 25)
        ev_xid[rng.integers(0, G, n_app), rng.integers(0, T, n_app)] = rng.choice(
            [13, 31, 43], n_app, p=[.4, .35, .25])
        self.n_app_xid = int(n_app)
        # rare isolated PCIe replays on any board (1 per 30 GPU-days, 1-3 each)
        n_bg = rng.poisson(G * self.days / 30)
        pcie[rng.integers(0, G, n_bg), rng.integers(0, T, n_bg)] += rng.integers(1, 4, n_bg)

        # --- benign noisy boards, drawn among boards that never fail
        healthy = [o for o in self.occs if not o.failed and o.end - o.start > 5 * spd]
        order = rng.permutation(len(healthy))
        n_e, n_p, n_n = round(0.08 * G), round(0.06 * G), round(0.04 * G)
        if not self.confounders:   # diagnostic: no benign noisy boards
            n_e = n_p = n_n = 0
        groups = {"ecc": order[:n_e], "pcie": order[n_e:n_e + n_p],
                  "nvlink": order[n_e + n_p:n_e + n_p + n_n]}
        for kind_b, ids in groups.items():
            for i in ids:
                o = healthy[i]
                o.benign.append(kind_b)
                span = o.end - o.start
                s = o.slot
                if kind_b == "ecc":
                    n = max(1, rng.poisson(span / spd / 4))
                    t = rng.integers(o.start, o.end + 1, n)
                    np.add.at(sbe[s], t, rng.integers(10, 61, n))
                    rm = t[rng.random(n) < 0.2]
                    np.add.at(crow[s], rm, 1)
                    ev_xid[s, rm] = 63
                elif kind_b == "pcie":
                    n = max(1, rng.poisson(span / spd / 3))
                    t = rng.integers(o.start, o.end + 1, n)
                    np.add.at(pcie[s], t,
                              np.maximum(2, rng.lognormal(math.log(30), 1.0, n)).astype(int))
                else:
                    for _ in range(int(rng.integers(1, 4))):
                        a = int(rng.integers(o.start, o.end))
                        n = int(rng.uniform(1, 5) * spd)
                        r = rng.uniform(1, 10)
                        b = min(a + n, o.end + 1)
                        crc[s, a:b] += rng.poisson(r * (0.3 + 0.7 * busy[s, a:b]))
                        nrep[s, a:b] += rng.poisson(0.1 * r, b - a)

        # --- failures: precursors and terminal signatures
        self.thermal_drift = []
        for o in self.fails:
            s, f = o.slot, o.end
            if o.precursor:
                a = o.prec_start
                L = f - a
                Ld = L / spd
                if o.mode == "hbm":
                    n = int(np.clip(2 + rng.poisson(1.5 * Ld), 2, 40))
                    t = accel_times(rng, n, a, f - 1)
                    np.add.at(sbe[s], t, rng.integers(10, 61, n))
                    rm = t[rng.random(n) < 0.35]
                    np.add.at(crow[s], rm, 1)
                    ev_xid[s, rm] = 63
                    if rng.random() < 0.5:
                        tu = int(a + rng.uniform(0.7, 0.95) * L)
                        urow[s, tu] += 1
                        ev_xid[s, tu] = 63
                        if rng.random() < 0.5:
                            dbe[s, tu] += 1
                elif o.mode == "pcie":
                    n = int(np.clip(3 + rng.poisson(2 * Ld), 3, 60))
                    t = accel_times(rng, n, a, f - 1)
                    np.add.at(pcie[s], t,
                              np.maximum(5, rng.lognormal(math.log(40), 0.8, n)).astype(int))
                elif o.mode == "nvlink":
                    r1 = rng.uniform(3, 30)
                    mid = int(a + rng.uniform(0.4, 0.8) * L)
                    r2 = r1 * rng.uniform(2, 5)
                    rate = np.where(np.arange(a, f + 1) < mid, r1, r2)
                    inc = np.maximum(rng.poisson(rate * (0.3 + 0.7 * busy[s, a:f + 1])), 0)
                    inc[0] = max(inc[0], 1)
                    crc[s, a:f + 1] += inc
                    nrep[s, a:f + 1] += rng.poisson(0.2 * rate)
                    n = int(np.clip(1 + rng.poisson(0.5 * Ld), 1, 20))
                    t = accel_times(rng, n, a, f - 1)
                    np.add.at(nrec[s], t, 1)
                    xt = t[rng.random(n) < 0.3]
                    ev_xid[s, xt] = 74
                elif o.mode == "thermal":
                    dmax = rng.uniform(8, 18)
                    u = np.arange(L + 1) / max(L, 1)
                    temp_add[s, a:f + 1] += dmax * (0.25 + 0.75 * u ** 1.5)
                    self.thermal_drift.append(dmax)
                elif o.mode == "power":
                    n = int(np.clip(2 + rng.poisson(1.0 * Ld), 2, 30))
                    t = accel_times(rng, n, a, f - 1)
                    for ti in t:
                        d = int(rng.integers(3, 19))
                        b = min(ti + d, f + 1)
                        pv_inc[s, ti:b] += rng.uniform(0.3, 1.0) * 600e6 * (res / 600)
                        clock[s, ti:b] *= rng.uniform(0.45, 0.7)
                        power[s, ti:b] *= rng.uniform(0.55, 0.8)
                else:  # other: sporadic GSP RPC timeouts
                    n = int(np.clip(1 + rng.poisson(0.7 * Ld), 1, 10))
                    t = accel_times(rng, n, a, f - 1)
                    ev_xid[s, t] = rng.choice([119, 120], n)
            # terminal signature in the last one or two samples (~75 % of failures)
            if not self.terminal:   # diagnostic: failures leave no trace at all
                continue
            last = f - int(rng.integers(0, 2))
            u = rng.random()
            if o.mode == "hbm":
                if u < 0.6:
                    dbe[s, last] += int(rng.integers(1, 4))
                    ev_xid[s, last] = 48
                    if rng.random() < 0.5:
                        urow[s, f] += 1
                elif u < 0.8:
                    dbe[s, last] += 1
                    ev_xid[s, last] = 95
                elif u < 0.9:
                    ev_xid[s, last] = 94
                if rng.random() < 0.25:
                    rfail_ev[s, f] = 1
                    ev_xid[s, f] = 64
            elif o.mode == "pcie":
                if u < 0.75:
                    ev_xid[s, f] = 79
            elif o.mode == "nvlink":
                if u < 0.7:
                    ev_xid[s, last] = 74
                    nrec[s, last] += int(rng.integers(1, 4))
            elif o.mode == "thermal":
                if u < 0.4:
                    ev_xid[s, f] = 79
            elif o.mode == "power":
                if u < 0.5:
                    ev_xid[s, f] = 79
                elif u < 0.65:
                    ev_xid[s, f] = 62
            else:
                if u < 0.3:
                    ev_xid[s, f] = 79
                elif u < 0.5:
                    ev_xid[s, f] = 119
                elif u < 0.6:
                    ev_xid[s, f] = 62

        # --- temperatures (after power changes): inlet + per-slot airflow
        # offset + warm hosts + diurnal datacentre swing + thermal drift
        amb = 24.0 + rng.normal(0, 1.5, G)[:, None] + 1.0 * np.sin(
            2 * np.pi * (self.times[None, :] % 86400) / 86400.0)
        amb = amb + np.array([self.warm_offset.get(h, 0.0) for h in sh])[:, None]
        drift = temp_add * (0.5 + 0.5 * util / 100.0)
        gtemp = amb + P["k_die"][:, None] * power + drift + rng.normal(0, 0.7, (G, T))
        mtemp = amb + P["k_mem"][:, None] * power + 1.2 * drift + rng.normal(0, 0.7, (G, T))
        thr = 85.0
        over = np.clip((gtemp - (thr - 3)) / 8.0, 0, 1)
        clock = clock * (1 - 0.35 * over)
        tv_inc = np.clip((gtemp - thr) / 5.0, 0, 1) * 600e6 * (res / 600)

        # --- counters: initial values for the boards present at the start
        first = np.array([self.occs[occ_id[s, 0]].start == 0 if occ_id[s, 0] >= 0 else False
                          for s in range(G)])

        def init(arr: np.ndarray, vals: np.ndarray) -> None:
            """Add ``vals`` to the first sample of the boards present from the start."""
            arr[:, 0] = arr[:, 0] + np.where(first, vals, 0)

        sbe_agg_init = np.where(rng.random(G) < 0.3, rng.geometric(0.02, G), 0).astype(float)
        dbe_agg_init = np.where(rng.random(G) < 0.03, 1, 0).astype(float)
        sbe_agg_inc = sbe.copy()
        dbe_agg_inc = dbe.copy()
        init(sbe_agg_inc, sbe_agg_init)
        init(dbe_agg_inc, dbe_agg_init)
        init(crow, np.where(rng.random(G) < 0.12, rng.integers(1, 4, G), 0))
        sbe_vol_inc = sbe.copy()
        init(sbe_vol_inc, np.floor(sbe_agg_init * rng.random(G) * 0.3))
        init(pv_inc, rng.uniform(0, 3, G) * 1e11 * (kind == "H100"))
        init(pcie, rng.integers(0, 20, G))
        init(crc, np.where(rng.random(G) < 0.3, rng.integers(0, 50, G), 0))

        self.data = {
            "DCGM_FI_DEV_GPU_TEMP": np.rint(gtemp),
            "DCGM_FI_DEV_MEMORY_TEMP": np.rint(mtemp),
            "DCGM_FI_DEV_POWER_USAGE": np.round(np.maximum(power, 20.0), 3),
            "DCGM_FI_DEV_GPU_UTIL": np.rint(util),
            "DCGM_FI_DEV_SM_CLOCK": np.rint(clock),
            "DCGM_FI_DEV_XID_ERRORS": ffill_events(ev_xid, vol_reset),
            "DCGM_FI_DEV_ECC_SBE_VOL_TOTAL": seg_cumsum(sbe_vol_inc, vol_reset),
            "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL": seg_cumsum(dbe, vol_reset),
            "DCGM_FI_DEV_ECC_SBE_AGG_TOTAL": seg_cumsum(sbe_agg_inc, agg_reset),
            "DCGM_FI_DEV_ECC_DBE_AGG_TOTAL": seg_cumsum(dbe_agg_inc, agg_reset),
            "DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS": seg_cumsum(crow, agg_reset),
            "DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS": seg_cumsum(urow, agg_reset),
            "DCGM_FI_DEV_ROW_REMAP_FAILURE": np.minimum(seg_cumsum(rfail_ev, agg_reset), 1),
            "DCGM_FI_DEV_PCIE_REPLAY_COUNTER": seg_cumsum(pcie, vol_reset),
            "DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL": seg_cumsum(crc, vol_reset),
            "DCGM_FI_DEV_NVLINK_REPLAY_ERROR_COUNT_TOTAL": seg_cumsum(nrep, vol_reset),
            "DCGM_FI_DEV_NVLINK_RECOVERY_ERROR_COUNT_TOTAL": seg_cumsum(nrec, vol_reset),
            "DCGM_FI_DEV_POWER_VIOLATION": np.rint(seg_cumsum(pv_inc, vol_reset)),
            "DCGM_FI_DEV_THERMAL_VIOLATION": np.rint(seg_cumsum(tv_inc, vol_reset)),
        }

    # ------------------------------------------------------------------ series
    def series(self) -> None:
        """Series id per (slot, sample): one per (board UUID, driver version)."""
        G, T = self.G, self.T
        sid = np.full((G, T), -1, int)
        labels: list[str] = []
        for o in self.occs:
            h = int(self.slot_host[o.slot])
            g = int(self.slot_idx[o.slot])
            m = MODELS[self.host_kind[h]]
            cut = self.driver_change.get(h)
            pieces = [(o.start, o.end + 1, m["drivers"][0])]
            if cut is not None and o.start < cut <= o.end:
                pieces = [(o.start, cut, m["drivers"][0]), (cut, o.end + 1, m["drivers"][1])]
            elif cut is not None and cut <= o.start:
                pieces = [(o.start, o.end + 1, m["drivers"][1])]
            for a, b, drv in pieces:
                host = self.hostnames[h]
                labels.append(
                    f'gpu="{g}",UUID="{o.uuid}",device="nvidia{g}",modelName="{m["name"]}",'
                    f'Hostname="{host}",DCGM_FI_DRIVER_VERSION="{drv}",'
                    f'pci_bus_id="00000000:{m["bus"][g]}:00.0",instance="{host}:9400",job="dcgm-exporter"')
                sid[o.slot, a:b] = len(labels) - 1
        sid[~self.present] = -1
        self.sid, self.labels = sid, labels

    # ------------------------------------------------------------------ output
    def write_tsdb(self, out: str, keep_text: bool = False) -> None:
        """One OpenMetrics file per 54 h block window -> promtool -> delete."""
        prom = os.path.join(out, "prometheus")
        os.makedirs(prom, exist_ok=True)
        tstr = [str(int(t)) for t in self.times]
        first_block = (int(self.times[0]) // BLOCK_S) * BLOCK_S
        wstart = first_block
        int_metrics = {k for k in self.data if k != "DCGM_FI_DEV_POWER_USAGE"}
        while wstart <= int(self.times[-1]):
            a = int(np.searchsorted(self.times, wstart))
            b = int(np.searchsorted(self.times, wstart + BLOCK_S))
            wstart += BLOCK_S
            if a >= b:
                continue
            path = os.path.join(out, f"chunk_{a:06d}.om")
            sub = self.sid[:, a:b]
            with open(path, "w", buffering=1 << 22) as fh:
                for name, help_ in METRICS:
                    fh.write(f"# HELP {name} {help_}\n# TYPE {name} gauge\n")
                    arr = self.data[name][:, a:b]
                    parts: list[str] = []
                    for s in range(self.G):
                        row = sub[s]
                        if (row < 0).all():
                            continue
                        if name in int_metrics:
                            vals = [str(v) for v in arr[s].astype(np.int64).tolist()]
                        else:
                            vals = [f"{v:.3f}" for v in arr[s].tolist()]
                        for q in np.unique(row[row >= 0]):
                            pre = f"{name}{{{self.labels[q]}}} "
                            idx = np.nonzero(row == q)[0].tolist()
                            parts.append("".join([f"{pre}{vals[i]} {tstr[a + i]}\n" for i in idx]))
                    fh.write("".join(parts))
                fh.write("# EOF\n")
            r = subprocess.run(["promtool", "tsdb", "create-blocks-from", "openmetrics", "-q",
                                f"--max-block-duration={BLOCK_S // 3600}h", path, prom],
                               capture_output=True, text=True)
            if r.returncode != 0:
                sys.exit(f"promtool failed on {path}: {r.stderr[-2000:]}")
            if not keep_text:
                os.remove(path)
            print(f"  block {a}-{b} done", file=sys.stderr, flush=True)

    def write_truth(self, out: str) -> dict:
        """failures.csv and truth.json."""
        rows = []
        leads = []
        for o in sorted(self.fails, key=lambda o: o.end):
            ps = ""
            if o.precursor:
                ps = str(int(self.times[o.prec_start]))
                leads.append((o.end - o.prec_start) * self.res / 3600.0)
            rows.append([o.uuid, str(int(self.times[o.end])), o.mode,
                         "true" if o.precursor else "false", ps])
        with open(os.path.join(out, "failures.csv"), "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["uuid", "time", "mode", "precursor", "precursor_start"])
            w.writerows(rows)
        def iso(t: float) -> str:
            return _dt.datetime.fromtimestamp(int(t), _dt.UTC).isoformat()

        per_mode = {m: sum(o.mode == m for o in self.fails) for m in MODES}
        prec_mode = {m: sum(o.mode == m and o.precursor for o in self.fails) for m in MODES}
        benign = {k: sum(k in o.benign for o in self.occs) for k in ("ecc", "pcie", "nvlink")}
        gap_kinds: dict[str, int] = {}
        for g in self.gaps:
            gap_kinds[g[3]] = gap_kinds.get(g[3], 0) + 1
        truth = {
            "generator": "outside_fleet.py (independent outside simulator)",
            "schema": "dcgm-exporter",
            "start": iso(self.times[0]), "end": iso(self.times[-1]),
            "start_unix": int(self.times[0]), "end_unix": int(self.times[-1]),
            "resolution_s": self.res, "samples_per_series_max": self.T,
            "hosts": self.H, "gpu_slots": self.G,
            "hosts_by_model": {MODELS[k]["name"]: int((self.host_kind == k).sum()) for k in MODELS},
            "boards_total": len(self.occs), "series_total": len(self.labels),
            "failures": len(self.fails), "failures_per_mode": per_mode,
            "precursor_failures": int(sum(o.precursor for o in self.fails)),
            "precursor_share": round(sum(o.precursor for o in self.fails)
                                     / max(1, len(self.fails)), 3),
            "precursor_per_mode": prec_mode,
            "lead_time_hours_quantiles": (
                {q: round(float(np.quantile(leads, float(q))), 1)
                 for q in ("0.0", "0.1", "0.25", "0.5", "0.75", "0.9", "1.0")}
                if leads else {}),
            "replacements": int(sum(o.generation > 0 for o in self.occs)),
            "host_reboots_resets": len(self.reboots),
            "host_reboots_by_cause": {c: sum(r[2] == c for r in self.reboots)
                                      for c in ("reboot", "upgrade", "swap")},
            "gpu_resets": self.n_gpu_resets,
            "driver_upgrades": [{"host": self.hostnames[h], "time": iso(self.times[t]),
                                 "from": MODELS[self.host_kind[h]]["drivers"][0],
                                 "to": MODELS[self.host_kind[h]]["drivers"][1]}
                                for h, t in self.upgrades],
            "scrape_gaps_total": len(self.gaps), "scrape_gaps_by_cause": gap_kinds,
            "scrape_gap_hours_total": round(sum(g[2] for g in self.gaps) * self.res / 3600, 1),
            "benign_noisy_boards": benign,
            "warm_hosts": {self.hostnames[h]: round(v, 1) for h, v in self.warm_offset.items()},
            "power_capped_hosts": [self.hostnames[h] for h in self.capped_hosts],
            "power_cap_episodes": self.cap_episodes,
            "benign_app_xids_13_31_43": self.n_app_xid,
        }
        with open(os.path.join(out, "truth.json"), "w") as fh:
            json.dump(truth, fh, indent=2)
        return truth


def main(argv: list[str] | None = None) -> None:
    """CLI entry point."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gpus", type=int, default=240, help="GPU slots, 8 per host (default 240)")
    ap.add_argument("--days", type=float, default=45.0,
                    help="history length in days (default 45)")
    ap.add_argument("--resolution", type=int, default=600,
                    help="sample spacing in seconds (default 600); scrape gaps, reboots, swap "
                         "windows and throttling episodes are drawn in samples, so they last "
                         "longer at a coarser resolution")
    ap.add_argument("--seed", type=int, default=1,
                    help="random seed: the same seed and options give the same fleet (default 1)")
    ap.add_argument("--out", required=True,
                    help="output directory: OUT/prometheus (TSDB blocks, replaced if present), "
                         "OUT/failures.csv, OUT/truth.json")
    ap.add_argument("--failures", type=int, default=None,
                    help="target failure count (default 86 scaled by gpus/240 * days/45); the "
                         "fleet is redrawn (up to 500 times) until within 4%% (at least 2) of it")
    ap.add_argument("--precursor-share", type=float, default=0.30,
                    help="share of failures that show a precursor before failing (default 0.30)")
    ap.add_argument("--end", type=int, default=None,
                    help="Unix time the history ends (default: today's 00:00 UTC); pass it to "
                         "make two runs byte-identical")
    ap.add_argument("--no-confounders", action="store_true",
                    help="diagnostic: drop warm hosts, rack power capping and benign noisy boards")
    ap.add_argument("--no-terminal", action="store_true",
                    help="diagnostic: no XID/DBE in a failing board's last samples")
    ap.add_argument("--no-tsdb", action="store_true",
                    help="write only failures.csv and truth.json (no OpenMetrics text, no "
                         "promtool)")
    ap.add_argument("--keep-text", action="store_true",
                    help="keep the OpenMetrics files fed to promtool (OUT/chunk_*.om)")
    args = ap.parse_args(argv)
    end = args.end if args.end is not None else (int(time.time()) // 86400) * 86400
    t_0 = time.time()
    if os.path.exists(os.path.join(args.out, "prometheus")):
        shutil.rmtree(os.path.join(args.out, "prometheus"))
    os.makedirs(args.out, exist_ok=True)
    fl = Fleet(args.gpus, args.days, args.resolution, args.seed, end, args.failures,
               args.precursor_share, not args.no_confounders, not args.no_terminal)
    fl.layout()
    fl.occupants_and_failures()
    fl.host_events()
    fl.build()
    fl.series()
    truth = fl.write_truth(args.out)
    print(json.dumps(truth, indent=2))
    print(f"simulated in {time.time() - t_0:.1f}s", file=sys.stderr)
    if not args.no_tsdb:
        fl.write_tsdb(args.out, args.keep_text)
    print(f"done in {time.time() - t_0:.1f}s", file=sys.stderr)


if __name__ == "__main__":
    main()
