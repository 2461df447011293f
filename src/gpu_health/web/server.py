"""The small HTTP server both the exporter and the scorer use.

Why not ``prometheus_client.start_http_server``: we need our own routes (``/healthz``, a landing
page, the scorer's JSON API), bounded requests, clean shutdown on SIGTERM, and one place to apply
the exporter-toolkit web config (TLS, basic auth, headers: :mod:`gpu_health.web.config`) for both
programs.

Routes are exact paths mapped to handlers; a handler gets the parsed request and returns a
:class:`Response`. Only GET and HEAD are served: no endpoint executes anything or accepts a body.
``/metrics`` is gzipped when the scraper accepts it (Prometheus always does).

Bounds, because a metrics port is reachable by anything on the node's network: the request line,
the header block and the number of headers are capped; the TLS handshake plus the request head must
arrive within :data:`REQUEST_TIMEOUT_SECONDS` *in total* (a watchdog closes slow-drip "slowloris"
connections, which a per-read socket timeout alone would not); an idle keep-alive connection is
closed after :data:`IDLE_TIMEOUT_SECONDS`; writing a response may take
:data:`WRITE_TIMEOUT_SECONDS`; and at most :data:`MAX_CONNECTIONS` connections are served at once
(more are closed at accept).
"""

from __future__ import annotations

import contextlib
import gzip
import io
import logging
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from gpu_health.errors import UserError
from gpu_health.web.config import WebConfigSource, peer_san_allowed

log = logging.getLogger(__name__)

#: Longest request line we read; anything larger is refused (414).
MAX_REQUEST_LINE = 8192
#: Most header lines and most bytes in the header block; more is refused (431).
MAX_HEADERS = 64
MAX_HEADER_BYTES = 16384
#: Seconds a client has, from connecting (or from the first byte of a keep-alive request), to
#: finish the TLS handshake and send the request line and headers.
REQUEST_TIMEOUT_SECONDS = 10.0
#: Seconds an idle keep-alive connection is kept open (Prometheus reuses it between scrapes).
IDLE_TIMEOUT_SECONDS = 120.0
#: Seconds a client has to read a response.
WRITE_TIMEOUT_SECONDS = 30.0
#: Connections served at once; each holds a thread.
MAX_CONNECTIONS = 128


class Headers(Mapping[str, str]):
    """Request headers, looked up case-insensitively as HTTP requires (``accept-encoding`` and
    ``Accept-Encoding`` are the same header). Repeated headers are joined with ``, ``."""

    def __init__(self, pairs: Iterable[tuple[str, str]] = ()) -> None:
        self._data: dict[str, str] = {}
        for name, value in pairs:
            key = name.lower()
            self._data[key] = f"{self._data[key]}, {value}" if key in self._data else value

    def __getitem__(self, name: str) -> str:
        return self._data[name.lower()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._data

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)


@dataclass
class Request:
    """What a handler needs to know about a GET."""

    path: str
    query: dict[str, list[str]]
    headers: Mapping[str, str]
    #: The basic-auth user when the web config requires one (never the password).
    user: str | None = None


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[Request], Response]


def parse_listen_address(address: str) -> tuple[str, int]:
    """``host:port``, ``:port`` (all interfaces) or ``[v6]:port`` -> (host, port)."""
    host, sep, port_text = address.rpartition(":")
    if not sep or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise UserError(f"--web.listen-address {address!r}: expected HOST:PORT, e.g. 0.0.0.0:9835")
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port_text)


#: gzip level for /metrics: level 1 shrinks the exposition ~18x for ~1.6 ms per 220 KB, level 9
#: only 1.2x more for 5x the CPU. Prometheus always asks for gzip.
GZIP_LEVEL = 1


def accepts_gzip(accept_encoding: str) -> bool:
    """Whether an ``Accept-Encoding`` header allows gzip (``gzip;q=0`` refuses it)."""
    for item in accept_encoding.split(","):
        coding, _, params = item.strip().partition(";")
        if coding.strip().lower() not in ("gzip", "*"):
            continue
        q = params.strip().lower()
        if q.startswith("q="):
            try:
                return float(q[2:]) > 0
            except ValueError:
                return False
        return True
    return False


def metrics_handler(registry: CollectorRegistry) -> Handler:
    """Serve ``registry`` in the format the scraper asks for (text or OpenMetrics), gzipped when
    the scraper accepts it (as Go exporters do: a 64-GPU node's exposition is megabytes)."""

    def handle(request: Request) -> Response:
        encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
        body = encoder(registry)
        headers = {"Vary": "Accept-Encoding"}
        if accepts_gzip(request.headers.get("Accept-Encoding", "")):
            body = gzip.compress(body, compresslevel=GZIP_LEVEL)
            headers["Content-Encoding"] = "gzip"
        return Response(200, body, content_type, headers)

    return handle


def landing_page(title: str, links: Mapping[str, str]) -> Handler:
    """A small HTML page linking the endpoints, like Prometheus exporters have."""
    items = "".join(f'<li><a href="{href}">{text}</a></li>' for href, text in links.items())
    body = (
        f"<!doctype html><html><head><title>{title}</title></head>"
        f"<body><h1>{title}</h1><ul>{items}</ul></body></html>"
    ).encode()

    def handle(_: Request) -> Response:
        return Response(200, body, "text/html; charset=utf-8")

    return handle


class _Watchdog:
    """Closes sockets whose deadline passed: one thread for all connections, not one per request."""

    def __init__(self) -> None:
        self._deadlines: dict[socket.socket, float] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="http-watchdog", daemon=True)
        self.expired = 0  # connections closed for being too slow (tests read it)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def arm(self, sock: socket.socket, seconds: float) -> None:
        with self._lock:
            self._deadlines[sock] = time.monotonic() + seconds

    def disarm(self, sock: socket.socket) -> None:
        with self._lock:
            self._deadlines.pop(sock, None)

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            now = time.monotonic()
            with self._lock:
                expired = [s for s, deadline in self._deadlines.items() if deadline <= now]
                for sock in expired:
                    del self._deadlines[sock]
            for sock in expired:
                self.expired += 1
                # socket.socket.shutdown, not SSLSocket.shutdown: that one would drop the TLS
                # object under the feet of the thread blocked reading it.
                with contextlib.suppress(OSError):
                    socket.socket.shutdown(sock, socket.SHUT_RDWR)


class _HeadTooLarge(Exception):
    pass


class _RequestHandler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    timeout = REQUEST_TIMEOUT_SECONDS
    error_content_type = "text/plain; charset=utf-8"
    error_message_format = "%(code)d %(message)s\n"
    _served = False
    _headers_buffer: list[bytes]  # BaseHTTPRequestHandler's own buffer (see _send)
    # Errors on a malformed request line get a status line (HTTP/0.9 would send a bare body).
    default_request_version = "HTTP/1.0"

    def version_string(self) -> str:
        return "gpu-health"  # no Python version for fingerprinting

    # -- connection life ---------------------------------------------------------------------

    def setup(self) -> None:
        self.server.watchdog.arm(self.request, REQUEST_TIMEOUT_SECONDS)
        # As Go's net/http does: no Nagle delay on small responses (see _send).
        with contextlib.suppress(OSError):
            self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            if isinstance(self.request, ssl.SSLSocket):
                self.request.settimeout(REQUEST_TIMEOUT_SECONDS)
                self.request.do_handshake()  # a failure ends in _Server.handle_error (debug log)
                source = self.server.web_config
                tls = source.current().config.tls if source else None
                peer = self.request.getpeercert()
                if tls and not peer_san_allowed(peer, tls.client_allowed_sans):
                    raise ssl.SSLError("client certificate SAN not in client_allowed_sans")
            super().setup()
        except BaseException:
            # finish() is not called when setup() fails: release the watchdog entry here.
            self.server.watchdog.disarm(self.request)
            raise

    def finish(self) -> None:
        self.server.watchdog.disarm(self.request)
        with contextlib.suppress(OSError):
            super().finish()

    def handle_one_request(self) -> None:
        conn = self.connection
        watchdog = self.server.watchdog
        try:
            if self._served:  # keep-alive: wait idle for the next request, then bound it
                watchdog.disarm(conn)
                conn.settimeout(IDLE_TIMEOUT_SECONDS)
                if not self.rfile.peek(1):  # type: ignore[attr-defined]
                    self.close_connection = True
                    return
                watchdog.arm(conn, REQUEST_TIMEOUT_SECONDS)
                conn.settimeout(REQUEST_TIMEOUT_SECONDS)
            self._served = True
            self.raw_requestline = self.rfile.readline(MAX_REQUEST_LINE + 1)
            if not self.raw_requestline:
                self.close_connection = True
                return
            if len(self.raw_requestline) > MAX_REQUEST_LINE:
                self._refuse_head(414, b"request line too long\n")
                return
            head = self._read_head()
            if head is None:
                self.close_connection = True
                return
            socket_file, self.rfile = self.rfile, io.BytesIO(head)
            try:
                parsed = self.parse_request()
            finally:
                self.rfile = socket_file
            if not parsed:
                return
            watchdog.disarm(conn)
            # Every method reaches _dispatch, which answers 405 for all but GET and HEAD (after
            # auth, so an unauthenticated client learns nothing about the routes).
            self._dispatch(send_body=self.command != "HEAD")
        except _HeadTooLarge:
            self._refuse_head(431, b"request header fields too large\n")
        except (TimeoutError, ConnectionError, ssl.SSLError, OSError, ValueError):
            # ValueError: I/O on a file the watchdog already shut. Nothing useful to answer.
            self.close_connection = True

    def _read_head(self) -> bytes | None:
        """The header block up to the blank line, within the byte and line caps."""
        lines: list[bytes] = []
        total = 0
        while True:
            line = self.rfile.readline(MAX_HEADER_BYTES + 1 - total)
            if not line:
                return None  # the client hung up (or was cut off) mid-head
            total += len(line)
            lines.append(line)
            if total > MAX_HEADER_BYTES or len(lines) > MAX_HEADERS + 1:
                raise _HeadTooLarge
            if line in (b"\r\n", b"\n"):
                return b"".join(lines)

    def _refuse_head(self, status: int, body: bytes) -> None:
        self.requestline = ""
        self.request_version = ""
        self.command = ""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self._send(Response(status, body, headers={"Connection": "close"}), send_body=True)

    # -- requests ----------------------------------------------------------------------------

    def _declares_body(self) -> bool:
        length = self.headers.get("Content-Length", "0").strip() or "0"
        return "Transfer-Encoding" in self.headers or length != "0"

    def _dispatch(self, send_body: bool) -> None:
        source = self.server.web_config
        active = source.current() if source else None
        extra = dict(active.config.headers) if active else {}
        if self._declares_body():
            # We never read a body; closing keeps it from being parsed as the next request.
            self.close_connection = True
            extra["Connection"] = "close"
        if active and active.limiter and not active.limiter.allow():
            self._send(Response(429, b"too many requests\n", headers=extra), send_body)
            return
        user = None
        if active and active.auth:
            user = active.auth.check(self.headers.get("Authorization"))
            if user is None:
                extra["WWW-Authenticate"] = 'Basic realm="gpu-health", charset="UTF-8"'
                self._send(Response(401, b"unauthorized\n", headers=extra), send_body)
                return
        if self.command not in ("GET", "HEAD"):
            extra["Allow"] = "GET, HEAD"
            self._send(Response(405, b"method not allowed\n", headers=extra), send_body)
            return
        parsed = urllib.parse.urlsplit(self.path)
        handler = self.server.routes.get(parsed.path)
        if handler is None:
            self._send(Response(404, b"not found\n", headers=extra), send_body)
            return
        request = Request(
            parsed.path,
            urllib.parse.parse_qs(parsed.query),
            Headers(self.headers.items()),
            user=user,
        )
        try:
            response = handler(request)
        except Exception:  # a handler bug must not kill the server or leak a traceback
            log.exception("handler for %s failed", parsed.path)
            response = Response(500, b"internal error\n")
        response.headers = {**response.headers, **extra}
        self._send(response, send_body)

    def _send(self, response: Response, send_body: bool) -> None:
        self.server.watchdog.arm(self.connection, WRITE_TIMEOUT_SECONDS)
        self.connection.settimeout(WRITE_TIMEOUT_SECONDS)
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        self.send_header("X-Content-Type-Options", "nosniff")
        for name, value in response.headers.items():
            if name.lower() in ("content-type", "content-length", "x-content-type-options"):
                continue
            self.send_header(name, value)
        # Headers and body in one write (what end_headers() would send, plus the body): on a
        # keep-alive connection a small header segment then the body meets Nagle's algorithm and
        # the client's delayed ACK, a ~40 ms stall per scrape of a small (gzipped) exposition.
        self._headers_buffer.append(b"\r\n")
        head = b"".join(self._headers_buffer)
        self._headers_buffer = []
        self.wfile.write(head + response.body if send_body else head)
        self.wfile.flush()
        self.server.watchdog.disarm(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        # The request line only: headers (Authorization) are never logged.
        log.debug("%s %s", self.address_string(), format % args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    routes: dict[str, Handler]
    web_config: WebConfigSource | None
    watchdog: _Watchdog
    slots: threading.BoundedSemaphore
    refused = 0

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = super().get_request()
        source = self.web_config
        ctx = source.current().ssl_context if source else None
        if ctx is None:
            return sock, address
        try:
            # The handshake runs in the connection's thread (setup), so a slow client cannot
            # stall the accept loop.
            return ctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), address
        except (OSError, ValueError):
            sock.close()
            raise OSError("TLS wrap failed") from None

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.slots.acquire(blocking=False):
            self.refused += 1
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except Exception:
            self.slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Failed handshakes and hang-ups are routine on a public port: no traceback on stderr.
        log.debug("connection from %s ended with an error", client_address, exc_info=True)


class WebServer:
    """A threaded HTTP(S) server running in the background until :meth:`shutdown`.

    ``web_config``: an exporter-toolkit web config file (``--web.config.file``) enabling TLS,
    basic auth, response headers and a rate limit. It is validated here, so a bad file is a
    one-line :class:`~gpu_health.errors.UserError` at start-up, and re-read when it changes.
    """

    def __init__(
        self,
        listen_address: str,
        routes: Mapping[str, Handler],
        *,
        web_config: Path | None = None,
        max_connections: int = MAX_CONNECTIONS,
    ) -> None:
        host, port = parse_listen_address(listen_address)
        source = WebConfigSource(web_config) if web_config is not None else None
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        server_class = type("_BoundServer", (_Server,), {"address_family": family})
        try:
            self._server: _Server = server_class((host, port), _RequestHandler)
        except OSError as exc:
            raise UserError(f"cannot listen on {listen_address}: {exc.strerror}") from None
        self._server.routes = dict(routes)
        self._server.web_config = source
        self._server.watchdog = _Watchdog()
        self._server.slots = threading.BoundedSemaphore(max_connections)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.2},
            name="http",
            daemon=True,
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def tls(self) -> bool:
        """Whether connections are served over TLS (the scheme to scrape with)."""
        source = self._server.web_config
        return source is not None and source.tls_enabled

    @property
    def refused_connections(self) -> int:
        """Connections closed at accept because :data:`MAX_CONNECTIONS` were busy."""
        return self._server.refused

    @property
    def expired_connections(self) -> int:
        """Connections closed by the watchdog for being too slow."""
        return self._server.watchdog.expired

    def start(self) -> WebServer:
        self._server.watchdog.start()
        self._thread.start()
        return self

    def shutdown(self) -> None:
        if self._thread.is_alive():  # shutdown() would wait forever for a loop never started
            self._server.shutdown()
        self._server.server_close()
        self._server.watchdog.stop()
