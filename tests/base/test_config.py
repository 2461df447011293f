"""Configuration errors name the file, the key and what is allowed."""

from __future__ import annotations

import os
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


BILLION_LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + k)}: &{chr(98 + k)} [{', '.join([f'*{chr(97 + k)}'] * 9)}]\n" for k in range(8)
)


def test_aliases_that_expand_a_document_beyond_bounds_are_refused(tmp_path: Path) -> None:
    # nine levels of nine aliases: 387 million values once expanded
    bomb = tmp_path / "policy.yaml"
    bomb.write_text(BILLION_LAUGHS)
    with pytest.raises(ConfigError, match=r"aliases \(\*name\) expand it to more than"):
        config.load_yaml(bomb)
    with pytest.raises(ConfigError, match="expand it"):
        config.parse_yaml("a: &a [*a]\n", "loop.yaml")  # a list inside itself
    # an anchor shared a few times is ordinary YAML and still reads
    shared = "base: &b {warn: 1, crit: 2}\ngpu: *b\nnode: *b\n"
    assert config.parse_yaml(shared, "ok.yaml")["node"] == {"warn": 1, "crit": 2}


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("a: " + "[" * 5000 + "]" * 5000 + "\n", "nested too deeply"),
        ("a: " + "9" * 5000 + "\n", "invalid YAML value"),
        ("a: 1\nb: x\x07y\n", "at line 2, column 5: the character U\\+0007, which YAML does"),
        ("a: \udcff\n", "at line 1, column 4: a byte that is not UTF-8 \\(0xff\\)"),
    ],
    ids=["deep", "long-integer", "control-character", "not-utf8"],
)
def test_pathological_yaml_is_one_config_error(text: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment) as info:
        config.parse_yaml(text, "p.yaml")
    assert "\n" not in str(info.value) and len(str(info.value)) < 300


def test_numbers_beyond_any_float_are_refused_not_raised() -> None:
    with pytest.raises(ConfigError, match="finite") as info:
        config.expect_number(10**400, "p.yaml", "xid_seconds", 0)
    assert len(str(info.value)) < 200  # the 401 digits are not printed


def test_only_small_regular_files_are_read(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a regular file"):
        config.load_yaml("/dev/zero")
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)  # opening it would wait for a writer forever
    with pytest.raises(ConfigError, match="not a regular file"):
        config.load_yaml(fifo)
    with pytest.raises(ConfigError, match="is a directory"):
        config.load_yaml(tmp_path)
    big = tmp_path / "big.yaml"
    big.write_text("# padding\n" * (config.MAX_CONFIG_BYTES // 10 + 1))
    with pytest.raises(ConfigError, match="larger than 1024 KiB"):
        config.load_yaml(big)


def test_values_in_errors_are_cut_short() -> None:
    with pytest.raises(ConfigError) as info:
        config.expect_number("x" * 100_000, "p.yaml", "k")
    assert len(str(info.value)) < 200
    with pytest.raises(ConfigError) as info:
        config.reject_unknown({"y" * 100_000: 1}, {"a"}, "p.yaml", "w")
    assert len(str(info.value)) < 200


def test_a_control_character_in_a_config_file_is_one_line_at_start(tmp_path: Path) -> None:
    """A control character in a YAML file (a health policy here; the web config, the faults file
    and the economics parameters are read the same way) was a traceback from PyYAML's reader:
    it refuses the text while the loader is built, before errors were handled."""
    import subprocess
    import sys

    policy = tmp_path / "policy.yaml"
    policy.write_text("weights:\n  thermal: 0.25\x01\n")
    exporter = Path(sys.executable).parent / "gpu-health-exporter"
    done = subprocess.run(
        [str(exporter), "--backend", "sim", "--health.policy", str(policy)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "Traceback" not in done.stderr, done.stderr
    lines = [line for line in done.stderr.splitlines() if str(policy) in line]
    assert len(lines) == 1 and "line 2, column 16: the character U+0001" in lines[0], done.stderr
