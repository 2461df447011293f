"""The web config in force: TLS context, auth and limiter built from it; reloaded on change."""

from __future__ import annotations

import logging
import ssl
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from gpu_health.errors import UserError
from gpu_health.web.auth import BasicAuth, TokenBucket
from gpu_health.web.config import WebConfig, load_web_config
from gpu_health.web.tlscontext import build_ssl_context

# The logger of the web config as a whole: reload errors are about that file.
log = logging.getLogger("gpu_health.web.config")


@dataclass(frozen=True)
class ActiveWebConfig:
    """What the server applies to a connection: built once per (re)load, never half-updated."""

    config: WebConfig
    ssl_context: ssl.SSLContext | None
    auth: BasicAuth | None
    limiter: TokenBucket | None


def activate(config: WebConfig, previous: ActiveWebConfig | None = None) -> ActiveWebConfig:
    """Build what ``config`` asks for; ``previous`` lends its bcrypt cache (see BasicAuth)."""
    ctx = build_ssl_context(config.tls, config.source) if config.tls else None
    old_auth = previous.auth if previous else None
    auth = BasicAuth(config.basic_auth_users, old_auth) if config.basic_auth_users else None
    limiter = TokenBucket(config.rate_limit) if config.rate_limit else None
    return ActiveWebConfig(config, ctx, auth, limiter)


class WebConfigSource:
    """The web config in force, re-read when the file or its certificates change.

    exporter-toolkit re-reads the file on every request so rotated certificates apply at once; here
    the file and the files it names are stat()ed at most once a second, and a change is loaded in
    full before it replaces the old one. A broken edit is logged (one line) and the last good
    configuration stays in force, so a typo never takes the endpoint down or opens it up. So is a
    valid edit that only a restart may apply: TLS switched on or off, basic auth removed.
    """

    CHECK_INTERVAL = 1.0

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._active = activate(load_web_config(self.path))
        self._stamp = self._fingerprint(self._active.config)
        self._checked = time.monotonic()
        self.reload_errors = 0

    def _fingerprint(self, config: WebConfig) -> tuple[tuple[str, int, int], ...]:
        files = [self.path, *(config.tls.files() if config.tls else ())]
        stamp = []
        for f in files:
            try:
                st = f.stat()
                stamp.append((str(f), st.st_mtime_ns, st.st_size))
            except OSError:
                stamp.append((str(f), -1, -1))
        return tuple(stamp)

    def _needs_restart(self, candidate: ActiveWebConfig) -> str | None:
        """Why ``candidate`` may only take effect at a restart, or None if it may replace the
        config in force now.

        A reload never switches TLS on or off, and never turns basic auth off: a file truncated
        by a tool that writes in two steps, or emptied by a bad ConfigMap, reads as valid ("no
        TLS, no auth", as at start-up) but must not open a protected endpoint. Changing the users
        or their passwords is a reload like any other.
        """
        if (candidate.ssl_context is None) != (self._active.ssl_context is None):
            state = "off" if self._active.ssl_context is None else "on"
            return f"{self.path}: switching TLS on or off needs a restart (TLS stays {state})"
        if self._active.auth is not None and candidate.auth is None:
            return (
                f"{self.path}: has no basic_auth_users, so basic auth stays on with the previous "
                "users; removing basic auth needs a restart"
            )
        return None

    @property
    def tls_enabled(self) -> bool:
        return self._active.ssl_context is not None

    def current(self) -> ActiveWebConfig:
        now = time.monotonic()
        if now - self._checked < self.CHECK_INTERVAL:
            return self._active
        with self._lock:
            if now - self._checked < self.CHECK_INTERVAL:
                return self._active
            self._checked = now
            stamp = self._fingerprint(self._active.config)
            if stamp == self._stamp:
                return self._active
            self._stamp = stamp
            try:
                candidate = activate(load_web_config(self.path), self._active)
            except UserError as exc:
                self.reload_errors += 1
                log.error("web config not reloaded, keeping the previous one: %s", exc)
                return self._active
            refusal = self._needs_restart(candidate)
            if refusal is not None:
                self.reload_errors += 1
                log.error("web config not reloaded, keeping the previous one: %s", refusal)
                return self._active
            self._stamp = self._fingerprint(candidate.config)
            self._active = candidate
            log.info("web config reloaded from %s", self.path)
            return self._active
