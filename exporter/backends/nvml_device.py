"""What the NVML backend keeps per GPU, and the GPM metrics its poller reads."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gpu_health.telemetry.readings import GpuIdentity

#: NVML reports PCIe throughput in KB/s (1024 bytes, as its other byte counters).
KIB = 1024.0
MIB = 1024.0 * 1024.0
#: GPM metrics read by the poller: (our name, pynvml constant). Values are 0-100 % or MiB/s.
GPM_METRICS = (
    ("graphics_engine_active", "NVML_GPM_METRIC_GRAPHICS_UTIL"),
    ("sm_active", "NVML_GPM_METRIC_SM_UTIL"),
    ("sm_occupancy", "NVML_GPM_METRIC_SM_OCCUPANCY"),
    ("tensor_active", "NVML_GPM_METRIC_ANY_TENSOR_UTIL"),
    ("dram_active", "NVML_GPM_METRIC_DRAM_BW_UTIL"),
    ("pcie_tx", "NVML_GPM_METRIC_PCIE_TX_PER_SEC"),
    ("pcie_rx", "NVML_GPM_METRIC_PCIE_RX_PER_SEC"),
)
GPM_RATIOS = {name for name, _ in GPM_METRICS if not name.startswith("pcie_")}


@dataclass
class Cache:
    """Values of one poll group for one GPU, with the time they were read."""

    read_at: float
    values: dict[Any, Any]


@dataclass
class Device:
    """One GPU as the NVML backend tracks it: handle, discovered gaps, caches, XID events."""

    identity: GpuIdentity
    handle: Any
    unsupported: set[str] = field(default_factory=set)
    caches: dict[str, Cache] = field(default_factory=dict)
    xid_counts: dict[int, int] = field(default_factory=dict)
    last_xid: float | None = None
    nvlinks: tuple[int, ...] = ()
    lost: bool = False
    #: GPM (Hopper+) supported: profiling ratios and cheap PCIe throughput come from it
    gpm: bool = False
    gpm_sample: Any = None
