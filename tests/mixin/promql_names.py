"""The metric names a parsed PromQL expression selects, for tests that check what rules read."""

from __future__ import annotations

from typing import Any

import promql_parser


def metric_names(node: Any) -> set[str]:
    """Metric names read by a parsed PromQL expression (``promql_parser.parse``)."""
    if isinstance(node, promql_parser.VectorSelector):
        return {node.name} if node.name else set()
    names: set[str] = set()
    for attr in ("lhs", "rhs", "expr", "vector_selector"):
        child = getattr(node, attr, None)
        if child is not None:
            names |= metric_names(child)
    for arg in getattr(node, "args", None) or ():
        names |= metric_names(arg)
    return names
