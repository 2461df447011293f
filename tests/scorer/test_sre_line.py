"""The one-line SRE rule that ``evaluate`` reports next to every model."""

from __future__ import annotations

import numpy as np

from gpu_health.scorer.sre_line import FEATURES, sre_line_score


def test_the_line_is_the_issue_expression_in_raw_7_day_units() -> None:
    # 3 corrected errors a day, 1 uncorrected, 3 XID changes, 0.01 replays/min.
    row = {
        "ecc_corrected_per_day_7d": 3.0,
        "ecc_uncorrected_7d": 1.0,
        "xid_events_7d": 3.0,
        "pcie_replays_per_min_7d": 0.01,
    }
    names = tuple(row)
    x = np.array([[row[n] for n in names]])
    expected = 3.0 * 7 + 100 * 1 + 10 * 3 + 0.01 * 7 * 1440 / 100
    assert sre_line_score(names, x)[0] == np.float64(expected)


def test_missing_signals_count_as_zero_and_more_errors_rank_higher() -> None:
    x = np.full((3, len(FEATURES)), np.nan)
    j = FEATURES.index("ecc_corrected_per_day_7d")
    x[1, j], x[2, j] = 1.0, 5.0
    score = sre_line_score(FEATURES, x)
    assert score[0] == 0.0
    assert score[0] < score[1] < score[2]
    # A fleet that exports none of the line's signals gets a tie, not NaN.
    assert np.all(sre_line_score(("temp_gpu_excess_24h",), np.ones((4, 1))) == 0.0)
