"""The rule baseline: log-scaled evidence, missing signals neutral, class attribution."""

from __future__ import annotations

import numpy as np
import pytest

from gpu_health.scorer.api import gpu_json
from gpu_health.scorer.features import FEATURES, FeatureFrame
from gpu_health.scorer.model import HORIZONS, RULES, load_model
from gpu_health.scorer.rules import (
    BASE_ANNUAL_RATE,
    FAILURE_CLASSES,
    RULE_FEATURES,
    RUNBOOKS,
    RuleModel,
    Term,
    failure_class,
    rule_features,
)
from gpu_health.scorer.service import score_frame

RULE = RuleModel()


def _row(**values: float) -> np.ndarray:
    x = np.full((1, len(RULE_FEATURES)), np.nan)
    for name, v in values.items():
        x[0, RULE_FEATURES.index(name)] = v
    return x


def test_no_evidence_is_the_public_base_rate() -> None:
    p = RULE.predict("30d", _row())[0]
    assert p == pytest.approx(1 - np.exp(-BASE_ANNUAL_RATE * 30 / 365), rel=1e-9)
    # A zero is as neutral as a missing signal.
    assert RULE.predict("30d", _row(ecc_corrected_per_day_7d=0.0))[0] == pytest.approx(p)


def test_a_burst_of_thirty_counts_and_a_thousandfold_burst_does_not_drown_the_rest() -> None:
    base = RULE.predict("7d", _row())[0]
    burst_30 = RULE.predict("7d", _row(ecc_corrected_per_day_7d=30 / 7))[0]
    burst_3000 = RULE.predict("7d", _row(ecc_corrected_per_day_7d=3000 / 7))[0]
    assert burst_30 > 3 * base  # a few tens of errors already raise the risk
    assert burst_3000 > burst_30
    # log scale: 100 times the errors is far less than 100 times the hazard
    ratio = RULE.hazard(_row(ecc_corrected_per_day_7d=3000 / 7)) / RULE.hazard(
        _row(ecc_corrected_per_day_7d=30 / 7)
    )
    assert ratio[0] < 20


@pytest.mark.parametrize(
    ("features", "expected", "flags"),
    [
        ({"ecc_uncorrected_7d": 2, "xid_memory_events_7d": 1}, "memory", True),
        ({"pcie_replays_per_min_7d": 0.05, "pcie_replay_active_hours_7d": 6}, "bus", True),
        ({"xid_bus_events_7d": 1}, "bus", False),
        ({"nvlink_errors_per_min_7d": 0.01, "nvlink_error_active_hours_7d": 20}, "nvlink", True),
        (
            {"temp_gpu_node_excess_24h": 20, "thermal_violation_active_hours_7d": 30},
            "thermal_power",
            True,
        ),
        ({"power_violation_active_hours_7d": 30}, "thermal_power", False),
        ({"hardware_hold_hours_7d": 30}, "thermal_power", False),
        ({"node_lost_gpus_30d": 3, "resets_30d": 3}, "other", True),
    ],
)
def test_evidence_names_the_failure_class(
    features: dict[str, float], expected: str, flags: bool
) -> None:
    names, prob = failure_class(RULE_FEATURES, _row(**features))
    assert names == [expected] and prob[0] > 0.5
    x = _row(**features)
    p = RULE.predict("7d", x)
    assert RULE.flags("7d", x, p)[0] == flags
    # At the public rate (no fleet history) the flag is the fixed threshold, as it always was.
    assert (p[0] >= RULE.threshold("7d")) == flags
    assert expected in RUNBOOKS


def test_runbooks_exist_for_every_class(repo_root) -> None:
    for c in FAILURE_CLASSES:
        assert (repo_root / RUNBOOKS[c]).is_file(), c


def test_risk_factors_name_the_evidence() -> None:
    names, values = RULE.factors("7d", _row(ecc_uncorrected_7d=3, temp_gpu_node_excess_24h=-4))
    top = names[int(np.argmax(values[0]))]
    assert top == "uncorrectable_ecc_7d"
    assert values[0][names.index("temperature_excess_24h")] == 0  # cooler than its node: no risk


def test_rules_is_selectable_and_the_default(tmp_path) -> None:
    rule = load_model(RULES)
    assert rule.kind == "rules"
    assert load_model(None).kind == "rules"  # docs/model-card.md: no trained model beat it
    # The shipped isolation forest still scores anomalies next to the rule.
    x = np.zeros((3, len(rule.features)))
    x[2] = 1e6
    scores = rule.anomaly(x)
    assert np.isfinite(scores).all() and scores[2] > scores[0]
    assert set(RULE_FEATURES) <= set(rule.features)


def _fleet(rows: int = 16, **values: float) -> np.ndarray:
    x = np.zeros((rows, len(RULE_FEATURES)))
    for name, v in values.items():
        x[:, RULE_FEATURES.index(name)] = v
    return x


def test_what_every_gpu_of_the_fleet_shows_is_not_evidence() -> None:
    # Every GPU logs a few PCIe replays a week (a platform's background): no GPU stands out.
    fleet = _fleet(pcie_replays_per_min_7d=5 / (7 * 1440), pcie_replay_active_hours_7d=4)
    quiet = RULE.predict("7d", _fleet())
    assert RULE.predict("7d", fleet) == pytest.approx(quiet)
    # One GPU replaying far above its peers is evidence, and only for it.
    fleet[3, RULE_FEATURES.index("pcie_replays_per_min_7d")] = 500 / (7 * 1440)
    fleet[3, RULE_FEATURES.index("pcie_replay_active_hours_7d")] = 40
    p = RULE.predict("7d", fleet)
    assert p[3] > 3 * p[0] and p[0] == pytest.approx(quiet[0])
    # Too few GPUs for a baseline (one server of 4): the raw evidence counts.
    assert RULE.predict("7d", fleet[:4])[0] > quiet[0]


def test_peers_are_the_gpus_of_the_same_model() -> None:
    # 12 H100s without errors and 12 A100s with 20 corrected errors a day each: the A100
    # generation's background, not evidence against any one A100.
    fleet = np.vstack([_fleet(), _fleet()])[:24]
    key = RULE_FEATURES.index("gpu_model_key")
    fleet[:, key] = [1.0] * 12 + [2.0] * 12
    ecc = RULE_FEATURES.index("ecc_corrected_per_day_7d")
    fleet[12:, ecc] = 20.0
    quiet = RULE.predict("7d", _row())[0]
    p = RULE.predict("7d", fleet)
    assert p == pytest.approx(np.full(24, quiet))
    # Pooled over both models (no model label), half the fleet would stand out.
    pooled = fleet.copy()
    pooled[:, key] = np.nan
    assert RULE.predict("7d", pooled)[12:].min() > 1.5 * quiet
    # An A100 far above the other A100s still stands out, and only it.
    fleet[20, ecc] = 400.0
    p = RULE.predict("7d", fleet)
    assert p[20] > 2 * quiet and np.delete(p, 20) == pytest.approx(np.full(23, quiet))
    # A model with too few boards for its own median is compared with the whole fleet.
    small = fleet.copy()
    small[:4, key] = 3.0  # four boards of a third model
    small[:4, ecc] = 20.0
    assert RULE.predict("7d", small)[:4] == pytest.approx(np.full(4, quiet))


def _temperature_evidence(excess: np.ndarray) -> np.ndarray:
    """Each GPU's evidence from its 24-hour temperature above its node, one fleet snapshot."""
    fleet = _fleet(rows=len(excess))
    fleet[:, RULE_FEATURES.index("temp_gpu_node_excess_24h")] = excess
    names, values = RULE.factors("7d", fleet)
    out: np.ndarray = values[:, names.index("temperature_excess_24h")]
    return out


def test_a_degree_above_the_node_counts_more_in_a_fleet_whose_boards_agree() -> None:
    # 40 boards whose 24-hour temperatures sit within a degree of their node's median
    # (steady training, good airflow), and 40 that wander by five (jobs holding part of a
    # node); in each, one board runs 4 °C above its node.
    quiet = np.linspace(-1.0, 1.0, 40)
    noisy = np.linspace(-5.0, 5.0, 40)
    quiet[7] = noisy[7] = 4.0
    in_quiet, in_noisy = _temperature_evidence(quiet)[7], _temperature_evidence(noisy)[7]
    assert in_quiet > 3 * in_noisy > 0
    # Robust spread of the quiet fleet's lower half: 1.4826 x 0.5 °C = 0.74 °C.
    assert in_quiet == pytest.approx(0.2 * 4.0 / (1.4826 * 0.5), rel=0.05)
    # A fleet whose boards agree exactly: the spread is floored at half a degree, so one
    # degree is two spreads, not infinite evidence.
    flat = np.zeros(40)
    flat[7] = 1.0
    assert _temperature_evidence(flat)[7] == pytest.approx(0.2 * 1.0 / 0.5)
    assert np.delete(_temperature_evidence(flat), 7) == pytest.approx(np.zeros(39))


def test_a_hotter_board_never_gets_less_temperature_evidence() -> None:
    rng = np.random.default_rng(3)
    fleet = rng.normal(0.0, 1.5, 48)
    evidence = []
    for value in np.linspace(-6.0, 12.0, 1001):
        fleet[11] = value
        evidence.append(_temperature_evidence(fleet)[11])
    assert np.all(np.diff(evidence) >= 0) and evidence[-1] > 1.0
    # The boards above the median set no part of the yardstick: a hotter outlier leaves
    # every other board's evidence as it was.
    fleet[11] = np.median(fleet) + 0.01  # just above the middle of the fleet
    before = np.delete(_temperature_evidence(fleet), 11)
    fleet[11] = 30.0
    assert np.delete(_temperature_evidence(fleet), 11) == pytest.approx(before)


def _loaded_evidence(excess: np.ndarray, watts: np.ndarray | None) -> np.ndarray:
    """Temperature evidence with the GPUs' power above their node (None: not reported)."""
    fleet = _fleet(rows=len(excess))
    fleet[:, RULE_FEATURES.index("temp_gpu_node_excess_24h")] = excess
    fleet[:, RULE_FEATURES.index("power_node_excess_24h")] = np.nan if watts is None else watts
    names, values = RULE.factors("7d", fleet)
    out: np.ndarray = values[:, names.index("temperature_excess_24h")]
    return out


def test_what_a_gpus_own_load_explains_is_not_evidence() -> None:
    # Jobs hold half of each node: busy GPUs draw 250 W more than their node's median and run
    # 12.5 °C warmer (0.05 °C per watt), idle ones the reverse. Board 7 draws its node's
    # median power and runs 5 °C warmer: its cooling is failing.
    watts = np.tile([250.0, -250.0], 20)
    rng = np.random.default_rng(5)
    excess = 0.05 * watts + rng.normal(0.0, 0.3, 40)
    watts[7], excess[7] = 0.0, 5.0
    blind = _loaded_evidence(excess, None)
    assert blind[watts > 0].min() > blind[7] / 2  # read without power, the busy half is evidence
    seen = _loaded_evidence(excess, watts)
    assert seen[7] == seen.max() and seen[7] > 2.0
    assert seen[watts > 0].max() < 0.2 * seen[7]


def test_the_load_slope_is_the_fleets_own_and_bounded() -> None:
    watts = np.tile([250.0, -250.0], 20)
    # Liquid cooling: 0.01 °C per watt; what the load explains is removed, no more.
    cool = _loaded_evidence(0.01 * watts, watts)
    assert cool == pytest.approx(np.zeros(40), abs=1e-9)
    # A slope past any board's physics (1 °C per watt) takes off 0.2 °C per watt only.
    steep = _loaded_evidence(1.0 * watts, watts)
    assert steep[watts > 0].min() > 0 and steep[watts < 0].max() == 0.0
    # Busy GPUs running cooler than idle ones: a negative slope is not physics; nothing is
    # taken off, and nothing is added.
    assert _loaded_evidence(-0.05 * watts, watts) == pytest.approx(
        _loaded_evidence(-0.05 * watts, None)
    )


def test_a_server_too_small_to_fit_keeps_its_temperatures() -> None:
    # One 8-GPU server: once a GPU leaves itself out, 7 peers are too few to fit a slope on,
    # so nothing is taken off; a ninth GPU is enough.
    watts = np.tile([250.0, -250.0], 5)
    excess = 0.05 * watts
    excess[0] += 0.5
    server = _loaded_evidence(excess[:8], watts[:8])
    assert server == pytest.approx(_loaded_evidence(excess[:8], None))
    assert server[0] > 0
    nine = _loaded_evidence(excess[:9], watts[:9])
    assert not np.allclose(nine, _loaded_evidence(excess[:9], None))


def test_a_gpu_is_left_out_of_its_own_load_fit() -> None:
    # Every peer draws 1 W above its node, one board 11 W: fitted with itself in, the slope
    # would follow the board's own temperature and its evidence could fall as it heats.
    watts = np.full(24, 1.0)
    watts[3] = 11.0
    rng = np.random.default_rng(9)
    excess = rng.normal(0.0, 1.0, 24)
    evidence = []
    for value in np.linspace(-2.0, 4.0, 301):
        excess[3] = value
        evidence.append(_loaded_evidence(excess, watts)[3])
    assert np.all(np.diff(evidence) >= 0) and evidence[-1] > 0.5


def test_chronic_activity_counts_less_than_new_activity() -> None:
    week = 60 / 7  # 60 corrected errors in the last 7 days
    fresh = _row(ecc_corrected_per_day_7d=week, ecc_corrected_active_hours_7d=6)
    chronic = _row(
        ecc_corrected_per_day_7d=week,
        ecc_corrected_active_hours_7d=6,
        ecc_corrected_per_day_prior_23d=week,
    )
    rising = _row(
        ecc_corrected_per_day_7d=week,
        ecc_corrected_active_hours_7d=6,
        ecc_corrected_per_day_prior_23d=week / 20,
    )
    base = RULE.hazard(_row())[0]
    h_fresh, h_chronic, h_rising = (RULE.hazard(r)[0] for r in (fresh, chronic, rising))
    assert h_chronic == pytest.approx(base)  # the same rate as always: no new evidence
    assert h_fresh > h_rising > h_chronic


def test_the_base_rate_is_the_fleets_own() -> None:
    # 200 GPUs reporting for 30 days, 40 of them lost: about 2.4 failures per GPU-year.
    lost = _row(fleet_lost_gpus_30d=40, fleet_gpu_days_30d=200 * 30)
    rate = RULE.hazard(lost)[0] * 365 * 86400
    assert 1.8 < rate < 2.6
    # The same fleet without losses is told less than the public rate, never zero.
    calm = RULE.hazard(_row(fleet_lost_gpus_30d=0, fleet_gpu_days_30d=200 * 30))[0]
    assert 0 < calm * 365 * 86400 < BASE_ANNUAL_RATE
    # Evidence multiplies the fleet's rate, so the ranking within one fleet is unchanged.
    both = _row(fleet_lost_gpus_30d=40, fleet_gpu_days_30d=6000, ecc_uncorrected_7d=2)
    one = _row(ecc_uncorrected_7d=2)
    assert RULE.hazard(both)[0] / RULE.hazard(lost)[0] == pytest.approx(
        RULE.hazard(one)[0] / RULE.hazard(_row())[0]
    )


def test_a_node_that_lost_gpus_adds_hazard_that_fades_in_a_failing_fleet() -> None:
    quiet = RULE.hazard(_row(node_lost_gpus_30d=1))[0] / RULE.hazard(_row())[0]
    busy_fleet = {"fleet_lost_gpus_30d": 40, "fleet_gpu_days_30d": 6000}
    busy = (
        RULE.hazard(_row(node_lost_gpus_30d=1, **busy_fleet))[0]
        / RULE.hazard(_row(**busy_fleet))[0]
    )
    assert quiet > 3 and 1 < busy < 1.3
    names, values = RULE.factors("7d", _row(node_lost_gpus_30d=1))
    assert names[int(np.argmax(values[0]))] == "node_lost_gpus_30d"


#: A fleet failing far above the public rate: 46 GPUs lost in 30 days over 200 GPUs' 6,000
#: GPU-days, about 2.5 failures per GPU-year (the public rate is 0.11).
BUSY_FLEET = {"fleet_lost_gpus_30d": 46.0, "fleet_gpu_days_30d": 6000.0}


def _busy_fleet(names: tuple[str, ...], rows: int = 24) -> np.ndarray:
    """A snapshot of the busy fleet: every GPU quiet except GPU 5 (a corrected-ECC storm
    its peers do not show, over many hours, and an XID 79) and GPU 9 (its node lost three
    GPUs this month)."""
    x = np.zeros((rows, len(names)))
    for name, v in BUSY_FLEET.items():
        x[:, names.index(name)] = v
    x[:, names.index("gpu_model_key")] = 1.0
    x[5, names.index("ecc_corrected_per_day_7d")] = 200.0
    x[5, names.index("ecc_corrected_active_hours_7d")] = 40.0
    x[5, names.index("xid_bus_events_7d")] = 1.0
    x[9, names.index("node_lost_gpus_30d")] = 3.0
    return x


def test_in_a_fleet_failing_above_the_public_rate_only_a_gpu_that_stands_out_is_flagged() -> None:
    x = _busy_fleet(RULE_FEATURES)
    rate = RULE.hazard(x[:1])[0] * 365 * 86400
    assert 2.2 < rate < 2.8  # the rule knows the fleet fails ~20 times the public rate
    for h in HORIZONS:
        p = RULE.predict(h, x)
        # The fixed threshold would flag every GPU of this fleet ...
        assert (p >= RULE.threshold(h)).all()
        # ... the flag names only the one with strong evidence of its own.
        flagged = RULE.flags(h, x, p)
        assert np.flatnonzero(flagged).tolist() == [5], h
    # The node's recurrence is small next to this fleet's own rate: not enough on its own here,
    # while at the public rate three lost GPUs on the node are (see below).
    assert not RULE.flags("7d", x[9:10], RULE.predict("7d", x[9:10]))[0]


def test_the_flag_needs_the_multiplier_over_the_fleet_and_never_less_than_the_public_rate() -> None:
    # Evidence that multiplies a quiet GPU's hazard by just over or just under 8.
    over = {"ecc_uncorrected_7d": 2.0, "xid_memory_events_7d": 1.0}  # memory exp(3.6) * 0.3
    under = {"xid_bus_events_7d": 1.0}  # bus exp(2.1) * 0.15: about x2
    for fleet in ({}, BUSY_FLEET):
        quiet = _row(**fleet)
        for evidence, expected in ((over, True), (under, False), ({}, False)):
            x = _row(**fleet, **evidence)
            assert RULE.hazard(x)[0] / RULE.hazard(quiet)[0] > 8 or not expected
            assert RULE.flags("30d", x, RULE.predict("30d", x))[0] == expected, (fleet, evidence)
    # A fleet that rarely fails (no loss in 6,000 GPU-days): its rate is below the public one,
    # and the flag stays at the fixed threshold rather than dropping with it.
    calm = {"fleet_lost_gpus_30d": 0.0, "fleet_gpu_days_30d": 6000.0}
    for evidence in (over, under, {"ecc_uncorrected_7d": 3.0, "xid_memory_events_7d": 2.0}):
        x = _row(**calm, **evidence)
        p = RULE.predict("7d", x)
        assert RULE.flags("7d", x, p)[0] == (p[0] >= RULE.threshold("7d"))
    # At the public rate the node's recurrence flags on its own: three GPUs lost on the node.
    lost = _row(node_lost_gpus_30d=3.0)
    assert RULE.flags("7d", lost, RULE.predict("7d", lost))[0]
    one = _row(node_lost_gpus_30d=1.0)
    assert not RULE.flags("7d", one, RULE.predict("7d", one))[0]


def test_the_service_flags_only_the_gpu_that_stands_out_in_a_busy_fleet() -> None:
    names = tuple(f.name for f in FEATURES)
    x = _busy_fleet(names)
    gpus = [(f"node-{i // 8}", str(i % 8), f"GPU-{i}", "NVIDIA H100 80GB HBM3") for i in range(24)]
    frame = FeatureFrame(None, "dcgm", gpus, names, x)
    scores = score_frame(RULE, frame)
    for h in HORIZONS:
        published = [gpu_json(s) for s in scores]
        flagged = [g["uuid"] for g in published if g["flagged"][h]]
        assert flagged == ["GPU-5"], h
        # Every GPU's published probability is above the fixed threshold of this horizon.
        assert min(g["failure_probability"][h] for g in published) >= RULE.threshold(h)


def _fleet_snapshot(rows: int, lost: float, gpu_days: float) -> np.ndarray:
    """A snapshot of ``rows`` quiet GPUs of one model whose fleet lost ``lost`` GPUs over
    ``gpu_days`` GPU-days in the last 30 days."""
    x = np.zeros((rows, len(RULE_FEATURES)))
    x[:, RULE_FEATURES.index("fleet_lost_gpus_30d")] = lost
    x[:, RULE_FEATURES.index("fleet_gpu_days_30d")] = gpu_days
    x[:, RULE_FEATURES.index("gpu_model_key")] = 1.0
    return x


def _expected_losses_30d(x: np.ndarray) -> float:
    return float(RULE.predict("30d", x).sum())


def test_evidence_common_in_a_fleet_does_not_raise_the_failures_it_expects() -> None:
    # 200 GPUs that lost 40 in 30 days. In one copy 80 of them (fewer than half: the peer
    # median stays 0) log corrected errors every hour of the week and never fail more.
    quiet = _fleet_snapshot(200, 40.0, 6000.0)
    noisy = quiet.copy()
    noisy[:80, RULE_FEATURES.index("ecc_corrected_per_day_7d")] = 50.0
    noisy[:80, RULE_FEATURES.index("ecc_corrected_active_hours_7d")] = 150.0
    # Each noisy GPU's evidence multiplies its hazard many times over ...
    h = RULE.hazard(noisy)
    assert h[0] > 10 * h[199]
    # ... yet the fleet expects about the losses it had (40 with the prior), not several
    # times more: the evidence says which GPUs, the fleet's losses say how many.
    assert _expected_losses_30d(quiet) == pytest.approx(38.0, rel=0.1)
    assert _expected_losses_30d(noisy) == pytest.approx(38.0, rel=0.1)


def test_one_dead_board_does_not_lower_every_other_gpus_risk() -> None:
    # A fleet that lost 10 GPUs in 30 days, and one board at the evidence cap in every class:
    # it explains at most one loss, not all ten.
    x = _fleet_snapshot(200, 10.0, 6000.0)
    before = RULE.hazard(x)[1]
    for name in ("ecc_uncorrected_7d", "xid_bus_events_7d", "xid_nvlink_events_7d"):
        x[0, RULE_FEATURES.index(name)] = 1e6
    after = RULE.hazard(x)
    assert after[0] > 1000 * after[1]
    assert 0.85 * before < after[1] < before


def test_a_shard_sees_the_same_baseline_as_its_whole_fleet() -> None:
    # A scorer shard scores a sample of the fleet against fleet-wide loss counts: 48 of the
    # 200 GPUs, with the same share of noisy boards, get the hazards of the whole snapshot.
    fleet = _fleet_snapshot(200, 40.0, 6000.0)
    fleet[::4, RULE_FEATURES.index("ecc_corrected_per_day_7d")] = 50.0
    whole = RULE.hazard(fleet)
    shard = RULE.hazard(fleet[:48])
    assert shard == pytest.approx(whole[:48], rel=0.02)


def test_rows_built_by_the_rule_features_are_read_by_the_rule() -> None:
    """Callers build rows by positions in RULE_FEATURES; the model reads its own feature list,
    which lists each name once: the two must agree, also when two terms read one feature."""
    assert RULE.features[: len(RULE_FEATURES)] == RULE_FEATURES
    load = "power_node_excess_24h"
    shared = (
        Term("a", "thermal_power", "temp_gpu_node_excess_24h", 0.2, "spread", load=load),
        Term("b", "thermal_power", "temp_memory_excess_24h", 0.2, "spread", load=load),
    )
    names = rule_features(shared)
    assert names.count(load) == 1 and len(names) == len(set(names))


def test_the_rule_loads_without_xgboost() -> None:
    """The rule reads only the shipped isolation forest: loading it (as ``score``, ``serve``
    and ``evaluate --model rules`` do) never imports XGBoost, whose import took 1.2 s of CPU
    at every start; the forest still scores."""
    import subprocess
    import sys

    probe = (
        "import sys, numpy as np\n"
        "from gpu_health.scorer.model import load_model\n"
        "for spec in ('rules',):\n"
        "    m = load_model(spec)\n"
        "    x = np.zeros((2, len(m.features)))\n"
        "    assert np.all(np.isfinite(m.anomaly(x)))\n"
        "print('xgboost' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "False"
