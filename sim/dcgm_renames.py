"""A dcgm-exporter history as dcgm-exporter 4.9 writes it: the fields DCGM 4.6 renamed under
their new names, clocks, energy and utilization as the fields in base units that 4.9 sends
instead, and the driver-version label under its new name, on every node or on the nodes upgraded
from a given time on.

The simulator writes dcgm-exporter's schema with the names up to 4.8; the tests and the bench
that hold the scorer to both namings (``tests/scorer/test_dcgm_renamed_fields.py``,
``bench/bench_dcgm_renamed.py``) rename its samples here rather than write the fleet twice, so
the two histories differ in names only.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from gpu_health.telemetry.catalogue import DCGM_BASE_UNITS, DCGM_RENAMED

#: ``NAME{labels} value timestamp`` with the node label (dcgm-exporter's ``Hostname``).
SAMPLE = re.compile(r'^([A-Z_0-9]+)(\{[^}]*Hostname="([^"]+)"[^}]*\}) (\S+) (\S+)$')


#: The driver-version label, and the name dcgm-exporter 4.9 gives it.
DRIVER_LABEL = ("DCGM_FI_DRIVER_VERSION=", "DCGM_FI_SYSTEM_DRIVER_VERSION=")


def renamed(text: str, upgraded: Callable[[str, float], bool]) -> str:
    """OpenMetrics ``text`` with the samples of every renamed field under its new name where
    ``upgraded(node, time)``, and those of a field 4.9 sends in base units as that field's
    (MHz as Hz, percent as a 0-1 ratio), with the driver-version label under 4.9's name; each
    name's samples together under its own TYPE line."""
    families: dict[str, list[str]] = {}
    for line in text.splitlines():
        found = SAMPLE.match(line)
        if found is None:
            continue
        name, labels, node, value, ts = found.groups()
        if upgraded(node, float(ts)):
            labels = labels.replace(*DRIVER_LABEL)
            name, factor = as_sent_by_49(name)
            if factor != 1.0:
                value = repr(float(value) / factor)
        families.setdefault(name, []).append(f"{name}{labels} {value} {ts}")
    body = [f"# TYPE {name} gauge\n" + "\n".join(lines) for name, lines in families.items()]
    return "".join(f"{family}\n" for family in body) + "# EOF\n"


def as_sent_by_49(name: str) -> tuple[str, float]:
    """The name dcgm-exporter 4.9 sends field ``name`` under, and the factor from that field's
    unit to ``name``'s (a reading is divided by it: MHz as Hz, percent as a 0-1 ratio); the
    name itself and 1 for a field 4.9 keeps."""
    if name in DCGM_RENAMED:
        return DCGM_RENAMED[name], 1.0
    return DCGM_BASE_UNITS.get(name, (name, 1.0))


def upgraded_nodes(nodes: tuple[str, ...], since: float) -> Callable[[str, float], bool]:
    """The nodes ``nodes`` upgraded at ``since``: their samples from then on are renamed."""
    return lambda node, t: node in nodes and t >= since
