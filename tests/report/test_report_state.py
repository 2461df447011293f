"""The report's schema decision, GPU states and XID counts, on Prometheus and VictoriaMetrics."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
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


def _job_at(age: float) -> str:
    """The pod label of GPU-m3 ``age`` seconds before the end: a job an hour long every other
    hour in the last five, no pod between them."""
    hour = int(age // 3600)
    return f',pod="job-{hour}"' if age <= 5 * 3600 and hour % 2 == 0 else ""


def _dcgm_xids(end: float, code_labels: bool) -> str:
    """Three dcgm-exporter GPUs over 8 hours, every minute, labelled by a dcgm-exporter newer
    than NVIDIA/dcgm-exporter#655 (``hostname``): GPU-m0 has MIG enabled (two GPU instances,
    each repeating the device's XID gauge) and an XID 79 two hours before the end; GPU-m1
    holds an old XID 43 from before the period; GPU-m2 holds an old XID 13 and its series is
    split by a pod rename in the period; GPU-m3 has an XID 48 five hours before the end, and
    then a new job's pod every hour, with no pod label between jobs, as dcgm-exporter labels a
    GPU no pod holds. ``code_labels``: the gauge also carries its code as ``err_code``
    (dcgm-exporter 3.3.6-3.4.2 and later), so each code is a series."""
    lines = ["# TYPE DCGM_FI_DEV_XID_ERRORS gauge"]
    for k in range(0, 8 * 3600 + 1, 60):
        t = end - 8 * 3600 + k
        for i, code, extra in (
            (0, 79.0 if end - t <= 2 * 3600 else 0.0, (',GPU_I_ID="1"', ',GPU_I_ID="2"')),
            (1, 43.0, ("",)),
            (2, 13.0, (f',pod="job-{"b" if end - t <= 3 * 3600 else "a"}"',)),
            (3, 48.0 if end - t <= 5 * 3600 else 0.0, (_job_at(end - t),)),
        ):
            for e in extra:
                labels = f'hostname="m{i // 2}",UUID="GPU-m{i}",gpu="{i}",modelName="NVIDIA H100"'
                if code_labels:
                    e += f',err_code="{code:.0f}",err_msg="XID {code:.0f}"'
                lines.append(f"DCGM_FI_DEV_XID_ERRORS{{{labels}{e}}} {code} {t:.0f}")
                lines.append(f"DCGM_FI_DEV_GPU_TEMP{{{labels}{e}}} 60 {t:.0f}")
    return "\n".join([*lines, "# EOF"]) + "\n"


@pytest.mark.parametrize("code_labels", [False, True], ids=["last-value", "code-labels"])
def test_dcgm_xids_are_one_row_per_gpu_under_either_node_label(
    prometheus_factory: PrometheusFactory,
    backfill: Callable[[str], Path],
    victoriametrics_factory: Callable[[], stack.Server],
    code_labels: bool,
) -> None:
    """The report's XID table for dcgm-exporter: one row per GPU and code with its node, not
    one per MIG instance, no event for a held code whose series a pod rename split, and one
    event for an XID whose series jobs split afterwards, whether the gauge's code is only its
    value or also a label."""
    end = float(int(time.time()) - 60)
    history = _dcgm_xids(end, code_labels)
    prom = prometheus_factory(data_dir=backfill(history))
    stack.wait_for_query(prom.url, "count(DCGM_FI_DEV_GPU_TEMP)")
    vm = victoriametrics_factory()
    import_openmetrics(vm, history)
    for url in (prom.url, vm.url):
        report = Gatherer(url, "6h", at=end + 30).gather("dcgm", 20, ("xids",))
        assert [(x.node, x.uuid, x.xid, x.count) for x in report.xids] == [
            ("m0", "GPU-m0", "79", 1.0),
            ("m1", "GPU-m3", "48", 1.0),
        ], url


def _sparse_xid_history(end: float) -> str:
    """Two GPUs sampled every 10 minutes for 12 hours: GPU-old48's XID 48 counter holds 3 from
    the start, GPU-new48's rises from 3 to 4 two hours before the end."""
    up, xids = ["# TYPE gpu_up gauge"], ["# TYPE gpu_xid_errors counter"]
    for t in np.arange(end - 12 * 3600, end + 1, 600.0):
        for uuid in ("GPU-old48", "GPU-new48"):
            labels = f'node="n1",uuid="{uuid}",gpu="{uuid[-5:]}",model="NVIDIA H100 80GB HBM3"'
            count = 4 if uuid == "GPU-new48" and t >= end - 2 * 3600 else 3
            up.append(f"gpu_up{{{labels}}} 1 {t:.0f}")
            xids.append(f'gpu_xid_errors_total{{{labels},xid="48"}} {count} {t:.0f}')
    return "\n".join(up + xids) + "\n# EOF\n"


def test_a_counter_older_than_the_period_has_no_xid_in_it_on_sparse_history(
    prometheus_factory: PrometheusFactory,
    backfill: Callable[[str], Path],
    victoriametrics_factory: Callable[[], stack.Server],
) -> None:
    """History with a sample every 10 minutes, the period starting 330 s after one: more than
    Prometheus' 5-minute lookback, so the counter's value "at the start" is read over the whole
    period before it. A counter that held 3 since before the period has no XID in it, one
    that rose once has one, on both engines (both counted 3 and 4 when the start was read
    through the lookback)."""
    end = float(int(time.time()) // 600 * 600 - 600)
    history = _sparse_xid_history(end)
    prom = prometheus_factory(data_dir=backfill(history))
    stack.wait_for_query(prom.url, "count(last_over_time(gpu_up[1h]))")
    vm = victoriametrics_factory()
    import_openmetrics(vm, history)
    at = end + 330
    for url in (prom.url, vm.url):
        report = Gatherer(url, "6h", at=at).gather("ours", 20, ("xids",))
        assert [(x.uuid, x.xid, x.count) for x in report.xids] == [("GPU-new48", "48", 1)], url
