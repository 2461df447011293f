"""The Prometheus client: retries with back-off, credentials from files, headers, TLS with a CA.

A small recording HTTP server stands in where the test must see what the client sent (headers,
attempt count) or make Prometheus fail on purpose; query semantics are tested against the real
Prometheus in test_scorer_features.py.
"""

from __future__ import annotations

import base64
import contextlib
import json
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from gpu_health.errors import UserError
from gpu_health.prometheus_access import parse_headers
from gpu_health.scorer.promclient import PromClient, PromConfig, PrometheusError

OK = {"status": "success", "data": {"resultType": "vector", "result": []}}


class Recorder:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.script: list[tuple[int, dict[str, Any]]] = []


@pytest.fixture
def recorder() -> Iterator[tuple[Recorder, ThreadingHTTPServer]]:
    yield from _recording_server(None)


def _recording_server(
    tls: ssl.SSLContext | None,
) -> Iterator[tuple[Recorder, ThreadingHTTPServer]]:
    rec = Recorder()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            body = self.rfile.read(length).decode()
            rec.requests.append({"headers": dict(self.headers), "body": body, "path": self.path})
            status, payload = rec.script.pop(0) if rec.script else (200, OK)
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield rec, server
    server.shutdown()
    server.server_close()


def _url(server: ThreadingHTTPServer, scheme: str = "http") -> str:
    return f"{scheme}://127.0.0.1:{server.server_address[1]}"


def test_retries_transient_errors_then_succeeds(recorder) -> None:
    rec, server = recorder
    rec.script = [(503, {"status": "error"}), (502, {}), (200, OK)]
    client = PromClient(PromConfig(_url(server), retries=3, backoff_s=0.01))
    assert client.query("up", at=1234.5) == []
    assert len(rec.requests) == 3
    assert "time=1234.500" in rec.requests[-1]["body"]
    assert client.errors == 0


def test_gives_up_after_retries_and_counts_the_error(recorder) -> None:
    rec, server = recorder
    rec.script = [(503, {})] * 5
    client = PromClient(PromConfig(_url(server), retries=2, backoff_s=0.01))
    with pytest.raises(PrometheusError, match="HTTP 503"):
        client.query("up")
    assert len(rec.requests) == 2 and client.errors == 1


def test_bad_query_is_not_retried(recorder) -> None:
    rec, server = recorder
    rec.script = [(400, {"status": "error", "errorType": "bad_data", "error": "parse error"})]
    client = PromClient(PromConfig(_url(server), retries=3, backoff_s=0.01))
    with pytest.raises(PrometheusError, match="parse error"):
        client.query("up{")
    assert len(rec.requests) == 1


def test_label_names_are_asked_by_post_and_checked(recorder) -> None:
    """The label-names lookup (``/api/v1/labels``) goes through the same retries; an answer
    that is not a list is an error, and names that are not short strings are dropped, as a
    query's damaged labels are."""
    rec, server = recorder
    names = ["UUID", "Hostname", 7, None, "x" * 5000]
    rec.script = [(503, {}), (200, {"status": "success", "data": names})]
    client = PromClient(PromConfig(_url(server), retries=2, backoff_s=0.01))
    assert client.label_names('{__name__="up"}', 100.0, 200.5) == ["UUID", "Hostname"]
    assert [r["path"] for r in rec.requests] == ["/api/v1/labels"] * 2
    assert "start=100.000" in rec.requests[-1]["body"] and "end=200.500" in rec.requests[-1]["body"]
    assert "match%5B%5D=%7B__name__%3D%22up%22%7D" in rec.requests[-1]["body"]
    rec.script = [(200, {"status": "success", "data": {"resultType": "vector"}})]
    with pytest.raises(PrometheusError, match="answer has no data"):
        client.label_names("up", 0.0, 1.0)
    assert client.errors == 1


def test_connection_refused_is_an_error_not_a_crash() -> None:
    client = PromClient(PromConfig("http://127.0.0.1:9", retries=2, backoff_s=0.01, timeout_s=1))
    with pytest.raises(PrometheusError, match=r"connection refused \(is Prometheus up\?\)"):
        client.query("up")
    assert client.errors == 1


def test_a_connection_error_names_its_cause() -> None:
    """A server that is up but answers something the client refuses is not "down": the error
    names what went wrong (it said "connection failed (is Prometheus up?)" for all of them)."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def answer_with_too_many_headers() -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = listener.accept()
                with conn:
                    conn.recv(65536)
                    headers = b"".join(b"X-%d: a\r\n" % i for i in range(150))
                    conn.sendall(b"HTTP/1.1 200 OK\r\n" + headers + b"Content-Length: 2\r\n\r\n{}")

    threading.Thread(target=answer_with_too_many_headers, daemon=True).start()
    try:
        client = PromClient(PromConfig(f"http://127.0.0.1:{port}", retries=1, timeout_s=2))
        with pytest.raises(PrometheusError, match="connection failed: got more than 100 headers"):
            client.query("up")
    finally:
        listener.close()
    client = PromClient(PromConfig("http://no-such-host.invalid:9090", retries=1, timeout_s=2))
    with pytest.raises(PrometheusError, match="cannot resolve the host name"):
        client.query("up")


def test_credentials_come_from_files_and_headers_are_sent(recorder, tmp_path: Path) -> None:
    rec, server = recorder
    token = tmp_path / "token"
    token.write_text("s3cret-token\n")
    client = PromClient(
        PromConfig(
            _url(server),
            bearer_token_file=str(token),
            headers=parse_headers(["X-Scope-OrgID: team-a"]),
        )
    )
    client.query("up")
    headers = rec.requests[-1]["headers"]
    assert headers["Authorization"] == "Bearer s3cret-token"
    assert headers["X-Scope-OrgID"] == "team-a"

    password = tmp_path / "password"
    password.write_text("hunter2")
    client = PromClient(
        PromConfig(
            _url(server), basic_auth_username="scorer", basic_auth_password_file=str(password)
        )
    )
    client.query("up")
    expected = base64.b64encode(b"scorer:hunter2").decode()
    assert rec.requests[-1]["headers"]["Authorization"] == f"Basic {expected}"


def test_missing_credential_file_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"cannot read bearer token file .*nope: file not found"):
        PromClient(PromConfig("http://127.0.0.1:9", bearer_token_file=str(tmp_path / "nope")))
    with pytest.raises(UserError, match="expected 'Name: value'"):
        parse_headers(["no-separator"])


@pytest.mark.parametrize("header", ["Authorization: Bearer s3cret", "proxy-authorization=s3cret"])
def test_a_credential_header_on_the_command_line_is_refused_unshown(
    header: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A flag's value is in the process list: the token belongs in --prometheus.bearer-token-file.
    Refused at start through the real command line, the value never printed."""
    from gpu_health.scorer import cli as scorer_cli
    from tests.base.command_runs import is_one_line_error, run_main

    argv = ["score", "--at", "0", "--prometheus.url", "http://127.0.0.1:9"]
    code, err = run_main(scorer_cli.main, [*argv, "--prometheus.header", header], capsys)
    assert is_one_line_error(code, err), err
    assert "--prometheus.bearer-token-file" in err and "s3cret" not in err, err
    assert parse_headers(["X-Scope-OrgID: team-a"]) == {"X-Scope-OrgID": "team-a"}


def test_tls_with_ca_file(tmp_path: Path) -> None:
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    servers = _recording_server(context)
    _rec, server = next(servers)
    try:
        trusted = PromClient(PromConfig(_url(server, "https"), ca_file=str(cert), retries=1))
        assert trusted.query("up") == []
        untrusted = PromClient(PromConfig(_url(server, "https"), retries=1, timeout_s=2))
        with pytest.raises(PrometheusError):
            untrusted.query("up")
    finally:
        next(servers, None)
