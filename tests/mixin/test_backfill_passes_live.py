"""The generated backfill passes give history to records that read records, through promtool and
a real Prometheus (docs/dashboards.md's procedure, with a restart instead of waiting for
Prometheus to reread its data directory).

Six hours of two GPUs on node a; GPU-1 goes silent (its series stop) at 3 h. A single backfill
of the rules leaves the per-node coverage and the overall health score without history, because
promtool evaluates each rule against what Prometheus holds; pass by pass they get it.
"""

from __future__ import annotations

import json
import shutil
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from gpu_health import stack
from gpu_health.mixin import render as mixin
from tests.conftest import PrometheusFactory

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed"),
]

REPO = Path(__file__).resolve().parents[2]
PASSES = sorted((REPO / mixin.BACKFILL_DIR).glob("gpu-health-rules.pass-*.yaml"))
START = 1_700_006_400  # a 2-hour boundary
END = START + 6 * 3600
SILENT_AT = START + 3 * 3600
AT = END - 1800  # when the history is read: GPU-1 silent for 2.5 h, within the 6 h lookback


def _history() -> str:
    lines: list[str] = []
    for metric, extra, value in (
        (
            "gpu_info",
            ',serial="1",vbios_version="v",driver_version="d",cuda_driver_version="c"',
            1,
        ),
        ("gpu_up", "", 1),
        ("gpu_health_score", ',dimension="overall"', 90),
    ):
        lines.append(f"# TYPE {metric} gauge")
        for gpu in range(2):
            labels = (
                f'job="gpu-health-exporter",instance="a:9400",node="a",gpu="{gpu}",'
                f'uuid="GPU-{gpu}",pci_bus_id="0000:{gpu + 18}:00.0",model="H100"{extra}'
            )
            stop = SILENT_AT if gpu == 1 else END + 1
            lines += [f"{metric}{{{labels}}} {value} {t}" for t in range(START, stop, 60)]
    return "\n".join([*lines, "# EOF"]) + "\n"


def _query(url: str, promql: str) -> list[dict[str, Any]]:
    query = urllib.parse.urlencode({"query": promql, "time": AT})
    with urllib.request.urlopen(f"{url}/api/v1/query?{query}", timeout=30) as answer:
        result: list[dict[str, Any]] = json.load(answer)["data"]["result"]
    return result


def test_each_pass_gives_history_to_the_records_that_read_the_one_before(
    tmp_path: Path, backfill: Any, prometheus_factory: PrometheusFactory
) -> None:
    data = backfill(_history())
    prometheus = prometheus_factory(data_dir=data)
    slots = "node:gpu_info:slots_seen1d"
    overall = "gpu:gpu_health_score:overall"
    seen: list[tuple[int, int]] = []
    for level, pass_file in enumerate(PASSES):
        out = tmp_path / f"blocks-{level}"
        stack.promtool_backfill_rules(pass_file, prometheus.url, START, END, out)
        prometheus.stop()
        for block in out.iterdir():
            shutil.move(str(block), data / block.name)
        prometheus = prometheus_factory(data_dir=data)
        seen.append((len(_query(prometheus.url, slots)), len(_query(prometheus.url, overall))))
    # the per-node coverage (pass 1) reads the slot record (pass 0); the overall score (pass 3)
    # reads the unknown record (pass 2), which reads the silent one (pass 1)
    assert seen == [(0, 0), (1, 0), (1, 0), (1, 2)]
    (node,) = _query(prometheus.url, slots)
    assert node["metric"]["node"] == "a" and node["value"][1] == "2"
    scores = {s["metric"]["uuid"]: s["value"][1] for s in _query(prometheus.url, overall)}
    assert scores == {"GPU-0": "90", "GPU-1": "0"}  # the silent GPU at 0, from its history
