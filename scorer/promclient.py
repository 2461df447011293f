"""The one HTTP client the scorer uses to talk to Prometheus (or Mimir, Cortex, Thanos).

Every request goes through :class:`PromClient`, so retries with back-off, timeouts, TLS with a CA
file, credentials read from files and tenant headers are configured once. Credentials are read
from files (never from the command line, where ``ps`` would show them) and never logged.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import tenacity

from gpu_health.errors import UserError

log = logging.getLogger(__name__)


class PrometheusError(Exception):
    """A query failed after its retries (Prometheus down, timeout, or an error answer)."""


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


def _read_secret(path: str, what: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise UserError(f"cannot read {what} file {path}: {exc.strerror}") from None


def parse_headers(pairs: list[str]) -> dict[str, str]:
    """``Name: value`` or ``Name=value`` strings from the command line into a header dict."""
    headers: dict[str, str] = {}
    for pair in pairs:
        sep = ":" if ":" in pair else "="
        name, found, value = pair.partition(sep)
        if not found or not name.strip():
            raise UserError(f"--prometheus.header {pair!r}: expected 'Name: value'")
        headers[name.strip()] = value.strip()
    return headers


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
            if not Path(config.ca_file).is_file():
                raise UserError(f"--prometheus.ca-file {config.ca_file}: file not found")
            self._verify = config.ca_file
        elif config.insecure_skip_verify:
            self._verify = False
        if config.bearer_token_file:
            token = _read_secret(config.bearer_token_file, "bearer token")
            self._session.headers["Authorization"] = f"Bearer {token}"
        elif config.basic_auth_username:
            password = ""
            if config.basic_auth_password_file:
                password = _read_secret(config.basic_auth_password_file, "basic-auth password")
            self._session.auth = (config.basic_auth_username, password)
        adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=16)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        self._lock = threading.Lock()
        self.errors = 0
        self.queries = 0

    def _count(self, failed: bool) -> None:
        with self._lock:
            self.queries += 1
            if failed:
                self.errors += 1

    def _post(self, path: str, data: dict[str, str]) -> Any:
        response = self._session.post(
            f"{self.base_url}{path}", data=data, timeout=self.config.timeout_s, verify=self._verify
        )
        if response.status_code == 429 or response.status_code >= 500:
            raise _Retryable(f"HTTP {response.status_code}: {response.text[:200].strip()}")
        try:
            payload = response.json()
        except ValueError:
            raise PrometheusError(
                f"HTTP {response.status_code} from {path}: not a Prometheus answer"
            ) from None
        if not isinstance(payload, dict):
            raise PrometheusError(
                f"HTTP {response.status_code} from {path}: not a Prometheus answer"
            )
        if payload.get("status") != "success":
            detail = f"{payload.get('errorType', '')} {payload.get('error', '')}"
            raise PrometheusError(f"HTTP {response.status_code}: {_one_line(detail)}".strip())
        answer = payload.get("data")
        if not isinstance(answer, dict):
            raise PrometheusError(f"HTTP {response.status_code} from {path}: answer has no data")
        return answer

    def _request(self, path: str, data: dict[str, str]) -> Any:
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(max(1, self.config.retries)),
            wait=tenacity.wait_exponential(multiplier=self.config.backoff_s, max=10.0),
            retry=tenacity.retry_if_exception_type(
                (_Retryable, requests.ConnectionError, requests.Timeout)
            ),
            reraise=True,
        )
        try:
            result = retrying(self._post, path, data)
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
        data = {"query": promql}
        if at is not None:
            data["time"] = f"{at:.3f}"
        result = self._request("/api/v1/query", data)
        if result.get("resultType") == "scalar":
            return [{"metric": {}, "value": result.get("result")}]
        vector = result.get("result", [])
        if not isinstance(vector, list):
            raise PrometheusError(f"query {promql[:80]!r}: result is not a vector")
        # A partial or damaged answer loses only its damaged samples, never the whole query.
        return [
            sample
            for sample in vector
            if isinstance(sample, dict)
            and isinstance(sample.get("metric"), dict)
            and isinstance(sample.get("value"), list)
            and len(sample["value"]) == 2
        ]

    def query_range(
        self, promql: str, start: float, end: float, step: float
    ) -> list[dict[str, Any]]:
        """Range query; returns the matrix (``[{"metric": {...}, "values": [[t, "v"], ...]}]``).

        Callers bound the answer: Prometheus refuses more than 11,000 points per series, so a
        long history is asked for in chunks.
        """
        data = {"query": promql, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:g}"}
        result = self._request("/api/v1/query_range", data)
        matrix = result.get("result", [])
        if not isinstance(matrix, list):
            raise PrometheusError(f"query {promql[:80]!r}: result is not a matrix")
        return [
            series
            for series in matrix
            if isinstance(series, dict)
            and isinstance(series.get("metric"), dict)
            and isinstance(series.get("values"), list)
        ]

    def close(self) -> None:
        self._session.close()


def _one_line(text: str, limit: int = 300) -> str:
    """Prometheus error text as one bounded line (it may quote a multi-line query)."""
    return " ".join(str(text).split())[:limit]


def _short(exc: BaseException) -> str:
    text = str(exc)
    if isinstance(exc, requests.exceptions.SSLError):
        return f"TLS error: {text[-200:]}"
    if isinstance(exc, requests.ConnectionError):
        return "connection failed (is Prometheus up?)"
    if isinstance(exc, requests.Timeout):
        return "timed out"
    return _one_line(text)
