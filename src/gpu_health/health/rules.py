"""Pure scoring: :class:`Signals` + :class:`Policy` -> :class:`HealthResult`.

Each dimension starts at 100 and loses the points of its penalties (floored at 0); the overall
score is the weighted sum, then capped by every hard fault present. A cap is reported as a
penalty on dimension ``overall`` whose points are what that cap alone removes. Reason names are
stable snake_case label values of ``gpu_health_penalty{dimension,reason}`` (see
``docs/health-model.md``); a rule whose input is unknown (``None``) never costs anything.
"""

from __future__ import annotations

from gpu_health.health.policy import Policy, Thresholds
from gpu_health.health.result import DIMENSIONS, HealthResult, Penalty
from gpu_health.health.signals import Signals

#: Reasons that are hard faults (overall caps), apart from ``xid_<code>`` for critical XIDs.
HARD_FAULTS: tuple[str, ...] = (
    "gpu_lost",
    "ecc_uncorrectable_volatile",
    "row_remap_failure",
    "remapped_rows_exhausted",
    "retired_pages_limit",
)

_FULL = 100.0


def _round(value: float) -> float:
    return round(value + 0.0, 2)


class _Ledger:
    """Collects penalties per dimension and the caps that apply."""

    def __init__(self) -> None:
        self.points: list[tuple[str, str, float]] = []
        self.caps: list[tuple[str, float]] = []

    def charge(self, dimension: str, reason: str, points: float) -> None:
        if points > 0:
            self.points.append((dimension, reason, points))

    def cap(self, reason: str, cap: float, dimension: str) -> None:
        """A hard fault: empties its dimension and caps the overall score."""
        self.charge(dimension, reason, _FULL)
        self.caps.append((reason, cap))


def _thermal(s: Signals, t: Thresholds, ledger: _Ledger) -> None:
    if s.gpu_temperature_celsius is not None and s.slowdown_temp_celsius is not None:
        critical = s.shutdown_temp_celsius
        if critical is None or critical <= s.slowdown_temp_celsius:
            critical = s.slowdown_temp_celsius + t.gpu_temperature.critical_over_limit_celsius
        ledger.charge(
            "thermal",
            "gpu_temperature",
            t.gpu_temperature.cost(s.gpu_temperature_celsius, s.slowdown_temp_celsius, critical),
        )
    if s.memory_temperature_celsius is not None and s.memory_max_temp_celsius is not None:
        limit = s.memory_max_temp_celsius
        critical = limit + t.memory_temperature.critical_over_limit_celsius
        ledger.charge(
            "thermal",
            "memory_temperature",
            t.memory_temperature.cost(s.memory_temperature_celsius, limit, critical),
        )
    if s.thermal_slowdown_fraction is not None:
        ledger.charge(
            "thermal", "thermal_slowdown", t.thermal_slowdown.cost(s.thermal_slowdown_fraction)
        )


def _power(s: Signals, t: Thresholds, ledger: _Ledger) -> None:
    if s.power_ratio is not None:
        ledger.charge("power", "power_over_limit", t.power_over_limit.cost(s.power_ratio))
    if s.power_brake_fraction is not None:
        ledger.charge("power", "power_brake", t.power_brake.cost(s.power_brake_fraction))
    if s.power_limit_reduction is not None:
        ledger.charge(
            "power", "power_limit_reduced", t.power_limit_reduced.cost(s.power_limit_reduction)
        )


def _performance(s: Signals, t: Thresholds, ledger: _Ledger) -> None:
    if s.hw_slowdown_fraction is not None:
        ledger.charge("performance", "hw_slowdown", t.hw_slowdown.cost(s.hw_slowdown_fraction))
    if s.board_limit_fraction is not None:
        ledger.charge("performance", "board_limit", t.board_limit.cost(s.board_limit_fraction))
    if s.reliability_limit_fraction is not None:
        ledger.charge(
            "performance",
            "reliability_limit",
            t.reliability_limit.cost(s.reliability_limit_fraction),
        )
    loaded = s.utilization is not None and s.utilization >= t.load_utilization
    if (
        loaded
        and s.sm_clock_ratio is not None
        and s.benign_clock_reason is False  # unknown reasons: cannot tell normal from not
    ):
        deficit = max(0.0, 1.0 - s.sm_clock_ratio)
        ledger.charge("performance", "sm_clock_low", t.sm_clock_low.cost(deficit))
    if s.pcie_width_loss is not None:
        ledger.charge(
            "performance",
            "pcie_link_width_degraded",
            t.pcie_link_width_degraded.cost(s.pcie_width_loss),
        )
    if loaded and s.pcie_generation_loss is not None:
        ledger.charge(
            "performance",
            "pcie_link_gen_degraded",
            t.pcie_link_gen_degraded.cost(s.pcie_generation_loss),
        )


def _memory(s: Signals, p: Policy, t: Thresholds, ledger: _Ledger) -> None:
    if s.ecc_uncorrectable_volatile is not None and s.ecc_uncorrectable_volatile > 0:
        ledger.cap("ecc_uncorrectable_volatile", p.caps.ecc_uncorrectable_volatile, "memory")
    if s.row_remap_failed:
        ledger.cap("row_remap_failure", p.caps.row_remap_failure, "memory")
    if s.ecc_uncorrectable_lifetime is not None:
        ledger.charge(
            "memory",
            "ecc_uncorrectable_lifetime",
            t.ecc_uncorrectable_lifetime.cost(s.ecc_uncorrectable_lifetime),
        )
    if s.ecc_correctable_rate is not None:
        ledger.charge(
            "memory", "ecc_correctable_rate", t.ecc_correctable_rate.cost(s.ecc_correctable_rate)
        )
    if s.row_remap_pending:
        ledger.charge("memory", "row_remap_pending", t.row_remap_pending.points)
    if s.remapped_rows_uncorrectable is not None:
        if s.remapped_rows_uncorrectable >= p.hard_limits.remapped_rows_uncorrectable:
            ledger.cap("remapped_rows_exhausted", p.caps.remapped_rows_exhausted, "memory")
        ledger.charge(
            "memory",
            "remapped_rows_uncorrectable",
            t.remapped_rows_uncorrectable.cost(s.remapped_rows_uncorrectable),
        )
    if s.remapped_rows_correctable is not None:
        ledger.charge(
            "memory",
            "remapped_rows_correctable",
            t.remapped_rows_correctable.cost(s.remapped_rows_correctable),
        )
    if s.retired_pages is not None:
        if s.retired_pages >= p.hard_limits.retired_pages:
            ledger.cap("retired_pages_limit", p.caps.retired_pages_limit, "memory")
        ledger.charge("memory", "retired_pages", t.retired_pages.cost(s.retired_pages))
    if s.retired_pages_pending:
        ledger.charge("memory", "retired_pages_pending", t.retired_pages_pending.points)


def _reliability(s: Signals, p: Policy, t: Thresholds, ledger: _Ledger) -> None:
    if not s.up:
        # A GPU that does not answer has no readings, not good ones: every dimension is
        # emptied (a dashboard of dimensions must not show four green bars for a dead GPU).
        for dimension in DIMENSIONS:
            if dimension != "reliability":
                ledger.charge(dimension, "gpu_lost", _FULL)
        ledger.cap("gpu_lost", p.caps.gpu_lost, "reliability")
    if s.pcie_replay_ratio is not None:
        ledger.charge(
            "reliability", "pcie_replay_rate", t.pcie_replay_rate.cost(s.pcie_replay_ratio)
        )
    if s.nvlink_crc_per_second is not None:
        ledger.charge(
            "reliability", "nvlink_crc_rate", t.nvlink_crc_rate.cost(s.nvlink_crc_per_second)
        )
    if s.nvlink_link_errors is not None:
        ledger.charge(
            "reliability", "nvlink_link_errors", t.nvlink_link_errors.cost(s.nvlink_link_errors)
        )
    for code in sorted(s.xid_events):
        events = s.xid_events[code]
        if events <= 0:
            continue
        if code in p.xid.critical:
            ledger.cap(f"xid_{code}", p.caps.xid_critical, p.xid.critical[code])
        elif code in p.xid.penalised:
            rule = p.xid.penalised[code]
            ledger.charge(rule.dimension, f"xid_{code}", rule.cost(events))


def score(signals: Signals, policy: Policy, thresholds: Thresholds | None = None) -> HealthResult:
    """Score one GPU from its signals. ``thresholds`` defaults to the policy's base thresholds."""
    t = thresholds if thresholds is not None else policy.thresholds
    ledger = _Ledger()
    _thermal(signals, t, ledger)
    _memory(signals, policy, t, ledger)
    _power(signals, t, ledger)
    _performance(signals, t, ledger)
    _reliability(signals, policy, t, ledger)

    lost: dict[str, float] = dict.fromkeys(DIMENSIONS, 0.0)
    for dimension, _reason, points in ledger.points:
        lost[dimension] += points
    dimensions = {d: _round(max(0.0, _FULL - lost[d])) for d in DIMENSIONS}
    uncapped = sum(policy.weights[d] * max(0.0, _FULL - lost[d]) for d in DIMENSIONS)
    uncapped = min(_FULL, max(0.0, uncapped))
    overall = uncapped
    penalties = [
        Penalty(d, r, _round(pts))
        for d in DIMENSIONS
        for (dd, r, pts) in sorted(ledger.points, key=lambda item: item[1])
        if dd == d
    ]
    for reason, cap in sorted(ledger.caps):
        overall = min(overall, cap)
        penalties.append(Penalty("overall", reason, _round(max(0.0, uncapped - cap))))
    overall = _round(overall)
    return HealthResult(
        overall=overall,
        dimensions=dimensions,
        grade=policy.grade(overall),
        penalties=penalties,
    )
