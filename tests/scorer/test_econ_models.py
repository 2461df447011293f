"""The shipped economics value the boards an outside trial found unvalued: V100, L4, A10, A10G and
RTX A6000 (136 of its 200 GPUs had no NPV and no action), and four common data-centre boards a
fleet showed as "not valued": T4, A40, L40 and RTX 6000 Ada, each by its own entry.

Five of them need whole-word matching (``match_whole_word``): ``L4`` is the start of ``L40`` and
``L40S``, ``L40`` of ``L40S``, ``A10`` of ``A100`` and ``A10G``, ``A40`` of ``A4000`` (``NVIDIA
RTX A4000``) and ``T4`` of ``T400``. As plain substrings the longest-match rule still gave the
right entry for the names with an entry of their own, but a name without one would have been
priced as its neighbour (an ``NVIDIA L40`` as an L4 before the L40 had an entry, an RTX A4000 as
an A40, a T400 as a T4). Every real NVML name here fits exactly one entry.
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Any

import pytest

from gpu_health.errors import ConfigError
from gpu_health.safetext import shown
from gpu_health.scorer.econ import GpuEconInput, load_params, value_gpu
from gpu_health.scorer.econ.engine import UnknownModelError
from gpu_health.scorer.econ.params import default_raw, validate
from tests.scorer.test_econ_cli import _econ
from tests.scorer.test_econ_engine import simple_raw

DOC = Path(__file__).resolve().parents[2] / "docs" / "economics.md"

#: NVML / dcgm-exporter model names -> the shipped entry that must value them.
REAL_NAMES = {
    "NVIDIA H100 80GB HBM3": "h100",
    "NVIDIA H100 PCIe": "h100",
    "NVIDIA H200": "h200",
    "NVIDIA A100-SXM4-80GB": "a100_80gb",
    "NVIDIA A100 80GB PCIe": "a100_80gb",
    "NVIDIA A100-SXM4-40GB": "a100_80gb",
    "NVIDIA L40S": "l40s",
    "Tesla V100-SXM2-32GB": "v100",
    "Tesla V100-PCIE-16GB": "v100",
    "Tesla V100S-PCIE-32GB": "v100",
    "NVIDIA L4": "l4",
    "NVIDIA A10": "a10",
    "NVIDIA A10G": "a10g",
    "NVIDIA RTX A6000": "rtx_a6000",
    "Tesla T4": "t4",
    "NVIDIA T4": "t4",
    "NVIDIA A40": "a40",
    "NVIDIA L40": "l40",
    "NVIDIA RTX 6000 Ada Generation": "rtx_6000_ada",
}
#: Real names the shipped economics has no entry for: not valued, and not priced as a neighbour
#: (``NVIDIA RTX A4000`` starts with ``A40``, ``Quadro RTX 6000`` is in ``RTX 6000 Ada``'s name).
UNPRICED = ["Tesla K80", "Tesla P100-PCIE-16GB", "Quadro RTX 6000", "NVIDIA RTX A4000"]
#: The substrings of the shipped entries, in the order of the YAML, as messages list them.
ALLOWED = "H100, H200, A100, L40S, V100, L4, A10, A10G, RTX A6000, T4, A40, L40, RTX 6000 Ada"


def _fleet_csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    out = io.StringIO()
    writer = csv.DictWriter(
        out, fieldnames=["uuid", "model", "age_days", "utilisation", "hard_fault"]
    )
    writer.writeheader()
    writer.writerows(rows)
    path.write_text(out.getvalue())
    return path


def _fits(name: str) -> list[str]:
    """The entries one of whose ``match`` substrings fits ``name`` (not only the best)."""
    params = load_params()
    wanted = name.casefold()
    return [m.key for m in params.models if any(m.fits(n.casefold(), wanted) for n in m.match)]


def test_a_fleet_of_the_trials_models_is_valued_each_by_its_entry(tmp_path: Path) -> None:
    """Through ``gpu-health econ --fleet``: every real name gets a valuation from the shipped
    defaults, and from the intended entry. Which entry valued a GPU is read back by giving each
    entry its own disposal cost in the "after" run: decommission = salvage - disposal_cost."""
    names = [*REAL_NAMES, *UNPRICED]
    rows = [
        {"uuid": f"GPU-{i}", "model": name, "age_days": 900, "utilisation": 0.8}
        for i, name in enumerate(names)
    ]
    fleet = _fleet_csv(tmp_path / "fleet.csv", rows)
    plain = _econ("--fleet", str(fleet), "--format", "json")
    assert plain.returncode == 0, plain.stderr
    # the shipped defaults value all of them; only the models without an entry are skipped
    valued = {g["model"] for g in json.loads(plain.stdout)["per_gpu"]}
    assert valued == set(REAL_NAMES), sorted(set(REAL_NAMES) - valued)
    skipped = [line for line in plain.stderr.splitlines() if line.startswith("warning: skipped")]
    # the reason is shown as a one-line message shows a value: cut at 120 characters with "…"
    assert sorted(skipped) == sorted(
        f"warning: skipped 1 GPU (GPU-{names.index(name)}): "
        + shown(f"model {name!r} matches no economics model (allowed: {ALLOWED})")
        for name in UNPRICED
    )

    keys = sorted(default_raw()["models"])
    marker = {key: 1000 + 100 * i for i, key in enumerate(keys)}
    tagged = _econ(
        "--fleet",
        str(fleet),
        "--format",
        "json",
        *(f"--set=models.{key}.disposal_cost={cost}" for key, cost in marker.items()),
    )
    assert tagged.returncode == 0, tagged.stderr
    by_marker = {cost: key for key, cost in marker.items()}
    for gpu in json.loads(tagged.stdout)["per_gpu"]:
        shipped = default_raw()["models"]
        extra = gpu["npv_before"]["decommission"] - gpu["npv_after"]["decommission"]
        key = by_marker[round(extra) + 100]  # the shipped disposal cost is 100 everywhere
        assert key == REAL_NAMES[gpu["model"]], (gpu["model"], key)
        entry = shipped[key]
        salvage = entry["purchase_price"] * entry["salvage_floor"]
        assert gpu["npv_before"]["decommission"] == pytest.approx(salvage - 100), gpu["model"]


@pytest.mark.parametrize(("name", "key"), REAL_NAMES.items())
def test_each_real_name_fits_exactly_one_entry(name: str, key: str) -> None:
    assert _fits(name) == [key]
    found = load_params().model_for(name)
    assert found is not None and found.key == key


@pytest.mark.parametrize("name", UNPRICED)
def test_a_name_without_an_entry_fits_none(name: str) -> None:
    """``NVIDIA RTX A4000`` starts with ``A40``: as a plain substring it would be an A40."""
    assert _fits(name) == []
    assert load_params().model_for(name) is None
    # the engine's reason names every entry's substring (the what-if cuts it, the log does not)
    with pytest.raises(UnknownModelError) as info:
        value_gpu(GpuEconInput(uuid="GPU-u", model=name, age_days=9), load_params())
    assert str(info.value).endswith(f"matches no economics model (allowed: {ALLOWED})")


#: Per new whole-word key: names it values, and names it must not (each its own entry or none).
_NEW_KEYS: dict[str, tuple[list[str], dict[str, str | None]]] = {
    "t4": (
        ["Tesla T4", "NVIDIA T4", "tesla t4", "NVIDIA T4 (rev 2)"],
        {"NVIDIA T400": None, "NVIDIA T4000": None, "NVIDIA T400 4GB": None, "Tesla P4": None},
    ),
    "a40": (
        ["NVIDIA A40", "nvidia a40"],
        {
            "NVIDIA RTX A4000": None,
            "NVIDIA A400": None,
            "NVIDIA RTX A4500": None,
            "NVIDIA A40-48Q": None,  # a vGPU profile (docs/economics.md): valued by no board
        },
    ),
    "l40": (
        ["NVIDIA L40", "nvidia l40"],
        {"NVIDIA L40S": "l40s", "NVIDIA L4": "l4", "NVIDIA L40G": None},
    ),
    "rtx_6000_ada": (
        ["NVIDIA RTX 6000 Ada Generation", "nvidia rtx 6000 ada generation"],
        {"Quadro RTX 6000": None, "NVIDIA RTX A6000": "rtx_a6000"},
    ),
}


@pytest.mark.parametrize("key", _NEW_KEYS)
def test_the_new_boards_keys_fit_their_names_and_no_neighbour(key: str) -> None:
    """``NVIDIA L40`` is an L40 and ``NVIDIA L40S`` an L40S; ``T4`` is no T400, ``A40`` no RTX
    A4000, and ``RTX 6000 Ada`` not the Turing Quadro RTX 6000."""
    params = load_params()
    fits, neighbours = _NEW_KEYS[key]
    for name in fits:
        found = params.model_for(name)
        assert found is not None and found.key == key, (name, found and found.key)
        assert _fits(name) == [key], name
    for name, other in neighbours.items():
        found = params.model_for(name)
        assert (found.key if found else None) == other, (name, found and found.key)
        assert key not in _fits(name), name


def test_the_documented_name_table_is_what_the_matcher_does() -> None:
    text = DOC.read_text()
    table = text.split("| model name (NVML, dcgm-exporter) | entry |", 1)[1].split("\n\n", 1)[0]
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    documented: dict[str, str] = {}
    for line in rows:
        names_cell, entry_cell = (c.strip() for c in line.split("|")[1:3])
        entry = re.findall(r"`(\w+)`", entry_cell)
        for name in re.findall(r"`([^`]+)`", names_cell):
            documented[name] = entry[0] if entry else ""
    assert {n: k for n, k in documented.items() if k} == REAL_NAMES
    for name in (n for n, k in documented.items() if not k):
        assert load_params().model_for(name) is None, name


def test_whole_word_matching() -> None:
    raw = simple_raw()
    raw["models"]["test"]["match"] = ["L4"]
    raw["models"]["test"]["match_whole_word"] = True
    params = validate(raw, "t.yaml")
    for name in ["NVIDIA L4", "l4", "Vendor L4-24GB", "NVIDIA L4 (rev 2)", "x/L4/y", "L40 and L4"]:
        assert params.model_for(name) is not None, name
    for name in ["NVIDIA L40", "NVIDIA L40S", "NVIDIA XL4", "L4x", "nvidia l4g"]:
        assert params.model_for(name) is None, name
    # without the flag the same substring fits anywhere (as every entry did before)
    raw["models"]["test"]["match_whole_word"] = False
    assert validate(raw, "t.yaml").model_for("NVIDIA L40S") is not None
    # and a file without the key, written before it existed, loads as before
    del raw["models"]["test"]["match_whole_word"]
    loose = validate(raw, "t.yaml")
    assert loose.models[0].match_whole_word is False
    assert loose.model_for("NVIDIA L40S") is not None


def test_the_longest_fitting_substring_still_wins_across_both_kinds() -> None:
    raw = simple_raw()
    raw["models"]["a10"] = dict(raw["models"]["test"], match=["A10"], match_whole_word=True)
    raw["models"]["test"]["match"] = ["A100"]
    params = validate(raw, "t.yaml")
    assert params.model_for("NVIDIA A100-SXM4-80GB").key == "test"  # type: ignore[union-attr]
    assert params.model_for("NVIDIA A10").key == "a10"  # type: ignore[union-attr]
    assert params.model_for("NVIDIA A10G") is None


@pytest.mark.parametrize("value", ["yes-please", "1", "[true]"])
def test_a_bad_match_whole_word_is_one_line_naming_file_and_key(tmp_path: Path, value: str) -> None:
    path = tmp_path / "econ.yaml"
    path.write_text(f"models:\n  l4:\n    match_whole_word: {value}\n")
    with pytest.raises(ConfigError) as info:
        load_params(path)
    message = str(info.value)
    assert message.startswith(f"{path}: models.l4.match_whole_word: expected true or false"), (
        message
    )
    assert "\n" not in message
    # the same through the CLI, from --set
    fleet = _fleet_csv(tmp_path / "f.csv", [{"uuid": "G", "model": "NVIDIA L4", "age_days": 9}])
    proc = _econ("--fleet", str(fleet), "--set", f"models.l4.match_whole_word={value}")
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith(f"error: --set models.l4.match_whole_word={value}: "), lines
    assert "models.l4.match_whole_word: expected true or false" in lines[-1]
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    ("key", "name"), [("t4", "NVIDIA T400"), ("a40", "NVIDIA RTX A4000")], ids=["t4", "a40"]
)
def test_turning_whole_word_off_prices_a_neighbour_as_the_board(
    tmp_path: Path, key: str, name: str
) -> None:
    """What the flag prevents, through the what-if: a T400 (an RTX A4000) is valued only after
    ``T4`` (``A40``) may fit inside a word, priced as a T4 (an A40)."""
    fleet = _fleet_csv(tmp_path / "f.csv", [{"uuid": "GPU-n", "model": name, "age_days": 700}])
    proc = _econ(
        "--fleet", str(fleet), "--format", "json", "--set", f"models.{key}.match_whole_word=false"
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["only_after"] == ["GPU-n"] and data["only_before"] == []


def test_an_l40_stays_an_l40_when_l4_may_fit_inside_a_word(tmp_path: Path) -> None:
    """Before the L40 had an entry, ``models.l4.match_whole_word=false`` priced an L40 as an L4.
    Now the longer ``L40`` wins either way: the L40's NPVs do not change."""
    fleet = _fleet_csv(
        tmp_path / "f.csv", [{"uuid": "GPU-l40", "model": "NVIDIA L40", "age_days": 700}]
    )
    proc = _econ(
        "--fleet", str(fleet), "--format", "json", "--set", "models.l4.match_whole_word=false"
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["only_after"] == [] and data["only_before"] == []
    (gpu,) = data["per_gpu"]
    assert gpu["npv_before"] == gpu["npv_after"]
    l40 = default_raw()["models"]["l40"]
    salvage = l40["purchase_price"] * l40["salvage_floor"]
    assert gpu["npv_before"]["decommission"] == pytest.approx(salvage - l40["disposal_cost"])


def _doc_examples(marker: str) -> list[list[str]]:
    text = DOC.read_text()
    block = text.split(f"<!-- {marker}:begin -->")[1].split(f"<!-- {marker}:end -->")[0]
    rows = [line for line in block.splitlines() if line.startswith("| `")]
    return [[c.strip() for c in row.split("|")[1:-1]] for row in rows]


@pytest.mark.parametrize(
    ("marker", "names"),
    [
        (
            "smaller-cards",
            [
                "Tesla V100-SXM2-32GB",
                "NVIDIA L4",
                "NVIDIA A10",
                "NVIDIA A10G",
                "NVIDIA RTX A6000",
            ],
        ),
        (
            "more-boards",
            ["Tesla T4", "NVIDIA A40", "NVIDIA L40", "NVIDIA RTX 6000 Ada Generation"],
        ),
    ],
)
def test_the_documented_examples_of_the_added_boards(
    tmp_path: Path, marker: str, names: list[str]
) -> None:
    """docs/economics.md's tables of what the defaults recommend for a healthy (and a hard-failed)
    card of each added model, recomputed through ``gpu-health econ --fleet``."""
    examples = _doc_examples(marker)
    assert [row[0].strip("`") for row in examples] == names
    rows = []
    for i, (name, age, *_rest) in enumerate(examples):
        for fault in ("false", "true"):
            rows.append(
                {
                    "uuid": f"GPU-{i}-{fault}",
                    "model": name.strip("`"),
                    "age_days": int(age) * 365,
                    "utilisation": 0.8,
                    "hard_fault": fault,
                }
            )
    proc = _econ("--fleet", str(_fleet_csv(tmp_path / "f.csv", rows)), "--format", "json")
    assert proc.returncode == 0, proc.stderr
    per_gpu = {g["uuid"]: g for g in json.loads(proc.stdout)["per_gpu"]}
    for i, (_name, _age, keep, sell, action, faulted) in enumerate(examples):
        healthy, failed = per_gpu[f"GPU-{i}-false"], per_gpu[f"GPU-{i}-true"]
        assert f"{healthy['npv_before']['keep']:,.0f}" == keep, healthy
        assert f"{healthy['npv_before']['sell']:,.0f}" == sell, healthy
        assert healthy["before"] == action
        best = failed["before"]
        assert faulted == f"{best} ({failed['npv_before'][best]:,.0f})", failed


def test_a_v100_is_worth_what_the_2026_market_pays_at_any_fleet_age() -> None:
    """Every V100 is over 5 years old; the used market paid $56-450 a module in early 2026.
    The shared SpotWire tail (0.21 of $10 k at 6 years and beyond) sold a 7-year-old V100 for
    $1,785, and made selling look better than a year of rent."""
    params = load_params()
    for years in (5, 6, 7, 8, 9):
        gpu = GpuEconInput(uuid="v", model="Tesla V100-SXM2-32GB", age_days=365 * years)
        result = value_gpu(gpu, params)
        assert 56 * 0.85 <= result.npv["sell"] <= 450, (years, result.npv["sell"])
        assert result.recommended_action == "keep", (years, result.npv)


#: An entry written when the defaults had no V100 (the docs said to add one with --params).
_USER_V100 = """\
models:
  {key}:
    match: [V100]
    purchase_price: 8000
    useful_life_years: 6
    depreciation: {{method: straight_line}}
    salvage_floor: 0.05
    rental_rate: 0.5
    rental_decline: 0.2
    typical_power_w: 250
    provisioned_kw: 0.4
    repurpose: {{rate: 0.2, utilisation: 0.5, power_fraction: 0.7}}
    resale_curve: [0.1]
    liquidation_factor: 0.85
    repair_cost: 300
    downtime_days_per_failure: 14
    disposal_cost: 100
    health_discount: 0.24
"""


@pytest.mark.parametrize("key", ["tesla_v100", "v100"])
def test_a_parameter_file_with_its_own_v100_entry_still_loads_and_wins(
    key: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Under another key the shared substring ``V100`` refused the start once the defaults had
    a ``v100`` entry; under the same key its ``straight_line`` depreciation was merged with the
    shipped ``rate`` and refused. The file's entry now prices the V100s in both."""
    path = tmp_path / "econ.yaml"
    path.write_text(_USER_V100.format(key=key))
    with caplog.at_level("INFO", logger="gpu_health.scorer.econ.params"):
        params = load_params(path)
    chosen = params.model_for("Tesla V100-SXM2-32GB")
    assert chosen is not None and chosen.purchase_price == 8000
    assert chosen.depreciation.method == "straight_line"
    assert [m for m in params.models if "V100" in m.match] == [chosen]
    if key != "v100":
        assert "the shipped models.v100 is not used: models.tesla_v100" in caplog.text
    assert params.model_for("NVIDIA L4") is not None  # the other shipped entries stay
