"""The small HTTP server both the exporter and the scorer use.

Why not ``prometheus_client.start_http_server``: we need our own routes (``/healthz``, a landing
page, the scorer's JSON API), bounded requests, clean shutdown on SIGTERM, and one place to add the
exporter web-config (TLS, basic auth) for both programs.

Routes are exact paths mapped to handlers; a handler gets the parsed request and returns a
:class:`Response`. Only GET and HEAD are served: no endpoint executes anything or accepts a body.
"""

from __future__ import annotations

import logging
import socket
import threading
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from gpu_health.errors import UserError
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

log = logging.getLogger(__name__)

#: Longest request line + headers we read; anything larger is refused (431/414).
MAX_REQUEST_LINE = 8192
MAX_HEADERS = 64
#: Seconds a client may take to send its request before the socket is closed.
REQUEST_TIMEOUT_SECONDS = 10.0


@dataclass
class Request:
    """What a handler needs to know about a GET."""

    path: str
    query: dict[str, list[str]]
    headers: Mapping[str, str]


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


def metrics_handler(registry: CollectorRegistry) -> Handler:
    """Serve ``registry`` in the format the scraper asks for (text or OpenMetrics)."""

    def handle(request: Request) -> Response:
        encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
        return Response(200, encoder(registry), content_type)

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


class _RequestHandler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    timeout = REQUEST_TIMEOUT_SECONDS

    def _dispatch(self, send_body: bool) -> None:
        if len(self.requestline) > MAX_REQUEST_LINE:
            self._send(Response(414, b"request line too long\n"), send_body)
            return
        if len(self.headers) > MAX_HEADERS:
            self._send(Response(431, b"too many headers\n"), send_body)
            return
        parsed = urllib.parse.urlsplit(self.path)
        handler = self.server.routes.get(parsed.path)
        if handler is None:
            self._send(Response(404, b"not found\n"), send_body)
            return
        request = Request(parsed.path, urllib.parse.parse_qs(parsed.query), dict(self.headers))
        try:
            response = handler(request)
        except Exception:  # a handler bug must not kill the server or leak a traceback
            log.exception("handler for %s failed", parsed.path)
            response = Response(500, b"internal error\n")
        self._send(response, send_body)

    def _send(self, response: Response, send_body: bool) -> None:
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        self.send_header("X-Content-Type-Options", "nosniff")
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if send_body:
            self.wfile.write(response.body)

    def do_GET(self) -> None:
        self._dispatch(send_body=True)

    def do_HEAD(self) -> None:
        self._dispatch(send_body=False)

    def _refuse(self) -> None:
        self.send_response(405)
        self.send_header("Allow", "GET, HEAD")
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _refuse

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    routes: dict[str, Handler]


class WebServer:
    """A threaded HTTP server running in the background until :meth:`shutdown`."""

    def __init__(self, listen_address: str, routes: Mapping[str, Handler]) -> None:
        host, port = parse_listen_address(listen_address)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        _Server.address_family = family
        try:
            self._server = _Server((host, port), _RequestHandler)
        except OSError as exc:
            raise UserError(f"cannot listen on {listen_address}: {exc.strerror}") from None
        self._server.routes = dict(routes)
        self._thread = threading.Thread(target=self._server.serve_forever, name="http", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> WebServer:
        self._thread.start()
        return self

    def shutdown(self) -> None:
        self._server.shutdown()
        self._server.server_close()
