"""Which name a run reads the node under: the one the fleet's GPU series carry.

dcgm-exporter named its node label ``Hostname`` and, since NVIDIA/dcgm-exporter#655, also
``hostname``; a fleet mid-upgrade has both. Every feature therefore reads either name as the
node (:meth:`~gpu_health.scorer.feature_schema.Schema.named`), which wraps each selector in a
``label_replace`` that Prometheus evaluates per series and per step. Most fleets carry one of
the two names only, and there the rewrite does nothing but cost: on the 2,000-GPU history of
docs/benchmarks.md it took 0.60 s of a run's 23.06 s of Prometheus time, nearly all in the
power-noise subquery, which relabels every GPU's reading three times at each of its 144 steps,
and whole runs took 0.98x as long without it ("Reading the node under one name").

So each run asks Prometheus which of the two names the GPU series hold within the longest
reach of the features, an index lookup of about 20 ms that reads no sample, and reads the node
under the one name the fleet has. The answers are the same: only the rewrite goes.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace

from gpu_health.scorer.feature_promql import window_seconds
from gpu_health.scorer.feature_schema import Schema, presence_names
from gpu_health.scorer.promclient import PromClient, PrometheusError

log = logging.getLogger("gpu_health.scorer.features")

#: How far back the lookup looks for either name: beyond the 30 days and the presence window
#: the longest query that reads the node looks back (tests/scorer/test_node_label.py checks
#: each against it). Looking further than needed would only keep a rewrite that an older name
#: makes unnecessary.
NODE_LABEL_REACH = "32d"


def presence_match(s: Schema) -> str:
    """The series selector of the signals whose presence lists a GPU: every exporter sends
    them, with the same identity labels as its other series."""
    return f'{{__name__=~"{presence_names(s)}"}}'


def node_read_once(client: PromClient, s: Schema, at: float | None) -> Schema:
    """``s`` reading the node under the only name the GPU series of the last
    :data:`NODE_LABEL_REACH` give it: without the alias where none carries it, under the alias
    where none carries the usual name. ``s`` unchanged where both are carried (a fleet
    mid-upgrade), where the schema has no alias, and where it cannot be told: the lookup
    failed, or its answer lists no UUID label (a store that answered for no GPU series)."""
    if not s.node_alias:
        return s
    end = time.time() if at is None else at
    start = end - window_seconds(NODE_LABEL_REACH)
    try:
        names = set(client.label_names(presence_match(s), start, end))
    except PrometheusError as exc:
        log.debug("node label check failed: %s", exc)
        return s
    if s.uuid not in names:
        return s
    usual, alias = s.node in names, s.node_alias in names
    if usual and alias:
        return s
    if alias:
        return replace(s, node=s.node_alias, node_alias="")
    return replace(s, node_alias="")
