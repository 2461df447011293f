"""The HTTP server both the exporter and the scorer use: a connection model that cannot be starved.

Why not ``prometheus_client.start_http_server``: we need our own routes (``/healthz``, a landing
page, the scorer's JSON API), bounded requests, clean shutdown on SIGTERM, and one place to apply
the exporter-toolkit web config (TLS, basic auth, headers: :mod:`gpu_health.web.config`).

Why an event loop (asyncio, standard library) and not a thread per connection: a metrics port is
reachable by anything on the node's network, and with a thread per connection a few hundred idle
keep-alive clients or stalled TLS handshakes hold every slot and lock Prometheus out. Here an open
connection costs a file descriptor and a small buffer, not a thread:

* idle keep-alive connections, TLS handshakes and request heads wait in the loop; only a request
  that passed parsing, auth and routing runs its handler, in a pool of ``max_in_flight`` threads
  (node_exporter's ``--web.max-requests``); up to :data:`QUEUE_FACTOR` times as many more wait
  their turn without a thread, and beyond that the answer is 503 at once;
* at most ``max_connections`` connections are open; when full, a connection waiting without a
  request being handled (an idle keep-alive one, or one still in its handshake or request head)
  is evicted to admit the new one. The victim is the oldest waiting connection *of the client
  address holding the most open connections* (fair share): one address that opens connections
  by the hundred and sends nothing evicts only its own once it holds the most, never a scraper's
  idle keep-alive connection, and a scraper's new connection is the newest of a smaller holder.
  Among addresses holding equally many (say one connection each, from many addresses) it is the
  oldest waiting connection, as before. With none waiting, an *unproven* connection (a request
  queued for a handler thread, or an answer no check has yet found its client taking) of the
  address holding the most is evicted if that address holds at least two more than the new
  one's: a wave of clients that ask for answers and take none cannot lock a scraper out before
  their writes are checked. The new connection is refused only when every connection is in a
  handler or sending an answer its client was found taking, or when the only unproven ones are
  of addresses holding about as many as its own;
* the TLS handshake plus the request head must arrive within :data:`REQUEST_TIMEOUT_SECONDS` *in
  total* (a slow-drip "slowloris" client is cut off), an idle keep-alive connection is closed after
  :data:`IDLE_TIMEOUT_SECONDS`, a response must be taken within :data:`WRITE_TIMEOUT_SECONDS`;
* a client that stops reading its answers, or reads them just fast enough, cannot hold the cap
  or memory: a write whose client took (acknowledged, not merely what the kernel buffered)
  fewer than :data:`STALL_MIN_BYTES` per :data:`STALL_SECONDS` since its last check (every half
  second for its first 2.5 s), or less than :data:`MIN_WRITE_RATE` on average from 2.5 s in, is
  *stalled* and may be evicted like a waiting connection (aborted, its buffer dropped),
  stalled writers hold at most :data:`MAX_STALLED_BYTES` in total, an answer is handed to the
  transport :data:`WRITE_CHUNK` bytes at a time as the client takes it (never copied whole per
  connection), and a closing connection still sending its last answer stays in the table
  (evictable) until it is gone, never lingering outside the cap;
* a 401 closes the connection (a password guesser reconnects, paying a handshake each time), and
  bcrypt checks that miss the cache run one at a time off the loop, :data:`MAX_AUTH_PENDING` at most
  waiting, so a password flood never delays a scraper whose credentials are cached;
* on a TLS port the first byte is peeked before the handshake: plain HTTP gets a 400 (as Go's
  net/http answers), and on a plain port a TLS ClientHello is closed at once.

Routes are exact paths mapped to handlers; only GET and HEAD are served (405 otherwise, after
auth). ``/metrics`` is gzipped when the scraper accepts it (Prometheus always does).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import heapq
import ipaddress
import itertools
import logging
import resource
import socket
import ssl
import struct
import termios
import threading
import traceback
import urllib.parse
from collections import OrderedDict, deque
from collections.abc import Hashable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from gpu_health.errors import UserError
from gpu_health.web import SERVER_METRICS
from gpu_health.web.live import ActiveWebConfig, WebConfigSource
from gpu_health.web.protocol import (
    MAX_HEADER_BYTES,
    BadHead,
    Handler,
    Headers,
    Request,
    RequestHead,
    Response,
    accepts_gzip,
    landing_page,
    metrics_handler,
    parse_listen_address,
    read_head,
    render_response,
)
from gpu_health.web.streams import (
    Closing,
    buffered,
    call_handler,
    lost,
    peek,
    refuse_plain_on_tls,
)
from gpu_health.web.tlscontext import peer_san_allowed

__all__ = [
    "Handler",
    "Headers",
    "Request",
    "Response",
    "WebServer",
    "accepts_gzip",
    "landing_page",
    "metrics_handler",
    "parse_listen_address",
]

log = logging.getLogger(__name__)

#: Seconds a client has, from connecting (or from the first byte of a keep-alive request), to
#: finish the TLS handshake and send the request line and headers.
REQUEST_TIMEOUT_SECONDS = 10.0
#: Seconds an idle keep-alive connection is kept open (Prometheus reuses it between scrapes).
IDLE_TIMEOUT_SECONDS = 120.0
#: Seconds a client has to take a response.
WRITE_TIMEOUT_SECONDS = 30.0
#: Seconds between checks of a write's progress (bytes its client acknowledged: see
#: :func:`unacknowledged`), after the first :data:`STALL_EARLY_CHECKS`, which come a quarter of
#: it apart. A write whose client took fewer than :data:`STALL_MIN_BYTES` per this many seconds
#: since the last check is stalled: evictable at the cap, and its buffer counted in
#: :data:`MAX_STALLED_BYTES`. Before, 272 clients that sent ``GET /metrics`` and never read held
#: a cap of 272 for the whole write timeout, every scrape refused, and could do it again at once.
#: The early checks are so that fresh clients of that kind are evictable within a second: the
#: first check can find a client that never reads taking what its own kernel buffers (2.9 KB
#: with a 4 KiB receive buffer), the second finds it stalled. Until a check finds an answer
#: taken at :data:`MIN_WRITE_RATE` it is *unproven*, evictable when nothing waits (see
#: ``_Loop._evict``).
STALL_SECONDS = 2.0
#: Checks of a write's progress a quarter of :data:`STALL_SECONDS` apart (0.5 s) before they
#: come every :data:`STALL_SECONDS`; the last of them, ``1.25 * STALL_SECONDS`` into the write
#: (as before), is the first to judge it against :data:`MIN_WRITE_RATE` too. Before, the second
#: check came at 2.5 s: a wave of 300 clients that never read, 4 KiB receive buffers, passed
#: the first check and held a cap of 272 until 2.5 s into their writes (docs/reliability.md).
STALL_EARLY_CHECKS = 5
#: Bytes a client must take per :data:`STALL_SECONDS` for its write to count as progressing
#: (2 KiB/s): a client reading a byte now and then is as stuck as one that never reads.
STALL_MIN_BYTES = 4096
#: Bytes a second a write must average, from its check ``1.25 * STALL_SECONDS`` into it on, for
#: its client to count as taking it; a slower one is stalled too. A client taking more
#: than :data:`STALL_MIN_BYTES` per check kept its place for the whole write timeout: 300 of them
#: reading ~21 KB/s each from an exporter of 64 simulated GPUs (2 MB answers) held its 272
#: places, and 7 of 40 scrapes got through (2026-12-07; docs/reliability.md). Stalled only
#: matters under pressure (evicted at the connection cap, aborted over :data:`MAX_STALLED_BYTES`),
#: and 64 KiB/s (512 kbit/s) is below what a scraper needs to take that answer within
#: :data:`WRITE_TIMEOUT_SECONDS`. Holding the cap now costs ``cap * MIN_WRITE_RATE`` of reading
#: (4096 places: 256 MiB/s).
MIN_WRITE_RATE = 64 << 10
#: Bytes of a body handed to a connection's transport at a time, and its buffer's high-water mark:
#: what a connection holds of an answer its client is not taking, beyond what the kernel took.
WRITE_CHUNK = 16 << 10
#: A write is done when at most this much of it is still buffered (asyncio's default high-water
#: mark, what drain() leaves on a plain connection); checked every WRITTEN_POLL_SECONDS beneath a
#: TLS transport, which has no wake-up for it.
WRITTEN_BYTES = 64 << 10
WRITTEN_POLL_SECONDS = 0.05
#: Bytes that stalled writers may hold buffered in total; beyond, a stalled writer is aborted
#: when it is next checked (600 such clients took the exporter from 67 to 405 MB).
MAX_STALLED_BYTES = 32 << 20
#: Seconds a closing connection may take to send the rest of its last answer (and, for TLS, the
#: close); it stays in the connection table meanwhile, and may be evicted.
LINGER_SECONDS = 30.0
#: Open connections at most (each costs a file descriptor, not a thread); lowered to fit the
#: process's file descriptor limit.
MAX_CONNECTIONS = 4096
#: Requests whose handler runs at once; more get 503 (node_exporter's --web.max-requests default).
MAX_IN_FLIGHT = 40
#: Requests that may wait (holding no thread) for a handler slot, per slot; beyond, 503 at once.
#: A burst of scrapes on a CPU-starved host waits a moment instead of failing.
QUEUE_FACTOR = 4
#: bcrypt checks (cache misses) waiting their turn; more get 503 without running bcrypt.
MAX_AUTH_PENDING = 16
#: Seconds between log lines about unexpected per-connection failures (with a count of those not
#: logged): a client that can trigger one with each request must not be able to fill the log.
FAILURE_LOG_INTERVAL = 60.0
#: File descriptors kept free for everything else the process opens (Prometheus, model files).
FD_RESERVE = 128

_TLS_HANDSHAKE_RECORD = b"\x16"


#: The ioctl that reads how many bytes a TCP socket's send queue holds that the peer has not
#: acknowledged yet (Linux's SIOCOUTQ, numbered as TIOCOUTQ); None where there is none.
_SIOCOUTQ: int | None = getattr(termios, "TIOCOUTQ", None)


def unacknowledged(transport: asyncio.BaseTransport) -> int:
    """Bytes the kernel took from ``transport``'s socket that its client has not acknowledged
    (Linux; 0 where the kernel will not say, or the socket is closed).

    A write's progress must not count them as taken: the kernel's send buffer grows (tcp_wmem,
    up to 4 MiB by default) whether or not the client reads, so a client reading ~20 KB/s of a
    2 MB answer looked as if it took ~80 KB/s, above :data:`MIN_WRITE_RATE`, and one that never
    read looked as if it took ~60 KB in its first half second, so neither counted as stalled."""
    sock = transport.get_extra_info("socket")
    if _SIOCOUTQ is None or sock is None:
        return 0
    try:
        fd = sock.fileno()
        if fd < 0:
            return 0
        queued: int = struct.unpack("i", fcntl.ioctl(fd, _SIOCOUTQ, b"\0\0\0\0"))[0]
    except (OSError, ValueError, AttributeError):
        return 0
    return max(0, queued)


def raise_fd_limit() -> int:
    """Raise the soft file descriptor limit to the hard one, as Go programs do at start-up
    (node_exporter included), and return it: idle connections cost descriptors."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
    return int(soft)


#: The IPv6 prefix one client is counted as: a host is usually given a whole /64 (SLAAC, RFC
#: 4291's interface identifiers) and can pick any address in it, so counting addresses would
#: let one host open connections as thousands of clients.
IPV6_CLIENT_PREFIX = 64


def peer_key(address: object) -> Hashable:
    """The client a connection is counted against: its IPv4 address (the port dropped, an
    IPv4-mapped IPv6 address as the IPv4 one), or its IPv6 address's /64 network (see
    :data:`IPV6_CLIENT_PREFIX`; a link-local one keeps its interface); any other kind of
    address (a Unix socket's) is one client for all."""
    if not (isinstance(address, tuple) and address and isinstance(address[0], str)):
        return ""
    host = address[0]
    if host.startswith("::ffff:") and "." in host:
        return host[7:]
    if ":" not in host:
        return host
    bare, _, scope = host.partition("%")
    try:
        network = ipaddress.IPv6Network(f"{bare}/{IPV6_CLIENT_PREFIX}", strict=False)
    except ValueError:
        return host
    return f"{network}%{scope}" if scope else str(network)


@dataclass(eq=False)
class _Conn:
    """One open connection: what it is doing and since when (the loop's clock).

    Change ``state`` through :meth:`_Loop.mark` only: it keeps :attr:`_Peer.waiting` and
    :attr:`_Peer.unproven` in order."""

    task: asyncio.Task[None]
    # Waiting (evictable, see _Loop._evict): "head" (handshake or request head), "idle",
    # "stalled" (a write the client does not take, see STALL_SECONDS) or "closing" (its last
    # answer going out). Unproven (evictable only from an address holding at least two more than
    # the newcomer's, when none is waiting): "queued" (a request waiting for a handler slot, no
    # thread yet) or "sending" (an answer no check has yet found taken at MIN_WRITE_RATE).
    # "busy": in a handler, or sending an answer a check found taken (and none stalled since).
    state: str
    since: float
    peer: _Peer
    # bytes buffered as last seen while "stalled", counted in _Loop.stalled_bytes
    held: int = 0


@dataclass(eq=False)
class _Peer:
    """The open connections of one client address (see :func:`peer_key`)."""

    key: Hashable
    open: int = 0
    # Its waiting connections (see _Conn.state), oldest ``since`` first: appended when they
    # start waiting, and ``since`` only grows. An OrderedDict, not a dict: the first key of a
    # dict used as a queue takes O(size) to find (deleted slots are skipped one by one).
    waiting: OrderedDict[_Conn, None] = field(default_factory=OrderedDict)
    # Its unproven connections ("queued" or "sending"), kept the same way.
    unproven: OrderedDict[_Conn, None] = field(default_factory=OrderedDict)
    # (0, -open, since of its oldest waiting connection), or without one (1, -open, since of its
    # oldest unproven connection), as last pushed on _Loop.ranks; None when it has neither (it
    # cannot be evicted from).
    rank: tuple[int, int, float] | None = None


class _Share:
    """``capacity`` places (handler queue entries, bcrypt checks) split between the client
    addresses holding some now plus one more: the addresses already there can never fill it,
    and a newcomer (a scraper) always finds a place. Without a share, one address opening 250
    connections that pipelined ``/healthz`` held the whole handler queue and every scrape got
    503, and a password guesser held all 16 bcrypt places while a scraper's first login (not
    cached yet) got 503."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.total = 0
        self.held: dict[_Peer, int] = {}  # addresses holding at least one place

    def full_for(self, peer: _Peer) -> bool:
        mine = self.held.get(peer, 0)
        others = len(self.held) - (1 if mine else 0)
        return mine >= max(1, self.capacity // (others + 2))

    def hold(self, peer: _Peer | None, delta: int) -> None:
        """Count a place of ``peer`` in (+1) or out (-1)."""
        self.total += delta
        if peer is None:
            return
        count = self.held.get(peer, 0) + delta
        if count > 0:
            self.held[peer] = count
        else:
            self.held.pop(peer, None)


class _FairSlots:
    """``size`` handler slots; a freed one goes to the waiting client with the fewest running.

    Not an ``asyncio.Semaphore`` (first come, first served): behind a flooding address's share of
    the queue (see :class:`_Share`), a scrape from another address waited for every one
    of its requests queued before it, ~0.4 s with 100 ``/healthz`` ahead and longer for slower
    handlers. Here a client with nothing running (a scraper) gets the next slot that frees,
    whatever the flood has queued; among equals, the one waiting longest since it was served.
    A release scans the waiting clients, at most the handler queue's length (each has a request
    waiting)."""

    def __init__(self, size: int) -> None:
        self.free = size
        self.running: dict[object, int] = {}
        # Waiting requests per client, oldest first; a client is moved to the end when it is
        # handed a slot and still has requests waiting.
        self.waiters: OrderedDict[object, deque[asyncio.Future[None]]] = OrderedDict()

    def available(self) -> bool:
        """Whether :meth:`acquire` would return at once."""
        return self.free > 0 and not self.waiters

    async def acquire(self, client: object) -> None:
        if self.available():
            self.free -= 1
            self.running[client] = self.running.get(client, 0) + 1
            return
        ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue = self.waiters.get(client)
        if queue is None:
            queue = self.waiters[client] = deque()
        queue.append(ready)
        try:
            await ready  # release() counts the slot as ``client``'s before resolving this
        except asyncio.CancelledError:
            if ready.done() and not ready.cancelled():
                self.release(client)  # handed a slot as it was cancelled: pass it on
            else:
                with contextlib.suppress(ValueError):
                    queue.remove(ready)
                if not queue and self.waiters.get(client) is queue:
                    del self.waiters[client]
            raise

    def release(self, client: object) -> None:
        left = self.running.get(client, 0) - 1
        if left > 0:
            self.running[client] = left
        else:
            self.running.pop(client, None)
        while self.waiters:
            running = self.running
            chosen = min(self.waiters, key=lambda c: running.get(c, 0))
            queue = self.waiters[chosen]
            ready = queue.popleft()
            if queue:
                self.waiters.move_to_end(chosen)
            else:
                del self.waiters[chosen]
            if not ready.done():
                running[chosen] = running.get(chosen, 0) + 1
                ready.set_result(None)
                return
        self.free += 1


class _Loop:
    """The event loop side; every attribute is touched only from the loop's thread."""

    def __init__(
        self,
        listener: socket.socket,
        routes: Mapping[str, Handler],
        source: WebConfigSource | None,
        max_connections: int,
        max_in_flight: int,
    ) -> None:
        self.listener = listener
        self.routes = dict(routes)
        self.source = source
        self.max_connections = max_connections
        self.max_in_flight = max_in_flight
        self.conns: dict[asyncio.Task[None], _Conn] = {}
        self.peers: dict[Hashable, _Peer] = {}
        # The eviction order (see _evict): a min-heap of (tier, -open, oldest since, seq, peer)
        # with lazy deletion, peers with a waiting connection (tier 0) before those with only
        # unproven ones (tier 1). An entry is current while its first three fields equal its
        # peer's ``rank``; a peer's rank changes (and a new entry is pushed) only when its count
        # or its oldest waiting (or unproven) connection does, stale entries are dropped when they
        # reach the top, and the heap is rebuilt when it holds more than twice as many entries as
        # there are peers. So each accept, state change and eviction costs O(log peers)
        # amortized, at any cap.
        self.ranks: list[tuple[int, int, float, int, _Peer]] = []
        self._seq = itertools.count()
        self.in_flight = 0
        self.queued = 0
        # A connection has at most one request queued or running (the next is read only once
        # this one is answered), so the share bounds connections of one address.
        self.requests = _Share(max_in_flight * (1 + QUEUE_FACTOR))
        self.slots = _FairSlots(max_in_flight)
        self.bcrypt = _Share(MAX_AUTH_PENDING)  # checks waiting or running
        self.pool = ThreadPoolExecutor(max_in_flight, thread_name_prefix="http-handler")
        self.auth_pool = ThreadPoolExecutor(1, thread_name_prefix="http-bcrypt")
        self.stalled_bytes = 0  # sum of _Conn.held
        # counters tests and docs read
        self.refused = 0
        self.evicted = 0
        self.evicted_writers = 0  # of those evicted: stalled or closing ones
        self.evicted_unproven = 0  # of those evicted: queued for a handler, or sending unproven
        self.stall_aborted = 0  # stalled writers aborted beyond MAX_STALLED_BYTES
        self.expired = 0
        self.overloaded = 0
        self.failed = 0
        self._failures_unlogged = 0
        self._failure_logged_at = -FAILURE_LOG_INTERVAL

    # -- accepting -------------------------------------------------------------------------------

    async def accept_forever(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                sock, address = await loop.sock_accept(self.listener)
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    self._evict()  # out of descriptors: make room, then try again
                    await asyncio.sleep(0.05)
                    continue
                if self.listener.fileno() < 0:
                    return
                await asyncio.sleep(0.01)
                continue
            key = peer_key(address)
            if len(self.conns) >= self.max_connections:
                holding = self.peers.get(key)
                if not self._evict(holding.open if holding is not None else 0):
                    self.refused += 1
                    sock.close()
                    continue
            peer = self.peers.get(key)  # after _evict: it may have taken this peer's last one
            if peer is None:
                peer = self.peers[key] = _Peer(key)
            task = loop.create_task(self.serve(sock))
            conn = _Conn(task, "head", loop.time(), peer)
            self.conns[task] = conn
            peer.open += 1
            peer.waiting[conn] = None
            self._rerank(peer)
            task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Task[None]) -> None:
        conn = self.conns.pop(task, None)
        if conn is not None:
            self._release(conn)

    def _release(self, conn: _Conn) -> None:
        """Count ``conn`` (already out of :attr:`conns`) off its peer."""
        peer = conn.peer
        peer.open -= 1
        peer.waiting.pop(conn, None)
        peer.unproven.pop(conn, None)
        self._rerank(peer)
        self.stalled_bytes -= conn.held
        conn.held = 0

    def mark(self, conn: _Conn | None, state: str) -> None:
        """Record that ``conn`` is now in ``state`` from now on (see :class:`_Conn`); every state
        but "busy" may be evicted, "queued" and "sending" only under :meth:`_evict`'s terms."""
        if conn is None:
            return
        conn.state, conn.since = state, asyncio.get_running_loop().time()
        if conn.task not in self.conns:
            return  # evicted: already counted off its peer
        peer = conn.peer
        peer.waiting.pop(conn, None)
        peer.unproven.pop(conn, None)
        if state in _UNPROVEN:
            peer.unproven[conn] = None
        elif state != "busy":
            peer.waiting[conn] = None
        self._rerank(peer)

    def _rerank(self, peer: _Peer) -> None:
        """Bring ``peer``'s place in the eviction order up to date (after any change to its
        count or waiting connections); forget a peer with no connection left."""
        if peer.open <= 0:
            peer.rank = None
            if self.peers.get(peer.key) is peer:
                del self.peers[peer.key]
            return
        rank: tuple[int, int, float] | None = None
        if peer.waiting:
            rank = (0, -peer.open, next(iter(peer.waiting)).since)
        elif peer.unproven:
            rank = (1, -peer.open, next(iter(peer.unproven)).since)
        if rank == peer.rank:
            return
        peer.rank = rank
        if rank is None:
            return
        if len(self.ranks) > 2 * len(self.peers) + 64:  # mostly stale: rebuild, O(peers)
            self.ranks = [
                (*p.rank, next(self._seq), p)
                for p in self.peers.values()
                if p.rank is not None and p is not peer
            ]
            heapq.heapify(self.ranks)
        heapq.heappush(self.ranks, (*rank, next(self._seq), peer))

    def _evict(self, newcomer: int | None = None) -> bool:
        """Close the oldest waiting connection (idle keep-alive, still in its handshake or
        request head, stalled in a write, or closing) of the client address holding the most
        open connections, the oldest waiting one among addresses holding equally many. With
        none waiting anywhere, and ``newcomer`` (the open connections of the address of the
        connection to admit) given: the oldest unproven connection (queued for a handler, or
        sending an answer no check has yet found taken) of the address holding the most, if it
        holds at least two more than ``newcomer``. False if nothing may be evicted.

        Stalled and closing connections wait too: a client that never reads its answers held
        its place for the whole write timeout, so a few hundred of them filled the cap and every
        scrape was refused.

        Head-state connections are evictable too: otherwise clients that connect and send
        nothing hold every slot until their request deadline, reconnect, and a scraper gets in
        only by luck. The victim is chosen per address, not globally oldest first: with the
        latter, one address opening silent connections by the hundred a second evicted every
        other client's idle keep-alive connection (Prometheus's) in turn. Now such an address
        evicts only its own connections once it holds the most, and a scraper holding fewer
        loses one only when every larger holder has none waiting (all busy).

        Unproven connections, last: a fresh wave of clients that ask for an answer and do not
        take it are all queued or sending until their writes are checked, and a scraper
        arriving meanwhile was closed at accept (300 such clients on 16 addresses against a cap
        of 272: a scrape lost after most waves, docs/reliability.md). Such a connection has no
        handler thread and has shown nothing yet; evicting it from an address holding at least
        two more than the newcomer's leaves that address holding at least as many as the
        newcomer's. One running a handler, or sending an answer its client was found taking,
        is never evicted."""
        ranks = self.ranks
        while ranks:
            tier, neg_open, since, _, peer = ranks[0]
            if peer.rank != (tier, neg_open, since):
                heapq.heappop(ranks)  # stale: the peer's count or oldest waiting has changed
                continue
            if tier == 1 and (newcomer is None or -neg_open < newcomer + 2):
                return False  # none waiting; the largest holder of unproven ones is too small
            victim = next(iter(peer.waiting if tier == 0 else peer.unproven))
            self.conns.pop(victim.task, None)
            self._release(victim)
            victim.task.cancel()  # its task aborts the transport: buffer and descriptor go now
            self.evicted += 1
            if victim.state in ("stalled", "closing"):
                self.evicted_writers += 1
            elif tier == 1:
                self.evicted_unproven += 1
            return True
        return False

    def _log_failure(self, exc: Exception) -> None:
        """One line (the exception and where it was raised, no traceback), at most one per
        :data:`FAILURE_LOG_INTERVAL`: a bug a client can trigger per request must not let it
        flood the log (a traceback per request was ~1 KB of log per request)."""
        self.failed += 1
        now = asyncio.get_running_loop().time()
        if now - self._failure_logged_at < FAILURE_LOG_INTERVAL:
            self._failures_unlogged += 1
            return
        frames = traceback.extract_tb(exc.__traceback__)
        where = f" at {Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else ""
        log.error(
            "connection handling failed: %s%s (%d more not logged since the last such line)",
            repr(exc)[:200],  # repr: a message holding client bytes stays one line
            where,
            self._failures_unlogged,
        )
        self._failure_logged_at = now
        self._failures_unlogged = 0

    # -- one connection -------------------------------------------------------------------------

    async def serve(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        sock.setblocking(False)
        with contextlib.suppress(OSError):  # as Go's net/http: no Nagle delay on small answers
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        transport: asyncio.Transport | None = None
        writer: asyncio.StreamWriter | None = None
        graceful = False  # ended as HTTP ends a connection: let the last answer go out
        try:
            deadline = loop.time() + REQUEST_TIMEOUT_SECONDS
            try:
                async with asyncio.timeout_at(deadline):
                    first = await peek(loop, sock)
                    active = self.source.current() if self.source else None
                    ctx = active.ssl_context if active else None
                    if not first or (ctx is None and first == _TLS_HANDSHAKE_RECORD):
                        return  # hung up, or TLS to a plain port: nothing to say
                    if ctx is not None and first != _TLS_HANDSHAKE_RECORD:
                        await refuse_plain_on_tls(loop, sock)
                        return
                    reader = asyncio.StreamReader(limit=MAX_HEADER_BYTES + 2)
                    protocol = asyncio.StreamReaderProtocol(reader)
                    transport, _ = await loop.connect_accepted_socket(
                        lambda: protocol,
                        sock,
                        ssl=ctx,
                        ssl_handshake_timeout=max(deadline - loop.time(), 0.01) if ctx else None,
                    )
            except TimeoutError:
                self.expired += 1
                return
            # Paused (drain() waits) beyond one chunk: see _send.
            transport.set_write_buffer_limits(high=WRITE_CHUNK)
            writer = asyncio.StreamWriter(transport, protocol, reader, loop)
            if ctx is not None and active is not None and active.config.tls is not None:
                peer = transport.get_extra_info("peercert")
                if not peer_san_allowed(peer, active.config.tls.client_allowed_sans):
                    log.debug("client certificate SAN not in client_allowed_sans")
                    return
            await self.serve_requests(self.conns.get(task), reader, writer, deadline)
            graceful = True
        except (Closing, ConnectionError, ssl.SSLError, OSError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            pass  # evicted, or the server is shutting down
        except Exception as exc:  # a bug here must end this connection only, quietly
            self._log_failure(exc)
        finally:
            if transport is None:
                sock.close()
            elif graceful and writer is not None:
                await self._linger(self.conns.get(task), transport, writer)
            else:
                # Evicted, timed out, broken or shut down: nothing more is owed to the client,
                # so drop the buffer now rather than keep it (and the descriptor) outside the cap.
                transport.abort()

    async def _linger(
        self, conn: _Conn | None, transport: asyncio.Transport, writer: asyncio.StreamWriter
    ) -> None:
        """Close, letting what is buffered (and a TLS close) go out, for at most
        :data:`LINGER_SECONDS`, in the connection table as "closing" meanwhile, so evictable.

        Before, the task ended at ``close()`` and the transport lingered up to 30 s outside the
        cap with its buffer: waves of clients that never read held descriptors beyond the cap."""
        transport.close()
        if conn is None or conn.task not in self.conns:
            transport.abort()
            return
        self.mark(conn, "closing")
        try:
            async with asyncio.timeout(LINGER_SECONDS):
                await writer.wait_closed()
        except (TimeoutError, asyncio.CancelledError):
            transport.abort()  # the client is not taking it, or evicted: drop it now
        except Exception:  # lost with an error (a reset): closed all the same
            return

    async def _send(
        self, conn: _Conn | None, writer: asyncio.StreamWriter, head: bytes, body: bytes = b""
    ) -> None:
        """Write ``head`` and ``body`` within :data:`WRITE_TIMEOUT_SECONDS` (else
        :class:`Closing`), checking how much the client took (acknowledged: what the kernel
        holds unacknowledged is not taken, see :func:`unacknowledged`) every quarter of
        :data:`STALL_SECONDS` for the first :data:`STALL_EARLY_CHECKS` checks, then every
        :data:`STALL_SECONDS`: under :data:`STALL_MIN_BYTES` per :data:`STALL_SECONDS` since the
        last check, or from check :data:`STALL_EARLY_CHECKS` on under :data:`MIN_WRITE_RATE` on
        average since the write began, the connection is "stalled" (evictable; what it has left
        to send counted in :data:`MAX_STALLED_BYTES`, and beyond that total it is aborted here).
        A write not done at once is "sending" (unproven, see :meth:`_evict`) until a check finds
        it above :data:`MIN_WRITE_RATE`, "busy" from then on while it is not stalled.

        ``body`` is handed to the transport :data:`WRITE_CHUNK` bytes at a time, as the client
        takes it (the transport's high-water mark is :data:`WRITE_CHUNK`, see :meth:`serve`), the
        last :data:`WRITTEN_BYTES` at once. Before, the whole answer was copied into the
        transport's buffer at once: 1,000 clients that asked for a 230 KB answer and never read
        took a server from 29 to 207 MB in their first half second, before any of them could
        count as stalled (now 52 MB). A body shared between requests (a shared render) stays one
        object, and each connection holds about two chunks of its own."""
        loop = asyncio.get_running_loop()
        transport = writer.transport
        view = memoryview(body)
        size = len(view)
        sent = 0  # bytes of body handed to the transport

        def feed() -> None:
            """Hand over chunks while the transport takes them without pausing (its buffer at
            most one chunk); the rest at once when it is small."""
            nonlocal sent
            while (
                sent < size
                and transport.get_write_buffer_size() <= WRITE_CHUNK
                and not lost(transport)
            ):
                if buffered(transport) + size - sent <= WRITTEN_BYTES:
                    writer.write(view[sent:])
                    sent = size
                    return
                writer.write(view[sent : sent + WRITE_CHUNK])
                sent = min(size, sent + WRITE_CHUNK)

        # The head with the start of the body, or all of a small answer, in one write.
        sent = size if len(head) + size <= WRITTEN_BYTES else min(size, WRITE_CHUNK)
        writer.write(head + view[:sent])
        feed()
        start = loop.time()
        end = start + WRITE_TIMEOUT_SECONDS
        # What the client has yet to take once the write began: what this process holds of the
        # answer and what the kernel took that the client has not acknowledged.
        first_left = left = buffered(transport) + size - sent + unacknowledged(transport)
        if (
            conn is not None
            and conn.state == "busy"
            and (
                sent < size
                or transport.get_write_buffer_size() > WRITE_CHUNK
                or buffered(transport) > WRITTEN_BYTES
            )
        ):
            self.mark(conn, "sending")  # not done at once: unproven until a check finds it taken
        checks = 0
        try:
            while True:
                share = 0.25 if checks < STALL_EARLY_CHECKS else 1.0
                wait = min(STALL_SECONDS * share, end - loop.time())
                if wait <= 0:
                    raise Closing
                try:
                    async with asyncio.timeout(wait):
                        while sent < size:
                            await writer.drain()  # suspends while over the high-water mark
                            if lost(transport):
                                raise Closing
                            before = sent
                            feed()
                            if sent == before:  # not expected (drain() waits): never spin
                                await asyncio.sleep(WRITTEN_POLL_SECONDS)
                        await writer.drain()
                        # TLS: asyncio encrypts what it is handed at once and passes it to the
                        # socket transport beneath, so drain() returned while a client that
                        # never reads had taken nothing (the connection went idle holding it
                        # all, uncounted). Wait for the buffer beneath to come down too.
                        while buffered(transport) > WRITTEN_BYTES:
                            await asyncio.sleep(WRITTEN_POLL_SECONDS)
                    return
                except TimeoutError:
                    pass
                now = loop.time()
                held = buffered(transport) + size - sent
                now_left = held + unacknowledged(transport)
                checks += 1
                judged = checks >= STALL_EARLY_CHECKS  # against MIN_WRITE_RATE too
                stalled = left - now_left < STALL_MIN_BYTES * share or (
                    judged and first_left - now_left < MIN_WRITE_RATE * (now - start)
                )
                self._note_progress(conn, stalled, held, judged)
                left = now_left
        finally:
            self._note_progress(conn, False, 0)

    def _note_progress(
        self, conn: _Conn | None, stalled: bool, size: int, proven: bool = True
    ) -> None:
        """Record a check of ``conn``'s write: "stalled" (``size`` bytes held), else "busy" if
        ``proven`` (judged against :data:`MIN_WRITE_RATE`, or done), else "sending" still."""
        if conn is None or conn.task not in self.conns:
            return  # evicted (already counted off) or not tracked
        self.stalled_bytes += (size if stalled else 0) - conn.held
        conn.held = size if stalled else 0
        state = conn.state
        if stalled:
            state = "stalled"
        elif state in ("stalled", "sending"):
            state = "busy" if proven else "sending"
        if state != conn.state:
            self.mark(conn, state)
        if stalled and self.stalled_bytes > MAX_STALLED_BYTES:
            self.stall_aborted += 1
            raise Closing

    async def serve_requests(
        self,
        conn: _Conn | None,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        deadline: float,
    ) -> None:
        loop = asyncio.get_running_loop()
        first_request = True
        while True:
            prefix = b""
            if not first_request:
                self.mark(conn, "idle")
                try:
                    async with asyncio.timeout(IDLE_TIMEOUT_SECONDS):
                        prefix = await reader.read(1)
                except TimeoutError:
                    return
                if not prefix:
                    return
                self.mark(conn, "head")
                deadline = loop.time() + REQUEST_TIMEOUT_SECONDS
            first_request = False
            try:
                async with asyncio.timeout_at(deadline):
                    head = await read_head(reader, prefix)
            except TimeoutError:
                self.expired += 1
                return
            except BadHead as bad:
                await self._send(
                    conn, writer, *render_response(Response(bad.status, bad.body), True, True)
                )
                return
            if head is None:
                return
            self.mark(conn, "busy")
            response, close = await self.dispatch(head, conn.peer if conn else None, conn)
            close = close or not head.keep_alive or head.declares_body
            await self._send(conn, writer, *render_response(response, head.method != "HEAD", close))
            if close:
                return
            # Let every other connection have its turn before this one's next request. Reading
            # a request already buffered, a cached or absent auth, a 404/405/429/503 and a
            # write below the buffer's high-water mark all return without suspending: without
            # this, a client pipelining thousands of requests in one send had them all answered
            # in one run of the loop, and a scrape waited seconds behind it.
            await asyncio.sleep(0)

    # -- a parsed request ------------------------------------------------------------------------

    async def dispatch(
        self, head: RequestHead, peer: _Peer | None = None, conn: _Conn | None = None
    ) -> tuple[Response, bool]:
        """The response, and whether to close the connection after it; ``peer``, the client
        address the request came from, is held to its share of the handler queue, and ``conn``
        (its connection) is "queued" while it waits for a handler slot."""
        loop = asyncio.get_running_loop()
        active = self.source.current() if self.source else None
        extra = dict(active.config.headers) if active else {}
        # The bucket before auth, as exporter-toolkit: unauthenticated requests spend tokens too
        # (a flood can starve a scraper), but guessing is throttled before any bcrypt runs.
        # The trade-off is documented next to rate_limit in docs/reliability.md.
        if active and active.limiter and not active.limiter.allow():
            return Response(429, b"too many requests\n", headers=extra), False
        user = await self._authenticate(loop, active, head.headers.get("Authorization"), peer)
        if user is _OVERLOADED:
            self.overloaded += 1
            return Response(503, b"too many authentication attempts\n", headers=extra), True
        if active and active.auth and user is None:
            extra["WWW-Authenticate"] = 'Basic realm="gpu-health", charset="UTF-8"'
            return Response(401, b"unauthorized\n", headers=extra), True
        if head.method not in ("GET", "HEAD"):
            extra["Allow"] = "GET, HEAD"
            return Response(405, b"method not allowed\n", headers=extra), False
        parsed = urllib.parse.urlsplit(head.target)
        handler = self.routes.get(parsed.path)
        if handler is None:
            return Response(404, b"not found\n", headers=extra), False
        if self.in_flight + self.queued >= self.max_in_flight * (1 + QUEUE_FACTOR):
            self.overloaded += 1
            extra["Retry-After"] = "1"
            return Response(503, b"too many requests in flight\n", headers=extra), False
        if peer is not None and self.requests.full_for(peer):
            self.overloaded += 1
            extra["Retry-After"] = "1"
            return Response(
                503, b"too many requests in flight from this client\n", headers=extra
            ), False
        request = Request(
            parsed.path,
            urllib.parse.parse_qs(parsed.query),
            head.headers,
            user=user if isinstance(user, str) else None,
        )
        self.requests.hold(peer, 1)
        try:
            self.queued += 1
            waits = not self.slots.available()
            if waits:
                self.mark(conn, "queued")
            try:
                await self.slots.acquire(peer)
            finally:
                self.queued -= 1
            if waits:
                self.mark(conn, "busy")
            self.in_flight += 1
            try:
                response = await loop.run_in_executor(self.pool, call_handler, handler, request)
            finally:
                self.in_flight -= 1
                self.slots.release(peer)
        finally:
            self.requests.hold(peer, -1)
        response.headers = {**response.headers, **extra}
        return response, False

    async def _authenticate(
        self,
        loop: asyncio.AbstractEventLoop,
        active: ActiveWebConfig | None,
        authorization: str | None,
        peer: _Peer | None = None,
    ) -> str | object | None:
        if active is None or active.auth is None:
            return None
        hit, user = active.auth.check_cached(authorization)
        if hit:
            return user
        if self.bcrypt.total >= MAX_AUTH_PENDING or (
            peer is not None and self.bcrypt.full_for(peer)
        ):
            return _OVERLOADED
        self.bcrypt.hold(peer, 1)
        try:
            checked: str | None = await loop.run_in_executor(
                self.auth_pool, active.auth.check, authorization
            )
            return checked
        finally:
            self.bcrypt.hold(peer, -1)

    async def close(self) -> None:
        tasks = list(self.conns)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


_OVERLOADED = object()
#: Connection states evictable only as a last resort (see _Loop._evict).
_UNPROVEN = frozenset({"queued", "sending"})


def _loop_exception(loop: asyncio.AbstractEventLoop, context: dict[str, object]) -> None:
    """The server loop's handler of exceptions raised in asyncio's own callbacks.

    CPython's socket transport tears itself down twice when a write made from inside its
    writable callback fails (python/cpython#156512, fixed upstream in 2026): a TLS answer sent
    chunk by chunk (see ``_Loop._send``) is resumed from there, so a client resetting mid-answer
    makes the second ``_call_connection_lost`` find the transport gone, AttributeError. Nothing
    is left open (the first call closed it all), but asyncio would log a traceback each time and
    a client can do it at will: logged at debug level instead. Anything else goes to asyncio's
    default handler."""
    if isinstance(context.get("exception"), AttributeError) and "._call_connection_lost(" in str(
        context.get("message", "")
    ):
        log.debug("connection already torn down (python/cpython#156512): %s", context["message"])
        return
    loop.default_exception_handler(context)


class WebServer:
    """An HTTP(S) server running on its own event loop thread until :meth:`shutdown`.

    ``web_config``: an exporter-toolkit web config file (``--web.config.file``) enabling TLS,
    basic auth, response headers and a rate limit. It is validated here, so a bad file is a
    one-line :class:`~gpu_health.errors.UserError` at start-up, and re-read when it changes.
    """

    def __init__(
        self,
        listen_address: str,
        routes: Mapping[str, Handler],
        *,
        web_config: Path | None = None,
        max_connections: int = MAX_CONNECTIONS,
        max_in_flight: int = MAX_IN_FLIGHT,
    ) -> None:
        host, port = parse_listen_address(listen_address)
        source = WebConfigSource(web_config) if web_config is not None else None
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        fd_limit = raise_fd_limit()
        try:
            listener = socket.create_server((host, port), family=family, backlog=1024)
        except OSError as exc:
            raise UserError(f"cannot listen on {listen_address}: {exc.strerror}") from None
        listener.setblocking(False)
        capped = max(1, min(max_connections, fd_limit - FD_RESERVE))
        self._state = _Loop(listener, routes, source, capped, max(1, max_in_flight))
        self._loop = asyncio.new_event_loop()
        self._loop.set_exception_handler(_loop_exception)
        self._accept: asyncio.Future[None] | None = None
        self._thread = threading.Thread(target=self._run, name="http", daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._accept = self._loop.create_task(self._state.accept_forever())
        self._loop.run_forever()

    @property
    def port(self) -> int:
        return int(self._state.listener.getsockname()[1])

    @property
    def tls(self) -> bool:
        """Whether connections are served over TLS (the scheme to scrape with)."""
        source = self._state.source
        return source is not None and source.tls_enabled

    @property
    def max_connections(self) -> int:
        """Open connections allowed (after fitting the file descriptor limit)."""
        return self._state.max_connections

    @property
    def refused_connections(self) -> int:
        """Connections closed at accept: none of the open ones could be evicted."""
        return self._state.refused

    @property
    def evicted_connections(self) -> int:
        """Connections closed to make room for a new one (see ``_Loop._evict``): idle, in a
        handshake or request head, stalled, closing, or unproven."""
        return self._state.evicted

    @property
    def failed_connections(self) -> int:
        """Connections ended by an unexpected exception (a bug; logged, rate-limited)."""
        return self._state.failed

    @property
    def expired_connections(self) -> int:
        """Connections closed for not finishing handshake and request head in time."""
        return self._state.expired

    @property
    def overloaded_requests(self) -> int:
        """Requests answered 503 because ``max_in_flight`` handlers (or bcrypt checks) were busy."""
        return self._state.overloaded

    @property
    def open_connections(self) -> int:
        return len(self._state.conns)

    def metrics_collector(self, namespace: str) -> ServerCollector:
        """The counters above as Prometheus metrics named ``{namespace}_http_...``, for the
        process's registry (``registry.register(server.metrics_collector("gpu_exporter"))``)."""
        return ServerCollector(self, namespace)

    def start(self) -> WebServer:
        self._thread.start()
        return self

    def shutdown(self) -> None:
        if self._thread.is_alive():

            async def stop() -> None:
                if self._accept is not None:
                    self._accept.cancel()
                await self._state.close()

            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        self._state.listener.close()
        if not self._loop.is_running():
            self._loop.close()
        self._state.pool.shutdown(wait=False, cancel_futures=True)
        self._state.auth_pool.shutdown(wait=False, cancel_futures=True)


class ServerCollector(Collector):
    """The server's defences as metrics: without them a flood that evicts, refuses or 503s
    scrapers is invisible until scrapes fail, and then nothing says why. Read at scrape time
    from :class:`WebServer`'s counters (ints the loop thread bumps; reading one is atomic)."""

    def __init__(self, server: WebServer, namespace: str) -> None:
        self._server = server
        self._ns = namespace

    def describe(self) -> Iterable[Metric]:
        return self.collect()

    def collect(self) -> Iterable[Metric]:
        server = self._server
        values = {
            "http_connections_refused_total": server.refused_connections,
            "http_connections_evicted_total": server.evicted_connections,
            "http_connections_expired_total": server.expired_connections,
            "http_connections_failed_total": server.failed_connections,
            "http_requests_overloaded_total": server.overloaded_requests,
            "http_connections_open": server.open_connections,
        }
        for name, kind, help_text in SERVER_METRICS:
            family = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
            yield family(f"{self._ns}_{name}", help_text, value=values[name])
