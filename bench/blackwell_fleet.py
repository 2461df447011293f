"""PROVENANCE: written blind, without reading this project's simulator, scorer, exporter, tests or documentation, from public facts only (NVIDIA/dcgm-exporter source at d5e5f510: etc/default-counters.csv, internal/pkg/rendermetrics/render_metrics.go, internal/pkg/collector/{gpu_collector,xid_errors,utils}.go; NVIDIA/DCGM dcgmlib/dcgm_fields.h NVLink5 field block 1200-1219; dcgm-exporter issue #581 and DCGM issue #265 (a live GB200 /metrics dump and dcgmi dmon of the NVLINK_COUNT fields); NVIDIA/nvidia-resiliency-ext PR #302 quoting the NVML field-value docs ("unsupported for Blackwell+" for the legacy NVLink error fields); NVIDIA Xid catalogue and GPU memory error management docs as summarised in the shared reference notes (shared/reference/failure-econ-anchors.md); public reliability studies summarised there (Llama 3, Delta, Summit, Titan, Minder, Aegis); real H100 readings in shared/fixtures/h100/ for magnitudes). It exists only to EVALUATE the failure-prediction scorer on data its authors did not design. Never train, tune, calibrate or choose weights or thresholds on its output.

Usage
-----
    python3 bench/blackwell_fleet.py --seed N --out DIR [--days D] [--end EPOCH] [--promtool PATH]

writes DIR/prometheus/ (a Prometheus TSDB built with `promtool tsdb create-blocks-from openmetrics`),
DIR/failures.csv (uuid,time,mode,precursor,precursor_start) and DIR/truth.json. All randomness comes
from one numpy.random.Generator(seed); the same seed gives the same output.

Fleet
-----
* 2 GB200 NVL72 racks: 18 compute trays x 4 GPUs, modelName "NVIDIA GB200" (as in the #581 dump),
  one host (= dcgm-exporter instance) per tray, PCI bus ids 00000008/09/18/19:01:00.0 (from #581),
  liquid cooled, one coolant loop per rack (rack-wide cooling excursions).
* 10 HGX B200 nodes x 8 GPUs, modelName "NVIDIA B200", air cooled (node-level excursions).
* One scrape every 600 s; job="dcgm-exporter", instance="<host>:9400" (dcgm-exporter's default port).

Series and labels (what dcgm-exporter renders, render_metrics.go)
--------------------------------------------------------------------
Labels gpu, UUID, pci_bus_id, device ("nvidiaN"), modelName, Hostname (the name used up to
dcgm-exporter 4.8.2; #655 later renamed it "hostname"), DCGM_FI_DRIVER_VERSION (the default CSV's
`label` field), plus the Prometheus target labels job and instance. Metrics:
* default CSV fields: DCGM_FI_DEV_SM_CLOCK, _MEM_CLOCK, _MEMORY_TEMP, _GPU_TEMP, _POWER_USAGE,
  _TOTAL_ENERGY_CONSUMPTION (mJ since driver load), _PCIE_REPLAY_COUNTER, _GPU_UTIL,
  _MEM_COPY_UTIL, _XID_ERRORS, _FB_FREE, _FB_USED, _UNCORRECTABLE_REMAPPED_ROWS,
  _CORRECTABLE_REMAPPED_ROWS, _ROW_REMAP_FAILURE.  Left out although default: ENC/DEC util and
  FB_RESERVED (constant), VGPU_LICENSE_STATUS, NVLINK_BANDWIDTH_TOTAL and the DCP PROF_* fields
  (often absent in live scrapes, #646; not needed to evaluate a failure scorer).
* operator's custom CSV lines (commented out in the default CSV): DCGM_FI_DEV_ECC_{SBE,DBE}_{VOL,AGG}_TOTAL,
  DCGM_FI_DEV_POWER_VIOLATION, DCGM_FI_DEV_THERMAL_VIOLATION (ns), and the 12 NVLink5 error fields
  DCGM_FI_DEV_NVLINK_COUNT_{RX_ERRORS, RX_MALFORMED_PACKET_ERRORS, RX_BUFFER_OVERRUN_ERRORS,
  RX_REMOTE_ERRORS, RX_GENERAL_ERRORS, LOCAL_LINK_INTEGRITY_ERRORS, TX_DISCARDS,
  LINK_RECOVERY_SUCCESSFUL_EVENTS, LINK_RECOVERY_FAILED_EVENTS, LINK_RECOVERY_EVENTS,
  RX_SYMBOL_ERRORS, EFFECTIVE_ERRORS} (dcgm_fields.h ids 1204-1214, 1219; per-GPU series without a
  link label, exactly as in the #581 dump).  Assumption: the DCGM in use does not have the #581/#265
  bug (on DCGM 4.4.1 watching ECC_SBE_VOL_TOTAL made the NVLINK_COUNT fields read N/A).
* Legacy NVLink error totals (DCGM_FI_DEV_NVLINK_{CRC_FLIT,CRC_DATA,REPLAY,RECOVERY}_ERROR_COUNT_TOTAL)
  are NOT written: the NVML field-value docs mark them unsupported on Blackwell, DCGM then returns a
  NOT_SUPPORTED blank, and dcgm-exporter skips blank values (collector/utils.go), so the series do
  not exist on these boards even when the operator lists them in the CSV.
* XID: DCGM_FI_DEV_XID_ERRORS is a gauge whose value is the code of the LAST XID, with labels
  err_code and err_msg (gpu_collector.go, text table xid_errors.go).  Before any XID it reads 0 with
  err_code="0", err_msg="No Error".  It never decays; it returns to 0 only when dcgm-exporter / DCGM
  restart (issues #500, #190; DCGM #277), so an exporter restart or node reboot resets it.  A repeat
  of the same code is invisible.  Only the last XID of a 10-minute scrape interval is visible.
* OpenMetrics typing: counters are declared `unknown` and gauges `gauge` in the OpenMetrics file so
  that promtool keeps the DCGM names unchanged (OpenMetrics counters would need a _total suffix).

Counter semantics
-----------------
Volatile (reset to 0 on driver reload: node reboot, driver upgrade, GPU reset, new board):
ECC_*_VOL_TOTAL, PCIE_REPLAY_COUNTER, TOTAL_ENERGY_CONSUMPTION ("since boot"), the *_VIOLATION
counters, and all NVLINK_COUNT_* fields (link counters held by the driver/firmware).  Persistent
(InfoROM; survive reboots, restart at 0 only on a new board): ECC_*_AGG_TOTAL, CORRECTABLE/
UNCORRECTABLE_REMAPPED_ROWS, ROW_REMAP_FAILURE (NVIDIA memory error management docs).
dcgm-exporter restarts do not reset hardware counters, only the XID gauge.

Operations and noise
--------------------
Training jobs span a whole B200 node or a whole / half GB200 rack (lognormal lengths, idle gaps);
a failure interrupts the unit's job for 1-3 h.  Node reboots (~1 per 20 days per node), single-GPU
resets, a rolling driver upgrade 570.148.08 -> 580.95.05 (label change + reboot) in the middle of
the window, dcgm-exporter restarts (one missed scrape, XID gauge back to 0), random missed scrapes
(0.3 %), one fleet-wide Prometheus outage of 2-5 h.  Benign: boards with steady corrected ECC (some
with a correctable row remap + XID 63), boards with one contained uncorrectable error (XID 94, one
uncorrectable remap, GPU reset, no failure), noisy-but-healthy NVLink5 ports (FEC-corrected symbol
errors at a high steady baseline, PAM4 links always show some), PCIe replays at a low steady rate,
application XIDs 13/31/43 on the GPUs of a job, power capping under load (POWER_VIOLATION grows on
healthy boards, as on the H100 fixture that sits at its cap under load), rack / node cooling
excursions (+5..+14 C for hours, may throttle, never fail).

Failures (ground truth)
-----------------------
66-91 failures drawn on original boards (a few fall past the end and are dropped; 69-88 kept
for seeds 1-12), modes hbm, pcie, nvlink, thermal, power, other.  27-38 % of the drawn get a
precursor (drawn per failure with mode weights: thermal and nvlink most, pcie and power least,
other never).  Lead time mixture: 30 % hours (2-48 h), 45 % days (1-7 d), 25 % weeks (7-21 d);
intensity ramps as ((t - start) / lead)^2.
* hbm: precursor = bursts of corrected (SBE) errors, correctable row remaps with XID 63, and for
  some a prior contained uncorrectable error (XID 94) the strongest published precursor.  At failure:
  DBE vol+agg, uncorrectable remaps, XID 48 / 95, and for half XID 64 with ROW_REMAP_FAILURE=1.
  The board keeps reporting (drained, idle) until the tray/node is serviced.
* nvlink: precursor ONLY in the NVLink5 NVLINK_COUNT_* fields (symbol errors up by orders of
  magnitude, post-FEC effective errors, rx errors, successful link recoveries, local link integrity
  errors).  At failure: a failed link recovery, rx errors / tx discards burst, an NVLink5 XID
  (144-150, catalogue: Blackwell only).  Drained afterwards, then serviced.
* pcie: precursor = PCIe replay rate rise.  At failure XID 79 in the last sample, then the GPU's
  series vanish (dcgm-exporter cannot read a GPU off the bus; #348 "metrics just vanish").
* thermal: precursor = temperature creeping up at equal power (TIM / cold-plate degradation) with
  thermal-violation time and lower SM clocks; at failure a temperature spike, XID 79, vanish.
* power: precursor = noisy power readings and power-brake violation time below the cap; at failure
  XID 79 (70 %) or silent, vanish.
* other: no signature at all; the GPU simply disappears (e.g. removed after a silent-data-corruption
  finding, which has no telemetry per Llama 3 / EUD studies).
`time` is the scrape at which the GPU stops serving (terminal sample, or first missing sample for
`other`).  After the drain the host goes down for service (a GB200 tray takes its 4 GPUs; an HGX
node its 8), and 1-6 days later the slot returns with a new UUID (fresh persistent counters).
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

import numpy as np

STEP = 600
BLOCK_S = 54 * 3600  # promtool --max-block-duration=54h gives 54h blocks aligned to the epoch
DRIVERS = ("570.148.08", "580.95.05")
MODES = ("hbm", "pcie", "nvlink", "thermal", "power", "other")
MODE_WEIGHT = {
    "hbm": 0.30,
    "pcie": 0.13,
    "nvlink": 0.18,
    "thermal": 0.10,
    "power": 0.10,
    "other": 0.19,
}
PRECURSOR_WEIGHT = {
    "hbm": 0.40,
    "pcie": 0.20,
    "nvlink": 0.55,
    "thermal": 0.60,
    "power": 0.25,
    "other": 0.0,
}

XID_TEXT = {
    0: "No Error",
    13: "Graphics Engine Exception",
    31: "GPU memory page fault",
    43: "GPU stopped processing",
    48: "Double Bit ECC Error",
    63: "ECC page retirement or row remapping recording event",
    64: "ECC page retirement or row remapper recording failure",
    79: "GPU has fallen off the bus",
    94: "Contained ECC error",
    95: "Uncontained ECC error",
    144: "NVLINK: Saw Error",
    145: "NVLINK: RLW Error",
    146: "NVLINK: TLW Error",
    147: "NVLINK: TREX Error",
    148: "NVLINK: NVLPW_CTRL Error",
    149: "NVLINK: NETIR Error",
    150: "NVLINK: MSE Error",
}

GAUGES = (
    "DCGM_FI_DEV_SM_CLOCK",
    "DCGM_FI_DEV_MEM_CLOCK",
    "DCGM_FI_DEV_MEMORY_TEMP",
    "DCGM_FI_DEV_GPU_TEMP",
    "DCGM_FI_DEV_POWER_USAGE",
    "DCGM_FI_DEV_GPU_UTIL",
    "DCGM_FI_DEV_MEM_COPY_UTIL",
    "DCGM_FI_DEV_FB_FREE",
    "DCGM_FI_DEV_FB_USED",
    "DCGM_FI_DEV_ROW_REMAP_FAILURE",
)
NVL = (
    "RX_ERRORS",
    "RX_MALFORMED_PACKET_ERRORS",
    "RX_BUFFER_OVERRUN_ERRORS",
    "RX_REMOTE_ERRORS",
    "RX_GENERAL_ERRORS",
    "LOCAL_LINK_INTEGRITY_ERRORS",
    "TX_DISCARDS",
    "LINK_RECOVERY_SUCCESSFUL_EVENTS",
    "LINK_RECOVERY_FAILED_EVENTS",
    "LINK_RECOVERY_EVENTS",
    "RX_SYMBOL_ERRORS",
    "EFFECTIVE_ERRORS",
)
VOLATILE = (
    "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION",
    "DCGM_FI_DEV_PCIE_REPLAY_COUNTER",
    "DCGM_FI_DEV_ECC_SBE_VOL_TOTAL",
    "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL",
    "DCGM_FI_DEV_POWER_VIOLATION",
    "DCGM_FI_DEV_THERMAL_VIOLATION",
    *("DCGM_FI_DEV_NVLINK_COUNT_" + n for n in NVL),
)
PERSISTENT = (
    "DCGM_FI_DEV_ECC_SBE_AGG_TOTAL",
    "DCGM_FI_DEV_ECC_DBE_AGG_TOTAL",
    "DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS",
    "DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS",
)
XID_METRIC = "DCGM_FI_DEV_XID_ERRORS"
FLOAT_METRICS = ("DCGM_FI_DEV_POWER_USAGE",)


def nv(name: str) -> str:
    """Full DCGM name of an NVLink5 counter."""
    return "DCGM_FI_DEV_NVLINK_COUNT_" + name


@dataclass(frozen=True)
class Model:
    """Board constants (datasheet TDPs; the rest are approximate nvidia-smi magnitudes)."""

    name: str
    tdp_w: float
    idle_w: float
    fb_total_mib: int
    fb_reserved_mib: int
    sm_max_mhz: int
    sm_idle_mhz: int
    mem_mhz: int
    inlet_c: float
    c_per_w: float
    slowdown_c: float


GB200 = Model("NVIDIA GB200", 1200.0, 165.0, 189471, 1067, 1965, 345, 3996, 32.0, 0.028, 87.0)
B200 = Model("NVIDIA B200", 1000.0, 140.0, 183359, 1067, 1965, 345, 3996, 24.0, 0.052, 87.0)
GB200_PCI = ("00000008:01:00.0", "00000009:01:00.0", "00000018:01:00.0", "00000019:01:00.0")
B200_PCI = tuple(f"00000000:{b}:00.0" for b in ("1B", "43", "52", "61", "9D", "C3", "D1", "DF"))


@dataclass
class Fleet:
    """Static layout: hosts (nodes), GPU slots, job units."""

    hosts: list[str] = field(default_factory=list)
    node_unit: list[int] = field(default_factory=list)
    node_rack: list[int] = field(default_factory=list)
    slot_node: list[int] = field(default_factory=list)
    slot_gpu: list[int] = field(default_factory=list)
    slot_pci: list[str] = field(default_factory=list)
    slot_model: list[Model] = field(default_factory=list)
    uuids: list[list[str]] = field(default_factory=list)
    n_units: int = 0


@dataclass
class Failure:
    """Ground truth for one failed board."""

    slot: int
    t: int
    mode: str
    precursor: bool
    ps: int | None
    xid: int = 0


def gpu_uuid(rng: np.random.Generator) -> str:
    """A UUID in NVML's GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx form."""
    h = "".join(f"{b:02x}" for b in rng.integers(0, 256, 16))
    return f"GPU-{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def build_fleet(rng: np.random.Generator) -> Fleet:
    """2 GB200 NVL72 racks (18 trays x 4) and 10 HGX B200 nodes (8 GPUs)."""
    f = Fleet()
    for rack in range(2):
        for tray in range(18):
            f.hosts.append(f"gb200-r{rack + 1:02d}-ct{tray + 1:02d}")
            f.node_unit.append(rack)
            f.node_rack.append(rack)
            for g in range(4):
                f.slot_node.append(len(f.hosts) - 1)
                f.slot_gpu.append(g)
                f.slot_pci.append(GB200_PCI[g])
                f.slot_model.append(GB200)
    for n in range(10):
        f.hosts.append(f"hgx-b200-{n + 1:02d}")
        f.node_unit.append(2 + n)
        f.node_rack.append(-1)
        for g in range(8):
            f.slot_node.append(len(f.hosts) - 1)
            f.slot_gpu.append(g)
            f.slot_pci.append(B200_PCI[g])
            f.slot_model.append(B200)
    f.n_units = 12
    f.uuids = [[gpu_uuid(rng), gpu_uuid(rng)] for _ in f.slot_node]
    return f


@dataclass
class State:
    """Per node / per slot time grids (N or S rows, T columns)."""

    node_up: np.ndarray
    node_scraped: np.ndarray
    node_reboot: np.ndarray
    exporter_restart: np.ndarray
    drv: np.ndarray
    load: np.ndarray
    fb_frac: np.ndarray
    slot_alive: np.ndarray
    slot_reset: np.ndarray
    board: np.ndarray
    drained: np.ndarray
    xid: np.ndarray
    inc: dict[str, np.ndarray]
    temp_off: np.ndarray
    power_noise: np.ndarray
    clock_factor: np.ndarray
    remap_failed: np.ndarray
    terminal_temp: np.ndarray
    events: dict[str, int] = field(default_factory=dict)
    benign: dict[str, list[str]] = field(default_factory=dict)


def log(msg: str) -> None:
    """Progress line on stderr."""
    print(f"[blackwell_fleet] {msg}", file=sys.stderr, flush=True)


def hours(h: float) -> int:
    """Hours to scrape steps (at least 1)."""
    return max(1, int(round(h * 3600 / STEP)))  # noqa: RUF046


def new_state(fleet: Fleet, t_len: int) -> State:
    """Empty grids: everything up, no events."""
    n, s = len(fleet.hosts), len(fleet.slot_node)

    def zeros() -> np.ndarray:
        return np.zeros((s, t_len))

    inc_names = VOLATILE[1:] + PERSISTENT
    return State(
        node_up=np.ones((n, t_len), bool),
        node_scraped=np.ones((n, t_len), bool),
        node_reboot=np.zeros((n, t_len), bool),
        exporter_restart=np.zeros((n, t_len), bool),
        drv=np.zeros((n, t_len), np.int8),
        load=zeros(),
        fb_frac=zeros(),
        slot_alive=np.ones((s, t_len), bool),
        slot_reset=np.zeros((s, t_len), bool),
        board=np.zeros((s, t_len), np.int8),
        drained=np.zeros((s, t_len), bool),
        xid=np.zeros((s, t_len), np.int16),
        inc={k: zeros() for k in inc_names},
        temp_off=zeros(),
        power_noise=zeros(),
        clock_factor=np.ones((s, t_len)),
        remap_failed=zeros(),
        terminal_temp=np.full((s, t_len), np.nan),
    )


def node_down(st: State, node: int, t0: int, steps: int) -> None:
    """Host unreachable for `steps` scrapes from t0, then comes back rebooted."""
    t_len = st.node_up.shape[1]
    t1 = min(t_len, t0 + steps)
    st.node_up[node, t0:t1] = False
    if t1 < t_len:
        st.node_reboot[node, t1] = True


def add_operations(rng: np.random.Generator, fleet: Fleet, st: State) -> None:
    """Reboots, driver upgrade wave, exporter restarts, scrape misses, a Prometheus outage."""
    n, t_len = st.node_up.shape
    days = t_len * STEP / 86400
    for node in range(n):
        for t0 in rng.integers(0, t_len, rng.poisson(days / 20)):
            node_down(st, node, int(t0), int(rng.integers(1, 4)))
            st.events["node_reboot"] = st.events.get("node_reboot", 0) + 1
        t_up = int(rng.uniform(0.40, 0.60) * t_len)
        st.drv[node, t_up:] = 1
        node_down(st, node, t_up, int(rng.integers(2, 5)))
        for t0 in rng.integers(1, t_len, rng.poisson(days / 15)):
            st.node_scraped[node, t0] = False
            if t0 + 1 < t_len:
                st.exporter_restart[node, t0 + 1] = True
            st.events["exporter_restart"] = st.events.get("exporter_restart", 0) + 1
    st.node_scraped &= rng.random((n, t_len)) > 0.003
    o0 = int(rng.uniform(0.2, 0.8) * t_len)
    o_len = hours(rng.uniform(2, 5))
    st.node_scraped[:, o0 : o0 + o_len] = False
    st.events["prometheus_outage_start_index"] = o0
    st.events["prometheus_outage_steps"] = o_len
    s = st.slot_reset.shape[0]
    for slot in range(s):
        for t0 in rng.integers(1, t_len, rng.poisson(days / 60)):
            st.slot_reset[slot, t0] = True
            st.events["gpu_reset"] = st.events.get("gpu_reset", 0) + 1


def unit_nodes(fleet: Fleet) -> list[list[int]]:
    """Nodes of each job unit (a GB200 rack or one HGX node)."""
    units: list[list[int]] = [[] for _ in range(fleet.n_units)]
    for node, u in enumerate(fleet.node_unit):
        units[u].append(node)
    return units


def add_jobs(rng: np.random.Generator, fleet: Fleet, st: State) -> list[tuple[list[int], int, int]]:
    """Training jobs per unit; returns (nodes, t0, t1) of every job."""
    t_len = st.load.shape[1]
    slots_of = slots_by_node(fleet)
    jobs: list[tuple[list[int], int, int]] = []
    for nodes in unit_nodes(fleet):
        t = int(rng.integers(0, hours(6)))
        while t < t_len:
            dur = hours(float(np.clip(rng.lognormal(np.log(20), 0.8), 1, 168)))
            use = nodes
            if len(nodes) == 18 and rng.random() < 0.3:
                use = nodes[:9] if rng.random() < 0.5 else nodes[9:]
            intensity, fb = rng.uniform(0.8, 1.0), rng.uniform(0.7, 0.97)
            sl = [s for nd in use for s in slots_of[nd]]
            st.load[sl, t : t + dur] = intensity
            st.fb_frac[sl, t : t + dur] = fb
            jobs.append((use, t, min(t + dur, t_len)))
            t += dur + hours(float(np.clip(rng.lognormal(np.log(2.5), 1.0), 0.2, 72)))
    return jobs


def slots_by_node(fleet: Fleet) -> list[list[int]]:
    """GPU slots on each host."""
    out: list[list[int]] = [[] for _ in fleet.hosts]
    for s, node in enumerate(fleet.slot_node):
        out[node].append(s)
    return out


def add_app_xids(
    rng: np.random.Generator, fleet: Fleet, st: State, jobs: list[tuple[list[int], int, int]]
) -> None:
    """User-code XIDs 13/31 during a job and 43 at a killed job's end, on a subset of its GPUs."""
    slots_of = slots_by_node(fleet)
    for nodes, t0, t1 in jobs:
        sl = np.array([s for nd in nodes for s in slots_of[nd]])
        r = rng.random()
        if r < 0.25 and t1 - t0 > 2:
            code, t = int(rng.choice([13, 31], p=[0.35, 0.65])), int(rng.integers(t0, t1))
        elif r < 0.40:
            code, t = 43, t1 - 1
        else:
            continue
        hit = sl[rng.random(len(sl)) < rng.uniform(0.1, 1.0)]
        st.xid[hit, t] = code
        st.events[f"app_xid_{code}"] = st.events.get(f"app_xid_{code}", 0) + len(hit)


def add_benign(rng: np.random.Generator, fleet: Fleet, st: State) -> None:
    """Healthy-but-noisy boards, baseline link noise, cooling excursions."""
    s, t_len = st.load.shape
    inc = st.inc
    base_sym = rng.lognormal(np.log(150), 1.2, s)
    noisy_nvl = rng.random(s) < 0.06
    base_sym[noisy_nvl] *= rng.uniform(30, 300, noisy_nvl.sum())
    inc[nv("RX_SYMBOL_ERRORS")] += rng.poisson(np.broadcast_to(base_sym[:, None], (s, t_len)))
    inc[nv("LINK_RECOVERY_SUCCESSFUL_EVENTS")][noisy_nvl] += (
        rng.random((noisy_nvl.sum(), t_len)) < 0.002
    )
    noisy_ecc = rng.random(s) < 0.08
    rates = rng.lognormal(np.log(0.15), 1.0, noisy_ecc.sum())
    sbe = rng.poisson(np.broadcast_to(rates[:, None], (noisy_ecc.sum(), t_len)))
    inc["DCGM_FI_DEV_ECC_SBE_VOL_TOTAL"][noisy_ecc] += sbe
    inc["DCGM_FI_DEV_ECC_SBE_AGG_TOTAL"][noisy_ecc] += sbe
    for slot in np.flatnonzero(noisy_ecc & (rng.random(s) < 0.3)):
        for t in rng.integers(0, t_len, rng.integers(1, 3)):
            inc["DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS"][slot, t] += 1
            st.xid[slot, t] = 63
    healthy_uce = rng.random(s) < 0.02
    for slot in np.flatnonzero(healthy_uce):
        t = int(rng.integers(0, t_len - 10))
        for k in ("ECC_DBE_VOL_TOTAL", "ECC_DBE_AGG_TOTAL", "UNCORRECTABLE_REMAPPED_ROWS"):
            inc["DCGM_FI_DEV_" + k][slot, t] += 1
        st.xid[slot, t] = 94
        st.slot_reset[slot, t + int(rng.integers(1, 8))] = True
    noisy_pcie = rng.random(s) < 0.05
    prates = rng.lognormal(np.log(0.3), 1.0, noisy_pcie.sum())
    inc["DCGM_FI_DEV_PCIE_REPLAY_COUNTER"][noisy_pcie] += rng.poisson(
        np.broadcast_to(prates[:, None], (noisy_pcie.sum(), t_len))
    )
    add_cooling_excursions(rng, fleet, st)
    u = fleet.uuids
    st.benign.update(
        {
            "noisy_nvlink_symbol_errors": [u[i][0] for i in np.flatnonzero(noisy_nvl)],
            "steady_corrected_ecc": [u[i][0] for i in np.flatnonzero(noisy_ecc)],
            "contained_uncorrectable_no_failure": [u[i][0] for i in np.flatnonzero(healthy_uce)],
            "steady_pcie_replays": [u[i][0] for i in np.flatnonzero(noisy_pcie)],
        }
    )


def add_cooling_excursions(rng: np.random.Generator, fleet: Fleet, st: State) -> None:
    """Rack coolant-loop (GB200) and node inlet (B200) temperature excursions; no failures."""
    t_len = st.load.shape[1]
    slot_node = np.array(fleet.slot_node)
    rack_of_slot = np.array([fleet.node_rack[n] for n in fleet.slot_node])
    excursions = []
    for rack in (0, 1):
        for _ in range(int(rng.integers(1, 4))):
            excursions.append((rack_of_slot == rack, f"rack{rack + 1}"))
    for _ in range(int(rng.integers(3, 7))):
        node = int(rng.integers(36, 46))
        excursions.append((slot_node == node, fleet.hosts[node]))
    log_ex = []
    for mask, where in excursions:
        t0, dur, amp = (
            int(rng.integers(0, t_len - 10)),
            hours(rng.uniform(1, 10)),
            rng.uniform(5, 14),
        )
        shape = np.sin(np.linspace(0, np.pi, dur)) ** 0.5 * amp
        t1 = min(t_len, t0 + dur)
        st.temp_off[np.ix_(mask, np.arange(t0, t1))] += shape[: t1 - t0]
        log_ex.append(
            {"where": where, "start_index": t0, "steps": dur, "peak_c": round(float(amp), 1)}
        )
    st.events["cooling_excursions"] = len(log_ex)
    st.benign["cooling_excursions"] = log_ex  # type: ignore[assignment]


def draw_failures(rng: np.random.Generator, fleet: Fleet, st: State) -> list[Failure]:
    """Choose failed boards, modes, times, precursor flags and lead times."""
    s, t_len = st.load.shape
    n_fail = int(rng.integers(66, 92))
    modes = rng.choice(MODES, n_fail, p=[MODE_WEIGHT[m] for m in MODES])
    w = np.array([PRECURSOR_WEIGHT[m] for m in modes])
    k = int(round(n_fail * rng.uniform(0.27, 0.38)))  # noqa: RUF046
    with_pre = set(rng.choice(n_fail, k, replace=False, p=w / w.sum()).tolist())
    slots = rng.choice(s, n_fail, replace=False)
    out = []
    for i in range(n_fail):
        lead = draw_lead(rng) if i in with_pre else 0
        lo = min(max(hours(48), lead + hours(24)), t_len - hours(4))
        t = int(rng.integers(lo, t_len - hours(2)))
        ps = max(hours(12), t - lead) if lead else None
        out.append(Failure(int(slots[i]), t, str(modes[i]), lead > 0, ps))
    return sorted(out, key=lambda f: f.t)


def draw_lead(rng: np.random.Generator) -> int:
    """Precursor lead time in steps: hours / days / weeks mixture."""
    r = rng.random()
    if r < 0.30:
        h = float(np.clip(rng.lognormal(np.log(10), 0.7), 2, 48))
    elif r < 0.75:
        h = 24 * float(np.exp(rng.uniform(np.log(1), np.log(7))))
    else:
        h = 24 * rng.uniform(7, 21)
    return hours(h)


def ramp(ps: int, t: int) -> np.ndarray:
    """Precursor intensity over [ps, t): 0 -> 1, quadratic."""
    return (np.arange(t - ps) / max(1, t - ps)) ** 2


def apply_precursor(rng: np.random.Generator, st: State, f: Failure) -> None:
    """Shape the precursor of one failure into the increment / offset grids."""
    s, ps, t = f.slot, f.ps, f.t
    assert ps is not None
    r = ramp(ps, t)
    n = t - ps
    inc = st.inc
    if f.mode == "hbm":
        burst = rng.gamma(0.5, 2.0, n)
        sbe = rng.poisson((0.5 + 120 * r) * burst)
        inc["DCGM_FI_DEV_ECC_SBE_VOL_TOTAL"][s, ps:t] += sbe
        inc["DCGM_FI_DEV_ECC_SBE_AGG_TOTAL"][s, ps:t] += sbe
        for tt in ps + np.sort(
            rng.choice(
                n, min(n, int(rng.integers(1, 7))), replace=False, p=(r + 1e-3) / (r + 1e-3).sum()
            )
        ):
            inc["DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS"][s, tt] += 1
            st.xid[s, tt] = 63
        if rng.random() < 0.4 and n > 4:
            tt = ps + int(rng.integers(0, n - 3))
            for k in ("ECC_DBE_VOL_TOTAL", "ECC_DBE_AGG_TOTAL", "UNCORRECTABLE_REMAPPED_ROWS"):
                inc["DCGM_FI_DEV_" + k][s, tt] += 1
            st.xid[s, tt] = 94
            st.slot_reset[s, tt + int(rng.integers(1, 3))] = True
    elif f.mode == "nvlink":
        mult = 10 ** (3 * r)
        inc[nv("RX_SYMBOL_ERRORS")][s, ps:t] += rng.poisson(200 * mult)
        inc[nv("EFFECTIVE_ERRORS")][s, ps:t] += rng.poisson(np.where(r > 0.2, 0.3 * mult**0.7, 0))
        inc[nv("RX_ERRORS")][s, ps:t] += rng.poisson(0.5 * r * mult**0.5)
        inc[nv("LOCAL_LINK_INTEGRITY_ERRORS")][s, ps:t] += rng.poisson(0.05 + 0.3 * r)
        rec = rng.poisson(0.01 + 0.4 * r**2)
        inc[nv("LINK_RECOVERY_SUCCESSFUL_EVENTS")][s, ps:t] += rec
        inc[nv("LINK_RECOVERY_EVENTS")][s, ps:t] += rec
    elif f.mode == "pcie":
        inc["DCGM_FI_DEV_PCIE_REPLAY_COUNTER"][s, ps:t] += rng.poisson(
            0.2 + 300 * r * rng.gamma(1.0, 1.0, n)
        )
    elif f.mode == "thermal":
        st.temp_off[s, ps:t] += rng.uniform(12, 22) * np.sqrt(r)
    elif f.mode == "power":
        st.power_noise[s, ps:t] += 0.02 + 0.15 * r
        inc["DCGM_FI_DEV_POWER_VIOLATION"][s, ps:t] += 600e9 * np.clip(
            rng.normal(0.3 * r, 0.1), 0, 1
        )


def apply_terminal(rng: np.random.Generator, fleet: Fleet, st: State, f: Failure) -> None:
    """Failure signature at f.t, drain, node service, replacement board."""
    s, t = f.slot, f.t
    t_len = st.load.shape[1]
    inc = st.inc
    dead_from = t + 1
    if f.mode == "hbm":
        n = int(rng.integers(1, 4))
        for k in ("ECC_DBE_VOL_TOTAL", "ECC_DBE_AGG_TOTAL"):
            inc["DCGM_FI_DEV_" + k][s, t] += n
        inc["DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS"][s, t] += int(rng.integers(1, 3))
        if rng.random() < 0.5:
            f.xid = 64
            st.remap_failed[s, t:] = 1
        else:
            f.xid = int(rng.choice([48, 95]))
    elif f.mode == "nvlink":
        inc[nv("LINK_RECOVERY_FAILED_EVENTS")][s, t] += 1
        inc[nv("LINK_RECOVERY_EVENTS")][s, t] += 1
        inc[nv("RX_ERRORS")][s, t] += int(rng.integers(5, 500))
        inc[nv("TX_DISCARDS")][s, t] += int(rng.integers(1, 200))
        f.xid = int(
            rng.choice([144, 145, 146, 147, 148, 149, 150], p=[0.1, 0.15, 0.1, 0.1, 0.1, 0.35, 0.1])
        )
    elif f.mode == "pcie":
        f.xid = 79
    elif f.mode == "thermal":
        f.xid = 79
        st.terminal_temp[s, t] = rng.uniform(92, 99)
    elif f.mode == "power":
        f.xid = 79 if rng.random() < 0.7 else 0
    else:
        dead_from = t
    if f.xid:
        st.xid[s, t] = f.xid
    st.drained[s, t:] = True
    drain = hours(float(np.clip(rng.lognormal(np.log(6), 0.8), 1, 48)))
    service = hours(24 * rng.uniform(1, 6))
    t_srv = min(t_len, t + drain)
    if f.mode not in ("hbm", "nvlink"):
        st.slot_alive[s, dead_from : min(t_len, t_srv + service)] = False
    node_down(st, fleet.slot_node[s], t_srv, service)
    if t_srv + service < t_len:
        st.board[s, t_srv + service :] = 1
        st.drained[s, t_srv + service :] = False
        st.remap_failed[s, t_srv + service :] = 0
    unit = fleet.node_unit[fleet.slot_node[s]]
    same_unit = [i for i, nd in enumerate(fleet.slot_node) if fleet.node_unit[nd] == unit]
    st.load[same_unit, t : t + hours(rng.uniform(1, 3))] = 0


def place_failures(
    rng: np.random.Generator, fleet: Fleet, st: State, fails: list[Failure]
) -> list[Failure]:
    """Apply failures in time order; move one whose slot is down at its time to after recovery."""
    t_len = st.load.shape[1]
    kept = []
    for f in fails:
        node = fleet.slot_node[f.slot]
        if f.ps is not None and f.ps < f.t:
            f.ps = first_live(st, f.slot, node, f.ps)
        t0 = f.t
        while f.t < t_len and not (
            st.node_up[node, f.t] and st.slot_alive[f.slot, f.t] and st.board[f.slot, f.t] == 0
        ):
            f.t += 1
        if f.t > t0:
            f.t += hours(rng.uniform(1, 24))
        if f.t >= t_len - 1 or (f.ps is not None and f.ps >= f.t):
            continue
        if f.precursor:
            apply_precursor(rng, st, f)
        apply_terminal(rng, fleet, st, f)
        kept.append(f)
    return kept


def first_live(st: State, slot: int, node: int, t: int) -> int:
    """First step >= t where the slot's original board is alive and its node up."""
    ok = st.node_up[node, t:] & st.slot_alive[slot, t:] & (st.board[slot, t:] == 0)
    return t + int(np.argmax(ok)) if ok.any() else t


def cumsum_reset(inc: np.ndarray, reset: np.ndarray) -> np.ndarray:
    """Row-wise cumulative sum that restarts at 0 where reset is True (inc at that step counts)."""
    cs = np.cumsum(inc, axis=1)
    prev = cs - inc
    idx = np.where(reset, np.arange(inc.shape[1])[None, :], 0)
    idx = np.maximum.accumulate(idx, axis=1)
    return cs - np.take_along_axis(prev, idx, axis=1)


def last_xid(xid: np.ndarray, reset: np.ndarray) -> np.ndarray:
    """dcgm-exporter XID gauge: last code since the last exporter/DCGM (re)start, else 0."""
    ar = np.arange(xid.shape[1])[None, :]
    le = np.maximum.accumulate(np.where(xid > 0, ar, -1), axis=1)
    lr = np.maximum.accumulate(np.where(reset, ar, -1), axis=1)
    val = np.take_along_axis(xid, np.maximum(le, 0), axis=1)
    return np.where((le >= 0) & (le >= lr), val, 0)


def per_slot(node_grid: np.ndarray, fleet: Fleet) -> np.ndarray:
    """Expand a node grid to slots."""
    return node_grid[np.array(fleet.slot_node)]


def render_values(
    rng: np.random.Generator, fleet: Fleet, st: State
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Compute every metric on the full grid; returns metrics and the present mask."""
    s, t_len = st.load.shape
    models = fleet.slot_model
    tdp = np.array([m.tdp_w for m in models])[:, None]
    idle = np.array([m.idle_w for m in models])[:, None]
    inlet = np.array([m.inlet_c for m in models])[:, None]
    cpw = np.array([m.c_per_w for m in models])[:, None]
    slow = np.array([m.slowdown_c for m in models])[:, None]
    load = np.where(st.drained, 0.0, st.load)
    busy = load > 0
    load = np.where(busy, np.clip(load + rng.normal(0, 0.03, (s, t_len)), 0.5, 1.0), 0.0)
    demand = idle + (1.25 * tdp - idle) * load
    power = np.minimum(demand, tdp) * (
        1 + rng.normal(0, 0.015, (s, t_len)) + rng.normal(0, 1, (s, t_len)) * st.power_noise
    )
    power = np.clip(power, 0.6 * idle, 1.02 * tdp)
    capped = np.clip((demand - tdp) / (0.25 * tdp), 0, 1) * busy
    gtemp = (
        inlet
        + rng.normal(0, 1.5, (s, 1))
        + cpw * power
        + st.temp_off
        + rng.normal(0, 0.6, (s, t_len))
    )
    over = np.clip((gtemp - slow) / 4, 0, 1)
    gtemp = np.where(np.isnan(st.terminal_temp), np.minimum(gtemp, slow + 3), st.terminal_temp)
    mtemp = gtemp + rng.normal(1.5, 1.5, (s, 1)) + rng.normal(0, 0.5, (s, t_len))
    sm_max = np.array([m.sm_max_mhz for m in models])[:, None]
    sm_idle = np.array([m.sm_idle_mhz for m in models])[:, None]
    sm = np.where(busy, sm_max * (1 - 0.08 * capped - 0.35 * over), sm_idle)
    sm = np.round(sm / 15) * 15
    st.inc["DCGM_FI_DEV_POWER_VIOLATION"] += 600e9 * capped * rng.uniform(0.6, 1.0, (s, t_len))
    st.inc["DCGM_FI_DEV_THERMAL_VIOLATION"] += 600e9 * over
    fb_total = np.array([m.fb_total_mib - m.fb_reserved_mib for m in models])[:, None]
    fb_used = np.where(busy, fb_total * st.fb_frac, 0) + rng.integers(0, 3, (s, t_len))
    fb_used = np.floor(np.minimum(fb_used, fb_total))
    vol_reset = (
        per_slot(st.node_reboot, fleet)
        | st.slot_reset
        | (np.diff(st.board, axis=1, prepend=0) != 0)
    )
    pers_reset = np.diff(st.board, axis=1, prepend=0) != 0
    out: dict[str, np.ndarray] = {
        "DCGM_FI_DEV_SM_CLOCK": sm,
        "DCGM_FI_DEV_MEM_CLOCK": np.array([m.mem_mhz for m in models], float)[:, None] + 0 * sm,
        "DCGM_FI_DEV_MEMORY_TEMP": np.round(mtemp),
        "DCGM_FI_DEV_GPU_TEMP": np.round(gtemp),
        "DCGM_FI_DEV_POWER_USAGE": np.round(power, 3),
        "DCGM_FI_DEV_GPU_UTIL": np.round(
            np.where(busy, np.clip(100 * load + rng.normal(0, 2, (s, t_len)), 0, 100), 0)
        ),
        "DCGM_FI_DEV_MEM_COPY_UTIL": np.round(
            np.where(busy, np.clip(38 * load + rng.normal(0, 4, (s, t_len)), 0, 100), 0)
        ),
        "DCGM_FI_DEV_FB_USED": fb_used,
        "DCGM_FI_DEV_FB_FREE": fb_total - fb_used,
        "DCGM_FI_DEV_ROW_REMAP_FAILURE": st.remap_failed,
    }
    out["DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION"] = cumsum_reset(power * STEP * 1000.0, vol_reset)
    for name in VOLATILE[1:]:
        out[name] = cumsum_reset(np.floor(st.inc.pop(name)), vol_reset)
    for name in PERSISTENT:
        out[name] = cumsum_reset(st.inc.pop(name), pers_reset)
    xreset = per_slot(st.node_reboot | st.exporter_restart, fleet) | pers_reset
    out[XID_METRIC] = last_xid(st.xid, xreset).astype(float)
    present = per_slot(st.node_up & st.node_scraped, fleet) & st.slot_alive
    return out, present


def label_prefix(fleet: Fleet, slot: int, board: int, drv: int) -> str:
    """Label set of one GPU series, as dcgm-exporter + Prometheus target labels."""
    host = fleet.hosts[fleet.slot_node[slot]]
    g = fleet.slot_gpu[slot]
    return (
        f'gpu="{g}",UUID="{fleet.uuids[slot][board]}",pci_bus_id="{fleet.slot_pci[slot]}",'
        f'device="nvidia{g}",modelName="{fleet.slot_model[slot].name}",Hostname="{host}",'
        f'DCGM_FI_DRIVER_VERSION="{DRIVERS[drv]}",instance="{host}:9400",job="dcgm-exporter"'
    )


def write_window(
    path: str,
    fleet: Fleet,
    metrics: dict[str, np.ndarray],
    present: np.ndarray,
    key: np.ndarray,
    ts: np.ndarray,
    lo: int,
    hi: int,
) -> int:
    """One OpenMetrics file for steps [lo, hi); returns the number of samples written."""
    n = 0
    s = present.shape[0]
    tss = ts[lo:hi].tolist()
    with open(path, "w", buffering=1 << 22) as fh:
        for name in sorted(metrics):
            kind = "gauge" if name in GAUGES or name == XID_METRIC else "unknown"
            fh.write(f"# TYPE {name} {kind}\n")
            vals = metrics[name][:, lo:hi]
            for slot in range(s):
                pres = present[slot, lo:hi]
                if not pres.any():
                    continue
                k = key[slot, lo:hi]
                v = vals[slot]
                if name == XID_METRIC:
                    k = k * 1000 + v.astype(np.int64)
                vl = v.tolist() if name in FLOAT_METRICS else v.astype(np.int64).tolist()
                for kk in np.unique(k[pres]).tolist():
                    sel = np.flatnonzero(pres & (k == kk)).tolist()
                    board, drv = divmod(int(kk) // 1000 if name == XID_METRIC else int(kk), 2)
                    lab = label_prefix(fleet, slot, board, drv)
                    if name == XID_METRIC:
                        code = int(kk) % 1000
                        lab += f',err_code="{code}",err_msg="{XID_TEXT[code]}"'
                    p = f"{name}{{{lab}}} "
                    fh.write("".join([f"{p}{vl[i]} {tss[i]}\n" for i in sel]))
                    n += len(sel)
        fh.write("# EOF\n")
    return n


def build_tsdb(
    promtool: str,
    out: str,
    fleet: Fleet,
    metrics: dict[str, np.ndarray],
    present: np.ndarray,
    key: np.ndarray,
    ts: np.ndarray,
) -> int:
    """Write 54h-aligned OpenMetrics chunks and import them with at most 2 promtool workers."""
    db = os.path.join(out, "prometheus")
    shutil.rmtree(db, ignore_errors=True)
    os.makedirs(db)
    tmp = tempfile.mkdtemp(prefix="om-", dir=out)
    bounds = np.flatnonzero(np.diff(ts // BLOCK_S)) + 1
    edges = [0, *bounds.tolist(), len(ts)]
    running: list[tuple[subprocess.Popen, str]] = []
    total = 0
    try:
        for i, (lo, hi) in enumerate(itertools.pairwise(edges)):
            path = os.path.join(tmp, f"w{i:03d}.om")
            total += write_window(path, fleet, metrics, present, key, ts, lo, hi)
            while len(running) >= 2:
                wait_one(running)
            cmd = [
                promtool,
                "tsdb",
                "create-blocks-from",
                "openmetrics",
                "--quiet",
                "--max-block-duration=54h",
                path,
                db,
            ]
            running.append(
                (subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE), path)
            )
            log(f"window {i + 1}/{len(edges) - 1}: {total} samples so far")
        while running:
            wait_one(running)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return total


def wait_one(running: list[tuple[subprocess.Popen, str]]) -> None:
    """Wait for the oldest promtool worker; fail loudly on error."""
    proc, path = running.pop(0)
    _, err = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"promtool failed on {path}: {err.decode()[-2000:]}")
    os.remove(path)


def write_truth(
    out: str,
    seed: int,
    args: argparse.Namespace,
    fleet: Fleet,
    st: State,
    fails: list[Failure],
    ts: np.ndarray,
    n_samples: int,
    n_series: int,
) -> None:
    """failures.csv and truth.json."""
    with open(os.path.join(out, "failures.csv"), "w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["uuid", "time", "mode", "precursor", "precursor_start"])
        for f in fails:
            w.writerow(
                [
                    fleet.uuids[f.slot][0],
                    int(ts[f.t]),
                    f.mode,
                    "true" if f.precursor else "false",
                    int(ts[f.ps]) if f.precursor and f.ps is not None else "",
                ]
            )
    by_mode = {m: sum(f.mode == m for f in fails) for m in MODES}
    pre_mode = {m: sum(f.mode == m and f.precursor for f in fails) for m in MODES}
    truth = {
        "generator": "bench/blackwell_fleet.py (blind, public facts only; evaluation only)",
        "seed": seed,
        "days": args.days,
        "start": int(ts[0]),
        "end": int(ts[-1]),
        "step_s": STEP,
        "gpus": len(fleet.slot_node),
        "hosts": len(fleet.hosts),
        "models": {"NVIDIA GB200": 144, "NVIDIA B200": len(fleet.slot_node) - 144},
        "failures": len(fails),
        "failures_by_mode": by_mode,
        "with_precursor": sum(f.precursor for f in fails),
        "with_precursor_by_mode": pre_mode,
        "samples": n_samples,
        "series": n_series,
        "failure_detail": [
            {
                "uuid": fleet.uuids[f.slot][0],
                "replacement_uuid": fleet.uuids[f.slot][1],
                "hostname": fleet.hosts[fleet.slot_node[f.slot]],
                "gpu": fleet.slot_gpu[f.slot],
                "mode": f.mode,
                "time": int(ts[f.t]),
                "terminal_xid": f.xid,
                "precursor_start": int(ts[f.ps]) if f.precursor and f.ps is not None else None,
                "lead_hours": round((f.t - f.ps) * STEP / 3600, 1)
                if f.precursor and f.ps is not None
                else None,
            }
            for f in fails
        ],
        "replacements_in_window": int((st.board[:, -1] == 1).sum()),
        "benign": st.benign,
        "operations": st.events,
        "driver_versions": list(DRIVERS),
        "parameters": {
            "mode_weight": MODE_WEIGHT,
            "precursor_weight": PRECURSOR_WEIGHT,
            "lead_mixture": "30% 2-48h lognormal(10h), 45% 1-7d log-uniform, 25% 7-21d uniform",
            "legacy_nvlink_fields": "absent (NOT_SUPPORTED on Blackwell, skipped by dcgm-exporter)",
            "label_hostname": "Hostname (dcgm-exporter <= 4.8.2)",
        },
        "notes": "failure time = scrape at which the GPU stops serving; pcie/thermal/power/other "
        "boards vanish after it, hbm/nvlink boards report drained until service; replacement "
        "board = new UUID.",
    }
    with open(os.path.join(out, "truth.json"), "w") as fh:
        json.dump(truth, fh, indent=1)


def count_series(present: np.ndarray, key: np.ndarray, xid: np.ndarray, n_metrics: int) -> int:
    """Distinct label sets over the whole run."""
    n = 0
    for slot in range(present.shape[0]):
        p = present[slot]
        n += (n_metrics - 1) * len(np.unique(key[slot][p]))
        n += len(np.unique((key[slot] * 1000 + xid[slot])[p]))
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0][:80])
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--days", type=float, default=45.0)
    ap.add_argument("--end", type=int, default=1796083200)
    ap.add_argument("--promtool", default="/usr/bin/promtool")
    args = ap.parse_args()
    t_start = time.time()
    rng = np.random.default_rng(args.seed)
    os.makedirs(args.out, exist_ok=True)
    t_len = int(args.days * 86400 // STEP)
    end = args.end - args.end % STEP
    ts = end - STEP * np.arange(t_len - 1, -1, -1, dtype=np.int64)
    fleet = build_fleet(rng)
    st = new_state(fleet, t_len)
    add_operations(rng, fleet, st)
    jobs = add_jobs(rng, fleet, st)
    add_app_xids(rng, fleet, st, jobs)
    add_benign(rng, fleet, st)
    fails = place_failures(rng, fleet, st, draw_failures(rng, fleet, st))
    log(
        f"{len(fleet.slot_node)} GPUs, {t_len} steps, {len(fails)} failures, "
        f"{sum(f.precursor for f in fails)} with precursor"
    )
    metrics, present = render_values(rng, fleet, st)
    key = st.board.astype(np.int64) * 2 + per_slot(st.drv, fleet)
    n_series = count_series(present, key, metrics[XID_METRIC].astype(np.int64), len(metrics))
    log(
        f"values ready ({time.time() - t_start:.0f}s); "
        f"writing {len(metrics)} metrics, {n_series} series"
    )
    n_samples = build_tsdb(args.promtool, args.out, fleet, metrics, present, key, ts)
    write_truth(args.out, args.seed, args, fleet, st, fails, ts, n_samples, n_series)
    log(f"done in {time.time() - t_start:.0f}s: {n_samples} samples -> {args.out}")


if __name__ == "__main__":
    main()
