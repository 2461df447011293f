"""The plan as Prometheus metric families, published by the scorer every run."""

from __future__ import annotations

from prometheus_client.core import GaugeMetricFamily

from gpu_health.scorer.catalogue import SCORER_METRICS
from gpu_health.scorer.planning.plan import FleetPlan

_HELP = {name: help_text for name, _kind, help_text, _labels in SCORER_METRICS}


def plan_metric_families(plan: FleetPlan) -> list[GaugeMetricFamily]:
    group = ["horizon", "dimension", "group"]
    expected = GaugeMetricFamily(
        "gpu_plan_expected_failures", _HELP["gpu_plan_expected_failures"], labels=group
    )
    interval = GaugeMetricFamily(
        "gpu_plan_failures_interval", _HELP["gpu_plan_failures_interval"], labels=[*group, "bound"]
    )
    spares = GaugeMetricFamily(
        "gpu_plan_spares", _HELP["gpu_plan_spares"], labels=[*group, "service_level"]
    )
    capacity = GaugeMetricFamily(
        "gpu_plan_capacity_at_risk_gpu_hours",
        _HELP["gpu_plan_capacity_at_risk_gpu_hours"],
        labels=group,
    )
    level = f"{plan.service_level:g}"
    for g in plan.groups:
        labels = [g.horizon, g.dimension, g.group]
        expected.add_metric(labels, g.expected)
        interval.add_metric([*labels, "lower"], float(g.lower))
        interval.add_metric([*labels, "upper"], float(g.upper))
        spares.add_metric([*labels, level], float(g.spares))
        capacity.add_metric(labels, g.capacity_at_risk_gpu_hours)
    return [expected, interval, spares, capacity]
