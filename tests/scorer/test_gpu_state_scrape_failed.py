"""A GPU whose exporter stopped answering scrapes is absent at once, not after 30 minutes.

A hung exporter (or host) leaves its last samples in the presence window: for 30 minutes the
state model read its GPUs as reporting and healthy, in the report, the scorer and the economics,
while GPUExporterDown paged for the same node. Prometheus records every failed scrape as
``up`` 0; a target that failed every scrape for two scrape intervals (at least two minutes) no
longer reports its GPUs. Checked on a real Prometheus and a real VictoriaMetrics, and through
``gpu-health report``.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from gpu_health import stack
from gpu_health.scorer.promclient import PromClient, PromConfig
from gpu_health.telemetry.state import gather_states
from tests.conftest import PrometheusFactory

pytestmark = pytest.mark.integration

STEP = 60
HOURS = 7  # the scrape interval is measured over the last 6 hours
MODEL = "NVIDIA H100 80GB HBM3"
#: node -> its last scrapes that failed, one a minute up to the end (0: none)
FAILED_SCRAPES = {"n1": 0, "n2": 4, "n3": 1}
GPUS_PER_NODE = 2


def _openmetrics(end: float) -> str:
    families: dict[str, list[str]] = {"up": [], "gpu_up": [], "gpu_power_watts": []}
    start = end - HOURS * 3600
    for k in range(HOURS * 3600 // STEP + 1):
        t = start + k * STEP
        for node, failed in FAILED_SCRAPES.items():
            target = f'instance="{node}:9840",job="gpu-health-exporter"'
            failing = failed and t > end - failed * STEP
            families["up"].append(f"up{{{target}}} {0 if failing else 1} {t:.0f}")
            if failing:
                continue  # a failed scrape stores no sample of the target's series
            for gpu in range(GPUS_PER_NODE):
                gpu_labels = f'gpu="{gpu}",model="{MODEL}",node="{node}",uuid="GPU-{node}-{gpu}"'
                labels = f"{gpu_labels},{target}"
                families["gpu_up"].append(f"gpu_up{{{labels}}} 1 {t:.0f}")
                families["gpu_power_watts"].append(f"gpu_power_watts{{{labels}}} 400 {t:.0f}")
    out = []
    for name, lines in families.items():
        out += [f"# TYPE {name} gauge", *lines]
    return "\n".join([*out, "# EOF"]) + "\n"


@pytest.fixture(scope="module")
def end() -> float:
    return float(int(time.time()) - 20)


@pytest.mark.parametrize("engine", ["prometheus", "victoriametrics"])
def test_gpus_of_a_target_failing_every_scrape_are_absent_with_their_node(
    engine: str, end: float, serve_history: Callable[[str, str, str], str]
) -> None:
    url = serve_history(engine, _openmetrics(end), "count(gpu_up)")
    client = PromClient(PromConfig(url, retries=2, backoff_s=0.1))
    states = gather_states(client.query, "ours", end + 10)
    got = {uuid: (s.state, s.node_silent) for uuid, s in states.items()}
    want = {
        f"GPU-{node}-{gpu}": ("absent", True) if node == "n2" else ("healthy", False)
        for node in FAILED_SCRAPES
        for gpu in range(GPUS_PER_NODE)
    }
    assert got == want  # n3: one failed scrape is no outage
    lost = states["GPU-n2-0"]
    assert lost.reasons[0] == "node n2 not reporting (exporter or host down)"
    assert 3 * 60 <= lost.age_s <= 6 * 60 and not lost.down


def test_the_report_counts_them_absent(
    end: float, prometheus_factory: PrometheusFactory, backfill: Callable[[str], Path]
) -> None:
    url = prometheus_factory(data_dir=backfill(_openmetrics(end))).url
    stack.wait_for_query(url, "count(gpu_up)")
    result = subprocess.run(
        [sys.executable, "-m", "gpu_health.cli", "report", "--prometheus", url,
         "--at", str(end + 10)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "absent     2" in result.stdout or "absent    2" in result.stdout, result.stdout
    assert "healthy    4" in result.stdout or "healthy   4" in result.stdout, result.stdout
