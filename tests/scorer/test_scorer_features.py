"""Feature PromQL against a real Prometheus holding hand-made history, in both schemas."""

from __future__ import annotations

import math
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from gpu_health import stack
from gpu_health.scorer import feature_frame
from gpu_health.scorer.feature_promql import ECC_CORR_AGG, board_life_counter, offset_by
from gpu_health.scorer.feature_schema import Schema
from gpu_health.scorer.features import (
    FEATURES,
    compute_features,
    detect_schema,
    inventory_query,
    schema_by_name,
)
from gpu_health.scorer.promclient import PromClient, PromConfig
from tests.conftest import import_openmetrics
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
    # 24 h average now (4.4 days into a 2 °C/day ramp) minus 6 days earlier (flat), per day.
    assert value("GPU-0001-test", "temp_gpu_trend_per_day_7d") == pytest.approx(8.8 / 6, rel=0.1)
    # GPU 3 replays one PCIe packet an hour: 1/60 per minute.
    assert value("GPU-0003-test", "pcie_replays_per_min_24h") == pytest.approx(1 / 60, rel=0.1)
    # dcgm-exporter keeps only the last XID: one change from 0 to 63 in the week.
    assert value("GPU-0001-test", "xid_events_7d") == 1
    assert value("GPU-0000-test", "xid_events_7d") == 0
    # ... and that code (63, a row remap) is a memory-class XID.
    assert value("GPU-0001-test", "xid_memory_events_7d") == 1
    assert value("GPU-0001-test", "xid_bus_events_7d") == 0
    assert value("GPU-0001-test", "xid_other_events_7d") == 0
    # GPU 5 (node1) stopped reporting at day 6.3: its node peers carry the loss, others not.
    assert [value(f"GPU-000{i}-test", "node_lost_gpus_30d") for i in (4, 6, 7)] == [1, 1, 1]
    assert value("GPU-0001-test", "node_lost_gpus_30d") == 0
    # The fleet's own recent failures and its exposure, the same on every GPU: one GPU lost,
    # 12 GPUs reporting for 6.4 days (sampled every 6 h).
    assert {value(u, "fleet_lost_gpus_30d") for u in row} == {1}
    exposure = {value(u, "fleet_gpu_days_30d") for u in row}
    assert len(exposure) == 1 and exposure.pop() == pytest.approx(12 * 6.4, rel=0.1)
    # A history shorter than 7 days holds no "23 days before the last 7": no own baseline yet.
    assert math.isnan(value("GPU-0003-test", "ecc_corrected_per_day_prior_23d"))
    # Corrected errors on odd GPUs every 2.4 h: with 30-minute samples a 2-hour increase sees
    # 1.5 h of them, so about half of the week's 2-hour slots show activity.
    assert 0.3 * 168 <= value("GPU-0003-test", "ecc_corrected_active_hours_7d") <= 0.8 * 168
    assert value("GPU-0002-test", "ecc_corrected_active_hours_7d") == 0
    # GPU 1's corrected rate now is well above its own rate over the week before (which
    # already held part of the ramp); a steady GPU's change is about zero.
    assert value("GPU-0001-test", "ecc_corrected_log_change_7d") > 1
    assert abs(value("GPU-0003-test", "ecc_corrected_log_change_7d")) < 0.3
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


@pytest.mark.parametrize(
    ("schema", "relabel", "value"),
    [
        ("dcgm", "driver_change_at", 5.9 * DAY),
        ("ours", "driver_change_at", 5.9 * DAY),
        ("dcgm", "exporter_restart_at", 5.9 * DAY),
        ("dcgm", "lowercase_hostname_at", 5.9 * DAY),
        ("dcgm", "lowercase_hostname_at", 0.0),
        ("dcgm", "mig_instances", 3),
        ("dcgm", "xid_code_labels", True),
        ("dcgm", "job_hours", 8.0),
    ],
)
def test_relabelling_leaves_every_feature_unchanged(
    tmp_path: Path, prometheus_factory, schema: str, relabel: str, value: float
) -> None:
    """A driver upgrade relabels every series (new driver version); an exporter pod restart on
    Kubernetes renames ``Hostname`` and job churn changes ``pod``; a newer dcgm-exporter calls
    the node ``hostname`` (from the upgrade on, or always); a MIG-enabled GPU reports each
    series once per GPU instance; dcgm-exporter 3.3.6 and later label the XID gauge with its
    code, so each code is a series of its own: features are aggregated by GPU (UUID), with
    one value per GPU whatever its instances, so none of them splits or multiplies a GPU.
    Gauge features are exact; a counter's increase
    loses the one scrape interval between the old series' last sample and the new one's first
    (and Prometheus extrapolates each piece to the window edge), within 10 % on this coarse
    30-minute, integer history."""
    fleet = make_fleet()
    clients = []
    for name, change in (("plain", None), ("relabelled", value)):
        om = tmp_path / f"{name}.om"
        om.write_text(
            openmetrics(fleet, days=6.5, step=1800, schema=schema, start=START, **{relabel: change})
        )
        stack.promtool_backfill(om, tmp_path / f"tsdb-{name}", block_duration="480h")
        server = prometheus_factory(data_dir=tmp_path / f"tsdb-{name}")
        clients.append(PromClient(PromConfig(server.url, retries=1)))
    plain, upgraded = (compute_features(c, schema, AT) for c in clients)  # type: ignore[arg-type]
    assert [g[2] for g in plain.gpus] == [g[2] for g in upgraded.gpus]
    if relabel != "exporter_restart_at":  # the same node names, under either label
        assert plain.gpus == upgraded.gpus
    assert plain.failed_queries == upgraded.failed_queries == 0
    off = {}
    for j, name in enumerate(plain.names):
        a, b = plain.values[:, j], upgraded.values[:, j]
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b), err_msg=name)
        ok = np.isfinite(a)
        err = np.abs(a[ok] - b[ok]) / np.maximum(np.abs(a[ok]), 1.0)
        if ok.any() and err.max() > 0.0:
            off[name] = float(err.max())
    counters = ("ecc_", "pcie_replay", "nvlink_", "xid_", "remapped_", "resets_")
    gauges_off = {n: e for n, e in off.items() if not n.startswith(counters) and e > 1e-9}
    assert gauges_off | {n: e for n, e in off.items() if e > 0.1} == {}
    gap = plain.column("reporting_gap_share_7d")
    assert np.nanmax(upgraded.column("reporting_gap_share_7d")) <= np.nanmax(gap) + 0.01


def test_a_gpu_renamed_minutes_ago_is_one_row_under_its_new_name(
    tmp_path: Path, prometheus_factory
) -> None:
    """Right after an exporter pod restart both ``Hostname`` values are within the presence
    window: the inventory must still give one row per GPU (not a second, featureless one),
    named as it reports now, and the GPUs are not reported twice at once."""
    om = tmp_path / "restart.om"
    restart = 6.4 * DAY - 600  # ten minutes before the evaluation time
    om.write_text(
        openmetrics(
            make_fleet(),
            days=6.5,
            step=300,
            schema="dcgm",
            start=START,
            exporter_restart_at=restart,
        )
    )
    stack.promtool_backfill(om, tmp_path / "tsdb", block_duration="480h")
    client = PromClient(PromConfig(prometheus_factory(data_dir=tmp_path / "tsdb").url, retries=1))
    frame = compute_features(client, "dcgm", AT)
    # a rename is no repetition: not now, nor one or five minutes after it
    for at in (AT, START + restart + 60, START + restart + 300):
        repeated = feature_frame.repeated_series_query(schema_by_name("dcgm"))
        assert client.query(repeated, at) == []
    uuids = [g[2] for g in frame.gpus]
    assert (
        len(uuids)
        == len(set(uuids))
        == len({g.uuid for g in make_fleet() if g.fails_at is None or g.fails_at > 6.4 * DAY})
    )
    assert all(g[0].endswith("-b") for g in frame.gpus), frame.gpus
    assert np.isfinite(frame.column("temp_gpu_excess_24h")).all()


def test_gpus_without_a_uuid_label_are_left_out_with_one_warning(
    tmp_path: Path,
    prometheus_factory,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """dcgm-exporter with ``-o``/``--use-old-namespace`` names the UUID label ``uuid``: those
    GPUs cannot be told apart, so they are left out, and the log says why, once."""
    monkeypatch.setattr(feature_frame, "_last_without_uuid", {})
    fleet = make_fleet()
    old = {g.uuid for g in fleet[:4]}  # node0's exporter runs with --use-old-namespace
    text = openmetrics(fleet, days=6.5, step=1800, schema="dcgm", start=START)
    for uuid in old:
        text = text.replace(f'UUID="{uuid}"', f'uuid="{uuid}"')
    om = tmp_path / "old.om"
    om.write_text(text)
    stack.promtool_backfill(om, tmp_path / "tsdb", block_duration="480h")
    client = PromClient(PromConfig(prometheus_factory(data_dir=tmp_path / "tsdb").url, retries=1))
    with caplog.at_level("WARNING", logger="gpu_health.scorer.features"):
        first = compute_features(client, "dcgm", AT)
        second = compute_features(client, "dcgm", AT)
    expected = {g.uuid for g in fleet if g.fails_at is None or g.fails_at > 6.4 * DAY} - old
    assert {g[2] for g in first.gpus} == {g[2] for g in second.gpus} == expected
    warnings = [r.getMessage() for r in caplog.records if "no UUID label" in r.getMessage()]
    assert warnings == [
        "4 GPU series of the dcgm schema have no UUID label "
        "(dcgm-exporter -o/--use-old-namespace names it uuid): they are left out"
    ]


@pytest.mark.parametrize("schema", ["ours", "dcgm"])
def test_gpus_reported_twice_at_once_are_named_in_one_warning(
    tmp_path: Path,
    prometheus_factory,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    schema: str,
) -> None:
    """Two scrape jobs on one exporter (or dcgm-exporter's KUBERNETES_VIRTUAL_GPUS) report every
    series of a GPU twice at once, and its counters under a day are summed twice: the log says
    so, once. Over a day a counter is read once all the same (its span is the smaller
    reading). A relabelling (the exporter pod restart of the dcgm fleet) is no repetition."""
    monkeypatch.setattr(feature_frame, "_last_repeated", {})
    fleet = make_fleet()
    text = openmetrics(fleet, days=6.5, step=1800, schema=schema, start=START)
    twice = [g.uuid for g in fleet[:3]]
    lines = []
    for line in text.splitlines():
        lines.append(line)
        if any(f'"{u}"' in line for u in twice) and not line.startswith("#"):
            lines.append(line.replace("{", '{job="second",', 1))
    om = tmp_path / "twice.om"
    om.write_text("\n".join(lines) + "\n")
    stack.promtool_backfill(om, tmp_path / "tsdb", block_duration="480h")
    client = PromClient(PromConfig(prometheus_factory(data_dir=tmp_path / "tsdb").url, retries=1))
    with caplog.at_level("WARNING", logger="gpu_health.scorer.features"):
        doubled = compute_features(client, schema, AT)  # type: ignore[arg-type]
        compute_features(client, schema, AT)  # type: ignore[arg-type]
    plain = compute_features(_serve(tmp_path, prometheus_factory, schema), schema, AT)  # type: ignore[arg-type]
    rows = [j for j, g in enumerate(plain.gpus) if g[2] in twice]
    assert [doubled.gpus[j][2] for j in rows] == twice
    for name, times in (("ecc_corrected_per_day_1h", 2), ("ecc_corrected_per_day_24h", 1)):
        read, once = doubled.column(name)[rows], plain.column(name)[rows]
        assert (once > 0).any(), name
        np.testing.assert_allclose(read, times * once, rtol=0.1, err_msg=name)
    said = [r.getMessage() for r in caplog.records if "at once" in r.getMessage()]
    assert said == [
        f"3 GPUs of the {schema} schema report each series up to 2 times at once (two scrape "
        "jobs on one exporter, or dcgm-exporter's KUBERNETES_VIRTUAL_GPUS): their counters "
        "over less than a day read that many times"
    ]


@pytest.mark.parametrize("engine", ["prometheus", "victoriametrics"])
def test_short_kubernetes_jobs_are_no_repetition(
    tmp_path: Path,
    prometheus_factory,
    request: pytest.FixtureRequest,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    engine: str,
) -> None:
    """dcgm-exporter on Kubernetes labels a GPU's series with the pod of its job and writes it
    without pod labels between jobs. Jobs of half an hour put two series of a GPU in the
    presence window and in the window before it, one after the other: that is no GPU reported
    twice at once (an outside trial's fleet got the warning at every other step). Two GPUs
    idle all along and scraped by a second job as well are named, on either engine."""
    monkeypatch.setattr(feature_frame, "_last_repeated", {})
    fleet = make_fleet()
    idle, twice = {g.uuid for g in fleet[:2]}, [g.uuid for g in fleet[:2]]
    start = int(AT - 0.5 * DAY)
    text = openmetrics(fleet, days=0.5, step=300, schema="dcgm", start=start, job_hours=0.5)
    lines = []
    for line in text.splitlines():
        if any(f'"{u}"' in line for u in idle) and "pod=" in line:
            line = re.sub(r',?(pod|namespace|container)="[^"]*"', "", line).replace("{,", "{")
        lines.append(line)
        if any(f'"{u}"' in line for u in twice) and not line.startswith("#"):
            lines.append(line.replace("{", '{job="second",', 1))
    history = "\n".join(lines) + "\n"
    if engine == "prometheus":
        om = tmp_path / "jobs.om"
        om.write_text(history)
        stack.promtool_backfill(om, tmp_path / "tsdb", block_duration="480h")
        url = prometheus_factory(data_dir=tmp_path / "tsdb").url
    else:
        vm = request.getfixturevalue("victoriametrics_factory")()
        import_openmetrics(vm, history)
        url = vm.url
    client = PromClient(PromConfig(url, retries=1))
    s = schema_by_name("dcgm")
    power = s.selector("gpu_power_watts")
    assert power is not None
    churning = len(fleet) - len(idle)
    for at in (AT, AT - 600, AT - 1500, AT - 2400):
        # every churning GPU has two series in the presence window and in the one before ...
        for ago in ("", f" offset {s.fresh}"):
            two = f"count by (UUID) (last_over_time({power[0]}[{s.fresh}]{ago})) > 1"
            assert len(client.query(two, at)) == churning + len(twice), (at, ago)
        # ... one after the other; the idle GPUs' copies are reported at once
        found = client.query(feature_frame.repeated_series_query(s), at)
        assert sorted((r["metric"]["UUID"], r["value"][1]) for r in found) == [
            (u, "2") for u in sorted(twice)
        ], at
    with caplog.at_level("WARNING", logger="gpu_health.scorer.features"):
        compute_features(client, "dcgm", AT)
    said = [r.getMessage() for r in caplog.records if "at once" in r.getMessage()]
    assert len(said) == 1 and said[0].startswith("2 GPUs of the dcgm schema"), said


def _with_aggregate_ecc(text: str, schema: str, without: set[str]) -> str:
    """``text`` with an aggregate ECC counter beside each volatile one (the same readings: no
    reset in this history), except for the GPUs in ``without``."""
    volatile, aggregate = (
        ('scope="volatile"', 'scope="aggregate"')
        if schema == "ours"
        else ("DCGM_FI_DEV_ECC_SBE_VOL_TOTAL", "DCGM_FI_DEV_ECC_SBE_AGG_TOTAL")
    )
    lines = []
    for line in text.splitlines():
        lines.append(line)
        if volatile in line and not any(f'"{u}"' in line for u in without):
            lines.append(line.replace(volatile, aggregate))
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("schema", ["ours", "dcgm"])
def test_volatile_ecc_is_read_only_for_gpus_without_aggregate_counters(
    tmp_path: Path, prometheus_factory, monkeypatch: pytest.MonkeyPatch, schema: str
) -> None:
    """The ECC features read the aggregate counters, the volatile ones only for GPUs that lack
    them. When no GPU lacks them the queries leave the volatile side out (Prometheus evaluated
    it for nothing) and every value stays the same; when three GPUs lack them, the run finds
    them and reads their volatile counters (left out, those GPUs would have no ECC values)."""
    fleet = make_fleet()
    text = openmetrics(fleet, days=6.5, step=1800, schema=schema, start=START)
    lacking = {g.uuid for g in fleet[:3]}
    clients = {}
    for name, without in (("all", set()), ("three", lacking)):
        om = tmp_path / f"{name}.om"
        om.write_text(_with_aggregate_ecc(text, schema, without))
        stack.promtool_backfill(om, tmp_path / f"tsdb-{name}", block_duration="480h")
        server = prometheus_factory(data_dir=tmp_path / f"tsdb-{name}")
        clients[name] = PromClient(PromConfig(server.url, retries=1))
    sent: list[str] = []
    real_plan = feature_frame.plan_queries

    def plan(s: Schema, *args: object) -> object:
        sent.extend(real_plan(s, *args).queries)  # type: ignore[arg-type]
        return real_plan(s, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(feature_frame, "plan_queries", plan)
    shipped = compute_features(clients["all"], schema, AT)  # type: ignore[arg-type]
    volatile = "ECC_SBE_VOL" if schema == "dcgm" else 'scope="volatile"'
    # only the reset count reads a volatile ECC counter (a reset clears it)
    assert any(volatile in q for q in sent)
    assert all("resets(" in q for q in sent if volatile in q)
    found = compute_features(clients["three"], schema, AT)  # type: ignore[arg-type]
    monkeypatch.setattr(feature_frame, "volatile_ecc_needed", lambda *a: True)
    both = compute_features(clients["all"], schema, AT)  # type: ignore[arg-type]
    monkeypatch.setattr(feature_frame, "volatile_ecc_needed", lambda *a: False)
    missed = compute_features(clients["three"], schema, AT)  # type: ignore[arg-type]
    assert shipped.gpus == both.gpus == found.gpus == missed.gpus
    np.testing.assert_array_equal(shipped.values, both.values)
    rows = [j for j, g in enumerate(shipped.gpus) if g[2] in lacking]
    ecc = [n for n in shipped.names if n.startswith("ecc_corrected")]
    assert len(rows) == 3 and len(ecc) >= 5
    for name in ecc:
        assert np.isnan(missed.column(name)[rows]).all(), name
        # the same readings, within what a span inside the window misses of the rise since
        # the reading at its start (one 30-minute step of a day)
        read, aggregate = found.column(name)[rows], shipped.column(name)[rows]
        np.testing.assert_allclose(read, aggregate, rtol=0.05, err_msg=name)
    # (the 23 days before the week are before this history: NaN either way)
    assert sum(bool((found.column(n)[rows] > 0).any()) for n in ecc) >= 4


@pytest.mark.parametrize("schema", ["ours", "dcgm"])
def test_the_volatile_ecc_check_looks_at_each_error_type(
    tmp_path: Path, prometheus_factory, schema: str
) -> None:
    """A GPU that sends both corrected counters but only the volatile uncorrected one still
    needs the volatile side (for its uncorrected errors); with both kinds of counter for both
    types it does not."""
    text = _with_aggregate_ecc(
        openmetrics(make_fleet(), days=1.0, step=1800, schema=schema, start=int(AT - DAY)),
        schema,
        set(),
    )
    corrected = 'type="corrected"' if schema == "ours" else "ECC_SBE_"
    volatile = 'scope="volatile"' if schema == "ours" else "_VOL_"
    # the uncorrected counters, volatile and aggregate, with the corrected ones' readings
    uncorrected = [
        line.replace(corrected, 'type="uncorrected"' if schema == "ours" else "ECC_DBE_")
        for line in text.splitlines()
        if corrected in line and not line.startswith("#")
    ]
    histories = {
        "one type": [line for line in uncorrected if volatile in line],
        "both types": uncorrected,
    }
    s = replace(schema_by_name(schema), fresh="45m")
    needed = {}
    for name, lines in histories.items():
        om = tmp_path / f"{name.replace(' ', '-')}.om"
        om.write_text(text.replace("# EOF\n", "") + "\n".join(lines) + "\n# EOF\n")
        stack.promtool_backfill(om, tmp_path / f"tsdb-{name}", block_duration="480h")
        server = prometheus_factory(data_dir=tmp_path / f"tsdb-{name}")
        client = PromClient(PromConfig(server.url, retries=1))
        needed[name] = feature_frame.volatile_ecc_needed(client, s, AT)
    assert needed == {"one type": True, "both types": False}


@pytest.mark.parametrize("schema", ["ours", "dcgm"])
def test_a_silent_node_is_no_loss_of_the_fleet(
    tmp_path: Path, prometheus_factory, schema: str
) -> None:
    """The fleet's recent losses set the rule's base rate for every GPU. A GPU that stopped
    reporting while its node reports is a loss; a node that stopped reporting as a whole (its
    exporter or host down) is not: while it was silent for two hours, every other GPU of an
    outside trial's fleet read 40 times likelier to fail."""
    fleet = make_fleet(fail_days={1: 5.0})
    text = openmetrics(fleet, days=6.5, step=600, schema=schema, start=START)
    silent = {g.uuid for g in fleet if g.node == "node2"}
    since = AT - 2 * 3600  # node2's exporter is down for the last two hours
    kept = []
    for line in text.splitlines():
        mine = not line.startswith("#") and any(f'"{u}"' in line for u in silent)
        if mine and float(line.rsplit(" ", 1)[1]) >= since:
            continue
        kept.append(line)
    om = tmp_path / "silent.om"
    om.write_text("\n".join(kept) + "\n")
    stack.promtool_backfill(om, tmp_path / "tsdb", block_duration="480h")
    client = PromClient(PromConfig(prometheus_factory(data_dir=tmp_path / "tsdb").url, retries=1))
    frame = compute_features(client, schema, AT)  # type: ignore[arg-type]
    lost = frame.column("fleet_lost_gpus_30d")
    assert {g[2] for g in frame.gpus} == {g.uuid for g in fleet} - silent - {fleet[1].uuid}
    assert set(lost.tolist()) == {1.0}  # GPU 1 of node0, not node2's four


def _one_gpu_history(step: float, value_at, labels_at, days: float = 6.5) -> str:
    """OpenMetrics for one dcgm-exporter GPU over ``days``: its power (presence) and the
    counters ``value_at(t)`` gives (field name → value), each sample under ``labels_at(t)``."""
    lines: dict[str, list[str]] = {}
    for k in range(int(days * DAY / step) + 1):
        t = k * step
        base = {"Hostname": "node0", "gpu": "0", "UUID": "GPU-0000-one", "modelName": "H100"}
        labels = ",".join(f'{n}="{v}"' for n, v in sorted({**base, **labels_at(t)}.items()))
        for name, value in {"DCGM_FI_DEV_POWER_USAGE": 500.0, **value_at(t)}.items():
            lines.setdefault(name, []).append(f"{name}{{{labels}}} {value} {START + t:.0f}")
    body = "".join(f"# TYPE {n} gauge\n" + "\n".join(rows) + "\n" for n, rows in lines.items())
    return body + "# EOF\n"


def _features_of(tmp_path: Path, prometheus_factory, text: str, at: float = AT) -> dict[str, float]:
    tmp_path.mkdir()
    om = tmp_path / "one.om"
    om.write_text(text)
    stack.promtool_backfill(om, tmp_path / "tsdb", block_duration="480h")
    client = PromClient(PromConfig(prometheus_factory(data_dir=tmp_path / "tsdb").url, retries=1))
    frame = compute_features(client, "dcgm", at)
    assert len(frame.gpus) == 1
    return {name: float(frame.values[0, j]) for j, name in enumerate(frame.names)}


def test_a_reset_keeps_every_rise_and_interleaving_counts_each_once(
    tmp_path: Path, prometheus_factory
) -> None:
    """A volatile counter (PCIe replays) that climbs 100, is zeroed by a reboot (a new
    exporter pod: a new series) and climbs 30 reads about 130 over the week, not the 100 or
    30 a span or the newest series alone would give; a board-life counter (remapped rows)
    whose idle label set comes back between 8-hour jobs reads its rise once, exactly."""
    reboot = 4.0 * DAY

    def value_at(t: float) -> dict[str, float]:
        after = 30.0 * (t - reboot) / (AT - START - reboot)
        return {
            "DCGM_FI_DEV_PCIE_REPLAY_COUNTER": round(100.0 * t / reboot if t < reboot else after),
            # a row remapped in the middle of every job
            "DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS": float(int((t + 8 * 3600) / (12 * 3600))),
        }

    def labels_at(t: float) -> dict[str, str]:
        cycle, into = divmod(t, 12 * 3600)
        return {"pod": f"job-{cycle:.0f}"} if into < 8 * 3600 else {}

    def replays_of(t: float) -> dict[str, float]:
        return {"DCGM_FI_DEV_PCIE_REPLAY_COUNTER": value_at(t)["DCGM_FI_DEV_PCIE_REPLAY_COUNTER"]}

    def exporter_of(t: float) -> dict[str, str]:
        return {"instance": "10.0.0.1:9400" if t < reboot else "10.0.0.2:9400"}

    rebooted = _features_of(
        tmp_path / "reboot", prometheus_factory, _one_gpu_history(600, replays_of, exporter_of)
    )
    replays = rebooted["pcie_replays_per_min_7d"] * 7 * 1440
    assert 128 <= replays <= 135, replays  # 100 before the reboot, 30 after
    # over 8.5 days, so that the week starts inside the history
    at = START + 8.4 * DAY
    history = _one_gpu_history(600, value_at, labels_at, days=8.5)
    jobs = _features_of(tmp_path / "jobs", prometheus_factory, history, at)
    assert jobs["remapped_rows_correctable_7d"] == 14  # one a job, 7 days of 2 jobs a day


def test_a_window_read_earlier_reads_what_it_read_then(tmp_path: Path, prometheus_factory) -> None:
    """A feature over an earlier window (the 23 days before the last week) is the same
    feature evaluated a week ago, also for a board-life counter read at both ends of its
    window: its reading at the window's start moves back with the rest (it stayed put once,
    which shortened the window by the week)."""

    def value_at(t: float) -> dict[str, float]:
        return {"DCGM_FI_DEV_ECC_SBE_AGG_TOTAL": float(int(t / (5 * 3600)))}

    def labels_at(t: float) -> dict[str, str]:
        cycle, into = divmod(t, 12 * 3600)
        return {"pod": f"job-{cycle:.0f}"} if into < 8 * 3600 else {}

    om = tmp_path / "month.om"
    om.write_text(_one_gpu_history(600, value_at, labels_at, days=31.5))
    stack.promtool_backfill(om, tmp_path / "tsdb", block_duration="480h")
    client = PromClient(PromConfig(prometheus_factory(data_dir=tmp_path / "tsdb").url, retries=1))
    s = schema_by_name("dcgm")
    window = board_life_counter("gpu_ecc_errors_total", "23d", **ECC_CORR_AGG)
    at = START + 31.4 * DAY
    earlier = client.query(str(offset_by(window, "7d")(s)), at)
    then = client.query(str(window(s)), at - 7 * DAY)
    rise = (
        value_at(at - START - 7 * DAY)["DCGM_FI_DEV_ECC_SBE_AGG_TOTAL"]
        - value_at(at - START - 30 * DAY)["DCGM_FI_DEV_ECC_SBE_AGG_TOTAL"]
    )
    assert float(earlier[0]["value"][1]) == float(then[0]["value"][1]) == rise
