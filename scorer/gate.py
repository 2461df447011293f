"""Champion/challenger gate: a retrained model serves only if it is better where it matters.

"Better" is measured on the most recent held-out window of the history — prediction times from
``holdout_start`` on, which the candidate must not have seen (its training history ended before
``holdout_start``: a time split, so no label window of training overlaps the judged period). On
that window the candidate must beat both the serving model (the champion) and the rule baseline
(what the alert rules alone would rank) in ROC AUC on the primary horizon by ``min_gain``. A
paired bootstrap over GPUs gives the 90 % interval of each difference, reported with the
decision. A candidate trained on fewer than ``min_failures`` failures is refused before any of
this: a model fitted to a handful of events is noise however it scores.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from gpu_health.scorer.evaluation import predict_snapshots
from gpu_health.scorer.model import FailureModel
from gpu_health.scorer.roc import roc_auc
from gpu_health.scorer.training import Dataset

FloatArray = npt.NDArray[np.float64]

#: The rule baseline: which features the shipped alert rules act on, and the weight of each
#: when it is above its threshold (an uncorrectable error outranks a noisy link).
RULES: tuple[tuple[str, float, float], ...] = (
    ("row_remap_failed_30d", 0.0, 8.0),
    ("ecc_uncorrected_30d", 0.0, 4.0),
    ("remapped_rows_uncorrectable_30d", 0.0, 4.0),
    ("row_remap_pending_7d", 0.0, 2.0),
    ("xid_events_7d", 0.0, 1.0),
    ("ecc_corrected_per_day_7d", 100.0, 1.0),
    ("pcie_replays_per_min_24h", 1.0, 1.0),
    ("nvlink_errors_per_min_24h", 1.0, 1.0),
    ("thermal_violation_share_24h", 0.05, 1.0),
)


@dataclass(frozen=True)
class GateConfig:
    min_failures: int = 20
    min_gain: float = 0.0
    horizon: str = "30d"
    bootstrap: int = 200
    seed: int = 0


@dataclass
class Decision:
    promote: bool
    reason: str
    scores: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"promote": self.promote, "reason": self.reason, **self.scores}


def rule_scores(data: Dataset) -> FloatArray:
    """The baseline's risk score per row: weighted count of rules that fire."""
    score = np.zeros(len(data))
    for name, threshold, weight in RULES:
        if name in data.features:
            column = data.x[:, data.features.index(name)]
            score += weight * np.where(np.isnan(column), 0.0, column > threshold)
    return score


def _auc(scores: FloatArray, y: FloatArray) -> float:
    return roc_auc(scores, y)


def refusal(
    holdout_start: float,
    trained_until: float | None,
    failures_trained_on: int,
    config: GateConfig = GateConfig(),
) -> Decision | None:
    """The refusals that need no feature data (too few failures, an unknown or overlapping
    training end), so a candidate they refuse costs no query over the held-out window."""
    if failures_trained_on < config.min_failures:
        return Decision(
            False,
            f"refused: trained on {failures_trained_on} failures, fewer than the "
            f"{config.min_failures} required (--min-failures)",
        )
    if trained_until is None:
        return Decision(
            False,
            "refused: the candidate does not record where its training history ended "
            "(metadata trained_until); give --trained-until so the held-out window is unseen",
        )
    if trained_until > holdout_start:
        return Decision(
            False,
            "refused: the candidate's training history reaches into the held-out window "
            f"({(trained_until - holdout_start) / 86400:.1f} days of overlap)",
        )
    return None


def judge(
    candidate: FailureModel,
    champion: FailureModel | None,
    data: Dataset,
    holdout_start: float,
    trained_until: float | None,
    failures_trained_on: int,
    config: GateConfig = GateConfig(),
) -> Decision:
    """Promote or refuse ``candidate``; the reason is one line."""
    early = refusal(holdout_start, trained_until, failures_trained_on, config)
    if early is not None:
        return early
    h = config.horizon
    y_all = data.labels[h]
    rows = (data.times >= holdout_start) & ~np.isnan(y_all)
    y = y_all[rows]
    if len(np.unique(y)) < 2:
        return Decision(
            False,
            f"refused: the held-out window has no {'failures' if y.sum() == 0 else 'survivors'} "
            f"for horizon {h}; need a longer history after --holdout-start",
        )
    held = Dataset(
        data.features,
        data.x[rows],
        data.times[rows],
        [u for u, keep in zip(data.uuids, rows, strict=True) if keep],
    )
    scores = {
        "candidate": predict_snapshots(candidate, h, held.matrix(candidate.features), held.times)
    }
    if champion is not None:
        scores["champion"] = predict_snapshots(
            champion, h, held.matrix(champion.features), held.times
        )
    scores["rule_baseline"] = rule_scores(held)
    aucs = {name: _auc(s, y) for name, s in scores.items()}
    intervals = _paired_intervals(scores, y, held.uuids, config)
    result: dict[str, Any] = {
        "horizon": h,
        "holdout_start": holdout_start,
        "holdout_rows": len(y),
        "holdout_positives": int(y.sum()),
        "failures_trained_on": failures_trained_on,
        "roc_auc": aucs,
        "gain_interval_90": intervals,
    }
    for rival in ("champion", "rule_baseline"):
        if rival in aucs and aucs["candidate"] < aucs[rival] + config.min_gain:
            return Decision(
                False,
                f"refused: ROC AUC {aucs['candidate']:.3f} on the held-out window does not beat "
                f"the {rival.replace('_', ' ')}'s {aucs[rival]:.3f} by {config.min_gain:g}",
                result,
            )
    rivals = ", ".join(f"{k} {v:.3f}" for k, v in aucs.items() if k != "candidate")
    return Decision(
        True,
        f"promoted: ROC AUC {aucs['candidate']:.3f} on the held-out window beats {rivals}",
        result,
    )


def _paired_intervals(
    scores: dict[str, FloatArray], y: FloatArray, uuids: list[str], config: GateConfig
) -> dict[str, list[float]]:
    """90 % interval of AUC(candidate) - AUC(rival), resampling GPUs (rows of one GPU are
    correlated, so resampling rows would overstate the certainty)."""
    rng = np.random.default_rng(config.seed)
    groups: dict[str, list[int]] = {}
    for i, u in enumerate(uuids):
        groups.setdefault(u, []).append(i)
    index = [np.asarray(v) for v in groups.values()]
    diffs: dict[str, list[float]] = {k: [] for k in scores if k != "candidate"}
    for _ in range(config.bootstrap):
        pick = rng.integers(0, len(index), len(index))
        rows = np.concatenate([index[k] for k in pick])
        yb = y[rows]
        if len(np.unique(yb)) < 2:
            continue
        base = _auc(scores["candidate"][rows], yb)
        for rival in diffs:
            diffs[rival].append(base - _auc(scores[rival][rows], yb))
    return {
        k: [float(np.quantile(v, 0.05)), float(np.quantile(v, 0.95))] if v else []
        for k, v in diffs.items()
    }
