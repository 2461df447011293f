"""Risk-factor labels: every feature reads as words, known or not."""

from __future__ import annotations

from gpu_health.scorer.factor_labels import FACTOR_LABELS, MAX_NAME, factor_label, words_from_name
from gpu_health.scorer.features import FEATURES


def test_every_feature_has_distinct_words() -> None:
    labels = {f.name: factor_label(f.name) for f in FEATURES}
    for name, label in labels.items():
        assert label and "_" not in label, (name, label)
    assert len(set(labels.values())) == len(labels), "two features read the same"


def test_the_table_wins_over_the_name() -> None:
    assert factor_label("ecc_corrected_per_day_24h") == FACTOR_LABELS["ecc_corrected_per_day_24h"]
    assert "memory errors" in factor_label("ecc_corrected_per_day_24h")


def test_the_rules_temperature_factors_say_what_they_compare_with() -> None:
    from gpu_health.scorer.rules import TERMS

    for term in TERMS:
        if term.feature.startswith("temp_gpu_node_"):
            assert "its node" in factor_label(term.name), term.name


def test_unknown_features_get_words_from_their_name() -> None:
    assert words_from_name("fan_speed_vs_model_30d") == (
        "fan speed compared with the model's peers, last 30 days"
    )
    assert words_from_name("nvlink_crc_per_min_1h") == "NVLink crc per minute, last hour"
    assert words_from_name("power_avg_24h_watts") == "power average (W), last 24 h"
    assert factor_label("temp_hbm_peak") == "temperature HBM peak"
    assert factor_label("") == "unnamed feature"


def test_a_huge_name_is_cut() -> None:
    assert len(factor_label("x" * 100_000)) <= MAX_NAME
