"""Evaluation of a model against the rule baseline on the same examples, with bootstrap CIs.

Every figure is reported for the evaluated model, for the rule (:mod:`.rules`) and for the
one-line rule an SRE would write (:mod:`.sre_line`, a ranking only) on exactly the same
GPU-time rows, per horizon and per subset: all failures, failures with a precursor,
failures whose precursor had already begun, and each failure mode. 95 % intervals come from a
bootstrap over GPUs (rows of one GPU are not independent, so GPUs are resampled, not rows).
Calibration compares expected and observed failures per decile of predicted probability.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from gpu_health.errors import UserError
from gpu_health.scorer.calibration_check import (
    CALIBRATION_TOLERANCE,
    against_chance,
    against_chance_summary,
    within_tolerance,
)
from gpu_health.scorer.model import HORIZON_SECONDS, HORIZONS, RiskModel
from gpu_health.scorer.roc import auc_and_recall
from gpu_health.scorer.rules import RuleModel
from gpu_health.scorer.sre_line import FEATURES as SRE_LINE_FEATURES
from gpu_health.scorer.sre_line import NAME as SRE_LINE
from gpu_health.scorer.sre_line import sre_line_score
from gpu_health.scorer.training import TARGET_FPR, Dataset, Failure

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
#: Failure modes with at least this many positive rows get their own line.
MIN_MODE_POSITIVES = 3


def _weighted_scores(p: FloatArray, y: FloatArray, w: FloatArray) -> tuple[float, float]:
    """(ROC AUC, recall at 5 % FPR) with row weights (bootstrap multiplicities)."""
    keep = w > 0
    p, y, w = p[keep], y[keep], w[keep]
    if len(np.unique(y)) < 2:
        return math.nan, math.nan
    return auc_and_recall(p, y, w, TARGET_FPR)


def _ci(values: list[float]) -> list[float] | None:
    finite = [v for v in values if math.isfinite(v)]
    if len(finite) < 10:
        return None
    return [float(np.percentile(finite, 2.5)), float(np.percentile(finite, 97.5))]


def compare(
    scores: dict[str, FloatArray],
    y: FloatArray,
    gpu_index: npt.NDArray[np.int64],
    n_gpus: int,
    rng: np.random.Generator,
    reps: int,
) -> dict[str, Any]:
    """Point estimates and GPU-bootstrap 95 % intervals for every scorer on the same rows."""
    ones = np.ones(len(y))
    out: dict[str, Any] = {"rows": len(y), "positives": int(y.sum())}
    boots: dict[str, tuple[list[float], list[float]]] = {k: ([], []) for k in scores}
    for _ in range(reps):
        counts = np.bincount(rng.integers(0, n_gpus, n_gpus), minlength=n_gpus).astype(float)
        w = counts[gpu_index]
        for name, p in scores.items():
            auc, rec = _weighted_scores(p, y, w)
            boots[name][0].append(auc)
            boots[name][1].append(rec)
    for name, p in scores.items():
        auc, rec = _weighted_scores(p, y, ones)
        out[name] = {
            "roc_auc": auc,
            "roc_auc_ci95": _ci(boots[name][0]),
            "recall_at_5pct_fpr": rec,
            "recall_at_5pct_fpr_ci95": _ci(boots[name][1]),
        }
    return out


def predict_snapshots(
    model: RiskModel, horizon: str, x: FloatArray, times: FloatArray
) -> FloatArray:
    """Predict the rows of each time together, as ``serve`` does: the rule reads a GPU against
    its fleet at the same time (a row-wise model gives the same answer either way)."""
    out = np.empty(len(times))
    for t in np.unique(times):
        sel = times == t
        out[sel] = model.predict(horizon, x[sel])
    return out


def flag_snapshots(
    model: RiskModel, horizon: str, x: FloatArray, times: FloatArray, probabilities: FloatArray
) -> BoolArray:
    """The model's flags on rows predicted by :func:`predict_snapshots`, one time at a time as
    ``serve`` flags them: the rule flags a GPU that stands out from its fleet at that time
    (:meth:`~gpu_health.scorer.rules.RuleModel.flags`)."""
    out = np.zeros(len(times), dtype=bool)
    for t in np.unique(times):
        sel = times == t
        out[sel] = model.flags(horizon, x[sel], probabilities[sel])
    return out


def visible_ceiling(y: FloatArray, visible: BoolArray) -> float:
    """ROC AUC on all failures of an oracle that ranks every row whose failure's precursor is
    already visible first and knows nothing else (every other row tied): what telemetry
    precursors alone can reach on this fleet. ``visible`` is the "precursor_visible" mask
    (every negative row and the positives whose precursor had begun)."""
    seen = (y == 1) & visible
    score = seen.astype(np.float64)
    return _weighted_scores(score, y, np.ones(len(y)))[0]


def calibration(p: FloatArray, y: FloatArray, bins: int = 10) -> list[dict[str, float]]:
    """Expected (sum of p) and observed failures per decile of p."""
    order = np.argsort(p, kind="stable")
    out = []
    for chunk in np.array_split(order, bins):
        if len(chunk):
            out.append(
                {
                    "p_max": float(p[chunk].max()),
                    "expected": float(p[chunk].sum()),
                    "observed": float(y[chunk].sum()),
                }
            )
    return out


def calibration_summary(deciles: Sequence[dict[str, float]]) -> str:
    """One line: expected/observed failures per decile of probability (lowest first), their
    totals, and how many deciles are within :data:`CALIBRATION_TOLERANCE` (issue #16 asks
    for every decile within ±30 %)."""
    expected_each = np.array([d["expected"] for d in deciles])
    observed_each = np.array([d["observed"] for d in deciles])
    within = int(within_tolerance(expected_each, observed_each).sum())
    cells = " ".join(f"{d['expected']:.0f}/{d['observed']:.0f}" for d in deciles)
    expected = sum(d["expected"] for d in deciles)
    observed = sum(d["observed"] for d in deciles)
    return (
        f"expected/observed failures per decile {cells}; total {expected:.0f}/{observed:.0f}; "
        f"{within} of {len(deciles)} deciles within ±{CALIBRATION_TOLERANCE:.0%}"
    )


def upcoming_failures(
    data: Dataset, failures: Sequence[Failure], horizon: str
) -> list[list[Failure]]:
    """For each row, the failures of its GPU within the horizon after its time."""
    h = HORIZON_SECONDS[horizon]
    by_uuid: dict[str, list[Failure]] = {}
    for f in failures:
        by_uuid.setdefault(f.uuid, []).append(f)
    return [
        [f for f in by_uuid.get(uuid, ()) if t < f.time <= t + h]
        for uuid, t in zip(data.uuids, data.times, strict=True)
    ]


def belongs(subset: str, failure: Failure, t: float) -> bool:
    """Whether a failure ahead of a row at time ``t`` is one the subset is about."""
    if subset == "precursor_failures":
        return bool(failure.precursor)
    if subset == "precursor_visible":
        return bool(failure.precursor) and (
            failure.precursor_start is None or failure.precursor_start <= t
        )
    if subset.startswith("mode:"):
        return failure.mode == subset[len("mode:") :]
    return True


def subsets(
    data: Dataset,
    failures: Sequence[Failure],
    horizon: str,
    upcoming: list[list[Failure]] | None = None,
) -> dict[str, BoolArray]:
    """Row masks keeping every negative and only some positives: ``precursor_failures`` (the
    failure showed a precursor), ``precursor_visible`` (it had begun at prediction time) and
    ``mode:<mode>`` (failures of that mode)."""
    ahead = upcoming if upcoming is not None else upcoming_failures(data, failures, horizon)
    known = any(f.precursor is not None for f in failures)
    names = ["precursor_failures", "precursor_visible"] if known else []
    names += [f"mode:{m}" for m in sorted({f.mode for f in failures})]
    masks = {name: np.ones(len(data), dtype=bool) for name in names}
    for i, t in enumerate(data.times):
        if ahead[i]:
            for name in names:
                masks[name][i] = any(belongs(name, f, float(t)) for f in ahead[i])
    return masks


def failures_counted(
    subset: str,
    rows: BoolArray,
    y: FloatArray,
    times: FloatArray,
    upcoming: list[list[Failure]],
) -> int:
    """Distinct failures of the subset that the selected positive rows precede: the done-when
    criteria of issue #16 count failures (e.g. modes with at least 10), not rows."""
    seen = {
        (f.uuid, f.time)
        for i in np.flatnonzero(rows & (y == 1))
        for f in upcoming[i]
        if belongs(subset, f, float(times[i]))
    }
    return len(seen)


def evaluate(
    model: RiskModel,
    data: Dataset,
    failures: Sequence[Failure],
    bootstrap: int = 200,
    seed: int = 0,
) -> dict[str, Any]:
    """The model and the rule side by side per horizon and subset, with 95 % intervals."""
    if len(data) == 0:
        raise UserError("no GPU-time rows to evaluate: the history holds no GPU series")
    rule = RuleModel()
    scorers: dict[str, RiskModel] = {"model": model}
    if model.kind != "rules":
        scorers["rule"] = rule
    columns = {name: data.matrix(m.features) for name, m in scorers.items()}
    probs = {
        name: {h: predict_snapshots(m, h, columns[name], data.times) for h in HORIZONS}
        for name, m in scorers.items()
    }
    x_model = columns["model"]
    flags = {h: flag_snapshots(model, h, x_model, data.times, probs["model"][h]) for h in HORIZONS}
    line = sre_line_score(SRE_LINE_FEATURES, data.matrix(SRE_LINE_FEATURES))
    probs[SRE_LINE] = {h: line for h in HORIZONS}
    uuids = sorted(set(data.uuids))
    index = {u: k for k, u in enumerate(uuids)}
    gpu_index = np.array([index[u] for u in data.uuids], dtype=np.int64)
    rng = np.random.default_rng(seed)
    report: dict[str, Any] = {
        "rows": len(data),
        "gpus": len(uuids),
        "model_kind": model.kind,
        "bootstrap_reps": bootstrap,
        "horizons": {},
    }
    for horizon in HORIZONS:
        y = data.labels.get(horizon)
        if y is None:
            continue
        ok = ~np.isnan(y)
        entry: dict[str, Any] = {"rows": int(ok.sum()), "positives": int(np.nansum(y[ok]))}
        if len(np.unique(y[ok])) == 2:
            ahead = upcoming_failures(data, failures, horizon)
            masks = {
                "all": np.ones(len(data), dtype=bool),
                **subsets(data, failures, horizon, ahead),
            }
            if "precursor_visible" in masks:
                entry["visible_precursor_ceiling_roc_auc"] = visible_ceiling(
                    y[ok], masks["precursor_visible"][ok]
                )
            for subset, keep in masks.items():
                sel = ok & keep
                positives = int(y[sel].sum())
                if len(np.unique(y[sel])) < 2:
                    continue
                if subset.startswith("mode:") and positives < MIN_MODE_POSITIVES:
                    continue
                entry[subset] = compare(
                    {n: p[horizon][sel] for n, p in probs.items()},
                    y[sel],
                    gpu_index[sel],
                    len(uuids),
                    rng,
                    bootstrap,
                )
                entry[subset]["failures"] = failures_counted(subset, sel, y, data.times, ahead)
            p = probs["model"][horizon]
            flagged = flags[horizon]
            thr = model.threshold(horizon)
            # What `flagged` in the API means (the rule: stands out from its fleet now) ...
            entry["threshold"] = thr
            entry["fpr_at_threshold"] = float(flagged[ok & (y == 0)].mean())
            entry["recall_at_threshold"] = float(flagged[ok & (y == 1)].mean())
            # ... and what `outcomes` can count from published probabilities alone (the same
            # for a trained model; for the rule, the fixed floor of its per-row threshold).
            entry["fpr_at_absolute_threshold"] = float((p[ok & (y == 0)] >= thr).mean())
            entry["recall_at_absolute_threshold"] = float((p[ok & (y == 1)] >= thr).mean())
            entry["calibration"] = calibration(p[ok], y[ok])
            entry["calibration_against_chance"] = against_chance(
                p, ok, y, data.times, gpu_index, HORIZON_SECONDS[horizon], seed=seed
            )
        report["horizons"][horizon] = entry
    report["lead_time"] = lead_times(data, flags["30d"], failures)
    return report


def lead_times(data: Dataset, flagged30: BoolArray, failures: Sequence[Failure]) -> dict[str, Any]:
    """For each failure inside the evaluated period: how long before it the GPU was first
    flagged at 30 days (``flagged30``: the model's flags per row, as ``serve`` sets them),
    within the 30 days before the failure."""
    rows: list[dict[str, Any]] = []
    if len(data):
        t_min, t_max = float(data.times.min()), float(data.times.max())
        by_uuid: dict[str, list[int]] = {}
        for i, u in enumerate(data.uuids):
            by_uuid.setdefault(u, []).append(i)
        for f in failures:
            if not (t_min + HORIZON_SECONDS["30d"] / 4 <= f.time <= t_max + 86400):
                continue
            idx = [
                i
                for i in by_uuid.get(f.uuid, [])
                if f.time - HORIZON_SECONDS["30d"] <= data.times[i] < f.time
            ]
            flagged = sorted(data.times[i] for i in idx if flagged30[i])
            lead = (f.time - flagged[0]) / 86400 if flagged else None
            early = f.precursor_start is not None and f.time - f.precursor_start >= 7 * 86400
            rows.append(
                {
                    "mode": f.mode,
                    "precursor": f.precursor,
                    "precursor_7d": early,
                    "lead_days": lead,
                }
            )

    def summary(sel: list[dict[str, Any]]) -> dict[str, Any]:
        leads = [r["lead_days"] for r in sel if r["lead_days"] is not None]
        n = len(sel)
        return {
            "failures": n,
            "flagged": len(leads),
            "flagged_7d_early": sum(1 for v in leads if v >= 7),
            "share_flagged_7d_early": (sum(1 for v in leads if v >= 7) / n) if n else None,
            "median_lead_days": float(np.median(leads)) if leads else None,
        }

    return {
        "all": summary(rows),
        "with_precursor": summary([r for r in rows if r["precursor"]]),
        "precursor_began_7d_before": summary([r for r in rows if r["precursor_7d"]]),
        "by_mode": {
            m: summary([r for r in rows if r["mode"] == m])
            for m in sorted({r["mode"] for r in rows})
        },
    }


def format_report(report: dict[str, Any]) -> str:
    """The evaluation as a plain-text table: model, rule and SRE line side by side with 95 %
    intervals."""

    def f(v: Any) -> str:
        return (
            "-"
            if v is None or (isinstance(v, float) and math.isnan(v))
            else (f"{v:.3f}" if isinstance(v, float) else str(v))
        )

    def ci(v: list[float] | None) -> str:
        return "" if not v else f" [{v[0]:.2f}, {v[1]:.2f}]"

    lines = [
        f"schema {report.get('schema')}, {report['rows']} GPU-time rows, {report['gpus']} GPUs, "
        f"model {report['model_kind']}, {report['bootstrap_reps']} bootstrap reps over GPUs",
        "horizon subset                  pos fail  scorer  ROC_AUC [95% CI]        "
        "recall@5%FPR [95% CI]   (pos: positive GPU-time rows; fail: distinct failures)",
    ]
    for h, e in report["horizons"].items():
        if not any(isinstance(s, dict) and "rows" in s for s in e.values()):
            lines.append(
                f"{h:>7} not evaluated: {e['rows']} rows have their whole {h} window inside the "
                f"history ({e['positives']} positive); a row is censored when the history ends "
                f"within {h} of it"
            )
            continue
        for subset, s in e.items():
            if not isinstance(s, dict) or "rows" not in s:
                continue
            for name, shown in (("model", "model"), ("rule", "rule"), (SRE_LINE, "sre")):
                if name not in s:
                    continue
                m = s[name]
                lines.append(
                    f"{h:>7} {subset:<22} {s['positives']:>5} {s.get('failures', '-'):>4}  "
                    f"{shown:<6}  "
                    f"{f(m['roc_auc']):>7}{ci(m['roc_auc_ci95']):<16} "
                    f"{f(m['recall_at_5pct_fpr']):>7}{ci(m['recall_at_5pct_fpr_ci95'])}"
                )
        if "visible_precursor_ceiling_roc_auc" in e:
            lines.append(
                f"{h:>7} ROC AUC on all failures of an oracle that sees every visible precursor "
                f"and nothing else: {f(e['visible_precursor_ceiling_roc_auc'])}"
            )
        if "fpr_at_threshold" in e:
            rule = report["model_kind"] == "rules"
            where = (
                f"flagged (stands out from its fleet; floor {f(e['threshold'])})"
                if rule
                else f"at its threshold {f(e['threshold'])}"
            )
            lines.append(
                f"{h:>7} model {where}: FPR "
                f"{f(e['fpr_at_threshold'])}, recall {f(e['recall_at_threshold'])}"
            )
            if rule:
                lines.append(
                    f"{h:>7} model at the fixed floor alone (what `outcomes` counts): FPR "
                    f"{f(e['fpr_at_absolute_threshold'])}, "
                    f"recall {f(e['recall_at_absolute_threshold'])}"
                )
        if e.get("calibration"):
            lines.append(f"{h:>7} model calibration: {calibration_summary(e['calibration'])}")
        if e.get("calibration_against_chance"):
            check = against_chance_summary(e["calibration_against_chance"])
            lines.append(f"{h:>7} model calibration against chance: {check}")
    lt = report["lead_time"]
    for key in ("all", "with_precursor", "precursor_began_7d_before"):
        s = lt[key]
        lines.append(
            f"lead time ({key}): {s['failures']} failures, {s['flagged']} flagged, "
            f"{s['flagged_7d_early']} >= 7 d early ({f(s['share_flagged_7d_early'])}), "
            f"median lead {f(s['median_lead_days'])} d"
        )
    return "\n".join(lines)
