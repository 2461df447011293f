"""Clients that send requests and never read the answers: they cannot hold the connection cap,
keep descriptors outside it, or pile up buffered answers without bound."""

from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gpu_health.web import server as web
from gpu_health.web.protocol import Request, Response
from tests.web.test_security_tls import Pki, _client_ctx, _tls_config, make_pki

#: An answer far larger than what the kernel buffers for a client with a 1 KiB receive buffer.
BIG = b"x" * (1 << 20)
#: An answer below the write buffer's high-water mark (64 KiB): the write returns at once and
#: the rest goes out, or not, while the connection closes.
MEDIUM = b"y" * (48 << 10)


def _routes() -> dict[str, Callable[[Request], Response]]:
    return {
        "/": lambda _r: Response(200, b"ok\n"),
        "/big": lambda _r: Response(200, BIG),
        "/medium": lambda _r: Response(200, MEDIUM),
    }


@pytest.fixture
def serve(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., web.WebServer]]:
    """A server factory; progress is checked every 0.3 s (2 s by default) to keep tests short."""
    monkeypatch.setattr(web, "STALL_SECONDS", 0.3, raising=False)
    servers: list[web.WebServer] = []

    def start(**kwargs: int) -> web.WebServer:
        server = web.WebServer("127.0.0.1:0", _routes(), **kwargs).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()


def _never_reads(port: int, path: str, close: bool = False) -> socket.socket:
    """The tester's client: a 1 KiB receive buffer and 536-byte segments, like a small window
    on a real path (on loopback with default buffers the kernel would absorb a whole answer),
    sends one request and never reads."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 536)
    sock.connect(("127.0.0.1", port))
    extra = "Connection: close\r\n" if close else ""
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n{extra}\r\n".encode())
    return sock


def _server_sockets(port: int) -> int:
    """Descriptors this process holds for connections accepted on ``port``: sockets whose local
    port is ``port``, not listening, and still owned (an inode; a fully closed one has 0)."""
    count = 0
    for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        with contextlib.suppress(FileNotFoundError), open(table) as lines:
            next(lines)
            for line in lines:
                fields = line.split()
                local_port = int(fields[1].rsplit(":", 1)[1], 16)
                if local_port == port and fields[3] != "0A" and fields[9] != "0":
                    count += 1
    return count


def _stalled(server: web.WebServer) -> int:
    return sum(conn.state == "stalled" for conn in server._state.conns.values())


def _scrape(port: int, ctx: ssl.SSLContext | None = None) -> int | str:
    """One request for ``/`` on a new connection (over TLS with ``ctx``): its status, or the
    name of the error that kept it from one."""
    conn: http.client.HTTPConnection
    if ctx is None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    else:
        conn = http.client.HTTPSConnection("localhost", port, timeout=10, context=ctx)
    try:
        conn.request("GET", "/")
        response = conn.getresponse()
        response.read()
        return response.status
    except (OSError, http.client.HTTPException) as exc:
        return type(exc).__name__
    finally:
        conn.close()


def _wait_for(condition: Callable[[], bool], seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


pytestmark = pytest.mark.skipif(
    not os.path.exists("/proc/self/net/tcp"), reason="counts sockets through /proc (Linux)"
)


def test_readers_that_never_read_cannot_hold_the_connection_cap(
    serve: Callable[..., web.WebServer],
) -> None:
    """The tester's trial, scaled to a cap of 8: 8 connections, from the scraper's own address,
    ask for a 1 MiB answer and never read, so all 8 are busy in their write. Before, none could
    be evicted and every scrape was refused until the 30 s write timeout (and the next wave did
    it again); now a writer that took no bytes for a few checks is evicted (aborted, its buffer
    dropped) like an idle connection, and descriptors stay within the cap."""
    server = serve(max_connections=8)
    port = server.port
    held: list[socket.socket] = []
    try:
        for wave in range(2):
            held.extend(_never_reads(port, "/big") for _ in range(8))
            assert _wait_for(lambda: _stalled(server) == 8)
            statuses = [_scrape(port) for _ in range(5)]
            assert statuses == [200] * 5, f"wave {wave}: {statuses}"
            assert server.open_connections <= 8
            assert _wait_for(lambda: _server_sockets(port) <= 8), _server_sockets(port)
        assert server.evicted_connections >= 10 and server.refused_connections == 0
    finally:
        for sock in held:
            sock.close()


def test_a_closing_connection_counts_against_the_cap(serve: Callable[..., web.WebServer]) -> None:
    """A connection whose last answer is still buffered when it closes lingers until the client
    takes it. Before, it left the connection table at once and lingered up to 30 s outside the
    cap: three waves of 8 such clients held 24 descriptors against a cap of 8. Now it stays in
    the table while it lingers, evictable like an idle connection."""
    server = serve(max_connections=8)
    port = server.port
    held: list[socket.socket] = []
    try:
        for _ in range(3):
            held.extend(_never_reads(port, "/medium", close=True) for _ in range(8))
            assert _wait_for(lambda: server._state.in_flight == 0 and _server_sockets(port) >= 8)
            time.sleep(0.2)
        assert _wait_for(lambda: _server_sockets(port) <= 8), _server_sockets(port)
        assert server.open_connections <= 8
        assert _scrape(port) == 200
    finally:
        for sock in held:
            sock.close()


def test_bytes_held_by_stalled_writers_are_bounded(
    serve: Callable[..., web.WebServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Below the connection cap, writers that take nothing held their whole answer each for the
    30 s write timeout (600 of them took the exporter from 67 to 405 MB). Now the bytes held by
    stalled writers are bounded in total: beyond the budget, a stalled writer is aborted."""
    monkeypatch.setattr(web, "MAX_STALLED_BYTES", 3 << 20, raising=False)
    server = serve(max_connections=64)
    port = server.port
    held = [_never_reads(port, "/big") for _ in range(10)]
    try:
        # 1 MiB answers, a 3 MiB budget: at most 3 stalled writers keep theirs
        assert _wait_for(lambda: _server_sockets(port) <= 3), _server_sockets(port)
        assert server._state.stalled_bytes <= 3 << 20
        assert _scrape(port) == 200
    finally:
        for sock in held:
            sock.close()


@pytest.fixture
def serve_tls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Callable[..., web.WebServer], ssl.SSLContext]]:
    """A TLS server factory and a client context trusting it (progress checked every 0.3 s)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl CLI missing")
    monkeypatch.setattr(web, "STALL_SECONDS", 0.3, raising=False)
    pki: Pki = make_pki(tmp_path)
    config = tmp_path / "web-config.yml"
    config.write_text(_tls_config(pki))
    servers: list[web.WebServer] = []

    def start(**kwargs: int) -> web.WebServer:
        server = web.WebServer("127.0.0.1:0", _routes(), web_config=config, **kwargs).start()
        servers.append(server)
        return server

    yield start, _client_ctx(pki)
    for server in servers:
        server.shutdown()


def _never_reads_tls(port: int, ctx: ssl.SSLContext) -> ssl.SSLSocket:
    """:func:`_never_reads` over TLS: the handshake done, one request sent, nothing read."""
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 536)
    raw.settimeout(10)
    raw.connect(("127.0.0.1", port))
    sock = ctx.wrap_socket(raw, server_hostname="localhost")
    sock.sendall(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
    return sock


def test_tls_readers_that_never_read_are_stalled_writers(
    serve_tls: tuple[Callable[..., web.WebServer], ssl.SSLContext],
) -> None:
    """The trial over TLS. asyncio encrypts an answer at once and hands it to the socket
    transport beneath, so ``drain()`` returned while the client had taken nothing: the write
    counted as done and the connection went idle holding the whole answer, outside the
    stalled-bytes budget (8 of 8 read "idle" before). Now the write waits for the buffer
    beneath, so such clients are stalled writers, evicted at the cap like plain ones."""
    start, ctx = serve_tls
    server = start(max_connections=8)
    port = server.port
    held: list[ssl.SSLSocket] = []
    try:
        for wave in range(2):
            held.extend(_never_reads_tls(port, ctx) for _ in range(8))
            assert _wait_for(lambda: _stalled(server) == 8), _stalled(server)
            statuses = [_scrape(port, ctx) for _ in range(5)]
            assert statuses == [200] * 5, f"wave {wave}: {statuses}"
            assert server.open_connections <= 8
        assert server.evicted_connections >= 10 and server.refused_connections == 0
    finally:
        for sock in held:
            sock.close()


def test_bytes_held_by_stalled_tls_writers_are_bounded(
    serve_tls: tuple[Callable[..., web.WebServer], ssl.SSLContext],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Ten TLS clients that never read 1 MiB answers each held them (10 MiB) until the idle
    timeout, whatever the budget; now at most the budget's worth stays."""
    monkeypatch.setattr(web, "MAX_STALLED_BYTES", 3 << 20, raising=False)
    start, ctx = serve_tls
    server = start(max_connections=64)
    port = server.port
    held = [_never_reads_tls(port, ctx) for _ in range(10)]
    try:
        assert _wait_for(lambda: _server_sockets(port) <= 3), _server_sockets(port)
        assert server._state.stalled_bytes <= 3 << 20
        assert _scrape(port, ctx) == 200
    finally:
        for sock in held:
            sock.close()
