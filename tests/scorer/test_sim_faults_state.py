"""Done-when test of the state model: the ten simulated fault kinds through a real Prometheus.

The simulator exporter runs every fault kind on its own GPU plus healthy controls; Prometheus
scrapes it; the scorer (default model, default economics) scores the fleet. Every faulted GPU
must be failed or degraded and rank above every healthy GPU, no failed GPU may be recommended
"keep", and the HTML report must list each injected XID with the count the exporter holds.
"""

from __future__ import annotations

import html
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from gpu_health import stack
from gpu_health.scorer.econ.bridge import make_econ_hook
from gpu_health.scorer.model import FailureModel
from gpu_health.scorer.promclient import PromClient, PromConfig
from gpu_health.scorer.service import GpuScore, Scorer
from gpu_health.sim.faults import FAULTS
from gpu_health.telemetry.state import rank_key
from tests.conftest import PrometheusFactory

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.timeout(600)]
#: fleet index -> fault kind; GPUs 10 and 11 are the healthy controls
INJECTED = dict(enumerate(FAULTS))
JOB = "gpu-health-exporter"


def _exporter_xids(url: str) -> dict[tuple[str, str], int]:
    """(uuid, xid) -> the exporter's own XID counter."""
    text = stack.http_get(f"{url}/metrics").decode()
    return {
        (s.labels["uuid"], s.labels["xid"]): int(s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "gpu_xid_errors_total" and s.value > 0
    }


def _fleet_index(exporter_url: str) -> dict[str, int]:
    """uuid -> fleet index: the simulator lists its GPUs in fleet order (``--sim-fault gpu=N``
    counts across nodes; with ``--node-name`` every node has the same name)."""
    text = stack.http_get(f"{exporter_url}/metrics").decode()
    uuids = re.findall(r'^gpu_up\{[^}]*uuid="([^"]+)"', text, flags=re.M)
    return {uuid: i for i, uuid in enumerate(uuids)}


def test_ten_fault_kinds_are_failed_or_degraded_ranked_first_never_kept_and_reported(
    sim_exporter_factory: Callable[..., stack.Server],
    prometheus_factory: PrometheusFactory,
    repo_root: Path,
    tmp_path: Path,
) -> None:
    assert len(INJECTED) == 10
    port = stack.free_port()
    prom = prometheus_factory(scrape_targets={JOB: [f"127.0.0.1:{port}"]})
    faults = [
        a for i, f in INJECTED.items() for a in ("--sim-fault", f"gpu={i},fault={f},after=20s")
    ]
    exporter = sim_exporter_factory("--sim-gpus", "12", "--sim-speed", "4", *faults, port=port)
    stack.wait_for_query(prom.url, f'count(gpu_up{{job="{JOB}"}}) == 12', timeout=60)
    index = _fleet_index(exporter.url)
    assert len(index) == 12
    faulted = {u for u, i in index.items() if i in INJECTED}

    client = PromClient(PromConfig(prom.url, retries=2, backoff_s=0.2, timeout_s=60))
    scorer = Scorer(
        client,
        FailureModel.load(repo_root / "scorer" / "default_model"),
        econ=make_econ_hook(),
        workers=2,
    )
    gpus: dict[str, GpuScore] = {}
    # generous: on a loaded CI machine the live sim and scrapes run slow (the loop ends early
    # as soon as every faulted GPU has left healthy)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        assert scorer.run_once(), scorer.last_error
        assert scorer.snapshot is not None
        gpus = {g.uuid: g for g in scorer.snapshot.gpus}
        if all(gpus[u].state != "healthy" for u in faulted if u in gpus):
            break
        time.sleep(3)
    states = {INJECTED.get(index[u], "control"): g.state for u, g in gpus.items()}
    assert set(gpus) == set(index), states
    assert all(gpus[u].state in ("failed", "degraded") for u in faulted), states
    for kind in ("xid79", "gpu_lost", "uncorrectable_ecc", "row_remap_failure"):
        assert states[kind] == "failed", states
    healthy = [g for g in gpus.values() if g.state == "healthy"]
    assert healthy, states  # the controls stay healthy
    ranked = sorted(gpus.values(), key=lambda g: rank_key(g.state, g.probability["30d"]))
    last_faulted = max(i for i, g in enumerate(ranked) if g.uuid in faulted)
    first_healthy = min(i for i, g in enumerate(ranked) if g.state == "healthy")
    assert last_faulted < first_healthy
    for g in gpus.values():
        if g.state in ("failed", "absent"):
            assert g.econ is not None and g.econ.recommended_action != "keep", g

    # The HTML report lists every injected XID with the exporter's count.
    # XIDs the faults raise within the first minutes (nvlink_errors' XID 74 follows later:
    # when it is there, the loop below checks its count like every other). On a loaded machine
    # the live sim can be slow to raise one (ecc_storm's XID 92): wait for them, bounded.
    injected_codes = {"79", "48", "94", "95", "63", "64", "32", "92"}
    deadline = time.monotonic() + 180
    while True:
        expected = {k: v for k, v in _exporter_xids(exporter.url).items() if k[0] in faulted}
        if injected_codes <= {x for _, x in expected} or time.monotonic() > deadline:
            break
        time.sleep(5)
    # the report reads Prometheus (1 s scrapes): let it scrape what the exporter said last
    time.sleep(5)
    expected = {k: v for k, v in _exporter_xids(exporter.url).items() if k[0] in faulted}
    page = tmp_path / "report.html"
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "gpu-health"),
            "report",
            "--prometheus",
            prom.url,
            "--period",
            "1h",
            "--html",
            str(page),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    rows = re.findall(
        r"<tr><td>[^<]*</td><td>([^<]+)</td><td>(\d+)</td><td class='num'>(\d+)</td></tr>",
        page.read_text().split("XIDs in the last")[1].split("Alerts in the last")[0],
    )
    reported = {(html.unescape(u), x): int(n) for u, x, n in rows}
    # counts agree with the exporter (counters scraped since the GPU was first seen): at least
    # what it said before the report, at most what it says after (the storms go on raising
    # XIDs 63 and 92 while the report runs, slowly on a loaded machine)
    after = _exporter_xids(exporter.url)
    for key, count in expected.items():
        most = max(count, after.get(key, count))
        assert count <= reported.get(key, 0) <= most, (key, count, most, reported)
    assert injected_codes <= {x for _, x in expected}, expected
