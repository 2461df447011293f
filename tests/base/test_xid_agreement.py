"""Every part agrees on which XIDs need a reset (gpu_health.telemetry.xids.RESET_REQUIRED_XIDS).

They disagreed before: the alerts paged "drain the GPU and reset it" for XID 46 while the state
model called that GPU degraded and the economics kept it; the state model called a contained
ECC error (94) failed while the alerts only warned. Each list below is read the way its consumer
reads it: the generated alert rules as Prometheus loads them, the default health policy as the
exporter loads it, the state model's and the failure scan's constants.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from gpu_health.health.policy import load_policy
from gpu_health.scorer.labels import FAILURE_XIDS
from gpu_health.telemetry.state_queries import HARD_XIDS
from gpu_health.telemetry.xids import APPLICATION_XIDS, RESET_REQUIRED_XIDS, XID_CATALOGUE

RESET = set(RESET_REQUIRED_XIDS)


def _xid_alerts(repo_root: Path) -> dict[str, tuple[str, set[int]]]:
    """alert name -> (severity, XID codes its expression selects) for every alert that reads
    ``gpu_xid_errors_total`` by code."""
    doc = yaml.safe_load((repo_root / "rules" / "gpu-health-alerts.yaml").read_text())
    out: dict[str, tuple[str, set[int]]] = {}
    for group in doc["groups"]:
        for rule in group["rules"]:
            expr = rule["expr"]
            codes: set[int] = set()
            for found in re.finditer(r'gpu_xid_errors_total\{[^}]*xid=~?"([0-9|]+)"', expr):
                codes |= {int(c) for c in found.group(1).split("|")}
            if codes:
                out[rule["alert"]] = (rule["labels"]["severity"], codes)
    return out


def test_the_critical_xid_alerts_page_exactly_for_the_codes_that_need_a_reset(
    repo_root: Path,
) -> None:
    alerts = _xid_alerts(repo_root)
    assert alerts["GPUFallenOffBus"] == ("critical", {79})
    paged = set().union(*(codes for severity, codes in alerts.values() if severity == "critical"))
    warned = set().union(*(codes for severity, codes in alerts.values() if severity != "critical"))
    assert paged == RESET
    assert 94 in warned and not warned & RESET


def test_the_state_model_health_policy_and_failure_scan_use_the_same_codes() -> None:
    assert set(HARD_XIDS) == RESET
    assert set(load_policy(None).xid.critical) == RESET
    assert set(FAILURE_XIDS) >= RESET


def test_the_list_holds_no_application_or_precursor_code() -> None:
    assert set(XID_CATALOGUE) >= RESET
    assert not RESET & {*APPLICATION_XIDS, 63, 92, 94}
