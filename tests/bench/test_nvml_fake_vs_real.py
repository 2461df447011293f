"""``bench/nvml_fake_vs_real.py``: the fake binding held to the driver it stands in for.

On a GPU machine the script runs the NVML backend over the driver and over the fake; here it
compares the fake against the driver's side recorded on an H200 (``driver_calls_h200.json``), so a
change that makes the fake answer differently from that driver (another error, another structure,
a reading or series it would not produce) fails here without a GPU.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gpu_health.telemetry.catalogue import CATALOGUE

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "nvml_fake_vs_real.py"
H200 = ROOT / "tests" / "fixtures" / "h200"
DRIVER_LOG = H200 / "driver_calls_h200.json"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=120
    )


def test_the_fake_fed_the_h200_readings_answers_every_call_as_the_h200_driver_did() -> None:
    result = run(
        "--driver-log", str(DRIVER_LOG),
        "--fixture", str(H200 / "nvml_h200.json"),
        "--fixture", str(H200 / "nvml_h200_load.json"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.count(": 0 difference(s)") == 2, result.stdout
    # families the exporter added since the log was taken are named, not compared, and each is
    # one the catalogue renders
    # (one such line per fixture: the log predates the per-GPU XID total)
    names = {spec.name for spec in CATALOGUE}
    newer = [
        set(line.split(": ", 1)[1].split(", "))
        for line in result.stdout.splitlines()
        if line.startswith("- not in the driver log (newer families): ")
    ]
    assert len(newer) == 2 and all(newer), result.stdout
    for families in newer:
        assert families <= names, families
        assert "gpu_xid_errors_all_codes_total" in families, families
    log = json.loads(DRIVER_LOG.read_text())
    assert len(log["calls"]) > 90 and len(log["series"]) > 100  # the whole sequence was recorded


def test_a_reading_the_fake_refuses_shows_as_a_call_a_reading_and_a_series(
    tmp_path: Path,
) -> None:
    fixture = json.loads((H200 / "nvml_h200.json").read_text())
    fixture["calls"]["nvmlDeviceGetPowerUsage"] = None
    fixture["errors"]["nvmlDeviceGetPowerUsage"] = "Not Supported"
    del fixture["gpm"]  # as if the board had no GPM
    mutated = tmp_path / "mutated.json"
    mutated.write_text(json.dumps(fixture))
    result = run("--driver-log", str(DRIVER_LOG), "--fixture", str(mutated))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "call nvmlDeviceGetPowerUsage(gpu): driver answers, fake not_supported" in out
    assert "reading GPU 0 power_watts: only with the driver" in out
    assert "series gpu_power_watts{gpu=*,model=*,node=*,pci_bus_id=*,uuid=*}: only with" in out
    assert "call nvmlGpmMetricsGet(<nvmlGpmMetricsGet_t>): made only with the driver" in out
    assert "call nvmlDeviceGetPcieThroughput(gpu, 0): made only with the fake" in out


def test_out_writes_a_driver_log_without_values_that_reads_back_alike(tmp_path: Path) -> None:
    fixture = H200 / "nvml_h200_load.json"
    first = run("--real-fixture", str(fixture), "--fixture", str(fixture), "--out", str(tmp_path))
    assert first.returncode == 0 and ": 0 difference(s)" in first.stdout, first.stderr
    log = json.loads((tmp_path / "driver-calls.json").read_text())
    assert all("value" not in call for call in log["calls"].values())
    assert (tmp_path / "report.md").read_text().startswith("# NVML backend")
    again = run("--driver-log", str(tmp_path / "driver-calls.json"), "--fixture", str(fixture))
    assert ": 0 difference(s)" in again.stdout, again.stdout


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="this machine has a driver")
def test_without_a_driver_it_says_so_in_one_line() -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "LD_LIBRARY_PATH": ""},
    )
    assert result.returncode == 1
    assert (
        result.stderr.startswith("error: NVML could not start") and result.stderr.count("\n") == 1
    )


def test_a_call_that_stops_answering_is_a_difference_though_its_first_answer_agreed() -> None:
    """Each call's first answer is kept in full; a later, different one too (here a timeout after
    an answer), so a fake that always answers differs from a driver that stopped."""
    import importlib.util

    import pynvml

    from gpu_health.exporter.fake_nvml import FakeNvml

    spec = importlib.util.spec_from_file_location("bench_nvml_fake_vs_real", SCRIPT)
    assert spec and spec.loader
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)

    def run_calls(stop_answering: bool) -> dict[str, object]:
        fake = FakeNvml.from_file(H200 / "nvml_h200.json")
        log = bench.CallLog(fake)
        log.nvmlInit()
        handle = log.nvmlDeviceGetHandleByIndex(0)
        log.nvmlDeviceGetPowerUsage(handle)
        if stop_answering:
            fake.fail("nvmlDeviceGetPowerUsage", gpu=0, error="TIMEOUT")
        with contextlib.suppress(pynvml.NVMLError):
            log.nvmlDeviceGetPowerUsage(handle)
        return {"calls": log.calls, "samples": [], "series": []}

    stopped, steady = run_calls(True), run_calls(False)
    key = "nvmlDeviceGetPowerUsage(gpu)"
    assert stopped["calls"][key]["later_outcomes"] == ["timeout"]  # type: ignore[index]
    assert "later_outcomes" not in steady["calls"][key]  # type: ignore[index]
    assert bench.compare(stopped, steady) == [
        f"call {key}: later answers driver ['timeout'], fake []"
    ]
    assert bench.compare(steady, steady) == []


def test_a_missing_driver_log_is_one_line(tmp_path: Path) -> None:
    result = run("--driver-log", str(tmp_path / "absent.json"))
    assert result.returncode == 1
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert "absent.json" in result.stderr
