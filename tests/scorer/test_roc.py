"""The numpy ROC of the evaluation and the gate gives scikit-learn's numbers.

``gpu_health.scorer.roc`` replaced scikit-learn's ``roc_curve`` and ``roc_auc_score`` in the
bootstraps for speed; scikit-learn stays the reference: the same curve points, ROC AUC and
recall at 5 % FPR on random rows with heavy ties, bootstrap weights (zeros included, as the
caller drops them) and real-valued weights.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score, roc_curve

from gpu_health.scorer.evaluation import _weighted_scores
from gpu_health.scorer.gate import _auc
from gpu_health.scorer.roc import auc_and_recall, roc_points


def _cases() -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(7)
    cases = []
    for k in range(60):
        n = int(rng.integers(2, 400))
        y = (rng.random(n) < rng.uniform(0.05, 0.5)).astype(float)
        y[0], y[-1] = 1.0, 0.0  # both classes
        levels = int(rng.integers(1, 12)) if k % 2 else n  # heavy ties on every other case
        scores = rng.integers(0, levels, n) / max(levels, 1) + (y * rng.uniform(0, 0.3))
        weights = rng.integers(1, 4, n).astype(float) if k % 3 else rng.uniform(0.1, 3.0, n)
        cases.append((scores, y, weights))
    return cases


@pytest.mark.parametrize("weighted", [False, True])
def test_the_curve_and_its_area_are_scikit_learns(weighted: bool) -> None:
    for scores, y, weights in _cases():
        w = weights if weighted else None
        fpr, tpr, _ = roc_curve(y, scores, sample_weight=w, drop_intermediate=False)
        mine = roc_points(scores, y, w)
        np.testing.assert_allclose(mine[0], fpr, rtol=0, atol=1e-12)
        np.testing.assert_allclose(mine[1], tpr, rtol=0, atol=1e-12)
        auc, recall = auc_and_recall(scores, y, w, 0.05)
        assert auc == pytest.approx(roc_auc_score(y, scores, sample_weight=w), abs=1e-12)
        assert recall == pytest.approx(float(np.interp(0.05, fpr, tpr)), abs=1e-12)


def test_the_callers_give_what_they_gave_with_scikit_learn() -> None:
    rng = np.random.default_rng(3)
    for scores, y, _ in _cases():
        counts = rng.integers(0, 3, len(y)).astype(float)  # a bootstrap draw: some rows absent
        keep = counts > 0
        auc, recall = _weighted_scores(scores, y, counts)
        if len(np.unique(y[keep])) < 2:
            assert np.isnan(auc) and np.isnan(recall)
            continue
        fpr, tpr, _ = roc_curve(
            y[keep], scores[keep], sample_weight=counts[keep], drop_intermediate=False
        )
        assert auc == pytest.approx(float(np.trapezoid(tpr, fpr)), abs=1e-12)
        assert recall == pytest.approx(float(np.interp(0.05, fpr, tpr)), abs=1e-12)
        assert _auc(scores, y) == pytest.approx(roc_auc_score(y, scores), abs=1e-12)


def test_what_has_no_curve_is_refused() -> None:
    with pytest.raises(ValueError, match="finite"):
        roc_points(np.array([0.1, np.nan]), np.array([1.0, 0.0]))
    with pytest.raises(ValueError, match="both positive and negative"):
        roc_points(np.array([0.1, 0.2]), np.array([1.0, 1.0]))
