"""The report as plain-text tables for a terminal (no colour codes, so it pipes cleanly)."""

from __future__ import annotations

import math
import re
import time
from collections.abc import Sequence

from gpu_health.report.model import HTML_ROWS, TEXT_ROWS, FleetReport
from gpu_health.safetext import counted_by_name, gpus_counted, one_line
from gpu_health.scorer.econ.params import is_vgpu_profile, profiles_said
from gpu_health.scorer.factor_labels import factor_label
from gpu_health.telemetry.xids import DCGM_XID_GAUGES

#: Every control character but the newline that separates lines.
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029]")


#: The widest a cell may be (three risk factors in words fit): label values come from outside (a
#: node name of 100 KB made an 8 MB terminal report).
MAX_CELL = 200
#: The longest line printed.
MAX_LINE = 2000
#: What the rows of each long list are, for its "… and N more" line.
ROWS_OF = {"unhealthy": "GPUs not healthy", "xids": "(GPU, XID) rows", "alerts": "alerts"}


def _cell(text: str) -> str:
    """One line without control characters, at most :data:`MAX_CELL` characters."""
    flat = one_line(text, MAX_CELL + 1)
    return flat if len(flat) <= MAX_CELL else flat[: MAX_CELL - 3] + "..."


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns sized to their widest cell (cells cut to one bounded line)."""
    rows = [[_cell(c) for c in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    rule = "  ".join("-" * w for w in widths)
    body = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join([line, rule, *body])


def more(left_out: int, what: str, where: str) -> list[str]:
    """The line that ends a cut list: how many rows it left out and where to see them (none
    when nothing was left out)."""
    if left_out <= 0:
        return []
    return [f"… and {left_out:,} more {what} ({where})"]


def ranking_left_out(report: FleetReport) -> list[str]:
    """The "… and N more" line under the risk ranking (cut at --top), in both renderings."""
    return more(
        report.risk_count - len(report.risks),
        "GPUs in the ranking",
        "raise --top; the scorer's /api/v1/gpus ranks them all",
    )


def see_all(section: str, report: FleetReport) -> str:
    """Where every row of a long list can be seen: the PromQL that lists them in Prometheus."""
    if section == "unhealthy":
        return 'gpu_state{state!="healthy"} == 1, from gpu-health-scorer'
    if section == "xids":
        if report.schema == "dcgm":
            return " or ".join(f"changes({g}[{report.period}]) > 0" for g in DCGM_XID_GAUGES)
        return f"increase(gpu_xid_errors_total[{report.period}]) > 0"
    return f'max_over_time(ALERTS{{alertstate="firing"}}[{report.period}])'


def _cut(section: str, rows: int, report: FleetReport) -> list[str]:
    """The "… and N more" line of a terminal list of ``rows`` rows (none when all are shown):
    the HTML report lists more, and the PromQL lists them all."""
    return more(
        rows - TEXT_ROWS[section],
        ROWS_OF[section],
        f"the --html report lists up to {HTML_ROWS[section]:,}; all: {see_all(section, report)}",
    )


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _money(value: float | None, currency: str) -> str:
    return "-" if value is None else f"{value:,.0f} {currency}"


def action_cell(action: str | None, not_valued: str) -> str:
    """A GPU's recommended action, or why it has none: "not valued (no economics for model
    X)" where the scorer said so, "-" where nothing says why."""
    if action:
        return action
    return f"not valued ({not_valued})" if not_valued else "-"


#: Models the "not valued" line names at most; the others are counted.
MAX_UNVALUED_MODELS = 10


def unvalued_line(report: FleetReport) -> str:
    """Under the recommended actions: the GPUs with no valuation, by model, and how to add
    their economics ("" when every GPU was valued)."""
    if not report.unvalued:
        return ""
    named = counted_by_name(report.unvalued, MAX_UNVALUED_MODELS)
    profiles = sum(1 for model in report.unvalued if is_vgpu_profile(model))
    said = f"; {profiles_said(profiles, len(report.unvalued))}" if profiles else ""
    return (
        f"not valued: {gpus_counted(sum(report.unvalued.values()))} (no NPV, no recommended "
        "action), "
        f"no economics for model {named}; add an entry for each model under models: to the "
        "economics YAML the scorer reads (gpu-health-scorer --econ.params, docs/economics.md)"
        f"{said}"
    )


def _failure_class(name: str | None, probability: float | None) -> str:
    """``memory 62%``: the scorer's most likely failure class and its share of the hazard."""
    if name is None:
        return "-"
    return name if probability is None else f"{name} {100 * probability:.0f}%"


def _age(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "unknown"
    if seconds <= 0:
        return "-"
    if seconds >= 86400:
        return f"{seconds / 86400:.1f} d"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 60:.0f} min"


def _count(value: int | None) -> str:
    return "-" if value is None else str(value)


def _accuracy(report: FleetReport) -> list[str]:
    """The "Prediction accuracy" section: a table per horizon and window, or its one-line note."""
    if report.accuracy_note:
        return ["Prediction accuracy", report.accuracy_note, ""]
    if not report.accuracy:
        return []  # the section was not gathered
    rows = [
        [
            a.horizon,
            a.window,
            _pct(a.precision),
            _pct(a.recall),
            "-" if a.lead_days is None else f"{a.lead_days:.1f}",
            _count(a.true_positive),
            _count(a.false_positive),
            _count(a.false_negative),
        ]
        for a in report.accuracy
    ]
    headers = ["horizon", "window", "precision", "recall", "lead time (d)", "TP", "FP", "FN"]
    return ["Prediction accuracy", table(headers, rows), ""]


def render(report: FleetReport) -> str:
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(report.generated_at))
    out = [
        f"GPU fleet report — {report.gpu_count} GPUs, {report.schema} metrics, "
        f"period {report.period}, {when}",
        f"source: {report.prometheus} ({report.engine}); schema {report.schema_reason}",
        "",
    ]
    if report.states:
        out.append("GPU states")
        out.append(table(["state", "GPUs"], [[k, str(n)] for k, n in report.states.items()]))
        if report.unhealthy:
            out.append(
                table(
                    ["node", "gpu", "uuid", "state", "why", "silent for"],
                    [
                        [
                            s.node,
                            s.gpu,
                            s.uuid[:16],
                            s.state,
                            "; ".join(s.reasons) or "-",
                            _age(s.age_s),
                        ]
                        for s in report.unhealthy[: TEXT_ROWS["unhealthy"]]
                    ],
                )
            )
            out += _cut("unhealthy", len(report.unhealthy), report)
        out.append("")
    if report.grades:
        out.append("Health by grade")
        out.append(table(["grade", "GPUs"], [[g, str(n)] for g, n in report.grades.items()]))
        if report.scores:
            mean = sum(report.scores) / len(report.scores)
            out.append(f"mean overall score {mean:.1f}, worst {min(report.scores):.1f}")
        out.append("")
    if report.risks:
        out.append("Riskiest GPUs")
        rows = [
            [
                r.node,
                r.gpu,
                r.uuid[:16],
                r.model,
                r.state,
                _pct(r.p7),
                _pct(r.p30),
                "-" if r.health is None else f"{r.health:.0f}",
                ", ".join(f"{factor_label(name)} {value:+.2f}" for name, value in r.factors) or "-",
                _failure_class(r.failure_class, r.failure_class_probability),
                action_cell(r.action, r.not_valued),
                _money(r.npv.get(r.action or ""), report.currency),
            ]
            for r in report.risks
        ]
        headers = [
            "node",
            "gpu",
            "uuid",
            "model",
            "state",
            "p7d",
            "p30d",
            "health",
            "top factors",
            "likely failure",
            "action",
            "npv",
        ]
        out.append(table(headers, rows))
        out += ranking_left_out(report)
        out.append("")
    if report.actions or report.unvalued:
        out.append("Recommended actions")
        rows = [
            [a, str(n), _money(report.npv_by_action.get(a), "").strip()]
            for a, n in report.actions.items()
        ]
        if report.unvalued:
            rows.append(["not valued", str(sum(report.unvalued.values())), "-"])
        out.append(table(["action", "GPUs", f"total NPV ({report.currency})"], rows))
        if report.fleet_residual_value is not None:
            valued = " (valued GPUs only)" if report.unvalued else ""
            out.append(
                "fleet residual value "
                f"{_money(report.fleet_residual_value, report.currency)}{valued}"
            )
        if report.unvalued:
            out.append(unvalued_line(report))
        out.append("")
    out += _accuracy(report)
    out.append(f"XIDs in the last {report.period}")
    if report.xids:
        out.append(
            table(
                ["node", "uuid", "xid", "count"],
                [
                    [x.node, x.uuid[:16], x.xid, f"{x.count:.0f}"]
                    for x in report.xids[: TEXT_ROWS["xids"]]
                ],
            )
        )
        out += _cut("xids", len(report.xids), report)
    else:
        out.append("none")
    out.append("")
    out.append(f"Alerts in the last {report.period}")
    if report.alerts:
        out.append(
            table(
                ["alert", "severity", "node", "uuid", "now"],
                [
                    [a.alertname, a.severity, a.node, a.uuid[:16], "firing" if a.firing_now else ""]
                    for a in report.alerts[: TEXT_ROWS["alerts"]]
                ],
            )
        )
        out += _cut("alerts", len(report.alerts), report)
    else:
        out.append("none")
    for note in report.notes:
        out.append(f"note: {note}")
    # Label values reach prose lines too (reasons, notes): no ESC, CR or other control
    # character may reach the operator's terminal (an OSC sequence sets the window title, CSI
    # 2J clears the screen), and no line is longer than a table of full cells.
    lines = _CONTROL.sub(" ", "\n".join(out)).split("\n")
    return "\n".join(line[:MAX_LINE] for line in lines) + "\n"
