"""PROVENANCE: written blind, without reading this project's simulator, scorer, exporter, tests or documentation other than docs/metrics.md, from public facts only (NVIDIA XID catalogue and the XID text table of NVIDIA/dcgm-exporter; dcgm-exporter's collector source for its label names and its rule that DCGM blank / not-supported values are skipped; public dcgm-exporter /metrics dumps showing 0 for memory temperature on GDDR boards, for NVLink totals on boards without NVLink and for the vGPU licence on bare metal; NVML clock-event-reason bits and violation-time semantics; NVIDIA's memory error management notes on ECC, dynamic page retirement (pre-Ampere) and row remapping (Ampere and later); public notes that Hopper has no per-link NVLink data-CRC counter; reliability studies of large GPU clusters (Titan, Blue Waters, Delta, Meta and Alibaba training fleets) for failure mix and precursor prevalence; the shipped deploy/dcgm-exporter/gpu-health-counters.csv and the real H100 readings in shared/fixtures/h100). It exists only to EVALUATE the failure-prediction scorer on data its authors did not design. Never train, tune, calibrate or choose weights or thresholds on its output.

Usage:
    python bench/lab_fleet.py --seed N --schema {ours,dcgm} --out DIR [--days D] [--end EPOCH]
                              [--promtool PATH]

Writes DIR/prometheus/ (TSDB blocks made by `promtool tsdb create-blocks-from openmetrics`,
one OpenMetrics chunk per 2-hour block window, converted by up to three promtool workers),
DIR/failures.csv (uuid,time,mode,precursor,precursor_start) and DIR/truth.json.

All physics is drawn first from one numpy Generator seeded with --seed; rendering consumes no
randomness, so both schemas of one seed carry the same physics, failures.csv and truth.json
(except the `schema` field of truth.json), and the same scrape times.

Fleet: a university lab's shared, mixed-generation, bare-metal fleet of 200 GPU slots on 41
nodes; every node runs dcgm-exporter and gpu-health-exporter side by side.
    V100 SXM2 32GB (1 node x 8, 6 NVLinks, page retirement)
    V100 PCIe 32GB (6 nodes x 4, page retirement)
    A100 SXM4 80GB (1 node x 8, 12 NVLinks, row remapping)
    A100 PCIe 40GB (12 nodes x 4, row remapping)
    H100 80GB HBM3 SXM (1 node x 8, 18 NVLinks, row remapping)
    L4 (6 nodes x 8, GDDR6 with ECC, row remapping)
    A10 (8 nodes x 4, GDDR6 with ECC, row remapping)
    RTX A6000 (6 workstation nodes x 4, GDDR6, ECC disabled as usual on workstations, fans)
History: 40 days by default (--days), one scrape every 15 minutes (900 s), ending at --end
(default 2026-12-01T00:00Z).

Workload: multi-GPU training jobs on SXM nodes (all GPUs of the node together), independent
jobs on PCIe boards and workstations, a diurnal inference load on L4. Power follows the job's
intensity up to the enforced limit (power capping under load is normal, SW power cap reason, as
in the H100 fixture); temperature is inlet + thermal resistance x power; clocks follow load,
power cap and thermal slowdown; idle GDDR boards drop to P8, lower memory clock and PCIe gen 1.

Failures (ground truth), enriched roughly a hundredfold over real life so that one 40-day run
holds 60-80 of them; modes:
    hbm      uncorrectable HBM/GDDR memory errors (row-remap failure or DBE/page retirement)
    pcie     the GPU falls off the bus (XID 79)
    nvlink   NVLink failure on SXM boards (XID 74)
    thermal  cooling failure (fan, heat sink, airflow) up to thermal shutdown
    power    board power delivery fault (power brake, then loss)
    other    failures without a specific telemetry signature (never a precursor)
`time` is when the GPU failed / stopped serving. A failure has precursor=true when the
simulated board showed a mode-specific degradation before it (precursor_start = its onset).
Failed boards are drained, then swapped for a new board (new UUID, same slot) at a later
service reboot; some "other" failures are cleared by a reboot instead (same UUID returns).

Benign noise that never fails: noisy-but-healthy boards (correctable ECC, a few correctable row
remaps or retired pages), warm nodes and one HVAC excursion, a node with a marginal PCIe riser
(replay bursts), a healthy NVLink with occasional CRC flits, application XIDs (13, 31, 43, 45)
from user jobs, XID 92/63 on healthy boards.
Operations: node reboots, a rolling driver upgrade (550.127.08 -> 570.172.08, some nodes left
behind), GPU resets after pending row remaps, exporter restarts (dcgm-exporter's last-XID field
resets to 0; ours keeps XID counts because they come from the kernel log since boot), one
Prometheus outage and node network blips (scrape gaps, identical in both schemas), service
downtime and board replacements with a new UUID in the same slot.

Schema `ours` follows docs/metrics.md: identity labels node, gpu, uuid, pci_bus_id, model plus
job and instance; base units; unsupported readings absent; gpu_up 0 with the other readings
absent while a GPU is lost; XID counters since boot with every catalogued code (48, 79, 94,
95) and every class (application, contained_ecc, uncontained_ecc, nvlink, fallen_off_bus,
other) starting at 0; other codes appear on their first occurrence in a boot.
SAMPLES LEFT OUT of `ours`: promtool converts about 150k samples/s on this 2-core machine, so
the 4-minute budget caps a schema at about 26M samples (200 slots x 3840 scrapes allows only
~32 series per GPU). Kept: gpu_up, gpu_info, gpu_temperature_celsius{sensor="gpu"},
gpu_fan_speed_ratio, gpu_power_watts, gpu_clock_hertz{clock="sm"}, gpu_clock_event_active
(hw_slowdown, sw_thermal_slowdown), gpu_clock_event_seconds_total{reason="thermal"},
gpu_utilization_ratio{engine="gpu"}, gpu_memory_used_bytes, gpu_ecc_errors_total
(scope="aggregate"), gpu_remapped_rows_total, gpu_row_remap_pending, gpu_row_remap_failed,
gpu_retired_pages, gpu_retired_pages_pending, gpu_xid_errors_total,
gpu_xid_class_errors_total, gpu_pcie_replays_total,
gpu_pcie_link_generation, gpu_pcie_link_width, gpu_nvlink_errors_total (types crc_flit,
replay, recovery, per link). Left out: health score, exporter self-metrics, profiling ratios,
gpu_cache_age_seconds, gpu_pod_info, gpu_vgpu_license_status (absent on bare metal anyway),
the start-up constants (temperature thresholds, maximum clocks, default power limit, PCIe
maximum generation/width, total memory), gpu_power_limit_watts, gpu_energy_joules_total,
gpu_clock_hertz{clock="memory"}, gpu_performance_state, the memory temperature, the other
clock-event reasons and times, gpu_last_xid_timestamp_seconds, the memory/encoder/decoder utilisation, gpu_memory_free_bytes and
gpu_memory_reserved_bytes, volatile ECC scope, PCIe throughput, NVLink crc_data and
gpu_nvlink_bytes_total.

Schema `dcgm` follows dcgm-exporter: DCGM_FI_* names, labels gpu, UUID, pci_bus_id, device,
modelName, Hostname, DCGM_FI_DRIVER_VERSION (plus err_code/err_msg on DCGM_FI_DEV_XID_ERRORS),
job and instance, native units (MHz, C, W, mJ, ns, %, MiB), the fields of the shipped counters
CSV. Blank (not supported) values are skipped as dcgm-exporter's collector does (retired pages
on Ampere and later, row remap fields on V100, ECC fields with ECC disabled, NVLink data-CRC on
Hopper), while DCGM answers a real 0 for memory temperature on GDDR boards, NVLink totals on
boards without NVLink and the vGPU licence on bare metal. A lost GPU has no dcgm series.
"""  # noqa: E501

from __future__ import annotations

import argparse
import csv
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

STEP = 900
BLOCK = 7200
WORKERS = int(os.environ.get("LAB_FLEET_WORKERS", "6"))
DEFAULT_END = 1796083200
DEFAULT_DAYS = 40
DRIVERS = (("550.127.08", "12.4"), ("570.172.08", "12.8"))
OURS_JOB = "gpu-health-exporter"
DCGM_JOB = "dcgm-exporter"
OURS_PORT = 9445
DCGM_PORT = 9400
CAT_CODES = (48, 79, 94, 95)
CLASSES = (
    "application", "contained_ecc", "uncontained_ecc", "nvlink", "fallen_off_bus", "other",
)
CODE_CLASS = {
    13: "application", 31: "application", 43: "application", 45: "application",
    94: "contained_ecc", 48: "uncontained_ecc", 95: "uncontained_ecc",
    74: "nvlink", 79: "fallen_off_bus",
}
XID_TEXT = {
    0: "No Error", 13: "Graphics Engine Exception", 31: "GPU memory page fault",
    43: "GPU stopped processing",
    45: "Preemptive cleanup, due to previous errors -- Most likely to see when running "
    "multiple cuda",
    48: "Double Bit ECC Error", 61: "Internal micro-controller breakpoint/warning",
    62: "Internal micro-controller halt",
    63: "ECC page retirement or row remapping recording event",
    64: "ECC page retirement or row remapper recording failure", 74: "NVLINK Error",
    79: "GPU has fallen off the bus", 92: "High single-bit ECC error rate",
    94: "Contained ECC error", 95: "Uncontained ECC error", 119: "GSP RPC Timeout",
    120: "GSP Error",
}
MODES = ("hbm", "pcie", "nvlink", "thermal", "power", "other")
# Reason bits (NVML clocks event reasons).
R_IDLE, R_SWPOWER, R_HWSLOW, R_SWTHERM, R_HWTHERM, R_BRAKE = 0x1, 0x4, 0x8, 0x20, 0x40, 0x80
ACTIVE_REASONS = (("hw_slowdown", R_HWSLOW), ("sw_thermal_slowdown", R_SWTHERM))
NVL_TYPES = ("crc_flit", "crc_data", "replay", "recovery")
NVL_OURS = (0, 2, 3)  # crc_flit, replay, recovery


@dataclass(frozen=True)
class Model:
    key: str
    name: str
    hbm: bool
    links: int
    ecc: bool
    remap: bool
    tdp: float
    idle_w: float
    sm_max: float
    sm_idle: float
    mem_clk: float
    mem_idle: float
    gen: int
    fb_mib: int
    reserved_mib: int
    fan: bool
    idle_p: int
    r_th: float
    max_op: float
    slowdown: float
    vbios: str


MODELS = {
    "v100s": Model("v100s", "Tesla V100-SXM2-32GB", True, 6, True, False, 300, 42, 1530,
                   135, 877, 877, 3, 32510, 258, False, 0, 0.15, 84, 87, "88.00.80.00.01"),
    "v100p": Model("v100p", "Tesla V100-PCIE-32GB", True, 0, True, False, 250, 36, 1380,
                   135, 877, 877, 3, 32510, 258, False, 0, 0.17, 84, 87, "88.00.7E.00.03"),
    "a100s": Model("a100s", "NVIDIA A100-SXM4-80GB", True, 12, True, True, 400, 62, 1410,
                   210, 1593, 1593, 4, 81920, 566, False, 0, 0.10, 87, 92, "92.00.45.00.06"),
    "a100p": Model("a100p", "NVIDIA A100-PCIE-40GB", True, 0, True, True, 250, 35, 1410,
                   210, 1215, 1215, 4, 40960, 426, False, 0, 0.17, 87, 92, "92.00.25.00.08"),
    "h100s": Model("h100s", "NVIDIA H100 80GB HBM3", True, 18, True, True, 700, 72, 1980,
                   345, 2619, 2619, 5, 81559, 480, False, 0, 0.066, 87, 89, "96.00.DA.00.0C"),
    "l4": Model("l4", "NVIDIA L4", False, 0, True, True, 72, 16, 2040, 210, 6251, 405, 4,
                23034, 365, False, 8, 0.55, 87, 90, "95.04.29.00.06"),
    "a10": Model("a10", "NVIDIA A10", False, 0, True, True, 150, 20, 1695, 210, 6251, 405, 4,
                 23028, 420, False, 8, 0.30, 91, 95, "94.02.5C.00.02"),
    "a6000": Model("a6000", "NVIDIA RTX A6000", False, 0, False, False, 300, 22, 1800, 210,
                   8001, 405, 4, 49140, 395, True, 8, 0.18, 90, 93, "94.02.5C.00.0A"),
}
# (model key, nodes, gpus per node, hostname stem)
FLEET = (
    ("v100s", 1, 8, "dgx1"), ("v100p", 6, 4, "v100"), ("a100s", 1, 8, "hgxa"),
    ("a100p", 12, 4, "a100"), ("h100s", 1, 8, "hgxh"), ("l4", 6, 8, "inf"),
    ("a10", 8, 4, "a10n"), ("a6000", 6, 4, "ws"),
)
BUS8 = ("18", "2A", "3A", "5D", "9A", "AB", "BA", "DB")
BUS4 = ("3B", "5E", "86", "AF")


@dataclass
class Board:
    uuid: str
    serial: str
    start: int  # first scrape index of its tenure


@dataclass
class Failure:
    slot: int
    time: int
    mode: str
    precursor: bool
    pstart: int | None
    kind: str = ""  # lost / drained
    uuid: str = ""


@dataclass
class Physics:
    seed: int
    days: int
    end: int
    start: int
    ts: np.ndarray
    nodes: list[dict[str, Any]]
    slots: list[dict[str, Any]]
    node_of: np.ndarray
    state: np.ndarray
    tenure: np.ndarray
    drv: np.ndarray
    arr: dict[str, np.ndarray]
    nvl: dict[int, np.ndarray]
    nvl_bytes: dict[int, np.ndarray]
    xid: dict[int, np.ndarray]
    xid_present: dict[int, np.ndarray]
    xid_class: dict[str, np.ndarray]
    xid_last_ts: np.ndarray
    dcgm_last: np.ndarray
    failures: list[Failure]
    ops: dict[str, int] = field(default_factory=dict)

    def xid_cum_codes(self) -> list[int]:
        return list(self.xid)

    def xid_row(self, code: int, s: int) -> np.ndarray:
        return self.xid[code][s]


def _cum_reset(inc: np.ndarray, reset: np.ndarray) -> np.ndarray:
    """Cumulative sum along the last axis that restarts at 0 where reset is True (inc >= 0)."""
    c = np.cumsum(inc, axis=-1)
    base = np.where(reset, c - inc, 0.0)
    base = np.maximum.accumulate(base, axis=-1)
    return c - base


def _idx(t: float, start: int, n: int) -> int:
    """Index of the first scrape at or after Unix time t."""
    k = int(np.ceil((t - start) / STEP)) - 1
    return min(max(k, 0), n - 1)


def _uuid(rng: np.random.Generator) -> str:
    h = "".join(f"{b:02x}" for b in rng.integers(0, 256, 16))
    return f"GPU-{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def draw_physics(seed: int, days: int, end: int) -> Physics:
    """Draw the whole fleet history from the seed (no rendering here)."""
    rng = np.random.default_rng(seed)
    n_t = days * 86400 // STEP
    start = end - days * 86400
    ts = start + STEP * np.arange(1, n_t + 1, dtype=np.int64)
    hours = (ts % 86400) / 3600.0

    nodes: list[dict[str, Any]] = []
    slots: list[dict[str, Any]] = []
    for key, n_nodes, per, stem in FLEET:
        for i in range(n_nodes):
            nid = len(nodes)
            node = {"name": f"{stem}-{i + 1:02d}", "model": key, "gpus": [],
                    "inlet": float(rng.normal(24.0, 1.2)), "warm": False, "riser": False}
            bus = BUS8 if per == 8 else BUS4
            for g in range(per):
                sid = len(slots)
                node["gpus"].append(sid)
                slots.append({"node": nid, "gpu": g, "model": key,
                              "bus": f"00000000:{bus[g]}:00.0", "boards": []})
            nodes.append(node)
    n_s = len(slots)
    node_of = np.array([s["node"] for s in slots])
    mdl = [MODELS[s["model"]] for s in slots]
    ops: dict[str, int] = {}

    # Warm nodes and one marginal riser (benign).
    for nid in rng.choice(len(nodes), 4, replace=False):
        nodes[nid]["warm"] = True
        nodes[nid]["inlet"] += float(rng.uniform(6, 10))
    riser_node = int(rng.choice([i for i, n in enumerate(nodes) if n["model"] in ("a100p", "a10")]))
    nodes[riser_node]["riser"] = True

    # ---- operations: reboots, driver upgrade, outages -------------------------------------
    node_down = np.zeros((len(nodes), n_t), bool)
    node_boot = np.zeros((len(nodes), n_t), bool)
    drv = np.zeros((len(nodes), n_t), np.int8)
    exp_restart = np.zeros((len(nodes), n_t), bool)
    up_day = rng.uniform(0.35, 0.6) * days
    n_reb = 0
    for nid in range(len(nodes)):
        reboots = list(rng.uniform(0, days, rng.poisson(days / 25.0)))
        if rng.random() < 0.85:
            t_up = (up_day + rng.uniform(0, 3)) * 86400 + start
            k = _idx(t_up, start, n_t)
            drv[nid, k:] = 1
            reboots.append((t_up - start) / 86400.0)
        for d in reboots:
            k = _idx(start + d * 86400, start, n_t)
            node_down[nid, k] = True
            if k + 1 < n_t:
                node_boot[nid, k + 1] = True
            n_reb += 1
        for d in rng.uniform(0, days, rng.poisson(days / 15.0)):
            exp_restart[nid, _idx(start + d * 86400, start, n_t)] = True
    ops["node_reboots"] = n_reb
    ops["driver_upgraded_nodes"] = int((drv[:, -1] == 1).sum())
    ops["exporter_restarts"] = int(exp_restart.sum())
    scrape_gap = np.zeros((len(nodes), n_t), bool)
    if days >= 3:
        k0 = int(rng.integers(n_t // 5, n_t - 40))
        scrape_gap[:, k0:k0 + int(rng.integers(8, 21))] = True
    for _ in range(max(1, days // 6)):
        nid = int(rng.integers(len(nodes)))
        k0 = int(rng.integers(0, n_t - 4))
        scrape_gap[nid, k0:k0 + int(rng.integers(1, 4))] = True
    ops["scrape_gap_node_scrapes"] = int(scrape_gap.sum())

    # ---- workload -----------------------------------------------------------------------
    util = np.zeros((n_s, n_t), np.float32)
    inten = np.zeros((n_s, n_t), np.float32)
    memfrac = np.zeros((n_s, n_t), np.float32)
    app_xid: list[tuple[int, int, int]] = []
    for node in nodes:
        key = node["model"]
        groups = [node["gpus"]] if key in ("v100s", "a100s", "h100s") else [[s] for s in
                                                                             node["gpus"]]
        for grp in groups:
            u = np.zeros(n_t, np.float32)
            it = np.zeros(n_t, np.float32)
            mf = np.zeros(n_t, np.float32)
            if key == "l4":
                base = 0.25 + 0.5 * np.clip(np.sin((hours - 8) / 24 * 2 * np.pi), 0, None)
                u[:] = np.clip(base + rng.normal(0, 0.08, n_t), 0.02, 1.0)
                it[:] = 0.9
                mf[:] = 0.6
            else:
                k = int(rng.integers(0, 40))
                while k < n_t:
                    busy = max(1, int(rng.lognormal(np.log(40), 1.0)))
                    lvl = rng.uniform(0.6, 1.0)
                    u[k:k + busy] = lvl
                    it[k:k + busy] = rng.uniform(0.6, 1.2)
                    mf[k:k + busy] = rng.uniform(0.3, 0.95)
                    if rng.random() < 0.12:  # the job crashes with an application XID
                        code = int(rng.choice([13, 31, 43]))
                        kk = min(k + busy - 1, n_t - 1)
                        for s in grp:
                            app_xid.append((s, kk, code))
                            if rng.random() < 0.5:
                                app_xid.append((s, kk, 45))
                    k += busy + max(1, int(rng.lognormal(np.log(16), 1.0)))
                noise = rng.normal(0, 0.04, n_t).astype(np.float32)
                u = np.where(u > 0, np.clip(u + noise, 0.05, 1.0), 0.0).astype(np.float32)
            for s in grp:
                util[s] = u
                inten[s] = it
                memfrac[s] = mf

    # ---- failures -------------------------------------------------------------------------
    counts = {"hbm": 15, "pcie": 11, "nvlink": 10, "thermal": 11, "power": 10, "other": 12}
    for m in counts:
        counts[m] += int(rng.integers(0, 4))
    pre_p = {"hbm": 0.75, "pcie": 0.5, "nvlink": 0.6, "thermal": 0.8, "power": 0.5,
             "other": 0.0}
    lead_med = {"hbm": 3.0, "pcie": 1.0, "nvlink": 2.0, "thermal": 3.0, "power": 1.5}
    used: set[int] = set()
    failures: list[Failure] = []
    t_lo = start + min(6 * 86400, days * 86400 // 4)
    for mode in MODES:
        for _ in range(counts[mode]):
            w = np.ones(n_s)
            for s in range(n_s):
                m = mdl[s]
                if s in used:
                    w[s] = 0.15
                if mode == "hbm" and not m.ecc:
                    w[s] = 0
                if mode == "nvlink" and m.links == 0:
                    w[s] = 0
                if mode == "power" and m.key == "l4":
                    w[s] = 0
                if mode == "thermal" and (m.fan or nodes[slots[s]["node"]]["warm"]):
                    w[s] *= 3
            s = int(rng.choice(n_s, p=w / w.sum()))
            used.add(s)
            tf = int(rng.uniform(t_lo, end - 1800))
            pre = bool(rng.random() < pre_p[mode])
            ps = None
            if pre:
                lead = float(np.clip(rng.lognormal(np.log(lead_med[mode]), 0.7), 0.1, 14))
                ps = int(max(start + 3600, tf - lead * 86400))
            failures.append(Failure(s, tf, mode, pre, ps))
    failures.sort(key=lambda f: (f.time, f.slot))
    # One failure per slot at a time: drop overlaps (the later of two too close ones moves).
    by_slot: dict[int, list[Failure]] = {}
    for f in failures:
        by_slot.setdefault(f.slot, []).append(f)
    dropped: set[int] = set()
    for fl in by_slot.values():
        a = fl[0]
        for b in fl[1:]:
            lo = a.time + 10 * 86400
            if lo > end - 86400:
                dropped.add(id(b))
                continue
            if b.time < lo or (b.pstart is not None and b.pstart < a.time + 6 * 86400):
                b.time = min(end - 1800, lo + int(rng.uniform(0, 86400)))
                if b.pstart is not None:
                    b.pstart = max(a.time + 6 * 86400, b.time - 86400 * 2)
            a = b
    failures = [f for f in failures if id(f) not in dropped]
    failures.sort(key=lambda f: (f.time, f.slot))

    # ---- slot state, boards, repair -----------------------------------------------------
    state = np.ones((n_s, n_t), np.int8)
    drained = np.zeros((n_s, n_t), bool)
    board_change = np.zeros((n_s, n_t), bool)
    for s in range(n_s):
        slots[s]["boards"].append(Board(_uuid(rng), f"{int(rng.integers(10**12, 10**13))}", 0))
    repairs = []
    for f in failures:
        s = f.slot
        kf = _idx(f.time, start, n_t)
        lost = f.mode in ("pcie", "thermal", "power") or (f.mode == "other" and rng.random()
                                                         < 0.7)
        f.kind = "lost" if lost else "drained"
        t_rep = f.time + int(rng.uniform(6 * 3600, 4 * 86400))
        kr = _idx(t_rep, start, n_t) if t_rep < end else n_t
        if lost:
            state[s, kf:kr] = 2
        else:
            drained[s, kf:kr] = True
        swap = not (f.mode == "other" and rng.random() < 0.5)
        repairs.append((s, kr, swap))
    for s, kr, swap in sorted(repairs, key=lambda r: r[1]):
        if kr >= n_t:
            continue
        nid = slots[s]["node"]
        down = int(rng.integers(1, 5))
        node_down[nid, kr:kr + down] = True
        if kr + down < n_t:
            node_boot[nid, kr + down] = True
            if swap:
                slots[s]["boards"].append(Board(_uuid(rng),
                                                f"{int(rng.integers(10**12, 10**13))}",
                                                kr + down))
                board_change[s, kr + down] = True
    ops["board_replacements"] = int(sum(len(s["boards"]) - 1 for s in slots))
    tenure = np.zeros((n_s, n_t), np.int16)
    for s in range(n_s):
        for b_i, b in enumerate(slots[s]["boards"][1:], start=1):
            tenure[s, b.start:] = b_i
    for f in failures:
        b_i = int(tenure[f.slot, _idx(f.time, start, n_t)])
        f.uuid = slots[f.slot]["boards"][b_i].uuid
    state[node_down[node_of]] = 0
    boot_s = node_boot[node_of] | board_change
    for f in failures:  # thermal and power faults strike under load
        if f.mode in ("thermal", "power"):
            kf = _idx(f.time, start, n_t)
            k0 = max(kf - int(rng.integers(4, 16)), 0)
            util[f.slot, k0:kf] = np.maximum(util[f.slot, k0:kf], rng.uniform(0.85, 1.0))
            inten[f.slot, k0:kf] = np.maximum(inten[f.slot, k0:kf], 0.9)
    busy = (state == 1) & ~drained
    util = np.where(busy, util, 0.0).astype(np.float32)

    # ---- thermal / power physics ------------------------------------------------------
    tdp = np.array([m.tdp for m in mdl], np.float32)[:, None]
    idle_w = np.array([m.idle_w for m in mdl], np.float32)[:, None]
    r_th = np.array([m.r_th for m in mdl], np.float32)[:, None] * rng.uniform(
        0.92, 1.08, (n_s, 1)).astype(np.float32)
    inlet = np.array([nodes[s["node"]]["inlet"] for s in slots], np.float32)[:, None]
    inlet = inlet + rng.normal(0, 0.4, (n_s, n_t)).astype(np.float32)
    inlet += (0.8 * np.sin((hours - 15) / 24 * 2 * np.pi)).astype(np.float32)[None, :]
    if days >= 5:  # one HVAC excursion on a block of nodes
        k0 = int(rng.integers(n_t // 4, n_t - 100))
        hv = rng.choice(len(nodes), 8, replace=False)
        for nid in hv:
            for s in nodes[nid]["gpus"]:
                inlet[s, k0:k0 + 80] += 7.0
        ops["hvac_excursion_nodes"] = 8
    fan_fail = np.zeros((n_s, n_t), bool)
    rmul = np.ones((n_s, n_t), np.float32)
    brake = np.zeros((n_s, n_t), bool)
    p_noise = np.zeros((n_s, n_t), np.float32)
    for f in failures:
        if f.mode == "thermal" and f.precursor and f.pstart is not None:
            s = f.slot
            k0, kf = _idx(f.pstart, start, n_t), _idx(f.time, start, n_t)
            ramp = np.linspace(0, 1, max(kf - k0, 1), dtype=np.float32)
            if mdl[s].fan and rng.random() < 0.6:
                fan_fail[s, k0 + (kf - k0) // 2:kf] = True
                r_th[s] = r_th[s]  # fan physics handled below
                inlet[s, k0:kf] += 4 * ramp
            else:
                rmul[s, k0:kf] += (0.45 + 0.4 * rng.random()) * ramp ** 1.3
                inlet[s, k0:kf] += 4 * ramp
        if f.mode == "power" and f.precursor and f.pstart is not None:
            s = f.slot
            k0, kf = _idx(f.pstart, start, n_t), _idx(f.time, start, n_t)
            n = kf - k0
            pr = np.linspace(0.03, 0.5, max(n, 1)) ** 1.3
            brake[s, k0:kf] = rng.random(n) < pr
            p_noise[s, k0:kf] = rng.normal(0, 0.06, n) * np.linspace(0.3, 1, max(n, 1))
    demand = idle_w + (tdp - idle_w) * (0.12 + 0.88 * util ** 1.2 * inten)
    demand *= 1 + p_noise
    limit = np.repeat(tdp, n_t, axis=1)
    capped = demand > limit
    power = np.minimum(demand, limit) * rng.normal(1, 0.015, (n_s, n_t)).astype(np.float32)
    power = np.where(brake, power * 0.55, power)
    fan_cool = np.array([m.fan for m in mdl])[:, None]
    temp = inlet + r_th * power * rmul
    temp = np.where(fan_cool & ~fan_fail, inlet + r_th * power * 0.95, temp)
    temp = np.where(fan_fail, inlet + r_th * power * 1.9, temp)
    temp += rng.normal(0, 0.6, (n_s, n_t)).astype(np.float32)
    max_op = np.array([m.max_op for m in mdl], np.float32)[:, None]
    slow = np.array([m.slowdown for m in mdl], np.float32)[:, None]
    sw_th = temp >= max_op - 0.5
    hw_th = temp >= slow
    temp = np.where(sw_th, np.minimum(temp, max_op + (temp - max_op) * 0.35 + 0.5), temp)
    sw_th = sw_th & busy
    hw_th = hw_th & busy
    fan = np.clip(0.3 + (temp - 45) / 45, 0.3, 1.0)
    fan = np.where(fan_fail, 0.0, fan)
    temp_mem = temp - 3.0 + rng.normal(0, 0.5, (n_s, n_t)).astype(np.float32)
    sm_max = np.array([m.sm_max for m in mdl], np.float32)[:, None]
    sm_idle = np.array([m.sm_idle for m in mdl], np.float32)[:, None]
    ratio = np.where(capped, np.sqrt(limit / np.maximum(demand, 1)), 1.0)
    ratio = np.where(sw_th, ratio * 0.85, ratio)
    ratio = np.where(hw_th, ratio * 0.6, ratio)
    ratio = np.where(brake, ratio * 0.5, ratio)
    sm = np.where(util > 0, np.round(sm_max * ratio / 15) * 15, sm_idle)
    idle_p = np.array([m.idle_p for m in mdl], np.int8)[:, None]
    pstate = np.where(util > 0, 0, idle_p).astype(np.int8)
    memc = np.where((pstate == 8), np.array([m.mem_idle for m in mdl])[:, None],
                    np.array([m.mem_clk for m in mdl])[:, None])
    reasons = np.zeros((n_s, n_t), np.int32)
    reasons |= np.where(util == 0, R_IDLE, 0)
    reasons |= np.where(capped & (util > 0), R_SWPOWER, 0)
    reasons |= np.where(sw_th, R_SWTHERM, 0)
    reasons |= np.where(hw_th, R_HWTHERM | R_HWSLOW, 0)
    reasons |= np.where(brake & busy, R_BRAKE | R_HWSLOW, 0)
    up = state == 1
    boot = boot_s.copy()
    boot[:, 0] = True
    frac_pw = np.where(capped & busy, np.clip((demand - limit) / limit * 4 + 0.3, 0.3, 1.0), 0)
    v_power = frac_pw * STEP
    v_therm = (sw_th * 0.4 + hw_th * 0.6) * STEP * rng.uniform(0.5, 1.0, (n_s, n_t))
    v_board = np.where(brake & busy, rng.uniform(5, 120, (n_s, n_t)), 0.0)
    v_rel = np.zeros((n_s, n_t))
    v_lowu = np.where(util == 0, STEP * 0.98, 0.0)
    v_sync = np.zeros((n_s, n_t))
    arr: dict[str, np.ndarray] = {}
    for nm, inc in (("v_power", v_power), ("v_thermal", v_therm), ("v_board", v_board),
                    ("v_rel", v_rel), ("v_lowutil", v_lowu), ("v_sync", v_sync)):
        arr[nm] = _cum_reset(np.where(up, inc, 0.0), boot)
    arr["energy"] = _cum_reset(np.where(up, power * STEP, 0.0).astype(np.float64), boot)
    arr["util"] = util
    arr["memutil"] = np.clip(util * (0.35 + 0.5 * memfrac), 0, 1).astype(np.float32)
    fb = np.array([m.fb_mib for m in mdl], np.float32)[:, None]
    res = np.array([m.reserved_mib for m in mdl], np.float32)[:, None]
    used_mib = np.where(util > 0, np.round((fb - res) * memfrac), 0.0)
    arr["fb_used"] = used_mib
    arr["fb_free"] = fb - res - used_mib
    arr["fb_res"] = np.repeat(res, n_t, axis=1)
    arr["power"] = np.where(up, power, 0).astype(np.float32)
    arr["limit"] = limit
    arr["temp"] = np.round(temp)
    arr["temp_mem"] = np.round(temp_mem)
    arr["fan"] = np.round(fan, 2)
    arr["sm"] = sm
    arr["memclk"] = memc
    arr["pstate"] = pstate
    arr["reasons"] = reasons
    arr["enc"] = np.zeros((n_s, n_t), np.float32)
    arr["dec"] = np.where(np.array([m.key == "l4" for m in mdl])[:, None], np.round(
        util * 30), 0).astype(np.float32)

    # ---- memory, PCIe, NVLink, XID events ----------------------------------------------
    sbe = np.zeros((n_s, n_t))
    dbe = np.zeros((n_s, n_t))
    rm_c = np.zeros((n_s, n_t))
    rm_u = np.zeros((n_s, n_t))
    rm_fail = np.zeros((n_s, n_t))
    ret_s = np.zeros((n_s, n_t))
    ret_d = np.zeros((n_s, n_t))
    pend_ev = np.zeros((n_s, n_t), bool)
    replay = np.zeros((n_s, n_t))
    width = np.array([16.0] * n_s)[:, None].repeat(n_t, axis=1)
    gen_max = np.array([m.gen for m in mdl], np.float32)[:, None]
    gen = np.where(pstate == 8, 1.0, gen_max).astype(np.float32)
    xev: list[tuple[int, int, int]] = list(app_xid)
    nvl: dict[int, np.ndarray] = {}
    nvl_bytes: dict[int, np.ndarray] = {}
    for s in range(n_s):
        if mdl[s].links:
            inc = np.zeros((mdl[s].links, 4, n_t))
            nvl[s] = inc
            bw = util[s] * rng.uniform(2e9, 2e10) * STEP
            nvl_bytes[s] = np.stack([bw, bw * rng.uniform(0.95, 1.05)])

    def mem_event(s: int, k: int, kind: str) -> None:
        if not mdl[s].ecc:
            return
        if mdl[s].remap:
            if kind == "corr":
                rm_c[s, k] += 1
                pend_ev[s, k] = True
                xev.append((s, k, 63))
            else:
                rm_u[s, k] += 1
                dbe[s, k] += 1
                pend_ev[s, k] = True
                xev.append((s, k, 94))
                xev.append((s, k, 63))
        else:
            if kind == "corr":
                ret_s[s, k] += 1
                pend_ev[s, k] = True
                xev.append((s, k, 63))
            else:
                ret_d[s, k] += 1
                dbe[s, k] += 1
                pend_ev[s, k] = True
                xev.append((s, k, 48))
                xev.append((s, k, 63))

    # benign: noisy-but-healthy ECC boards, riser, NVLink CRC noise, XID 92
    ecc_slots = [s for s in range(n_s) if mdl[s].ecc]
    for s in rng.choice(ecc_slots, 12, replace=False):
        lam = rng.uniform(0.05, 2.0)
        sbe[s] += rng.poisson(lam * np.where(util[s] > 0, 1.0, 0.3))
        for _ in range(int(rng.integers(0, 3))):
            mem_event(int(s), int(rng.integers(0, n_t)), "corr")
        if rng.random() < 0.3:
            xev.append((int(s), int(rng.integers(0, n_t)), 92))
    for s in range(n_s):
        if mdl[s].ecc:
            sbe[s] += rng.poisson(0.002, n_t)
        replay[s] += rng.poisson(0.001, n_t) * rng.integers(1, 20, n_t)
    for s in nodes[riser_node]["gpus"][:2]:
        bursts = rng.random(n_t) < 0.01
        replay[s] += bursts * rng.integers(5, 400, n_t)
    for s in list(nvl)[:: max(1, len(nvl) // 3)]:
        link = int(rng.integers(nvl[s].shape[0]))
        nvl[s][link, 0] += (rng.random(n_t) < 0.02) * rng.integers(1, 30, n_t)
        nvl[s][link, 2] += (rng.random(n_t) < 0.005)

    for f in failures:
        s = f.slot
        kf = _idx(f.time, start, n_t)
        k0 = _idx(f.pstart, start, n_t) if f.pstart is not None else kf
        n = max(kf - k0, 1)
        ramp = np.linspace(0, 1, n)
        if f.mode == "hbm":
            if f.precursor:
                lam = 0.2 * np.exp(np.log(400) * ramp) * rng.uniform(0.5, 2)
                sbe[s, k0:kf] += rng.poisson(lam)[: kf - k0]
                for _ in range(int(rng.integers(2, 9))):
                    mem_event(s, k0 + int(n * rng.random() ** 0.5), "corr")
                for _ in range(int(rng.integers(0, 3))):
                    mem_event(s, k0 + int(n * (0.6 + 0.4 * rng.random())) - 1, "unc")
                if not mdl[s].remap and rng.random() < 0.6:
                    xev.append((s, k0 + int(n * 0.7), 92))
            dbe[s, kf] += int(rng.integers(1, 4))
            if mdl[s].remap:
                rm_u[s, kf] += 1
                rm_fail[s, kf:] = 1
                xev.append((s, kf, 95))
                xev.append((s, kf, 64))
            else:
                ret_d[s, kf] += 1
                pend_ev[s, kf] = True
                xev.append((s, kf, 48))
                xev.append((s, kf, 63))
        elif f.mode == "pcie":
            if f.precursor:
                lam = 0.5 * np.exp(np.log(2000) * ramp)
                replay[s, k0:kf] += (rng.poisson(lam) * (rng.random(n) < 0.6))[: kf - k0]
                kd = k0 + int(n * rng.uniform(0.4, 0.9))
                if rng.random() < 0.6:
                    width[s, kd:kf] = 8
                else:
                    gen[s, kd:kf] = np.maximum(gen_max[s, 0] - 2, 1)
            xev.append((s, kf, 79))
        elif f.mode == "nvlink":
            link = int(rng.integers(nvl[s].shape[0]))
            if f.precursor:
                lam = 1.0 * np.exp(np.log(3000) * ramp)
                nvl[s][link, 0, k0:kf] += rng.poisson(lam)[: kf - k0]
                nvl[s][link, 1, k0:kf] += rng.poisson(lam * 0.3)[: kf - k0]
                nvl[s][link, 2, k0:kf] += rng.poisson(lam * 0.05)[: kf - k0]
                nvl[s][link, 3, k0:kf] += (rng.random(n) < 0.02 + 0.1 * ramp)[: kf - k0]
                for _ in range(int(rng.integers(1, 4))):
                    xev.append((s, k0 + int(n * (0.5 + 0.5 * rng.random())) - 1, 74))
            nvl[s][link, 3, kf] += int(rng.integers(5, 50))
            xev.append((s, kf, 74))
        elif f.mode in ("thermal", "power"):
            if f.mode == "power" and f.precursor and rng.random() < 0.5:
                xev.append((s, k0 + int(n * 0.8), 62))
            xev.append((s, kf, 79))
        else:
            xev.append((s, kf, int(rng.choice([79, 79, 119, 62, 43]))))
    for s in range(n_s):
        if not mdl[s].ecc:
            sbe[s] = 0
            dbe[s] = 0
    life = board_change.copy()
    life[:, 0] = True
    vol_reset = boot.copy()
    # GPU resets after pending remaps (admins), ~half of the pending events within a day
    gpu_reset = np.zeros((n_s, n_t), bool)
    for s, k in zip(*np.nonzero(pend_ev), strict=False):
        if rng.random() < 0.5 and k + 4 < n_t:
            gpu_reset[s, k + int(rng.integers(2, 96)) if k + 96 < n_t else k + 2] = True
    ops["gpu_resets"] = int(gpu_reset.sum())
    vol_reset |= gpu_reset
    arr["sbe_vol"] = _cum_reset(np.where(up, sbe, 0), vol_reset)
    arr["dbe_vol"] = _cum_reset(dbe, vol_reset)
    arr["sbe_agg"] = _cum_reset(np.where(up, sbe, 0), life)
    arr["dbe_agg"] = _cum_reset(dbe, life)
    arr["rm_c"] = _cum_reset(rm_c, life)
    arr["rm_u"] = _cum_reset(rm_u, life)
    arr["rm_fail"] = np.minimum(_cum_reset(np.diff(rm_fail, axis=1, prepend=0).clip(0), life), 1)
    arr["ret_s"] = _cum_reset(ret_s, life)
    arr["ret_d"] = _cum_reset(ret_d, life)
    # pending: set by an event, cleared by the next reset/reboot (row remap) or reboot (pages)
    pend = np.zeros((n_s, n_t), np.float32)
    pend_pages = np.zeros((n_s, n_t), np.float32)
    for s in range(n_s):
        ev = pend_ev[s]
        vr = vol_reset[s]
        bt = boot[s]
        row = pend[s]
        rowp = pend_pages[s]
        cur = 0.0
        curp = 0.0
        for k in range(n_t):
            if vr[k]:
                cur = 0.0
            if bt[k]:
                curp = 0.0
            if ev[k]:
                cur = 1.0
                curp = 1.0
            row[k] = cur
            rowp[k] = curp
    arr["rm_pend"] = pend
    arr["ret_pend"] = pend_pages
    arr["replay"] = _cum_reset(np.where(up, replay, 0), vol_reset)
    arr["gen"] = gen
    arr["width"] = width
    arr["gen_max"] = np.repeat(gen_max, n_t, axis=1)
    nvl_cum = {s: _cum_reset(np.where(up[s], v, 0), np.broadcast_to(vol_reset[s], v.shape))
               for s, v in nvl.items()}
    nvb_cum = {s: _cum_reset(np.where(up[s], v, 0), np.broadcast_to(boot[s], v.shape))
               for s, v in nvl_bytes.items()}
    # XIDs: counts since boot (kernel log), last timestamp, dcgm last code
    xid: dict[int, np.ndarray] = {}
    for s, k, code in xev:
        if state[s, k] == 0:
            continue
        xid.setdefault(code, np.zeros((n_s, n_t), np.float32))[s, k] += 1
    for c in CAT_CODES:
        xid.setdefault(c, np.zeros((n_s, n_t), np.float32))
    xid_present: dict[int, np.ndarray] = {}
    xid_cum: dict[int, np.ndarray] = {}
    for c, inc in xid.items():
        xid_cum[c] = _cum_reset(inc, boot)
        if c not in CAT_CODES:
            xid_present[c] = xid_cum[c] > 0
    last_ts = np.zeros((n_s, n_t))
    dlast = np.zeros((n_s, n_t), np.int16)
    dreset = boot | exp_restart[node_of]
    evk = sorted((s, k, c) for s, k, c in xev if state[s, k] != 0)
    ev_by_slot: dict[int, list[tuple[int, int]]] = {}
    for s, k, c in evk:
        ev_by_slot.setdefault(s, []).append((k, c))
    for s in range(n_s):
        evs = dict(ev_by_slot.get(s, []))
        cur_t = 0.0
        cur_c = 0
        bt = boot[s]
        dr = dreset[s]
        for k in range(n_t):
            if bt[k]:
                cur_t = 0.0
            if dr[k]:
                cur_c = 0
            if k in evs:
                cur_t = float(ts[k] - int(rng.integers(1, STEP)))
                cur_c = evs[k]
            last_ts[s, k] = cur_t
            dlast[s, k] = cur_c
    cls: dict[str, np.ndarray] = {c: np.zeros((n_s, n_t)) for c in CLASSES}
    for c, cum in xid_cum.items():
        cls[CODE_CLASS.get(c, "other")] += cum
    arr["scraped"] = ~scrape_gap[node_of]
    return Physics(seed, days, end, start, ts, nodes, slots, node_of, state, tenure, drv, arr,
                   nvl_cum, nvb_cum, xid_cum, xid_present, cls, last_ts, dlast, failures, ops)


# ---------------------------------------------------------------------------------------------
# Rendering (consumes no randomness)
# ---------------------------------------------------------------------------------------------

def _fmt(vals: np.ndarray, kind: str) -> list[str]:
    if kind == "i":
        return [str(v) for v in np.rint(vals).astype(np.int64).tolist()]
    return [repr(v) for v in np.round(vals.astype(np.float64), int(kind)).tolist()]


def _series_ours(ph: Physics, s: int) -> list[tuple[str, str, str, Any, str]]:
    """(mask, name, extra labels, values [row or callable], format) for one slot, ours."""
    m = MODELS[ph.slots[s]["model"]]
    a = ph.arr
    out: list[tuple[str, str, str, Any, str]] = []
    out.append(("seen", "gpu_up", "", (ph.state[s] == 1).astype(np.float32), "i"))
    out.append(("up", "gpu_temperature_celsius", 'sensor="gpu"', a["temp"][s], "i"))
    if m.fan:
        out.append(("up", "gpu_fan_speed_ratio", "", a["fan"][s], "2"))
    out.append(("up", "gpu_power_watts", "", a["power"][s], "3"))
    out.append(("up", "gpu_clock_hertz", 'clock="sm"', a["sm"][s] * 1e6, "i"))
    for reason, bit in ACTIVE_REASONS:
        out.append(("up", "gpu_clock_event_active", f'reason="{reason}"',
                    ((a["reasons"][s] & bit) > 0).astype(np.float32), "i"))
    out.append(("up", "gpu_clock_event_seconds_total", 'reason="thermal"', a["v_thermal"][s],
                "3"))
    out.append(("up", "gpu_utilization_ratio", 'engine="gpu"', a["util"][s], "2"))
    out.append(("up", "gpu_memory_used_bytes", "", a["fb_used"][s] * 1048576.0, "i"))
    if m.ecc:
        for typ, scope, key in (("corrected", "aggregate", "sbe_agg"),
                                ("uncorrected", "aggregate", "dbe_agg")):
            out.append(("up", "gpu_ecc_errors_total", f'type="{typ}",scope="{scope}"',
                        a[key][s], "i"))
        if m.remap:
            out.append(("up", "gpu_remapped_rows_total", 'cause="correctable"', a["rm_c"][s],
                        "i"))
            out.append(("up", "gpu_remapped_rows_total", 'cause="uncorrectable"',
                        a["rm_u"][s], "i"))
            out.append(("up", "gpu_row_remap_pending", "", a["rm_pend"][s], "i"))
            out.append(("up", "gpu_row_remap_failed", "", a["rm_fail"][s], "i"))
        else:
            out.append(("up", "gpu_retired_pages", 'cause="single_bit_ecc"', a["ret_s"][s],
                        "i"))
            out.append(("up", "gpu_retired_pages", 'cause="double_bit_ecc"', a["ret_d"][s],
                        "i"))
            out.append(("up", "gpu_retired_pages_pending", "", a["ret_pend"][s], "i"))
    for code in sorted(ph.xid_cum_codes()):
        mask = "seen" if code in CAT_CODES else f"xid{code}"
        out.append((mask, "gpu_xid_errors_total", f'xid="{code}"', ph.xid_row(code, s), "i"))
    for c in CLASSES:
        out.append(("seen", "gpu_xid_class_errors_total", f'class="{c}"', ph.xid_class[c][s],
                    "i"))
    out.append(("up", "gpu_pcie_replays_total", "", a["replay"][s], "i"))
    out.append(("up", "gpu_pcie_link_generation", "", a["gen"][s], "i"))
    out.append(("up", "gpu_pcie_link_width", "", a["width"][s], "i"))
    if s in ph.nvl:
        v = ph.nvl[s]
        for link in range(v.shape[0]):
            for t_i in NVL_OURS:
                typ = NVL_TYPES[t_i]
                out.append(("up", "gpu_nvlink_errors_total", f'link="{link}",type="{typ}"',
                            v[link, t_i], "i"))
    return out


def _series_dcgm(ph: Physics, s: int) -> list[tuple[str, str, str, Any, str]]:
    m = MODELS[ph.slots[s]["model"]]
    a = ph.arr
    n_t = len(ph.ts)
    zero = np.zeros(n_t)
    out: list[tuple[str, str, str, Any, str]] = [
        ("up", "DCGM_FI_DEV_SM_CLOCK", "", a["sm"][s], "i"),
        ("up", "DCGM_FI_DEV_MEM_CLOCK", "", a["memclk"][s], "i"),
        ("up", "DCGM_FI_DEV_MEMORY_TEMP", "", a["temp_mem"][s] if m.hbm else zero, "i"),
        ("up", "DCGM_FI_DEV_GPU_TEMP", "", a["temp"][s], "i"),
        ("up", "DCGM_FI_DEV_POWER_USAGE", "", a["power"][s], "3"),
        ("up", "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", "", a["energy"][s] * 1000.0, "i"),
        ("up", "DCGM_FI_DEV_PCIE_REPLAY_COUNTER", "", a["replay"][s], "i"),
        ("up", "DCGM_FI_DEV_GPU_UTIL", "", a["util"][s] * 100.0, "i"),
        ("up", "DCGM_FI_DEV_MEM_COPY_UTIL", "", a["memutil"][s] * 100.0, "i"),
        ("up", "DCGM_FI_DEV_ENC_UTIL", "", a["enc"][s], "i"),
        ("up", "DCGM_FI_DEV_DEC_UTIL", "", a["dec"][s], "i"),
        ("dxid", "DCGM_FI_DEV_XID_ERRORS", "", ph.dcgm_last[s], "i"),
    ]
    for name, key in (("POWER", "v_power"), ("THERMAL", "v_thermal"),
                      ("SYNC_BOOST", "v_sync"), ("BOARD_LIMIT", "v_board"),
                      ("LOW_UTIL", "v_lowutil"), ("RELIABILITY", "v_rel")):
        out.append(("up", f"DCGM_FI_DEV_{name}_VIOLATION", "", a[key][s] * 1e9, "i"))
    out.append(("up", "DCGM_FI_DEV_CLOCK_THROTTLE_REASONS", "", a["reasons"][s], "i"))
    out.append(("up", "DCGM_FI_DEV_FB_FREE", "", a["fb_free"][s], "i"))
    out.append(("up", "DCGM_FI_DEV_FB_USED", "", a["fb_used"][s], "i"))
    out.append(("up", "DCGM_FI_DEV_FB_RESERVED", "", a["fb_res"][s], "i"))
    if m.ecc:
        for name, key in (("SBE_VOL", "sbe_vol"), ("DBE_VOL", "dbe_vol"),
                          ("SBE_AGG", "sbe_agg"), ("DBE_AGG", "dbe_agg")):
            out.append(("up", f"DCGM_FI_DEV_ECC_{name}_TOTAL", "", a[key][s], "i"))
        if not m.remap:
            out.append(("up", "DCGM_FI_DEV_RETIRED_SBE", "", a["ret_s"][s], "i"))
            out.append(("up", "DCGM_FI_DEV_RETIRED_DBE", "", a["ret_d"][s], "i"))
            out.append(("up", "DCGM_FI_DEV_RETIRED_PENDING", "", a["ret_pend"][s], "i"))
    if s in ph.nvl:
        v = ph.nvl[s].sum(axis=0)
        crc_data = zero if m.key == "h100s" else v[1]
        bw = (ph.nvl_bytes[s][0] + ph.nvl_bytes[s][1]) / 1048576.0
    else:
        v = np.zeros((4, n_t))
        crc_data = zero
        bw = zero
    out.append(("up", "DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL", "", v[0], "i"))
    out.append(("up", "DCGM_FI_DEV_NVLINK_CRC_DATA_ERROR_COUNT_TOTAL", "", crc_data, "i"))
    out.append(("up", "DCGM_FI_DEV_NVLINK_REPLAY_ERROR_COUNT_TOTAL", "", v[2], "i"))
    out.append(("up", "DCGM_FI_DEV_NVLINK_RECOVERY_ERROR_COUNT_TOTAL", "", v[3], "i"))
    out.append(("up", "DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL", "", bw, "i"))
    out.append(("up", "DCGM_FI_DEV_VGPU_LICENSE_STATUS", "", zero, "i"))
    if m.ecc and m.remap:
        out.append(("up", "DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS", "", a["rm_u"][s], "i"))
        out.append(("up", "DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS", "", a["rm_c"][s], "i"))
        out.append(("up", "DCGM_FI_DEV_ROW_REMAP_FAILURE", "", a["rm_fail"][s], "i"))
    return out


class Renderer:
    """Writes OpenMetrics chunks (one per 2-hour block window) and converts them."""

    def __init__(self, ph: Physics, schema: str, out: str, promtool: str) -> None:
        self.ph = ph
        self.schema = schema
        self.out = out
        self.promtool = promtool
        self.ts_str = [str(int(t)) for t in ph.ts]
        self.specs = [(_series_ours if schema == "ours" else _series_dcgm)(ph, s)
                      for s in range(len(ph.slots))]
        self.procs: list[tuple[subprocess.Popen[bytes], str]] = []
        self.samples = 0
        # A lazier Go garbage collector cuts promtool's CPU by about a sixth.
        self.env = dict(os.environ, GOGC=os.environ.get("GOGC", "400"))

    def _ident(self, s: int, k: int) -> str:
        ph = self.ph
        sl = ph.slots[s]
        node = ph.nodes[sl["node"]]["name"]
        board = sl["boards"][int(ph.tenure[s, k])]
        model = MODELS[sl["model"]].name
        if self.schema == "ours":
            return (f'job="{OURS_JOB}",instance="{node}:{OURS_PORT}",node="{node}",'
                    f'gpu="{sl["gpu"]}",uuid="{board.uuid}",pci_bus_id="{sl["bus"]}",'
                    f'model="{model}"')
        drv = DRIVERS[int(ph.drv[sl["node"], k])][0]
        return (f'job="{DCGM_JOB}",instance="{node}:{DCGM_PORT}",gpu="{sl["gpu"]}",'
                f'UUID="{board.uuid}",pci_bus_id="{sl["bus"]}",device="nvidia{sl["gpu"]}",'
                f'modelName="{model}",Hostname="{node}",DCGM_FI_DRIVER_VERSION="{drv}"')

    def _info(self, s: int, k: int) -> str:
        ph = self.ph
        sl = ph.slots[s]
        board = sl["boards"][int(ph.tenure[s, k])]
        drv, cuda = DRIVERS[int(ph.drv[sl["node"], k])]
        vb = MODELS[sl["model"]].vbios
        return (f'serial="{board.serial}",vbios_version="{vb}",driver_version="{drv}",'
                f'cuda_driver_version="{cuda}"')

    def chunk_text(self, ks: np.ndarray) -> str:
        ph = self.ph
        parts: list[str] = []
        scraped = ph.arr["scraped"]
        for s in range(len(ph.slots)):
            nid = ph.slots[s]["node"]
            st = ph.state[s, ks]
            sc = scraped[s, ks]
            key = ph.tenure[s, ks].astype(np.int64) * 4 + ph.drv[nid, ks]
            cuts = [0, *list(np.nonzero(np.diff(key))[0] + 1), len(ks)]
            for a_i, b_i in itertools.pairwise(cuts):
                kk = ks[a_i:b_i]
                seen_m = (st[a_i:b_i] > 0) & sc[a_i:b_i]
                if not seen_m.any():
                    continue
                up_m = (st[a_i:b_i] == 1) & sc[a_i:b_i]
                ident = self._ident(s, int(kk[0]))
                k_seen = kk[seen_m]
                k_up = kk[up_m]
                if self.schema == "ours":
                    parts.append(self._lines("gpu_info", ident + "," + self._info(s, int(kk[0])),
                                             np.ones(len(k_seen)), k_seen, "i"))
                for mask, name, extra, vals, kind in self.specs[s]:
                    if mask == "up":
                        sel = k_up
                    elif mask == "seen":
                        sel = k_seen
                    elif mask == "lastxid":
                        sel = k_seen[ph.xid_last_ts[s, k_seen] > 0]
                    elif mask == "dxid":
                        sel = k_up
                        if len(sel):
                            codes = ph.dcgm_last[s, sel]
                            for c in np.unique(codes):
                                sub = sel[codes == c]
                                lab = (f'{ident},err_code="{int(c)}",'
                                       f'err_msg="{XID_TEXT.get(int(c), "Unknown Error")}"')
                                parts.append(self._lines(name, lab, vals[sub], sub, kind))
                        continue
                    else:
                        code = int(mask[3:])
                        sel = k_seen[ph.xid_present[code][s, k_seen]]
                    if len(sel) == 0:
                        continue
                    lab = ident + ("," + extra if extra else "")
                    parts.append(self._lines(name, lab, vals[sel], sel, kind))
        return "".join(parts)

    def _lines(self, name: str, labels: str, vals: np.ndarray, ks: np.ndarray,
               kind: str) -> str:
        pre = f"{name}{{{labels}}} "
        vs = _fmt(np.asarray(vals), kind)
        tss = self.ts_str
        self.samples += len(vs)
        return "".join([f"{pre}{v} {tss[k]}\n" for v, k in zip(vs, ks.tolist(), strict=True)])

    def _reap(self, limit: int) -> None:
        while len(self.procs) > limit:
            p, path = self.procs.pop(0)
            _, err = p.communicate()
            if p.returncode != 0:
                msg = err.decode(errors="replace").strip().splitlines()
                raise RuntimeError(f"promtool failed on {path}: {msg[-1] if msg else '?'}")
            os.remove(path)
            self._collect()

    def _collect(self) -> None:
        """Move finished blocks (final ULID names) from the staging folder into the output."""
        for name in sorted(os.listdir(self.stage)):
            if len(name) == 26 and name.isalnum():
                shutil.move(os.path.join(self.stage, name), os.path.join(self.prom, name))

    def run(self) -> None:
        ph = self.ph
        self.prom = os.path.join(self.out, "prometheus")
        os.makedirs(self.prom, exist_ok=True)
        # Chunks and blocks are staged next to the output; finished blocks are renamed in.
        tmp = tempfile.mkdtemp(prefix=".lab-fleet-", dir=self.out)
        self.stage = os.path.join(tmp, "blocks")
        os.makedirs(self.stage)
        # The OpenMetrics chunks (several GB in all, each read twice) go to tmpfs when there is
        # room; promtool's blocks stay on the output's disk.
        self.chunk_dir = tmp
        shm = "/dev/shm"
        if os.path.isdir(shm) and os.access(shm, os.W_OK) and shutil.disk_usage(shm).free > 2e9:
            self.chunk_dir = tempfile.mkdtemp(prefix="lab-fleet-", dir=shm)
        win = ph.ts // BLOCK
        bounds = [0, *list(np.nonzero(np.diff(win))[0] + 1), len(ph.ts)]
        try:
            for i, (a_i, b_i) in enumerate(itertools.pairwise(bounds)):
                text = self.chunk_text(np.arange(a_i, b_i))
                path = os.path.join(self.chunk_dir, f"c{i:05d}.om")
                with open(path, "w") as fh:
                    fh.write(text)
                    fh.write("# EOF\n")
                p = subprocess.Popen([self.promtool, "tsdb", "create-blocks-from", "openmetrics",
                                      "-q", path, self.stage], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, env=self.env)
                self.procs.append((p, path))
                self._reap(WORKERS - 1)
            self._reap(0)
        finally:
            for p, _ in self.procs:
                p.kill()
            shutil.rmtree(tmp, ignore_errors=True)
            if self.chunk_dir != tmp:
                shutil.rmtree(self.chunk_dir, ignore_errors=True)


def write_truth(ph: Physics, out: str, schema: str, args: argparse.Namespace,
                stats: dict[str, Any]) -> dict[str, Any]:
    rows = sorted(((f.uuid, f.time, f.mode, f.precursor, f.pstart) for f in ph.failures),
                  key=lambda r: (r[1], r[0]))
    with open(os.path.join(out, "failures.csv"), "w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["uuid", "time", "mode", "precursor", "precursor_start"])
        for u, t, mo, pre, ps in rows:
            w.writerow([u, t, mo, "true" if pre else "false", "" if ps is None else ps])
    by_mode = {m: sum(1 for f in ph.failures if f.mode == m) for m in MODES}
    pre_mode = {m: sum(1 for f in ph.failures if f.mode == m and f.precursor) for m in MODES}
    shape: dict[str, Any] = {}
    for key, n_nodes, per, _ in FLEET:
        shape[MODELS[key].name] = {"nodes": n_nodes, "gpus_per_node": per,
                                   "slots": n_nodes * per}
    truth = {
        "generator": "bench/lab_fleet.py",
        "seed": ph.seed,
        "schema": schema,
        "params": {"days": ph.days, "end": ph.end, "start": ph.start, "step_seconds": STEP,
                   "scrapes": len(ph.ts)},
        "fleet": {"slots": len(ph.slots), "nodes": len(ph.nodes),
                  "boards": sum(len(s["boards"]) for s in ph.slots), "models": shape},
        "failures_total": len(ph.failures),
        "failures_by_mode": by_mode,
        "precursor_by_mode": pre_mode,
        "precursor_total": sum(pre_mode.values()),
        "failure_kinds": {k: sum(1 for f in ph.failures if f.kind == k)
                          for k in ("lost", "drained")},
        "operations": ph.ops,
        "enriched_failure_rate": True,
    }
    with open(os.path.join(out, "truth.json"), "w") as fh:
        json.dump(truth, fh, indent=2, sort_keys=True)
        fh.write("\n")
    return truth


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Synthetic lab GPU fleet for scorer evaluation.")
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--schema", choices=("ours", "dcgm"), required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--days", type=int, default=DEFAULT_DAYS)
    ap.add_argument("--end", type=int, default=DEFAULT_END)
    ap.add_argument("--promtool", default="promtool")
    args = ap.parse_args(argv)
    if args.days < 1 or args.days > 60:
        print("error: --days must be between 1 and 60", file=sys.stderr)
        return 2
    if args.end % BLOCK:
        print("error: --end must be a multiple of 7200 seconds", file=sys.stderr)
        return 2
    promtool = shutil.which(args.promtool)
    if promtool is None:
        print(f"error: promtool not found ({args.promtool}); install Prometheus' promtool "
              "or pass --promtool PATH", file=sys.stderr)
        return 2
    try:
        os.makedirs(args.out, exist_ok=True)
        if os.path.isdir(os.path.join(args.out, "prometheus")) and os.listdir(
                os.path.join(args.out, "prometheus")):
            print(f"error: {args.out}/prometheus is not empty", file=sys.stderr)
            return 2
        t0 = time.time()
        ph = draw_physics(args.seed, args.days, args.end)
        t1 = time.time()
        r = Renderer(ph, args.schema, args.out, promtool)
        r.run()
        t2 = time.time()
        truth = write_truth(ph, args.out, args.schema, args, {})
    except (OSError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{args.schema} seed={args.seed}: {len(ph.slots)} slots, "
          f"{truth['fleet']['boards']} boards, {truth['failures_total']} failures, "
          f"{r.samples} samples, physics {t1 - t0:.1f}s, render+promtool {t2 - t1:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
