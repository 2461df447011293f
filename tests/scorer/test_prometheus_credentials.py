"""The Prometheus credential and header options, through the commands that take them: the
scorer's (requests) and the base install's ``econ`` (urllib), which share them.

A bearer token with basic auth sent the token only; a user name without a password file sent an
empty password, a password file without a user name sent nothing, and an empty password file
was accepted. ``Cookie``, ``X-Api-Key`` and ``Host`` were taken on the command line, where the
process list shows them. Each is now refused in one line before any request;
``--prometheus.header-file`` carries a credential header instead.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from gpu_health.scorer import cli as scorer_cli
from tests.base.command_runs import is_one_line_error, run_main

#: Nothing listens here: a command that reached a query would fail on it, and say so.
DEAD = "http://127.0.0.1:9"
EMPTY = {"status": "success", "data": {"resultType": "vector", "result": []}}


@pytest.fixture
def recorder() -> Iterator[tuple[str, list[dict[str, str]]]]:
    """(URL, the headers of every request) of a server answering every query with no series."""
    seen: list[dict[str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            self.rfile.read(length)
            seen.append(dict(self.headers))
            data = json.dumps(EMPTY).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = _answer

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    made = {
        "token": "s3cret-token\n",
        "password": "s3cret-pw\n",
        "empty": "",
        "two-line-token": "s3cret\nsecond-line\n",
        "headers": "# the gateway's key\nX-Api-Key: s3cret-key\nCookie: session=s3cret-c\n",
        "host-headers": "X-Scope-OrgID: a\nHost: elsewhere\n",
        "auth-headers": "Authorization: Bearer s3cret\n",
        "twice-headers": "X-Api-Key: s3cret-a\nx-api-key: s3cret-b\n",
    }
    out = {}
    for name, text in made.items():
        out[name] = tmp_path / name
        out[name].write_text(text)
    return out


def _score(url: str, *extra: str) -> list[str]:
    return ["score", "--at", "1790000000", "--prometheus.url", url, "--prometheus.retries", "1",
            *extra]  # fmt: skip


def _econ(*extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gpu_health.cli", "econ", "--prometheus", DEAD, *extra],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


TOKEN = "--prometheus.bearer-token-file"
USER = "--prometheus.basic-auth-username"
PASSWORD = "--prometheus.basic-auth-password-file"
BAD = [
    (
        [TOKEN, "token", USER, "alice", PASSWORD, "password"],
        f"{TOKEN} and {USER}/{PASSWORD}: give one kind of credentials",
    ),
    ([TOKEN, "token", PASSWORD, "password"], "give one kind of credentials"),
    ([USER, "alice"], f"{USER} needs {PASSWORD}"),
    ([PASSWORD, "password"], f"{PASSWORD} <password>: needs {USER}"),
    ([USER, "al:ice", PASSWORD, "password"], f"{USER}: a basic-auth user name has no ':'"),
    ([USER, "alice", PASSWORD, "empty"], f"{PASSWORD} <empty>: the basic-auth password file"),
    ([TOKEN, "empty"], f"{TOKEN} <empty>: the bearer token file is empty"),
    ([TOKEN, "two-line-token"], f"{TOKEN} <two-line-token>: the token has a space, a line break"),
    (["--prometheus.header", "Cookie: session=s3cret"], "--prometheus.header Cookie: its value "
     "looks like a credential, and a flag's value shows in the process list; put 'NAME: VALUE' "
     "in a file given with --prometheus.header-file"),
    (["--prometheus.header", "X-Api-Key: s3cret"], "--prometheus.header X-Api-Key: its value"),
    (["--prometheus.header", "X-Auth-Token=s3cret"], "--prometheus.header X-Auth-Token: its value"),
    (["--prometheus.header", "Host: elsewhere"], "'Host: elsewhere': Host is set by the HTTP "
     "client"),
    (["--prometheus.header", "Content-Length: 0"], "Content-Length is set by the HTTP client"),
    (["--prometheus.header", "Transfer-Encoding: chunked"], "Transfer-Encoding is set by the"),
    (["--prometheus.header", "Connection: close"], "Connection is set by the HTTP client"),
    (["--prometheus.header-file", "host-headers"], "--prometheus.header-file <host-headers>: "
     "line 2: Host is set by the HTTP client"),
    (["--prometheus.header-file", "auth-headers"], "--prometheus.header-file <auth-headers>: "
     "line 1: credentials come from --prometheus.bearer-token-file"),
    (["--prometheus.header-file", "twice-headers"], "<twice-headers>: line 2: x-api-key is "
     "already set on line 1"),
    (["--prometheus.header-file", "empty"], "--prometheus.header-file <empty>: no 'NAME: VALUE'"),
]  # fmt: skip


@pytest.mark.parametrize(("args", "said"), BAD)
def test_credentials_that_would_not_be_sent_as_given_are_refused_at_start(
    args: list[str], said: str, files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [str(files[a]) if a in files else a for a in args]
    for name, path in files.items():
        said = said.replace(f"<{name}>", str(path))
    code, err = run_main(scorer_cli.main, _score(DEAD, *argv), capsys)
    assert is_one_line_error(code, err) and said in err, err
    assert "127.0.0.1:9" not in err  # before any query
    assert "s3cret" not in err
    proc = _econ(*argv)  # the base install's client takes the same options, and checks
    assert is_one_line_error(proc.returncode, proc.stderr) and said in proc.stderr, proc.stderr
    assert "s3cret" not in proc.stderr and "querying" not in proc.stderr


def test_a_header_file_is_sent_by_both_clients(
    recorder: tuple[str, list[dict[str, str]]],
    files: dict[str, Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    url, seen = recorder
    header_file = ["--prometheus.header-file", str(files["headers"])]
    tenant = ["--prometheus.header", "X-Scope-OrgID: team-a"]
    basic = [USER, "alice", PASSWORD, str(files["password"])]
    run_main(scorer_cli.main, _score(url, *header_file, *tenant, *basic), capsys)
    assert seen, "the scorer sent no query"
    sent = seen[-1]
    assert sent["X-Api-Key"] == "s3cret-key" and sent["Cookie"] == "session=s3cret-c"
    assert sent["X-Scope-OrgID"] == "team-a"
    assert sent["Authorization"] == "Basic " + base64.b64encode(b"alice:s3cret-pw").decode()
    seen.clear()
    proc = subprocess.run(
        [sys.executable, "-m", "gpu_health.cli", "econ", "--prometheus", url, *header_file,
         *tenant, TOKEN, str(files["token"])],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert "no gpu_econ_age_seconds series" in proc.stderr, proc.stderr  # it reached the server
    assert seen and seen[-1]["X-Api-Key"] == "s3cret-key", seen
    assert seen[-1]["Authorization"] == "Bearer s3cret-token"
    assert "s3cret" not in proc.stderr + proc.stdout
