"""The GPU state model against a real Prometheus and a real VictoriaMetrics.

One GPU per state (tests/scorer/state_fleet.py) is backfilled; the classification must give each
its state and reason, the scorer must rank failed and absent GPUs as "failed now" and never
recommend keeping them, and VictoriaMetrics must agree with Prometheus GPU by GPU.
"""

from __future__ import annotations

import itertools
import json
import math
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client.core import GaugeMetricFamily

from gpu_health import stack
from gpu_health.scorer.engine import engine_of
from gpu_health.scorer.promclient import PromClient, PromConfig, PrometheusError
from gpu_health.telemetry.state import GpuState, gather_states, last_sample_query, rank_key
from tests.conftest import PrometheusFactory, import_openmetrics
from tests.scorer import state_fleet

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def end() -> float:
    return float(int(time.time()) - 30)


def _states(url: str, schema: str = "ours") -> tuple[dict[str, GpuState], PromClient]:
    client = PromClient(PromConfig(url, retries=2, backoff_s=0.1))
    return gather_states(client.query, schema, time.time()), client


def _check_fleet(states: dict[str, GpuState]) -> None:
    assert {u: s.state for u, s in states.items()} == {g.uuid: g.expect for g in state_fleet.FLEET}
    assert "lost (gpu_up 0)" in states["GPU-lost"].reasons
    assert "XID 79" in states["GPU-xid79"].reasons
    assert "XID 48" in states["GPU-xid48-born-at-1"].reasons  # a counter first seen at 1
    assert "uncorrectable ECC errors" in states["GPU-uncorrectable"].reasons
    assert "row remap failure" in states["GPU-remap-failed"].reasons
    assert states["GPU-remap-pending"].reasons == ("row remap pending",)
    assert states["GPU-xid46"].reasons == ("XID 46",)
    assert states["GPU-xid94"].reasons == ("health penalty xid_94",)
    absent = states["GPU-absent"]
    # gone for two hours; it had a pending row remap when it was last seen
    assert 2 * 3600 - 400 <= absent.age_s <= 2 * 3600 + 400, absent
    assert absent.last_state == "degraded" and "row remap pending" in absent.reasons
    old = states["GPU-old"]
    assert old.replaced_by == "GPU-new" and old.last_state == "healthy"
    assert states["GPU-healthy-0"].age_s == 0.0


def test_every_state_from_prometheus(
    prometheus_factory: PrometheusFactory, backfill: Callable[[str], Path], end: float
) -> None:
    server = prometheus_factory(data_dir=backfill(state_fleet.openmetrics(end)))
    stack.wait_for_query(server.url, "count(gpu_up)")
    states, client = _states(server.url)
    assert engine_of(client) == "prometheus"
    _check_fleet(states)
    # The queries sent at once give what they give one at a time.
    now = time.time()
    at_once = gather_states(client.query, "ours", now)
    assert gather_states(client.query, "ours", now, workers=1) == at_once


@pytest.mark.parametrize("when", ["now", "when last seen"])
def test_a_failed_state_query_fails_the_states_whatever_else_answered(
    prometheus_factory: PrometheusFactory,
    backfill: Callable[[str], Path],
    end: float,
    when: str,
) -> None:
    """No state is derived from half the evidence: one failed evidence query, now or at an
    absent GPU's last-seen time, fails the whole gathering while the others answer."""
    server = prometheus_factory(data_dir=backfill(state_fleet.openmetrics(end)))
    stack.wait_for_query(server.url, "count(gpu_up)")
    client = PromClient(PromConfig(server.url, retries=0))
    now = time.time()
    answered: list[float | None] = []

    def query(promql: str, at: float | None = None) -> list[dict[str, object]]:
        failing = at == now if when == "now" else at is not None and at < now - 60
        if failing and "remap" in promql and "timestamp(" not in promql:
            raise PrometheusError("injected: Prometheus answered 503")
        answered.append(at)
        return client.query(promql, at)

    with pytest.raises(PrometheusError, match="injected"):
        gather_states(query, "ours", now)
    assert len(answered) >= 3  # the others were asked and answered
    if when == "when last seen":
        assert any(at is not None and at < now - 60 for at in answered)


def test_last_sample_times_are_looked_up_for_absent_gpus_only_and_bounded(
    prometheus_factory: PrometheusFactory,
    backfill: Callable[[str], Path],
    end: float,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The last-seen subquery cost 90 s over a whole 2,000-GPU fleet: it must only ever be
    asked for GPUs that stopped reporting, in batches, and for a bounded number of them."""
    from gpu_health.telemetry import state as state_module

    server = prometheus_factory(data_dir=backfill(state_fleet.openmetrics(end)))
    stack.wait_for_query(server.url, "count(gpu_up)")
    client = PromClient(PromConfig(server.url, retries=2, backoff_s=0.1))
    asked: list[str] = []

    def query(promql: str, at: float | None = None) -> list[dict[str, object]]:
        asked.append(promql)
        return client.query(promql, at)

    states = gather_states(query, "ours", time.time())
    subqueries = [q for q in asked if "timestamp(" in q]
    gone = {u for u, s in states.items() if s.state in ("absent", "replaced")}
    assert gone == {"GPU-absent", "GPU-old"}
    assert subqueries and all(u in q for q in subqueries for u in gone)
    assert not any("GPU-healthy-0" in q for q in subqueries)
    # Any label value is a literal in the query, however odd (it parses, and matches nothing).
    odd = state_module.last_seen_query("ours", ['we"ird\\id.x*\n', "GPU-absent"])
    assert [s["metric"]["uuid"] for s in client.query(odd)] == ["GPU-absent"]
    # Past the bound, an absent GPU is still absent, with an unknown age said in words.
    monkeypatch.setattr(state_module, "LAST_SEEN_MAX", 1)
    states = gather_states(client.query, "ours", time.time())
    ages = {u: states[u].age_s for u in gone}
    assert sum(math.isfinite(a) for a in ages.values()) == 1
    unknown = next(u for u, a in ages.items() if not math.isfinite(a))
    assert states[unknown].state in ("absent", "replaced")
    assert "no samples for at least 30 min" in states[unknown].reasons


def test_victoriametrics_gives_the_same_states(
    victoriametrics_factory: Callable[[], stack.Server], end: float
) -> None:
    vm = victoriametrics_factory()
    import_openmetrics(vm, state_fleet.openmetrics(end))
    states, client = _states(vm.url)
    assert engine_of(client) == "victoriametrics"
    _check_fleet(states)


WITH_SILENT = (*state_fleet.FLEET, *state_fleet.SILENT_NODES, state_fleet.APP_XID)


def _check_silent_nodes(states: dict[str, GpuState]) -> None:
    """Whole nodes silent for 40 min: absent, the node named, not "failed now" unless a GPU
    fell silent before its node or was failed when last seen; a lone silent GPU on a reporting
    node stays failed now."""
    assert {u: s.state for u, s in states.items()} == {g.uuid: g.expect for g in WITH_SILENT}
    silent = {u for u, s in states.items() if s.node_silent}
    assert silent == state_fleet.NODE_SILENT
    for uuid in silent:
        s = states[uuid]
        assert s.reasons[0] == f"node {s.node} not reporting (exporter or host down)", s
        gap = state_fleet.NODE_SILENT_FOR
        assert gap - 400 <= s.age_s <= gap + 400, s
    down = {u for u, s in states.items() if s.down}
    assert down & {g.uuid for g in state_fleet.SILENT_NODES} == state_fleet.STILL_DOWN
    failed_before = states["GPU-n3-xid79"]
    assert failed_before.last_state == "failed" and "XID 79" in failed_before.reasons
    assert states["GPU-n3-0"].last_state == "healthy"
    # silent two hours while its siblings still reported: it fell off on its own
    gone = states["GPU-n3-gone"]
    assert gone.down and not gone.node_silent and not any("node" in r for r in gone.reasons)
    assert states["GPU-absent"].down and not states["GPU-absent"].node_silent
    # a 20-point penalty for an application XID does not make a GPU degraded
    assert states["GPU-app-xid"].reasons == ()


def _last_sample_time(g: state_fleet.StateGpu, end: float) -> float:
    """When ``g`` last reported in :func:`state_fleet.openmetrics`' history."""
    start = end - state_fleet.HOURS * 3600
    steps = state_fleet.HOURS * 3600 // state_fleet.STEP
    times = [start + k * state_fleet.STEP for k in range(steps + 1)]
    return max(t for t in times if any(state_fleet._series(g, t, end)))


@pytest.mark.parametrize("engine", ["prometheus", "victoriametrics"])
def test_a_node_that_stopped_reporting_is_absent_but_not_failed_now(
    engine: str, serve_history: Callable[[str, str, str], str], end: float
) -> None:
    history = state_fleet.openmetrics(end, WITH_SILENT)
    states, client = _states(serve_history(engine, history, "count(gpu_up)"))
    assert engine_of(client) == engine
    _check_silent_nodes(states)
    # Each silent GPU's last-seen time is its last sample's, to the second, on both engines:
    # the subquery finds the 5-minute step, the lookup at that step the sample's own time.
    for g in WITH_SILENT:
        if states[g.uuid].state in ("absent", "replaced"):
            assert states[g.uuid].last_seen == _last_sample_time(g, end), g


@pytest.mark.parametrize("engine", ["prometheus", "victoriametrics"])
def test_a_last_sample_on_a_step_of_the_lookup_is_found_exactly(
    engine: str, serve_history: Callable[[str, str, str], str]
) -> None:
    """The last-seen lookup steps every 5 minutes; a last sample exactly on such a step is seen
    from it and the next one alike (Prometheus 2's lookback includes its start), and must come
    back as itself, not 5 minutes late. Every silent GPU of this history last reported on a
    5-minute boundary."""
    aligned = int(time.time()) // 300 * 300 - 600
    end = float(aligned + 60)  # cut-offs at end - 2 h and end - 40 min: last samples at aligned - …
    history = state_fleet.openmetrics(end, WITH_SILENT)
    states, _ = _states(serve_history(engine, history, "count(last_over_time(gpu_up[1h]))"))
    silent = [g for g in WITH_SILENT if states[g.uuid].state in ("absent", "replaced")]
    assert len(silent) == 7
    for g in silent:
        assert _last_sample_time(g, end) % 300 == 0
        assert states[g.uuid].last_seen == _last_sample_time(g, end), g


@pytest.mark.parametrize("engine", ["prometheus", "victoriametrics"])
@pytest.mark.parametrize("step", [300, 600, 1800])
def test_the_last_sample_time_is_exact_at_sparser_scrape_intervals(
    engine: str,
    step: int,
    serve_history: Callable[[str, str, str], str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """VictoriaMetrics sees a sample from subquery steps up to a scrape interval after it (a
    30-minute sample from a step 1,795 s on), where an instant lookup at that step finds
    nothing: the last-seen time must still be the sample's own, not that step's."""
    monkeypatch.setattr(state_fleet, "STEP", step)
    monkeypatch.setattr(state_fleet, "HOURS", 8)
    end = float(int(time.time()) - 30)
    history = state_fleet.openmetrics(end, WITH_SILENT)
    states, _ = _states(serve_history(engine, history, "count(last_over_time(gpu_up[2h]))"))
    silent = [g for g in WITH_SILENT if states[g.uuid].state in ("absent", "replaced")]
    assert silent
    for g in silent:
        assert states[g.uuid].last_seen == _last_sample_time(g, end), (g, step)


@pytest.mark.parametrize("spread", [0, 1, 2, 4], ids=["one-step", "all-apart", "pairs", "fours"])
def test_the_read_back_stays_short_however_the_steps_spread(spread: int) -> None:
    """A batch of 50 absent GPUs whose steps all differ made one 13 KB query (one term each),
    past the 8 KB a proxy in front of Prometheus may allow a URL: split by distinct steps, every
    query stays under 7 KB, and every GPU is read back once."""
    from gpu_health.telemetry.state import LAST_SAMPLE_STEPS, _by_distinct_steps

    uuids = [f"GPU-{i:08d}-aaaa-bbbb-cccc-dddddddddddd" for i in range(50)]
    steps = {u: 1796083500.0 + 300 * (i // spread if spread else 0) for i, u in enumerate(uuids)}
    parts = _by_distinct_steps(steps, LAST_SAMPLE_STEPS)
    assert sorted(u for part in parts for u in part) == sorted(uuids)
    assert all(part[u] == steps[u] for part in parts for u in part)
    for part in parts:
        assert len(set(part.values())) <= LAST_SAMPLE_STEPS
        for schema in ("ours", "dcgm"):
            assert len(last_sample_query(schema, part)) < 7000


def test_fault_class_reads_the_reason_that_made_the_gpu_fail() -> None:
    from gpu_health.scorer.state import fault_class

    assert fault_class(("no samples for 2.0 h", "XID 79")) == "bus"
    assert fault_class(("XID 74",)) == "nvlink"
    assert fault_class(("XID 43", "XID 95")) == "memory"  # an application XID names no class
    assert fault_class(("row remap failure",)) == "memory"
    assert fault_class(("lost (gpu_up 0)",)) == ""
    assert fault_class(("XID 179",)) == ""  # not XID 79
    assert fault_class(("XID 140",)) == "memory"  # unrecovered ECC error: the catalogue's class
    assert fault_class(("XID 46",)) == ""  # a GPU that stopped processing: no class of its own


def test_an_xid_gauge_reading_infinity_is_an_unknown_code_not_a_failed_run() -> None:
    from gpu_health.telemetry.state import evidence_state

    metric = {"UUID": "GPU-a", "Hostname": "n1", "gpu": "0", "modelName": "NVIDIA H100"}
    for value in ("+Inf", "-Inf", "1e309", "NaN"):
        results = {"recent_xid": [{"metric": metric, "value": [0, value]}]}
        assert evidence_state("dcgm", results) == {"GPU-a": ("degraded", ("XID ?",))}, value
    # a code the gauge holds decides between failed and degraded
    for value, state in (("46", "failed"), ("79.0", "failed"), ("94", "degraded")):
        results = {"recent_xid": [{"metric": metric, "value": [0, value]}]}
        code = str(int(float(value)))
        assert evidence_state("dcgm", results) == {"GPU-a": (state, (f"XID {code}",))}, value


def test_rank_key_puts_failed_and_absent_above_every_healthy_gpu() -> None:
    rows = [("healthy", 0.99), ("failed", 0.01), ("absent", math.nan), ("degraded", 0.0)]
    ranked = sorted(rows, key=lambda r: rank_key(*r))
    assert [r[0] for r in ranked] == ["failed", "absent", "degraded", "healthy"]


def test_scorer_ranks_failed_now_publishes_gpu_state_and_never_keeps_a_failed_gpu(
    prometheus_factory: PrometheusFactory,
    backfill: Callable[[str], Path],
    end: float,
    repo_root: Path,
) -> None:
    from gpu_health.scorer.api import gpu_json, gpus_handler
    from gpu_health.scorer.econ.bridge import make_econ_hook
    from gpu_health.scorer.model import FailureModel
    from gpu_health.scorer.service import Scorer, ScorerCollector
    from gpu_health.web.protocol import Request

    server = prometheus_factory(data_dir=backfill(state_fleet.openmetrics(end, WITH_SILENT)))
    stack.wait_for_query(server.url, "count(gpu_up)")
    client = PromClient(PromConfig(server.url, retries=2, backoff_s=0.1))
    scorer = Scorer(
        client, FailureModel.load(repo_root / "scorer" / "default_model"), econ=make_econ_hook()
    )
    assert scorer.run_once(), scorer.last_error
    snap = scorer.snapshot
    assert snap is not None
    by_uuid = {g.uuid: g for g in snap.gpus}
    expected = {g.uuid: g.expect for g in WITH_SILENT if g.expect != "replaced"}
    # the absent GPU is back in the ranking although the feature inventory no longer lists it
    assert {u: g.state for u, g in by_uuid.items()} == expected
    assert [s.uuid for s in snap.gone] == ["GPU-old"]
    # GPUs of a node that stopped reporting as a whole: not failed now (no probability, no
    # hard fault), unless one fell silent before its node or was failed when last seen
    unknown = state_fleet.NODE_SILENT - state_fleet.STILL_DOWN
    for g in snap.gpus:
        assert g.econ is not None, g.uuid
        if g.uuid in unknown:
            assert all(math.isnan(p) for p in g.probability.values()), g.uuid
            assert g.inputs["hard_fault"] == 0.0 and g.econ.inputs["hard_fault"] == 0.0, g.uuid
            assert "failure_probability" in g.econ.defaulted, g.uuid  # the baseline rate
            body = json.loads(json.dumps(gpu_json(g), allow_nan=False))  # strict JSON
            assert body["failure_probability"] == {"7d": None, "30d": None, "90d": None}
            assert not any(g.flagged.values()) and g.failure_class == "", g.uuid
            assert g.state_reasons[0] == f"node {g.node} not reporting (exporter or host down)"
        elif g.state in ("failed", "absent"):
            assert g.probability == {"7d": 1.0, "30d": 1.0, "90d": 1.0}, g.uuid
            assert g.econ.inputs["hard_fault"] == 1.0, g.uuid
            assert g.econ.recommended_action in ("repair", "sell", "decommission"), g.uuid
    ranked = sorted(snap.gpus, key=lambda g: rank_key(g.state, g.probability["30d"]))
    down = [g for g in ranked if g.state in ("failed", "absent") and g.uuid not in unknown]
    down_in_fleet = [g for g in state_fleet.FLEET if g.expect in ("failed", "absent")]
    assert len(down) == len(down_in_fleet) + len(state_fleet.STILL_DOWN)
    assert "GPU-xid46" in {g.uuid for g in down}  # paged "drain and reset": never kept
    assert ranked[: len(down)] == down
    # the silent nodes' GPUs still rank above every degraded and healthy GPU
    assert {g.uuid for g in ranked[len(down) : len(down) + len(unknown)]} == unknown

    families = {f.name: f for f in ScorerCollector(scorer).collect()}
    state = families["gpu_state"]
    assert isinstance(state, GaugeMetricFamily)
    current = {s.labels["uuid"]: s.labels["state"] for s in state.samples if s.value == 1}
    assert current == {g.uuid: g.expect for g in WITH_SILENT}
    # no failure probability is published for a GPU nothing is known about
    probabilities = {
        (s.labels["uuid"], s.labels["horizon"]): s.value
        for s in families["gpu_failure_probability"].samples
    }
    assert {u for u, _ in probabilities} == set(expected) - unknown
    assert probabilities[("GPU-n3-gone", "30d")] == 1.0
    ages = {s.labels["uuid"]: s.value for s in families["gpu_state_age_seconds"].samples}
    assert ages["GPU-absent"] > 3600 and ages["GPU-healthy-0"] == 0
    # gpu_risk_rank: one distinct place per GPU and horizon, in the ranking above (down GPUs
    # first) with ties (every failed GPU is at P = 1) in uuid order, so `<= N` selects the
    # same GPUs on any engine
    for horizon in ("7d", "30d", "90d"):
        places = {
            s.labels["uuid"]: s.value
            for s in families["gpu_risk_rank"].samples
            if s.labels["horizon"] == horizon
        }
        assert sorted(places.values()) == [float(k) for k in range(1, len(snap.gpus) + 1)]
        order = sorted(places, key=places.__getitem__)
        assert set(order[: len(down)]) == {g.uuid for g in down}
        keys = [rank_key(by_uuid[u].state, by_uuid[u].probability[horizon]) for u in order]
        assert keys == sorted(keys)
        pairs = list(zip(order, keys, strict=True))
        tied = [(a, b) for (a, ka), (b, kb) in itertools.pairwise(pairs) if ka == kb]
        assert tied and all(a < b for a, b in tied)
        # the API lists the GPUs in the same order
        answer = gpus_handler(scorer)(Request("/api/v1/gpus", {"horizon": [horizon]}, {}))
        assert [g["uuid"] for g in json.loads(answer.body)["gpus"]] == order

    # A down GPU's failure class is the fault it has, with its runbook, not a prediction.
    faults = {
        "GPU-xid79": "bus",
        "GPU-xid48-born-at-1": "memory",
        "GPU-uncorrectable": "memory",
        "GPU-remap-failed": "memory",
        "GPU-absent": "memory",  # a pending row remap when it was last seen
    }
    for uuid, klass in faults.items():
        assert (by_uuid[uuid].failure_class, by_uuid[uuid].failure_class_probability) == (
            klass,
            1.0,
        ), uuid
    published = {
        (s.labels["uuid"], s.labels["class"]): s.value
        for s in families["gpu_failure_class_probability"].samples
    }
    assert published[("GPU-xid79", "bus")] == 1.0
    assert by_uuid["GPU-lost"].failure_class  # never without a class (and runbook)


DCGM = "NVIDIA H100 80GB HBM3"


#: dcgm-exporter GPUs: (uuid, last XID code at each time ``age`` seconds before the end, or
#: None when it does not report; Hostname at that age), and the state they must get. The
#: history is 50 hours long: "days ago" is 48 hours, twice the 24-hour window.
_H = 3600
_DCGM_GPUS: dict[str, tuple[Callable[[float], float | None], Callable[[float], str], str]] = {
    # a hard XID an hour ago: failed
    "GPU-d0": (lambda age: 79.0 if age <= _H else 0.0, lambda age: "d1", "failed"),
    # an application XID 43 an hour ago after a 13 the day before: healthy
    "GPU-d1": (lambda age: 43.0 if age <= _H else 13.0, lambda age: "d1", "healthy"),
    "GPU-d2": (lambda age: 0.0, lambda age: "d1", "healthy"),
    # an old XID 43 from days ago, held by the gauge ever since: healthy
    "GPU-d3": (lambda age: 43.0 if age <= 48 * _H else 0.0, lambda age: "d1", "healthy"),
    # a fresh XID 43: the job's bug, not the GPU's: healthy
    "GPU-d4": (lambda age: 43.0 if age <= _H else 0.0, lambda age: "d1", "healthy"),
    # a fresh XID 74 (NVLink: drain and reset): failed; 92 (high single-bit ECC rate):
    # degraded
    "GPU-d5": (lambda age: 74.0 if age <= _H else 0.0, lambda age: "d1", "failed"),
    "GPU-d6": (lambda age: 92.0 if age <= _H else 0.0, lambda age: "d1", "degraded"),
    # an old XID 74 from days ago, held ever since: no new event: healthy
    "GPU-d7": (lambda age: 74.0 if age <= 48 * _H else 0.0, lambda age: "d1", "healthy"),
    # a new GPU whose series starts in the window already holding 74: failed
    "GPU-d8": (lambda age: 74.0 if age <= _H else None, lambda age: "d1", "failed"),
    # the old 74 again, after an exporter restart renamed its Hostname 2 hours ago: healthy
    "GPU-d9": (
        lambda age: 74.0 if age <= 48 * _H else 0.0,
        lambda age: "d1-renamed" if age <= 2 * _H else "d1",
        "healthy",
    ),
    # a fresh XID 46 (GPU stopped processing: drain and reset): failed; a fresh XID 94 (a
    # contained ECC error: the job stopped, the GPU serves on): degraded
    "GPU-d12": (lambda age: 46.0 if age <= _H else 0.0, lambda age: "d1", "failed"),
    "GPU-d13": (lambda age: 94.0 if age <= _H else 0.0, lambda age: "d1", "degraded"),
    # silent for 40 min while its siblings on d1 report: fell off on its own
    "GPU-d10": (lambda age: None if age < 40 * 60 else 0.0, lambda age: "d1", "absent"),
    # the only GPU of node d2, silent for 40 min with its node: not failed now
    "GPU-d11": (lambda age: None if age < 40 * 60 else 0.0, lambda age: "d2", "absent"),
}


#: GPUs with MIG enabled in the ``mig`` variant (two GPU instances each, every series twice).
_MIG_GPUS = ("GPU-d0", "GPU-d2", "GPU-d6", "GPU-d10")


def _dcgm_history(end: float, variant: str = "Hostname") -> str:
    """The :data:`_DCGM_GPUS` history, every 2 minutes for 50 hours.

    ``variant``: ``Hostname`` (dcgm-exporter before May 2026), ``hostname`` (after
    NVIDIA/dcgm-exporter#655), ``upgrade`` (``Hostname`` until the exporter is upgraded 3
    hours before the end, ``hostname`` after), ``mig`` (the :data:`_MIG_GPUS` report every
    series once per GPU instance, as dcgm-exporter does for a MIG-enabled GPU),
    ``code-labels`` (dcgm-exporter 3.3.6-3.4.2 and later: the XID gauge also carries its code
    as ``err_code``, so each code is a series of its own that never changes)."""
    lines = []
    for k in range(0, 50 * _H + 1, 120):
        t = end - 50 * _H + k
        for i, (uuid, (code_at, host_at, _)) in enumerate(_DCGM_GPUS.items()):
            xid = code_at(end - t)
            if xid is None:
                continue
            node = "hostname" if variant == "hostname" else "Hostname"
            if variant == "upgrade" and end - t <= 3 * _H:
                node = "hostname"
            labels = f'{node}="{host_at(end - t)}",UUID="{uuid}",gpu="{i}",modelName="{DCGM}"'
            instances = [""]
            if variant == "mig" and uuid in _MIG_GPUS:
                instances = [f',GPU_I_ID="{g}",GPU_I_PROFILE="3g.40gb"' for g in (1, 2)]
            code = (
                f',err_code="{xid:.0f}",err_msg="XID {xid:.0f}"' if variant == "code-labels" else ""
            )
            for instance in instances:
                one = labels + instance
                lines.append(f"DCGM_FI_DEV_GPU_TEMP{{{one}}} 60 {t:.0f}")
                lines.append(f"DCGM_FI_DEV_XID_ERRORS{{{one}{code}}} {xid} {t:.0f}")
                lines.append(f"DCGM_FI_DEV_ECC_DBE_VOL_TOTAL{{{one}}} 0 {t:.0f}")
    return "\n".join(["# TYPE DCGM_FI_DEV_GPU_TEMP gauge", *lines, "# EOF"]) + "\n"


@pytest.mark.parametrize(
    ("engine", "variant"),
    [
        ("prometheus", "Hostname"),
        ("victoriametrics", "Hostname"),
        ("prometheus", "hostname"),
        ("victoriametrics", "upgrade"),
        ("prometheus", "mig"),
        ("prometheus", "code-labels"),
        ("victoriametrics", "code-labels"),
    ],
)
def test_dcgm_last_xid_gauge_gives_failed_and_degraded(
    engine: str, variant: str, serve_history: Callable[[str, str, str], str], end: float
) -> None:
    """The last-XID gauge: only a new event in the window counts, application XIDs never make
    a GPU degraded, hard XIDs make it failed; a dcgm node (Hostname) that went silent as a
    whole is absent but not failed now, a lone silent GPU on a reporting node is. The same
    whether the node label is ``Hostname`` or a newer dcgm-exporter's ``hostname`` (or both,
    across its upgrade), whether a GPU reports once or once per MIG instance, and whether the
    gauge carries its code as a label (a new code, a new series)."""
    url = serve_history(engine, _dcgm_history(end, variant), "count(DCGM_FI_DEV_GPU_TEMP)")
    states, client = _states(url, "dcgm")
    assert engine_of(client) == engine
    assert {u: s.node for u, s in states.items()} == {u: g[1](0) for u, g in _DCGM_GPUS.items()}
    assert {u: s.state for u, s in states.items()} == {u: g[2] for u, g in _DCGM_GPUS.items()}
    reporting = {u: s.reasons for u, s in states.items() if s.state != "absent"}
    assert reporting == {
        "GPU-d0": ("XID 79",),
        "GPU-d1": (),
        "GPU-d2": (),
        "GPU-d3": (),
        "GPU-d4": (),
        "GPU-d5": ("XID 74",),
        "GPU-d6": ("XID 92",),
        "GPU-d7": (),
        "GPU-d8": ("XID 74",),
        "GPU-d9": (),
        "GPU-d12": ("XID 46",),
        "GPU-d13": ("XID 94",),
    }
    lone, whole = states["GPU-d10"], states["GPU-d11"]
    assert lone.down and not lone.node_silent
    assert not any("not reporting" in r for r in lone.reasons)
    assert not whole.down and whole.node_silent
    assert whole.reasons[0] == "node d2 not reporting (exporter or host down)"


def test_rewrite_touches_only_the_functions_metricsql_counts_differently() -> None:
    from gpu_health.telemetry.engine import from_buildinfo, rewrite

    q = "sum(increase(gpu_xid_errors_total[1h])) + changes (x[5m]) + rate(y[1m]) + delta(z[1h])"
    assert rewrite(q, "victoriametrics") == (
        "sum(increase_prometheus(gpu_xid_errors_total[1h])) + changes_prometheus(x[5m])"
        " + rate(y[1m]) + delta_prometheus(z[1h])"
    )
    assert rewrite(q, "prometheus") == q
    once = rewrite("increase(a[1h])", "victoriametrics")
    assert once == "increase_prometheus(a[1h])" and rewrite(once, "victoriametrics") == once
    assert rewrite("my_changes(a)", "victoriametrics") == "my_changes(a)"
    prometheus_info = {
        "status": "success",
        "data": {"version": "2.42.0", "revision": "x", "goVersion": "go1.19"},
    }
    assert from_buildinfo(prometheus_info) == "prometheus"
    assert from_buildinfo({"status": "success", "data": {}}) is None


#: (uuid, uncorrectable volatile count before the reset, whether the GPU was reset an hour
#: before the end, the state it must have): errors from before the history (none in its last
#: 24 h), as an operator sees a GPU days after its double-bit error.
_DBE_GPUS = (
    ("GPU-dbe-unreset", 2.0, False, "failed"),
    ("GPU-dbe-reset", 2.0, True, "healthy"),
    ("GPU-clean", 0.0, False, "healthy"),
)


def _dbe_history(end: float, schema: str) -> str:
    """Three hours, every minute, of :data:`_DBE_GPUS` in ``schema``: a volatile count that only
    a reset clears, and the board's aggregate count, which nothing clears."""
    lines = []
    for k in range(0, 3 * _H + 1, 60):
        t = end - 3 * _H + k
        for i, (uuid, errors, reset, _) in enumerate(_DBE_GPUS):
            volatile = 0.0 if reset and t >= end - _H else errors
            if schema == "ours":
                ids = f'node="n1",gpu="{i}",uuid="{uuid}",model="{DCGM}"'
                lines.append(f"gpu_up{{{ids}}} 1 {t:.0f}")
                for scope, value in (("volatile", volatile), ("aggregate", errors)):
                    labels = f'{ids},scope="{scope}",type="uncorrected"'
                    lines.append(f"gpu_ecc_errors_total{{{labels}}} {value} {t:.0f}")
            else:
                ids = f'Hostname="n1",UUID="{uuid}",gpu="{i}",modelName="{DCGM}"'
                lines.append(f"DCGM_FI_DEV_GPU_TEMP{{{ids}}} 60 {t:.0f}")
                lines.append(f"DCGM_FI_DEV_ECC_DBE_VOL_TOTAL{{{ids}}} {volatile} {t:.0f}")
                lines.append(f"DCGM_FI_DEV_ECC_DBE_AGG_TOTAL{{{ids}}} {errors} {t:.0f}")
    return "\n".join([*lines, "# EOF"]) + "\n"


@pytest.mark.parametrize(
    ("engine", "schema"),
    [("prometheus", "ours"), ("prometheus", "dcgm"), ("victoriametrics", "dcgm")],
)
def test_an_uncorrectable_error_no_reset_has_cleared_keeps_the_gpu_failed(
    engine: str, schema: str, serve_history: Callable[[str, str, str], str], end: float
) -> None:
    """A double-bit error needs a reset: until one clears the volatile count (the alert
    GPUUncorrectableEccErrors fires on that count), the GPU is failed, however old the error;
    before, it read healthy once the error was 24 hours old. After the reset it is healthy:
    the aggregate count, which nothing clears, is history, not a fault."""
    ready = "count(gpu_up)" if schema == "ours" else "count(DCGM_FI_DEV_GPU_TEMP)"
    url = serve_history(engine, _dbe_history(end, schema), ready)
    states, client = _states(url, schema)
    assert engine_of(client) == engine
    assert {u: s.state for u, s in states.items()} == {g[0]: g[3] for g in _DBE_GPUS}
    assert states["GPU-dbe-unreset"].reasons == ("uncorrectable ECC errors",)


#: (uuid, XID 74 count at each time ``age`` seconds before the end, the state it must have):
#: the event is older than the history's last 24 h in every case.
_LATCHED_XID_GPUS: tuple[tuple[str, Callable[[float], float], str], ...] = (
    # drained, awaiting its reset: the count the XID alerts page on never cleared
    ("GPU-xid-latched", lambda age: 1.0, "failed"),
    # the node rebooted two hours ago: the count cleared, and the event is 26 h old
    ("GPU-xid-rebooted", lambda age: 1.0 if age > 2 * _H else 0.0, "healthy"),
    ("GPU-xid-clean", lambda age: 0.0, "healthy"),
)


def _latched_xid_history(end: float) -> str:
    """26 hours, every 5 minutes, of :data:`_LATCHED_XID_GPUS` in our schema (XID counters born
    at zero, as our exporter creates them, here already 1 when the history starts)."""
    lines = []
    for k in range(0, 26 * _H + 1, 300):
        t = end - 26 * _H + k
        for i, (uuid, count, _) in enumerate(_LATCHED_XID_GPUS):
            ids = f'node="n1",gpu="{i}",uuid="{uuid}",model="{DCGM}"'
            lines.append(f"gpu_up{{{ids}}} 1 {t:.0f}")
            lines.append(f'gpu_xid_errors_total{{{ids},xid="74"}} {count(end - t)} {t:.0f}')
            lines.append(f'gpu_xid_errors_total{{{ids},xid="48"}} 0 {t:.0f}')
    return "\n".join([*lines, "# EOF"]) + "\n"


@pytest.mark.parametrize("engine", ["prometheus", "victoriametrics"])
def test_a_hard_xid_still_counted_keeps_the_gpu_failed_past_the_window(
    engine: str, serve_history: Callable[[str, str, str], str], end: float
) -> None:
    """A GPU whose hard XID our exporter still counts (the count GPUXidNvlinkError pages on:
    since boot with the kernel-log source) is failed however old the event: before, it read
    healthy 24 hours after the XID while the alert still paged for its drain and reset. Once the
    count clears (a reboot), the old event is history, as before."""
    url = serve_history(engine, _latched_xid_history(end), "count(gpu_up)")
    states, client = _states(url)
    assert engine_of(client) == engine
    assert {u: s.state for u, s in states.items()} == {g[0]: g[2] for g in _LATCHED_XID_GPUS}
    assert states["GPU-xid-latched"].reasons == ("XID 74",)
