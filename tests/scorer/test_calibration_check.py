"""The per-decile calibration check: held against fleets whose failures are drawn, by a
separate day-by-day loop, from hazards the test knows."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from gpu_health.scorer.calibration_check import (
    against_chance,
    against_chance_summary,
    decile_index,
    within_tolerance,
)

DAY = 86400.0
HORIZON = 7 * DAY
FloatArray = npt.NDArray[np.float64]


def _fleet(
    seed: int, gpus: int = 300, days: int = 40
) -> tuple[FloatArray, FloatArray, npt.NDArray[np.int64], FloatArray, npt.NDArray[np.bool_]]:
    """``(p, times, gpu_index, y, labelled)``: one row a day per GPU until it fails. Each GPU
    has its own hazard (log-uniform over two orders, from 0.2 to 20 failures per GPU-year), a
    quarter of them three times higher from day 20 on. A failure falls on a day with the
    probability the day's hazard gives, at a uniform time within it. A row is labelled when its
    whole horizon lies inside the history, positive when the failure falls within it."""
    rng = np.random.default_rng(seed)
    per_year = np.exp(rng.uniform(np.log(0.2), np.log(20.0), gpus))
    worse = rng.random(gpus) < 0.25
    p, times, index, y = [], [], [], []
    end = days * DAY
    for g in range(gpus):
        rows: list[tuple[float, float]] = []
        failed_at = np.inf
        for day in range(days):
            rate = per_year[g] * (3.0 if worse[g] and day >= 20 else 1.0) / (365 * DAY)
            rows.append((day * DAY, rate))
            if rng.random() < -np.expm1(-rate * DAY):
                failed_at = day * DAY + rng.random() * DAY
                break
        for t, rate in rows:
            p.append(-np.expm1(-rate * HORIZON))
            times.append(t)
            index.append(g)
            y.append(float(t < failed_at <= t + HORIZON))
    times_a = np.array(times)
    return (
        np.array(p),
        times_a,
        np.array(index, dtype=np.int64),
        np.array(y),
        times_a + HORIZON <= end,
    )


def test_true_probabilities_are_within_chance_and_wrong_ones_are_not() -> None:
    # With the true probabilities about 5 % of deciles fall outside their 95 % range by chance:
    # over eight fleets (80 deciles), at most 8.
    outside = []
    for seed in range(1, 9):
        p, times, gpus, y, labelled = _fleet(seed=seed)
        truth = against_chance(p, labelled, y, times, gpus, HORIZON)
        outside += truth["deciles_outside_calibrated_range"]
    assert len(outside) <= 8, outside
    # Three times too high a hazard is over-prediction in most deciles; a third of it is
    # under-prediction at least where the failures are many enough to tell (the top deciles).
    high = np.clip(-np.expm1(3 * np.log1p(-p)), 0, 1)
    over = against_chance(high, labelled, y, times, gpus, HORIZON)
    assert sum(d["side"] == "over" for d in over["deciles_outside_calibrated_range"]) >= 6
    low = -np.expm1(np.log1p(-p) / 3)
    under = against_chance(low, labelled, y, times, gpus, HORIZON)
    sides = {d["decile"]: d["side"] for d in under["deciles_outside_calibrated_range"]}
    assert all(sides.get(k) == "under" for k in (8, 9, 10)), sides
    assert "over" not in sides.values()


def test_what_a_calibrated_model_gets_matches_fleets_drawn_day_by_day() -> None:
    """The check's own draws (a constant hazard between rows, inverted from each row's
    probability) give the same count of deciles within ±30 % as fleets drawn from the true
    hazards by the test's separate loop: 60 such fleets, each scored with its true p."""
    p, times, gpus, y, labelled = _fleet(seed=2)
    check = against_chance(p, labelled, y, times, gpus, HORIZON)
    counts = []
    for seed in range(100, 160):
        p2, _, _, y2, ok2 = _fleet(seed=seed)
        deciles = decile_index(p2[ok2])
        expected = np.bincount(deciles, weights=p2[ok2], minlength=10)
        observed = np.bincount(deciles, weights=y2[ok2], minlength=10)
        counts.append(within_tolerance(expected, observed).sum())
    assert abs(np.median(counts) - check["calibrated_within_tolerance_median"]) <= 1.0, (
        counts,
        check,
    )
    # A fleet of this size rarely shows every decile within ±30 % even with true probabilities.
    assert check["calibrated_all_within_share"] < 0.2
    assert np.mean(np.array(counts) == 10) < 0.2


def test_the_summary_names_the_deciles_off_by_more_than_chance() -> None:
    p, times, gpus, y, labelled = _fleet(seed=3)
    high = np.clip(-np.expm1(3 * np.log1p(-p)), 0, 1)
    check = against_chance(high, labelled, y, times, gpus, HORIZON, draws=50)
    line = against_chance_summary(check)
    assert f"of {check['draws']} histories" in line
    for d in check["deciles_outside_calibrated_range"]:
        assert f"{d['decile']} over" in line
    assert line.startswith(f"{check['deciles_within_tolerance']} deciles within ±30%")
