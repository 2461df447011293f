"""The stateful side of the health model: per-GPU windows that turn samples into signals.

A :class:`HealthTracker` lives as long as the exporter (or a replay / backfill run). It keeps,
per GPU uuid, a handful of :class:`~gpu_health.health.windows.CounterWindow` objects —
each bounded to a few dozen points — so rates such as "corrected ECC errors in the last hour"
or "share of the last five minutes spent thermally throttled" come from the exporter's own
memory, not from Prometheus. Time is the samples' timestamps, so replayed or simulated history
scores the same way live readings do.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from gpu_health.health.policy import Limits, Policy, Thresholds
from gpu_health.health.result import HealthResult
from gpu_health.health.rules import score
from gpu_health.health.signals import (
    FALLBACK_PCIE_LINK,
    Signals,
    expected_pcie_replays_per_minute,
)
from gpu_health.health.windows import CounterWindow
from gpu_health.telemetry.readings import GpuIdentity, GpuSample

#: Clock-event bits that make clocks below max normal (NVML nvmlClocksEventReasons).
BENIGN_CLOCK_REASONS = 0x1 | 0x2 | 0x4 | 0x10 | 0x100
#: Bits per throttle category that the bitmask can tell (NVML nvmlClocksEventReasons).
THROTTLE_BITS: dict[str, int] = {
    "thermal_slowdown": 0x20 | 0x40,  # SW thermal slowdown | HW thermal slowdown
    "hw_slowdown": 0x8,
    "power_brake": 0x80,
}
#: Violation-time counters per throttle category (``GpuSample.clock_event_seconds`` keys).
#: "power" (the power cap) and "low_utilization" / "sync_boost" are normal and not scored.
THROTTLE_VIOLATIONS: dict[str, str] = {
    "thermal_slowdown": "thermal",
    "board_limit": "board_limit",
    "reliability_limit": "reliability",
}
#: Longest gap between two samples credited to the later sample's throttle state or power.
MAX_HOLD_SECONDS = 60.0


@dataclass
class _GpuState:
    """Bounded per-GPU memory: a fixed set of windows plus one per XID code the policy scores."""

    observed: CounterWindow
    throttled: dict[str, CounterWindow]
    violations: dict[str, CounterWindow]
    power_observed: CounterWindow
    energy: CounterWindow
    pcie_replays: CounterWindow
    ecc_corrected: CounterWindow
    nvlink_crc: CounterWindow
    nvlink_errors: CounterWindow
    xids: dict[int, CounterWindow] = field(default_factory=dict)
    last_timestamp: float | None = None
    observed_total: float = 0.0
    throttled_total: dict[str, float] = field(default_factory=dict)
    power_observed_total: float = 0.0
    energy_total: float = 0.0

    @classmethod
    def new(cls, policy: Policy) -> _GpuState:
        w = policy.windows
        return cls(
            observed=CounterWindow(w.throttle_seconds),
            throttled={name: CounterWindow(w.throttle_seconds) for name in THROTTLE_BITS},
            violations={name: CounterWindow(w.throttle_seconds) for name in THROTTLE_VIOLATIONS},
            power_observed=CounterWindow(w.power_seconds),
            energy=CounterWindow(w.power_seconds),
            pcie_replays=CounterWindow(w.pcie_replay_seconds),
            ecc_corrected=CounterWindow(w.ecc_seconds),
            nvlink_crc=CounterWindow(w.nvlink_seconds),
            nvlink_errors=CounterWindow(w.nvlink_seconds),
            throttled_total=dict.fromkeys(THROTTLE_BITS, 0.0),
        )

    def windows(self) -> list[CounterWindow]:
        """Every window held (for the boundedness test)."""
        return [
            self.observed,
            *self.throttled.values(),
            *self.violations.values(),
            self.power_observed,
            self.energy,
            self.pcie_replays,
            self.ecc_corrected,
            self.nvlink_crc,
            self.nvlink_errors,
            *self.xids.values(),
        ]


def _ratio_loss(current: float | None, maximum: float | None) -> float | None:
    if current is None or maximum is None or maximum <= 0:
        return None
    return min(1.0, max(0.0, 1.0 - current / maximum))


def _known(value: float | None) -> float | None:
    return value if value is not None and value > 0 else None


def resolve_limits(identity: GpuIdentity, policy: Policy) -> tuple[Limits, Thresholds]:
    """Device-reported limits win; the policy's per-model defaults fill what the device lacks."""
    defaults, thresholds = policy.for_model(identity.model)
    max_clock = _known(identity.max_sm_clock_hertz)
    # A zero from a backend that could not read a limit is "unknown", never a limit of 0.
    device = Limits(
        slowdown_temp_celsius=_known(identity.slowdown_temp_celsius),
        shutdown_temp_celsius=_known(identity.shutdown_temp_celsius),
        memory_max_temp_celsius=_known(identity.memory_max_temp_celsius),
        power_limit_watts=_known(identity.power_limit_default_watts),
        max_sm_clock_mhz=None if max_clock is None else max_clock / 1e6,
        pcie_max_generation=identity.pcie_max_generation or None,
        pcie_max_width=identity.pcie_max_width or None,
    )
    return defaults.overlaid(device), thresholds


def _static_signals(identity: GpuIdentity, sample: GpuSample, limits: Limits) -> Signals:
    """Everything that needs no history: levels, flags and ratios to limits."""
    s = Signals(up=sample.up)
    s.gpu_temperature_celsius = sample.temperature_gpu_celsius
    s.slowdown_temp_celsius = limits.slowdown_temp_celsius
    s.shutdown_temp_celsius = limits.shutdown_temp_celsius
    s.memory_temperature_celsius = sample.temperature_memory_celsius
    s.memory_max_temp_celsius = limits.memory_max_temp_celsius
    if (
        sample.power_watts is not None
        and sample.power_limit_watts is not None
        and sample.power_limit_watts > 0
    ):
        s.power_ratio = sample.power_watts / sample.power_limit_watts
    s.power_limit_reduction = _ratio_loss(sample.power_limit_watts, limits.power_limit_watts)
    if sample.sm_clock_hertz is not None and limits.max_sm_clock_mhz:
        s.sm_clock_ratio = sample.sm_clock_hertz / (limits.max_sm_clock_mhz * 1e6)
    s.utilization = sample.utilization_gpu_ratio
    if sample.clock_event_reasons is not None:
        s.benign_clock_reason = bool(sample.clock_event_reasons & BENIGN_CLOCK_REASONS)
        for name, bits in THROTTLE_BITS.items():
            setattr(s, f"{name}_fraction", 1.0 if sample.clock_event_reasons & bits else 0.0)
    s.pcie_width_loss = _ratio_loss(sample.pcie_link_width, limits.pcie_max_width)
    s.pcie_generation_loss = _ratio_loss(sample.pcie_link_generation, limits.pcie_max_generation)
    s.ecc_uncorrectable_volatile = sample.ecc_uncorrected_volatile
    s.ecc_uncorrectable_lifetime = sample.ecc_uncorrected_aggregate
    s.row_remap_pending = sample.row_remap_pending
    s.row_remap_failed = sample.row_remap_failed
    s.remapped_rows_uncorrectable = sample.remapped_rows_uncorrectable
    s.remapped_rows_correctable = sample.remapped_rows_correctable
    if sample.retired_pages_single_bit is not None or sample.retired_pages_double_bit is not None:
        s.retired_pages = (sample.retired_pages_single_bit or 0) + (
            sample.retired_pages_double_bit or 0
        )
    s.retired_pages_pending = sample.retired_pages_pending
    return s


def _link(sample: GpuSample, limits: Limits) -> tuple[int, int]:
    generation = sample.pcie_link_generation or limits.pcie_max_generation
    width = sample.pcie_link_width or limits.pcie_max_width
    return (generation or FALLBACK_PCIE_LINK[0], width or FALLBACK_PCIE_LINK[1])


def _nvlink_totals(sample: GpuSample) -> tuple[float | None, float | None]:
    if not sample.nvlink_errors:
        return None, None
    crc = sum(v for (_link_id, kind), v in sample.nvlink_errors.items() if kind.startswith("crc"))
    errors = sum(
        v for (_link_id, kind), v in sample.nvlink_errors.items() if kind in ("replay", "recovery")
    )
    return float(crc), float(errors)


class HealthTracker:
    """Scores every GPU of a node sample by sample, keeping short bounded windows per uuid."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self._state: dict[str, _GpuState] = {}
        # Two Prometheus servers may scrape at once; windows must see one sample at a time.
        self._lock = threading.Lock()

    def forget(self, uuid: str) -> None:
        """Drop a GPU's history (it left the inventory)."""
        with self._lock:
            self._state.pop(uuid, None)

    def window_sizes(self, uuid: str) -> dict[str, int]:
        """Points held per window for a GPU (memory is bounded: see windows.ANCHORS)."""
        state = self._state.get(uuid)
        if state is None:
            return {}
        return {str(i): len(w) for i, w in enumerate(state.windows())}

    def signals(self, identity: GpuIdentity, sample: GpuSample) -> tuple[Signals, Thresholds]:
        """Update the GPU's windows with ``sample`` and derive the signals to score."""
        limits, thresholds = resolve_limits(identity, self.policy)
        if not sample.up:
            return Signals(up=False), thresholds
        state = self._state.get(identity.uuid)
        first = state is None
        if state is None:
            state = self._state[identity.uuid] = _GpuState.new(self.policy)
        s = _static_signals(identity, sample, limits)
        t = sample.timestamp
        previous = state.last_timestamp
        if previous is not None and t < previous:
            # Time went backwards (a replay started over): history no longer applies.
            state = self._state[identity.uuid] = _GpuState.new(self.policy)
            previous, first = None, True
        dt = 0.0 if previous is None else min(t - previous, MAX_HOLD_SECONDS)
        state.last_timestamp = t

        self._throttle(state, sample, s, t, dt)
        self._power(state, sample, s, t, dt)
        self._counters(state, sample, s, t, limits)
        self._xids(state, sample, s, t, first, previous)
        return s, thresholds

    def update(self, identity: GpuIdentity, sample: GpuSample) -> HealthResult:
        """Score one sample of one GPU (the exporter calls this once per GPU per scrape)."""
        with self._lock:
            signals, thresholds = self.signals(identity, sample)
        return score(signals, self.policy, thresholds)

    # -- window bookkeeping ------------------------------------------------------------------

    def _throttle(
        self, state: _GpuState, sample: GpuSample, s: Signals, t: float, dt: float
    ) -> None:
        mask = sample.clock_event_reasons
        if mask is not None:
            state.observed_total += dt
            state.observed.add(t, state.observed_total)
            observed = state.observed.increase() or 0.0
            for name, bits in THROTTLE_BITS.items():
                if mask & bits:
                    state.throttled_total[name] += dt
                window = state.throttled[name]
                window.add(t, state.throttled_total[name])
                if observed > 0:
                    fraction = (window.increase() or 0.0) / observed
                    setattr(s, f"{name}_fraction", min(1.0, max(0.0, fraction)))
                # else: keep the instantaneous 0/1 from the current bitmask
        for name, key in THROTTLE_VIOLATIONS.items():
            seconds = sample.clock_event_seconds.get(key)
            if seconds is None:
                continue
            window = state.violations[name]
            window.add(t, seconds)
            span = window.span()
            if span <= 0:
                continue
            fraction = min(1.0, max(0.0, (window.increase() or 0.0) / span))
            current = getattr(s, f"{name}_fraction")
            setattr(s, f"{name}_fraction", fraction if current is None else max(current, fraction))

    def _power(self, state: _GpuState, sample: GpuSample, s: Signals, t: float, dt: float) -> None:
        if sample.power_watts is None:
            return
        state.power_observed_total += dt
        state.energy_total += sample.power_watts * dt
        state.power_observed.add(t, state.power_observed_total)
        state.energy.add(t, state.energy_total)
        observed = state.power_observed.increase() or 0.0
        limit = sample.power_limit_watts
        if observed > 0 and limit is not None and limit > 0:
            s.power_ratio = (state.energy.increase() or 0.0) / observed / limit

    def _counters(
        self, state: _GpuState, sample: GpuSample, s: Signals, t: float, limits: Limits
    ) -> None:
        w = self.policy.windows
        if sample.pcie_replays is not None:
            state.pcie_replays.add(t, sample.pcie_replays)
            per_minute = state.pcie_replays.rate(60.0, min_span=60.0) or 0.0
            s.pcie_replay_ratio = per_minute / expected_pcie_replays_per_minute(
                *_link(sample, limits)
            )
        corrected = (
            sample.ecc_corrected_volatile
            if sample.ecc_corrected_volatile is not None
            else sample.ecc_corrected_aggregate
        )
        if corrected is not None:
            state.ecc_corrected.add(t, corrected)
            # Errors counted over the ECC window, per hour; never extrapolated from a short span.
            s.ecc_correctable_rate = state.ecc_corrected.rate(3600.0, min_span=w.ecc_seconds)
        crc, errors = _nvlink_totals(sample)
        if crc is not None and errors is not None:
            state.nvlink_crc.add(t, crc)
            state.nvlink_errors.add(t, errors)
            s.nvlink_crc_per_second = state.nvlink_crc.rate(1.0, min_span=60.0)
            s.nvlink_link_errors = state.nvlink_errors.increase()

    def _xids(
        self,
        state: _GpuState,
        sample: GpuSample,
        s: Signals,
        t: float,
        first: bool,
        previous: float | None,
    ) -> None:
        scored = set(self.policy.xid.critical) | set(self.policy.xid.penalised)
        window_seconds = self.policy.windows.xid_seconds
        for code, count in sample.xid_counts.items():
            if code not in scored:
                continue
            window = state.xids.get(code)
            if window is None:
                window = state.xids[code] = CounterWindow(window_seconds)
                # xid_counts count events since the exporter started watching, so they began
                # at zero; place that zero just before the events could have happened.
                last = sample.last_xid_timestamp
                if first and last is not None and last < t:
                    if t - last <= window_seconds:
                        window.seed(last, 0.0)
                elif not first and previous is not None:
                    window.seed(previous, 0.0)
                else:
                    window.seed(t, 0.0)
            window.add(t, count)
            events = int(window.increase() or 0)
            if events > 0:
                s.xid_events[code] = events


def score_sample(identity: GpuIdentity, sample: GpuSample, policy: Policy) -> HealthResult:
    """One-shot score of a single sample with no history (counters as levels, bits as now)."""
    return HealthTracker(policy).update(identity, sample)
