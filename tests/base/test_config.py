"""Configuration errors name the file, the key and what is allowed."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpu_health import config
from gpu_health.errors import ConfigError


def test_yaml_syntax_error_names_file_line_and_column(tmp_path: Path) -> None:
    bad = tmp_path / "policy.yaml"
    bad.write_text("weights:\n  thermal: 0.25\n  memory: [0.3\n")
    with pytest.raises(ConfigError) as info:
        config.load_yaml(bad)
    message = str(info.value)
    assert str(bad) in message and "line 4" in message


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        config.load_yaml(tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("x", "expected a number"),
        (True, "expected a number"),
        (float("nan"), "finite"),
        (1.5, "out of range (allowed: 0 to 1)"),
    ],
)
def test_number_validation_names_key_and_range(value: object, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        config.expect_number(value, "econ.yaml", "models.h100.pue", 0, 1)
    assert str(info.value).startswith("econ.yaml: models.h100.pue: ")
    assert fragment in str(info.value)


def test_unknown_key_lists_allowed_keys() -> None:
    with pytest.raises(
        ConfigError, match=r"weights\.thermle: unknown key \(allowed: memory, thermal\)"
    ):
        config.reject_unknown({"thermle": 1}, {"thermal", "memory"}, "p.yaml", "weights")


def test_choice_validation() -> None:
    assert (
        config.expect_str("straight_line", "f", "k", {"straight_line", "declining"})
        == "straight_line"
    )
    with pytest.raises(ConfigError, match="allowed: declining, straight_line"):
        config.expect_str("linear", "f", "k", {"straight_line", "declining"})
