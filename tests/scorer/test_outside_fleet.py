"""``gpu-health-scorer evaluate`` on a fleet our own simulator did not write.

``bench/outside_fleet.py`` is the outside trial's independent dcgm-exporter-schema generator
(kept for evaluation only). A small fleet of it goes through the scorer's real interface: the
generator's CLI and promtool build the TSDB, ``evaluate --data-dir`` serves it with a private
Prometheus. Every expectation comes from what the generator wrote (its OpenMetrics text,
``failures.csv`` and ``truth.json``) and from the scorer's own feature table, never from numbers
typed here: which boards reported at each evaluation time, which of them fail within 7 days,
and which DCGM fields exist at all.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.scorer import outside_support as support
from tests.scorer.outside_support import HORIZON, Evaluation, GeneratedFleet, present_at

GENERATOR = Path(__file__).resolve().parents[2] / "bench" / "outside_fleet.py"
#: The fleet: 3 hosts (24 GPUs) over 20 days at 30-minute samples, with more failures than the
#: generator's default rate gives so the 7-day horizon has positives. A fixed end keeps the fleet
#: the same from run to run; seed 3 puts its one driver upgrade inside the evaluated period
#: (after the 7-day warm-up), so boards are evaluated under both driver labels.
FLEET_ARGS = ["--gpus", "24", "--days", "20", "--resolution", "1800", "--seed", "3"]
FLEET_ARGS += ["--failures", "12", "--end", "1780000000"]

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@dataclass
class OutsideFleet(GeneratedFleet):
    """What the generator wrote, with the ground truth it keeps in ``truth.json``."""

    truth: dict[str, Any]


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> OutsideFleet:
    out = tmp_path_factory.mktemp("outside")
    support.run_generator(GENERATOR, [*FLEET_ARGS, "--keep-text"], out)
    texts = sorted(out.glob("chunk_*.om"))
    assert texts, "the generator kept no OpenMetrics text"
    written = support.read_back(out, texts)
    truth = json.loads((out / "truth.json").read_text())
    return OutsideFleet(**vars(written), truth=truth)


@pytest.fixture(scope="module")
def evaluation(fleet: OutsideFleet) -> Evaluation:
    return support.evaluate(fleet.data_dir)


def evaluation_times(truth: dict[str, Any]) -> list[int]:
    return support.evaluation_times(truth["start_unix"], truth["end_unix"])


def test_fleet_has_what_the_scorer_must_survive(
    fleet: OutsideFleet, evaluation: Evaluation
) -> None:
    """Board resets, replacements, scrape gaps and a driver upgrade (which relabels a board's
    series) are in the fleet, and the evaluation still runs every time step to the end."""
    truth = fleet.truth
    assert truth["replacements"] > 0
    assert truth["gpu_resets"] + truth["host_reboots_resets"] > 0
    assert truth["scrape_gaps_total"] > 0
    assert truth["driver_upgrades"], "no driver upgrade: nothing relabels a board's series"
    drivers: dict[str, set[str]] = defaultdict(set)
    times = evaluation_times(truth)
    for t in times:
        for uuid, labels in present_at(fleet, t)[0].items():
            drivers[uuid].add(labels["DCGM_FI_DRIVER_VERSION"])
    relabelled = [u for u, versions in drivers.items() if len(versions) > 1]
    assert relabelled, "no board evaluated under two driver versions (before and after)"
    steps = len(times)
    assert f"evaluate: {steps} time steps" in evaluation.result.stderr
    assert f"evaluate: {steps}/{steps} time steps" in evaluation.result.stderr
    assert evaluation.report["schema"] == "dcgm"


def test_one_row_per_reporting_board_per_time(fleet: OutsideFleet, evaluation: Evaluation) -> None:
    """A row is one UUID at one time: a board relabelled by the driver upgrade is not two GPUs,
    and every board that reported at an evaluation time is a GPU of the report."""
    report, times = evaluation.report, evaluation_times(fleet.truth)
    assert report["rows"] <= fleet.truth["gpu_slots"] * len(times)
    assert report["gpus"] <= fleet.truth["boards_total"]
    rows, gpus = support.presence_bounds(fleet, times)
    assert rows[0] <= report["rows"] <= rows[1]
    assert gpus[0] <= report["gpus"] <= gpus[1]


def test_seven_day_horizon_has_both_classes(fleet: OutsideFleet, evaluation: Evaluation) -> None:
    """The 7-day labels match the generator's failures: rows whose window ends inside the
    history, positive when that board fails within 7 days of the row."""
    labelled = [t for t in evaluation_times(fleet.truth) if t + HORIZON <= fleet.truth["end_unix"]]
    rows, positives = support.horizon_counts(fleet, labelled)
    assert positives[0] > 0, "the fleet has no failure within 7 days of a labelled row"
    entry = evaluation.report["horizons"]["7d"]
    assert rows[0] <= entry["rows"] <= rows[1]
    assert positives[0] <= entry["positives"] <= positives[1]
    assert 0 < entry["positives"] < entry["rows"]
    assert entry["all"]["failures"] > 0
    assert 0.0 <= entry["all"]["model"]["roc_auc"] <= 1.0


def test_fields_the_fleet_writes_feed_their_features(
    fleet: OutsideFleet, evaluation: Evaluation
) -> None:
    """Every DCGM field the generator wrote is read by some feature, and a feature reading any
    of them has data (the scorer's multi-field signals sum or fall back across fields); exactly
    the ones reading none of them are reported empty, and the warning names the same features
    as the report."""
    reads = support.dcgm_feature_reads()
    unread = fleet.fields - set().union(*reads.values())
    assert not unread, f"fields the fleet writes that no feature reads: {sorted(unread)}"
    fed = {name for name, fields in reads.items() if fields & fleet.fields}
    empty = set(evaluation.report["empty_features"])
    assert not fed & empty, f"features with data in the fleet reported empty: {sorted(fed & empty)}"
    assert empty == set(reads) - fed
    warning = re.search(
        r"(\d+) feature\(s\) have no data in the dcgm schema: (.*)$",
        evaluation.result.stderr,
        re.MULTILINE,
    )
    if empty:
        assert warning, evaluation.result.stderr[-2000:]
        assert int(warning.group(1)) == len(empty)
        assert set(warning.group(2).split(", ")) == empty
    else:
        assert warning is None
