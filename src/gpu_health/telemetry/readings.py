"""The data every backend produces: one identity per GPU, then samples.

This is the contract between the backends (nvml, dcgm, replay, sim), the health model and the
exposition. A field is ``None`` when the board does not support it or the backend could not read
it; ``None`` is never rendered as 0 — the series is simply absent (dcgm-exporter exports 0 for
unsupported fields, which makes "no fan" look like "fan stopped").

Units are the base units Prometheus names use (bytes, hertz, watts, joules, seconds, ratios in
[0, 1]); backends convert at the edge so nothing downstream has to know NVML's mW or MiB.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: Names of clock-event (throttle) reasons, keyed by NVML's ``nvmlClocksEventReason*`` bit.
#: Source: nvml.h ``nvmlClocksEventReasons`` (NVML API reference, "Clocks Event Reasons").
CLOCK_EVENT_REASONS: dict[int, str] = {
    0x1: "gpu_idle",
    0x2: "applications_clocks_setting",
    0x4: "sw_power_cap",
    0x8: "hw_slowdown",
    0x10: "sync_boost",
    0x20: "sw_thermal_slowdown",
    0x40: "hw_thermal_slowdown",
    0x80: "hw_power_brake_slowdown",
    0x100: "display_clock_setting",
}

#: Violation-time counters NVML keeps per policy (``nvmlDeviceGetViolationStatus``), by our name.
VIOLATION_POLICIES: tuple[str, ...] = (
    "power",
    "thermal",
    "sync_boost",
    "board_limit",
    "low_utilization",
    "reliability",
)

#: NVLink error counter kinds (``NVML_FI_DEV_NVLINK_*_ERROR_COUNT_*``).
NVLINK_ERROR_TYPES: tuple[str, ...] = ("crc_flit", "crc_data", "replay", "recovery")


def reasons_from_bitmask(mask: int) -> dict[str, bool]:
    """Expand a clock-event bitmask into one flag per known reason."""
    return {name: bool(mask & bit) for bit, name in CLOCK_EVENT_REASONS.items()}


@dataclass(frozen=True)
class GpuIdentity:
    """What is fixed for the life of the process: read once at inventory time."""

    index: int
    uuid: str
    model: str
    pci_bus_id: str = ""
    node: str = ""
    serial: str | None = None
    vbios_version: str | None = None
    driver_version: str | None = None
    cuda_driver_version: str | None = None
    memory_total_bytes: int | None = None
    # Limits read from the device where it gives them (None: use the model's defaults).
    slowdown_temp_celsius: float | None = None
    shutdown_temp_celsius: float | None = None
    memory_max_temp_celsius: float | None = None
    gpu_max_operating_temp_celsius: float | None = None
    power_limit_default_watts: float | None = None
    max_sm_clock_hertz: float | None = None
    max_memory_clock_hertz: float | None = None
    pcie_max_generation: int | None = None
    pcie_max_width: int | None = None
    nvlink_count: int = 0

    def labels(self) -> dict[str, str]:
        """The identity labels stamped on every per-GPU series (kept short on purpose)."""
        return {
            "node": self.node,
            "gpu": str(self.index),
            "uuid": self.uuid,
            "pci_bus_id": self.pci_bus_id,
            "model": self.model,
        }


@dataclass
class GpuSample:
    """One reading of one GPU. Every field is optional: None means absent, never zero."""

    timestamp: float
    up: bool = True
    # thermal
    temperature_gpu_celsius: float | None = None
    temperature_memory_celsius: float | None = None
    fan_speed_ratio: float | None = None
    # power
    power_watts: float | None = None
    power_limit_watts: float | None = None
    energy_joules: float | None = None
    # clocks and performance
    sm_clock_hertz: float | None = None
    memory_clock_hertz: float | None = None
    performance_state: int | None = None
    clock_event_reasons: int | None = None
    #: cumulative throttle time per policy in seconds (keys from VIOLATION_POLICIES)
    clock_event_seconds: dict[str, float] = field(default_factory=dict)
    # utilisation (0..1)
    utilization_gpu_ratio: float | None = None
    utilization_memory_ratio: float | None = None
    utilization_encoder_ratio: float | None = None
    utilization_decoder_ratio: float | None = None
    # profiling (GPM / DCP), 0..1
    graphics_engine_active_ratio: float | None = None
    sm_active_ratio: float | None = None
    sm_occupancy_ratio: float | None = None
    tensor_active_ratio: float | None = None
    dram_active_ratio: float | None = None
    # memory
    memory_used_bytes: int | None = None
    memory_free_bytes: int | None = None
    memory_reserved_bytes: int | None = None
    memory_total_bytes: int | None = None
    # memory errors
    ecc_corrected_volatile: int | None = None
    ecc_uncorrected_volatile: int | None = None
    ecc_corrected_aggregate: int | None = None
    ecc_uncorrected_aggregate: int | None = None
    remapped_rows_correctable: int | None = None
    remapped_rows_uncorrectable: int | None = None
    row_remap_pending: bool | None = None
    row_remap_failed: bool | None = None
    retired_pages_single_bit: int | None = None
    retired_pages_double_bit: int | None = None
    retired_pages_pending: bool | None = None
    # interconnect
    pcie_replays: int | None = None
    pcie_link_generation: int | None = None
    pcie_link_width: int | None = None
    pcie_tx_bytes_per_second: float | None = None
    pcie_rx_bytes_per_second: float | None = None
    #: cumulative NVLink error counters keyed by (link index, type from NVLINK_ERROR_TYPES)
    nvlink_errors: dict[tuple[int, str], int] = field(default_factory=dict)
    nvlink_tx_bytes: float | None = None
    nvlink_rx_bytes: float | None = None
    # events
    #: cumulative XID count per code: since the exporter started watching (NVML events) or
    #: since boot (kernel log); out-of-range codes under ``telemetry.xids.XID_OTHER``
    xid_counts: dict[int, int] = field(default_factory=dict)
    #: cumulative XID count per class (``telemetry.xids.XID_CLASSES``); empty: derived by code
    xid_class_counts: dict[str, int] = field(default_factory=dict)
    last_xid_timestamp: float | None = None
    #: True when a source watches this GPU's XIDs, so every catalogued code is exported from 0
    xids_watched: bool = False
    # virtualisation
    vgpu_license_status: int | None = None
    #: age in seconds of values served from the background poller's cache, by group
    cache_age_seconds: dict[str, float] = field(default_factory=dict)


class GpuLostError(RuntimeError):
    """A backend raises this when a GPU stopped answering (fell off the bus, GPU_IS_LOST).

    ``events`` carries what the backend still knows about the GPU without asking it — the XID
    counts its event thread saw, above all the XID 79 that announced the loss — so those
    counters stay exported while every reading of the GPU itself is absent.
    """

    def __init__(self, message: str, events: GpuSample | None = None) -> None:
        super().__init__(message)
        self.events = events


class BackendUnavailableError(RuntimeError):
    """A backend cannot start here; the message says what is missing and what to do instead."""
