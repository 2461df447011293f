# ruff: noqa: E501 - the case table reads best one YAML file per entry
"""Same accept/refuse verdicts as prometheus/exporter-toolkit on the cases of its own tests.

The toolkit's ``web/testdata`` holds 41 web config files and ``tls_config_test.go`` says which
load and which fail. Each case below is written anew with this session's certificates (no file is
copied) and named after the toolkit file it mirrors, with the toolkit's verdict. A verdict here is
"the server starts with it" (:class:`WebConfigSource`: parse, certificates, client CA, auth).
Deliberate differences are marked and listed in docs/reliability.md.
"""

from __future__ import annotations

import http.client
import shutil
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import bcrypt
import pytest

from gpu_health.errors import UserError
from gpu_health.web import server as web
from gpu_health.web.live import WebConfigSource
from tests.web.test_security_tls import Pki, _client_ctx, make_pki

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl CLI missing")

ACCEPT, REFUSE = True, False
#: The toolkit accepts these; we refuse them on purpose (docs/reliability.md says why).
DELIBERATE = {"tls_config_noAuth.requireanyclientcert.good", "tls_config_noAuth.requireanyclientcertkeyinline.good"}  # fmt: skip


def _cases(p: Pki) -> dict[str, tuple[str, bool]]:
    tls = f'tls_server_config:\n  cert_file: "{p.server_cert}"\n  key_file: "{p.server_key}"\n'
    given = tls + '  client_auth_type: "VerifyClientCertIfGiven"\n'
    key_pem = "    " + p.server_key.read_text().strip().replace("\n", "\n    ")
    cert_pem = "    " + p.server_cert.read_text().strip().replace("\n", "\n    ")
    users = "".join(
        f"  {name}: {bcrypt.hashpw(name.encode(), bcrypt.gensalt(rounds=4)).decode()}\n"
        for name in ("ann", "ben", "cat")
    )
    # fmt: off
    return {
        "tls_config_noAuth.requireandverifyclientcert.good": (
            tls + f'  client_auth_type: "RequireAndVerifyClientCert"\n  client_ca_file: "{p.client_ca}"\n',
            ACCEPT,
        ),
        "tls_config_noAuth.requireanyclientcert.good": (
            tls + '  client_auth_type: "RequireAnyClientCert"\n',
            ACCEPT,
        ),
        "tls_config_noAuth.requireanyclientcertkeyinline.good": (
            f'tls_server_config:\n  cert_file: "{p.server_cert}"\n  key: |\n{key_pem}\n'
            '  client_auth_type: "RequireAnyClientCert"\n',
            ACCEPT,
        ),
        "web_config_auth_clientCAs_invalid.bad": (tls + '  client_ca_file: "nope"\n', REFUSE),
        "web_config_auth_clientCAs_missing.bad": (
            tls + '  client_auth_type: "RequireAndVerifyClientCert"\n',
            ACCEPT,  # loads in the toolkit: no client CA = the system's roots
        ),
        "web_config_auth_user_list_invalid.bad": (tls + "basic_auth_users:\n  jim: plain\n", REFUSE),
        "web_config_empty": ("", ACCEPT),
        "web_config_headers.good": (
            "http_server_config:\n  headers:\n    X-Frame-Options: sameorigin\n"
            "    Strict-Transport-Security: max-age=600\n    X-Content-Type-Options: nosniff\n"
            "    X-XSS-Protection: 1\n    Content-Security-Policy: \"default-src 'none'\"\n",
            ACCEPT,
        ),
        "web_config_headers_content_type_options.bad": (
            "http_server_config:\n  headers:\n    X-Content-Type-Options: guess\n",
            REFUSE,
        ),
        "web_config_headers_extra_header.bad": (
            "http_server_config:\n  headers:\n    Content-Type: text/html\n",
            REFUSE,
        ),
        "web_config_headers_frame_options.bad": (
            "http_server_config:\n  headers:\n    X-Frame-Options: allow-all\n",
            REFUSE,
        ),
        "web_config_junk": ("q8Zr1 vX0p\nLm3kT9 wQa\nzz7Yb2\n", REFUSE),
        "web_config_junk_key": ('tls_server_config:\n  certfile: "x.crt"\n', REFUSE),
        "web_config_noAuth.bad": (tls + '  client_ca_file: "/dev/null"\n', REFUSE),
        "web_config_noAuth.good.blocking": (
            tls + '  client_auth_type: "RequireAndVerifyClientCert"\n',
            ACCEPT,
        ),
        "web_config_noAuth.good": (given, ACCEPT),
        "web_config_noAuth_allCiphers.good": (
            given + "  cipher_suites:\n"
            + "".join(f"  - {s}\n" for s in (
                "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
                "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", "TLS_AES_256_GCM_SHA384",
                "TLS_CHACHA20_POLY1305_SHA256", "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
            )),
            ACCEPT,
        ),
        "web_config_noAuth_allCurves.good": (
            given + "  curve_preferences: [X25519, CurveP521, CurveP384, CurveP256]\n",
            ACCEPT,
        ),
        "web_config_noAuth_certPath_empty.bad": (
            f'tls_server_config:\n  cert_file: ""\n  key_file: "{p.server_key}"\n',
            REFUSE,
        ),
        "web_config_noAuth_certPath_invalid.bad": (
            f'tls_server_config:\n  cert_file: "absent.crt"\n  key_file: "{p.server_key}"\n',
            REFUSE,
        ),
        "web_config_noAuth_certPath_keyPath_empty.bad": (
            'tls_server_config:\n  cert_file: ""\n  key_file: ""\n  client_auth_type: "y"\n',
            REFUSE,
        ),
        "web_config_noAuth_certPath_keyPath_invalid.bad": (
            'tls_server_config:\n  cert_file: "absent.crt"\n  key_file: "absent.key"\n',
            REFUSE,
        ),
        "web_config_noAuth_cert_empty.bad": (
            f'tls_server_config:\n  cert: ""\n  key_file: "{p.server_key}"\n',
            REFUSE,
        ),
        "web_config_noAuth_inventedCiphers.bad": (
            given + "  cipher_suites: [TLS_ECDHE_RSA_WITH_AES_512_GCM_SHA1024]\n",
            REFUSE,
        ),
        "web_config_noAuth_inventedCurves.bad": (given + "  curve_preferences: [CurveP999]\n", REFUSE),
        "web_config_noAuth_keyPath_empty.bad": (
            f'tls_server_config:\n  cert_file: "{p.server_cert}"\n  key_file: ""\n',
            REFUSE,
        ),
        "web_config_noAuth_keyPath_invalid.bad": (
            'tls_server_config:\n  cert_file: "absent.cert"\n  key_file: "absent"\n',
            REFUSE,
        ),
        "web_config_noAuth_key_empty.bad": (
            f'tls_server_config:\n  cert_file: "{p.server_cert}"\n  key: ""\n',
            REFUSE,
        ),
        "web_config_noAuth_noHTTP2.good": (
            given + "  cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384]\n"
            "  max_version: TLS12\nhttp_server_config:\n  http2: false\n",
            ACCEPT,
        ),
        "web_config_noAuth_noHTTP2Cipher.bad": (
            given + "  cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384]\n"
            "  max_version: TLS12\n",
            REFUSE,
        ),
        "web_config_noAuth_someCiphers.good": (
            given + "  cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, "
            "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384]\n  min_version: TLS12\n  max_version: TLS12\n",
            ACCEPT,
        ),
        "web_config_noAuth_someCiphers_noOrder.good": (
            given + "  cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, "
            "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256]\n  prefer_server_cipher_suites: false\n"
            "  min_version: TLS12\n  max_version: TLS12\n",
            ACCEPT,
        ),
        "web_config_noAuth_someCurves.good": (
            given + "  min_version: TLS13\n  curve_preferences: [CurveP384]\n",
            ACCEPT,
        ),
        "web_config_noAuth_tlsInline.good": (
            f"tls_server_config:\n  cert: |\n{cert_pem}\n  key: |\n{key_pem}\n",
            ACCEPT,
        ),
        "web_config_noAuth_wrongTLSVersion.bad": (given + "  min_version: TLS14\n", REFUSE),
        "web_config_users.good": (tls + "basic_auth_users:\n" + users, ACCEPT),
        "web_config_users_noTLS.good": ("basic_auth_users:\n" + users, ACCEPT),
        "web_config_auth_client_san.good": (
            tls + f'  client_auth_type: "RequireAndVerifyClientCert"\n  client_ca_file: "{p.client_ca}"\n'
            '  client_allowed_sans: ["a", "scraper.example", "b"]\n',
            ACCEPT,
        ),
        "web_config_auth_client_san.bad": (
            tls + f'  client_auth_type: "RequireAndVerifyClientCert"\n  client_ca_file: "{p.client_ca}"\n'
            '  client_allowed_sans: ["nobody.example"]\n',
            ACCEPT,  # loads; the handshake is what fails
        ),
        "web_config_rate_limiter_nonblocking": ("rate_limit:\n  interval: 0\n  burst: 0\n", ACCEPT),
        "web_config_rate_limiter_one_second": ('rate_limit:\n  interval: "1s"\n  burst: 0\n', ACCEPT),
    }
    # fmt: on


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def cases(pki: Pki) -> dict[str, tuple[str, bool]]:
    return _cases(pki)


def test_the_toolkit_has_41_cases(cases: dict[str, tuple[str, bool]]) -> None:
    assert len(cases) == 41


def _verdict(path: Path) -> tuple[bool, str]:
    try:
        WebConfigSource(path)
    except UserError as exc:
        return False, str(exc)
    return True, ""


def test_same_verdicts_as_exporter_toolkit(
    cases: dict[str, tuple[str, bool]], tmp_path: Path
) -> None:
    differ = []
    for name, (text, toolkit_accepts) in cases.items():
        path = tmp_path / f"{name}.yml"
        path.write_text(text)
        accepted, error = _verdict(path)
        if not accepted:
            assert "\n" not in error and str(path) in error, error  # one line naming the file
        expected = not toolkit_accepts if name in DELIBERATE else toolkit_accepts
        if accepted != expected:
            differ.append(f"{name}: {'accepted' if accepted else 'refused: ' + error}")
    assert differ == []


def test_deliberate_differences_are_documented() -> None:
    doc = (Path(__file__).parents[2] / "docs" / "reliability.md").read_text()
    assert "RequireAnyClientCert" in doc and "curve_preferences" in doc


# -- behaviour from tls_config_test.go -----------------------------------------------------------


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[[str], web.WebServer]]:
    servers: list[web.WebServer] = []

    def run(text: str) -> web.WebServer:
        config = tmp_path / f"web-{len(servers)}.yml"
        config.write_text(text)
        server = web.WebServer(
            "127.0.0.1:0", {"/": lambda _r: web.Response(200, b"ok\n")}, web_config=config
        )
        servers.append(server.start())
        return server

    yield run
    for server in servers:
        server.shutdown()


def _get(port: int, ctx: ssl.SSLContext | None = None) -> int:
    conn: http.client.HTTPConnection
    if ctx is None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    else:
        conn = http.client.HTTPSConnection("localhost", port, timeout=5, context=ctx)
    try:
        conn.request("GET", "/")
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


def test_verify_client_cert_if_given_without_ca_uses_the_system_roots(start, cases, pki) -> None:  # type: ignore[no-untyped-def]
    server = start(cases["web_config_noAuth.good"][0])
    assert _get(server.port, _client_ctx(pki)) == 200  # no certificate: fine
    with pytest.raises((ssl.SSLError, ConnectionError, http.client.HTTPException, OSError)):
        # a certificate from a private CA the system does not trust: refused
        _get(server.port, _client_ctx(pki, pki.client_cert, pki.client_key))
    assert _get(server.port) == 400  # plain HTTP to the TLS port: Go's 400


# The client deliberately offers TLS 1.1, which Python deprecates: the point is its refusal.
@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated:DeprecationWarning")
def test_tls11_client_and_no_common_cipher_fail_the_handshake(start, cases, pki) -> None:  # type: ignore[no-untyped-def]
    server = start(cases["web_config_noAuth_someCiphers.good"][0])
    assert _get(server.port, _client_ctx(pki)) == 200
    old = _client_ctx(pki)
    old.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    old.maximum_version = ssl.TLSVersion.TLSv1_1
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        _get(server.port, old)
    other = _client_ctx(pki, max_version=ssl.TLSVersion.TLSv1_2)
    other.set_ciphers("ECDHE-ECDSA-CHACHA20-POLY1305")
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):  # no common suite
        _get(server.port, other)


def test_rate_limit_with_zero_burst_refuses_every_request(start, cases) -> None:  # type: ignore[no-untyped-def]
    server = start(cases["web_config_rate_limiter_one_second"][0])
    assert [_get(server.port) for _ in range(3)] == [429, 429, 429]
    server = start(cases["web_config_rate_limiter_nonblocking"][0])
    assert [_get(server.port) for _ in range(3)] == [200, 200, 200]


def test_tls_client_on_a_plain_port_fails_fast(start, cases, pki) -> None:  # type: ignore[no-untyped-def]
    server = start(cases["web_config_users_noTLS.good"][0])
    started = time.monotonic()
    with (
        socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw,
        pytest.raises((ssl.SSLError, ConnectionError, OSError)),
    ):
        _client_ctx(pki).wrap_socket(raw, server_hostname="localhost")
    assert time.monotonic() - started < 1.0
