"""Validation of one inventory record, whatever file format it came from.

Every problem is one line naming the file, the line and the field, so an operator with a
10,000-row spreadsheet goes straight to the cell.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from typing import Any

from gpu_health.config import show
from gpu_health.errors import UserError
from gpu_health.scorer.inventory.model import (
    DATE_FIELDS,
    FIELDS,
    KEY_FIELDS,
    NUMBER_FIELDS,
    TEXT_FIELDS,
    Asset,
)

#: Label values end up in Prometheus series and dashboards: bounded and printable.
MAX_TEXT = 128
#: (low, high) per number field; a price with a stray zero is an error, not a 10x NPV.
NUMBER_RANGES: dict[str, tuple[float, float]] = {
    "purchase_price": (0.0, 10_000_000.0),
    "rental_rate": (0.0, 1_000.0),
}
EARLIEST = dt.date(1990, 1, 1)
LATEST = dt.date(2100, 12, 31)


class RecordError(UserError):
    """A bad field: ``file: line N: field: problem``."""

    def __init__(self, where: str, field: str, problem: str) -> None:
        text = f"{where}: {field}: {problem}" if field else f"{where}: {problem}"
        super().__init__(text.replace("\n", "\\n").replace("\r", "\\r"))


def _text(value: Any, where: str, field: str) -> str:
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise RecordError(where, field, f"expected text, got {type(value).__name__}")
    text = str(value).strip()
    if len(text) > MAX_TEXT:
        raise RecordError(where, field, f"longer than {MAX_TEXT} characters")
    if any(not ch.isprintable() for ch in text):
        raise RecordError(where, field, "contains control characters")
    return text


def _number(value: Any, where: str, field: str) -> float | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise RecordError(where, field, f"expected a number, got {show(value)}")
    # No thousands separators: "2,10" may be a decimal comma; a silent 210 is worse than an error.
    try:
        number = float(value.strip()) if isinstance(value, str) else float(value)
    except (TypeError, ValueError):
        raise RecordError(
            where, field, f"expected a plain number like 26500.50, got {show(value)}"
        ) from None
    low, high = NUMBER_RANGES[field]
    if not math.isfinite(number) or not low <= number <= high:
        raise RecordError(
            where, field, f"{number:g} is out of range (allowed: {low:g} to {high:g})"
        )
    return number


def _date(value: Any, where: str, field: str) -> float | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, dt.datetime):
        stamp = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    elif isinstance(value, dt.date):
        stamp = dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)
    else:
        text = str(value).strip()
        try:
            stamp = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise RecordError(
                where, field, f"{text!r} is not a date (expected YYYY-MM-DD)"
            ) from None
        if stamp.tzinfo is None:
            stamp = stamp.replace(tzinfo=dt.UTC)
    if not EARLIEST <= stamp.date() <= LATEST:
        raise RecordError(
            where, field, f"{stamp.date()} is out of range (allowed: {EARLIEST} to {LATEST})"
        )
    return stamp.timestamp()


def parse_record(raw: Mapping[str, Any], where: str, origin: str = "") -> Asset:
    """One validated :class:`Asset`; ``raw`` maps field names to cell values."""
    unknown = sorted(str(k) for k in raw if k not in FIELDS)
    if unknown:
        raise RecordError(where, unknown[0], f"unknown field (allowed: {', '.join(FIELDS)})")
    values: dict[str, Any] = {}
    for field in (*KEY_FIELDS, *TEXT_FIELDS):
        values[field] = _text(raw.get(field), where, field)
    for field in NUMBER_FIELDS:
        values[field] = _number(raw.get(field), where, field)
    for field in DATE_FIELDS:
        values[field] = _date(raw.get(field), where, field)
    if values["gpu"] and not values["node"]:
        raise RecordError(where, "gpu", "a GPU slot needs its node")
    if not (values["uuid"] or values["serial"] or values["node"]):
        raise RecordError(where, "", "needs uuid, serial or node to say which GPU it describes")
    if all(values[f] in (None, "") for f in FIELDS if f not in KEY_FIELDS):
        raise RecordError(where, "", "no fields besides the key (nothing to record)")
    return Asset(**values, origin=origin or where)


def record_key(asset: Asset) -> tuple[str, ...]:
    """The key the lookup files the record under (duplicates are errors)."""
    if asset.uuid:
        return ("uuid", asset.uuid)
    if asset.serial:
        return ("serial", asset.serial)
    if asset.gpu:
        return ("slot", asset.node, asset.gpu)
    return ("node", asset.node)
