"""Expected failures, 80 % intervals, spares and capacity at risk per model, datacenter, team."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from gpu_health.scorer.planning.poibin import central_interval, failure_pmf, spares_needed

#: Horizons planned for, in days. 90d comes from the model when it publishes that horizon.
PLAN_HORIZONS: tuple[str, ...] = ("30d", "90d")
#: Groupings; "fleet" is the one group holding every GPU.
DIMENSIONS: tuple[str, ...] = ("fleet", "model", "datacenter", "team")
UNKNOWN = "unknown"
DEFAULT_DOWNTIME_HOURS = 14 * 24.0


@dataclass(frozen=True)
class GpuRisk:
    """One GPU as planning sees it."""

    uuid: str
    model: str
    #: horizon ("7d", "30d", "90d", ...) -> probability of failing within it
    probability: Mapping[str, float]
    datacenter: str = ""
    team: str = ""
    #: Hours out of service per failure (the economics' downtime_days_per_failure x 24).
    downtime_hours: float = DEFAULT_DOWNTIME_HOURS

    def group(self, dimension: str) -> str:
        if dimension == "fleet":
            return "all"
        value = {"model": self.model, "datacenter": self.datacenter, "team": self.team}[dimension]
        return value or UNKNOWN


def horizon_days(horizon: str) -> float:
    return float(horizon.rstrip("d"))


def probability_within(probability: Mapping[str, float], horizon: str) -> tuple[float, bool]:
    """``(p, extrapolated)``: the model's probability, or one stretched from a shorter horizon.

    When the model has no such horizon, the longest shorter one is stretched assuming a constant
    hazard, ``1 - (1 - p)^(days / shorter_days)``; the flag says so, and the plan marks it.
    """
    value = probability.get(horizon)
    if value is not None and math.isfinite(value):
        return min(max(value, 0.0), 1.0), False
    wanted = horizon_days(horizon)
    shorter = [
        (horizon_days(h), p)
        for h, p in probability.items()
        if horizon_days(h) < wanted and math.isfinite(p)
    ]
    if not shorter:
        return math.nan, True
    days, p = max(shorter)
    p = min(max(p, 0.0), 1.0)
    return 1.0 - math.pow(1.0 - p, wanted / days), True


@dataclass(frozen=True)
class GroupPlan:
    dimension: str
    group: str
    horizon: str
    gpus: int
    expected: float
    #: The central interval and the exact probability that the count falls inside it.
    lower: int
    upper: int
    interval_probability: float
    #: Spares to stock so the group runs out with probability at most 1 - service level.
    spares: int
    #: Expected GPU-hours out of service from failures within the horizon.
    capacity_at_risk_gpu_hours: float


@dataclass(frozen=True)
class FleetPlan:
    level: float
    service_level: float
    groups: tuple[GroupPlan, ...]
    #: Horizons whose probabilities were stretched from a shorter one (the model lacks them).
    extrapolated: tuple[str, ...] = ()
    #: GPUs left out because they have no usable probability.
    skipped: int = 0

    def select(self, dimension: str, horizon: str) -> list[GroupPlan]:
        rows = [g for g in self.groups if g.dimension == dimension and g.horizon == horizon]
        return sorted(rows, key=lambda g: (-g.expected, g.group))


def build_plan(
    gpus: Sequence[GpuRisk],
    horizons: Sequence[str] = PLAN_HORIZONS,
    level: float = 0.8,
    service_level: float = 0.95,
) -> FleetPlan:
    """Plan every group of every dimension for every horizon."""
    if not 0 < level < 1 or not 0 < service_level < 1:
        raise ValueError("level and service_level must lie strictly between 0 and 1")
    groups: list[GroupPlan] = []
    extrapolated: set[str] = set()
    skipped: set[str] = set()
    for horizon in horizons:
        members: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
        for gpu in gpus:
            p, stretched = probability_within(gpu.probability, horizon)
            if math.isnan(p):
                skipped.add(gpu.uuid)
                continue
            if stretched:
                extrapolated.add(horizon)
            out_hours = min(gpu.downtime_hours, horizon_days(horizon) * 24.0)
            for dimension in DIMENSIONS:
                members[(dimension, gpu.group(dimension))].append((p, out_hours))
        for (dimension, name), items in sorted(members.items()):
            probs = [p for p, _ in items]
            pmf = failure_pmf(probs)
            low, high, inside = central_interval(pmf, level)
            groups.append(
                GroupPlan(
                    dimension=dimension,
                    group=name,
                    horizon=horizon,
                    gpus=len(items),
                    expected=float(sum(probs)),
                    lower=low,
                    upper=high,
                    interval_probability=inside,
                    spares=spares_needed(pmf, service_level),
                    capacity_at_risk_gpu_hours=float(sum(p * h for p, h in items)),
                )
            )
    return FleetPlan(level, service_level, tuple(groups), tuple(sorted(extrapolated)), len(skipped))
