"""``gpu-health econ`` at its edges, as a process: GPUs valued on one side of the what-if only,
``--set`` text YAML refuses, substrings two model entries share, and the fleet CSV's row cap."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gpu_health.scorer.econ.fleet import MAX_FLEET_ROWS

H100_AND_K80 = """uuid,model,age_days
GPU-a,NVIDIA H100 80GB HBM3,300
GPU-k,Tesla K80,3000
"""


def _econ(*args: str | bytes, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gpu_health.cli", "econ", *args],
        capture_output=True,
        text=True,
        errors="backslashreplace",
        timeout=timeout,
        check=False,
    )


def _one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr and proc.stdout == "", proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0]


@pytest.fixture
def fleet(tmp_path: Path) -> Path:
    path = tmp_path / "fleet.csv"
    path.write_text(H100_AND_K80)
    return path


def test_a_gpu_valued_only_after_the_change_is_said_and_not_hidden(fleet: Path) -> None:
    """Matching the K80 too valued it after the change only: the counts and the fleet value
    rose while "GPUs whose recommendation changed: 0" and a "skipped" warning said otherwise."""
    proc = _econ("--fleet", str(fleet), "--set", "models.h100.match=[H100, K80]")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "1 GPU valued before the change, 2 after" in out, out
    assert "valued only after the change: 1 GPU (GPU-k)" in out, out
    assert "GPUs whose recommendation changed: 0 (of 1 valued both times)" in out, out
    assert "skipped" not in proc.stderr, proc.stderr  # it was valued, after the change
    keep = next(line for line in out.splitlines() if line.startswith("keep "))
    assert keep.split() == ["keep", "1", "2", "+1"]


def test_a_gpu_valued_on_one_side_only_does_not_crash_the_comparison(fleet: Path) -> None:
    """``--set models.h100.match=[K80]``: the H100 is valued before only, the K80 after only;
    the comparison ended in ``KeyError: 'GPU-a'``."""
    proc = _econ("--fleet", str(fleet), "--set", "models.h100.match=[K80]")
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert "valued only before the change: 1 GPU (GPU-a)" in proc.stdout, proc.stdout
    assert "valued only after the change: 1 GPU (GPU-k)" in proc.stdout, proc.stdout
    as_json = _econ("--fleet", str(fleet), "--set", "models.h100.match=[K80]", "--format", "json")
    assert as_json.returncode == 0, as_json.stderr
    data = json.loads(as_json.stdout)
    assert data["only_before"] == ["GPU-a"] and data["only_after"] == ["GPU-k"]
    assert (data["gpus"], data["gpus_after"], data["changes"]) == (1, 1, [])
    per_gpu = {g["uuid"]: g for g in data["per_gpu"]}
    assert per_gpu["GPU-a"]["after"] is None and per_gpu["GPU-a"]["npv_after"] is None
    assert per_gpu["GPU-k"]["before"] is None and per_gpu["GPU-k"]["after"] == "keep"


def test_a_fleet_valued_only_after_the_change_is_compared(tmp_path: Path) -> None:
    """No GPU valued before, some after: a what-if, not "no GPU matches a configured model"."""
    k80 = tmp_path / "k80.csv"
    k80.write_text("uuid,model,age_days\nGPU-k,Tesla K80,3000\n")
    proc = _econ("--fleet", str(k80), "--set", "models.h100.match=[K80]")
    assert proc.returncode == 0, proc.stderr
    assert "0 GPUs valued before the change, 1 after" in proc.stdout, proc.stdout
    assert "error" not in _econ("--fleet", str(k80), "--set", "energy_price=0.1").stdout


@pytest.mark.parametrize(
    ("value", "said"),
    [
        (b"energy_price=\xff", r"--set energy_price=\xff: invalid YAML at line 1, column 1: "
         "a byte that is not UTF-8 (0xff)"),
        (b"energy_price=1\x01", r"--set energy_price=1\x01: invalid YAML at line 1, column 2: "
         "the character U+0001"),
        (b"models.h100.match=[H\xe9100]", "a byte that is not UTF-8 (0xe9)"),
    ],
)  # fmt: skip
def test_a_set_value_yaml_refuses_is_one_line(fleet: Path, value: bytes, said: str) -> None:
    """A byte that is not UTF-8 or a control character in a ``--set`` value ended in a
    traceback (``yaml.reader.ReaderError: unacceptable character #xdcff``)."""
    line = _one_line_error(_econ("--fleet", str(fleet), "--set", value))
    assert said in line, line


def test_a_params_file_with_a_character_yaml_refuses_is_one_line(
    fleet: Path, tmp_path: Path
) -> None:
    params = tmp_path / "econ.yaml"
    params.write_bytes(b"currency: USD\nhysteresis:\n  absolute: \x07\n")
    line = _one_line_error(_econ("--fleet", str(fleet), "--params", str(params)))
    assert line == (
        f"error: {params}: invalid YAML at line 3, column 13: the character U+0007, which YAML "
        "does not allow"
    ), line


@pytest.mark.parametrize(
    ("override", "said"),
    [
        # the entry of A100 is valued with H100 prices or A100 ones by the order of the YAML
        ("models.h100.match=[A100]", "models.a100_80gb.match[0]: 'A100' is also a match of "
         "models.h100"),
        ("models.a100_80gb.match=[h100]", "models.a100_80gb.match[0]: 'h100' is also a match of "
         "models.h100"),
        ("models.l40s.match=[L40S, l40s]", "models.l40s.match[1]: 'l40s' is listed twice"),
    ],
)  # fmt: skip
def test_a_match_substring_of_two_entries_is_refused(fleet: Path, override: str, said: str) -> None:
    """Two entries with the same substring tie on every GPU it fits, and file order decided;
    the warning listed "allowed: A100, H200, A100, L40S"."""
    line = _one_line_error(_econ("--fleet", str(fleet), "--set", override))
    assert line.startswith(f"error: --set {override}: ") and said in line, line


def test_a_params_file_entry_sharing_a_default_substring_wins_over_the_default(
    fleet: Path, tmp_path: Path
) -> None:
    """An entry added under a new key with a default's substring was never used (the default
    entry came first), then refused at start; refused, a file written when the defaults had no
    entry for its model (V100s, before the defaults priced them) stopped loading on upgrade.
    The file's own entry now prices those GPUs and the shipped one is left out."""
    import yaml

    from gpu_health.scorer.econ.params import default_raw, load_params

    params = tmp_path / "econ.yaml"
    entry = {**default_raw()["models"]["h100"], "purchase_price": 31000}
    params.write_text(yaml.safe_dump({"models": {"h100_sxm": entry}}))
    proc = _econ("--fleet", str(fleet), "--params", str(params))
    assert proc.returncode == 0, proc.stderr
    chosen = load_params(params).model_for("NVIDIA H100 80GB HBM3")
    assert chosen is not None and chosen.key == "h100_sxm" and chosen.purchase_price == 31000


def test_a_more_specific_substring_still_wins(tmp_path: Path) -> None:
    """Different substrings that both fit a name remain the way to price a variant."""
    fleet = tmp_path / "fleet.csv"
    fleet.write_text("uuid,model,age_days\nGPU-p,NVIDIA H100 PCIe,300\n")
    proc = _econ("--fleet", str(fleet), "--set", "models.h200.match=[H100 PCIe]")
    assert proc.returncode == 0, proc.stderr
    assert "GPUs whose recommendation changed" in proc.stdout
    assert "1 GPU valued, amounts in USD" in proc.stdout


def test_the_fleet_csv_has_the_inventorys_row_cap() -> None:
    from gpu_health.scorer.inventory.loader import MAX_RECORDS

    assert MAX_FLEET_ROWS == MAX_RECORDS


def test_a_fleet_over_the_row_cap_is_refused_before_any_valuation(tmp_path: Path) -> None:
    """400,000 rows (17 MB, under the 64 MiB byte limit) took 65 s and 1.5 GB to value, and
    the byte limit let 1.5 million through: refused at once, naming the file and the cap."""
    big = tmp_path / "big.csv"
    rows = "".join(f"G{i},H100,1\n" for i in range(MAX_FLEET_ROWS + 1))
    big.write_text("uuid,model,age_days\n" + rows)
    began = time.monotonic()
    line = _one_line_error(_econ("--fleet", str(big)))
    assert time.monotonic() - began < 30
    assert line == (
        f"error: {big}: 500,001 rows, more than the 500,000 GPUs a fleet CSV may list (the asset "
        "inventory's cap): split the fleet into several files"
    ), line


def test_a_fleet_of_ten_thousand_gpus_passes(tmp_path: Path) -> None:
    fleet = tmp_path / "fleet.csv"
    rows = "".join(f"GPU-{i},NVIDIA H100 80GB HBM3,{100 + i % 900}\n" for i in range(10_000))
    fleet.write_text("uuid,model,age_days\n" + rows)
    proc = _econ("--fleet", str(fleet), "--set", "energy_price=0.2")
    assert proc.returncode == 0, proc.stderr
    assert "10,000 GPUs valued" in proc.stdout
