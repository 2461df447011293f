"""docs/economics.md stays true: the worked example is recomputed, every parameter documented."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

from gpu_health.scorer.econ import GpuEconInput, load_params, value_gpu
from gpu_health.scorer.econ.params import default_raw

DOC = Path(__file__).resolve().parents[2] / "docs" / "economics.md"


def _worked_example() -> dict[str, str]:
    text = DOC.read_text()
    block = text.split("<!-- worked-example:begin -->")[1].split("<!-- worked-example:end -->")[0]
    values = {}
    for line in block.splitlines():
        match = re.match(r"^(\w+)\s*=\s*(\S+)", line)
        if match:
            values[match.group(1)] = match.group(2)
    return values


def test_worked_example_numbers() -> None:
    doc = _worked_example()
    # the survival curve's 30-day and 90-day average rates, the larger over a calendar month
    hazard = (365 / 12) * max(-math.log(1 - 0.0025) / 30, -math.log(1 - 0.008) / 90)
    health_factor = 1 - 0.24 * (100 - 98) / 100
    by_hand = {
        "monthly_hazard": hazard,
        "revenue_month_1": 2.35 * 730 * 0.80,
        "energy_month": (525 + 150) / 1000 * 730 * 1.3 * 0.08,
        "facility_month": 184.06 * 1.275,
        "maint_month": 36.50,
        "failure_month_1": hazard * (5000 + 14 * 24 * 2.35 * 0.80),
        "rate_month_12": 2.35 * 0.75 ** (11 / 12),
        "health_factor": health_factor,
        "residual_now": 27500 * 0.77**2 * health_factor,
        "residual_end": 27500 * 0.77**3 * health_factor,
        "npv_sell": 27500 * 0.60 * 0.85 * health_factor,
        "npv_decommission": 27500 * 0.05 - 100,
    }
    by_hand["net_month_1"] = (
        by_hand["revenue_month_1"]
        - by_hand["energy_month"]
        - by_hand["facility_month"]
        - by_hand["maint_month"]
        - by_hand["failure_month_1"]
    )
    # keep, summed by hand over the 12 months with the doc's formula
    discount = 1.10 ** (1 / 12)
    keep = 0.0
    for month in range(1, 13):
        rate = 2.35 * 0.75 ** ((month - 1) / 12)
        net = (
            rate * 730 * 0.8
            - by_hand["energy_month"]
            - by_hand["facility_month"]
            - 36.5
            - hazard * (5000 + 14 * 24 * rate * 0.8)
        )
        keep += net / discount**month
    by_hand["npv_keep"] = keep + by_hand["residual_end"] / 1.10

    gpu = GpuEconInput(
        uuid="GPU-example",
        model="NVIDIA H100 80GB HBM3",
        age_days=730,
        utilisation=0.8,
        power_w=525,
        p7=0.001,
        p30=0.0025,
        p90=0.008,
        health=98,
    )
    result = value_gpu(gpu, load_params())
    engine = {
        "monthly_hazard": result.inputs["monthly_hazard"],
        "residual_now": result.residual_value,
        "npv_keep": result.npv["keep"],
        "npv_repurpose": result.npv["repurpose"],
        "npv_sell": result.npv["sell"],
        "npv_decommission": result.npv["decommission"],
    }
    for name, value in by_hand.items():
        assert float(doc[name]) == pytest.approx(value, abs=0.006), name
    for name, value in engine.items():
        assert float(doc[name]) == pytest.approx(value, abs=0.006), name
        if name in by_hand:
            assert value == pytest.approx(by_hand[name], rel=1e-9), name
    assert doc["recommended"] == result.recommended_action
    assert set(doc) == set(by_hand) | set(engine) | {"recommended"}


def test_every_parameter_is_documented_with_its_default() -> None:
    text = DOC.read_text()
    raw = default_raw()
    for key, value in raw.items():
        if key in ("models", "hysteresis"):
            continue
        row = next((line for line in text.splitlines() if line.startswith(f"| `{key}` |")), None)
        assert row is not None, key
        if isinstance(value, int | float):
            shown = row.split("|")[2].replace(",", "")
            assert math.isclose(float(shown.split()[0]), value), key
    for key in raw["hysteresis"]:
        assert f"`hysteresis.{key}`" in text
    per_model = text.split("### Per model", 1)[1].split("\n## ")[0]
    for key in {k for body in raw["models"].values() for k in body}:
        assert re.search(rf"^\| `{key}[`. ]", per_model, re.MULTILINE), key
    # Each per-model table names its entries in its header, "| key | H100 SXM (`h100`) | ...";
    # every entry of the YAML has a column, and every cell that is not "same" shows its value.
    columns: list[str] = []
    documented: list[str] = []
    for line in per_model.splitlines():
        if line.startswith("| key |"):
            columns = re.findall(r"\(`(\w+)`\)", line)
            documented += columns
            continue
        match = re.match(r"^\| `([\w.]+)`[^|]*\|", line)
        if not match or not columns:
            continue
        section, _, leaf = match.group(1).partition(".")
        cells = [c.strip() for c in line.split("|")[2 : 2 + len(columns)]]
        for model, cell in zip(columns, cells, strict=True):
            value = raw["models"][model].get(section, False)  # match_whole_word: optional
            value = value[leaf] if leaf else value
            where = (model, match.group(1))
            if cell == "same":
                continue
            if isinstance(value, bool):
                assert cell == str(value).lower(), where
            elif isinstance(value, int | float):
                assert math.isclose(float(cell.replace(",", "")), value), where
            elif isinstance(value, list) and all(isinstance(v, str) for v in value):
                assert re.findall(r"`([^`]+)`", cell) == value, where
            elif isinstance(value, list):
                assert [float(v) for v in cell.split(",")] == value, where
    assert sorted(documented) == sorted(raw["models"]), documented


def test_recording_rule_examples_parse() -> None:
    promql_parser = pytest.importorskip("promql_parser")
    text = DOC.read_text()
    block = text.split("```promql")[1].split("```")[0]
    for line in block.splitlines():
        if line.strip() and not line.startswith("#"):
            promql_parser.parse(line)
