"""Hand-computed NPVs for every action: the arithmetic is written out here, not the engine's.

The test parameters use round numbers and a discount rate whose monthly factor is exactly 1.01,
so each expected value can be checked with a pocket calculator.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from gpu_health.scorer.econ import GpuEconInput, UnknownModelError, load_params, value_gpu
from gpu_health.scorer.econ.engine import monthly_hazard
from gpu_health.scorer.econ.params import EconParams, default_raw, merge, validate

#: (1 + r) ** (1/12) == 1.01 exactly: month 1 discounts by 1.01, month 2 by 1.0201.
RATE_FOR_1_PERCENT_A_MONTH = 1.01**12 - 1
#: The 30-day point of the survival curve at which the engine's hazard is 0.02 failures a month:
#: -ln(1 - P30) / 30 d * (365 / 12) d = 0.02. The 7-day point is set far off on purpose: if
#: the engine read it instead of the curve's 30/90-day points, every by-hand NPV would fail.
P30_FOR_2_PERCENT_A_MONTH = 1 - math.exp(-0.02 * 30 / (365 / 12))


def simple_raw(**model_overrides: Any) -> dict[str, Any]:
    model: dict[str, Any] = {
        "match": ["TestGPU"],
        "purchase_price": 10000,
        "useful_life_years": 5,
        "depreciation": {"method": "straight_line"},
        "salvage_floor": 0.1,
        "rental_rate": 2.0,
        "rental_decline": 0.0,
        "typical_power_w": 400,
        "provisioned_kw": 1.0,
        "repurpose": {"rate": 1.0, "utilisation": 0.4, "power_fraction": 0.5},
        "resale_curve": [1.0, 0.8, 0.6],
        "liquidation_factor": 0.9,
        "repair_cost": 1000,
        "downtime_days_per_failure": 10,
        "disposal_cost": 150,
        "health_discount": 0.5,
    }
    model.update(model_overrides)
    return {
        "currency": "EUR",
        "horizon_months": 2,
        "discount_rate": RATE_FOR_1_PERCENT_A_MONTH,
        "energy_price": 0.10,
        "pue": 1.5,
        "host_power_w": 100,
        "colocation_per_kw_month": 100,
        "maintenance_per_gpu_month": 50,
        "default_utilisation": 0.8,
        "baseline_annual_failure_rate": 0.03,
        "hysteresis": {"absolute": 100, "relative": 0.05},
        "models": {"test": model},
    }


def simple_params(**model_overrides: Any) -> EconParams:
    return validate(simple_raw(**model_overrides), "test.yaml")


def gpu(**overrides: Any) -> GpuEconInput:
    fields: dict[str, Any] = {
        "uuid": "GPU-1",
        "model": "Vendor TestGPU 80GB",
        "age_days": 365,
        "utilisation": 0.5,
        "power_w": 400,
        "p7": 0.5,
        "p30": P30_FOR_2_PERCENT_A_MONTH,
        "health": 80,
        "hard_fault": False,
    }
    fields.update(overrides)
    return GpuEconInput(**fields)


# Shared by keep and repurpose: end of horizon = 1 + 2/12 years; straight line over 5 years
# leaves 1 - 1.1666667/5 = 0.7666667; health 80 with discount 0.5 keeps 1 - 0.5*0.2 = 0.9.
TERMINAL = 10000 * (1 - (1 + 2 / 12) / 5) * 0.9  # = 6900


def test_keep_npv_by_hand() -> None:
    # revenue  = 2.00 $/h * 730 h * 0.5             = 730.00
    # energy   = (400 + 100) W / 1000 * 730 h * 1.5 * 0.10 = 54.75
    # facility = 100 $/kW-month * 1.0 kW            = 100.00
    # maint                                         =  50.00
    # failure  = hazard 0.02 * (1000 + 240 h * 2.00 * 0.5) = 0.02 * 1240 = 24.80
    # net      = 730 - 54.75 - 100 - 50 - 24.80     = 500.45 per month
    expected = 500.45 / 1.01 + 500.45 / 1.0201 + 6900 / 1.0201
    result = value_gpu(gpu(), simple_params())
    assert pytest.approx(6900) == TERMINAL
    assert result.npv["keep"] == pytest.approx(expected, rel=1e-9)
    assert result.npv["keep"] == pytest.approx(7750.1269, abs=1e-3)
    assert result.recommended_action == "keep"
    assert result.currency == "EUR"


def test_repurpose_npv_by_hand() -> None:
    # revenue  = 1.00 * 730 * 0.4                   = 292.00
    # energy   = (400 * 0.5 + 100) / 1000 * 730 * 1.5 * 0.10 = 32.85
    # failure  = 0.02 * (1000 + 240 * 1.00 * 0.4)   = 21.92
    # net      = 292 - 32.85 - 100 - 50 - 21.92     = 87.23 per month
    expected = 87.23 / 1.01 + 87.23 / 1.0201 + 6900 / 1.0201
    result = value_gpu(gpu(), simple_params())
    assert result.npv["repurpose"] == pytest.approx(expected, rel=1e-9)


def test_sell_npv_by_hand_interpolates_the_resale_curve() -> None:
    # age 1.5 years: halfway between 0.8 (1 y) and 0.6 (2 y) = 0.7
    # 10000 * 0.7 * liquidation 0.9 * health factor 0.9 = 5670
    result = value_gpu(gpu(age_days=547.5), simple_params())
    assert result.npv["sell"] == pytest.approx(5670)
    # beyond the curve the last point holds: 10000 * 0.6 * 0.9 * 0.9 = 4860
    assert value_gpu(gpu(age_days=3000), simple_params()).npv["sell"] == pytest.approx(4860)


def test_decommission_is_salvage_minus_disposal() -> None:
    # salvage floor 0.1 * 10000 = 1000; minus disposal 150 = 850
    assert value_gpu(gpu(), simple_params()).npv["decommission"] == pytest.approx(850)


def test_residual_value_straight_line_and_declining_balance() -> None:
    # straight line, age 1 y of 5: 10000 * 0.8 * health 0.9 = 7200
    assert value_gpu(gpu(), simple_params()).residual_value == pytest.approx(7200)
    # declining balance 20 %/y, age 2 y: 10000 * 0.8 ** 2 = 6400, * 0.9 = 5760
    declining = simple_params(depreciation={"method": "declining_balance", "rate": 0.2})
    assert value_gpu(gpu(age_days=730), declining).residual_value == pytest.approx(5760)
    # past the useful life the salvage floor applies: 0.1 * 10000 = 1000
    assert value_gpu(gpu(age_days=6 * 365), simple_params()).residual_value == pytest.approx(1000)


def test_rental_decline_applies_from_the_second_month() -> None:
    # decline chosen so that (1 - d) ** (1/12) == 0.99: month 2 rents at 2.00 * 0.99 = 1.98
    # month 1 net as in test_keep = 500.45
    # month 2: revenue 1.98 * 730 * 0.5 = 722.70; failure 0.02 * (1000 + 240 * 1.98 * 0.5) = 24.752
    #          net = 722.70 - 54.75 - 100 - 50 - 24.752 = 493.198
    params = simple_params(rental_decline=1 - 0.99**12)
    expected = 500.45 / 1.01 + 493.198 / 1.0201 + 6900 / 1.0201
    assert value_gpu(gpu(), params).npv["keep"] == pytest.approx(expected, rel=1e-9)


def test_hard_fault_sells_as_salvage_and_is_never_kept() -> None:
    result = value_gpu(gpu(hard_fault=True, p7=0.0, p30=0.0), simple_params())
    # keep would still pay on paper (no hazard at all), but a hard-failed card cannot serve
    assert result.npv["keep"] > result.npv["sell"]
    assert result.npv["sell"] == pytest.approx(1000)  # salvage: 0.1 * 10000
    assert result.residual_value == pytest.approx(1000)
    assert result.eligible == ("repair", "sell", "decommission")
    assert result.recommended_action in ("repair", "sell")


def test_repair_pays_the_repair_and_its_downtime_then_runs_at_baseline_hazard() -> None:
    params = simple_params()
    model = params.models[0]
    failed = value_gpu(gpu(hard_fault=True, p7=0.9, p30=0.9), params)
    sound = value_gpu(gpu(hard_fault=False, p7=None, p30=None, health=100.0), params)
    outage = model.repair_cost + model.downtime_days_per_failure * 24.0 * model.rental_rate * 0.5
    # after the repair the card is valued as a sound one at the fleet baseline, less the outage
    assert failed.npv["repair"] == pytest.approx(sound.npv["keep"] - outage, rel=1e-9)
    assert "repair" not in sound.eligible and "keep" not in failed.eligible
    # a repair that costs more than the card earns afterwards loses to replacing it
    dear = value_gpu(gpu(hard_fault=True), simple_params(repair_cost=10**7))
    assert dear.recommended_action in ("sell", "decommission")


def test_hazard_is_read_from_the_survival_curve() -> None:
    month = 365 / 12
    # the 30-day point: -ln(1 - 0.1) / 30 * 30.4167 = 0.106824 failures a month
    assert monthly_hazard(0.1, None, 0.03) == pytest.approx(-math.log(0.9) / 30 * month)
    assert monthly_hazard(0.1, None, 0.03) == pytest.approx(0.106824, abs=1e-6)
    # a constant-hazard curve (P90 = 1 - 0.9 ** 3): both points give the same rate
    assert monthly_hazard(0.1, 1 - 0.9**3, 0.03) == pytest.approx(monthly_hazard(0.1, None, 0.03))
    # hazard rising after the first month: the 90-day average rate is the larger one
    assert monthly_hazard(0.1, 0.5, 0.03) == pytest.approx(-math.log(0.5) / 90 * month)
    # risk concentrated in the first month: the 30-day rate holds
    assert monthly_hazard(0.3, 0.31, 0.03) == pytest.approx(-math.log(0.7) / 30 * month)
    # the 90-day point alone
    assert monthly_hazard(None, 0.2, 0.03) == pytest.approx(-math.log(0.8) / 90 * month)
    # a certain failure is capped at one failure a month
    assert monthly_hazard(1.0, 1.0, 0.03) == 1.0
    assert monthly_hazard(0.9, None, 0.03) == 1.0
    # nothing measured: the annual baseline (3 %) as a rate over 12 months
    assert monthly_hazard(None, None, 0.03) == pytest.approx(-math.log(0.97) / 12)


def test_value_gpu_takes_its_hazard_from_the_30_and_90_day_curve_points() -> None:
    params = simple_params()
    base = value_gpu(gpu(), params)
    assert base.inputs["monthly_hazard"] == pytest.approx(0.02, rel=1e-12)
    # the 7-day point does not move the economics
    assert value_gpu(gpu(p7=0.001), params).npv == pytest.approx(base.npv, rel=1e-12)
    # a 90-day point implying a higher rate does: hazard and the keep NPV follow the curve
    rising = value_gpu(gpu(p90=0.5), params)
    assert rising.inputs["monthly_hazard"] == pytest.approx(-math.log(0.5) / 90 * 365 / 12)
    assert rising.inputs["p90"] == 0.5
    assert rising.npv["keep"] < base.npv["keep"]
    # neither curve point published: the baseline, listed as defaulted
    bare = value_gpu(gpu(p30=None), params)
    assert "failure_probability" in bare.defaulted
    assert bare.inputs["monthly_hazard"] == pytest.approx(-math.log(0.97) / 12)


def test_unmeasured_inputs_fall_back_to_defaults_and_are_listed() -> None:
    result = value_gpu(
        gpu(utilisation=None, power_w=None, p7=None, p30=None, health=None), simple_params()
    )
    assert set(result.defaulted) == {"utilisation", "power_w", "health", "failure_probability"}
    assert result.inputs["utilisation"] == 0.8
    assert result.inputs["power_w"] == 400
    assert result.inputs["health"] == 100
    assert math.isnan(result.inputs["p7"])


def test_model_matching_is_case_insensitive_and_longest_wins() -> None:
    raw = simple_raw()
    specific = dict(raw["models"]["test"], match=["testgpu pcie"], rental_rate=9.0)
    raw["models"]["pcie"] = specific
    params = validate(raw, "t.yaml")
    assert params.model_for("Vendor TESTGPU PCIe")
    assert value_gpu(gpu(model="Vendor TestGPU PCIe"), params).model_key == "pcie"
    assert value_gpu(gpu(model="Vendor TestGPU SXM"), params).model_key == "test"
    with pytest.raises(UnknownModelError, match="matches no economics model"):
        value_gpu(gpu(model="Tesla K80"), params)


@pytest.mark.parametrize(
    ("field", "value"), [("utilisation", 1.5), ("p30", -0.1), ("health", 101), ("age_days", -1)]
)
def test_inputs_out_of_range_are_rejected(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        gpu(**{field: value})


def test_default_calibration_h100() -> None:
    """The shipped defaults: a healthy 2-year-old H100 at 80 % keeps at $2.35/h, sells when the
    rent collapses or when a failure is likely (failure-econ-anchors §5(b) calibration check)."""
    healthy = gpu(
        model="NVIDIA H100 80GB HBM3",
        age_days=730,
        utilisation=0.8,
        power_w=525,
        p7=0.001,
        p30=0.0025,
        health=98,
    )
    assert value_gpu(healthy, load_params()).recommended_action == "keep"
    cheap = load_params(overrides=["models.h100.rental_rate=0.9"])
    assert value_gpu(healthy, cheap).recommended_action == "sell"
    failing = gpu(
        model="NVIDIA H100 80GB HBM3",
        age_days=730,
        utilisation=0.8,
        power_w=525,
        p7=0.2,
        p30=0.5,
        health=60,
    )
    assert value_gpu(failing, load_params()).recommended_action == "sell"


def test_defaults_cover_the_required_models() -> None:
    params = load_params()
    for name in ["NVIDIA A100-SXM4-80GB", "NVIDIA H100 80GB HBM3", "NVIDIA H200", "NVIDIA L40S"]:
        assert params.model_for(name) is not None, name
    # and the overlay machinery keeps defaults for what a file leaves out
    merged = merge(default_raw(), {"energy_price": 0.2})
    assert validate(merged, "x").energy_price == 0.2
    assert validate(merged, "x").pue == 1.3
