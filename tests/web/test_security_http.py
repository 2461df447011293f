"""Hostile HTTP against the shared server: oversized and slow requests, odd paths and methods.

Raw sockets, because well-behaved client libraries refuse to send most of these. Every test also
checks the server still answers a normal scrape afterwards: surviving is the point.
"""

from __future__ import annotations

import contextlib
import gzip
import http.client
import logging
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Gauge

from gpu_health.errors import UserError
from gpu_health.web import protocol
from gpu_health.web import server as web


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[web.WebServer]:
    monkeypatch.setattr(web, "REQUEST_TIMEOUT_SECONDS", 1.0)  # keep the slow-client tests short
    registry = CollectorRegistry()
    Gauge("probe_gauge", "A probe.", registry=registry).set(1)
    routes = {"/metrics": web.metrics_handler(registry), "/": web.landing_page("P", {})}
    srv = web.WebServer("127.0.0.1:0", routes, max_connections=8).start()
    try:
        yield srv
    finally:
        srv.shutdown()


def _healthy(server: web.WebServer) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        conn.request("GET", "/metrics")
        resp = conn.getresponse()
        return resp.status == 200 and b"probe_gauge" in resp.read()
    finally:
        conn.close()


def _raw(server: web.WebServer, data: bytes, timeout: float = 5.0) -> bytes:
    """Send raw bytes, return everything the server answers until it closes or goes quiet."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except (TimeoutError, ConnectionResetError):
            pass
        return b"".join(chunks)


def _status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/") else 0


def test_request_line_too_long_is_414(server: web.WebServer) -> None:
    answer = _raw(server, b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\n\r\n")
    assert _status(answer) == 414
    assert _healthy(server)


def test_huge_header_is_431(server: web.WebServer) -> None:
    answer = _raw(server, b"GET /metrics HTTP/1.1\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n")
    assert _status(answer) == 431
    assert _healthy(server)


def test_too_many_headers_is_431(server: web.WebServer) -> None:
    headers = b"".join(b"X-H%d: v\r\n" % i for i in range(200))
    answer = _raw(server, b"GET /metrics HTTP/1.1\r\n" + headers + b"\r\n")
    assert _status(answer) == 431
    assert _healthy(server)


def test_slowloris_drip_is_cut_off_by_the_total_deadline(server: web.WebServer) -> None:
    """One header byte every 0.2 s never trips a per-read timeout; the watchdog's deadline does."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"GET /metrics HTTP/1.1\r\nX-Slow: ")
        started = time.monotonic()
        closed_after = None
        for _ in range(40):  # would take 8 s to finish
            try:
                sock.sendall(b"a")
            except OSError:
                closed_after = time.monotonic() - started
                break
            time.sleep(0.2)
            assert _healthy(server) if _ == 2 else True  # others are served meanwhile
        assert closed_after is not None, "a dripping client kept its connection for 8 s"
        assert closed_after < 3.0  # 1 s deadline + watchdog tick + the RST reaching us
    assert server.expired_connections >= 1


def test_silent_connection_is_closed(server: web.WebServer) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        started = time.monotonic()
        assert sock.recv(1) == b""
        assert time.monotonic() - started < 3.0


def test_connection_cap_evicts_the_oldest_silent_connection(server: web.WebServer) -> None:
    idle = [socket.create_connection(("127.0.0.1", server.port), timeout=5) for _ in range(12)]
    try:
        deadline = time.monotonic() + 3
        while server.evicted_connections < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.evicted_connections >= 4  # 12 opened, 8 slots
        assert server.open_connections <= 8 and server.refused_connections == 0
        assert _healthy(server)  # while the silent ones are still open
        assert idle[0].recv(1) == b""  # the oldest was the one closed
    finally:
        for sock in idle:
            sock.close()


@pytest.mark.parametrize(
    "path",
    [
        "/../../../../etc/passwd",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/metrics/../../etc/passwd",
        "//etc/passwd",
        "/metrics%00.txt",
        "/%c0%ae%c0%ae/etc/passwd",
        "/\u00e9t\u00e9",
        "/metrics/",
    ],
)
def test_path_traversal_and_odd_paths_are_404(server: web.WebServer, path: str) -> None:
    answer = _raw(server, f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    assert _status(answer) in (400, 404)
    assert b"root:" not in answer and b"Traceback" not in answer


def test_absolute_form_request_serves_only_the_path(server: web.WebServer) -> None:
    answer = _raw(
        server, b"GET http://evil.example/metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    assert _status(answer) == 200 and b"probe_gauge" in answer


@pytest.mark.parametrize(
    "method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT", "PROPFIND"]
)
def test_methods_other_than_get_and_head_are_405(server: web.WebServer, method: str) -> None:
    answer = _raw(
        server, f"{method} /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
    )
    assert _status(answer) == 405 and b"Allow: GET, HEAD" in answer
    assert _healthy(server)


def test_body_is_never_parsed_as_a_second_request(server: web.WebServer) -> None:
    smuggled = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    request = b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (
        len(smuggled),
        smuggled,
    )
    answer = _raw(server, request)
    assert answer.count(b"HTTP/1.1 ") == 1 and _status(answer) == 405
    assert b"Connection: close" in answer


def test_garbage_request_lines_are_400(server: web.WebServer) -> None:
    for garbage in (b"\x00\x01\x02\r\n\r\n", b"GET\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n"):
        assert _status(_raw(server, garbage)) in (400, 505)
    assert _healthy(server)


def test_keep_alive_and_head(server: web.WebServer) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    for method in ("GET", "HEAD", "GET"):
        conn.request(method, "/metrics")
        resp = conn.getresponse()
        body = resp.read()
        assert resp.status == 200
        assert (body == b"") == (method == "HEAD")
        assert int(resp.getheader("Content-Length") or 0) > 0
    conn.close()


def test_no_version_fingerprint_in_server_header(server: web.WebServer) -> None:
    answer = _raw(server, b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert b"Python" not in answer and b"BaseHTTP" not in answer


def test_concurrent_hostile_clients_do_not_stop_scrapes(server: web.WebServer) -> None:
    """Slow and oversized clients at once while normal scrapes keep succeeding."""
    stop = threading.Event()

    def hostile() -> None:
        while not stop.is_set():
            with contextlib.suppress(OSError):
                _raw(server, b"GET /" + b"x" * 9000 + b" HTTP/1.1\r\n\r\n", timeout=2)

    threads = [threading.Thread(target=hostile, daemon=True) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        ok = 0
        for _ in range(20):
            with contextlib.suppress(ConnectionError, http.client.HTTPException):
                ok += _healthy(server)
        assert ok >= 18  # the connection cap may refuse a scrape at a peak, never most
    finally:
        stop.set()
        for t in threads:
            t.join(5)


@pytest.mark.parametrize(
    ("accept_encoding", "gzipped"),
    [("gzip", True), ("br, GZIP;q=0.5", True), ("*", True), ("gzip;q=0", False), ("", False)],
)
def test_metrics_gzip_negotiation(
    server: web.WebServer, accept_encoding: str, gzipped: bool
) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    # lower-case header names: HTTP header names are case-insensitive
    conn.request("GET", "/metrics", headers={"accept-encoding": accept_encoding})
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    assert resp.status == 200 and "Accept-Encoding" in (resp.getheader("Vary") or "")
    assert (resp.getheader("Content-Encoding") == "gzip") == gzipped
    text = gzip.decompress(body) if gzipped else body
    assert b"probe_gauge 1.0" in text


def test_keep_alive_small_responses_have_no_nagle_stall(server: web.WebServer) -> None:
    """Headers and body leave in one write with TCP_NODELAY: without that, each keep-alive answer
    waits for the client's delayed ACK (~40 ms: 20 requests >= 0.8 s). Bound set 25x loose."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    conn.request("GET", "/")  # warm up: connection and first-request costs
    conn.getresponse().read()
    started = time.monotonic()
    for _ in range(20):
        conn.request("GET", "/")
        assert conn.getresponse().read()
    conn.close()
    assert time.monotonic() - started < 0.6


_tokens = st.sampled_from(
    [b"GET", b"HEAD", b"POST", b" ", b"/", b"/metrics", b"HTTP/1.1", b"HTTP/1.0", b"\r\n",
     b"\n", b":", b"Host: x", b"Content-Length: 5", b"Transfer-Encoding: chunked",
     b"Connection: keep-alive", b"Expect: 100-continue", b"Authorization: Basic ??", b"\x00",
     b"%", b"?a=b&a", b"\xff\xfe", b"\t"]
)  # fmt: skip


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.lists(_tokens | st.binary(max_size=40), max_size=25).map(b"".join))
def test_random_request_bytes_never_break_the_server(server: web.WebServer, data: bytes) -> None:
    """Whatever arrives, the answer is an HTTP status line or nothing, and the next scrape works."""
    answer = _raw(server, data + b"\r\n\r\n", timeout=3)
    assert answer == b"" or answer.startswith(b"HTTP/1."), answer[:80]
    assert b"Traceback" not in answer
    assert _healthy(server)


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET / HTTP/1.\xb2\r\nHost: x\r\n\r\n",  # '\xb2' is latin-1 '2' superscript: isdigit()
        b"GET / HTTP/\xb9.1\r\nHost: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: \xb2\r\n\r\n",
    ],
)
def test_non_ascii_digits_are_400_without_a_traceback(
    server: web.WebServer, request_bytes: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    """The attacker trial's ``HTTP/1.\\xb2``: ``isdigit()`` passed it and ``int()`` raised, so
    each such request got no answer and put a ~1 KB traceback in the log, before auth."""
    with caplog.at_level(logging.DEBUG, logger="gpu_health.web"):
        for _ in range(3):
            assert _status(_raw(server, request_bytes)) == 400
    assert server.failed_connections == 0
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert _healthy(server)


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        (b"", 400),  # HTTP/1.1 without Host
        (b"Host: a\r\nHost: b\r\n", 400),
        (b"Host: x\r\nContent-Length: -1\r\n", 400),
        (b"Host: x\r\nContent-Length: 0\r\nContent-Length: 0\r\n", 400),
        (b"Host: x\r\nContent-Length: 1, 1\r\n", 400),
        (b"Host: x\r\nContent-Length: +0\r\n", 400),
        (b"Host: x\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n", 400),
        (b"Host: x\r\nContent-Length: 0\r\n", 200),
        (b"Host:\r\n", 200),  # empty Host is allowed (RFC 9112 section 3.2)
        (b"Host: x\rX-Injected: y\r\n", 400),  # a bare CR (section 2.2)
        (b"Host: x\r\nX-A: 1\r\r\n", 400),
    ],
)
def test_rfc9112_framing_errors_are_400(server: web.WebServer, headers: bytes, status: int) -> None:
    answer = _raw(server, b"GET /metrics HTTP/1.1\r\n" + headers + b"Connection: close\r\n\r\n")
    assert _status(answer) == status
    assert _healthy(server)


def test_bare_cr_in_the_request_line_is_400(server: web.WebServer) -> None:
    answer = _raw(server, b"GET\r/metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert _status(answer) == 400
    assert _healthy(server)


def test_http10_needs_no_host(server: web.WebServer) -> None:
    assert _status(_raw(server, b"GET /metrics HTTP/1.0\r\n\r\n")) == 200


def test_a_parser_value_error_is_a_400_not_a_traceback(
    server: web.WebServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever a future parser change lets slip as ``ValueError`` is still the client's 400."""

    def broken(_lines: object) -> protocol.Headers:
        raise ValueError("a parser gap")

    monkeypatch.setattr(protocol, "parse_header_lines", broken)
    assert _status(_raw(server, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")) == 400
    assert server.failed_connections == 0


def test_unexpected_errors_log_one_line_at_most_per_interval(
    server: web.WebServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A bug a client can trigger per request used to log a traceback per request; now one line
    (no traceback, client bytes escaped) per FAILURE_LOG_INTERVAL, with a count of the rest."""

    async def broken(*_args: object) -> None:
        raise RuntimeError("bug\nforged log line")

    monkeypatch.setattr(web, "read_head", broken)
    with caplog.at_level(logging.DEBUG, logger="gpu_health.web.server"):
        for _ in range(30):
            _raw(server, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", timeout=2)
        deadline = time.monotonic() + 3
        while server.failed_connections < 30 and time.monotonic() < deadline:
            time.sleep(0.02)
    assert server.failed_connections == 30
    records = [r for r in caplog.records if r.name == "gpu_health.web.server"]
    assert len(records) == 1 and records[0].exc_info is None
    message = records[0].getMessage()
    assert "\n" not in message and "RuntimeError" in message and "test_security_http.py" in message
    monkeypatch.undo()
    assert _healthy(server)


@pytest.mark.parametrize("address", [":\u0663", ":\u00b2", "[::1]:\u0669\u0668\u0663\u0665"])
def test_listen_address_port_must_be_ascii_digits(address: str) -> None:
    """``int("\u0663")`` is 3: without the ASCII check ``:\u0663`` listened on port 3."""
    with pytest.raises(UserError, match="expected HOST:PORT"):
        web.parse_listen_address(address)
