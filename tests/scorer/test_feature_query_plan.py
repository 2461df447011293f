"""The feature frame sends a feature's parts, not its whole expression: the same values.

A 7-day change sends its recent and its earlier value (the recent one is another feature's
query), a value against its model's median sends only the fleet's values (the median is taken
per model in the scorer)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gpu_health import stack
from gpu_health.scorer.feature_plan import combine, plan_queries, queries_of
from gpu_health.scorer.feature_promql import TwoPart, VsModel, gauge
from gpu_health.scorer.feature_schema import OURS, schema_by_name
from gpu_health.scorer.features import FEATURES, compute_features
from gpu_health.scorer.promclient import PromClient, PromConfig
from tests.conftest import import_openmetrics
from tests.scorer_fleet import DAY, make_fleet, openmetrics

START = 1_700_000_000
#: Two GPUs fail on days 10.5 and 9.8 after a 5-day precursor (a corrected-ECC ramp, 2 °C a
#: day warmer), so at day 9.5 every 7-day change has a value, and theirs are not zero.
FAILS = {1: 10.5, 5: 9.8}
AT = START + 9.5 * DAY
SPLIT = [f.name for f in FEATURES if isinstance(f.build, TwoPart | VsModel)]


def _history(schema: str) -> str:
    return openmetrics(make_fleet(fail_days=FAILS), days=10, step=1800, schema=schema, start=START)


def _frame(client: PromClient, schema: str, share_parts: bool) -> np.ndarray:
    frame = compute_features(client, schema, AT, share_parts=share_parts)  # type: ignore[arg-type]
    assert frame.failed_queries == 0
    assert sorted(g[2] for g in frame.gpus) == [f"GPU-{i:04d}-test" for i in range(12)]
    order = np.argsort([g[2] for g in frame.gpus])  # rows by GPU index
    return frame.values[order]


def test_the_plan_sends_each_query_once_and_the_parts_instead_of_the_whole() -> None:
    for schema in ("ours", "dcgm"):
        s = schema_by_name(schema)
        plan = plan_queries(s, FEATURES)
        assert len(set(plan.queries)) == len(plan.queries)
        whole = {f.name: f.build(s) for f in FEATURES}
        shared = 0
        readers: dict[int, int] = {}
        for uses in plan.uses:
            for k in set(uses):
                readers[k] = readers.get(k, 0) + 1
        for f, uses in zip(FEATURES, plan.uses, strict=True):
            if f.name not in SPLIT or whole[f.name] is None:
                continue
            assert whole[f.name] not in plan.queries
            sent = tuple(plan.queries[k] for k in uses)
            assert sent == queries_of(f.build, s)
            if isinstance(f.build, VsModel):
                # only the fleet's values, once: no median inside the query
                assert sent == (f.build.fleet(s),) and "quantile" not in sent[0]
            else:
                # the recent part is another feature's query, sent once for both
                shared += readers[uses[0]] > 1
        assert shared == 5, schema
        # without sharing, every feature sends its whole expression
        plain = plan_queries(s, FEATURES, share_parts=False)
        assert set(plain.queries) == {q for q in whole.values() if q is not None}


def test_a_model_median_taken_in_the_scorer_is_promqls() -> None:
    """quantile(0.5) interpolates between the two middle values; a GPU without a finite value
    is left out of its model's median and has none itself; a model of one GPU is its own
    median; a GPU the frame does not score still counts in its model's median."""
    build = VsModel(gauge("avg_over_time", "gpu_power_watts", "7d"), "/")
    answer = [
        ("a", "H100", 400.0, ""),
        ("b", "H100", 500.0, ""),
        ("c", "H100", 700.0, ""),
        ("d", "H100", 900.0, ""),  # not scored here (another shard's, or gone)
        ("e", "H100", float("inf"), ""),
        ("f", "A100", 300.0, ""),
    ]
    rows = {"a": 0, "b": 1, "c": 2, "e": 3, "f": 4, "g": 5}
    column = combine(build, iter([answer]), rows, OURS)
    median = 600.0  # of 400, 500, 700, 900
    np.testing.assert_allclose(column[:3], [400 / median, 500 / median, 700 / median])
    assert np.isnan(column[3]) and column[4] == 1.0 and np.isnan(column[5])
    minus = combine(VsModel(build.inner, "-"), iter([answer]), rows, OURS)
    np.testing.assert_allclose(minus[:3], [-200.0, -100.0, 100.0])
    halves = [("a", "H100", 5.0, ""), ("b", "H100", -5.0, "")]
    zero = combine(build, iter([halves]), {"a": 0, "b": 1}, OURS)
    assert np.isnan(zero).all()  # a median of 0 divides into nothing, not ±Inf


@pytest.mark.integration
@pytest.mark.parametrize("schema", ["ours", "dcgm"])
def test_parts_combined_per_gpu_equal_the_whole_expression(
    tmp_path: Path, prometheus_factory, victoriametrics_factory, schema: str
) -> None:
    om = tmp_path / f"{schema}.om"
    om.write_text(_history(schema))
    data = tmp_path / f"tsdb-{schema}"
    stack.promtool_backfill(om, data, block_duration="480h")
    client = PromClient(PromConfig(prometheus_factory(data_dir=data).url, retries=1))
    parts = _frame(client, schema, share_parts=True)
    whole = _frame(client, schema, share_parts=False)
    np.testing.assert_allclose(parts, whole, rtol=0, atol=1e-9, equal_nan=True)
    names = [f.name for f in FEATURES]
    failing = parts[[1, 5]][:, [names.index(n) for n in SPLIT]]
    # not vacuous: the failing GPUs' changes are there and move (ECC and temperature)
    assert np.isfinite(failing).mean() > 0.5 and (np.abs(np.nan_to_num(failing)) > 0.1).sum() >= 6
    if schema == "dcgm":  # the same on VictoriaMetrics
        vm = victoriametrics_factory()
        import_openmetrics(vm, _history(schema))
        vm_client = PromClient(PromConfig(vm.url, retries=1))
        np.testing.assert_allclose(
            _frame(vm_client, schema, share_parts=True),
            _frame(vm_client, schema, share_parts=False),
            rtol=0,
            atol=1e-9,
            equal_nan=True,
        )
