"""Which queries a feature frame sends, and how their answers become feature values.

Most features are one query. Five kinds are sent as parts instead, each part once however
many features read it, and combined here per GPU:

* :class:`~gpu_health.scorer.feature_promql.TwoPart` (a 7-day change, a log change): its recent
  and its earlier value; the recent one is usually another feature's whole query.
* :class:`~gpu_health.scorer.feature_promql.VsModel` (a value against its model's median): the
  fleet's values only, the median per model taken here, where the whole expression makes
  Prometheus evaluate the values twice.
* :class:`~gpu_health.scorer.feature_promql.XidClassEvents` (XID events of one class, on
  dcgm-exporter's gauge): one query for every class, its answers labelled by part, each class
  taken here (:func:`~gpu_health.scorer.feature_parts.xid_class_value`).
* :class:`~gpu_health.scorer.feature_promql.NodeExcess` (a GPU's average against its node's
  median): the sum and count of the samples per GPU and node name, the medians and the
  weighted average taken here (:func:`~gpu_health.scorer.feature_parts.node_excess_value`).
* :class:`~gpu_health.scorer.feature_promql.LostGpus` (GPUs lost on the node, in the fleet):
  one query for both, the (node, UUID) pairs seen within the window and reporting now, counted
  here (:func:`~gpu_health.scorer.feature_parts.lost_gpus_value`).

Each combination computes what the whole expression computes; ``share_parts=False`` sends the
whole expressions instead (the release before, for ``bench/bench_feature_queries.py``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from gpu_health.scorer.feature_parts import lost_gpus_value, node_excess_value, xid_class_value
from gpu_health.scorer.feature_promql import (
    Builder,
    LostGpus,
    NodeExcess,
    TwoPart,
    VsModel,
    XidClassEvents,
)
from gpu_health.scorer.feature_schema import Schema
from gpu_health.scorer.feature_table import Feature

FloatArray = npt.NDArray[np.float64]
#: The kinds sent as one query of parts, labelled by
#: :data:`~gpu_health.scorer.feature_promql.PART_LABEL`; their ``parts(s)`` is None where the
#: schema (or a scorer shard) sends the whole expression.
LABELLED = (XidClassEvents, NodeExcess, LostGpus)
#: One query's answer: (UUID, model, value, part) of every series it returned; values as
#: Prometheus wrote them (NaN and ±Inf included), ``part`` the series'
#: :data:`~gpu_health.scorer.feature_promql.PART_LABEL`
#: ("" where the query has no parts).
Answer = list[tuple[str, str, float, str]]


def queries_of(build: Builder, s: Schema, share_parts: bool = True) -> tuple[str, ...] | None:
    """The queries one feature sends, in the order :func:`combine` reads their answers; None
    when the schema lacks a signal it needs."""
    if share_parts and isinstance(build, TwoPart):
        recent = queries_of(build.recent, s, share_parts)
        baseline = queries_of(build.baseline, s, share_parts)
        return None if recent is None or baseline is None else recent + baseline
    if share_parts and isinstance(build, VsModel):
        fleet = build.fleet(s)
        return None if fleet is None else (fleet,)
    if share_parts and isinstance(build, LABELLED) and (parts := build.parts(s)) is not None:
        return (parts,)
    whole = build(s)
    return None if whole is None else (whole,)


def combine(
    build: Builder,
    answers: Iterator[Answer],
    rows: dict[str, int],
    s: Schema,
    share_parts: bool = True,
) -> FloatArray:
    """One feature's column (``rows``: UUID -> row) from the answers to its
    :func:`queries_of` for schema ``s``, consumed in that order. Non-finite results are
    missing (NaN)."""
    if share_parts and isinstance(build, TwoPart):
        a = combine(build.recent, answers, rows, s, share_parts)
        b = combine(build.baseline, answers, rows, s, share_parts)
        if build.kind == "diff":
            return a - b
        result: FloatArray = np.log1p(np.maximum(a, 0.0)) - np.log1p(np.maximum(b, 0.0))
        return result
    answer = next(answers)
    column = np.full(len(rows), np.nan)
    if share_parts and isinstance(build, VsModel):
        # PromQL's quantile(0.5) is numpy's median (linear between the two middle values).
        # Series whose value is not finite are left out of the median (PromQL would sort them
        # in): a GPU without a power reading must not move its model's reference.
        values: dict[str, list[float]] = {}
        for _, model, v, _ in answer:
            if np.isfinite(v):
                values.setdefault(model, []).append(v)
        median = {model: float(np.median(v)) for model, v in values.items()}
        for uuid, model, v, _ in answer:
            i = rows.get(uuid)
            if i is not None and model in median:
                column[i] = v - median[model] if build.op == "-" else _divide(v, median[model])
    elif share_parts and isinstance(build, LABELLED) and build.parts(s) is not None:
        for (uuid, _), v in _labelled_value(build, answer).items():
            i = rows.get(uuid)
            if i is not None:
                column[i] = v
    else:
        for uuid, _, v, _ in answer:
            i = rows.get(uuid)
            if i is not None:
                column[i] = v
    column[~np.isfinite(column)] = np.nan
    return column


def _labelled_value(
    build: XidClassEvents | NodeExcess | LostGpus, answer: Answer
) -> dict[tuple[str, str], float]:
    """The feature's value per (UUID, model) from its parts query's answer."""
    if isinstance(build, XidClassEvents):
        return xid_class_value(build.xid_class, answer)
    if isinstance(build, NodeExcess):
        return node_excess_value(answer)
    return lost_gpus_value(build.scope, answer)


def _divide(a: float, b: float) -> float:
    return a / b if b != 0 else np.nan


@dataclass(frozen=True)
class QueryPlan:
    """The distinct queries a feature frame sends, and which of them each feature reads."""

    queries: tuple[str, ...]
    #: per feature, indexes into :attr:`queries` in :func:`combine`'s order; empty where the
    #: schema lacks the signal or the feature comes from the inventory.
    uses: tuple[tuple[int, ...], ...]


def plan_queries(s: Schema, features: Sequence[Feature], share_parts: bool = True) -> QueryPlan:
    """Each distinct query once, in the order of the features that first read it."""
    index: dict[str, int] = {}
    uses: list[tuple[int, ...]] = []
    for f in features:
        found = None if f.from_inventory is not None else queries_of(f.build, s, share_parts)
        uses.append(tuple(index.setdefault(q, len(index)) for q in found or ()))
    return QueryPlan(tuple(index), tuple(uses))
