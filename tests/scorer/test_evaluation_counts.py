"""evaluate counts distinct failures per subset, as issue #16's done-when criteria do."""

from __future__ import annotations

import numpy as np

from gpu_health.scorer.evaluation import evaluate, failures_counted, subsets, upcoming_failures
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
