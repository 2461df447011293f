"""How a dashboard panel's numbers read in a preview, as Grafana would show them.

Grafana units (percent, watts, bytes, durations, currencies), threshold colours, value mappings and
the table transformations our dashboards use (merge + organize, groupingToMatrix). No drawing
here: :mod:`.preview_draw` puts these strings and colours on the page.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from gpu_health.mixin.dashquery import PanelResult, Series

COLOURS = {
    "green": "#73bf69",
    "orange": "#ff9830",
    "red": "#f2495c",
    "blue": "#5794f2",
    "yellow": "#fade2a",
}


def _si(
    value: float,
    suffix: str,
    base: float = 1000.0,
    units: Sequence[str] = ("", "k", "M", "G", "T", "P"),
) -> str:
    magnitude = 0
    v = abs(value)
    while v >= base and magnitude < len(units) - 1:
        v /= base
        magnitude += 1
    number = v if value >= 0 else -v
    text = f"{number:.3g}" if magnitude or abs(number) < 1000 else f"{number:.0f}"
    return f"{text} {units[magnitude]}{suffix}".strip()


def format_value(value: float, unit: str, decimals: int | None = None) -> str:
    """Format ``value`` the way the panel's Grafana unit would (the common units we use)."""
    if value is None or math.isnan(value):
        return "–"
    if unit == "percentunit":
        return f"{value * 100:.{1 if decimals is None else decimals}f}%"
    if unit == "celsius":
        return f"{value:.0f} °C"
    if unit == "watt":
        return _si(value, "W")
    if unit == "hertz":
        return _si(value, "Hz")
    if unit == "bytes":
        return _si(value, "iB", 1024.0, ("", "K", "M", "G", "T", "P")).replace(" iB", " B")
    if unit == "Bps":
        return _si(value, "B/s")
    if unit == "s":
        for size, name in ((86400, "day"), (3600, "hour"), (60, "min")):
            if abs(value) >= size:
                return f"{value / size:.1f} {name}"
        return f"{value:.0f} s"
    if unit.startswith("currency"):
        symbol = {"USD": "$", "EUR": "€", "GBP": "£"}.get(unit[len("currency") :], "")
        return symbol + _si(value, "")
    if decimals is not None:
        return f"{value:.{decimals}f}"
    return _si(value, "") if abs(value) >= 1000 else f"{value:.3g}"


def threshold_colour(value: float, fieldconfig: Mapping[str, Any]) -> str:
    """The colour of the highest threshold step ``value`` reaches."""
    steps = fieldconfig.get("defaults", {}).get("thresholds", {}).get("steps", [])
    colour = "blue"
    for step in steps:
        if step.get("value") is None or (not math.isnan(value) and value >= step["value"]):
            colour = step["color"]
    return COLOURS.get(colour, colour)


def value_mapping(value: float, fieldconfig: Mapping[str, Any]) -> str | None:
    """The text a value mapping gives ``value`` (e.g. 1 -> "up"), if any."""
    for mapping in fieldconfig.get("defaults", {}).get("mappings", []):
        if mapping.get("type") == "value" and not math.isnan(value):
            hit = mapping["options"].get(f"{value:g}")
            if hit:
                return str(hit.get("text"))
    return None


def all_series(panel: PanelResult) -> list[Series]:
    """Every series of every target of the panel, in target order."""
    return [s for t in panel.targets for s in t.series]


def _matrix(panel: PanelResult, options: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Grafana's groupingToMatrix: a row per ``rowField`` value, a column per ``columnField``."""
    unit = panel.panel.get("fieldConfig", {}).get("defaults", {}).get("unit", "short")
    decimals = panel.panel.get("fieldConfig", {}).get("defaults", {}).get("decimals")
    row_field, column_field = options["rowField"], options["columnField"]
    cells: dict[str, dict[str, float]] = {}
    for s in all_series(panel):
        row = cells.setdefault(s.labels.get(row_field, ""), {})
        row[s.labels.get(column_field, "")] = s.last
    columns = sorted({c for r in cells.values() for c in r})
    rows = [
        [key] + [format_value(r.get(c, math.nan), unit, decimals) for c in columns]
        for key, r in sorted(cells.items())
    ]
    return [f"{row_field}\\{column_field}", *columns], rows


def _frames(panel: PanelResult) -> list[list[dict[str, Any]]]:
    """Each target as Grafana's Prometheus data source hands a table-format instant query to
    the panel: one frame per target, a field for every label any of its series carries (the
    metric name too, as ``__name__``; "" where a series lacks the label) and one value field,
    ``Value #<refId>`` when the panel has several targets."""
    multi = len(panel.targets) > 1
    frames = []
    for target in panel.targets:
        if not target.series:
            continue  # Grafana drops empty frames before merging
        value = f"Value #{target.ref_id}" if multi else "Value"
        names = sorted({k for s in target.series for k in s.labels})
        frames.append(
            [{**{n: s.labels.get(n, "") for n in names}, value: s.last} for s in target.series]
        )
    return frames


def merged_rows(panel: PanelResult) -> list[dict[str, Any]]:
    """Grafana's ``merge`` transformation (grafana-data ``transformers/merge.ts``): rows are
    grouped by the fields that *every* frame has, and a row joins an earlier one of its group
    when no field they both have disagrees. It runs before ``organize`` hides ``__name__``, so
    two queries that keep different metric names never share a row: the preview must show that,
    or a table that reads well here splits into half-rows in Grafana."""
    frames = _frames(panel)
    if len(frames) <= 1:
        return [dict(r) for f in frames for r in f]
    shared = set(frames[0][0]).intersection(*(set(f[0]) for f in frames[1:]))
    key_fields = sorted(n for n in shared if not n.startswith("Value"))
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    ordered: list[dict[str, Any]] = []
    for frame in frames:
        for row in frame:
            group = groups.setdefault(tuple(row[n] for n in key_fields), [])
            target = next(
                (
                    r
                    for r in group
                    if all(r[k] is None or r[k] == v for k, v in row.items() if k in r)
                ),
                None,
            )
            if target is None:
                target = dict(row)
                group.append(target)
                ordered.append(target)
            else:
                target.update(row)
    return ordered


def table_rows(panel: PanelResult) -> tuple[list[str], list[list[str]]]:
    """Columns and rows the way the panel's transformations (merge + organize, or
    groupingToMatrix) would show them."""
    transformations = {t["id"]: t["options"] for t in panel.panel.get("transformations", [])}
    if "groupingToMatrix" in transformations:
        return _matrix(panel, transformations["groupingToMatrix"])
    organize: dict[str, Any] = transformations.get("organize", {})
    excluded = {k for k, v in organize.get("excludeByName", {}).items() if v}
    rename: dict[str, str] = organize.get("renameByName", {})
    order: dict[str, int] = organize.get("indexByName", {})
    defaults = panel.panel.get("fieldConfig", {}).get("defaults", {})
    unit = defaults.get("unit", "short")
    units = {
        o["matcher"]["options"]: p["value"]
        for o in panel.panel.get("fieldConfig", {}).get("overrides", [])
        for p in o["properties"]
        if p["id"] == "unit"
    }
    ordered_rows = merged_rows(panel)
    columns = sorted(
        {c for r in ordered_rows for c in r if c not in excluded},
        key=lambda c: (order.get(c, 99), c),
    )
    sort = panel.panel.get("options", {}).get("sortBy") or []
    ordered = list(ordered_rows)
    if sort:
        inverse = {v: k for k, v in rename.items()}
        key_col = inverse.get(sort[0]["displayName"], sort[0]["displayName"])
        ordered.sort(
            key=lambda r: r.get(key_col, math.nan) if isinstance(r.get(key_col), float) else 0.0,
            reverse=bool(sort[0].get("desc")),
        )

    def cell(row: Mapping[str, Any], column: str) -> str:
        value = row.get(column, "")
        if isinstance(value, float):
            shown = rename.get(column, column)
            return format_value(value, units.get(shown, unit), defaults.get("decimals"))
        return str(value)

    return [rename.get(c, c) for c in columns], [[cell(r, c) for c in columns] for r in ordered]
