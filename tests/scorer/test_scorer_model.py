"""The failure model: fitting with a time split, calibration, persistence and its checksum."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gpu_health.scorer.evaluation import evaluate
from gpu_health.scorer.model import (
    CHECKSUMS,
    DEFAULT_MODEL_DIR,
    HORIZON_SECONDS,
    HORIZONS,
    TRAINED_HORIZONS,
    FailureModel,
    IsolationForestArrays,
    ModelError,
)
from gpu_health.scorer.training import (
    Dataset,
    Failure,
    fit,
    label_rows,
    threshold_at_fpr,
)

DAY = 86400.0


def synthetic_dataset(seed: int = 0, gpus: int = 120, days: int = 160) -> tuple[Dataset, list]:
    """GPU-days where a failing GPU's first feature ramps up over the 20 days before it fails."""
    rng = np.random.default_rng(seed)
    names = ("signal", "noise", "sparse")
    fail_at = {g: float(rng.uniform(40, days - 5)) * DAY for g in range(gpus) if g % 6 == 0}
    failures = [Failure(f"g{g}", t, "hbm", True) for g, t in fail_at.items()]
    rows, times, uuids = [], [], []
    for day in range(10, days, 2):
        t = day * DAY
        for g in range(gpus):
            ft = fail_at.get(g)
            if ft is not None and t >= ft:
                continue
            to_fail = (ft - t) / DAY if ft is not None else 1e9
            signal = max(0.0, 20.0 - to_fail) * 5 + rng.normal(0, 3)
            sparse = np.nan if g % 3 else rng.normal()
            rows.append([signal, rng.normal(), sparse])
            times.append(t)
            uuids.append(f"g{g}")
    t_arr = np.asarray(times)
    data = Dataset(names, np.asarray(rows), t_arr, uuids)
    data.labels = label_rows(uuids, t_arr, failures, days * DAY)
    return data, failures


@pytest.fixture(scope="module")
def trained() -> tuple[FailureModel, dict, Dataset, list]:
    data, failures = synthetic_dataset()
    model, report = fit(data, seed=1, n_estimators=60)
    return model, report, data, failures


def test_labels_are_censored_where_the_future_is_unknown() -> None:
    failures = [Failure("a", 10 * DAY, "hbm")]
    y = label_rows(["a", "a", "b", "b"], np.array([5, 2, 5, 95]) * DAY, failures, 100 * DAY)
    assert list(y["7d"][:2]) == [1.0, 0.0]  # fails 5 d later; 8 d later is outside 7 d
    assert y["7d"][2] == 0.0
    assert np.isnan(y["7d"][3])  # t + 7 d is past the end of the history: unknown
    assert y["30d"][1] == 1.0 and np.isnan(y["30d"][3])
    # A failure inside the observed part of a window that runs past the end is censored too:
    # keeping it would make the last 7 days of the history positives only.
    late = label_rows(["a"], np.array([95.0]) * DAY, [Failure("a", 97 * DAY, "hbm")], 100 * DAY)
    assert np.isnan(late["7d"][0]) and np.isnan(late["30d"][0])


def test_a_score_that_only_grows_with_time_learns_nothing_from_the_labels() -> None:
    """A fleet with no signal: 200 GPUs, each failing at a random time (or never) and then
    replaced. A "score" that is just the calendar time must rank failures at chance at every
    horizon; with positives kept where negatives are censored it ranked them far above."""
    from gpu_health.scorer.evaluation import _weighted_scores

    rng = np.random.default_rng(3)
    end = 120 * DAY
    failures, uuids, times = [], [], []
    for slot in range(200):
        board, born = 0, 0.0
        while born < end:
            uuid = f"{slot}-{board}"
            dies = born + rng.exponential(150 * DAY)
            if dies < end:
                failures.append(Failure(uuid, dies, "other"))
            for day in np.arange(np.ceil(born / DAY), min(dies, end) / DAY):
                uuids.append(uuid)
                times.append(day * DAY)
            board, born = board + 1, dies + 2 * DAY
    t = np.asarray(times)
    labels = label_rows(uuids, t, failures, end)
    for horizon in ("7d", "30d", "90d"):
        y = labels[horizon]
        ok = ~np.isnan(y)
        auc, _ = _weighted_scores(t[ok], y[ok], np.ones(int(ok.sum())))
        assert abs(auc - 0.5) < 0.05, (horizon, auc)


def test_time_split_leaves_no_label_window_across_the_split(trained) -> None:
    _model, report, data, _ = trained
    split = report["split_time"]
    for h in TRAINED_HORIZONS:
        entry = report["horizons"][h]
        rows = ~np.isnan(data.labels[h]) & (data.times + HORIZON_SECONDS[h] <= split)
        assert entry["train_rows"] == int(rows.sum())
        assert entry["valid_rows"] == int((~np.isnan(data.labels[h]) & (data.times >= split)).sum())


def test_model_learns_the_precursor_and_calibrates(trained) -> None:
    model, _report, _data, _ = trained
    held, failures = synthetic_dataset(seed=7)
    report = evaluate(model, held, failures, bootstrap=20)
    assert report["horizons"]["7d"]["all"]["model"]["roc_auc"] > 0.9
    assert report["horizons"]["30d"]["all"]["model"]["roc_auc"] > 0.85
    # The rule is reported on the same rows; it reads none of these synthetic features.
    assert report["horizons"]["7d"]["all"]["rule"]["roc_auc"] == pytest.approx(0.5)
    # Calibration: mean predicted probability near the observed rate on held-out rows.
    y = held.labels["7d"]
    ok = ~np.isnan(y)
    p = model.predict("7d", held.matrix(model.features))[ok]
    assert abs(p.mean() - y[ok].mean()) < 0.05
    # Most failures (all have the ramp) are flagged by the 30 d model at least 7 d ahead.
    lead = report["lead_time"]["with_precursor"]
    assert lead["failures"] > 5
    assert lead["flagged_7d_early"] / lead["failures"] >= 0.6


def test_threshold_at_fpr_keeps_false_positives_under_budget() -> None:
    rng = np.random.default_rng(3)
    scores = rng.random(1000)
    y = (rng.random(1000) < 0.1).astype(float)
    thr = threshold_at_fpr(scores, y, 0.05)
    assert (scores[y == 0] >= thr).mean() <= 0.05
    assert (scores[y == 0] >= thr).mean() > 0.03


def test_isolation_forest_arrays_match_scikit_learn() -> None:
    from sklearn.ensemble import IsolationForest

    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 5))
    forest = IsolationForest(n_estimators=30, max_samples=128, random_state=0).fit(x)
    arrays = IsolationForestArrays.from_sklearn(forest)
    probe = np.vstack([rng.normal(size=(50, 5)), rng.normal(size=(5, 5)) * 8])
    ours = arrays.score(probe)
    np.testing.assert_allclose(ours, -forest.score_samples(probe), rtol=1e-9)
    assert ours[-5:].mean() > ours[:50].mean()  # outliers score higher


def test_save_load_round_trip_without_pickle(trained, tmp_path: Path) -> None:
    model, *_ = trained
    model.save(tmp_path / "m")
    files = sorted(p.name for p in (tmp_path / "m").iterdir())
    assert files == [CHECKSUMS, "iforest.json", "manifest.json", "xgb-30d.ubj", "xgb-7d.ubj"]
    for f in files:
        assert b"pickle" not in (tmp_path / "m" / f).read_bytes()[:64]
    loaded = FailureModel.load(tmp_path / "m")
    x = np.array([[0.0, 0.0, np.nan], [90.0, 1.0, 0.5]])
    for h in HORIZONS:
        np.testing.assert_allclose(loaded.predict(h, x), model.predict(h, x))
        np.testing.assert_allclose(loaded.factors(h, x)[1], model.factors(h, x)[1])
    np.testing.assert_allclose(loaded.anomaly(x), model.anomaly(x))
    assert loaded.predict("30d", x)[1] > loaded.predict("30d", x)[0]


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("truncate", "checksum mismatch"),
        ("alter_manifest", "checksum mismatch"),
        ("delete_booster", "missing"),
        ("delete_sums", "checksum file missing"),
    ],
)
def test_damaged_model_is_refused(trained, tmp_path: Path, damage: str, message: str) -> None:
    model, *_ = trained
    d = tmp_path / "m"
    model.save(d)
    if damage == "truncate":
        data = (d / "xgb-7d.ubj").read_bytes()
        (d / "xgb-7d.ubj").write_bytes(data[: len(data) // 2])
    elif damage == "alter_manifest":
        manifest = json.loads((d / "manifest.json").read_text())
        manifest["horizons"]["7d"]["threshold"] = 0.99
        (d / "manifest.json").write_text(json.dumps(manifest))
    elif damage == "delete_booster":
        (d / "xgb-30d.ubj").unlink()
    else:
        (d / CHECKSUMS).unlink()
    with pytest.raises(ModelError, match=message):
        FailureModel.load(d)


def test_shipped_model_verifies_and_scores() -> None:
    model = FailureModel.load(DEFAULT_MODEL_DIR)
    assert set(model.horizons) == set(TRAINED_HORIZONS)
    x = np.full((2, len(model.features)), np.nan)
    p = model.predict("30d", x)
    assert ((p >= 0) & (p <= 1)).all()
    card = (Path(__file__).resolve().parents[2] / "docs" / "model-card.md").read_text()
    for name in model.features:
        assert name in card, f"feature {name} is not documented in docs/model-card.md"


def test_failures_csv_in_the_simulators_layout(tmp_path: Path) -> None:
    from gpu_health.scorer.training import load_failures

    path = tmp_path / "failures.csv"
    path.write_text(
        "uuid,node,time,time_iso,mode,precursor_start,lead_hours\n"
        "GPU-a,n1,1700000000.5,x,hbm_uncorrectable,1699900000.0,27.8\n"
        "GPU-b,n1,2023-11-14T22:13:20Z,x,sdc,,\n"
    )
    a, b = load_failures(path)
    assert (a.uuid, a.time, a.mode, a.precursor, a.precursor_start) == (
        "GPU-a",
        1700000000.5,
        "hbm_uncorrectable",
        True,
        1699900000.0,
    )
    assert b.time == 1700000000.0 and b.precursor is False and b.precursor_start is None
    # The families' layout: a yes/no precursor column beside precursor_start.
    path.write_text(
        "uuid,time,mode,precursor,precursor_start\nGPU-c,1700000000,hbm,true,1699990000\n"
        "GPU-d,1700000000,pcie,false,\n"
    )
    c, d = load_failures(path)
    assert (c.precursor, c.precursor_start) == (True, 1699990000.0)
    assert (d.precursor, d.precursor_start) == (False, None)
    path.write_text("uuid,when\nx,1\n")
    from gpu_health.errors import UserError

    with pytest.raises(UserError, match="missing column"):
        load_failures(path)


def test_histories_concatenate_into_one_training_set() -> None:
    from gpu_health.errors import UserError
    from gpu_health.scorer.training import concat

    a, _ = synthetic_dataset(seed=1, gpus=12, days=60)
    b, _ = synthetic_dataset(seed=2, gpus=18, days=60)
    both = concat([a, b])
    assert len(both) == len(a) + len(b)
    np.testing.assert_array_equal(both.x[len(a) :], b.x)
    for h in a.labels:
        np.testing.assert_array_equal(both.labels[h][: len(a)], a.labels[h])
    odd = Dataset(("other",), a.x[:, :1], a.times, a.uuids, a.labels)
    with pytest.raises(UserError, match="different feature lists"):
        concat([a, odd])


def test_visible_precursor_ceiling_is_what_precursors_alone_can_reach() -> None:
    from gpu_health.scorer.evaluation import visible_ceiling

    # 10 negatives, 4 positives of which 1 had a visible precursor: the oracle ranks that one
    # first and ties the other 3 with every negative (each tie counts one half).
    y = np.array([0.0] * 10 + [1.0] * 4)
    visible = np.array([True] * 10 + [True, False, False, False])
    assert visible_ceiling(y, visible) == pytest.approx((1 * 1.0 + 3 * 0.5) / 4)
    # Every failure visible: a perfect ranking is possible.
    assert visible_ceiling(y, np.ones(14, dtype=bool)) == pytest.approx(1.0)


def test_the_rule_reads_each_gpu_against_its_own_snapshot() -> None:
    from gpu_health.scorer.evaluation import predict_snapshots
    from gpu_health.scorer.rules import RULE_FEATURES, RuleModel

    rule = RuleModel()
    j = RULE_FEATURES.index("pcie_replays_per_min_7d")
    # Two snapshots of 10 GPUs: in the first every GPU replays (the platform's background), in
    # the second only GPU 0 does. GPU 0 stands out only in the second.
    x = np.zeros((20, len(RULE_FEATURES)))
    x[:10, j] = 0.01
    x[10, j] = 0.01
    times = np.repeat([1.0, 2.0], 10)
    p = predict_snapshots(rule, "7d", x, times)
    assert p[0] == pytest.approx(p[1]) and p[10] > 2 * p[11]
    # Pooled as one snapshot instead, the 11 replaying GPUs would be the majority.
    assert rule.predict("7d", x)[10] == pytest.approx(rule.predict("7d", x)[0])


@pytest.mark.parametrize(
    "columns",
    [
        # gpu_model_key only groups peers for the rule: a tree split on it would learn one
        # fleet's hash of its model names, which means nothing on another fleet.
        {"gpu_model_key": lambda days, row: np.where(row % 2 == 0, 1.0, 2.0)},
        # The fleet's recent losses and GPU-days are one value per snapshot (the rule's base
        # rate). In one training history they grow as the 30-day window fills, so a tree split
        # on them learns the calendar of that history, which means nothing on another fleet.
        {
            "fleet_lost_gpus_30d": lambda days, row: np.floor(days / 10),
            "fleet_gpu_days_30d": lambda days, row: 36 * np.minimum(days, 30),
        },
    ],
    ids=["which model a GPU is", "the fleet's losses"],
)
def test_context_columns_are_never_a_training_input(columns: dict[str, Any]) -> None:
    data, _ = synthetic_dataset(gpus=36, days=80)
    days = data.times / 86400.0
    row = np.arange(len(data))
    extra = Dataset(
        (*data.features, *columns),
        np.column_stack([data.x, *(make(days, row) for make in columns.values())]),
        data.times,
        data.uuids,
        data.labels,
    )
    model, _ = fit(extra, seed=1, n_estimators=10)
    assert not set(columns) & set(model.features)
    assert model.features == data.features


def test_a_horizon_with_no_rows_after_the_split_calibrates_on_training_quietly() -> None:
    """In an 80-day history every 30-day label after the split is censored: the horizon is
    calibrated on its training rows, said so in the report, and XGBoost is never handed an
    empty matrix (its "Empty dataset" warning used to reach `train` and the benches)."""
    import warnings

    data, _ = synthetic_dataset(gpus=36, days=80)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model, report = fit(data, seed=1, n_estimators=10)
    assert [str(w.message) for w in caught if "Empty dataset" in str(w.message)] == []
    thirty = report["horizons"]["30d"]
    assert thirty["valid_rows"] == 0 and thirty["calibrated_on"] == "train"
    assert model.predict("30d", data.x).max() > 0
