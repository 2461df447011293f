"""Properties of the valuation that must hold for any GPU and any sane parameters."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from gpu_health.scorer.econ import GpuEconInput, Recommender, value_gpu
from gpu_health.scorer.econ.engine import ACTIONS, NORMAL_ACTIONS, EconResult
from gpu_health.scorer.econ.params import Hysteresis, default_raw, validate
from tests.scorer.test_econ_engine import simple_raw

MODELS = [
    "NVIDIA H100 80GB HBM3",
    "NVIDIA A100-SXM4-80GB",
    "NVIDIA H200",
    "NVIDIA L40S",
    "Tesla V100-SXM2-32GB",
    "NVIDIA L4",
    "NVIDIA A10",
    "NVIDIA A10G",
    "NVIDIA RTX A6000",
]
unit = st.floats(0, 1, allow_nan=False)


@st.composite
def gpus(draw: st.DrawFn) -> GpuEconInput:
    return GpuEconInput(
        uuid="GPU-x",
        model=draw(st.sampled_from([*MODELS, "Vendor TestGPU"])),
        age_days=draw(st.floats(0, 4000)),
        utilisation=draw(unit),
        power_w=draw(st.floats(0, 1000)),
        p7=draw(unit),
        p30=draw(unit),
        health=draw(st.floats(0, 100)),
        hard_fault=draw(st.booleans()),
    )


@st.composite
def raw_params(draw: st.DrawFn) -> dict[str, Any]:
    raw = default_raw()
    raw["models"]["test"] = simple_raw()["models"]["test"]
    raw["horizon_months"] = draw(st.integers(1, 36))
    raw["discount_rate"] = draw(st.floats(0, 0.5))
    raw["energy_price"] = draw(st.floats(0, 1))
    for model in raw["models"].values():
        model["rental_rate"] = draw(st.floats(0, 10))
        model["rental_decline"] = draw(st.floats(0, 0.9))
        model["downtime_days_per_failure"] = draw(st.floats(0, 30))
        model["repair_cost"] = draw(st.floats(0, 20000))
    return raw


def _keep(gpu: GpuEconInput, raw: dict[str, Any]) -> float:
    return value_gpu(gpu, validate(raw, "prop")).npv["keep"]


def _bump(raw: dict[str, Any], key: str, factor: float, extra: float) -> dict[str, Any]:
    bumped = {**raw, "models": {k: dict(v) for k, v in raw["models"].items()}}
    if key == "energy_price":
        bumped[key] = raw[key] * factor + extra
    else:
        for model in bumped["models"].values():
            model[key] = model[key] * factor + extra
    return bumped


def _tol(value: float) -> float:
    return 1e-9 * max(1.0, abs(value))


@settings(max_examples=150, deadline=None)
@given(gpus(), raw_params(), unit, unit)
def test_higher_failure_probability_never_raises_keep(
    gpu: GpuEconInput, raw: dict[str, Any], more7: float, more30: float
) -> None:
    riskier = GpuEconInput(
        **{
            **gpu.__dict__,
            "p7": min(1.0, (gpu.p7 or 0) + more7),
            "p30": min(1.0, (gpu.p30 or 0) + more30),
        }
    )
    before, after = _keep(gpu, raw), _keep(riskier, raw)
    assert after <= before + _tol(before)


@settings(max_examples=150, deadline=None)
@given(gpus(), raw_params(), st.floats(1, 5), st.floats(0, 1))
def test_higher_energy_price_never_raises_keep(
    gpu: GpuEconInput, raw: dict[str, Any], factor: float, extra: float
) -> None:
    before = _keep(gpu, raw)
    after = _keep(gpu, _bump(raw, "energy_price", factor, extra))
    assert after <= before + _tol(before)


@settings(max_examples=150, deadline=None)
@given(gpus(), raw_params(), st.floats(1, 5), st.floats(0, 5))
def test_higher_rental_rate_never_lowers_keep(
    gpu: GpuEconInput, raw: dict[str, Any], factor: float, extra: float
) -> None:
    before = _keep(gpu, raw)
    after = _keep(gpu, _bump(raw, "rental_rate", factor, extra))
    assert after >= before - _tol(before)


@settings(max_examples=150, deadline=None)
@given(st.lists(gpus(), min_size=1, max_size=6), raw_params())
def test_hard_fault_is_never_keep_even_with_a_sticky_recommender(
    fleet: list[GpuEconInput], raw: dict[str, Any]
) -> None:
    params = validate(raw, "prop")
    recommender = Recommender(Hysteresis(absolute=1e12, relative=10))
    for gpu in fleet:
        # first run: healthy, so the recommender may latch onto keep with a huge margin
        healthy = GpuEconInput(**{**gpu.__dict__, "hard_fault": False, "p7": 0.0, "p30": 0.0})
        recommender.recommend(value_gpu(healthy, params))
        failed = GpuEconInput(**{**gpu.__dict__, "hard_fault": True})
        result = recommender.recommend(value_gpu(failed, params))
        assert result.recommended_action in ("repair", "sell", "decommission")
        assert value_gpu(failed, params).best_action != "keep"


def _result(npv: dict[str, float], eligible: tuple[str, ...] = NORMAL_ACTIONS) -> EconResult:
    best = max((a for a in ACTIONS if a in eligible), key=lambda a: (npv[a], -ACTIONS.index(a)))
    return EconResult(
        uuid="GPU-h",
        model="m",
        node="n",
        gpu="0",
        model_key="m",
        currency="USD",
        npv=npv,
        residual_value=0.0,
        eligible=eligible,
        best_action=best,
        recommended_action=best,
        inputs={},
    )


@settings(max_examples=200, deadline=None)
@given(st.floats(-1e5, 1e5), st.floats(0, 1e4), st.floats(0, 0.5), st.floats(0, 1e4))
def test_hysteresis_switches_only_beyond_the_margin(
    keep_npv: float, absolute: float, relative: float, lead: float
) -> None:
    hysteresis = Hysteresis(absolute=absolute, relative=relative)
    recommender = Recommender(hysteresis)
    low = keep_npv - 1e6
    first = recommender.recommend(
        _result({"keep": keep_npv, "sell": keep_npv - 1, "repurpose": low, "decommission": low})
    )
    assert first.recommended_action == "keep"
    sell = keep_npv + lead
    second = recommender.recommend(
        _result({"keep": keep_npv, "sell": sell, "repurpose": low, "decommission": low})
    )
    margin = max(absolute, relative * abs(keep_npv))
    if sell - keep_npv > margin:
        assert second.recommended_action == "sell"
    else:
        assert second.recommended_action == "keep"
        assert second.best_action == "sell" or sell == keep_npv


def test_hysteresis_no_flap_across_a_wobbling_breakeven() -> None:
    """NPVs that wobble ±100 around each other never move a 250-margin recommendation."""
    recommender = Recommender(Hysteresis(absolute=250, relative=0.0))
    seen = set()
    for step in range(20):
        wobble = 100.0 if step % 2 else -100.0
        npv = {"keep": 10000.0, "sell": 10000.0 + wobble, "repurpose": 0.0, "decommission": 0.0}
        seen.add(recommender.recommend(_result(npv)).recommended_action)
    assert seen == {"keep"}
    # a lead of 251 switches, and the new action is then just as sticky
    npv = {"keep": 10000.0, "sell": 10251.0, "repurpose": 0.0, "decommission": 0.0}
    assert recommender.recommend(_result(npv)).recommended_action == "sell"
    npv = {"keep": 10200.0, "sell": 10000.0, "repurpose": 0.0, "decommission": 0.0}
    assert recommender.recommend(_result(npv)).recommended_action == "sell"


def test_recommender_forgets_gpus_that_disappear() -> None:
    recommender = Recommender(Hysteresis(absolute=1e9, relative=0))
    npv = {"keep": 1.0, "sell": 0.0, "repurpose": 0.0, "decommission": 0.0}
    recommender.recommend_all([_result(npv)])
    assert recommender.current("GPU-h") == "keep"
    recommender.recommend_all([])
    assert recommender.current("GPU-h") is None
