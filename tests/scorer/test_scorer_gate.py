"""The shipping gate: a trained model becomes the default only if it beats the rule."""

from __future__ import annotations

import copy
from typing import Any

from gpu_health.scorer.train_default import beats_rule


def _pair(model: float, rule: float, positives: int = 50) -> dict[str, Any]:
    return {
        "positives": positives,
        "model": {"roc_auc": model, "recall_at_5pct_fpr": model},
        "rule": {"roc_auc": rule, "recall_at_5pct_fpr": rule},
    }


def _report(model: float, rule: float) -> dict[str, Any]:
    entry = {
        "all": _pair(model, rule),
        "precursor_visible": _pair(model, rule),
        "mode:hbm": _pair(model, rule, 30),
    }
    return {"horizons": {"7d": copy.deepcopy(entry), "30d": copy.deepcopy(entry)}}


def test_a_better_model_passes_and_a_worse_or_equal_one_does_not() -> None:
    assert beats_rule(_report(0.8, 0.7))[0]
    ok, why = beats_rule(_report(0.6, 0.7))
    assert not ok and "rule" in why
    assert not beats_rule(_report(0.7, 0.7))[0]  # a tie on all failures is not a win


def test_one_failure_mode_below_the_rule_fails_the_gate() -> None:
    report = _report(0.8, 0.7)
    report["horizons"]["30d"]["mode:hbm"] = _pair(0.6, 0.9, 12)
    ok, why = beats_rule(report)
    assert not ok and "mode:hbm" in why
    report["horizons"]["30d"]["mode:hbm"] = _pair(0.6, 0.9, 5)  # too few to judge
    assert beats_rule(report)[0]


def test_an_unmeasured_subset_fails_the_gate() -> None:
    report = _report(0.8, 0.7)
    del report["horizons"]["7d"]["precursor_visible"]
    assert not beats_rule(report)[0]
