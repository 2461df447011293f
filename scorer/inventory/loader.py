"""Read an inventory from CSV, YAML or a NetBox device export (detected from its header).

The whole file is validated before it is used: one bad cell refuses the file with a line like
``inventory.csv: line 7: warranty_end: '2025-13-01' is not a date (expected YYYY-MM-DD)``.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from gpu_health.config import read_text_file
from gpu_health.csv_file import parse_csv
from gpu_health.errors import UserError
from gpu_health.scorer.inventory import netbox
from gpu_health.scorer.inventory.fields import RecordError, parse_record, record_key
from gpu_health.scorer.inventory.model import Asset, Inventory

#: Bounds on what comes from outside: a runaway export must not eat the scorer's memory.
MAX_BYTES = 64 * 1024 * 1024
MAX_RECORDS = 500_000
MAX_DEPTH = 16
FORMATS = ("auto", "csv", "yaml", "netbox")


def read_text(path: Path) -> str:
    """A regular UTF-8 file (a byte-order mark, as spreadsheets write, is dropped) of at most
    :data:`MAX_BYTES`: a device or FIFO given by mistake is refused before it is read."""
    return read_text_file(path, MAX_BYTES).removeprefix("\ufeff")


def detect_format(path: Path, text: str) -> str:
    if path.suffix.lower() in (".yaml", ".yml"):
        return "yaml"
    first = text.lstrip().splitlines()[0] if text.strip() else ""
    header = {h.strip().casefold() for h in next(csv.reader([first]), [])}
    return "netbox" if netbox.looks_like_netbox(header) else "csv"


def _csv_rows(text: str, source: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """Rows of a CSV inventory with the line each starts on, read as every CSV input is
    (:mod:`gpu_health.csv_file`: a blank row skipped, a row with more cells than the header
    or a column named twice refused in one line)."""
    return parse_csv(text, source).rows()


def _yaml_rows(text: str, source: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """Items of a top-level list (or of ``gpus:``), each with the line it starts on.

    Aliases are refused: a few lines of nested aliases expand to gigabytes ("billion laughs"),
    and an inventory has no need for them. So is nesting deeper than :data:`MAX_DEPTH` (a list
    of records of fields is three deep), which the recursive composer would spend long on.
    """
    depth = 0
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            line = event.start_mark.line + 1 if event.start_mark else 0
            if isinstance(event, yaml.AliasEvent):
                raise UserError(f"{source}: line {line}: YAML aliases (*name) are not allowed")
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    raise UserError(f"{source}: line {line}: nested more than {MAX_DEPTH} deep")
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}" if mark else "unknown line"
        raise UserError(f"{source}: {where}: invalid YAML: {exc.problem}") from None
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return
        items = root
        if isinstance(root, yaml.MappingNode):
            keys = {k.value: v for k, v in root.value}
            if set(keys) != {"gpus"}:
                raise UserError(f"{source}: expected a list of GPUs, or one key 'gpus' holding it")
            items = keys["gpus"]
        if not isinstance(items, yaml.SequenceNode):
            raise UserError(f"{source}: expected a list of GPUs")
        for node in items.value:
            line = node.start_mark.line + 1
            value = loader.construct_object(node, deep=True)
            if not isinstance(value, Mapping):
                raise RecordError(f"{source}: line {line}", "", "expected a mapping of fields")
            yield line, {str(k): v for k, v in value.items()}
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}" if mark else "unknown line"
        raise UserError(f"{source}: {where}: invalid YAML: {exc.problem}") from None
    finally:
        loader.dispose()


def parse_inventory(text: str, source: str, fmt: str = "csv") -> Inventory:
    """Validate every record; a key listed twice is an error naming both lines."""
    if fmt == "yaml":
        rows = _yaml_rows(text, source)
    elif fmt == "netbox":
        rows = netbox.rows(_csv_rows(text, source), source)
    else:
        rows = _csv_rows(text, source)
    assets: list[Asset] = []
    first_line: dict[tuple[str, ...], int] = {}
    for line, raw in rows:
        where = f"{source}: line {line}"
        asset = parse_record(raw, where, origin=f"{source}:{line}")
        key = record_key(asset)
        if key in first_line:
            raise RecordError(
                where, key[0], f"{' '.join(key[1:])} is already listed on line {first_line[key]}"
            )
        first_line[key] = line
        assets.append(asset)
        if len(assets) > MAX_RECORDS:
            raise UserError(f"{source}: more than {MAX_RECORDS} records")
    return Inventory(source, tuple(assets))


def load_inventory(path: Path | str, fmt: str = "auto") -> Inventory:
    """Read and validate ``path``; raises :class:`UserError` with file, line and field."""
    path = Path(path)
    if fmt not in FORMATS:
        raise UserError(f"inventory format {fmt!r} is not known (allowed: {', '.join(FORMATS)})")
    text = read_text(path)
    chosen = detect_format(path, text) if fmt == "auto" else fmt
    return parse_inventory(text, str(path), chosen)
