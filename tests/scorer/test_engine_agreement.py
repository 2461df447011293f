"""The same history in Prometheus and VictoriaMetrics gives the same risk ranking and actions.

The scorer detects the engine through its build-info API and asks VictoriaMetrics for the
Prometheus-compatible ``increase_prometheus``/``changes_prometheus``; the failure model, the
state model and the economics then see the same numbers on both engines.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from gpu_health import stack
from gpu_health.scorer.econ.bridge import make_econ_hook
from gpu_health.scorer.engine import engine_of
from gpu_health.scorer.model import RiskModel, load_model
from gpu_health.scorer.promclient import PromClient, PromConfig
from gpu_health.scorer.service import GpuScore, Scorer
from tests.conftest import PrometheusFactory, import_openmetrics
from tests.scorer_fleet import DAY, make_fleet, openmetrics

pytestmark = [pytest.mark.integration, pytest.mark.slow]
DAYS = 10
FAILS = {1: 4, 5: 6, 9: 8.5, 13: DAYS + 1, 17: DAYS + 2}


def spearman(a: list[float], b: list[float]) -> float:
    """Spearman rank correlation with average ranks for ties."""

    def ranks(values: list[float]) -> np.ndarray:
        order = np.argsort(values, kind="stable")
        r = np.empty(len(values))
        r[order] = np.arange(len(values), dtype=float)
        for v in set(values):
            idx = [i for i, x in enumerate(values) if x == v]
            r[idx] = r[idx].mean()
        return r

    ra, rb = ranks(a), ranks(b)
    return float(np.corrcoef(ra, rb)[0, 1])


PRIOR = (
    "gpu_ecc_errors_total{",
    "gpu_pcie_replays_total{",
    "gpu_xid_errors_total{",
    "gpu_remapped_rows_total{",
)


def with_prior_errors(history: str) -> str:
    """Counters that already held errors before the history starts (board-life ECC and PCIe
    counters of used cards): the case where MetricsQL's plain ``increase()`` counts the first
    sample as new errors and Prometheus does not."""
    out = []
    for line in history.splitlines():
        if line.startswith(PRIOR):
            series, value, ts = line.rsplit(" ", 2)
            prior = (sum(map(ord, series)) % 7) * 3  # 0..18, fixed per series
            line = f"{series} {float(value) + prior} {ts}"
        out.append(line)
    return "\n".join(out) + "\n"


def _score(url: str, model: RiskModel) -> tuple[str, dict[str, GpuScore]]:
    client = PromClient(PromConfig(url, retries=2, backoff_s=0.1, timeout_s=60))
    scorer = Scorer(client, model, econ=make_econ_hook(), workers=2)
    assert scorer.run_once(), scorer.last_error
    assert scorer.snapshot is not None
    return engine_of(client), {g.uuid: g for g in scorer.snapshot.gpus}


def test_same_history_same_ranking_and_actions(
    prometheus_factory: PrometheusFactory,
    backfill: Callable[[str], Path],
    victoriametrics_factory: Callable[[], stack.Server],
) -> None:
    start = int(time.time()) - DAYS * int(DAY) - 60
    history = with_prior_errors(
        openmetrics(make_fleet(24, FAILS), days=DAYS, step=1800, start=start)
    )
    prom = prometheus_factory(data_dir=backfill(history))
    stack.wait_for_query(prom.url, "count(gpu_power_watts)")
    vm = victoriametrics_factory()
    import_openmetrics(vm, history)
    # the shipped default (the rule) and the trained model it would be replaced by
    for name, model in (("rules", load_model()), ("xgboost", load_model("xgboost"))):
        engine_p, on_prom = _score(prom.url, model)
        engine_v, on_vm = _score(vm.url, model)
        assert (engine_p, engine_v) == ("prometheus", "victoriametrics")
        assert set(on_prom) == set(on_vm) and len(on_prom) == 24
        uuids = sorted(on_prom)
        risk_p = [on_prom[u].probability["30d"] for u in uuids]
        risk_v = [on_vm[u].probability["30d"] for u in uuids]
        rho = spearman(risk_p, risk_v)
        print(f"{name}: spearman(p30 Prometheus, p30 VictoriaMetrics) = {rho:.4f} "
              f"over {len(uuids)} GPUs")  # fmt: skip
        assert rho >= 0.99, name
        actions_p = {u: g.econ.recommended_action for u, g in on_prom.items() if g.econ}
        actions_v = {u: g.econ.recommended_action for u, g in on_vm.items() if g.econ}
        assert actions_p == actions_v and len(actions_p) == 24
        assert {u: g.state for u, g in on_prom.items()} == {u: g.state for u, g in on_vm.items()}
        classes_p = {u: g.failure_class for u, g in on_prom.items()}
        assert classes_p == {u: g.failure_class for u, g in on_vm.items()}, name
        # the GPUs that stopped reporting are failed now on both engines, never kept
        gone = {f"GPU-{i:04d}-test" for i, day in FAILS.items() if day <= DAYS}
        assert {u for u, g in on_prom.items() if g.state == "absent"} == gone
        assert all(actions_p[u] != "keep" for u in gone)
