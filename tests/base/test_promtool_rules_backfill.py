"""Backfilling recording rules with promtool writes blocks whatever second the range starts at.

promtool (2.42 here) writes no block at all, and exits 0, when ``--start`` falls after a
group's last evaluation in its 2-hour block (prometheus/prometheus#19714): a start one second
before a block's end did it for an hourly group on every try.
``stack.promtool_backfill_rules`` moves the start back to its block's beginning, so the
operator's range (and docs/scorer.md's recipe, which does the same) always gets its samples.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from gpu_health import stack
from tests.conftest import PrometheusFactory

pytestmark = [pytest.mark.integration]

START = 1_700_006_400  # a 2-hour boundary
END = START + 86400


def _history(path: Path) -> None:
    lines = ["# TYPE gpu_power_watts gauge"]
    for gpu in range(2):
        lines += [f'gpu_power_watts{{uuid="GPU-{gpu}"}} 300 {t}' for t in range(START, END, 300)]
    path.write_text("\n".join([*lines, "# EOF"]) + "\n")


def test_a_start_just_before_a_block_boundary_still_gets_its_samples(
    tmp_path: Path, prometheus_factory: PrometheusFactory
) -> None:
    _history(tmp_path / "history.om")
    stack.promtool_backfill(tmp_path / "history.om", tmp_path / "tsdb")
    rules = tmp_path / "rules.yaml"
    group = {"name": "hourly", "interval": "1h"}
    expr = "avg_over_time(gpu_power_watts[1h])"
    group["rules"] = [{"record": "gpu:power:avg1h", "expr": expr}]  # type: ignore[assignment]
    rules.write_text(yaml.safe_dump({"groups": [group]}))
    prometheus = prometheus_factory(data_dir=tmp_path / "tsdb")
    start = START + 4 * 3600 - 1  # the last second of a 2-hour block
    out = tmp_path / "blocks"
    stack.promtool_backfill_rules(rules, prometheus.url, start, END, out)
    blocks = [json.loads((b / "meta.json").read_text()) for b in out.iterdir()]
    assert len(blocks) >= 10  # one per 2-hour block from the start's block to the end
    assert min(b["minTime"] for b in blocks) / 1000 < start
