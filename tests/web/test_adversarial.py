"""Thousands of idle, slow and stalled connections against the real exporter and scorer.

Issue #19's bar: with 1,000 idle keep-alive connections, 200 slowloris clients and 200 stalled
TLS handshakes open at once, a legitimate scraper gets every one of 60 scrapes with p99 < 1 s; and
200 honest keep-alive scrapers at one scrape a second lose none. The attackers run on an asyncio
loop in this process (127.0.0.1 only); the servers are the installed commands, with TLS and basic
auth, as an operator would run them.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import http.client
import resource
import shutil
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import pytest

from gpu_health import stack
from tests.web.test_security_tls import Pki, _client_ctx, _tls_config, make_pki

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl CLI missing"),
]

PASSWORD = "adversarial-pw"
AUTH = "Basic " + base64.b64encode(f"prometheus:{PASSWORD}".encode()).decode()
IDLE, SLOWLORIS, STALLED_TLS = 1000, 200, 200
COMMANDS = {
    "exporter": (["gpu-health-exporter", "--backend", "sim", "--sim-gpus", "8"], "/metrics"),
    "scorer": (
        ["gpu-health-scorer", "serve", "--prometheus.url", "http://127.0.0.1:9", "--no-econ"],
        "/api/v1/gpus",
    ),
}
#: A ClientHello record header and the start of its body, then silence: a stalled handshake.
PARTIAL_CLIENT_HELLO = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"


@pytest.fixture(scope="module", autouse=True)
def _enough_file_descriptors() -> Iterator[None]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = (IDLE + SLOWLORIS + STALLED_TLS) * 2 + 512
    if hard != resource.RLIM_INFINITY and hard < need:
        pytest.skip(f"needs {need} file descriptors, the hard limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, need), hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def _start(name: str, pki: Pki, tmp_path: Path) -> tuple[subprocess.Popen[bytes], int, Path]:
    argv, _ = COMMANDS[name]
    exe = shutil.which(argv[0], path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.skip(f"{argv[0]} not installed")
    config = tmp_path / "web.yml"
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=10)).decode()
    config.write_text(_tls_config(pki) + f"basic_auth_users:\n  prometheus: '{hashed}'\n")
    port = stack.free_port()
    log = tmp_path / f"{name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                exe,
                *argv[1:],
                "--web.listen-address",
                f"127.0.0.1:{port}",
                "--web.config.file",
                str(config),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return proc, port, log


def _scrape(port: int, path: str, ctx: ssl.SSLContext) -> tuple[int, float]:
    """One scrape on a new connection (handshake included): status and seconds."""
    started = time.monotonic()
    conn = http.client.HTTPSConnection("localhost", port, timeout=10, context=ctx)
    try:
        conn.request("GET", path, headers={"Authorization": AUTH, "Accept-Encoding": "gzip"})
        resp = conn.getresponse()
        resp.read()
        return resp.status, time.monotonic() - started
    finally:
        conn.close()


def _wait_ready(
    proc: subprocess.Popen[bytes], port: int, path: str, ctx: ssl.SSLContext, log: Path
) -> None:
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None, log.read_text()
        with contextlib.suppress(OSError, http.client.HTTPException):
            if _scrape(port, path, ctx)[0] == 200:
                return
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.3)


class Attack:
    """Idle keep-alive, slowloris and stalled-handshake connections, held on one event loop."""

    def __init__(self, port: int, path: str, ctx: ssl.SSLContext) -> None:
        self.port, self.path, self.ctx = port, path, ctx
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.stop = asyncio.Event()
        self.idle_open = 0
        self.tasks: list[asyncio.Task[None]] = []

    async def _idle(self) -> None:
        """One authenticated request, then hold the keep-alive connection (reopen if evicted)."""
        while not self.stop.is_set():
            with contextlib.suppress(OSError, asyncio.IncompleteReadError, ssl.SSLError):
                reader, writer = await asyncio.open_connection(
                    "127.0.0.1", self.port, ssl=self.ctx, server_hostname="localhost"
                )
                writer.write(
                    f"GET /healthz HTTP/1.1\r\nHost: x\r\nAuthorization: {AUTH}\r\n\r\n".encode()
                )
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                await reader.readexactly(length)
                self.idle_open += 1
                try:
                    await reader.read(1)  # held until the server closes it
                finally:
                    self.idle_open -= 1
                    writer.close()
            await asyncio.sleep(0.5)

    async def _slowloris(self) -> None:
        """A TLS client dripping one header byte every 2 s (reconnecting when cut off)."""
        while not self.stop.is_set():
            with contextlib.suppress(OSError, ssl.SSLError, asyncio.IncompleteReadError):
                _, writer = await asyncio.open_connection(
                    "127.0.0.1", self.port, ssl=self.ctx, server_hostname="localhost"
                )
                writer.write(b"GET / HTTP/1.1\r\nX-Slow: ")
                while not self.stop.is_set() and not writer.is_closing():
                    writer.write(b"a")
                    await writer.drain()
                    await asyncio.sleep(2)
                writer.close()
            await asyncio.sleep(0.2)

    async def _stalled_tls(self) -> None:
        """The start of a ClientHello, then nothing (reconnecting when cut off)."""
        while not self.stop.is_set():
            with contextlib.suppress(OSError, asyncio.IncompleteReadError):
                reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
                writer.write(PARTIAL_CLIENT_HELLO)
                await reader.read(1)
                writer.close()
            await asyncio.sleep(0.2)

    async def _launch(self) -> None:
        for coro, count in ((self._stalled_tls, STALLED_TLS), (self._slowloris, SLOWLORIS)):
            self.tasks += [asyncio.create_task(coro()) for _ in range(count)]
        for _ in range(IDLE):
            self.tasks.append(asyncio.create_task(self._idle()))
            await asyncio.sleep(0.001)

    def __enter__(self) -> Attack:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._launch(), self.loop).result(30)
        deadline = time.monotonic() + 40
        while self.idle_open < IDLE * 0.95 and time.monotonic() < deadline:
            time.sleep(0.2)
        return self

    def __exit__(self, *_: object) -> None:
        async def end() -> None:
            self.stop.set()
            for task in self.tasks:
                task.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(end(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.mark.parametrize("name", list(COMMANDS))
def test_legitimate_scraper_is_never_locked_out(name: str, pki: Pki, tmp_path: Path) -> None:
    ctx = _client_ctx(pki)
    path = COMMANDS[name][1]
    proc, port, log = _start(name, pki, tmp_path)
    try:
        _wait_ready(proc, port, path, ctx, log)
        attack_ctx = _client_ctx(pki)
        with Attack(port, path, attack_ctx) as attack:
            assert attack.idle_open >= IDLE * 0.95, f"only {attack.idle_open} idle connections held"
            results = []
            for _ in range(60):
                try:
                    results.append(_scrape(port, path, ctx))
                except (OSError, http.client.HTTPException) as exc:
                    results.append((0, float("inf")))
                    print("scrape failed:", exc)
                time.sleep(0.1)
            held = attack.idle_open
        ok = [seconds for status, seconds in results if status == 200]
        p99 = sorted(seconds for _, seconds in results)[int(len(results) * 0.99) - 1]
        print(f"{name}: {len(ok)}/60 scrapes ok, p99 {p99:.3f} s, {held} idle connections held")
        assert len(ok) == 60, [status for status, _ in results]
        assert p99 < 1.0
        assert proc.poll() is None, log.read_text()
    finally:
        stack.stop_process(proc)


def test_200_honest_keep_alive_scrapers_lose_nothing(pki: Pki, tmp_path: Path) -> None:
    ctx = _client_ctx(pki)
    proc, port, log = _start("exporter", pki, tmp_path)
    rounds, scrapers = 10, 200
    outcomes: list[int] = []
    try:
        _wait_ready(proc, port, "/metrics", ctx, log)

        async def scraper(offset: float) -> None:
            await asyncio.sleep(offset)
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, ssl=ctx, server_hostname="localhost"
            )
            try:
                for _ in range(rounds):
                    started = time.monotonic()
                    writer.write(
                        f"GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: {AUTH}\r\n"
                        "Accept-Encoding: gzip\r\n\r\n".encode()
                    )
                    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
                    length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                    await reader.readexactly(length)
                    outcomes.append(int(head.split(b" ")[1]))
                    await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - started)))
            except (OSError, asyncio.IncompleteReadError, TimeoutError, ssl.SSLError):
                outcomes.append(0)
            finally:
                writer.close()

        async def all_scrapers() -> None:
            await asyncio.gather(*(scraper(i / scrapers) for i in range(scrapers)))

        asyncio.run(all_scrapers())
        lost = sum(status != 200 for status in outcomes)
        from collections import Counter

        print(f"{len(outcomes)} scrapes, {lost} lost", Counter(outcomes))
        assert len(outcomes) == rounds * scrapers and lost == 0
    finally:
        stack.stop_process(proc)
