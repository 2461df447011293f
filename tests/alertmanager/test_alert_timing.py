"""Done-when tests of issue 18, on the real stack with the shipped rules and timings.

All ten ``--sim-fault`` kinds at once through the real exporter (sim backend), Prometheus with
``rules/`` as shipped (5m windows, 15 s scrapes), Alertmanager with ``alertmanager.yml`` as
shipped (group_wait 10 s for pages, 30 s otherwise) and the PagerDuty/Slack sink: each fault's
alerts fire within five minutes of onset, every critical fault opens exactly one PagerDuty
incident, warnings none, nothing resolves while the faults last, and the healthy GPUs stay
silent. The healthy-fleet half is in test_alert_silence.py (a file of its own, so that
``--dist loadfile`` runs the two slow tests on different workers).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gpu_health.demo.alert_timing import (
    FAULT_ALERTS,
    latched_at_start,
    markdown_table,
    quiet_start,
    run_faults,
)

pytestmark = [pytest.mark.slow, pytest.mark.integration]

#: The issue's target: every fault detected within five minutes of its onset.
DETECTION_LIMIT_S = 300.0


@pytest.mark.timeout(600)  # about 4.5 minutes: onset at 30 s, the slowest alert near 3 minutes
def test_every_fault_kind_alerts_within_five_minutes_with_one_page_per_gpu(
    tmp_path: Path,
) -> None:
    faults = list(FAULT_ALERTS)
    # ten faulty GPUs and four healthy ones on two simulated nodes
    # where no board fails on its own during the run (quiet_start): only the injected faults page
    gpus = len(faults) + 4
    start = quiet_start(gpus, window=2 * 3600.0)
    owed = latched_at_start(gpus, start_time=start)
    run = run_faults(tmp_path, faults, gpus=gpus, start_time=start)
    healthy = [uuid for uuid in run.healthy if uuid not in owed]
    assert len(healthy) >= 3
    table = markdown_table(run)

    late = {
        (fault, alert): run.fired_after(alert, uuid)
        for fault, uuid in run.fault_gpus.items()
        for alert in FAULT_ALERTS[fault]
        if (run.fired_after(alert, uuid) or DETECTION_LIMIT_S + 1) > DETECTION_LIMIT_S
    }
    assert late == {}, table

    incidents = {fault: run.incidents(uuid) for fault, uuid in run.fault_gpus.items()}
    expected = {fault: 1 if run.is_critical(fault) else 0 for fault in faults}
    assert incidents == expected, table
    # the critical faults are the lost GPUs, uncorrectable memory, remap failure and NVLink XID
    assert {f for f, n in expected.items() if n} == {
        "xid79",
        "gpu_lost",
        "uncorrectable_ecc",
        "row_remap_failure",
        "nvlink_errors",
    }

    # nothing resolved while the faults last: no alert left firing, no PagerDuty resolve
    resolved = {key: t.resolved for key, t in run.tracks.items() if t.resolved}
    assert resolved == {}
    actions = [n.payload.get("event_action") for n in run.notifications if n.service == "pagerduty"]
    assert "resolve" not in actions
    # every page names a GPU with a critical fault (no page for anything else)
    critical_gpus = [uuid for fault, uuid in run.fault_gpus.items() if run.is_critical(fault)]
    pages = [n.payload for n in run.notifications if n.service == "pagerduty"]
    assert all(any(uuid in str(page) for uuid in critical_gpus) for page in pages), pages

    # the healthy GPUs: not even a pending alert, and no notification names them
    on_healthy = {key for key in run.tracks if key[1] in healthy}
    assert on_healthy == set()
    for uuid in healthy:
        assert run.first_notification_after("slack", uuid) is None
    # every notification is one the real services would accept
    assert [n.errors for n in run.notifications if n.errors] == []
