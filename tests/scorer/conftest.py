"""Fixtures of the scorer tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from gpu_health import stack
from tests.conftest import PrometheusFactory, import_openmetrics


@pytest.fixture
def serve_history(
    request: pytest.FixtureRequest,
    prometheus_factory: PrometheusFactory,
    backfill: Callable[[str], Path],
) -> Callable[[str, str, str], str]:
    """``serve_history(engine, history, ready_query)``: the URL of ``engine`` holding the
    OpenMetrics ``history``, so one test body runs on both engines. Prometheus serves it
    backfilled by promtool (returned once ``ready_query`` answers); VictoriaMetrics imports it,
    started only when asked for (its fixture skips where it is not installed)."""

    def serve(engine: str, history: str, ready_query: str) -> str:
        if engine == "prometheus":
            url = prometheus_factory(data_dir=backfill(history)).url
            stack.wait_for_query(url, ready_query)
            return url
        start_vm: Callable[[], stack.Server] = request.getfixturevalue("victoriametrics_factory")
        vm = start_vm()
        import_openmetrics(vm, history)
        return vm.url

    return serve
