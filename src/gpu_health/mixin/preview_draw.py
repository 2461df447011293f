"""Draw a dashboard's panels with matplotlib on Grafana's 24-column grid, in its dark theme.

Time series as lines, stats as big numbers coloured by their thresholds, bar gauges as bars,
tables as tables and heatmaps as bucket counts over time; the numbers and colours come from
:mod:`.preview_cells`. A preview, not a pixel-perfect copy of Grafana.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gpu_health.mixin.dashquery import DashboardResult, PanelResult
from gpu_health.mixin.preview_cells import (
    all_series,
    format_value,
    table_rows,
    threshold_colour,
    value_mapping,
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
#: Pixels per grid unit (Grafana: 30 px rows; a 1600 px wide dashboard has ~66 px columns).
ROW_PX = 30
COL_PX = 66


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

    times = [t for s in all_series(panel) for t in s.times]
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

    series = all_series(panel)
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
    series = all_series(panel)
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
        mapped = value_mapping(s.last, fieldconfig)
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
    series = sorted(all_series(panel), key=lambda s: s.name)[:12]
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

    series = all_series(panel)
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
