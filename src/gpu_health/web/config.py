"""The exporter-toolkit web configuration file (``--web.config.file``): TLS, basic auth, headers.

Operators already run Prometheus exporters with one ``web-config.yml`` per host; accepting the
same file (https://github.com/prometheus/exporter-toolkit/blob/master/docs/web-configuration.md)
means they reuse their certificates, bcrypt hashes and hardening headers unchanged. Like the Go
toolkit (``yaml.UnmarshalStrict``) unknown keys are errors, relative file names are resolved
against the directory of the config file, and a changed file is picked up without a restart
(:class:`WebConfigSource`).

Where Python's ``ssl`` module cannot do what Go's ``crypto/tls`` does the file is refused with a
reason instead of silently weakening it: ``RequireAnyClientCert`` (a certificate required but never
verified) is not possible with OpenSSL's server-side API here, so it is an error.
"""

from __future__ import annotations

import logging
import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gpu_health.config import (
    expect_bool,
    expect_int,
    expect_mapping,
    expect_str,
    join_key,
    load_yaml,
    reject_unknown,
    show,
)
from gpu_health.errors import ConfigError
from gpu_health.web.auth import check_bcrypt_costs, import_bcrypt

log = logging.getLogger(__name__)

TLS_VERSIONS: dict[str, ssl.TLSVersion] = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}

#: client_auth_type -> (ssl verify mode, needs a client CA). Go's names, same meaning.
CLIENT_AUTH_TYPES: dict[str, tuple[ssl.VerifyMode, bool]] = {
    "NoClientCert": (ssl.CERT_NONE, False),
    # Go requests a certificate and never checks it: nothing is enforced, so it is NoClientCert.
    "RequestClientCert": (ssl.CERT_NONE, False),
    "VerifyClientCertIfGiven": (ssl.CERT_OPTIONAL, True),
    "RequireAndVerifyClientCert": (ssl.CERT_REQUIRED, True),
}
UNSUPPORTED_CLIENT_AUTH = {"RequireAnyClientCert", "RequireClientCert"}

#: Go crypto/tls cipher suite names (TLS 1.0-1.2) -> OpenSSL names.
CIPHER_SUITES: dict[str, str] = {
    "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
}
#: TLS 1.3 suites are valid names in Go too but not configurable (there or here).
TLS13_SUITES = {"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"}
CURVES = {"CurveP256", "CurveP384", "CurveP521", "X25519", "X25519MLKEM768"}

#: Response headers an operator may set, and the values allowed where the toolkit restricts them.
HEADER_CHOICES: dict[str, set[str] | None] = {
    "Content-Security-Policy": None,
    "X-Frame-Options": {"deny", "sameorigin"},
    "X-Content-Type-Options": {"nosniff"},
    "X-XSS-Protection": None,
    "Strict-Transport-Security": None,
}

TOP_KEYS = frozenset({"tls_server_config", "http_server_config", "basic_auth_users", "rate_limit"})
TLS_KEYS = frozenset(
    {
        "cert",
        "key",
        "client_ca",
        "cert_file",
        "key_file",
        "client_auth_type",
        "client_ca_file",
        "client_allowed_sans",
        "min_version",
        "max_version",
        "cipher_suites",
        "prefer_server_cipher_suites",
        "curve_preferences",
    }
)
TLS_FILE_KEYS = ("cert", "key", "cert_file", "key_file", "client_ca", "client_ca_file")
#: Any of these (non-empty) turns TLS on, so a certificate is then required (as the toolkit does).
TLS_ENABLING_KEYS = (*TLS_FILE_KEYS, "client_auth_type")
#: Go's net/http2 refuses a TLS 1.2 cipher list without one of these (node_exporter then does not
#: start); the same verdict here keeps a file that works there working here, and the reverse.
HTTP2_REQUIRED_SUITES = {
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
}
HTTP_KEYS = frozenset({"http2", "headers"})
#: Highest ``rate_limit.burst``: a burst of a million requests already limits nothing a server
#: can answer; a larger number (``99999999999999999999999`` was accepted) is a typo, and beyond
#: 2**63 Go's toolkit cannot even read it. To switch the limit off, omit ``rate_limit``.
MAX_RATE_BURST = 1_000_000
RATE_KEYS = frozenset({"interval", "burst"})

_BCRYPT_HASH = re.compile(r"^\$2[abxy]?\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}$")
_DURATION = re.compile(r"^(?:(\d+)(ms|s|m|h|d|w|y))+$")
_DURATION_PART = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
_DURATION_UNITS = {
    "ms": 0.001,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
    "w": 604800.0,
    "y": 31536000.0,
}


@dataclass(frozen=True)
class TLSServerConfig:
    """``tls_server_config``, with file names already resolved against the config's directory."""

    cert_file: Path | None = None
    key_file: Path | None = None
    cert: str | None = None
    key: str | None = field(default=None, repr=False)
    client_ca_file: Path | None = None
    client_ca: str | None = None
    client_auth_type: str = "NoClientCert"
    client_allowed_sans: tuple[str, ...] = ()
    min_version: str = "TLS12"
    max_version: str = "TLS13"
    cipher_suites: tuple[str, ...] = ()
    prefer_server_cipher_suites: bool = True
    curve_preferences: tuple[str, ...] = ()

    def files(self) -> tuple[Path, ...]:
        """The files whose change means the TLS context must be rebuilt."""
        return tuple(p for p in (self.cert_file, self.key_file, self.client_ca_file) if p)


@dataclass(frozen=True)
class RateLimit:
    """A token bucket shared by all clients, as exporter-toolkit has: one token per interval."""

    interval_seconds: float
    burst: int


@dataclass(frozen=True)
class WebConfig:
    source: str
    tls: TLSServerConfig | None = None
    basic_auth_users: Mapping[str, str] = field(default_factory=dict, repr=False)
    headers: Mapping[str, str] = field(default_factory=dict)
    http2: bool = True
    rate_limit: RateLimit | None = None


def k(name: str) -> str:
    """The key path of a ``tls_server_config`` field, for errors."""
    return f"tls_server_config.{name}"


# -- parsing -------------------------------------------------------------------------------------


def load_web_config(path: Path | str) -> WebConfig:
    """Read and validate a web config file; every problem is a :class:`ConfigError`."""
    path = Path(path)
    data = load_yaml(path, unique_keys=True)
    return parse_web_config(data, str(path), path.parent)


def parse_web_config(data: Any, source: str, base_dir: Path) -> WebConfig:
    top = expect_mapping(data, source, "")
    reject_unknown(top, TOP_KEYS, source, "")
    http = expect_mapping(top.get("http_server_config"), source, "http_server_config")
    reject_unknown(http, HTTP_KEYS, source, "http_server_config")
    http2 = True
    if "http2" in http:
        http2 = expect_bool(http["http2"], source, "http_server_config.http2")
    tls = _parse_tls(top.get("tls_server_config"), source, base_dir, http2)
    headers = _parse_headers(http.get("headers"), source)
    users = _parse_users(top.get("basic_auth_users"), source)
    rate = _parse_rate_limit(top.get("rate_limit"), source)
    return WebConfig(source, tls, users, headers, http2, rate)


def _str_list(
    value: Any, source: str, key: str, choices: set[str] | None = None
) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ConfigError(source, key, f"expected a list of strings, got {type(value).__name__}")
    return tuple(expect_str(v, source, join_key(key, i), choices) for i, v in enumerate(value))


def _path(value: Any, source: str, key: str, base_dir: Path) -> Path | None:
    if value is None or value == "":
        return None
    text = expect_str(value, source, key)
    path = Path(text)
    return path if path.is_absolute() else base_dir / path


def _inline(value: Any, source: str, key: str) -> str | None:
    """An inline PEM string; its content is never echoed in errors (it may be a private key)."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ConfigError(source, key, "expected a PEM string")
    return value


def _check_suites(suites: tuple[str, ...], min_v: str, http2: bool, source: str) -> None:
    """cipher_suites that would weaken or break TLS 1.2 are refused, as exporter-toolkit's
    server refuses them at start: a list of only TLS 1.3 names (not configurable, so TLS 1.2
    would silently fall back to OpenSSL's defaults), and with http2 a list lacking the suite
    HTTP/2 requires."""
    if not suites or TLS_VERSIONS[min_v] >= TLS_VERSIONS["TLS13"]:
        return
    tls12 = [s for s in suites if s in CIPHER_SUITES]
    if not tls12:
        raise ConfigError(
            source,
            k("cipher_suites"),
            "lists only TLS 1.3 suites, which cannot be configured; TLS 1.2 would use OpenSSL's "
            "defaults (allowed: add TLS 1.2 suites, or set min_version: TLS13)",
        )
    if http2 and not HTTP2_REQUIRED_SUITES & set(tls12):
        raise ConfigError(
            source,
            k("cipher_suites"),
            "is missing an HTTP/2-required AES_128_GCM_SHA256 suite (allowed: add "
            "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 or TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, "
            "or set http_server_config.http2: false)",
        )


def _parse_tls(
    value: Any, source: str, base_dir: Path, http2: bool = True
) -> TLSServerConfig | None:
    key = "tls_server_config"
    tls = expect_mapping(value, source, key)
    reject_unknown(tls, TLS_KEYS, source, key)
    if not any(tls.get(name) for name in TLS_ENABLING_KEYS):
        # exporter-toolkit (TLSConfig.IsEnabled): without a certificate, key, client CA or client
        # auth type it is plain HTTP (auth still applies). Same here, but say so: min_version
        # alone looks like TLS and is not.
        if any(v not in (None, "", []) for v in tls.values()):
            log.warning("%s: tls_server_config has no cert_file: serving plain HTTP", source)
        return None
    cert_file = _path(tls.get("cert_file"), source, k("cert_file"), base_dir)
    key_file = _path(tls.get("key_file"), source, k("key_file"), base_dir)
    cert = _inline(tls.get("cert"), source, k("cert"))
    key_pem = _inline(tls.get("key"), source, k("key"))
    ca_file = _path(tls.get("client_ca_file"), source, k("client_ca_file"), base_dir)
    ca = _inline(tls.get("client_ca"), source, k("client_ca"))
    for a, b, name in (
        (cert_file, cert, "cert"),
        (key_file, key_pem, "key"),
        (ca_file, ca, "client_ca"),
    ):
        if a is not None and b is not None:
            raise ConfigError(
                source,
                k(name),
                f"set either {name}_file or {name}, not both (allowed: one of them)",
            )
    if cert_file is None and cert is None:
        raise ConfigError(source, k("cert_file"), "missing: TLS needs cert_file (or inline cert)")
    if key_file is None and key_pem is None:
        raise ConfigError(source, k("key_file"), "missing: TLS needs key_file (or inline key)")

    allowed_auth = set(CLIENT_AUTH_TYPES)
    auth = tls.get("client_auth_type") or "NoClientCert"
    if isinstance(auth, str) and auth in UNSUPPORTED_CLIENT_AUTH:
        raise ConfigError(
            source,
            k("client_auth_type"),
            f"{show(auth)} (a certificate required but never verified) is not supported; use "
            "RequireAndVerifyClientCert with client_ca_file "
            f"(allowed: {', '.join(sorted(allowed_auth))})",
        )
    auth = expect_str(auth, source, k("client_auth_type"), allowed_auth)
    needs_ca = CLIENT_AUTH_TYPES[auth][1]
    has_ca = ca_file is not None or ca is not None
    if needs_ca and not has_ca:
        # As Go does without ClientCAs: client certificates are verified against the system's
        # trusted roots (see tlscontext.build_ssl_context).
        log.info("%s: %s without client_ca_file verifies against the system CAs", source, auth)
    if has_ca and not needs_ca:
        raise ConfigError(
            source,
            k("client_auth_type"),
            "a client CA is configured without a client auth policy "
            "(allowed: VerifyClientCertIfGiven, RequireAndVerifyClientCert)",
        )
    sans = _str_list(tls.get("client_allowed_sans"), source, k("client_allowed_sans"))
    if sans and auth != "RequireAndVerifyClientCert":
        raise ConfigError(
            source,
            k("client_allowed_sans"),
            "needs client_auth_type RequireAndVerifyClientCert "
            "(allowed: RequireAndVerifyClientCert)",
        )
    versions = set(TLS_VERSIONS)
    min_v = expect_str(tls.get("min_version", "TLS12"), source, k("min_version"), versions)
    max_v = expect_str(tls.get("max_version", "TLS13"), source, k("max_version"), versions)
    if TLS_VERSIONS[min_v] > TLS_VERSIONS[max_v]:
        raise ConfigError(source, k("min_version"), f"{min_v} is above max_version {max_v}")
    suites = _str_list(
        tls.get("cipher_suites"), source, k("cipher_suites"), set(CIPHER_SUITES) | TLS13_SUITES
    )
    _check_suites(suites, min_v, http2, source)
    prefer = True
    if "prefer_server_cipher_suites" in tls:
        prefer = expect_bool(
            tls["prefer_server_cipher_suites"], source, k("prefer_server_cipher_suites")
        )
    curves = _str_list(tls.get("curve_preferences"), source, k("curve_preferences"), CURVES)
    return TLSServerConfig(
        cert_file=cert_file,
        key_file=key_file,
        cert=cert,
        key=key_pem,
        client_ca_file=ca_file,
        client_ca=ca,
        client_auth_type=auth,
        client_allowed_sans=sans,
        min_version=min_v,
        max_version=max_v,
        cipher_suites=suites,
        prefer_server_cipher_suites=prefer,
        curve_preferences=curves,
    )


def _parse_headers(value: Any, source: str) -> dict[str, str]:
    key = "http_server_config.headers"
    headers = expect_mapping(value, source, key)
    reject_unknown(headers, frozenset(HEADER_CHOICES), source, key)
    result: dict[str, str] = {}
    for name, raw in headers.items():
        if raw is None or raw == "":
            continue  # the toolkit: "Unset if blank"
        if isinstance(raw, bool):  # Go's YAML decodes a scalar into the string it reads as
            raw = "true" if raw else "false"
        elif isinstance(raw, (int, float)):
            raw = str(raw)  # X-XSS-Protection: 1
        text = expect_str(raw, source, join_key(key, name))
        if any(ch in text for ch in "\r\n\0"):
            raise ConfigError(source, join_key(key, name), "must be one line (no CR, LF or NUL)")
        choices = HEADER_CHOICES[name]
        if choices is not None and text.lower() not in choices:
            raise ConfigError(
                source,
                join_key(key, name),
                f"{show(text)} is not allowed (allowed: {', '.join(sorted(choices))})",
            )
        result[name] = text
    return result


def _parse_users(value: Any, source: str) -> dict[str, str]:
    key = "basic_auth_users"
    users = expect_mapping(value, source, key)
    result: dict[str, str] = {}
    for name, hashed in users.items():
        if not isinstance(name, str) or not name or ":" in name:
            raise ConfigError(
                source, key, f"user name {show(name)} must be a non-empty string without ':'"
            )
        # Never echo the value: a plaintext password pasted here by mistake must not reach a log.
        if not isinstance(hashed, str) or not _BCRYPT_HASH.match(hashed):
            raise ConfigError(
                source,
                join_key(key, name),
                "is not a bcrypt hash (allowed: $2a$/$2b$/$2y$ hashes, e.g. from "
                "htpasswd -nBC 10 \"\" | tr -d ':\\n')",
            )
        result[name] = hashed
    check_bcrypt_costs(result, source)
    if result:
        import_bcrypt()  # fail at start-up, not on the first scrape
    return result


def parse_duration(text: str) -> float:
    """A Prometheus duration (``1m30s``, ``500ms``) in seconds; ValueError if malformed."""
    if not _DURATION.match(text):
        raise ValueError(text)
    return sum(int(n) * _DURATION_UNITS[u] for n, u in _DURATION_PART.findall(text))


def _parse_rate_limit(value: Any, source: str) -> RateLimit | None:
    key = "rate_limit"
    rate = expect_mapping(value, source, key)
    reject_unknown(rate, RATE_KEYS, source, key)
    if not rate:
        return None
    raw = rate.get("interval", "0s")
    try:
        if isinstance(raw, bool):
            interval = -1.0
        elif raw == 0 or raw == "0":  # a bare zero, as Go's time.Duration reads it
            interval = 0.0
        else:
            interval = parse_duration(str(raw))
    except ValueError:
        interval = -1.0
    if interval < 0:
        raise ConfigError(
            source,
            "rate_limit.interval",
            f"{show(raw)} is not a duration (allowed: e.g. 100ms, 1s, 1m)",
        )
    burst = expect_int(
        rate.get("burst", 0), source, "rate_limit.burst", minimum=0, maximum=MAX_RATE_BURST
    )
    if interval == 0:
        return None  # the toolkit: 0 disables the limiter
    if burst == 0:
        # Go's rate.NewLimiter(every, 0) allows nothing: every request gets 429. Same verdict
        # and behaviour as the toolkit, but said out loud.
        log.warning("%s: rate_limit.burst 0 refuses every request (429)", source)
    return RateLimit(interval, burst)
