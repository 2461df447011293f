"""Every panel query returns data from a real Prometheus fed like production.

The Prometheus serves a backfilled simulated history (`gpu-health backfill`), scrapes the live
exporter on the simulated fleet (`gpu-health-exporter --backend sim`, one GPU with an injected
fault so XID, ECC and penalty panels have something to show) and, when the scorer can run here,
the scorer sidecar; it evaluates the mixin's recording rules. Two more exporters leave silent
GPUs: one is killed (its `up` 0, its GPUs' series stopped), one restarts with a GPU fewer (that
GPU's series vanish while its exporter answers). Queries run through
`gpu_health.mixin.dashquery`, the same code that draws the PNG previews.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import _jsonnet
import pytest

from gpu_health import stack
from gpu_health.demo.assets import asset_arguments
from gpu_health.mixin.dashquery import (
    DashboardResult,
    PanelResult,
    PromClient,
    Series,
    builtin_values,
    run_dashboard,
    substitute,
    variable_options,
)
from gpu_health.mixin.preview_cells import merged_rows, table_rows
from tests.conftest import import_openmetrics, launch_victoriametrics
from tests.mixin import engine_rules as er

pytestmark = [pytest.mark.slow, pytest.mark.integration]

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SEED = "0"
#: One node of history (8 GPUs per node, H100 first) and a live fleet of four nodes, one per
#: simulated model (H100, A100, H200, L40S); the same seed, so the live fleet continues the
#: history's first node as a real Prometheus would see it.
GPUS_BACKFILL = 8
GPUS_LIVE = 32
FAULTY_GPU = 1
#: Faults that make the XID, ECC, remap and penalty panels show data on one live GPU.
#: A GPU of the same node that falls off the bus: the scorer calls it failed, and the risk
#: dashboard's "Down and silent GPUs" table must name it.
LOST_GPU = 5
#: A GPU of that node whose NVLink errors rise: the simulator's benign NVLink blips come 0.05
#: a GPU-day, so the backfilled day of 8 GPUs holds one only on one day in three (which day
#: depends on the date: on 2026-12-06 it held none and the NVLink errors target was empty).
NVLINK_GPU = 3
FAULTS = (
    f"gpu={FAULTY_GPU},fault=row_remap_pending",
    f"gpu={FAULTY_GPU},fault=ecc_storm",
    f"gpu={LOST_GPU},fault=xid79",
    f"gpu={NVLINK_GPU},fault=nvlink_errors",
)
#: Two more exporters, each on a node of its own and with another seed (other uuids, no slot
#: shared with the fleet above), leave silent GPUs (tests/mixin/test_dashboards_silent.py has
#: the same cases under promtool): DEAD_NODE's exporter is scraped, then killed before ``end``
#: (its `up` 0, every series of its GPUs stopped); SHRUNK_NODE's restarts with one GPU fewer, so
#: that GPU's series vanish while its exporter still answers.
DEAD_NODE, DEAD_GPUS, DEAD_SEED = "gpu-node-dead", 2, "1"
SHRUNK_NODE, SHRUNK_GPUS, SHRUNK_SEED = "gpu-node-shrunk", 2, "2"
#: Series the simulated fleet never publishes, with the reason; their targets may stay empty.
NEVER_SIMULATED = {
    "gpu_vgpu_license_status": "vGPU licensing exists only on vGPU hosts",
    "gpu_retired_pages": "page retirement is pre-Ampere; every simulated model remaps rows",
    "gpu_cache_age_seconds": "only the NVML/replay backends serve from a background cache",
}
#: Set to a folder to keep the rendered previews (used to refresh docs/img).
PREVIEW_DIR = os.environ.get("GPU_HEALTH_PREVIEW_DIR")


@dataclass
class Fleet:
    url: str
    start: float
    end: float
    faulty_uuid: str
    lost_uuid: str
    scorer: bool
    live_since: float
    #: VictoriaMetrics with the same samples (history imported, live ones remote-written by
    #: the Prometheus), or None where it is not installed
    vm_url: str | None
    #: whether it had caught up with the Prometheus at ``end`` (remote write lags)
    vm_synced: bool
    #: the killed exporter (host:port) and its GPUs' uuids
    dead_instance: str
    dead_uuids: tuple[str, ...]
    #: the restarted exporter and the uuid of the GPU it no longer serves
    shrunk_instance: str
    vanished_uuid: str

    @property
    def silent_uuids(self) -> set[str]:
        return {*self.dead_uuids, self.vanished_uuid}


def _dashboards() -> dict[str, Any]:
    result: dict[str, Any] = json.loads(
        _jsonnet.evaluate_snippet(
            "d", "(import 'mixin.libsonnet').grafanaDashboards", jpathdir=[str(REPO / "jsonnet")]
        )
    )
    return result


def _rules(path: Path) -> Path:
    rules = _jsonnet.evaluate_snippet(
        "r", "(import 'mixin.libsonnet').prometheusRules", jpathdir=[str(REPO / "jsonnet")]
    )
    path.write_text(rules)  # JSON is YAML
    return path


def _spawn(argv: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd=log.parent
        )


def _sim_exporter(
    port: int, log: Path, gpus: int, seed: str, *extra: str
) -> subprocess.Popen[bytes]:
    return _spawn(
        [str(BIN / "gpu-health-exporter"), "--backend", "sim", "--sim-gpus", str(gpus),
         "--sim-seed", seed, *extra, "--web.listen-address", f"127.0.0.1:{port}"],
        log,
    )  # fmt: skip


def _scorer_available() -> bool:
    try:
        from gpu_health.scorer.model import DEFAULT_MODEL_DIR
    except ImportError:
        return False
    return DEFAULT_MODEL_DIR.is_dir()


def _serve_outcomes(cleanup: contextlib.ExitStack) -> str:
    """Serve what ``gpu-health-scorer outcomes --textfile`` leaves for the textfile collector,
    so the live-accuracy panels have data: the scorer's history here is minutes long, too short
    for real outcomes (tests/scorer/test_outcomes.py checks those against ``evaluate``)."""
    from gpu_health.scorer.outcomes import Outcome, exposition

    body = exposition(
        [
            Outcome("7d", 3, 9, 1, 700, (2.0, 4.0, 5.0), 2),
            Outcome("30d", 12, 8, 4, 500, (10.0, 12.0), 3),
            Outcome("90d", 20, 10, 2, 300, (30.0,), 1),
        ],
        "90d",
    ).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    cleanup.callback(server.server_close)
    cleanup.callback(server.shutdown)
    return f"127.0.0.1:{server.server_address[1]}"


@pytest.fixture(scope="module")
def fleet() -> Iterator[Fleet]:
    # Not tmp_path_factory: a concurrent pytest run may prune the shared basetemp while this
    # module's Prometheus still writes there.
    work = Path(tempfile.mkdtemp(prefix="gpu-health-dashboards-"))
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(shutil.rmtree, work, ignore_errors=True)
        yield from _fleet(work, cleanup)


def _fleet(work: Path, cleanup: contextlib.ExitStack) -> Iterator[Fleet]:
    history = work / "history"
    exporter_port, scorer_port = stack.free_port(), stack.free_port()
    # The live exporter (one process for the whole fleet) continues the history: give the
    # backfill its address so history and live samples are the same series.
    run = subprocess.run(
        [str(BIN / "gpu-health"), "backfill", "--gpus", str(GPUS_BACKFILL), "--days", "1",
         "--seed", SEED, "--out", str(history), "--instance", f"127.0.0.1:{exporter_port}",
         "--keep-openmetrics"],
        capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    vm = _victoriametrics(work, history / "openmetrics", cleanup)

    dead_port, shrunk_port = stack.free_port(), stack.free_port()
    dead_at, shrunk_at = f"127.0.0.1:{dead_port}", f"127.0.0.1:{shrunk_port}"
    targets = {"gpu-health-exporter": [f"127.0.0.1:{exporter_port}", dead_at, shrunk_at]}
    scorer = _scorer_available()
    if scorer:
        targets["gpu-health-scorer"] = [f"127.0.0.1:{scorer_port}"]
        targets["node-exporter"] = [_serve_outcomes(cleanup)]
    live_since = time.time()
    exporter = _sim_exporter(
        exporter_port, work / "exporter.log", GPUS_LIVE, SEED,
        *(a for f in FAULTS for a in ("--sim-fault", f)),
    )  # fmt: skip
    cleanup.callback(stack.stop_process, exporter)
    dead = _sim_exporter(
        dead_port, work / "dead.log", DEAD_GPUS, DEAD_SEED, "--node-name", DEAD_NODE
    )
    cleanup.callback(stack.stop_process, dead)
    shrunk = _sim_exporter(
        shrunk_port, work / "shrunk.log", SHRUNK_GPUS, SHRUNK_SEED, "--node-name", SHRUNK_NODE
    )
    cleanup.callback(stack.stop_process, shrunk)
    config = stack.write_prometheus_config(
        work / "prometheus.yml",
        scrape_targets=targets,
        rule_files=[_rules(work / "rules.yaml")],
        scrape_interval="2s",
        evaluation_interval="2s",
        remote_write=[f"{vm.url}/api/v1/write"] if vm else [],
    )
    server = cleanup.enter_context(stack.prometheus(work, config, data_dir=history))
    if scorer:
        scorer_proc = _spawn(
            [str(BIN / "gpu-health-scorer"), "serve", "--prometheus.url", server.url,
             "--web.listen-address", f"127.0.0.1:{scorer_port}", "--interval", "5s",
             *asset_arguments()],  # the demo's inventory: datacenter, rack, warranty, prices
            work / "scorer.log",
        )  # fmt: skip
        cleanup.callback(stack.stop_process, scorer_proc)
    found = stack.wait_for_query(
        server.url,
        f'gpu_info{{job="gpu-health-exporter", node="gpu-node-001", gpu="{FAULTY_GPU}"}}',
        timeout=60,
    )
    uuid = found[0]["metric"]["uuid"]
    # Once both extra exporters have been scraped, kill one and restart the other with a GPU
    # fewer: their GPUs are silent long before ``end`` (the waits below take longer).
    extra = stack.wait_for_query(
        server.url,
        f'gpu_info{{job="gpu-health-exporter", node=~"{DEAD_NODE}|{SHRUNK_NODE}"}}',
        timeout=60,
        predicate=lambda r: len(r) == DEAD_GPUS + SHRUNK_GPUS,
    )
    stack.stop_process(dead)
    stack.stop_process(shrunk)
    shrunk = _sim_exporter(
        shrunk_port, work / "shrunk-again.log", SHRUNK_GPUS - 1, SHRUNK_SEED,
        "--node-name", SHRUNK_NODE,
    )  # fmt: skip
    cleanup.callback(stack.stop_process, shrunk)
    dead_uuids = tuple(
        sorted(s["metric"]["uuid"] for s in extra if s["metric"]["node"] == DEAD_NODE)
    )
    (vanished,) = (
        s["metric"]["uuid"]
        for s in extra
        if s["metric"]["node"] == SHRUNK_NODE and s["metric"]["gpu"] == str(SHRUNK_GPUS - 1)
    )
    lost = stack.wait_for_query(
        server.url,
        f'gpu_info{{job="gpu-health-exporter", node="gpu-node-001", gpu="{LOST_GPU}"}}',
        timeout=60,
    )[0]["metric"]["uuid"]
    # Live data has reached the rules when the per-GPU XID rule has the faulty GPU's events.
    stack.wait_for_query(server.url, f'gpu_xid:gpu_xid_errors:increase10m{{uuid="{uuid}"}}', 60)
    # The injected NVLink errors ramp up (the first ones about 15 s in): on a fast machine the
    # waits above were over sooner, and the NVLink errors target was empty (2026-12-06).
    stack.wait_for_query(
        server.url,
        f'rate(gpu_nvlink_errors_total{{node="gpu-node-001", gpu="{NVLINK_GPU}"}}[1m]) > 0',
        60,
    )
    if scorer:
        stack.wait_for_query(server.url, "gpu_recommended_action", timeout=120)
        stack.wait_for_query(server.url, "gpu_prediction_precision", timeout=30)
        stack.wait_for_query(
            server.url, f'gpu_state{{uuid="{lost}", state=~"failed|absent"}} == 1', timeout=60
        )
    # The silent GPUs' record (the killed exporter's and the vanished GPU), the killed
    # exporter's `up` 0 and the restarted exporter answering again.
    stack.wait_for_query(
        server.url,
        f'count(gpu:gpu_up:absent6h{{node=~"{DEAD_NODE}|{SHRUNK_NODE}"}}) == '
        f"{DEAD_GPUS + 1} and on () "
        f'count(gpu_up{{node="{SHRUNK_NODE}"}} == 1) == {SHRUNK_GPUS - 1} and on () '
        f'up{{instance="{dead_at}"}} == 0',
        timeout=60,
    )
    time.sleep(5)  # a few evaluations of every rule
    end = time.time()
    synced = _wait_for_remote_write(server.url, vm.url, end) if vm else False
    # Every test reads the fleet up to ``end``: the live exporter and scorer have nothing more
    # to add, and left running they cost CPU for the whole module (a 2-second scrape, a scorer
    # pass every 5 s), more the longer a loaded CI machine takes over the tests.
    stack.stop_process(exporter)
    stack.stop_process(shrunk)
    if scorer:
        stack.stop_process(scorer_proc)
    vm_url = vm.url if vm else None
    yield Fleet(
        server.url, end - 86400, end, uuid, lost, scorer, live_since, vm_url, synced,
        dead_at, dead_uuids, shrunk_at, vanished,
    )  # fmt: skip


def _victoriametrics(
    work: Path, openmetrics: Path, cleanup: contextlib.ExitStack
) -> stack.Server | None:
    """A VictoriaMetrics holding the backfilled history (the Prometheus sends it the rest)."""
    if shutil.which("victoria-metrics") is None:
        return None
    vm = launch_victoriametrics(work / "victoriametrics")
    cleanup.callback(vm.stop)
    for path in sorted(openmetrics.glob("*.om")):
        import_openmetrics(vm, path.read_text())
    # the Prometheus opens the data dir: leave it only TSDB blocks
    shutil.rmtree(openmetrics)
    return vm


#: Window ends (seconds before ``at``) at which the sample counts are compared. Prometheus 2's
#: range includes a sample on its left edge and VictoriaMetrics' does not, so a sample that
#: lands exactly on the edge makes the counts differ for good at that one end; a few
#: milliseconds apart, the same sample cannot sit on every edge.
SYNC_OFFSETS = (0.0, 0.013, 0.029)


#: How long the fixture waits for remote write to catch up: it returns as soon as it has (seconds
#: here), but a CI machine running three test workers has taken over a minute.
SYNC_TIMEOUT_S = 120.0


def _wait_for_remote_write(
    prom_url: str, vm_url: str, at: float, timeout: float = SYNC_TIMEOUT_S
) -> bool:
    """Until VictoriaMetrics holds what Prometheus stored up to ``at`` of a scraped, a recorded
    and a scorer series (remote write sends in batches, seconds behind); False on timeout."""
    families = (
        "up",
        "gpu_xid:gpu_xid_errors:increase10m",
        "gpu_failure_probability",
        "gpu:gpu_up:absent6h",
    )
    query = " or ".join(f'label_replace(sum(count_over_time({f}[2m])), "f", "{f}", "", "")'
                        for f in families)  # fmt: skip

    def counts(url: str, t: float) -> list[tuple[str, float]]:
        return sorted((s.labels.get("f", ""), s.last) for s in PromClient(url).instant(query, t))

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stack.http_get(f"{vm_url}/internal/force_flush", timeout=30)
        # Prometheus' own counts are read again each time: on a loaded machine a scrape or a
        # rule evaluation stamped before ``at`` can be appended after it, and a count read once
        # would then stay below what both engines end up holding.
        if any(counts(vm_url, at - o) == counts(prom_url, at - o) for o in SYNC_OFFSETS):
            return True
        time.sleep(1)
    return False


def _run(fleet: Fleet, name: str, **chosen: str) -> DashboardResult:
    return run_dashboard(
        _dashboards()[name], PromClient(fleet.url), fleet.start, fleet.end, 60.0, chosen
    )


def _empty_targets(result: DashboardResult) -> list[str]:
    return [
        f"{p.panel['title']}: {t.expr}" for p in result.panels for t in p.targets if not t.series
    ]


def test_variables_chain_cluster_node_gpu(fleet: Fleet) -> None:
    client = PromClient(fleet.url)
    detail = _dashboards()["gpu-detail.json"]
    variables = {v["name"]: v for v in detail["templating"]["list"]}
    # No series carries a cluster label here: the variable is empty and "All" (.*) still works.
    assert variable_options(variables["cluster"], client, {}, fleet.start, fleet.end) == []
    every = {"cluster": ".*", "node": ".*"}
    nodes = variable_options(variables["node"], client, every, fleet.start, fleet.end)
    # the live fleet's nodes and the two of the silent GPUs' exporters
    assert len(nodes) == GPUS_LIVE // 8 + 2 and {DEAD_NODE, SHRUNK_NODE} <= set(nodes), nodes
    one_node = {"cluster": ".*", "node": nodes[0]}
    gpus = variable_options(variables["gpu"], client, one_node, fleet.start, fleet.end)
    assert len(gpus) == 8 and fleet.faulty_uuid in gpus


def test_dashboards_show_the_backfilled_history(fleet: Fleet) -> None:
    """A panel reading the exporter's series shows the history from before the live start.
    (The overview's panels read recording rules, whose history starts where the rules were
    evaluated, unless backfilled: docs/dashboards.md.)"""
    result = _run(fleet, "gpu-detail.json", gpu=fleet.faulty_uuid)
    health = next(p for p in result.panels if p.panel["title"] == "Health score over time")
    first = min(t for s in health.targets[0].series for t in s.times)
    assert first < fleet.live_since - 3600


def test_every_fleet_overview_query_returns_data(fleet: Fleet) -> None:
    result = _run(fleet, "gpu-fleet-overview.json")
    assert _empty_targets(result) == []
    # The worst-GPU table ranks the faulty GPU among the worst.
    worst = next(p for p in result.panels if p.panel["title"] == "Worst GPUs")
    assert fleet.faulty_uuid in {s.labels["uuid"] for s in worst.targets[0].series}


def test_every_detail_panel_returns_data_for_the_faulty_gpu(fleet: Fleet) -> None:
    result = _run(fleet, "gpu-detail.json", gpu=fleet.faulty_uuid)
    empty = [
        p.panel["title"]
        for p in result.panels
        if not p.has_data and not all(any(n in t.expr for n in NEVER_SIMULATED) for t in p.targets)
    ]
    assert empty == []
    grade = next(p for p in result.panels if p.panel["title"] == "Grade")
    assert len(grade.targets[0].series) == 1, "one grade at a time"
    penalties = next(p for p in result.panels if p.panel["title"] == "Penalty breakdown")
    reasons = {s.labels["reason"] for s in penalties.targets[0].series}
    assert reasons, "the injected ECC storm must cost points"


def test_every_detail_target_returns_data_for_some_gpu(fleet: Fleet) -> None:
    """A target may be empty on one board (no fan on SXM) but must work on some GPU."""
    detail = _dashboards()["gpu-detail.json"]
    for panel in detail["panels"]:
        for target in panel["targets"]:
            target["expr"] = target["expr"].replace('uuid="$gpu"', 'uuid=~".+"')
    result = run_dashboard(detail, PromClient(fleet.url), fleet.start, fleet.end, 60.0)
    unexplained = [
        t for t in _empty_targets(result) if not any(name in t for name in NEVER_SIMULATED)
    ]
    assert unexplained == []


def test_xid_annotation_marks_the_faulty_gpu(fleet: Fleet) -> None:
    detail = _dashboards()["gpu-detail.json"]
    (annotation,) = [a for a in detail["annotations"]["list"] if "expr" in a]
    start, end, step = fleet.live_since, time.time() + 5, 5.0
    values = {"cluster": ".*", "gpu": fleet.faulty_uuid, **builtin_values(start, end, step, 2)}
    expr = substitute(annotation["expr"], values)
    series = PromClient(fleet.url).range(expr, start, end, step)
    # The injected row-remap fault raises XID 63: short annotations, not a band over the range.
    assert {s.labels["xid"] for s in series} >= {"63"}
    steps = (end - start) / step
    assert all(len(s.values) < steps / 2 for s in series), "annotations must mark events"


def test_every_risk_query_returns_data(fleet: Fleet) -> None:
    if not fleet.scorer:
        pytest.skip("the scorer's shipped model is not in this install: risk panels untested live")
    result = _run(fleet, "gpu-risk-economics.json")
    assert _empty_targets(result) == []


def test_the_down_table_names_the_lost_gpu_and_only_down_gpus(fleet: Fleet) -> None:
    if not fleet.scorer:
        pytest.skip("the scorer's shipped model is not in this install: risk panels untested live")
    result = _run(fleet, "gpu-risk-economics.json")
    panel = next(p for p in result.panels if p.panel["title"] == "Down and silent GPUs")
    listed = {s.labels["uuid"] for t in panel.targets for s in t.series}
    assert fleet.lost_uuid in listed
    assert fleet.faulty_uuid not in listed  # degraded, not down
    # One row per GPU, its state and how long it has been silent side by side.
    columns, rows = table_rows(panel)
    lost = [r for r in rows if fleet.lost_uuid in r]
    assert len(lost) == 1, rows
    row = dict(zip(columns, lost[0], strict=True))
    assert row["state"] in {"failed", "absent"} and row["for"].endswith("s"), row


def test_previews_render_from_the_same_queries(fleet: Fleet, tmp_path: Path) -> None:
    out = Path(PREVIEW_DIR) if PREVIEW_DIR else tmp_path
    run = subprocess.run(
        [sys.executable, "-m", "gpu_health.mixin.dashpreview", "--prometheus", fleet.url,
         "--dashboards", str(REPO / "grafana"), "--out", str(out), "--end", str(fleet.end),
         "--range", "24h", "--scrape-interval", "60s"],
        capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    for name in ("gpu-fleet-overview", "gpu-detail", "gpu-risk-economics"):
        png = out / f"{name}.png"
        assert png.read_bytes()[:4] == b"\x89PNG" and png.stat().st_size > 50_000


def _panel(result: DashboardResult, title: str) -> PanelResult:
    (found,) = [p for p in result.panels if p.panel["title"] == title]
    return found


def _stat(result: DashboardResult, title: str) -> float:
    (target,) = _panel(result, title).targets
    (series,) = target.series
    return series.last


def _columns(panel: PanelResult) -> list[dict[str, Any]]:
    """The table's rows by the column names it shows (organize's renames)."""
    organize = next(t for t in panel.panel["transformations"] if t["id"] == "organize")
    rename: dict[str, str] = organize["options"]["renameByName"]
    return [{rename.get(k, k): v for k, v in row.items()} for row in merged_rows(panel)]


#: GPU slots (node, PCI bus id) seen within the day: the live fleet (the backfilled node is its
#: first) and every GPU the two extra exporters served.
SLOTS = GPUS_LIVE + DEAD_GPUS + SHRUNK_GPUS


def test_the_fleet_overview_shows_the_silent_gpus(fleet: Fleet) -> None:
    """The killed exporter's GPUs and the GPU gone from the restarted exporter stay on the
    health panels: missing, graded silent, listed in Worst GPUs at 0, counted as 0 in the mean
    and the coverage; the Exporters table shows the dead exporter and, on the restarted
    exporter's row, its vanished GPU as not answering (docs/dashboards.md)."""
    result = _run(fleet, "gpu-fleet-overview.json")
    silent = fleet.silent_uuids
    assert len(silent) == DEAD_GPUS + 1
    reporting = _stat(result, "GPUs reporting")
    # the lost GPU (gpu_up 0) and the silent ones, at least: the fleet may lose another
    assert reporting <= SLOTS - len(silent) - 1
    assert _stat(result, "GPUs missing") == SLOTS - reporting
    assert math.isclose(_stat(result, "Exporter coverage"), reporting / SLOTS, rel_tol=1e-12)

    # The exporters' own series, read directly: the panels add the silent GPUs to them.
    client = PromClient(fleet.url)
    exp = 'job="gpu-health-exporter"'
    poor = client.instant(f'sum(gpu_health_grade{{{exp}, grade=~"poor|critical"}})', fleet.end)
    assert _stat(result, "GPUs poor, critical or silent") == sum(s.last for s in poor) + len(silent)
    grades = {s.labels["grade"]: s.last for s in _panel(result, "GPUs per grade").targets[0].series}
    assert grades.get("silent") == len(silent), grades
    scores = [
        s.last for s in client.instant(f'gpu_health_score{{{exp}, dimension="overall"}}', fleet.end)
    ]
    assert not silent & {s.labels["uuid"] for s in client.instant(f"gpu_up{{{exp}}}", fleet.end)}, (
        "silent GPUs publish nothing now"
    )
    finite = [v for v in scores if math.isfinite(v)]
    # a NaN score counts as 0 as well
    expected_mean = sum(finite) / (len(scores) + len(silent))
    assert math.isclose(_stat(result, "Mean health score"), expected_mean, rel_tol=1e-9)

    worst = _panel(result, "Worst GPUs").targets[0].series
    listed = {s.labels["uuid"]: (s.labels.get("grade"), s.last) for s in worst}
    assert {u: listed.get(u) for u in silent} == dict.fromkeys(silent, ("silent", 0.0)), listed

    by_node = {
        s.labels["node"]: s for s in _panel(result, "Exporter coverage by node").targets[0].series
    }
    now = {node: s.last for node, s in by_node.items() if math.isclose(s.times[-1], fleet.end)}
    assert now.get(DEAD_NODE) == 0.0, now
    assert now.get(SHRUNK_NODE) == (SHRUNK_GPUS - 1) / SHRUNK_GPUS, now

    exporters = {r["instance"]: r for r in _columns(_panel(result, "Exporters"))}
    shown = ("Up", "GPUs in inventory", "GPUs answering", "GPUs not answering", "Collectors OK")
    rows = {
        at: tuple(exporters.get(at, {}).get(c) for c in shown)
        for at in (fleet.dead_instance, fleet.shrunk_instance)
    }
    # The dead exporter: up 0, its silent GPUs in its inventory, none answering.
    assert rows[fleet.dead_instance] == (0.0, DEAD_GPUS, 0.0, DEAD_GPUS, 0.0), rows
    # The restarted one answers for all it lists now, and the GPU it dropped stays on its row
    # as not answering, as GPUs missing and the coverage count it (above): the row read 0 not
    # answering and the vanished GPU in no column.
    assert rows[fleet.shrunk_instance] == (1.0, SHRUNK_GPUS, SHRUNK_GPUS - 1, 1.0, 1.0), rows


def _panel_json(dashboard: dict[str, Any], title: str) -> dict[str, Any]:
    (found,) = [p for p in dashboard["panels"] if p.get("title") == title]
    result: dict[str, Any] = found
    return result


def test_the_detail_stats_read_silent_for_a_silent_gpu(fleet: Fleet) -> None:
    """Health score 0, grade silent, Up -1 (mapped to SILENT), for a GPU of the killed exporter
    and for the GPU gone from the restarted one; a reporting GPU reads its own."""
    detail = _dashboards()["gpu-detail.json"]
    titles = ("Health score", "Grade", "Up")
    detail["panels"] = [p for p in detail["panels"] if p.get("title") in titles]
    (mapping,) = _panel_json(detail, "Up")["fieldConfig"]["defaults"]["mappings"]
    assert mapping["options"]["-1"]["text"] == "SILENT"
    client = PromClient(fleet.url)
    for uuid in [*sorted(fleet.silent_uuids), fleet.faulty_uuid]:
        result = run_dashboard(detail, client, fleet.start, fleet.end, 60.0, {"gpu": uuid})
        shown = {
            t: [(s.labels.get("grade"), s.last) for s in _panel(result, t).targets[0].series]
            for t in titles
        }
        if uuid == fleet.faulty_uuid:
            assert shown["Up"] == [(None, 1.0)] and shown["Grade"][0][0] != "silent", shown
            continue
        assert shown == {
            "Health score": [(None, 0.0)],
            "Grade": [("silent", 1.0)],
            "Up": [(None, -1.0)],
        }, (uuid, shown)


def test_every_multi_query_table_shows_one_row_per_gpu(fleet: Fleet) -> None:
    """Grafana merges a table's queries only where every field they share agrees, before
    `organize` hides the metric name: queries that keep different metric names would split
    each GPU into half-rows (the preview's merge follows Grafana's)."""
    if not fleet.scorer:
        pytest.skip("the scorer's shipped model is not in this install: risk panels untested live")
    split = []
    for name in ("gpu-fleet-overview.json", "gpu-risk-economics.json"):
        for panel in _run(fleet, name).panels:
            ids = {t.get("id") for t in panel.panel.get("transformations", [])}
            if panel.panel["type"] != "table" or "merge" not in ids or len(panel.targets) < 2:
                continue
            rows = merged_rows(panel)
            uuids = [r["uuid"] for r in rows if r.get("uuid")]
            if len(uuids) != len(set(uuids)):
                split.append(f"{name}: {panel.panel['title']}")
    assert split == []


#: An outermost topk()/bottomk(): which of several equal values fill its last places is each
#: engine's own choice (neither documents an order among ties).
RANKED = re.compile(r"^\s*(topk|bottomk)\s*\(")
Key = tuple[tuple[str, str], ...]


def _keyed(series: list[Series]) -> dict[Key, Series]:
    return {tuple(sorted(s.labels.items())): s for s in series}


def _same(x: float, y: float, abs_tol: float = 1e-12) -> bool:
    return math.isclose(x, y, rel_tol=1e-9, abs_tol=abs_tol) or (math.isnan(x) and math.isnan(y))


def _tied_at_the_cut(expr: str, prom: dict[Key, Series], vm: dict[Key, Series]) -> set[Key]:
    """Series only one engine ranked in, when both ranked the same values and those series
    hold the value at the cut (instant tables only)."""
    if not RANKED.match(expr) or any(len(s.values) != 1 for s in [*prom.values(), *vm.values()]):
        return set()
    values = [sorted(s.last for s in side.values()) for side in (prom, vm)]
    if len(values[0]) != len(values[1]) or not all(map(_same, *values)) or not values[0]:
        return set()
    cut = values[0][0] if expr.lstrip().startswith("topk") else values[0][-1]
    alone = (prom.keys() - vm.keys()) | (vm.keys() - prom.keys())
    return {k for k in alone if _same((prom.get(k) or vm[k]).last, cut)}


def _differences(expr: str, prom: list[Series], vm: list[Series]) -> tuple[list[str], float]:
    """What a dashboard user would see differently (series one engine has and the other lacks,
    values that differ where both answered), and the largest relative value difference."""
    a, b = _keyed(prom), _keyed(vm)
    ties = _tied_at_the_cut(expr, a, b)
    out = [f"only on Prometheus: {dict(k)}" for k in a.keys() - b.keys() - ties]
    out += [f"only on VictoriaMetrics: {dict(k)}" for k in b.keys() - a.keys() - ties]
    # VictoriaMetrics takes the query time to the millisecond: time() - t differs below that.
    # It also keeps about 12 significant digits of each stored value (12345.678901234567 reads
    # back as 12345.67890123), so a difference of two large values (an action's NPV less the
    # keep NPV, tens of thousands of dollars) can differ by ~1e-8 between the engines: far
    # below anything a panel shows
    abs_tol = 1e-3 if "time()" in expr else 1e-6 if " - " in expr else 1e-12
    worst = 0.0
    for key in a.keys() & b.keys():
        pa = dict(zip(a[key].times, a[key].values, strict=True))
        pb = dict(zip(b[key].times, b[key].values, strict=True))
        differ = [(t, pa[t], pb[t]) for t in sorted(pa.keys() & pb.keys())]
        differ = [(t, x, y) for t, x, y in differ if not _same(x, y, abs_tol)]
        if differ:
            t, x, y = differ[0]
            out.append(f"{dict(key)}: {len(differ)} values differ (first at {t:.0f}: {x} vs {y})")
            worst = max(worst, *(abs(x - y) / max(abs(x), abs(y)) for _, x, y in differ))
    return out, worst


#: VictoriaMetrics answers ``a or on (uuid) b`` differently for about ten minutes after a's
#: series stop (a GPU gone silent; measured on Debian's 1.79): it keeps a's stopped series, NaN
#: now, and fills them with b's value, so its answer carries a's labels (the metric name, a's own
#: labels) where Prometheus answers with b's series (VictoriaMetrics issue #7759, fixed after
#: 1.107 for an instant's all-NaN left side). Where the panel shows the same (the same values
#: under the same legends) that is only printed; a panel where it shows differently is listed
#: here with what VictoriaMetrics shows, and must still differ (none now: the detail Grade
#: stat showed the five stopped grades for "silent" until its query dropped ``on (uuid)``).
OR_FILLED_SHOWN_DIFFERENTLY: dict[str, str] = {}


def _filled_by_or(expr: str, prom: list[Series], vm: list[Series], silent: set[str]) -> bool | None:
    """Whether every difference is VictoriaMetrics filling a silent GPU's stopped series through
    ``or on (uuid)`` (with values Prometheus has for that GPU at the same times) and, if so,
    whether the panel shows the same on both; None when something else differs."""
    a, b = _keyed(prom), _keyed(vm)
    alone = a.keys() ^ b.keys()
    uuids = {dict(k).get("uuid", "") for k in alone}
    if " or on (uuid) " not in expr or not alone or not uuids <= silent:
        return None
    rest = [[x for x in side if x.labels.get("uuid") not in uuids] for side in (prom, vm)]
    if _differences(expr, *rest)[0]:
        return None
    # (uuid, legend, time, value) of the silent GPUs' points
    shown = [
        {
            (x.labels["uuid"], x.name, t, round(v, 9))
            for x in side
            if x.labels.get("uuid") in uuids
            for t, v in zip(x.times, x.values, strict=True)
        }
        for side in (prom, vm)
    ]
    values = [{(u, t, v) for u, _, t, v in points} for points in shown]
    if not values[1] or not values[1] <= values[0]:
        return None
    return shown[0] == shown[1]


def test_every_dashboard_query_agrees_on_victoriametrics(fleet: Fleet) -> None:
    """Grafana pointed at VictoriaMetrics (as a Prometheus data source) shows what it shows on
    Prometheus: both hold the same samples (the history imported, the rest remote-written by the
    Prometheus as it scrapes and records), and every panel of every dashboard is asked of each.

    Queries without rate()/increase() must agree exactly; with them, the engines define the
    values differently (see docs/alerts.md, "On VictoriaMetrics"), so the values are reported
    and only each target's having data is asserted. The silent GPUs' series stopped seconds
    before: VictoriaMetrics' `or` differs then (OR_FILLED_SHOWN_DIFFERENTLY)."""
    if fleet.vm_url is None:
        pytest.skip("victoria-metrics is not installed (run.sh installs it)")
    assert fleet.vm_synced, (
        f"VictoriaMetrics did not receive Prometheus' samples within {SYNC_TIMEOUT_S:.0f} s"
    )
    exact: list[str] = []
    defined: list[str] = []
    empty_on_one: list[str] = []
    filled: list[str] = []
    born_in_window: list[str] = []
    filled_shown_differently: set[str] = set()
    counts = {"exact": 0, "defined": 0, "series": 0}
    worst = 0.0
    # The detail dashboard for the faulty GPU and for a silent one (its exporter killed).
    runs = [
        (name, dashboard, {"gpu": gpu} if name == "gpu-detail.json" else {})
        for name, dashboard in sorted(_dashboards().items())
        for gpu in ([fleet.faulty_uuid, fleet.dead_uuids[0]] if name == "gpu-detail.json" else [""])
    ]
    silent_on_vm: set[str] = set()
    for name, dashboard, chosen in runs:
        prom, vm = (
            run_dashboard(dashboard, PromClient(url), fleet.start, fleet.end, 60.0, chosen)
            for url in (fleet.url, fleet.vm_url)
        )
        assert prom.variables == vm.variables, name
        for p, v in zip(prom.panels, vm.panels, strict=True):
            if p.panel["title"] == "Worst GPUs":
                silent_on_vm |= {
                    s.labels["uuid"]
                    for s in v.targets[0].series
                    if s.labels.get("grade") == "silent"
                }
            for tp, tv in zip(p.targets, v.targets, strict=True):
                where = f"{name} / {p.panel['title']} / {tp.expr}"
                kind = "defined" if er.extrapolates(tp.expr) else "exact"
                if bool(tp.series) != bool(tv.series):
                    # The silent GPU lived seconds here: its simulated counters were born
                    # inside every window, at their counts since boot, which increase() reads
                    # as nothing on Prometheus and as the count on VictoriaMetrics (the
                    # documented difference; the NVML exporter's counters are born at 0).
                    born = chosen.get("gpu") in fleet.silent_uuids and kind == "defined"
                    (born_in_window if born else empty_on_one).append(where)
                diffs, rel = _differences(tp.expr, tp.series, tv.series)
                panel = f"{name} / {p.panel['title']}"
                same = _filled_by_or(tp.expr, tp.series, tv.series, fleet.silent_uuids)
                if kind == "exact" and diffs and same is not None:
                    if not same and panel not in OR_FILLED_SHOWN_DIFFERENTLY:
                        exact.extend(f"{where}: {d}" for d in diffs)
                    if not same:
                        filled_shown_differently.add(panel)
                    filled.append(f"{where}: shown {'the same' if same else 'differently'}")
                    diffs = []
                counts[kind] += 1
                counts["series"] += len(tp.series)
                (defined if kind == "defined" else exact).extend(f"{where}: {d}" for d in diffs)
                worst = max(worst, rel) if kind == "defined" else worst
    print(
        f"{counts['exact']} targets without rate()/increase(), {len(exact)} disagreements; "
        f"{counts['defined']} with, {len(defined)} series differ (largest relative "
        f"{worst:.3f}); {counts['series']} series on Prometheus"
    )
    print("\n".join(exact + defined[:10]))
    print("VictoriaMetrics' `or` filling the silent GPUs' stopped series:", *filled, sep="\n")
    print("Counters of the silent GPU born inside the window:", *born_in_window, sep="\n")
    assert empty_on_one == []
    assert exact == []
    # The silent GPUs were there to agree on (their record reached VictoriaMetrics).
    assert silent_on_vm == fleet.silent_uuids
    assert filled_shown_differently == set(OR_FILLED_SHOWN_DIFFERENTLY)
