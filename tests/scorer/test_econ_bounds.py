"""Economics inputs stay bounded: money parameters have a finite ceiling, the decision never
picks a NaN, a fleet lists each GPU once, a parameters file writes each key once, scientific
notation reads as a number, and ``--prometheus.lookback`` is a window Prometheus accepts."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from gpu_health.cli import build_parser, main
from gpu_health.errors import ConfigError, UserError
from gpu_health.scorer.econ import GpuEconInput, load_params, value_gpu
from gpu_health.scorer.econ.engine import best_action, resale_fraction
from gpu_health.scorer.econ.params import (
    MAX_AMOUNT,
    MAX_HOURLY_RATE,
    MAX_MONTHLY_COST,
    default_raw,
    validate,
)
from tests.base.command_runs import is_one_line_error, run_main

H100 = "NVIDIA H100 80GB HBM3"
#: Every money parameter (dotted key of the h100 model where per model) and its ceiling.
MONEY_KEYS: tuple[tuple[str, float], ...] = (
    ("models.h100.purchase_price", MAX_AMOUNT),
    ("models.h100.repair_cost", MAX_AMOUNT),
    ("models.h100.disposal_cost", MAX_AMOUNT),
    ("models.h100.rental_rate", MAX_HOURLY_RATE),
    ("models.h100.repurpose.rate", MAX_HOURLY_RATE),
    ("colocation_per_kw_month", MAX_MONTHLY_COST),
    ("maintenance_per_gpu_month", MAX_MONTHLY_COST),
    ("warranty_repair_cost", MAX_AMOUNT),
    ("hysteresis.absolute", MAX_AMOUNT),
)


def _risky(model: str = H100, **extra: Any) -> GpuEconInput:
    """A two-year-old GPU with a 90 % chance of failing within 30 days."""
    return GpuEconInput(uuid="GPU-r", model=model, age_days=730, p30=0.9, **extra)


@pytest.mark.parametrize(("key", "ceiling"), MONEY_KEYS)
def test_money_beyond_its_ceiling_is_one_line_naming_key_and_range(
    key: str, ceiling: float
) -> None:
    assert load_params(overrides=[f"{key}={ceiling!r}"])  # the ceiling itself is allowed
    with pytest.raises(ConfigError) as info:
        load_params(overrides=[f"{key}=1.0e+308"])
    message = str(info.value)
    assert message == (
        f"--set {key}=1.0e+308: {key}: 1e+308 is out of range (allowed: 0 to {ceiling:g})"
    )


def test_sla_penalty_has_a_ceiling(tmp_path: Path) -> None:
    path = tmp_path / "econ.yaml"
    path.write_text("sla_penalties: {gold: 1.0e+13}\n")
    with pytest.raises(ConfigError, match=r"sla_penalties\.gold: 1e\+13 is out of range"):
        load_params(path)


def _all_money_at_ceiling() -> dict[str, Any]:
    """The defaults with every money amount at its ceiling, over the longest undiscounted
    horizon and with every multiplier of those amounts at its own maximum."""
    raw = default_raw()
    raw.update(
        horizon_months=120,
        discount_rate=0,
        energy_price=10,
        pue=3,
        host_power_w=5000,
        colocation_per_kw_month=MAX_MONTHLY_COST,
        maintenance_per_gpu_month=MAX_MONTHLY_COST,
        warranty_repair_cost=MAX_AMOUNT,
        sla_penalties={"gold": MAX_AMOUNT},
    )
    raw["hysteresis"]["absolute"] = MAX_AMOUNT
    for model in raw["models"].values():
        model.update(
            purchase_price=MAX_AMOUNT,
            repair_cost=MAX_AMOUNT,
            disposal_cost=MAX_AMOUNT,
            rental_rate=MAX_HOURLY_RATE,
            rental_decline=0,
            typical_power_w=5000,
            provisioned_kw=20,
            downtime_days_per_failure=30,
        )
        model["repurpose"].update(rate=MAX_HOURLY_RATE, utilisation=1, power_fraction=2)
    return raw


def test_every_money_key_at_its_ceiling_keeps_npvs_finite_and_a_risky_gpu_out_of_keep() -> None:
    params = validate(_all_money_at_ceiling(), "ceilings")
    defaults = load_params()
    for model in params.models:
        name = model.match[0]
        risky = _risky(name, utilisation=1.0, warranty_days=200, sla_penalty=1e7)
        # the shipped defaults do not keep such a GPU either, where it sells for more than its
        # failure costs (a repair and the rent lost meanwhile): a V100 sells for $300 whatever
        # its age, its failure costs a $300 module and 14 days of a $0.40 rent, so running it
        # until it fails is worth more than selling it
        shipped = defaults.model_for(name)
        assert shipped is not None
        sale = shipped.purchase_price * resale_fraction(shipped.resale_curve, 2.0)
        failure = shipped.repair_cost + shipped.downtime_days_per_failure * 24 * shipped.rental_rate
        if sale > failure:
            assert value_gpu(_risky(name), defaults).best_action != "keep", name
        for gpu in (risky, _risky(name, hard_fault=True)):
            result = value_gpu(gpu, params)
            assert all(math.isfinite(v) for v in result.npv.values()), result.npv
            assert all(abs(v) < 1e16 for v in result.npv.values()), result.npv
            assert result.best_action != "keep"
        # a failure costs more than a month of revenue: selling the card is worth the most
        assert value_gpu(risky, params).best_action == "sell"


def test_the_tester_case_is_refused_and_json_stays_valid(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fleet = tmp_path / "risky.csv"
    fleet.write_text(f"uuid,model,age_days,p30\nGPU-r,{H100},730,0.9\n")
    base = ["econ", "--fleet", str(fleet), "--format", "json"]
    code, err = run_main(main, [*base, "--set", "models.h100.rental_rate=1.0e+308"], capsys)
    assert is_one_line_error(code, err)
    assert "models.h100.rental_rate: 1e+308 is out of range (allowed: 0 to 1e+09)" in err
    # at the ceiling the output is still JSON without NaN; earning 1e9 an hour pays for any
    # repair of the defaults, so keeping the card is then the right answer
    assert main([*base, "--set", f"models.h100.rental_rate={MAX_HOURLY_RATE!r}"]) == 0
    gpu = json.loads(capsys.readouterr().out, parse_constant=pytest.fail)["per_gpu"][0]
    assert (gpu["before"], gpu["after"]) == ("sell", "keep")
    assert all(math.isfinite(v) for v in [*gpu["npv_before"].values(), *gpu["npv_after"].values()])


def test_best_action_never_picks_an_npv_that_is_not_finite() -> None:
    npv = {"keep": math.nan, "repair": 0.0, "repurpose": -5.0, "sell": 10.0, "decommission": 1.0}
    assert best_action(npv, ("keep", "repurpose", "sell", "decommission")) == "sell"
    assert best_action({**npv, "sell": math.inf}, ("keep", "sell", "decommission")) == (
        "decommission"
    )
    nothing = dict.fromkeys(npv, math.nan)
    with pytest.raises(ArithmeticError, match="no finite NPV among the allowed actions"):
        best_action(nothing, ("keep", "sell"))


def test_a_gpu_listed_twice_is_refused_naming_both_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fleet = tmp_path / "dup2.csv"
    fleet.write_text(
        f"uuid,model,age_days,p30\nGPU-a,{H100},730,0.001\nGPU-b,{H100},730,0.001\n"
        f"GPU-a,{H100},730,0.5\n"
    )
    code, err = run_main(main, ["econ", "--fleet", str(fleet)], capsys)
    assert is_one_line_error(code, err)
    assert err == f"error: {fleet}: line 4: uuid: GPU-a is already listed on line 2\n"


def test_a_key_written_twice_in_the_parameters_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "econ.yaml"
    path.write_text("energy_price: 0.1\npue: 1.2\nenergy_price: 9.9\n")
    with pytest.raises(ConfigError) as info:
        load_params(path)
    assert (
        str(info.value) == f"{path}: invalid YAML at line 3, column 1: duplicate key 'energy_price'"
    )
    nested = tmp_path / "nested.yaml"
    nested.write_text("models:\n  h100:\n    rental_rate: 2\n    rental_rate: 3\n")
    with pytest.raises(ConfigError, match="line 4, column 5: duplicate key 'rental_rate'"):
        load_params(nested)
    # the same key in two different mappings is no repetition
    fine = tmp_path / "fine.yaml"
    fine.write_text("models:\n  h100: {rental_rate: 2}\n  h200: {rental_rate: 2}\n")
    assert load_params(fine).model_for("H200").rental_rate == 2  # type: ignore[union-attr]


def test_scientific_notation_reads_as_a_number(tmp_path: Path) -> None:
    path = tmp_path / "econ.yaml"
    path.write_text("models:\n  h100:\n    purchase_price: 3e4\n    disposal_cost: .5E2\n")
    params = load_params(path, ["models.h100.repair_cost=1e9", "energy_price=+2.5E-2"])
    h100 = params.model_for(H100)
    assert h100 is not None
    assert (h100.purchase_price, h100.disposal_cost, h100.repair_cost) == (30000.0, 50.0, 1e9)
    assert params.energy_price == 0.025
    # converted, the value meets the same range and finite checks as any number
    with pytest.raises(ConfigError, match=r"energy_price: -0.025 is out of range"):
        load_params(overrides=["energy_price=-2.5e-2"])
    with pytest.raises(ConfigError, match=r"repair_cost: 1e\+13 is out of range"):
        load_params(overrides=["models.h100.repair_cost=1e13"])
    with pytest.raises(ConfigError, match=r"repair_cost: expected a finite number, got '1e999'"):
        load_params(overrides=["models.h100.repair_cost=1e999"])


@pytest.mark.parametrize("text", ["1e", "e9", "1e9x", "1e 9", "0x1p3", "1_0e3", "١e3", "inf"])
def test_other_strings_are_still_not_numbers(text: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_params(overrides=[f"models.h100.repair_cost={text}"])
    assert "models.h100.repair_cost: expected a number, got '" in str(info.value)


@pytest.mark.parametrize("window", ["0s", "59s", "999ms", "91d", "99999w", "1y"])
def test_a_lookback_prometheus_would_refuse_is_one_argparse_line(
    window: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["econ", "--prometheus", "http://127.0.0.1:9", "--prometheus.lookback", window]
    code, err = run_main(main, argv, capsys)
    assert code == 2 and is_one_line_error(code, err)
    assert f"--prometheus.lookback: '{window}' is out of range (allowed: 1m to 90d)" in err


@pytest.mark.parametrize("window", ["1m", "60s", "1h", "90d", "12w"])
def test_a_lookback_within_range_is_sent_as_written(window: str) -> None:
    argv = ["econ", "--prometheus", "http://127.0.0.1:9", "--prometheus.lookback", window]
    assert build_parser().parse_args(argv).lookback == window


def test_inventory_ages_refuse_a_future_purchase_and_a_row_without_age(tmp_path: Path) -> None:
    """``--econ.inventory`` took a purchase in 2030 as age 0 without a word, and a row with an
    empty age_days in a file without a purchase_date column was a KeyError traceback."""
    from gpu_health.scorer.econ.bridge import read_ages

    now = 1_796_083_200.0  # 2026-12-01
    dated = tmp_path / "dated.csv"
    dated.write_text("uuid,purchase_date\nGPU-a,2025-12-01\nGPU-b,2030-01-01\n")
    with pytest.raises(UserError, match=r"dated\.csv: line 3: purchase_date: 2030-01-01 is in"):
        read_ages(dated, now)
    aged = tmp_path / "aged.csv"
    aged.write_text("uuid,age_days\nGPU-a,30\nGPU-b,\n")
    with pytest.raises(UserError, match=r"aged\.csv: line 3: no age: give age_days or purchase"):
        read_ages(aged, now)
    aged.write_text("uuid,age_days\nGPU-a,30\n")
    dated.write_text("uuid,purchase_date\nGPU-a,2025-12-01\n")
    assert read_ages(aged, now) == {"GPU-a": 30.0} and read_ages(dated, now) == {"GPU-a": 365.0}
