"""The NVML backend on a real H200's readings, idle and at full load (``tests/fixtures/h200/``).

The H100 fixture was recorded by hand and lacks two answers the driver gives on Hopper: the
version-2 memory call (driver-reserved memory apart from "used") and GPM. The H200 fixtures were
recorded by ``gpu_health.exporter.nvml_recorder`` on the board itself, so the fake answers both,
and these tests hold the backend to what that board reported: memory "used" as nvidia-smi shows
it (0 MiB idle), the GPM profiling ratios under a bf16 matmul, the power cap reason at 700 W, and
a healthy score at the cap.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from gpu_health.exporter.backends.nvml import NvmlBackend
from gpu_health.exporter.fake_nvml import FakeNvml
from gpu_health.health.model import score_sample
from gpu_health.health.policy import load_default_policy
from gpu_health.telemetry.readings import GpuIdentity, GpuSample

FIXTURES = Path(__file__).parent.parent / "fixtures" / "h200"
IDLE, LOAD = FIXTURES / "nvml_h200.json", FIXTURES / "nvml_h200_load.json"


def sample_after_gpm(path: Path) -> tuple[FakeNvml, GpuIdentity, GpuSample]:
    """The backend's sample once its poller has two GPM samples (the first window)."""
    fake = FakeNvml.from_file(path)
    backend = NvmlBackend(nvml=fake, poll_interval=0.05, watch_events=False)
    try:
        (gpu,) = backend.inventory()
        deadline = time.monotonic() + 5
        while (sample := backend.sample(gpu)).sm_active_ratio is None:
            assert time.monotonic() < deadline, "GPM metrics never appeared"
            time.sleep(0.02)
    finally:
        backend.close()
    return fake, gpu, sample


def recorded(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


@pytest.mark.parametrize("path", [IDLE, LOAD], ids=["idle", "load"])
def test_memory_used_is_the_drivers_v2_used_with_the_reservation_apart(path: Path) -> None:
    calls = recorded(path)["calls"]
    _, _, sample = sample_after_gpm(path)
    v2 = calls["nvmlDeviceGetMemoryInfo_v2"]
    assert sample.memory_used_bytes == v2["used"]
    assert sample.memory_reserved_bytes == v2["reserved"] > 0
    # the version-1 answer counts the reservation as used: on an idle board that is 615 MiB
    assert calls["nvmlDeviceGetMemoryInfo"]["used"] == v2["used"] + v2["reserved"]


@pytest.mark.parametrize("path", [IDLE, LOAD], ids=["idle", "load"])
def test_profiling_ratios_come_from_gpm_and_the_legacy_pcie_call_is_never_made(
    path: Path,
) -> None:
    gpm = recorded(path)["gpm"]
    fake, _, sample = sample_after_gpm(path)
    assert sample.sm_active_ratio == gpm["SM_UTIL"]["value"] / 100
    assert sample.tensor_active_ratio == gpm["ANY_TENSOR_UTIL"]["value"] / 100
    assert sample.dram_active_ratio == gpm["DRAM_BW_UTIL"]["value"] / 100
    assert sample.pcie_rx_bytes_per_second == gpm["PCIE_RX_PER_SEC"]["value"] * 2**20
    assert "nvmlDeviceGetPcieThroughput" not in fake.calls  # 21 ms per direction on this board


def test_at_full_load_the_board_sits_at_its_power_cap_and_scores_healthy() -> None:
    calls = recorded(LOAD)["calls"]
    _, gpu, sample = sample_after_gpm(LOAD)
    assert sample.tensor_active_ratio is not None and sample.tensor_active_ratio > 0.9
    assert sample.power_watts == calls["nvmlDeviceGetPowerUsage"] / 1000 > 690
    assert sample.power_limit_watts == 700
    assert sample.clock_event_reasons == 0x4  # SW power cap, nothing thermal
    result = score_sample(gpu, sample, load_default_policy())
    assert result.grade == "excellent" and result.overall >= 90, result


def test_idle_board_scores_perfect_and_unsupported_readings_are_absent() -> None:
    _, gpu, sample = sample_after_gpm(IDLE)
    assert gpu.model == "NVIDIA H200" and gpu.memory_total_bytes == 150754820096
    assert sample.fan_speed_ratio is None and sample.retired_pages_single_bit is None
    assert sample.nvlink_errors == {}
    result = score_sample(gpu, sample, load_default_policy())
    assert result.overall == 100 and result.penalties == []
