"""Economic engine: NPV of keep / repair / repurpose / sell / decommission per GPU, and a
recommendation.

How the scorer uses it (pure Python, no I/O besides loading the YAML once)::

    from gpu_health.scorer.econ import (
        GpuEconInput, Recommender, econ_metric_families, load_params, value_fleet,
    )

    params = load_params(path_or_None)              # shipped defaults, overlaid by the file
    recommender = Recommender(params.hysteresis)    # keep ONE per process: it holds the state
    ...                                             # every scoring run:
    gpus = [GpuEconInput(uuid=..., model=..., age_days=..., utilisation=..., power_w=...,
                         p7=..., p30=..., p90=..., health=..., hard_fault=...,
                         node=..., gpu=...)]
    results, skipped = value_fleet(gpus, params)    # skipped: (gpu, reason) for unknown models
    results = recommender.recommend_all(results)    # hysteresis: no flapping between runs
    families = econ_metric_families(results)        # yield these from a collector's collect()

``None`` for a measured input means "not measured": the engine falls back to a configured default
and lists it in ``EconResult.defaulted``. Formulas and defaults (with sources): docs/economics.md.
"""

from __future__ import annotations

from gpu_health.scorer.econ.engine import (
    ACTIONS,
    EconResult,
    GpuEconInput,
    UnknownModelError,
    value_fleet,
    value_gpu,
)
from gpu_health.scorer.econ.metrics import econ_metric_families
from gpu_health.scorer.econ.params import EconParams, ModelParams, load_params
from gpu_health.scorer.econ.recommender import Recommender

__all__ = [
    "ACTIONS",
    "EconParams",
    "EconResult",
    "GpuEconInput",
    "ModelParams",
    "Recommender",
    "UnknownModelError",
    "econ_metric_families",
    "load_params",
    "value_fleet",
    "value_gpu",
]
