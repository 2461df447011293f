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


def test_an_error_answers_body_is_read_within_the_deadline(server: Callable[[Serve], str]) -> None:
    """Prometheus says why it refused a query in the body of its error answer: the body is read
    before :func:`fetch` raises, capped and by the same deadline, so reading it never waits."""
    import urllib.error

    reason = b'{"status":"error","errorType":"bad_data","error":"zero range"}'
    head = b"HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n"
    url = server(lambda c: c.sendall(head + b"Content-Length: %d\r\n\r\n" % len(reason) + reason))
    with pytest.raises(urllib.error.HTTPError) as raised:
        http_deadline.fetch(url, timeout=5.0)
    assert raised.value.code == 400 and raised.value.read() == reason

    huge = b"x" * (3 * http_deadline.MAX_ERROR_BODY_BYTES)
    url = server(lambda c: c.sendall(head + b"Content-Length: %d\r\n\r\n" % len(huge) + huge))
    with pytest.raises(urllib.error.HTTPError) as raised:
        http_deadline.fetch(url, timeout=5.0)
    assert len(raised.value.read()) == http_deadline.MAX_ERROR_BODY_BYTES

    def drip_body(conn: socket.socket) -> None:
        conn.sendall(head + b"Content-Length: 100\r\n\r\n")
        _drip(b"{" + b" " * 99)(conn)

    url = server(drip_body)
    started = time.monotonic()
    with pytest.raises(TimeoutError, match="no complete answer within 1s"):
        http_deadline.fetch(url, timeout=1.0)
    assert time.monotonic() - started < 2.0
