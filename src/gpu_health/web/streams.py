"""Socket and stream steps of one connection that the server's event loop awaits.

Apart from :mod:`gpu_health.web.server` (who is served, and when) so each step's bound is
visible on its own: a peek that never consumes, a refusal that is not reset away, how many
bytes a connection still holds for a client that may have stopped reading, and whether it is
still there to write to.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket

from gpu_health.web.protocol import MAX_HEADER_BYTES, Handler, Request, Response

log = logging.getLogger("gpu_health.web.server")

_PLAIN_ON_TLS_PORT = (
    b"HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Connection: close\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"
)


class Closing(Exception):
    """End this connection quietly."""


def call_handler(handler: Handler, request: Request) -> Response:
    try:
        return handler(request)
    except Exception:  # a handler bug must not kill the server or leak a traceback
        log.exception("handler for %s failed", request.path)
        return Response(500, b"internal error\n")


async def peek(loop: asyncio.AbstractEventLoop, sock: socket.socket) -> bytes:
    """The first byte the client sent, left in the socket (b"" if it hung up)."""
    while True:
        try:
            return sock.recv(1, socket.MSG_PEEK)
        except BlockingIOError:
            pass
        except OSError:
            return b""
        ready: asyncio.Future[None] = loop.create_future()
        loop.add_reader(sock.fileno(), _resolve, ready)
        try:
            await ready
        finally:
            loop.remove_reader(sock.fileno())


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


async def refuse_plain_on_tls(loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        # Take (and drop) what the client sent, so closing does not reset the answer away.
        with contextlib.suppress(BlockingIOError):
            sock.recv(MAX_HEADER_BYTES)
        await loop.sock_sendall(sock, _PLAIN_ON_TLS_PORT)
        sock.shutdown(socket.SHUT_WR)


def buffered(transport: asyncio.BaseTransport) -> int:
    """Bytes written to ``transport`` that the kernel has not taken yet: how a write's progress
    is measured (it shrinks as the client reads) and what a stalled client costs in memory.

    A TLS transport's own count covers only what is not yet encrypted: asyncio hands the
    encrypted bytes to the socket transport beneath it at once, so that one's buffer is added
    (asyncio offers no public way to it; without it a TLS client that never reads would look
    as if it took everything)."""
    total = 0
    if isinstance(transport, asyncio.WriteTransport):
        with contextlib.suppress(AttributeError, RuntimeError):
            total += transport.get_write_buffer_size()
    inner = getattr(getattr(transport, "_ssl_protocol", None), "_transport", None)
    if isinstance(inner, asyncio.WriteTransport):
        with contextlib.suppress(AttributeError, RuntimeError):
            total += inner.get_write_buffer_size()
    return total


def lost(transport: asyncio.BaseTransport) -> bool:
    """Whether ``transport`` (or, under TLS, the socket transport beneath it) is closing: what
    is written to it now is dropped (asyncio logs a warning per write after the fifth), so an
    answer sent chunk by chunk stops there."""
    if transport.is_closing():
        return True
    inner = getattr(getattr(transport, "_ssl_protocol", None), "_transport", None)
    return isinstance(inner, asyncio.BaseTransport) and inner.is_closing()
