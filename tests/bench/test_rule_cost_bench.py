"""bench/bench_rule_cost.py runs end to end on a tiny fleet and reports every rule of both sets.

Its numbers are in docs/scaling.md; this runs the bench as a command (8 GPUs, a quarter of an
hour of history, rules evaluated every 2 s, one round) with the committed rules as set A and the
work tree's as set B, and checks that it timed every group and every rule of the generated files
in both sets.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.bench.bench_runs import run_bench

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "bench" / "bench_rule_cost.py"
RULE_FILES = ("gpu-health-rules.yaml", "gpu-health-alerts.yaml")


def _rules() -> set[str]:
    """``group / rule`` of every rule the 2-second evaluation runs (the scorer's history
    groups run every 5 minutes and 1 hour: not timed in so short a run)."""
    names = set()
    for name in RULE_FILES:
        for group in yaml.safe_load((REPO / "rules" / name).read_text())["groups"]:
            names.add(f"{group['name']} / (group)")
            for rule in group["rules"]:
                names.add(f"{group['name']} / {rule.get('record') or rule['alert']}")
    return names


def test_the_bench_times_every_rule_of_both_sets(tmp_path: Path) -> None:
    args = ("--gpus", "8", "--hours", "0.25", "--interval", "2s", "--rounds", "1")
    done, report = run_bench(BENCH, tmp_path, *args, "--evaluations", "1", timeout=240)
    wanted = _rules()
    for arm in ("A", "B"):
        assert wanted <= set(report[arm]), sorted(wanted - set(report[arm]))[:5]
        assert all(t >= 0 for t in report[arm].values())
        assert report[arm]["gpu-health-gpu.rules / (group)"] > 0
    assert "| gpu-health-gpu.rules | (group) |" in done.stdout


def test_the_bench_refuses_a_revision_without_rules(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH), "--base", "no-such-revision", "--gpus", "8", "--hours", "1"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode != 0 and "--base no-such-revision" in done.stderr, done.stderr[-2000:]
