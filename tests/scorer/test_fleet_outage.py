"""A fleet-wide outage: no GPU reports now, every GPU of the last days is absent.

When every exporter (or the scrape) is down, nothing reports in either schema. The schema
choice then fell back to our exporter's, so a dcgm-exporter fleet's scorer read a schema with
no GPU in it: ``score --at`` said "no GPU reported" and ``serve`` published no GPU at all, and
``gpu-health report`` refused ("no GPU reports in the last 30m"). Now the GPUs seen in the last
7 days choose the schema, and every one of them is listed absent, its node named as not
reporting. Real Prometheus and VictoriaMetrics; the history of ``tests/scorer_fleet.py`` in
dcgm-exporter's schema (12 GPUs on three nodes, 6.5 days at 30 minutes; GPU 5 stopped 0.2 days
before the others).
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from gpu_health import stack
from gpu_health.scorer import cli as scorer_cli
from tests.base.command_runs import is_one_line_error, run_main
from tests.conftest import PrometheusFactory, import_openmetrics
from tests.scorer_fleet import DAY, make_fleet, openmetrics

pytestmark = [pytest.mark.integration]

# Inside Prometheus' default retention of 15 days (it deletes older blocks at start).
START = float(int(time.time()) // 1800 * 1800 - 7 * DAY)
END = START + 6.5 * DAY
OUTAGE = END + 3 * 3600  # three hours into an outage of the whole fleet


@pytest.fixture(params=["prometheus", "victoriametrics"])
def dcgm_fleet(
    request: pytest.FixtureRequest,
    prometheus_factory: PrometheusFactory,
    backfill: Callable[[str], Path],
) -> str:
    """The history's URL on each engine: Prometheus serving promtool's blocks, VictoriaMetrics
    having imported it."""
    text = openmetrics(make_fleet(), days=6.5, step=1800, schema="dcgm", start=START)
    if request.param == "victoriametrics":
        start_vm: Callable[[], stack.Server] = request.getfixturevalue("victoriametrics_factory")
        vm = start_vm()
        import_openmetrics(vm, text)
        return vm.url
    server = prometheus_factory(data_dir=backfill(text))
    deadline = time.monotonic() + 60
    while not stack.query(server.url, "count(last_over_time(DCGM_FI_DEV_GPU_TEMP[1h]))", at=END):
        assert time.monotonic() < deadline, "the history never became queryable"
        time.sleep(0.5)
    return server.url


def test_the_scorer_lists_every_gpu_of_a_silent_dcgm_fleet_absent(
    dcgm_fleet: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["score", "--at", str(OUTAGE), "--prometheus.url", dcgm_fleet, "--json"]
    code = scorer_cli.main(argv)
    said = capsys.readouterr()
    assert code == 0, said.err
    body = json.loads(said.out)
    gpus = body["gpus"] if isinstance(body, dict) else body
    assert len(gpus) == 12 and body["schema"] == "dcgm"
    assert {g["state"] for g in gpus} == {"absent"}
    silent = [g for g in gpus if g["state_reasons"][0].endswith("(exporter or host down)")]
    # GPU 5 fell silent 0.2 days before its node: failed on its own, not the node's outage
    assert {g["uuid"] for g in gpus} - {g["uuid"] for g in silent} == {"GPU-0005-test"}
    assert all(g["failure_probability"]["7d"] is None for g in silent)


def test_the_report_lists_them_too(dcgm_fleet: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gpu_health.cli", "report", "--prometheus", dcgm_fleet,
         "--at", str(OUTAGE)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "GPU fleet report — 12 GPUs, dcgm metrics" in result.stdout
    assert "schema dcgm (no GPU reports in the last " in result.stdout
    assert "seen in the last 7d: ours 0 GPUs, dcgm-exporter 12 GPUs)" in result.stdout
    assert "absent    12" in result.stdout


def test_a_source_that_never_had_gpus_is_still_refused(
    dcgm_fleet: str, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """Nothing seen in the last 7 days either (a wrong URL, or long gone): one line, as
    before; and an explicit schema the fleet never sent stays refused. The run reads no
    recorded history there: it had logged "reading the 5-minute recorded history" (and
    "scored 0 GPUs (…, recorded+hourly history)") where neither tier held anything."""
    before = START - DAY  # the 7 days before it hold no sample
    argv = ["score", "--at", str(before), "--prometheus.url", dcgm_fleet]
    with caplog.at_level(logging.INFO, logger="gpu_health.scorer"):
        code, err = run_main(scorer_cli.main, argv, capsys)
    assert is_one_line_error(code, err) and "no GPU reported" in err, err
    said = [r.getMessage() for r in caplog.records]
    assert not [m for m in said if m.startswith("reading the")], said
    assert any(m.startswith("scored 0 GPUs (ours schema, raw history)") for m in said), said
    argv = ["score", "--at", str(OUTAGE), "--prometheus.url", dcgm_fleet, "--schema", "ours"]
    code, err = run_main(scorer_cli.main, argv, capsys)
    assert is_one_line_error(code, err) and "no GPU reported" in err, err
