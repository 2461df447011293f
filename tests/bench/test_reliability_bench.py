"""The load and soak benches keep working (tiny runs; real figures: docs/reliability.md)."""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from prometheus_client import CollectorRegistry, Gauge

from gpu_health.web import server as web

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def target() -> Iterator[str]:
    registry = CollectorRegistry()
    Gauge("gpu_up", "probe", registry=registry).set(1)
    server = web.WebServer("127.0.0.1:0", {"/metrics": web.metrics_handler(registry)}).start()
    try:
        yield f"http://127.0.0.1:{server.port}/metrics"
    finally:
        server.shutdown()


def test_load_scrape_counts_scrapes_and_errors(target: str, tmp_path: Path) -> None:
    bench = _load("load_scrape")
    out = tmp_path / "load.json"
    argv = ["--target", target, "--scrapers", "5", "--duration", "1", "--interval", "0.1"]
    assert bench.main([*argv, "--baseline", "0.5", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    load = result["phases"][1]
    assert load["scrapers"] == 5 and 30 <= load["scrapes"] <= 55 and load["errors"] == 0
    assert 0 < load["p50_ms"] <= load["p99_ms"] <= load["max_ms"]
    # An endpoint that answers 404 is counted as errors, not as fast scrapes.
    assert bench.main(["--target", target.replace("/metrics", "/nope"), "--scrapers", "2",
                       "--duration", "0.5", "--baseline", "0.2"]) == 1  # fmt: skip


def test_soak_reports_slopes(tmp_path: Path) -> None:
    pytest.importorskip("gpu_health.sim.live")
    bench = _load("soak")
    out = tmp_path / "soak.json"
    code = bench.main(
        [
            "--no-scorer",
            "--duration",
            "4",
            "--sample-every",
            "0.5",
            "--gpus",
            "2",
            "--json",
            str(out),
        ]
    )
    result = json.loads(out.read_text())["results"][0]
    assert code == 0 and result["process"] == "exporter" and result["samples"] >= 6
    assert result["scrapes"] >= 15 and result["scrape_errors"] == 0
    assert result["rss_kib_start"] > 1000 and result["fds_end"] >= 3


def test_slope_fit() -> None:
    bench = _load("soak")
    assert bench.slope([0, 1, 2, 3], [10, 12, 14, 16]) == pytest.approx(2.0)
    assert bench.slope([0, 1, 2, 3], [5, 5, 5, 5]) == 0.0
