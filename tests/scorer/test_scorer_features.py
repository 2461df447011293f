"""Feature PromQL against a real Prometheus holding hand-made history, in both schemas."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from gpu_health import stack
from gpu_health.scorer.features import (
    FEATURES,
    compute_features,
    detect_schema,
    inventory_query,
    schema_by_name,
)
from gpu_health.scorer.promclient import PromClient, PromConfig
from tests.scorer_fleet import DAY, make_fleet, openmetrics

START = 1_700_000_000
AT = START + 6.4 * DAY

pytestmark = pytest.mark.integration


def _serve(tmp_path: Path, prometheus_factory, schema: str) -> PromClient:
    om = tmp_path / f"{schema}.om"
    om.write_text(openmetrics(make_fleet(), days=6.5, step=1800, schema=schema, start=START))
    data = tmp_path / f"tsdb-{schema}"
    stack.promtool_backfill(om, data, block_duration="480h")
    server = prometheus_factory(data_dir=data)
    return PromClient(PromConfig(server.url, retries=1))


@pytest.fixture
def both(tmp_path: Path, prometheus_factory) -> dict[str, PromClient]:
    return {s: _serve(tmp_path, prometheus_factory, s) for s in ("ours", "dcgm")}


def test_features_agree_between_our_schema_and_dcgm(both: dict[str, PromClient]) -> None:
    frames = {s: compute_features(c, s, AT) for s, c in both.items()}  # type: ignore[arg-type]
    ours, dcgm = frames["ours"], frames["dcgm"]
    assert ours.failed_queries == dcgm.failed_queries == 0
    # GPU 5 failed at day 6.3 and stopped reporting: it is not scored at day 6.4.
    assert [g[2] for g in ours.gpus] == [g[2] for g in dcgm.gpus]
    assert "GPU-0005-test" not in [g[2] for g in ours.gpus]
    assert len(ours.gpus) == 11
    assert ours.gpus[0] == ("node0", "0", "GPU-0000-test", "NVIDIA H100 80GB HBM3")
    assert dcgm.gpus[0] == ours.gpus[0]  # Hostname -> node, UUID -> uuid, modelName -> model
    shared = 0
    for j, name in enumerate(ours.names):
        a, b = ours.values[:, j], dcgm.values[:, j]
        both_finite = np.isfinite(a) & np.isfinite(b)
        if both_finite.any():
            shared += 1
            np.testing.assert_allclose(
                a[both_finite], b[both_finite], rtol=0.01, atol=1e-6, err_msg=name
            )
    assert shared >= 15


def test_feature_values_match_the_history(both: dict[str, PromClient]) -> None:
    frame = compute_features(both["dcgm"], "dcgm", AT)
    row = {g[2]: i for i, g in enumerate(frame.gpus)}

    def value(uuid: str, name: str) -> float:
        return float(frame.column(name)[row[uuid]])

    # Odd GPUs log 10 corrected ECC errors a day; even ones none.
    assert value("GPU-0003-test", "ecc_corrected_per_day_24h") == pytest.approx(10, rel=0.15)
    assert value("GPU-0002-test", "ecc_corrected_per_day_24h") == 0
    # GPU 1 is 4.9 days into its precursor ramp: far more errors, and it runs hot.
    assert value("GPU-0001-test", "ecc_corrected_per_day_24h") > 500
    assert value("GPU-0001-test", "temp_gpu_excess_24h") > 5
    assert value("GPU-0001-test", "temp_gpu_trend_per_day_7d") == pytest.approx(2.0, rel=0.25)
    # GPU 3 replays one PCIe packet an hour: 1/60 per minute.
    assert value("GPU-0003-test", "pcie_replays_per_min_24h") == pytest.approx(1 / 60, rel=0.1)
    # dcgm-exporter keeps only the last XID: one change from 0 to 63 in the week.
    assert value("GPU-0001-test", "xid_events_7d") == 1
    assert value("GPU-0000-test", "xid_events_7d") == 0
    # Signals dcgm-exporter lacks are missing, not zero and not an error.
    assert math.isnan(value("GPU-0001-test", "row_remap_pending_7d"))
    assert math.isnan(value("GPU-0001-test", "health_score"))
    assert value("GPU-0001-test", "utilization_avg_30d") == pytest.approx(0.8)


def test_schema_detection_and_empty_prometheus(
    both: dict[str, PromClient], prometheus_factory
) -> None:
    assert detect_schema(both["ours"], AT) == "ours"
    assert detect_schema(both["dcgm"], AT) == "dcgm"
    # A shard keeps only its GPUs but their fleet-relative features still see the whole fleet.
    whole = compute_features(both["dcgm"], "dcgm", AT)
    part = compute_features(
        both["dcgm"], "dcgm", AT, keep=lambda u: u in ("GPU-0001-test", "GPU-0003-test")
    )
    assert [g[2] for g in part.gpus] == ["GPU-0001-test", "GPU-0003-test"]
    rows = [i for i, g in enumerate(whole.gpus) if g[2] in ("GPU-0001-test", "GPU-0003-test")]
    np.testing.assert_allclose(
        part.column("temp_gpu_excess_24h"), whole.column("temp_gpu_excess_24h")[rows]
    )
    empty = PromClient(PromConfig(prometheus_factory().url, retries=1))
    frame = compute_features(empty, "dcgm", None)
    assert frame.gpus == [] and frame.failed_queries == 0


def test_every_feature_query_parses_in_both_schemas() -> None:
    promql_parser = pytest.importorskip("promql_parser")
    for schema in ("ours", "dcgm"):
        s = schema_by_name(schema)
        promql_parser.parse(inventory_query(s))
        for feature in FEATURES:
            query = feature.build(s)
            if query is not None:
                promql_parser.parse(query)
