"""``gpu-health report`` at fleet scale: a slow Prometheus is a timeout that names
``--query-timeout`` (not "cannot reach"), and a list longer than a rendering shows ends with a
line saying how many rows were left out and where to see them."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.conftest import PrometheusFactory
from tests.report.test_report import FakeGpu, _openmetrics

BIN = Path(sys.executable).parent
#: The rows of each long list the terminal and the HTML report show (report.model), written out
#: so a changed cap is noticed here.
TEXT_ROWS = {"unhealthy": 40, "xids": 30, "alerts": 40}
HTML_ROWS = {"unhealthy": 200, "xids": 100, "alerts": 200}
#: Build info as Prometheus answers it (so no MetricsQL probe query is sent).
BUILDINFO = {
    "status": "success",
    "data": {"revision": "abc", "goVersion": "go1.22", "version": "2"},
}
#: An instant answer with one GPU in every count (so --schema ours has GPUs) and no labels.
ONE_GPU = {
    "status": "success",
    "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1, "1"]}]},
}


def _report(url: str, *extra: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "gpu-health"), "report", "--prometheus", url, *extra],
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )


@pytest.fixture
def slow_prometheus() -> Iterator[Callable[[str], str]]:
    """``start(slow_path)``: a Prometheus stand-in that answers build info and instant queries at
    once but holds every request to ``slow_path`` until the test ends (a busy Prometheus)."""
    release = threading.Event()
    servers: list[ThreadingHTTPServer] = []

    def start(slow_path: str) -> str:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?")[0]
                if path == slow_path:
                    release.wait(60)
                answer = BUILDINFO if path == "/api/v1/status/buildinfo" else ONE_GPU
                body = json.dumps(answer).encode()
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:  # the report gave up on this request
                    pass

            def log_message(self, *args: object) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        servers.append(server)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{server.server_address[1]}"

    try:
        yield start
    finally:
        release.set()
        for server in servers:
            server.shutdown()
            server.server_close()


@pytest.mark.parametrize(
    ("slow_path", "expected"),
    [
        ("/api/v1/query", "did not answer within 1 s (raise --query-timeout)"),
        # the trends' range queries get twice the instant queries' timeout
        ("/api/v1/query_range", "did not answer a trend (range) query within 2 s"),
    ],
    ids=["instant", "range"],
)
def test_a_slow_prometheus_is_a_timeout_that_names_query_timeout(
    slow_prometheus: Callable[[str], str], slow_path: str, expected: str
) -> None:
    url = slow_prometheus(slow_path)
    started = time.monotonic()
    result = _report(url, "--schema", "ours", "--query-timeout", "1", timeout=60)
    elapsed = time.monotonic() - started
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert elapsed < 20, f"took {elapsed:.1f}s with --query-timeout 1"
    assert "Traceback" not in result.stderr and result.stderr.strip().count("\n") == 0
    assert f"Prometheus at {url} {expected}" in result.stderr, result.stderr
    assert "--query-timeout" in result.stderr and "cannot reach" not in result.stderr


def test_a_refused_connection_still_says_cannot_reach() -> None:
    result = _report("http://127.0.0.1:9", "--query-timeout", "5", timeout=60)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0
    assert "cannot reach Prometheus at http://127.0.0.1:9" in result.stderr
    assert "--query-timeout" not in result.stderr


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "3601", "2h", "soon", ""])
def test_a_bad_query_timeout_is_one_argparse_line(value: str) -> None:
    result = _report("http://127.0.0.1:9", "--query-timeout", value, timeout=60)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "argument --query-timeout" in result.stderr


def test_query_timeout_is_explained_in_help() -> None:
    result = _report("http://127.0.0.1:9", "--help", timeout=60)
    assert result.returncode == 0
    help_text = " ".join(result.stdout.split())
    assert "--query-timeout SECONDS" in help_text and "(default: 30)" in help_text
    assert "range) queries get twice it" in help_text


#: More failed GPUs (each with an XID 79 and a firing alert) than the HTML report lists, so
#: every list of both renderings is cut.
FLEET = HTML_ROWS["unhealthy"] + 10


@pytest.mark.integration
def test_cut_lists_say_how_many_rows_were_left_out(
    prometheus_factory: PrometheusFactory, backfill: Callable[[str], Path], tmp_path: Path
) -> None:
    end = int(time.time()) - 7200
    end -= end % 300
    gpus = [
        FakeGpu(
            uuid=f"GPU-{i:08x}-0000-0000-0000-000000000000",
            node=f"node-{i // 8:03d}",
            health=30.0,
            p7=0.2,
            p30=0.6,  # above 0.5: a firing GpuFailurePredicted alert
            action="repair",
            xids=2,  # an XID 79 in the period: failed
        )
        for i in range(FLEET)
    ]
    prom = prometheus_factory(data_dir=backfill(_openmetrics(gpus, end, hours=1)))
    page = tmp_path / "report.html"
    argv = ["--period", "1h", "--at", str(end), "--schema", "ours", "--html", str(page)]
    result = _report(prom.url, *argv)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f"GPU fleet report — {FLEET} GPUs" in out
    states = out.split("GPU states")[1].split("Health by grade")[0]
    assert sum(g.uuid[:16] in states for g in gpus) == TEXT_ROWS["unhealthy"]
    assert (
        f"… and {FLEET - TEXT_ROWS['unhealthy']} more GPUs not healthy (the --html report lists "
        f'up to {HTML_ROWS["unhealthy"]}; all: gpu_state{{state!="healthy"}} == 1' in states
    )
    risks = out.split("Riskiest GPUs")[1].split("Recommended actions")[0]
    assert f"… and {FLEET - 20} more GPUs in the ranking (raise --top;" in risks
    xids = out.split("XIDs in the last 1h")[1].split("Alerts in the last")[0]
    assert sum(g.uuid[:16] in xids for g in gpus) == TEXT_ROWS["xids"]
    assert (
        f"… and {FLEET - TEXT_ROWS['xids']} more (GPU, XID) rows (the --html report lists up to "
        f"{HTML_ROWS['xids']}; all: increase(gpu_xid_errors_total[1h]) > 0)" in xids
    )
    alerts = out.split("Alerts in the last 1h")[1]
    assert sum(g.uuid[:16] in alerts for g in gpus) == TEXT_ROWS["alerts"]
    assert (
        f"… and {FLEET - TEXT_ROWS['alerts']} more alerts (the --html report lists up to "
        f'{HTML_ROWS["alerts"]}; all: max_over_time(ALERTS{{alertstate="firing"}}[1h]))' in alerts
    )

    html = page.read_text()
    for section, what in [
        ("unhealthy", "GPUs not healthy"),
        ("xids", "(GPU, XID) rows"),
        ("alerts", "alerts"),
    ]:
        assert f"… and {FLEET - HTML_ROWS[section]} more {what} (all: " in html, section
    assert f"… and {FLEET - 20} more GPUs in the ranking (raise --top;" in html
    xid_part = html.split("<h2>XIDs")[1].split("<h2>Alerts")[0]
    assert xid_part.count("<tr><td>") == HTML_ROWS["xids"]


@pytest.mark.integration
def test_lists_that_fit_have_no_more_line(
    prometheus_factory: PrometheusFactory, backfill: Callable[[str], Path], tmp_path: Path
) -> None:
    """The other side of the cut: every row shown, no "… and N more" line."""
    end = int(time.time()) - 7200
    end -= end % 300
    gpus = [
        FakeGpu(f"GPU-{i:08x}-0000-0000-0000-000000000000", "node-a", 30.0, 0.2, 0.6, "repair", 2)
        for i in range(5)
    ]
    prom = prometheus_factory(data_dir=backfill(_openmetrics(gpus, end, hours=1)))
    page = tmp_path / "report.html"
    argv = ["--period", "1h", "--at", str(end), "--schema", "ours", "--html", str(page)]
    result = _report(prom.url, *argv)
    assert result.returncode == 0, result.stderr
    assert "… and" not in result.stdout and "… and" not in page.read_text()
    assert all(g.uuid[:16] in result.stdout.split("XIDs in the last")[1] for g in gpus)
