"""The generated rules in a real Prometheus scraping the exporter on a simulated fleet: an
injected XID 79 takes GPUFallenOffBus through pending to firing, and every other injected fault
raises its own alerts on its GPU only, while the healthy GPU stays silent."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gpu_health import stack
from gpu_health.mixin import render as mixin
from tests.conftest import PrometheusFactory

#: The shipped rules with windows and `for` scaled from minutes to seconds (a user override,
#: rendered by the same generator), so the test sees the whole lifecycle in seconds.
FAST = {
    "scorerEnabled": False,
    "rateInterval": "10s",
    "xidWindow": "2m",
    "gpuLostFor": "3s",
    "gpuFallenOffBusFor": "5s",
    "rowRemapPendingFor": "2s",
    "pcieReplayFor": "2s",
    "nvlinkErrorsFor": "2s",
}

#: GPU -> injected fault, and the alerts each fault must raise (alert -> GPUs). GPU 7 is the
#: healthy control. Thermal and power-brake faults ramp up over two simulated minutes and are
#: covered by the promtool unit tests instead.
FAULTS = {
    0: "uncorrectable_ecc",
    1: "xid79",
    2: "row_remap_pending",
    3: "row_remap_failure",
    4: "pcie_replay_storm",
    5: "nvlink_errors",
}
EXPECTED = {
    "GPUFallenOffBus": {"1"},
    "GPUUncorrectableEccErrors": {"0", "3"},
    "GPUXidMemoryError": {"0", "3"},
    "GPUXidContainedEccError": {"0"},
    "GPUXidResetRequired": {"3"},
    "GPURowRemapPending": {"0", "2", "3"},
    "GPURowRemapFailure": {"3"},
    "GPUPcieReplayStorm": {"4"},
    "GPUNvlinkErrors": {"5"},
}
#: Alerts derived from the health score may accompany any faulty GPU.
DERIVED = {"GPUHealthDegraded", "GPUHealthCritical"}
JOB = "gpu-health-exporter"


def write_fast_rules(directory: Path) -> list[Path]:
    """Render the mixin with FAST into ``directory``; returns the rule files."""
    files = mixin.render(overrides=FAST)
    paths = []
    for name in (mixin.RULES_FILE, mixin.ALERTS_FILE):
        path = directory / Path(name).name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(files[name])
        paths.append(path)
    return paths


def alerts(prometheus: stack.Server, name: str) -> list[dict[str, Any]]:
    payload = json.loads(stack.http_get(f"{prometheus.url}/api/v1/alerts"))
    return [a for a in payload["data"]["alerts"] if a["labels"]["alertname"] == name]


def watch(
    prometheus: stack.Server,
    name: str,
    until: Callable[[list[dict[str, Any]]], bool],
    timeout: float,
) -> list[list[dict[str, Any]]]:
    """Poll the alert until ``until(current)`` holds; returns every distinct state seen."""
    seen: list[list[dict[str, Any]]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        current = alerts(prometheus, name)
        if not seen or [a["state"] for a in current] != [a["state"] for a in seen[-1]]:
            seen.append(current)
        if until(current):
            return seen
        time.sleep(0.2)
    raise TimeoutError(f"{name}: states seen {[[a['state'] for a in s] for s in seen]}")


@pytest.mark.slow
@pytest.mark.integration
def test_injected_faults_raise_their_alerts(
    sim_exporter_factory: Callable[..., stack.Server],
    prometheus_factory: PrometheusFactory,
    tmp_path: Path,
) -> None:
    pytest.importorskip("gpu_health.sim.live")
    faults = [
        a for gpu, f in FAULTS.items() for a in ("--sim-fault", f"gpu={gpu},fault={f},after=32s")
    ]
    # Prometheus first, so it scrapes from the exporter's first second even on a loaded machine
    # (the simulated clock, and so the faults, start with the exporter).
    port = stack.free_port()
    prometheus = prometheus_factory(
        scrape_targets={JOB: [f"127.0.0.1:{port}"]},
        rule_files=write_fast_rules(tmp_path / "rules"),
    )
    sim_exporter_factory("--sim-gpus", "8", "--sim-speed", "4", *faults, port=port)
    # healthy before the fault, and no alert
    stack.wait_for_query(prometheus.url, f'gpu_up{{job="{JOB}", gpu="1"}} == 1', timeout=20)
    assert alerts(prometheus, "GPUFallenOffBus") == []

    seen = watch(
        prometheus,
        "GPUFallenOffBus",
        lambda current: any(a["state"] == "firing" for a in current),
        timeout=60,
    )
    states = [[a["state"] for a in s] for s in seen]
    assert ["pending"] in states, states
    assert states[-1] == ["firing"], states

    (alert,) = seen[-1]
    uuid = stack.query(prometheus.url, f'gpu_info{{job="{JOB}", gpu="1"}}')[0]["metric"]["uuid"]
    labels = alert["labels"]
    assert labels["gpu"] == "1" and labels["node"] == "sim-node" and labels["uuid"] == uuid
    assert labels["severity"] == "critical" and labels["model"]
    assert (
        f"GPU 1 ({labels['model']}, {uuid}) on node sim-node" in alert["annotations"]["description"]
    )
    assert alert["annotations"]["runbook_url"].endswith("/GPUFallenOffBus.md")

    # every other fault raises its alerts, on its GPU only; the healthy GPU stays silent
    def firing() -> dict[str, set[str]]:
        payload = json.loads(stack.http_get(f"{prometheus.url}/api/v1/alerts"))
        out: dict[str, set[str]] = {}
        for a in payload["data"]["alerts"]:
            if a["state"] == "firing":
                out.setdefault(a["labels"]["alertname"], set()).add(a["labels"].get("gpu", ""))
        return out

    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        current = firing()
        if all(current.get(name, set()) >= gpus for name, gpus in EXPECTED.items()):
            break
        time.sleep(0.5)
    current = firing()
    assert {name: current.get(name, set()) for name in EXPECTED} == EXPECTED
    assert set(current) - set(EXPECTED) <= DERIVED, current
    assert all("7" not in gpus for gpus in current.values()), current
