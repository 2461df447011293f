"""The shipped Alertmanager configuration: valid for amtool 0.25, secrets only from files, and
every severity routed where the issue says (critical -> PagerDuty + Slack, warning -> Slack,
info -> nowhere, any other severity or none -> Slack)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from gpu_health.stack import find_binary

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "alertmanager" / "alertmanager.yml"
SECRETS = REPO / "alertmanager" / "secrets"

#: Options that would hold a secret inline (Alertmanager 0.25 names).
INLINE_SECRETS = {
    "routing_key",
    "service_key",
    "api_url",
    "slack_api_url",
    "api_key",
    "opsgenie_api_key",
    "victorops_api_key",
    "auth_password",
    "password",
    "bearer_token",
    "credentials",
    "token",
}


def _amtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [find_binary("amtool"), *args], capture_output=True, text=True, check=False
    )


def _walk(node: Any, path: str = "") -> list[tuple[str, str, Any]]:
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            found.append((f"{path}.{key}", key, value))
            found += _walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _walk(value, f"{path}[{index}]")
    return found


def test_amtool_check_config_accepts_it() -> None:
    result = _amtool("check-config", str(CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
    assert "8 inhibit rules" in result.stdout
    assert "2 templates" in result.stdout


def test_secrets_come_only_from_files_with_documented_examples() -> None:
    config = yaml.safe_load(CONFIG.read_text())
    entries = _walk(config)
    inline = [path for path, key, _ in entries if key in INLINE_SECRETS]
    assert inline == []
    files = [(path, value) for path, key, value in entries if key.endswith("_file")]
    assert {path.rsplit(".", 1)[1] for path, _ in files} == {"routing_key_file", "api_url_file"}
    for path, value in files:
        example = SECRETS / f"{Path(value).name}.example"
        assert example.is_file(), f"{path}: no example {example.name}"
        assert Path(value).name in (SECRETS / "README.md").read_text()


def test_config_uses_matchers_not_deprecated_match() -> None:
    keys = {key for _, key, _ in _walk(yaml.safe_load(CONFIG.read_text()))}
    assert not keys & {"match", "match_re", "source_match", "target_match", "source_match_re"}


ROUTES = [
    ({"alertname": "GPUFallenOffBus", "severity": "critical", "node": "n1"}, "pagerduty,slack"),
    ({"alertname": "GPUExporterDown", "severity": "critical"}, "pagerduty,slack"),
    ({"alertname": "GPUThermalSlowdown", "severity": "warning", "node": "n1"}, "slack"),
    ({"alertname": "GPUHealthDegraded", "severity": "warning", "uuid": "GPU-1"}, "slack"),
    ({"alertname": "SomethingInformational", "severity": "info"}, "null"),
    # GPUMassFailure's members only feed inhibition: never a notification
    ({"alertname": "GPUMassFailureMember", "severity": "info", "uuid": "GPU-1"}, "null"),
    # A severity the routes do not name (a rule renamed through criticalSeverity or
    # warningSeverity, a typo) or none at all is delivered, not dropped: only "info" is.
    ({"alertname": "NoSeverityLabel"}, "slack"),
    ({"alertname": "RenamedSeverity", "severity": "page"}, "slack"),
    ({"alertname": "CapitalisedSeverity", "severity": "Critical", "node": "n1"}, "slack"),
    ({"alertname": "EmptySeverity", "severity": ""}, "slack"),
]


@pytest.mark.parametrize(
    "labels, receivers", ROUTES, ids=[r[1] + "-" + r[0]["alertname"] for r in ROUTES]
)
def test_amtool_routes_each_severity(labels: dict[str, str], receivers: str) -> None:
    pairs = [f"{k}={v}" for k, v in labels.items()]
    result = _amtool(
        "config",
        "routes",
        "test",
        f"--config.file={CONFIG}",
        f"--verify.receivers={receivers}",
        *pairs,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == receivers


def test_amtool_route_verification_can_fail() -> None:
    # The routing cases above are only meaningful if a wrong expectation fails.
    result = _amtool(
        "config",
        "routes",
        "test",
        f"--config.file={CONFIG}",
        "--verify.receivers=slack",
        "alertname=GPUFallenOffBus",
        "severity=critical",
    )
    assert result.returncode == 1


# Each inhibition pair: the source pages, the target would notify on its own route. Whether the
# target is actually muted is checked against a running Alertmanager in
# tests/alertmanager/test_alertmanager_inhibition.py.
INHIBITION_PAIRS = [
    (
        {"alertname": "GPUFallenOffBus", "severity": "critical", "node": "n1", "uuid": "GPU-a"},
        {"alertname": "GPUHealthCritical", "severity": "critical", "node": "n1", "uuid": "GPU-a"},
        "pagerduty,slack",
    ),
    (
        {"alertname": "GPUExporterDown", "severity": "critical", "node": "n1"},
        {"alertname": "GPUMetricsAbsent", "severity": "warning", "node": "n1", "uuid": "GPU-a"},
        "slack",
    ),
    (
        {"alertname": "GPUHealthCritical", "severity": "critical", "node": "n1", "uuid": "GPU-a"},
        {"alertname": "GPUHealthDegraded", "severity": "warning", "node": "n1", "uuid": "GPU-a"},
        "slack",
    ),
    (
        {"alertname": "GPURowRemapFailure", "severity": "critical", "node": "n1", "uuid": "GPU-a"},
        {
            "alertname": "GPUXidMemoryError",
            "severity": "critical",
            "node": "n1",
            "uuid": "GPU-a",
            "xid": "48",
        },
        "pagerduty,slack",
    ),
]


@pytest.mark.parametrize("source, target, target_receivers", INHIBITION_PAIRS)
def test_amtool_routes_both_sides_of_each_inhibition_pair(
    source: dict[str, str], target: dict[str, str], target_receivers: str
) -> None:
    for labels, receivers in ((source, "pagerduty,slack"), (target, target_receivers)):
        pairs = [f"{k}={v}" for k, v in labels.items()]
        result = _amtool(
            "config",
            "routes",
            "test",
            f"--config.file={CONFIG}",
            f"--verify.receivers={receivers}",
            *pairs,
        )
        assert result.returncode == 0, (labels, result.stdout + result.stderr)


def test_inhibition_rules_name_existing_alerts() -> None:
    alerts = yaml.safe_load((REPO / "rules" / "gpu-health-alerts.yaml").read_text())
    names = {rule["alert"] for group in alerts["groups"] for rule in group["rules"]}
    config = yaml.safe_load(CONFIG.read_text())
    for rule in config["inhibit_rules"]:
        for matcher in rule["source_matchers"] + rule["target_matchers"]:
            if not matcher.startswith("alertname"):
                continue
            pattern = matcher.split('"')[1]
            if matcher.startswith("alertname=~"):
                # every alternative of a regex names (or matches) an existing alert
                for alternative in pattern.split("|"):
                    assert any(re.fullmatch(alternative, n) for n in names), matcher
            elif matcher.startswith("alertname!="):
                assert pattern in names, matcher
            else:
                assert pattern in names, matcher
