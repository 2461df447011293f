"""Economic results as Prometheus metric families, ready for a custom collector's ``collect()``."""

from __future__ import annotations

import math
from collections.abc import Iterable

from prometheus_client.core import GaugeMetricFamily

from gpu_health.scorer.catalogue import SCORER_IDENTITY_LABELS, SCORER_METRICS
from gpu_health.scorer.econ.engine import ACTIONS, EconResult

_HELP = {name: help_text for name, _kind, help_text, _labels in SCORER_METRICS}


def econ_metric_families(results: Iterable[EconResult]) -> list[GaugeMetricFamily]:
    """``gpu_residual_value``, ``gpu_npv``, ``gpu_recommended_action`` and ``gpu_econ_input``.

    Inputs that were not measured (NaN) are left out rather than published as a fake value.
    """
    ident = list(SCORER_IDENTITY_LABELS)
    residual = GaugeMetricFamily(
        "gpu_residual_value", _HELP["gpu_residual_value"], labels=[*ident, "currency"]
    )
    npv = GaugeMetricFamily("gpu_npv", _HELP["gpu_npv"], labels=[*ident, "action", "currency"])
    action = GaugeMetricFamily(
        "gpu_recommended_action", _HELP["gpu_recommended_action"], labels=[*ident, "action"]
    )
    inputs = GaugeMetricFamily("gpu_econ_input", _HELP["gpu_econ_input"], labels=[*ident, "input"])
    for r in results:
        labels = [r.node, r.gpu, r.uuid, r.model]
        residual.add_metric([*labels, r.currency], r.residual_value)
        for name in ACTIONS:
            npv.add_metric([*labels, name, r.currency], r.npv[name])
            action.add_metric([*labels, name], 1.0 if name == r.recommended_action else 0.0)
        for name, value in r.inputs.items():
            if not math.isnan(value):
                inputs.add_metric([*labels, name], value)
    return [residual, npv, action, inputs]
