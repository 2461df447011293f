"""bench/hourly_on_fleet.py runs end to end on a small fleet's TSDB and reports what it says.

Its numbers (on the blind generators' fleets) are in docs/scorer.md; this runs the script as a
command on a hand-made dcgm-exporter history (6 GPUs, 2 days at 5 minutes, real Prometheus and
promtool) and checks that its report holds together: it backfilled only the hourly rules whose
input the fleet sends, left the fleet's own directory as it was, scored every GPU from both
histories, backfilled the hourly rules from the fleet's first sample on (not over the empty
weeks before it), and a second run reuses the copy and its hourly samples.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gpu_health import stack
from tests.bench.bench_runs import run_bench

pytestmark = [pytest.mark.integration]

BENCH = Path(__file__).resolve().parents[2] / "bench" / "hourly_on_fleet.py"
START = 1_700_006_400
END = START + 2 * 86400
SENT = ("DCGM_FI_DEV_POWER_USAGE", "DCGM_FI_DEV_GPU_TEMP", "DCGM_FI_DEV_ECC_SBE_AGG_TOTAL")


def _history() -> str:
    lines = [f"# TYPE {name} gauge" for name in SENT]
    for gpu in range(6):
        labels = f'Hostname="n0",gpu="{gpu}",UUID="GPU-{gpu}",modelName="NVIDIA H100 80GB HBM3"'
        for k, t in enumerate(range(START, END, 300)):
            lines.append(f"{SENT[0]}{{{labels}}} {300 + gpu + k % 7} {t}")
            lines.append(f"{SENT[1]}{{{labels}}} {50 + gpu} {t}")
            lines.append(f"{SENT[2]}{{{labels}}} {k // 100 * gpu} {t}")
    return "\n".join([*lines, "# EOF"]) + "\n"


@pytest.mark.timeout(300)
def test_the_script_compares_both_histories_on_a_small_fleet(tmp_path: Path) -> None:
    source = tmp_path / "fleet.om"
    source.write_text(_history())
    fleet = tmp_path / "fleet"
    stack.promtool_backfill(source, fleet)
    before = sorted(p.name for p in fleet.iterdir())
    work = tmp_path / "work"
    args = ("--data-dir", str(fleet), "--work", str(work), "--at", str(END - 60))
    _, report = run_bench(BENCH, tmp_path, *args, "--settle-s", "3")
    assert sorted(p.name for p in fleet.iterdir()) == before
    assert report["hourly_rules"] == len(SENT)
    (at,) = report["times"]
    assert at["gpus_raw"] == at["gpus_recorded"] == 6
    assert at["auto_reads"] in {"hourly", "recorded+hourly"}
    assert at["hazard_abs_log_ratio_max"] >= 0 and at["top_tenth_shared"] == "1/1"
    # backfilled from the fleet's first sample, not over the empty weeks before it
    assert json.loads((work / "hourly-backfilled.json").read_text())["start"] == START
    backfill_s = report["rules_backfill_s"]
    _, again = run_bench(BENCH, tmp_path, *args, "--settle-s", "3")
    assert again["rules_backfill_s"] == backfill_s  # the copy and its samples reused
