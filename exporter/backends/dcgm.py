"""The DCGM backend: DCGM's own Python bindings (``DcgmReader``) over nv-hostengine.

Why optional: DCGM adds profiling (DCP) fields on pre-Hopper boards and shares one sampling
engine with other DCGM users, but it is a separate install (datacenter-gpu-manager) whose Python
bindings are not on PyPI. When they or libdcgm are missing the backend refuses to start with a
message naming what is missing; it never falls back to something else.

Readings come from DCGM's latest-value cache (DCGM samples in its own thread), so a scrape is one
``GetLatest`` per GPU. The fields are exactly the ``dcgm`` mappings of the metric catalogue, so a
metric carries the same signal whichever backend produced it.
"""

from __future__ import annotations

import ctypes.util
import importlib
import logging
import time
from typing import Any

from gpu_health.exporter.label_values import from_driver
from gpu_health.telemetry.catalogue import CATALOGUE, DCGM_RENAMED
from gpu_health.telemetry.readings import (
    BackendUnavailableError,
    GpuIdentity,
    GpuLostError,
    GpuSample,
)

#: dcgm field name -> (GpuSample attribute, multiply by, DCGM field id). Unit conversions match
#: the catalogue. The id is ``dcgm_fields.h``'s, the same in DCGM 4.5.0's and 4.6.0's public
#: source. DCGM keeps a field's id when it renames it and gives a new unit a new id (the
#: base-unit fields, 1600 on), so a name that the installed bindings give another id stands for
#: another field, in another unit, and is not read: DCGM 4.6 names field 203 (whole percent)
#: ``DCGM_FI_DEV_GPU_UTIL_RATIO``, while DCGM 4.7's field reference, as a third-party guide to
#: it gives it, uses that name for a 0-1 ratio (1613).
FIELDS: dict[str, tuple[str, float, int]] = {
    "DCGM_FI_DEV_GPU_TEMP": ("temperature_gpu_celsius", 1.0, 150),
    "DCGM_FI_DEV_MEMORY_TEMP": ("temperature_memory_celsius", 1.0, 140),
    "DCGM_FI_DEV_POWER_USAGE": ("power_watts", 1.0, 155),
    "DCGM_FI_DEV_POWER_MGMT_LIMIT": ("power_limit_watts", 1.0, 160),
    "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION": ("energy_joules", 1e-3, 156),
    "DCGM_FI_DEV_SM_CLOCK": ("sm_clock_hertz", 1e6, 100),
    "DCGM_FI_DEV_MEM_CLOCK": ("memory_clock_hertz", 1e6, 101),
    "DCGM_FI_DEV_GPU_UTIL": ("utilization_gpu_ratio", 0.01, 203),
    "DCGM_FI_DEV_MEM_COPY_UTIL": ("utilization_memory_ratio", 0.01, 204),
    "DCGM_FI_DEV_ENC_UTIL": ("utilization_encoder_ratio", 0.01, 206),
    "DCGM_FI_DEV_DEC_UTIL": ("utilization_decoder_ratio", 0.01, 207),
    "DCGM_FI_DEV_FB_USED": ("memory_used_bytes", 1024.0 * 1024, 252),
    "DCGM_FI_DEV_FB_FREE": ("memory_free_bytes", 1024.0 * 1024, 251),
    "DCGM_FI_DEV_FB_RESERVED": ("memory_reserved_bytes", 1024.0 * 1024, 253),
    "DCGM_FI_DEV_ECC_SBE_VOL_TOTAL": ("ecc_corrected_volatile", 1.0, 310),
    "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL": ("ecc_uncorrected_volatile", 1.0, 311),
    "DCGM_FI_DEV_ECC_SBE_AGG_TOTAL": ("ecc_corrected_aggregate", 1.0, 312),
    "DCGM_FI_DEV_ECC_DBE_AGG_TOTAL": ("ecc_uncorrected_aggregate", 1.0, 313),
    "DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS": ("remapped_rows_correctable", 1.0, 394),
    "DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS": ("remapped_rows_uncorrectable", 1.0, 393),
    "DCGM_FI_DEV_ROW_REMAP_FAILURE": ("row_remap_failed", 1.0, 395),
    "DCGM_FI_DEV_RETIRED_SBE": ("retired_pages_single_bit", 1.0, 390),
    "DCGM_FI_DEV_RETIRED_DBE": ("retired_pages_double_bit", 1.0, 391),
    "DCGM_FI_DEV_RETIRED_PENDING": ("retired_pages_pending", 1.0, 392),
    "DCGM_FI_DEV_PCIE_REPLAY_COUNTER": ("pcie_replays", 1.0, 202),
    "DCGM_FI_DEV_CLOCK_THROTTLE_REASONS": ("clock_event_reasons", 1.0, 112),
    "DCGM_FI_PROF_GR_ENGINE_ACTIVE": ("graphics_engine_active_ratio", 1.0, 1001),
    "DCGM_FI_PROF_SM_ACTIVE": ("sm_active_ratio", 1.0, 1002),
    "DCGM_FI_PROF_SM_OCCUPANCY": ("sm_occupancy_ratio", 1.0, 1003),
    "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE": ("tensor_active_ratio", 1.0, 1004),
    "DCGM_FI_PROF_DRAM_ACTIVE": ("dram_active_ratio", 1.0, 1005),
    "DCGM_FI_PROF_PCIE_TX_BYTES": ("pcie_tx_bytes_per_second", 1.0, 1009),
    "DCGM_FI_PROF_PCIE_RX_BYTES": ("pcie_rx_bytes_per_second", 1.0, 1010),
    "DCGM_FI_DEV_VGPU_LICENSE_STATUS": ("vgpu_license_status", 1.0, 526),
}
# A field DCGM renamed (the catalogue's aliases, e.g. field 112 since DCGM 3.3, and DCGM 4.6's
# renames, the same field ids under new names) is watched under whichever name the installed
# bindings carry. Bindings of DCGM 4.6 and later define only the new names and reach the old ones
# through a deprecation hook that DCGM_DEPRECATED=0 switches off; older bindings know only the old.
# DCGM 4.6 renamed field 203 too (DCGM_FI_DEV_GPU_UTIL_RATIO, the same whole percent); a later
# field of that name with another id and unit is not read (FIELD_IDS).
_RENAMED = DCGM_RENAMED | {"DCGM_FI_DEV_GPU_UTIL": "DCGM_FI_DEV_GPU_UTIL_RATIO"}
_ALIASES = {field.name: field.aliases for spec in CATALOGUE for field in spec.dcgm}
#: GpuSample attribute -> every name of its field, the newest first.
NAMES: dict[str, list[str]] = {
    attr: [*filter(None, [_RENAMED.get(name), *_ALIASES.get(name, ())]), name]
    for name, (attr, _, _) in FIELDS.items()
}
FIELDS |= {alias: FIELDS[names[-1]] for names in NAMES.values() for alias in names[:-1]}
#: GpuSample attribute -> the id of the DCGM field it is read from.
FIELD_IDS: dict[str, int] = {attr: field_id for attr, _, field_id in FIELDS.values()}
_INT_FIELDS = {
    name
    for name, _, _ in FIELDS.values()
    if not name.endswith(("ratio", "celsius", "watts", "hertz", "joules", "second"))
}
_BOOL_FIELDS = {"row_remap_failed", "retired_pages_pending"}
log = logging.getLogger(__name__)
_BINDINGS = ("pydcgm", "dcgm_structs", "dcgm_fields", "dcgm_agent", "DcgmReader")
_HINT = (
    "install datacenter-gpu-manager and put its Python bindings on PYTHONPATH "
    "(e.g. /usr/share/datacenter-gpu-manager-4/bindings/python3), start nv-hostengine, "
    "or use --backend nvml"
)


def _import_bindings() -> dict[str, Any]:
    modules: dict[str, Any] = {}
    missing = []
    for name in _BINDINGS:
        try:
            modules[name] = importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise BackendUnavailableError(
            f"DCGM backend: Python bindings not importable ({', '.join(missing)}); {_HINT}"
        )
    if ctypes.util.find_library("dcgm") is None:
        raise BackendUnavailableError(f"DCGM backend: libdcgm.so not found; {_HINT}")
    return modules


class DcgmBackend:
    """Reads the catalogue's DCGM fields through ``DcgmReader`` (DCGM samples in its engine)."""

    name = "dcgm"

    def __init__(self, node: str = "", host: str = "localhost", interval_s: float = 1.0) -> None:
        modules = _import_bindings()
        fields_mod = modules["dcgm_fields"]
        self._ids: dict[int, str] = {}
        absent = []
        others: list[str] = []
        for attr, names in NAMES.items():
            name, elsewhere = _field_name(fields_mod, names, FIELD_IDS[attr])
            others += elsewhere
            if name is None:
                absent.append(names[-1])
            else:
                self._ids[FIELD_IDS[attr]] = name
        if others:
            log.info(
                "DCGM backend: names the installed bindings give to other fields, not read: %s",
                ", ".join(others),
            )
        if absent:
            log.warning(
                "DCGM backend: the installed bindings define none of the names of %d fields, "
                "whose metrics will be absent: %s",
                len(absent),
                ", ".join(absent),
            )
        try:
            self._reader = modules["DcgmReader"].DcgmReader(
                hostname=host,
                fieldIds=list(self._ids),
                updateFrequency=int(interval_s * 1_000_000),
                ignoreBlank=True,
            )
            self._reader.InitWrapped()  # connects to nv-hostengine and watches the fields
        except Exception as exc:  # DCGM raises its own DCGMError family
            raise BackendUnavailableError(
                f"DCGM backend: cannot connect to nv-hostengine at {host}: {exc}; {_HINT}"
            ) from None
        self.node = node
        self._structs = modules["dcgm_structs"]

    def inventory(self) -> list[GpuIdentity]:
        identities = []
        for gpu_id in self._reader.m_dcgmGroup.GetGpuIds():
            attr = self._reader.m_dcgmSystem.discovery.GetGpuAttributes(gpu_id)
            ident = attr.identifiers
            gpu = int(gpu_id)
            # strings as label values: from_driver keeps a broken one from failing every scrape
            texts = {
                what: from_driver(getattr(ident, field), f"GPU {gpu} {what}") or ""
                for what, field in (
                    ("UUID", "uuid"),
                    ("name", "deviceName"),
                    ("PCI bus id", "pciBusId"),
                    ("serial", "serial"),
                    ("VBIOS version", "vbios"),
                    ("driver version", "driverVersion"),
                )
            }
            identities.append(
                GpuIdentity(
                    index=gpu,
                    uuid=texts["UUID"],
                    model=texts["name"],
                    pci_bus_id=texts["PCI bus id"],
                    node=self.node,
                    serial=texts["serial"] or None,
                    vbios_version=texts["VBIOS version"] or None,
                    driver_version=texts["driver version"] or None,
                )
            )
        return identities

    def sample(self, gpu: GpuIdentity) -> GpuSample:
        try:
            # DcgmReader reconnects on its own and returns {} while nv-hostengine is down.
            latest = self._reader.GetLatestGpuValuesAsFieldIdDict()
        except Exception as exc:
            raise GpuLostError(f"DCGM: {exc}") from None
        values = latest.get(gpu.index)
        if values is None:
            raise GpuLostError(f"DCGM has no values for GPU {gpu.index}")
        sample = GpuSample(timestamp=time.time())
        for field_id, value in values.items():
            name = self._ids.get(int(field_id))
            if name is None or value is None or _is_blank(self._structs, value):
                continue
            attr, scale, _ = FIELDS[name]
            number = float(value) * scale
            if attr in _BOOL_FIELDS:
                setattr(sample, attr, bool(number))
            elif attr in _INT_FIELDS:
                setattr(sample, attr, int(number))
            else:
                setattr(sample, attr, number)
        return sample

    def close(self) -> None:
        shutdown = getattr(self._reader, "Shutdown", None)
        if shutdown is not None:
            shutdown()


def _field_name(fields_mod: Any, names: list[str], field_id: int) -> tuple[str | None, list[str]]:
    """The first of ``names`` that the bindings give the id ``field_id``, and each name they give
    another id (``"NAME (id)"``).

    The newest name is asked first: DCGM 4.6's bindings define it outright, and answer an old
    name only through a deprecation hook (a DeprecationWarning, or a refusal under
    DCGM_DEPRECATED=0); older bindings lack the new name and define the old one.
    """
    elsewhere: list[str] = []
    for name in names:
        found = getattr(fields_mod, name, None)
        if found is None:
            continue
        if int(found) == field_id:
            return name, elsewhere
        elsewhere.append(f"{name} ({int(found)})")
    return None, elsewhere


def _is_blank(structs: Any, value: Any) -> bool:
    """DCGM marks absent values with sentinels (``DCGM_INT64_BLANK`` etc.) instead of None."""
    for sentinel in ("DCGM_INT64_BLANK", "DCGM_INT32_BLANK", "DCGM_FP64_BLANK"):
        blank = getattr(structs, sentinel, None)
        if blank is not None and isinstance(value, int | float) and value >= blank:
            return True
    return False
