"""Every byte of an HTTP answer within the deadline and the byte cap (gpu_health.http_deadline).

Socket timeouts bound each read only: a server that drips its status line, its headers or its
body a byte at a time never trips them. These servers are real sockets on loopback.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from gpu_health import http_deadline

Serve = Callable[[socket.socket], None]


@pytest.fixture
def server() -> Iterator[Callable[[Serve], str]]:
    """``server(handler)``: a loopback URL whose connections ``handler`` answers."""
    listeners: list[socket.socket] = []

    def start(handler: Serve) -> str:
        listener = socket.create_server(("127.0.0.1", 0))
        listeners.append(listener)

        def accept() -> None:
            while True:
                try:
                    conn, _ = listener.accept()
                except OSError:
                    return
                threading.Thread(target=_answer, args=(conn, handler), daemon=True).start()

        threading.Thread(target=accept, daemon=True).start()
        return f"http://127.0.0.1:{listener.getsockname()[1]}/api/v1/status/buildinfo"

    yield start
    for listener in listeners:
        listener.close()


def _answer(conn: socket.socket, handler: Serve) -> None:
    with conn:
        conn.recv(65536)
        with contextlib.suppress(OSError):  # the client hung up
            handler(conn)


def _drip(data: bytes) -> Serve:
    def handler(conn: socket.socket) -> None:
        for byte in data:
            conn.sendall(bytes([byte]))
            time.sleep(0.1)

    return handler


HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"


@pytest.mark.parametrize(
    "data",
    [HEAD[:20] + b"X" * 200, HEAD + b"{" + b" " * 99],
    ids=["status-and-headers", "body"],
)
def test_a_dripping_server_is_cut_at_the_deadline(
    server: Callable[[Serve], str], data: bytes
) -> None:
    url = server(_drip(data))
    started = time.monotonic()
    with pytest.raises(TimeoutError, match="no complete answer within 1s"):
        http_deadline.fetch(url, timeout=1.0)
    elapsed = time.monotonic() - started
    print(f"dripping server cut after {elapsed:.2f}s (deadline 1s)")
    assert elapsed < 2.0  # each byte comes in 0.1 s: without the cut this runs ~20 s or more


def test_an_answer_past_the_byte_cap_is_refused(server: Callable[[Serve], str]) -> None:
    body = b"x" * 5000
    url = server(lambda c: c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n" + body))
    with pytest.raises(http_deadline.AnswerTooLarge, match="larger than 1000 bytes"):
        http_deadline.fetch(url, timeout=5.0, max_bytes=1000)
    assert http_deadline.fetch(url, timeout=5.0, max_bytes=5000) == body
