"""The in-process scorer hands the economics the survival curve it publishes.

``make_econ_hook`` is what ``gpu-health-scorer serve --econ`` calls after every run: the monthly
hazard behind each NPV must come from the GPU's ``gpu_failure_probability`` curve (its 30-day
and 90-day points), not from the 7-day point or a default.
"""

from __future__ import annotations

import math

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from gpu_health.scorer.econ.bridge import make_econ_hook
from gpu_health.scorer.service import GpuScore

MONTH_DAYS = 365 / 12


def _gpu(uuid: str, curve: dict[str, float], hard_fault: float = 0.0) -> GpuScore:
    return GpuScore(
        node="n1",
        gpu=uuid[-1],
        uuid=uuid,
        model="NVIDIA H100 80GB HBM3",
        probability=curve,
        flagged={h: False for h in curve},
        risk_factors={h: [] for h in curve},
        anomaly=0.1,
        inputs={
            "utilization_avg_30d": 0.8,
            "power_avg_30d_watts": 500.0,
            "health_score": 95.0,
            "hard_fault": hard_fault,
        },
    )


def _rate(p: float, days: float) -> float:
    """Average failures per calendar month over the curve's first ``days``."""
    return -math.log(1 - p) / days * MONTH_DAYS


def test_the_hook_reads_the_monthly_hazard_off_the_published_curve() -> None:
    constant = {"7d": 0.01, "30d": 0.04, "90d": 1 - 0.96**3}
    gpus = [
        _gpu("GPU-a", constant),
        # same 30/90-day points, a very different 7-day point: same hazard, same NPVs
        _gpu("GPU-b", {**constant, "7d": 0.039}),
        # same 30-day point, risk rising after the first month: the 90-day rate wins
        _gpu("GPU-c", {**constant, "90d": 0.4}),
        # a failed card with a near-certain curve is never kept
        _gpu("GPU-d", {"7d": 0.9, "30d": 0.95, "90d": 0.99}, hard_fault=1.0),
    ]
    scored, families = make_econ_hook()(gpus)
    econ = {g.uuid: g.econ for g in scored}

    assert econ["GPU-a"].inputs["monthly_hazard"] == _approx(_rate(0.04, 30))
    assert econ["GPU-a"].inputs["monthly_hazard"] == _approx(_rate(1 - 0.96**3, 90))
    assert econ["GPU-b"].npv == econ["GPU-a"].npv
    assert econ["GPU-c"].inputs["monthly_hazard"] == _approx(_rate(0.4, 90))
    assert econ["GPU-c"].npv["keep"] < econ["GPU-a"].npv["keep"]
    assert econ["GPU-d"].inputs["monthly_hazard"] == 1.0
    assert econ["GPU-d"].recommended_action != "keep"
    assert "failure_probability" not in econ["GPU-a"].defaulted

    # the curve the economics read is published next to the NPVs, 90-day point included
    registry = CollectorRegistry(auto_describe=False)

    class Fixed:
        def collect(self) -> list[object]:
            return list(families)

    registry.register(Fixed())  # type: ignore[arg-type]
    text = generate_latest(registry).decode()
    curve_90d = [
        float(ln.rsplit(" ", 1)[1])
        for ln in text.splitlines()
        if ln.startswith("gpu_econ_failure_probability_ratio{")
        and 'uuid="GPU-c"' in ln
        and 'horizon="90d"' in ln
    ]
    assert curve_90d == [0.4]


def _approx(value: float) -> object:
    return pytest.approx(value, rel=1e-12)
