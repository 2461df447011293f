"""Read an inventory from CSV, YAML or a NetBox device export (detected from its header).

The whole file is validated before it is used: one bad cell refuses the file with a line like
``inventory.csv: line 7: warranty_end: '2025-13-01' is not a date (expected YYYY-MM-DD)``.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from gpu_health.config import read_text_file, show
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


_MAP_TAG = "tag:yaml.org,2002:map"
_MERGE_TAG = "tag:yaml.org,2002:merge"


def _yaml_error(exc: yaml.YAMLError, text: str, source: str) -> UserError:
    """One line for a YAML error: the line it is on and PyYAML's problem, no traceback."""
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark
        where = f"line {mark.line + 1}" if mark else "unknown line"
        return UserError(f"{source}: {where}: invalid YAML: {exc.problem}")
    if isinstance(exc, yaml.reader.ReaderError):  # a control character, raised before parsing
        line = text.count("\n", 0, max(exc.position, 0)) + 1
        return UserError(
            f"{source}: line {line}: invalid YAML: character {exc.character:#x} is not allowed"
        )
    return UserError(f"{source}: invalid YAML: {show(str(exc))}")


def _construct(loader: yaml.SafeLoader, node: yaml.Node, where: str, field: str) -> Any:
    """A key or value of a record. A scalar PyYAML cannot convert (``2024-02-30``, which it
    takes for a timestamp, or an integer of 5,000 digits) is handed on as its text, so the
    field's own check words the error as it does for a CSV cell, instead of a traceback."""
    try:
        return loader.construct_object(node, deep=True)
    except (ValueError, OverflowError) as exc:
        if isinstance(node, yaml.ScalarNode):
            return node.value
        raise RecordError(where, field, f"invalid value: {show(str(exc))}") from None


def _record(loader: yaml.SafeLoader, node: yaml.MappingNode, source: str) -> dict[str, Any]:
    """One record's fields, each key at most once.

    PyYAML keeps the last of two equal keys, so ``datacenter: fra1`` followed by ``datacenter:
    ams`` put the GPU in ams without a word. :func:`gpu_health.config.parse_yaml`'s
    ``unique_keys`` refuses that for configuration files, but it builds the whole document at
    once: it cannot tell each record's line, and its alias budget (100,000 values) counts every
    value, so it would refuse any inventory beyond a few thousand GPUs. The check is made here,
    key by key, naming the line of the second key and of the first. Merge keys (``<<:``) are
    refused like aliases: a merged field would hide under an explicit one the same way.
    """
    fields: dict[str, Any] = {}
    first: dict[str, int] = {}
    for key_node, value_node in node.value:
        line = key_node.start_mark.line + 1
        where = f"{source}: line {line}"
        if key_node.tag == _MERGE_TAG:
            raise RecordError(where, "<<", "YAML merge keys are not allowed")
        name = str(_construct(loader, key_node, where, ""))
        if name in first:
            raise RecordError(
                where, show(name)[1:-1], f"given twice in one record (first on line {first[name]})"
            )
        first[name] = line
        fields[name] = _construct(loader, value_node, where, show(name)[1:-1])
    return fields


def _yaml_rows(text: str, source: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """Items of a top-level list (or of ``gpus:``), each with the line it starts on.

    Aliases are refused: a few lines of nested aliases expand to gigabytes ("billion laughs"),
    and an inventory has no need for them. So is nesting deeper than :data:`MAX_DEPTH` (a list
    of records of fields is three deep), which the recursive composer would spend long on. An
    empty document is an error, as an empty CSV is: a truncated save must not wipe every GPU's
    datacenter and price (a hot reload keeps the last good file instead).
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
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, text, source) from None
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            raise UserError(
                f"{source}: empty file (expected a list of GPUs, or one key 'gpus' holding it)"
            )
        items = root
        if isinstance(root, yaml.MappingNode):
            keys = [k for k, _ in root.value]
            named = [k for k in keys if k.value == "gpus"]
            if len(named) > 1:
                raise RecordError(
                    f"{source}: line {named[1].start_mark.line + 1}",
                    "gpus",
                    f"given twice (first on line {named[0].start_mark.line + 1})",
                )
            if len(keys) != 1 or not named:
                raise UserError(f"{source}: expected a list of GPUs, or one key 'gpus' holding it")
            items = root.value[0][1]
        if not isinstance(items, yaml.SequenceNode):
            raise UserError(f"{source}: expected a list of GPUs")
        for node in items.value:
            line = node.start_mark.line + 1
            if not isinstance(node, yaml.MappingNode) or node.tag != _MAP_TAG:
                raise RecordError(f"{source}: line {line}", "", "expected a mapping of fields")
            yield line, _record(loader, node, source)
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, text, source) from None
    finally:
        loader.dispose()


def parse_inventory(
    text: str, source: str, fmt: str = "csv", now: float | None = None
) -> Inventory:
    """Validate every record; a key listed twice is an error naming both lines. A file with no
    record (a header alone, ``gpus: []``) is refused in every format, as an empty CSV always
    was: an inventory that lists nothing is a truncated or wrong file, and a missing file
    already says "no inventory". ``now`` (Unix seconds, default the clock) bounds purchase
    dates."""
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
        asset = parse_record(raw, where, origin=f"{source}:{line}", now=now)
        key = record_key(asset)
        if key in first_line:
            raise RecordError(
                where, key[0], f"{' '.join(key[1:])} is already listed on line {first_line[key]}"
            )
        first_line[key] = line
        assets.append(asset)
        if len(assets) > MAX_RECORDS:
            raise UserError(f"{source}: more than {MAX_RECORDS} records")
    if not assets:
        raise UserError(f"{source}: no records (an inventory lists at least one GPU or node)")
    return Inventory(source, tuple(assets))


def load_inventory(path: Path | str, fmt: str = "auto") -> Inventory:
    """Read and validate ``path``; raises :class:`UserError` with file, line and field."""
    path = Path(path)
    if fmt not in FORMATS:
        raise UserError(f"inventory format {fmt!r} is not known (allowed: {', '.join(FORMATS)})")
    text = read_text(path)
    chosen = detect_format(path, text) if fmt == "auto" else fmt
    return parse_inventory(text, str(path), chosen)
