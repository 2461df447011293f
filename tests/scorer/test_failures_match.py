"""Failures whose UUID no GPU of the history carries are said, never silently counted nowhere.

An RMA export whose UUIDs are written otherwise than the exporter's (upper case, a serial
number) gave ``evaluate`` an evaluation of negative rows only, ``train`` nothing to learn and
``outcomes`` every flag a false alarm, without a word.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from gpu_health.scorer import cli as scorer_cli
from tests.base.command_runs import run_main
from tests.conftest import PrometheusFactory


def _two_days(backfill: Callable[[str], Path]) -> tuple[Path, int]:
    """Two GPUs reporting every 10 minutes for two days; (data dir, its end)."""
    end = int(time.time()) // 600 * 600
    lines = []
    for name, value in (("gpu_up", 1), ("gpu_power_watts", 300), ("gpu_temperature_celsius", 50)):
        lines.append(f"# TYPE {name} gauge")
        for uuid in ("GPU-aaaa", "GPU-bbbb"):
            labels = f'uuid="{uuid}",node="n1",gpu="0",model="NVIDIA H100 80GB HBM3"'
            lines += [f"{name}{{{labels}}} {value} {t}" for t in range(end - 2 * 86400, end, 600)]
    return backfill("\n".join([*lines, "# EOF"]) + "\n"), end


def test_failures_that_name_no_gpu_of_the_history_are_said(
    backfill: Callable[[str], Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """RMA tickets whose UUIDs are written otherwise than the history's (upper case here) gave an
    evaluation of negative rows only, without a word."""
    data, end = _two_days(backfill)
    failures = tmp_path / "rma.csv"
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(end - 12 * 3600))
    argv = ["evaluate", "--data-dir", str(data), "--failures", str(failures), "--step", "6h"]
    argv += ["--warmup", "6h", "--bootstrap", "0", "--schema", "ours"]

    failures.write_text(f"uuid,time,mode\nGPU-AAAA,{when},hbm\n")
    code, err = run_main(scorer_cli.main, argv, capsys)
    last = err.strip().splitlines()[-1]
    assert code == 1 and last.startswith("error: ") and "Traceback" not in err, err
    assert "none of the 1 failures" in last and "'GPU-AAAA'" in last and "'GPU-aaaa'" in last

    failures.write_text(f"uuid,time,mode\nGPU-AAAA,{when},hbm\nGPU-bbbb,{when},hbm\n")
    code, err = run_main(scorer_cli.main, argv, capsys)
    assert code == 0, err
    assert "note: 1 GPU(s) of" in err and "'GPU-AAAA'" in err and "GPU-bbbb" not in err, err


def test_outcomes_says_a_ledger_that_names_no_gpu_it_published(
    backfill: Callable[[str], Path],
    prometheus_factory: PrometheusFactory,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``outcomes`` judged every flag a false alarm and every failure unseen, without a word."""
    end = int(time.time()) // 600 * 600
    lines = ["# TYPE gpu_failure_probability gauge"]
    for uuid in ("GPU-aaaa", "GPU-bbbb"):
        lines += [
            f'gpu_failure_probability{{uuid="{uuid}",horizon="7d"}} 0.5 {t}'
            for t in range(end - 2 * 86400, end, 600)
        ]
    prom = prometheus_factory(data_dir=backfill("\n".join([*lines, "# EOF"]) + "\n"))
    ledger = tmp_path / "ledger.csv"
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(end - 12 * 3600))
    argv = ["outcomes", "--prometheus.url", prom.url, "--ledger", str(ledger)]
    argv += ["--window", "2d", "--step", "6h", "--horizon", "7d", "--end", str(end)]

    ledger.write_text(f"uuid,time,mode\nGPU-AAAA,{when},hbm\n")
    code, err = run_main(scorer_cli.main, argv, capsys)
    last = err.strip().splitlines()[-1]
    assert code == 1 and "none of the 1 failures" in last and "'GPU-AAAA'" in last, err

    ledger.write_text(f"uuid,time,mode\nGPU-AAAA,{when},hbm\nGPU-bbbb,{when},hbm\n")
    code, err = run_main(scorer_cli.main, argv, capsys)
    assert code == 0 and "note: 1 GPU(s) of" in err and "'GPU-AAAA'" in err, err
