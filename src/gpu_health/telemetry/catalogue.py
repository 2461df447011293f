"""The metric catalogue: the single source for the exposition, docs/metrics.md and schema mapping.

Every per-GPU metric the exporter can publish is declared here once: its Prometheus name, type,
help, extra labels, how to read it from a :class:`GpuSample`, and which dcgm-exporter field (with
the unit conversion) carries the same signal. The exposition, the simulator's OpenMetrics backfill,
the generated metric reference and the scorer's dcgm-exporter input path all read this table, so
a name can never drift between them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Literal

from gpu_health.telemetry.readings import (
    CLOCK_EVENT_REASONS,
    GpuIdentity,
    GpuSample,
    reasons_from_bitmask,
)
from gpu_health.telemetry.xids import (
    MAX_XID_CODE,
    XID_CLASSES,
    xid_class,
    xid_label,
    zero_born_xids,
)
from gpu_health.web import SERVER_METRICS

Kind = Literal["gauge", "counter"]
#: ``(extra label values in the order of MetricSpec.labels, value)``
Point = tuple[tuple[str, ...], float]
Extractor = Callable[[GpuIdentity, GpuSample], Iterable[Point]]

#: Labels on every per-GPU series.
IDENTITY_LABELS: tuple[str, ...] = ("node", "gpu", "uuid", "pci_bus_id", "model")

MIB = 1024 * 1024
MHZ = 1_000_000.0

#: dcgm-exporter field -> ``type`` of ``gpu_nvlink_errors_total``, for NVLink5 boards (Blackwell:
#: B200, GB200). They count no data-link CRC, replay or recovery errors (the GB100 driver's
#: supported NVLink counters hold none, and DCGM's own ``dcgmi nvlink -e`` reads these fields
#: on Blackwell and the four legacy totals only up to Hopper), so without these a Blackwell
#: fleet's NVLink errors are invisible. Read: packets received with errors, local link
#: integrity errors (local errors past the link's threshold), and link recoveries that
#: succeeded or failed (the link went down). Not read: symbol errors, FEC history and bit-error
#: rates (corrected by FEC at a steady rate on a healthy PAM4 link), malformed packets and
#: buffer overruns (these counters carry InfiniBand's port-counter names, VL15 drops included,
#: and InfiniBand's received-errors count holds both), remote (stomped) packets, which name the
#: far end, transmit discards (congestion), and the recovery total (the sum of the two read).
NVLINK5_ERROR_FIELDS: dict[str, str] = {
    "DCGM_FI_DEV_NVLINK_COUNT_RX_ERRORS": "rx_errors",
    "DCGM_FI_DEV_NVLINK_COUNT_LOCAL_LINK_INTEGRITY_ERRORS": "link_integrity",
    "DCGM_FI_DEV_NVLINK_COUNT_LINK_RECOVERY_SUCCESSFUL_EVENTS": "recovery_successful",
    "DCGM_FI_DEV_NVLINK_COUNT_LINK_RECOVERY_FAILED_EVENTS": "recovery_failed",
}


#: dcgm-exporter field -> the name DCGM 4.6 gives the same field (same field id, same unit; in
#: DCGM's public source from its 4.6.0 release on, not at 4.5.0).
#: dcgm-exporter 4.9 renamed the fields of its default counters file to these names (the
#: metric carries the name the counters file used), so a fleet that upgraded it sends these
#: instead. Taken from DCGM's ``dcgm_fields.h``, where each legacy name is a ``#define`` of the
#: new one with the same id (4.6: ``DCGM_FI_DEV_POWER_USAGE`` -> ``DCGM_FI_DEV_BOARD_POWER_WATTS``,
#: id 155). Left out: the fields 4.9 sends in base units, which are other fields with ids of
#: their own (:data:`DCGM_BASE_UNITS`); the framebuffer and NVLink bandwidth ones, which no
#: reader here takes; and the fields DCGM kept (ECC totals, clock-hold violations, clock-event
#: reasons).
DCGM_RENAMED: dict[str, str] = {
    "DCGM_FI_DEV_GPU_TEMP": "DCGM_FI_DEV_GPU_TEMP_CELSIUS",
    "DCGM_FI_DEV_MEMORY_TEMP": "DCGM_FI_DEV_MEMORY_TEMP_CELSIUS",
    "DCGM_FI_DEV_POWER_USAGE": "DCGM_FI_DEV_BOARD_POWER_WATTS",
    "DCGM_FI_DEV_POWER_MGMT_LIMIT": "DCGM_FI_DEV_BOARD_POWER_LIMIT_REQUESTED_WATTS",
    "DCGM_FI_DEV_PCIE_REPLAY_COUNTER": "DCGM_FI_DEV_PCIE_REPLAY_TOTAL",
    "DCGM_FI_DEV_XID_ERRORS": "DCGM_FI_DEV_XID_ERROR",
    "DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS": "DCGM_FI_DEV_ROW_REMAP_CORRECTABLE_TOTAL",
    "DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS": "DCGM_FI_DEV_ROW_REMAP_UNCORRECTABLE_TOTAL",
    "DCGM_FI_DEV_ROW_REMAP_FAILURE": "DCGM_FI_DEV_ROW_REMAP_FAILED",
    "DCGM_FI_DEV_RETIRED_SBE": "DCGM_FI_DEV_PAGE_RETIRED_SBE_TOTAL",
    "DCGM_FI_DEV_RETIRED_DBE": "DCGM_FI_DEV_PAGE_RETIRED_DBE_TOTAL",
    "DCGM_FI_DEV_RETIRED_PENDING": "DCGM_FI_DEV_PAGE_RETIRED_PENDING",
    "DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL": "DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_TOTAL",
    "DCGM_FI_DEV_NVLINK_CRC_DATA_ERROR_COUNT_TOTAL": "DCGM_FI_DEV_NVLINK_CRC_DATA_ERROR_TOTAL",
    "DCGM_FI_DEV_NVLINK_REPLAY_ERROR_COUNT_TOTAL": "DCGM_FI_DEV_NVLINK_REPLAY_ERROR_TOTAL",
    "DCGM_FI_DEV_NVLINK_RECOVERY_ERROR_COUNT_TOTAL": "DCGM_FI_DEV_NVLINK_RECOVERY_ERROR_TOTAL",
    "DCGM_FI_DEV_NVLINK_COUNT_RX_ERRORS": "DCGM_FI_DEV_NVLINK_RX_ERROR_TOTAL",
    "DCGM_FI_DEV_NVLINK_COUNT_LOCAL_LINK_INTEGRITY_ERRORS": (
        "DCGM_FI_DEV_NVLINK_INTEGRITY_ERROR_TOTAL"
    ),
    "DCGM_FI_DEV_NVLINK_COUNT_LINK_RECOVERY_SUCCESSFUL_EVENTS": (
        "DCGM_FI_DEV_NVLINK_RECOVERY_SUCCESSFUL_TOTAL"
    ),
    "DCGM_FI_DEV_NVLINK_COUNT_LINK_RECOVERY_FAILED_EVENTS": (
        "DCGM_FI_DEV_NVLINK_RECOVERY_FAILED_TOTAL"
    ),
    "DCGM_FI_PROF_GR_ENGINE_ACTIVE": "DCGM_FI_PROF_GR_ENGINE_UTIL_RATIO",
    "DCGM_FI_PROF_SM_ACTIVE": "DCGM_FI_PROF_SM_UTIL_RATIO",
    "DCGM_FI_PROF_SM_OCCUPANCY": "DCGM_FI_PROF_SM_OCCUPANCY_RATIO",
    "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE": "DCGM_FI_PROF_TENSOR_UTIL_RATIO",
    "DCGM_FI_PROF_DRAM_ACTIVE": "DCGM_FI_PROF_DRAM_UTIL_RATIO",
}


#: dcgm-exporter field -> the field in base units that dcgm-exporter 4.9's default counters file
#: sends in its place, and the factor from that field's unit to this one's. 4.9.0's release notes:
#: eleven of the renamed defaults change unit (clocks MHz to Hz, energy mJ to J, utilization
#: percent to a 0-1 ratio, memory MiB to bytes, NVLink throughput MB/s to B/s). These are fields
#: of their own, with ids and units of their own (``DCGM_FI_DEV_SM_CLOCK_HERTZ`` is 1603 in Hz
#: where ``DCGM_FI_DEV_SM_CLOCK`` is 100 in MHz; NVIDIA/go-dcgm
#: ``pkg/dcgm/base_unit_fields_test.go``, added with its DCGM 4.6.1 support; DCGM 4.7's
#: ``DCGM_FI_DEV_GPU_UTIL_RATIO``, 1613, a 0-1 ratio, where field 203 is a whole percent), so
#: they are no renames: a reading must be scaled. Listed: the ones a reader here takes.
#: ``DCGM_FI_DEV_GPU_UTIL_RATIO`` is read as 4.9 sends it, a ratio: DCGM 4.6's bindings gave that
#: name to field 203, so an exporter on DCGM 4.6 with a counters file naming it would send a
#: percent, read 100 times too high (not a default of any release).
DCGM_BASE_UNITS: dict[str, tuple[str, float]] = {
    "DCGM_FI_DEV_SM_CLOCK": ("DCGM_FI_DEV_SM_CLOCK_HERTZ", 1e-6),
    "DCGM_FI_DEV_MEM_CLOCK": ("DCGM_FI_DEV_MEMORY_CLOCK_HERTZ", 1e-6),
    "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION": ("DCGM_FI_DEV_GPU_ENERGY_JOULES_TOTAL", 1e3),
    "DCGM_FI_DEV_GPU_UTIL": ("DCGM_FI_DEV_GPU_UTIL_RATIO", 100.0),
}
#: A base-unit field's name -> the factor that brings its readings to its legacy field's unit.
BASE_UNIT_FACTORS: dict[str, float] = dict(DCGM_BASE_UNITS.values())


@dataclass(frozen=True)
class DcgmField:
    """How dcgm-exporter publishes the same signal: its field name, fixed labels, and scale.

    ``our_value = dcgm_value * scale``. ``labels`` are the values of our extra labels this field
    stands for (e.g. ``{"sensor": "memory"}`` for ``DCGM_FI_DEV_MEMORY_TEMP``).
    """

    name: str
    labels: dict[str, str] = field(default_factory=dict)
    scale: float = 1.0
    #: dcgm-exporter exports it as a gauge of the last value where we count (XID).
    semantics: Literal["same", "last_value"] = "same"
    #: Other names DCGM has given the same field. A counters file may use either (go-dcgm maps
    #: both to one field id) and the metric carries the name the file used, so a reader must
    #: look for each; a writer uses :attr:`name`.
    aliases: tuple[str, ...] = ()

    @property
    def renamed(self) -> str:
        """The field's DCGM 4.6 name (:data:`DCGM_RENAMED`), or "" where DCGM kept the name."""
        return DCGM_RENAMED.get(self.name, "")

    @property
    def base_unit(self) -> str:
        """The field in base units 4.9 sends instead (:data:`DCGM_BASE_UNITS`), or ""."""
        return DCGM_BASE_UNITS.get(self.name, ("", 1.0))[0]


@dataclass(frozen=True)
class MetricSpec:
    """One metric family: what it means and how to read it."""

    name: str
    kind: Kind
    help: str
    extract: Extractor
    labels: tuple[str, ...] = ()
    #: "cheap" getters are read at scrape time; "polled" come from the background cache;
    #: "static" are read once at inventory.
    cost: Literal["cheap", "polled", "static", "event", "derived"] = "cheap"
    dcgm: tuple[DcgmField, ...] = ()

    @property
    def exposed_name(self) -> str:
        """The sample name on /metrics (counters carry ``_total``)."""
        return self.name


def _one(value: float | int | bool | None) -> Iterator[Point]:
    if value is not None:
        yield ((), float(value))


def _labelled(pairs: Iterable[tuple[str, float | int | bool | None]]) -> Iterator[Point]:
    for label, value in pairs:
        if value is not None:
            yield ((label,), float(value))


def _temperatures(_: GpuIdentity, s: GpuSample) -> Iterator[Point]:
    return _labelled((("gpu", s.temperature_gpu_celsius), ("memory", s.temperature_memory_celsius)))


def _thresholds(i: GpuIdentity, _: GpuSample) -> Iterator[Point]:
    return _labelled(
        (
            ("slowdown", i.slowdown_temp_celsius),
            ("shutdown", i.shutdown_temp_celsius),
            ("memory_max", i.memory_max_temp_celsius),
            ("gpu_max_operating", i.gpu_max_operating_temp_celsius),
        )
    )


def _clocks(_: GpuIdentity, s: GpuSample) -> Iterator[Point]:
    return _labelled((("sm", s.sm_clock_hertz), ("memory", s.memory_clock_hertz)))


def _max_clocks(i: GpuIdentity, _: GpuSample) -> Iterator[Point]:
    return _labelled((("sm", i.max_sm_clock_hertz), ("memory", i.max_memory_clock_hertz)))


def _utilization(_: GpuIdentity, s: GpuSample) -> Iterator[Point]:
    return _labelled(
        (
            ("gpu", s.utilization_gpu_ratio),
            ("memory", s.utilization_memory_ratio),
            ("encoder", s.utilization_encoder_ratio),
            ("decoder", s.utilization_decoder_ratio),
        )
    )


def _ecc(_: GpuIdentity, s: GpuSample) -> Iterator[Point]:
    table = (
        ("corrected", "volatile", s.ecc_corrected_volatile),
        ("uncorrected", "volatile", s.ecc_uncorrected_volatile),
        ("corrected", "aggregate", s.ecc_corrected_aggregate),
        ("uncorrected", "aggregate", s.ecc_uncorrected_aggregate),
    )
    for kind, scope, value in table:
        if value is not None:
            yield ((kind, scope), float(value))


def _remapped(_: GpuIdentity, s: GpuSample) -> Iterator[Point]:
    return _labelled(
        (
            ("correctable", s.remapped_rows_correctable),
            ("uncorrectable", s.remapped_rows_uncorrectable),
        )
    )


def _retired(_: GpuIdentity, s: GpuSample) -> Iterator[Point]:
    return _labelled(
        (
            ("single_bit_ecc", s.retired_pages_single_bit),
            ("double_bit_ecc", s.retired_pages_double_bit),
        )
    )


def _xids(identity: GpuIdentity, s: GpuSample) -> Iterator[Point]:
    # Born at 0 for every catalogued code the board can log while a source watches the GPU, so
    # increase() sees the first event of each code (on Prometheus and VictoriaMetrics alike).
    counts: dict[str, float] = {}
    if s.xids_watched:
        counts = {str(code): 0.0 for code in zero_born_xids(identity.model)}
    for code, count in s.xid_counts.items():
        label = xid_label(code)
        counts[label] = counts.get(label, 0.0) + float(count)
    for label in sorted(counts, key=_xid_order):
        yield ((label,), counts[label])


def _xid_order(label: str) -> tuple[int, str]:
    return (int(label), "") if label.isdigit() else (MAX_XID_CODE + 1, label)


def _xid_classes(_: GpuIdentity, s: GpuSample) -> Iterator[Point]:
    counts = dict.fromkeys(XID_CLASSES, 0.0) if s.xids_watched else {}
    if s.xid_class_counts:
        for cls, count in s.xid_class_counts.items():
            counts[cls] = counts.get(cls, 0.0) + float(count)
    else:
        for code, count in s.xid_counts.items():
            cls = xid_class(code)
            counts[cls] = counts.get(cls, 0.0) + float(count)
    for cls in XID_CLASSES:
        if cls in counts:
            yield ((cls,), counts[cls])


def _clock_event_active(_: GpuIdentity, s: GpuSample) -> Iterator[Point]:
    if s.clock_event_reasons is None:
        return
    for reason, active in reasons_from_bitmask(s.clock_event_reasons).items():
        yield ((reason,), 1.0 if active else 0.0)


def _clock_event_seconds(_: GpuIdentity, s: GpuSample) -> Iterator[Point]:
    for reason, seconds in sorted(s.clock_event_seconds.items()):
        yield ((reason,), seconds)


def _nvlink_errors(_: GpuIdentity, s: GpuSample) -> Iterator[Point]:
    for (link, kind), count in sorted(s.nvlink_errors.items()):
        yield ((str(link), kind), float(count))


def _nvlink_errors_all_links(_: GpuIdentity, s: GpuSample) -> Iterator[Point]:
    totals: dict[str, float] = {}
    for (_link, kind), count in s.nvlink_errors.items():
        totals[kind] = totals.get(kind, 0.0) + float(count)
    for kind in sorted(totals):
        yield ((kind,), totals[kind])


def _xid_errors_all_codes(identity: GpuIdentity, s: GpuSample) -> Iterator[Point]:
    points = list(_xids(identity, s))
    if points:
        yield ((), sum(value for _labels, value in points))


def _pcie_throughput(_: GpuIdentity, s: GpuSample) -> Iterator[Point]:
    return _labelled((("tx", s.pcie_tx_bytes_per_second), ("rx", s.pcie_rx_bytes_per_second)))


def _nvlink_bytes(_: GpuIdentity, s: GpuSample) -> Iterator[Point]:
    return _labelled((("tx", s.nvlink_tx_bytes), ("rx", s.nvlink_rx_bytes)))


def _profiling(_: GpuIdentity, s: GpuSample) -> Iterator[Point]:
    return _labelled(
        (
            ("graphics_engine_active", s.graphics_engine_active_ratio),
            ("sm_active", s.sm_active_ratio),
            ("sm_occupancy", s.sm_occupancy_ratio),
            ("tensor_active", s.tensor_active_ratio),
            ("dram_active", s.dram_active_ratio),
        )
    )


def _cache_age(_: GpuIdentity, s: GpuSample) -> Iterator[Point]:
    for group, age in sorted(s.cache_age_seconds.items()):
        yield ((group,), age)


_VIOLATION_DCGM = {
    "power": "DCGM_FI_DEV_POWER_VIOLATION",
    "thermal": "DCGM_FI_DEV_THERMAL_VIOLATION",
    "sync_boost": "DCGM_FI_DEV_SYNC_BOOST_VIOLATION",
    "board_limit": "DCGM_FI_DEV_BOARD_LIMIT_VIOLATION",
    "low_utilization": "DCGM_FI_DEV_LOW_UTIL_VIOLATION",
    "reliability": "DCGM_FI_DEV_RELIABILITY_VIOLATION",
}

CATALOGUE: tuple[MetricSpec, ...] = (
    MetricSpec(
        "gpu_up",
        "gauge",
        "1 when the GPU answered its last reading, 0 when it is lost (fallen off the bus, "
        "GPU_IS_LOST) or could not be read.",
        lambda _i, s: _one(1 if s.up else 0),
        cost="derived",
    ),
    MetricSpec(
        "gpu_temperature_celsius",
        "gauge",
        "Current temperature of the GPU die (sensor=gpu) or its HBM/GDDR memory (sensor=memory).",
        _temperatures,
        labels=("sensor",),
        dcgm=(
            DcgmField("DCGM_FI_DEV_GPU_TEMP", {"sensor": "gpu"}),
            DcgmField("DCGM_FI_DEV_MEMORY_TEMP", {"sensor": "memory"}),
        ),
    ),
    MetricSpec(
        "gpu_temperature_threshold_celsius",
        "gauge",
        "Temperature limits read from the device: slowdown, shutdown, memory_max, "
        "gpu_max_operating.",
        _thresholds,
        labels=("threshold",),
        cost="static",
    ),
    MetricSpec(
        "gpu_fan_speed_ratio",
        "gauge",
        "Fan speed as a fraction of its maximum (absent on passively cooled SXM boards).",
        lambda _i, s: _one(s.fan_speed_ratio),
    ),
    MetricSpec(
        "gpu_power_watts",
        "gauge",
        "Board power draw (NVML's one-second average).",
        lambda _i, s: _one(s.power_watts),
        dcgm=(DcgmField("DCGM_FI_DEV_POWER_USAGE"),),
    ),
    MetricSpec(
        "gpu_power_limit_watts",
        "gauge",
        "Power limit currently enforced on the board.",
        lambda _i, s: _one(s.power_limit_watts),
        dcgm=(DcgmField("DCGM_FI_DEV_POWER_MGMT_LIMIT"),),
    ),
    MetricSpec(
        "gpu_power_default_limit_watts",
        "gauge",
        "Default (TDP) power limit of the board.",
        lambda i, _s: _one(i.power_limit_default_watts),
        cost="static",
    ),
    MetricSpec(
        "gpu_energy_joules_total",
        "counter",
        "Energy consumed since the driver was loaded.",
        lambda _i, s: _one(s.energy_joules),
        cost="polled",
        dcgm=(DcgmField("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", scale=1e-3),),
    ),
    MetricSpec(
        "gpu_clock_hertz",
        "gauge",
        "Current clock frequency of the SMs (clock=sm) or memory (clock=memory).",
        _clocks,
        labels=("clock",),
        dcgm=(
            DcgmField("DCGM_FI_DEV_SM_CLOCK", {"clock": "sm"}, scale=MHZ),
            DcgmField("DCGM_FI_DEV_MEM_CLOCK", {"clock": "memory"}, scale=MHZ),
        ),
    ),
    MetricSpec(
        "gpu_clock_max_hertz",
        "gauge",
        "Maximum clock frequency the device reports for the SMs and memory.",
        _max_clocks,
        labels=("clock",),
        cost="static",
    ),
    MetricSpec(
        "gpu_performance_state",
        "gauge",
        "Performance state P0 (fastest) to P15 (slowest).",
        lambda _i, s: _one(s.performance_state),
    ),
    MetricSpec(
        "gpu_clock_event_active",
        "gauge",
        "1 while the given clock-event (throttle) reason holds clocks down, else 0.",
        _clock_event_active,
        labels=("reason",),
        dcgm=(
            DcgmField(
                "DCGM_FI_DEV_CLOCK_THROTTLE_REASONS",
                {"reason": "*bitmask*"},
                # field 112's name since DCGM 3.3 (NVML's "throttle" became "clocks event")
                aliases=("DCGM_FI_DEV_CLOCKS_EVENT_REASONS",),
            ),
        ),
    ),
    MetricSpec(
        "gpu_clock_event_seconds_total",
        "counter",
        "Time clocks were held down by each policy (NVML violation time).",
        _clock_event_seconds,
        labels=("reason",),
        cost="polled",
        dcgm=tuple(
            DcgmField(name, {"reason": reason}, scale=1e-9)
            for reason, name in _VIOLATION_DCGM.items()
        ),
    ),
    MetricSpec(
        "gpu_utilization_ratio",
        "gauge",
        "Fraction of the last sample period the engine was busy: gpu (any kernel), memory "
        "(copy engine), encoder, decoder.",
        _utilization,
        labels=("engine",),
        dcgm=(
            DcgmField("DCGM_FI_DEV_GPU_UTIL", {"engine": "gpu"}, scale=0.01),
            DcgmField("DCGM_FI_DEV_MEM_COPY_UTIL", {"engine": "memory"}, scale=0.01),
            DcgmField("DCGM_FI_DEV_ENC_UTIL", {"engine": "encoder"}, scale=0.01),
            DcgmField("DCGM_FI_DEV_DEC_UTIL", {"engine": "decoder"}, scale=0.01),
        ),
    ),
    MetricSpec(
        "gpu_profiling_ratio",
        "gauge",
        "Profiling (GPM/DCP) activity ratios: graphics_engine_active, sm_active, sm_occupancy, "
        "tensor_active, dram_active.",
        _profiling,
        labels=("metric",),
        cost="polled",
        dcgm=(
            DcgmField("DCGM_FI_PROF_GR_ENGINE_ACTIVE", {"metric": "graphics_engine_active"}),
            DcgmField("DCGM_FI_PROF_SM_ACTIVE", {"metric": "sm_active"}),
            DcgmField("DCGM_FI_PROF_SM_OCCUPANCY", {"metric": "sm_occupancy"}),
            DcgmField("DCGM_FI_PROF_PIPE_TENSOR_ACTIVE", {"metric": "tensor_active"}),
            DcgmField("DCGM_FI_PROF_DRAM_ACTIVE", {"metric": "dram_active"}),
        ),
    ),
    MetricSpec(
        "gpu_memory_used_bytes",
        "gauge",
        "Frame-buffer memory in use.",
        lambda _i, s: _one(s.memory_used_bytes),
        dcgm=(DcgmField("DCGM_FI_DEV_FB_USED", scale=MIB),),
    ),
    MetricSpec(
        "gpu_memory_free_bytes",
        "gauge",
        "Frame-buffer memory free.",
        lambda _i, s: _one(s.memory_free_bytes),
        dcgm=(DcgmField("DCGM_FI_DEV_FB_FREE", scale=MIB),),
    ),
    MetricSpec(
        "gpu_memory_reserved_bytes",
        "gauge",
        "Frame-buffer memory reserved by the driver and firmware.",
        lambda _i, s: _one(s.memory_reserved_bytes),
        dcgm=(DcgmField("DCGM_FI_DEV_FB_RESERVED", scale=MIB),),
    ),
    MetricSpec(
        "gpu_memory_total_bytes",
        "gauge",
        "Total frame-buffer memory.",
        lambda i, s: _one(s.memory_total_bytes or i.memory_total_bytes),
    ),
    MetricSpec(
        "gpu_ecc_errors_total",
        "counter",
        "ECC errors by type (corrected = single-bit, uncorrected = double-bit) and scope "
        "(volatile since the last driver load, aggregate over the board's life).",
        _ecc,
        labels=("type", "scope"),
        dcgm=(
            DcgmField("DCGM_FI_DEV_ECC_SBE_VOL_TOTAL", {"type": "corrected", "scope": "volatile"}),
            DcgmField(
                "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", {"type": "uncorrected", "scope": "volatile"}
            ),
            DcgmField("DCGM_FI_DEV_ECC_SBE_AGG_TOTAL", {"type": "corrected", "scope": "aggregate"}),
            DcgmField(
                "DCGM_FI_DEV_ECC_DBE_AGG_TOTAL", {"type": "uncorrected", "scope": "aggregate"}
            ),
        ),
    ),
    MetricSpec(
        "gpu_remapped_rows_total",
        "counter",
        "HBM rows remapped to spares, by the kind of error that caused it.",
        _remapped,
        labels=("cause",),
        dcgm=(
            DcgmField("DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS", {"cause": "correctable"}),
            DcgmField("DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS", {"cause": "uncorrectable"}),
        ),
    ),
    MetricSpec(
        "gpu_row_remap_pending",
        "gauge",
        "1 when a row remap is pending and the GPU needs a reset to apply it.",
        lambda _i, s: _one(s.row_remap_pending),
    ),
    MetricSpec(
        "gpu_row_remap_failed",
        "gauge",
        "1 when a row remap failed (no spare row left): the board should be replaced.",
        lambda _i, s: _one(s.row_remap_failed),
        dcgm=(DcgmField("DCGM_FI_DEV_ROW_REMAP_FAILURE"),),
    ),
    MetricSpec(
        "gpu_retired_pages",
        "gauge",
        "Memory pages retired (pre-Ampere page retirement; absent on boards that remap rows).",
        _retired,
        labels=("cause",),
        dcgm=(
            DcgmField("DCGM_FI_DEV_RETIRED_SBE", {"cause": "single_bit_ecc"}),
            DcgmField("DCGM_FI_DEV_RETIRED_DBE", {"cause": "double_bit_ecc"}),
        ),
    ),
    MetricSpec(
        "gpu_retired_pages_pending",
        "gauge",
        "1 when pages are pending retirement (needs a reboot).",
        lambda _i, s: _one(s.retired_pages_pending),
        dcgm=(DcgmField("DCGM_FI_DEV_RETIRED_PENDING"),),
    ),
    MetricSpec(
        "gpu_xid_errors_total",
        "counter",
        "XID events by code: since boot from the kernel log, else since the exporter started "
        "(NVML events); every catalogued code starts at 0; codes above 999, and uncatalogued "
        "codes beyond a GPU's first 8, count as xid=other.",
        _xids,
        labels=("xid",),
        cost="event",
        dcgm=(DcgmField("DCGM_FI_DEV_XID_ERRORS", {"xid": "*value*"}, semantics="last_value"),),
    ),
    MetricSpec(
        "gpu_xid_errors_all_codes_total",
        "counter",
        "XID events of every code, summed per GPU: gpu_xid_errors_total's sum, one series per "
        "GPU, so that long-window readings (the scorer's 30 days) read one series, not one per "
        "code.",
        _xid_errors_all_codes,
        cost="event",
    ),
    MetricSpec(
        "gpu_xid_class_errors_total",
        "counter",
        "XID events by class (fallen_off_bus, uncontained_ecc, contained_ecc, ...): by code for "
        "catalogued codes, else from the kernel-log message text; every class starts at 0.",
        _xid_classes,
        labels=("class",),
        cost="event",
    ),
    MetricSpec(
        "gpu_last_xid_timestamp_seconds",
        "gauge",
        "Unix time of the last XID event seen on this GPU.",
        lambda _i, s: _one(s.last_xid_timestamp),
        cost="event",
    ),
    MetricSpec(
        "gpu_pcie_replays_total",
        "counter",
        "PCIe replays (link-level retries).",
        lambda _i, s: _one(s.pcie_replays),
        cost="polled",
        dcgm=(DcgmField("DCGM_FI_DEV_PCIE_REPLAY_COUNTER"),),
    ),
    MetricSpec(
        "gpu_pcie_link_generation",
        "gauge",
        "Current PCIe link generation (drops below the maximum when the link degrades).",
        lambda _i, s: _one(s.pcie_link_generation),
    ),
    MetricSpec(
        "gpu_pcie_link_width",
        "gauge",
        "Current PCIe link width in lanes.",
        lambda _i, s: _one(s.pcie_link_width),
    ),
    MetricSpec(
        "gpu_pcie_link_max_generation",
        "gauge",
        "Maximum PCIe link generation the GPU and its slot support.",
        lambda i, _s: _one(i.pcie_max_generation),
        cost="static",
    ),
    MetricSpec(
        "gpu_pcie_link_max_width",
        "gauge",
        "Maximum PCIe link width in lanes.",
        lambda i, _s: _one(i.pcie_max_width),
        cost="static",
    ),
    MetricSpec(
        "gpu_pcie_throughput_bytes_per_second",
        "gauge",
        "PCIe throughput by direction (tx, rx).",
        _pcie_throughput,
        labels=("direction",),
        cost="polled",
        dcgm=(
            # the names dcgm-exporter 4.10's collectors give them (its release notes: still
            # bytes per second, the old names still accepted); the DCGM backend takes a name
            # only when the bindings give it the field's own id (1009, 1010)
            DcgmField(
                "DCGM_FI_PROF_PCIE_TX_BYTES",
                {"direction": "tx"},
                aliases=("DCGM_FI_PROF_PCIE_TX_BYTES_PER_SECOND",),
            ),
            DcgmField(
                "DCGM_FI_PROF_PCIE_RX_BYTES",
                {"direction": "rx"},
                aliases=("DCGM_FI_PROF_PCIE_RX_BYTES_PER_SECOND",),
            ),
        ),
    ),
    MetricSpec(
        "gpu_nvlink_errors_total",
        "counter",
        "NVLink errors by link and type (crc_flit, crc_data, replay, recovery).",
        _nvlink_errors,
        labels=("link", "type"),
        cost="polled",
        dcgm=(
            DcgmField(
                "DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL", {"link": "all", "type": "crc_flit"}
            ),
            DcgmField(
                "DCGM_FI_DEV_NVLINK_CRC_DATA_ERROR_COUNT_TOTAL", {"link": "all", "type": "crc_data"}
            ),
            DcgmField(
                "DCGM_FI_DEV_NVLINK_REPLAY_ERROR_COUNT_TOTAL", {"link": "all", "type": "replay"}
            ),
            DcgmField(
                "DCGM_FI_DEV_NVLINK_RECOVERY_ERROR_COUNT_TOTAL", {"link": "all", "type": "recovery"}
            ),
            # NVLink5 (Blackwell) has none of the four above: its errors are these counters
            # (NVLINK5_ERROR_FIELDS), which dcgm-exporter sends when its counters file lists them.
            *(
                DcgmField(name, {"link": "all", "type": kind})
                for name, kind in NVLINK5_ERROR_FIELDS.items()
            ),
        ),
    ),
    MetricSpec(
        "gpu_nvlink_errors_all_links_total",
        "counter",
        "NVLink errors by type, summed over the GPU's links: gpu_nvlink_errors_total's sum "
        "without link, one series per type, so that long-window readings (the scorer's 30 "
        "days) read four series, not one per link and type.",
        _nvlink_errors_all_links,
        labels=("type",),
        cost="polled",
    ),
    MetricSpec(
        "gpu_nvlink_bytes_total",
        "counter",
        "NVLink data transferred by direction, all links.",
        _nvlink_bytes,
        labels=("direction",),
        cost="polled",
        dcgm=(DcgmField("DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL", {"direction": "*rate*"}),),
    ),
    MetricSpec(
        "gpu_vgpu_license_status",
        "gauge",
        "vGPU licence status as NVML reports it (absent on bare-metal boards).",
        lambda _i, s: _one(s.vgpu_license_status),
        dcgm=(DcgmField("DCGM_FI_DEV_VGPU_LICENSE_STATUS"),),
    ),
    MetricSpec(
        "gpu_cache_age_seconds",
        "gauge",
        "Age of values served from the background poller's cache, by poll group.",
        _cache_age,
        labels=("group",),
        cost="derived",
    ),
)

#: Labels of gpu_info beyond the identity labels.
INFO_LABELS: tuple[str, ...] = (
    "serial",
    "vbios_version",
    "driver_version",
    "cuda_driver_version",
)

#: Health-model series (issue: health model). Declared here so docs and dashboards see them.
HEALTH_METRICS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    (
        "gpu_health_score",
        "Health score 0 (dead) to 100 (perfect), overall and per dimension.",
        ("dimension",),
    ),
    (
        "gpu_health_penalty",
        "Points the given reason costs in the given dimension (the why behind the score).",
        ("dimension", "reason"),
    ),
    ("gpu_health_grade", "1 on the GPU's current grade band, 0 on the others.", ("grade",)),
)

#: ``gpu_pod_info``: which Kubernetes pod holds a GPU (from the kubelet pod-resources API). An
#: info series joined on ``uuid`` rather than extra labels on every series, so a pod coming and
#: going does not start new series for every GPU metric.
POD_LABELS: tuple[str, ...] = ("namespace", "pod", "container")
POD_INFO_HELP = (
    "1 while the labelled Kubernetes container holds this GPU (kubelet pod-resources); join with "
    "* on(uuid) group_left(namespace, pod, container) gpu_pod_info."
)

#: The exporter's own metrics: (name, type, help, labels). Identity labels are added only to
#: ``gpu_exporter_unsupported_calls``, which is per GPU.
SELF_METRICS: tuple[tuple[str, Kind, str, tuple[str, ...]], ...] = (
    (
        "gpu_exporter_scrape_collector_duration_seconds",
        "gauge",
        "Seconds the last scrape spent in each collector (gpu: backend sampling; health: model).",
        ("collector",),
    ),
    (
        "gpu_exporter_scrape_collector_success",
        "gauge",
        "1 when the collector succeeded on the last scrape (gpu: at least one GPU answered).",
        ("collector",),
    ),
    (
        "gpu_exporter_collect_errors_total",
        "counter",
        "Unexpected failures while collecting, by collector (a GPU that is lost is not one).",
        ("collector",),
    ),
    (
        "gpu_exporter_nvml_errors_total",
        "counter",
        "Failed NVML calls by call and error (NOT_SUPPORTED is discovery, not counted).",
        ("call", "error"),
    ),
    (
        "gpu_exporter_poll_duration_seconds",
        "gauge",
        "Seconds the last background poll of the expensive NVML calls took, all GPUs.",
        (),
    ),
    (
        "gpu_exporter_unsupported_calls",
        "gauge",
        "NVML calls this GPU answered NOT_SUPPORTED once and that are no longer made.",
        IDENTITY_LABELS,
    ),
    (
        "gpu_exporter_gpus",
        "gauge",
        "GPUs in the inventory (state=inventory) and answering on the last scrape (state=up).",
        ("state",),
    ),
    (
        "gpu_exporter_pod_resources_errors_total",
        "counter",
        "Failed refreshes of the kubelet pod-resources map (attribution keeps the last map).",
        (),
    ),
    (
        "gpu_exporter_source_info",
        "gauge",
        "1 for each XID source active now, 0 for one that is not: the backend (nvml, dcgm, "
        "replay, sim), kernel_log_kmsg, kernel_log_journal.",
        ("source",),
    ),
    (
        "gpu_exporter_kernel_log_overwritten_total",
        "counter",
        "Times /dev/kmsg overwrote records before the exporter read them (XIDs may be missed).",
        (),
    ),
    (
        "gpu_exporter_build_info",
        "gauge",
        "Version of the exporter and the backend serving this scrape; always 1.",
        ("version", "backend"),
    ),
    # The HTTP server's defences (connections refused, evicted...): gpu_health.web.metrics.
    *((f"gpu_exporter_{name}", kind, help_text, ()) for name, kind, help_text in SERVER_METRICS),
)

#: Per-NVSwitch series from the kernel log (``nvidia-nvswitchN: SXid (PCI:…): CODE, …``): not per
#: GPU, so they carry ``node`` and the switch number rather than the GPU identity labels.
NVSWITCH_METRICS: tuple[tuple[str, Kind, str, tuple[str, ...]], ...] = (
    (
        "nvswitch_sxid_errors_total",
        "counter",
        "NVSwitch SXid errors in the kernel log since boot, by switch (N of nvidia-nvswitchN; "
        "unknown above 63) and SXid code (other beyond 64 distinct codes per switch).",
        ("node", "nvswitch", "sxid"),
    ),
)
#: The series for XIDs whose PCI address is not a GPU in the inventory: ``gpu="unknown"``.
UNKNOWN_GPU = "unknown"

assert all(s.kind != "counter" or s.name.endswith("_total") for s in CATALOGUE)
assert len({s.name for s in CATALOGUE}) == len(CATALOGUE)
assert set(CLOCK_EVENT_REASONS.values())


def by_name() -> dict[str, MetricSpec]:
    """The catalogue keyed by metric name."""
    return {spec.name: spec for spec in CATALOGUE}
