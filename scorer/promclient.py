"""The one HTTP client the scorer uses to talk to Prometheus (or Mimir, Cortex, Thanos).

Every request goes through :class:`PromClient`, so retries with back-off, timeouts, TLS with a CA
file, credentials read from files and tenant headers are configured once. Credentials are read
from files (never from the command line, where ``ps`` would show them) and never logged.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import tenacity

from gpu_health.errors import UserError
from gpu_health.http_deadline import cut_at, requests_adapter
from gpu_health.prometheus_access import (
    check_credentials,
    non_api_answer,
    read_secret,
    read_token,
)
from gpu_health.safetext import one_line
from gpu_health.scorer import engine

log = logging.getLogger(__name__)


class PrometheusError(Exception):
    """A query failed after its retries (Prometheus down, timeout, or an error answer)."""


class RunTimedOut(PrometheusError):
    """The scoring run's deadline passed (its budget, or the scorer is shutting down); the run
    is abandoned."""

    def __init__(self, message: str, shutting_down: bool = False) -> None:
        super().__init__(message)
        self.shutting_down = shutting_down


class _Retryable(Exception):
    """A transient failure worth retrying (connection, timeout, 5xx, 429)."""


@dataclass(frozen=True)
class PromConfig:
    """Where Prometheus is and how to reach it."""

    url: str
    timeout_s: float = 30.0
    retries: int = 3
    backoff_s: float = 0.5
    ca_file: str | None = None
    insecure_skip_verify: bool = False
    bearer_token_file: str | None = None
    basic_auth_username: str | None = None
    basic_auth_password_file: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    #: Largest answer accepted, in bytes after decompression (a 100k-GPU feature query is ~20 MB).
    max_answer_bytes: int = 64 * 1024 * 1024
    #: Most series accepted in one answer (one per GPU for every feature query).
    max_series: int = 200_000


class PromClient:
    """Instant and range queries with retries; thread-safe (one pooled session)."""

    def __init__(self, config: PromConfig) -> None:
        if not config.url.startswith(("http://", "https://")):
            raise UserError(f"--prometheus.url {config.url!r}: expected http:// or https://")
        self.config = config
        self.base_url = config.url.rstrip("/")
        self._session = requests.Session()
        self._session.headers.update({"User-Agent": "gpu-health-scorer", **config.headers})
        # Passed on every request: a session-level value would lose to REQUESTS_CA_BUNDLE.
        self._verify: bool | str = True
        if config.ca_file:
            if not Path(config.ca_file).exists():
                raise UserError(f"--prometheus.ca-file {config.ca_file}: file not found")
            if not Path(config.ca_file).is_file():  # a directory, a FIFO, /dev/zero
                raise UserError(f"--prometheus.ca-file {config.ca_file}: not a regular file")
            self._verify = config.ca_file
        elif config.insecure_skip_verify:
            self._verify = False
        # a token with basic auth, a user without a password file or the reverse: one line,
        # not credentials other than those given (gpu_health.prometheus_access)
        check_credentials(
            config.bearer_token_file, config.basic_auth_username, config.basic_auth_password_file
        )
        if config.bearer_token_file:
            token = read_token(config.bearer_token_file)
            self._session.headers["Authorization"] = f"Bearer {token}"
        elif config.basic_auth_username and config.basic_auth_password_file:
            password = read_secret(config.basic_auth_password_file, "basic-auth password")
            self._session.auth = (config.basic_auth_username, password)
        # connections the request deadline can cut (see gpu_health.http_deadline)
        adapter = requests_adapter(pool_connections=4, pool_maxsize=16)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        self._lock = threading.Lock()
        self.errors = 0
        self.queries = 0
        self._run_deadline: float | None = None
        self._shutting_down = False

    def set_run_deadline(self, deadline: float | None) -> None:
        """A ``time.monotonic()`` instant after which every query fails at once with
        :class:`RunTimedOut` (None: no run deadline). Queries in flight are cut at it too."""
        if not self._shutting_down:
            self._run_deadline = deadline

    def shut_down(self) -> None:
        """Fail every query from now on (the scorer is stopping): the run in flight is
        abandoned at once instead of retrying a Prometheus that may have died with it."""
        self._shutting_down = True
        self._run_deadline = time.monotonic()

    def _timed_out(self) -> RunTimedOut:
        if self._shutting_down:
            return RunTimedOut("scoring run abandoned: the scorer is shutting down", True)
        return RunTimedOut("scoring run timed out (its --run.budget passed)")

    def check_run_deadline(self) -> None:
        """Raise :class:`RunTimedOut` if the run deadline has passed: callers that tolerate a
        failed query (a feature left missing) must still abandon the run as a whole."""
        run = self._run_deadline
        if run is not None and time.monotonic() >= run:
            raise self._timed_out()

    def _deadline(self, seconds: float) -> float:
        deadline = time.monotonic() + seconds
        run = self._run_deadline
        return deadline if run is None else min(deadline, run)

    def _remaining(self, deadline: float) -> float:
        left = deadline - time.monotonic()
        if left <= 0:
            run = self._run_deadline
            if run is not None and time.monotonic() >= run:
                raise self._timed_out()
            raise _TimedOut
        return left

    def _count(self, failed: bool) -> None:
        with self._lock:
            self.queries += 1
            if failed:
                self.errors += 1

    def _send(
        self, method: str, path: str, deadline: float, data: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        """One request, status line to last byte within ``deadline``: (status, body)."""
        left = self._remaining(deadline)
        with cut_at(deadline) as cut:
            try:
                response = self._session.request(
                    method,
                    f"{self.base_url}{path}",
                    data=data,
                    timeout=(left, left),
                    verify=self._verify,
                    stream=True,
                )
                try:
                    return response.status_code, self._read_body(response, deadline, path)
                finally:
                    response.close()
            except requests.RequestException:
                if cut.fired:  # a server dripping its headers: the deadline shut the socket
                    self.check_run_deadline()  # the run's budget spent: say so, not "timed out"
                    raise _TimedOut from None
                raise

    def _post(
        self, path: str, data: dict[str, str], query_deadline: float, shape: type = dict
    ) -> Any:
        deadline = min(query_deadline, self._deadline(self.config.timeout_s))
        status, body = self._send("POST", path, deadline, data)
        if status == 429 or status >= 500:
            text = body[:200].decode("utf-8", "replace")
            raise _Retryable(f"HTTP {status}: {one_line(text, 200)}")
        try:
            payload = json.loads(body)
        except RecursionError:  # JSON nested thousands deep
            raise PrometheusError(
                f"HTTP {status} from {path}: not a Prometheus answer (JSON nested too deeply)"
            ) from None
        except ValueError:
            why = non_api_answer(status, body)
            raise PrometheusError(
                f"HTTP {status} from {path}: not a Prometheus answer; {why}"
            ) from None
        if not isinstance(payload, dict):
            raise PrometheusError(f"HTTP {status} from {path}: not a Prometheus answer")
        if payload.get("status") != "success":
            detail = f"{payload.get('errorType', '')} {payload.get('error', '')}"
            raise PrometheusError(f"HTTP {status}: {one_line(detail)}".strip())
        answer = payload.get("data")
        if not isinstance(answer, shape):
            raise PrometheusError(f"HTTP {status} from {path}: answer has no data")
        return answer

    def get_json(self, path: str) -> tuple[int, Any]:
        """One bounded GET (deadline, size and series caps, no retries): (status, JSON or None).

        For the API's side doors (build info), which must obey the same budgets as queries.
        """
        status, body = self._send("GET", path, self._deadline(self.config.timeout_s))
        try:
            return status, json.loads(body)
        except (ValueError, RecursionError):
            return status, None

    def _read_body(self, response: requests.Response, deadline: float, path: str) -> bytes:
        """The (decompressed) body, read against the deadline and the size and series caps."""
        limit, max_series = self.config.max_answer_bytes, self.config.max_series
        chunks: list[bytes] = []
        total = series = 0
        tail = b""
        while True:
            _set_read_timeout(response, self._remaining(deadline))
            try:
                chunk = response.raw.read1(65536, decode_content=True)
            except TimeoutError:
                raise _TimedOut from None
            except Exception as exc:  # urllib3 wraps socket errors in its own types
                if "timed out" in str(exc).lower():
                    raise _TimedOut from None
                raise requests.ConnectionError(one_line(exc)) from None
            if not chunk:
                return b"".join(chunks)
            total += len(chunk)
            if total > limit:
                raise PrometheusError(
                    f"{path}: answer larger than {limit} bytes (--prometheus.max-answer-bytes); "
                    "narrow the query or raise the limit"
                )
            window = tail + chunk
            series += window.count(b'"metric"') - tail.count(b'"metric"')
            if series > max_series:
                raise PrometheusError(
                    f"{path}: answer has more than {max_series} series "
                    "(--prometheus.max-series); shard the scorer (--shard) or raise the limit"
                )
            tail = window[-16:]
            chunks.append(chunk)

    def _request(self, path: str, data: dict[str, str], shape: type = dict) -> Any:
        """POST ``data`` to ``path`` with retries; the answer's ``data``, which must be a
        ``shape`` (a dict for queries, a list for the label names)."""
        attempts = max(1, self.config.retries)
        query_deadline = self._deadline(self.config.timeout_s * attempts)
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(attempts),
            wait=tenacity.wait_exponential(multiplier=self.config.backoff_s, max=10.0),
            retry=tenacity.retry_if_exception_type(
                (_Retryable, _TimedOut, requests.ConnectionError, requests.Timeout)
            ),
            reraise=True,
        )
        try:
            result = retrying(self._post, path, data, query_deadline, shape)
        except _TimedOut:
            self._count(failed=True)
            if self._run_deadline is not None and time.monotonic() >= self._run_deadline:
                raise self._timed_out() from None
            raise PrometheusError(
                f"{self.base_url}{path}: timed out ({attempts} attempt(s) of "
                f"{self.config.timeout_s:g}s; --prometheus.timeout sets it)"
            ) from None
        except (_Retryable, requests.RequestException) as exc:
            self._count(failed=True)
            raise PrometheusError(f"{self.base_url}{path}: {_short(exc)}") from None
        except PrometheusError:
            self._count(failed=True)
            raise
        self._count(failed=False)
        return result

    def query(self, promql: str, at: float | None = None) -> list[dict[str, Any]]:
        """Instant query; returns the vector (``[{"metric": {...}, "value": [t, "v"]}]``)."""
        data = {"query": engine.adapt(self, promql)}
        if at is not None:
            data["time"] = f"{at:.3f}"
        result = self._request("/api/v1/query", data)
        if result.get("resultType") == "scalar":
            return [{"metric": {}, "value": result.get("result")}]
        return [
            sample
            for sample in _series(result, promql, "value", "vector")
            if len(sample["value"]) == 2
        ]

    def query_range(
        self, promql: str, start: float, end: float, step: float
    ) -> list[dict[str, Any]]:
        """Range query; returns the matrix (``[{"metric": {...}, "values": [[t, "v"], ...]}]``).

        Callers bound the answer: Prometheus refuses more than 11,000 points per series, so a
        long history is asked for in chunks.
        """
        data = {
            "query": engine.adapt(self, promql),
            "start": f"{start:.3f}",
            "end": f"{end:.3f}",
            "step": f"{step:g}",
        }
        return _series(self._request("/api/v1/query_range", data), promql, "values", "matrix")

    def label_names(self, match: str, start: float, end: float) -> list[str]:
        """The label names of the series ``match`` selects that have samples between ``start``
        and ``end`` (``/api/v1/labels``): an index lookup, no sample is read. Names that are
        not short strings are dropped, as damaged labels are from a query's answer."""
        data = {"match[]": match, "start": f"{start:.3f}", "end": f"{end:.3f}"}
        found = self._request("/api/v1/labels", data, list)
        return [n for n in found if isinstance(n, str) and len(n) <= MAX_LABEL_CHARS]

    def close(self) -> None:
        self._session.close()


class _TimedOut(requests.Timeout):
    """This attempt's time is up (retried while the query's budget lasts); a requests.Timeout
    so that callers that only know requests' exceptions read it as one."""


def _set_read_timeout(response: requests.Response, seconds: float) -> None:
    """Tighten the socket timeout to what is left of the deadline: otherwise each read may wait
    the full timeout again, and a byte a second keeps an answer going forever."""
    connection = getattr(response.raw, "_connection", None)
    sock = getattr(connection, "sock", None)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.settimeout(max(seconds, 0.001))


def _root_cause(exc: BaseException) -> BaseException:
    """The innermost error under requests' and urllib3's wrappers (a MaxRetryError's ``reason``,
    a ProtocolError's last argument, else ``__cause__``): "connection refused", "got more than
    100 headers", a name that does not resolve."""
    seen = {id(exc)}
    while True:
        inner = getattr(exc, "reason", None)
        if not isinstance(inner, BaseException):
            last = exc.args[-1] if exc.args else None
            inner = last if isinstance(last, BaseException) else exc.__cause__
        if inner is None or id(inner) in seen:
            return exc
        seen.add(id(inner))
        exc = inner


def _short(exc: BaseException) -> str:
    text = str(exc)
    if isinstance(exc, requests.exceptions.SSLError):
        return f"TLS error: {one_line(text[-200:])}"
    if isinstance(exc, requests.ConnectionError):
        # Only a refused connection means "not up": a server that answers with more than 100
        # header lines or resets mid-answer is up, and saying so sent people looking at the
        # wrong thing.
        root = _root_cause(exc)
        if isinstance(root, ConnectionRefusedError):
            return "connection refused (is Prometheus up?)"
        if isinstance(root, socket.gaierror):
            return f"cannot resolve the host name ({one_line(str(root)[:200])})"
        return f"connection failed: {one_line(str(root)[:200]) or type(root).__name__}"
    if isinstance(exc, requests.Timeout):
        return "timed out"
    return one_line(text)


#: The longest label value kept. GPU identities (UUID, node, model, driver) are tens of
#: characters; a series with a megabyte label is damaged, and each one copied into every
#: published series of that GPU would swell the scorer's memory and its /metrics.
MAX_LABEL_CHARS = 1024


def _well_formed_labels(metric: Any) -> bool:
    return isinstance(metric, dict) and all(
        isinstance(v, str) and len(v) <= MAX_LABEL_CHARS for v in metric.values()
    )


def _series(result: Any, promql: str, key: str, kind: str) -> list[dict[str, Any]]:
    """The well-formed series of an answer: a partial or damaged answer loses only its damaged
    series (not a list, labels that are not short strings), never the whole query."""
    items = result.get("result", [])
    if not isinstance(items, list):
        raise PrometheusError(f"query {promql[:80]!r}: result is not a {kind}")
    return [
        item
        for item in items
        if isinstance(item, dict)
        and _well_formed_labels(item.get("metric"))
        and isinstance(item.get(key), list)
    ]
