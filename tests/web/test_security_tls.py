"""--web.config.file on the shared server: TLS (versions, client certificates), basic auth, headers.

Certificates are made per test session with the ``openssl`` CLI (EC keys: milliseconds), so no
key material is committed and nothing heavier than the ssl module is needed.
"""

from __future__ import annotations

import base64
import http.client
import logging
import os
import shutil
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import bcrypt
import pytest
from prometheus_client import CollectorRegistry, Gauge

from gpu_health import stack
from gpu_health.errors import ConfigError, UserError
from gpu_health.web import SERVER_METRICS
from gpu_health.web import server as web
from gpu_health.web.config import load_web_config

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl CLI missing")

PASSWORD = "s3cret-scrape-pw"


@dataclass(frozen=True)
class Pki:
    dir: Path
    ca: Path
    server_cert: Path
    server_key: Path
    client_ca: Path
    client_cert: Path
    client_key: Path
    other_cert: Path  # a client cert from an untrusted CA
    other_key: Path
    wrong_san_cert: Path  # trusted CA, SAN not in client_allowed_sans
    wrong_san_key: Path
    rotated_cert: Path  # a second server certificate, for rotation
    rotated_key: Path


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=30)


def _key_args(key: Path) -> list[str]:
    return [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        str(key),
    ]


def _ca(directory: Path, name: str) -> tuple[Path, Path]:
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    _openssl(
        "req", "-x509", *_key_args(key), "-out", str(cert), "-days", "2", "-subj", f"/CN={name}",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )  # fmt: skip
    return cert, key


def _leaf(
    directory: Path, name: str, ca: tuple[Path, Path], san: str, usage: str
) -> tuple[Path, Path]:
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    _openssl(
        "req", "-x509", "-CA", str(ca[0]), "-CAkey", str(ca[1]), *_key_args(key),
        "-out", str(cert), "-days", "2", "-subj", f"/CN={name}",
        "-addext", f"subjectAltName={san}", "-addext", f"extendedKeyUsage={usage}",
        "-addext", "basicConstraints=CA:FALSE",
    )  # fmt: skip
    return cert, key


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def make_pki(d: Path) -> Pki:
    """CAs and leaf certificates for server, trusted and untrusted clients, rotation."""
    server_ca = _ca(d, "server-ca")
    client_ca = _ca(d, "client-ca")
    rogue_ca = _ca(d, "rogue-ca")
    srv = _leaf(d, "server", server_ca, "DNS:localhost,IP:127.0.0.1", "serverAuth")
    cli = _leaf(d, "scraper", client_ca, "DNS:scraper.example", "clientAuth")
    other = _leaf(d, "rogue", rogue_ca, "DNS:scraper.example", "clientAuth")
    wrong = _leaf(d, "other-scraper", client_ca, "DNS:intruder.example", "clientAuth")
    rotated = _leaf(d, "server-rotated", server_ca, "DNS:localhost,IP:127.0.0.1", "serverAuth")
    return Pki(d, server_ca[0], *srv, client_ca[0], *cli, *other, *wrong, *rotated)


def _registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    Gauge("probe_gauge", "A probe.", registry=registry).set(1)
    return registry


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[object]:
    servers: list[web.WebServer] = []

    def start(config_text: str, **kwargs: object) -> web.WebServer:
        config = tmp_path / "web-config.yml"
        config.write_text(config_text)
        routes = {"/metrics": web.metrics_handler(_registry())}
        server = web.WebServer("127.0.0.1:0", routes, web_config=config, **kwargs)  # type: ignore[arg-type]
        servers.append(server.start())
        return server

    yield start
    for server in servers:
        server.shutdown()


def _client_ctx(
    pki: Pki,
    cert: Path | None = None,
    key: Path | None = None,
    max_version: ssl.TLSVersion | None = None,
) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki.ca))
    if cert and key:
        ctx.load_cert_chain(str(cert), str(key))
    if max_version is not None:
        ctx.maximum_version = max_version
    return ctx


def _get(
    port: int, ctx: ssl.SSLContext | None = None, headers: dict[str, str] | None = None
) -> tuple[int, bytes, http.client.HTTPResponse]:
    conn: http.client.HTTPConnection
    if ctx is None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    else:
        conn = http.client.HTTPSConnection("localhost", port, timeout=5, context=ctx)
    try:
        conn.request("GET", "/metrics", headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read(), resp
    finally:
        conn.close()


def _tls_config(pki: Pki, extra: str = "") -> str:
    return (
        f"tls_server_config:\n  cert_file: {pki.server_cert}\n  key_file: {pki.server_key}\n"
        + extra
    )


def _basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def _hash(password: str, rounds: int = 4) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=rounds)).decode()


# -- TLS --------------------------------------------------------------------------------------


def test_tls_serves_metrics_and_plain_http_gets_400(serve, pki: Pki) -> None:  # type: ignore[no-untyped-def]
    server = serve(_tls_config(pki))
    assert server.tls
    status, body, _ = _get(server.port, _client_ctx(pki))
    assert status == 200 and b"probe_gauge 1.0" in body
    # plain HTTP to the TLS port: a 400 saying why (as Go answers), no metrics in clear text
    status, body, _ = _get(server.port)
    assert status == 400 and b"HTTPS" in body and b"probe_gauge" not in body
    assert _get(server.port, _client_ctx(pki))[0] == 200


def test_https_to_a_plain_port_is_closed_at_once(serve, pki: Pki) -> None:  # type: ignore[no-untyped-def]
    server = serve("http_server_config:\n  headers:\n    X-Frame-Options: deny\n")
    assert not server.tls
    started = time.monotonic()
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        _get(server.port, _client_ctx(pki))
    assert time.monotonic() - started < 1.0  # not held until the request deadline
    assert _get(server.port)[0] == 200


def test_relative_cert_paths_resolve_against_the_config_file(serve, pki: Pki) -> None:  # type: ignore[no-untyped-def]
    # cert_file/key_file relative to the config's directory, as exporter-toolkit resolves them.
    config = pki.dir / "relative.yml"
    config.write_text(
        "tls_server_config:\n"
        f"  cert_file: {pki.server_cert.name}\n  key_file: {pki.server_key.name}\n"
    )
    parsed = load_web_config(config)
    assert parsed.tls is not None and parsed.tls.cert_file == pki.server_cert


def test_min_version_tls13_refuses_a_tls12_client(serve, pki: Pki) -> None:  # type: ignore[no-untyped-def]
    server = serve(_tls_config(pki, "  min_version: TLS13\n"))
    with pytest.raises(ssl.SSLError):
        _get(server.port, _client_ctx(pki, max_version=ssl.TLSVersion.TLSv1_2))
    assert _get(server.port, _client_ctx(pki))[0] == 200


def test_max_version_tls12_is_applied(serve, pki: Pki) -> None:  # type: ignore[no-untyped-def]
    server = serve(
        _tls_config(
            pki,
            "  max_version: TLS12\n  cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256]\n",
        )
    )
    ctx = _client_ctx(pki)
    with (
        socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw,
        ctx.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        assert tls.version() == "TLSv1.2"
        assert tls.cipher()[0] == "ECDHE-ECDSA-AES128-GCM-SHA256"  # type: ignore[index]


def test_client_certificate_required_and_verified(serve, pki: Pki) -> None:  # type: ignore[no-untyped-def]
    server = serve(
        _tls_config(
            pki,
            f"  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {pki.client_ca}\n"
            "  client_allowed_sans: [scraper.example]\n",
        )
    )
    status, _, _ = _get(server.port, _client_ctx(pki, pki.client_cert, pki.client_key))
    assert status == 200
    for cert, key in (
        (None, None),  # no certificate
        (pki.other_cert, pki.other_key),  # signed by a CA the server does not trust
        (pki.wrong_san_cert, pki.wrong_san_key),  # trusted, but its SAN is not allowed
    ):
        with pytest.raises((ssl.SSLError, ConnectionError, http.client.HTTPException, OSError)):
            _get(server.port, _client_ctx(pki, cert, key))
    # The server survives the refused handshakes.
    assert _get(server.port, _client_ctx(pki, pki.client_cert, pki.client_key))[0] == 200


def test_verify_client_cert_if_given(serve, pki: Pki) -> None:  # type: ignore[no-untyped-def]
    server = serve(
        _tls_config(
            pki,
            f"  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: {pki.client_ca}\n",
        )
    )
    assert _get(server.port, _client_ctx(pki))[0] == 200
    # Any SAN is fine without client_allowed_sans (so the SAN refusal above is that rule's doing).
    assert _get(server.port, _client_ctx(pki, pki.wrong_san_cert, pki.wrong_san_key))[0] == 200
    with pytest.raises((ssl.SSLError, ConnectionError, http.client.HTTPException, OSError)):
        _get(server.port, _client_ctx(pki, pki.other_cert, pki.other_key))


def test_rotated_certificate_is_served_without_restart_and_bad_edit_is_ignored(  # type: ignore[no-untyped-def]
    serve, pki: Pki, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    live_cert, live_key = tmp_path / "live.pem", tmp_path / "live.key"
    shutil.copy(pki.server_cert, live_cert)
    shutil.copy(pki.server_key, live_key)
    server = serve(f"tls_server_config:\n  cert_file: {live_cert}\n  key_file: {live_key}\n")

    def serving_subject() -> str:
        ctx = _client_ctx(pki)
        with (
            socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw,
            ctx.wrap_socket(raw, server_hostname="localhost") as tls,
        ):
            cert = tls.getpeercert()
            return dict(x[0] for x in cert["subject"])["commonName"]  # type: ignore[index,return-value]

    assert serving_subject() == "server"
    time.sleep(1.1)  # the file is checked at most once a second
    shutil.copy(pki.rotated_cert, live_cert)  # rotate: another (valid) cert and key pair
    shutil.copy(pki.rotated_key, live_key)
    os.utime(live_cert)
    deadline = time.monotonic() + 5
    while serving_subject() != "server-rotated" and time.monotonic() < deadline:
        time.sleep(0.3)
    assert serving_subject() == "server-rotated"

    time.sleep(1.1)
    live_key.write_text("not a key\n")  # a broken rotation: keep serving the last good pair
    with caplog.at_level(logging.ERROR, logger="gpu_health.web.config"):
        time.sleep(0.1)
        assert serving_subject() == "server-rotated"
        time.sleep(1.1)
        assert serving_subject() == "server-rotated"
    assert "keeping the previous one" in caplog.text and "tls_server_config" in caplog.text


@pytest.mark.parametrize(
    ("mutate", "key", "problem"),
    [
        (lambda p: {"cert_file": p.dir / "absent.pem"}, "cert_file", "file not found"),
        (lambda p: {"cert_file": p.dir}, "cert_file", "a directory, not a file"),  # was "not found"
        (lambda p: {"key_file": p.client_key}, "key_file", "cannot load"),  # key of another cert
        (lambda p: {"cert_file": p.dir / "garbage.pem"}, "cert_file", "cannot load"),
        (lambda p: {"key_file": p.dir / "encrypted.key"}, "key_file", "encrypted"),
        (lambda p: {"cert_file": p.server_key}, "cert_file", "does not hold a certificate"),
        (lambda p: {"key_file": p.server_cert}, "key_file", "does not hold a private key"),
        (
            lambda p: {"cert_file": p.server_key, "key_file": p.server_cert},
            "cert_file",
            "does not hold a certificate",
        ),
    ],
    ids=[
        "missing", "directory", "mismatch", "garbage", "encrypted", "key-as-cert", "cert-as-key",
        "swapped",
    ],
)
def test_unusable_certificate_files_are_one_clear_error(
    pki: Pki, tmp_path: Path, mutate, key, problem
) -> None:  # type: ignore[no-untyped-def]
    (pki.dir / "garbage.pem").write_text(
        "-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n"
    )
    if not (pki.dir / "encrypted.key").exists():
        _openssl(
            "pkey", "-in", str(pki.server_key), "-aes256", "-passout", "pass:hunter2",
            "-out", str(pki.dir / "encrypted.key"),
        )  # fmt: skip
    fields = {"cert_file": pki.server_cert, "key_file": pki.server_key, **mutate(pki)}
    config = tmp_path / "web.yml"
    config.write_text("tls_server_config:\n" + "".join(f"  {k}: {v}\n" for k, v in fields.items()))
    with pytest.raises(ConfigError) as info:
        web.WebServer("127.0.0.1:0", {}, web_config=config)
    message = str(info.value)
    assert str(config) in message and f"tls_server_config.{key}" in message and problem in message
    assert "\n" not in message and "hunter2" not in message


def test_tls_handshake_stalling_does_not_block_other_clients(serve, pki: Pki, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(web, "REQUEST_TIMEOUT_SECONDS", 1.0)
    server = serve(_tls_config(pki))
    stalled = [socket.create_connection(("127.0.0.1", server.port), timeout=5) for _ in range(3)]
    try:
        started = time.monotonic()
        assert _get(server.port, _client_ctx(pki))[0] == 200  # accept loop not held by them
        assert time.monotonic() - started < 1.0
        for sock in stalled:  # and the silent ones are cut off after the timeout
            sock.settimeout(5)
            assert sock.recv(1) == b""
        assert time.monotonic() - started < 4.0
    finally:
        for sock in stalled:
            sock.close()


# -- basic auth -------------------------------------------------------------------------------


def test_basic_auth_401_then_200_and_bcrypt_runs_once(serve, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    calls = []
    real = bcrypt.checkpw
    monkeypatch.setattr(bcrypt, "checkpw", lambda pw, h: calls.append(1) or real(pw, h))
    server = serve(f"basic_auth_users:\n  prometheus: '{_hash(PASSWORD)}'\n")
    status, _, resp = _get(server.port)
    assert status == 401 and resp.getheader("WWW-Authenticate", "").startswith("Basic")
    assert _get(server.port, headers=_basic("prometheus", "wrong"))[0] == 401
    assert _get(server.port, headers=_basic("nobody", PASSWORD))[0] == 401
    calls.clear()
    for _ in range(5):
        status, body, _ = _get(server.port, headers=_basic("prometheus", PASSWORD))
        assert status == 200 and b"probe_gauge" in body
    assert len(calls) == 1, "a successful check must be cached, not paid per scrape"


@pytest.mark.parametrize(
    "header",
    [
        "Basic !!!notbase64",
        "Basic " + base64.b64encode(b"no-colon").decode(),
        "Basic " + base64.b64encode(b"\xff\xfe:\xff").decode(),
        "Bearer abc",
        "Basic",
        "Basic " + base64.b64encode(b"prometheus:" + b"x" * 200).decode(),  # > bcrypt's 72 bytes
    ],
)
def test_malformed_authorization_is_401_not_500(serve, header: str) -> None:  # type: ignore[no-untyped-def]
    server = serve(f"basic_auth_users:\n  prometheus: '{_hash(PASSWORD)}'\n")
    assert _get(server.port, headers={"Authorization": header})[0] == 401


def test_unauthenticated_clients_learn_nothing_about_routes(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve(f"basic_auth_users:\n  prometheus: '{_hash(PASSWORD)}'\n")
    for path, method in (("/nope", "GET"), ("/metrics", "POST"), ("/../../etc/passwd", "GET")):
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        conn.request(method, path)
        assert conn.getresponse().status == 401
        conn.close()


def test_tls_with_basic_auth_and_headers(serve, pki: Pki) -> None:  # type: ignore[no-untyped-def]
    server = serve(
        _tls_config(pki)
        + f"basic_auth_users:\n  prometheus: '{_hash(PASSWORD)}'\n"
        + "http_server_config:\n  headers:\n    X-Frame-Options: deny\n"
        + "    Strict-Transport-Security: max-age=31536000\n"
    )
    status, _, resp = _get(server.port, _client_ctx(pki), _basic("prometheus", PASSWORD))
    assert status == 200
    assert resp.getheader("X-Frame-Options") == "deny"
    assert resp.getheader("Strict-Transport-Security") == "max-age=31536000"
    status, _, resp = _get(server.port, _client_ctx(pki))
    assert status == 401 and resp.getheader("X-Frame-Options") == "deny"


def test_no_password_or_hash_reaches_the_logs(serve, caplog: pytest.LogCaptureFixture) -> None:  # type: ignore[no-untyped-def]
    hashed = _hash(PASSWORD)
    with caplog.at_level(logging.DEBUG):
        server = serve(f"basic_auth_users:\n  prometheus: '{hashed}'\n")
        _get(server.port, headers=_basic("prometheus", PASSWORD))
        _get(server.port, headers=_basic("prometheus", PASSWORD + "x"))
        _get(server.port, headers=_basic("prometheus", PASSWORD))
    text = caplog.text
    assert PASSWORD not in text and hashed not in text
    assert base64.b64encode(f"prometheus:{PASSWORD}".encode()).decode() not in text


def test_plaintext_password_in_config_is_refused_without_echo(tmp_path: Path) -> None:
    config = tmp_path / "web.yml"
    config.write_text(f"basic_auth_users:\n  prometheus: {PASSWORD}\n")
    with pytest.raises(ConfigError) as info:
        web.WebServer("127.0.0.1:0", {}, web_config=config)
    assert "basic_auth_users.prometheus" in str(info.value) and PASSWORD not in str(info.value)
    assert "bcrypt" in str(info.value)


def test_missing_bcrypt_names_the_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "bcrypt", None)  # import bcrypt -> ImportError
    config = tmp_path / "web.yml"
    config.write_text(f"basic_auth_users:\n  prometheus: '{_hash(PASSWORD)}'\n")
    with pytest.raises(UserError, match=r"bcrypt.*pip install 'gpu-health-monitor\[web\]'"):
        load_web_config(config)


def test_rate_limit_answers_429(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve("rate_limit:\n  interval: 1m\n  burst: 2\n")
    statuses = [_get(server.port)[0] for _ in range(4)]
    assert statuses == [200, 200, 429, 429]


# -- the real commands ------------------------------------------------------------------------

COMMANDS = {
    "exporter": ["gpu-health-exporter", "--backend", "replay"],
    "scorer": ["gpu-health-scorer", "serve", "--prometheus.url", "http://127.0.0.1:9", "--no-econ"],
}


def _command(name: str) -> list[str]:
    exe = shutil.which(COMMANDS[name][0], path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.skip(f"{COMMANDS[name][0]} not installed")
    argv = [exe, *COMMANDS[name][1:]]
    help_text = subprocess.run([*argv, "--help"], capture_output=True, text=True, timeout=60).stdout
    assert "--web.config.file" in help_text, f"{COMMANDS[name][0]} lost --web.config.file"
    return argv


@pytest.mark.parametrize("name", list(COMMANDS))
def test_command_serves_tls_with_basic_auth(name: str, pki: Pki, tmp_path: Path) -> None:
    argv = _command(name)
    config = tmp_path / "web.yml"
    config.write_text(_tls_config(pki) + f"basic_auth_users:\n  prometheus: '{_hash(PASSWORD)}'\n")
    port = stack.free_port()
    log = tmp_path / "out.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*argv, "--web.listen-address", f"127.0.0.1:{port}", "--web.config.file", str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                status, body, _ = _get(port, _client_ctx(pki), _basic("prometheus", PASSWORD))
                break
            except OSError:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.3)
        assert status == 200 and b"# TYPE" in body
        prefix = {"exporter": "gpu_exporter", "scorer": "gpu_scorer"}[name]
        for metric, _kind, _help in SERVER_METRICS:  # the server's defences, per process
            assert f"\n{prefix}_{metric} ".encode() in body, metric
        assert _get(port, _client_ctx(pki))[0] == 401
        assert PASSWORD not in log.read_text()
    finally:
        stack.stop_process(proc)


@pytest.mark.parametrize("name", list(COMMANDS))
def test_command_with_a_bad_web_config_exits_with_one_line(name: str, tmp_path: Path) -> None:
    argv = _command(name)
    config = tmp_path / "web.yml"
    config.write_text(
        "tls_server_config:\n  cert_file: c.pem\n  key_file: k.pem\n  min_version: TLS9\n"
    )
    done = subprocess.run(
        [*argv, "--web.listen-address", "127.0.0.1:0", "--web.config.file", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    err = done.stderr.strip().splitlines()
    assert any("tls_server_config.min_version" in line and "TLS13" in line for line in err), err
    assert "Traceback" not in done.stderr


def test_changed_users_apply_without_restart(serve, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    server = serve(f"basic_auth_users:\n  alice: '{_hash(PASSWORD)}'\n")
    assert _get(server.port, headers=_basic("alice", PASSWORD))[0] == 200
    time.sleep(1.1)  # the file is checked at most once a second
    (tmp_path / "web-config.yml").write_text(f"basic_auth_users:\n  bob: '{_hash(PASSWORD)}'\n")
    deadline = time.monotonic() + 5
    while _get(server.port, headers=_basic("bob", PASSWORD))[0] != 200:
        assert time.monotonic() < deadline, "the new user was never accepted"
        time.sleep(0.3)
    assert _get(server.port, headers=_basic("alice", PASSWORD))[0] == 401


def test_inline_pem_cert_key_and_client_ca(serve, pki: Pki) -> None:  # type: ignore[no-untyped-def]
    def block(path: Path) -> str:
        return "|\n" + "".join(f"    {line}\n" for line in path.read_text().splitlines())

    server = serve(
        "tls_server_config:\n"
        f"  cert: {block(pki.server_cert)}"
        f"  key: {block(pki.server_key)}"
        f"  client_ca: {block(pki.client_ca)}"
        "  client_auth_type: RequireAndVerifyClientCert\n"
    )
    assert _get(server.port, _client_ctx(pki, pki.client_cert, pki.client_key))[0] == 200
    with pytest.raises((ssl.SSLError, ConnectionError, http.client.HTTPException, OSError)):
        _get(server.port, _client_ctx(pki))
