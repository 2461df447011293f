"""Fleet planning: the exact failure-count law, its interval against simulation, groups, spares."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from gpu_health.scorer.planning import GpuRisk, build_plan, central_interval, failure_pmf, quantile
from gpu_health.scorer.planning.plan import probability_within
from gpu_health.scorer.planning.poibin import spares_needed


def _brute_force_pmf(probs: list[float]) -> list[float]:
    """P(k failures) by enumerating every outcome: the definition, for small fleets."""
    out = [0.0] * (len(probs) + 1)
    for outcome in itertools.product((0, 1), repeat=len(probs)):
        weight = math.prod(p if failed else 1 - p for p, failed in zip(probs, outcome, strict=True))
        out[sum(outcome)] += weight
    return out


def test_dynamic_programme_matches_enumeration() -> None:
    probs = [0.01, 0.3, 0.5, 0.07, 0.9, 0.2, 0.0, 1.0]
    assert failure_pmf(probs) == pytest.approx(_brute_force_pmf(probs), abs=1e-12)
    assert failure_pmf([]) == pytest.approx([1.0])


def test_equal_probabilities_give_the_binomial() -> None:
    n, p = 40, 0.05
    binomial = [math.comb(n, k) * p**k * (1 - p) ** (n - k) for k in range(n + 1)]
    assert failure_pmf([p] * n) == pytest.approx(binomial, abs=1e-12)


def test_quantile_and_spares() -> None:
    pmf = failure_pmf([0.5, 0.5])  # 0.25, 0.5, 0.25
    assert quantile(pmf, 0.25) == 0 and quantile(pmf, 0.26) == 1 and quantile(pmf, 0.8) == 2
    assert spares_needed(pmf, 0.75) == 1 and spares_needed(pmf, 0.95) == 2


def test_interval_holds_80_percent_over_1000_simulated_months() -> None:
    """Each month a fleet with different per-GPU odds; the real count lands inside ~80 %."""
    rng = np.random.default_rng(21)
    inside = 0
    months = 1000
    for _ in range(months):
        probs = rng.beta(0.5, 40.0, size=rng.integers(150, 300))
        low, high, _exact = central_interval(failure_pmf(probs), 0.8)
        failures = int((rng.random(len(probs)) < probs).sum())
        inside += low <= failures <= high
    assert 0.75 <= inside / months <= 0.85


def test_interval_reports_its_exact_probability() -> None:
    pmf = failure_pmf([0.02] * 100)
    low, high, exact = central_interval(pmf, 0.8)
    assert exact == pytest.approx(float(pmf[low : high + 1].sum()))
    assert low <= 2 <= high and abs(exact - 0.8) < 0.15


def test_ninety_days_comes_from_the_model_or_is_stretched() -> None:
    assert probability_within({"30d": 0.1, "90d": 0.2}, "90d") == (0.2, False)
    p, stretched = probability_within({"7d": 0.05, "30d": 0.1}, "90d")
    assert stretched and p == pytest.approx(1 - 0.9**3)
    assert math.isnan(probability_within({}, "30d")[0])


def _fleet() -> list[GpuRisk]:
    return [
        GpuRisk("a", "H100", {"7d": 0.01, "30d": 0.1}, "fra1", "vision", downtime_hours=100),
        GpuRisk("b", "H100", {"7d": 0.01, "30d": 0.2}, "fra1", "nlp", downtime_hours=100),
        GpuRisk("c", "A100", {"7d": 0.01, "30d": 0.3}, "ams2", "nlp", downtime_hours=50),
        GpuRisk("d", "A100", {"7d": 0.0, "30d": 0.4}, "", "", downtime_hours=50),
    ]


def test_plan_groups_by_model_datacenter_and_team() -> None:
    plan = build_plan(_fleet(), service_level=0.95)
    by = {(g.dimension, g.group, g.horizon): g for g in plan.groups}
    assert by[("fleet", "all", "30d")].expected == pytest.approx(1.0)
    assert by[("model", "H100", "30d")].expected == pytest.approx(0.3)
    assert by[("datacenter", "fra1", "30d")].gpus == 2
    assert by[("datacenter", "unknown", "30d")].expected == pytest.approx(0.4)
    assert by[("team", "nlp", "30d")].expected == pytest.approx(0.5)
    # GPU-hours: sum of p x downtime (downtime is capped by the horizon)
    assert by[("fleet", "all", "30d")].capacity_at_risk_gpu_hours == pytest.approx(
        0.1 * 100 + 0.2 * 100 + 0.3 * 50 + 0.4 * 50
    )
    fleet_pmf = failure_pmf([0.1, 0.2, 0.3, 0.4])
    assert by[("fleet", "all", "30d")].spares == spares_needed(fleet_pmf, 0.95)
    assert plan.extrapolated == ("90d",)
    assert by[("fleet", "all", "90d")].expected == pytest.approx(
        sum(1 - (1 - p) ** 3 for p in (0.1, 0.2, 0.3, 0.4))
    )


def test_more_risk_never_means_fewer_spares() -> None:
    low = build_plan([GpuRisk(str(i), "H100", {"30d": 0.02}) for i in range(200)])
    high = build_plan([GpuRisk(str(i), "H100", {"30d": 0.05}) for i in range(200)])
    for a, b in zip(low.select("fleet", "30d"), high.select("fleet", "30d"), strict=True):
        assert b.spares >= a.spares and b.upper >= a.upper


def test_large_fleets_drop_only_negligible_counts() -> None:
    n, p = 2000, 0.01
    pmf = failure_pmf([p] * n)
    assert len(pmf) < n  # the cap cut the support
    binomial = [math.comb(n, k) * p**k * (1 - p) ** (n - k) for k in range(len(pmf))]
    assert pmf == pytest.approx(binomial, abs=1e-12)
    assert float(pmf.sum()) == pytest.approx(1.0, abs=1e-12)


def test_series_with_a_foreign_horizon_or_value_are_skipped_not_fatal() -> None:
    """A series that is not the scorer's (a hostile ``horizon`` label, a value that is no
    number) made the whole report fail with a ValueError; it is skipped, the rest planned."""
    from gpu_health.scorer.planning.gather import gather_risks

    def query(promql: str) -> list[dict[str, object]]:
        if "gpu_failure_probability" not in promql:
            return []
        ok = {"uuid": "GPU-a", "model": "H100", "node": "n1", "gpu": "0"}
        return [
            {"metric": {**ok, "horizon": "30d"}, "value": [0, "0.2"]},
            {"metric": {**ok, "horizon": 'x"><img src=x onerror=alert(1)>'}, "value": [0, "1"]},
            {"metric": {**ok, "uuid": "GPU-b", "horizon": "30d"}, "value": [0, "many"]},
            {"metric": {**ok, "uuid": "GPU-c", "horizon": "7d"}, "value": []},
        ]

    risks = gather_risks(query)
    assert [(r.uuid, dict(r.probability)) for r in risks] == [("GPU-a", {"30d": 0.2})]


def test_small_and_near_certain_percentages_never_round_to_0_or_100() -> None:
    """``--service-level 0.9999999999`` printed "runs out with probability at most 0 %" and a
    level of 0.9999 "the count's central 100 % interval": two significant digits of the
    distance to 0 % or 100 % keep them apart, while the defaults read as before."""
    from gpu_health.scorer.planning.render import SUM_ROUNDING, percent, render_text

    assert [percent(f) for f in (0.05, 0.8, 0.95, 0.5, 0.0, 1.0)] == [
        "5",
        "80",
        "95",
        "50",
        "0",
        "100",
    ]
    assert percent(1 - 0.9999999999) == "0.00000001"
    assert percent(0.9999) == "99.99" and percent(0.015) == "1.5" and percent(0.973) == "97.3"
    # an interval over every count sums to 1 less a rounding error: that is 100 %
    assert percent(0.9999999999999998, SUM_ROUNDING) == "100"

    gpus = [GpuRisk(f"g{i}", "H100", {"30d": 0.05}, "fra1", "vision") for i in range(4)]
    text = render_text(build_plan(gpus, ("30d",), level=0.9999, service_level=0.9999999999))
    assert "central 99.99 % interval" in text
    assert "runs out with probability at most 0.00000001 % within the horizon" in text
    default = render_text(build_plan(gpus, ("30d",)))
    assert "central 80 % interval" in default and "at most 5 % within" in default
