"""evaluate counts distinct failures per subset, as issue #16's done-when criteria do."""

from __future__ import annotations

import numpy as np
import pytest

from gpu_health.scorer.calibration_check import against_chance_summary
from gpu_health.scorer.evaluation import (
    calibration_summary,
    evaluate,
    failures_counted,
    format_report,
    subsets,
    upcoming_failures,
)
from gpu_health.scorer.rules import RuleModel
from gpu_health.scorer.training import Dataset, Failure, label_rows

DAY = 86400.0


def _fleet() -> tuple[Dataset, list[Failure]]:
    # Ten GPUs with a row a day for 20 days; a fails on day 6 (HBM, precursor from day 3), b on
    # day 9 (PCIe, no precursor), c on day 15 (HBM, no precursor).
    failures = [
        Failure("a", 6 * DAY, "hbm", True, 3 * DAY),
        Failure("b", 9 * DAY, "pcie", False),
        Failure("c", 15 * DAY, "hbm", False),
    ]
    ends = {f.uuid: f.time for f in failures}
    uuids, times = [], []
    for day in range(20):
        for g in "abcdefghij":
            if day * DAY < ends.get(g, 1e12):
                uuids.append(g)
                times.append(day * DAY)
    t = np.asarray(times)
    data = Dataset(("x",), np.zeros((len(t), 1)), t, uuids)
    data.labels = label_rows(uuids, t, failures, 20 * DAY)
    return data, failures


def test_failures_are_counted_once_per_subset_however_many_rows_precede_them() -> None:
    data, failures = _fleet()
    y = data.labels["7d"]
    ok = ~np.isnan(y)
    ahead = upcoming_failures(data, failures, "7d")
    masks = {"all": np.ones(len(data), dtype=bool), **subsets(data, failures, "7d", ahead)}
    count = {k: failures_counted(k, ok & m, y, data.times, ahead) for k, m in masks.items()}
    assert count == {
        "all": 3,
        "precursor_failures": 1,
        "precursor_visible": 1,
        "mode:hbm": 2,
        "mode:pcie": 1,
    }
    assert int(y[ok].sum()) > 3 * 5  # each failure is preceded by up to 7 positive rows
    report = evaluate(RuleModel(), data, failures, bootstrap=10)
    seven = report["horizons"]["7d"]
    assert seven["all"]["failures"] == 3 and seven["mode:hbm"]["failures"] == 2
    assert seven["all"]["positives"] == int(y[ok].sum())


def test_the_rule_flags_what_stands_out_in_a_fleet_failing_above_the_public_rate() -> None:
    # Forty GPUs with a row a day for 70 days from a fleet losing about 2.5 GPUs per GPU-year:
    # every row carries the fleet's 30-day losses over its GPU-days (46 in 6,000). Four GPUs
    # fail, the first two after a precursor (uncorrectable ECC errors) in their last 6 days.
    names = ("fleet_lost_gpus_30d", "fleet_gpu_days_30d", "ecc_uncorrected_7d", "gpu_model_key")
    failures = [
        Failure("g00", 20 * DAY, "hbm", True, 14 * DAY),
        Failure("g01", 25 * DAY, "hbm", True, 19 * DAY),
        Failure("g02", 22 * DAY, "pcie", False),
        Failure("g03", 30 * DAY, "other", False),
    ]
    ends = {f.uuid: f.time for f in failures}
    gpus = [f"g{k:02d}" for k in range(40)]
    uuids, times, rows = [], [], []
    for day in range(70):
        for g in gpus:
            t = day * DAY
            if t >= ends.get(g, 1e12):
                continue
            precursor = next(
                (f for f in failures if f.uuid == g and f.precursor_start is not None), None
            )
            ecc = 10.0 if precursor and precursor.precursor_start <= t else 0.0
            uuids.append(g)
            times.append(t)
            rows.append([46.0, 6000.0, ecc, 1.0])
    t = np.asarray(times)
    data = Dataset(names, np.asarray(rows), t, uuids)
    data.labels = label_rows(uuids, t, failures, 70 * DAY)
    report = evaluate(RuleModel(), data, failures, bootstrap=0)
    for h in ("7d", "30d"):
        e = report["horizons"][h]
        # Against the fixed threshold every row of this fleet would be flagged ...
        assert e["fpr_at_absolute_threshold"] > 0.99 and e["recall_at_absolute_threshold"] == 1.0
        # ... the rule's own flag is what stands out: no healthy row, the precursor rows.
        assert e["fpr_at_threshold"] == 0.0, h
        assert 0 < e["recall_at_threshold"] < 1, h
    lead = report["lead_time"]["all"]
    # Only the two failures with a precursor were flagged, each when the precursor began.
    assert (lead["failures"], lead["flagged"]) == (4, 2)
    assert lead["median_lead_days"] == 6.0
    assert "stands out from its fleet" in format_report(report)


def test_the_text_report_shows_calibration_per_decile() -> None:
    """Issue #16 asks for every decile within ±30 %: the text report says how many are."""
    deciles = [
        {"expected": 10.0, "observed": 10.0},  # within
        {"expected": 5.0, "observed": 10.0},  # half: not within
        {"expected": 1.0, "observed": 0.0},  # nothing observed: not counted as within
        {"expected": 12.0, "observed": 10.0},  # +20 %: within
    ]
    line = calibration_summary(deciles)
    assert "10/10 5/10 1/0 12/10" in line and "total 28/30" in line
    assert "2 of 4 deciles within ±30%" in line
    data, failures = _fleet()
    report = evaluate(RuleModel(), data, failures, bootstrap=10)
    text = format_report(report)
    for horizon in ("7d",):
        cal = report["horizons"][horizon]["calibration"]
        assert f"{horizon} model calibration: {calibration_summary(cal)}" in text
        # ... and holds that count against what a calibrated model would show on these rows
        check = report["horizons"][horizon]["calibration_against_chance"]
        assert f"{horizon} model calibration against chance: {against_chance_summary(check)}" in (
            text
        )
        within = check["deciles_within_tolerance"]
        assert f"{within} of {len(cal)} deciles within" in calibration_summary(cal)


def test_prediction_times_are_bounded_and_a_reversed_range_is_named() -> None:
    """``evaluate --step 1s --warmup 11d`` announced 86,401 time steps (each a feature read of
    the whole fleet) and ran on; ``--start`` after ``--end`` said "history too short: -31.0
    days"."""
    from gpu_health.errors import UserError
    from gpu_health.scorer.training import MAX_PREDICTION_TIMES, prediction_times

    end = 1_796_083_200.0
    with pytest.raises(UserError, match=r"^--step 1s gives 86,401 prediction times over 1\.0 da"):
        prediction_times(end - 12 * 86400, end, 1.0, 11 * 86400)
    with pytest.raises(UserError, match=r"end 2026-11-01T00:00:00Z is not after its start 2026-"):
        prediction_times(end, end - 30 * 86400, 86400.0, 7 * 86400)
    times = prediction_times(end - 365 * 86400, end, 3600.0, 7 * 86400)  # a year, hourly
    assert len(times) <= MAX_PREDICTION_TIMES and times[0] == end - 358 * 86400
