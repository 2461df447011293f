"""End to end with real processes: the exporter on a simulated fleet with an injected XID 79,
Prometheus with the generated rules, Alertmanager with the shipped configuration, and a local
receiver checking what PagerDuty and Slack would receive — the page, then the resolve.

XID 79 does not clear by itself (on real hardware nor in the simulator, where the GPU stays lost):
the remedy is a node reboot. The test "reboots" by restarting the exporter on the same port
without the fault; the GPU answers again and the alert resolves."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from gpu_health import stack
from gpu_health.demo.notify_sink import Notification, NotificationSink, local_alertmanager_config
from tests.conftest import AlertmanagerFactory, PrometheusFactory
from tests.mixin.test_mixin_integration import JOB, write_fast_rules

REPO = Path(__file__).resolve().parents[2]
KEY = "e2e0e2e0e2e0e2e0e2e0e2e0e2e0e2e0"
ALERT = "GPUFallenOffBus"


def _pd(notes: list[Notification], action: str) -> list[Notification]:
    return [
        n
        for n in notes
        if n.service == "pagerduty"
        and n.payload.get("event_action") == action
        and n.payload.get("payload", {}).get("class") == ALERT
    ]


def _slack(notes: list[Notification], status: str) -> list[Notification]:
    return [
        n
        for n in notes
        if n.service == "slack"
        and any(
            a.get("title", "").startswith(f"[{status}") and ALERT in a.get("title", "")
            for a in n.payload.get("attachments", [])
        )
    ]


@pytest.mark.slow
@pytest.mark.integration
def test_xid79_pages_pagerduty_and_slack_then_resolves(
    sim_exporter_factory: Callable[..., stack.Server],
    prometheus_factory: PrometheusFactory,
    alertmanager_factory: AlertmanagerFactory,
    tmp_path: Path,
) -> None:
    pytest.importorskip("gpu_health.sim.live")
    with NotificationSink(expected_routing_key=KEY) as sink:
        config = local_alertmanager_config(
            REPO / "alertmanager" / "alertmanager.yml", tmp_path / "am", sink.url, KEY, fast=True
        )
        alertmanager = alertmanager_factory(config)
        exporter = sim_exporter_factory(
            "--sim-gpus", "4", "--sim-fault", "gpu=1,fault=xid79,after=8s"
        )
        prometheus = prometheus_factory(
            scrape_targets={JOB: [f"127.0.0.1:{exporter.port}"]},
            rule_files=write_fast_rules(tmp_path / "rules"),
            alertmanagers=[f"127.0.0.1:{alertmanager.port}"],
            extra_args=["--rules.alert.resend-delay=1s"],
        )

        notes = sink.wait_for(lambda ns: bool(_pd(ns, "trigger") and _slack(ns, "FIRING")), 45)
        assert not _pd(notes, "resolve")

        # the node reboot: the exporter comes back without the fault, GPU 1 answers again
        exporter.stop()
        sim_exporter_factory("--sim-gpus", "4", port=exporter.port)
        notes = sink.wait_for(lambda ns: bool(_pd(ns, "resolve") and _slack(ns, "RESOLVED")), 45)
        stack.wait_for_query(prometheus.url, f'gpu_up{{job="{JOB}", gpu="1"}} == 1', timeout=10)

    # everything delivered is something PagerDuty and Slack would accept
    assert [(n.service, n.errors) for n in notes if n.errors] == []

    trigger = _pd(notes, "trigger")[0].payload
    resolve = _pd(notes, "resolve")[0].payload
    assert trigger["routing_key"] == KEY
    assert trigger["dedup_key"] and resolve["dedup_key"] == trigger["dedup_key"]
    assert trigger["payload"]["severity"] == "critical"
    assert trigger["payload"]["source"] == "sim-node"
    summary = trigger["payload"]["summary"]
    assert (
        summary.startswith(f"{ALERT} on sim-node: GPU 1 (") and "GPU fell off the bus." in summary
    )
    firing = trigger["payload"]["custom_details"]["firing"]
    assert "stopped answering" in firing and "Health score: " in firing
    assert trigger["links"][0]["href"].endswith(f"/docs/runbooks/{ALERT}.md")

    slack_firing = _slack(notes, "FIRING")[0].payload["attachments"][0]
    assert slack_firing["title"] == f"[FIRING:1] {ALERT} on sim-node"
    assert slack_firing["color"] == "danger"
    assert "*GPU 1 (" in slack_firing["text"] and "Runbook: " in slack_firing["text"]
    slack_resolved = _slack(notes, "RESOLVED")[0].payload["attachments"][0]
    assert (
        slack_resolved["color"] == "good"
        and "Resolved: GPU fell off the bus." in (slack_resolved["text"])
    )
    # the other GPUs never paged
    assert all("GPU 1 (" in n.payload["payload"]["summary"] for n in _pd(notes, "trigger"))
