"""A wall-clock deadline for a whole HTTP request, status line to last byte.

Socket timeouts bound each read, not the request: a server that sends its status line or its
headers one byte a second never lets a read time out, and the call never returns. Here the
connections a request uses note themselves (per thread) when they send it, and :func:`cut_at`
arms a timer that shuts the noted connection's socket down at the deadline: the blocked read
returns, and the caller, seeing ``Cut.fired``, reports a timeout rather than a refused
connection.

Two clients use it: :func:`fetch` (urllib, the base install: the report, the stack helpers)
and the scorer's requests session (``gpu_health.scorer.promclient`` mounts
:func:`requests_adapter`).
"""

from __future__ import annotations

import contextlib
import http.client
import io
import socket
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from typing import Any

#: The connection each thread is sending a request on now (anything with a ``sock``).
_IN_USE: dict[int, Any] = {}
_LOCK = threading.Lock()
#: An answer larger than this is refused (a Prometheus answer of the report is kilobytes to a
#: few megabytes; the scorer has its own, configurable cap).
MAX_ANSWER_BYTES = 64 * 1024 * 1024


def note(connection: Any) -> None:
    """Record ``connection`` as the one the calling thread sends its request on."""
    with _LOCK:
        _IN_USE[threading.get_ident()] = connection


class Cut:
    """Whether the deadline cut the request (read it after the ``with`` block)."""

    fired = False


def _shut(thread: int, cut: Cut) -> None:
    with _LOCK:
        connection = _IN_USE.get(thread)
    sock = getattr(connection, "sock", None)
    if sock is not None:
        cut.fired = True
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


@contextlib.contextmanager
def cut_at(deadline: float) -> Iterator[Cut]:
    """Shut the calling thread's connection down at ``deadline`` (``time.monotonic()``) if the
    block is still running then."""
    thread = threading.get_ident()
    cut = Cut()
    timer = threading.Timer(max(deadline - time.monotonic(), 0.0), _shut, (thread, cut))
    timer.daemon = True
    timer.start()
    try:
        yield cut
    finally:
        timer.cancel()
        with _LOCK:
            _IN_USE.pop(thread, None)


# -- urllib ----------------------------------------------------------------------------------


class _HTTPConnection(http.client.HTTPConnection):
    def request(self, *args: Any, **kwargs: Any) -> None:
        note(self)
        super().request(*args, **kwargs)


class _HTTPSConnection(http.client.HTTPSConnection):
    def request(self, *args: Any, **kwargs: Any) -> None:
        note(self)
        super().request(*args, **kwargs)


class _HTTPHandler(urllib.request.HTTPHandler):
    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(_HTTPConnection, req)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        context = getattr(self, "_context", None)
        return self.do_open(_HTTPSConnection, req, context=context)


_OPENER = urllib.request.build_opener(_HTTPHandler, _HTTPSHandler)


def _opener_for(context: ssl.SSLContext) -> urllib.request.OpenerDirector:
    """An opener whose https connections use ``context`` (a CA file, or no verification)."""
    return urllib.request.build_opener(_HTTPHandler, _HTTPSHandler(context=context))


class AnswerTooLarge(ValueError):
    """The answer passed its byte cap."""


#: The most of an error answer's body kept (Prometheus' refusals are a line of JSON).
MAX_ERROR_BODY_BYTES = 64 * 1024


def fetch(
    url: str,
    timeout: float,
    max_bytes: int = MAX_ANSWER_BYTES,
    headers: Mapping[str, str] | None = None,
    context: ssl.SSLContext | None = None,
) -> bytes:
    """GET ``url``: the body, all of it within ``timeout`` seconds and ``max_bytes`` bytes.

    Raises TimeoutError past the deadline, :class:`AnswerTooLarge` past the cap, and urllib's
    errors otherwise (HTTPError for a non-2xx answer, URLError when unreachable). An HTTPError's
    body (at most :data:`MAX_ERROR_BODY_BYTES`) is read within the same deadline, so that its
    ``read()`` afterwards, which Prometheus' reason for refusing a query needs, never waits.
    ``headers`` go with the request (credentials); ``context`` verifies an https server (None:
    Python's default).
    """
    opener = _OPENER if context is None else _opener_for(context)
    request = urllib.request.Request(url, headers=dict(headers or {}))
    deadline = time.monotonic() + timeout
    with cut_at(deadline) as cut:
        try:
            try:
                response = opener.open(request, timeout=timeout)
            except urllib.error.HTTPError as exc:
                body = _read(exc, url, timeout, deadline, MAX_ERROR_BODY_BYTES, keep=True)
                exc.close()
                raise urllib.error.HTTPError(
                    exc.url, exc.code, exc.msg, exc.hdrs, io.BytesIO(body)
                ) from None
            with response:
                return _read(response, url, timeout, deadline, max_bytes)
        except urllib.error.HTTPError:
            raise
        except (OSError, http.client.HTTPException):
            if cut.fired:
                raise TimeoutError(f"{url}: no complete answer within {timeout:g}s") from None
            raise


def _read(
    response: Any, url: str, timeout: float, deadline: float, max_bytes: int, keep: bool = False
) -> bytes:
    """The body of ``response`` by ``deadline`` (``timeout`` seconds after the request began);
    past ``max_bytes``, :class:`AnswerTooLarge`, or with ``keep`` its first ``max_bytes``."""
    chunks: list[bytes] = []
    total = 0
    while chunk := response.read1(65536):
        total += len(chunk)
        if total > max_bytes:
            if keep:
                chunks.append(chunk[: max_bytes - (total - len(chunk))])
                break
            raise AnswerTooLarge(f"{url}: answer larger than {max_bytes} bytes")
        chunks.append(chunk)
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url}: no complete answer within {timeout:g}s")
    return b"".join(chunks)


# -- requests (the scorer's extra) -----------------------------------------------------------


def requests_adapter(**kwargs: Any) -> Any:
    """A requests HTTPAdapter whose connections :func:`cut_at` can find, direct or through an
    HTTP(S) proxy (``HTTP_PROXY``/``HTTPS_PROXY``: a proxy that drips its answer is cut at the
    deadline too; a SOCKS proxy keeps only the per-read timeouts). Imported lazily: requests and
    urllib3 come with the scorer's extra, not the base install."""
    import requests
    from urllib3.connection import HTTPConnection, HTTPSConnection
    from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

    class NotedHTTPConnection(HTTPConnection):
        def request(self, *args: Any, **kw: Any) -> None:
            note(self)
            super().request(*args, **kw)

    class NotedHTTPSConnection(HTTPSConnection):
        def request(self, *args: Any, **kw: Any) -> None:
            note(self)
            super().request(*args, **kw)

    class HTTPPool(HTTPConnectionPool):
        ConnectionCls = NotedHTTPConnection

    class HTTPSPool(HTTPSConnectionPool):
        ConnectionCls = NotedHTTPSConnection

    pools = {"http": HTTPPool, "https": HTTPSPool}

    class DeadlineAdapter(requests.adapters.HTTPAdapter):
        def init_poolmanager(self, *args: Any, **kw: Any) -> None:
            super().init_poolmanager(*args, **kw)
            self.poolmanager.pool_classes_by_scheme = pools

        def proxy_manager_for(self, proxy: str, **kw: Any) -> Any:
            manager = super().proxy_manager_for(proxy, **kw)
            if not proxy.lower().startswith("socks"):  # SOCKS managers bring their own classes
                manager.pool_classes_by_scheme = pools
            return manager

    return DeadlineAdapter(**kwargs)
