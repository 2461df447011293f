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
from gpu_health import stack

REPO_ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"

PrometheusFactory = Callable[..., stack.Server]
AlertmanagerFactory = Callable[..., stack.Server]


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
        stack.promtool_backfill(source, data_dir)
        return data_dir

    return make
