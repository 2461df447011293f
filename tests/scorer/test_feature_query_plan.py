"""The feature frame sends a two-part feature's parts, not its whole expression: same values."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gpu_health import stack
from gpu_health.scorer.feature_frame import plan_queries
from gpu_health.scorer.feature_promql import TwoPart
from gpu_health.scorer.feature_schema import schema_by_name
from gpu_health.scorer.features import FEATURES, compute_features
from gpu_health.scorer.promclient import PromClient, PromConfig
from tests.conftest import import_openmetrics
from tests.scorer_fleet import DAY, make_fleet, openmetrics

START = 1_700_000_000
#: Two GPUs fail on days 10.5 and 9.8 after a 5-day precursor (a corrected-ECC ramp, 2 °C a
#: day warmer), so at day 9.5 every 7-day change has a value, and theirs are not zero.
FAILS = {1: 10.5, 5: 9.8}
AT = START + 9.5 * DAY
TWO_PART = [f.name for f in FEATURES if isinstance(f.build, TwoPart)]


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
        for f, uses in zip(FEATURES, plan.uses, strict=True):
            if not isinstance(f.build, TwoPart) or whole[f.name] is None:
                continue
            assert whole[f.name] not in plan.queries
            recent, baseline = (plan.queries[k] for k in uses)
            assert (recent, baseline) == f.build.parts(s)
            # the recent part is another feature's whole query, sent once for both
            shared += recent in whole.values()
        assert shared >= 5, schema
        # without sharing, every feature sends its whole expression
        plain = plan_queries(s, FEATURES, share_parts=False)
        assert set(plain.queries) == {q for q in whole.values() if q is not None}


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
    failing = parts[[1, 5]][:, [names.index(n) for n in TWO_PART]]
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
