"""bench/rule_variants.py: the three rule variants it tries do what its docstring says.

The bench's numbers are in docs/model-card.md ("A baseline per GPU model, thermal acceleration,
spreads at twice the weight"); these tests make sure the arms it compares are the changes
described, on snapshots small enough to reason about by hand.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import rule_variants
import still_active_terms

from gpu_health.scorer import rules
from gpu_health.scorer.feature_table import MODEL_KEY
from gpu_health.scorer.training import Dataset, Failure

DAY = 86400.0


def _snapshot(columns: dict[str, np.ndarray], n: int) -> tuple[tuple[str, ...], np.ndarray]:
    features = (*rules.RULE_FEATURES, rule_variants.MODEL_LOST, rule_variants.MODEL_DAYS)
    features = tuple(dict.fromkeys((*features, rule_variants.TEMP_VS_MODEL)))
    x = np.zeros((n, len(features)))
    for name, values in columns.items():
        x[:, features.index(name)] = values
    return features, x


def test_the_losses_by_model_are_split_from_the_fleet_totals() -> None:
    """20 GPUs of two models; 4 of model 1 are gone on the second day. The fleet's own features
    say 4 lost over 38 GPU-days: model 1 gets all 4 losses, the GPU-days go by rows."""
    uuids = [f"GPU-{i}" for i in range(20)] + [f"GPU-{i}" for i in range(4, 20)]
    times = np.array([0.0] * 20 + [DAY] * 16)
    key = np.array([1.0 if u in {f"GPU-{i}" for i in range(10)} else 2.0 for u in uuids])
    lost = np.where(times == DAY, 4.0, 0.0)
    days = np.where(times == DAY, 38.0, 20.0)
    features = (MODEL_KEY, rules.FLEET_LOST, rules.FLEET_GPU_DAYS)
    data = Dataset(features, np.column_stack([key, lost, days]), times, uuids, {})
    out = rule_variants.with_model_losses(data)
    got_lost = out.matrix([rule_variants.MODEL_LOST])[:, 0]
    got_days = out.matrix([rule_variants.MODEL_DAYS])[:, 0]
    later = times == DAY
    assert set(got_lost[later & (key == 1)]) == {4.0}
    assert set(got_lost[later & (key == 2)]) == {0.0}
    # model 1: 10 rows the day before and 6 now; model 2: 10 and 10
    assert got_days[later & (key == 1)][0] == pytest.approx(38.0 * 16 / 36)
    assert got_days[later & (key == 2)][0] == pytest.approx(38.0 * 20 / 36)
    assert set(got_lost[~later]) == {0.0}


def test_the_model_that_lost_more_gets_the_higher_baseline() -> None:
    """Two models of 40 GPUs without evidence; the fleet lost 6 GPUs of model 1 and none of
    model 2 in 30 days. The shipped rule gives every GPU the same hazard; per model, model 1's
    is higher, model 2's lower, and the expected losses of each model move towards its own."""
    n = 80
    key = np.repeat([1.0, 2.0], 40)
    columns = {
        MODEL_KEY: key,
        rules.FLEET_LOST: np.full(n, 6.0),
        rules.FLEET_GPU_DAYS: np.full(n, 80 * 30.0),
        rule_variants.MODEL_LOST: np.where(key == 1, 6.0, 0.0),
        rule_variants.MODEL_DAYS: np.full(n, 40 * 30.0),
    }
    features, x = _snapshot(columns, n)
    shipped = rules.RuleModel().hazard(x[:, [features.index(f) for f in rules.RULE_FEATURES]])
    with rule_variants.per_model(prior_failures=3.0):
        model = rules.RuleModel()
        per_model = model.hazard(x[:, [features.index(f) for f in model.features]])
    assert np.ptp(shipped) == pytest.approx(0.0, abs=1e-15)
    assert per_model[key == 1].min() > shipped[0] > per_model[key == 2].max()
    # the prior (3 failures at the fleet's rate) keeps model 2 off zero
    assert per_model[key == 2].max() > 0.1 * shipped[0]


def test_a_model_with_few_gpus_keeps_the_fleet_baseline() -> None:
    n = 44
    key = np.array([1.0] * 40 + [2.0] * 4)
    columns = {
        MODEL_KEY: key,
        rules.FLEET_LOST: np.full(n, 3.0),
        rules.FLEET_GPU_DAYS: np.full(n, n * 30.0),
        rule_variants.MODEL_LOST: np.where(key == 2, 3.0, 0.0),
        rule_variants.MODEL_DAYS: np.where(key == 2, 4 * 30.0, 40 * 30.0),
    }
    features, x = _snapshot(columns, n)
    shipped = rules.RuleModel().hazard(x[:, [features.index(f) for f in rules.RULE_FEATURES]])
    with rule_variants.per_model(prior_failures=3.0):
        model = rules.RuleModel()
        per_model = model.hazard(x[:, [features.index(f) for f in model.features]])
    assert per_model[key == 2] == pytest.approx(shipped[key == 2])
    assert per_model[key == 1].max() < shipped[0]


def test_ten_degrees_above_the_model_doubles_the_hazard() -> None:
    """Within one snapshot a GPU 10 degC above its model's median has twice the hazard of one
    at it, and one below it no less than one at it."""
    n = 20
    excess = np.zeros(n)
    excess[0], excess[1] = 10.0, -5.0
    columns = {
        MODEL_KEY: np.ones(n),
        rules.FLEET_LOST: np.full(n, 2.0),
        rules.FLEET_GPU_DAYS: np.full(n, n * 30.0),
        rule_variants.TEMP_VS_MODEL: excess,
    }
    features, x = _snapshot(columns, n)
    with rule_variants.thermal_acceleration():
        model = rules.RuleModel()
        hazard = model.hazard(x[:, [features.index(f) for f in model.features]])
    assert hazard[0] / hazard[2] == pytest.approx(2.0)
    assert hazard[1] == pytest.approx(hazard[2])


def test_the_spread_arm_doubles_every_spread_term_and_nothing_else() -> None:
    """A board 6 degC above its node among 19 that agree within a degree: its temperature
    evidence doubles in the spread arm; a count term (corrected ECC) stays as it was."""
    n = 20
    excess = np.linspace(-0.5, 0.5, n)
    excess[0] = 6.0
    ecc = np.zeros(n)
    ecc[1] = 50.0
    columns = {
        MODEL_KEY: np.ones(n),
        "temp_gpu_node_excess_24h": excess,
        "ecc_corrected_per_day_7d": ecc,
    }
    features, x = _snapshot(columns, n)
    names = [t.name for t in rules.TERMS]
    shipped = rules.term_values(features, x)
    with rule_variants.spread_weights():
        doubled = rules.term_values(features, x)
    heat = names.index("temperature_excess_24h")
    errors = names.index("corrected_ecc_7d")
    assert shipped[0, heat] > 1.0
    assert doubled[:, heat] == pytest.approx(2 * shipped[:, heat])
    assert doubled[:, errors] == pytest.approx(shipped[:, errors])
    assert shipped[1, errors] > 0


def test_a_directory_without_history_is_one_line(tmp_path: Path) -> None:
    """A fleet directory with no Prometheus blocks: exit 2 and one line naming it, no
    traceback."""
    bench = Path(__file__).resolve().parents[2] / "bench" / "rule_variants.py"
    done = subprocess.run(
        [sys.executable, str(bench), f"empty={tmp_path}"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert f"{tmp_path}: no Prometheus blocks found" in done.stderr


def test_the_pages_are_counted_before_a_failure_and_on_healthy_rows() -> None:
    """Forty GPUs at one time; two log a storm of bus XIDs and page (7-day probability over
    0.3), one of them fails three days later: one page before a failure, one on a healthy row."""
    n, t = 40, 1_800_000_000.0
    features = rules.RULE_FEATURES
    x = np.zeros((n, len(features)))
    x[:, features.index(MODEL_KEY)] = 1.0
    x[:2, features.index("xid_bus_events_7d")] = 1e6
    y = np.zeros(n)
    y[0] = 1.0
    data = Dataset(
        features, x, np.full(n, t), [f"GPU-{i}" for i in range(n)], {"7d": y, "30d": y.copy()}
    )
    failures = [Failure("GPU-0", t + 3 * DAY, "pcie", True, t - DAY)]
    out = still_active_terms.measure(data, failures)
    assert (out["pages_true_7d"], out["pages_false_7d"]) == (1.0, 1.0)
    assert out["healthy_over_0.3_7d"] == pytest.approx(1 / 39)
