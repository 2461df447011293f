"""rules/backfill/: the recording rules split into passes for promtool's rule backfill.

Promtool evaluates a rule against what Prometheus holds, so a record that reads another record
gets history only after that one's blocks are loaded; the generated passes put every record
after each record it reads (checked here with the PromQL parser, not the generator's regex)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import promql_parser
import pytest
import yaml

from gpu_health.mixin import render as mixin
from gpu_health.mixin.backfill_passes import passes, record_depths
from tests.mixin.promql_names import metric_names

REPO = Path(__file__).resolve().parents[2]
PASSES = sorted((REPO / mixin.BACKFILL_DIR).glob("gpu-health-rules.pass-*.yaml"))


def _records(path: Path) -> dict[str, str]:
    doc = yaml.safe_load(path.read_text())
    return {r["record"]: r["expr"] for g in doc["groups"] for r in g["rules"] if "record" in r}


def test_every_record_is_in_one_pass_after_each_record_it_reads() -> None:
    assert len(PASSES) >= 2, PASSES
    shipped = _records(REPO / mixin.RULES_FILE)
    pass_of: dict[str, int] = {}
    for level, path in enumerate(PASSES):
        assert path.name == f"gpu-health-rules.pass-{level}.yaml"
        for name, expr in _records(path).items():
            assert name not in pass_of, f"{name} in passes {pass_of[name]} and {level}"
            assert expr == shipped[name], name
            pass_of[name] = level
    assert set(pass_of) == set(shipped)
    for name, expr in shipped.items():
        read = metric_names(promql_parser.parse(expr)) & set(shipped) - {name}
        assert all(pass_of[other] < pass_of[name] for other in read), (name, read)
        # and no later than it must be: one after the deepest record it reads
        assert pass_of[name] == 1 + max((pass_of[o] for o in read), default=-1), name


def test_the_overall_score_and_the_per_node_coverage_wait_for_what_they_read() -> None:
    """The chain the docs name: silent_last -> absent -> unknown -> overall; slot -> per node."""
    depths = record_depths(yaml.safe_load((REPO / mixin.RULES_FILE).read_text()))
    chain = [
        "gpu:gpu_up:silent_last6h",
        "gpu:gpu_up:absent6h",
        "gpu:gpu_health_score:unknown",
        "gpu:gpu_health_score:overall",
    ]
    assert [depths[name] for name in chain] == [0, 1, 2, 3]
    assert depths["slot:gpu_info:seen1d"] == 0
    assert depths["node:gpu_info:slots_seen1d"] == depths["node_model:gpu_info:seen1d"] == 1


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")
def test_promtool_accepts_every_pass() -> None:
    done = subprocess.run(
        ["promtool", "check", "rules", *map(str, PASSES)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_groups_keep_their_interval_alerts_are_left_out_and_a_cycle_is_refused() -> None:
    doc = {
        "groups": [
            {
                "name": "g",
                "interval": "1h",
                "rules": [
                    {"record": "a:x:b", "expr": "sum(x)"},
                    {"alert": "A", "expr": "c:x:d > 0"},
                    {"record": "c:x:d", "expr": "a:x:b[2m:15s] or e:x:f"},
                    {"record": "e:x:f", "expr": "max_over_time(a:x:b[1h])"},
                ],
            }
        ]
    }
    steps = passes(doc)
    assert [[r["record"] for g in s["groups"] for r in g["rules"]] for s in steps] == [
        ["a:x:b"],
        ["e:x:f"],
        ["c:x:d"],
    ]
    assert all(g["interval"] == "1h" for s in steps for g in s["groups"])
    doc["groups"][0]["rules"][0]["expr"] = "sum(c:x:d)"
    with pytest.raises(ValueError, match="reads itself through other records"):
        record_depths(doc)


def test_every_rule_of_a_name_counts_and_names_without_a_colon_are_found() -> None:
    """Prometheus allows several rules recording one name, and a record name without a colon;
    a record read through either still waits for it (the first draft kept one rule per name
    and found only names with a colon: both put a record in the pass of what it reads)."""
    doc = {
        "groups": [
            {
                "name": "g",
                "rules": [
                    {"record": "d:e:f", "expr": "sum(x)"},
                    {"record": "a:b:c", "expr": "d:e:f * 2"},
                    {"record": "a:b:c", "expr": "up"},
                    {"record": "gpu_health_overall", "expr": "avg(y)"},
                    {"record": "x:y:z", "expr": "gpu_health_overall > 0"},
                    {"record": "x:y:zz", "expr": "x:y:z_not_this or gpu_health_overall_old"},
                ],
            }
        ]
    }
    depths = record_depths(doc)
    assert depths == {
        "d:e:f": 0,
        "a:b:c": 1,
        "gpu_health_overall": 0,
        "x:y:z": 1,
        "x:y:zz": 0,
    }
