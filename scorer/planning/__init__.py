"""Fleet planning: failures to expect per model, datacenter and team, spares and capacity at risk.

The expected count is the sum of the per-GPU failure probabilities the scorer publishes; the
80 % interval comes from the exact distribution of that count (Poisson-binomial, computed by
dynamic programming), so a small datacenter gets the wide, skewed interval it really has.
"""

from __future__ import annotations

from gpu_health.scorer.planning.plan import FleetPlan, GpuRisk, GroupPlan, build_plan
from gpu_health.scorer.planning.poibin import central_interval, failure_pmf, quantile

__all__ = [
    "FleetPlan",
    "GpuRisk",
    "GroupPlan",
    "build_plan",
    "central_interval",
    "failure_pmf",
    "quantile",
]
