"""Faults as the generated rules see them (promtool unit tests of rules/*.yaml).

An exporter restart resets every counter to zero; a GPU can fall off the bus (``gpu_up 0``) or
vanish from the exporter (no series) and come back. The rules must neither double-count XIDs
across a restart nor leave an alert firing after the GPU returns.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
RULES = [REPO / "rules" / "gpu-health-rules.yaml", REPO / "rules" / "gpu-health-alerts.yaml"]
GPU = (
    'job="gpu-health-exporter", instance="node-a:9840", node="node-a", gpu="0", uuid="GPU-0a", '
    'pci_bus_id="00000000:18:00.0", model="H100"'
)

pytestmark = [
    pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed"),
    pytest.mark.skipif(not all(p.is_file() for p in RULES), reason="rules not generated yet"),
]


def promtool(tmp_path: Path, tests: list[dict[str, Any]]) -> None:
    spec = {
        "rule_files": [str(p) for p in RULES],
        "evaluation_interval": "1m",
        "group_eval_order": [
            "gpu-health-gpu.rules",
            "gpu-health-node.rules",
            "gpu-health-fleet.rules",
        ],
        "tests": tests,
    }
    path = tmp_path / "reliability.test.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    done = subprocess.run(
        ["promtool", "test", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr


def xid_test(values: str, eval_time: str, expected: float | None) -> dict[str, Any]:
    """``expected`` None: no series (the record keeps only codes with events in the window)."""
    series = f'gpu_xid_errors_total{{{GPU}, xid="48"}}'
    record = f'gpu_xid:gpu_xid_errors:increase10m{{{GPU}, xid="48"}}'
    return {
        "interval": "1m",
        "input_series": [{"series": series, "values": values}],
        "promql_expr_test": [
            {
                "expr": "gpu_xid:gpu_xid_errors:increase10m",
                "eval_time": eval_time,
                "exp_samples": [] if expected is None else [{"labels": record, "value": expected}],
            }
        ],
    }


def test_exporter_restart_does_not_double_count_xids(tmp_path: Path) -> None:
    # A long-lived series (5 XIDs long ago), the exporter restarts (2 scrapes missed, the counter
    # is back at 0), then 2 new XIDs: 2 in the last 10 minutes, not 5 + 2.
    promtool(tmp_path, [xid_test("5x20 _ _ 0 1 2 2 2 2", "28m", 2)])


def test_old_xids_leave_the_window(tmp_path: Path) -> None:
    promtool(tmp_path, [xid_test("0 1 1 1 1x30", "25m", None)])


def test_restart_soon_after_the_first_xid_still_counts_all(tmp_path: Path) -> None:
    # Counters are born at 0 with the exporter (every catalogued code), so increase() sees the
    # first XID; two XIDs, the exporter restarts (the NVML-only count is born at 0 again) and a
    # third XID arrives: 3 in the window, not 1 (the old `unless present_over_time` rule) or 5.
    promtool(tmp_path, [xid_test("0 1 2 _ 0 1 1 1", "6m", 3)])


def test_restart_with_kernel_log_counts_since_boot(tmp_path: Path) -> None:
    # With the kernel-log source the counter is "since boot": a restart re-reads the log and the
    # series continues where it was (2), the third XID makes it 3: still 3 in the window.
    promtool(tmp_path, [xid_test("0 1 2 _ _ 2 3 3", "6m", 3)])


def test_first_xid_of_a_code_counts_once(tmp_path: Path) -> None:
    # The series sat at 0 for ten minutes before its first event: one event, not zero.
    promtool(tmp_path, [xid_test("0x10 1 1", "12m", 1)])


def alert_series(alert: str, severity: str) -> str:
    return f'ALERTS{{alertname="{alert}", alertstate="firing", {GPU}, severity="{severity}"}}'


def test_gpu_falling_off_the_bus_fires_and_resolves_when_it_returns(tmp_path: Path) -> None:
    up = f"gpu_up{{{GPU}}}"
    promtool(
        tmp_path,
        [
            {
                "interval": "1m",
                "input_series": [{"series": up, "values": "1 1 1 0 0 0 0 0 0 1 1 1 1 1"}],
                "promql_expr_test": [
                    {
                        "expr": 'ALERTS{alertname="GPUFallenOffBus"}',
                        "eval_time": "8m",
                        "exp_samples": [
                            {"labels": alert_series("GPUFallenOffBus", "critical"), "value": 1}
                        ],
                    },
                    {
                        "expr": 'ALERTS{alertname="GPUFallenOffBus"}',
                        "eval_time": "12m",
                        "exp_samples": [],
                    },
                ],
            }
        ],
    )


def test_gpu_vanishing_from_the_exporter_fires_and_resolves_when_it_returns(
    tmp_path: Path,
) -> None:
    up = f"gpu_up{{{GPU}}}"
    promtool(
        tmp_path,
        [
            {
                "interval": "1m",
                # 6 samples, 20 minutes without the series, then back.
                "input_series": [{"series": up, "values": "1x5 _x20 1x5"}],
                "promql_expr_test": [
                    {
                        "expr": 'ALERTS{alertname="GPUMetricsAbsent", alertstate="firing"}',
                        "eval_time": "24m",
                        "exp_samples": [
                            {"labels": alert_series("GPUMetricsAbsent", "warning"), "value": 1}
                        ],
                    },
                    {
                        "expr": 'ALERTS{alertname="GPUMetricsAbsent"}',
                        "eval_time": "27m",
                        "exp_samples": [],
                    },
                ],
            }
        ],
    )
