"""Malformed web-config files: each is one line naming the file, the key and what is allowed."""

from __future__ import annotations

import base64
import http.client
import logging
import shutil
import subprocess
import sys
import time
from pathlib import Path

import bcrypt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpu_health import stack
from gpu_health.errors import ConfigError, UserError
from gpu_health.web.auth import MAX_BCRYPT_COST, BasicAuth, check_bcrypt_costs
from gpu_health.web.config import TLS_KEYS, load_web_config, parse_duration, parse_web_config
from gpu_health.web.live import WebConfigSource
from gpu_health.web.protocol import Response
from gpu_health.web.server import WebServer

HASH = "$2y$10$X0h1gDsPszWURQaxFh.zoubFi6DXncSjhoQNJgRrnGs7EsimhC7zG"  # toolkit docs' example
TLS = "tls_server_config:\n  cert_file: c.pem\n  key_file: k.pem\n"

CASES = [
    # (file text, key named in the error, words the error must contain)
    ("tls_server_config: [\n", "", "invalid YAML at line"),
    ("- a\n- b\n", "", "expected a mapping"),
    ("basic_auth_user:\n  a: b\n", "basic_auth_user", "allowed: basic_auth_users"),
    ("tls_server_config:\n  certfile: c.pem\n", "tls_server_config.certfile", "allowed: cert"),
    ("tls_server_config:\n  key_file: k.pem\n", "tls_server_config.cert_file", "missing"),
    ("tls_server_config:\n  cert_file: c.pem\n", "tls_server_config.key_file", "missing"),
    (TLS + "  cert: inline\n", "tls_server_config.cert", "either cert_file or cert"),
    (
        TLS + "  min_version: TLS14\n",
        "tls_server_config.min_version",
        "allowed: TLS10, TLS11, TLS12, TLS13",
    ),
    (
        TLS + "  min_version: TLS13\n  max_version: TLS12\n",
        "tls_server_config.min_version",
        "above max_version",
    ),
    (TLS + "  min_version: 1.2\n", "tls_server_config.min_version", "expected a string"),
    (
        TLS + "  client_auth_type: Always\n",
        "tls_server_config.client_auth_type",
        "allowed: NoClientCert",
    ),
    (
        TLS + "  client_auth_type: RequireAnyClientCert\n",
        "tls_server_config.client_auth_type",
        "not supported",
    ),
    (
        'tls_server_config:\n  cert_file: ""\n  key_file: ""\n  client_auth_type: "x"\n',
        "tls_server_config.cert_file",
        "missing",
    ),
    (
        TLS + "  cipher_suites: [TLS_AES_128_GCM_SHA256]\n",
        "tls_server_config.cipher_suites",
        "only TLS 1.3 suites",
    ),
    (
        TLS + "  cipher_suites: [TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384]\n",
        "tls_server_config.cipher_suites",
        "HTTP/2-required",
    ),
    ("rate_limit:\n  burst: 1\nrate_limit:\n  burst: 2\n", "", "duplicate key 'rate_limit'"),
    (
        TLS + "  client_ca_file: ca.pem\n",
        "tls_server_config.client_auth_type",
        "without a client auth",
    ),
    (
        TLS + "  client_allowed_sans: [a]\n",
        "tls_server_config.client_allowed_sans",
        "RequireAndVerifyClientCert",
    ),
    (
        TLS + "  cipher_suites: [TLS_RSA_WITH_RC4_128_SHA]\n",
        "tls_server_config.cipher_suites[0]",
        "allowed: TLS_AES",
    ),
    (
        TLS + "  cipher_suites: TLS_AES_128_GCM_SHA256\n",
        "tls_server_config.cipher_suites",
        "expected a list",
    ),
    (
        TLS + "  curve_preferences: [P999]\n",
        "tls_server_config.curve_preferences[0]",
        "allowed: CurveP256",
    ),
    (
        TLS + "  prefer_server_cipher_suites: yes please\n",
        "tls_server_config.prefer_server_cipher_suites",
        "true or false",
    ),
    ("basic_auth_users: [a, b]\n", "basic_auth_users", "expected a mapping"),
    ("basic_auth_users:\n  'a:b': '" + HASH + "'\n", "basic_auth_users", "without ':'"),
    ("basic_auth_users:\n  alice: '$2y$10$short'\n", "basic_auth_users.alice", "not a bcrypt hash"),
    ("basic_auth_users:\n  alice: 1234\n", "basic_auth_users.alice", "not a bcrypt hash"),
    (
        "http_server_config:\n  headers:\n    X-Frame-Options: allow\n",
        "http_server_config.headers.X-Frame-Options",
        "allowed: deny, sameorigin",
    ),
    (
        "http_server_config:\n  headers:\n    X-Content-Type-Options: sniff\n",
        "http_server_config.headers.X-Content-Type-Options",
        "allowed: nosniff",
    ),
    (
        "http_server_config:\n  headers:\n    Server: evil\n",
        "http_server_config.headers.Server",
        "allowed: Content-Security-Policy",
    ),
    (
        'http_server_config:\n  headers:\n    Content-Security-Policy: "a\\r\\nSet-Cookie: x"\n',
        "http_server_config.headers.Content-Security-Policy",
        "one line",
    ),
    ("http_server_config:\n  http2: maybe\n", "http_server_config.http2", "true or false"),
    ("http_server_config:\n  http3: true\n", "http_server_config.http3", "allowed: headers, http2"),
    ("rate_limit:\n  interval: fast\n  burst: 1\n", "rate_limit.interval", "allowed: e.g. 100ms"),
    ("rate_limit:\n  interval: 1s\n  burst: -1\n", "rate_limit.burst", "out of range"),
    (
        "rate_limit:\n  interval: 1s\n  burst: 99999999999999999999999\n",
        "rate_limit.burst",
        "out of range",
    ),
]


@pytest.mark.parametrize(("text", "key", "words"), CASES, ids=[c[1] or c[2] for c in CASES])
def test_malformed_web_config_is_one_clear_error(
    tmp_path: Path, text: str, key: str, words: str
) -> None:
    path = tmp_path / "web-config.yml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_web_config(path)
    message = str(info.value)
    assert message.startswith(f"{path}: {key}" if key else str(path)), message
    assert words in message, message
    assert "\n" not in message


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"absent\.yml: file not found"):
        load_web_config(tmp_path / "absent.yml")


def test_toolkit_sample_file_is_accepted(tmp_path: Path) -> None:
    """The example from exporter-toolkit's docs loads unchanged (operators reuse their files)."""
    path = tmp_path / "web-config.yml"
    path.write_text(
        TLS
        + "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.pem\n"
        + "  min_version: TLS12\n  cipher_suites:\n    - TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256\n"
        + "  curve_preferences: [X25519, CurveP256]\n"
        + "http_server_config:\n  http2: true\n  headers:\n    X-Frame-Options: sameorigin\n"
        + "    X-Content-Type-Options: ''\n"
        + f"basic_auth_users:\n  alice: '{HASH}'\n"
        + "rate_limit:\n  interval: 100ms\n  burst: 20\n"
    )
    config = load_web_config(path)
    assert config.tls is not None
    assert (
        config.tls.cert_file == tmp_path / "c.pem"
        and config.tls.client_ca_file == tmp_path / "ca.pem"
    )
    assert config.tls.client_auth_type == "RequireAndVerifyClientCert"
    assert dict(config.headers) == {"X-Frame-Options": "sameorigin"}  # blank means unset
    assert set(config.basic_auth_users) == {"alice"}
    assert config.rate_limit is not None and config.rate_limit.interval_seconds == pytest.approx(
        0.1
    )


def test_empty_file_and_empty_tls_section_mean_plain_http(tmp_path: Path) -> None:
    for text in ("", "tls_server_config: {}\n", "tls_server_config:\n  min_version: TLS13\n"):
        path = tmp_path / "web.yml"
        path.write_text(text)
        assert load_web_config(path).tls is None


@pytest.mark.parametrize(
    ("text", "seconds"), [("1s", 1), ("100ms", 0.1), ("1m30s", 90), ("2h", 7200)]
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "1", "s", "1.5s", "-1s", "1 s"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)


def _nested(depth: int) -> st.SearchStrategy[object]:
    """Scalars, lists and mappings nested up to ``depth`` levels (built level by level, not with
    st.recursive: Hypothesis 6.170 warned now and then, depending on its strategy cache, that
    the recursive form "can't actually recurse")."""
    values: st.SearchStrategy[object] = _scalars
    for _ in range(depth):
        values = (
            _scalars
            | st.lists(values, max_size=3)
            | st.dictionaries(st.text(max_size=8), values, max_size=3)
        )
    return values


_values = _nested(3)
_tls = st.dictionaries(st.sampled_from(sorted(TLS_KEYS)), _values, max_size=6)
_documents = (
    st.fixed_dictionaries(
        {},
        optional={
            "tls_server_config": _tls | _values,
            "basic_auth_users": st.dictionaries(st.text(max_size=6), _values, max_size=2) | _values,
            "http_server_config": st.fixed_dictionaries(
                {},
                optional={
                    "headers": st.dictionaries(st.text(max_size=8), _values),
                    "http2": _values,
                },
            )
            | _values,
            "rate_limit": st.dictionaries(st.sampled_from(["interval", "burst"]), _values)
            | _values,
        },
    )
    | _values
)


@settings(max_examples=300, deadline=None)
@given(document=_documents)
def test_any_document_is_accepted_or_one_config_error(document: object) -> None:
    """Whatever the YAML holds, the loader answers with a config or a ConfigError, nothing else."""
    try:
        parse_web_config(document, "web.yml", Path("/nonexistent"))
    except ConfigError as exc:
        assert str(exc).startswith("web.yml") and "\n" not in str(exc)


def _hash_of_cost(cost: int) -> str:
    """A well-formed bcrypt hash string of ``cost`` (never checked against: no bcrypt run)."""
    return f"$2b${cost:02d}$" + "X0h1gDsPszWURQaxFh.zoubFi6DXncSjhoQNJgRrnGs7EsimhC7zG"


def test_bcrypt_cost_above_the_cap_is_refused_at_start_up(tmp_path: Path) -> None:
    """A ``$2b$31$`` hash was accepted, and the dummy hash for unknown users takes the highest
    configured cost: one request naming an unknown user then held the bcrypt lock for hours."""
    path = tmp_path / "web.yml"
    path.write_text(f"basic_auth_users:\n  alice: '{_hash_of_cost(31)}'\n")
    with pytest.raises(UserError) as caught:
        WebServer("127.0.0.1:0", {}, web_config=path)
    message = str(caught.value)
    assert "basic_auth_users.alice" in message and "bcrypt cost 31" in message
    assert f"maximum {MAX_BCRYPT_COST}" in message and "\n" not in message


def test_bcrypt_cost_at_the_cap_is_accepted() -> None:
    auth = BasicAuth({"alice": _hash_of_cost(MAX_BCRYPT_COST)})
    assert auth.check(None) is None  # built; no check run
    with pytest.raises(ConfigError, match=r"basic_auth_users\.bob: bcrypt cost 15"):
        check_bcrypt_costs({"bob": _hash_of_cost(MAX_BCRYPT_COST + 1)}, "web.yml")


def _get(port: int, user: str, password: str) -> tuple[int, str | None]:
    """(status, X-Frame-Options) of ``GET /`` as ``user``."""
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", "/", headers={"Authorization": f"Basic {token}"})
        response = conn.getresponse()
        response.read()
        return response.status, response.getheader("X-Frame-Options")
    finally:
        conn.close()


def test_bcrypt_cost_above_the_cap_is_refused_on_reload(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A live reload applies the cap as start-up does: a user with a cost-15 hash added to the
    file of a running server leaves the previous config in force (old users, old headers, a
    dummy hash of the old cost for unknown users), with one log line naming file and field."""
    hashed = bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=4)).decode()
    assert hashed.startswith("$2b$04$")
    too_costly = "$2b$15$" + hashed[len("$2b$04$") :]  # well-formed; never computed
    path = tmp_path / "web.yml"
    path.write_text(f"basic_auth_users:\n  alice: '{hashed}'\n")
    server = WebServer(
        "127.0.0.1:0", {"/": lambda _r: Response(200, b"ok\n")}, web_config=path
    ).start()
    source = server._state.source
    assert source is not None
    try:
        assert _get(server.port, "alice", "pw") == (200, None)
        time.sleep(WebConfigSource.CHECK_INTERVAL + 0.1)  # the next request looks at the file
        with caplog.at_level(logging.INFO, logger="gpu_health.web.config"):
            path.write_text(
                f"basic_auth_users:\n  alice: '{hashed}'\n  mallory: '{too_costly}'\n"
                "http_server_config:\n  headers:\n    X-Frame-Options: deny\n"
            )
            assert _get(server.port, "alice", "pw") == (200, None)  # old users, old headers
            started = time.monotonic()
            assert _get(server.port, "mallory", "x") == (401, None)  # unknown to the old config
            assert _get(server.port, "alice", "wrong") == (401, None)
            # Both bcrypt checks ran at cost 4 (ms); one at cost 15 takes seconds.
            assert time.monotonic() - started < 1.0
            time.sleep(WebConfigSource.CHECK_INTERVAL + 0.1)  # checked again: unchanged, quiet
            assert _get(server.port, "alice", "pw") == (200, None)
        lines = [r.getMessage() for r in caplog.records if r.name == "gpu_health.web.config"]
        assert len(lines) == 1 and source.reload_errors == 1, lines
        assert str(path) in lines[0] and "basic_auth_users.mallory" in lines[0], lines
        assert "bcrypt cost 15" in lines[0] and "not reloaded" in lines[0], lines
        assert "\n" not in lines[0]
        # A fixed file is then taken as usual.
        path.write_text(
            f"basic_auth_users:\n  alice: '{hashed}'\n"
            "http_server_config:\n  headers:\n    X-Frame-Options: deny\n"
        )
        time.sleep(WebConfigSource.CHECK_INTERVAL + 0.1)
        assert _get(server.port, "alice", "pw") == (200, "deny")
        assert source.reload_errors == 1
    finally:
        server.shutdown()


# -- a reload never removes basic auth ------------------------------------------------------------

#: The real commands, which serve through the same WebServer and WebConfigSource.
COMMANDS = {
    "exporter": ["gpu-health-exporter", "--backend", "sim"],
    "scorer": ["gpu-health-scorer", "serve", "--prometheus.url", "http://127.0.0.1:9", "--no-econ"],
}


def _metrics(port: int, auth: tuple[str, str] | None = None) -> int:
    """The status of ``GET /metrics``, with basic auth when given."""
    headers = {}
    if auth is not None:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", "/metrics", headers=headers)
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


@pytest.mark.parametrize("name", list(COMMANDS))
def test_emptied_web_config_keeps_basic_auth_on(name: str, tmp_path: Path) -> None:
    """The probe's finding: a web config truncated while the exporter runs (a tool that
    truncates before it writes, a bad ConfigMap) read as "no auth" and was reloaded, so an
    unauthenticated scrape got 200. Removing auth now needs a restart, as switching TLS does:
    the reload is refused with one ERROR line and the users in force stay in force; a changed
    set of users still applies without a restart."""
    exe = shutil.which(COMMANDS[name][0], path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.skip(f"{COMMANDS[name][0]} not installed")
    hashed = bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=4)).decode()
    config = tmp_path / "live.yml"
    config.write_text(f"basic_auth_users:\n  prom: '{hashed}'\n")
    port = stack.free_port()
    log_file = tmp_path / "out.log"
    argv = [*COMMANDS[name][1:], "--web.listen-address", f"127.0.0.1:{port}"]
    with log_file.open("wb") as out:
        proc = subprocess.Popen(
            [exe, *argv, "--web.config.file", str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def web_config_lines() -> list[str]:
        return [
            line for line in log_file.read_text().splitlines() if "gpu_health.web.config" in line
        ]

    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log_file.read_text()
            try:
                if _metrics(port, ("prom", "pw")) == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, log_file.read_text()
            time.sleep(0.2)
        assert _metrics(port) == 401

        time.sleep(WebConfigSource.CHECK_INTERVAL + 0.1)  # the next request looks at the file
        config.write_bytes(b"")  # `: > live.yml`
        assert _metrics(port) == 401  # this request saw the change and refused it
        assert _metrics(port, ("prom", "pw")) == 200
        assert _metrics(port, ("prom", "wrong")) == 401
        lines = web_config_lines()
        assert len(lines) == 1, lines
        assert " ERROR " in lines[0] and str(config) in lines[0], lines
        assert "basic auth stays on" in lines[0] and "needs a restart" in lines[0], lines
        assert "keeping the previous one" in lines[0], lines

        # Changing the users is still a reload like any other.
        time.sleep(WebConfigSource.CHECK_INTERVAL + 0.1)
        config.write_text(f"basic_auth_users:\n  bob: '{hashed}'\n")
        assert _metrics(port, ("bob", "pw")) == 200
        assert _metrics(port, ("prom", "pw")) == 401
        assert _metrics(port) == 401
        lines = web_config_lines()
        assert len(lines) == 2 and " INFO " in lines[1] and "reloaded" in lines[1], lines
    finally:
        stack.stop_process(proc)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "basic_auth_users: {}\n",
        "basic_auth_users:\n",
        "http_server_config:\n  headers:\n    X-Frame-Options: deny\n",
        "rate_limit:\n  interval: 1s\n  burst: 10\n",
    ],
    ids=["empty", "empty-users", "null-users", "only-headers", "only-rate-limit"],
)
def test_a_reload_that_removes_basic_auth_is_refused(
    text: str, tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every valid file without users, loaded over one with users, keeps the previous config."""
    monkeypatch.setattr(WebConfigSource, "CHECK_INTERVAL", 0.0)
    hashed = bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=4)).decode()
    path = tmp_path / "web.yml"
    path.write_text(f"basic_auth_users:\n  alice: '{hashed}'\n")
    source = WebConfigSource(path)
    first = source.current()
    assert first.auth is not None
    path.write_text(text)
    with caplog.at_level(logging.INFO, logger="gpu_health.web.config"):
        assert source.current() is first
        assert source.current() is first  # checked again: unchanged, quiet
    errors = [r for r in caplog.records if r.name == "gpu_health.web.config"]
    assert [r.levelno for r in errors] == [logging.ERROR] and source.reload_errors == 1
    message = errors[0].getMessage()
    assert str(path) in message and "removing basic auth needs a restart" in message, message


def test_empty_web_config_at_start_up_still_means_no_auth(tmp_path: Path) -> None:
    """Only a reload is refused: a file that starts empty serves plain HTTP without auth, and
    adding users to it later is a reload like any other."""
    path = tmp_path / "web.yml"
    path.write_text("")
    server = WebServer(
        "127.0.0.1:0", {"/": lambda _r: Response(200, b"ok\n")}, web_config=path
    ).start()
    try:
        assert _get(server.port, "anyone", "x") == (200, None)
        time.sleep(WebConfigSource.CHECK_INTERVAL + 0.1)
        hashed = bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=4)).decode()
        path.write_text(f"basic_auth_users:\n  alice: '{hashed}'\n")
        assert _get(server.port, "anyone", "x") == (401, None)
        assert _get(server.port, "alice", "pw") == (200, None)
    finally:
        server.shutdown()
