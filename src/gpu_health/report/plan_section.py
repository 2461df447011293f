"""The fleet-planning section of the HTML report (``gpu-health plan``'s tables).

Planning lives with the scorer (numpy); a base install without it, or a Prometheus without the
scorer's series, gets a note instead of the section rather than a failed report.
"""

from __future__ import annotations

from gpu_health.errors import UserError
from gpu_health.report.model import FleetReport


def add_plan_section(report: FleetReport, prometheus: str, at: float | None) -> None:
    try:
        from gpu_health.scorer.planning.gather import plan_from_prometheus
        from gpu_health.scorer.planning.render import render_html
    except ImportError:
        report.notes.append("fleet planning: the scorer extra is not installed")
        return
    try:
        plan = plan_from_prometheus(prometheus, at)
    except UserError as exc:
        report.notes.append(f"fleet planning: {exc}")
        return
    if not plan.groups:
        report.notes.append("fleet planning: no gpu_failure_probability series (no scorer)")
        return
    report.extra_html.append(render_html(plan))
