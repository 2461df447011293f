"""The scorer's Prometheus client against a fake Prometheus answering anything at all.

A local HTTP server (127.0.0.1) plays a Prometheus that answers malformed, partial, empty, NaN/Inf
and slow responses; hypothesis picks the answers. The contract tested: ``PromClient.query``
returns a list of samples or raises ``PrometheusError`` (the one error its callers handle), never
anything else; ``compute_features`` turns non-finite values into NaN (missing), never into a
number; and a failed query costs at most its timeout times its attempts.
"""

from __future__ import annotations

import json
import math
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import pytest

pytest.importorskip("requests")
pytest.importorskip("tenacity")

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from gpu_health.scorer.promclient import PromClient, PromConfig, PrometheusError


@dataclass
class Answer:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    delay_s: float = 0.0


class _QuietServer(ThreadingHTTPServer):
    """A client that gave up on a slow answer (the point of the timeout tests) is no error: the
    default handler printed a BrokenPipeError traceback to stderr seconds later, inside whichever
    test of the same worker was running then, and failed its one-line-error assertion."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


class FakePrometheus:
    """Answers every request with ``self.answer``; records the requests it got."""

    def __init__(self) -> None:
        self.answer = Answer()
        self.queue: list[Answer] = []  # answered first, one per request, before ``answer``
        self.requests = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _reply(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                if self.path.startswith("/api/v1/status/buildinfo"):
                    # no build info (an older Prometheus): the client assumes Prometheus
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                outer.requests += 1
                answer = outer.queue.pop(0) if outer.queue else outer.answer
                if answer.delay_s:
                    time.sleep(answer.delay_s)
                self.send_response(answer.status)
                self.send_header("Content-Type", answer.content_type)
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)

            do_POST = do_GET = _reply

            def log_message(self, *args: Any) -> None:
                pass

        self.server = _QuietServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def prom() -> Iterator[FakePrometheus]:
    fake = FakePrometheus()
    yield fake
    fake.close()


def client(url: str, timeout: float = 2.0, retries: int = 1) -> PromClient:
    return PromClient(PromConfig(url=url, timeout_s=timeout, retries=retries, backoff_s=0.0))


# -- strategies ---------------------------------------------------------------------------------

json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
odd_numbers = st.sampled_from(
    ["NaN", "+Inf", "-Inf", "Inf", "nan", "1e309", "-0", "", "abc", "0x10", "1_000", " 1 "]
)
sample_values = st.one_of(
    st.tuples(st.floats(allow_nan=False) | st.integers(), odd_numbers | st.floats().map(repr)).map(
        list
    ),
    json_values,
)
samples = st.fixed_dictionaries(
    {},
    optional={
        "metric": st.dictionaries(
            st.sampled_from(["uuid", "gpu", "node", "__name__"]), json_values, max_size=3
        )
        | json_values,
        "value": sample_values,
        "values": st.lists(sample_values, max_size=3),
    },
)
prom_like = st.fixed_dictionaries(
    {"status": st.sampled_from(["success", "error", "", None])},
    optional={
        "data": st.fixed_dictionaries(
            {},
            optional={
                "resultType": st.sampled_from(["vector", "matrix", "scalar", "string", "", None]),
                "result": st.lists(samples, max_size=4) | json_values,
            },
        )
        | json_values,
        "errorType": json_values,
        "error": json_values,
        "warnings": json_values,
    },
)


def _encode(value: Any) -> bytes:
    return json.dumps(value, allow_nan=True).encode()


bodies = st.one_of(
    st.binary(max_size=64),
    json_values.map(_encode),
    prom_like.map(_encode),
    # partial: a well-formed answer cut short (a proxy or Prometheus dying mid-response)
    st.tuples(prom_like.map(_encode), st.integers(min_value=0, max_value=200)).map(
        lambda pair: pair[0][: pair[1]]
    ),
    st.just(b""),
)
statuses = st.sampled_from([200, 200, 200, 204, 400, 401, 404, 422, 429, 500, 502, 503])


# -- properties ---------------------------------------------------------------------------------


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(status=statuses, body=bodies)
@example(status=200, body=b"null")
@example(status=200, body=b'{"status": "success"}')
def test_query_returns_samples_or_raises_prometheus_error(
    prom: FakePrometheus, status: int, body: bytes
) -> None:
    prom.answer = Answer(status, body)
    c = client(prom.url)
    try:
        result = c.query("up")
    except PrometheusError as exc:
        assert str(exc) and "\n" not in str(exc).strip()
        return
    finally:
        c.close()
    assert isinstance(result, list)
    for sample in result:
        assert isinstance(sample, dict)


@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(values=st.lists(odd_numbers | st.floats().map(repr), min_size=1, max_size=6))
@example(values=["NaN", "+Inf", "-Inf", "1"])
@example(values=["abc"])
def test_non_finite_values_become_missing_not_numbers(
    prom: FakePrometheus, values: list[str]
) -> None:
    """NaN, ±Inf and unparsable values from Prometheus must never reach the model as numbers."""
    from gpu_health.scorer import features as feats

    schema = feats.schema_by_name("ours")
    uuids = [f"GPU-{i}" for i in range(len(values))]
    result = [
        {"metric": {schema.uuid: u, "gpu": str(i), "node": "n", "model": "m"}, "value": [0, v]}
        for i, (u, v) in enumerate(zip(uuids, values, strict=True))
    ]
    prom.answer = Answer(
        200, _encode({"status": "success", "data": {"resultType": "vector", "result": result}})
    )
    c = client(prom.url)
    try:
        frame = feats.compute_features(c, "ours", at=0.0, workers=1)
    except PrometheusError:
        return
    finally:
        c.close()
    for i, raw in enumerate(values):
        try:
            parsed = float(raw)
        except ValueError:
            parsed = math.nan
        # Every column read from Prometheus' answer (gpu_model_key comes from the labels).
        from_answer = np.array([f.from_inventory is None for f in feats.FEATURES])
        for v in frame.values[i][from_answer]:
            assert math.isnan(v) or math.isfinite(v)
            if not math.isfinite(parsed):
                assert math.isnan(v), f"{raw!r} became {v}"


def test_slow_prometheus_is_bounded_by_timeout_and_attempts(prom: FakePrometheus) -> None:
    prom.answer = Answer(200, _encode({"status": "success", "data": {"result": []}}), delay_s=1.5)
    c = client(prom.url, timeout=0.3, retries=2)
    before = prom.requests
    started = time.monotonic()
    with pytest.raises(PrometheusError, match=r"(?i)tim"):
        c.query("up")
    elapsed = time.monotonic() - started
    c.close()
    assert elapsed < 2 * 0.3 + 1.0
    assert prom.requests - before == 2  # retried once, then gave up


def test_prometheus_down_is_a_prometheus_error(prom: FakePrometheus) -> None:
    c = client("http://127.0.0.1:9")  # nothing listens on the discard port
    with pytest.raises(PrometheusError, match="connection"):
        c.query("up")
    c.close()


def test_transient_503_then_success_is_retried(prom: FakePrometheus) -> None:
    good = _encode({"status": "success", "data": {"resultType": "vector", "result": []}})
    prom.queue = [Answer(503, b"overloaded"), Answer(429, b"slow down")]
    prom.answer = Answer(200, good)
    before = prom.requests
    c = client(prom.url, retries=3)
    try:
        assert c.query("up") == []
    finally:
        c.close()
    assert prom.requests - before == 3
