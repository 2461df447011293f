"""Economics on inventory data: price, contract rate, warranty, SLA penalty, market prices."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest

from gpu_health.errors import UserError
from gpu_health.scorer.econ import GpuEconInput, load_params, value_gpu
from gpu_health.scorer.econ.engine import DAYS_PER_MONTH, health_factor
from gpu_health.scorer.inventory.market import load_market_prices, parse_market_prices

PARAMS = load_params()
H100 = PARAMS.model_for("NVIDIA H100 80GB HBM3")
BASE = GpuEconInput(
    uuid="GPU-1",
    model="NVIDIA H100 80GB HBM3",
    age_days=400,
    utilisation=0.8,
    power_w=500,
    p7=0.01,
    p30=0.05,
    health=90,
)


def _discount(month: int) -> float:
    return math.pow(1.0 + PARAMS.discount_rate, month / 12.0)


def test_warranty_months_cost_an_rma_instead_of_a_repair() -> None:
    assert H100 is not None
    plain = value_gpu(BASE, PARAMS)
    covered = value_gpu(dataclasses.replace(BASE, warranty_days=3 * DAYS_PER_MONTH), PARAMS)
    hazard = plain.inputs["monthly_hazard"]
    saved = sum(
        hazard * (H100.repair_cost - PARAMS.warranty_repair_cost) / _discount(m) for m in (1, 2, 3)
    )
    assert covered.npv["keep"] - plain.npv["keep"] == pytest.approx(saved, rel=1e-9)
    ended = value_gpu(dataclasses.replace(BASE, warranty_days=-10), PARAMS)
    assert ended.npv["keep"] == pytest.approx(plain.npv["keep"])


def test_sla_penalty_is_owed_per_failure_while_kept_only() -> None:
    params = dataclasses.replace(PARAMS, sla_penalties=(("gold", 3000.0),))
    penalty = params.sla_penalty("gold")
    assert penalty == 3000 and params.sla_penalty("bronze") == 0
    plain = value_gpu(BASE, params)
    gold = value_gpu(dataclasses.replace(BASE, sla_penalty=penalty), params)
    hazard = plain.inputs["monthly_hazard"]
    cost = sum(hazard * penalty / _discount(m) for m in range(1, params.horizon_months + 1))
    assert plain.npv["keep"] - gold.npv["keep"] == pytest.approx(cost, rel=1e-9)
    assert gold.npv["repurpose"] == pytest.approx(plain.npv["repurpose"])


def test_inventory_price_and_contract_rate_replace_the_model_defaults() -> None:
    assert H100 is not None
    cheap = value_gpu(dataclasses.replace(BASE, purchase_price=H100.purchase_price / 2), PARAMS)
    plain = value_gpu(BASE, PARAMS)
    assert cheap.residual_value == pytest.approx(plain.residual_value / 2)
    assert cheap.inputs["purchase_price"] == H100.purchase_price / 2
    contract = value_gpu(dataclasses.replace(BASE, rental_rate=H100.rental_rate + 1), PARAMS)
    assert contract.inputs["rental_rate"] == H100.rental_rate + 1
    assert contract.npv["keep"] > plain.npv["keep"]


def test_market_price_sets_the_sell_value_and_its_date_travels_with_it() -> None:
    assert H100 is not None
    quoted = dataclasses.replace(BASE, market_price=14000.0, market_price_date="2026-11-20")
    result = value_gpu(quoted, PARAMS)
    expected = 14000.0 * H100.liquidation_factor * health_factor(90, H100.health_discount)
    assert result.npv["sell"] == pytest.approx(expected)
    assert result.price_date == "2026-11-20"
    assert value_gpu(BASE, PARAMS).price_date == ""
    failed = value_gpu(dataclasses.replace(quoted, hard_fault=True), PARAMS)
    assert failed.npv["sell"] == pytest.approx(H100.salvage_value)


def test_market_table_newest_and_most_specific_quote_wins(tmp_path: Path) -> None:
    path = tmp_path / "prices.csv"
    path.write_text(
        "model,condition,price,date\n"
        "H100,used,15000,2026-09-01\n"
        "H100,used,14000,2026-11-01\n"
        "H100 PCIe,used,11000,2026-10-01\n"
        "H100,for_parts,2000,2026-11-01\n"
    )
    table = load_market_prices(path)
    sxm = table.lookup("NVIDIA H100 80GB HBM3")
    pcie = table.lookup("NVIDIA H100 PCIe")
    assert sxm is not None and (sxm.price, sxm.date) == (14000, "2026-11-01")
    assert pcie is not None and pcie.price == 11000
    assert table.lookup("NVIDIA A100-SXM4-80GB") is None


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("H100,used,cheap,2026-01-01", "line 2: price: expected a number"),
        ("H100,new-ish,100,2026-01-01", "line 2: condition: 'new-ish' not allowed"),
        ("H100,used,100,01/02/2026", "line 2: date: '01/02/2026' is not a date"),
        ("H100,used,-1,2026-01-01", "line 2: price: -1 is out of range"),
    ],
)
def test_market_table_errors_name_line_and_column(row: str, message: str) -> None:
    with pytest.raises(UserError, match=message):
        parse_market_prices("model,condition,price,date\n" + row + "\n", "prices.csv")


def test_optional_parameters_are_validated() -> None:
    with pytest.raises(UserError, match=r"--set sla_penalties.gold=-5: sla_penalties.gold: -5"):
        load_params(None, ["sla_penalties.gold=-5"])
    assert load_params(None, ["sla_penalties={gold: 100}"]).sla_penalty("gold") == 100
