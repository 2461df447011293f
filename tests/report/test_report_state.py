"""The report's schema decision, GPU states and XID counts, on Prometheus and VictoriaMetrics."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from gpu_health import stack
from gpu_health.report.gather import Gatherer
from tests.conftest import PrometheusFactory, import_openmetrics
from tests.scorer import state_fleet

pytestmark = pytest.mark.integration
BIN = Path(sys.executable).parent


def _dcgm(end: float, n: int) -> list[str]:
    lines = []
    for k in range(0, 3600 + 1, 60):
        for i in range(n):
            labels = f'Hostname="d1",UUID="GPU-d{i}",gpu="{i}",modelName="NVIDIA A100-SXM4-80GB"'
            lines.append(f"DCGM_FI_DEV_GPU_TEMP{{{labels}}} 60 {end - 3600 + k:.0f}")
    return lines


def _report(url: str, at: float, *extra: str) -> subprocess.CompletedProcess[str]:
    argv = [str(BIN / "gpu-health"), "report", "--prometheus", url, "--period", "6h"]
    return subprocess.run(
        [*argv, "--at", f"{at:.0f}", *extra],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def test_most_gpus_wins_and_schema_is_always_honoured(
    prometheus_factory: PrometheusFactory, backfill: Callable[[str], Path]
) -> None:
    end = float(int(time.time()) - 60)
    ours = state_fleet.openmetrics(end).replace("# EOF\n", "")
    both = ours + "# TYPE DCGM_FI_DEV_GPU_TEMP gauge\n" + "\n".join(_dcgm(end, 20)) + "\n# EOF\n"
    server = prometheus_factory(data_dir=backfill(both))
    stack.wait_for_query(server.url, "count(DCGM_FI_DEV_GPU_TEMP)")

    auto = _report(server.url, end)
    assert auto.returncode == 0, auto.stderr
    # our GPUs that report at the report time (two are gone); dcgm-exporter has 20
    reporting = sum(g.expect not in ("absent", "replaced") for g in state_fleet.FLEET)
    assert reporting < 20
    assert f"schema dcgm (most GPUs: ours {reporting} GPUs, dcgm-exporter 20 GPUs)" in auto.stdout
    assert auto.stdout.startswith("GPU fleet report — 20 GPUs, dcgm metrics")

    ours_only = _report(server.url, end, "--schema", "ours")
    assert ours_only.returncode == 0, ours_only.stderr
    assert "schema ours (--schema;" in ours_only.stdout
    # the absent GPU is still part of the fleet (a replaced one is listed, not counted)
    assert ours_only.stdout.startswith(f"GPU fleet report — {reporting + 1} GPUs, ours metrics")


def test_a_schema_without_gpus_is_a_one_line_error_not_a_zero_gpu_report(
    prometheus_factory: PrometheusFactory, backfill: Callable[[str], Path]
) -> None:
    end = float(int(time.time()) - 60)
    text = "# TYPE DCGM_FI_DEV_GPU_TEMP gauge\n" + "\n".join(_dcgm(end, 3)) + "\n# EOF\n"
    server = prometheus_factory(data_dir=backfill(text))
    stack.wait_for_query(server.url, "count(DCGM_FI_DEV_GPU_TEMP)")
    result = _report(server.url, end, "--schema", "ours")
    assert result.returncode != 0 and "0 GPUs" not in result.stdout
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert (
        "--schema ours: no GPU reports" in result.stderr and "dcgm-exporter 3 GPUs" in result.stderr
    )


def _gather(url: str, at: float) -> tuple[object, ...]:
    report = Gatherer(url, "6h", at=at).gather("auto", 20, ("states", "xids"))
    xids = sorted((x.uuid, x.xid, x.count) for x in report.xids)
    unhealthy = [(s.uuid, s.state, s.reasons, s.last_state) for s in report.unhealthy]
    return report.engine, report.gpu_count, report.states, unhealthy, xids


def test_report_agrees_on_prometheus_and_victoriametrics_and_counts_first_xids(
    prometheus_factory: PrometheusFactory,
    backfill: Callable[[str], Path],
    victoriametrics_factory: Callable[[], stack.Server],
) -> None:
    end = float(int(time.time()) - 60)
    history = state_fleet.openmetrics(end)
    prom = prometheus_factory(data_dir=backfill(history))
    stack.wait_for_query(prom.url, "count(gpu_up)")
    vm = victoriametrics_factory()
    import_openmetrics(vm, history)

    at = end + 30
    on_prom, on_vm = _gather(prom.url, at), _gather(vm.url, at)
    assert on_prom[0] == "prometheus" and on_vm[0] == "victoriametrics"
    assert on_prom[1:] == on_vm[1:]
    # the first XID of a code counts, also for a counter created at its first event
    assert on_prom[4] == [
        ("GPU-xid46", "46", 1),
        ("GPU-xid48-born-at-1", "48", 1),
        ("GPU-xid79", "79", 1),
        ("GPU-xid94", "94", 1),
    ]
    assert on_prom[2]["failed"] == 6 and on_prom[2]["absent"] == 1
