"""The shared fixtures drive the real Prometheus, Alertmanager and promtool."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from gpu_health import stack
from tests.conftest import AlertmanagerFactory, PrometheusFactory

pytestmark = pytest.mark.integration


@pytest.fixture
def metrics_target() -> Iterator[tuple[str, Callable[[float], None]]]:
    """A minimal scrape target serving one gauge whose value the test sets."""
    state = {"value": 42.5}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = (
                "# HELP probe_value A value the test controls.\n"
                "# TYPE probe_value gauge\n"
                f'probe_value{{uuid="GPU-test"}} {state["value"]}\n'
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    def set_value(value: float) -> None:
        state["value"] = value

    try:
        yield f"127.0.0.1:{server.server_address[1]}", set_value
    finally:
        server.shutdown()
        server.server_close()


def test_prometheus_scrapes_a_target_and_answers_promql(
    prometheus_factory: PrometheusFactory,
    metrics_target: tuple[str, Callable[[float], None]],
) -> None:
    address, set_value = metrics_target
    value = 1234.25 + time.time() % 7  # not a constant the test could have baked in
    set_value(value)
    prom = prometheus_factory(scrape_targets={"probe": [address]})
    result = stack.wait_for_query(prom.url, 'probe_value{uuid="GPU-test"}', timeout=30)
    assert float(result[0]["value"][1]) == pytest.approx(value)
    assert result[0]["metric"]["job"] == "probe"
    up = stack.query(prom.url, 'up{job="probe"}')
    assert up[0]["value"][1] == "1"


def test_prometheus_loads_rule_files(
    prometheus_factory: PrometheusFactory,
    metrics_target: tuple[str, Callable[[float], None]],
    tmp_path: Path,
) -> None:
    address, set_value = metrics_target
    set_value(10)
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "groups:\n- name: t\n  interval: 1s\n  rules:\n"
        "  - record: job:probe_value:doubled\n    expr: 2 * probe_value\n"
    )
    prom = prometheus_factory(scrape_targets={"probe": [address]}, rule_files=[rules])
    result = stack.wait_for_query(prom.url, "job:probe_value:doubled", timeout=30)
    assert float(result[0]["value"][1]) == 20.0


def test_backfilled_openmetrics_is_served(
    prometheus_factory: PrometheusFactory, backfill: Callable[[str], Path]
) -> None:
    now = int(time.time())
    start = now - 3 * 3600
    lines = ["# HELP backfilled_value Test series.", "# TYPE backfilled_value gauge"]
    for i in range(0, 3 * 3600, 60):
        lines.append(f'backfilled_value{{uuid="GPU-a"}} {i / 60} {start + i}')
    lines.append("# EOF")
    data_dir = backfill("\n".join(lines) + "\n")
    prom = prometheus_factory(data_dir=data_dir)
    at = start + 120 * 60
    result = stack.query(prom.url, 'backfilled_value{uuid="GPU-a"}', at=at)
    assert float(result[0]["value"][1]) == 120.0
    count = stack.query(prom.url, "count_over_time(backfilled_value[3h])", at=start + 3 * 3600 - 60)
    assert float(count[0]["value"][1]) == 180.0


def test_alertmanager_starts_and_reports_ready(
    alertmanager_factory: AlertmanagerFactory, tmp_path: Path
) -> None:
    config = tmp_path / "am.yml"
    config.write_text("route:\n  receiver: sink\nreceivers:\n- name: sink\n")
    am = alertmanager_factory(config)
    status = stack.http_get(f"{am.url}/api/v2/status").decode()
    assert '"cluster"' in status and "sink" in status


def test_missing_binary_error_gives_install_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(
        stack.MissingBinaryError, match=r"apt-get install -y prometheus-alertmanager$"
    ):
        stack.find_binary("prometheus-alertmanager", "alertmanager")


@pytest.mark.parametrize("name", ["prometheus", "alertmanager", "victoria-metrics"])
def test_a_server_picks_another_port_when_its_free_port_is_taken(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    """A free port can be bound by another process (a parallel test worker) before the server
    binds it: a chosen port is chosen again, a port asked for is not, and says why."""
    import socket

    from tests.conftest import launch_victoriametrics

    config = tmp_path / "config.yml"
    if name == "prometheus":
        stack.write_prometheus_config(config)
    else:
        config.write_text("route:\n  receiver: none\nreceivers:\n  - name: none\n")

    def start(
        workdir: Path, port: int | None = None
    ) -> contextlib.AbstractContextManager[stack.Server]:
        if name == "victoria-metrics":
            return _stopping(launch_victoriametrics(workdir / "vm"))
        launcher = stack.prometheus if name == "prometheus" else stack.alertmanager
        return launcher(workdir, config, port=port)

    ready = "/health" if name == "victoria-metrics" else "/-/ready"

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        chosen = iter([busy])
        real = stack.free_port
        monkeypatch.setattr(stack, "free_port", lambda: next(chosen, 0) or real())
        with start(tmp_path) as server:
            assert server.port != busy
            assert stack.http_get(f"{server.url}{ready}", timeout=10) is not None
            log = server.log_path
        assert b"address already in use" in log.read_bytes()
        if name == "victoria-metrics":
            return  # the tests' launcher always chooses its port
        asked = tmp_path / "asked"
        asked.mkdir()
        refused = pytest.raises(RuntimeError, match="address already in use")
        with refused, start(asked, port=busy):
            pass


@contextlib.contextmanager
def _stopping(server: stack.Server) -> Iterator[stack.Server]:
    try:
        yield server
    finally:
        server.stop()
