"""Import a NetBox device export (CSV), where many operators already keep rack and site.

NetBox exports devices either as the table's visible columns ("Name", "Site", "Rack", ...) or as
"all data" with import field names (``name``, ``site``, ``rack``, custom fields as
``cf_<name>``). A device is a server, so its record applies to every GPU on that node (the
inventory's node fallback); per-GPU purchase or warranty data goes in custom fields named like
our columns (``cf_purchase_date``, ``cf_warranty_end``, ...). Columns we do not use (status,
role, IP addresses, ...) are ignored rather than refused: an export carries dozens.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from gpu_health.errors import UserError
from gpu_health.scorer.inventory.model import FIELDS

#: NetBox column (either export style, case-folded) -> inventory field.
COLUMNS: dict[str, str] = {
    "name": "node",
    "device": "node",
    "site": "datacenter",
    "location": "row",
    "rack": "rack",
    "tenant": "team",
    "type": "model",
    "device type": "model",
    "device_type": "model",
}
_MARKERS = frozenset({"site", "rack", "tenant", "device type", "device_type"})


def _custom_field(name: str) -> str | None:
    """``cf_purchase_date`` or a custom-field label ``Purchase date`` -> ``purchase_date``."""
    base = name[3:] if name.startswith("cf_") else name
    base = base.replace(" ", "_").replace("-", "_")
    return base if base in FIELDS and base not in ("uuid", "serial", "node", "gpu") else None


def looks_like_netbox(header: set[str]) -> bool:
    """A NetBox export names sites and racks but has none of our key columns."""
    return bool(header & _MARKERS) and not header & {"uuid", "serial", "node", "datacenter"}


def rows(
    source_rows: Iterable[tuple[int, dict[str, Any]]], source: str
) -> Iterator[tuple[int, dict[str, Any]]]:
    """NetBox rows translated to inventory fields (unused columns dropped)."""
    for line, row in source_rows:
        out: dict[str, Any] = {}
        for column, value in row.items():
            folded = column.strip().casefold()
            field = COLUMNS.get(folded) or _custom_field(folded)
            if field is not None and (value or "").strip():
                out[field] = value
        if "node" not in out:
            raise UserError(f"{source}: line {line}: Name: a NetBox device needs its name")
        yield line, out
