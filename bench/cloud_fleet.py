"""PROVENANCE: written blind, without reading this project's simulator, scorer, exporter, tests or documentation, from public facts only (NVIDIA Xid catalogue and dcgm-exporter source: internal/pkg/collector/xid_errors.go and gpu_collector.go for the err_code/err_msg labels and skipped blank fields; DCGM/dcgm-exporter issues NVIDIA/DCGM#277, #162, NVIDIA/dcgm-exporter#500, #190 on the sticky XID gauge and XID 79/119/120 reporting; NVML clock-event-reason bits and violation counters; "The Llama 3 Herd of Models" (Meta 2024) root-cause table of 419 unexpected interruptions; Kokolis et al. 2024 "Revisiting Reliability in Large-Scale ML Research Clusters" (Meta RSC); Cui et al. 2025 GPU resilience study of NCSA Delta; Ostrouchov et al. SC20 "GPU Lifetimes on Titan"; DRAM/HBM field studies (Sridharan 2015, Meza 2015); public Xid 79 user reports; power-delivery and air/liquid cooling engineering) plus readings of one real H100 kept in shared/fixtures. It exists only to EVALUATE the failure-prediction scorer on data its authors did not design. Never train, tune, calibrate or choose weights or thresholds on its output.

Simulates a GPU cloud provider's fleet (bare-metal and VM nodes, H100 SXM, H200, A100 SXM, L40S and
H100 PCIe) scraped by Prometheus from dcgm-exporter every 10 minutes, with failures, degradations,
benign noisy boards and everyday operations, and writes a Prometheus TSDB (via promtool), a
failures.csv ground truth and a truth.json summary.

Usage: python bench/cloud_fleet.py --seed N --out DIR [--end EPOCH] [--days D] [--promtool PATH]
"""  # noqa: E501

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

STEP = 600  # seconds between Prometheus scrapes
BLOCK = 7200  # promtool's block range (2 h)
DEFAULT_END = 1796083200
PARALLEL_IMPORTS = 2
GENERATOR = "bench/cloud_fleet.py (blind cloud-fleet generator v1)"

DRIVERS = ["535.216.03", "550.144.03", "570.133.20", "580.95.05"]

HGX_BUS = [
    "00000000:18:00.0",
    "00000000:2A:00.0",
    "00000000:3A:00.0",
    "00000000:5D:00.0",
    "00000000:9A:00.0",
    "00000000:AB:00.0",
    "00000000:BA:00.0",
    "00000000:DB:00.0",
]
PCIE8_BUS = [
    "00000000:01:00.0",
    "00000000:25:00.0",
    "00000000:41:00.0",
    "00000000:61:00.0",
    "00000000:81:00.0",
    "00000000:A1:00.0",
    "00000000:C1:00.0",
    "00000000:E1:00.0",
]
PCIE4_BUS = ["00000000:17:00.0", "00000000:65:00.0", "00000000:CA:00.0", "00000000:E3:00.0"]

# Per-model physical parameters. Power/clock/temperature anchors for the H100 come from the real
# H100 readings in shared/fixtures (72 W idle at 345 MHz, 700 W cap at ~1335-1425 MHz with reason
# 0x4, 71 C GPU / 66 C HBM after 75 s at cap, thresholds 87/89/95 C); the others from NVIDIA
# datasheets (TDP, memory size, max clocks) and the same thermal reasoning.
MODELS: dict[str, dict[str, Any]] = {
    "h100sxm": dict(
        name="NVIDIA H100 80GB HBM3", short="h100", cap=700.0, idle=72.0, fb=81559, res=480,
        sm_max=1980, sm_idle=345, sm_cap=1365, mem_clk=2619, mem_clk_idle=2619, nvlink=True,
        memtemp=True, video=False, R=0.060, off=6.0, Rm=0.052, offm=9.0, tmax=87.0, tslow=89.0,
        tshut=95.0, hopper=True, pcie_form=False,
    ),
    "h200": dict(
        name="NVIDIA H200", short="h200", cap=700.0, idle=84.0, fb=143771, res=551,
        sm_max=1980, sm_idle=345, sm_cap=1410, mem_clk=3201, mem_clk_idle=3201, nvlink=True,
        memtemp=True, video=False, R=0.058, off=6.0, Rm=0.050, offm=9.5, tmax=87.0, tslow=89.0,
        tshut=95.0, hopper=True, pcie_form=False,
    ),
    "a100sxm": dict(
        name="NVIDIA A100-SXM4-80GB", short="a100", cap=400.0, idle=61.0, fb=81920, res=567,
        sm_max=1410, sm_idle=210, sm_cap=1290, mem_clk=1593, mem_clk_idle=1593, nvlink=True,
        memtemp=True, video=False, R=0.095, off=6.0, Rm=0.080, offm=8.0, tmax=86.0, tslow=89.0,
        tshut=92.0, hopper=False, pcie_form=False,
    ),
    "l40s": dict(
        name="NVIDIA L40S", short="l40s", cap=350.0, idle=36.0, fb=46068, res=448,
        sm_max=2520, sm_idle=210, sm_cap=2130, mem_clk=9001, mem_clk_idle=405, nvlink=False,
        memtemp=False, video=True, R=0.125, off=9.0, Rm=0.10, offm=9.0, tmax=88.0, tslow=92.0,
        tshut=97.0, hopper=False, pcie_form=True,
    ),
    "h100pcie": dict(
        name="NVIDIA H100 PCIe", short="h100p", cap=350.0, idle=48.0, fb=81559, res=480,
        sm_max=1755, sm_idle=345, sm_cap=1530, mem_clk=1593, mem_clk_idle=1593, nvlink=False,
        memtemp=True, video=False, R=0.120, off=9.0, Rm=0.105, offm=10.0, tmax=87.0, tslow=89.0,
        tshut=95.0, hopper=True, pcie_form=True,
    ),
}  # fmt: skip

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
    54: "Auxiliary power is not connected to the GPU board",
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
    143: "GPU Initialization Failure",
}

# (metric name, array key, integer-valued, support flag or None)
FAMILIES: list[tuple[str, str, bool, str | None]] = [
    ("DCGM_FI_DEV_SM_CLOCK", "sm", True, None),
    ("DCGM_FI_DEV_MEM_CLOCK", "memclk", True, None),
    ("DCGM_FI_DEV_MEMORY_TEMP", "tmem", True, "memtemp"),
    ("DCGM_FI_DEV_GPU_TEMP", "tgpu", True, None),
    ("DCGM_FI_DEV_POWER_USAGE", "power", False, None),
    ("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", "energy", True, None),
    ("DCGM_FI_DEV_PCIE_REPLAY_COUNTER", "pcie", True, None),
    ("DCGM_FI_DEV_GPU_UTIL", "util", True, None),
    ("DCGM_FI_DEV_MEM_COPY_UTIL", "mcu", True, None),
    ("DCGM_FI_DEV_ENC_UTIL", "enc", True, None),
    ("DCGM_FI_DEV_DEC_UTIL", "dec", True, None),
    ("DCGM_FI_DEV_POWER_VIOLATION", "v_pow", True, None),
    ("DCGM_FI_DEV_THERMAL_VIOLATION", "v_therm", True, None),
    ("DCGM_FI_DEV_SYNC_BOOST_VIOLATION", "v_sync", True, None),
    ("DCGM_FI_DEV_BOARD_LIMIT_VIOLATION", "v_board", True, None),
    ("DCGM_FI_DEV_LOW_UTIL_VIOLATION", "v_low", True, None),
    ("DCGM_FI_DEV_RELIABILITY_VIOLATION", "v_rel", True, None),
    ("DCGM_FI_DEV_CLOCK_THROTTLE_REASONS", "reasons", True, None),
    ("DCGM_FI_DEV_FB_FREE", "fb_free", True, None),
    ("DCGM_FI_DEV_FB_USED", "fb_used", True, None),
    ("DCGM_FI_DEV_FB_RESERVED", "fb_res", True, None),
    ("DCGM_FI_DEV_ECC_SBE_VOL_TOTAL", "sbe_vol", True, None),
    ("DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", "dbe_vol", True, None),
    ("DCGM_FI_DEV_ECC_SBE_AGG_TOTAL", "sbe_agg", True, None),
    ("DCGM_FI_DEV_ECC_DBE_AGG_TOTAL", "dbe_agg", True, None),
    ("DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL", "nvl_flit", True, "nvlink"),
    ("DCGM_FI_DEV_NVLINK_CRC_DATA_ERROR_COUNT_TOTAL", "nvl_data", True, "nvlink"),
    ("DCGM_FI_DEV_NVLINK_REPLAY_ERROR_COUNT_TOTAL", "nvl_replay", True, "nvlink"),
    ("DCGM_FI_DEV_NVLINK_RECOVERY_ERROR_COUNT_TOTAL", "nvl_recov", True, "nvlink"),
    ("DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL", "nvl_bw", True, "nvlink"),
    ("DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS", "remap_u", True, None),
    ("DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS", "remap_c", True, None),
    ("DCGM_FI_DEV_ROW_REMAP_FAILURE", "remap_fail", True, None),
]
XID_FAMILY = "DCGM_FI_DEV_XID_ERRORS"

MODES = ["hbm", "pcie", "nvlink", "thermal", "power", "other"]
PRECURSOR_SHARE = {
    "hbm": 0.65,
    "pcie": 0.35,
    "nvlink": 0.55,
    "thermal": 0.70,
    "power": 0.50,
    "other": 0.20,
}
# median lead time (hours) and log-sigma of the precursor before the failure
LEAD_HOURS = {
    "hbm": (72.0, 0.9),
    "pcie": (24.0, 0.9),
    "nvlink": (48.0, 0.8),
    "thermal": (120.0, 0.7),
    "power": (48.0, 0.9),
    "other": (12.0, 0.9),
}

DESIGN_CHOICES: dict[str, str] = {
    "scope_and_enrichment": (
        "The fleet is 200-220 GPU slots (H100 SXM, H200, A100 SXM in 8-GPU HGX nodes; L40S in "
        "8- and 4-GPU nodes; H100 PCIe in 4-GPU nodes; ~25% of SXM/L40S nodes are "
        "provider-managed VMs with full-node pass-through). Public fleet data put "
        "hardware-attributed GPU interruptions at roughly 10%/GPU-year (Llama 3: 419 unexpected "
        "interruptions on 16,384 H100 in 54 days, 58.7% GPU-attributed; other public fleet studies "
        "such as Meta RSC and NCSA Delta report rates of a similar order). To get >=60 "
        "failures in 45 days on ~210 GPUs the "
        "failure rate is enriched ~25-30x; the per-mode mix is then tilted so that thermal/cooling "
        "and power-delivery failures each reach >=15 per seed (publicly they are only ~1-2% of "
        "interruptions each: Llama 3 lists 'GPU thermal interface + sensor' 1.4% and 'power "
        "supply' 0.7%). Evaluate per mode, not on the mix."
    ),
    "failure_mode_mix": (
        "Per seed: hbm ~12-15 (Llama 3: HBM3 17.2% and SRAM 4.5% of interruptions; Delta: "
        "uncorrectable memory errors and row-remap failures are a leading hardware cause), pcie "
        "~9-11 (Xid 79 fell-off-bus is a classic fleet killer in Titan/Delta/RSC reports), "
        "nvlink ~7-9 (SXM only; Delta and RSC report NVLink Xid 74 as frequent), thermal "
        "~16-19, power ~16-19, other ~9-11 (GSP/firmware Xid 119/120, driver hangs Xid 43/109, "
        "unknown). About 5% of failures hit a replacement board shortly after burn-in (infant "
        "mortality, bathtub curve as in the Titan study)."
    ),
    "precursor_share": (
        "Share of failures with a precursor visible in these metrics: hbm 0.65, pcie 0.35, "
        "nvlink 0.55, thermal 0.70, power 0.50, other 0.20 (~0.5 overall). Rationale: DRAM/HBM "
        "field studies (Sridharan 2015, Meza 2015, and HBM studies) find that a majority but "
        "far from all uncorrectable errors follow correctable-error activity on the same "
        "device; public Xid 79 reports often show no precursor at all; GSP/firmware and driver "
        "faults are mostly sudden; cooling degradation (TIM pump-out, fan wear, filter "
        "clogging, cold-plate flow loss) is gradual unless a fan/pump seizes. A failure is only "
        "marked precursor=true if the generated precursor actually reached an emitted sample "
        "before the failure time (a thermal drift on a board that sat idle the whole time is "
        "not visible and is marked false)."
    ),
    "lead_times": (
        "Lead times are lognormal per mode (median hours / log-sigma): hbm 72/0.9, pcie 24/0.9, "
        "nvlink 48/0.8, thermal 120/0.7, power 48/0.9, other 12/0.9, clipped to the board's "
        "install time; a precursor that started before the data window is present from the "
        "first sample. Precursors ramp (accelerating power-law in time) and their strength "
        "varies per event (lognormal), so some are faint."
    ),
    "hbm": (
        "Precursor: correctable (SBE) ECC counts whose rate rises steeply toward the failure "
        "(Poisson with an accelerating rate), occasional correctable row remaps, and in ~70% of "
        "cases one or two earlier uncorrectable events in the last quarter of the lead time "
        "(Xid 94 on Hopper / Xid 48 on Ampere/Ada, followed by Xid 63 row-remap event, "
        "uncorrectable remapped rows +1, then an operator GPU reset that zeroes volatile ECC "
        "counters). Failure: DBE burst with Xid 95 (Hopper) or 48, uncorrectable remapped rows, "
        "and in 40% a row-remap failure (Xid 64 and DCGM_FI_DEV_ROW_REMAP_FAILURE=1). The GPU "
        "stays enumerable, so it keeps reporting idle for 1-8 h until ops pull it."
    ),
    "pcie": (
        "Precursor: PCIe replay counter increments with an accelerating, bursty rate (marginal "
        "riser/retimer/connector). Failure: Xid 79, the board stops answering: all its series "
        "stop. DCGM could not report Xid 79 via NVML for a while (NVIDIA/DCGM#162), so only 50% "
        "of these show err_code 79 on the XID gauge; when shown, the cached XID value keeps "
        "being exported (other fields blank and skipped) until the node is rebooted for repair."
    ),
    "nvlink": (
        "Precursor: NVLink CRC flit errors rising (data-CRC ~0.3x and replays ~0.6x of flit), "
        "late recovery errors, and in half the cases a recovered non-fatal Xid 74 in the last "
        "30%. Failure: fatal Xid 74 plus a burst of recovery errors; the GPU stays enumerable "
        "for 1-12 h (idle, job dead) before being pulled. Only SXM boards expose NVLink "
        "counters."
    ),
    "thermal": (
        "Two physical variants. Board-level (65%): thermal resistance of the board's cooling "
        "path rises by typically 30-55% (TIM pump-out/degradation, heatsink or cold-plate "
        "fouling), so "
        "GPU and HBM temperatures at the same power climb; when the GPU exceeds its max "
        "operating temperature the firmware clock-limits (reason 0x20 SW thermal, later "
        "0x40|0x8 HW thermal slowdown), power and SM clock drop and "
        "DCGM_FI_DEV_THERMAL_VIOLATION accumulates. Node-level (35%): a failing fan/airflow "
        "path raises the inlet temperature of every GPU in the node by 6-12 C while the weakest "
        "board (with a milder resistance increase) is the one that fails; its siblings show the "
        "same heat but survive. Failure: the board reaches its shutdown threshold and drops off "
        "the bus (Xid 79 shown in 40%). Without precursor: sudden fan/pump seizure between two "
        "scrapes. The drift is only visible under load (temperature rise = R x P), as in real "
        "boards."
    ),
    "power": (
        "Two variants. Board VRM/power-stage degradation (60%): the power reading becomes noisy "
        "(spikes above and dips below the cap) and HW power-brake episodes appear (clock-event "
        "reason 0x80|0x8, SM clock roughly halved, power pulled to 25-50% of TDP, board-limit "
        "violation time accumulating) with a frequency that rises toward the failure. Node PSU "
        "degradation (40%): brake episodes are asserted on all GPUs of the node (on HGX the "
        "power brake is a baseboard-level signal), one board then fails. Failure: board loses "
        "power and falls off the bus (Xid 79 in 40%, or Xid 54 on PCIe-form-factor boards in "
        "50%)."
    ),
    "other": (
        "GSP/firmware (45%): precursor is 1-4 sporadic Xid 119 GSP RPC timeouts, each followed "
        "by a GPU reset; failure is Xid 119/120 with the GPU wedged (reports idle) until "
        "pulled. Driver/engine hang (25%): precursor is short hang episodes where utilisation "
        "reads 100% while power stays near idle and copy utilisation is 0, cleared by a GPU "
        "reset; failure is Xid 43 and a permanent hang. Unknown (30%): never a precursor, board "
        "vanishes without any XID."
    ),
    "failed_board_reporting": (
        "A board that fell off the bus or lost power stops producing every series (DCGM returns "
        "blank values and dcgm-exporter skips blanks). A board with a fatal but enumerable "
        "fault (HBM, NVLink, GSP, hang) reports for a few hours more with the fatal XID sticky. "
        "The failure time is the event time, uniformly inside the scrape interval before the "
        "first scrape that shows it."
    ),
    "xid_gauge": (
        "DCGM_FI_DEV_XID_ERRORS is the value of the LAST XID and is sticky (NVIDIA/DCGM#277, "
        "dcgm-exporter#500, #190); dcgm-exporter adds err_code=str(value) and err_msg from its "
        "xidErrCodeToText table, so every new XID value starts a new series. It shows 0/'No "
        "Error' until the first XID and is cleared by exporter restarts, reboots and driver "
        "reloads, not by GPU resets."
    ),
    "benign_noise": (
        "Non-failing confounders: ~12% of boards with a steady low rate of correctable ECC "
        "errors (3% at a high rate), a few boards with a single benign uncorrectable error that "
        "is remapped and then run clean (Delta: row remapping usually recovers), ~10% with "
        "occasional PCIe replays (2% at a high but stable rate) plus small replay bursts at "
        "link training after reboots, ~12% of NVLink boards with low stable CRC counts, a few "
        "'hot' hosts 5-8 C above their rack that occasionally hit thermal clock limits on hot "
        "afternoons, 3% of boards with higher-than-average thermal resistance, rack-wide "
        "facility power-brake events, a node PSU that asserts power brake for a day before "
        "being swapped without any GPU failure, one-off Xid 119 on healthy boards, multi-tenant "
        "application XIDs (13, 31, 43, 45, 109) that are user errors, and 2 noisy boards "
        "proactively pulled and replaced without failing (they are NOT in failures.csv)."
    ),
    "workloads": (
        "Tenants lease whole nodes: training (all GPUs ~97% util at the power cap with reason "
        "0x4 exactly as the real H100 trace, periodic checkpoint dips, crashes with app XIDs "
        "and restarts), inference (diurnal utilisation in the tenant's time zone, memory-bound "
        "so below the cap), short jobs (independent per-GPU on/off), idle gaps (reason 0x1, "
        "low-util violation time accumulating) and 12-36 h burn-in of repaired nodes. L40S "
        "inference tenants sometimes run video (encoder/decoder utilisation). Power follows "
        "utilisation with per-board efficiency spread; temperatures = inlet + offset + R x P "
        "with a real H100 calibration (72 W/37 C idle, 700 W/~71-75 C at cap)."
    ),
    "operations": (
        "Failures drain the node (job dies, GPUs idle), repair after a lognormal delay (median "
        "2.5 days) with the node down 1-4 h, then a new board (new UUID, zero aggregate ECC) in "
        "the same slot and a node burn-in. Rolling driver upgrades (535->550, 550->570 wave, "
        "canaries to 580) change DCGM_FI_DRIVER_VERSION and reboot the node; planned "
        "maintenance reboots; exporter restarts (one missed scrape, XID cleared); GPU resets "
        "between tenants on half of the hosts and after ECC events (zero volatile ECC, PCIe "
        "replay and NVLink error counters); energy and violation counters count since driver "
        "load and restart at reboots; single missed scrapes (0.2%), per-host network blips and "
        "usually one fleet-wide Prometheus outage. Per-host scrape offsets inside the 10-min "
        "interval."
    ),
    "unsupported_fields": (
        "DCGM_FI_DEV_RETIRED_SBE/DBE/PENDING are not emitted: Ampere and later use row "
        "remapping and NVML answers Not Supported for retired pages (as in the real H100 "
        "readings), so DCGM returns blanks that dcgm-exporter skips. "
        "DCGM_FI_DEV_VGPU_LICENSE_STATUS is not emitted (no vGPU in this fleet). "
        "DCGM_FI_DEV_MEMORY_TEMP is absent on the GDDR6 L40S. NVLink counters only exist on SXM "
        "boards. DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL is modelled as a cumulative MiB count since "
        "driver load."
    ),
    "counter_semantics": (
        "Energy (mJ) and violation times (ns) are cumulative since driver load, start at values "
        "implied by each host's uptime before the window, and restart at reboots/driver "
        "reloads. Volatile ECC, PCIe replay and NVLink error counters restart on GPU reset and "
        "reboot. Aggregate ECC and remapped rows are persistent per board (InfoROM) and some "
        "boards carry history from before the window. Values are integers except power (3 "
        "decimals)."
    ),
}


@dataclass
class Host:
    name: str
    model: str
    ngpu: int
    vm: bool
    rack: int
    slots: list[int] = field(default_factory=list)
    offset: float = 0.0  # scrape offset within the interval (s)


@dataclass
class Failure:
    slot: int
    host: int
    board: int
    mode: str
    sub: str
    f: int  # first scrape step that shows the failure
    t_fail: float
    plan_prec: bool
    pv: int = 0  # virtual precursor start step (may be negative)
    kind: str = "dead"  # dead | zombie
    zend: int = 0  # last step (exclusive) the board still reports
    xid: int = 0
    xid_visible: bool = True
    prec: bool = False
    prec_start: float | None = None
    infant: bool = False
    repair: tuple[int, int] = (0, 0)


def log(msg: str) -> None:
    print(f"[cloud_fleet] {msg}", file=sys.stderr, flush=True)


def lognorm(rng: np.random.Generator, median: float, sigma: float) -> float:
    return float(median * np.exp(sigma * rng.standard_normal()))


def make_uuid(rng: np.random.Generator) -> str:
    h = rng.bytes(16).hex()
    return f"GPU-{h[0:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


class Sim:
    """Whole-fleet simulation on a [slot, step] grid."""

    def __init__(self, seed: int, start: int, steps: int) -> None:
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.start = start
        self.T = steps
        self.ts = start + STEP * np.arange(steps, dtype=np.int64)
        self.hosts: list[Host] = []
        self.slot_host: list[int] = []
        self.slot_gpu: list[int] = []
        self.slot_bus: list[str] = []
        self.boards: list[dict[str, Any]] = []
        self.failures: list[Failure] = []
        self.benign_pulls = 0

    # ------------------------------------------------------------------ fleet
    def build_fleet(self) -> None:
        rng = self.rng
        # (model, GPUs per node, nodes, VM share, may add a node); 200-220 slots
        plan = [
            ("h100sxm", 8, 9, 0.25, True),
            ("h200", 8, 4, 0.25, False),
            ("a100sxm", 8, 5, 0.15, True),
            ("l40s", 8, 3, 0.5, False),
            ("l40s", 4, 4, 0.0, True),
            ("h100pcie", 4, 4, 0.0, False),
        ]
        idx = 0
        for model, ngpu, n0, vmshare, extra in plan:
            n = n0 + int(rng.integers(0, 2)) if extra else n0
            for _ in range(n):
                vm = bool(rng.random() < vmshare)
                rack = idx // 4 + 1
                short = MODELS[model]["short"]
                if vm:
                    name = f"vm-{short}-{rng.bytes(3).hex()}"
                else:
                    name = f"{short}-r{rack:02d}-n{idx % 4 + 1:02d}"
                h = Host(name, model, ngpu, vm, rack, offset=float(rng.uniform(0.5, 590.0)))
                hi = len(self.hosts)
                for g in range(ngpu):
                    s = len(self.slot_host)
                    self.slot_host.append(hi)
                    self.slot_gpu.append(g)
                    if vm:
                        bus = f"00000000:00:{5 + g:02X}.0"
                    elif ngpu == 4:
                        bus = PCIE4_BUS[g]
                    elif MODELS[model]["pcie_form"]:
                        bus = PCIE8_BUS[g]
                    else:
                        bus = HGX_BUS[g]
                    self.slot_bus.append(bus)
                    h.slots.append(s)
                self.hosts.append(h)
                idx += 1
        self.H = len(self.hosts)
        self.S = len(self.slot_host)
        self.sh = np.array(self.slot_host)
        self.smodel = [self.hosts[h].model for h in self.slot_host]

        def col(key: str) -> np.ndarray:
            return np.array([MODELS[m][key] for m in self.smodel], dtype=float)[:, None]

        self.p = {
            k: col(k)
            for k in [
                "cap", "idle", "fb", "res", "sm_max", "sm_idle", "sm_cap", "mem_clk",
                "mem_clk_idle", "R", "off", "Rm", "offm", "tmax", "tslow", "tshut",
            ]
        }  # fmt: skip
        self.s_nvlink = np.array([MODELS[m]["nvlink"] for m in self.smodel])
        self.s_memtemp = np.array([MODELS[m]["memtemp"] for m in self.smodel])
        self.s_video = np.array([MODELS[m]["video"] for m in self.smodel])
        self.s_hopper = np.array([MODELS[m]["hopper"] for m in self.smodel])
        self.s_pcieform = np.array([MODELS[m]["pcie_form"] for m in self.smodel])

    def new_board(self, slot: int, install: int, fresh: bool) -> int:
        rng = self.rng
        b = len(self.boards)
        u = rng.random()
        sbe_rate = 0.0
        if u < 0.03:
            sbe_rate = lognorm(rng, 0.2, 0.6)
        elif u < 0.15:
            sbe_rate = lognorm(rng, 0.02, 0.8)
        u = rng.random()
        pcie_rate = 0.0
        if u < 0.02:
            pcie_rate = lognorm(rng, 0.5, 0.5)
        elif u < 0.10:
            pcie_rate = lognorm(rng, 0.015, 0.8)
        u = rng.random()
        nvl_rate = 0.0
        if self.s_nvlink[slot]:
            if u < 0.02:
                nvl_rate = lognorm(rng, 2.0, 0.5)
            elif u < 0.12:
                nvl_rate = lognorm(rng, 0.05, 0.9)
        rth = float(np.clip(rng.normal(1.0, 0.04), 0.9, 1.12))
        if rng.random() < 0.03:
            rth = float(rng.uniform(1.12, 1.2))
        hist = not fresh
        self.boards.append(
            dict(
                slot=slot,
                install=install,
                uuid=make_uuid(rng),
                rth=rth,
                pw_eff=float(np.clip(rng.normal(1.0, 0.03), 0.92, 1.08)),
                idle_mult=float(np.clip(rng.normal(1.0, 0.05), 0.85, 1.15)),
                sbe_rate=sbe_rate,
                pcie_rate=pcie_rate,
                nvl_rate=nvl_rate,
                sbe0=float(rng.lognormal(np.log(20), 1.2)) if hist and rng.random() < 0.3 else 0.0,
                dbe0=1.0 if hist and rng.random() < 0.02 else 0.0,
                rc0=float(rng.integers(1, 4)) if hist and rng.random() < 0.05 else 0.0,
                ru0=1.0 if hist and rng.random() < 0.02 else 0.0,
            )
        )
        return b

    # ------------------------------------------------------------ host arrays
    def host_arrays(self) -> None:
        rng = self.rng
        H, T = self.H, self.T
        tod = ((self.ts % 86400) / 3600.0)[None, :]
        nrack = max(h.rack for h in self.hosts)
        rack_base = rng.uniform(21.5, 26.5, nrack + 1)
        inlet = np.empty((H, T))
        self.hot_hosts: list[int] = []
        hot = set(rng.choice(H, size=min(H, 4), replace=False).tolist())
        for hi, h in enumerate(self.hosts):
            base = rack_base[h.rack] + rng.normal(0, 1.0)
            if hi in hot:
                base += rng.uniform(5.0, 8.0)
                self.hot_hosts.append(hi)
            drift = np.cumsum(rng.normal(0, 0.08, T))
            drift -= np.linspace(0, drift[-1], T)  # bounded random walk
            inlet[hi] = base + drift
        inlet += 1.3 * np.sin(2 * np.pi * (tod - 9.0) / 24.0)
        self.inlet = inlet
        self.inlet_x = np.zeros((H, T))
        self.down = np.zeros((H, T), bool)
        self.up_reset = np.zeros((H, T), bool)
        self.exp_restart = np.zeros((H, T), bool)
        self.scrape_ok = rng.random((H, T)) > 0.002
        self.driver = np.zeros((H, T), np.int16)
        self.uptime0 = rng.uniform(0.5, 60.0, H) * 86400.0

    def node_down(self, h: int, a: int, b: int) -> None:
        a = max(0, a)
        b = min(self.T, b)
        if a >= self.T or b <= a:
            return
        self.down[h, a:b] = True
        if b < self.T:
            self.up_reset[h, b] = True

    # ---------------------------------------------------------------- workload
    def workloads(self) -> None:
        rng = self.rng
        S, T = self.S, self.T
        self.util = np.zeros((S, T))
        self.inten = np.zeros((S, T))
        self.fbfrac = np.zeros((S, T))
        self.mcu = np.zeros((S, T))
        self.enc = np.zeros((S, T))
        self.dec = np.zeros((S, T))
        self.xid_ev = np.zeros((S, T), np.int16)
        self.gpu_reset = np.zeros((S, T), bool)
        self.hang = np.zeros((S, T), bool)
        tod = (self.ts % 86400) / 3600.0
        app_codes = np.array([13, 31, 43, 45, 109])
        app_p = np.array([0.30, 0.35, 0.15, 0.12, 0.08])
        self.lease_reset_hosts = set()
        for hi, h in enumerate(self.hosts):
            sl = np.array(h.slots)
            g = len(sl)
            reset_policy = rng.random() < 0.5
            if reset_policy:
                self.lease_reset_hosts.add(hi)
            if MODELS[h.model]["pcie_form"]:
                types, probs = ["train", "infer", "short", "idle"], [0.08, 0.5, 0.24, 0.18]
            else:
                types, probs = ["train", "infer", "short", "idle"], [0.48, 0.18, 0.16, 0.18]
            med = {"train": 576, "infer": 864, "short": 216, "idle": 72}
            t = -int(rng.integers(0, 400))
            while t < T:
                kind = str(rng.choice(types, p=probs))
                dur = int(np.clip(lognorm(rng, med[kind], 0.8), 6, 3000))
                a, b = max(t, 0), min(t + dur, T)
                t += dur
                if b <= a:
                    continue
                L = b - a
                if reset_policy and a > 0:
                    self.gpu_reset[sl, a] = True
                if kind == "train":
                    u = np.clip(97 + rng.normal(0, 1.2, (g, L)), 85, 100)
                    every = int(rng.integers(6, 19))
                    ph = int(rng.integers(0, every))
                    dips = np.arange(ph, L, every)
                    u[:, dips] *= rng.uniform(0.3, 0.7)
                    fb = np.full((g, L), rng.uniform(0.82, 0.97))
                    it = np.full((g, L), 1.15 if not MODELS[h.model]["pcie_form"] else 1.05)
                    mc = np.clip(rng.uniform(25, 45) + rng.normal(0, 2, (g, L)), 0, 100)
                    # crashes: node-wide stop, app XIDs on some GPUs, restart
                    ncr = rng.poisson(L / (5.0 * 144))
                    for _ in range(ncr):
                        c = int(rng.integers(0, L))
                        n_x = int(rng.integers(1, g + 1))
                        who = rng.choice(g, n_x, replace=False)
                        code = int(rng.choice(app_codes, p=app_p))
                        self.xid_ev[sl[who], a + c] = code
                        off = int(rng.integers(2, 19))
                        u[:, c : c + off] = 0
                        fb[:, c : c + off] = 0
                        it[:, c : c + off] = 0
                        mc[:, c : c + off] = 0
                elif kind == "infer":
                    phase = rng.uniform(0, 24)
                    shape = 0.5 + 0.5 * np.sin(2 * np.pi * (tod[a:b] - phase) / 24.0)
                    base = rng.uniform(10, 35)
                    amp = rng.uniform(30, 65)
                    gf = rng.uniform(0.8, 1.1, (g, 1))
                    u = np.clip((base + amp * shape**1.5) * gf + rng.normal(0, 5, (g, L)), 0, 100)
                    fb = np.full((g, L), rng.uniform(0.4, 0.92))
                    it = np.full((g, L), rng.uniform(0.55, 0.85))
                    mc = np.clip(0.5 * u + rng.normal(0, 3, (g, L)), 0, 100)
                    if MODELS[h.model]["video"] and rng.random() < 0.3:
                        self.dec[sl, a:b] = np.clip(0.4 * u + rng.normal(0, 3, (g, L)), 0, 100)
                        self.enc[sl, a:b] = np.clip(0.25 * u + rng.normal(0, 3, (g, L)), 0, 100)
                    ev = rng.random((g, L)) < 1.0 / (40 * 144)
                    gi, ti = np.nonzero(ev)
                    self.xid_ev[sl[gi], a + ti] = rng.choice(app_codes, len(gi), p=app_p)
                elif kind == "short":
                    u = np.zeros((g, L))
                    fb = np.zeros((g, L))
                    it = np.zeros((g, L))
                    for k in range(g):
                        nj = L // 3 + 2
                        d = rng.geometric(1 / 7.0, nj)
                        st = np.arange(nj) % 2 if rng.random() < 0.5 else (np.arange(nj) + 1) % 2
                        on = np.repeat(st, d)[:L]
                        if len(on) < L:
                            on = np.pad(on, (0, L - len(on)))
                        lvl = np.repeat(rng.uniform(40, 100, nj), d)[:L]
                        fbl = np.repeat(rng.uniform(0.2, 0.9, nj), d)[:L]
                        if len(lvl) < L:
                            lvl = np.pad(lvl, (0, L - len(lvl)))
                            fbl = np.pad(fbl, (0, L - len(fbl)))
                        u[k] = on * np.clip(lvl + rng.normal(0, 4, L), 0, 100)
                        fb[k] = on * fbl
                        it[k] = on * rng.uniform(0.6, 1.05)
                    mc = np.clip(0.35 * u + rng.normal(0, 2, (g, L)), 0, 100) * (u > 0)
                    ev = (rng.random((g, L)) < 1.0 / (12 * 144)) & (u > 0)
                    gi, ti = np.nonzero(ev)
                    self.xid_ev[sl[gi], a + ti] = rng.choice(app_codes, len(gi), p=app_p)
                else:
                    u = np.zeros((g, L))
                    fb = np.zeros((g, L))
                    it = np.zeros((g, L))
                    mc = np.zeros((g, L))
                self.util[sl, a:b] = u
                self.fbfrac[sl, a:b] = fb
                self.inten[sl, a:b] = it
                self.mcu[sl, a:b] = mc

    def set_host_idle(self, h: int, a: int, b: int) -> None:
        a, b = max(0, a), min(self.T, b)
        if b <= a:
            return
        sl = self.hosts[h].slots
        for arr in (self.util, self.fbfrac, self.inten, self.mcu, self.enc, self.dec):
            arr[sl, a:b] = 0.0

    def set_host_burnin(self, h: int, a: int, b: int) -> None:
        a, b = max(0, a), min(self.T, b)
        if b <= a:
            return
        sl = self.hosts[h].slots
        rng = self.rng
        self.util[sl, a:b] = np.clip(99 + rng.normal(0, 0.8, (len(sl), b - a)), 90, 100)
        self.fbfrac[sl, a:b] = 0.9
        self.inten[sl, a:b] = 1.2
        self.mcu[sl, a:b] = 40.0
        self.enc[sl, a:b] = 0.0
        self.dec[sl, a:b] = 0.0

    # -------------------------------------------------------------- operations
    def operations(self) -> None:
        rng = self.rng
        T = self.T
        day = 144
        for hi in range(self.H):
            # driver versions and rolling upgrades
            d0 = int(rng.choice([0, 1, 2], p=[0.15, 0.6, 0.25]))
            self.driver[hi, :] = d0
            up = None
            if d0 == 1 and rng.random() < 0.75:
                up = (int(rng.integers(10 * day, 30 * day)), 2)
            elif d0 == 0 and rng.random() < 0.3:
                up = (int(rng.integers(5 * day, 35 * day)), 1)
            elif d0 == 2 and rng.random() < 0.12:
                up = (int(rng.integers(33 * day, 40 * day)), 3)
            if up is not None and up[0] < T:
                s0 = up[0]
                dur = int(rng.integers(2, 5))
                self.driver[hi, s0 + dur :] = up[1]
                self.node_down(hi, s0, s0 + dur)
                self.set_host_idle(hi, s0 - 6, s0 + dur)
            # planned maintenance reboots
            for _ in range(rng.poisson(0.8)):
                s0 = int(rng.integers(0, T))
                dur = int(rng.integers(2, 6))
                self.set_host_idle(hi, s0 - int(rng.integers(3, 36)), s0 + dur)
                self.node_down(hi, s0, s0 + dur)
            # exporter restarts (one missed scrape, XID cleared)
            for _ in range(rng.poisson(1.5)):
                s0 = int(rng.integers(1, T))
                self.exp_restart[hi, s0] = True
                self.scrape_ok[hi, s0 - 1] = False
            # network blips
            if rng.random() < 0.15:
                s0 = int(rng.integers(0, T))
                self.scrape_ok[hi, s0 : s0 + int(rng.integers(3, 13))] = False
        # fleet-wide Prometheus outage
        if rng.random() < 0.8:
            s0 = int(rng.integers(0, T))
            self.scrape_ok[:, s0 : s0 + int(rng.integers(4, 16))] = False

    # ---------------------------------------------------------------- failures
    def place_failures(self) -> None:
        rng = self.rng
        T = self.T
        day = 144
        S = self.S
        # boards: every slot starts with a board that has history
        self.slot_boards: list[list[tuple[int, int]]] = [[] for _ in range(S)]
        for s in range(S):
            b = self.new_board(s, -1, fresh=False)
            self.slot_boards[s].append((0, b))
        counts = {
            "hbm": 12 + rng.poisson(2.5),
            "pcie": 9 + rng.poisson(1.5),
            "nvlink": 7 + rng.poisson(1.5),
            "thermal": 16 + rng.poisson(2.5),
            "power": 16 + rng.poisson(2.5),
            "other": 9 + rng.poisson(1.5),
        }
        specs = [m for m in MODES for _ in range(int(counts[m]))]
        rng.shuffle(specs)
        self.blocked = np.zeros((self.H, T), bool)
        used: set[int] = set()
        nvl_slots = np.nonzero(self.s_nvlink)[0]
        lo = min(2 * day, T // 4)
        for mode in specs:
            for _try in range(400):
                s = int(rng.choice(nvl_slots)) if mode == "nvlink" else int(rng.integers(0, S))
                if s in used:
                    continue
                h = int(self.sh[s])
                ok = ~self.blocked[h].copy()
                ok[:lo] = False
                ok[T - 1 :] = False
                if mode in ("thermal", "power"):
                    ok &= self.util[s] >= 60
                cand = np.nonzero(ok)[0]
                if len(cand) == 0:
                    continue
                f = int(rng.choice(cand))
                used.add(s)
                self._make_failure(s, mode, f, infant=False)
                break
        placed = {m: sum(1 for fl in self.failures if fl.mode == m) for m in MODES}
        if min(placed["thermal"], placed["power"]) < 15 or len(self.failures) < 60:
            raise RuntimeError(f"could not place enough failures for this seed: {placed}")
        # infant mortality on replacement boards
        n_inf = rng.binomial(len(self.failures), 0.05)
        cands = [fl for fl in self.failures if len(self.slot_boards[fl.slot]) > 1]
        rng.shuffle(cands)
        for fl in cands[:n_inf]:
            s = fl.slot
            inst, _b = self.slot_boards[s][-1]
            a = inst + 3 * day
            if a >= T - day:
                continue
            h = int(self.sh[s])
            ok = ~self.blocked[h].copy()
            ok[:a] = False
            ok[min(T - 1, a + 12 * day) :] = False
            cand = np.nonzero(ok)[0]
            if len(cand) == 0:
                continue
            mode = str(rng.choice(["hbm", "power", "other"]))
            self._make_failure(s, mode, int(rng.choice(cand)), infant=True)

    def _make_failure(self, s: int, mode: str, f: int, infant: bool) -> None:
        rng = self.rng
        T = self.T
        h = int(self.sh[s])
        board = self.slot_boards[s][-1][1]
        install = self.slot_boards[s][-1][0]
        plan = bool(rng.random() < PRECURSOR_SHARE[mode])
        if infant:
            plan = bool(rng.random() < 0.3)
        sub = ""
        if mode == "thermal":
            sub = "node_airflow" if rng.random() < 0.35 else "board_tim"
            if not plan:
                sub = "sudden"
        elif mode == "power":
            sub = "node_psu" if rng.random() < 0.4 else "board_vrm"
        elif mode == "other":
            u = rng.random()
            sub = "gsp" if u < 0.45 else ("hang" if u < 0.70 else "unknown")
            if sub == "unknown":
                plan = False
        elif mode == "hbm":
            sub = "hbm"
        t_fail = float(self.ts[f] + self.hosts[h].offset - rng.uniform(1.0, STEP - 1.0))
        fl = Failure(s, h, board, mode, sub, f, t_fail, plan, infant=infant)
        med, sig = LEAD_HOURS[mode]
        lead = max(3, int(lognorm(rng, med, sig) * 6))
        if install > 0:
            lead = min(lead, f - install - 6)
        fl.pv = f - max(lead, 3)
        # fatal signature
        hop = bool(self.s_hopper[s])
        if mode == "hbm":
            fl.kind = "zombie"
            fl.xid = 95 if hop else 48
        elif mode == "pcie":
            fl.xid, fl.xid_visible = 79, bool(rng.random() < 0.5)
        elif mode == "nvlink":
            fl.kind = "zombie"
            fl.xid = 74
        elif mode == "thermal":
            fl.xid, fl.xid_visible = 79, bool(rng.random() < 0.4)
        elif mode == "power":
            if self.s_pcieform[s] and rng.random() < 0.5:
                fl.xid = 54
            else:
                fl.xid, fl.xid_visible = 79, bool(rng.random() < 0.4)
        else:
            if sub == "gsp":
                fl.kind, fl.xid = "zombie", int(rng.choice([119, 120]))
            elif sub == "hang":
                fl.kind, fl.xid = "zombie", 43
            else:
                fl.xid, fl.xid_visible = 0, False
        if fl.kind == "zombie":
            fl.zend = min(T, f + int(rng.integers(6, 73 if mode != "hbm" else 49)))
        else:
            fl.zend = f
        # node drained from the failure on; repair later
        rd = int(np.clip(lognorm(rng, 360, 0.6), 36, 1700))
        d0 = max(fl.zend, f + 1) + rd
        dur = int(rng.integers(6, 25))
        d1 = d0 + dur
        bi = int(rng.integers(72, 217))
        self.set_host_idle(h, f, d1)
        self.node_down(h, d0, d1)
        self.set_host_burnin(h, d1, d1 + bi)
        self.blocked[h, max(0, f - 6) : min(T, d1 + bi + 36)] = True
        fl.repair = (d0, d1)
        if d1 < T:
            nb = self.new_board(s, d1, fresh=True)
            self.slot_boards[s].append((d1, nb))
        self.failures.append(fl)

    # ------------------------------------------------------------ board index
    def board_index(self) -> None:
        S, T = self.S, self.T
        self.bidx = np.zeros((S, T), np.int64)
        self.present = np.ones((S, T), bool)
        self.xid_only = np.zeros((S, T), bool)
        self.board_install = np.zeros((S, T), bool)
        for s in range(S):
            for inst, b in self.slot_boards[s]:
                self.bidx[s, max(inst, 0) :] = b
                if inst > 0:
                    self.board_install[s, inst] = True
        for fl in self.failures:
            d0, d1 = fl.repair
            end = min(d1, self.T)
            self.present[fl.slot, fl.zend : end] = False
            if fl.kind == "dead" and fl.xid_visible and fl.xid:
                self.xid_only[fl.slot, fl.f : min(d0, self.T)] = True

    # ---------------------------------------------------------- benign extras
    def benign(self) -> None:
        rng = self.rng
        T = self.T
        day = 144
        S = self.S
        self.brake = np.zeros((S, T), bool)
        self.jitter = np.zeros((S, T))
        self.rth_x = np.ones((S, T))
        self.add = {
            k: np.zeros((S, T))
            for k in [
                "sbe", "dbe", "remap_c", "remap_u", "pcie", "nvl_flit", "nvl_data",
                "nvl_replay", "nvl_recov",
            ]
        }  # fmt: skip
        self.remap_fail = np.zeros((S, T), bool)
        failing = {fl.slot for fl in self.failures}
        healthy = [s for s in range(S) if s not in failing]
        # facility power-brake events across a rack
        racks = sorted({h.rack for h in self.hosts})
        for _ in range(int(rng.integers(1, 3))):
            r = int(rng.choice(racks))
            s0 = int(rng.integers(0, T))
            d = int(rng.integers(1, 5))
            for h in self.hosts:
                if h.rack == r:
                    self.brake[h.slots, s0 : s0 + d] = True
        # benign PSU asserting brake for a day, then swapped
        for _ in range(int(rng.integers(1, 3))):
            hi = int(rng.integers(0, self.H))
            s0 = int(rng.integers(0, max(1, T - 2 * day)))
            sl = self.hosts[hi].slots
            ep = rng.random((T,)) < 0.04
            ep[:s0] = False
            ep[s0 + int(rng.integers(day // 2, 2 * day)) :] = False
            self.brake[sl] |= ep[None, :]
        # benign single uncorrectable error, remapped, then healthy
        for s in rng.choice(
            healthy, size=min(len(healthy), int(rng.integers(2, 5))), replace=False
        ):
            e = int(rng.integers(1, T - 10))
            if not self.present[s, e]:
                continue
            self.add["dbe"][s, e] += 1
            self.add["remap_u"][s, e] += 1
            self.xid_ev[s, e] = 94 if self.s_hopper[s] else 48
            self.xid_ev[s, e + 1] = 63
            self.gpu_reset[s, e + int(rng.integers(2, 8))] = True
        # one-off GSP timeouts on healthy boards
        for s in rng.choice(
            healthy, size=min(len(healthy), int(rng.integers(2, 5))), replace=False
        ):
            e = int(rng.integers(1, T - 10))
            self.xid_ev[s, e] = 119
            self.gpu_reset[s, e + int(rng.integers(1, 6))] = True
        # proactive pulls of two noisy boards (not failures)
        noisy = [
            s
            for s in healthy
            if self.boards[self.slot_boards[s][0][1]]["sbe_rate"] > 0.05
            or self.boards[self.slot_boards[s][0][1]]["pcie_rate"] > 0.2
        ]
        rng.shuffle(noisy)
        for s in noisy[:2]:
            h = int(self.sh[s])
            free = np.nonzero(~self.blocked[h, 3 * day : T - 3 * day])[0]
            if len(free) == 0:
                continue
            d0 = 3 * day + int(rng.choice(free))
            d1 = d0 + int(rng.integers(6, 19))
            self.set_host_idle(h, d0 - 12, d1)
            self.node_down(h, d0, d1)
            self.set_host_burnin(h, d1, d1 + 72)
            self.blocked[h, d0 - 12 : d1 + 100] = True
            nb = self.new_board(s, d1, fresh=True)
            self.slot_boards[s].append((d1, nb))
            self.bidx[s, d1:] = nb
            self.board_install[s, d1] = True
            self.benign_pulls += 1

    # -------------------------------------------------------------- precursors
    def precursors(self) -> None:
        rng = self.rng
        for fl in self.failures:
            s, h, f = fl.slot, fl.host, fl.f
            a = max(0, fl.pv)
            n = f - a
            if n <= 0:
                fl.plan_prec = False
            x = np.clip((np.arange(a, f) - fl.pv) / max(1, f - fl.pv), 0, 1)
            st = float(np.exp(0.5 * rng.standard_normal()))
            hop = bool(self.s_hopper[s])
            sl = self.hosts[h].slots
            if fl.plan_prec and n > 0:
                if fl.mode == "hbm":
                    lam = st * (0.02 + 3.0 * x**2.5) * rng.gamma(0.6, 1 / 0.6, n)
                    self.add["sbe"][s, a:f] += rng.poisson(lam)
                    self.add["remap_c"][s, a:f] += rng.poisson(st * 0.004 * x)
                    if rng.random() < 0.7:
                        q = a + int(0.75 * n)
                        for _ in range(int(rng.integers(1, 3))):
                            e = int(rng.integers(q, f)) if f - q > 2 else f - 2
                            if e <= a or e >= f - 1:
                                continue
                            self.add["dbe"][s, e] += 1
                            self.add["remap_u"][s, e] += 1
                            self.xid_ev[s, e] = 94 if hop else 48
                            self.xid_ev[s, e + 1] = 63
                            r = e + int(rng.integers(1, 13))
                            if r < f:
                                self.gpu_reset[s, r] = True
                elif fl.mode == "pcie":
                    lam = st * (0.05 + 40.0 * x**3) * rng.gamma(0.4, 1 / 0.4, n)
                    self.add["pcie"][s, a:f] += rng.poisson(lam)
                elif fl.mode == "nvlink":
                    lam = st * (0.2 + 80.0 * x**2) * rng.gamma(0.5, 1 / 0.5, n)
                    flit = rng.poisson(lam)
                    self.add["nvl_flit"][s, a:f] += flit
                    self.add["nvl_data"][s, a:f] += rng.binomial(flit, 0.3)
                    self.add["nvl_replay"][s, a:f] += rng.binomial(flit, 0.6)
                    self.add["nvl_recov"][s, a:f] += rng.poisson(st * 0.05 * x**3)
                    if rng.random() < 0.5 and n > 10:
                        e = int(rng.integers(a + int(0.7 * n), f - 1))
                        self.xid_ev[s, e] = 74
                elif fl.mode == "thermal":
                    if fl.sub == "node_airflow":
                        amp = rng.uniform(6.0, 12.0)
                        self.inlet_x[h, a:f] += amp * x**1.2
                        self.rth_x[s, a:f] *= 1 + rng.uniform(0.15, 0.3) * x**1.5
                    else:
                        self.rth_x[s, a:f] *= 1 + min(0.8, rng.uniform(0.3, 0.55) * st) * x**1.5
                elif fl.mode == "power":
                    p = 0.003 + 0.12 * x**2
                    if fl.sub == "node_psu":
                        ep = rng.random(n) < (0.002 + 0.08 * x**2) * st
                        ep = ep | np.roll(ep, 1) & (rng.random(n) < 0.5)
                        self.brake[sl, a:f] |= ep[None, :]
                        self.jitter[s, a:f] = 0.01 * x
                    else:
                        ep = rng.random(n) < p * st
                        self.brake[s, a:f] |= ep
                        self.jitter[s, a:f] = st * 0.06 * x
                elif fl.mode == "other":
                    if fl.sub == "gsp":
                        for _ in range(int(rng.integers(1, 5))):
                            e = int(rng.integers(a, f - 1))
                            self.xid_ev[s, e] = 119
                            self.util[s, e : e + 2] = 0
                            r = e + int(rng.integers(1, 7))
                            if r < f:
                                self.gpu_reset[s, r] = True
                    elif fl.sub == "hang":
                        for _ in range(int(rng.integers(1, 6))):
                            e = int(rng.integers(a, f - 1))
                            d = int(rng.integers(2, 13))
                            e2 = min(e + d, f)
                            self.hang[s, e:e2] = True
                            if e2 < f:
                                self.gpu_reset[s, e2] = True
            # fatal signature at f
            if fl.mode == "hbm":
                self.add["dbe"][s, f] += int(rng.integers(1, 4))
                self.add["remap_u"][s, f] += 1
                self.add["sbe"][s, f] += int(rng.integers(0, 50))
                if rng.random() < 0.4:
                    fl.xid = 64
                    self.remap_fail[s, f:] = True
            elif fl.mode == "nvlink":
                self.add["nvl_recov"][s, f] += int(rng.integers(5, 21))
                self.add["nvl_flit"][s, f] += int(rng.integers(10, 500))
            elif fl.mode == "thermal" and fl.plan_prec and f - 1 >= a:
                # the last sample before shutdown: beyond HW slowdown
                self.rth_x[s, f - 1] *= 1.6
            elif fl.mode == "other" and fl.sub == "hang":
                self.hang[s, f : fl.zend] = True
            if fl.xid and fl.xid_visible:
                self.xid_ev[s, f] = fl.xid
            if fl.kind == "zombie":
                self.set_host_idle(h, f, fl.zend)
                if fl.sub == "hang":
                    self.hang[s, f : fl.zend] = True
                    self.fbfrac[s, f : fl.zend] = 0.8

    # ----------------------------------------------------------------- physics
    def physics(self) -> dict[str, np.ndarray]:
        rng = self.rng
        S, T = self.S, self.T
        p = self.p
        B = np.array  # alias
        bi = self.bidx
        battr = {
            k: B([b[k] for b in self.boards], dtype=float)
            for k in ["rth", "pw_eff", "idle_mult", "sbe_rate", "pcie_rate", "nvl_rate"]
        }
        hdown = self.down[self.sh]
        util = np.where(self.hang, 100.0, self.util)
        util = np.where(hdown, 0.0, util)
        idle_p = p["idle"] * battr["idle_mult"][bi]
        load = util / 100.0
        raw = idle_p + (p["cap"] - idle_p) * self.inten * load**0.85 * battr["pw_eff"][bi]
        capped = (raw >= p["cap"]) & ~self.hang
        noise = rng.standard_normal((S, T))
        P = np.where(
            capped, p["cap"] * (1 - 0.004 * np.abs(noise)), raw + noise * 0.01 * p["cap"] * load
        )
        is_idle = (util < 0.5) & ~self.hang
        P = np.where(is_idle, idle_p + noise, P)
        P = np.where(self.hang, idle_p * 1.35 + noise, P)
        del raw
        inlet = self.inlet[self.sh] + self.inlet_x[self.sh]
        rth = battr["rth"][bi] * self.rth_x
        Traw = inlet + p["off"] + p["R"] * P * rth + rng.normal(0, 0.6, (S, T))
        thr = Traw > p["tmax"]
        Pthr = np.maximum((p["tmax"] - inlet - p["off"]) / (p["R"] * rth), idle_p)
        P_emit = np.where(thr, np.minimum(P, Pthr), P)
        Temit = np.where(
            thr, p["tmax"] + 0.3 * (Traw - p["tmax"]) + rng.normal(0, 0.4, (S, T)), Traw
        )
        Temit = np.minimum(Temit, p["tshut"] - 0.6)  # at the shutdown threshold the board drops
        hw = Temit > p["tslow"]
        clkf = np.where(thr, np.clip((P_emit / np.maximum(P, 1.0)) ** 0.5, 0.3, 1.0), 1.0)
        clkf = np.where(hw, clkf * 0.8, clkf)
        thr_frac = np.where(thr, np.clip((Traw - p["tmax"]) / 3.0, 0.05, 1.0), 0.0)
        del Traw, Pthr
        # power brake
        brake = self.brake & ~is_idle
        bfac = rng.uniform(0.25, 0.5, (S, T))
        P_emit = np.where(brake, np.minimum(P_emit, p["cap"] * bfac), P_emit)
        clkf = np.where(brake, clkf * rng.uniform(0.4, 0.6, (S, T)), clkf)
        # power reading jitter from a degrading power stage (only visible under load)
        jit = self.jitter * p["cap"] * rng.standard_normal((S, T)) * (load > 0.2)
        P_emit = np.clip(P_emit + jit, idle_p * 0.8, p["cap"] * 1.1)
        P_emit = np.where(hdown, 0.0, P_emit)
        rthm = battr["rth"][bi] * (1 + 0.8 * (self.rth_x - 1))
        Tm = inlet + p["offm"] + p["Rm"] * P_emit * rthm + rng.normal(0, 0.5, (S, T))
        self.thermal_delta = (
            p["R"] * P * battr["rth"][bi] * (self.rth_x - 1) + self.inlet_x[self.sh]
        )
        # clocks
        sm = np.where(capped, p["sm_cap"] * (1 + 0.015 * rng.standard_normal((S, T))), p["sm_max"])
        sm = np.where(is_idle, p["sm_idle"], sm * clkf)
        sm = np.round(sm / 15.0) * 15.0
        memclk = np.where(is_idle, p["mem_clk_idle"], p["mem_clk"]) * np.ones((1, T))
        reasons = np.zeros((S, T), np.int64)
        reasons |= np.where(is_idle, 0x1, 0)
        reasons |= np.where(capped & ~thr & ~brake, 0x4, 0)
        reasons |= np.where(thr, 0x20, 0)
        reasons |= np.where(hw, 0x48, 0)
        reasons |= np.where(brake, 0x88, 0)
        # counters: increments per step
        ns = STEP * 1e9
        inc_energy = P_emit * STEP * 1000.0
        inc_vpow = np.where(capped & ~hdown, ns * rng.uniform(0.5, 1.0, (S, T)), 0.0)
        inc_vtherm = thr_frac * ns * ~hdown
        inc_vboard = np.where(brake, ns * rng.uniform(0.3, 1.0, (S, T)), 0.0)
        inc_vlow = np.where(is_idle & ~hdown, ns * rng.uniform(0.85, 1.0, (S, T)), 0.0)
        act = np.where(hdown, 0.0, 0.3 + 0.7 * load)
        inc_sbe = rng.poisson(battr["sbe_rate"][bi] * act) + self.add["sbe"]
        inc_pcie = rng.poisson(battr["pcie_rate"][bi] * act) + self.add["pcie"]
        boot = self.up_reset[self.sh] | self.board_install
        inc_pcie += np.where(boot & (rng.random((S, T)) < 0.3), rng.integers(1, 6, (S, T)), 0)
        nvl = battr["nvl_rate"][bi] * act * self.s_nvlink[:, None]
        flit = rng.poisson(nvl) + self.add["nvl_flit"]
        inc_data = rng.poisson(nvl * 0.2) + self.add["nvl_data"]
        inc_replay = rng.poisson(nvl * 0.5) + self.add["nvl_replay"]
        inc_recov = self.add["nvl_recov"]
        bw_rate = np.where(self.inten >= 1.0, rng.uniform(15e3, 90e3, (S, 1)), 2e3) * load
        inc_bw = bw_rate * STEP * self.s_nvlink[:, None]
        # initial offsets (counters since driver load before the window)
        up0 = self.uptime0[self.sh]
        b0 = self.bidx[:, 0]
        inc_energy[:, 0] += (
            up0 * (p["idle"][:, 0] + 0.5 * (p["cap"][:, 0] - p["idle"][:, 0])) * 1000
        )
        inc_vpow[:, 0] += up0 * 0.35 * 1e9
        inc_vlow[:, 0] += up0 * 0.2 * 1e9
        inc_sbe[:, 0] += rng.poisson(battr["sbe_rate"][b0] * up0 / STEP * 0.6)
        inc_pcie[:, 0] += rng.poisson(battr["pcie_rate"][b0] * up0 / STEP * 0.6)
        inc_bw[:, 0] += up0 * 1e3 * self.s_nvlink
        flit[:, 0] += rng.poisson(battr["nvl_rate"][b0] * up0 / STEP * 0.6)
        # resets
        drv_reset = boot.copy()
        vol_reset = drv_reset | self.gpu_reset
        out: dict[str, np.ndarray] = {}
        out["energy"] = reset_cumsum(inc_energy, drv_reset)
        out["v_pow"] = reset_cumsum(inc_vpow, drv_reset)
        out["v_therm"] = reset_cumsum(inc_vtherm, drv_reset)
        out["v_board"] = reset_cumsum(inc_vboard, drv_reset)
        out["v_low"] = reset_cumsum(inc_vlow, drv_reset)
        out["v_sync"] = np.zeros((S, T))
        out["v_rel"] = out["v_sync"]
        out["sbe_vol"] = reset_cumsum(inc_sbe.astype(float), vol_reset)
        out["dbe_vol"] = reset_cumsum(self.add["dbe"], vol_reset)
        out["pcie"] = reset_cumsum(inc_pcie.astype(float), vol_reset)
        out["nvl_flit"] = reset_cumsum(flit.astype(float), vol_reset)
        out["nvl_data"] = reset_cumsum(inc_data.astype(float), vol_reset)
        out["nvl_replay"] = reset_cumsum(inc_replay.astype(float), vol_reset)
        out["nvl_recov"] = reset_cumsum(inc_recov, vol_reset)
        out["nvl_bw"] = reset_cumsum(inc_bw, drv_reset)
        agg_reset = self.board_install
        for key, inc, k0 in [
            ("sbe_agg", inc_sbe.astype(float), "sbe0"),
            ("dbe_agg", self.add["dbe"], "dbe0"),
            ("remap_c", self.add["remap_c"], "rc0"),
            ("remap_u", self.add["remap_u"], "ru0"),
        ]:
            off = B([b[k0] for b in self.boards])
            inc2 = inc.copy()
            inc2[:, 0] += off[b0]
            inst_s, inst_t = np.nonzero(agg_reset)
            inc2[inst_s, inst_t] += off[self.bidx[inst_s, inst_t]]
            out[key] = reset_cumsum(inc2, agg_reset)
        out["remap_fail"] = self.remap_fail.astype(float)
        # gauges
        out["power"] = P_emit
        out["tgpu"] = np.round(Temit)
        out["tmem"] = np.round(Tm)
        out["sm"] = sm
        out["memclk"] = memclk
        out["reasons"] = reasons.astype(float)
        out["util"] = np.round(util)
        mcu = np.where(self.hang, 0.0, self.mcu)
        out["mcu"] = np.round(np.where(hdown, 0.0, mcu))
        out["enc"] = np.round(self.enc)
        out["dec"] = np.round(self.dec)
        fbu = np.round(np.where(hdown, 0.0, self.fbfrac) * (p["fb"] - p["res"]))
        out["fb_used"] = fbu
        out["fb_free"] = p["fb"] - p["res"] - fbu
        out["fb_res"] = p["res"] * np.ones((1, T))
        # thermal shutdown sample: last sample of a thermal failure with precursor
        for fl in self.failures:
            if fl.mode == "thermal" and fl.plan_prec and fl.f - 1 >= 0:
                s, k = fl.slot, fl.f - 1
                out["tgpu"][s, k] = max(out["tgpu"][s, k], p["tslow"][s, 0] + rng.integers(2, 6))
                out["reasons"][s, k] = float(int(out["reasons"][s, k]) | 0x68)
        # XID sticky value
        xid_reset = drv_reset | self.exp_restart[self.sh]
        ev = self.xid_ev.astype(np.int64)
        init = rng.random(S) < 0.06
        ev[init, 0] = np.where(ev[init, 0] > 0, ev[init, 0], rng.choice([13, 31, 43], init.sum()))
        out["xid"] = sticky(ev, xid_reset).astype(float)
        self.brake_eff = brake
        self.is_idle = is_idle
        return out

    # ------------------------------------------------------------------ truth
    def truth(self, arrays: dict[str, np.ndarray]) -> None:
        rep = self.rep
        for fl in self.failures:
            s, f = fl.slot, fl.f
            a = max(0, fl.pv)
            if not fl.plan_prec or f <= a:
                fl.prec = False
                continue
            r = slice(a, f)
            if fl.mode == "hbm":
                vis = (self.add["sbe"][s, r] > 0) | (self.add["remap_c"][s, r] > 0)
                vis |= self.add["dbe"][s, r] > 0
            elif fl.mode == "pcie":
                vis = self.add["pcie"][s, r] > 0
            elif fl.mode == "nvlink":
                vis = (self.add["nvl_flit"][s, r] > 0) | (self.add["nvl_recov"][s, r] > 0)
            elif fl.mode == "thermal":
                vis = self.thermal_delta[s, r] >= 1.0
            elif fl.mode == "power":
                vis = self.brake_eff[s, r] | ((self.jitter[s, r] >= 0.015) & (self.util[s, r] > 20))
            else:
                vis = self.hang[s, r] | np.isin(self.xid_ev[s, r], [119])
            # a precursor counter increment is visible at the first emitted sample at or after it
            vis_idx = np.nonzero(vis)[0]
            if len(vis_idx) == 0:
                fl.prec = False
                continue
            first = a + int(vis_idx[0])
            emitted = np.nonzero(rep[s, first:f])[0]
            if fl.mode in ("thermal", "power") or (fl.mode == "other" and fl.sub == "hang"):
                # gauges: visible only at emitted samples where the effect itself is present
                ok = np.nonzero(vis[first - a :] & rep[s, first:f])[0]
                emitted = ok
            if len(emitted) == 0:
                fl.prec = False
                continue
            k = first + int(emitted[0])
            fl.prec = True
            fl.prec_start = float(self.ts[k] + self.hosts[fl.host].offset)


def reset_cumsum(inc: np.ndarray, reset: np.ndarray) -> np.ndarray:
    """Cumulative sum along time that restarts (from the step's own increment) at reset steps."""
    cs = np.cumsum(inc, axis=1)
    r = reset.copy()
    r[:, 0] = True
    T = inc.shape[1]
    idx = np.where(r, np.arange(T)[None, :], 0)
    np.maximum.accumulate(idx, axis=1, out=idx)
    base = np.take_along_axis(cs - inc, idx, axis=1)
    return cs - base


def sticky(ev: np.ndarray, reset: np.ndarray) -> np.ndarray:
    """Last non-zero event value since the last reset (0 after a reset)."""
    mark = (ev > 0) | reset
    mark[:, 0] = True
    T = ev.shape[1]
    idx = np.where(mark, np.arange(T)[None, :], 0)
    np.maximum.accumulate(idx, axis=1, out=idx)
    return np.take_along_axis(ev, idx, axis=1)


# ---------------------------------------------------------------------- writing
def write_tsdb(
    sim: Sim, arrays: dict[str, np.ndarray], out: str, promtool: str, tmpdir: str
) -> int:
    T = sim.T
    rep = sim.rep
    xmask = rep | sim.xid_only
    nd = len(DRIVERS)
    drv_s = sim.driver[sim.sh].astype(np.int64)
    key = sim.bidx * nd + drv_s
    label_cache: dict[int, str] = {}

    def labels(k: int) -> str:
        v = label_cache.get(k)
        if v is None:
            b, d = divmod(k, nd)
            bd = sim.boards[b]
            s = bd["slot"]
            h = sim.hosts[sim.slot_host[s]]
            g = sim.slot_gpu[s]
            v = (
                f'{{gpu="{g}",UUID="{bd["uuid"]}",pci_bus_id="{sim.slot_bus[s]}",'
                f'device="nvidia{g}",modelName="{MODELS[h.model]["name"]}",'
                f'Hostname="{h.name}",DCGM_FI_DRIVER_VERSION="{DRIVERS[d]}",'
                f'instance="{h.name}:9400",job="dcgm-exporter"'
            )
            label_cache[k] = v
        return v

    support = {"nvlink": sim.s_nvlink, "memtemp": sim.s_memtemp}
    offs = np.array([h.offset for h in sim.hosts])
    win = (sim.ts // BLOCK).astype(np.int64)
    bounds = np.nonzero(np.diff(win))[0] + 1
    starts = np.concatenate([[0], bounds])
    ends = np.concatenate([bounds, [T]])
    nwin = len(starts)
    samples = 0
    inflight: list[tuple[subprocess.Popen[bytes], str]] = []
    t0 = time.time()
    for wi, (w0, w1) in enumerate(zip(starts.tolist(), ends.tolist(), strict=True)):
        nw = w1 - w0
        ts_w = sim.ts[w0:w1]
        # per-host time strings
        tstr = [[f" {t + o:.3f}\n" for t in ts_w.tolist()] for o in offs.tolist()]
        m = rep[:, w0:w1]
        rows, cols = np.nonzero(m)
        hosts_r = sim.sh[rows]
        suf = [tstr[h][c] for h, c in zip(hosts_r.tolist(), cols.tolist(), strict=True)]
        keys = key[:, w0:w1][rows, cols].tolist()
        lab = [labels(k) + "} " for k in keys]
        parts: list[str] = []
        for name, k, is_int, sup in FAMILIES:
            vals = arrays[k][:, w0:w1][rows, cols]
            if is_int:
                vs = [str(v) for v in np.rint(vals).astype(np.int64).tolist()]
            else:
                vs = [f"{v:.3f}" for v in vals.tolist()]
            if sup is not None:
                sel = support[sup][rows]
                idx = np.nonzero(sel)[0].tolist()
                body = "".join([name + lab[i] + vs[i] + suf[i] for i in idx])
                n_lines = len(idx)
            else:
                body = "".join([name + a + v + s for a, v, s in zip(lab, vs, suf, strict=True)])
                n_lines = len(vs)
            if n_lines:
                parts.append(f"# TYPE {name} gauge\n")
                parts.append(body)
                samples += n_lines
        # XID gauge with err_code / err_msg
        xm = xmask[:, w0:w1]
        xr, xc = np.nonzero(xm)
        if len(xr):
            xv = np.rint(arrays["xid"][:, w0:w1][xr, xc]).astype(np.int64)
            xk = key[:, w0:w1][xr, xc] * 256 + xv
            order = np.argsort(xk, kind="stable")
            xr, xc, xv, xk = xr[order], xc[order], xv[order], xk[order]
            lines = []
            for r_, c_, v_, k_ in zip(
                xr.tolist(), xc.tolist(), xv.tolist(), (xk // 256).tolist(), strict=True
            ):
                msg = XID_TEXT.get(v_, "Unknown Error")
                lines.append(
                    f'{XID_FAMILY}{labels(k_)},err_code="{v_}",err_msg="{msg}"}} {v_}'
                    + tstr[int(sim.sh[r_])][c_]
                )
            parts.append(f"# TYPE {XID_FAMILY} gauge\n")
            parts.append("".join(lines))
            samples += len(lines)
        parts.append("# EOF\n")
        fname = os.path.join(tmpdir, f"w{wi:05d}.om")
        with open(fname, "w", encoding="utf-8") as fh:
            fh.write("".join(parts))
        del parts
        # promtool is single-threaded and slower than the text generation: keep two imports in
        # flight (each writes its own block directory) while the next window is generated.
        while len(inflight) >= PARALLEL_IMPORTS:
            _finish(*inflight.pop(0))
        proc = subprocess.Popen(
            [promtool, "tsdb", "create-blocks-from", "openmetrics", "-q", fname, out],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        inflight.append((proc, fname))
        if wi % max(1, nwin // 10) == 0 or wi == nwin - 1:
            el = time.time() - t0
            log(f"window {wi + 1}/{nwin} ({nw} steps) samples so far {samples:,} [{el:.0f}s]")
    while inflight:
        _finish(*inflight.pop(0))
    return samples


def _finish(proc: subprocess.Popen[bytes], fname: str) -> None:
    _, err = proc.communicate()
    if proc.returncode != 0:
        msg = err.decode(errors="replace").strip().splitlines()
        raise RuntimeError(f"promtool failed on {fname}: {msg[-1] if msg else proc.returncode}")
    os.remove(fname)


# ------------------------------------------------------------------------- main
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="cloud_fleet.py",
        description=(
            "Blind GPU-cloud fleet generator for EVALUATING a failure-prediction scorer. "
            "Simulates dcgm-exporter series scraped every 10 min and writes DIR/prometheus "
            "(TSDB via promtool), DIR/failures.csv and DIR/truth.json. Never train or tune on it."
        ),
    )
    ap.add_argument(
        "--seed", type=int, required=True, metavar="N", help="random seed (deterministic output)"
    )
    ap.add_argument(
        "--out", required=True, metavar="DIR", help="output directory (must be empty or absent)"
    )
    ap.add_argument(
        "--end",
        type=int,
        default=DEFAULT_END,
        metavar="EPOCH",
        help=f"end epoch seconds, exclusive (default {DEFAULT_END})",
    )
    ap.add_argument(
        "--days",
        type=float,
        default=45.0,
        metavar="D",
        help="days simulated before --end (default 45)",
    )
    ap.add_argument(
        "--promtool",
        default="/usr/bin/promtool",
        metavar="PATH",
        help="promtool binary (default /usr/bin/promtool)",
    )
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    promtool = args.promtool
    if os.sep not in promtool:
        promtool = shutil.which(promtool) or promtool
    if not (os.path.isfile(promtool) and os.access(promtool, os.X_OK)):
        print(f"error: promtool not found or not executable: {args.promtool}", file=sys.stderr)
        return 2
    if os.path.exists(args.out) and (not os.path.isdir(args.out) or os.listdir(args.out)):
        print(f"error: output directory is not empty: {args.out}", file=sys.stderr)
        return 2
    if args.days <= 0 or args.days > 400:
        print("error: --days must be in (0, 400]", file=sys.stderr)
        return 2
    t_start = time.time()
    steps = round(args.days * 86400 / STEP)
    start = int(args.end) - steps * STEP
    os.makedirs(args.out, exist_ok=True)
    prom_dir = os.path.join(args.out, "prometheus")
    os.makedirs(prom_dir)
    # per-window OpenMetrics files (~20 MB each, at most three at a time) go to RAM if possible
    shm = "/dev/shm"
    use_shm = os.path.isdir(shm) and os.access(shm, os.W_OK) and shutil.disk_usage(shm).free > 2**28
    tmpdir = tempfile.mkdtemp(prefix="cloud_fleet-", dir=shm if use_shm else args.out)

    sim = Sim(args.seed, start, steps)
    log(f"seed {args.seed}: {args.days:g} days, {steps} steps from {start} to {args.end}")
    sim.build_fleet()
    sim.host_arrays()
    sim.workloads()
    sim.operations()
    sim.place_failures()
    sim.board_index()
    sim.benign()
    sim.precursors()
    log(f"fleet: {sim.H} hosts, {sim.S} slots, {len(sim.boards)} boards, "
        f"{len(sim.failures)} failures; computing metrics")  # fmt: skip
    arrays = sim.physics()
    sim.rep = sim.present & ~sim.down[sim.sh] & sim.scrape_ok[sim.sh]
    sim.truth(arrays)
    t_sim = time.time() - t_start
    log(f"simulation done in {t_sim:.1f}s; writing TSDB")
    try:
        samples = write_tsdb(sim, arrays, prom_dir, promtool, tmpdir)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    del arrays

    fails = sorted(sim.failures, key=lambda x: x.t_fail)
    with open(os.path.join(args.out, "failures.csv"), "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["uuid", "time", "mode", "precursor", "precursor_start"])
        for fl in fails:
            ps = "" if fl.prec_start is None else f"{fl.prec_start:.3f}"
            w.writerow(
                [
                    sim.boards[fl.board]["uuid"],
                    f"{fl.t_fail:.3f}",
                    fl.mode,
                    "true" if fl.prec else "false",
                    ps,
                ]
            )
    by_mode = {m: sum(1 for fl in fails if fl.mode == m) for m in MODES}
    prec_mode = {m: sum(1 for fl in fails if fl.mode == m and fl.prec) for m in MODES}
    leads = np.array([(fl.t_fail - fl.prec_start) / 3600 for fl in fails if fl.prec_start])
    q = [0.1, 0.25, 0.5, 0.75, 0.9]
    lead_q = {str(k): round(float(np.quantile(leads, k)), 2) for k in q} if len(leads) else {}
    models: dict[str, int] = {}
    for b in sim.boards:
        nm = MODELS[sim.smodel[b["slot"]]]["name"]
        models[nm] = models.get(nm, 0) + 1
    wall = time.time() - t_start
    peak_kb = max(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
    )
    truth = {
        "generator": GENERATOR,
        "seed": args.seed,
        "start": start,
        "end": int(args.end),
        "days": args.days,
        "step_seconds": STEP,
        "counts": {
            "hosts": sim.H,
            "vm_hosts": sum(1 for h in sim.hosts if h.vm),
            "slots": sim.S,
            "boards": len(sim.boards),
            "boards_by_model": models,
            "failures": len(fails),
            "failures_by_mode": by_mode,
            "precursors_by_mode": prec_mode,
            "precursor_share": round(sum(prec_mode.values()) / max(1, len(fails)), 3),
            "infant_failures": sum(1 for fl in fails if fl.infant),
            "benign_proactive_replacements": sim.benign_pulls,
            "lead_time_hours_quantiles": lead_q,
        },
        "samples_written": samples,
        "timing": {
            "simulation_seconds": round(t_sim, 1),
            "wall_seconds": round(wall, 1),
            "peak_rss_mib": round(peak_kb / 1024, 1),
        },
        "design_choices": DESIGN_CHOICES,
    }
    with open(os.path.join(args.out, "truth.json"), "w", encoding="utf-8") as fh:
        json.dump(truth, fh, indent=2)
    log(
        f"done: {samples:,} samples, {len(fails)} failures, {wall:.0f}s, "
        f"peak {peak_kb / 1024:.0f} MiB"
    )
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        sys.exit(130)
    except (RuntimeError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
