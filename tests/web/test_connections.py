"""The connection model: in-flight bound (503), fair-share eviction, close after 401, shared
renders."""

from __future__ import annotations

import base64
import contextlib
import http.client
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import bcrypt
import pytest
from prometheus_client import CollectorRegistry, Gauge

from gpu_health.web import server as web
from gpu_health.web.protocol import Request, Response, SharedRender


def _get(
    port: int, path: str = "/", headers: dict[str, str] | None = None, source: str = "127.0.0.1"
) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(source, 0))
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


@pytest.fixture
def slow_server() -> Iterator[tuple[web.WebServer, threading.Event]]:
    release = threading.Event()

    def slow(_: Request) -> Response:
        release.wait(10)
        return Response(200, b"done\n")

    routes = {"/slow": slow, "/": lambda _r: Response(200, b"ok\n")}
    srv = web.WebServer("127.0.0.1:0", routes, max_in_flight=1, max_connections=64).start()
    try:
        yield srv, release
    finally:
        release.set()
        srv.shutdown()


def _flood(connect: Callable[[], socket.socket], stop: threading.Event, keep: int) -> None:
    """Open a silent connection every 10 ms until ``stop``, holding at most ``keep`` of them
    (the oldest closed first), as a client that reconnects when cut would."""
    held: list[socket.socket] = []
    while not stop.wait(0.01):
        with contextlib.suppress(OSError):
            held.append(connect())
        if len(held) > keep:
            held.pop(0).close()
    for sock in held:
        sock.close()


def test_requests_beyond_in_flight_and_queue_get_503_at_once(
    slow_server: tuple[web.WebServer, threading.Event],
) -> None:
    server, release = slow_server
    statuses: list[int] = []
    capacity = 1 + web.QUEUE_FACTOR  # one running, QUEUE_FACTOR waiting without a thread
    # From as many addresses: one address alone may hold only its share (test_fairness.py).
    threads = [
        threading.Thread(
            target=lambda i=i: statuses.append(_get(server.port, "/slow", source=f"127.0.0.{i}"))
        )
        for i in range(2, 2 + capacity)
    ]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 5
    while server._state.in_flight + server._state.queued < capacity:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    started = time.monotonic()
    assert _get(server.port, "/slow") == 503  # the bound, answered without waiting
    assert time.monotonic() - started < 1.0
    assert server.overloaded_requests == 1
    release.set()
    for t in threads:
        t.join(10)
    assert statuses == [200] * capacity


def test_idle_keep_alive_connections_are_evicted_before_a_new_one_is_refused() -> None:
    server = web.WebServer(
        "127.0.0.1:0", {"/": lambda _r: Response(200, b"ok\n")}, max_connections=8
    ).start()
    try:
        idle = []
        for _ in range(8):  # every slot held by a keep-alive connection after one request
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
            conn.request("GET", "/")
            conn.getresponse().read()
            idle.append(conn)
        for _ in range(5):  # newcomers that stay open too: each needs an eviction
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
            conn.request("GET", "/")
            assert conn.getresponse().status == 200
            idle.append(conn)
            time.sleep(0.05)
        assert server.evicted_connections == 5 and server.refused_connections == 0
        assert server.open_connections <= 8
        for conn in idle:
            conn.close()
    finally:
        server.shutdown()


def test_silent_connections_beyond_the_cap_cannot_lock_a_scraper_out() -> None:
    """The attacker trial: more clients than the cap connect and send nothing, and keep
    reconnecting. Before, they held every slot until their 10 s request deadline and scrapes were
    refused; now each newcomer evicts the oldest waiting connection, so every scrape gets in."""
    server = web.WebServer(
        "127.0.0.1:0", {"/": lambda _r: Response(200, b"ok\n")}, max_connections=16
    ).start()
    stop = threading.Event()
    silent = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(40)]

    def connect() -> socket.socket:
        return socket.create_connection(("127.0.0.1", server.port))

    # ~100 new silent connections a second, on top of the 40
    flooder = threading.Thread(target=_flood, args=(connect, stop, 100), daemon=True)
    try:
        deadline = time.monotonic() + 3
        while server.evicted_connections < 24 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert server.evicted_connections >= 24  # 40 silent, 16 slots: none was refused
        flooder.start()
        assert [_get(server.port) for _ in range(20)] == [200] * 20
        assert server.refused_connections == 0 and server.open_connections <= 16
    finally:
        stop.set()
        flooder.join(5)
        for sock in silent:
            sock.close()
        server.shutdown()


def _silent_from(source: str, port: int) -> socket.socket:
    """A connection that sends nothing, from ``source`` to the same family's loopback: an IPv4
    one of 127/8 (Linux routes all of it to lo), or an IPv6 one, bound freely (a /64 routed to
    lo, not assigned to it)."""
    ipv6 = ":" in source
    sock = socket.socket(socket.AF_INET6 if ipv6 else socket.AF_INET, socket.SOCK_STREAM)
    try:
        if ipv6:
            sock.setsockopt(socket.SOL_IP, getattr(socket, "IP_FREEBIND", 15), 1)
        sock.bind((source, 0))
        sock.connect(("::1" if ipv6 else "127.0.0.1", port))
    except OSError:
        sock.close()
        raise
    return sock


def _closed_by_server(sock: socket.socket) -> bool:
    sock.settimeout(1)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def _reuse(conn: http.client.HTTPConnection) -> int | str:
    """The status of one more request on ``conn``'s open socket, or how that socket failed."""
    sock = conn.sock
    try:
        conn.request("GET", "/")
        response = conn.getresponse()
        response.read()
    except (OSError, http.client.HTTPException) as exc:
        return type(exc).__name__
    return response.status if conn.sock is sock else "reconnected"


def test_a_flooding_address_evicts_only_its_own_connections() -> None:
    """Fair share: when the table is full, the victim is the oldest waiting connection of the
    address holding the most. Before, the globally oldest waiting connection was evicted, so one
    address opening silent connections by the dozen evicted a scraper's idle keep-alive ones on
    its first overflow; now the scraper keeps reusing its connections throughout the flood."""
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.2", 0))
        except OSError:
            pytest.skip("127.0.0.2 is not a local address here (Linux routes all of 127/8)")
    server = web.WebServer(
        "127.0.0.1:0", {"/": lambda _r: Response(200, b"ok\n")}, max_connections=8
    ).start()
    scraper = [http.client.HTTPConnection("127.0.0.1", server.port, timeout=5) for _ in range(2)]
    flood: list[socket.socket] = []
    stop = threading.Event()

    def connect() -> socket.socket:
        return _silent_from("127.0.0.2", server.port)

    # ~100 more silent connections a second from 127.0.0.2
    flooder = threading.Thread(target=_flood, args=(connect, stop, 50), daemon=True)
    try:
        for conn in scraper:  # two idle keep-alive connections, the oldest in the table
            conn.request("GET", "/")
            assert conn.getresponse().read() == b"ok\n"
        sockets = [conn.sock for conn in scraper]
        flood.extend(_silent_from("127.0.0.2", server.port) for _ in range(60))
        deadline = time.monotonic() + 5
        while server.evicted_connections < 60 - 6 and time.monotonic() < deadline:
            time.sleep(0.02)
        # 8 slots: the scraper's 2 plus the flood's 6 newest; every other one was evicted.
        assert server.evicted_connections == 60 - 6 and server.refused_connections == 0
        assert [_reuse(conn) for conn in scraper] == [200, 200]
        assert sum(_closed_by_server(sock) for sock in flood[:-6]) == 60 - 6
        flooder.start()
        statuses: list[int | str] = []
        for _ in range(20):  # the same two sockets, reused while the flood goes on
            statuses.extend(_reuse(conn) for conn in scraper)
            time.sleep(0.05)
        assert statuses == [200] * 40
        assert [conn.sock for conn in scraper] == sockets  # never reconnected: never evicted
        assert server.evicted_connections > 60 and server.refused_connections == 0
        assert server.open_connections <= 8
    finally:
        stop.set()
        if flooder.is_alive():
            flooder.join(5)
        for conn in scraper:
            conn.close()
        for sock in flood:
            sock.close()
        server.shutdown()


#: A /64 of the documentation prefix (RFC 3849) that the IPv6 test routes to the loopback interface.
FLOOD_PREFIX = "2001:db8:6464::"


@pytest.fixture
def ipv6_flood_prefix() -> Iterator[str]:
    """Route :data:`FLOOD_PREFIX`/64 to lo (root only), so a client can bind any address of
    it as one host with a /64 of its own can; removed afterwards."""
    route = ["ip", "-6", "route", "add", "local", f"{FLOOD_PREFIX}/64", "dev", "lo"]
    try:
        added = subprocess.run(route, capture_output=True, check=False, timeout=10)
    except FileNotFoundError:
        pytest.skip("no ip(8) here to route an IPv6 /64 to lo")
    if added.returncode != 0:
        pytest.skip(f"cannot route an IPv6 /64 to lo: {added.stderr.decode().strip()}")
    try:
        yield FLOOD_PREFIX
    finally:
        route[3] = "del"
        subprocess.run(route, capture_output=True, check=False, timeout=10)


def test_a_host_flooding_from_many_addresses_of_its_ipv6_64_is_one_client(
    ipv6_flood_prefix: str,
) -> None:
    """An IPv6 host picks any address of its /64. Counted per address, 60 silent connections
    from 60 addresses hold one each, so the scraper's two idle keep-alive connections made it
    the client holding the most, and its connections were the ones evicted. Counted per /64,
    the flood is one client and evicts only itself."""
    server = web.WebServer(
        "[::1]:0", {"/": lambda _r: Response(200, b"ok\n")}, max_connections=8
    ).start()
    scraper = [http.client.HTTPConnection("::1", server.port, timeout=5) for _ in range(2)]
    flood: list[socket.socket] = []
    try:
        for conn in scraper:
            conn.request("GET", "/")
            assert conn.getresponse().read() == b"ok\n"
        sockets = [conn.sock for conn in scraper]
        flood.extend(_silent_from(f"{ipv6_flood_prefix}{n:x}", server.port) for n in range(1, 61))
        deadline = time.monotonic() + 5
        while server.evicted_connections < 60 - 6 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert server.evicted_connections == 60 - 6 and server.refused_connections == 0
        assert [_reuse(conn) for conn in scraper] == [200, 200]
        assert [conn.sock for conn in scraper] == sockets  # never evicted
        assert sum(_closed_by_server(sock) for sock in flood[:-6]) == 60 - 6
    finally:
        for conn in scraper:
            conn.close()
        for sock in flood:
            sock.close()
        server.shutdown()


@pytest.mark.parametrize(
    ("address", "key"),
    [
        (("10.0.0.7", 40000), "10.0.0.7"),
        (("2001:db8::1", 40000, 0, 0), "2001:db8::/64"),
        # one host picks any address of its /64: all one client; the next /64 is another
        (("2001:db8::dead:beef:1:2", 40001, 0, 0), "2001:db8::/64"),
        (("2001:db8:0:1::1", 40000, 0, 0), "2001:db8:0:1::/64"),
        (("fe80::1%eth0", 40000, 0, 2), "fe80::/64%eth0"),  # link-local: per interface
        (("fe80::2%eth1", 40000, 0, 3), "fe80::/64%eth1"),
        (("::1", 40000, 0, 0), "::/64"),
        (("::ffff:10.0.0.7", 40000, 0, 0), "10.0.0.7"),  # dual-stack listener: same client
        ("", ""),  # a Unix socket: all one client
        (b"\0abstract", ""),
    ],
)
def test_connections_are_counted_per_client_address(address: object, key: str) -> None:
    assert web.peer_key(address) == key


def test_new_connections_are_refused_only_when_every_slot_is_busy(
    slow_server: tuple[web.WebServer, threading.Event],
) -> None:
    server, release = slow_server
    server._state.max_connections = 1  # the one slot: a handler that is running
    statuses: list[int] = []
    busy = threading.Thread(target=lambda: statuses.append(_get(server.port, "/slow")))
    busy.start()
    deadline = time.monotonic() + 5
    while server._state.in_flight < 1:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        assert sock.recv(1) == b""  # closed at accept: nothing waiting to evict
    assert server.refused_connections == 1 and server.evicted_connections == 0
    release.set()
    busy.join(10)
    assert statuses == [200]


def test_401_closes_the_connection(tmp_path: Path) -> None:
    hashed = bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=4)).decode()
    config = tmp_path / "web.yml"
    config.write_text(f"basic_auth_users:\n  prometheus: '{hashed}'\n")
    server = web.WebServer(
        "127.0.0.1:0", {"/": lambda _r: Response(200, b"ok\n")}, web_config=config
    ).start()
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            answer = b""
            while chunk := sock.recv(4096):
                answer += chunk
            assert answer.startswith(b"HTTP/1.1 401") and b"Connection: close" in answer
        token = base64.b64encode(b"prometheus:pw").decode()
        assert _get(server.port, headers={"Authorization": f"Basic {token}"}) == 200
    finally:
        server.shutdown()


def test_bcrypt_cache_survives_a_reload_for_unchanged_users(tmp_path: Path) -> None:
    from gpu_health.web.live import WebConfigSource

    hashed = bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=4)).decode()
    config = tmp_path / "web.yml"
    config.write_text(f"basic_auth_users:\n  prometheus: '{hashed}'\n")
    source = WebConfigSource(config)
    header = "Basic " + base64.b64encode(b"prometheus:pw").decode()
    first = source.current().auth
    assert first is not None and first.check(header) == "prometheus"
    time.sleep(1.1)
    config.write_text(
        f"basic_auth_users:\n  prometheus: '{hashed}'\n"
        "http_server_config:\n  headers:\n    X-Frame-Options: deny\n"
    )
    reloaded = source.current()
    assert reloaded.config.headers and reloaded.auth is not first
    assert reloaded.auth is not None and reloaded.auth.check_cached(header) == (True, "prometheus")
    # A changed hash for the user is never answered from the old entry.
    time.sleep(1.1)
    other = bcrypt.hashpw(b"new", bcrypt.gensalt(rounds=4)).decode()
    config.write_text(f"basic_auth_users:\n  prometheus: '{other}'\n")
    changed = source.current().auth
    assert changed is not None and changed.check_cached(header) == (False, None)
    assert changed.check(header) is None


def test_concurrent_renders_are_shared() -> None:
    shared = SharedRender()
    gate = threading.Event()
    calls = []

    def render() -> bytes:
        calls.append(1)
        gate.wait(5)
        return b"exposition"

    results: list[bytes] = []
    threads = [
        threading.Thread(target=lambda: results.append(shared.get("k", render))) for _ in range(5)
    ]
    threads[0].start()
    while not calls:
        time.sleep(0.01)
    for t in threads[1:]:
        t.start()
    time.sleep(0.2)
    gate.set()
    for t in threads:
        t.join(5)
    assert results == [b"exposition"] * 5 and len(calls) == 1
    assert shared.get("k", render) == b"exposition" and len(calls) == 2  # none running: fresh


def test_metrics_are_fresh_for_a_lone_scraper() -> None:
    registry = CollectorRegistry()
    gauge = Gauge("probe_gauge", "A probe.", registry=registry)
    server = web.WebServer("127.0.0.1:0", {"/metrics": web.metrics_handler(registry)}).start()
    try:
        for value in (1, 2, 3):
            gauge.set(value)
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
            conn.request("GET", "/metrics")
            assert f"probe_gauge {value}.0".encode() in conn.getresponse().read()
            conn.close()
    finally:
        server.shutdown()


def test_password_flood_and_reload_never_delay_a_cached_scraper(tmp_path: Path) -> None:
    """bcrypt (cost 10, ~70 ms) runs one at a time off the event loop for cache misses only, and
    a reload keeps the cache: a good scraper is answered from the cache meanwhile."""
    hashed = bcrypt.hashpw(b"right", bcrypt.gensalt(rounds=10)).decode()
    config = tmp_path / "web.yml"
    config.write_text(f"basic_auth_users:\n  prometheus: '{hashed}'\n")
    server = web.WebServer(
        "127.0.0.1:0", {"/": lambda _r: Response(200, b"ok\n")}, web_config=config
    ).start()
    good = {"Authorization": "Basic " + base64.b64encode(b"prometheus:right").decode()}
    stop = threading.Event()
    flood_statuses: list[int] = []

    def flood(n: int) -> None:
        i = 0
        while not stop.is_set():
            i += 1
            bad = base64.b64encode(f"prometheus:wrong-{n}-{i}".encode()).decode()
            with contextlib.suppress(OSError):
                flood_statuses.append(_get(server.port, headers={"Authorization": f"Basic {bad}"}))

    try:
        assert _get(server.port, headers=good) == 200  # now cached
        threads = [threading.Thread(target=flood, args=(n,), daemon=True) for n in range(8)]
        for t in threads:
            t.start()
        time.sleep(0.5)
        timings = []
        for i in range(10):
            if i == 5:  # a reload mid-flood: same user, another header
                config.write_text(
                    f"basic_auth_users:\n  prometheus: '{hashed}'\n"
                    "http_server_config:\n  headers:\n    X-Frame-Options: deny\n"
                )
                time.sleep(1.1)
            started = time.monotonic()
            assert _get(server.port, headers=good) == 200
            timings.append(time.monotonic() - started)
        stop.set()
        for t in threads:
            t.join(10)
        assert max(timings) < 0.5, timings
        assert set(flood_statuses) <= {401, 503} and 401 in flood_statuses
    finally:
        stop.set()
        server.shutdown()


def test_rate_limit_is_charged_before_auth(tmp_path: Path) -> None:
    """Documents a trade-off kept on purpose (as exporter-toolkit does): the global bucket is
    checked before basic auth, so unauthenticated requests spend tokens a scraper then lacks,
    but a password guesser is throttled to the bucket's rate before any bcrypt runs."""
    hashed = bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=4)).decode()
    config = tmp_path / "web.yml"
    config.write_text(
        f"basic_auth_users:\n  prometheus: '{hashed}'\nrate_limit:\n  interval: 1h\n  burst: 3\n"
    )
    server = web.WebServer(
        "127.0.0.1:0", {"/": lambda _r: Response(200, b"ok\n")}, web_config=config
    ).start()
    try:
        assert [_get(server.port) for _ in range(4)] == [401, 401, 401, 429]
        token = base64.b64encode(b"prometheus:pw").decode()
        assert _get(server.port, headers={"Authorization": f"Basic {token}"}) == 429
    finally:
        server.shutdown()
