"""HTTP pieces the server and its handlers share: requests, responses, head parsing, handlers.

Kept apart from :mod:`gpu_health.web.server` (the connection model) so a handler module can import
what it needs without the event loop, and so the request-head rules (what is 400, 414, 431, 505)
can be read in one place.
"""

from __future__ import annotations

import asyncio
import gzip
import http
import threading
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from gpu_health.errors import UserError

#: Longest request line we read; anything larger is refused (414).
MAX_REQUEST_LINE = 8192
#: Most header lines and most bytes in the header block; more is refused (431).
MAX_HEADERS = 64
MAX_HEADER_BYTES = 16384

#: gzip level for /metrics: level 1 shrinks the exposition ~18x for ~1.6 ms per 220 KB, level 9
#: only 1.2x more for 5x the CPU. Prometheus always asks for gzip.
GZIP_LEVEL = 1

_In = TypeVar("_In")
_Out = TypeVar("_Out")


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


class BadHead(Exception):
    """A request head we answer with ``status`` and then close the connection."""

    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(status)
        self.status = status
        self.body = body


@dataclass(frozen=True)
class RequestHead:
    method: str
    target: str
    version: tuple[int, int]
    headers: Headers

    @property
    def keep_alive(self) -> bool:
        """HTTP/1.1 keeps the connection unless told not to; HTTP/1.0 only when asked."""
        tokens = {t.strip().lower() for t in self.headers.get("Connection", "").split(",")}
        if self.version >= (1, 1):
            return "close" not in tokens
        return "keep-alive" in tokens

    @property
    def declares_body(self) -> bool:
        length = self.headers.get("Content-Length", "0").strip() or "0"
        return "Transfer-Encoding" in self.headers or length != "0"


def is_ascii_digits(text: str) -> bool:
    """Whether ``text`` is one or more of ``0``-``9``. ``str.isdigit`` is not enough: it accepts
    ``²`` and ``٣``, which ``int`` then refuses (or, for ``٣``, reads as 3) -- a number from the
    wire that passed the check must convert, or the request ends in a traceback, not a 400."""
    return text.isascii() and text.isdigit()


def parse_request_line(line: bytes) -> tuple[str, str, tuple[int, int]]:
    """``GET /metrics HTTP/1.1`` -> parts; 400 if malformed, 505 for HTTP/2 and later."""
    words = _line_text(line).split()
    if len(words) != 3:
        raise BadHead(400, b"bad request line\n")
    method, target, version = words
    major, dot, minor = version.removeprefix("HTTP/").partition(".")
    if (
        not version.startswith("HTTP/")
        or not dot
        or not (is_ascii_digits(major) and is_ascii_digits(minor))
        or len(major) > 3
        or len(minor) > 3
        or not method.isalpha()
    ):
        raise BadHead(400, b"bad request line\n")
    if int(major) != 1:
        raise BadHead(505, b"HTTP version not supported\n")
    return method, target, (int(major), int(minor))


def _line_text(raw: bytes) -> str:
    """A head line without its line ending (LF or CRLF), 400 if a bare CR is left in it.

    RFC 9112 section 2.2: a bare CR outside the line ending must be refused (or replaced by a
    space); a proxy in front may read ``Host: x\rX: y`` as two header lines where we read one."""
    text = raw.removesuffix(b"\n").removesuffix(b"\r")
    if b"\r" in text:
        raise BadHead(400, b"bare CR in request head\n")
    return text.decode("iso-8859-1")


def parse_header_lines(lines: Iterable[bytes]) -> Headers:
    """``Name: value`` lines (without the blank line); a line without a name or colon, or with
    a bare CR, is 400."""
    pairs = []
    for raw in lines:
        text = _line_text(raw)
        name, sep, value = text.partition(":")
        if not sep or not name or name != name.strip() or text[:1] in (" ", "\t"):
            raise BadHead(400, b"bad header line\n")
        pairs.append((name, value.strip()))
    return Headers(pairs)


def check_framing(version: tuple[int, int], headers: Headers) -> None:
    """400 for what RFC 9112 says a server must refuse: an HTTP/1.1 request without exactly one
    ``Host`` (section 3.2), a ``Content-Length`` that is not one run of ASCII digits -- negative,
    repeated (:class:`Headers` joins repeats with a comma) or a list (section 6.3) -- and both
    ``Content-Length`` and ``Transfer-Encoding`` (a request-smuggling shape). No endpoint reads a
    body, but a proxy in front that reads these differently could see a second request in it."""
    if version >= (1, 1) and ("Host" not in headers or "," in headers["Host"]):
        raise BadHead(400, b"missing or repeated Host header\n")
    if "Content-Length" in headers:
        if not is_ascii_digits(headers["Content-Length"]):
            raise BadHead(400, b"bad Content-Length\n")
        if "Transfer-Encoding" in headers:
            raise BadHead(400, b"both Content-Length and Transfer-Encoding\n")


def render_response(response: Response, send_body: bool, close: bool) -> tuple[bytes, bytes]:
    """The status line and headers, and the body to send after them (``b""`` for HEAD).

    Apart, so that a large body is never copied per connection: the server sends a small answer
    in one write (no Nagle/delayed-ACK stall) and a large one chunk by chunk."""
    try:
        reason = http.HTTPStatus(response.status).phrase
    except ValueError:
        reason = "Unknown"
    lines = [
        f"HTTP/1.1 {response.status} {reason}",
        "Server: gpu-health",  # no Python version for fingerprinting
        f"Content-Type: {response.content_type}",
        f"Content-Length: {len(response.body)}",
        "X-Content-Type-Options: nosniff",
    ]
    for name, value in response.headers.items():
        if name.lower() in ("content-type", "content-length", "x-content-type-options", "server"):
            continue
        if name.lower() == "connection":
            continue
        lines.append(f"{name}: {value}")
    if close:
        lines.append("Connection: close")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")
    return head, response.body if send_body else b""


def parse_listen_address(address: str) -> tuple[str, int]:
    """``host:port``, ``:port`` (all interfaces) or ``[v6]:port`` -> (host, port)."""
    host, sep, port_text = address.rpartition(":")
    if sep and is_ascii_digits(port_text) and int(port_text) > 65535:
        raise UserError(
            f"--web.listen-address {address[:80]!r}: expected HOST:PORT with a port from 0 to 65535"
        )
    if not sep or not is_ascii_digits(port_text):
        raise UserError(
            f"--web.listen-address {address[:80]!r}: expected HOST:PORT, e.g. 127.0.0.1:8080, "
            ":8080 (every interface) or [::1]:8080"
        )
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port_text)


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


class SharedRender:
    """Requests that arrive while the same exposition is being rendered share that render.

    Rendering a node's registry costs milliseconds of CPU under the GIL (~15 ms for 8 GPUs on a
    busy 2-core host); 200 scrapers a second each rendering their own is more CPU than the host
    has, and they queue until they time out. A request arriving mid-render gets that render's
    result (its data at most one render time older than the request); a request arriving when
    none is running starts its own, so a scrape never sees data older than that.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._running: set[Hashable] = set()
        self._results: dict[Hashable, tuple[int, bytes | BaseException]] = {}
        self._generation = 0
        self.renders = 0  # how many really ran (tests read it)

    def get(self, key: Hashable, render: Callable[[], bytes]) -> bytes:
        with self._cond:
            if key in self._running:
                waiting_for = self._results.get(key, (-1, b""))[0]
                while key in self._running or self._results.get(key, (-1, b""))[0] == waiting_for:
                    self._cond.wait()
                result = self._results[key][1]
                if isinstance(result, BaseException):
                    raise result
                return result
            self._running.add(key)
        outcome: bytes | BaseException
        try:
            outcome = render()
        except BaseException as exc:
            outcome = exc
        with self._cond:
            self.renders += 1
            self._generation += 1
            self._results[key] = (self._generation, outcome)
            self._running.discard(key)
            self._cond.notify_all()
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


def metrics_handler(registry: CollectorRegistry) -> Handler:
    """Serve ``registry`` in the format the scraper asks for (text or OpenMetrics), gzipped when
    the scraper accepts it (as Go exporters do: a 64-GPU node's exposition is megabytes).
    Concurrent scrapes share a render (:class:`SharedRender`)."""
    shared = SharedRender()

    def handle(request: Request) -> Response:
        encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
        gzipped = accepts_gzip(request.headers.get("Accept-Encoding", ""))

        def render() -> bytes:
            body = encoder(registry)
            return gzip.compress(body, compresslevel=GZIP_LEVEL) if gzipped else body

        body = shared.get((content_type, gzipped), render)
        headers = {"Vary": "Accept-Encoding"}
        if gzipped:
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


def _parsed(parse: Callable[[_In], _Out], data: _In) -> _Out:
    """``parse(data)``, with a ``ValueError`` it lets slip turned into a 400: whatever the client
    sent, a parser gap must be the client's 400, not a server traceback per request."""
    try:
        return parse(data)
    except ValueError:
        raise BadHead(400, b"bad request\n") from None


async def read_head(reader: asyncio.StreamReader, prefix: bytes) -> RequestHead | None:
    """Request line and headers within the caps; None if the client hung up mid-head."""
    try:
        line = prefix + await reader.readuntil(b"\n")
    except asyncio.LimitOverrunError:
        raise BadHead(414, b"request line too long\n") from None
    except asyncio.IncompleteReadError:
        return None
    if len(line) > MAX_REQUEST_LINE:
        raise BadHead(414, b"request line too long\n")
    method, target, version = _parsed(parse_request_line, line)
    lines: list[bytes] = []
    total = 0
    while True:
        try:
            raw = await reader.readuntil(b"\n")
        except asyncio.LimitOverrunError:
            raise BadHead(431, b"request header fields too large\n") from None
        except asyncio.IncompleteReadError:
            return None
        total += len(raw)
        if total > MAX_HEADER_BYTES or len(lines) >= MAX_HEADERS + 1:
            raise BadHead(431, b"request header fields too large\n")
        if raw in (b"\r\n", b"\n"):
            break
        lines.append(raw)
    if len(lines) > MAX_HEADERS:
        raise BadHead(431, b"request header fields too large\n")
    headers = _parsed(parse_header_lines, lines)
    _parsed(lambda h: check_framing(version, h), headers)
    return RequestHead(method, target, version, headers)
