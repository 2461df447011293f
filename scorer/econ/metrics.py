"""Economic results as Prometheus metric families, ready for a custom collector's ``collect()``.

Each decision input is its own metric in base units (seconds, watts, ratios; prices per hour or per
kWh with a ``currency`` label), so a query never mixes days with watts under one name and
Grafana can give each column its unit. :data:`INPUT_METRICS` is the one table that maps the
engine's input names to those metrics; the what-if reader (:mod:`.fleet`) reads them back with it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from prometheus_client.core import GaugeMetricFamily

from gpu_health.scorer.catalogue import SCORER_IDENTITY_LABELS, SCORER_METRICS
from gpu_health.scorer.econ.engine import ACTIONS, EconResult

_HELP = {name: help_text for name, _kind, help_text, _labels in SCORER_METRICS}

#: GPUs the economics did not value, per model: (name, type, help, labels) as listed in
#: ``scorer/catalogue.py``. A fleet-level scorer series, as ``gpu_scorer_inventory_unknown_gpus``;
#: ``model`` is the GPU's model name as scored.
UNVALUED_METRIC: tuple[str, str, str, tuple[str, ...]] = next(
    m for m in SCORER_METRICS if m[0] == "gpu_scorer_econ_unvalued_gpus"
)


@dataclass(frozen=True)
class InputMetric:
    """How one engine input (``EconResult.inputs[key]``) is published."""

    key: str
    metric: str
    #: Base units per engine unit (the engine counts age in days; Prometheus wants seconds).
    scale: float = 1.0
    #: A fixed label that tells apart inputs sharing one metric (the failure horizon).
    label: tuple[str, str] | None = None
    #: Prices carry a ``currency`` label (the economics YAML's ``currency``).
    priced: bool = False


INPUT_METRICS: tuple[InputMetric, ...] = (
    InputMetric("age_days", "gpu_econ_age_seconds", scale=86400.0),
    InputMetric("utilisation", "gpu_econ_utilisation_ratio"),
    InputMetric("power_w", "gpu_econ_power_watts"),
    InputMetric("p7", "gpu_econ_failure_probability_ratio", label=("horizon", "7d")),
    InputMetric("p30", "gpu_econ_failure_probability_ratio", label=("horizon", "30d")),
    InputMetric("p90", "gpu_econ_failure_probability_ratio", label=("horizon", "90d")),
    InputMetric("monthly_hazard", "gpu_econ_monthly_hazard_ratio"),
    InputMetric("health", "gpu_econ_health_score"),
    InputMetric("hard_fault", "gpu_econ_hard_fault"),
    InputMetric("rental_rate", "gpu_econ_rental_price_per_hour", priced=True),
    InputMetric("energy_price", "gpu_econ_energy_price_per_kwh", priced=True),
    InputMetric("purchase_price", "gpu_econ_purchase_price", priced=True),
    InputMetric("warranty_days", "gpu_econ_warranty_remaining_seconds", scale=86400.0),
    InputMetric("sla_penalty", "gpu_econ_sla_penalty", priced=True),
)


def input_families(results: Iterable[EconResult]) -> list[GaugeMetricFamily]:
    """One family per input metric; inputs that were not measured (NaN) are left out."""
    ident = list(SCORER_IDENTITY_LABELS)
    families: dict[str, GaugeMetricFamily] = {}
    for spec in INPUT_METRICS:
        if spec.metric not in families:
            extra = [spec.label[0]] if spec.label else []
            extra += ["currency"] if spec.priced else []
            families[spec.metric] = GaugeMetricFamily(
                spec.metric, _HELP[spec.metric], labels=[*ident, *extra]
            )
    for r in results:
        labels = [r.node, r.gpu, r.uuid, r.model]
        for spec in INPUT_METRICS:
            value = r.inputs.get(spec.key, math.nan)
            if math.isnan(value):
                continue
            extra = [spec.label[1]] if spec.label else []
            extra += [r.currency] if spec.priced else []
            families[spec.metric].add_metric([*labels, *extra], value * spec.scale)
    return list(families.values())


def econ_metric_families(results: Iterable[EconResult]) -> list[GaugeMetricFamily]:
    """``gpu_residual_value``, ``gpu_npv``, ``gpu_recommended_action`` and the input metrics."""
    results = list(results)
    ident = list(SCORER_IDENTITY_LABELS)
    residual = GaugeMetricFamily(
        "gpu_residual_value", _HELP["gpu_residual_value"], labels=[*ident, "currency"]
    )
    npv = GaugeMetricFamily("gpu_npv", _HELP["gpu_npv"], labels=[*ident, "action", "currency"])
    action = GaugeMetricFamily(
        "gpu_recommended_action", _HELP["gpu_recommended_action"], labels=[*ident, "action"]
    )
    for r in results:
        labels = [r.node, r.gpu, r.uuid, r.model]
        residual.add_metric([*labels, r.currency], r.residual_value)
        for name in ACTIONS:
            npv.add_metric([*labels, name, r.currency], r.npv[name])
            action.add_metric([*labels, name], 1.0 if name == r.recommended_action else 0.0)
    return [residual, npv, action, *input_families(results)]


def unvalued_family(counts: Mapping[str, int]) -> GaugeMetricFamily:
    """``gpu_scorer_econ_unvalued_gpus{model}``: GPUs per model without a valuation (no series
    when every GPU was valued)."""
    name, _kind, help_text, labels = UNVALUED_METRIC
    family = GaugeMetricFamily(name, help_text, labels=list(labels))
    for model, count in sorted(counts.items()):
        family.add_metric([model], float(count))
    return family
