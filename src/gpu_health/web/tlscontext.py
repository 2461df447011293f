"""Building the server's ``ssl.SSLContext`` from a parsed ``tls_server_config``.

Apart from parsing (:mod:`gpu_health.web.config`) because this is the part that touches files and
OpenSSL, and is re-run on every certificate rotation.
"""

from __future__ import annotations

import contextlib
import logging
import os
import ssl
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from gpu_health.errors import ConfigError
from gpu_health.web.config import (
    CIPHER_SUITES,
    CLIENT_AUTH_TYPES,
    TLS_VERSIONS,
    TLSServerConfig,
    k,
)

log = logging.getLogger(__name__)


def _refuse_passphrase() -> bytes:
    raise ConfigError("", "", "encrypted key")


@contextlib.contextmanager
def _pem_files(tls: TLSServerConfig) -> Iterator[tuple[str, str]]:
    """Paths of cert and key; inline PEM goes to a private temporary file only while loading."""
    with tempfile.TemporaryDirectory(prefix="gpu-health-tls-") as tmp:
        paths = []
        for file, inline, name in (
            (tls.cert_file, tls.cert, "cert"),
            (tls.key_file, tls.key, "key"),
        ):
            if file is not None:
                paths.append(str(file))
                continue
            target = Path(tmp) / f"{name}.pem"
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(inline or "")
            paths.append(str(target))
        yield paths[0], paths[1]


#: Bytes of a PEM file read to tell which file is wrong when OpenSSL refuses the pair (a chain
#: of a dozen certificates is ~20 KB); only read after a failed load.
PEM_SNIFF_BYTES = 1 << 20


def _pem_labels(path: str) -> set[str] | None:
    """The PEM block types (``CERTIFICATE``, ``PRIVATE KEY``...) in the first
    :data:`PEM_SNIFF_BYTES` of ``path``; None if it cannot be read."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(PEM_SNIFF_BYTES)
    except OSError:
        return None
    labels = set()
    for line in head.splitlines():
        text = line.strip()
        if text.startswith(b"-----BEGIN ") and text.endswith(b"-----"):
            labels.add(text[11:-5].decode("ascii", "replace"))
    return labels


def _which_pem_is_wrong(cert_path: str, key_path: str) -> tuple[str, str] | None:
    """(``cert`` or ``key``, what is wrong) when one file plainly holds the wrong thing:
    OpenSSL's own reason (``[SSL] PEM lib``) names neither file, and a key given as
    ``cert_file`` (or the two swapped) is the usual mistake. None when both look right (e.g.
    a key that does not match the certificate: OpenSSL's reason says so)."""
    cert_labels = _pem_labels(cert_path)
    key_labels = _pem_labels(key_path)
    if cert_labels is not None and "CERTIFICATE" not in cert_labels:
        return "cert", "does not hold a certificate (no -----BEGIN CERTIFICATE----- line)"
    if key_labels is not None and not any(label.endswith("PRIVATE KEY") for label in key_labels):
        return "key", "does not hold a private key (no -----BEGIN ... PRIVATE KEY----- line)"
    return None


def _not_a_file(path: Path) -> str:
    """Why ``path``, which is not a regular file, cannot be read as one: "file not found" only
    when nothing is there (a directory given for a certificate was reported as missing)."""
    if path.is_dir():
        return "a directory, not a file"
    if path.exists():
        return "not a regular file"
    return "file not found"


def build_ssl_context(tls: TLSServerConfig, source: str) -> ssl.SSLContext:
    """An ``ssl.SSLContext`` for the server; a bad file is a ConfigError naming its key."""
    for path, name in ((tls.cert_file, "cert_file"), (tls.key_file, "key_file")):
        if path is not None and not path.is_file():
            raise ConfigError(source, k(name), f"{_not_a_file(path)}: {path}")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        ctx.minimum_version = TLS_VERSIONS[tls.min_version]
        ctx.maximum_version = TLS_VERSIONS[tls.max_version]
    except (ValueError, ssl.SSLError) as exc:
        raise ConfigError(
            source, k("min_version"), f"not supported by this OpenSSL: {exc}"
        ) from None
    with _pem_files(tls) as (cert_path, key_path):
        try:
            ctx.load_cert_chain(cert_path, key_path, password=_refuse_passphrase)
        except ConfigError:
            raise ConfigError(
                source, k("key_file"), "the key is encrypted; give an unencrypted PEM key"
            ) from None
        except ssl.SSLError as exc:
            reason = exc.reason or str(exc)
            where = "key_file" if "KEY" in str(reason).upper() else "cert_file"
            hint = _which_pem_is_wrong(cert_path, key_path)
            if hint is not None:
                which, what = hint
                file = tls.cert_file if which == "cert" else tls.key_file
                where = f"{which}_file" if file is not None else which
                reason = f"{file or f'the inline {which}'} {what} ({reason})"
            raise ConfigError(
                source, k(where), f"cannot load the certificate and key: {reason}"
            ) from None
        except OSError as exc:
            raise ConfigError(source, k("cert_file"), f"cannot read: {exc.strerror}") from None
    mode, needs_ca = CLIENT_AUTH_TYPES[tls.client_auth_type]
    if needs_ca and tls.client_ca_file is None and tls.client_ca is None:
        ctx.load_default_certs(ssl.Purpose.CLIENT_AUTH)  # Go: no ClientCAs = the system roots
    elif needs_ca:
        try:
            if tls.client_ca_file is not None:
                if not tls.client_ca_file.is_file():
                    problem = _not_a_file(tls.client_ca_file)
                    raise ConfigError(
                        source, k("client_ca_file"), f"{problem}: {tls.client_ca_file}"
                    )
                ctx.load_verify_locations(cafile=str(tls.client_ca_file))
            else:
                ctx.load_verify_locations(cadata=tls.client_ca)
        except ssl.SSLError as exc:
            raise ConfigError(
                source, k("client_ca_file"), f"cannot load the CA: {exc.reason or exc}"
            ) from None
    ctx.verify_mode = mode
    suites = [CIPHER_SUITES[s] for s in tls.cipher_suites if s in CIPHER_SUITES]
    if suites:
        try:
            ctx.set_ciphers(":".join(suites))
        except ssl.SSLError:
            raise ConfigError(
                source, k("cipher_suites"), "none of these suites is available in this OpenSSL"
            ) from None
    if tls.prefer_server_cipher_suites:
        ctx.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    else:
        ctx.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE
    if tls.curve_preferences:
        log.info("%s: curve_preferences is accepted but OpenSSL's default groups are used", source)
    return ctx


def peer_san_allowed(peer_cert: Mapping[str, Any] | None, allowed: tuple[str, ...]) -> bool:
    """client_allowed_sans: an exact match of any DNS/IP/email/URI SAN of the verified cert."""
    if not allowed:
        return True
    if not peer_cert:
        return False
    sans = {str(value) for _kind, value in peer_cert.get("subjectAltName", ())}
    return any(san in sans for san in allowed)
