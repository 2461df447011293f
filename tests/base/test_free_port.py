"""stack.free_port chooses ports the kernel never hands to an outgoing connection."""

from __future__ import annotations

import random
import socket
from collections.abc import Sequence
from pathlib import Path

import pytest

from gpu_health import stack


def _ephemeral_range() -> tuple[int, int]:
    low, high = (int(n) for n in stack.EPHEMERAL_RANGE_FILE.read_text().split())
    return low, high


def test_free_ports_are_bindable_and_outside_the_ephemeral_range() -> None:
    low, high = _ephemeral_range()
    ports = [stack.free_port() for _ in range(200)]
    assert [p for p in ports if low <= p <= high] == []
    assert min(ports) >= stack.LOWEST_CHOSEN_PORT
    assert len(set(ports)) > 150, "the choice must be spread, not one port again and again"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", ports[-1]))


def test_a_port_something_is_bound_to_is_passed_over(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as held, socket.socket() as spare:
        held.bind(("127.0.0.1", 0))
        held.listen()
        spare.bind(("127.0.0.1", 0))
        taken, free = held.getsockname()[1], spare.getsockname()[1]
        spare.close()
        offered = iter([taken, taken, free])

        def choice(_self: object, _ports: Sequence[int]) -> int:
            return int(next(offered))

        monkeypatch.setattr(random.SystemRandom, "choice", choice)
        assert stack.free_port() == free


@pytest.mark.parametrize("contents", ["1024 65535\n", "not numbers\n", None])
def test_without_room_outside_the_range_the_kernel_chooses(
    contents: str | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    low, high = _ephemeral_range()
    path = tmp_path / "ip_local_port_range"
    if contents is not None:
        path.write_text(contents)
    monkeypatch.setattr(stack, "EPHEMERAL_RANGE_FILE", path)
    port = stack.free_port()
    assert low <= port <= high, "bind(0) gives a port of the kernel's range"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
