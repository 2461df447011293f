"""``python -m gpu_health.exporter.nvml_recorder``: a board's NVML answers as a fake's fixture.

Without a GPU the recorder is run over the fake binding itself: recording a fake fed a fixture must
give back that fixture's readings, refusals and GPM answers, so that a fixture recorded on a real
board replays as that board answered (``tests/fixtures/h200/`` were recorded this way).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pynvml
import pytest

from gpu_health.exporter.fake_nvml import FakeNvml
from gpu_health.exporter.nvml_recorder import PLACEHOLDER_SERIAL, PLACEHOLDER_UUID, record

FIXTURES = Path(__file__).parent.parent / "fixtures"
RECORDED = [
    FIXTURES / "h100" / "nvml_h100.json",
    FIXTURES / "h200" / "nvml_h200.json",
    FIXTURES / "h200" / "nvml_h200_load.json",
]
#: Keys whose recorded form is not the fixture's own: identity placeholders, and the NVLink
#: states of the links a newer binding asks beyond those the H100 fixture recorded.
NOT_COMPARED = {"nvmlDeviceGetUUID", "nvmlDeviceGetSerial", "nvlink", "field_values"}
#: The NVML functions the backend called on an H200 (bench/nvml_fake_vs_real.py's driver log).
BACKEND_CALLS = {
    key.split("(")[0]
    for key in json.loads((FIXTURES / "h200" / "driver_calls_h200.json").read_text())["calls"]
}


@pytest.mark.parametrize("path", RECORDED, ids=lambda p: p.name)
def test_recording_the_fake_gives_back_its_fixture(path: Path) -> None:
    fixture: dict[str, Any] = json.loads(path.read_text())
    got = record(FakeNvml.from_file(path), pynvml, gpm_window_s=0.0)
    answered = {k: v for k, v in fixture["calls"].items() if v is not None}
    replayed = 0
    for key, value in answered.items():
        if key in NOT_COMPARED:
            continue
        if got["calls"].get(key) is None:  # a call the fake does not have (board part number…)
            assert key not in BACKEND_CALLS, f"the backend asks {key} and the fake cannot answer"
        else:
            assert got["calls"][key] == value, key
            replayed += 1
    assert replayed >= 40  # every reading the backend asks for, and the thresholds and clocks
    for name, field in fixture["calls"]["field_values"].items():
        assert got["calls"]["field_values"].get(name) == field, name
    assert set(fixture["errors"]) <= set(got["errors"])
    if fixture.get("gpm") is None:
        assert got["gpm"] is None
    else:  # a newer binding here may know metrics the recording's binding did not
        assert {name: got["gpm"].get(name) for name in fixture["gpm"]} == fixture["gpm"]
    assert (got["driver"], got["cuda_driver"]) == (fixture["driver"], fixture["cuda_driver"])
    assert got["calls"]["nvmlDeviceGetUUID"] == PLACEHOLDER_UUID
    assert got["calls"]["nvmlDeviceGetSerial"] == PLACEHOLDER_SERIAL


@pytest.mark.parametrize("path", RECORDED[1:], ids=lambda p: p.name)
def test_shipped_recordings_carry_no_board_identity(path: Path) -> None:
    calls = json.loads(path.read_text())["calls"]
    assert calls["nvmlDeviceGetUUID"] == PLACEHOLDER_UUID
    assert calls["nvmlDeviceGetSerial"] == PLACEHOLDER_SERIAL


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="this machine has a driver")
def test_without_a_driver_it_says_so_in_one_line_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "board.json"
    result = subprocess.run(
        [sys.executable, "-m", "gpu_health.exporter.nvml_recorder", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("error: NVML: ") and result.stderr.count("\n") == 1
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_the_command_writes_the_fixture_whole_or_says_in_one_line_why_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The driver stood in for by the fake fed the H200 readings: the file is written and
    replays as recorded; a folder that does not exist is one line and exit 1, nothing left."""
    from gpu_health.exporter import nvml_recorder

    board = RECORDED[1]
    monkeypatch.setattr(
        nvml_recorder, "record", lambda nvml, index=0: record(FakeNvml.from_file(board), nvml)
    )
    out = tmp_path / "board.json"
    assert nvml_recorder.main(["--out", str(out)]) == 0
    assert "NVIDIA H200" in capsys.readouterr().out
    written = json.loads(out.read_text())
    assert written["calls"]["nvmlDeviceGetPowerUsage"] == 76751
    assert sorted(p.name for p in tmp_path.iterdir()) == ["board.json"]  # no partial file left

    missing = tmp_path / "no-such-folder" / "board.json"
    assert nvml_recorder.main(["--out", str(missing)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {missing}: ") and err.count("\n") == 1
