"""Shared fixtures: real Prometheus, Alertmanager and promtool, started on loopback per test.

Every test that needs the Prometheus tooling uses these factories (never its own copy), so a
server is always bound to 127.0.0.1 on a free port, keeps its data in the test's tmp_path, and is
stopped when the test ends, pass or fail.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from gpu_health import die_with_parent, stack

REPO_ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"

PrometheusFactory = Callable[..., stack.Server]
AlertmanagerFactory = Callable[..., stack.Server]

#: ``--max-block-duration`` for the tests' backfills. promtool reads its whole input once per
#: block it writes, and by default writes 2-hour blocks: an 8-day history took 26.1 s of CPU
#: read 96 times and 1.3 s read once. 2400h gives 1458-hour blocks (promtool rounds down to a
#: compaction range, aligned to the epoch), so a test's history is read once or twice. The
#: product's ``gpu-health backfill`` writes 2-hour files instead and keeps promtool's default.
ONE_PASS_BLOCKS = "2400h"


@pytest.fixture
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture
def prometheus_factory(tmp_path: Path) -> Iterator[PrometheusFactory]:
    """Start a real Prometheus: ``factory(scrape_targets={job: [host:port]}, rule_files=[...])``.

    Keyword arguments go to :func:`gpu_health.stack.write_prometheus_config`, except
    ``data_dir`` (a backfilled TSDB to serve) and ``extra_args``.
    """
    with contextlib.ExitStack() as stack_:
        counter = iter(range(1000))

        def start(
            data_dir: Path | None = None,
            extra_args: Sequence[str] = (),
            **config: Any,
        ) -> stack.Server:
            workdir = tmp_path / f"prometheus-{next(counter)}"
            workdir.mkdir()
            config_path = stack.write_prometheus_config(workdir / "prometheus.yml", **config)
            return stack_.enter_context(
                stack.prometheus(workdir, config_path, data_dir=data_dir, extra_args=extra_args)
            )

        yield start


@pytest.fixture
def alertmanager_factory(tmp_path: Path) -> Iterator[AlertmanagerFactory]:
    """Start a real Alertmanager from a config file path: ``factory(config_path)``."""
    with contextlib.ExitStack() as stack_:
        counter = iter(range(1000))

        def start(config_path: Path, extra_args: Sequence[str] = ()) -> stack.Server:
            workdir = tmp_path / f"alertmanager-{next(counter)}"
            workdir.mkdir()
            return stack_.enter_context(
                stack.alertmanager(workdir, config_path, extra_args=extra_args)
            )

        yield start


@pytest.fixture
def backfill(tmp_path: Path) -> Callable[[str], Path]:
    """Turn OpenMetrics text into a Prometheus data dir with promtool; returns the dir."""
    counter = iter(range(1000))

    def make(openmetrics_text: str) -> Path:
        n = next(counter)
        source = tmp_path / f"backfill-{n}.om"
        source.write_text(openmetrics_text)
        data_dir = tmp_path / f"tsdb-{n}"
        stack.promtool_backfill(source, data_dir, block_duration=ONE_PASS_BLOCKS)
        return data_dir

    return make


def launch_victoriametrics(workdir: Path, extra_args: Sequence[str] = ()) -> stack.Server:
    """:func:`gpu_health.stack.victoriametrics` in ``workdir`` (created) with ``extra_args``;
    the caller stops it. Skips the test when the binary is not installed."""
    import shutil

    if shutil.which("victoria-metrics") is None:
        pytest.skip("victoria-metrics is not installed (run.sh installs it)")
    workdir.mkdir(parents=True)
    return stack.victoriametrics(workdir, extra_args)


@pytest.fixture
def victoriametrics_factory(tmp_path: Path) -> Iterator[Callable[[], stack.Server]]:
    """Start VictoriaMetrics like Prometheus: loopback, free port, data in the test's
    tmp_path, always stopped. ``import_openmetrics(server, text)`` loads history."""
    servers: list[stack.Server] = []
    counter = iter(range(1000))

    def start() -> stack.Server:
        server = launch_victoriametrics(tmp_path / f"victoriametrics-{next(counter)}")
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def import_openmetrics(server: stack.Server, text: str) -> None:
    """Load OpenMetrics history (seconds timestamps) into VictoriaMetrics and make it searchable.

    VictoriaMetrics imports the Prometheus text format with millisecond timestamps through
    ``/api/v1/import/prometheus``; ``/internal/force_flush`` makes the samples visible at once.
    """
    import urllib.request

    lines = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        series, value, ts = line.rsplit(" ", 2)
        lines.append(f"{series} {value} {int(float(ts) * 1000)}")
    body = ("\n".join(lines) + "\n").encode()
    request = urllib.request.Request(f"{server.url}/api/v1/import/prometheus", data=body)
    with urllib.request.urlopen(request, timeout=60) as response:
        assert response.status in (200, 204), response.status
    stack.http_get(f"{server.url}/internal/force_flush", timeout=30)


@pytest.fixture
def on_both_engines(
    prometheus_factory: PrometheusFactory,
    backfill: Callable[[str], Path],
    victoriametrics_factory: Callable[[], stack.Server],
) -> Callable[[str], tuple[str, str]]:
    """Serve one OpenMetrics history from a real Prometheus (backfilled with promtool) and a
    real VictoriaMetrics (imported): ``on_both_engines(text)`` returns their two URLs."""

    def serve(text: str) -> tuple[str, str]:
        prom = prometheus_factory(data_dir=backfill(text))
        vm = victoriametrics_factory()
        import_openmetrics(vm, text)
        return prom.url, vm.url

    return serve


@pytest.fixture
def sim_exporter_factory(tmp_path: Path) -> Iterator[Callable[..., stack.Server]]:
    """Start ``gpu-health-exporter --backend sim`` on 127.0.0.1: ``factory(*extra_args)``.

    Returns a Server whose ``url`` serves /metrics; stopped when the test ends. Pass ``port``
    to restart an exporter where Prometheus already scrapes it (a node reboot).
    """
    import subprocess
    import sys

    servers: list[stack.Server] = []
    counter = iter(range(1000))

    def start(*extra_args: str, node: str = "sim-node", port: int | None = None) -> stack.Server:
        workdir = tmp_path / f"exporter-{next(counter)}"
        workdir.mkdir()
        port = port or stack.free_port()
        log_path = workdir / "exporter.log"
        argv = [sys.executable, "-m", "gpu_health.exporter.cli", "--backend", "sim"]
        argv += ["--web.listen-address", f"127.0.0.1:{port}", "--node-name", node, *extra_args]
        with log_path.open("ab") as log:
            process = die_with_parent.spawn(
                argv, stdout=log, stderr=subprocess.STDOUT, cwd=workdir, start_new_session=True
            )
        server = stack.Server(
            "exporter", f"http://127.0.0.1:{port}", port, process, log_path, workdir
        )
        servers.append(server)
        try:
            stack.wait_until(f"{server.url}/metrics", 60, process)
        except (RuntimeError, TimeoutError) as exc:
            raise RuntimeError(f"exporter did not start: {exc}\n{server.log_tail()}") from exc
        return server

    yield start
    for server in servers:
        server.stop()
