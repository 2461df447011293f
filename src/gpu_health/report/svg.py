"""Tiny inline-SVG charts, so the HTML report needs no script, font or network to render."""

from __future__ import annotations

import html
import math
from collections.abc import Sequence

WIDTH = 560
HEIGHT = 220
PAD_LEFT = 48
PAD_BOTTOM = 36
PAD_TOP = 16
PAD_RIGHT = 12
AXIS = "#555"
#: Grade colours, best to worst (also used for actions).
PALETTE = ["#1a9850", "#91cf60", "#fee08b", "#fc8d59", "#d73027", "#4575b4", "#762a83"]


def _esc(text: str) -> str:
    return html.escape(text, quote=True)


def _frame(name: str, body: str) -> str:
    return (
        f'<svg class="chart" data-chart="{_esc(name)}" role="img" aria-label="{_esc(name)}" '
        f'xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}">{body}</svg>'
    )


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    exponent = math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        candidate = step * 10**exponent
        if candidate >= value:
            return float(candidate)
    return float(10 ** (exponent + 1))


def _y_axis(top: float) -> str:
    plot_h = HEIGHT - PAD_TOP - PAD_BOTTOM
    parts = []
    for i in range(5):
        value = top * i / 4
        y = HEIGHT - PAD_BOTTOM - plot_h * i / 4
        label = f"{value:.3g}"
        parts.append(
            f'<line x1="{PAD_LEFT}" x2="{WIDTH - PAD_RIGHT}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="#ddd"/><text x="{PAD_LEFT - 6}" y="{y + 4:.1f}" font-size="11" '
            f'text-anchor="end" fill="{AXIS}">{label}</text>'
        )
    return "".join(parts)


def bar_chart(
    name: str,
    labels: Sequence[str],
    values: Sequence[float],
    colours: Sequence[str] | None = None,
) -> str:
    """Vertical bars, one colour per bar (palette order by default), value printed above each."""
    top = _nice_max(max(values, default=0.0))
    plot_w = WIDTH - PAD_LEFT - PAD_RIGHT
    plot_h = HEIGHT - PAD_TOP - PAD_BOTTOM
    slot = plot_w / max(len(values), 1)
    body = [_y_axis(top)]
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        h = plot_h * value / top
        x = PAD_LEFT + i * slot + slot * 0.15
        y = HEIGHT - PAD_BOTTOM - h
        colour = colours[i] if colours else PALETTE[i % len(PALETTE)]
        body.append(
            f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{slot * 0.7:.1f}" '
            f'height="{h:.1f}" fill="{colour}"><title>{_esc(label)}: {value:g}</title></rect>'
            f'<text x="{x + slot * 0.35:.1f}" y="{y - 4:.1f}" font-size="11" '
            f'text-anchor="middle">{value:g}</text>'
            f'<text x="{x + slot * 0.35:.1f}" y="{HEIGHT - PAD_BOTTOM + 16}" font-size="11" '
            f'text-anchor="middle" fill="{AXIS}">{_esc(label)}</text>'
        )
    return _frame(name, "".join(body))


def histogram(name: str, values: Sequence[float], low: float, high: float, bins: int) -> str:
    """Counts of ``values`` in ``bins`` equal bins over [low, high]."""
    counts = [0] * bins
    for value in values:
        index = min(bins - 1, max(0, int((value - low) / (high - low) * bins)))
        counts[index] += 1
    width = (high - low) / bins
    labels = [f"{low + i * width:.0f}" for i in range(bins)]
    # Colour each bin like the grade its scores fall in: red at the bottom, green at the top.
    grade_colours = PALETTE[4::-1]
    colours = [grade_colours[min(4, int(5 * i / bins))] for i in range(bins)]
    return bar_chart(name, labels, [float(c) for c in counts], colours)


def line_chart(name: str, points: Sequence[tuple[float, float]], time_axis: bool = True) -> str:
    """One series as a polyline with a light fill under it."""
    if not points:
        return _frame(name, '<text x="20" y="40">no data</text>')
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    x0, x1 = min(xs), max(xs)
    top = _nice_max(max(ys))
    plot_w = WIDTH - PAD_LEFT - PAD_RIGHT
    plot_h = HEIGHT - PAD_TOP - PAD_BOTTOM

    def sx(x: float) -> float:
        return PAD_LEFT + (plot_w * (x - x0) / (x1 - x0) if x1 > x0 else plot_w / 2)

    def sy(y: float) -> float:
        return HEIGHT - PAD_BOTTOM - plot_h * y / top

    coords = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in points)
    base = HEIGHT - PAD_BOTTOM
    area = f"{sx(xs[0]):.1f},{base} {coords} {sx(xs[-1]):.1f},{base}"
    span_h = (x1 - x0) / 3600
    ticks = "".join(
        f'<text x="{sx(x0 + (x1 - x0) * i / 4):.1f}" y="{HEIGHT - PAD_BOTTOM + 16}" '
        f'font-size="11" text-anchor="middle" fill="{AXIS}">'
        f"{-span_h * (1 - i / 4):.0f}h</text>"
        for i in range(5)
    )
    body = (
        _y_axis(top)
        + f'<polygon points="{area}" fill="#4575b4" fill-opacity="0.15"/>'
        + f'<polyline class="series" points="{coords}" fill="none" stroke="#4575b4" '
        'stroke-width="2"/>' + (ticks if time_axis else "")
    )
    return _frame(name, body)
