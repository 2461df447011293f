"""Zero-born XID counters read the same first event on Prometheus and VictoriaMetrics.

The same hour of history goes into a real Prometheus (promtool backfill) and a real
VictoriaMetrics (its Prometheus-text import): one XID code exported from 0 and then incremented
once (what the exporter does now), and one code whose series is born with its first event (what
it did before). ``increase()`` over the hour must count the zero-born event once on both engines,
and the born-at-one series shows why: Prometheus reads 0 for it, VictoriaMetrics 1.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gpu_health import stack

pytestmark = pytest.mark.skipif(
    shutil.which("victoria-metrics") is None or shutil.which("promtool") is None,
    reason="needs victoria-metrics and promtool (Debian: victoria-metrics, prometheus)",
)

LABELS = 'job="gpu-health-exporter",instance="n:9840",node="n",gpu="0",uuid="GPU-0",model="H100"'
STEP = 60
#: the hour of history ends this long ago (well out of both engines' "recent data" windows)
AGO = 3600


def history(end: int) -> list[tuple[str, float, int]]:
    """(series, value, unix seconds): xid 48 zero-born then one event; xid 95 born at 1."""
    out = []
    for t in range(end - 3600, end + 1, STEP):
        after = t >= end - 1800
        out.append((f'gpu_xid_errors_total{{{LABELS},xid="48"}}', 1.0 if after else 0.0, t))
        if after:
            out.append((f'gpu_xid_errors_total{{{LABELS},xid="95"}}', 1.0, t))
    return out


@pytest.fixture
def victoria(tmp_path: Path) -> Iterator[str]:
    port = stack.free_port()
    workdir = tmp_path / "vm"
    workdir.mkdir()
    with (workdir / "vm.log").open("ab") as log:
        process = subprocess.Popen(
            [str(shutil.which("victoria-metrics")), f"-storageDataPath={workdir / 'data'}",
             f"-httpListenAddr=127.0.0.1:{port}", "-retentionPeriod=2y", "-search.disableCache"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=workdir,
            start_new_session=True,
        )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        stack.wait_until(f"{url}/health", 60, process)
        yield url
    finally:
        stack.stop_process(process)


def vm_increase(url: str, at: int) -> dict[str, float]:
    query = urllib.parse.urlencode({"query": "increase(gpu_xid_errors_total[1h])", "time": at})
    with urllib.request.urlopen(f"{url}/api/v1/query?{query}", timeout=30) as response:
        result = json.load(response)["data"]["result"]
    return {r["metric"]["xid"]: float(r["value"][1]) for r in result}


def test_zero_born_xid_counts_once_on_prometheus_and_victoriametrics(
    victoria: str,
    prometheus_factory: Callable[..., stack.Server],
    backfill: Callable[[str], Path],
) -> None:
    end = (int(time.time()) - AGO) // STEP * STEP
    points = history(end)

    text = "# TYPE gpu_xid_errors counter\n"
    text += "".join(f"{series} {value} {t}\n" for series, value, t in points) + "# EOF\n"
    prometheus = prometheus_factory(data_dir=backfill(text))
    prom = {
        r["metric"]["xid"]: float(r["value"][1])
        for r in stack.query(prometheus.url, "increase(gpu_xid_errors_total[1h])", at=end)
    }

    body = "".join(f"{series} {value} {t * 1000}\n" for series, value, t in points).encode()
    request = urllib.request.Request(f"{victoria}/api/v1/import/prometheus", data=body)
    urllib.request.urlopen(request, timeout=30).close()
    urllib.request.urlopen(f"{victoria}/internal/force_flush", timeout=30).close()
    vm: dict[str, Any] = {}
    deadline = time.monotonic() + 30
    while "48" not in vm:
        assert time.monotonic() < deadline, "VictoriaMetrics did not serve the import"
        vm = vm_increase(victoria, end)
        time.sleep(0.2)

    why = f"prometheus {prom}, victoriametrics {vm} (xid 95: born with its first event)"
    assert prom["48"] == pytest.approx(1.0, abs=0.05), why
    assert vm["48"] == pytest.approx(1.0, abs=0.05), why
    # ... while a series born with its first event reads 0 on one and 1 on the other
    # (docs/scaling.md states this; it is why the exporter exports the zero)
    assert prom.get("95", 0.0) == 0.0 and vm["95"] == pytest.approx(1.0), why
