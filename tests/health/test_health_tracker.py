"""The stateful tracker: real H100 trace, backend-shaped samples, windowed rates, bounded memory."""

from __future__ import annotations

import dataclasses

import pytest

from gpu_health.health.model import HealthTracker, score_sample
from gpu_health.health.policy import load_policy
from gpu_health.health.result import HealthResult
from gpu_health.health.windows import ANCHORS, CounterWindow
from gpu_health.telemetry.readings import GpuIdentity, GpuSample
from tests.health.test_health_support import (
    dcgm_identity,
    dcgm_sample,
    h100_identity,
    h100_sample,
    l40s_identity,
    l40s_sample,
    sim_identity,
    sim_sample,
    trace_rows,
)

POLICY = load_policy(None)


def _points(result: HealthResult, reason: str) -> float:
    return sum(
        p.points for p in result.penalties if p.reason == reason and p.dimension != "overall"
    )


# --------------------------------------------------------------------------- the real H100


@pytest.mark.parametrize("power_column", ["power_w", "power_instant_w"])
def test_h100_load_trace_scores_healthy_on_every_row(power_column: str) -> None:
    """700 W at the cap with SW power cap set, 71 °C: normal under load, not a fault."""
    tracker = HealthTracker(POLICY)
    identity = h100_identity()
    seen = {"idle": 0, "load": 0, "cooldown": 0}
    for row in trace_rows():
        sample = h100_sample(row, power_column)
        tracked = tracker.update(identity, sample)
        one_shot = score_sample(identity, sample, POLICY)
        floor = 95 if row["phase"] == "idle" else 90
        for result in (tracked, one_shot):
            assert result.overall >= floor, (row, result)
            assert result.grade == "excellent"
        seen[row["phase"]] += 1
    assert seen["load"] > 700 and seen["idle"] >= 50  # the whole trace was scored
    assert max(float(r["power_w"]) for r in trace_rows()) > 700  # it really ran at the cap


def test_h100_nvml_fixture_is_perfect_and_unsupported_fields_cost_nothing() -> None:
    sample = h100_sample()
    assert sample.fan_speed_ratio is None and sample.retired_pages_single_bit is None
    assert sample.nvlink_errors == {}
    result = score_sample(h100_identity(), sample, POLICY)
    assert result.overall == 100 and result.penalties == []


def test_limits_come_from_the_device_before_the_policy() -> None:
    """A device that reports a lower slowdown threshold is judged against it."""
    identity = dataclasses.replace(h100_identity(), slowdown_temp_celsius=80.0)
    sample = dataclasses.replace(h100_sample(), temperature_gpu_celsius=80.0)
    device = score_sample(identity, sample, POLICY)
    policy_only = score_sample(
        dataclasses.replace(identity, slowdown_temp_celsius=None), sample, POLICY
    )
    assert _points(device, "gpu_temperature") == 40  # at the device's own slowdown
    assert _points(policy_only, "gpu_temperature") == pytest.approx(4)  # 89 - 10 = 79 start


# --------------------------------------------------------------------------- every backend


@pytest.mark.parametrize(
    ("identity", "make"),
    [
        (h100_identity(), lambda t: dataclasses.replace(h100_sample(), timestamp=t)),
        (l40s_identity(), l40s_sample),
        (dcgm_identity(), dcgm_sample),
        (sim_identity(), sim_sample),
    ],
    ids=["nvml-h100", "nvml-l40s-pcie-fan", "dcgm-a100", "sim-h200"],
)
def test_healthy_samples_of_every_backend_shape_score_excellent(
    identity: GpuIdentity, make: object
) -> None:
    tracker = HealthTracker(POLICY)
    for step in range(30):
        result = tracker.update(identity, make(step * 10.0))  # type: ignore[operator]
        assert result.overall >= 90, result
        assert set(result.dimensions) == set(POLICY.weights)


def test_l40s_uses_its_model_defaults_when_the_device_gives_none() -> None:
    limits, _ = POLICY.for_model(l40s_identity().model)
    assert limits.power_limit_watts == 350
    capped = dataclasses.replace(l40s_sample(), power_limit_watts=175.0, power_watts=170.0)
    result = score_sample(l40s_identity(), capped, POLICY)
    assert _points(result, "power_limit_reduced") == 15  # half the default limit


def test_dcgm_power_violation_time_is_normal_but_thermal_is_not() -> None:
    tracker = HealthTracker(POLICY)
    identity = dcgm_identity()
    result = None
    for step in range(31):
        sample = dcgm_sample(step * 10.0)
        sample.clock_event_seconds = {
            "power": 120.0 + step * 10.0,  # capped the whole time: normal
            "thermal": step * 1.0,  # 10 % of the time thermally limited
            "board_limit": 0.0,
        }
        result = tracker.update(identity, sample)
    assert result is not None
    assert _points(result, "thermal_slowdown") == pytest.approx(24, abs=0.5)
    assert all(p.reason != "power_over_limit" for p in result.penalties)


# --------------------------------------------------------------------------- windowed rates


def _feed(tracker: HealthTracker, identity: GpuIdentity, samples: list[GpuSample]) -> HealthResult:
    result = None
    for sample in samples:
        result = tracker.update(identity, sample)
    assert result is not None
    return result


def test_corrected_ecc_rate_is_errors_in_the_last_hour() -> None:
    tracker = HealthTracker(POLICY)
    identity = h100_identity()
    base = h100_sample()
    # 25.5 corrected errors per hour for two hours, one sample a minute.
    samples = [
        dataclasses.replace(base, timestamp=m * 60.0, ecc_corrected_volatile=round(m * 25.5 / 60))
        for m in range(121)
    ]
    result = _feed(tracker, identity, samples)
    assert _points(result, "ecc_correctable_rate") == pytest.approx(15, abs=0.7)
    # Then an hour and a bit with no new errors: the rate falls back to zero.
    last = samples[-1].ecc_corrected_volatile
    quiet = [
        dataclasses.replace(base, timestamp=(121 + m) * 60.0, ecc_corrected_volatile=last)
        for m in range(62)
    ]
    assert _points(_feed(tracker, identity, quiet), "ecc_correctable_rate") == 0


def test_counter_reset_is_not_a_negative_rate() -> None:
    window = CounterWindow(3600)
    for t, value in [(0, 100), (60, 110), (120, 3), (180, 5)]:
        window.add(t, value)
    assert window.increase() == 10 + 3 + 2


def test_pcie_replays_are_judged_against_the_link_budget() -> None:
    tracker = HealthTracker(POLICY)
    identity = h100_identity()  # Gen5 x16: 31 replays/min expected
    base = h100_sample()
    samples = [
        dataclasses.replace(base, timestamp=s * 10.0, pcie_replays=s * 10 * 310 // 60)
        for s in range(31)
    ]
    result = _feed(tracker, identity, samples)  # 310/min = 10x the budget
    assert _points(result, "pcie_replay_rate") == pytest.approx(40, abs=1)
    modest = [
        dataclasses.replace(base, timestamp=s * 10.0, pcie_replays=s * 10 * 20 // 60)
        for s in range(31)
    ]
    assert _points(_feed(HealthTracker(POLICY), identity, modest), "pcie_replay_rate") == 0


def test_critical_xid_caps_for_a_day_then_ages_out() -> None:
    tracker = HealthTracker(POLICY)
    identity = h100_identity()
    base = h100_sample()
    first = tracker.update(identity, dataclasses.replace(base, timestamp=0.0))
    assert first.overall == 100
    hit = tracker.update(identity, dataclasses.replace(base, timestamp=600.0, xid_counts={79: 1}))
    assert hit.overall == POLICY.caps.xid_critical and hit.grade == "critical"
    result = hit
    for step in range(2, 6 * 24 + 4):  # every 10 minutes for a day and a bit
        result = tracker.update(
            identity, dataclasses.replace(base, timestamp=step * 600.0, xid_counts={79: 1})
        )
        if step * 600.0 < 600.0 + 86400 - 0.5 * 3600:
            assert result.grade == "critical", step
    assert result.overall == 100  # the event left the 24 h window


def test_old_xids_seen_at_start_are_not_recent() -> None:
    sample = dataclasses.replace(
        h100_sample(), timestamp=200_000.0, xid_counts={48: 2}, last_xid_timestamp=10_000.0
    )
    assert HealthTracker(POLICY).update(h100_identity(), sample).overall == 100
    recent = dataclasses.replace(sample, last_xid_timestamp=199_000.0)
    assert HealthTracker(POLICY).update(h100_identity(), recent).grade == "critical"


def test_throttle_fraction_from_the_bitmask() -> None:
    """HW thermal slowdown on one sample in ten over five minutes: 10 % -> 24 points."""
    tracker = HealthTracker(POLICY)
    identity = h100_identity()
    base = h100_sample()
    samples = [
        dataclasses.replace(
            base, timestamp=s * 1.0, clock_event_reasons=0x40 if s % 10 == 0 else 0x4
        )
        for s in range(600)
    ]
    result = _feed(tracker, identity, samples)
    assert _points(result, "thermal_slowdown") == pytest.approx(24, abs=1.5)
    assert _points(result, "hw_slowdown") == 0


def test_power_over_the_cap_counts_when_sustained_not_as_spikes() -> None:
    identity = h100_identity()
    base = h100_sample()
    spiky = [
        dataclasses.replace(base, timestamp=s * 0.1, power_watts=900.0 if s % 10 == 0 else 680.0)
        for s in range(600)
    ]
    assert _points(_feed(HealthTracker(POLICY), identity, spiky), "power_over_limit") == 0
    sustained = [dataclasses.replace(s, power_watts=840.0) for s in spiky]  # 1.2x the limit
    points = _points(_feed(HealthTracker(POLICY), identity, sustained), "power_over_limit")
    assert points == pytest.approx(22.5, abs=0.1)


# --------------------------------------------------------------------------- state handling


def test_lost_gpu_scores_zero_and_keeps_its_history() -> None:
    tracker = HealthTracker(POLICY)
    identity = h100_identity()
    tracker.update(identity, dataclasses.replace(h100_sample(), timestamp=0.0, xid_counts={94: 1}))
    lost = tracker.update(identity, GpuSample(timestamp=10.0, up=False))
    assert lost.overall == 0 and lost.grade == "critical"
    assert any(p.reason == "gpu_lost" and p.dimension == "overall" for p in lost.penalties)
    back = tracker.update(
        identity, dataclasses.replace(h100_sample(), timestamp=20.0, xid_counts={94: 1})
    )
    assert _points(back, "xid_94") == 40  # still remembered after the GPU came back


def test_time_going_backwards_starts_the_gpu_over() -> None:
    tracker = HealthTracker(POLICY)
    identity = h100_identity()
    tracker.update(identity, dataclasses.replace(h100_sample(), timestamp=1000.0))
    tracker.update(
        identity, dataclasses.replace(h100_sample(), timestamp=1010.0, pcie_replays=10**6)
    )
    again = tracker.update(identity, dataclasses.replace(h100_sample(), timestamp=0.0))
    assert again.overall == 100


def test_gpus_are_tracked_separately() -> None:
    tracker = HealthTracker(POLICY)
    a, b = h100_identity(), dataclasses.replace(h100_identity(), uuid="GPU-other", index=1)
    tracker.update(a, dataclasses.replace(h100_sample(), timestamp=0.0, xid_counts={79: 1}))
    assert tracker.update(b, dataclasses.replace(h100_sample(), timestamp=0.0)).overall == 100
    tracker.forget(a.uuid)
    assert tracker.window_sizes(a.uuid) == {}


def test_windows_stay_bounded_however_long_the_exporter_runs() -> None:
    tracker = HealthTracker(POLICY)
    identity = dcgm_identity()
    scored_codes = set(POLICY.xid.critical) | set(POLICY.xid.penalised)
    for step in range(20_000):  # 10 Hz for over half an hour, every counter moving
        sample = dcgm_sample(step * 0.1)
        sample.ecc_corrected_volatile = step
        sample.pcie_replays = step
        sample.clock_event_reasons = 0x40 if step % 3 else 0x4
        sample.clock_event_seconds = {"thermal": step * 0.01, "board_limit": step * 0.001}
        sample.nvlink_errors = {(link, "crc_flit"): step for link in range(18)}
        sample.xid_counts = {code: step // 100 for code in range(1, 160)}
        tracker.update(identity, sample)
    sizes = tracker.window_sizes(identity.uuid)
    assert max(sizes.values()) <= ANCHORS + 2
    # Only XID codes the policy scores get a window: memory does not grow with odd codes.
    assert len(sizes) <= 13 + len(scored_codes)


def test_zero_limits_from_a_backend_mean_unknown_not_zero() -> None:
    identity = dataclasses.replace(
        h100_identity(), slowdown_temp_celsius=0.0, memory_max_temp_celsius=0.0
    )
    result = score_sample(identity, h100_sample(), POLICY)
    assert result.overall == 100  # the H100 policy limits (89 / 95 °C) apply instead
