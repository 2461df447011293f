"""The scoring rules: one table row per penalty, the hard-fault caps, and property tests."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpu_health.health.model import score_sample
from gpu_health.health.policy import Policy, load_policy
from gpu_health.health.result import DIMENSIONS, HealthResult
from gpu_health.health.rules import score
from gpu_health.health.signals import Signals, expected_pcie_replays_per_minute
from gpu_health.telemetry.readings import GpuSample
from gpu_health.telemetry.xids import RESET_REQUIRED_XIDS
from tests.health.test_health_support import h100_identity

POLICY: Policy = load_policy(None)
_, H100 = POLICY.for_model("NVIDIA H100 80GB HBM3")
LIMITS = {
    "slowdown_temp_celsius": 89.0,
    "shutdown_temp_celsius": 95.0,
    "memory_max_temp_celsius": 95.0,
}


def _score(**fields: Any) -> HealthResult:
    return score(Signals(**{**LIMITS, **fields}), POLICY, H100)


def _points(result: HealthResult, dimension: str, reason: str) -> float:
    found = [p.points for p in result.penalties if (p.dimension, p.reason) == (dimension, reason)]
    assert len(found) <= 1
    return found[0] if found else 0.0


def test_a_gpu_with_nothing_known_is_perfect() -> None:
    result = _score()
    assert result.overall == 100 and result.penalties == [] and result.grade == "excellent"
    assert result.dimensions == dict.fromkeys(DIMENSIONS, 100.0)


# Each row: the signal, its dimension and reason, and the points the shipped policy charges.
PENALTY_TABLE: list[tuple[dict[str, Any], str, str, float]] = [
    ({"gpu_temperature_celsius": 79}, "thermal", "gpu_temperature", 0),
    ({"gpu_temperature_celsius": 84}, "thermal", "gpu_temperature", 20),  # halfway to slowdown
    ({"gpu_temperature_celsius": 89}, "thermal", "gpu_temperature", 40),  # at slowdown
    ({"gpu_temperature_celsius": 92}, "thermal", "gpu_temperature", 70),  # halfway to shutdown
    ({"gpu_temperature_celsius": 99}, "thermal", "gpu_temperature", 100),
    ({"memory_temperature_celsius": 90}, "thermal", "memory_temperature", 20),
    ({"memory_temperature_celsius": 97.5}, "thermal", "memory_temperature", 70),
    ({"thermal_slowdown_fraction": 0.1}, "thermal", "thermal_slowdown", 24),
    ({"hw_slowdown_fraction": 0.05}, "performance", "hw_slowdown", 10),
    ({"power_brake_fraction": 0.5}, "power", "power_brake", 50),
    ({"board_limit_fraction": 0.275}, "performance", "board_limit", 5),
    ({"reliability_limit_fraction": 0.5}, "performance", "reliability_limit", 10),
    ({"power_ratio": 1.0}, "power", "power_over_limit", 0),  # at the cap: normal
    ({"power_ratio": 1.15}, "power", "power_over_limit", 15),
    ({"power_limit_reduction": 0.3}, "power", "power_limit_reduced", 7.5),
    (
        {"sm_clock_ratio": 0.55, "utilization": 0.95, "benign_clock_reason": False},
        "performance",
        "sm_clock_low",
        10,
    ),
    (
        {"sm_clock_ratio": 0.55, "utilization": 0.95, "benign_clock_reason": True},
        "performance",
        "sm_clock_low",
        0,
    ),
    (
        {"sm_clock_ratio": 0.2, "utilization": 0.1, "benign_clock_reason": False},
        "performance",
        "sm_clock_low",
        0,
    ),
    ({"pcie_width_loss": 0.5}, "performance", "pcie_link_width_degraded", 30),
    (
        {"pcie_generation_loss": 0.2, "utilization": 0.9},
        "performance",
        "pcie_link_gen_degraded",
        6,
    ),
    (
        {"pcie_generation_loss": 0.2, "utilization": 0.0},
        "performance",
        "pcie_link_gen_degraded",
        0,
    ),
    ({"pcie_replay_ratio": 5.5}, "reliability", "pcie_replay_rate", 20),
    ({"nvlink_crc_per_second": 550}, "reliability", "nvlink_crc_rate", 15),
    ({"nvlink_link_errors": 5}, "reliability", "nvlink_link_errors", 15),
    ({"ecc_correctable_rate": 25.5}, "memory", "ecc_correctable_rate", 15),
    ({"ecc_uncorrectable_lifetime": 2}, "memory", "ecc_uncorrectable_lifetime", 15),
    ({"remapped_rows_uncorrectable": 4}, "memory", "remapped_rows_uncorrectable", 15),
    ({"remapped_rows_correctable": 32}, "memory", "remapped_rows_correctable", 5),
    ({"row_remap_pending": True}, "memory", "row_remap_pending", 15),
    ({"retired_pages": 21}, "memory", "retired_pages", 13.33),
    ({"retired_pages_pending": True}, "memory", "retired_pages_pending", 15),
    ({"xid_events": {94: 1}}, "memory", "xid_94", 40),
    ({"xid_events": {94: 3}}, "memory", "xid_94", 60),
    ({"xid_events": {63: 1}}, "memory", "xid_63", 5),
    ({"xid_events": {92: 1}}, "memory", "xid_92", 10),
    ({"xid_events": {92: 4}}, "memory", "xid_92", 30),
    ({"xid_events": {32: 1}}, "reliability", "xid_32", 5),
    ({"xid_events": {13: 5, 31: 9, 43: 1}}, "reliability", "xid_13", 0),  # application faults
]


@pytest.mark.parametrize(
    ("fields", "dimension", "reason", "points"),
    PENALTY_TABLE,
    ids=[f"{row[2]}-{i}" for i, row in enumerate(PENALTY_TABLE)],
)
def test_each_penalty(fields: dict[str, Any], dimension: str, reason: str, points: float) -> None:
    result = _score(**fields)
    assert _points(result, dimension, reason) == pytest.approx(points, abs=0.01)
    assert result.dimensions[dimension] == pytest.approx(100 - points, abs=0.01)
    others = [p for p in result.penalties if p.reason != reason]
    assert others == []
    weighted = POLICY.weights[dimension] * (100 - points)
    assert result.overall == pytest.approx(100 - POLICY.weights[dimension] * 100 + weighted, 0.01)


HARD_FAULTS: list[tuple[dict[str, Any], str, str, float]] = [
    ({"up": False}, "gpu_lost", "reliability", POLICY.caps.gpu_lost),
    (
        {"ecc_uncorrectable_volatile": 1},
        "ecc_uncorrectable_volatile",
        "memory",
        POLICY.caps.ecc_uncorrectable_volatile,
    ),
    ({"row_remap_failed": True}, "row_remap_failure", "memory", POLICY.caps.row_remap_failure),
    (
        {"remapped_rows_uncorrectable": 512},
        "remapped_rows_exhausted",
        "memory",
        POLICY.caps.remapped_rows_exhausted,
    ),
    ({"retired_pages": 63}, "retired_pages_limit", "memory", POLICY.caps.retired_pages_limit),
    *[
        ({"xid_events": {code: 1}}, f"xid_{code}", dimension, POLICY.caps.xid_critical)
        for code, dimension in sorted(POLICY.xid.critical.items())
    ],
]


@pytest.mark.parametrize(
    ("fields", "reason", "dimension", "cap"), HARD_FAULTS, ids=[r[1] for r in HARD_FAULTS]
)
def test_hard_fault_caps_overall_in_the_critical_band(
    fields: dict[str, Any], reason: str, dimension: str, cap: float
) -> None:
    result = _score(**fields)
    assert result.overall == cap
    assert result.grade == "critical"
    assert result.dimensions[dimension] == 0
    uncapped = 100 - 100 * POLICY.weights[dimension]
    if reason == "gpu_lost":  # no readings at all: every dimension is empty, not healthy
        assert set(result.dimensions.values()) == {0}
        assert {p.dimension for p in result.penalties if p.reason == reason} >= set(
            result.dimensions
        )
        uncapped = 0
    assert _points(result, "overall", reason) == pytest.approx(uncapped - cap)


def test_the_critical_xid_set_follows_the_reference() -> None:
    """Every code the GPU needs a reset for caps (the list the alerts page and the state model
    call failed); 63 and 94 are precursors / contained."""
    assert set(POLICY.xid.critical) == set(RESET_REQUIRED_XIDS)
    assert 63 not in POLICY.xid.critical and 94 not in POLICY.xid.critical
    assert {63, 94} <= set(POLICY.xid.penalised)


def test_two_caps_report_what_each_alone_removes() -> None:
    result = _score(ecc_uncorrectable_volatile=1, row_remap_failed=True)
    assert result.overall == min(
        POLICY.caps.ecc_uncorrectable_volatile, POLICY.caps.row_remap_failure
    )
    uncapped = 100 - 30  # memory emptied (by both)
    assert _points(result, "overall", "ecc_uncorrectable_volatile") == pytest.approx(
        uncapped - POLICY.caps.ecc_uncorrectable_volatile
    )
    assert _points(result, "overall", "row_remap_failure") == pytest.approx(
        uncapped - POLICY.caps.row_remap_failure
    )


@pytest.mark.parametrize(
    ("generation", "width", "expected"), [(3, 16, 8), (4, 16, 16), (5, 16, 31), (4, 1, 1)]
)
def test_expected_pcie_replay_rate_matches_dcgm(generation: int, width: int, expected: int) -> None:
    assert expected_pcie_replays_per_minute(generation, width) == expected


# --------------------------------------------------------------------------- properties

_fraction = st.one_of(st.none(), st.floats(0, 1))
_count = st.one_of(st.none(), st.floats(0, 2_000))
_flag = st.one_of(st.none(), st.booleans())

SIGNALS = st.builds(
    Signals,
    up=st.booleans(),
    gpu_temperature_celsius=st.one_of(st.none(), st.floats(0, 130)),
    slowdown_temp_celsius=st.one_of(st.none(), st.floats(60, 100)),
    shutdown_temp_celsius=st.one_of(st.none(), st.floats(60, 110)),
    memory_temperature_celsius=st.one_of(st.none(), st.floats(0, 130)),
    memory_max_temp_celsius=st.one_of(st.none(), st.floats(60, 110)),
    thermal_slowdown_fraction=_fraction,
    hw_slowdown_fraction=_fraction,
    power_brake_fraction=_fraction,
    board_limit_fraction=_fraction,
    reliability_limit_fraction=_fraction,
    power_ratio=st.one_of(st.none(), st.floats(0, 3)),
    power_limit_reduction=_fraction,
    sm_clock_ratio=st.one_of(st.none(), st.floats(0, 1.2)),
    utilization=_fraction,
    benign_clock_reason=_flag,
    pcie_width_loss=_fraction,
    pcie_generation_loss=_fraction,
    pcie_replay_ratio=st.one_of(st.none(), st.floats(0, 100)),
    nvlink_crc_per_second=st.one_of(st.none(), st.floats(0, 5_000)),
    nvlink_link_errors=_count,
    xid_events=st.dictionaries(
        st.sampled_from([13, 31, 32, 46, 48, 62, 63, 64, 74, 79, 92, 94, 95, 109, 143]),
        st.integers(1, 10),
        max_size=4,
    ),
    ecc_uncorrectable_volatile=_count,
    ecc_uncorrectable_lifetime=_count,
    ecc_correctable_rate=_count,
    row_remap_pending=_flag,
    row_remap_failed=_flag,
    remapped_rows_uncorrectable=_count,
    remapped_rows_correctable=_count,
    retired_pages=_count,
    retired_pages_pending=_flag,
)

#: (field, how to make it worse). None counts as "unknown", which may only score higher.
WORSEN = {
    "gpu_temperature_celsius": lambda v, d: (v or 0) + d * 40,
    "memory_temperature_celsius": lambda v, d: (v or 0) + d * 40,
    "thermal_slowdown_fraction": lambda v, d: min(1, (v or 0) + d),
    "hw_slowdown_fraction": lambda v, d: min(1, (v or 0) + d),
    "power_brake_fraction": lambda v, d: min(1, (v or 0) + d),
    "board_limit_fraction": lambda v, d: min(1, (v or 0) + d),
    "reliability_limit_fraction": lambda v, d: min(1, (v or 0) + d),
    "power_ratio": lambda v, d: (v or 0) + d,
    "power_limit_reduction": lambda v, d: min(1, (v or 0) + d),
    "sm_clock_ratio": lambda v, d: max(0, (1 if v is None else v) - d),
    "pcie_width_loss": lambda v, d: min(1, (v or 0) + d),
    "pcie_generation_loss": lambda v, d: min(1, (v or 0) + d),
    "pcie_replay_ratio": lambda v, d: (v or 0) + d * 20,
    "nvlink_crc_per_second": lambda v, d: (v or 0) + d * 1000,
    "nvlink_link_errors": lambda v, d: (v or 0) + d * 20,
    "ecc_uncorrectable_volatile": lambda v, d: (v or 0) + d * 3,
    "ecc_uncorrectable_lifetime": lambda v, d: (v or 0) + d * 10,
    "ecc_correctable_rate": lambda v, d: (v or 0) + d * 100,
    "remapped_rows_uncorrectable": lambda v, d: (v or 0) + d * 600,
    "remapped_rows_correctable": lambda v, d: (v or 0) + d * 100,
    "retired_pages": lambda v, d: (v or 0) + d * 100,
    "row_remap_pending": lambda v, d: True,
    "row_remap_failed": lambda v, d: True,
    "retired_pages_pending": lambda v, d: True,
    "up": lambda v, d: False,
}


def _all_scores(result: HealthResult) -> list[float]:
    return [result.overall, *result.dimensions.values()]


@settings(max_examples=300, deadline=None)
@given(SIGNALS)
def test_every_score_is_within_0_and_100(signals: Signals) -> None:
    result = score(signals, POLICY)
    assert all(0 <= value <= 100 for value in _all_scores(result))
    assert all(p.points >= 0 for p in result.penalties)
    assert result.grade == POLICY.grade(result.overall)


@pytest.mark.parametrize("name", sorted(WORSEN))
@settings(max_examples=150, deadline=None)
@given(signals=SIGNALS, by=st.floats(0, 1))
def test_no_score_rises_when_a_bad_signal_worsens(signals: Signals, name: str, by: float) -> None:
    before = score(signals, POLICY)
    worse = dataclasses.replace(signals, **{name: WORSEN[name](getattr(signals, name), by)})
    after = score(worse, POLICY)
    for old, new in zip(_all_scores(before), _all_scores(after), strict=True):
        assert new <= old + 1e-9, (name, before, after)


@settings(max_examples=200, deadline=None)
@given(SIGNALS, st.sampled_from([13, 32, 46, 48, 63, 64, 79, 94, 95]), st.integers(1, 5))
def test_more_xid_events_never_raise_a_score(signals: Signals, code: int, more: int) -> None:
    before = score(signals, POLICY)
    events = dict(signals.xid_events)
    events[code] = events.get(code, 0) + more
    after = score(dataclasses.replace(signals, xid_events=events), POLICY)
    for old, new in zip(_all_scores(before), _all_scores(after), strict=True):
        assert new <= old + 1e-9


@settings(max_examples=200, deadline=None)
@given(SIGNALS, st.sampled_from(range(len(HARD_FAULTS))))
def test_the_cap_holds_for_every_hard_fault_whatever_else(signals: Signals, which: int) -> None:
    fields, reason, _dimension, cap = HARD_FAULTS[which]
    faulty = dataclasses.replace(signals, **fields)
    result = score(faulty, POLICY)
    assert result.overall <= cap
    assert result.grade == "critical"
    assert any(p.dimension == "overall" and p.reason == reason for p in result.penalties)


@settings(max_examples=200, deadline=None)
@given(SIGNALS)
def test_overall_is_the_weighted_sum_unless_capped(signals: Signals) -> None:
    result = score(signals, POLICY)
    weighted = sum(POLICY.weights[d] * result.dimensions[d] for d in DIMENSIONS)
    if any(p.dimension == "overall" for p in result.penalties):
        assert result.overall <= weighted + 0.01
    else:
        assert result.overall == pytest.approx(weighted, abs=0.02)


@settings(max_examples=60, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["thermal", "memory", "power", "performance", "reliability"]),
        st.floats(0, 1),
        min_size=1,
    )
)
def test_weights_that_do_not_sum_to_one_are_rejected(weights: dict[str, float]) -> None:
    from gpu_health.errors import ConfigError
    from gpu_health.health.policy import parse_policy

    merged = {**POLICY.weights, **weights}
    total = sum(merged.values())
    try:
        policy = parse_policy({"weights": weights}, "w.yaml", base=POLICY)
    except ConfigError as exc:
        assert abs(total - 1) > 1e-6
        assert "weights" in str(exc)
    else:
        assert abs(sum(policy.weights.values()) - 1) <= 1e-6


# Raw-sample monotonicity: the same property through the tracker's one-shot path.
SAMPLE_WORSEN = {
    "temperature_gpu_celsius": lambda v, d: v + d * 30,
    "temperature_memory_celsius": lambda v, d: v + d * 30,
    "power_watts": lambda v, d: v + d * 300,
    "power_limit_watts": lambda v, d: v * (1 - d / 2),
    "sm_clock_hertz": lambda v, d: v * (1 - d),
    "clock_event_reasons": lambda v, d: v | (0x8 if d < 0.25 else 0x20 if d < 0.5 else 0xC0),
    "ecc_uncorrected_volatile": lambda v, d: v + round(d * 2),
    "ecc_uncorrected_aggregate": lambda v, d: v + round(d * 10),
    "remapped_rows_uncorrectable": lambda v, d: v + round(d * 600),
    "remapped_rows_correctable": lambda v, d: v + round(d * 100),
    "pcie_link_width": lambda v, d: max(1, round(v * (1 - d))),
    "pcie_link_generation": lambda v, d: max(1, round(v * (1 - d))),
    "xid_counts": lambda v, d: {**v, 79 if d > 0.5 else 94: 1},
}


@pytest.mark.parametrize("name", sorted(SAMPLE_WORSEN))
@settings(max_examples=80, deadline=None)
@given(
    by=st.floats(0, 1),
    temperature=st.floats(20, 95),
    utilization=st.floats(0, 1),
    reasons=st.sampled_from([0, 1, 4, 5]),
)
def test_no_score_rises_when_a_raw_reading_worsens(
    name: str, by: float, temperature: float, utilization: float, reasons: int
) -> None:
    identity = h100_identity()
    base = GpuSample(
        timestamp=0.0,
        temperature_gpu_celsius=temperature,
        temperature_memory_celsius=temperature,
        power_watts=600.0,
        power_limit_watts=700.0,
        sm_clock_hertz=1_700e6,
        utilization_gpu_ratio=utilization,
        clock_event_reasons=reasons,
        ecc_uncorrected_volatile=0,
        ecc_uncorrected_aggregate=0,
        remapped_rows_uncorrectable=0,
        remapped_rows_correctable=0,
        pcie_link_width=16,
        pcie_link_generation=5,
        xid_counts={},
    )
    worse = dataclasses.replace(base, **{name: SAMPLE_WORSEN[name](getattr(base, name), by)})
    before = score_sample(identity, base, POLICY)
    after = score_sample(identity, worse, POLICY)
    for old, new in zip(_all_scores(before), _all_scores(after), strict=True):
        assert new <= old + 1e-9, (name, before, after)
