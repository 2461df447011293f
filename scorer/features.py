"""Failure-model features, computed server-side in PromQL for our schema and dcgm-exporter's.

One instant query per feature (or per part, see :mod:`~gpu_health.scorer.feature_plan`)
returns every GPU at once; serving evaluates it at "now", training evaluates the very same
query string at past timestamps (``time=``), so there is no train/serve skew. Features are
chosen to travel between fleets and simulators: rates per day, ratios, trends and deltas
against the GPU's own model peers, never absolute levels that depend on a SKU or on an
identity. A signal a schema lacks yields a missing feature (NaN), never an error.

Metric names come from :mod:`gpu_health.telemetry.catalogue`; the dcgm-exporter names and unit
scales come from the same table's :class:`DcgmField` entries.

The definitions live in modules by concern, all re-exported here (the import path the rest of
the code uses): :mod:`~gpu_health.scorer.feature_schema` (schemas and identity labels),
:mod:`~gpu_health.scorer.feature_promql` (the PromQL builders),
:mod:`~gpu_health.scorer.feature_table` (the feature table) and
:mod:`~gpu_health.scorer.feature_frame` (computing a frame against Prometheus).
"""

from __future__ import annotations

from gpu_health.scorer.feature_frame import (
    FeatureFrame,
    compute_features,
    count_gpus,
    detect_schema,
    partial_signals,
)
from gpu_health.scorer.feature_promql import XID_CLASSES, Builder
from gpu_health.scorer.feature_schema import (
    DCGM,
    IDENTITY,
    OURS,
    PRESENCE_LOOKBACK,
    SCHEMAS,
    Schema,
    SchemaName,
    counters_hint,
    identity_of,
    inventory_query,
    schema_by_name,
)
from gpu_health.scorer.feature_table import (
    ECON_FEATURES,
    FEATURES,
    FLEET_FEATURES,
    MODEL_FEATURES,
    PEER_FEATURES,
    Feature,
    feature_table_markdown,
)

__all__ = [
    "DCGM",
    "ECON_FEATURES",
    "FEATURES",
    "FLEET_FEATURES",
    "IDENTITY",
    "MODEL_FEATURES",
    "OURS",
    "PEER_FEATURES",
    "PRESENCE_LOOKBACK",
    "SCHEMAS",
    "XID_CLASSES",
    "Builder",
    "Feature",
    "FeatureFrame",
    "Schema",
    "SchemaName",
    "compute_features",
    "count_gpus",
    "counters_hint",
    "detect_schema",
    "feature_table_markdown",
    "identity_of",
    "inventory_query",
    "partial_signals",
    "schema_by_name",
]
