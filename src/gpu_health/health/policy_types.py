"""What a health policy is: the typed form the health score reads.

Plain data (weights, grade bands, caps, thresholds, per-model limits) with the small behaviours
that belong to it: a model's effective limits and the grade of a score. Reading and validating
YAML into these types is :mod:`.policy_parse`; the entry points are in :mod:`.policy`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

from gpu_health.health.result import GRADES


@dataclass(frozen=True)
class Ramp:
    """0 points at or below ``start``, ``points`` at or above ``full``, linear in between."""

    start: float
    full: float
    points: float

    def cost(self, value: float) -> float:
        if value <= self.start:
            return 0.0
        if value >= self.full:
            return self.points
        return self.points * (value - self.start) / (self.full - self.start)


@dataclass(frozen=True)
class Flag:
    """A fixed cost when a condition holds."""

    points: float


@dataclass(frozen=True)
class TemperatureRule:
    """Penalty from ``limit - margin`` up to the limit, then on to the critical temperature."""

    margin_celsius: float
    points_at_limit: float
    points_at_critical: float
    critical_over_limit_celsius: float = 5.0

    def cost(self, temperature: float, limit: float, critical: float) -> float:
        start = limit - self.margin_celsius
        if temperature <= start:
            return 0.0
        if temperature <= limit:
            if self.margin_celsius <= 0:
                return self.points_at_limit
            return self.points_at_limit * (temperature - start) / self.margin_celsius
        if critical <= limit or temperature >= critical:
            return self.points_at_critical
        extra = self.points_at_critical - self.points_at_limit
        return self.points_at_limit + extra * (temperature - limit) / (critical - limit)


@dataclass(frozen=True)
class Thresholds:
    """Where each penalty starts and how much it can cost (points in its dimension)."""

    gpu_temperature: TemperatureRule
    memory_temperature: TemperatureRule
    thermal_slowdown: Ramp
    hw_slowdown: Ramp
    power_brake: Ramp
    board_limit: Ramp
    reliability_limit: Ramp
    power_over_limit: Ramp
    power_limit_reduced: Ramp
    sm_clock_low: Ramp
    load_utilization: float
    pcie_link_width_degraded: Ramp
    pcie_link_gen_degraded: Ramp
    pcie_replay_rate: Ramp
    ecc_correctable_rate: Ramp
    ecc_uncorrectable_lifetime: Ramp
    remapped_rows_uncorrectable: Ramp
    remapped_rows_correctable: Ramp
    row_remap_pending: Flag
    retired_pages: Ramp
    retired_pages_pending: Flag
    nvlink_crc_rate: Ramp
    nvlink_link_errors: Ramp


@dataclass(frozen=True)
class Limits:
    """Device limits; ``None`` means unknown (the rules that need it then do not apply)."""

    slowdown_temp_celsius: float | None = None
    shutdown_temp_celsius: float | None = None
    memory_max_temp_celsius: float | None = None
    power_limit_watts: float | None = None
    max_sm_clock_mhz: float | None = None
    pcie_max_generation: int | None = None
    pcie_max_width: int | None = None

    def overlaid(self, other: Limits) -> Limits:
        """``other``'s known values win."""
        changes = {
            f.name: getattr(other, f.name)
            for f in fields(other)
            if getattr(other, f.name) is not None
        }
        return replace(self, **changes)


@dataclass(frozen=True)
class XidRule:
    dimension: str
    points_per_event: float
    max_points: float

    def cost(self, events: int) -> float:
        return min(self.max_points, self.points_per_event * events)


@dataclass(frozen=True)
class XidPolicy:
    #: code -> dimension zeroed; any event in the window caps the overall score
    critical: dict[int, str]
    penalised: dict[int, XidRule]


@dataclass(frozen=True)
class Caps:
    """Overall-score caps per hard fault (all inside the critical band)."""

    gpu_lost: float
    ecc_uncorrectable_volatile: float
    row_remap_failure: float
    remapped_rows_exhausted: float
    retired_pages_limit: float
    xid_critical: float


@dataclass(frozen=True)
class HardLimits:
    remapped_rows_uncorrectable: int
    retired_pages: int


@dataclass(frozen=True)
class Windows:
    throttle_seconds: float
    power_seconds: float
    pcie_replay_seconds: float
    ecc_seconds: float
    nvlink_seconds: float
    xid_seconds: float


@dataclass(frozen=True)
class ModelOverride:
    match: str
    limits: Limits
    thresholds: Thresholds | None


@dataclass(frozen=True)
class Policy:
    source: str
    weights: dict[str, float]
    #: lower bound of each band but the last (critical is below ``poor``)
    grades: dict[str, float]
    caps: Caps
    hard_limits: HardLimits
    windows: Windows
    thresholds: Thresholds
    xid: XidPolicy
    default_limits: Limits
    models: tuple[ModelOverride, ...] = ()
    _cache: dict[str, tuple[Limits, Thresholds]] = field(
        default_factory=dict, compare=False, repr=False
    )

    def for_model(self, model: str) -> tuple[Limits, Thresholds]:
        """Limits and thresholds for a model name (per-model overrides applied)."""
        cached = self._cache.get(model)
        if cached is not None:
            return cached
        name = model.casefold()
        matches = sorted(
            (m for m in self.models if m.match.casefold() in name), key=lambda m: len(m.match)
        )
        limits = self.default_limits
        thresholds = self.thresholds
        for match in matches:
            limits = limits.overlaid(match.limits)
            if match.thresholds is not None:
                thresholds = match.thresholds
        self._cache[model] = (limits, thresholds)
        return limits, thresholds

    def grade(self, overall: float) -> str:
        for name in GRADES[:-1]:
            if overall >= self.grades[name]:
                return name
        return GRADES[-1]
