"""The report as one self-contained HTML file: inline CSS and SVG, no script, no network."""

from __future__ import annotations

import html
import time

from gpu_health.report import svg
from gpu_health.report.model import ACTIONS, FleetReport

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222;
max-width:1200px}
h1{font-size:22px;margin-bottom:4px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd}
.meta{color:#666;font-size:13px}.grid{display:flex;flex-wrap:wrap;gap:16px}
.card{border:1px solid #e3e3e3;border-radius:6px;padding:8px 12px;background:#fafafa}
.card h3{font-size:14px;margin:4px 0 8px}
table{border-collapse:collapse;font-size:13px;margin-top:8px}
th,td{padding:4px 10px;border-bottom:1px solid #eee;text-align:left}
th{background:#f2f2f2}.num{text-align:right}.crit{color:#b30000;font-weight:600}
.note{color:#8a6d00;font-size:13px}
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _card(title: str, chart: str) -> str:
    return f'<div class="card"><h3>{_e(title)}</h3>{chart}</div>'


def _states(report: FleetReport) -> list[str]:
    """GPUs per state, and a table of the GPUs that are not healthy (failed first)."""
    if not report.states:
        return []
    counts = " · ".join(f"{_e(k)} {n}" for k, n in report.states.items())
    parts = [f"<h2>GPU states</h2><p>{counts}</p>"]
    if report.unhealthy:
        parts.append(
            "<table><tr><th>node</th><th>gpu</th><th>uuid</th><th>state</th><th>why</th>"
            "<th>silent for (s)</th></tr>"
        )
        parts += [
            f"<tr{' class=crit' if s.state in ('failed', 'absent') else ''}><td>{_e(s.node)}</td>"
            f"<td>{_e(s.gpu)}</td><td>{_e(s.uuid)}</td><td>{_e(s.state)}</td>"
            f"<td>{_e('; '.join(s.reasons) or '-')}</td><td class='num'>{s.age_s:.0f}</td></tr>"
            for s in report.unhealthy[:200]
        ]
        parts.append("</table>")
    return parts


def render(report: FleetReport) -> str:
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(report.generated_at))
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>GPU fleet report {when}</title><style>{CSS}</style></head><body>",
        "<h1>GPU fleet report</h1>",
        f"<div class='meta'>{report.gpu_count} GPUs · {_e(report.schema)} metrics · period "
        f"{_e(report.period)} · {when} · source {_e(report.prometheus)} ({_e(report.engine)})"
        f" · schema {_e(report.schema_reason)}</div>",
    ]
    parts += _states(report)
    charts = []
    if report.grades:
        charts.append(
            _card(
                "GPUs by health grade",
                svg.bar_chart(
                    "grades", list(report.grades), [float(v) for v in report.grades.values()]
                ),
            )
        )
    if report.scores:
        charts.append(
            _card(
                "Overall health score distribution",
                svg.histogram("health-distribution", report.scores, 0, 100, 10),
            )
        )
    if report.actions:
        charts.append(
            _card(
                "Recommended actions",
                svg.bar_chart(
                    "actions", list(ACTIONS), [float(report.actions.get(a, 0)) for a in ACTIONS]
                ),
            )
        )
    for name, points in report.trends.items():
        charts.append(_card(f"Trend: {name}", svg.line_chart(f"trend-{name}", points)))
    if charts:
        parts.append("<h2>Fleet</h2><div class='grid'>" + "".join(charts) + "</div>")
    if report.risks:
        parts.append("<h2>GPUs ranked by failure risk</h2><table><tr>")
        headers = [
            "node",
            "gpu",
            "uuid",
            "model",
            "state",
            "p 7d",
            "p 30d",
            "health",
            "top risk factors",
            "action",
            f"NPV ({report.currency})",
        ]
        parts.append("".join(f"<th>{h}</th>" for h in headers) + "</tr>")
        for r in report.risks:
            factors = ", ".join(f"{_e(n)} {v:+.2f}" for n, v in r.factors) or "-"
            npv = r.npv.get(r.action or "")
            down = r.state in ("failed", "absent")
            css = " class='crit'" if down or (r.p30 or 0) >= 0.5 else ""
            parts.append(
                f"<tr{css}><td>{_e(r.node)}</td><td>{_e(r.gpu)}</td><td>{_e(r.uuid)}</td>"
                f"<td>{_e(r.model)}</td><td>{_e(r.state)}</td><td class='num'>{_pct(r.p7)}</td>"
                f"<td class='num'>{_pct(r.p30)}</td>"
                f"<td class='num'>{'-' if r.health is None else f'{r.health:.0f}'}</td>"
                f"<td>{factors}</td><td>{_e(r.action or '-')}</td>"
                f"<td class='num'>{'-' if npv is None else f'{npv:,.0f}'}</td></tr>"
            )
        parts.append("</table>")
    if report.actions:
        parts.append(
            "<h2>Recommended actions</h2><table><tr><th>action</th><th>GPUs</th>"
            f"<th>total NPV ({report.currency})</th></tr>"
        )
        for action, count in report.actions.items():
            total = report.npv_by_action.get(action)
            parts.append(
                f"<tr><td>{_e(action)}</td><td class='num'>{count}</td>"
                f"<td class='num'>{'-' if total is None else f'{total:,.0f}'}</td></tr>"
            )
        parts.append("</table>")
        if report.fleet_residual_value is not None:
            parts.append(
                f"<p>Fleet residual value: {report.fleet_residual_value:,.0f} {report.currency}</p>"
            )
    parts.append(f"<h2>XIDs in the last {_e(report.period)}</h2>")
    if report.xids:
        parts.append("<table><tr><th>node</th><th>uuid</th><th>xid</th><th>count</th></tr>")
        parts += [
            f"<tr><td>{_e(x.node)}</td><td>{_e(x.uuid)}</td><td>{_e(x.xid)}</td>"
            f"<td class='num'>{x.count:.0f}</td></tr>"
            for x in report.xids[:100]
        ]
        parts.append("</table>")
    else:
        parts.append("<p>none</p>")
    parts.append(f"<h2>Alerts in the last {_e(report.period)}</h2>")
    if report.alerts:
        parts.append(
            "<table><tr><th>alert</th><th>severity</th><th>node</th><th>uuid</th><th>now</th></tr>"
        )
        parts += [
            f"<tr><td>{_e(a.alertname)}</td><td>{_e(a.severity)}</td><td>{_e(a.node)}</td>"
            f"<td>{_e(a.uuid)}</td><td>{'firing' if a.firing_now else ''}</td></tr>"
            for a in report.alerts[:200]
        ]
        parts.append("</table>")
    else:
        parts.append("<p>none</p>")
    parts += [f"<p class='note'>{_e(note)}</p>" for note in report.notes]
    parts.append("</body></html>")
    return "\n".join(parts)
