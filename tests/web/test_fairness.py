"""One client cannot crowd out the rest: a pipelining connection, an address with many
connections, a password guesser; and the server's defences are visible in /metrics."""

from __future__ import annotations

import base64
import http.client
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import pytest
from prometheus_client import CollectorRegistry, Gauge

from gpu_health.web import SERVER_METRICS
from gpu_health.web import server as web
from gpu_health.web.auth import BasicAuth
from gpu_health.web.protocol import Request, Response

#: The tester's flood: each connection sends 2,000 pipelined requests for a missing path per
#: ``sendall``, over and over, while a thread reads (and counts) the answers.
PIPELINE_FLOOD = r"""
import socket, sys, threading, time
port, conns, seconds = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
burst = b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n" * 2000
end = time.monotonic() + seconds
answered = [0] * conns
def reader(i, sock):
    tail = b""
    while True:
        try:
            data = sock.recv(1 << 20)
        except OSError:
            return
        if not data:
            return
        answered[i] += (tail + data).count(b"HTTP/1.1 404")
        tail = data[-16:]
def flood(i):
    sock = socket.create_connection(("127.0.0.1", port))
    threading.Thread(target=reader, args=(i, sock), daemon=True).start()
    try:
        while time.monotonic() < end:
            sock.sendall(burst)
    except OSError:
        pass
threads = [threading.Thread(target=flood, args=(i,)) for i in range(conns)]
for t in threads:
    t.start()
print("ready", flush=True)
for t in threads:
    t.join()
time.sleep(0.2)
print(" ".join(map(str, answered)), flush=True)
"""


def _get_from(
    port: int, path: str = "/", source: str = "127.0.0.1", timeout: float = 10
) -> tuple[int, float]:
    """Status and seconds of one GET on a new connection from ``source`` (any of 127/8)."""
    started = time.monotonic()
    conn = http.client.HTTPConnection(
        "127.0.0.1", port, timeout=timeout, source_address=(source, 0)
    )
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        resp.read()
        return resp.status, time.monotonic() - started
    finally:
        conn.close()


def _wait_for(condition: object, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.01)


@pytest.fixture
def metrics_server() -> Iterator[web.WebServer]:
    registry = CollectorRegistry()
    Gauge("probe_gauge", "A probe.", registry=registry).set(1)
    srv = web.WebServer("127.0.0.1:0", {"/metrics": web.metrics_handler(registry)}).start()
    try:
        yield srv
    finally:
        srv.shutdown()


# -- item: pipelining ----------------------------------------------------------------------------


def test_pipelining_connections_do_not_stall_scrapes(metrics_server: web.WebServer) -> None:
    """Three connections pipelining thousands of 404s (answered on the event loop, without a
    handler) while Prometheus-like scrapes run. Before, one connection's buffered requests were
    all answered in one run of the loop: a scrape took ~2 s behind one such connection and timed
    out behind five. Now each connection yields after every request. The bound is a generous
    multiple of this test's own baseline (and never under 1 s)."""
    port = metrics_server.port
    baseline = max(_get_from(port, "/metrics")[1] for _ in range(5))
    flood = subprocess.Popen(
        [sys.executable, "-c", PIPELINE_FLOOD, str(port), "3", "3"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert flood.stdout is not None and flood.stdout.readline().strip() == "ready"
        time.sleep(0.5)  # the pipelines are full
        scrapes = [_get_from(port, "/metrics") for _ in range(5)]
        answered = [int(n) for n in flood.communicate(timeout=30)[0].split()]
    finally:
        flood.kill()
        flood.wait()
    assert [status for status, _ in scrapes] == [200] * 5
    slowest = max(seconds for _, seconds in scrapes)
    assert slowest < max(1.0, 50 * baseline), (baseline, scrapes)
    assert len(answered) == 3 and min(answered) > 0, answered  # the flood is served too


# -- item: one address, many connections ---------------------------------------------------------


@pytest.fixture
def gated_server() -> Iterator[tuple[web.WebServer, threading.Semaphore]]:
    """``/slow`` waits for one release of the gate per request; ``/`` answers at once."""
    gate = threading.Semaphore(0)

    def slow(_: Request) -> Response:
        gate.acquire(timeout=10)
        return Response(200, b"done\n")

    routes = {"/slow": slow, "/": lambda _r: Response(200, b"ok\n")}
    srv = web.WebServer("127.0.0.1:0", routes, max_in_flight=1, max_connections=64).start()
    try:
        yield srv, gate
    finally:
        gate.release(100)
        srv.shutdown()


def test_one_address_gets_at_most_its_share_of_the_handler_queue(
    gated_server: tuple[web.WebServer, threading.Semaphore],
) -> None:
    """One handler slot, 4 more places in the queue: an address alone may hold half of the 5
    (2); its further requests get 503 at once, and another address's request still gets a
    place. Before, the flooding address filled all 5 and the scrape got 503."""
    server, gate = gated_server
    capacity = 1 + web.QUEUE_FACTOR
    flood: list[tuple[int, float]] = []
    threads = [
        threading.Thread(target=lambda: flood.append(_get_from(server.port, "/slow", "127.0.0.2")))
        for _ in range(capacity)
    ]
    for t in threads:
        t.start()
    _wait_for(lambda: server._state.in_flight + server._state.queued == capacity // 2)
    _wait_for(lambda: len(flood) == capacity - capacity // 2)  # the rest: 503 at once
    assert {status for status, _ in flood} == {503}
    scrape: list[tuple[int, float]] = []
    scraper = threading.Thread(
        target=lambda: scrape.append(_get_from(server.port, "/", "127.0.0.3"))
    )
    scraper.start()
    _wait_for(lambda: server._state.queued == capacity // 2)  # queued, not refused
    gate.release(capacity)
    scraper.join(10)
    for t in threads:
        t.join(10)
    assert [status for status, _ in scrape] == [200]
    assert sorted(status for status, _ in flood) == [200] * (capacity // 2) + [503] * (
        capacity - capacity // 2
    )
    assert server.overloaded_requests == capacity - capacity // 2


def test_a_scrape_gets_the_next_free_slot_before_a_flood_s_queue() -> None:
    """Two slots, both running the flood's requests and three more of them queued: the next
    slot that frees goes to the scrape (nothing running), not to the flood's queued requests.
    Before, slots went first come first served and the scrape waited for all three."""
    gate = threading.Semaphore(0)

    def slow(_: Request) -> Response:
        gate.acquire(timeout=10)
        return Response(200, b"done\n")

    routes = {"/slow": slow, "/": lambda _r: Response(200, b"ok\n")}
    server = web.WebServer("127.0.0.1:0", routes, max_in_flight=2).start()
    flood: list[tuple[int, float]] = []
    threads = [
        threading.Thread(target=lambda: flood.append(_get_from(server.port, "/slow", "127.0.0.2")))
        for _ in range(5)
    ]
    try:
        for t in threads:
            t.start()
        _wait_for(lambda: server._state.in_flight == 2 and server._state.queued == 3)
        scrape: list[tuple[int, float]] = []
        scraper = threading.Thread(
            target=lambda: scrape.append(_get_from(server.port, "/", "127.0.0.3"))
        )
        scraper.start()
        _wait_for(lambda: server._state.queued == 4)
        gate.release()  # one flood request ends: one slot frees
        scraper.join(5)
        assert [status for status, _ in scrape] == [200]
        # The freed flood request's answer may reach its client thread after the scrape's (a
        # loaded CI machine saw 0): wait for it, then none of the other four may have come.
        _wait_for(lambda: len(flood) >= 1)
        time.sleep(0.2)
        assert len(flood) == 1  # the other four still wait for the gate
    finally:
        gate.release(10)
        for t in threads:
            t.join(10)
        server.shutdown()
    assert [status for status, _ in flood] == [200] * 5


# -- item: password guessing ---------------------------------------------------------------------


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_failed_logins_never_evict_a_good_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """A guesser's failures fill their own bounded cache; the scraper's good login stays cached
    (answered without bcrypt). Before, one LRU held both and 1,024 guesses evicted it."""
    monkeypatch.setattr(BasicAuth, "CACHE_SIZE", 8)
    auth = BasicAuth({"prometheus": bcrypt.hashpw(b"right", bcrypt.gensalt(rounds=4)).decode()})
    good = _basic("prometheus", "right")
    assert auth.check(good) == "prometheus"
    for i in range(3 * BasicAuth.CACHE_SIZE):
        assert auth.check(_basic("prometheus", f"guess-{i}")) is None
        assert auth.check(_basic(f"nobody-{i}", "x")) is None
    assert auth.check_cached(good) == (True, "prometheus")
    calls = auth.bcrypt_calls
    last_guess = _basic("prometheus", f"guess-{3 * BasicAuth.CACHE_SIZE - 1}")
    assert auth.check_cached(last_guess) == (True, None)  # failures are cached too
    assert auth.check(good) == "prometheus" and auth.bcrypt_calls == calls
    assert auth.check_cached(_basic("prometheus", "guess-0")) == (False, None)  # bounded
    assert len(auth._bad) <= BasicAuth.CACHE_SIZE and len(auth._good) == 1


def test_a_reload_keeps_both_caches(monkeypatch: pytest.MonkeyPatch) -> None:
    hashed = bcrypt.hashpw(b"right", bcrypt.gensalt(rounds=4)).decode()
    auth = BasicAuth({"prometheus": hashed})
    auth.check(_basic("prometheus", "right"))
    auth.check(_basic("prometheus", "wrong"))
    reloaded = BasicAuth({"prometheus": hashed}, auth)
    assert reloaded.check_cached(_basic("prometheus", "right")) == (True, "prometheus")
    assert reloaded.check_cached(_basic("prometheus", "wrong")) == (True, None)


def test_a_guesser_on_another_address_leaves_bcrypt_places_for_a_first_login(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A scraper's first login (not cached yet) needs a bcrypt place. Before, 40 guessers from
    one other address held all 16 and the login got 503 "too many authentication attempts"
    until a guess freed one; now an address holds at most its share (half the places alone), so
    the newcomer's check is queued and answered 200. bcrypt is slowed to 0.1 s a check (a cost
    4 hash plus a sleep) so that the guesses keep the places full without burning the CPU."""
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.2", 0))
        except OSError:
            pytest.skip("127.0.0.2 is not a local address here")
    real_check = BasicAuth.check

    def slow_check(self: BasicAuth, authorization: str | None) -> str | None:
        time.sleep(0.1)
        return real_check(self, authorization)

    monkeypatch.setattr(BasicAuth, "check", slow_check)
    config = tmp_path / "web.yml"
    hashed = bcrypt.hashpw(b"right", bcrypt.gensalt(rounds=4)).decode()
    config.write_text(f"basic_auth_users:\n  prometheus: '{hashed}'\n")
    server = web.WebServer(
        "127.0.0.1:0", {"/": lambda _r: Response(200, b"ok\n")}, web_config=config
    ).start()
    stop = threading.Event()
    guesses: list[int] = []

    def guess(n: int) -> None:
        i = 0
        while not stop.is_set():
            i += 1
            conn = http.client.HTTPConnection(
                "127.0.0.1", server.port, timeout=10, source_address=("127.0.0.2", 0)
            )
            try:
                conn.request(
                    "GET", "/", headers={"Authorization": _basic("prometheus", f"{n}-{i}")}
                )
                response = conn.getresponse()
                response.read()
                guesses.append(response.status)
            except (OSError, http.client.HTTPException):
                pass
            finally:
                conn.close()
            if guesses[-1:] == [503]:
                time.sleep(0.01)

    threads = [threading.Thread(target=guess, args=(n,), daemon=True) for n in range(40)]
    try:
        for thread in threads:
            thread.start()
        _wait_for(lambda: server._state.bcrypt.total >= web.MAX_AUTH_PENDING // 2)
        time.sleep(0.3)
        statuses = []
        for _ in range(3):  # the first login, then answered from the cache
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
            conn.request("GET", "/", headers={"Authorization": _basic("prometheus", "right")})
            statuses.append(conn.getresponse().status)
            conn.close()
        assert statuses == [200, 200, 200]
        assert 503 in guesses and 401 in guesses  # the guesser was held to its share
    finally:
        stop.set()
        for thread in threads:
            thread.join(10)
        server.shutdown()


# -- item: the defences in /metrics --------------------------------------------------------------


def _sample(body: str, name: str) -> float:
    for line in body.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in the exposition")


def test_server_counters_are_exported() -> None:
    registry = CollectorRegistry()
    routes = {"/metrics": web.metrics_handler(registry)}
    server = web.WebServer("127.0.0.1:0", routes, max_connections=2).start()
    registry.register(server.metrics_collector("probe"))
    silent = [
        socket.create_connection(("127.0.0.1", server.port)) for _ in range(3)
    ]  # the third evicts the first
    try:
        _wait_for(lambda: server.evicted_connections == 1)
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        conn.request("GET", "/metrics")  # evicts the second
        body = conn.getresponse().read().decode()
        conn.close()
    finally:
        for sock in silent:
            sock.close()
        server.shutdown()
    for name, kind, _help in SERVER_METRICS:
        assert f"# TYPE probe_{name} {kind}" in body, name
    assert _sample(body, "probe_http_connections_evicted_total") == 2
    assert _sample(body, "probe_http_connections_refused_total") == 0
    assert _sample(body, "probe_http_connections_open") == 2  # the scrape and one silent
