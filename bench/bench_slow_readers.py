"""The exporter's web server under slow readers: scrapes answered and memory, against a baseline.

docs/reliability.md reports what clients that take their answers slowly, or never, do to a real
exporter at a small connection cap: whether a scraper's scrapes are still answered, and how much
memory the exporter holds. This bench is that measurement as a command.

Each scenario starts a fresh ``gpu-health-exporter --backend sim --sim-gpus GPUS`` on a free
127.0.0.1 port, under a file descriptor limit of ``--fd-limit`` (soft and hard, as ``ulimit -n``
sets them; the exporter has no flag for its connection cap, which is the limit less the 128
descriptors it keeps for other files, at most 4096: 400 gives 272 places). ``--clients`` clients
then connect from 16 loopback addresses (127.0.0.2-127.0.0.17, so the scraper on 127.0.0.1 is
its own client to the server's per-address eviction), each with a ``--rcvbuf`` receive buffer
(4 KiB) and 1448-byte segments, and send ``GET /metrics`` without ``Accept-Encoding`` (the plain
answer, 2 MB for 64 GPUs). A reading client reads in turns of 0.25 s, at most a quarter of
``--rate`` bytes in each (what it takes is reported beside what it was set), and asks again on
the same connection when an answer is complete (a turn later after an answer other than 200,
such as a 503); cut off (closed at accept, or evicted), it reconnects a turn later. With a rate
of 0 a client never reads: it reconnects a turn after it sees its connection closed, and every
``--wave`` seconds all of them drop their connections and connect again (a fresh wave; an
evicted client with data still queued towards it cannot tell it was evicted). The clients run in
a process of their own, so their work does not share the scraper's interpreter.

``--warmup`` seconds after the clients start, a scraper asks for ``/metrics`` gzipped (as
Prometheus does) on a new connection once a second for ``--seconds`` seconds, each scrape
bounded by Prometheus' default scrape timeout of 10 s: a scrape is answered when it gets a 200
with the exporter's series within that (a scrape not answered is timed from the clients' start,
in ``scrape_errors_at``). The exporter's RSS and open descriptors are sampled from /proc every
0.2 s; its peak (VmHWM) is read at the end, and its connection counters from the last answered
scrape.

The *baseline* scenario runs first, in the same run and the same way with no clients; the
others report their p50 and p95 scrape latency and their share of scrapes answered as ratios to
it, so the ratios mean the same on a laptop and on a loaded CI runner. Exit status 1 if the
baseline lost a scrape (the exporter, not the load, is broken then).

Usage::

    .venv/bin/python bench/bench_slow_readers.py                 # 16 GPUs, 300 clients, ~1 min
    .venv/bin/python bench/bench_slow_readers.py --gpus 64 --clients 300 --rate 21000,0 \\
        --seconds 40 --warmup 10 --json slow-readers.json       # docs/reliability.md's sizes
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gzip
import http.client
import json
import os
import resource
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from load_scrape import percentile  # bench/ is on the path: this script's folder

from gpu_health import stack
from gpu_health.web.server import FD_RESERVE, MAX_CONNECTIONS

#: Prometheus' default scrape_timeout: a scrape taking longer is not answered.
SCRAPE_TIMEOUT = 10.0
#: Seconds the exporter has to answer its first /metrics.
READY_TIMEOUT = 60.0
#: How often the exporter's RSS and descriptors are sampled.
SAMPLE_SECONDS = 0.2
#: A reading client's turn: it reads at most rate x turn bytes in each.
TURN_SECONDS = 0.25
#: The clients' receive buffer and segment size (a small window, as on a real path: on loopback
#: with default buffers the kernel would take a whole answer at once).
RCVBUF = 4096
MSS = 1448
#: Loopback addresses the clients connect from (127.0.0.2 onwards).
CLIENT_ADDRESSES = 16
MAX_CLIENTS = 5000
MAX_SECONDS = 900.0
#: The exporter's counters read from each answered scrape.
COUNTERS = {
    "evicted": "gpu_exporter_http_connections_evicted_total",
    "refused": "gpu_exporter_http_connections_refused_total",
    "open": "gpu_exporter_http_connections_open",
}
TCP_ESTABLISHED = 1


def _rates(text: str) -> list[int]:
    try:
        values = [int(float(part)) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of bytes/s: {text!r}") from None
    if not values or any(v < 0 for v in values):
        raise argparse.ArgumentTypeError(f"bytes/s must be 0 or more: {text!r}")
    return values


def _counts(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of counts: {text!r}") from None
    if not values or any(not 1 <= v <= MAX_CLIENTS for v in values):
        raise argparse.ArgumentTypeError(f"clients must be 1..{MAX_CLIENTS}: {text!r}")
    return values


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Scenarios: baseline (no clients), then every --clients x --rate pair, each on a "
        "fresh exporter. Read docs/reliability.md for what was measured by hand and with this.",
    )
    parser.add_argument(
        "--gpus", type=int, default=16,
        help="simulated GPUs (/metrics is ~32 KB plain per GPU; 64 GPUs: 2.05 MB plain, "
        "115 KB gzipped) (default: %(default)s)",
    )  # fmt: skip
    parser.add_argument(
        "--clients", type=_counts, default=[300], metavar="N[,N...]",
        help="slow clients per scenario; a list runs one scenario per value (default: 300)",
    )  # fmt: skip
    parser.add_argument(
        "--rate", type=_rates, default=[21000, 0], metavar="BYTES_PER_S[,...]",
        help="what each client reads per second at most; 0 = never reads; a list runs one "
        "scenario per value (default: 21000,0)",
    )  # fmt: skip
    parser.add_argument(
        "--seconds", type=float, default=12.0,
        help="seconds of scraping per scenario, one scrape a second (default: %(default)s)",
    )  # fmt: skip
    parser.add_argument(
        "--warmup", type=float, default=5.0,
        help="seconds between the clients' start and the first scrape (the hand measurement "
        "waited 10) (default: %(default)s)",
    )  # fmt: skip
    parser.add_argument(
        "--fd-limit", type=int, default=400,
        help="the exporter's file descriptor limit (soft and hard, as `ulimit -n`); its "
        f"connection cap is this less {FD_RESERVE}, at most {MAX_CONNECTIONS} "
        "(default: %(default)s, a cap of 272)",
    )  # fmt: skip
    parser.add_argument(
        "--wave", type=float, default=10.0,
        help="seconds between fresh waves of clients that never read (0 = one wave) "
        "(default: %(default)s)",
    )  # fmt: skip
    parser.add_argument(
        "--rcvbuf", type=int, default=RCVBUF,
        help="each client's SO_RCVBUF in bytes (the kernel doubles it); the hand measurements "
        "in docs/reliability.md had 4096 for readers, 1024 for clients that never read "
        "(default: %(default)s)",
    )  # fmt: skip
    parser.add_argument("--json", type=Path, metavar="OUT", help="also write the results here")
    parser.add_argument("--run-clients", metavar="CONFIG", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.run_clients is None:
        if not 1 <= args.gpus <= 4096:
            parser.error("--gpus 1..4096")
        if not 0 < args.seconds <= MAX_SECONDS or not 0 <= args.warmup <= MAX_SECONDS:
            parser.error(f"--seconds 0..{MAX_SECONDS:.0f}, --warmup 0..{MAX_SECONDS:.0f}")
        if args.fd_limit <= FD_RESERVE:
            parser.error(f"--fd-limit must be over {FD_RESERVE}")
        if args.wave < 0 or args.rcvbuf < 1:
            parser.error("--wave must be 0 or more, --rcvbuf 1 or more")
    return args


# ---------------------------------------------------------------- the clients (own process)


@dataclass
class ClientStats:
    connects: int = 0
    connect_errors: int = 0
    cut_off: int = 0
    answers: int = 0
    wave_reconnects: int = 0
    statuses: dict[str, int] = field(default_factory=dict)  # of the answers completed
    bytes_read: list[int] = field(default_factory=list)
    seconds: float = 0.0


class _Clients:
    """``clients`` connections to ``port``, reading at ``rate`` or never, until ``until``
    (``time.monotonic``, which every process on the machine shares)."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.port = int(config["port"])
        self.clients = int(config["clients"])
        self.rate = int(config["rate"])
        self.wave = float(config["wave"])
        self.rcvbuf = int(config["rcvbuf"])
        self.until = float(config["until"])
        self.started = time.monotonic()
        self.request = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        self.stats = ClientStats(bytes_read=[0] * self.clients)

    def _left(self) -> float:
        return self.until - time.monotonic()

    def _socket(self, index: int) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, MSS)
        # Closed with a reset: nothing left in TIME_WAIT on the 16 addresses' ports.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.setblocking(False)
        sock.bind((f"127.0.0.{2 + index % CLIENT_ADDRESSES}", 0))
        return sock

    async def client(self, index: int) -> None:
        loop = asyncio.get_running_loop()
        while self._left() > 0:
            sock = self._socket(index)
            try:
                try:
                    async with asyncio.timeout(min(SCRAPE_TIMEOUT, self._left())):
                        await loop.sock_connect(sock, ("127.0.0.1", self.port))
                        await loop.sock_sendall(sock, self.request)
                except (OSError, TimeoutError):
                    self.stats.connect_errors += 1
                    await asyncio.sleep(min(TURN_SECONDS, max(0.0, self._left())))
                    continue
                self.stats.connects += 1
                try:
                    if self.rate:
                        cut_off = await self._read(sock, index)
                    else:
                        cut_off = await self._hold(sock)
                except OSError:
                    cut_off = True
            finally:
                sock.close()
            if cut_off:  # one turn before reconnecting, as a client would back off
                self.stats.cut_off += 1
                await asyncio.sleep(min(TURN_SECONDS, max(0.0, self._left())))

    async def _hold(self, sock: socket.socket) -> bool:
        """Never read; return when the connection is seen closed (True), or at the next wave."""
        if self.wave > 0:
            waves_so_far = int((time.monotonic() - self.started) / self.wave) + 1
            next_wave = self.started + waves_so_far * self.wave
        else:
            next_wave = self.until
        while time.monotonic() < min(next_wave, self.until):
            await asyncio.sleep(min(TURN_SECONDS, max(0.0, self._left())))
            state = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0]
            if state != TCP_ESTABLISHED:
                return True
        if time.monotonic() < self.until:
            self.stats.wave_reconnects += 1
        return False

    async def _read(self, sock: socket.socket, index: int) -> bool:
        """Read at most rate x turn bytes a turn; ask again when an answer is complete.
        True when the server closed the connection (refused at accept, evicted, or done)."""
        loop = asyncio.get_running_loop()
        head = bytearray()
        remaining: float | None = None  # body bytes left; None while in the head
        status = ""
        per_turn = max(1, int(self.rate * TURN_SECONDS))
        while self._left() > 0:
            turn_end = time.monotonic() + TURN_SECONDS
            budget = per_turn
            while budget > 0 and (left := turn_end - time.monotonic()) > 0:
                try:
                    async with asyncio.timeout(left):
                        data = await loop.sock_recv(sock, min(budget, 65536))
                except TimeoutError:
                    break
                if not data:
                    return True
                budget -= len(data)
                self.stats.bytes_read[index] += len(data)
                if remaining is None:
                    head += data
                    end = head.find(b"\r\n\r\n")
                    if end < 0:
                        if len(head) > 65536:
                            return True
                        continue
                    status = bytes(head[:end]).split(b" ", 2)[1].decode(errors="replace")
                    remaining = _content_length(bytes(head[:end])) - (len(head) - end - 4)
                    head.clear()
                else:
                    remaining -= len(data)
                if remaining <= 0:
                    self.stats.answers += 1
                    self.stats.statuses[status] = self.stats.statuses.get(status, 0) + 1
                    remaining = None
                    if status != "200":  # a 503 says Retry-After: 1; wait a turn at least
                        await asyncio.sleep(min(TURN_SECONDS, max(0.0, self._left())))
                    async with asyncio.timeout(max(0.01, min(SCRAPE_TIMEOUT, self._left()))):
                        await loop.sock_sendall(sock, self.request)
            await asyncio.sleep(max(0.0, min(turn_end, self.until) - time.monotonic()))
        return False

    async def run(self) -> ClientStats:
        tasks = [asyncio.create_task(self.client(i)) for i in range(self.clients)]
        _done, pending = await asyncio.wait(tasks, timeout=max(0.0, self._left()) + 5.0)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        self.stats.seconds = time.monotonic() - self.started
        return self.stats


def _content_length(head: bytes) -> float:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            with contextlib.suppress(ValueError):
                return int(value.strip())
    return float("inf")  # read until the server closes


def run_clients(config_text: str) -> int:
    """The clients' process: run them, then print their numbers as JSON on stdout."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    stats = asyncio.run(_Clients(json.loads(config_text)).run())
    print(json.dumps(asdict(stats)))
    return 0


# ---------------------------------------------------------------- the bench


@dataclass
class Scenario:
    name: str
    clients: int
    rate_set: int | None  # bytes/s; 0 never reads; None for the baseline
    rate_taken_mean: float | None = None  # bytes/s a client read over the run, on average
    rate_taken_p10: float | None = None
    rate_taken_p90: float | None = None
    client_connects: int = 0
    client_connect_errors: int = 0
    client_cut_off: int = 0
    client_answers: int = 0
    client_wave_reconnects: int = 0
    client_statuses: dict[str, int] = field(default_factory=dict)
    scrapes_asked: int = 0
    scrapes_answered: int = 0
    scrape_errors: dict[str, int] = field(default_factory=dict)
    scrape_errors_at: list[float] = field(default_factory=list)  # s since the clients started
    p50_ms: float | None = None
    p95_ms: float | None = None
    max_ms: float | None = None
    rss_start_mb: float | None = None
    rss_peak_mb: float | None = None  # the highest 0.2 s sample of VmRSS
    vmhwm_mb: float | None = None  # the kernel's peak, read at the end
    fds_peak: int | None = None
    evicted_total: float | None = None  # from the last answered scrape
    refused_total: float | None = None
    open_connections_peak: float | None = None
    exporter_exit: int | None = None  # its exit status if it died during the scenario
    p50_ratio: float | None = None
    p95_ratio: float | None = None
    answered_ratio: float | None = None


def _limit_fds(limit: int) -> Callable[[], None]:
    def apply() -> None:  # in the child, before exec: what `ulimit -n` does
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

    return apply


def exporter_command(gpus: int, port: int) -> list[str]:
    exe = shutil.which("gpu-health-exporter", path=str(Path(sys.executable).parent))
    base = [exe] if exe else [sys.executable, "-m", "gpu_health.exporter.cli"]
    return [*base, "--backend", "sim", "--sim-gpus", str(gpus),
            "--web.listen-address", f"127.0.0.1:{port}", "--log.level", "warning"]  # fmt: skip


def _stop(proc: subprocess.Popen[Any] | None, grace: float = 10.0) -> None:
    """Terminate ``proc``'s session (it was started in one), then kill it if it lingers."""
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


def fetch(port: int, gzipped: bool, timeout: float = SCRAPE_TIMEOUT) -> tuple[int, bytes, int]:
    """One ``/metrics`` on a new connection: status, body (decompressed), bytes on the wire."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        headers = {"Accept": "text/plain;version=0.0.4"}
        if gzipped:
            headers["Accept-Encoding"] = "gzip"
        conn.request("GET", "/metrics", headers=headers)
        resp = conn.getresponse()
        body = resp.read()
        wire = len(body)
        if resp.getheader("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        return resp.status, body, wire
    finally:
        conn.close()


def wait_ready(port: int, proc: subprocess.Popen[Any], log: IO[bytes]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log.seek(0)
            tail = log.read()[-2000:].decode(errors="replace")
            raise SystemExit(f"exporter exited with code {proc.returncode}: {tail}")
        with contextlib.suppress(OSError, http.client.HTTPException):
            if fetch(port, True, timeout=5)[0] == 200:
                return
        time.sleep(0.2)
    raise SystemExit(f"exporter not ready on port {port} after {READY_TIMEOUT:.0f} s")


class Sampler:
    """The exporter's VmRSS and open descriptors every 0.2 s, in a thread."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.rss_kb: list[int] = []
        self.fds: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sampler", daemon=True)

    def _status(self, key: str) -> int | None:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith(key + ":"):
                    return int(line.split()[1])
        return None

    def sample(self) -> None:
        rss = self._status("VmRSS")
        if rss is not None:
            self.rss_kb.append(rss)
        with contextlib.suppress(OSError):
            self.fds.append(len(os.listdir(f"/proc/{self.pid}/fd")))

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_SECONDS):
            self.sample()

    def start(self) -> Sampler:
        self.sample()
        self._thread.start()
        return self

    def stop(self) -> int | None:
        """Stop sampling; the exporter's VmHWM (kB) now."""
        self._stop.set()
        self._thread.join(timeout=5)
        self.sample()
        return self._status("VmHWM")


def _counter(body: bytes, name: str) -> float | None:
    prefix = name.encode()
    for line in body.splitlines():
        if line.startswith(prefix) and line[len(prefix) : len(prefix) + 1] in (b" ", b"{"):
            with contextlib.suppress(ValueError):
                return float(line.rsplit(b" ", 1)[1])
    return None


def scrape(
    port: int, seconds: float, into: Scenario, alive: Callable[[], bool], since: float
) -> None:
    """Once a second for ``seconds`` (a scrape still running when the next is due delays it):
    ``/metrics`` gzipped on a new connection; answered = a 200 with the series in 10 s."""
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    opened: list[float] = []
    start = time.monotonic()
    next_at = start
    while next_at < start + seconds:
        time.sleep(max(0.0, next_at - time.monotonic()))
        if not alive():
            break
        into.scrapes_asked += 1
        began = time.perf_counter()
        failed = True
        try:
            status, body, _ = fetch(port, True)
            took = time.perf_counter() - began
            if status != 200:
                errors[f"HTTP {status}"] += 1
            elif b"gpu_" not in body:
                errors["no series"] += 1
            elif took > SCRAPE_TIMEOUT:
                errors["over 10 s"] += 1
            else:
                latencies.append(took * 1000)
                failed = False
                into.evicted_total = _counter(body, COUNTERS["evicted"])
                into.refused_total = _counter(body, COUNTERS["refused"])
                now_open = _counter(body, COUNTERS["open"])
                if now_open is not None:
                    opened.append(now_open)
        except (OSError, http.client.HTTPException, EOFError) as exc:
            errors[type(exc).__name__] += 1
        if failed:
            into.scrape_errors_at.append(round(time.monotonic() - since, 1))
        next_at = max(next_at + 1.0, time.monotonic())
    into.scrapes_answered = len(latencies)
    into.scrape_errors = dict(errors)
    into.p50_ms = _round(percentile(latencies, 0.50)) if latencies else None
    into.p95_ms = _round(percentile(latencies, 0.95)) if latencies else None
    into.max_ms = _round(max(latencies, default=None) if latencies else None)
    into.open_connections_peak = max(opened, default=None)


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


def run_scenario(
    args: argparse.Namespace, name: str, clients: int, rate: int | None, sizes: dict[str, int]
) -> Scenario:
    result = Scenario(name, clients, rate)
    port = stack.free_port()
    clients_proc: subprocess.Popen[str] | None = None
    with tempfile.TemporaryFile() as log:
        exporter = subprocess.Popen(
            exporter_command(args.gpus, port),
            stdout=subprocess.DEVNULL, stderr=log, stdin=subprocess.DEVNULL,
            preexec_fn=_limit_fds(args.fd_limit), start_new_session=True,
        )  # fmt: skip
        try:
            wait_ready(port, exporter, log)
            if not sizes:
                status, _plain, wire = fetch(port, False)
                sizes["plain_bytes"] = wire if status == 200 else 0
                sizes["gzip_bytes"] = fetch(port, True)[2]
            sampler = Sampler(exporter.pid).start()
            started = time.monotonic()
            until = started + args.warmup + args.seconds
            if clients:
                config = {"port": port, "clients": clients, "rate": rate, "wave": args.wave,
                          "rcvbuf": args.rcvbuf, "until": until}  # fmt: skip
                clients_proc = subprocess.Popen(
                    [sys.executable, __file__, "--run-clients", json.dumps(config)],
                    stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
                    start_new_session=True,
                )  # fmt: skip
            rss = sampler.rss_kb[0] if sampler.rss_kb else None
            result.rss_start_mb = _round(rss / 1024 if rss is not None else None)
            time.sleep(args.warmup)
            scrape(port, args.seconds, result, lambda: exporter.poll() is None, started)
            if clients_proc is not None:
                try:
                    out, _ = clients_proc.communicate(
                        timeout=max(0.0, until - time.monotonic()) + 20
                    )
                except subprocess.TimeoutExpired:
                    _stop(clients_proc)
                    out = ""
                if out.strip():
                    _client_numbers(result, ClientStats(**json.loads(out.splitlines()[-1])))
            hwm = sampler.stop()
            result.vmhwm_mb = _round(hwm / 1024 if hwm is not None else None)
            result.rss_peak_mb = _round(max(sampler.rss_kb, default=0) / 1024)
            result.fds_peak = max(sampler.fds, default=None)
            result.exporter_exit = exporter.poll()
        finally:
            _stop(clients_proc)
            _stop(exporter)
    return result


def _client_numbers(result: Scenario, stats: ClientStats) -> None:
    result.client_connects = stats.connects
    result.client_connect_errors = stats.connect_errors
    result.client_cut_off = stats.cut_off
    result.client_answers = stats.answers
    result.client_wave_reconnects = stats.wave_reconnects
    result.client_statuses = stats.statuses
    if stats.seconds > 0 and stats.bytes_read:
        per_client = [b / stats.seconds for b in stats.bytes_read]
        result.rate_taken_mean = _round(statistics.fmean(per_client), 0)
        result.rate_taken_p10 = _round(percentile(per_client, 0.10), 0)
        result.rate_taken_p90 = _round(percentile(per_client, 0.90), 0)


def add_ratios(scenarios: list[Scenario]) -> None:
    base = scenarios[0]
    base_share = base.scrapes_answered / base.scrapes_asked if base.scrapes_asked else 0.0
    for s in scenarios:
        if base.p50_ms and s.p50_ms is not None:
            s.p50_ratio = round(s.p50_ms / base.p50_ms, 2)
        if base.p95_ms and s.p95_ms is not None:
            s.p95_ratio = round(s.p95_ms / base.p95_ms, 2)
        if base_share and s.scrapes_asked:
            s.answered_ratio = round(s.scrapes_answered / s.scrapes_asked / base_share, 2)


def _cell(value: object) -> str:
    return "—" if value is None else str(value)


def table(scenarios: list[Scenario]) -> str:
    rows = [
        "| scenario | clients | rate set B/s | rate taken B/s (p10–p90) | scrapes 200 | p50 ms "
        "| p95 ms | RSS start → peak MB (VmHWM) | fds peak | evicted | p50, p95, answered "
        "× baseline |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in scenarios:
        taken = (
            "—" if s.rate_taken_mean is None
            else f"{s.rate_taken_mean:.0f} ({s.rate_taken_p10:.0f}–{s.rate_taken_p90:.0f})"
        )  # fmt: skip
        rss = f"{_cell(s.rss_start_mb)} → {_cell(s.rss_peak_mb)} ({_cell(s.vmhwm_mb)})"
        ratios = f"{_cell(s.p50_ratio)}, {_cell(s.p95_ratio)}, {_cell(s.answered_ratio)}"
        evicted = _cell(None if s.evicted_total is None else int(s.evicted_total))
        rows.append(
            f"| {s.name} | {s.clients} | {_cell(s.rate_set)} | {taken} "
            f"| {s.scrapes_answered}/{s.scrapes_asked} | {_cell(s.p50_ms)} | {_cell(s.p95_ms)} "
            f"| {rss} | {_cell(s.fds_peak)} | {evicted} | {ratios} |"
        )
    return "\n".join(rows)


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.run_clients is not None:
        return run_clients(args.run_clients)
    signal.signal(signal.SIGTERM, _interrupt)
    plan: list[tuple[str, int, int | None]] = [("baseline", 0, None)]
    for clients in args.clients:
        for rate in args.rate:
            plan.append(("never reads" if rate == 0 else "slow readers", clients, rate))
    cap = max(1, min(MAX_CONNECTIONS, args.fd_limit - FD_RESERVE))
    sizes: dict[str, int] = {}
    scenarios: list[Scenario] = []
    try:
        for name, clients, rate in plan:
            print(
                f"{name}: {clients} clients, rate {rate} B/s, {args.gpus} GPUs, cap {cap}, "
                f"{args.warmup:g} + {args.seconds:g} s ...",
                file=sys.stderr,
            )
            scenarios.append(run_scenario(args, name, clients, rate, sizes))
    except KeyboardInterrupt:
        print("interrupted; every process stopped", file=sys.stderr)
        return 130
    add_ratios(scenarios)
    result = {
        "gpus": args.gpus,
        "fd_limit": args.fd_limit,
        "connection_cap": cap,
        "answer_plain_bytes": sizes.get("plain_bytes"),
        "answer_gzip_bytes": sizes.get("gzip_bytes"),
        "seconds": args.seconds,
        "warmup": args.warmup,
        "wave": args.wave,
        "rcvbuf": args.rcvbuf,
        "cpus": os.cpu_count(),
        # Other work on the machine skews latency: record how busy it was (1-minute average).
        "loadavg_1m_end": round(os.getloadavg()[0], 2),
        "scenarios": [asdict(s) for s in scenarios],
    }
    print(
        f"{args.gpus} GPUs: /metrics {result['answer_plain_bytes']} B plain, "
        f"{result['answer_gzip_bytes']} B gzipped; connection cap {cap} (fd limit "
        f"{args.fd_limit}); clients' receive buffer {args.rcvbuf} B, waves every {args.wave:g} s; "
        f"load average {result['loadavg_1m_end']}"
    )
    print(table(scenarios))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    base = scenarios[0]
    return 0 if base.scrapes_answered == base.scrapes_asked > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
