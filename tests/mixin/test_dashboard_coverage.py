"""The fleet overview's coverage panels count each GPU slot once, evaluated by Prometheus' engine.

gpu_info carries driver_version and vbios_version, so a driver upgrade gives a GPU a second
gpu_info series for the coverage lookback (1d); counting series made a healthy node read 50 %.
The committed dashboard's own queries run through `promtool test rules` on such a history,
with the shipped recording rules (the panels count the slot record, slot:gpu_info:seen1d).
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
OVERVIEW = REPO / "grafana" / "gpu-fleet-overview.json"
RULES = REPO / "rules" / "gpu-health-rules.yaml"
VARIABLES = {
    "cluster": ".*",
    "node": ".*",
    "model": ".*",
    **builtin_values(0, 3600, 60, 15),
}
NODE_A = 'job="gpu-health-exporter", instance="a:9400", node="a", model="H100"'
GPU = f'{NODE_A}, gpu="0", uuid="U0", pci_bus_id="0"'
GPU1 = f'{NODE_A}, gpu="1", uuid="U1", pci_bus_id="1"'

pytestmark = pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")


def panel_exprs(title: str, **chosen: str) -> list[str]:
    dashboard = json.loads(OVERVIEW.read_text())
    (panel,) = [p for p in dashboard["panels"] if p.get("title") == title]
    return [substitute(t["expr"], VARIABLES | chosen) for t in panel["targets"]]


def run_promtool(tmp_path: Path, tests: list[dict[str, Any]], *, rules: bool = True) -> None:
    path = tmp_path / "coverage.test.yaml"
    rule_files = [str(RULES)] if rules else []
    path.write_text(
        yaml.safe_dump(
            {"rule_files": rule_files, "evaluation_interval": "1m", "tests": tests},
            sort_keys=False,
        )
    )
    done = subprocess.run(
        ["promtool", "test", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr


#: Two healthy GPUs on node a; U0's driver is upgraded at 10m (a new gpu_info series).
UPGRADE = [
    {"series": f'gpu_info{{{GPU}, driver_version="550.54"}}', "values": "1x9 stale"},
    {"series": f'gpu_info{{{GPU}, driver_version="560.35"}}', "values": "_x10 1x50"},
    {"series": f'gpu_info{{{GPU1}, driver_version="560.35"}}', "values": "1x60"},
    {"series": f"gpu_up{{{GPU}}}", "values": "1x60"},
    {"series": f"gpu_up{{{GPU1}}}", "values": "1x60"},
]


def assert_coverage(tmp_path: Path, series: list[dict[str, str]], expected: float) -> None:
    """Both coverage panels (the fleet's stat, node a's series) read ``expected`` at 30m."""
    (stat,) = panel_exprs("Exporter coverage")
    (by_node,) = panel_exprs("Exporter coverage by node")
    checks = [(stat, "{}"), (by_node, '{node="a"}')]
    run_promtool(
        tmp_path,
        [
            {
                "interval": "1m",
                "input_series": series,
                "promql_expr_test": [
                    {
                        "expr": expr,
                        "eval_time": "30m",
                        "exp_samples": [{"labels": labels, "value": expected}],
                    }
                    for expr, labels in checks
                ],
            }
        ],
    )


def test_coverage_stays_full_across_a_driver_upgrade(tmp_path: Path) -> None:
    assert_coverage(tmp_path, UPGRADE, 1)


def test_coverage_still_drops_for_a_lost_gpu(tmp_path: Path) -> None:
    """Counting distinct GPUs must not hide a GPU that stopped reporting."""
    series = [s for s in UPGRADE if s["series"] != f"gpu_up{{{GPU1}}}"]
    series.append({"series": f"gpu_up{{{GPU1}}}", "values": "1x9 stale"})
    assert_coverage(tmp_path, series, 0.5)


def slot_1_taken_over_by(labels: str) -> list[dict[str, str]]:
    """UPGRADE with U1 gone at 10m and a board of ``labels`` answering from its slot at 12m."""
    series = [s for s in UPGRADE if GPU1 not in s["series"]]
    return [
        *series,
        {"series": f'gpu_info{{{GPU1}, driver_version="560.35"}}', "values": "1x9 stale"},
        {"series": f"gpu_up{{{GPU1}}}", "values": "1x9 stale"},
        {"series": f'gpu_info{{{labels}, driver_version="560.35"}}', "values": "_x12 1x48"},
        {"series": f"gpu_up{{{labels}}}", "values": "_x12 1x48"},
    ]


def test_coverage_counts_a_replaced_board_once(tmp_path: Path) -> None:
    """A board replaced in its slot (same node and PCI bus id, a new uuid) is one GPU expected,
    not two for the coverage lookback: counting uuids made node a read 2/3."""
    new = f'{NODE_A}, gpu="1", uuid="U1-new", pci_bus_id="1"'
    assert_coverage(tmp_path, slot_1_taken_over_by(new), 1)


def test_coverage_counts_a_slot_once_when_its_board_changes_model(tmp_path: Path) -> None:
    """A baseboard swapped for another model keeps its slots: node a's slot 1 reported an H100,
    then an H200, within the day, and is still one GPU expected (per-model counts read 2/3)."""
    h200 = NODE_A.replace("H100", "H200") + ', gpu="1", uuid="U1-h200", pci_bus_id="1"'
    assert_coverage(tmp_path, slot_1_taken_over_by(h200), 1)


def test_coverage_by_node_shows_the_nodes_of_the_selected_model(tmp_path: Path) -> None:
    """The per-node panel reads per-node records (no model label): the model variable keeps the
    nodes that reported that model, each with the coverage of all its GPUs."""
    node_b = 'job="gpu-health-exporter", instance="b:9400", node="b", model="A100", gpu="0"'
    node_b += ', uuid="B0", pci_bus_id="0"'
    series = [
        *UPGRADE,
        {"series": f'gpu_info{{{node_b}, driver_version="560.35"}}', "values": "1x60"},
        {"series": f"gpu_up{{{node_b}}}", "values": "1x9 0x50"},
    ]
    checks = [("H100", '{node="a"}', 1), ("A100", '{node="b"}', 0), (".*", '{node="a"}', 1)]
    run_promtool(
        tmp_path,
        [
            {
                "interval": "1m",
                "input_series": series,
                "promql_expr_test": [
                    {
                        "expr": panel_exprs("Exporter coverage by node", model=model)[0],
                        "eval_time": "30m",
                        "exp_samples": [{"labels": labels, "value": value}]
                        + ([{"labels": '{node="b"}', "value": 0}] if model == ".*" else []),
                    }
                    for model, labels, value in checks
                ],
            }
        ],
    )


def test_coverage_by_node_stays_full_when_a_restart_changes_a_target_label(tmp_path: Path) -> None:
    """A scrape config that keeps a `pod` label gives node a's series a new value when its
    exporter restarts: its slots are then recorded under both for a day, and must not count
    twice (summed per node, the panel read 0.5 for a day after every rollout)."""
    series = []
    for pod, values in (("exp-1", "1x9 stale"), ("exp-2", "_x10 1x50")):
        for gpu in (GPU, GPU1):
            labels = f'{gpu}, pod="{pod}"'
            series += [
                {"series": f'gpu_info{{{labels}, driver_version="560.35"}}', "values": values},
                {"series": f"gpu_up{{{labels}}}", "values": values},
            ]
    assert_coverage(tmp_path, series, 1)


def test_coverage_counts_a_node_name_of_two_clusters_apart(tmp_path: Path) -> None:
    """Two clusters (the cluster label on the series, as Thanos or Mimir hold them) each have a
    node "a"; cluster y loses a GPU. Grouped by node alone, the slots of both clusters merged:
    the fleet read 3 of 2 GPUs (150 %) and GPUs missing -1, which hid the lost GPU."""
    series = []
    for cluster in ("x", "y"):
        for gpu in (GPU, GPU1):
            labels = f'{gpu}, cluster="{cluster}"'
            values = "1x9 stale" if (cluster, gpu) == ("y", GPU1) else "1x60"
            series += [
                {"series": f'gpu_info{{{labels}, driver_version="560.35"}}', "values": "1x60"},
                {"series": f"gpu_up{{{labels}}}", "values": values},
            ]
    checks = [
        (panel_exprs("Exporter coverage")[0], [("{}", 0.75)]),
        (panel_exprs("GPUs missing")[0], [("{}", 1)]),
        (
            panel_exprs("Exporter coverage by node")[0],
            [('{cluster="x", node="a"}', 1), ('{cluster="y", node="a"}', 0.5)],
        ),
    ]
    run_promtool(
        tmp_path,
        [
            {
                "interval": "1m",
                "input_series": series,
                "promql_expr_test": [
                    {
                        "expr": expr,
                        "eval_time": "30m",
                        "exp_samples": [{"labels": lab, "value": v} for lab, v in samples],
                    }
                    for expr, samples in checks
                ],
            }
        ],
    )


def test_gpus_missing_reads_no_data_where_the_slot_record_is_missing(tmp_path: Path) -> None:
    """Dashboards deployed before their rules (or rendered with another coverageLookback) find
    no slot record: GPUs missing must then show No data, not a green 0 beside a lost GPU."""
    series = [s for s in UPGRADE if s["series"] != f"gpu_up{{{GPU1}}}"]
    series.append({"series": f"gpu_up{{{GPU1}}}", "values": "1x9 0x50"})
    (missing,) = panel_exprs("GPUs missing")
    test = {
        "interval": "1m",
        "input_series": series,
        "promql_expr_test": [{"expr": missing, "eval_time": "30m", "exp_samples": []}],
    }
    run_promtool(tmp_path, [test], rules=False)
    # and with the rules, the lost GPU is counted
    test["promql_expr_test"][0]["exp_samples"] = [{"labels": "{}", "value": 1}]
    run_promtool(tmp_path, [test])
