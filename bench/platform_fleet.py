"""PROVENANCE: written blind, without reading this project's simulator, scorer, exporter, tests or documentation, from public facts only (NVIDIA dcgm-exporter public sources and docs for metric names, label names and order, DaemonSet and Kubernetes pod/namespace/container attribution; NVIDIA Xid catalogue; DCGM field descriptions; NVML clock-event-reason bits and violation-time semantics; the real H100 readings in shared/fixtures/h100; Cui et al. 2025, NCSA Delta A100/H100 resilience study; Dubey et al. 2024, "The Llama 3 Herd of Models", interruption table of a 54-day 16k-H100 run; Kokolis et al. 2024, Meta RSC-1/RSC-2 reliability and lemon nodes; Alibaba, ByteDance and Microsoft production GPU-failure and gray-failure reports; DRAM/HBM field studies on correctable/uncorrectable error patterns). It exists only to EVALUATE the failure-prediction scorer on data its authors did not design. Never train, tune, calibrate or choose weights or thresholds on its output.

Synthetic dcgm-exporter telemetry of an enterprise private AI platform on Kubernetes, written as a
Prometheus TSDB (``promtool tsdb create-blocks-from openmetrics``), with ground-truth failures.

Usage::

    python bench/platform_fleet.py --seed N --out DIR [--days D] [--end EPOCH] [--promtool PATH]

Outputs ``DIR/prometheus/`` (TSDB blocks), ``DIR/failures.csv`` (uuid,time,mode,precursor,
precursor_start) and ``DIR/truth.json`` (summary).

Fleet
-----
34 nodes, 222 GPU slots: 12 x 8-GPU H100 SXM (HGX, NVLink), 6 x 8-GPU H200 HGX (two of them are
racked mid-window: fleet growth), 5 x 8-GPU L40S, 8 x 4-GPU L40S (four of them form an autoscaled
burst pool that is powered on for weekday business hours and off otherwise), 3 x 2-GPU H100 PCIe.
dcgm-exporter runs as a DaemonSet and is scraped every 5 minutes for 30 days (default); every
series carries gpu, UUID, pci_bus_id, device, modelName, Hostname, DCGM_FI_DRIVER_VERSION, plus
container/namespace/pod while a pod holds the GPU, plus Prometheus' instance (exporter pod IP:9400)
and job target labels. Scrape timestamps carry a fixed per-target offset with millisecond
decimals. Fields follow the project's counters CSV restricted to what these boards report:
retired-page fields and the vGPU licence field are absent (Hopper/Ada report row remapping, and
bare metal has no vGPU licence); NVLink fields exist only on SXM/HGX boards; memory temperature
only on HBM boards.

Workload: half of the H100 SXM nodes run fine-tuning jobs (one pod holding 8, 4 or 2 GPUs; jobs of
hours to days, with gaps); the other H100 SXM nodes, the H200 nodes and the L40S nodes serve
inference (vLLM/Triton/TEI-like pods that reserve most of the framebuffer, follow a diurnal and
weekly demand curve and are scaled up and down, so many GPUs are idle or lightly loaded at night;
deployments are rolled every few days, renaming pods); the H100 PCIe nodes host notebook sessions.
Healthy boards sit at their power cap under heavy load (SW power cap reason, power violation time
grows), show the idle reason and low-utilisation violation time when idle, and follow the inlet
temperature's small diurnal swing.

Operations: a driver upgrade (550.127.05 -> 550.144.03) rolled node by node from about 40% of the
window (drain, reboot, new exporter pod; the rollout is paused before the last nodes), a DaemonSet
rollout of the exporter fleet-wide at about 20% of the window and random exporter pod restarts
(new instance label, a missed scrape, the last-Xid gauge restarts at 0), occasional GPU resets
(volatile ECC, PCIe replay and NVLink counters go back to 0), reboots (energy and violation
counters restart), random missed scrapes and one fleet-wide Prometheus outage, burst-pool node
power cycles, cordon/drain and board replacement after failures (node taken down for service
hours to a day later, back after several hours to a few days with a new board, new UUID, in the
same slot), and benign noise that never fails: boards with a steady trickle of correctable ECC
errors and an occasional correctable row remap, marginal PCIe links with replay bursts, NVLink
links with sporadic CRC errors, hot nodes and hot slots that touch thermal slowdown, one node with
a noisy PSU that asserts power-brake now and then, and application Xids (13, 31, 43, 45) from user
jobs.

Failures (ground truth)
-----------------------
The failure rate is enriched far above real life (roughly 30x: real fleets see on the order of
1% of GPUs fail per month) so that 30 days hold 66-90 failures per seed. The mode mix follows the
public studies: memory (HBM uncorrectable errors / row-remap exhaustion) and "other" GPU faults
(GSP/firmware timeouts, faulty GPUs falling off the bus without link symptoms, microcontroller
halts, silent data corruption with no telemetry at all) dominate; NVLink and PCIe faults follow;
thermal (thermal interface / sensor) and power delivery faults are rare. A few nodes are "lemon"
nodes with a several-times higher hazard, and a PCIe, power or thermal fault is caused by the slot
(riser, baseboard, cooling) rather than the board in about a third of cases, so the replacement
board in the same slot fails again later. Per-mode physics; the precursor share and lead time
(log-normal) are given per mode; failures without precursor are sudden:

* hbm (H100/H200/H100 PCIe only; ~55% with precursor, median lead ~1.5 days): a rising, bursty
  rate of correctable ECC errors (volatile and aggregate) scaled by memory activity, with
  correctable row remaps (and Xid 63) as new weak rows appear; in some cases only a few remaps
  and few CEs. Failure: uncorrectable (DBE) errors, an uncorrectable remapped row, sometimes a
  row-remap failure (Xid 64), Xid 94/95/48; the board stays visible, idle, until drained.
* pcie (~40%, median lead ~20 h): a rising, bursty PCIe replay rate. Failure: Xid 79, the GPU
  falls off the bus and its series stop.
* nvlink (SXM/HGX only; ~50%, median lead ~10 h): rising NVLink CRC flit errors with data CRC
  errors and replays, recovery errors near the end. Failure: Xid 74 and a burst of recovery
  errors; NVLink peers on the node sometimes log Xid 74 and a few CRC errors too (they are not
  failures).
* thermal (~70%, median lead ~2.5 days): degrading cooling raises the temperature under load for
  days, until thermal slowdown reasons, thermal violation time and lower clocks appear. Failure:
  over-temperature shutdown (Xid 79, the GPU disappears) or a board stuck in HW slowdown.
* power (~35%, median lead ~8 h): a degrading node power supply asserts the HW power brake on
  all GPUs of the node in episodes (reason bits, power/board-limit violation time, low clocks and
  power), the failing board's power reading gets unstable. Failure: Xid 79, sometimes with a node
  power cycle.
* other (~20%, median lead ~1 day): recoverable GSP/microcontroller Xids (119, 120, 62) that
  were cleared by a GPU reset. Failure: Xid 119/120/62/109/79 or nothing at all (silent data
  corruption detected by a job).
"""  # noqa: E501

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field

import numpy as np

STEP = 300
WIN_STEPS = 72  # 6 h per OpenMetrics file and per TSDB block
DEFAULT_END = 1796083200
DRIVERS = ("550.127.05", "550.144.03")
MODES = ("hbm", "pcie", "nvlink", "thermal", "power", "other")
# base failure counts per 30 days (low, high inclusive)
MODE_COUNTS = {
    "hbm": (17, 22),
    "other": (16, 21),
    "nvlink": (12, 15),
    "pcie": (11, 14),
    "thermal": (6, 9),
    "power": (4, 7),
}
# precursor share, median lead (h), log-sd
PRECURSOR = {
    "hbm": (0.55, 36.0, 0.9),
    "pcie": (0.40, 20.0, 1.0),
    "nvlink": (0.50, 10.0, 0.9),
    "thermal": (0.70, 60.0, 0.7),
    "power": (0.35, 8.0, 1.0),
    "other": (0.20, 24.0, 1.0),
}

MODELS = {
    "h100sxm": dict(
        name="NVIDIA H100 80GB HBM3",
        fb=81559,
        resv=480,
        pidle=72.0,
        pcap=700.0,
        smmax=1980,
        smidle=345,
        mem=2619,
        memidle=2619,
        hbm=True,
        nvlink=True,
        rth=0.060,
        slow=89,
        shut=95,
    ),
    "h200": dict(
        name="NVIDIA H200",
        fb=143771,
        resv=590,
        pidle=84.0,
        pcap=700.0,
        smmax=1980,
        smidle=345,
        mem=3201,
        memidle=3201,
        hbm=True,
        nvlink=True,
        rth=0.058,
        slow=89,
        shut=95,
    ),
    "l40s": dict(
        name="NVIDIA L40S",
        fb=46068,
        resv=445,
        pidle=34.0,
        pcap=350.0,
        smmax=2520,
        smidle=210,
        mem=9001,
        memidle=405,
        hbm=False,
        nvlink=False,
        rth=0.118,
        slow=88,
        shut=93,
    ),
    "h100pcie": dict(
        name="NVIDIA H100 PCIe",
        fb=81559,
        resv=480,
        pidle=48.0,
        pcap=350.0,
        smmax=1755,
        smidle=345,
        mem=1593,
        memidle=1593,
        hbm=True,
        nvlink=False,
        rth=0.115,
        slow=89,
        shut=95,
    ),
}
BUS8 = ("18", "2A", "3A", "5D", "9A", "AB", "BA", "DB")
BUS4 = ("01", "41", "81", "C1")
BUS2 = ("17", "CA")

GAUGES = [
    ("DCGM_FI_DEV_SM_CLOCK", "gauge", "SM clock frequency (in MHz)."),
    ("DCGM_FI_DEV_MEM_CLOCK", "gauge", "Memory clock frequency (in MHz)."),
    ("DCGM_FI_DEV_MEMORY_TEMP", "gauge", "Memory temperature (in C)."),
    ("DCGM_FI_DEV_GPU_TEMP", "gauge", "GPU temperature (in C)."),
    ("DCGM_FI_DEV_POWER_USAGE", "gauge", "Power draw (in W)."),
    (
        "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION",
        "counter",
        "Total energy consumption since boot (in mJ).",
    ),
    ("DCGM_FI_DEV_PCIE_REPLAY_COUNTER", "counter", "Total number of PCIe retries."),
    ("DCGM_FI_DEV_GPU_UTIL", "gauge", "GPU utilization (in %)."),
    ("DCGM_FI_DEV_MEM_COPY_UTIL", "gauge", "Memory utilization (in %)."),
    ("DCGM_FI_DEV_ENC_UTIL", "gauge", "Encoder utilization (in %)."),
    ("DCGM_FI_DEV_DEC_UTIL", "gauge", "Decoder utilization (in %)."),
    ("DCGM_FI_DEV_XID_ERRORS", "gauge", "Value of the last XID error encountered."),
    (
        "DCGM_FI_DEV_POWER_VIOLATION",
        "counter",
        "Throttling duration due to power constraints (in ns).",
    ),
    (
        "DCGM_FI_DEV_THERMAL_VIOLATION",
        "counter",
        "Throttling duration due to thermal constraints (in ns).",
    ),
    (
        "DCGM_FI_DEV_SYNC_BOOST_VIOLATION",
        "counter",
        "Throttling duration due to sync-boost constraints (in ns).",
    ),
    (
        "DCGM_FI_DEV_BOARD_LIMIT_VIOLATION",
        "counter",
        "Throttling duration due to board limit constraints (in ns).",
    ),
    (
        "DCGM_FI_DEV_LOW_UTIL_VIOLATION",
        "counter",
        "Throttling duration due to low utilization (in ns).",
    ),
    (
        "DCGM_FI_DEV_RELIABILITY_VIOLATION",
        "counter",
        "Throttling duration due to reliability constraints (in ns).",
    ),
    ("DCGM_FI_DEV_CLOCK_THROTTLE_REASONS", "gauge", "Current clock throttle reasons."),
    ("DCGM_FI_DEV_FB_FREE", "gauge", "Framebuffer memory free (in MiB)."),
    ("DCGM_FI_DEV_FB_USED", "gauge", "Framebuffer memory used (in MiB)."),
    ("DCGM_FI_DEV_FB_RESERVED", "gauge", "Framebuffer memory reserved (in MiB)."),
    ("DCGM_FI_DEV_ECC_SBE_VOL_TOTAL", "counter", "Total number of single-bit volatile ECC errors."),
    ("DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", "counter", "Total number of double-bit volatile ECC errors."),
    (
        "DCGM_FI_DEV_ECC_SBE_AGG_TOTAL",
        "counter",
        "Total number of single-bit persistent ECC errors.",
    ),
    (
        "DCGM_FI_DEV_ECC_DBE_AGG_TOTAL",
        "counter",
        "Total number of double-bit persistent ECC errors.",
    ),
    (
        "DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL",
        "counter",
        "Total number of NVLink flow-control CRC errors.",
    ),
    (
        "DCGM_FI_DEV_NVLINK_CRC_DATA_ERROR_COUNT_TOTAL",
        "counter",
        "Total number of NVLink data CRC errors.",
    ),
    ("DCGM_FI_DEV_NVLINK_REPLAY_ERROR_COUNT_TOTAL", "counter", "Total number of NVLink retries."),
    (
        "DCGM_FI_DEV_NVLINK_RECOVERY_ERROR_COUNT_TOTAL",
        "counter",
        "Total number of NVLink recovery errors.",
    ),
    (
        "DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL",
        "counter",
        "Total number of NVLink bandwidth counters for all lanes.",
    ),
    (
        "DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS",
        "counter",
        "Number of remapped rows for uncorrectable errors",
    ),
    (
        "DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS",
        "counter",
        "Number of remapped rows for correctable errors",
    ),
    ("DCGM_FI_DEV_ROW_REMAP_FAILURE", "gauge", "Whether remapping of rows has failed"),
]
NVLINK_METRICS = {m for m, _, _ in GAUGES if "NVLINK" in m}


def log(msg: str) -> None:
    print(f"[platform_fleet] {msg}", file=sys.stderr, flush=True)


@dataclass
class Node:
    idx: int
    host: str
    kind: str
    ngpu: int
    pool: str  # train, infer, dev
    burst: bool = False
    join: float = 0.0
    lemon: float = 1.0
    inlet: float = 25.0
    down: list[tuple[float, float]] = field(default_factory=list)
    upgrade: float = float("inf")
    exp_restarts: list[float] = field(default_factory=list)
    offset: float = 0.0
    noisy_psu: bool = False
    pending_until: float = -1.0  # service pending/ongoing (no new failure on the node)


@dataclass
class Failure:
    mode: str
    t: float
    pre: bool
    ps: float | None
    xid: int
    gone: bool
    node_cycle: bool = False
    remap_fail: bool = False
    dbe: int = 1


@dataclass
class Inst:
    iid: int
    node: int
    gpu: int
    uuid: str
    t0: float
    t1: float
    fail: Failure | None = None


def new_uuid(rng: np.random.Generator) -> str:
    h = "".join(f"{x:02x}" for x in rng.integers(0, 256, 16))
    return f"GPU-{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def lognorm_h(rng: np.random.Generator, med: float, sd: float, lo: float, hi: float) -> float:
    return float(np.clip(med * np.exp(sd * rng.standard_normal()), lo, hi)) * 3600.0


class Fleet:
    def __init__(self, seed: int, days: float, end: int) -> None:
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.end = float(end)
        self.start = float(end - round(days * 86400 / (STEP * WIN_STEPS)) * STEP * WIN_STEPS)
        if self.start >= self.end:
            self.start = self.end - STEP * WIN_STEPS
        self.days = (self.end - self.start) / 86400.0
        self.N = int((self.end - self.start) // STEP)
        self.t = self.start + STEP * np.arange(self.N, dtype=np.float64)
        self.nodes: list[Node] = []
        self.insts: list[Inst] = []
        self.holders: list[str] = []
        self.hold_meta: list[tuple[str, float, int]] = []  # (kind, pdem factor, group size)

    # ---------------------------------------------------------------- fleet layout
    def build_nodes(self) -> None:
        rng = self.rng
        spec = (
            [("h100sxm", 8, "train", f"gpu-h100-sxm-{i:02d}") for i in range(1, 7)]
            + [("h100sxm", 8, "infer", f"gpu-h100-sxm-{i:02d}") for i in range(7, 13)]
            + [("h200", 8, "infer", f"gpu-h200-{i:02d}") for i in range(1, 7)]
            + [("l40s", 8, "infer", f"gpu-l40s-8x-{i:02d}") for i in range(1, 6)]
            + [("l40s", 4, "infer", f"gpu-l40s-4x-{i:02d}") for i in range(1, 9)]
            + [("h100pcie", 2, "dev", f"gpu-h100-pcie-{i:02d}") for i in range(1, 4)]
        )
        for i, (kind, ngpu, pool, host) in enumerate(spec):
            n = Node(i, host, kind, ngpu, pool)
            n.inlet = 24.0 + rng.normal(0, 1.2)
            n.offset = float(rng.integers(0, STEP * 1000 - 1)) / 1000.0
            if host.startswith("gpu-l40s-4x") and int(host[-2:]) >= 5:
                n.burst = True
            if host in ("gpu-h200-05", "gpu-h200-06"):
                n.join = self.start + self.days * 86400 * rng.uniform(0.3, 0.45)
            self.nodes.append(n)
        for j in rng.choice(len(self.nodes), 2, replace=False):
            self.nodes[j].inlet += rng.uniform(4.5, 7.0)  # hot nodes
        for j in rng.choice([n.idx for n in self.nodes if not n.burst], 3, replace=False):
            self.nodes[j].lemon = rng.uniform(3.0, 5.0)
        self.nodes[int(rng.integers(0, len(self.nodes)))].noisy_psu = True
        span = self.end - self.start
        for n in self.nodes:
            if n.join > self.start:
                n.down.append((self.start - 1, n.join))
            if n.burst:
                self._burst_schedule(n)
        # driver upgrade rollout
        order = [n for n in rng.permutation(len(self.nodes))]
        tr = self.start + span * rng.uniform(0.38, 0.45)
        step_h = span / 30.0 / 86400.0  # scale spacing with window length
        n_up = int(len(order) * 0.85)
        for k, j in enumerate(order):
            if k >= n_up:
                break
            tr += rng.uniform(1.5, 4.0) * 3600 * step_h
            n = self.nodes[int(j)]
            if tr >= self.end:
                break
            n.upgrade = tr
            n.down.append((tr, tr + rng.uniform(20, 45) * 60))
        # exporter restarts: fleet DaemonSet rollout + random
        troll = self.start + span * rng.uniform(0.18, 0.24)
        for n in self.nodes:
            r = [troll + n.idx * rng.uniform(40, 120)]
            k = rng.poisson(span / 86400 / 12.0)
            r += list(self.start + rng.uniform(0, span, k))
            n.exp_restarts = sorted(r)

    def _burst_schedule(self, n: Node) -> None:
        rng = self.rng
        day0 = np.floor(self.start / 86400) * 86400
        d = day0
        downs = []
        cur = self.start - 1
        while d < self.end + 86400:
            wd = int((d // 86400 + 4) % 7)  # 0 = Monday
            if wd < 5 and rng.random() < 0.9:
                on = d + (6.0 + rng.uniform(0, 2.0)) * 3600
                off = d + (19.0 + rng.uniform(0, 3.5)) * 3600
                if on > cur:
                    downs.append((cur, on))
                cur = off
            d += 86400
        downs.append((cur, self.end + 1))
        n.down += [(a, b) for a, b in downs if b > self.start and a < self.end]

    def node_up(self, n: Node, t: float) -> bool:
        return all(not (a <= t < b) for a, b in n.down)

    # ---------------------------------------------------------------- failures
    def build_instances_and_failures(self) -> None:
        rng = self.rng
        slot_insts: dict[tuple[int, int], list[Inst]] = {}
        for n in self.nodes:
            for g in range(n.ngpu):
                inst = Inst(len(self.insts), n.idx, g, new_uuid(rng), self.start - 1, self.end + 1)
                self.insts.append(inst)
                slot_insts[(n.idx, g)] = [inst]
        scale = self.days / 30.0
        plan: list[str] = []
        for m in MODES:
            lo, hi = MODE_COUNTS[m]
            c = int(rng.integers(lo, hi + 1))
            c = max(1, round(c * scale)) if scale < 0.999 else round(c * scale)
            plan += [m] * c
        times = np.sort(rng.uniform(self.start + 3 * 3600, self.end - 900, len(plan)))
        plan = [plan[i] for i in rng.permutation(len(plan))]
        queue: list[tuple[float, str, tuple[int, int] | None]] = [
            (t, m, None) for t, m in zip(times.tolist(), plan, strict=True)
        ]
        queue.sort(key=lambda e: (e[0], e[1]))
        done: list[tuple[Inst, Failure]] = []
        while queue:
            t, mode, slot = queue.pop(0)
            cand, w = [], []
            for n in self.nodes:
                if slot is not None and n.idx != slot[0]:
                    continue
                if mode in ("hbm",) and not MODELS[n.kind]["hbm"]:
                    continue
                if mode == "nvlink" and not MODELS[n.kind]["nvlink"]:
                    continue
                if not self.node_up(n, t) or n.pending_until > t or n.join > t:
                    continue
                wt = n.lemon * (2.0 if (mode == "thermal" and n.kind == "l40s") else 1.0)
                for g in range(n.ngpu):
                    if slot is not None and g != slot[1]:
                        continue
                    cur = slot_insts[(n.idx, g)][-1]
                    if cur.fail is None and cur.t0 < t - 3600:
                        cand.append(cur)
                        w.append(wt)
            if not cand:
                continue
            p = np.asarray(w) / np.sum(w)
            inst = cand[int(rng.choice(len(cand), p=p))]
            done.append((inst, self._make_failure(inst, mode, t)))
            f = inst.fail
            assert f is not None
            node = self.nodes[inst.node]
            t_drain = t + lognorm_h(rng, 8.0, 0.8, 1.0, 48.0)
            dur = rng.uniform(6.0, 60.0) * 3600
            node.pending_until = t_drain + dur
            if f.node_cycle:
                node.down.append((t + 60, t + rng.uniform(15, 35) * 60))
            if t_drain < self.end:
                node.down.append((t_drain, t_drain + dur))
                inst.t1 = t_drain
                if t_drain + dur < self.end:
                    new = Inst(
                        len(self.insts),
                        node.idx,
                        inst.gpu,
                        new_uuid(rng),
                        t_drain + dur,
                        self.end + 1,
                    )
                    self.insts.append(new)
                    slot_insts[(node.idx, inst.gpu)].append(new)
                    if mode in ("pcie", "power", "thermal") and rng.random() < 0.33:
                        t2 = new.t0 + lognorm_h(rng, 96.0, 0.6, 12.0, 400.0)
                        if t2 < self.end - 900:
                            queue.append((t2, mode, (node.idx, inst.gpu)))
                            queue.sort(key=lambda e: (e[0], e[1]))
        self.failures = done
        log(f"scheduled {len(done)} failures on {len(self.insts)} GPU boards")

    def _make_failure(self, inst: Inst, mode: str, t: float) -> Failure:
        rng = self.rng
        share, med, sd = PRECURSOR[mode]
        pre = bool(rng.random() < share)
        ps = None
        if pre:
            lead = lognorm_h(rng, med, sd, 1.0, 14 * 24.0)
            ps = max(t - lead, inst.t0 + 600) if inst.t0 > self.start else t - lead
            if ps >= t - 600:
                pre, ps = False, None
        gone = False
        node_cycle = False
        remap_fail = False
        dbe = 1
        if mode == "hbm":
            xid = int(rng.choice([95, 94, 48], p=[0.55, 0.3, 0.15]))
            remap_fail = bool(rng.random() < 0.15)
            dbe = int(rng.integers(1, 4))
        elif mode == "pcie":
            xid, gone = 79, True
        elif mode == "nvlink":
            xid = 74
        elif mode == "thermal":
            gone = bool(rng.random() < 0.7)
            xid = 79 if gone else 0
        elif mode == "power":
            xid, gone = 79, True
            node_cycle = bool(rng.random() < 0.3)
        else:
            xid = int(rng.choice([119, 120, 62, 109, 79, 0], p=[0.3, 0.1, 0.1, 0.1, 0.2, 0.2]))
            gone = xid == 79
        f = Failure(mode, float(t), pre, ps, xid, gone, node_cycle, remap_fail, dbe)
        inst.fail = f
        return f

    # ---------------------------------------------------------------- workload
    def build_workload(self) -> None:
        rng = self.rng
        N = self.N
        tt = self.t
        hour = ((tt / 3600.0) + 1.0) % 24.0  # local time UTC+1
        wday = ((tt // 86400) + 3) % 7  # 0 = Monday
        dem = 0.22 + 0.62 * np.clip(np.sin(np.pi * (hour - 7.0) / 14.0), 0, None)
        dem *= np.where(wday >= 5, 0.55, 1.0)
        walk = np.cumsum(rng.normal(0, 0.015, N))
        walk -= np.convolve(walk, np.ones(288) / 288.0, mode="same")
        self.demand = np.clip(dem + walk, 0.05, 1.0)
        deployments = {
            "h100sxm": [
                ("llama-3-1-70b-instruct", "llm-serving", "vllm"),
                ("mixtral-8x22b", "llm-serving", "vllm"),
            ],
            "h200": [
                ("llama-3-1-405b-fp8", "llm-serving", "vllm"),
                ("deepseek-coder-v2", "llm-serving", "vllm"),
                ("qwen2-5-72b-instruct", "llm-serving", "vllm"),
            ],
            "l40s": [
                ("bge-m3-embeddings", "ai-services", "tei"),
                ("whisper-large-v3", "ai-services", "triton"),
                ("video-analytics", "vision", "deepstream"),
                ("llama-3-1-8b-instruct", "llm-serving", "vllm"),
                ("reranker-bge-v2", "ai-services", "tei"),
            ],
        }
        rs_hash: dict[str, list[tuple[float, str]]] = {}
        span = self.end - self.start

        def rshash(dep: str, t: float) -> str:
            if dep not in rs_hash:
                rolls = np.sort(self.start + rng.uniform(0, span, rng.poisson(span / 86400 / 4.0)))
                seq = [(self.start - 1, self._hash(10))] + [
                    (float(r), self._hash(10)) for r in rolls
                ]
                rs_hash[dep] = seq
            cur = rs_hash[dep][0][1]
            for tr, h in rs_hash[dep]:
                if tr <= t:
                    cur = h
            return cur

        self.hold = {}
        self.util = {}
        self.fbf = {}
        self.dec = {}
        for n in self.nodes:
            hold = np.full((n.ngpu, N), -1, dtype=np.int32)
            util = np.zeros((n.ngpu, N), dtype=np.float32)
            fbf = np.zeros((n.ngpu, N), dtype=np.float32)
            dec = np.zeros((n.ngpu, N), dtype=np.float32)
            if n.ngpu == 8:
                part = [[8], [4, 4], [2, 2, 2, 2], [4, 2, 2]][
                    int(rng.choice(4, p=[0.45, 0.3, 0.15, 0.1]))
                ]
                if n.kind == "l40s":
                    part = [1] * 8 if rng.random() < 0.6 else [2, 2, 2, 2]
            elif n.ngpu == 4:
                part = [1, 1, 1, 1] if rng.random() < 0.6 else [2, 2]
            else:
                part = [1, 1]
            g0 = 0
            for size in part:
                gs = list(range(g0, g0 + size))
                g0 += size
                if n.pool == "train":
                    self._train_group(n, gs, hold, util, fbf)
                elif n.pool == "dev":
                    self._dev_group(n, gs, hold, util, fbf, wday, hour)
                else:
                    deps = deployments[n.kind]
                    dep = deps[int(rng.integers(0, len(deps)))]
                    self._infer_group(n, gs, dep, hold, util, fbf, dec, rshash)
            self.hold[n.idx] = hold
            self.util[n.idx] = util
            self.fbf[n.idx] = fbf
            self.dec[n.idx] = dec

    def _hash(self, k: int) -> str:
        alpha = "bcdfghjklmnpqrstvwxz2456789"
        return "".join(alpha[i] for i in self.rng.integers(0, len(alpha), k))

    def _new_holder(
        self, container: str, ns: str, pod: str, kind: str, pdem: float, size: int
    ) -> int:
        self.holders.append(f',container="{container}",namespace="{ns}",pod="{pod}"')
        self.hold_meta.append((kind, pdem, size))
        return len(self.holders) - 1

    def _train_group(self, n: Node, gs: list[int], hold, util, fbf) -> None:
        rng = self.rng
        bases = [
            "llama3-8b-sft",
            "llama3-70b-lora",
            "mistral-7b-dpo",
            "qwen2-7b-sft",
            "codegen-ft",
            "embed-ft",
        ]
        t = self.start - rng.uniform(0, 2 * 86400)
        while t < self.end:
            dur = lognorm_h(self.rng, 10.0 * (1.5 if len(gs) == 8 else 1.0), 0.9, 0.5, 96.0)
            a = int(np.clip(np.ceil((t - self.start) / STEP), 0, self.N))
            b = int(np.clip(np.ceil((t + dur - self.start) / STEP), 0, self.N))
            if b > a:
                pod = f"ft-{bases[int(rng.integers(0, len(bases)))]}-{self._hash(5)}-worker-0"
                h = self._new_holder(
                    "trainer", "ml-finetune", pod, "train", rng.uniform(1.05, 1.2), len(gs)
                )
                frac = rng.uniform(0.55, 0.95)
                lvl = rng.uniform(0.85, 0.99)
                for g in gs:
                    hold[g, a:b] = h
                    u = lvl + rng.normal(0, 0.03, b - a)
                    ck = rng.random(b - a) < 0.04  # checkpoint / eval pauses
                    u[ck] *= rng.uniform(0.05, 0.4, int(ck.sum()))
                    util[g, a:b] = np.clip(u, 0, 1)
                    fbf[g, a:b] = frac + rng.normal(0, 0.005, b - a)
                    util[g, a : min(b, a + 2)] *= 0.3  # start-up
            t += dur + lognorm_h(self.rng, 1.5, 1.0, 0.1, 36.0)

    def _dev_group(self, n: Node, gs, hold, util, fbf, wday, hour) -> None:
        rng = self.rng
        users = ["alice", "bmartin", "chen-l", "dkowalski", "epatel", "fgarcia", "hnguyen"]
        k = 0
        while k < self.N:
            if wday[k] < 5 and 8.5 <= hour[k] < 19 and rng.random() < 0.02:
                dur = int(lognorm_h(rng, 3.0, 0.8, 0.3, 30.0) / STEP)
                b = min(self.N, k + dur)
                pod = f"jupyter-{users[int(rng.integers(0, len(users)))]}"
                h = self._new_holder(
                    "notebook", "ds-notebooks", pod, "dev", rng.uniform(0.8, 1.1), 1
                )
                for g in gs:
                    hold[g, k:b] = h
                    busy = rng.random(b - k) < 0.35
                    util[g, k:b] = np.where(
                        busy, rng.uniform(0.3, 1.0, b - k), rng.uniform(0, 0.03, b - k)
                    )
                    fbf[g, k:b] = rng.uniform(0.1, 0.7)
                k = b + 1
            else:
                k += 1

    def _infer_group(self, n: Node, gs, dep, hold, util, fbf, dec, rshash) -> None:
        rng = self.rng
        name, ns, cont = dep
        theta = rng.uniform(0.05, 0.95)
        if rng.random() < 0.3:
            theta = 0.0  # minimum replicas, always on
        hourly = self.demand[::12]
        active = np.zeros(len(hourly), dtype=bool)
        on = theta == 0.0
        for i, d in enumerate(hourly):
            if on and d < theta - 0.04:
                on = False
            elif not on and d > theta + 0.04:
                on = True
            active[i] = on
        act = np.repeat(active, 12)[: self.N]
        intens = rng.uniform(0.55, 1.05)
        pdem = rng.uniform(0.7, 1.0)
        is_video = name == "video-analytics"
        edges = np.flatnonzero(np.diff(np.r_[0, act.astype(np.int8), 0]))
        for a, b in zip(edges[::2], edges[1::2], strict=True):
            a = int(a) + int(rng.integers(0, 3))  # pod start latency
            if a >= b:
                continue
            # split at rollouts: new pod name after each rollout of the deployment
            cuts = [a]
            last = rshash(name, self.t[a])
            for k in range(a + 1, b):
                if k % 12 == 0:
                    cur = rshash(name, self.t[k])
                    if cur != last:
                        cuts.append(k)
                        last = cur
            cuts.append(b)
            for s, e in itertools.pairwise(cuts):
                pod = f"{name}-{rshash(name, self.t[s])}-{self._hash(5)}"
                h = self._new_holder(cont, ns, pod, "video" if is_video else "infer", pdem, len(gs))
                s2 = s + 1 if s != a else s
                for g in gs:
                    hold[g, s2:e] = h
                    u = intens * self.demand[s2:e] + rng.normal(0, 0.06, e - s2)
                    util[g, s2:e] = np.clip(u, 0.01, 0.99)
                    fbf[g, s2:e] = 0.9 if cont == "vllm" else rng.uniform(0.2, 0.5)
                    if is_video:
                        dec[g, s2:e] = np.clip(u * 0.7, 0, 1)

    # ---------------------------------------------------------------- node timelines
    def node_masks(self) -> None:
        rng = self.rng
        N = self.N
        outage_k = int(rng.integers(N // 10, N - N // 10))
        outage_len = int(rng.integers(7, 15)) if N > 200 else 2
        self.nstate = {}
        for n in self.nodes:
            down = np.zeros(N, dtype=bool)
            for a, b in n.down:
                ka = int(np.clip(np.ceil((a - self.start) / STEP), 0, N))
                kb = int(np.clip(np.ceil((b - self.start) / STEP), 0, N))
                down[ka:kb] = True
            gap = rng.random(N) < 0.002
            gap[outage_k : outage_k + outage_len] = True
            boot = np.zeros(N, dtype=bool)
            boot[1:] = down[:-1] & ~down[1:]
            exp = np.zeros(N, dtype=np.int32)
            restart = np.zeros(N, dtype=bool)
            for tr in n.exp_restarts:
                k = int((tr - self.start) // STEP)
                if 0 <= k < N:
                    restart[k] = True
                    gap[k] |= rng.random() < 0.6
            restart |= boot
            exp = np.cumsum(restart).astype(np.int32)
            drv = (self.t >= n.upgrade).astype(np.int32)
            ips = [
                f"10.244.{n.idx + 1}.{int(x)}:9400" for x in rng.integers(2, 254, int(exp[-1]) + 1)
            ]
            # power-brake episodes (node level): noisy PSU, failing PSU precursors
            brake = np.zeros(N, dtype=bool)
            if n.noisy_psu:
                brake |= self._episodes(np.full(N, 0.03))
            self.nstate[n.idx] = dict(
                down=down,
                gap=gap,
                boot=boot,
                restart=restart,
                exp=exp,
                drv=drv,
                ips=ips,
                brake=brake,
            )
            self.hold[n.idx][:, down] = -1
        for inst, f in self.failures:
            if f.mode == "power" and f.pre and f.ps is not None:
                x = self._ramp(f.ps, f.t)
                rate = 0.05 + 2.0 * x**2
                st = self.nstate[inst.node]
                st["brake"] |= self._episodes(rate * (x > 0))

    def _ramp(self, ps: float, tf: float) -> np.ndarray:
        x = (self.t - ps) / max(tf - ps, 1.0)
        x[(self.t < ps) | (self.t >= tf)] = 0.0
        return np.clip(x, 0.0, 1.0)

    def _episodes(self, rate_per_h: np.ndarray) -> np.ndarray:
        rng = self.rng
        starts = rng.random(self.N) < rate_per_h * STEP / 3600.0
        out = starts.copy()
        for k in np.flatnonzero(starts):
            out[k : k + int(rng.integers(1, 4))] = True
        return out


def counter(inc: np.ndarray, reset: np.ndarray, init: float = 0.0) -> np.ndarray:
    """Cumulative counter that restarts from 0 where reset is True (the sample at a reset holds
    only that step's increment)."""
    c = np.cumsum(inc, dtype=np.float64)
    n = len(inc)
    idx = np.where(reset, np.arange(n), -1)
    idx = np.maximum.accumulate(idx)
    base = np.where(idx > 0, c[np.maximum(idx - 1, 0)], 0.0)
    out = c - base
    out = np.where(idx < 0, out + init, out)
    return out


def gen_instance(fl: Fleet, inst: Inst) -> dict | None:
    """Simulate one board over its lifetime; returns arrays over its step range."""
    n = fl.nodes[inst.node]
    M = MODELS[n.kind]
    rng = np.random.default_rng([fl.seed, 7919, inst.iid])
    N = fl.N
    a = int(np.clip(np.ceil((inst.t0 - fl.start) / STEP), 0, N))
    b = int(np.clip(np.ceil((inst.t1 - fl.start) / STEP), 0, N))
    if b <= a:
        return None
    L = b - a
    st = fl.nstate[n.idx]
    tt = fl.t[a:b]
    g = inst.gpu
    hold = fl.hold[n.idx][g, a:b].copy()
    u = fl.util[n.idx][g, a:b].astype(np.float64)
    fbf = fl.fbf[n.idx][g, a:b].astype(np.float64)
    dec = fl.dec[n.idx][g, a:b].astype(np.float64)
    down = st["down"][a:b]
    present = ~down & ~st["gap"][a:b]
    boot = st["boot"][a:b].copy()
    boot[0] = True
    clear = st["restart"][a:b] | boot
    f = inst.fail
    kf = L
    if f is not None:
        kf = int(np.clip(np.ceil((f.t - fl.start) / STEP), a, b)) - a
        hold[kf:] = -1
        u[kf:] = 0.0
        fbf[kf:] = 0.0
        dec[kf:] = 0.0
        if f.gone:  # the scrape right after the event still shows the Xid, then the GPU is lost
            present[kf + 1 :] = False
    idle = hold < 0
    u[idle] = 0.0
    fbf[idle] = 0.0
    meta_pdem = np.ones(L)
    group = np.ones(L)
    for h in np.unique(hold[hold >= 0]):
        _, pdem, size = fl.hold_meta[int(h)]
        msk = hold == h
        meta_pdem[msk] = pdem
        group[msk] = size
    xid_ev: list[tuple[int, int]] = []
    gpu_reset = np.zeros(L, dtype=bool)
    # application Xids on held GPUs, some followed by a reset
    held_k = np.flatnonzero(~idle)
    if len(held_k):
        lam = 0.06 if n.pool in ("train", "dev") else 0.015
        k_ev = held_k[rng.random(len(held_k)) < lam * STEP / 86400.0]
        for k in k_ev:
            xid_ev.append((int(k), int(rng.choice([13, 31, 43, 45], p=[0.3, 0.35, 0.25, 0.1]))))
            if rng.random() < 0.25:
                gpu_reset[min(L - 1, int(k) + int(rng.integers(1, 12)))] = True
    gpu_reset |= rng.random(L) < STEP / (25 * 86400.0)
    # ---------------- physics
    pcap = M["pcap"]
    pdem = M["pidle"] + (pcap * meta_pdem - M["pidle"]) * np.power(u, 0.8)
    pdem += rng.normal(0, 0.01 * pcap, L)
    capped = pdem > pcap
    power = np.where(capped, pcap - np.abs(rng.normal(0, 0.008 * pcap, L)), pdem)
    power = np.maximum(power, M["pidle"] * 0.9)
    pviol = np.where(capped, np.clip((pdem - pcap) / (0.08 * pcap) + 0.4, 0, 1), 0.0) * STEP * 1e9
    reasons = np.where(capped, 0x4, 0).astype(np.int64)
    smclk = M["smmax"] - np.where(capped, rng.uniform(90, 420, L), rng.uniform(0, 40, L))
    brake = st["brake"][a:b] & present
    bviol = np.zeros(L)
    if brake.any():
        power = np.where(brake, power * rng.uniform(0.3, 0.55, L), power)
        smclk = np.where(brake, rng.uniform(400, 800, L), smclk)
        reasons = np.where(brake, reasons | 0x88, reasons)
        frac = rng.uniform(0.1, 0.6, L)
        pviol += np.where(brake, frac * STEP * 1e9, 0)
        bviol = np.where(brake, frac * STEP * 1e9 * 0.5, 0)
    # temperature
    hour = ((tt / 3600.0) + 1.0) % 24.0
    inlet = n.inlet + 1.5 * np.sin(np.pi * (hour - 9.0) / 12.0) + rng.normal(0, 0.3)
    slot_off = rng.normal(0, 1.5) + (2.5 if (n.ngpu == 8 and g in (3, 7)) else 0.0)
    rth = M["rth"] * rng.uniform(0.92, 1.08)
    degr = np.zeros(L)
    if f is not None and f.mode == "thermal" and f.pre and f.ps is not None:
        x = fl._ramp(f.ps, f.t)[a:b]
        degr = rng.uniform(0.35, 0.7) * x**1.5
    temp_ss = inlet + slot_off + 6.0 + rth * power * (1.0 + degr)
    temp = temp_ss.copy()
    for k in range(1, L):  # first-order lag (~5 min constant)
        temp[k] = 0.45 * temp[k - 1] + 0.55 * temp_ss[k] if present[k - 1] else temp_ss[k]
    temp += rng.normal(0, 0.5, L)
    over = temp - M["slow"]
    hot = over > 0
    tviol = np.zeros(L)
    if hot.any():
        fr = np.clip(0.3 + over / 6.0, 0, 1)
        tviol = np.where(hot, fr * STEP * 1e9, 0.0)
        smclk = np.where(hot, smclk - fr * 700, smclk)
        power = np.where(hot, power * (1 - 0.25 * fr), power)
        reasons = np.where(hot, reasons | 0x20, reasons)
        reasons = np.where(over > 2.5, reasons | 0x48, reasons)
        temp = np.where(hot, M["slow"] + over * 0.35, temp)
    if f is not None and f.mode == "thermal" and not f.gone:
        stuck = np.arange(L) >= kf
        smclk = np.where(stuck, rng.uniform(300, 600, L), smclk)
        reasons = np.where(stuck, reasons | 0x48, reasons)
        tviol = np.where(stuck, STEP * 1e9, tviol)
        temp = np.where(stuck, temp + rng.uniform(10, 18), temp)
    lowu = u < 0.02
    smclk = np.where(lowu, M["smidle"], smclk)
    reasons = np.where(lowu & ~brake, 0x1 | (reasons & 0x60), reasons)
    lviol = np.where(lowu, STEP * 1e9 * rng.uniform(0.85, 0.98, L), 0.0)
    smclk = np.round(np.maximum(smclk, 210) / 15.0) * 15.0
    memclk = np.where(lowu, M["memidle"], M["mem"])
    if f is not None and f.mode == "power" and f.pre and f.ps is not None:
        x = fl._ramp(f.ps, f.t)[a:b]
        power = power * (1 + x * rng.normal(0, 0.12, L))
    # utilisation derived
    gutil = np.round(u * 100)
    mcu = np.round(np.clip(u * rng.uniform(0.25, 0.7) + rng.normal(0, 0.02, L), 0, 1) * 100) * (
        u > 0
    )
    decu = np.round(dec * 100)
    encu = np.round(dec * 25)
    usable = M["fb"] - M["resv"]
    fbu = np.round(np.clip(fbf, 0, 1) * usable)
    fbu = np.where(idle, 0, fbu)
    fbfree = usable - fbu
    # ---------------- error processes
    sbe = np.zeros(L)
    crow = np.zeros(L)
    replay = np.zeros(L)
    flit = np.zeros(L)
    rec = np.zeros(L)
    act = 0.3 + 0.7 * u
    if M["hbm"] and rng.random() < 0.07:  # benign CE trickle
        lam = rng.uniform(0.05, 3.0)
        sbe += rng.poisson(lam * STEP / 3600 * rng.gamma(0.3, 1 / 0.3, L) * act)
        crow += rng.random(L) < rng.uniform(1, 4) / (30 * 288)
    if rng.random() < 0.05:  # marginal PCIe link
        replay += rng.poisson(0.5 * STEP / 3600 * rng.gamma(0.1, 10.0, L))
    if M["nvlink"] and rng.random() < 0.06:
        flit += rng.poisson(rng.uniform(0.2, 5.0) * STEP / 3600 * rng.gamma(0.2, 5.0, L))
    if f is not None and f.pre and f.ps is not None:
        x = fl._ramp(f.ps, f.t)[a:b]
        on = x > 0
        if f.mode == "hbm":
            remap_only = rng.random() < 0.3
            l0 = rng.uniform(0.2, 2.0)
            l1 = rng.uniform(1.0, 5.0) if remap_only else rng.uniform(20, 400)
            lam = l0 * np.power(l1 / l0, x) * on
            sbe += rng.poisson(lam * STEP / 3600 * rng.gamma(0.3, 1 / 0.3, L) * act)
            nrow = int(rng.integers(2, 6)) if remap_only else int(rng.integers(1, 8))
            ks = np.flatnonzero(on)
            if len(ks):
                wts = x[ks] ** 2 + 1e-3
                for k in rng.choice(ks, size=min(nrow, len(ks)), replace=False, p=wts / wts.sum()):
                    crow[k] += 1
                    xid_ev.append((int(k), 63))
        elif f.mode == "pcie":
            lam = rng.uniform(0.5, 3.0) * np.power(rng.uniform(100, 3000), x) * on
            replay += rng.poisson(lam * STEP / 3600 * rng.gamma(0.25, 4.0, L))
        elif f.mode == "nvlink":
            lam = rng.uniform(0.3, 2.0) * np.power(rng.uniform(30, 1500), x) * on
            flit += rng.poisson(lam * STEP / 3600 * rng.gamma(0.25, 4.0, L))
            rec += rng.poisson(np.where(x > 0.75, 0.05 + 2.0 * (x - 0.75) * 4, 0) * STEP / 3600)
        elif f.mode == "other":
            ks = np.flatnonzero(on & present)
            if len(ks):
                for k in rng.choice(ks, size=min(int(rng.integers(1, 5)), len(ks)), replace=False):
                    xid_ev.append((int(k), int(rng.choice([119, 120, 62]))))
                    gpu_reset[min(L - 1, int(k) + int(rng.integers(1, 7)))] = True
    dbe = np.zeros(L)
    urow = np.zeros(L)
    remapfail = np.zeros(L)
    if f is not None and kf < L:
        if f.mode == "hbm":
            dbe[kf] += f.dbe
            urow[kf] += 1
            if f.remap_fail:
                remapfail[kf:] = 1
                xid_ev.append((kf, 64))
        if f.mode == "nvlink":
            rec[kf] += rng.integers(2, 8)
            flit[kf] += rng.integers(20, 500)
        if f.xid:
            xid_ev.append((kf, f.xid))
    for kk, code in fl.collateral.get(inst.iid, []):
        if 0 <= kk - a < L:
            xid_ev.append((kk - a, code))
            flit[kk - a] += rng.integers(1, 40)
    dcrc = rng.binomial(flit.astype(np.int64), 0.12)
    nrep = rng.binomial(flit.astype(np.int64), 0.35)
    vol_reset = gpu_reset | boot
    out: dict[str, np.ndarray] = {}
    out["DCGM_FI_DEV_SM_CLOCK"] = smclk.astype(np.int32)
    out["DCGM_FI_DEV_MEM_CLOCK"] = memclk.astype(np.int32)
    if M["hbm"]:
        out["DCGM_FI_DEV_MEMORY_TEMP"] = np.round(0.75 * temp + 13.5).astype(np.int32)
    out["DCGM_FI_DEV_GPU_TEMP"] = np.round(temp).astype(np.int32)
    out["DCGM_FI_DEV_POWER_USAGE"] = np.round(power, 3)
    e0 = rng.uniform(0.5, 20) * 86400 * M["pidle"] * 2 * 1000 if inst.t0 < fl.start else 0.0
    out["DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION"] = counter(power * STEP * 1000, boot, e0).astype(
        np.int64
    )
    out["DCGM_FI_DEV_PCIE_REPLAY_COUNTER"] = counter(replay, vol_reset).astype(np.int64)
    out["DCGM_FI_DEV_GPU_UTIL"] = gutil.astype(np.int32)
    out["DCGM_FI_DEV_MEM_COPY_UTIL"] = mcu.astype(np.int32)
    out["DCGM_FI_DEV_ENC_UTIL"] = encu.astype(np.int32)
    out["DCGM_FI_DEV_DEC_UTIL"] = decu.astype(np.int32)
    # last-Xid gauge
    xv = np.full(L, -1, dtype=np.int64)
    code = np.zeros(L, dtype=np.int64)
    for k in np.flatnonzero(clear | gpu_reset):
        xv[k] = k
        code[k] = 0
    for k, c in sorted(xid_ev):
        if 0 <= k < L:
            xv[k] = k
            code[k] = c
    pos = np.maximum.accumulate(xv)
    out["DCGM_FI_DEV_XID_ERRORS"] = np.where(pos >= 0, code[np.maximum(pos, 0)], 0)
    v0 = (rng.uniform(0.5, 20) * 86400 * 1e9) if inst.t0 < fl.start else 0.0
    out["DCGM_FI_DEV_POWER_VIOLATION"] = counter(pviol, boot, v0 * rng.uniform(0.01, 0.3)).astype(
        np.int64
    )
    out["DCGM_FI_DEV_THERMAL_VIOLATION"] = counter(tviol, boot).astype(np.int64)
    out["DCGM_FI_DEV_SYNC_BOOST_VIOLATION"] = np.zeros(L, dtype=np.int64)
    out["DCGM_FI_DEV_BOARD_LIMIT_VIOLATION"] = counter(bviol, boot).astype(np.int64)
    out["DCGM_FI_DEV_LOW_UTIL_VIOLATION"] = counter(lviol, boot, v0 * rng.uniform(0.2, 0.7)).astype(
        np.int64
    )
    out["DCGM_FI_DEV_RELIABILITY_VIOLATION"] = np.zeros(L, dtype=np.int64)
    out["DCGM_FI_DEV_CLOCK_THROTTLE_REASONS"] = reasons
    out["DCGM_FI_DEV_FB_FREE"] = fbfree.astype(np.int32)
    out["DCGM_FI_DEV_FB_USED"] = fbu.astype(np.int32)
    out["DCGM_FI_DEV_FB_RESERVED"] = np.full(L, M["resv"], dtype=np.int32)
    sbe_prior = float(rng.poisson(3) if rng.random() < 0.3 else 0) if inst.t0 < fl.start else 0.0
    out["DCGM_FI_DEV_ECC_SBE_VOL_TOTAL"] = counter(sbe, vol_reset).astype(np.int64)
    out["DCGM_FI_DEV_ECC_DBE_VOL_TOTAL"] = counter(dbe, vol_reset).astype(np.int64)
    out["DCGM_FI_DEV_ECC_SBE_AGG_TOTAL"] = (np.cumsum(sbe) + sbe_prior).astype(np.int64)
    out["DCGM_FI_DEV_ECC_DBE_AGG_TOTAL"] = np.cumsum(dbe).astype(np.int64)
    if M["nvlink"]:
        out["DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL"] = counter(flit, vol_reset).astype(
            np.int64
        )
        out["DCGM_FI_DEV_NVLINK_CRC_DATA_ERROR_COUNT_TOTAL"] = counter(dcrc, vol_reset).astype(
            np.int64
        )
        out["DCGM_FI_DEV_NVLINK_REPLAY_ERROR_COUNT_TOTAL"] = counter(nrep, vol_reset).astype(
            np.int64
        )
        out["DCGM_FI_DEV_NVLINK_RECOVERY_ERROR_COUNT_TOTAL"] = counter(rec, vol_reset).astype(
            np.int64
        )
        bw = np.where(group > 1, u * rng.uniform(8e6, 3e7), u * 2e5) * (~idle)
        out["DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL"] = counter(bw, boot).astype(np.int64)
    crow_prior = float(rng.integers(0, 3)) if (inst.t0 < fl.start and rng.random() < 0.1) else 0.0
    out["DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS"] = np.cumsum(urow).astype(np.int64)
    out["DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS"] = (np.cumsum(crow) + crow_prior).astype(np.int64)
    out["DCGM_FI_DEV_ROW_REMAP_FAILURE"] = remapfail.astype(np.int32)
    # label segments
    drv = st["drv"][a:b]
    exp = st["exp"][a:b]
    key = (hold.astype(np.int64) + 1) * 4096 + drv * 2048 + exp
    key = np.where(present, key, -1)
    uniq = np.unique(key[key >= 0])
    lut = {int(kk): i for i, kk in enumerate(uniq.tolist())}
    seg = np.full(L, -1, dtype=np.int32)
    if len(uniq):
        seg[present] = np.searchsorted(uniq, key[present]).astype(np.int32)
    bus = {8: BUS8, 4: BUS4, 2: BUS2}[n.ngpu][g]
    labels = []
    for kk in uniq.tolist():
        hh = kk // 4096 - 1
        dv = (kk % 4096) // 2048
        ex = kk % 2048
        s = (
            f'gpu="{g}",UUID="{inst.uuid}",pci_bus_id="00000000:{bus}:00.0",device="nvidia{g}",'
            f'modelName="{M["name"]}",Hostname="{n.host}",DCGM_FI_DRIVER_VERSION="{DRIVERS[dv]}"'
        )
        if hh >= 0:
            s += fl.holders[hh]
        s += f',instance="{st["ips"][ex]}",job="dcgm-exporter"'
        labels.append(s)
    del lut
    return dict(a=a, b=b, seg=seg, labels=labels, m=out, node=n.idx)


def add_collateral(fl: Fleet) -> None:
    fl.collateral = {}
    rng = fl.rng
    by_slot = {}
    for inst in fl.insts:
        by_slot.setdefault((inst.node, inst.gpu), []).append(inst)
    for inst, f in fl.failures:
        if f.mode != "nvlink" or rng.random() > 0.5:
            continue
        n = fl.nodes[inst.node]
        k = int(np.ceil((f.t - fl.start) / STEP))
        for g in rng.choice(
            [x for x in range(n.ngpu) if x != inst.gpu], int(rng.integers(1, 3)), replace=False
        ):
            for other in by_slot[(n.idx, int(g))]:
                if other.t0 <= f.t < other.t1:
                    fl.collateral.setdefault(other.iid, []).append((k, 74))


def write_window(fh, fl: Fleet, sims: list[dict], w: int, ts_str: dict[int, list[str]]) -> int:
    ka, kb = w * WIN_STEPS, min(fl.N, (w + 1) * WIN_STEPS)
    nsamp = 0
    live = [s for s in sims if s["a"] < kb and s["b"] > ka]
    for name, typ, help_ in GAUGES:
        chunk = [f"# HELP {name} {help_}\n# TYPE {name} {typ}\n"]
        for s in live:
            arr = s["m"].get(name)
            if arr is None:
                continue
            a = s["a"]
            lo, hi = max(ka, a) - a, min(kb, s["b"]) - a
            seg = s["seg"][lo:hi]
            if not (seg >= 0).any():
                continue
            vals = arr[lo:hi].tolist()
            tss = ts_str[s["node"]][lo + a : hi + a]
            brk = np.flatnonzero(np.diff(seg)) + 1
            bounds = [0, *brk.tolist(), hi - lo]
            for i0, i1 in itertools.pairwise(bounds):
                sg = int(seg[i0])
                if sg < 0:
                    continue
                p = f"{name}{{{s['labels'][sg]}}} "
                chunk.append(
                    "".join([f"{p}{v} {t}\n" for v, t in zip(vals[i0:i1], tss[i0:i1], strict=True)])
                )
                nsamp += i1 - i0
        if len(chunk) > 1:
            fh.write("".join(chunk))
    fh.write("# EOF\n")
    return nsamp


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description="Blind synthetic dcgm-exporter fleet (evaluation only)."
    )
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--days", type=float, default=30.0)
    ap.add_argument("--end", type=int, default=DEFAULT_END)
    ap.add_argument("--promtool", default="promtool")
    args = ap.parse_args(argv)
    promtool = shutil.which(args.promtool)
    if promtool is None:
        print(f"error: promtool not found: {args.promtool}", file=sys.stderr)
        return 2
    if os.path.exists(args.out) and (not os.path.isdir(args.out) or os.listdir(args.out)):
        print(f"error: output directory is not empty: {args.out}", file=sys.stderr)
        return 2
    if args.days <= 0:
        print("error: --days must be positive", file=sys.stderr)
        return 2
    t_wall = time.time()
    os.makedirs(args.out, exist_ok=True)
    fl = Fleet(args.seed, args.days, args.end)
    log(f"seed {args.seed}: {fl.days:g} days, {fl.N} scrapes, {fl.start:.0f}..{fl.end:.0f}")
    fl.build_nodes()
    fl.build_instances_and_failures()
    fl.build_workload()
    fl.node_masks()
    add_collateral(fl)
    log(f"{len(fl.nodes)} nodes, {sum(n.ngpu for n in fl.nodes)} slots; simulating boards")
    sims = []
    for inst in fl.insts:
        s = gen_instance(fl, inst)
        if s is not None:
            sims.append(s)
    log(f"simulated {len(sims)} boards in {time.time() - t_wall:.1f}s; writing TSDB")
    ts_str = {n.idx: [f"{x:.3f}" for x in (fl.t + n.offset).tolist()] for n in fl.nodes}
    prom_dir = os.path.join(args.out, "prometheus")
    tmp_dir = os.path.join(args.out, ".openmetrics")
    os.makedirs(prom_dir)
    os.makedirs(tmp_dir)
    nwin = (fl.N + WIN_STEPS - 1) // WIN_STEPS
    running: list[tuple[subprocess.Popen, str]] = []
    total = 0

    def reap(limit: int) -> None:
        while len(running) > limit:
            proc, path = running.pop(0)
            _, err = proc.communicate()
            if proc.returncode != 0:
                raise RuntimeError(
                    f"promtool failed on {path}: {err.decode(errors='replace').strip()[:300]}"
                )
            os.remove(path)

    try:
        for w in range(nwin):
            path = os.path.join(tmp_dir, f"w{w:04d}.om")
            with open(path, "w", buffering=1 << 22) as fh:
                total += write_window(fh, fl, sims, w, ts_str)
            reap(1)
            cmd = [
                promtool,
                "tsdb",
                "create-blocks-from",
                "openmetrics",
                "--max-block-duration=6h",
                "-q",
                path,
                prom_dir,
            ]
            running.append(
                (subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE), path)
            )
            if w % 10 == 0 or w == nwin - 1:
                log(
                    f"window {w + 1}/{nwin}: {total / 1e6:.1f} M samples, "
                    f"{time.time() - t_wall:.0f}s"
                )
        reap(0)
    except RuntimeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    shutil.rmtree(tmp_dir, ignore_errors=True)
    # ground truth
    rows = sorted(((i.uuid, f) for i, f in fl.failures), key=lambda r: (r[1].t, r[0]))
    with open(os.path.join(args.out, "failures.csv"), "w") as fh:
        fh.write("uuid,time,mode,precursor,precursor_start\n")
        for uuid, f in rows:
            ps = "" if f.ps is None else str(round(f.ps))
            fh.write(f"{uuid},{round(f.t)},{f.mode},{'true' if f.pre else 'false'},{ps}\n")
    leads = {
        m: [(f.t - f.ps) / 3600 for _, f in rows if f.mode == m and f.ps is not None] for m in MODES
    }
    allleads = [x for v in leads.values() for x in v]

    def q(v: list[float]) -> dict:
        if not v:
            return {}
        return {f"p{p}": round(float(np.percentile(v, p)), 2) for p in (10, 25, 50, 75, 90)}

    models: dict[str, dict[str, int]] = {}
    for n in fl.nodes:
        d = models.setdefault(MODELS[n.kind]["name"], {"nodes": 0, "slots": 0, "boards": 0})
        d["nodes"] += 1
        d["slots"] += n.ngpu
    present_uuids = set()
    for inst, s in zip([i for i in fl.insts if gen_ok(fl, i)], sims, strict=True):
        if (s["seg"] >= 0).any():
            present_uuids.add(inst.uuid)
            models[MODELS[fl.nodes[inst.node].kind]["name"]]["boards"] += 1
    truth = {
        "seed": args.seed,
        "start": int(fl.start),
        "end": int(fl.end),
        "days": fl.days,
        "scrape_interval_s": STEP,
        "nodes": len(fl.nodes),
        "slots": sum(n.ngpu for n in fl.nodes),
        "distinct_gpus": len(present_uuids),
        "failures": len(rows),
        "failures_by_mode": {m: sum(1 for _, f in rows if f.mode == m) for m in MODES},
        "precursors_by_mode": {m: sum(1 for _, f in rows if f.mode == m and f.pre) for m in MODES},
        "lead_time_hours_quantiles": {"all": q(allleads), **{m: q(v) for m, v in leads.items()}},
        "models": models,
        "samples": total,
        "wall_time_s": round(time.time() - t_wall, 1),
        "enrichment_note": "failure rate enriched ~30x over real fleets; evaluation only",
    }
    with open(os.path.join(args.out, "truth.json"), "w") as fh:
        json.dump(truth, fh, indent=2)
    log(f"done: {len(rows)} failures, {total} samples, {truth['wall_time_s']}s")
    return 0


def gen_ok(fl: Fleet, inst: Inst) -> bool:
    a = int(np.clip(np.ceil((inst.t0 - fl.start) / STEP), 0, fl.N))
    b = int(np.clip(np.ceil((inst.t1 - fl.start) / STEP), 0, fl.N))
    return b > a


if __name__ == "__main__":
    sys.exit(main())
