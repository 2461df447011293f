"""Fault injection for the live simulator: ``--sim-fault 'gpu=3,fault=xid79,after=60s'``.

A fault becomes an :class:`~gpu_health.sim.fleet.Episode` (a storm that changes telemetry while
it lasts) and/or a terminal signature (XIDs, uncorrectable errors, remap failure, GPU lost) on the
board in that slot, so an injected fault looks exactly like the natural failure mode it imitates.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gpu_health.config import load_yaml, show
from gpu_health.errors import ConfigError, UserError
from gpu_health.sim.models import ModelSpec
from gpu_health.sim.timeparse import parse_duration
from gpu_health.telemetry.xids import MAX_XID_CODE

#: fault name -> what it does (shown in --help and docs/simulator.md)
FAULTS: dict[str, str] = {
    "xid79": "GPU falls off the bus (XID 79); reads fail from then on",
    "gpu_lost": "same as xid79",
    "ecc_storm": "bursts of corrected ECC errors (thousands per minute), XID 92",
    "uncorrectable_ecc": "XID 48 then 94 + uncorrectable ECC errors, an uncorrectable row remap",
    "row_remap_pending": "a correctable row remap (XID 63) that stays pending until a reset",
    "row_remap_failure": "XID 48/95 then XID 64 and the row-remap-failure flag (RMA criterion)",
    "thermal": "cooling degradation: temperature climbs past slowdown, thermal throttling",
    "pcie_replay_storm": "PCIe replays far above the expected rate, link width halves, XID 32",
    "nvlink_errors": "NVLink CRC/replay/recovery errors rising on one link, then XID 74",
    "power_brake": "hardware power-brake slowdowns (clock-event reason 0x80)",
}
KEYS = frozenset({"gpu", "fault", "after", "for"})
#: the latest ``after`` a fault may have: a year, the longest a demo runs (``--duration``); a
#: fault further out would never fire while anyone watches
MAX_AFTER_DAYS = 366
#: the longest ``for`` a fault may have, for the same reason: a storm longer than any run is one
#: that lasts until exit, which leaving ``for`` out says
MAX_FOR_DAYS = MAX_AFTER_DAYS
#: a faults file holds at most this many entries (it is read again on every change)
MAX_FAULTS = 1000
FAULT_HELP = (
    "inject a fault: 'gpu=N,fault=NAME[,after=60s][,for=10m]' (repeatable); after = simulated "
    "time from start, for = how long a storm lasts (default: until exit); NAME is one of "
    + ", ".join(FAULTS)
    + ", or xidNN for any XID code"
)


@dataclass(frozen=True)
class Fault:
    gpu: int
    fault: str
    after: float
    duration: float

    @property
    def xid(self) -> int | None:
        if self.fault.startswith("xid") and self.fault != "xid79" and self.fault[3:].isdigit():
            return int(self.fault[3:])
        return None


def _check_name(name: str, where: str) -> str:
    """The fault's name; ``xidNN`` in its plain form (``xid079`` is ``xid79``, which falls off
    the bus as its name says) and with a code the exporter counts under its own label."""
    if name in FAULTS:
        return name
    digits = name[3:]
    if name.startswith("xid") and digits.isascii() and digits.isdigit():
        code = int(digits)
        if not 1 <= code <= MAX_XID_CODE:
            raise UserError(f"{where}: {name}: XID codes run from 1 to {MAX_XID_CODE}")
        return f"xid{code}"
    raise UserError(f"{where}: unknown fault {show(name)} (allowed: {', '.join(FAULTS)}, xidNN)")


def parse_fault(text: str) -> Fault:
    """Parse one ``key=value,...`` fault; a bad part is named in a one-line UserError."""
    where = f"--sim-fault {text!r}"
    fields: dict[str, str] = {}
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        name, sep, value = part.partition("=")
        name = name.strip()
        if not sep or not value.strip():
            raise UserError(f"{where}: {part!r} is not key=value")
        if name not in KEYS:
            raise UserError(
                f"{where}: unknown key {show(name)} (allowed: {', '.join(sorted(KEYS))})"
            )
        if name in fields:  # gpu=3,...,gpu=4: which one was meant?
            raise UserError(f"{where}: {name} given twice")
        fields[name] = value.strip()
    return _build(fields, where)


def _build(fields: Mapping[str, Any], where: str) -> Fault:
    if "gpu" not in fields:
        raise UserError(f"{where}: gpu is required (gpu=N)")
    if "fault" not in fields:
        raise UserError(f"{where}: fault is required (fault=NAME)")
    gpu = _gpu_index(fields["gpu"], where)
    name = _check_name(str(fields["fault"]), where)
    after = parse_duration(fields.get("after", 0), f"{where}: after")
    if after > MAX_AFTER_DAYS * 86400:
        raise UserError(
            f"{where}: after {show(fields['after'])} is more than {MAX_AFTER_DAYS} days away, "
            "so the fault would never fire while the simulator runs"
        )
    duration = parse_duration(fields["for"], f"{where}: for") if "for" in fields else math.inf
    if duration <= 0:  # a storm of no length changes nothing: a typo, not a fault
        raise UserError(f"{where}: for must be longer than 0 (leave it out: until exit)")
    if math.isfinite(duration) and duration > MAX_FOR_DAYS * 86400:
        raise UserError(
            f"{where}: for {show(fields['for'])} is more than {MAX_FOR_DAYS} days, longer than "
            "the simulator runs (leave it out: until exit)"
        )
    return Fault(gpu, name, after, duration)


def _gpu_index(value: object, where: str) -> int:
    """A YAML integer or plain decimal digits: ``int()`` alone also takes ``1_0`` (slot 10),
    ``+3``, ``3.7`` (slot 3) and ``true`` (slot 1), each a different slot than was written."""
    if isinstance(value, int) and not isinstance(value, bool):
        gpu = value
    elif isinstance(value, str) and value.isascii() and value.isdigit():
        gpu = int(value)
    else:
        raise UserError(f"{where}: gpu {show(value)} is not a GPU index (0, 1, 2, ...)")
    if gpu < 0:
        raise UserError(f"{where}: gpu {gpu} is negative")
    return gpu


def model_name(spec: ModelSpec) -> str:
    """The board model as the demo's messages name it: ``L40S``, ``H100 80GB HBM3``."""
    return spec.name.removeprefix("NVIDIA ")


def never_fires(fault: str, spec: ModelSpec) -> str | None:
    """Why ``fault`` would change nothing on a board of model ``spec`` (``has no NVLink``), or
    None when it does. The only such case: the simulator injects ``nvlink_errors`` only on
    boards with NVLink links (an L40S has none); every other kind raises an XID or a storm on
    any model (the HBM-only parts of ``uncorrectable_ecc`` are extras beside its XIDs)."""
    if fault == "nvlink_errors" and not spec.nvlink_count:
        return "has no NVLink"
    return None


def load_faults_file(path: Path) -> list[Fault]:
    """``faults: [{gpu: 3, fault: xid79, after: 60s}, ...]`` (errors name file and key); the
    first invalid entry refuses the whole file (the exporter's start, ``gpu-health demo fault``)."""
    faults = []
    for entry in read_faults_file(path):
        if isinstance(entry, ConfigError):
            raise entry
        faults.append(entry)
    return faults


def read_faults_file(path: Path) -> list[Fault | ConfigError]:
    """Each entry of a faults file in order: its :class:`Fault`, or the one-line ConfigError
    naming file, entry (``faults[2]``) and what is wrong with it, so one bad entry does not hide
    the others (the exporter's watcher skips it and applies the rest). A file that cannot be
    read as a list of entries at all (YAML, not UTF-8, a key given twice in one mapping, wrong
    shape, too many) raises."""
    data = load_yaml(path, unique_keys=True)  # faults: twice kept only the last list
    source = str(path)
    if not isinstance(data, Mapping) or set(data) - {"faults"}:
        raise ConfigError(source, "", "expected a mapping with one key: faults")
    items = data.get("faults") or []
    if not isinstance(items, list):
        raise ConfigError(source, "faults", "expected a list of faults")
    if len(items) > MAX_FAULTS:
        raise ConfigError(source, "faults", f"{len(items)} faults, at most {MAX_FAULTS}")
    out: list[Fault | ConfigError] = []
    for i, item in enumerate(items):
        try:
            out.append(_entry(source, f"faults[{i}]", item))
        except ConfigError as exc:
            out.append(exc)
    return out


def _entry(source: str, key: str, item: object) -> Fault:
    if not isinstance(item, Mapping):
        raise ConfigError(source, key, "expected a mapping (gpu, fault, after, for)")
    unknown = sorted(str(k) for k in item if k not in KEYS)
    if unknown:
        raise ConfigError(
            source, f"{key}.{unknown[0]}", f"unknown key (allowed: {', '.join(sorted(KEYS))})"
        )
    gpu = item.get("gpu")
    if isinstance(gpu, str):  # gpu: "1" is text; --sim-fault's digits are read by _gpu_index
        raise ConfigError(source, f"{key}.gpu", f"expected an integer (0, 1, ...), got {show(gpu)}")
    try:
        return _build(item, f"{source}: {key}")
    except ConfigError:
        raise
    except UserError as exc:
        raise ConfigError(source, key, str(exc).split(": ", 2)[-1]) from None
