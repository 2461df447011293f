"""Inhibition and grouping, checked on a running Alertmanager with the shipped configuration:
alerts are posted to its API and its own verdict (suppressed, inhibitedBy, groups) is read back."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from gpu_health.demo.notify_sink import NotificationSink, local_alertmanager_config
from gpu_health.stack import Server
from tests.alertmanager.am_alerts import post_alerts
from tests.conftest import AlertmanagerFactory

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "alertmanager" / "alertmanager.yml"

pytestmark = pytest.mark.integration


def _gpu(alertname: str, severity: str, node: str, uuid: str, gpu: str = "0") -> dict[str, Any]:
    return {
        "labels": {
            "alertname": alertname,
            "severity": severity,
            "node": node,
            "uuid": uuid,
            "gpu": gpu,
            "model": "H100",
            "instance": f"{node}:9400",
            "job": "gpu-health-exporter",
        },
        "annotations": {"summary": f"{alertname}.", "description": "test"},
    }


def _member(node: str, uuid: str | None = None, gpu: str = "0", **extra: str) -> dict[str, Any]:
    """GPUMassFailureMember as the shipped rules send it: a GPU of the burst (with its uuid) or,
    without ``uuid``, the exporter of ``node`` (instance and job only)."""
    labels = {
        "alertname": "GPUMassFailureMember",
        "severity": "info",
        "instance": f"{node}:9400",
        "job": "gpu-health-exporter",
        **extra,
    }
    if uuid:
        labels |= {"node": node, "uuid": uuid, "gpu": gpu, "model": "H100"}
    return {"labels": labels, "annotations": {"summary": "Member.", "description": "test"}}


def _exporter_down(node: str, **extra: str) -> dict[str, Any]:
    return {
        "labels": {
            "alertname": "GPUExporterDown",
            "severity": "critical",
            "node": node,
            "instance": f"{node}:9400",
            "job": "gpu-health-exporter",
            **extra,
        },
        "annotations": {"summary": "GPU exporter is down.", "description": "test"},
    }


def _post(server: Server, alerts: list[dict[str, Any]]) -> None:
    post_alerts(server.url, alerts)


def _get(server: Server, path: str) -> Any:
    with urllib.request.urlopen(f"{server.url}{path}", timeout=5) as response:
        return json.loads(response.read())


def _key(alert: dict[str, Any]) -> tuple[str, ...]:
    labels = alert["labels"]
    return labels["alertname"], labels.get("uuid") or labels.get("node") or labels["job"]


def _xid_key(alert: dict[str, Any]) -> tuple[str, ...]:
    labels = alert["labels"]
    return labels["alertname"], labels["uuid"], labels.get("xid", "")


def _settled_states(
    server: Server,
    key: Callable[[dict[str, Any]], tuple[str, ...]],
    expected: dict[tuple[str, ...], str],
) -> dict[tuple[str, ...], str]:
    """Alertmanager's verdicts, read until they equal `expected` or 10 s pass.

    The inhibitor learns of a source alert from its own subscription, a moment after the API
    accepted it, so a read straight after the post can list every alert as still active."""
    deadline = time.monotonic() + 10
    while True:
        states = {key(a): a["status"]["state"] for a in _get(server, "/api/v2/alerts")}
        if states == expected or time.monotonic() > deadline:
            return states
        time.sleep(0.2)


@pytest.fixture
def alertmanager(alertmanager_factory: AlertmanagerFactory, tmp_path: Path) -> Iterator[Server]:
    with NotificationSink() as sink:
        config = local_alertmanager_config(CONFIG, tmp_path / "am", sink.url)
        yield alertmanager_factory(config)


def test_inhibition_pairs_on_a_real_alertmanager(alertmanager: Server) -> None:
    alerts = [
        # a GPU that fell off the bus silences its other alerts, not its neighbour's
        _gpu("GPUFallenOffBus", "critical", "n1", "GPU-a"),
        _gpu("GPUHealthCritical", "critical", "n1", "GPU-a"),
        _gpu("GPUThermalSlowdown", "warning", "n1", "GPU-a"),
        _gpu("GPUThermalSlowdown", "warning", "n1", "GPU-b", gpu="1"),
        # a node that is down silences its GPUs' alerts, not another node's
        {
            "labels": {
                "alertname": "GPUExporterDown",
                "severity": "critical",
                "node": "n2",
                "instance": "n2:9400",
                "job": "gpu-health-exporter",
            },
            "annotations": {"summary": "GPU exporter is down.", "description": "test"},
        },
        _gpu("GPUMetricsAbsent", "warning", "n2", "GPU-c"),
        _gpu("GPUMetricsAbsent", "warning", "n3", "GPU-d"),
        # a critical alert silences the warnings of the same GPU only
        _gpu("GPUHealthCritical", "critical", "n4", "GPU-e"),
        _gpu("GPUHealthDegraded", "warning", "n4", "GPU-e"),
        _gpu("GPUHealthDegraded", "warning", "n4", "GPU-f", gpu="1"),
        _gpu("GPUHealthCritical", "critical", "n4", "GPU-f", gpu="1"),
        # a hard fault silences the derived health page of its GPU (GPU-e), not GPU-f's
        _gpu("GPUUncorrectableEccErrors", "critical", "n4", "GPU-e"),
        # alerts without a uuid are not swept up by the GPU rules (the `equal` trap)
        {
            "labels": {
                "alertname": "GPUScorerDown",
                "severity": "warning",
                "instance": "scorer:9836",
                "job": "gpu-health-scorer",
            },
            "annotations": {"summary": "GPU health scorer is down or stale.", "description": "x"},
        },
    ]
    expected: dict[tuple[str, ...], str] = {
        ("GPUFallenOffBus", "GPU-a"): "active",
        ("GPUHealthCritical", "GPU-a"): "suppressed",
        ("GPUThermalSlowdown", "GPU-a"): "suppressed",
        ("GPUThermalSlowdown", "GPU-b"): "active",
        ("GPUExporterDown", "n2"): "active",
        ("GPUMetricsAbsent", "GPU-c"): "suppressed",
        ("GPUMetricsAbsent", "GPU-d"): "active",
        ("GPUHealthCritical", "GPU-e"): "suppressed",
        ("GPUHealthDegraded", "GPU-e"): "suppressed",
        ("GPUHealthDegraded", "GPU-f"): "suppressed",
        ("GPUHealthCritical", "GPU-f"): "active",
        ("GPUUncorrectableEccErrors", "GPU-e"): "active",
        ("GPUScorerDown", "gpu-health-scorer"): "active",
    }
    _post(alertmanager, alerts)
    assert _settled_states(alertmanager, _key, expected) == expected


def test_alerts_group_by_alertname_and_node(alertmanager: Server) -> None:
    _post(
        alertmanager,
        [
            _gpu("GPUThermalSlowdown", "warning", "n1", "GPU-a", gpu="0"),
            _gpu("GPUThermalSlowdown", "warning", "n1", "GPU-b", gpu="1"),
            _gpu("GPUThermalSlowdown", "warning", "n2", "GPU-c", gpu="0"),
        ],
    )
    deadline = time.monotonic() + 10
    while True:
        groups = [
            (g["receiver"]["name"], g["labels"], len(g["alerts"]))
            for g in _get(alertmanager, "/api/v2/alerts/groups")
        ]
        if sum(n for _, _, n in groups) >= 3 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert sorted(groups, key=lambda g: g[1]["node"]) == [
        ("slack", {"alertname": "GPUThermalSlowdown", "node": "n1"}, 2),
        ("slack", {"alertname": "GPUThermalSlowdown", "node": "n2"}, 1),
    ]


def _xid(alertname: str, node: str, uuid: str, xid: str) -> dict[str, Any]:
    alert = _gpu(alertname, "critical", node, uuid)
    alert["labels"]["xid"] = xid
    return alert


def test_remap_failure_silences_its_ecc_pages_on_the_same_gpu(alertmanager: Server) -> None:
    alerts = [
        _gpu("GPURowRemapFailure", "critical", "n1", "GPU-a"),
        _gpu("GPUUncorrectableEccErrors", "critical", "n1", "GPU-a"),
        _xid("GPUXidMemoryError", "n1", "GPU-a", "48"),
        _xid("GPUXidResetRequired", "n1", "GPU-a", "95"),
        # a reset-required XID that is not a memory consequence still pages
        _xid("GPUXidResetRequired", "n1", "GPU-a", "119"),
        # another GPU's uncorrectable errors and XID 48 are its own
        _gpu("GPUUncorrectableEccErrors", "critical", "n1", "GPU-b", gpu="1"),
        _xid("GPUXidMemoryError", "n1", "GPU-b", "48"),
    ]
    expected: dict[tuple[str, ...], str] = {
        ("GPURowRemapFailure", "GPU-a", ""): "active",
        ("GPUUncorrectableEccErrors", "GPU-a", ""): "suppressed",
        ("GPUXidMemoryError", "GPU-a", "48"): "suppressed",
        ("GPUXidResetRequired", "GPU-a", "95"): "suppressed",
        ("GPUXidResetRequired", "GPU-a", "119"): "active",
        ("GPUUncorrectableEccErrors", "GPU-b", ""): "active",
        ("GPUXidMemoryError", "GPU-b", "48"): "active",
    }
    _post(alertmanager, alerts)
    assert _settled_states(alertmanager, _xid_key, expected) == expected


def test_critical_alerts_group_per_gpu_for_pagerduty(alertmanager: Server) -> None:
    """Every critical alert of one GPU is one PagerDuty group (one incident), whatever fires."""
    _post(
        alertmanager,
        [
            _gpu("GPUUncorrectableEccErrors", "critical", "n1", "GPU-a"),
            _xid("GPUXidMemoryError", "n1", "GPU-a", "48"),
            _xid("GPUXidNvlinkError", "n1", "GPU-b", "74"),
        ],
    )
    deadline = time.monotonic() + 10
    while True:
        groups = [
            (g["labels"], sorted(a["labels"]["alertname"] for a in g["alerts"]))
            for g in _get(alertmanager, "/api/v2/alerts/groups")
            if g["receiver"]["name"] == "pagerduty"
        ]
        if sum(len(names) for _, names in groups) >= 3 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert sorted(groups, key=lambda g: g[0]["uuid"]) == [
        ({"node": "n1", "uuid": "GPU-a"}, ["GPUUncorrectableEccErrors", "GPUXidMemoryError"]),
        ({"node": "n1", "uuid": "GPU-b"}, ["GPUXidNvlinkError"]),
    ]


def _pages(notifications: list[Any]) -> list[tuple[str, str, str]]:
    """(event action, summary, dedup key) of each PagerDuty event received."""
    return [
        (n.payload["event_action"], n.payload["payload"]["summary"], n.payload["dedup_key"])
        for n in notifications
        if n.service == "pagerduty"
    ]


def test_an_ecc_page_already_sent_is_not_taken_back_by_a_later_remap_failure(
    alertmanager_factory: AlertmanagerFactory, tmp_path: Path
) -> None:
    """Inhibition mutes alerts from the moment the inhibiting alert fires; it cannot unsend a
    page. With the demo's 1 s group_wait an uncorrectable-ECC alert that fires seconds before
    the row-remap failure (as the simulator's fault does) opens the incident; the remap failure
    then joins it (same group, same dedup key) and the ECC alert is not sent again."""
    with NotificationSink() as sink:
        config = local_alertmanager_config(CONFIG, tmp_path / "am", sink.url, fast=True)
        server = alertmanager_factory(config)
        _post(server, [_gpu("GPUUncorrectableEccErrors", "critical", "n1", "GPU-a")])
        sink.wait_for(lambda ns: len(_pages(ns)) >= 1, timeout=20)
        _post(
            server,
            [
                _gpu("GPUUncorrectableEccErrors", "critical", "n1", "GPU-a"),
                _gpu("GPURowRemapFailure", "critical", "n1", "GPU-a"),
            ],
        )
        pages = _pages(sink.wait_for(lambda ns: len(_pages(ns)) >= 2, timeout=20))
        time.sleep(3)  # nothing else follows (group_interval is 1 s)
        pages = _pages(sink.notifications())
    assert [(action, summary.split(" on ")[0]) for action, summary, _ in pages] == [
        ("trigger", "GPUUncorrectableEccErrors"),
        ("trigger", "GPURowRemapFailure"),
    ]
    assert pages[0][2] == pages[1][2]  # one incident


def test_with_the_shipped_group_wait_the_remap_failure_is_the_first_page(
    alertmanager_factory: AlertmanagerFactory, tmp_path: Path
) -> None:
    """group_wait 10 s: an ECC alert that fired a few seconds before the remap failure is still
    waiting in its group when the remap failure arrives, and is muted before anything is sent."""
    with NotificationSink() as sink:
        config = local_alertmanager_config(CONFIG, tmp_path / "am", sink.url)
        server = alertmanager_factory(config)
        _post(server, [_gpu("GPUUncorrectableEccErrors", "critical", "n1", "GPU-a")])
        time.sleep(5)
        _post(
            server,
            [
                _gpu("GPUUncorrectableEccErrors", "critical", "n1", "GPU-a"),
                _gpu("GPURowRemapFailure", "critical", "n1", "GPU-a"),
            ],
        )
        pages = _pages(sink.wait_for(lambda ns: len(_pages(ns)) >= 1, timeout=30))
    assert [(action, summary.split(" on ")[0]) for action, summary, _ in pages] == [
        ("trigger", "GPURowRemapFailure")
    ]


def test_a_mass_outage_is_one_page(
    alertmanager_factory: AlertmanagerFactory, tmp_path: Path
) -> None:
    """GPUMassFailure's members (GPUMassFailureMember) hold their own per-GPU and per-node
    "down" pages (an outside trial measured 1,000 PagerDuty incidents for 1,000 GPUs lost at
    once); an unrelated fault still pages."""
    with NotificationSink() as sink:
        config = local_alertmanager_config(CONFIG, tmp_path / "am", sink.url)
        server = alertmanager_factory(config)
        mass = {
            "labels": {"alertname": "GPUMassFailure", "severity": "critical"},
            "annotations": {"summary": "Many GPUs stopped answering at once.", "description": "40"},
        }
        # the burst's members (40 GPUs, n9's exporter) come first: `for` 0m, read inline
        members = [_member(f"n{i // 8}", f"GPU-{i:02d}", str(i % 8)) for i in range(40)]
        members.append(_member("n9"))
        _post(server, [mass, *members])
        time.sleep(1)
        lost = [
            _gpu("GPUFallenOffBus", "critical", f"n{i // 8}", f"GPU-{i:02d}", str(i % 8))
            for i in range(40)
        ]
        node_down = {
            "labels": {
                "alertname": "GPUExporterDown",
                "severity": "critical",
                "node": "n9",
                "instance": "n9:9400",
                "job": "gpu-health-exporter",
            },
            "annotations": {"summary": "Exporter down.", "description": "test"},
        }
        ecc = _xid("GPUXidMemoryError", "n7", "GPU-ecc", "48")
        _post(server, [mass, *members, *lost, node_down, ecc])
        sink.wait_for(lambda ns: len(_pages(ns)) >= 2, timeout=40)
        time.sleep(12)  # a further group_wait: nothing else follows
        pages = _pages(sink.notifications())
    summaries = sorted(summary for _, summary, _ in pages)
    assert [s.split(" on ")[0].split(":")[0] for s in summaries] == [
        "GPUMassFailure",
        "GPUXidMemoryError",
    ], pages
    # an alert with no GPU, node or job label names the fleet, not an empty place
    assert summaries[0] == "GPUMassFailure: the fleet - Many GPUs stopped answering at once."
    assert len({key for _, _, key in pages}) == 2


def test_a_gpu_paged_before_a_mass_failure_never_gets_its_resolve(
    alertmanager_factory: AlertmanagerFactory, tmp_path: Path
) -> None:
    """Alertmanager mutes an inhibited alert's resolve as well as its firing: a GPU paged just
    before GPUMassFailure fired, that recovers while the mass failure holds it, sends no resolve,
    not even after the mass failure has resolved; its PagerDuty incident stays open."""
    with NotificationSink() as sink:
        config = local_alertmanager_config(CONFIG, tmp_path / "am", sink.url, fast=True)
        server = alertmanager_factory(config)
        early = _gpu("GPUFallenOffBus", "critical", "n0", "GPU-early")
        _post(server, [early])
        sink.wait_for(lambda ns: len(_pages(ns)) >= 1, timeout=20)
        mass: dict[str, Any] = {
            "labels": {"alertname": "GPUMassFailure", "severity": "critical"},
            "annotations": {"summary": "Many GPUs stopped answering at once.", "description": "40"},
        }
        _post(server, [mass, _member("n0", "GPU-early"), early])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            states = {
                a["labels"].get("uuid"): a["status"]["state"]
                for a in _get(server, "/api/v2/alerts")
            }
            if states.get("GPU-early") == "suppressed":
                break
            time.sleep(0.2)
        assert states.get("GPU-early") == "suppressed", states
        early["endsAt"] = datetime.now(UTC).isoformat()
        _post(server, [early])  # the GPU is back while the mass failure still fires
        time.sleep(4)  # several group_intervals (1 s)
        mass["endsAt"] = datetime.now(UTC).isoformat()
        member = _member("n0", "GPU-early")
        member["endsAt"] = mass["endsAt"]
        _post(server, [mass, member])
        sink.wait_for(lambda ns: any(action == "resolve" for action, _, _ in _pages(ns)), 20)
        time.sleep(4)
        pages = _pages(sink.notifications())
    early_key, mass_key = pages[0][2], pages[1][2]
    assert [(action, key) for action, _, key in pages] == [
        ("trigger", early_key),
        ("trigger", mass_key),
        ("resolve", mass_key),
    ], pages
    assert "GPU-early" in pages[0][1] and "GPUMassFailure" in pages[1][1]


def test_a_mass_failure_mutes_its_members_only(
    alertmanager_factory: AlertmanagerFactory, tmp_path: Path
) -> None:
    """While GPUMassFailure fires, only the burst's members are muted: a GPU that falls off the
    bus, or an exporter that dies, later in the hold pages as usual (it was muted for up to 4 h,
    with `equal: [cluster]`). A member of one cluster does not mute the same uuid or instance
    in another."""
    with NotificationSink() as sink:
        config = local_alertmanager_config(CONFIG, tmp_path / "am", sink.url, fast=True)
        server = alertmanager_factory(config)
        mass = {
            "labels": {"alertname": "GPUMassFailure", "severity": "critical", "cluster": "c1"},
            "annotations": {"summary": "Many GPUs stopped answering at once.", "description": "40"},
        }
        first = [
            mass,
            _member("n1", "GPU-m", cluster="c1"),
            _member("n9", cluster="c1"),
        ]
        _post(server, first)
        time.sleep(1)

        def gpu(alertname: str, severity: str, node: str, uuid: str, cluster: str) -> Any:
            alert = _gpu(alertname, severity, node, uuid)
            alert["labels"]["cluster"] = cluster
            return alert

        alerts = [
            *first,
            # members: muted
            gpu("GPUFallenOffBus", "critical", "n1", "GPU-m", "c1"),
            _exporter_down("n9", cluster="c1"),
            gpu("GPUMetricsAbsent", "warning", "n9", "GPU-n9", "c1"),
            # lost later, outside the burst: delivered
            gpu("GPUFallenOffBus", "critical", "n2", "GPU-new", "c1"),
            _exporter_down("n8", cluster="c1"),
            # the same uuid and instance in another cluster: delivered
            gpu("GPUFallenOffBus", "critical", "n1", "GPU-m", "c2"),
            _exporter_down("n9", cluster="c2"),
        ]
        _post(server, alerts)

        def key(alert: dict[str, Any]) -> tuple[str, ...]:
            labels = alert["labels"]
            return (
                labels["alertname"],
                labels.get("uuid") or labels.get("instance", ""),
                labels.get("cluster", ""),
            )

        expected = {
            ("GPUMassFailure", "", "c1"): "active",
            # a member is muted by its own GPUFallenOffBus (uuid); it mutes in turn
            ("GPUMassFailureMember", "GPU-m", "c1"): "suppressed",
            ("GPUMassFailureMember", "n9:9400", "c1"): "active",
            ("GPUFallenOffBus", "GPU-m", "c1"): "suppressed",
            ("GPUExporterDown", "n9:9400", "c1"): "suppressed",
            ("GPUMetricsAbsent", "GPU-n9", "c1"): "suppressed",
            ("GPUFallenOffBus", "GPU-new", "c1"): "active",
            ("GPUExporterDown", "n8:9400", "c1"): "active",
            ("GPUFallenOffBus", "GPU-m", "c2"): "active",
            ("GPUExporterDown", "n9:9400", "c2"): "active",
        }
        assert _settled_states(server, key, expected) == expected
        sink.wait_for(lambda ns: len(_pages(ns)) >= 5, timeout=20)
        time.sleep(3)  # several group_intervals (1 s): nothing else follows
        notifications = sink.notifications()
    pages = sorted(summary.split(" - ")[0] for _, summary, _ in _pages(notifications))
    assert len(pages) == 5, pages
    assert pages[0].startswith("GPUExporterDown") and "n8" in pages[0], pages
    assert pages[1].startswith("GPUExporterDown") and "n9" in pages[1], pages  # cluster c2
    assert pages[2].startswith("GPUFallenOffBus") and "GPU-m" in pages[2], pages  # cluster c2
    assert pages[3].startswith("GPUFallenOffBus") and "GPU-new" in pages[3], pages
    assert pages[4].startswith("GPUMassFailure"), pages
    assert not [n for n in notifications if "GPUMassFailureMember" in json.dumps(n.payload)]
