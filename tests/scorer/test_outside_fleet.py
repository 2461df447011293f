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

import csv
import json
import re
import subprocess
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gpu_health.scorer.cli_arguments import duration_arg
from gpu_health.scorer.feature_schema import DCGM, PRESENCE_LOOKBACK
from gpu_health.scorer.feature_table import FEATURES, MODEL_FEATURES, PEER_FEATURES
from gpu_health.scorer.model import HORIZON_SECONDS

GENERATOR = Path(__file__).resolve().parents[2] / "bench" / "outside_fleet.py"
SCORER = [sys.executable, "-m", "gpu_health.scorer.cli"]
#: The fleet: 3 hosts (24 GPUs) over 20 days at 30-minute samples, with more failures than the
#: generator's default rate gives so the 7-day horizon has positives. A fixed end keeps the fleet
#: the same from run to run; seed 3 puts its one driver upgrade inside the evaluated period
#: (after the 7-day warm-up), so boards are evaluated under both driver labels.
FLEET_ARGS = ["--gpus", "24", "--days", "20", "--resolution", "1800", "--seed", "3"]
FLEET_ARGS += ["--failures", "12", "--end", "1780000000"]
STEP, WARMUP = "24h", "7d"
HORIZON = int(HORIZON_SECONDS["7d"])
#: the signal the scorer's inventory reads (power or temperature; the generator writes both
#: for every sample it keeps)
PRESENCE_FIELD = "DCGM_FI_DEV_POWER_USAGE"
SAMPLE = re.compile(r"^(\w+)\{(.*)\} (\S+) (\d+)$")
LABEL = re.compile(r'(\w+)="([^"]*)"')

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@dataclass
class OutsideFleet:
    """What the generator wrote, read back from its own outputs."""

    data_dir: Path
    truth: dict[str, Any]
    failures: dict[str, list[int]]  # UUID -> failure times
    reported: dict[int, dict[str, str]]  # sample time -> UUID -> its driver-version label
    fields: set[str]  # DCGM fields with at least one sample


@dataclass
class Evaluation:
    result: subprocess.CompletedProcess[str]
    report: dict[str, Any]


def read_openmetrics(paths: list[Path]) -> tuple[dict[int, dict[str, str]], set[str]]:
    """Presence samples (time -> UUID -> driver version) and every field with a sample,
    straight from the text the generator fed to promtool."""
    reported: dict[int, dict[str, str]] = defaultdict(dict)
    fields: set[str] = set()
    for path in paths:
        with path.open() as handle:
            for line in handle:
                if line.startswith("#"):
                    continue
                name = line[: line.index("{")]
                fields.add(name)
                if name != PRESENCE_FIELD:
                    continue
                match = SAMPLE.match(line.rstrip("\n"))
                assert match, f"{path.name}: unparsable sample {line[:120]!r}"
                labels = dict(LABEL.findall(match.group(2)))
                reported[int(match.group(4))][labels["UUID"]] = labels["DCGM_FI_DRIVER_VERSION"]
    return dict(reported), fields


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> OutsideFleet:
    out = tmp_path_factory.mktemp("outside")
    result = subprocess.run(
        [sys.executable, str(GENERATOR), *FLEET_ARGS, "--out", str(out), "--keep-text"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    texts = sorted(out.glob("chunk_*.om"))
    assert texts, "the generator kept no OpenMetrics text"
    reported, fields = read_openmetrics(texts)
    for path in texts:  # ~100 MB; the TSDB under out/prometheus is what the scorer reads
        path.unlink()
    failures: dict[str, list[int]] = defaultdict(list)
    with (out / "failures.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            failures[row["uuid"]].append(int(row["time"]))
    truth = json.loads((out / "truth.json").read_text())
    return OutsideFleet(out, truth, dict(failures), reported, fields)


@pytest.fixture(scope="module")
def evaluation(fleet: OutsideFleet) -> Evaluation:
    report_path = fleet.data_dir / "report.json"
    result = subprocess.run(
        [
            *SCORER,
            "evaluate",
            "--data-dir",
            str(fleet.data_dir),
            "--schema",
            "dcgm",
            "--step",
            STEP,
            "--warmup",
            WARMUP,
            "--model",
            "rules",
            "--bootstrap",
            "20",
            "--json",
            str(report_path),
        ],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return Evaluation(result, json.loads(report_path.read_text()))


def evaluation_times(truth: dict[str, Any]) -> list[int]:
    """--warmup after the first sample, then every --step up to the last sample."""
    first = truth["start_unix"] + int(duration_arg(WARMUP))
    step = int(duration_arg(STEP))
    return list(range(first, truth["end_unix"] + 1, step))


def present_at(fleet: OutsideFleet, t: int) -> tuple[dict[str, str], dict[str, str]]:
    """UUIDs (with their driver label) certainly and possibly in the scorer's inventory at
    ``t``: a sample within the presence lookback, the window's start excluded (Prometheus 3) or
    included (Prometheus 2)."""
    lookback = int(duration_arg(PRESENCE_LOOKBACK))
    sure: dict[str, str] = {}
    maybe: dict[str, str] = {}
    for ts in sorted(fleet.reported):
        if t - lookback < ts <= t:
            sure.update(fleet.reported[ts])
        if t - lookback <= ts <= t:
            maybe.update(fleet.reported[ts])
    return sure, maybe


def fails_within(fleet: OutsideFleet, uuid: str, t: int) -> bool:
    return any(t < f <= t + HORIZON for f in fleet.failures.get(uuid, ()))


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
        for uuid, driver in present_at(fleet, t)[0].items():
            drivers[uuid].add(driver)
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
    presence = [present_at(fleet, t) for t in times]
    assert sum(len(s) for s, _ in presence) <= report["rows"] <= sum(len(m) for _, m in presence)
    sure_gpus = set().union(*(s for s, _ in presence))
    maybe_gpus = set().union(*(m for _, m in presence))
    assert len(sure_gpus) <= report["gpus"] <= len(maybe_gpus)


def test_seven_day_horizon_has_both_classes(fleet: OutsideFleet, evaluation: Evaluation) -> None:
    """The 7-day labels match the generator's failures: rows whose window ends inside the
    history, positive when that board fails within 7 days of the row."""
    labelled = [t for t in evaluation_times(fleet.truth) if t + HORIZON <= fleet.truth["end_unix"]]
    rows = [0, 0]
    positives = [0, 0]
    for t in labelled:
        for k, uuids in enumerate(present_at(fleet, t)):
            rows[k] += len(uuids)
            positives[k] += sum(fails_within(fleet, u, t) for u in uuids)
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
    collected = {*MODEL_FEATURES, *PEER_FEATURES}  # what evaluate computes at each time
    reads = {
        f.name: set(re.findall(r"DCGM_FI_\w+", f.build(DCGM) or ""))
        for f in FEATURES
        if f.name in collected and f.from_inventory is None
    }
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
