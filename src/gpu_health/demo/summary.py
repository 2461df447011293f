"""The demo's live summary: fleet health, riskiest GPUs, alerts and notifications, in a terminal.

The numbers come from the same queries as ``gpu-health report`` (its
:class:`~gpu_health.report.gather.Gatherer`), run against the demo's Prometheus, so what the demo
shows is what the report would say. On a terminal the summary redraws in place; piped, it prints
plain blocks (no escape codes) less often.
"""

from __future__ import annotations

import json
import time
import urllib.error
from collections.abc import Sequence
from dataclasses import dataclass

from gpu_health import stack
from gpu_health.demo.notify_sink import Notification
from gpu_health.errors import UserError
from gpu_health.report.gather import Gatherer
from gpu_health.report.model import FleetReport
from gpu_health.report.text import action_cell, table

CLEAR = "\x1b[H\x1b[2J"
TOP_GPUS = 5
LAST_NOTIFICATIONS = 5


@dataclass
class Endpoint:
    name: str
    url: str


def targets_up(prometheus_url: str) -> dict[str, str]:
    """Scrape job -> health of its target ('up', 'down' or 'unknown')."""
    payload = json.loads(stack.http_get(f"{prometheus_url}/api/v1/targets?state=active"))
    return {
        str(t["labels"].get("job", "?")): str(t.get("health", "unknown"))
        for t in payload["data"]["activeTargets"]
    }


def gather(prometheus_url: str) -> FleetReport:
    """The report sections the summary shows (not the XIDs and trends: they cost range queries)."""
    gatherer = Gatherer(prometheus_url, "1h", timeout_hint="")  # the demo has no such option
    # "states" first: the risk ranking puts failed and absent GPUs on top (one state model)
    return gatherer.gather("ours", TOP_GPUS, ("inventory", "states", "health", "risk", "alerts"))


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def render(
    title: str,
    endpoints: Sequence[Endpoint],
    report: FleetReport | None,
    targets: dict[str, str],
    notifications: Sequence[Notification],
    error: str = "",
) -> str:
    """The summary as plain text."""
    out = [f"{title}    {time.strftime('%H:%M:%S')}", ""]
    for endpoint in endpoints:
        health = targets.get(endpoint.name)
        state = f"  [{health}]" if health else ""
        out.append(f"  {endpoint.name:<22} {endpoint.url}{state}")
    out.append("")
    if error:
        out += [f"waiting for data: {error}", ""]
    if report is not None:
        if report.grades:
            grades = "  ".join(f"{g} {n}" for g, n in report.grades.items())
            out.append(f"Fleet health ({report.gpu_count} GPUs): {grades}")
        else:
            out.append(f"Fleet health ({report.gpu_count} GPUs): no health scores yet")
        out.append("")
        if report.risks:
            out.append("Riskiest GPUs")
            rows = [
                [
                    r.node,
                    r.gpu,
                    r.uuid[:16],
                    r.state,
                    _pct(r.p7),
                    _pct(r.p30),
                    "-" if r.health is None else f"{r.health:.0f}",
                    action_cell(r.action, r.not_valued),
                ]
                for r in report.risks
            ]
            # The state comes from the exporter's series at this instant; the probabilities and
            # the action from the scorer's last run (up to its --interval old): a GPU that has
            # just fallen off the bus reads "failed" at once, beside the numbers of before.
            headers = [
                "node",
                "gpu",
                "uuid",
                "state",
                "p(fail 7d)",
                "p(fail 30d)",
                "health",
                "action",
            ]
            out += [table(headers, rows), ""]
        else:
            out += ["Riskiest GPUs: the scorer has not published a ranking yet", ""]
        firing = [a for a in report.alerts if a.firing_now]
        out.append(f"Alerts firing: {len(firing)}")
        for alert in firing[:8]:
            where = " ".join(x for x in (alert.node, alert.uuid[:16]) if x)
            out.append(f"  {alert.severity:<8} {alert.alertname} {where}")
        if len(firing) > 8:
            out.append(f"  ... and {len(firing) - 8} more")
        out.append("")
    out.append(f"Notifications received: {len(notifications)}")
    for notification in notifications[-LAST_NOTIFICATIONS:]:
        out.append(
            f"  {time.strftime('%H:%M:%S', time.localtime(notification.received_at))} "
            f"{notification.summary()}"
        )
    return "\n".join(out) + "\n"


def snapshot(
    title: str,
    prometheus_url: str,
    endpoints: Sequence[Endpoint],
    notifications: Sequence[Notification],
) -> str:
    """Query Prometheus and render; a failing query becomes a 'waiting' line, not an error."""
    report: FleetReport | None = None
    targets: dict[str, str] = {}
    error = ""
    try:
        targets = targets_up(prometheus_url)
        report = gather(prometheus_url)
    except (UserError, RuntimeError, urllib.error.URLError, OSError, ValueError, KeyError) as exc:
        error = str(exc)
    return render(title, endpoints, report, targets, notifications, error)
