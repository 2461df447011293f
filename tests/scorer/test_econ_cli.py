"""``gpu-health econ`` end to end, as a process: what-if output, JSON, and one-line errors."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from gpu_health import stack
from gpu_health.scorer.econ.metrics import INPUT_METRICS

FLEET = """uuid,model,age_days,utilisation,power_w,p7,p30,p90,health,hard_fault,node,gpu
GPU-keep,NVIDIA H100 80GB HBM3,730,0.8,525,0.001,0.0025,0.02,98,false,n1,0
GPU-risky,NVIDIA H100 80GB HBM3,730,0.8,525,0.2,0.5,,60,false,n1,1
GPU-dead,NVIDIA H100 80GB HBM3,730,,,,,,,true,n1,2
GPU-h200,NVIDIA H200,100,0.9,600,,,,,false,n2,0
GPU-k80,Tesla K80,4000,0.1,100,,,,,false,n2,1
"""
MONTH_DAYS = 365 / 12


def _econ(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gpu_health.cli", "econ", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def fleet(tmp_path: Path) -> Path:
    path = tmp_path / "fleet.csv"
    path.write_text(FLEET)
    return path


def test_what_if_text_shows_counts_and_changed_gpus(fleet: Path) -> None:
    proc = _econ("--fleet", str(fleet), "--set", "models.h100.rental_rate=0.9")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "what-if: models.h100.rental_rate=0.9" in out
    assert "4 GPUs valued, amounts in USD" in out
    assert "GPU-keep  NVIDIA H100 80GB HBM3  keep -> sell" in out
    assert "GPUs whose recommendation changed: 1" in out
    keep_row = next(line for line in out.splitlines() if line.startswith("keep "))
    assert keep_row.split() == ["keep", "2", "1", "-1"]
    assert "warning: skipped 1 GPU (GPU-k80): model 'Tesla K80' matches no economics" in proc.stderr


def test_what_if_json_pairs_before_and_after(fleet: Path) -> None:
    proc = _econ("--fleet", str(fleet), "--format", "json", "--set", "energy_price=0.20")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["overrides"] == ["energy_price=0.20"]
    per_gpu = {g["uuid"]: g for g in data["per_gpu"]}
    assert per_gpu["GPU-dead"]["before"] in ("repair", "sell", "decommission")
    assert "health" in per_gpu["GPU-dead"]["defaulted"]
    # dearer energy: keep loses value on every GPU, sell is unchanged
    for g in per_gpu.values():
        assert g["npv_after"]["keep"] < g["npv_before"]["keep"]
        assert g["npv_after"]["sell"] == g["npv_before"]["sell"]
    assert sum(data["counts_after"].values()) == 4
    # the hazard is read off the curve: GPU-keep's 90-day point implies the higher rate
    assert per_gpu["GPU-keep"]["monthly_hazard"] == pytest.approx(
        -math.log(1 - 0.02) / 90 * MONTH_DAYS
    )
    assert per_gpu["GPU-risky"]["monthly_hazard"] == pytest.approx(
        -math.log(1 - 0.5) / 30 * MONTH_DAYS
    )


def test_params_file_changes_the_baseline(fleet: Path, tmp_path: Path) -> None:
    params = tmp_path / "econ.yaml"
    params.write_text("currency: EUR\n")
    proc = _econ("--fleet", str(fleet), "--params", str(params))
    assert proc.returncode == 0, proc.stderr
    assert "amounts in EUR" in proc.stdout
    assert "(no --set: after = before)" in proc.stdout
    assert "GPUs whose recommendation changed: 0" in proc.stdout


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--set", "models.h100.rental_rat=1.8"], "models.h100.rental_rat: unknown key"),
        (["--set", "energy_price=lots"], "energy_price: expected a number"),
        (["--params", "/nonexistent.yaml"], "/nonexistent.yaml: file not found"),
    ],
)
def test_bad_input_is_one_line_naming_the_key(fleet: Path, args: list[str], fragment: str) -> None:
    proc = _econ("--fleet", str(fleet), *args)
    assert proc.returncode == 1
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


def test_bad_csv_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("uuid,model,age_days,utilisation\nGPU-1,H100,100,1.7\n")
    proc = _econ("--fleet", str(bad))
    assert proc.returncode == 1
    assert proc.stderr.strip() == (
        f"error: {bad}: line 2: utilisation: 1.7 is out of range (allowed: 0 to 1)"
    )


def test_a_survival_curve_that_falls_is_refused(tmp_path: Path) -> None:
    """P(fail within 30 d) below P(fail within 7 d) is no survival curve; it was valued as given."""
    header = "uuid,model,age_days,p7,p30,p90\n"
    cases = [
        ("GPU-1,H100,100,0.5,0.1,\n", "p30: 0.1 is below p7 0.5"),
        ("GPU-1,H100,100,0.5,,0.4\n", "p90: 0.4 is below p7 0.5"),
    ]
    for row, said in cases:
        bad = tmp_path / "curve.csv"
        bad.write_text(header + row)
        proc = _econ("--fleet", str(bad))
        assert proc.returncode == 1 and proc.stderr.count("\n") == 1, proc.stderr
        assert f"{bad}: line 2: {said}" in proc.stderr
    flat = tmp_path / "flat.csv"
    flat.write_text(header + "GPU-1,H100,100,0.1,0.1,0.4\n")  # equal horizons are a curve
    assert _econ("--fleet", str(flat)).returncode == 0


def test_help_and_missing_fleet() -> None:
    helped = _econ("--help")
    assert helped.returncode == 0 and "--set KEY=VALUE" in helped.stdout
    missing = _econ()
    assert missing.returncode == 2
    assert len(missing.stderr.strip().splitlines()) == 1 and "--fleet" in missing.stderr


@pytest.mark.integration
def test_what_if_over_prometheus(
    prometheus_factory: Callable[..., stack.Server], backfill: Callable[[str], Path]
) -> None:
    """The scorer's gpu_econ_* input series, stored in a real Prometheus, are the fleet."""
    now = time.time()
    inputs = {
        "GPU-p1": (
            "NVIDIA H100 80GB HBM3",
            {
                "age_days": 730,
                "utilisation": 0.8,
                "power_w": 525,
                "p7": 0.001,
                "p30": 0.0025,
                "p90": 0.02,
                "health": 98,
                "hard_fault": 0,
            },
        ),
        "GPU-p2": (
            "NVIDIA L40S",
            {"age_days": 400, "utilisation": 0.3, "power_w": 200, "health": 95, "hard_fault": 1},
        ),
    }
    by_metric: dict[str, list[str]] = {}
    for uuid, (model, values) in inputs.items():
        for spec in INPUT_METRICS:
            if spec.key not in values:
                continue
            labels = f'node="n1",gpu="0",uuid="{uuid}",model="{model}"'
            if spec.label:
                labels += f',{spec.label[0]}="{spec.label[1]}"'
            for ago in (600, 300, 60):
                by_metric.setdefault(spec.metric, []).append(
                    f"{spec.metric}{{{labels}}} {values[spec.key] * spec.scale} {now - ago:.3f}"
                )
    # the scorer could not value three K80s (no economics entry): they publish no inputs
    by_metric["gpu_scorer_econ_unvalued_gpus"] = [
        f'gpu_scorer_econ_unvalued_gpus{{model="Tesla K80"}} 3 {now - ago:.3f}'
        for ago in (600, 300, 60)
    ]
    lines = []
    for metric, samples in by_metric.items():
        lines += [f"# TYPE {metric} gauge", *samples]
    lines.append("# EOF")
    server = prometheus_factory(data_dir=backfill("\n".join(lines) + "\n"))
    stack.wait_for_query(server.url, "count(last_over_time(gpu_econ_age_seconds[1h]))")
    proc = _econ(
        "--prometheus", server.url, "--format", "json", "--set", "models.h100.rental_rate=0.9"
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    per_gpu = {g["uuid"]: g for g in data["per_gpu"]}
    assert set(per_gpu) == {"GPU-p1", "GPU-p2"}
    # ...and the what-if says they are left out (before: not a word)
    assert (
        "warning: the scorer did not value 3 GPUs of model 'Tesla K80' (no economics "
        "entry matches it): they are not in this what-if"
    ) in proc.stderr.splitlines()
    assert (per_gpu["GPU-p1"]["before"], per_gpu["GPU-p1"]["after"]) == ("keep", "sell")
    assert per_gpu["GPU-p2"]["before"] in ("repair", "sell", "decommission")
    # p7/p30 were not published for GPU-p2: the baseline hazard is used and reported
    assert "failure_probability" in per_gpu["GPU-p2"]["defaulted"]
    # GPU-p1's published 90-day point reached the engine through Prometheus
    assert per_gpu["GPU-p1"]["monthly_hazard"] == pytest.approx(
        -math.log(1 - 0.02) / 90 * MONTH_DAYS
    )


def test_prometheus_unreachable_is_one_line() -> None:
    proc = _econ("--prometheus", f"http://127.0.0.1:{stack.free_port()}")
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1].startswith("error: --prometheus http://127.0.0.1:")
    assert "Traceback" not in proc.stderr
    bad = _econ("--prometheus", "http://127.0.0.1:9", "--prometheus.lookback", "forever")
    assert bad.returncode == 2 and "not a duration" in bad.stderr


def test_gpus_of_an_unpriced_model_are_one_warning(tmp_path: Path) -> None:
    """Before, one line per GPU: a fleet with 136 GPUs of models without economics printed 136
    warnings. Now one per model, naming three GPUs and counting the rest."""
    k80s = "".join(f"GPU-k80-{i},Tesla K80,4000,0.1,100,,,,,false,n3,{i}\n" for i in range(5))
    path = tmp_path / "fleet.csv"
    path.write_text(FLEET + k80s)
    proc = _econ("--fleet", str(path))
    assert proc.returncode == 0, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith(
        "warning: skipped 6 GPUs (GPU-k80, GPU-k80-0, GPU-k80-1 and 3 more): model 'Tesla K80' "
        "matches no economics model"
    )
