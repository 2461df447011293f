"""Alerts as Prometheus sends them to Alertmanager, for the Alertmanager tests."""

from __future__ import annotations

import json
import urllib.request
from typing import Any


def fallen_off_bus(ends: str | None = None) -> dict[str, Any]:
    """GPU 1 of node-a off the bus, with the annotations the shipped rules give it; ``ends``
    (RFC 3339) marks it resolved."""
    alert: dict[str, Any] = {
        "labels": {
            "alertname": "GPUFallenOffBus",
            "severity": "critical",
            "node": "node-a",
            "gpu": "1",
            "uuid": "GPU-1a",
            "model": "NVIDIA H100 80GB HBM3",
            "instance": "node-a:9400",
        },
        "annotations": {
            "summary": "GPU fell off the bus.",
            "description": "GPU 1 stopped answering (XID 79 or gpu_up = 0).",
            "health_score": "0",
            "risk_factors": "corrected memory errors per day, last 24 h",
            "runbook_url": "https://example.com/runbooks/GPUFallenOffBus.md",
        },
    }
    if ends:
        alert["endsAt"] = ends
    return alert


def post_alerts(url: str, alerts: list[dict[str, Any]]) -> None:
    """POST ``alerts`` to the Alertmanager at ``url`` (its v2 API), as Prometheus does."""
    request = urllib.request.Request(
        f"{url}/api/v2/alerts",
        data=json.dumps(alerts).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 200
