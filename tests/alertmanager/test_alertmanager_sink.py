"""The local PagerDuty/Slack stand-in (gpu_health.demo.notify_sink): it accepts what the services
accept and rejects what they reject, and Alertmanager's real notifications pass it."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from gpu_health.demo.notify_sink import (
    NotificationSink,
    local_alertmanager_config,
    validate_pagerduty,
    validate_slack,
)
from tests.alertmanager.am_alerts import fallen_off_bus, post_alerts
from tests.conftest import AlertmanagerFactory

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "alertmanager" / "alertmanager.yml"
KEY = "0123456789abcdef0123456789abcdef"


def _event(**changes: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "routing_key": KEY,
        "event_action": "trigger",
        "dedup_key": "abc",
        "payload": {"summary": "GPU fell off the bus.", "source": "node-a", "severity": "critical"},
    }
    event.update(changes)
    return event


def test_pagerduty_validation_accepts_a_valid_event() -> None:
    assert validate_pagerduty(_event(), KEY) == []
    assert validate_pagerduty(_event(event_action="resolve", payload=None), KEY) == []


@pytest.mark.parametrize(
    "event, error",
    [
        (_event(routing_key=""), "routing_key is required"),
        (_event(routing_key="x" * 32), "routing_key does not match"),
        (_event(event_action="fire"), "event_action must be"),
        (_event(payload=None), "payload is required"),
        (_event(payload={"source": "n", "severity": "critical"}), "payload.summary is required"),
        (
            _event(payload={"summary": "s" * 1025, "source": "n", "severity": "critical"}),
            "longer than 1024",
        ),
        (_event(payload={"summary": "s", "severity": "critical"}), "payload.source is required"),
        (_event(payload={"summary": "s", "source": "n", "severity": "page"}), "severity must be"),
        (_event(event_action="resolve", dedup_key=None), "dedup_key is required to resolve"),
        (_event(dedup_key="d" * 256), "at most 255"),
        (_event(links=[{"text": "no href"}]), "href"),
    ],
)
def test_pagerduty_validation_rejects_what_pagerduty_rejects(
    event: dict[str, Any], error: str
) -> None:
    errors = validate_pagerduty(event, KEY)
    assert any(error in e for e in errors), errors


def test_slack_validation() -> None:
    assert validate_slack({"text": "hello"}) == []
    assert validate_slack({"attachments": [{"title": "t", "text": "x"}]}) == []
    assert validate_slack({"blocks": [{"type": "section"}]}) == []
    assert "no_text" in validate_slack({"channel": "#x"})[0]
    assert "no_text" in validate_slack({"text": "  "})[0]
    assert any("msg_too_long" in e for e in validate_slack({"text": "x" * 40_001}))
    assert any("attachments" in e for e in validate_slack({"attachments": [{}] * 101}))
    assert any("attachment has no text" in e for e in validate_slack({"attachments": [{}]}))


def _post(url: str, body: bytes) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_sink_answers_like_the_services_over_http() -> None:
    with NotificationSink(expected_routing_key=KEY) as sink:
        assert _post(sink.pagerduty_url, json.dumps(_event()).encode())[0] == 202
        status, body = _post(sink.pagerduty_url, json.dumps(_event(routing_key="no")).encode())
        assert status == 400 and b"routing_key" in body
        assert _post(sink.slack_url, b'{"text": "hi"}') == (200, b"ok")
        assert _post(sink.slack_url, b"not json") == (400, b"invalid_payload")
        assert _post(sink.url + "/elsewhere", b"{}")[0] == 404
        with urllib.request.urlopen(sink.url + "/notifications", timeout=5) as response:
            listed = json.loads(response.read())
    assert [(n["service"], bool(n["errors"])) for n in listed] == [
        ("pagerduty", False),
        ("pagerduty", True),
        ("slack", False),
        ("slack", True),
    ]


def test_sink_cli_help_and_one_line_error(tmp_path: Path) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "gpu_health.demo.notify_sink", *args],
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )

    assert "PagerDuty" in run("--help").stdout
    missing = run("--port", "0", "--routing-key-file", str(tmp_path / "nope"))
    assert missing.returncode == 1
    assert missing.stderr.count("\n") == 1 and "nope" in missing.stderr


def _am_alert(ends: str | None = None) -> list[dict[str, Any]]:
    return [fallen_off_bus(ends)]


@pytest.mark.integration
def test_alertmanager_notifications_pass_the_sink_then_resolve(
    alertmanager_factory: AlertmanagerFactory, tmp_path: Path
) -> None:
    """Alertmanager's real PagerDuty and Slack requests, rendered with our templates."""
    with NotificationSink(expected_routing_key=KEY) as sink:
        config = local_alertmanager_config(CONFIG, tmp_path / "am", sink.url, KEY, fast=True)
        server = alertmanager_factory(config)
        post_alerts(server.url, _am_alert())
        sink.wait_for(lambda ns: {n.service for n in ns} == {"pagerduty", "slack"}, 30)

        time.sleep(1)
        now = datetime.now(UTC).isoformat()
        post_alerts(server.url, _am_alert(ends=now))
        notes = sink.wait_for(
            lambda ns: (
                any(
                    n.service == "pagerduty" and n.payload.get("event_action") == "resolve"
                    for n in ns
                )
                and sum(n.service == "slack" for n in ns) >= 2
            ),
            30,
        )

    assert [n.errors for n in notes] == [[] for _ in notes]
    pd = [n.payload for n in notes if n.service == "pagerduty"]
    trigger, resolve = pd[0], pd[-1]
    assert trigger["event_action"] == "trigger" and resolve["event_action"] == "resolve"
    assert trigger["dedup_key"] == resolve["dedup_key"]
    assert trigger["payload"]["severity"] == "critical"
    assert trigger["payload"]["source"] == "node-a"
    # The node is named once (the GPU's own "on node-a" would repeat it).
    assert trigger["payload"]["summary"] == (
        "GPUFallenOffBus on node-a: GPU 1 (NVIDIA H100 80GB HBM3, GPU-1a) - GPU fell off the bus."
    )
    assert "Health score: 0" in trigger["payload"]["custom_details"]["firing"]
    assert (
        "Top risk factors: corrected memory errors per day, last 24 h."
        in (trigger["payload"]["custom_details"]["firing"])
    )
    assert trigger["links"][0]["href"].endswith("GPUFallenOffBus.md")
    slack = [n.payload for n in notes if n.service == "slack"]
    first, last = slack[0]["attachments"][0], slack[-1]["attachments"][0]
    assert first["title"] == "[FIRING:1] GPUFallenOffBus on node-a"
    assert "GPU 1 stopped answering" in first["text"] and "Runbook:" in first["text"]
    assert "Top risk factors: corrected memory errors per day, last 24 h" in first["text"]
    assert last["title"].startswith("[RESOLVED]") and last["color"] == "good"


@pytest.mark.integration
def test_one_page_per_gpu_names_each_alert_and_the_xid(
    alertmanager_factory: AlertmanagerFactory, tmp_path: Path
) -> None:
    """Two critical alerts of one GPU make one PagerDuty incident whose summary names both
    alerts and the XID code with its meaning; another GPU gets its own incident. Each alert
    has its own runbook, as the rules give them: every page links one (the class's; with no
    runbook shared, the link and the runbook detail were empty) and lists each alert's."""
    ue, xid48, other = _am_alert(), _am_alert(), _am_alert()
    runbooks = {
        name: f"https://example.com/runbooks/{name}.md"
        for name in ("GPUUncorrectableEccErrors", "GPUXidMemoryError")
    }
    ue[0]["labels"]["alertname"] = "GPUUncorrectableEccErrors"
    ue[0]["annotations"].update(
        summary="GPU has uncorrectable ECC errors.",
        runbook_url=runbooks["GPUUncorrectableEccErrors"],
    )
    xid48[0]["labels"].update(alertname="GPUXidMemoryError", xid="48")
    xid48[0]["annotations"].update(
        summary="GPU reported an XID error.",
        xid_meaning="XID 48: double-bit ECC error",
        runbook_url=runbooks["GPUXidMemoryError"],
    )
    other[0]["labels"].update(uuid="GPU-2a", gpu="2")
    with NotificationSink(expected_routing_key=KEY) as sink:
        config = local_alertmanager_config(CONFIG, tmp_path / "am", sink.url, KEY, fast=True)
        server = alertmanager_factory(config)
        post_alerts(server.url, ue + xid48 + other)

        def two_gpus_paged(notes: list[Any]) -> bool:
            summaries = [n.payload["payload"]["summary"] for n in notes if n.service == "pagerduty"]
            return any("GPU-2a" in s for s in summaries) and any("XID 48" in s for s in summaries)

        notes = sink.wait_for(two_gpus_paged, 30)
        time.sleep(2)  # anything further Alertmanager would send for these groups
        notes = sink.notifications("pagerduty")

    assert [n.errors for n in notes] == [[] for _ in notes]
    by_key: dict[str, list[dict[str, Any]]] = {}
    for note in notes:
        by_key.setdefault(note.payload["dedup_key"], []).append(note.payload)
    assert len(by_key) == 2
    gpu1 = next(p for ps in by_key.values() for p in ps if "GPU-1a" in p["payload"]["summary"])
    assert gpu1["payload"]["summary"] == (
        "GPUUncorrectableEccErrors, GPUXidMemoryError on node-a: GPU 1 (NVIDIA H100 80GB HBM3,"
        " GPU-1a) - GPU has uncorrectable ECC errors.; XID 48: double-bit ECC error"
    )
    assert gpu1["payload"]["class"] == "GPUUncorrectableEccErrors"
    gpu1_pages = [p for ps in by_key.values() for p in ps if "GPU-1a" in p["payload"]["summary"]]
    for page in gpu1_pages:
        linked = runbooks[page["payload"]["class"]]
        assert page["links"] == [{"href": linked, "text": "Runbook"}]
        assert page["payload"]["custom_details"]["runbook"] == linked
    firing = gpu1["payload"]["custom_details"]["firing"]
    assert all(f"Runbook: {url}" in firing for url in runbooks.values()), firing


@pytest.mark.integration
def test_hostile_label_values_cannot_format_slack_or_swell_a_notification(
    alertmanager_factory: AlertmanagerFactory, tmp_path: Path
) -> None:
    """A node name, model or UUID comes from outside (a node's configuration, a driver). In
    Slack, <!channel> would notify a whole channel and <http://x|text> forge a link, a newline
    would forge a line, and a 100 KB model made a 200,000-character message Slack refuses
    (msg_too_long: the page was lost). Values are escaped for Slack, one line, and cut."""
    hostile = _am_alert()
    labels, annotations = hostile[0]["labels"], hostile[0]["annotations"]
    node = "evil <!channel> <http://evil.example/login|re-authenticate> & co\n:white_check_mark:"
    labels.update(node=node, model="M" * 100_000, uuid="GPU-1a\x1b]0;pwned\x07")
    annotations["description"] = f"GPU 1 ({labels['model']}) on {node} stopped answering."
    with NotificationSink(expected_routing_key=KEY) as sink:
        config = local_alertmanager_config(CONFIG, tmp_path / "am", sink.url, KEY, fast=True)
        server = alertmanager_factory(config)
        post_alerts(server.url, hostile)
        sink.wait_for(lambda notes: {n.service for n in notes} >= {"slack", "pagerduty"}, 30)
        slack = sink.notifications("slack")[0]
        page = sink.notifications("pagerduty")[0]

    assert slack.errors == [] and page.errors == []  # accepted as the services would
    text = json.dumps(slack.payload)
    for raw in ("<!channel>", "<http://evil", "& co", "\\u001b", "\\u0007"):
        assert raw not in text, raw
    assert "&lt;!channel&gt;" in text and "&amp; co" in text
    attachment_text = slack.payload["attachments"][0]["text"]
    assert "\n:white_check_mark:" not in attachment_text  # no forged line
    assert len(attachment_text) < 5_000
    details = json.dumps(page.payload)
    assert "\\u001b" not in details and len(details) < 10_000


@pytest.mark.integration
def test_an_unknown_or_missing_severity_reaches_slack_and_info_does_not(
    alertmanager_factory: AlertmanagerFactory, tmp_path: Path
) -> None:
    """A renamed severity ("page") and a missing one are posted to Slack, rendered; "info" is
    the one severity dropped on purpose, and none of them pages."""
    alerts = []
    for name, severity in (("RenamedSeverity", "page"), ("NoSeverity", None), ("Info", "info")):
        alert = _am_alert()[0]
        alert["labels"]["alertname"] = name
        if severity:
            alert["labels"]["severity"] = severity
        else:
            del alert["labels"]["severity"]
        alerts.append(alert)
    with NotificationSink(expected_routing_key=KEY) as sink:
        config = local_alertmanager_config(CONFIG, tmp_path / "am", sink.url, KEY, fast=True)
        server = alertmanager_factory(config)
        post_alerts(server.url, alerts)
        sink.wait_for(lambda ns: sum(n.service == "slack" for n in ns) >= 2, 30)
        time.sleep(3)  # group_wait and group_interval are 1 s: anything else has arrived
        notes = sink.notifications()
    assert [n.errors for n in notes] == [[] for _ in notes]
    assert sorted(n.payload["attachments"][0]["title"] for n in notes if n.service == "slack") == [
        "[FIRING:1] NoSeverity on node-a",
        "[FIRING:1] RenamedSeverity on node-a",
    ]
    assert [n for n in notes if n.service == "pagerduty"] == []
