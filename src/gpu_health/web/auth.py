"""Basic auth (bcrypt, cached) and the global rate limit of the exporter-toolkit web config."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from gpu_health.errors import ConfigError, UserError

if TYPE_CHECKING:
    from gpu_health.web.config import RateLimit

BCRYPT_MISSING = (
    "basic_auth_users needs the bcrypt package, which is not installed; "
    "install it with: pip install 'gpu-health-monitor[web]'"
)


#: Highest bcrypt cost accepted for ``basic_auth_users``. Each step doubles the time a check
#: takes (~70 ms at 10 here, ~1.1 s at 14, hours at 31), checks run one at a time, and an unknown
#: user is checked against a dummy hash of the highest configured cost: a ``$2b$31$`` hash would
#: let one request naming an unknown user hold the bcrypt lock for hours. ``htpasswd -B`` defaults
#: to 5 and the documented example is 10.
MAX_BCRYPT_COST = 14


def check_bcrypt_costs(users: Mapping[str, str], source: str) -> None:
    """A one-line :class:`ConfigError` naming the user if a hash's cost exceeds
    :data:`MAX_BCRYPT_COST` (hashes are assumed already checked to be ``$2?$NN$...``)."""
    for name, hashed in users.items():
        cost_text = hashed.split("$")[2] if hashed.count("$") >= 3 else ""
        if cost_text.isascii() and cost_text.isdigit() and int(cost_text) > MAX_BCRYPT_COST:
            raise ConfigError(
                source,
                f"basic_auth_users.{name}",
                f"bcrypt cost {int(cost_text)} is above the maximum {MAX_BCRYPT_COST} (each step "
                "doubles the time of every check; e.g. htpasswd -nBC 10 \"\" | tr -d ':\\n')",
            )


def import_bcrypt() -> Any:
    try:
        import bcrypt
    except ImportError:
        raise UserError(BCRYPT_MISSING) from None
    return bcrypt


class BasicAuth:
    """Checks ``Authorization: Basic`` headers against bcrypt hashes.

    bcrypt costs ~70 ms at cost 10 on purpose, so like exporter-toolkit the outcome of a check is
    cached: a scraper sending the same credentials every 15 s pays once. The cache key is an HMAC
    (per-process random key) of user, hash and password, so no password is kept in memory, and the
    cache is bounded so a password-guessing client cannot grow it. bcrypt runs under a lock: a
    flood of bad passwords costs one core at most and never delays a cached (good) scraper. An
    unknown user is checked against a dummy hash of the same cost so the timing does not reveal
    which user names exist; ``bcrypt.checkpw`` compares in constant time.

    Good and bad outcomes are cached apart, each in its own LRU of :data:`CACHE_SIZE`: with one
    shared LRU a password guesser (~200 bcrypt checks a second) pushed the scraper's good login
    out within seconds, and its next scrape then waited for bcrypt behind the guesses, or got 503
    once ``MAX_AUTH_PENDING`` were waiting. Failures only ever evict failures; filling the good
    cache takes valid credentials. Failures are cached at all so a client retrying a stale
    password pays bcrypt once.

    A reload keeps the cache (``previous``): the key covers the stored hash, so entries of users
    whose hash is unchanged stay valid and those of changed or removed users can never match again.
    Without this a reload during a password flood made the next good scrape wait seconds.
    """

    CACHE_SIZE = 1024
    _hmac_key: bytes
    _cache_lock: threading.Lock

    def __init__(self, users: Mapping[str, str], previous: BasicAuth | None = None) -> None:
        # Also checked here, not only by the loader: the dummy hash takes the highest cost, so
        # an uncapped cost must never reach a running server, however the users were loaded.
        check_bcrypt_costs(users, "web config")
        self._users = dict(users)
        self._bcrypt = import_bcrypt()
        self._hmac_key = previous._hmac_key if previous else os.urandom(32)
        # digest -> None; a digest is in at most one of the two.
        self._good: OrderedDict[bytes, None] = OrderedDict()
        self._bad: OrderedDict[bytes, None] = OrderedDict()
        if previous is not None:
            with previous._cache_lock:
                self._good.update(previous._good)
                self._bad.update(previous._bad)
        self._cache_lock = threading.Lock()
        self._bcrypt_lock = threading.Lock()
        self._dummy: bytes | None = None
        self.bcrypt_calls = 0  # observable in tests: proves the cache works

    def _dummy_hash(self) -> bytes:
        if self._dummy is None:
            rounds = max((int(h.split("$")[2]) for h in self._users.values()), default=10)
            self._dummy = self._bcrypt.hashpw(os.urandom(16), self._bcrypt.gensalt(rounds=rounds))
        return self._dummy

    def _digest(self, user: str, hashed: bytes, password: bytes) -> bytes:
        return hmac.new(
            self._hmac_key, b"\0".join((user.encode(), hashed, password)), hashlib.sha256
        ).digest()

    def _lookup(self, digest: bytes) -> bool | None:
        """The cached outcome (True: good), or None if bcrypt has to tell."""
        with self._cache_lock:
            for cache, outcome in ((self._good, True), (self._bad, False)):
                if digest in cache:
                    cache.move_to_end(digest)
                    return outcome
        return None

    def _remember(self, digest: bytes, ok: bool) -> None:
        with self._cache_lock:
            cache = self._good if ok else self._bad
            cache[digest] = None
            cache.move_to_end(digest)
            while len(cache) > self.CACHE_SIZE:
                cache.popitem(last=False)

    def check_cached(self, authorization: str | None) -> tuple[bool, str | None]:
        """(decided, user) without running bcrypt: decided is False when only :meth:`check`
        (bcrypt, tens of ms) can tell. The server calls this on its event loop."""
        credentials = _parse_basic(authorization)
        if credentials is None:
            return True, None
        user, password = credentials
        stored = self._users.get(user)
        hashed = stored.encode() if stored is not None else b""
        cached = self._lookup(self._digest(user, hashed, password))
        if cached is None:
            return False, None
        return True, (user if cached else None)

    def check(self, authorization: str | None) -> str | None:
        """The authenticated user name, or None."""
        credentials = _parse_basic(authorization)
        if credentials is None:
            return None
        user, password = credentials
        stored = self._users.get(user)
        hashed = stored.encode() if stored is not None else b""
        digest = self._digest(user, hashed, password)
        cached = self._lookup(digest)
        if cached is None:
            with self._bcrypt_lock:
                self.bcrypt_calls += 1
                try:
                    ok = self._bcrypt.checkpw(password, hashed or self._dummy_hash())
                except ValueError:  # e.g. a password longer than bcrypt's 72 bytes
                    ok = False
            cached = bool(ok) and stored is not None
            self._remember(digest, cached)
        return user if cached else None


def _parse_basic(header: str | None) -> tuple[str, bytes] | None:
    if not header:
        return None
    scheme, _, encoded = header.strip().partition(" ")
    if scheme.lower() != "basic" or not encoded:
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
        user_bytes, sep, password = decoded.partition(b":")
        user = user_bytes.decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    if not sep:
        return None
    return user, password


# -- rate limit ----------------------------------------------------------------------------------


class TokenBucket:
    """The toolkit's ``rate.NewLimiter(Every(interval), burst)``: global, not per client."""

    def __init__(self, limit: RateLimit) -> None:
        self._rate = 1.0 / limit.interval_seconds
        self._burst = float(limit.burst)
        self._tokens = float(limit.burst)
        self._last = time.monotonic()
        self._lock = threading.Lock()

    def allow(self) -> bool:
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self._burst, self._tokens + (now - self._last) * self._rate)
            self._last = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return True
            return False
