"""Label values with odd characters survive the exposition, the parsers and a real Prometheus.

A node name or a GPU model/serial string comes from outside (hostname, ``$NODE_NAME``, the
driver): quotes, backslashes and newlines in them must be escaped, not break the exposition or
smuggle in extra series, and unicode must arrive intact.
"""

from __future__ import annotations

import http.client
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_om
from prometheus_client.parser import text_string_to_metric_families as parse_text

from gpu_health import stack
from gpu_health.exporter.backends.nvml import NvmlBackend
from gpu_health.exporter.collector import ExporterCollector
from gpu_health.exporter.fake_nvml import FakeNvml
from gpu_health.web import server as web

FIXTURE = Path(__file__).parent.parent / "fixtures" / "h100" / "nvml_h100.json"
NODE = 'rack-7 "east" \\ nœud\nfake_metric{x="1"} 1 🚀'
MODEL = 'NVIDIA H100 "80GB" \\HBM3\\ } { = , 模型'
SERIAL = "1652\t923\r0x\\n"
VBIOS = '96.00.99.00.01"}\n# TYPE evil counter'


@pytest.fixture
def exporter() -> Iterator[web.WebServer]:
    fake = FakeNvml.from_file(FIXTURE, gpus=2)
    fake.set(1, "nvmlDeviceGetName", MODEL)
    fake.set(1, "nvmlDeviceGetSerial", SERIAL)
    fake.set(1, "nvmlDeviceGetVbiosVersion", VBIOS)
    backend = NvmlBackend(nvml=fake, node=NODE, poll_interval=3600, watch_events=False)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ExporterCollector(backend, backend.inventory()))
    server = web.WebServer("127.0.0.1:0", {"/metrics": web.metrics_handler(registry)}).start()
    try:
        yield server
    finally:
        server.shutdown()
        backend.close()


def _scrape(port: int, accept: str = "") -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/metrics", headers={"Accept": accept} if accept else {})
    body = conn.getresponse().read().decode("utf-8")
    conn.close()
    return body


def _check(families: object) -> None:
    names = set()
    gpu1_info = None
    for family in families:  # type: ignore[attr-defined]
        for sample in family.samples:
            names.add(sample.name)
            if "gpu" in sample.labels:  # per-GPU series (self-metrics carry no node)
                assert sample.labels.get("node") == NODE, sample
            if sample.name == "gpu_info" and sample.labels.get("gpu") == "1":
                gpu1_info = sample.labels
    assert "fake_metric" not in names and "evil" not in names
    assert gpu1_info is not None
    assert gpu1_info["model"] == MODEL
    assert SERIAL in gpu1_info.values() and VBIOS in gpu1_info.values()


def test_text_format_round_trips(exporter: web.WebServer) -> None:
    body = _scrape(exporter.port)
    assert "\nfake_metric" not in body and "\n# TYPE evil" not in body
    _check(parse_text(body))


def test_openmetrics_format_round_trips(exporter: web.WebServer) -> None:
    body = _scrape(exporter.port, "application/openmetrics-text; version=1.0.0")
    _check(parse_om(body))


@pytest.mark.integration
def test_real_prometheus_stores_the_exact_values(
    exporter: web.WebServer, prometheus_factory
) -> None:  # type: ignore[no-untyped-def]
    prom = prometheus_factory(scrape_targets={"gpu": [f"127.0.0.1:{exporter.port}"]})
    result = stack.wait_for_query(prom.url, 'gpu_info{gpu="1"}', timeout=30)
    labels = result[0]["metric"]
    assert labels["node"] == NODE and labels["model"] == MODEL
    assert SERIAL in labels.values() and VBIOS in labels.values()
    up = stack.query(prom.url, 'up{job="gpu"}')
    assert up[0]["value"][1] == "1"
    assert stack.query(prom.url, "fake_metric") == []
