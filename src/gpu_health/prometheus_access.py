"""How a command reaches a Prometheus that asks for TLS or credentials.

The scorer (requests) and the base install's commands (``report``, ``plan``, ``econ``: urllib)
take the same options, defined here once: a CA file or no verification, a bearer token or a
basic-auth password read from a file (never from the command line, where ``ps`` shows it, and
never logged), and extra headers such as a tenant's ``X-Scope-OrgID``. :class:`Access` is what
the urllib commands send: its headers and its TLS context.
"""

from __future__ import annotations

import argparse
import base64
import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from gpu_health.config import read_text_file
from gpu_health.errors import ConfigError, UserError
from gpu_health.safetext import one_line

#: A bearer token (a JWT included) or a password is a few KiB at most: a larger file is a wrong
#: path (/dev/zero was read until memory ran out, a FIFO waited for ever).
MAX_SECRET_BYTES = 64 * 1024

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
#: Headers whose value is a credential: read from a file (``*_file`` options), never a flag.
_CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization"})


def read_secret(path: str, what: str) -> str:
    """The secret in ``path``, stripped; its content never appears in an error."""
    try:
        return read_text_file(path, MAX_SECRET_BYTES).strip()
    except ConfigError as exc:
        raise UserError(f"cannot read {what} file {path}: {exc.problem}") from None


def parse_headers(pairs: list[str]) -> dict[str, str]:
    """``Name: value`` strings from the command line into a header dict, checked at start-up: a
    name that is not an HTTP token or a value with CR, LF or another control character would fail
    every request (or split it), so it is refused here with the offending flag value. An
    ``Authorization`` header is refused too, naming only the header: its value is a secret, which
    the ``*-file`` options keep out of the process list."""
    headers: dict[str, str] = {}
    for pair in pairs:
        name, found, value = pair.partition(":")
        if not found:
            name, found, value = pair.partition("=")
        name, value = name.strip(), value.strip()
        shown = one_line(pair, 80)
        if not found or not name:
            raise UserError(f"--prometheus.header {shown!r}: expected 'Name: value'")
        if not _TOKEN.fullmatch(name):
            raise UserError(f"--prometheus.header {shown!r}: {name!r} is not a valid header name")
        if name.lower() in _CREDENTIAL_HEADERS:
            # the value is the secret: named by the header alone
            raise UserError(
                f"--prometheus.header {name}: a credential on the command line shows in the "
                "process list; use --prometheus.bearer-token-file or "
                "--prometheus.basic-auth-username with --prometheus.basic-auth-password-file"
            )
        if any((ord(ch) < 32 and ch != "\t") or ord(ch) == 127 for ch in value):
            raise UserError(
                f"--prometheus.header {shown!r}: the value has a control character (CR, LF, ...)"
            )
        headers[name] = value
    return headers


def add_access_arguments(g: argparse._ArgumentGroup | argparse.ArgumentParser) -> None:
    """The TLS, credential and header options, with the scorer's names and destinations."""
    g.add_argument(
        "--prometheus.ca-file",
        dest="prom_ca_file",
        help="CA bundle to verify the server's TLS certificate",
    )
    g.add_argument(
        "--prometheus.insecure-skip-verify",
        dest="prom_insecure",
        action="store_true",
        help="do not verify TLS certificates (testing only)",
    )
    g.add_argument(
        "--prometheus.bearer-token-file",
        dest="prom_token_file",
        help="file holding a bearer token (read at start, never logged)",
    )
    g.add_argument(
        "--prometheus.basic-auth-username", dest="prom_user", help="basic-auth user name"
    )
    g.add_argument(
        "--prometheus.basic-auth-password-file",
        dest="prom_password_file",
        help="file holding the basic-auth password",
    )
    g.add_argument(
        "--prometheus.header",
        dest="prom_headers",
        action="append",
        default=[],
        metavar="'NAME: VALUE'",
        help="extra request header, repeatable (e.g. 'X-Scope-OrgID: team-a'); not "
        "Authorization: credentials come from the *-file options",
    )


@dataclass(frozen=True)
class Access:
    """What every request of a urllib command carries: headers (credentials included) and the
    TLS context (None: Python's default verification)."""

    headers: Mapping[str, str] = field(default_factory=dict)
    context: ssl.SSLContext | None = None


#: No TLS options, no credentials.
PLAIN = Access()


def access_from_args(args: argparse.Namespace) -> Access:
    """The :class:`Access` the options of :func:`add_access_arguments` ask for, each problem a
    one-line UserError naming its option (a secret's content is never shown)."""
    headers = parse_headers(list(args.prom_headers))
    if args.prom_token_file:
        token = read_secret(args.prom_token_file, "bearer token")
        headers["Authorization"] = f"Bearer {token}"
    elif args.prom_user:
        password = ""
        if args.prom_password_file:
            password = read_secret(args.prom_password_file, "basic-auth password")
        pair = f"{args.prom_user}:{password}".encode()
        headers["Authorization"] = f"Basic {base64.b64encode(pair).decode()}"
    return Access(headers, _context(args.prom_ca_file, args.prom_insecure))


def _context(ca_file: str | None, insecure: bool) -> ssl.SSLContext | None:
    if ca_file:
        path = Path(ca_file)
        if not path.exists():
            raise UserError(f"--prometheus.ca-file {ca_file}: file not found")
        if not path.is_file():  # a directory, a FIFO, /dev/zero
            raise UserError(f"--prometheus.ca-file {ca_file}: not a regular file")
        try:
            return ssl.create_default_context(cafile=ca_file)
        except (ssl.SSLError, OSError, ValueError) as exc:
            raise UserError(f"--prometheus.ca-file {ca_file}: {one_line(str(exc), 200)}") from None
    if insecure:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    return None


#: Said where the query API answers 404: the URL given is not the server's base URL.
NOT_FOUND_HINT = (
    "no query API under this URL: give the server's base URL (e.g. http://127.0.0.1:9090; "
    "Mimir: http://mimir:8080/prometheus)"
)
#: Said where the server answers 401 or 403 without the API's JSON: it wants credentials.
CREDENTIALS_HINT = (
    "give the server's credentials (--prometheus.basic-auth-username with "
    "--prometheus.basic-auth-password-file, or --prometheus.bearer-token-file)"
)


def not_json(body: bytes) -> str:
    """What to say of an answer that is not the API's JSON: how it begins (a login page in front
    of Prometheus, or another server's page, reads as HTML), never more than a line."""
    start = one_line(body[:80].decode("utf-8", "replace"), 60)
    return (
        f"the answer is not JSON (it begins {start!r}): a login page in front of Prometheus, "
        "or another server at this URL?"
    )


def non_api_answer(status: int, body: bytes) -> str:
    """Why an answer without the query API's JSON came, for both clients (the scorer's and the
    base install's): credentials wanted (401, 403), no API under the URL (404; VictoriaMetrics
    answers a path it does not serve with a plain-text 400), or a page that is not the API's (a
    login page, another server)."""
    if status in (401, 403):
        return CREDENTIALS_HINT
    if status in (400, 404):
        return NOT_FOUND_HINT
    return not_json(body)
