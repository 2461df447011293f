"""Scorer sharding: every GPU scored by exactly one replica, filtered inside Prometheus."""

from __future__ import annotations

import time
import uuid as uuidlib
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpu_health import stack
from gpu_health.errors import UserError
from gpu_health.scorer.sharding import Shard, bucket
from tests.conftest import PrometheusFactory


def _gpu_uuid(seed: int) -> str:
    return "GPU-" + str(uuidlib.UUID(int=(seed * 0x9E3779B97F4A7C15 + 7) % (1 << 128)))


@given(st.integers(1, 16), st.lists(st.text(min_size=1, max_size=40), max_size=30))
@settings(max_examples=100, deadline=None)
def test_every_uuid_belongs_to_exactly_one_shard(count: int, odd_ids: list[str]) -> None:
    uuids = [_gpu_uuid(i) for i in range(50)] + odd_ids
    for value in uuids:
        owners = [n for n in range(count) if Shard(n, count).owns(value)]
        assert len(owners) == 1


def test_shards_are_balanced_and_stable() -> None:
    uuids = [str("GPU-" + str(uuidlib.uuid4())) for _ in range(8000)]
    sizes = [sum(Shard(n, 4).owns(u) for u in uuids) for n in range(4)]
    assert all(abs(size - 2000) < 250 for size in sizes), sizes
    assert [Shard(1, 4).owns(u) for u in uuids] == [Shard(1, 4).owns(u) for u in uuids]
    assert bucket("GPU-ab000000-0000-0000-0000-000000000000") == 0xAB


@pytest.mark.parametrize("text", ["3", "4/4", "-1/2", "1/0", "a/b", "0/300"])
def test_bad_shard_text_is_a_one_line_error(text: str) -> None:
    with pytest.raises(UserError, match="--shard"):
        Shard.parse(text)


def test_whole_fleet_needs_no_filter() -> None:
    assert Shard.parse("0/1").selector() == ""


@pytest.mark.integration
def test_regex_filters_inside_a_real_prometheus(
    prometheus_factory: PrometheusFactory, backfill: Callable[[str], Path]
) -> None:
    """The PromQL regex of each shard selects exactly the GPUs that shard owns."""
    now = int(time.time()) - 600
    uuids = [_gpu_uuid(i) for i in range(60)]
    uuids[5] = uuids[5].upper()  # upper-case UUIDs must land in the same shard
    lines = ["# TYPE gpu_up gauge"]
    lines += [f'gpu_up{{uuid="{u}"}} 1 {now}' for u in uuids]
    prom = prometheus_factory(data_dir=backfill("\n".join(lines) + "\n# EOF\n"))
    seen: list[str] = []
    for n in range(3):
        shard = Shard(n, 3)
        result = stack.query(prom.url, f"gpu_up{{{shard.selector()}}}", at=now + 1)
        got = {r["metric"]["uuid"] for r in result}
        assert got == {u for u in uuids if shard.owns(u)}
        seen += got
    assert sorted(seen) == sorted(uuids)


@pytest.mark.integration
@pytest.mark.parametrize("schema", ["ours", "dcgm"])
def test_sharded_feature_queries_match_the_whole_fleet(
    schema: str, prometheus_factory: PrometheusFactory, tmp_path: Path
) -> None:
    """Each shard's PromQL carries its uuid regex, but for the fleet's values behind a model
    median and the fleet's sums and counts behind a node comparison (sent once, the medians
    taken in the scorer), and together the shards give the same features (fleet and node
    medians included) as one scorer reading the whole fleet."""
    import math
    import subprocess
    import sys

    from gpu_health.scorer import features as feats
    from gpu_health.scorer import node_label
    from gpu_health.scorer.feature_frame import (
        presence_window,
        renamed_fields_query,
        repeated_series_query,
        volatile_ecc_only_query,
    )
    from gpu_health.scorer.feature_promql import Builder, NodeExcess, TwoPart, VsModel
    from gpu_health.scorer.promclient import PromClient, PromConfig
    from gpu_health.telemetry.freshness import interval_query

    def behind_medians(build: Builder, s: feats.Schema) -> list[str | None]:
        """The queries behind ``build``'s medians: the fleet's values, or its sums and counts
        per GPU and node name."""
        if isinstance(build, TwoPart):
            return behind_medians(build.recent, s) + behind_medians(build.baseline, s)
        if isinstance(build, VsModel):
            return [build.fleet(s)]
        return [build.parts(s)] if isinstance(build, NodeExcess) else []

    end = int(time.time()) - 120
    data = tmp_path / "tsdb"
    subprocess.run(
        [str(Path(sys.executable).parent / "gpu-health"), "backfill", "--gpus", "16",
         "--days", "0.1", "--resolution", "60s", "--seed", "11", "--schema", schema,
         "--end-time", str(end), "--no-health", "--out", str(data)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    prom = prometheus_factory(data_dir=data)
    queries: list[str] = []

    class Recording(PromClient):
        def query(self, promql: str, at: float | None = None) -> list[dict[str, object]]:
            queries.append(promql)
            return super().query(promql, at)

    client = Recording(PromConfig(prom.url))
    # the schema as a run reads it: the node under the one name this fleet carries
    s = node_label.node_read_once(client, feats.schema_by_name(schema), end)
    fleet_values = {q for f in feats.FEATURES for q in behind_medians(f.build, s) if q}
    whole = feats.compute_features(client, schema, at=end, workers=2)  # type: ignore[arg-type]
    fresh = presence_window(client, end)
    assert len(whole.gpus) == 16
    by_uuid = {g[2]: whole.values[i] for i, g in enumerate(whole.gpus)}
    seen: list[str] = []
    for n in range(2):
        shard = Shard(n, 2)
        queries.clear()
        part = feats.compute_features(
            client,
            schema,
            at=end,
            workers=2,
            keep=shard.owns,
            shard_regex=shard.uuid_regex(),  # type: ignore[arg-type]
        )
        # Not the inventory, nor the presence window (one per fleet: every shard tells present
        # from absent GPUs alike), nor the checks for GPUs reported twice, for volatile-only
        # ECC and for renamed dcgm fields (one per fleet too).
        fleet_wide = {
            interval_query(),
            repeated_series_query(replace(s, fresh=fresh)),
            volatile_ecc_only_query(replace(s, fresh=fresh)),
            renamed_fields_query(replace(s, fresh=fresh)),
        }
        feature_queries = [
            q for q in queries if not q.startswith("group by") and q not in fleet_wide
        ]
        unfiltered = {q for q in feature_queries if shard.uuid_regex() not in q}
        assert feature_queries and unfiltered and unfiltered <= fleet_values
        for i, gpu in enumerate(part.gpus):
            assert shard.owns(gpu[2])
            for got, want in zip(part.values[i], by_uuid[gpu[2]], strict=True):
                assert (math.isnan(got) and math.isnan(want)) or got == pytest.approx(want)
            seen.append(gpu[2])
    assert sorted(seen) == sorted(by_uuid)
