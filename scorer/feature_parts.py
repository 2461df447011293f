"""One feature's values from a query whose answers are labelled by part.

Some features are sent as a query of parts rather than as their whole expression
(:mod:`gpu_health.scorer.feature_plan`): the parts read each range of samples once, where the
whole expression makes Prometheus read it again for every place it appears. Each function here
computes from the parts what the feature's whole expression computes, per (UUID, model): the
answer rows are (UUID, model, value, part), ``part`` the series'
:data:`~gpu_health.scorer.feature_promql.PART_LABEL`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

import numpy as np

from gpu_health.scorer.feature_promql import MIN_NODE_PEERS

Key = tuple[str, str]
Row = tuple[str, str, float, str]


def xid_class_value(xid_class: str, parts: Iterable[Row]) -> dict[Key, float]:
    """One class's XID events from
    :meth:`~gpu_health.scorer.feature_promql.XidClassEvents.parts`: the gauge's changes where
    the GPU's last code is of the class, 0 where it is of another, plus the class's codes born
    in the window; a GPU with neither part has no value (as ``sum by`` of the whole
    expression's two tagged halves)."""
    rows = list(parts)
    hit = {(u, m) for u, m, _, p in rows if p == f"hit:{xid_class}"}
    out: dict[Key, float] = {}
    for u, m, v, p in rows:
        if p == "changes":
            out[(u, m)] = out.get((u, m), 0.0) + (v if (u, m) in hit else 0.0 * v)
        elif p == f"born:{xid_class}":
            out[(u, m)] = out.get((u, m), 0.0) + v
    return out


def node_excess_value(parts: Iterable[Row]) -> dict[Key, float]:
    """The GPU's average minus its node's median from
    :attr:`~gpu_health.scorer.feature_promql.NodeExcess.parts` (``sum:<node>`` and
    ``count:<node>`` per GPU and node name): each piece's mean against the median of the
    pieces on its node where the node has at least
    :data:`~gpu_health.scorer.feature_promql.MIN_NODE_PEERS` of them, else against the median of
    its model's GPUs' means, then the pieces averaged per GPU weighted by their samples.

    One difference is by design, as for a value against its model's median
    (:func:`~gpu_health.scorer.feature_plan.combine`): a mean that is not finite is left out
    of the medians, where PromQL's quantile would sort it in."""
    sums: dict[tuple[str, str, str], float] = {}
    counts: dict[tuple[str, str, str], float] = {}
    for u, m, v, p in parts:
        kind, _, node = p.partition(":")
        if kind == "sum":
            sums[(u, m, node)] = v
        elif kind == "count":
            counts[(u, m, node)] = v
    means = {piece: sums[piece] / counts[piece] for piece in sums.keys() & counts.keys()}
    on_node: dict[str, list[float]] = {}
    for (_, _, node), mean in means.items():
        on_node.setdefault(node, []).append(mean)
    pieces_on: dict[str, int] = {}
    for _, _, node in counts:
        pieces_on[node] = pieces_on.get(node, 0) + 1
    node_ref = {
        node: _median(values)
        for node, values in on_node.items()
        if pieces_on[node] >= MIN_NODE_PEERS
    }
    gpu_sum: dict[Key, float] = {}
    gpu_count: dict[Key, float] = {}
    for (u, m, _), v in sums.items():
        gpu_sum[(u, m)] = gpu_sum.get((u, m), 0.0) + v
    for (u, m, _), v in counts.items():
        gpu_count[(u, m)] = gpu_count.get((u, m), 0.0) + v
    by_model: dict[str, list[float]] = {}
    for key in gpu_sum.keys() & gpu_count.keys():
        by_model.setdefault(key[1], []).append(gpu_sum[key] / gpu_count[key])
    model_ref = {model: _median(values) for model, values in by_model.items()}
    weighted: dict[Key, float] = {}
    for (u, m, node), mean in means.items():
        ref = node_ref.get(node, model_ref.get(m))
        if ref is not None and not np.isnan(ref):
            excess = (mean - ref) * counts[(u, m, node)]
            weighted[(u, m)] = weighted.get((u, m), 0.0) + excess
    return {key: v / gpu_count[key] for key, v in weighted.items()}


def _median(values: list[float]) -> float:
    """PromQL's ``quantile(0.5)`` (linear between the two middle values) of the finite ones;
    NaN where none is."""
    finite = [v for v in values if np.isfinite(v)]
    return float(np.median(finite)) if finite else float("nan")


def lost_gpus_value(scope: Literal["node", "fleet"], parts: Iterable[Row]) -> dict[Key, float]:
    """GPUs lost within the window, for every GPU reporting now, from
    :meth:`~gpu_health.scorer.feature_promql.LostGpus.parts`: a lost GPU is a (node, UUID) pair
    seen within the window whose UUID reports nowhere now. ``node``: the pairs lost on the
    GPU's node (the larger count where it reports under two node names now). ``fleet``: the
    UUIDs lost from nodes where some GPU seen within the window reports now (a node down as a
    whole is its exporter or host, not failures), each once."""
    seen: set[tuple[str, str]] = set()
    here: dict[Key, set[str]] = {}
    for u, m, _, p in parts:
        kind, _, node = p.partition(":")
        if kind == "seen":
            seen.add((node, u))
        elif kind == "here":
            here.setdefault((u, m), set()).add(node)
    now = {u for u, _ in here}
    lost = {(node, u) for node, u in seen if u not in now}
    if scope == "node":
        on_node: dict[str, int] = {}
        for node, _ in lost:
            on_node[node] = on_node.get(node, 0) + 1
        return {key: float(max(on_node.get(n, 0) for n in nodes)) for key, nodes in here.items()}
    alive = {node for node, u in seen if u in now}
    count = float(len({u for node, u in lost if node in alive}))
    return dict.fromkeys(here, count)
