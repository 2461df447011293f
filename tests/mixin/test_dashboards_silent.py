"""Lost, silent and replaced GPUs on the dashboards, evaluated by Prometheus' engine.

A GPU whose series stop (the driver dropped it, its exporter died) left every health aggregate:
the fleet mean was over the GPUs still reporting, no grade counted it, the worst-GPU table did
not list it, and a dead selection read "No data". The committed dashboards' own queries run
through `promtool test rules` with the generated recording rules (the silent-GPU records they
read) on a fleet holding each case; tests/mixin/test_dashboards_live.py runs them on a real
Prometheus and VictoriaMetrics.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from gpu_health.mixin.dashquery import builtin_values, substitute

REPO = Path(__file__).resolve().parents[2]
GRAFANA = REPO / "grafana"
RULES = REPO / "rules" / "gpu-health-rules.yaml"
EVAL = "30m"

pytestmark = pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")

JOB = 'job="gpu-health-exporter"'


def gpu(node: str, index: str, uuid: str, slot: str, model: str) -> str:
    return (
        f'{JOB}, instance="{node}:9400", node="{node}", gpu="{index}", uuid="{uuid}", '
        f'pci_bus_id="{slot}", model="{model}"'
    )


U0 = gpu("a", "0", "U0", "0", "H100")  # healthy, 80
U1 = gpu("a", "1", "U1", "1", "H100")  # its series stop at 10m (silent)
U2 = gpu("a", "2", "U2", "2", "H100")  # replaced in its slot by U2n (gone at 5m, new from 6m)
U2N = gpu("a", "2", "U2n", "2", "H100")
U4 = gpu("a", "3", "U4", "3", "H100")  # fell off the bus: gpu_up 0, scored 0, critical
U5 = gpu("a", "4", "U5", "4", "H100")  # answers with a NaN score
U3 = gpu("b", "0", "U3", "0", "A100")  # node b's exporter dies at 10m
N = 61  # samples: 0m..60m
NAN = " ".join(["NaN"] * N)


def series(metric: str, labels: str, values: str) -> dict[str, str]:
    return {"series": f"{metric}{{{labels}}}", "values": values}


def one_gpu(labels: str, up: str, score: str, grade: str, values: str) -> list[dict[str, str]]:
    """gpu_info, gpu_up, the overall score and the grade of one GPU, all on ``values``' times."""
    return [
        series("gpu_info", f'{labels}, driver_version="560.35"', values),
        series("gpu_up", labels, values.replace("1", up) if up != "1" else values),
        series("gpu_health_score", f'{labels}, dimension="overall"', score),
        series("gpu_health_grade", f'{labels}, grade="{grade}"', values),
    ]


def _fleet() -> list[dict[str, str]]:
    s: list[dict[str, str]] = []
    s += one_gpu(U0, "1", f"80x{N - 1}", "good", f"1x{N - 1}")
    s += one_gpu(U1, "1", "90x9 stale", "excellent", "1x9 stale")
    s += one_gpu(U2, "1", "30x4 stale", "poor", "1x4 stale")
    s += one_gpu(U2N, "1", f"_x6 100x{N - 7}", "excellent", f"_x6 1x{N - 7}")
    s += one_gpu(U4, "0", f"0x{N - 1}", "critical", f"1x{N - 1}")
    s += one_gpu(U5, "1", NAN, "good", f"1x{N - 1}")
    s += one_gpu(U3, "1", "70x9 stale", "good", "1x9 stale")
    inv, answering, ok = (
        "gpu_exporter_gpus",
        "gpu_exporter_gpus",
        "gpu_exporter_scrape_collector_success",
    )
    s += [
        series("up", f'{JOB}, instance="a:9400"', f"1x{N - 1}"),
        series("up", f'{JOB}, instance="b:9400"', f"1x9 0x{N - 11}"),
        series(inv, f'{JOB}, instance="a:9400", state="inventory"', f"5x9 4x{N - 11}"),
        series(answering, f'{JOB}, instance="a:9400", state="up"', f"4x9 3x{N - 11}"),
        series(inv, f'{JOB}, instance="b:9400", state="inventory"', "1x9 stale"),
        series(answering, f'{JOB}, instance="b:9400", state="up"', "1x9 stale"),
        series(ok, f'{JOB}, instance="a:9400", collector="gpu"', f"1x{N - 1}"),
        series(ok, f'{JOB}, instance="b:9400", collector="gpu"', "1x9 stale"),
    ]  # fmt: skip
    return s


def panel(dashboard: str, title: str) -> dict[str, Any]:
    doc = json.loads((GRAFANA / dashboard).read_text())
    (found,) = [p for p in doc["panels"] if p.get("title") == title]
    result: dict[str, Any] = found
    return result


def exprs(dashboard: str, title: str, **chosen: str) -> list[str]:
    values = {"cluster": ".*", "node": ".*", "model": ".*", **builtin_values(0, 3600, 60, 15)}
    values.update(chosen)
    return [substitute(t["expr"], values) for t in panel(dashboard, title)["targets"]]


def promtool(
    tmp_path: Path,
    checks: list[tuple[str, list[tuple[str, float]]]],
    input_series: list[dict[str, str]] | None = None,
) -> None:
    spec = {
        "rule_files": [str(RULES)],
        "evaluation_interval": "1m",
        "group_eval_order": [f"gpu-health-{g}.rules" for g in ("gpu", "node", "fleet")],
        "tests": [
            {
                "interval": "1m",
                "input_series": _fleet() if input_series is None else input_series,
                "promql_expr_test": [
                    {
                        "expr": expr,
                        "eval_time": EVAL,
                        "exp_samples": [{"labels": lab, "value": v} for lab, v in samples],
                    }
                    for expr, samples in checks
                ],
            }
        ],
    }  # fmt: skip
    path = tmp_path / "silent.test.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    done = subprocess.run(
        ["promtool", "test", "rules", str(path)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr


OVERVIEW = "gpu-fleet-overview.json"
DETAIL = "gpu-detail.json"
RISK = "gpu-risk-economics.json"


def stat(title: str, value: float, **chosen: str) -> tuple[str, list[tuple[str, float]]]:
    (expr,) = exprs(OVERVIEW, title, **chosen)
    return expr, [("{}", value)]


def test_fleet_stats_count_lost_silent_and_replaced_gpus(tmp_path: Path) -> None:
    """Six slots seen (node a's five, the replaced board's once; node b's one): U0, U2n and U5
    report; U4 is lost, U1 silent, node b dead. The mean counts U1, U3 (silent) and U5 (NaN) as
    0: (80 + 100) / 6."""
    promtool(
        tmp_path,
        [
            stat("GPUs reporting", 3),
            stat("GPUs missing", 3),
            stat("Exporter coverage", 0.5),
            stat("Mean health score", 30),
            stat("GPUs poor, critical or silent", 3),
        ],
    )


def test_a_dead_selection_reads_zero_not_no_data(tmp_path: Path) -> None:
    """Node b's exporter is dead: every stat reads 0 (one GPU missing, one silent); a node
    nothing was seen on within the lookbacks reads 0 too."""
    promtool(
        tmp_path,
        [
            stat("GPUs reporting", 0, node="b"),
            stat("GPUs missing", 1, node="b"),
            stat("Exporter coverage", 0, node="b"),
            stat("Mean health score", 0, node="b"),
            stat("GPUs poor, critical or silent", 1, node="b"),
            stat("GPUs reporting", 0, node="gone"),
            stat("Exporter coverage", 0, node="gone"),
            stat("Mean health score", 0, node="gone"),
            stat("GPUs poor, critical or silent", 0, node="gone"),
            (exprs(OVERVIEW, "GPUs per grade", node="b")[0], [('{grade="silent"}', 1)]),
        ],
    )


def test_grades_worst_gpus_and_models_list_silent_gpus(tmp_path: Path) -> None:
    absent = "gpu:gpu_up:absent6h"
    unknown = "gpu:gpu_health_score:unknown"
    overall = 'dimension="overall"'
    promtool(
        tmp_path,
        [
            (
                exprs(OVERVIEW, "GPUs per grade")[0],
                [
                    ('{grade="good"}', 2),
                    ('{grade="excellent"}', 1),
                    ('{grade="critical"}', 1),
                    ('{grade="silent"}', 2),
                ],
            ),
            (
                exprs(OVERVIEW, "Worst GPUs")[0],
                [
                    (f'{{{U0}, {overall}, grade="good"}}', 80),
                    (f'{{{U2N}, {overall}, grade="excellent"}}', 100),
                    (f'{{{U4}, {overall}, grade="critical"}}', 0),
                    (f'{unknown}{{{U5}, {overall}, grade="no score"}}', 0),
                    (f'{absent}{{{U1}, grade="silent"}}', 0),
                    (f'{absent}{{{U3}, grade="silent"}}', 0),
                ],
            ),
            (
                exprs(OVERVIEW, "Health score by model")[0],
                [('{model="H100"}', 36), ('{model="A100"}', 0)],
            ),
            (
                exprs(OVERVIEW, "Exporter coverage by node")[0],
                [('{node="a"}', 0.6), ('{node="b"}', 0)],
            ),
        ],
    )


def test_exporters_table_shows_a_dead_exporter_and_missing_gpus(tmp_path: Path) -> None:
    """Exporter a still runs but dropped U1 from its inventory at 10m (its gpu_exporter_gpus
    went 5 -> 4): U1 stays in a's inventory and is not answering, with U4 (lost), as the
    coverage panels count it; the board replaced in its slot (U2 -> U2n) counts once. The
    row read 4 in inventory and 1 not answering, U1 in no column. Node b's dead exporter
    counts its silent U3."""
    up, inventory, answering, collectors, not_answering = exprs(OVERVIEW, "Exporters")
    a, b = '{instance="a:9400"}', '{instance="b:9400"}'
    promtool(
        tmp_path,
        [
            (up, [(a, 1), (b, 0)]),
            (inventory, [(a, 5), (b, 1)]),
            (answering, [(a, 3), (b, 0)]),
            (collectors, [(a, 1), (b, 0)]),
            (not_answering, [(a, 2), (b, 1)]),
        ],
    )
    overrides = {
        o["matcher"]["options"]: o["properties"]
        for o in panel(OVERVIEW, "Exporters")["fieldConfig"]["overrides"]
    }
    assert colour(overrides["GPUs not answering"][0]["value"], 1) == "red"
    assert colour(overrides["GPUs not answering"][0]["value"], 0) == "green"
    # answering 7 of 8 is not shown green on its own
    assert colour(overrides["GPUs answering"][0]["value"], 7) != "green"


def test_detail_stats_show_a_silent_gpu_as_silent(tmp_path: Path) -> None:
    checks: list[tuple[str, list[tuple[str, float]]]] = []
    for uuid, labels in (("U1", U1), ("U3", U3)):
        health, grade, up = (
            exprs(DETAIL, title, gpu=uuid)[0] for title in ("Health score", "Grade", "Up")
        )
        checks += [
            (health, [(f'gpu:gpu_health_score:unknown{{{labels}, dimension="overall"}}', 0)]),
            (grade, [(f'{{{labels}, grade="silent"}}', 1)]),
            (up, [(f"{{{labels}}}", -1)]),
        ]
    # a GPU answering with a NaN score reads 0, not NaN
    checks.append(
        (
            exprs(DETAIL, "Health score", gpu="U5")[0],
            [(f'gpu:gpu_health_score:unknown{{{U5}, dimension="overall"}}', 0)],
        )
    )
    promtool(tmp_path, checks)
    for title in ("Health score", "Grade", "Up"):
        defaults = panel(DETAIL, title)["fieldConfig"]["defaults"]
        assert defaults["noValue"] == "SILENT", title
    (mapping,) = panel(DETAIL, "Up")["fieldConfig"]["defaults"]["mappings"]
    assert mapping["options"]["-1"] == {"text": "SILENT", "color": "red"}
    colours = {
        o["matcher"]["options"]: o["properties"][0]["value"]["fixedColor"]
        for o in panel(DETAIL, "Grade")["fieldConfig"]["overrides"]
    }
    assert colours["critical"] == colours["silent"] == "red"
    assert colours["excellent"] != colours["critical"]


def test_risk_stat_counts_gpus_not_valued_per_model(tmp_path: Path) -> None:
    """GPUs no economics entry matches (gpu_scorer_econ_unvalued_gpus, per model and scorer
    shard, no node label): "GPUs not valued" sums the shards per model, keeps the models scored
    on the selected nodes, and reads "all valued" 0 where there are none."""
    scorer = 'job="gpu-health-scorer"'

    def state(shard: str, node: str, uuid: str, model: str) -> dict[str, str]:
        labels = f'{scorer}, instance="{shard}", node="{node}", gpu="0", uuid="{uuid}"'
        return series("gpu_state", f'{labels}, model="{model}", state="healthy"', f"1x{N - 1}")

    fleet = [
        series("gpu_scorer_econ_unvalued_gpus", f'{scorer}, instance="s0", model="V100"', "2x60"),
        series("gpu_scorer_econ_unvalued_gpus", f'{scorer}, instance="s1", model="V100"', "1x60"),
        series("gpu_scorer_econ_unvalued_gpus", f'{scorer}, instance="s0", model="A10"', "1x60"),
        state("s0", "a", "V0", "V100"),
        state("s1", "a", "V1", "V100"),
        state("s0", "a", "V2", "V100"),
        state("s0", "b", "A0", "A10"),
        state("s1", "c", "H0", "H100"),
    ]
    title = "GPUs not valued"
    none = [('{model="all valued"}', 0.0)]
    promtool(
        tmp_path,
        [
            (exprs(RISK, title)[0], [('{model="V100"}', 3), ('{model="A10"}', 1)]),
            (exprs(RISK, title, node="b")[0], [('{model="A10"}', 1)]),
            (exprs(RISK, title, node="c")[0], none),
            (exprs(RISK, title, model="H100")[0], none),
        ],
        fleet,
    )
    stat_panel = panel(RISK, title)
    assert colour(stat_panel["fieldConfig"]["defaults"]["thresholds"], 1) == "red"
    assert colour(stat_panel["fieldConfig"]["defaults"]["thresholds"], 0) == "green"
    assert stat_panel["options"]["textMode"] == "value_and_name"
    assert "--econ.params" in stat_panel["description"]


def colour(thresholds: dict[str, Any], value: float) -> str:
    steps = thresholds["steps"]
    found: str = steps[0]["color"]
    for step in steps[1:]:
        if value >= step["value"]:
            found = step["color"]
    return found


@pytest.mark.parametrize(
    "fleet, missing", [(1000, 1), (10_000, 8), (10_000, 10), (20_000, 8), (20_000, 1)]
)
def test_coverage_is_green_only_when_nothing_is_missing(fleet: int, missing: int) -> None:
    """At 10,000 GPUs one dead 8-GPU exporter read "99.9 %" in green."""
    coverage = panel(OVERVIEW, "Exporter coverage")["fieldConfig"]["defaults"]
    assert colour(coverage["thresholds"], (fleet - missing) / fleet) == "red"
    assert colour(coverage["thresholds"], 1.0) == "green"
    count = panel(OVERVIEW, "GPUs missing")["fieldConfig"]["defaults"]
    assert colour(count["thresholds"], missing) == "red"
    assert colour(count["thresholds"], 0) == "green"
