"""Per-model limits and operating envelopes of the simulated GPUs.

H100 SXM numbers are measured (tests/fixtures/h100: limits from NVML, the load trace for idle and
full-load power, temperatures and clocks). Other models are scaled from datasheet TDPs and clocks;
their thermal limits are typical ``nvidia-smi -q`` readings and are marked as assumptions in
docs/simulator.md.
"""

from __future__ import annotations

from dataclasses import dataclass

GIB = 1024**3
MHZ = 1_000_000.0


@dataclass(frozen=True)
class ModelSpec:
    """What differs between GPU models, in base units."""

    key: str
    name: str
    tdp_watts: float
    idle_watts: float
    memory_total_bytes: int
    max_sm_clock_hertz: float
    idle_sm_clock_hertz: float
    #: SM clock while the board sits at its power cap (H100 trace: 1335-1365 of 1980 MHz)
    capped_sm_clock_ratio: float
    memory_clock_hertz: float
    slowdown_temp: float
    shutdown_temp: float
    gpu_max_operating_temp: float
    memory_max_temp: float | None
    #: GPU temperature at idle power and at TDP in a healthy chassis (°C)
    idle_temp: float
    load_temp: float
    idle_mem_temp: float | None
    load_mem_temp: float | None
    pcie_generation: int
    pcie_width: int
    nvlink_count: int
    has_fan: bool
    hbm: bool
    reserved_bytes: int
    #: share of the default fleet
    share: float
    #: purchase dates are drawn between these (ISO dates)
    bought_from: str
    bought_to: str


MODELS: dict[str, ModelSpec] = {
    "h100": ModelSpec(
        key="h100",
        name="NVIDIA H100 80GB HBM3",
        tdp_watts=700.0,
        idle_watts=72.5,
        memory_total_bytes=80 * GIB,
        max_sm_clock_hertz=1980 * MHZ,
        idle_sm_clock_hertz=345 * MHZ,
        capped_sm_clock_ratio=0.68,
        memory_clock_hertz=2619 * MHZ,
        slowdown_temp=89.0,
        shutdown_temp=95.0,
        gpu_max_operating_temp=87.0,
        memory_max_temp=95.0,
        idle_temp=37.0,
        load_temp=71.0,
        idle_mem_temp=40.0,
        load_mem_temp=67.0,
        pcie_generation=5,
        pcie_width=16,
        nvlink_count=18,
        has_fan=False,
        hbm=True,
        reserved_bytes=591 * 1024 * 1024,
        share=0.55,
        bought_from="2023-03-01",
        bought_to="2025-06-30",
    ),
    "a100": ModelSpec(
        key="a100",
        name="NVIDIA A100-SXM4-80GB",
        tdp_watts=400.0,
        idle_watts=58.0,
        memory_total_bytes=80 * GIB,
        max_sm_clock_hertz=1410 * MHZ,
        idle_sm_clock_hertz=210 * MHZ,
        capped_sm_clock_ratio=0.85,
        memory_clock_hertz=1593 * MHZ,
        slowdown_temp=89.0,
        shutdown_temp=92.0,
        gpu_max_operating_temp=85.0,
        memory_max_temp=95.0,
        idle_temp=34.0,
        load_temp=66.0,
        idle_mem_temp=38.0,
        load_mem_temp=70.0,
        pcie_generation=4,
        pcie_width=16,
        nvlink_count=12,
        has_fan=False,
        hbm=True,
        reserved_bytes=521 * 1024 * 1024,
        share=0.25,
        bought_from="2021-06-01",
        bought_to="2023-06-30",
    ),
    "h200": ModelSpec(
        key="h200",
        name="NVIDIA H200",
        tdp_watts=700.0,
        idle_watts=76.0,
        memory_total_bytes=141 * GIB,
        max_sm_clock_hertz=1980 * MHZ,
        idle_sm_clock_hertz=345 * MHZ,
        capped_sm_clock_ratio=0.70,
        memory_clock_hertz=3201 * MHZ,
        slowdown_temp=89.0,
        shutdown_temp=95.0,
        gpu_max_operating_temp=87.0,
        memory_max_temp=95.0,
        idle_temp=37.0,
        load_temp=70.0,
        idle_mem_temp=41.0,
        load_mem_temp=69.0,
        pcie_generation=5,
        pcie_width=16,
        nvlink_count=18,
        has_fan=False,
        hbm=True,
        reserved_bytes=651 * 1024 * 1024,
        share=0.10,
        bought_from="2024-09-01",
        bought_to="2026-03-31",
    ),
    "l40s": ModelSpec(
        key="l40s",
        name="NVIDIA L40S",
        tdp_watts=350.0,
        idle_watts=35.0,
        memory_total_bytes=48 * GIB,
        max_sm_clock_hertz=2520 * MHZ,
        idle_sm_clock_hertz=210 * MHZ,
        capped_sm_clock_ratio=0.80,
        memory_clock_hertz=9001 * MHZ,
        slowdown_temp=91.0,
        shutdown_temp=94.0,
        gpu_max_operating_temp=89.0,
        memory_max_temp=None,
        idle_temp=32.0,
        load_temp=74.0,
        idle_mem_temp=None,
        load_mem_temp=None,
        pcie_generation=4,
        pcie_width=16,
        nvlink_count=0,
        has_fan=True,
        hbm=False,
        reserved_bytes=433 * 1024 * 1024,
        share=0.10,
        bought_from="2024-01-01",
        bought_to="2025-12-31",
    ),
}

#: Model keys in a fixed order (node assignment iterates this).
MODEL_ORDER: tuple[str, ...] = ("h100", "a100", "h200", "l40s")
