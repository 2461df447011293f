"""A query that Prometheus refuses is named by Prometheus' own reason, never "cannot reach".

Prometheus answers a query it will not run with an error status (422 past
``--query.max-samples``, 400 for a range it cannot take, 503 past ``--query.timeout``) and a
JSON body saying why. The report, ``plan`` and ``econ`` read only urllib's HTTPError and said
"cannot reach Prometheus at URL: Unprocessable Entity" of a Prometheus that had answered.
Here a real Prometheus refuses every query that loads more than one sample.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from gpu_health import cli as umbrella
from tests.base.command_runs import is_one_line_error, run_main
from tests.conftest import PrometheusFactory, launch_victoriametrics

REFUSED = "refused (HTTP 422): query processing would load too many samples into memory"


@pytest.fixture
def refusing_prometheus(
    prometheus_factory: PrometheusFactory, backfill: Callable[[str], Path]
) -> tuple[str, int]:
    """(URL, time) of a Prometheus holding two hours of one GPU's series and refusing every
    query that loads more than one sample."""
    now = int(time.time()) // 60 * 60
    start = now - 2 * 3600
    lines = []
    labels = 'uuid="GPU-a",node="n1",gpu="0",model="NVIDIA H100 80GB HBM3"'
    for name, value in (
        ("gpu_up", "1"),
        ("gpu_power_watts", "300"),
        ("gpu_temperature_celsius", "50"),
        ("gpu_econ_age_seconds", "1000"),
    ):
        lines.append(f"# TYPE {name} gauge")
        lines += [f"{name}{{{labels}}} {value} {t}" for t in range(start, now, 60)]
    lines.append("# TYPE gpu_failure_probability gauge")
    for horizon in ("7d", "30d", "90d"):
        lines += [
            f'gpu_failure_probability{{{labels},horizon="{horizon}"}} 0.01 {t}'
            for t in range(start, now, 60)
        ]
    lines.append("# EOF")
    data_dir = backfill("\n".join(lines) + "\n")
    prom = prometheus_factory(data_dir=data_dir, extra_args=["--query.max-samples=1"])
    return prom.url, now - 60


@pytest.mark.parametrize("command", ["report", "plan", "econ"])
def test_a_refused_query_is_named_by_prometheus_reason(
    command: str, refusing_prometheus: tuple[str, int], capsys: pytest.CaptureFixture[str]
) -> None:
    url, at = refusing_prometheus
    argv = [command, "--prometheus", url]
    if command != "econ":
        argv += ["--at", str(at)]
    code, err = run_main(umbrella.main, argv, capsys)
    if command == "econ":  # its progress line comes first
        err = err.removeprefix(f"querying {url} for the fleet ...\n")
    assert is_one_line_error(code, err), err
    assert REFUSED in err and "cannot reach" not in err, err


@pytest.mark.parametrize("command", ["report", "plan", "econ", "score"])
def test_a_url_without_the_query_api_says_to_give_the_base_url(
    command: str, refusing_prometheus: tuple[str, int], capsys: pytest.CaptureFixture[str]
) -> None:
    """A path under which no query API answers (404): before, "cannot reach Prometheus at
    URL: Not Found" (report, plan) or "not a Prometheus answer" (the scorer)."""
    from gpu_health.scorer import cli as scorer_cli

    url, at = refusing_prometheus
    wrong = f"{url}/prom"
    if command == "score":
        main, argv = scorer_cli.main, ["score", "--at", str(at), "--prometheus.url", wrong]
    else:
        main, argv = umbrella.main, [command, "--prometheus", wrong]
    code, err = run_main(main, argv, capsys)
    err = err.removeprefix(f"querying {wrong} for the fleet ...\n")
    err = "".join(line for line in err.splitlines(True) if " INFO " not in line)  # scorer's log
    assert is_one_line_error(code, err), err
    assert "404" in err and "give the server's base URL" in err, err


@pytest.fixture
def login_page() -> Iterator[str]:
    """A server that answers every request with an HTML login page, as an authenticating proxy
    in front of Prometheus does once its session has expired."""

    class LoginPage(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            body = b"<!doctype html><html><body>Sign in</body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _answer

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), LoginPage)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("command", ["report", "plan", "econ", "score"])
def test_a_login_page_is_named_for_what_it_is(
    command: str, login_page: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: "Expecting value: line 1 column 1 (char 0)" (report, plan, econ) or "not a
    Prometheus answer" (the scorer)."""
    from gpu_health.scorer import cli as scorer_cli

    if command == "score":
        main, argv = scorer_cli.main, ["score", "--at", "0", "--prometheus.url", login_page]
    else:
        main, argv = umbrella.main, [command, "--prometheus", login_page]
    code, err = run_main(main, argv, capsys)
    err = err.removeprefix(f"querying {login_page} for the fleet ...\n")
    err = "".join(line for line in err.splitlines(True) if " INFO " not in line)
    assert is_one_line_error(code, err), err
    assert "not JSON (it begins '<!doctype html><html><body>Sign in" in err, err


def test_victoriametrics_refusals_are_named_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The other engine: its refusal (HTTP 422, JSON) by its reason, and its plain-text 400 for a
    path under which it has no API as a wrong base URL (was "cannot reach ... Bad Request")."""
    vm = launch_victoriametrics(tmp_path / "vm", ["-search.maxQueryLen=10"])
    try:
        code, err = run_main(umbrella.main, ["report", "--prometheus", vm.url], capsys)
        assert is_one_line_error(code, err), err
        assert "refused (HTTP 422): too long query" in err, err
        wrong = ["report", "--prometheus", f"{vm.url}/prom"]
        code, err = run_main(umbrella.main, wrong, capsys)
        assert is_one_line_error(code, err), err
        assert "HTTP 400" in err and "give the server's base URL" in err, err
        assert "cannot reach" not in err, err
    finally:
        vm.stop()
