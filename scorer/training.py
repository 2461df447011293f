"""Training and evaluation data: the serving feature queries replayed at past timestamps.

A training example is (GPU, prediction time t): the features are the exact PromQL of
:mod:`gpu_health.scorer.features` evaluated as instant queries at ``time=t`` against the
Prometheus that holds the history, so training sees what serving will see. The label for a
horizon H is 1 when the GPU fails in (t, t + H], 0 when it does not, and missing (censored,
left out) when the history ends before t + H, whatever happened in the part it covers. The
train/validation split is by time: a training row's label window ends before the first
validation time, so nothing about the validation period leaks into training.
"""

from __future__ import annotations

import logging
import math
import sys
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from gpu_health.csv_file import read_csv
from gpu_health.errors import UserError
from gpu_health.scorer.features import (
    FEATURES,
    FLEET_FEATURES,
    MODEL_FEATURES,
    PEER_FEATURES,
    SchemaName,
    compute_features,
)
from gpu_health.scorer.history_source import HistoryMode
from gpu_health.scorer.model import (
    HORIZON_SECONDS,
    HORIZONS,
    TRAINED_HORIZONS,
    FailureModel,
    HorizonModel,
    IsolationForestArrays,
)
from gpu_health.scorer.promclient import PromClient
from gpu_health.unix_time import iso_utc, parse_time

log = logging.getLogger(__name__)
FloatArray = npt.NDArray[np.float64]

#: Target false-positive rate for the alert threshold (the issue's ≤ 5 %).
TARGET_FPR = 0.05


@dataclass(frozen=True)
class Failure:
    uuid: str
    time: float
    mode: str
    #: Whether telemetry carried a precursor (from the simulator's ground truth; None: unknown).
    precursor: bool | None = None
    #: When the precursor began (simulator ground truth), if known.
    precursor_start: float | None = None


_TRUE = {"1", "true", "yes", "y", "t"}
_FALSE = {"", "0", "false", "no", "n", "f", "none", "nan"}


def _truthy(column: str, text: str) -> bool:
    """A yes/no column, or a time column (``precursor_start``) where any time means yes."""
    value = text.strip().lower()
    if column == "precursor_start":
        return value not in _FALSE
    return value in _TRUE


def load_failures(path: Path) -> list[Failure]:
    """Read a failures CSV with at least ``uuid,time,mode`` columns (RMA tickets or ground truth).

    An optional ``precursor`` (or ``has_precursor``) column marks failures whose telemetry
    showed a warning sign; lead-time figures are reported on those.
    """
    table = read_csv(path)
    columns = set(table.header)
    missing = {"uuid", "time", "mode"} - columns
    if missing:
        raise UserError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
    pcol = next(
        (c for c in ("precursor", "has_precursor", "precursor_start") if c in columns),
        None,
    )
    failures = []
    for n, row in table.rows():
        try:
            when = parse_time(row["time"])
        except UserError as exc:
            raise UserError(f"{path}: line {n}: {exc}") from None
        pre = None if pcol is None else _truthy(pcol, row[pcol])
        start = None
        # precursor_start may sit beside a yes/no precursor column: when it began.
        began = (row.get("precursor_start") or "").strip()
        if pre and began and began.lower() not in _FALSE:
            try:
                start = parse_time(began)
            except UserError as exc:
                raise UserError(f"{path}: line {n}: precursor_start: {exc}") from None
        failures.append(Failure(row["uuid"].strip(), when, row["mode"].strip(), pre, start))
    return failures


@dataclass
class Dataset:
    features: tuple[str, ...]
    x: FloatArray
    times: FloatArray
    uuids: list[str]
    labels: dict[str, FloatArray] = field(default_factory=dict)
    #: At how many of the prediction times the features read each history
    #: (:data:`~gpu_health.scorer.history_source.HISTORY_SOURCES`): ``auto`` picks per time.
    sources: dict[str, int] = field(default_factory=dict)
    #: The end of the history whose failures labelled the rows, and how many distinct failures
    #: fell between its first prediction time and that end: what a model trained on these rows
    #: has seen (its metadata ``trained_until`` and ``failures_trained_on``, which the promotion
    #: gate checks a held-out window against).
    history_end: float = math.nan
    failures_seen: int = 0

    def __len__(self) -> int:
        return len(self.uuids)

    def without(self, names: Sequence[str]) -> Dataset:
        """The same rows without the named columns."""
        keep = [j for j, n in enumerate(self.features) if n not in names]
        return Dataset(
            tuple(self.features[j] for j in keep),
            self.x[:, keep],
            self.times,
            self.uuids,
            self.labels,
            self.sources,
            self.history_end,
            self.failures_seen,
        )

    def matrix(self, names: Sequence[str]) -> FloatArray:
        """Columns in the order a model expects; a feature this data lacks is NaN."""
        out = np.full((len(self.uuids), len(names)), np.nan)
        for j, name in enumerate(names):
            if name in self.features:
                out[:, j] = self.x[:, self.features.index(name)]
        return out


def concat(parts: Sequence[Dataset]) -> Dataset:
    """Several histories' examples as one training set (labels were set per history)."""
    first = parts[0]
    if any(p.features != first.features for p in parts):
        raise UserError("histories were collected with different feature lists")
    return Dataset(
        first.features,
        np.vstack([p.x for p in parts]),
        np.concatenate([p.times for p in parts]),
        [u for p in parts for u in p.uuids],
        {h: np.concatenate([p.labels[h] for p in parts]) for h in first.labels},
        dict(sum((Counter(p.sources) for p in parts), Counter())),
        max((p.history_end for p in parts), default=math.nan),
        sum(p.failures_seen for p in parts),
    )


def label_rows(
    uuids: Sequence[str],
    times: FloatArray,
    failures: Iterable[Failure],
    history_end: float,
) -> dict[str, FloatArray]:
    """1 = fails in (t, t+H]; 0 = survives it; NaN = censored: t+H is past the history's end.

    A row whose window runs past the end is censored whatever its outcome. Keeping it when a
    failure happens to fall inside the observed part would keep late positives and drop every
    late negative: the last H of the history would hold positives only, and any score that
    grows with calendar time (a fleet failure rate learnt as the history goes on, counters
    drifting after reboots) would rank failures high on a fleet with no signal at all. An
    outside evaluation measured exactly that (a 30-day ROC AUC of 0.68 on a fleet whose
    failing boards were identical to the healthy ones).
    """
    by_uuid: dict[str, list[float]] = {}
    for f in failures:
        by_uuid.setdefault(f.uuid, []).append(f.time)
    out: dict[str, FloatArray] = {}
    for horizon in HORIZONS:
        h = HORIZON_SECONDS[horizon]
        y = np.full(len(uuids), np.nan)
        for i, (uuid, t) in enumerate(zip(uuids, times, strict=True)):
            if t + h > history_end:
                continue
            y[i] = 1.0 if any(t < ft <= t + h for ft in by_uuid.get(uuid, ())) else 0.0
        out[horizon] = y
    return out


#: Prediction times one train or evaluate run may read: a year at hourly steps.
MAX_PREDICTION_TIMES = 10_000


def prediction_times(start: float, end: float, step: float, warmup: float) -> list[float]:
    """Evaluation times from ``start + warmup`` to ``end`` every ``step`` seconds, at most
    :data:`MAX_PREDICTION_TIMES` (each is a whole feature read of the fleet: ``--step 1s``
    over 11 days announced 86,401 steps and would have run for days)."""
    if end <= start:
        raise UserError(
            f"the history's end {iso_utc(end)} is not after its start {iso_utc(start)}: check "
            "--start and --end"
        )
    first = start + warmup
    if first >= end:
        raise UserError(
            f"history too short: {(end - start) / 86400:.1f} days, need more than "
            f"{warmup / 86400:.1f} days of warm-up"
        )
    n = int((end - first) // step) + 1
    if n > MAX_PREDICTION_TIMES:
        raise UserError(
            f"--step {step:g}s gives {n:,} prediction times over {(end - first) / 86400:.1f} days "
            f"after the warm-up (at most {MAX_PREDICTION_TIMES:,}, each a feature read of the "
            "whole fleet): raise --step"
        )
    return [first + i * step for i in range(n)]


def collect(
    client: PromClient,
    schema: SchemaName,
    times: Sequence[float],
    failures: Sequence[Failure],
    history_end: float,
    progress: Callable[[int, int], None] | None = None,
    workers: int = 4,
    history: HistoryMode = "raw",
) -> Dataset:
    """Evaluate the model features (and who each GPU's peers are, and the fleet's losses) at
    every time (instant queries with ``time=``), reading ``history`` as a serving scorer's
    ``--history`` does (:mod:`gpu_health.scorer.history_source`; ``auto`` chooses at each
    time, so a backtest reads what the scorer serving then would have)."""
    names = (*MODEL_FEATURES, *FLEET_FEATURES, *PEER_FEATURES)
    feats = [f for f in FEATURES if f.name in names]
    blocks: list[FloatArray] = []
    all_times: list[float] = []
    uuids: list[str] = []
    sources: Counter[str] = Counter()
    for k, t in enumerate(times):
        frame = compute_features(client, schema, t, feats, workers=workers, history=history)
        sources[frame.history] += 1
        blocks.append(frame.select(names))
        all_times.extend([t] * len(frame.gpus))
        uuids.extend(g[2] for g in frame.gpus)
        if progress:
            progress(k + 1, len(times))
    x = np.vstack(blocks) if blocks else np.zeros((0, len(names)))
    t_arr = np.asarray(all_times, dtype=np.float64)
    labels = label_rows(uuids, t_arr, failures, history_end)
    first = float(t_arr.min()) if len(t_arr) else history_end
    seen = set(uuids)
    failures_seen = len(
        {(f.uuid, f.time) for f in failures if f.uuid in seen and first < f.time <= history_end}
    )
    return Dataset(names, x, t_arr, uuids, labels, dict(sources), history_end, failures_seen)


def print_progress(label: str) -> Callable[[int, int], None]:
    def show(done: int, total: int) -> None:
        if done == total or done % max(1, total // 20) == 0:
            print(f"{label}: {done}/{total} time steps", file=sys.stderr, flush=True)

    return show


# ---- fitting ------------------------------------------------------------------------------


def _platt(margins: FloatArray, y: FloatArray) -> tuple[float, float]:
    """Fit p = sigmoid(a * margin + b) with scikit-learn's logistic regression."""
    from sklearn.linear_model import LogisticRegression

    if len(np.unique(y)) < 2:
        return 1.0, 0.0
    lr = LogisticRegression(C=1e4, max_iter=1000)
    lr.fit(margins.reshape(-1, 1), y.astype(int))
    return float(lr.coef_[0, 0]), float(lr.intercept_[0])


def threshold_at_fpr(scores: FloatArray, y: FloatArray, fpr: float = TARGET_FPR) -> float:
    """Smallest score threshold whose false-positive rate on ``y == 0`` is at most ``fpr``."""
    neg = np.sort(scores[y == 0])
    if len(neg) == 0:
        return 0.5
    k = math.floor(len(neg) * (1.0 - fpr))
    k = min(max(k, 0), len(neg) - 1)
    return float(np.nextafter(neg[k], np.inf))


#: Feature families that a fleet may lack as a whole (by name prefix).
FEATURE_GROUPS: tuple[str, ...] = (
    "ecc_",
    "remapped_",
    "row_remap",
    "retired",
    "temp_",
    "thermal_",
    "board_limit",
    "sm_clock",
    "power_",
    "pcie_",
    "nvlink_",
    "xid_",
    "utilization",
)


#: Features whose larger values can only mean more risk (errors, heat, throttling, events).
#: Constraining them keeps the model physical and stops it learning one simulator's quirks.
_INCREASING = (
    "ecc_",
    "remapped_",
    "row_remap",
    "retired",
    "temp_gpu_excess",
    "temp_gpu_node_excess",
    "temp_memory_excess",
    "temp_gpu_per_watt",
    "temp_gpu_trend",
    "thermal_",
    "board_limit",
    "pcie_replays",
    "nvlink_",
    "xid_",
)


def monotone(features: Sequence[str]) -> list[int]:
    """XGBoost monotone constraints: +1 for risk-only-increasing features, 0 otherwise."""
    return [1 if name.startswith(_INCREASING) else 0 for name in features]


def signal_dropout(
    features: Sequence[str], x: FloatArray, rng: np.random.Generator, p: float
) -> FloatArray:
    """A copy of ``x`` where each row loses whole feature families with probability ``p``.

    Another fleet may lack a signal entirely (dcgm-exporter's default counters carry no ECC
    or violation counters); training on copies with families blanked teaches the trees to fall
    back on the signals that remain instead of leaning on one.
    """
    out = x.copy()
    for prefix in FEATURE_GROUPS:
        cols = [j for j, name in enumerate(features) if name.startswith(prefix)]
        if not cols:
            continue
        drop = rng.random(len(out)) < p
        out[np.ix_(drop, np.asarray(cols, dtype=np.int64))] = np.nan
    return out


def fit(
    data: Dataset,
    seed: int = 0,
    valid_fraction: float = 0.3,
    n_estimators: int = 300,
    metadata: dict[str, Any] | None = None,
    dropout: float = 0.25,
    hazard_scale: float = 1.0,
    min_child_weight: float = 20.0,
) -> tuple[FailureModel, dict[str, Any]]:
    """Fit one calibrated XGBoost per horizon with a time split, and the isolation forest.

    ``hazard_scale``: the history was simulated with failure rates multiplied by this (to see
    enough failures); the calibration's odds are divided by it so that probabilities refer to
    the unscaled rates (exact for rare events, where odds ≈ probability ≈ rate).
    """
    import xgboost as xgb
    from sklearn.ensemble import IsolationForest

    if len(data) == 0:
        raise UserError("no training rows: did the Prometheus hold any GPU series?")
    # Which model a GPU is, and the fleet's losses copied onto every GPU, are not evidence.
    data = data.without((*PEER_FEATURES, *FLEET_FEATURES))
    unique_times = np.unique(data.times)
    split = float(np.quantile(unique_times, 1.0 - valid_fraction))
    horizons: dict[str, HorizonModel] = {}
    report: dict[str, Any] = {"split_time": split, "horizons": {}}
    for horizon in TRAINED_HORIZONS:
        y = data.labels[horizon]
        h = HORIZON_SECONDS[horizon]
        train = ~np.isnan(y) & (data.times + h <= split)
        valid = ~np.isnan(y) & (data.times >= split)
        if train.sum() == 0 or y[train].sum() == 0:
            raise UserError(
                f"horizon {horizon}: no failures in the training window; need a longer or "
                "larger history (more GPUs or days)"
            )
        pos = float(y[train].sum())
        neg = float(train.sum() - pos)
        clf = xgb.XGBClassifier(
            n_estimators=n_estimators,
            max_depth=3,
            learning_rate=0.05,
            subsample=0.7,
            colsample_bytree=0.6,
            min_child_weight=min_child_weight,
            reg_lambda=10.0,
            gamma=1.0,
            scale_pos_weight=math.sqrt(neg / pos),
            monotone_constraints=tuple(monotone(data.features)),
            tree_method="hist",
            random_state=seed,
            n_jobs=2,
            missing=np.nan,
        )
        x_train, y_train = data.x[train], y[train]
        if dropout > 0:
            rng = np.random.default_rng(seed)
            x_train = np.vstack([x_train, signal_dropout(data.features, x_train, rng, dropout)])
            y_train = np.concatenate([y_train, y_train])
        clf.fit(x_train, y_train.astype(int))
        booster = clf.get_booster()
        booster.feature_names = list(data.features)
        # Calibrate after the split when it holds both outcomes; else (no failures there, or
        # no rows: a horizon as long as the validation span has every label censored) on the
        # training rows, reported as such. An empty matrix is never predicted (XGBoost warns).
        on_valid = len(np.unique(y[valid])) == 2
        calibrate = valid if on_valid else train
        calibrated_on = "validation" if on_valid else "train"
        dm = xgb.DMatrix(data.x[calibrate], missing=np.nan, feature_names=list(data.features))
        margins = booster.predict(dm, output_margin=True).astype(np.float64)
        yv = y[calibrate]
        a, b = _platt(margins, yv)
        b -= math.log(hazard_scale)
        probs = 1.0 / (1.0 + np.exp(-(a * margins + b)))
        threshold = threshold_at_fpr(probs, yv)
        horizons[horizon] = HorizonModel(booster, a, b, threshold)
        report["horizons"][horizon] = {
            "train_rows": int(train.sum()),
            "train_positives": int(pos),
            "valid_rows": int(valid.sum()),
            "valid_positives": int(y[valid].sum()),
            "calibrated_on": calibrated_on,
            "hazard_scale_corrected": hazard_scale,
            "threshold": threshold,
            **(_scores(probs, yv) if len(np.unique(yv)) == 2 else {}),
        }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN column: imputed as 0
        impute = np.nanmedian(data.x, axis=0)
    impute = np.where(np.isnan(impute), 0.0, impute)
    base = data.x[data.times < split] if (data.times < split).any() else data.x
    filled = np.where(np.isnan(base), impute[np.newaxis, :], base)
    forest = IsolationForest(n_estimators=100, max_samples=min(256, len(filled)), random_state=seed)
    forest.fit(filled)
    model = FailureModel(
        data.features,
        horizons,
        impute,
        IsolationForestArrays.from_sklearn(forest),
        {**(metadata or {}), "training": report},
    )
    return model, report


def _scores(p: FloatArray, y: FloatArray) -> dict[str, float]:
    from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

    fpr, tpr, _ = roc_curve(y, p)
    return {
        "roc_auc": float(roc_auc_score(y, p)),
        "pr_auc": float(average_precision_score(y, p)),
        "recall_at_5pct_fpr": float(np.interp(TARGET_FPR, fpr, tpr)),
        "base_rate": float(y.mean()),
    }
