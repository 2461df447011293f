"""Inventory fields from Kubernetes node labels, as kube-state-metrics publishes them.

``kube_node_labels`` carries each allowed node label as ``label_<name with _ for . / ->``; the
scorer reads it from the same Prometheus it scores from, so no Kubernetes API access is needed.
Only labels allow-listed in kube-state-metrics (``--metric-labels-allowlist``) appear there.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from gpu_health.scorer.inventory.fields import RESERVED_FIELDS, RecordError, parse_record
from gpu_health.scorer.inventory.model import Asset
from gpu_health.scorer.planning.plan import UNKNOWN

#: Kubernetes node label -> inventory field. The well-known topology zone is the datacenter;
#: the rest are labels an operator sets (``kubectl label node ... gpu-health.io/rack=r07``).
NODE_LABELS: dict[str, str] = {
    "topology.kubernetes.io/zone": "datacenter",
    "gpu-health.io/datacenter": "datacenter",
    "gpu-health.io/row": "row",
    "gpu-health.io/rack": "rack",
    "gpu-health.io/team": "team",
    "gpu-health.io/sla-tier": "sla_tier",
}
QUERY = "kube_node_labels"


def metric_label(node_label: str) -> str:
    """The label name kube-state-metrics gives a node label."""
    return "label_" + re.sub(r"[^a-zA-Z0-9_]", "_", node_label)


def fields_from_labels(node: str, labels: Mapping[str, str]) -> Asset | None:
    """A node-wide record from one ``kube_node_labels`` series, or None when nothing applies.

    The specific gpu-health.io labels win over the generic topology zone.
    """
    raw: dict[str, Any] = {}
    for node_label, field in NODE_LABELS.items():
        value = labels.get(metric_label(node_label), "")
        # A zone labelled "unknown" says what an absent label says; the file refuses that name
        # (the plan's placeholder, see fields.RESERVED_FIELDS), and taking it as a bad record
        # would drop the node's rack and team labels with it.
        if value and not (field in RESERVED_FIELDS and value.casefold() == UNKNOWN.casefold()):
            raw[field] = value
    if not raw:
        return None
    raw["node"] = node
    try:
        return parse_record(raw, f"node labels of {node}", origin="node labels")
    except RecordError:
        return None  # an unusable label value is ignored: labels are a fallback source


def from_series(series: Iterable[Mapping[str, Any]]) -> dict[str, Asset]:
    """``node -> record`` from the result of the ``kube_node_labels`` query."""
    out: dict[str, Asset] = {}
    for item in series:
        labels = item.get("metric", {})
        node = str(labels.get("node", ""))
        if node:
            asset = fields_from_labels(node, labels)
            if asset is not None:
                out[node] = asset
    return out
