"""GPUs of our schema without health series still read degraded on evidence.

``degraded`` read only the health penalty in our schema, so a GPU whose ``gpu_health_*`` series
were dropped by relabelling (or whose exporter runs without the health model) read ``healthy``
with a new XID or a PCIe replay storm. Such a GPU is now judged as dcgm-exporter's are; a GPU
the health model scores keeps its penalties as the only soft evidence. Checked on a real
Prometheus and a real VictoriaMetrics, and through ``gpu-health-scorer score --json``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gpu_health import stack
from gpu_health.scorer import cli as scorer_cli
from gpu_health.scorer.promclient import PromClient, PromConfig
from gpu_health.telemetry.state import gather_states
from tests.conftest import PrometheusFactory

pytestmark = pytest.mark.integration

STEP = 60
HOURS = 3
MODEL = "NVIDIA H100 80GB HBM3"
VIOLATION = "PCIe replays or clock violations"
#: uuid -> (scored by the health model, the event in the last hour, expected state and reasons)
GPUS: dict[str, tuple[bool, str, tuple[str, tuple[str, ...]]]] = {
    "GPU-quiet": (False, "", ("healthy", ())),
    "GPU-xid92": (False, "xid92", ("degraded", ("XID 92",))),
    "GPU-app-xid13": (False, "xid13", ("healthy", ())),
    "GPU-replays": (False, "replays", ("degraded", (VIOLATION,))),
    "GPU-thermal": (False, "thermal", ("degraded", (VIOLATION,))),
    "GPU-power-cap": (False, "power", ("healthy", ())),
    "GPU-xid79": (False, "xid79", ("failed", ("lost (gpu_up 0)", "XID 79"))),
    # scored: the health model weighed the replays and gave no penalty
    "GPU-scored-replays": (True, "replays", ("healthy", ())),
    "GPU-scored-xid92": (True, "xid92", ("healthy", ())),
}


def _samples(uuid: str, t: float, end: float) -> Iterator[tuple[str, dict[str, str], float]]:
    scored, event, _ = GPUS[uuid]
    late = t >= end - 3600
    ramp = max(0.0, t - (end - 3600))  # seconds since the event began
    yield "gpu_up", {}, 0.0 if event == "xid79" and late else 1.0
    yield "gpu_power_watts", {}, 400.0
    if scored:
        yield "gpu_health_score", {"dimension": "overall"}, 100.0
    for code in ("13", "79", "92"):  # catalogued codes are born at 0; an event 10 minutes ago
        count = 1.0 if event == f"xid{code}" and t >= end - 600 else 0.0
        yield "gpu_xid_errors_total", {"xid": code}, count
    yield "gpu_pcie_replays_total", {}, ramp / 10 if event == "replays" else 0.0
    for reason in ("thermal", "power"):
        held = ramp / 4 if event == reason else 0.0
        yield "gpu_clock_event_seconds_total", {"reason": reason}, held


def _openmetrics(end: float) -> str:
    families: dict[str, list[str]] = {}
    start = end - HOURS * 3600
    for k in range(HOURS * 3600 // STEP + 1):
        t = start + k * STEP
        for slot, uuid in enumerate(GPUS):
            for name, extra, value in _samples(uuid, t, end):
                labels = {"node": "n1", "gpu": str(slot), "uuid": uuid, "model": MODEL, **extra}
                text = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
                families.setdefault(name, []).append(f"{name}{{{text}}} {value} {t:.0f}")
    out = []
    for name, lines in families.items():
        kind = "counter" if name.endswith("_total") else "gauge"
        out.append(f"# TYPE {name.removesuffix('_total') if kind == 'counter' else name} {kind}")
        out.extend(lines)
    return "\n".join([*out, "# EOF"]) + "\n"


@pytest.fixture(scope="module")
def history() -> str:
    return _openmetrics(float(int(time.time()) - 30))


def _expected() -> dict[str, tuple[str, tuple[str, ...]]]:
    return {uuid: want for uuid, (_, _, want) in GPUS.items()}


@pytest.mark.parametrize("engine", ["prometheus", "victoriametrics"])
def test_unscored_gpus_read_degraded_on_new_xids_and_violations(
    engine: str, history: str, serve_history: Callable[[str, str, str], str]
) -> None:
    url = serve_history(engine, history, "count(gpu_up)")
    client = PromClient(PromConfig(url, retries=2, backoff_s=0.1))
    states = gather_states(client.query, "ours", time.time())
    assert {u: (s.state, s.reasons) for u, s in states.items()} == _expected()


def test_the_scorer_publishes_them_degraded(
    history: str,
    prometheus_factory: PrometheusFactory,
    backfill: Callable[[str], Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = prometheus_factory(data_dir=backfill(history)).url
    stack.wait_for_query(url, "count(gpu_up)")
    argv = ["score", "--at", str(time.time()), "--prometheus.url", url, "--json"]
    code = scorer_cli.main(argv)
    said = capsys.readouterr()
    assert code == 0, said.err
    body = json.loads(said.out)
    states = {g["uuid"]: g["state"] for g in body["gpus"]}
    assert states == {uuid: want[0] for uuid, want in _expected().items()}
