"""Economics YAML: shipped defaults load, and every mistake is one line naming file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpu_health.errors import ConfigError
from gpu_health.scorer.econ import load_params


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "econ.yaml"
    path.write_text(text)
    return path


def test_shipped_defaults_load() -> None:
    params = load_params()
    assert params.currency == "USD"
    assert params.horizon_months == 12
    assert {m.key for m in params.models} >= {"h100", "h200", "a100_80gb", "l40s"}


def test_file_overlays_defaults(tmp_path: Path) -> None:
    path = _write(tmp_path, "currency: EUR\nmodels:\n  h100:\n    rental_rate: 1.9\n")
    params = load_params(path)
    h100 = params.model_for("H100")
    assert params.currency == "EUR" and h100 is not None
    assert h100.rental_rate == 1.9
    assert h100.purchase_price == 27500  # untouched default


@pytest.mark.parametrize(
    ("text", "key", "fragment"),
    [
        ("energy_prise: 0.2\n", "energy_prise", "unknown key (allowed: baseline_annual_failure"),
        ("pue: 0.5\n", "pue", "out of range (allowed: 1 to 3)"),
        ("horizon_months: 1.5\n", "horizon_months", "expected an integer"),
        ("models:\n  h100:\n    rental_rat: 2\n", "models.h100.rental_rat", "unknown key"),
        (
            "models:\n  h100:\n    depreciation: {method: sum_of_years}\n",
            "models.h100.depreciation.method",
            "(allowed: declining_balance, straight_line)",
        ),
        (
            "models:\n  h100:\n    resale_curve: [1.0, 0.5, 0.7]\n",
            "models.h100.resale_curve[2]",
            "must not rise",
        ),
        ("models:\n  b200:\n    match: [B200]\n", "models.b200.depreciation", "missing"),
        ("hysteresis:\n  absolute: -1\n", "hysteresis.absolute", "out of range"),
        ("currency: 12\n", "currency", "expected a string"),
        ("models:\n  h100:\n    match: ['']\n", "models.h100.match", "every GPU"),
    ],
)
def test_validation_errors_name_file_and_key(
    tmp_path: Path, text: str, key: str, fragment: str
) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_params(path)
    message = str(info.value)
    assert message.startswith(f"{path}: {key}: "), message
    assert fragment in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("override", "fragment"),
    [
        ("energy_prise=0.2", "--set energy_prise=0.2: energy_prise: unknown key"),
        ("models.h999.rental_rate=1", "models.h999: unknown key (allowed: a10, a100_80gb, a10g"),
        ("energy_price=cheap", "energy_price: expected a number, got 'cheap'"),
        ("energy_price=", "energy_price: missing value"),
        ("energy_price", "expected KEY=VALUE"),
        ("pue.x=1", "pue: is a value, not a section"),
        ("models.h100.rental_rate=-1", "models.h100.rental_rate: -1 is out of range"),
    ],
)
def test_bad_overrides_name_the_key(override: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_params(overrides=[override])
    assert fragment in str(info.value)


def test_overrides_apply_in_order() -> None:
    params = load_params(overrides=["energy_price=0.2", "models.h100.rental_rate=1.8"])
    h100 = params.model_for("NVIDIA H100 80GB HBM3")
    assert params.energy_price == 0.2 and h100 is not None and h100.rental_rate == 1.8
