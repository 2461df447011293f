"""Report sections from the asset inventory: fleet planning and the prices behind sell advice.

Planning lives with the scorer (numpy); a base install without it, or a Prometheus without the
scorer's series, gets a note instead of the section rather than a failed report.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

from gpu_health.errors import UserError
from gpu_health.prometheus_access import PLAIN, Access
from gpu_health.report.model import FleetReport

Query = Callable[[str], list[Any]]


def add_plan_section(
    report: FleetReport, prometheus: str, at: float | None, access: Access = PLAIN
) -> None:
    try:
        from gpu_health.scorer.planning.gather import plan_from_prometheus, prometheus_query
        from gpu_health.scorer.planning.render import render_html
    except ImportError:
        report.notes.append("fleet planning: the scorer extra is not installed")
        return
    try:
        plan = plan_from_prometheus(prometheus, at, access=access)
        sells = sell_prices_html(prometheus_query(prometheus, at, access))
    except UserError as exc:
        report.notes.append(f"fleet planning: {exc}")
        return
    if sells:
        report.extra_html.append(sells)
    if not plan.groups:
        report.notes.append("fleet planning: no gpu_failure_probability series (no scorer)")
        return
    report.extra_html.append(render_html(plan))


def sell_prices_html(query: Query) -> str:
    """Every GPU recommended for sale with the market quote (and its date) behind the price.

    The quote is the one the scorer uses: the longest ``gpu_market_price`` model name contained
    in the GPU's model, newest date first. Without a price table the resale curve applied.
    """
    quotes = [
        (q["metric"].get("model", ""), q["metric"].get("date", ""), float(q["value"][1]))
        for q in query('max by (model, date) (gpu_market_price{condition="used"})')
    ]
    rows = []
    for item in query(
        'max by (node, gpu, uuid, model) (gpu_recommended_action{action="sell"}) == 1'
    ):
        labels = item["metric"]
        model = labels.get("model", "")
        fitting = [q for q in quotes if q[0] and q[0].casefold() in model.casefold()]
        best = max(fitting, key=lambda q: (len(q[0]), q[1]), default=None)
        price = f"{best[2]:,.0f} ({best[1]})" if best else "resale curve (no quote)"
        rows.append(
            (labels.get("node", ""), labels.get("gpu", ""), labels.get("uuid", ""), model, price)
        )
    if not rows:
        return ""
    e = html.escape
    parts = [
        "<section id='sell-prices'><h2>Sell recommendations and their market price</h2>",
        "<table><tr><th>node</th><th>gpu</th><th>uuid</th><th>model</th>"
        "<th>market price (date)</th></tr>",
    ]
    parts += [
        "<tr>" + "".join(f"<td>{e(cell)}</td>" for cell in row) + "</tr>" for row in sorted(rows)
    ]
    parts.append("</table></section>")
    return "\n".join(parts)
