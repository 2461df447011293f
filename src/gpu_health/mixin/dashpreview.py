"""Draw a Grafana dashboard to a PNG from its own queries, without a Grafana server.

Grafana cannot be installed here, yet a reviewer wants to see the dashboards and a test wants
proof that each panel shows something. This module runs the dashboard's queries against a real
Prometheus (:mod:`gpu_health.mixin.dashquery`) and lays the panels out on Grafana's 24-column grid
with matplotlib: time series as lines, stats as big numbers coloured by their thresholds, bar
gauges as bars, tables as tables and heatmaps as bucket counts over time. It is a preview, not a
pixel-perfect copy of Grafana.

Usage: ``python -m gpu_health.mixin.dashpreview --prometheus http://127.0.0.1:9090 --out docs/img``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gpu_health.cli_support import OneLineArgumentParser, run_main
from gpu_health.errors import UserError
from gpu_health.mixin.dashquery import (
    DashboardResult,
    PanelResult,
    PromClient,
    Series,
    run_dashboard,
)

BACKGROUND = "#111217"
PANEL = "#181b1f"
TEXT = "#ccccdc"
MUTED = "#8e8e99"
GRID = "#2c3235"
PALETTE = (
    "#73bf69",
    "#f2cc0c",
    "#8ab8ff",
    "#ff780a",
    "#f2495c",
    "#5794f2",
    "#b877d9",
    "#705da0",
    "#37872d",
    "#fade2a",
)
COLOURS = {
    "green": "#73bf69",
    "orange": "#ff9830",
    "red": "#f2495c",
    "blue": "#5794f2",
    "yellow": "#fade2a",
}
#: Pixels per grid unit (Grafana: 30 px rows; a 1600 px wide dashboard has ~66 px columns).
ROW_PX = 30
COL_PX = 66


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


def _value_mapping(value: float, fieldconfig: Mapping[str, Any]) -> str | None:
    for mapping in fieldconfig.get("defaults", {}).get("mappings", []):
        if mapping.get("type") == "value" and not math.isnan(value):
            hit = mapping["options"].get(f"{value:g}")
            if hit:
                return str(hit.get("text"))
    return None


def _series(panel: PanelResult) -> list[Series]:
    return [s for t in panel.targets for s in t.series]


def _no_data(ax: Any) -> None:
    ax.axis("off")
    ax.text(
        0.5,
        0.5,
        "No data",
        ha="center",
        va="center",
        color=MUTED,
        fontsize=10,
        transform=ax.transAxes,
    )


def _time_axis(ax: Any, panel: PanelResult) -> None:
    """Unix-second x values labelled as UTC clock times at round steps (5 min, 1 h, 6 h...)."""
    from matplotlib.ticker import FixedLocator, FuncFormatter

    times = [t for s in _series(panel) for t in s.times]
    if not times:
        return
    lo, hi = min(times), max(times)
    steps = (60, 300, 600, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800)
    step = next((s for s in steps if (hi - lo) / s <= 7), steps[-1])
    first = math.ceil(lo / step) * step
    ax.xaxis.set_major_locator(
        FixedLocator([first + i * step for i in range(int((hi - first) // step) + 1)])
    )
    fmt = "%m-%d %H:%M" if hi - lo > 86400 else "%H:%M"
    ax.xaxis.set_major_formatter(
        FuncFormatter(lambda v, _: datetime.fromtimestamp(v, UTC).strftime(fmt))
    )


def _draw_timeseries(ax: Any, panel: PanelResult, unit: str) -> None:
    from matplotlib.ticker import FuncFormatter

    series = _series(panel)
    if not series:
        _no_data(ax)
        return
    stacked = (
        panel.panel.get("fieldConfig", {})
        .get("defaults", {})
        .get("custom", {})
        .get("stacking", {})
        .get("mode")
        == "normal"
    )
    for i, s in enumerate(series[:12]):
        times = s.times
        colour = PALETTE[i % len(PALETTE)]
        if stacked:
            ax.fill_between(times, s.values, color=colour, alpha=0.35, linewidth=0)
        ax.plot(times, s.values, color=colour, linewidth=1.0, label=s.name[:28])
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: format_value(v, unit)))
    ax.tick_params(colors=MUTED, labelsize=6)
    ax.grid(color=GRID, linewidth=0.5)
    _time_axis(ax, panel)
    ax.legend(
        loc="upper left", fontsize=5, ncol=min(4, len(series[:12])), frameon=False, labelcolor=TEXT
    )
    for spine in ax.spines.values():
        spine.set_color(GRID)


def _draw_stat(ax: Any, panel: PanelResult, unit: str) -> None:
    series = _series(panel)
    ax.axis("off")
    if not series:
        _no_data(ax)
        return
    fieldconfig = panel.panel.get("fieldConfig", {})
    decimals = fieldconfig.get("defaults", {}).get("decimals")
    name_only = panel.panel.get("options", {}).get("textMode") == "name"
    shown = series[:4]
    for i, s in enumerate(shown):
        x = (i + 0.5) / len(shown)
        mapped = _value_mapping(s.last, fieldconfig)
        text = s.name if name_only else mapped or format_value(s.last, unit, decimals)
        ax.text(
            x,
            0.5,
            text,
            ha="center",
            va="center",
            fontsize=16 if len(shown) == 1 else 10,
            color=threshold_colour(s.last, fieldconfig),
            fontweight="bold",
            transform=ax.transAxes,
        )
        if len(shown) > 1 and not name_only:
            ax.text(
                x,
                0.12,
                s.name[:24],
                ha="center",
                va="center",
                fontsize=6,
                color=MUTED,
                transform=ax.transAxes,
            )


def _draw_bargauge(ax: Any, panel: PanelResult, unit: str) -> None:
    """Horizontal bars, the name above each bar and the value after it (Grafana's layout)."""
    series = sorted(_series(panel), key=lambda s: s.name)[:12]
    if not series:
        _no_data(ax)
        return
    fieldconfig = panel.panel.get("fieldConfig", {})
    defaults = fieldconfig.get("defaults", {})
    values = [0.0 if math.isnan(s.last) else s.last for s in series][::-1]
    names = [s.name[:48] for s in series][::-1]
    colours = [threshold_colour(v, fieldconfig) for v in values]
    ax.barh(range(len(values)), values, color=colours, height=0.45, align="edge")
    low = defaults.get("min", min(0.0, *values))
    high = defaults.get("max", max(values) * 1.15 if max(values) > 0 else 1.0)
    ax.set_xlim(low, high)
    ax.set_ylim(-0.1, len(values))
    for y, (name, v) in enumerate(zip(names, values, strict=True)):
        ax.text(low, y + 0.5, name, va="bottom", fontsize=6, color=MUTED)
        ax.text(
            v, y + 0.22, " " + format_value(v, unit, defaults.get("decimals")),
            va="center", fontsize=6, color=TEXT,
        )  # fmt: skip
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


def _matrix(panel: PanelResult, options: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Grafana's groupingToMatrix: a row per ``rowField`` value, a column per ``columnField``."""
    unit = panel.panel.get("fieldConfig", {}).get("defaults", {}).get("unit", "short")
    decimals = panel.panel.get("fieldConfig", {}).get("defaults", {}).get("decimals")
    row_field, column_field = options["rowField"], options["columnField"]
    cells: dict[str, dict[str, float]] = {}
    for s in _series(panel):
        row = cells.setdefault(s.labels.get(row_field, ""), {})
        row[s.labels.get(column_field, "")] = s.last
    columns = sorted({c for r in cells.values() for c in r})
    rows = [
        [key] + [format_value(r.get(c, math.nan), unit, decimals) for c in columns]
        for key, r in sorted(cells.items())
    ]
    return [f"{row_field}\\{column_field}", *columns], rows


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
    multi = len(panel.targets) > 1
    rows: dict[tuple[tuple[str, str], ...], dict[str, Any]] = {}
    for target in panel.targets:
        value_column = f"Value #{target.ref_id}" if multi else "Value"
        for s in target.series:
            labels: dict[str, Any] = {k: v for k, v in s.labels.items() if k not in excluded}
            key = tuple(sorted(labels.items()))
            row = rows.setdefault(key, dict(labels))
            row[value_column] = s.last
    columns = sorted(
        {c for r in rows.values() for c in r if c not in excluded},
        key=lambda c: (order.get(c, 99), c),
    )
    sort = panel.panel.get("options", {}).get("sortBy") or []
    ordered = list(rows.values())
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


def _draw_table(ax: Any, panel: PanelResult, unit: str) -> None:
    ax.axis("off")
    columns, rows = table_rows(panel)
    if not rows:
        _no_data(ax)
        return
    height_rows = max(1, int(panel.panel["gridPos"]["h"] * ROW_PX / 22) - 2)
    shown = [[cell[:38] for cell in row] for row in rows[:height_rows]]
    table = ax.table(cellText=shown, colLabels=columns, loc="upper center", cellLoc="left")
    table.auto_set_font_size(False)
    table.set_fontsize(6)
    for (r, _), cell in table.get_celld().items():
        cell.set_edgecolor(GRID)
        cell.set_facecolor(PANEL)
        cell.get_text().set_color(MUTED if r == 0 else TEXT)
    table.scale(1, 1.0)


def _draw_heatmap(ax: Any, panel: PanelResult, unit: str) -> None:
    import numpy as np

    series = _series(panel)
    if not series:
        ax.axis("off")
        _no_data(ax)
        return
    options = panel.panel.get("options", {})
    y_axis = options.get("yAxis", {})
    times = sorted({t for s in series for t in s.times})
    values = [v for s in series for v in s.values]
    lo = y_axis.get("min", min(values))
    hi = y_axis.get("max", max(values))
    buckets = int(options.get("calculation", {}).get("yBuckets", {}).get("value", 10))
    index = {t: i for i, t in enumerate(times)}
    grid = np.zeros((buckets, len(times)))
    for s in series:
        for t, v in zip(s.times, s.values, strict=True):
            b = min(buckets - 1, max(0, int((v - lo) / (hi - lo or 1) * buckets)))
            grid[b, index[t]] += 1
    import matplotlib

    cmap = matplotlib.colormaps["Oranges"].copy()
    cmap.set_bad(PANEL)
    ax.imshow(
        np.ma.masked_equal(np.power(grid, 0.5), 0),
        aspect="auto",
        origin="lower",
        cmap=cmap,
        vmin=0,
        extent=(times[0], max(times[-1], times[0] + 60.0), lo, hi if hi > lo else lo + 1),
        interpolation="nearest",
    )
    _time_axis(ax, panel)
    ax.tick_params(colors=MUTED, labelsize=6)
    for spine in ax.spines.values():
        spine.set_color(GRID)


def _draw_text(ax: Any, panel: PanelResult, unit: str) -> None:
    ax.axis("off")
    content = panel.panel.get("options", {}).get("content", "")
    ax.text(
        0.01,
        0.9,
        content[:400],
        va="top",
        fontsize=7,
        color=TEXT,
        wrap=True,
        transform=ax.transAxes,
    )


DRAW = {
    "timeseries": _draw_timeseries,
    "stat": _draw_stat,
    "bargauge": _draw_bargauge,
    "table": _draw_table,
    "heatmap": _draw_heatmap,
    "text": _draw_text,
}


def render(result: DashboardResult, path: Path) -> Path:
    """Draw every panel of ``result`` at its grid position and save a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = result.panels
    total_rows = max((p.panel["gridPos"]["y"] + p.panel["gridPos"]["h"] for p in panels), default=1)
    header_px = 44
    width_px, height_px = 24 * COL_PX, total_rows * ROW_PX + header_px
    dpi = 110
    fig = plt.figure(figsize=(width_px / dpi, height_px / dpi), dpi=dpi, facecolor=BACKGROUND)
    title = result.dashboard.get("title", "")
    start, end = (datetime.fromtimestamp(t, UTC) for t in (result.start, result.end))
    span = f"{start:%Y-%m-%d %H:%M} – {end:%Y-%m-%d %H:%M} UTC"
    chosen = ", ".join(
        f"{k}={v}"
        for k, v in result.variables.items()
        if not k.startswith("__") and k != "datasource"
    )
    fig.text(
        0.005, 1 - 16 / height_px, title, fontsize=11, color=TEXT, fontweight="bold", va="center"
    )
    fig.text(
        0.995,
        1 - 16 / height_px,
        f"{span}   {chosen}",
        fontsize=7,
        color=MUTED,
        va="center",
        ha="right",
    )
    pad = 4
    for p in panels:
        grid = p.panel["gridPos"]
        x0 = (grid["x"] * COL_PX + pad) / width_px
        w = (grid["w"] * COL_PX - 2 * pad) / width_px
        top_px = header_px + grid["y"] * ROW_PX + pad
        h_px = grid["h"] * ROW_PX - 2 * pad
        frame = fig.add_axes((x0, 1 - (top_px + h_px) / height_px, w, h_px / height_px))
        frame.set_facecolor(PANEL)
        frame.set_xticks([])
        frame.set_yticks([])
        for spine in frame.spines.values():
            spine.set_color(GRID)
        frame.text(
            0.01,
            1 - 11 / h_px,
            p.panel.get("title", ""),
            fontsize=7.5,
            color=TEXT,
            va="center",
            transform=frame.transAxes,
            fontweight="bold",
        )
        inner_top = 22 if p.panel["type"] != "stat" else 16
        left = 46 if p.panel["type"] in ("timeseries", "heatmap") else 6
        right = 6
        if p.panel["type"] == "bargauge":
            left, right = 8, 48  # room for the value after the bar
        bottom = 14 if p.panel["type"] in ("timeseries", "heatmap") else 4
        ax = fig.add_axes(
            (
                x0 + left / width_px,
                1 - (top_px + h_px - bottom) / height_px,
                w - (left + right) / width_px,
                (h_px - inner_top - bottom) / height_px,
            ),
            facecolor=PANEL,
        )
        unit = p.panel.get("fieldConfig", {}).get("defaults", {}).get("unit", "short")
        DRAW.get(p.panel["type"], _draw_text)(ax, p, unit)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, facecolor=BACKGROUND)
    plt.close(fig)
    return path


def parse_duration(text: str) -> float:
    """``30m``, ``24h``, ``2d`` or plain seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    try:
        if text and text[-1] in units:
            return float(text[:-1]) * units[text[-1]]
        return float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration like 30m, 24h or 2d") from exc


def parse_variable(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME=VALUE")
    return name, value


def worst_gpu(client: PromClient, at: float) -> str | None:
    """The uuid of the GPU with the lowest overall health score: the detail preview's subject."""
    series = client.instant('bottomk(1, gpu_health_score{dimension="overall"})', at)
    return series[0].labels.get("uuid") if series else None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--prometheus",
        default="http://127.0.0.1:9090",
        help="Prometheus base URL (default: %(default)s)",
    )
    parser.add_argument(
        "--dashboards",
        type=Path,
        default=Path("grafana"),
        help="folder of dashboard JSON files, or one file (default: %(default)s)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("docs/img"),
        help="folder for the PNGs (default: %(default)s)",
    )
    parser.add_argument(
        "--range",
        dest="range_s",
        type=parse_duration,
        default=parse_duration("24h"),
        help="time range ending now, e.g. 6h, 2d (default: 24h)",
    )
    parser.add_argument(
        "--end", type=float, default=None, help="end of the range as Unix time (default: now)"
    )
    parser.add_argument(
        "--scrape-interval",
        type=parse_duration,
        default=parse_duration("15s"),
        help="scrape interval of the data, for $__rate_interval (default: 15s)",
    )
    parser.add_argument(
        "--var",
        action="append",
        type=parse_variable,
        default=[],
        metavar="NAME=VALUE",
        help="set a template variable (repeatable); gpu defaults to the worst GPU",
    )


def run(args: argparse.Namespace) -> int:
    try:
        import matplotlib  # noqa: F401
    except ModuleNotFoundError:
        raise UserError(
            "matplotlib is not installed; install it with: "
            "pip install 'gpu-health-monitor[preview]'"
        ) from None
    source: Path = args.dashboards
    files = sorted(source.glob("*.json")) if source.is_dir() else [source]
    if not files or not all(f.is_file() for f in files):
        raise UserError(f"{source}: no dashboard JSON files found")
    client = PromClient(args.prometheus)
    end = args.end or time.time()
    start = end - args.range_s
    chosen = dict(args.var)
    if "gpu" not in chosen:
        uuid = worst_gpu(client, end)
        if uuid:
            chosen["gpu"] = uuid
    for path in files:
        try:
            dashboard = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise UserError(f"{path}: not a dashboard JSON file ({exc})") from exc
        result = run_dashboard(dashboard, client, start, end, args.scrape_interval, chosen)
        out = render(result, args.out / f"{path.stem}.png")
        empty = sum(not p.has_data for p in result.panels if p.panel.get("targets"))
        chosen_text = " ".join(
            f"{k}={v}" for k, v in result.variables.items() if not k.startswith("__")
        )
        print(
            f"{out}: {len(result.panels)} panels, {empty} without data ({chosen_text})",
            file=sys.stderr,
        )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = OneLineArgumentParser(
        prog="python -m gpu_health.mixin.dashpreview",
        description="Render Grafana dashboards to PNG previews from their own queries "
        "against a Prometheus.",
    )
    add_arguments(parser)
    return run_main(lambda: run(parser.parse_args(list(argv) if argv is not None else None)))


if __name__ == "__main__":
    sys.exit(main())
