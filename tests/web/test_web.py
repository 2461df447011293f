"""The shared HTTP server: routes, content negotiation, refusals."""

from __future__ import annotations

import http.client
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, Gauge

from gpu_health.errors import UserError
from gpu_health.web import server as web


@pytest.fixture
def server() -> Iterator[web.WebServer]:
    registry = CollectorRegistry()
    Gauge("probe_gauge", "A probe.", registry=registry).set(3.5)
    routes = {
        "/metrics": web.metrics_handler(registry),
        "/": web.landing_page("Probe", {"/metrics": "Metrics"}),
        "/boom": lambda _req: 1 / 0,  # type: ignore[arg-type,return-value]
    }
    srv = web.WebServer("127.0.0.1:0", routes).start()
    try:
        yield srv
    finally:
        srv.shutdown()


def _request(
    port: int, method: str, path: str, headers: dict[str, str] | None = None
) -> tuple[int, bytes, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request(method, path, headers=headers or {})
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    return resp.status, body, resp.getheader("Content-Type") or ""


def test_metrics_in_text_and_openmetrics(server: web.WebServer) -> None:
    status, body, ctype = _request(server.port, "GET", "/metrics")
    assert status == 200 and b"probe_gauge 3.5" in body and ctype.startswith("text/plain")
    status, body, ctype = _request(
        server.port, "GET", "/metrics", {"Accept": "application/openmetrics-text; version=1.0.0"}
    )
    assert ctype.startswith("application/openmetrics-text") and body.rstrip().endswith(b"# EOF")


def test_unknown_path_and_methods_are_refused(server: web.WebServer) -> None:
    assert _request(server.port, "GET", "/nope")[0] == 404
    assert _request(server.port, "POST", "/metrics")[0] == 405
    assert _request(server.port, "DELETE", "/")[0] == 405


def test_handler_exception_is_a_500_without_traceback(server: web.WebServer) -> None:
    status, body, _ = _request(server.port, "GET", "/boom")
    assert status == 500 and b"Traceback" not in body and b"ZeroDivision" not in body


def test_landing_page_links_metrics(server: web.WebServer) -> None:
    status, body, ctype = _request(server.port, "GET", "/")
    assert status == 200 and b'href="/metrics"' in body and "html" in ctype


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("nonsense", "e.g. 127.0.0.1:8080"),
        ("host:notaport", "e.g. 127.0.0.1:8080"),
        ("1.2.3.4:99999", "with a port from 0 to 65535"),
    ],
)
def test_bad_listen_address_is_one_line_error(address: str, reason: str) -> None:
    with pytest.raises(UserError, match="HOST:PORT") as info:
        web.parse_listen_address(address)
    assert reason in str(info.value)
    # 9835 is another GPU exporter's port (utkuozdemir/nvidia_gpu_exporter): not an example
    assert "9835" not in str(info.value)
