"""Validation of one inventory record, whatever file format it came from.

Every problem is one line naming the file, the line and the field, so an operator with a
10,000-row spreadsheet goes straight to the cell.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import time
from collections.abc import Mapping
from typing import Any

from gpu_health.config import show
from gpu_health.errors import UserError
from gpu_health.scorer.econ.params import MAX_AMOUNT, MAX_HOURLY_RATE
from gpu_health.scorer.inventory.model import (
    DATE_FIELDS,
    FIELDS,
    KEY_FIELDS,
    NUMBER_FIELDS,
    TEXT_FIELDS,
    Asset,
)
from gpu_health.scorer.planning.plan import UNKNOWN

#: Label values end up in Prometheus series and dashboards: bounded and printable.
MAX_TEXT = 128
#: (low, high) per number field, in the economics currency. The ceilings are the economics
#: parameters' own (scorer/econ/params.py explains them): an inventory kept in yen, won or rial
#: states prices 150 to 1,000,000 times the dollar figures, and a ceiling made for dollars
#: (1e7, 1,000 an hour) refused a won-priced H200 (about 45,000,000) that the parameters file
#: accepts. They still stop a runaway value (1e308) before it turns the NPV sums into NaN.
NUMBER_RANGES: dict[str, tuple[float, float]] = {
    "purchase_price": (0.0, MAX_AMOUNT),
    "rental_rate": (0.0, MAX_HOURLY_RATE),
}
EARLIEST = dt.date(1990, 1, 1)
LATEST = dt.date(2100, 12, 31)
#: Highest GPU index a record may name. The exporter labels each GPU with its NVML index
#: (``gpu="3"``), and no node holds anywhere near 1,024 GPUs: a slot beyond (or a negative one)
#: matches no GPU, so the record would silently describe nothing.
MAX_GPU_INDEX = 1023
_INDEX = re.compile(r"[0-9]+")
#: How far ahead of now a purchase date may lie: a day absorbs time zones and a record entered
#: the evening before delivery; a later date is a typo (2052 for 2025) that would give the GPU
#: an age of zero and the economics a brand-new board.
FUTURE_SLACK_SECONDS = 86400.0
#: Text fields the plan groups GPUs by (``gpu-health plan``, ``gpu_plan_*``). GPUs without a
#: record (or with the cell empty) are grouped under :data:`UNKNOWN`, so a real datacenter or
#: team of that name would be merged with them. Refusing the name is simpler than a placeholder
#: no text could equal (every printable value is a legal label): an operator who writes
#: ``unknown`` means "not known", which an empty cell already says, with the same result.
RESERVED_FIELDS: tuple[str, ...] = ("datacenter", "team")


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


def _gpu_index(text: str, where: str) -> str:
    """The GPU slot as the exporter's ``gpu`` label writes it (``"03"`` -> ``"3"``), or a
    RecordError for anything no GPU can carry (-1, 1.5, 99999999999999999999)."""
    if not text:
        return ""
    if not _INDEX.fullmatch(text) or int(text) > MAX_GPU_INDEX:
        raise RecordError(
            where,
            "gpu",
            f"{show(text)} is not a GPU index (expected a whole number from 0 to {MAX_GPU_INDEX})",
        )
    return str(int(text))


def _day(stamp: float) -> dt.date:
    return dt.datetime.fromtimestamp(stamp, dt.UTC).date()


def _check_dates(values: Mapping[str, Any], where: str, now: float) -> None:
    """Dates that no real GPU can have: bought in the future, or warranty over before purchase."""
    bought, warranty = values["purchase_date"], values["warranty_end"]
    if bought is not None and bought > now + FUTURE_SLACK_SECONDS:
        raise RecordError(
            where,
            "purchase_date",
            f"{_day(bought)} is in the future (today is {_day(now)}); give the date it was bought",
        )
    if bought is not None and warranty is not None and warranty < bought:
        raise RecordError(
            where, "warranty_end", f"{_day(warranty)} is before purchase_date {_day(bought)}"
        )


def parse_record(
    raw: Mapping[str, Any], where: str, origin: str = "", now: float | None = None
) -> Asset:
    """One validated :class:`Asset`; ``raw`` maps field names to cell values. ``now`` (Unix
    seconds, default the clock) is what a purchase date may not lie more than a day after."""
    unknown = sorted(str(k) for k in raw if k not in FIELDS)
    if unknown:
        field = show(unknown[0])[1:-1]  # cut short: a key from the file may be megabytes
        raise RecordError(where, field, f"unknown field (allowed: {', '.join(FIELDS)})")
    values: dict[str, Any] = {}
    for field in (*KEY_FIELDS, *TEXT_FIELDS):
        values[field] = _text(raw.get(field), where, field)
    for field in NUMBER_FIELDS:
        values[field] = _number(raw.get(field), where, field)
    for field in DATE_FIELDS:
        values[field] = _date(raw.get(field), where, field)
    values["gpu"] = _gpu_index(values["gpu"], where)
    _check_dates(values, where, time.time() if now is None else now)
    for field in RESERVED_FIELDS:
        if values[field].casefold() == UNKNOWN.casefold():
            raise RecordError(
                where,
                field,
                f"{show(values[field])} is reserved: the plan groups GPUs whose {field} is not "
                "known under it; leave the cell empty instead",
            )
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
