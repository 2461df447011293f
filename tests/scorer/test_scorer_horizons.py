"""The published probabilities are consistent across horizons: p(30 d) >= p(7 d) for every GPU."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from gpu_health.scorer.features import FEATURES, FeatureFrame
from gpu_health.scorer.model import FailureModel
from gpu_health.scorer.service import score_frame

MODEL = FailureModel.load()
NAMES = tuple(f.name for f in FEATURES)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), scale=st.sampled_from([0.1, 1.0, 10.0, 1000.0]))
def test_longer_horizon_never_less_likely(seed: int, scale: float) -> None:
    rng = np.random.default_rng(seed)
    values = rng.exponential(scale, size=(40, len(NAMES)))
    values[rng.random(values.shape) < 0.2] = np.nan  # missing signals
    gpus = [("n", str(i), f"GPU-{i}", "NVIDIA H100 80GB HBM3") for i in range(len(values))]
    frame = FeatureFrame(None, "ours", gpus, NAMES, values)
    for score in score_frame(MODEL, frame):
        assert 0.0 <= score.probability["7d"] <= score.probability["30d"] <= 1.0
