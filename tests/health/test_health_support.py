"""Builders shared by the health-model tests: real H100 readings and backend-shaped samples.

No tests live here; the samples are shaped like what each backend produces (NVML on an H100 SXM
with fan, NVLink and retired pages unsupported; a PCIe L40S with a fan; DCGM with violation
counters and NVLink counters), so the model is exercised on every shape it will meet.
"""

from __future__ import annotations

import csv
import json
from functools import cache
from pathlib import Path
from typing import Any

from gpu_health.telemetry.readings import GpuIdentity, GpuSample

FIXTURES = Path(__file__).parent.parent / "fixtures" / "h100"


@cache
def nvml_calls() -> dict[str, Any]:
    data = json.loads((FIXTURES / "nvml_h100.json").read_text())
    calls: dict[str, Any] = data["calls"]
    return calls


def h100_identity() -> GpuIdentity:
    """The H100's identity with the limits NVML reported for it."""
    c = nvml_calls()
    return GpuIdentity(
        index=0,
        uuid=c["nvmlDeviceGetUUID"],
        model=c["nvmlDeviceGetName"],
        pci_bus_id=c["nvmlDeviceGetPciInfo"]["busId"],
        slowdown_temp_celsius=c["NVML_TEMPERATURE_THRESHOLD_SLOWDOWN"],
        shutdown_temp_celsius=c["NVML_TEMPERATURE_THRESHOLD_SHUTDOWN"],
        memory_max_temp_celsius=c["NVML_TEMPERATURE_THRESHOLD_MEM_MAX"],
        gpu_max_operating_temp_celsius=c["NVML_TEMPERATURE_THRESHOLD_GPU_MAX"],
        power_limit_default_watts=c["nvmlDeviceGetPowerManagementDefaultLimit"] / 1000,
        max_sm_clock_hertz=c["maxclock_sm"] * 1e6,
        max_memory_clock_hertz=c["maxclock_mem"] * 1e6,
        pcie_max_generation=c["nvmlDeviceGetMaxPcieLinkGeneration"],
        pcie_max_width=c["nvmlDeviceGetMaxPcieLinkWidth"],
    )


def h100_sample(row: dict[str, str] | None = None, power_column: str = "power_w") -> GpuSample:
    """An NVML-shaped H100 sample: the fixture's counters plus one trace row's live readings."""
    c = nvml_calls()
    correctable, uncorrectable, pending, failure = c["nvmlDeviceGetRemappedRows"]
    sample = GpuSample(
        timestamp=0.0,
        temperature_gpu_celsius=c["temp_gpu"],
        power_watts=c["nvmlDeviceGetPowerUsage"] / 1000,
        power_limit_watts=c["nvmlDeviceGetEnforcedPowerLimit"] / 1000,
        sm_clock_hertz=c["clock_sm"] * 1e6,
        memory_clock_hertz=c["clock_mem"] * 1e6,
        performance_state=c["nvmlDeviceGetPerformanceState"],
        clock_event_reasons=c["nvmlDeviceGetCurrentClocksEventReasons"],
        utilization_gpu_ratio=c["nvmlDeviceGetUtilizationRates"]["gpu"] / 100,
        ecc_corrected_volatile=c["ecc_corrected_volatile"],
        ecc_uncorrected_volatile=c["ecc_uncorrected_volatile"],
        ecc_corrected_aggregate=c["ecc_corrected_aggregate"],
        ecc_uncorrected_aggregate=c["ecc_uncorrected_aggregate"],
        remapped_rows_correctable=correctable,
        remapped_rows_uncorrectable=uncorrectable,
        row_remap_pending=bool(pending),
        row_remap_failed=bool(failure),
        retired_pages_single_bit=c["retired_pages_sbe"],  # None: not supported on H100
        retired_pages_double_bit=c["retired_pages_dbe"],
        retired_pages_pending=None,
        fan_speed_ratio=None,  # nvmlDeviceGetFanSpeed: Not Supported
        pcie_replays=c["nvmlDeviceGetPcieReplayCounter"],
        pcie_link_generation=c["nvmlDeviceGetCurrPcieLinkGeneration"],
        pcie_link_width=c["nvmlDeviceGetCurrPcieLinkWidth"],
        clock_event_seconds={
            "power": 0.0,
            "thermal": 0.0,
            "sync_boost": 0.0,
            "board_limit": 0.0,
            "low_utilization": 26.922787008,
            "reliability": 0.0,
        },
    )
    if row is not None:
        sample.timestamp = float(row["t"])
        sample.temperature_gpu_celsius = float(row["gpu_temp_c"])
        sample.temperature_memory_celsius = float(row["mem_temp_c"])
        sample.power_watts = float(row[power_column])
        sample.sm_clock_hertz = float(row["sm_clock_mhz"]) * 1e6
        sample.memory_clock_hertz = float(row["mem_clock_mhz"]) * 1e6
        sample.utilization_gpu_ratio = float(row["util_gpu_pct"]) / 100
        sample.utilization_memory_ratio = float(row["util_mem_pct"]) / 100
        sample.memory_used_bytes = int(float(row["mem_used_mib"]) * 2**20)
        sample.clock_event_reasons = int(row["clock_event_reasons"])
        sample.performance_state = int(row["pstate"])
    return sample


@cache
def trace_rows() -> tuple[dict[str, str], ...]:
    with (FIXTURES / "h100_load_trace.csv").open() as handle:
        return tuple(csv.DictReader(handle))


def l40s_identity() -> GpuIdentity:
    """A PCIe L40S as the NVML backend would see it (limits not read: policy defaults apply)."""
    return GpuIdentity(index=1, uuid="GPU-l40s-0001", model="NVIDIA L40S", pcie_max_width=16)


def l40s_sample(timestamp: float = 0.0) -> GpuSample:
    """A loaded PCIe L40S with a fan, GDDR6 (no HBM sensor), no NVLink, no row remapping."""
    return GpuSample(
        timestamp=timestamp,
        temperature_gpu_celsius=66.0,
        fan_speed_ratio=0.72,
        power_watts=340.0,
        power_limit_watts=350.0,
        sm_clock_hertz=2_385e6,
        utilization_gpu_ratio=0.97,
        clock_event_reasons=0x4,
        ecc_corrected_volatile=0,
        ecc_uncorrected_volatile=0,
        pcie_replays=3,
        pcie_link_generation=4,
        pcie_link_width=16,
    )


def dcgm_identity() -> GpuIdentity:
    """An A100 SXM as the DCGM backend reports it (no temperature thresholds)."""
    return GpuIdentity(
        index=2, uuid="GPU-a100-0002", model="NVIDIA A100-SXM4-80GB", nvlink_count=12
    )


def dcgm_sample(timestamp: float = 0.0) -> GpuSample:
    """DCGM-shaped: violation counters in seconds, NVLink counters, XIDs, no bitmask."""
    return GpuSample(
        timestamp=timestamp,
        temperature_gpu_celsius=58.0,
        temperature_memory_celsius=61.0,
        power_watts=390.0,
        power_limit_watts=400.0,
        sm_clock_hertz=1_410e6,
        utilization_gpu_ratio=0.99,
        clock_event_seconds={"power": 120.0, "thermal": 0.0, "board_limit": 0.0},
        ecc_corrected_volatile=2,
        ecc_uncorrected_volatile=0,
        remapped_rows_correctable=1,
        remapped_rows_uncorrectable=0,
        row_remap_pending=False,
        row_remap_failed=False,
        pcie_replays=0,
        nvlink_errors={(0, "crc_flit"): 10, (0, "replay"): 0, (1, "recovery"): 0},
        xid_counts={},
    )


def sim_identity() -> GpuIdentity:
    """A simulated H200 with every limit filled in, as the simulator provides."""
    return GpuIdentity(
        index=3,
        uuid="GPU-sim-0003",
        model="NVIDIA H200",
        slowdown_temp_celsius=89,
        shutdown_temp_celsius=95,
        memory_max_temp_celsius=95,
        power_limit_default_watts=700,
        max_sm_clock_hertz=1980e6,
        pcie_max_generation=5,
        pcie_max_width=16,
    )


def sim_sample(timestamp: float = 0.0) -> GpuSample:
    return GpuSample(
        timestamp=timestamp,
        temperature_gpu_celsius=64.0,
        temperature_memory_celsius=60.0,
        power_watts=650.0,
        power_limit_watts=700.0,
        sm_clock_hertz=1_830e6,
        utilization_gpu_ratio=0.9,
        clock_event_reasons=0x4,
        ecc_corrected_volatile=0,
        ecc_uncorrected_volatile=0,
        remapped_rows_correctable=0,
        remapped_rows_uncorrectable=0,
        row_remap_pending=False,
        row_remap_failed=False,
        pcie_replays=0,
        pcie_link_generation=5,
        pcie_link_width=16,
        xid_counts={},
    )
