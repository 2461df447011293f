"""The report as one self-contained HTML file: inline CSS and SVG, no script, no network.

The page itself is the Jinja2 template ``templates/report.html.j2``, rendered with autoescape on,
so a hostile label value (a GPU model or node name holding markup) is shown as text, never run.
Only the SVG charts are marked safe: :mod:`.svg` builds them from numbers and escapes its labels.
This module prepares what the template cannot compute itself (the time stamp and the charts).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from functools import cache
from typing import Any

import jinja2
from markupsafe import Markup

from gpu_health.report import svg, text
from gpu_health.report.model import ACTIONS, HTML_ROWS, FleetReport
from gpu_health.scorer.factor_labels import factor_label

TEMPLATE = "report.html.j2"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _money(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _whole(value: float | None) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.0f}"


def _shown(rows: Sequence[Any], section: str) -> Sequence[Any]:
    """The rows of a long list the page shows (the first :data:`HTML_ROWS` of them)."""
    return rows[: HTML_ROWS[section]]


def _left_out(report: FleetReport, section: str) -> str:
    """The "… and N more" line under a cut list ("" when it shows every row): how many rows
    the page left out, and the query that lists them all (or, for the risk ranking, --top)."""
    if section == "risks":
        lines = text.ranking_left_out(report)
    else:
        rows = getattr(report, section)
        lines = text.more(
            len(rows) - HTML_ROWS[section],
            text.ROWS_OF[section],
            f"all: {text.see_all(section, report)}",
        )
    return "".join(lines)


@cache
def environment() -> jinja2.Environment:
    """The template environment: package templates, autoescape, and a typo is an error."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("gpu_health.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )
    env.filters.update(
        pct=_pct,
        money=_money,
        whole=_whole,
        factor_label=factor_label,
        shown=_shown,
        left_out=_left_out,
        action_cell=text.action_cell,
        unvalued_line=text.unvalued_line,
    )
    return env


def charts(report: FleetReport) -> list[tuple[str, Markup]]:
    """(title, inline SVG) for each fleet chart that has data, in page order."""
    out: list[tuple[str, str]] = []
    if report.grades:
        values = [float(v) for v in report.grades.values()]
        out.append(("GPUs by health grade", svg.bar_chart("grades", list(report.grades), values)))
    if report.scores:
        out.append(
            (
                "Overall health score distribution",
                svg.histogram("health-distribution", report.scores, 0, 100, 10),
            )
        )
    if report.actions:
        values = [float(report.actions.get(a, 0)) for a in ACTIONS]
        out.append(("Recommended actions", svg.bar_chart("actions", list(ACTIONS), values)))
    for name, points in report.trends.items():
        out.append((f"Trend: {name}", svg.line_chart(f"trend-{name}", points)))
    # svg escapes every label it draws; the rest of each chart is numbers and fixed markup.
    return [(title, Markup(chart)) for title, chart in out]


def render(report: FleetReport) -> str:
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(report.generated_at))
    template = environment().get_template(TEMPLATE)
    return template.render(report=report, when=when, charts=charts(report))
