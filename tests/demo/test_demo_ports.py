"""A restarted demo keeps its ports: connections a stopped server leaves in TIME_WAIT do not
make its port look busy, while a port somebody listens on still does."""

from __future__ import annotations

import socket

from gpu_health.demo.processes import port_or_free


def _time_wait_port() -> int:
    """A port whose listener is gone but whose server side of a connection is in TIME_WAIT."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = int(listener.getsockname()[1])
    client = socket.create_connection(("127.0.0.1", port), timeout=5)
    served, _ = listener.accept()
    served.close()  # the server closes first: its side of the connection enters TIME_WAIT
    client.recv(1)
    client.close()
    listener.close()
    return port


def _plain_bind_fails(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def test_port_left_in_time_wait_is_reused() -> None:
    port = _time_wait_port()
    # the trap itself: a plain bind() is refused although nothing listens
    assert _plain_bind_fails(port)
    assert port_or_free(port) == port


def test_port_with_a_listener_is_not_reused() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = int(listener.getsockname()[1])
        other = port_or_free(port)
    assert other != port and other > 0
