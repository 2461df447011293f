"""How a command reaches a Prometheus that asks for TLS or credentials.

The scorer (requests) and the base install's commands (``report``, ``plan``, ``econ``: urllib)
take the same options, defined here once: a CA file or no verification, a bearer token or a
basic-auth password read from a file (never from the command line, where ``ps`` shows it, and
never logged), and extra headers such as a tenant's ``X-Scope-OrgID``: on the command line, or
from ``--prometheus.header-file`` for a header whose value is a credential (``Cookie``,
``X-Api-Key``). :class:`Access` is what the urllib commands send: its headers and its TLS
context.
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

#: Most headers a ``--prometheus.header-file`` may set.
MAX_FILE_HEADERS = 100

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
#: Headers the credential options send: ``Authorization`` comes from the ``*-file`` options only.
_CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization"})
#: Words in a header name that mark its value as a credential (``Cookie``, ``X-Api-Key``,
#: ``X-Auth-Token``, ``X-Vault-Secret``): on the command line it shows in the process list, so
#: such a header comes from ``--prometheus.header-file``.
_CREDENTIAL_WORDS = ("auth", "token", "key", "secret", "passw", "cookie", "credential")
#: Headers that frame the request or concern one connection: the HTTP client sets them itself;
#: given by hand (``Host: other``, ``Content-Length: 0``, ``Transfer-Encoding: chunked``) they
#: redirect the request to another virtual host or corrupt its framing.
_FRAMING_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "upgrade",
        "expect",
    }
)


#: The option of each secret :func:`read_secret` reads, for its errors.
_SECRET_FLAGS = {
    "bearer token": "--prometheus.bearer-token-file",
    "basic-auth password": "--prometheus.basic-auth-password-file",
}


def read_secret(path: str, what: str) -> str:
    """The secret in ``path``, stripped; its content never appears in an error. An empty file
    is refused: an empty password or token is never the right one, and was sent as such."""
    try:
        secret = read_text_file(path, MAX_SECRET_BYTES).strip()
    except ConfigError as exc:
        raise UserError(f"cannot read {what} file {path}: {exc.problem}") from None
    if not secret:
        flag = _SECRET_FLAGS.get(what, what)
        raise UserError(f"{flag} {path}: the {what} file is empty")
    return secret


def read_token(path: str) -> str:
    """The bearer token in ``path``: one word of printable ASCII (RFC 6750). A file of two lines
    made a header value with a line break, which the HTTP client refused with an error quoting
    the header, token included (``cannot query: Invalid header value b'Bearer ...'``)."""
    token = read_secret(path, "bearer token")
    if not all(33 <= ord(ch) <= 126 for ch in token):
        raise UserError(
            f"--prometheus.bearer-token-file {path}: the token has a space, a line break or a "
            "character that is not printable ASCII (one token on one line expected)"
        )
    return token


def check_credentials(
    token_file: str | None, username: str | None, password_file: str | None
) -> None:
    """Refuse, in one line naming the options, credentials that would not be sent as given:
    a bearer token with basic auth (only the token was sent; Prometheus' own HTTP client
    configuration refuses the pair too), a user name without a password file (sent with an
    empty password), a password file without a user name (nothing was sent at all), a user
    name with a colon (basic auth cannot carry it)."""
    if token_file and (username or password_file):
        raise UserError(
            "--prometheus.bearer-token-file and --prometheus.basic-auth-username/"
            "--prometheus.basic-auth-password-file: give one kind of credentials (a request "
            "carries one Authorization header)"
        )
    if username and not password_file:
        raise UserError(
            "--prometheus.basic-auth-username needs --prometheus.basic-auth-password-file "
            "(an empty password is never sent)"
        )
    if password_file and not username:
        raise UserError(
            f"--prometheus.basic-auth-password-file {password_file}: needs "
            "--prometheus.basic-auth-username"
        )
    if username and ":" in username:
        raise UserError("--prometheus.basic-auth-username: a basic-auth user name has no ':'")


class HeaderFile(str):
    """The path of a ``--prometheus.header-file``, kept in order among the ``--prometheus.header``
    values (``args.prom_headers``): every command that hands those to :func:`parse_headers`
    reads the file there, at start, and only its path is ever in the arguments."""


class _HeaderFileAction(argparse.Action):
    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        items = list(getattr(namespace, self.dest, None) or [])
        setattr(namespace, self.dest, [*items, HeaderFile(str(values))])


def _is_credential(name: str) -> bool:
    lower = name.lower()
    return lower in _CREDENTIAL_HEADERS or any(word in lower for word in _CREDENTIAL_WORDS)


def _header(name: str, value: str, where: str, *, from_file: bool) -> tuple[str, str]:
    """One header checked; ``where`` names it in errors (the flag and its value, or the file
    and line: a value read from a file is never shown)."""
    if not _TOKEN.fullmatch(name):
        raise UserError(f"{where}: {one_line(name, 60)!r} is not a valid header name")
    lower = name.lower()
    if lower in _FRAMING_HEADERS:
        raise UserError(
            f"{where}: {name} is set by the HTTP client from the URL and the request (set by "
            "hand it misdirects the request or corrupts its framing)"
        )
    # a credential's value is the secret: on the command line it is named by the header alone
    named = where if from_file else f"--prometheus.header {name}"
    if lower == "authorization" or (not from_file and lower in _CREDENTIAL_HEADERS):
        raise UserError(
            f"{named}: credentials come from --prometheus.bearer-token-file or "
            "--prometheus.basic-auth-username with --prometheus.basic-auth-password-file"
            + (
                ""
                if from_file
                else ", other credential headers from --prometheus.header-file (a "
                "flag's value shows in the process list)"
            )
        )
    if not from_file and _is_credential(name):
        raise UserError(
            f"{named}: its value looks like a credential, and a flag's value shows in the "
            "process list; put 'NAME: VALUE' in a file given with --prometheus.header-file"
        )
    if any((ord(ch) < 32 and ch != "\t") or ord(ch) == 127 for ch in value):
        raise UserError(f"{where}: the value has a control character (CR, LF, ...)")
    return name, value


def parse_headers(pairs: list[str]) -> dict[str, str]:
    """``Name: value`` strings from the command line, and the files of
    ``--prometheus.header-file`` among them (:class:`HeaderFile`), into a header dict, checked at
    start-up: a name that is not an HTTP token or a value with CR, LF or another control character
    would fail every request (or split it), and a framing or connection header (``Host``,
    ``Content-Length``, ``Transfer-Encoding``, ``Connection``, ...) would misdirect or corrupt
    it, so each is refused here with the offending flag value or file line. A header whose value
    is a credential is refused on the command line, naming only the header, since ``ps`` shows
    it: ``Authorization`` comes from the ``*-file`` options, others (``Cookie``, ``X-Api-Key``,
    a name with auth, token, key, secret, password) from ``--prometheus.header-file``."""
    headers: dict[str, str] = {}
    for pair in pairs:
        if isinstance(pair, HeaderFile):
            headers.update(read_header_file(str(pair)))
            continue
        name, found, value = pair.partition(":")
        if not found:
            name, found, value = pair.partition("=")
        name, value = name.strip(), value.strip()
        shown = one_line(pair, 80)
        if not found or not name:
            raise UserError(f"--prometheus.header {shown!r}: expected 'Name: value'")
        if _is_credential(name):  # never shown, whatever is wrong with it
            shown = f"{one_line(name, 60)}: ..."
        name, value = _header(name, value, f"--prometheus.header {shown!r}", from_file=False)
        headers[name] = value
    return headers


def read_header_file(path: str) -> dict[str, str]:
    """The headers of a ``--prometheus.header-file``: one ``NAME: VALUE`` a line (blank lines
    and ``#`` comments skipped), at most :data:`MAX_FILE_HEADERS` of them in
    :data:`MAX_SECRET_BYTES`; each problem is one line naming the file and line, never a value."""
    try:
        text = read_text_file(path, MAX_SECRET_BYTES)
    except ConfigError as exc:
        raise UserError(f"--prometheus.header-file {path}: {exc.problem}") from None
    headers: dict[str, str] = {}
    first: dict[str, int] = {}
    for number, raw in enumerate(text.removeprefix("\ufeff").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        where = f"--prometheus.header-file {path}: line {number}"
        name, found, value = line.partition(":")
        name, value = name.strip(), value.strip()
        if not found or not name:
            raise UserError(f"{where}: expected 'NAME: VALUE'")
        name, value = _header(name, value, where, from_file=True)
        if name.lower() in first:
            raise UserError(f"{where}: {name} is already set on line {first[name.lower()]}")
        first[name.lower()] = number
        if len(first) > MAX_FILE_HEADERS:
            raise UserError(f"{where}: more than {MAX_FILE_HEADERS} headers")
        headers[name] = value
    if not headers:
        raise UserError(f"--prometheus.header-file {path}: no 'NAME: VALUE' line")
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
        "Authorization (credentials come from the *-file options), nor a header whose value "
        "is a credential (Cookie, X-Api-Key, a name with auth, token, key, secret or password: "
        "use --prometheus.header-file), nor Host, Content-Length, Transfer-Encoding, "
        "Connection and the like (set by the client)",
    )
    g.add_argument(
        "--prometheus.header-file",
        dest="prom_headers",
        action=_HeaderFileAction,
        default=argparse.SUPPRESS,
        metavar="FILE",
        help="file of extra request headers, one 'NAME: VALUE' a line (# comments; at most "
        f"{MAX_FILE_HEADERS} headers, 64 KiB), read at start and never logged: for headers "
        "whose value is a credential (Cookie, X-Api-Key); repeatable",
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
    check_credentials(args.prom_token_file, args.prom_user, args.prom_password_file)
    headers = parse_headers(list(args.prom_headers))
    if args.prom_token_file:
        token = read_token(args.prom_token_file)
        headers["Authorization"] = f"Bearer {token}"
    elif args.prom_user:  # with a password file (check_credentials)
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
