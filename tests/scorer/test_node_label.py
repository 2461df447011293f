"""The node's name a run reads (:mod:`gpu_health.scorer.node_label`): dcgm-exporter's
``Hostname``, a newer one's ``hostname``, or both mid-upgrade. Where the fleet carries one
name, the features read it without the rewrite that merges the two; the answers are the
same, on Prometheus and on VictoriaMetrics."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from typing import Any

import numpy as np
import promql_parser
import pytest

from gpu_health.scorer import node_label
from gpu_health.scorer.feature_frame import compute_features
from gpu_health.scorer.feature_plan import plan_queries
from gpu_health.scorer.feature_promql import window_seconds
from gpu_health.scorer.feature_schema import Schema, inventory_query, schema_by_name
from gpu_health.scorer.feature_table import FEATURES
from gpu_health.scorer.history_source import to_hourly, to_recorded
from gpu_health.scorer.node_label import NODE_LABEL_REACH, node_read_once
from gpu_health.scorer.promclient import PromClient, PromConfig
from gpu_health.telemetry.freshness import MEASURE_WINDOW
from tests.conftest import PrometheusFactory
from tests.scorer_fleet import DAY, make_fleet, openmetrics

DAYS = 6.5


def _seconds(span: timedelta | None) -> float:
    return 0.0 if span is None else span.total_seconds()


def reach_s(node: Any) -> float:
    """How far before the evaluation time ``node`` (a parsed expression) reads a sample: a
    range and its offset, plus, under a subquery, the subquery's range and offset."""
    if isinstance(node, promql_parser.MatrixSelector):
        return _seconds(node.range) + _seconds(node.vector_selector.offset)
    if isinstance(node, promql_parser.VectorSelector):
        return _seconds(node.offset)
    own = 0.0
    if isinstance(node, promql_parser.SubqueryExpr):
        own = _seconds(node.range) + _seconds(node.offset)
    children = [getattr(node, a, None) for a in ("lhs", "rhs", "expr", "param")]
    children += list(getattr(node, "args", None) or ())
    return own + max((reach_s(c) for c in children if c is not None), default=0.0)


def test_no_query_reads_the_node_further_back_than_the_lookup_looks() -> None:
    """Every query of a run that reads the node (those the merging rewrite changes: the
    inventory and the node-level features), from any history, at the longest presence window
    a run can measure: a series older than the lookup's reach is read by no such query, so
    the name it carries cannot matter. (Other queries read further: the XID codes new in the
    last 30 days look 60 days back, but never at the node.)"""
    s = replace(schema_by_name("dcgm"), fresh=MEASURE_WINDOW)
    one = replace(s, node_alias="")
    merged = [inventory_query(s), *plan_queries(s, FEATURES).queries]
    plain = [inventory_query(one), *plan_queries(one, FEATURES).queries]
    node_readers = [q for q, p in zip(merged, plain, strict=True) if q != p]
    assert len(node_readers) >= 5
    longest = max(
        reach_s(promql_parser.parse(as_sent(q)))
        for q in node_readers
        for as_sent in (lambda q: q, to_hourly, to_recorded)
    )
    assert 30 * DAY < longest <= window_seconds(NODE_LABEL_REACH)


def _history(carried: str, start: float) -> str:
    """The fleet's dcgm-exporter history with its nodes under ``Hostname``, ``hostname``, or
    ``Hostname`` until an exporter upgrade 5.9 days in and ``hostname`` after (``upgrade``)."""
    at = {"Hostname": None, "hostname": 0.0, "upgrade": 5.9 * DAY}[carried]
    fleet = make_fleet()
    return openmetrics(
        fleet, days=DAYS, step=1800, schema="dcgm", start=start, lowercase_hostname_at=at
    )


@pytest.mark.parametrize(
    ("carried", "read_as"),
    [
        ("Hostname", ("Hostname", "")),
        ("hostname", ("hostname", "")),
        ("upgrade", ("Hostname", "hostname")),
    ],
)
def test_a_run_reads_the_node_under_the_name_the_fleet_carries(
    on_both_engines: Callable[[str], tuple[str, str]],
    monkeypatch: pytest.MonkeyPatch,
    carried: str,
    read_as: tuple[str, str],
) -> None:
    """The node read under the one name the fleet carries (both, merged, mid-upgrade), and
    every feature exactly as it reads with the rewrite that merges the two names."""
    start = float(int(time.time() - DAYS * DAY - 60))
    at = start + 6.4 * DAY
    for url in on_both_engines(_history(carried, start)):
        client = PromClient(PromConfig(url, retries=1))
        s = node_read_once(client, schema_by_name("dcgm"), at)
        assert (s.node, s.node_alias) == read_as, url
        once = compute_features(client, "dcgm", at)
        monkeypatch.setattr(node_label, "node_read_once", lambda _c, s, _a: s)
        merged = compute_features(client, "dcgm", at)
        monkeypatch.undo()
        assert once.gpus == merged.gpus and len(once.gpus) == 11, url
        assert once.failed_queries == merged.failed_queries == 0, url
        assert np.array_equal(once.values, merged.values, equal_nan=True), url
        node_feature = once.column("power_noise_node_log_24h")
        assert np.isfinite(node_feature).all(), url


def test_where_it_cannot_be_told_the_run_merges_both_names(
    prometheus_factory: PrometheusFactory,
) -> None:
    """No answer (nothing listens), or an answer about no GPU series (an empty database):
    both names are read, as before the lookup. Our own schema has one name and asks nothing."""
    dcgm, ours = schema_by_name("dcgm"), schema_by_name("ours")
    empty = PromClient(PromConfig(prometheus_factory().url, retries=1))
    closed = PromClient(PromConfig("http://127.0.0.1:9", retries=1, timeout_s=2.0))
    for client in (empty, closed):
        assert node_read_once(client, dcgm, time.time()) == dcgm
    assert node_read_once(closed, ours, None) == ours
    assert closed.queries == closed.errors == 1


def test_the_lookup_reads_the_label_names_of_the_presence_series(
    on_both_engines: Callable[[str], tuple[str, str]],
) -> None:
    """The answer the choice rests on, from both engines: the identity labels of the fleet's
    GPU series, the node under the name it was written with."""
    start = float(int(time.time() - DAYS * DAY - 60))
    for url in on_both_engines(_history("hostname", start)):
        client = PromClient(PromConfig(url, retries=1))
        s: Schema = schema_by_name("dcgm")
        names = set(client.label_names('{__name__=~"DCGM_FI_DEV_POWER_USAGE"}', start, time.time()))
        assert {"UUID", "modelName", "gpu", "hostname"} <= names, (url, names)
        assert s.node not in names, url
