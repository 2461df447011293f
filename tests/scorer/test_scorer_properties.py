"""Properties every shipped scorer keeps, whatever the fleet: hypothesis over feature values.

* P(fail within t) never decreases with t (one survival curve, not separate classifiers);
* more corrected ECC errors never lower the risk;
* the time-to-failure quantiles are ordered and agree with the curve.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from gpu_health.scorer.features import FEATURES, FeatureFrame
from gpu_health.scorer.model import DEFAULT_MODEL_DIR, HORIZONS, FailureModel, RiskModel
from gpu_health.scorer.rules import RuleModel, probability_within, time_to_failure_quantile
from gpu_health.scorer.service import score_frame

NAMES = tuple(f.name for f in FEATURES)
MODELS: dict[str, RiskModel] = {
    "rules": RuleModel(),
    "xgboost": FailureModel.load(DEFAULT_MODEL_DIR),
}
CORRECTED = tuple(n for n in NAMES if n.startswith("ecc_corrected_"))


def _frame(seed: int, scale: float, rows: int = 30) -> FeatureFrame:
    rng = np.random.default_rng(seed)
    values = rng.exponential(scale, size=(rows, len(NAMES)))
    values[rng.random(values.shape) < 0.2] = np.nan  # signals a schema lacks
    gpus = [("n", str(i), f"GPU-{i}", "NVIDIA H100 80GB HBM3") for i in range(rows)]
    return FeatureFrame(None, "dcgm", gpus, NAMES, values)


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    scale=st.sampled_from([0.1, 1.0, 30.0, 3000.0]),
    kind=st.sampled_from(sorted(MODELS)),
)
def test_probability_is_monotone_in_time(seed: int, scale: float, kind: str) -> None:
    model = MODELS[kind]
    frame = _frame(seed, scale)
    x = frame.select(model.features)
    ordered = sorted(HORIZONS, key=lambda h: int(h.rstrip("d")))
    curves = np.vstack([model.predict(h, x) for h in ordered])
    assert ((curves >= 0) & (curves <= 1)).all()
    assert (np.diff(curves, axis=0) >= -1e-12).all()
    # The continuous curve of the hazard: any t1 < t2 gives p(t1) <= p(t2).
    hazard = model.hazard(x)
    t = np.sort(np.random.default_rng(seed).uniform(0, 200 * 86400.0, 12))
    along = np.vstack([probability_within(hazard, s) for s in t])
    assert (np.diff(along, axis=0) >= -1e-12).all()
    for score in score_frame(model, frame):
        p = score.probability
        assert p["7d"] <= p["30d"] <= p["90d"]
        q = score.time_to_failure
        assert 0 < q["0.1"] <= q["0.5"] <= q["0.9"]


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    scale=st.sampled_from([0.1, 1.0, 30.0]),
    extra=st.floats(0.0, 5000.0),
    kind=st.sampled_from(sorted(MODELS)),
)
def test_more_corrected_errors_never_lower_risk(
    seed: int, scale: float, extra: float, kind: str
) -> None:
    model = MODELS[kind]
    frame = _frame(seed, scale)
    before = {h: model.predict(h, frame.select(model.features)) for h in HORIZONS}
    # One GPU at a time gets more corrected errors now (its fleet unchanged): its risk never
    # drops. (The rule reads a GPU against its fleet, so "every GPU gets more errors" is not
    # evidence against any one of them.)
    for i in range(len(frame.gpus)):
        more = frame.values.copy()
        for name in CORRECTED:
            j = NAMES.index(name)
            # Only where the signal exists: a schema without it stays without it.
            if name == "ecc_corrected_active_hours_7d":
                more[i, j] = min(more[i, j] + extra / 100, 168.0)
            elif name.startswith("ecc_corrected_per_day") and "prior" not in name:
                more[i, j] = more[i, j] + extra
        bumped = FeatureFrame(None, "dcgm", frame.gpus, NAMES, more)
        for h in HORIZONS:
            after = model.predict(h, bumped.select(model.features))
            assert after[i] >= before[h][i] - 1e-12, (h, i)


def test_quantiles_invert_the_curve() -> None:
    hazard = np.array([1e-9, 1e-7, 1e-5])
    for q in (0.1, 0.5, 0.9):
        t = time_to_failure_quantile(hazard, q)
        np.testing.assert_allclose(probability_within(hazard, 0.0 + t), q)
