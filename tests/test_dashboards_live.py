"""Every panel query returns data from a real Prometheus fed like production.

The Prometheus serves a backfilled simulated history (`gpu-health backfill`), scrapes the live
exporter on the simulated fleet (`gpu-health-exporter --backend sim`, one GPU with an injected
fault so XID, ECC and penalty panels have something to show) and, when the scorer can run here,
the scorer sidecar; it evaluates the mixin's recording rules. Queries run through
`gpu_health.dashquery`, the same code that draws the PNG previews.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import _jsonnet
import pytest

from gpu_health import stack
from gpu_health.dashquery import (
    DashboardResult,
    PromClient,
    builtin_values,
    run_dashboard,
    substitute,
    variable_options,
)

pytestmark = [pytest.mark.slow, pytest.mark.integration]

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
GPUS_BACKFILL = 6
GPUS_LIVE = 4
FAULTY_GPU = 1
#: The fault that makes XID, ECC, remap and penalty panels show data on one live GPU.
FAULT = f"gpu={FAULTY_GPU},fault=ecc_storm,after=0s"
#: Series no simulated board publishes, with the reason; their targets may stay empty.
NEVER_SIMULATED = {
    "gpu_vgpu_license_status": "vGPU licensing exists only on vGPU hosts",
}
#: Set to a folder to keep the rendered previews (used to refresh docs/img).
PREVIEW_DIR = os.environ.get("GPU_HEALTH_PREVIEW_DIR")


@dataclass
class Fleet:
    url: str
    start: float
    end: float
    faulty_uuid: str
    scorer: bool
    workdir: Path


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


def _scorer_available() -> bool:
    try:
        from gpu_health.scorer.model import DEFAULT_MODEL_DIR
    except ImportError:
        return False
    return DEFAULT_MODEL_DIR.is_dir()


@pytest.fixture(scope="module")
def fleet() -> Iterator[Fleet]:
    # Not tmp_path_factory: a concurrent pytest run may prune the shared basetemp while this
    # module's Prometheus still writes there.
    work = Path(tempfile.mkdtemp(prefix="gpu-health-dashboards-"))
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(shutil.rmtree, work, ignore_errors=True)
        yield from _fleet(work)


def _fleet(work: Path) -> Iterator[Fleet]:
    history = work / "history"
    run = subprocess.run(
        [str(BIN / "gpu-health"), "backfill", "--gpus", str(GPUS_BACKFILL), "--days", "1",
         "--out", str(history)],
        capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    data_dir = history / "tsdb" if (history / "tsdb").is_dir() else history

    exporter_port, scorer_port = stack.free_port(), stack.free_port()
    targets = {"gpu-health-exporter": [f"127.0.0.1:{exporter_port}"]}
    scorer = _scorer_available()
    if scorer:
        targets["gpu-health-scorer"] = [f"127.0.0.1:{scorer_port}"]
    with contextlib.ExitStack() as cleanup:
        exporter = _spawn(
            [str(BIN / "gpu-health-exporter"), "--backend", "sim", "--sim-gpus", str(GPUS_LIVE),
             "--sim-seed", "3", "--sim-fault", FAULT, "--node-name", "live-node",
             "--web.listen-address", f"127.0.0.1:{exporter_port}"],
            work / "exporter.log",
        )  # fmt: skip
        cleanup.callback(stack.stop_process, exporter)
        config = stack.write_prometheus_config(
            work / "prometheus.yml",
            scrape_targets=targets,
            rule_files=[_rules(work / "rules.yaml")],
        )
        server = cleanup.enter_context(stack.prometheus(work, config, data_dir=data_dir))
        if scorer:
            scorer_proc = _spawn(
                [str(BIN / "gpu-health-scorer"), "serve", "--prometheus.url", server.url,
                 "--web.listen-address", f"127.0.0.1:{scorer_port}", "--interval", "5s"],
                work / "scorer.log",
            )  # fmt: skip
            cleanup.callback(stack.stop_process, scorer_proc)
        # Live data has arrived when the per-GPU recording rules have the faulty GPU's XIDs.
        found = stack.wait_for_query(
            server.url, f'gpu_info{{node="live-node", gpu="{FAULTY_GPU}"}}', timeout=60
        )
        uuid = found[0]["metric"]["uuid"]
        stack.wait_for_query(server.url, "gpu_xid:gpu_xid_errors:increase10m", timeout=60)
        if scorer:
            stack.wait_for_query(server.url, "gpu_recommended_action", timeout=120)
        time.sleep(3)  # a few evaluations of every rule
        end = time.time()
        yield Fleet(server.url, end - 86400, end, uuid, scorer, work)


def _run(fleet: Fleet, name: str, **chosen: str) -> DashboardResult:
    return run_dashboard(
        _dashboards()[name], PromClient(fleet.url), fleet.start, fleet.end, 60.0, chosen
    )


def _empty_targets(result: DashboardResult) -> list[str]:
    return [
        f"{p.panel['title']}: {t.expr}" for p in result.panels for t in p.targets if not t.series
    ]


def test_variables_offer_the_backfilled_and_the_live_fleet(fleet: Fleet) -> None:
    client = PromClient(fleet.url)
    detail = _dashboards()["gpu-detail.json"]
    variables = {v["name"]: v for v in detail["templating"]["list"]}
    values = {"cluster": ".*", "node": ".*"}
    nodes = variable_options(variables["node"], client, values, fleet.start, fleet.end)
    assert "live-node" in nodes and len(nodes) >= 2, nodes
    gpus = variable_options(
        variables["gpu"], client, {**values, "node": "live-node"}, fleet.start, fleet.end
    )
    assert len(gpus) == GPUS_LIVE and fleet.faulty_uuid in gpus
    # No series carries a cluster label here: the variable is empty and "All" (.*) still works.
    assert variable_options(variables["cluster"], client, {}, fleet.start, fleet.end) == []


def test_every_fleet_overview_query_returns_data(fleet: Fleet) -> None:
    result = _run(fleet, "gpu-fleet-overview.json")
    assert _empty_targets(result) == []
    # The worst-GPU table ranks the faulty GPU among the worst.
    worst = next(p for p in result.panels if p.panel["title"] == "Worst GPUs")
    assert fleet.faulty_uuid in {s.labels["uuid"] for s in worst.targets[0].series}


def test_every_detail_panel_returns_data_for_the_faulty_gpu(fleet: Fleet) -> None:
    result = _run(fleet, "gpu-detail.json", node="live-node", gpu=fleet.faulty_uuid)
    empty_panels = [p.panel["title"] for p in result.panels if not p.has_data]
    assert empty_panels == [p for p in empty_panels if p == "vGPU licence status"]
    penalties = next(p for p in result.panels if p.panel["title"] == "Penalty breakdown")
    assert penalties.targets[0].series, "the injected fault must cost points"


def test_every_detail_target_returns_data_for_some_gpu(fleet: Fleet) -> None:
    """A target may be empty for one board (no fan on SXM) but must work for some GPU."""
    client = PromClient(fleet.url)
    detail = _dashboards()["gpu-detail.json"]
    variables = {v["name"]: v for v in detail["templating"]["list"]}
    uuids = variable_options(
        variables["gpu"], client, {"cluster": ".*", "node": ".*"}, fleet.start, fleet.end
    )
    # Keyed by panel title and refId (the expression differs per GPU: it holds the uuid).
    missing: set[tuple[str, str]] | None = None
    for uuid in uuids:
        result = run_dashboard(detail, client, fleet.start, fleet.end, 60.0, {"gpu": uuid})
        empty = {
            (p.panel["title"], t.ref_id) for p in result.panels for t in p.targets if not t.series
        }
        missing = empty if missing is None else missing & empty
    templates = {
        (p["title"], t["refId"]): t["expr"] for p in detail["panels"] for t in p["targets"]
    }
    unexplained = {
        key: templates[key]
        for key in missing or set()
        if not any(name in templates[key] for name in NEVER_SIMULATED)
    }
    assert unexplained == {}


def test_xid_annotation_marks_the_faulty_gpu(fleet: Fleet) -> None:
    detail = _dashboards()["gpu-detail.json"]
    (annotation,) = [a for a in detail["annotations"]["list"] if "expr" in a]
    values = {
        "cluster": ".*",
        "gpu": fleet.faulty_uuid,
        **builtin_values(fleet.end - 600, fleet.end, 15, 1),
    }
    series = PromClient(fleet.url).range(
        substitute(annotation["expr"], values), fleet.end - 600, fleet.end, 15
    )
    assert series and all(s.labels.get("xid") for s in series)


def test_every_risk_query_returns_data(fleet: Fleet) -> None:
    if not fleet.scorer:
        pytest.skip("the scorer's shipped model is not in this install: risk panels untested live")
    result = _run(fleet, "gpu-risk-economics.json")
    assert _empty_targets(result) == []


def test_previews_render_from_the_same_queries(fleet: Fleet, tmp_path: Path) -> None:
    out = Path(PREVIEW_DIR) if PREVIEW_DIR else tmp_path
    run = subprocess.run(
        [sys.executable, "-m", "gpu_health.dashpreview", "--prometheus", fleet.url,
         "--dashboards", str(REPO / "grafana"), "--out", str(out), "--end", str(fleet.end),
         "--range", "24h", "--scrape-interval", "60s"],
        capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    for name in ("gpu-fleet-overview", "gpu-detail", "gpu-risk-economics"):
        png = out / f"{name}.png"
        assert png.read_bytes()[:4] == b"\x89PNG" and png.stat().st_size > 50_000
