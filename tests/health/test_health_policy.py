"""The health policy file: shipped defaults, overlays, per-model limits and validation errors."""

from __future__ import annotations

import math
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest
import yaml

from gpu_health.errors import ConfigError
from gpu_health.health.policy import DEFAULT_POLICY_PATH, load_policy
from gpu_health.health.result import DIMENSIONS, GRADES


def test_shipped_weights_match_the_product_definition_and_sum_to_one() -> None:
    policy = load_policy(None)
    assert policy.weights == {
        "thermal": 0.25,
        "memory": 0.30,
        "power": 0.15,
        "performance": 0.20,
        "reliability": 0.10,
    }
    assert math.isclose(sum(policy.weights.values()), 1.0)
    assert set(policy.weights) == set(DIMENSIONS)


def test_default_policy_is_package_data() -> None:
    resource = resources.files("gpu_health.health").joinpath("default_policy.yaml")
    assert resource.is_file()
    assert yaml.safe_load(resource.read_text())["weights"]["memory"] == 0.30


def test_every_cap_is_in_the_critical_band() -> None:
    policy = load_policy(None)
    for name, cap in vars(policy.caps).items():
        assert policy.grade(cap) == "critical", name


@pytest.mark.parametrize(
    ("score", "grade"),
    [(100, "excellent"), (90, "excellent"), (89.99, "good"), (75, "good"), (74, "fair"),
     (60, "fair"), (59.5, "poor"), (40, "poor"), (39.99, "critical"), (0, "critical")],
)  # fmt: skip
def test_grade_bands(score: float, grade: str) -> None:
    assert load_policy(None).grade(score) == grade
    assert grade in GRADES


def test_model_limits_layer_from_shortest_to_longest_match() -> None:
    policy = load_policy(None)
    sxm, _ = policy.for_model("NVIDIA H100 80GB HBM3")
    pcie, _ = policy.for_model("NVIDIA H100 PCIe")
    assert (sxm.power_limit_watts, sxm.shutdown_temp_celsius) == (700, 95)
    # H100 PCIe inherits the H100 slowdown threshold and overrides power and shutdown.
    assert (pcie.power_limit_watts, pcie.shutdown_temp_celsius) == (350, 92)
    assert pcie.slowdown_temp_celsius == sxm.slowdown_temp_celsius == 89
    a100_pcie, _ = policy.for_model("NVIDIA A100-PCIE-40GB")
    assert a100_pcie.power_limit_watts == 250 and a100_pcie.max_sm_clock_mhz == 1410
    unknown, _ = policy.for_model("Some Future GPU")
    assert unknown == policy.default_limits
    assert unknown.power_limit_watts is None


def test_overlay_changes_only_what_it_names(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(
        "thresholds:\n  gpu_temperature: {margin_celsius: 5}\n"
        "models:\n  H100:\n    thresholds:\n      power_limit_reduced: {points: 0}\n"
    )
    policy = load_policy(path)
    base = load_policy(None)
    assert policy.thresholds.gpu_temperature.margin_celsius == 5
    assert policy.thresholds.gpu_temperature.points_at_limit == 40
    assert policy.weights == base.weights
    _, h100 = policy.for_model("NVIDIA H100 80GB HBM3")
    assert h100.power_limit_reduced.points == 0
    assert h100.power_limit_reduced.full == base.thresholds.power_limit_reduced.full
    h100_limits, _ = policy.for_model("NVIDIA H100 80GB HBM3")
    assert h100_limits.power_limit_watts == 700  # limits kept from the shipped H100 entry
    _, other = policy.for_model("NVIDIA A100-SXM4-80GB")
    assert other.power_limit_reduced.points == base.thresholds.power_limit_reduced.points


def test_overlaying_one_model_limit_keeps_the_others(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("models:\n  H100:\n    limits: {power_limit_watts: 600}\n  MyGPU: {}\n")
    limits, _ = load_policy(path).for_model("NVIDIA H100 80GB HBM3")
    assert limits.power_limit_watts == 600
    assert limits.shutdown_temp_celsius == 95 and limits.max_sm_clock_mhz == 1980


def test_empty_overlay_is_the_defaults(tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("")
    assert load_policy(path).thresholds == load_policy(None).thresholds


@pytest.mark.parametrize(
    ("text", "key", "fragment"),
    [
        ("weights: {thermal: 0.5}\n", "weights", "sum to 1.25"),
        ("weights: {thermal: 1.5}\n", "weights.thermal", "allowed: 0 to 1"),
        ("weights: {thermle: 0.25}\n", "weights.thermle", "unknown key (allowed: memory,"),
        ("grades: {good: 90}\n", "grades.good", "allowed: 0 to below 90"),
        ("grades: {good: 95}\n", "grades.good", "allowed: 0 to 90"),
        ("caps: {xid_critical: 50}\n", "caps.xid_critical", "allowed: 0 to 39"),
        ("grades: {poor: 10}\n", "caps.ecc_uncorrectable_volatile", "allowed: 0 to 9"),
        (
            "thresholds: {hw_slowdown: {full: 2}}\n",
            "thresholds.hw_slowdown.full",
            "allowed: 0 to 1",
        ),
        (
            "thresholds: {ecc_correctable_rate: {start: 60}}\n",
            "thresholds.ecc_correctable_rate.full",
            "must be above start",
        ),
        (
            "thresholds: {gpu_temperature: {points_at_critical: 10}}\n",
            "thresholds.gpu_temperature.points_at_critical",
            "allowed: 40 to 100",
        ),
        ("thresholds: {load_utilization: -1}\n", "thresholds.load_utilization", "0 to 1"),
        ("windows: {xid_seconds: 1}\n", "windows.xid_seconds", "allowed: 10 to 604800"),
        ("hard_limits: {retired_pages: 0}\n", "hard_limits.retired_pages", "1 to 1e+06"),
        (
            "xid: {critical: {48: gpu}}\n",
            "xid.critical.48",
            "allowed: memory, performance, power, reliability, thermal",
        ),
        ("xid: {critical: {0: memory}}\n", "xid.critical.0", "allowed: 1 to 1023"),
        (
            "xid: {penalised: {48: {dimension: memory, points_per_event: 1, max_points: 1}}}\n",
            "xid.penalised.48",
            "either critical or penalised",
        ),
        (
            "xid: {penalised: {94: {dimension: memory, points_per_event: 200, max_points: 1}}}\n",
            "xid.penalised.94.points_per_event",
            "allowed: 0 to 100",
        ),
        (
            "models: {H100: {limits: {pcie_max_generation: 9}}}\n",
            "models.H100.limits.pcie_max_generation",
            "allowed: 1 to 7",
        ),
        (
            "models: {X: {limits: {slowdown_temp_celsius: 90, shutdown_temp_celsius: 80}}}\n",
            "models.X.limits.shutdown_temp_celsius",
            "allowed: 90 to 150",
        ),
        (
            "models: {L40S: {thresholds: {sm_clock_low: {points: 101}}}}\n",
            "models.L40S.thresholds.sm_clock_low.points",
            "allowed: 0 to 100",
        ),
        ("models: {L40S: {limit: {}}}\n", "models.L40S.limit", "unknown key"),
        # one XID spelled twice: the last one silently won
        ("weights: {thermal: 0.25}\nweights: {}\n", "", "duplicate key 'weights'"),
        (
            "xid: {critical: {74: reliability}, penalised: {'63': {dimension: memory, "
            "points_per_event: 1, max_points: 5}, 63: {dimension: memory, "
            "points_per_event: 9, max_points: 9}}}\n",
            "xid.penalised.63",
            "XID 63 is given twice (as '63' and 63)",
        ),
        ("thresholds: {row_remap_pending: {points: yes}}\n", "", "expected a number"),
        ("tresholds: {}\n", "tresholds", "unknown key (allowed: caps, default_limits,"),
    ],
)
def test_bad_values_name_file_key_and_allowed_range(
    tmp_path: Path, text: str, key: str, fragment: str
) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_policy(path)
    message = str(info.value)
    assert message.startswith(f"{path}: {key}"), message
    assert fragment in message, message


def test_shipped_file_validates_without_an_overlay() -> None:
    """The defaults parse on their own (all keys present, no base to fall back on)."""
    raw = yaml.safe_load(DEFAULT_POLICY_PATH.read_text())
    raw["thresholds"].pop("nvlink_crc_rate")
    from gpu_health.health.policy import parse_policy

    with pytest.raises(ConfigError, match=r"thresholds\.nvlink_crc_rate: missing key"):
        parse_policy(raw, "defaults.yaml")


def test_bad_policy_file_is_one_line_through_the_cli_helpers(tmp_path: Path) -> None:
    """What an operator sees: one line naming the key, no traceback."""
    path = tmp_path / "policy.yaml"
    path.write_text("weights: {memory: 2}\n")
    code = (
        "import sys\n"
        "from gpu_health.cli_support import run_main\n"
        "from gpu_health.health.policy import load_policy\n"
        f"sys.exit(run_main(lambda: (load_policy({str(path)!r}), 0)[1]))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "weights.memory: 2 is out of range (allowed: 0 to 1)" in lines[0]
