"""The scorer on a Kubernetes fleet whose label churn our own simulator did not write.

``bench/k8s_fleet.py`` is an independent dcgm-exporter-on-Kubernetes generator (kept for
evaluation only): every series carries the pod/namespace/container of the job holding the GPU,
the exporter pod's ``instance`` (a new one at every exporter restart) and the driver version (a
rolling upgrade), so one board is spread over many series. A small fleet goes through the
scorer's real interface: ``evaluate --data-dir`` and ``score --at`` against a real Prometheus
serving the generator's TSDB. Every expectation comes from what the generator wrote (the
OpenMetrics text it fed to promtool, ``failures.csv``) and the scorer's feature table, never from
numbers typed here: which UUIDs reported when, which of them fail within 7 days, and which DCGM
fields exist at all.

The generator has no option to keep its OpenMetrics text, so the test puts a ``promtool`` first
on its PATH that hard-links each file before running the real promtool on it.
"""

from __future__ import annotations

import csv
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gpu_health import stack
from gpu_health.scorer.cli_arguments import duration_arg
from gpu_health.scorer.feature_schema import DCGM, PRESENCE_LOOKBACK
from gpu_health.scorer.feature_table import FEATURES, MODEL_FEATURES, PEER_FEATURES
from gpu_health.scorer.model import HORIZON_SECONDS

GENERATOR = Path(__file__).resolve().parents[2] / "bench" / "k8s_fleet.py"
SCORER = [sys.executable, "-m", "gpu_health.scorer.cli"]
#: 2 nodes (16 GPUs) over 17 days at 15-minute scrapes: a 7-day warm-up, then 4 daily rows per
#: GPU whose 7-day window ends inside the history. More failures than the default rate so that
#: window holds positives; a fixed end keeps the fleet the same from run to run. Scrapes closer
#: than the presence lookback, so a relabelled board shows under both label sets inside it.
FLEET_ARGS = ["--gpus", "16", "--days", "17", "--resolution", "900", "--seed", "2"]
FLEET_ARGS += ["--failures", "10", "--end", "1780000000"]
STEP, WARMUP = "24h", "7d"
HORIZON = int(HORIZON_SECONDS["7d"])
#: The signal the scorer's inventory reads (power or temperature: the generator writes both for
#: every sample it keeps).
PRESENCE_FIELD = "DCGM_FI_DEV_POWER_USAGE"
#: Labels the churn changes on one board: the job's pod, the exporter pod's address, the driver.
CHURN_LABELS = ("pod", "instance", "DCGM_FI_DRIVER_VERSION")
SAMPLE = re.compile(r"^(\w+)\{(.*)\} (\S+) (\d+)$")
LABEL = re.compile(r'(\w+)="([^"]*)"')
PROMTOOL_TEE = """#!/bin/sh
# Keep the OpenMetrics file (the argument before the TSDB directory), then run promtool.
n=$#; i=0
for a in "$@"; do i=$((i + 1)); [ "$i" -eq $((n - 1)) ] && ln "$a" "$KEEP_OPENMETRICS/"; done
exec "$REAL_PROMTOOL" "$@"
"""

pytestmark = [pytest.mark.integration, pytest.mark.slow]

Labels = dict[str, str]


@dataclass
class K8sFleet:
    """What the generator wrote, read back from its own outputs."""

    data_dir: Path
    failures: dict[str, list[int]]  # UUID -> failure times
    reported: dict[int, dict[str, Labels]]  # sample time -> UUID -> its series' labels
    fields: set[str]  # DCGM fields with at least one sample


@dataclass
class Evaluation:
    result: subprocess.CompletedProcess[str]
    report: dict[str, Any]


def read_openmetrics(paths: list[Path]) -> tuple[dict[int, dict[str, Labels]], set[str]]:
    """Presence samples (time -> UUID -> labels) and every field with a sample, straight from
    the text the generator fed to promtool."""
    reported: dict[int, dict[str, Labels]] = defaultdict(dict)
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
                reported[int(match.group(4))][labels["UUID"]] = labels
    return dict(reported), fields


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> K8sFleet:
    out = tmp_path_factory.mktemp("k8s")
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed")
    shim, kept = out / "shim", out / "openmetrics"
    shim.mkdir()
    kept.mkdir()
    (shim / "promtool").write_text(PROMTOOL_TEE)
    (shim / "promtool").chmod(0o755)
    env = {
        **os.environ,
        "PATH": f"{shim}{os.pathsep}{os.environ.get('PATH', '')}",
        "KEEP_OPENMETRICS": str(kept),
        "REAL_PROMTOOL": promtool,
    }
    result = subprocess.run(
        [sys.executable, str(GENERATOR), *FLEET_ARGS, "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    texts = sorted(kept.glob("*.om"))
    assert texts, "no OpenMetrics text reached promtool"
    reported, fields = read_openmetrics(texts)
    shutil.rmtree(kept)  # tens of MB; the TSDB under out/prometheus is what the scorer reads
    failures: dict[str, list[int]] = defaultdict(list)
    with (out / "failures.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            failures[row["uuid"]].append(int(row["time"]))
    return K8sFleet(out, dict(failures), reported, fields)


@pytest.fixture(scope="module")
def evaluation(fleet: K8sFleet) -> Evaluation:
    report_path = fleet.data_dir / "report.json"
    command = [*SCORER, "evaluate", "--data-dir", str(fleet.data_dir), "--schema", "dcgm"]
    command += ["--step", STEP, "--warmup", WARMUP, "--model", "rules", "--bootstrap", "20"]
    result = subprocess.run(
        [*command, "--json", str(report_path)], capture_output=True, text=True, timeout=240
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return Evaluation(result, json.loads(report_path.read_text()))


def evaluation_times(fleet: K8sFleet) -> list[int]:
    """--warmup after the first sample, then every --step up to the last sample (evaluate reads
    the history's span from the TSDB blocks, which hold exactly these samples)."""
    first = min(fleet.reported) + int(duration_arg(WARMUP))
    return list(range(first, max(fleet.reported) + 1, int(duration_arg(STEP))))


def present_at(fleet: K8sFleet, t: int) -> tuple[dict[str, Labels], dict[str, Labels]]:
    """UUIDs (with their latest labels) certainly and possibly in the scorer's inventory at
    ``t``: a sample within the presence lookback, the window's start excluded (Prometheus 3) or
    included (Prometheus 2)."""
    lookback = int(duration_arg(PRESENCE_LOOKBACK))
    sure: dict[str, Labels] = {}
    maybe: dict[str, Labels] = {}
    for ts in sorted(fleet.reported):
        if t - lookback < ts <= t:
            sure.update(fleet.reported[ts])
        if t - lookback <= ts <= t:
            maybe.update(fleet.reported[ts])
    return sure, maybe


def churned_before(fleet: K8sFleet, t: int, window: int) -> dict[str, set[str]]:
    """UUID -> the churn labels that changed on its series in (t - window, t]."""
    last: dict[str, Labels] = {}
    changed: dict[str, set[str]] = defaultdict(set)
    for ts in sorted(fleet.reported):
        if ts > t:
            break
        for uuid, labels in fleet.reported[ts].items():
            before = last.get(uuid)
            if before is not None and ts > t - window:
                for name in CHURN_LABELS:
                    if before.get(name) != labels.get(name):
                        changed[uuid].add(name)
            last[uuid] = labels
    return dict(changed)


def split_within(fleet: K8sFleet, t: int, window: int) -> dict[str, set[str]]:
    """UUID -> the churn labels that differ between its samples in (t - window, t]."""
    seen: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for ts, reported in fleet.reported.items():
        if t - window < ts <= t:
            for uuid, labels in reported.items():
                for name in CHURN_LABELS:
                    seen[uuid][name].add(labels.get(name, ""))
    split = {u: {n for n, values in names.items() if len(values) > 1} for u, names in seen.items()}
    return {u: names for u, names in split.items() if names}


def fails_within(fleet: K8sFleet, uuid: str, t: int) -> bool:
    return any(t < f <= t + HORIZON for f in fleet.failures.get(uuid, ()))


def test_label_churn_is_in_the_evaluated_period(fleet: K8sFleet, evaluation: Evaluation) -> None:
    """Pod, exporter-instance and driver-version changes relabel boards between evaluation
    times, and the evaluation still runs every time step to the end."""
    times = evaluation_times(fleet)
    changed: set[str] = set()
    for before, after in itertools.pairwise(times):
        for labels in churned_before(fleet, after, after - before).values():
            changed |= labels
    assert changed == set(CHURN_LABELS), f"churn seen between evaluation times: {changed}"
    steps = len(times)
    assert f"evaluate: {steps} time steps" in evaluation.result.stderr
    assert f"evaluate: {steps}/{steps} time steps" in evaluation.result.stderr
    assert evaluation.report["schema"] == "dcgm"


def test_label_churn_splits_no_gpu(fleet: K8sFleet, evaluation: Evaluation) -> None:
    """A row is one UUID at one time: a board relabelled by its job, its exporter or the driver
    upgrade is not two GPUs, and every UUID that reported at an evaluation time is a GPU of the
    report."""
    report, times = evaluation.report, evaluation_times(fleet)
    reported_uuids = {u for ts, seen in fleet.reported.items() if ts <= times[-1] for u in seen}
    assert report["gpus"] <= len(reported_uuids)
    assert report["rows"] <= report["gpus"] * len(times)
    presence = [present_at(fleet, t) for t in times]
    assert sum(len(s) for s, _ in presence) <= report["rows"] <= sum(len(m) for _, m in presence)
    sure_gpus = set().union(*(s for s, _ in presence))
    maybe_gpus = set().union(*(m for _, m in presence))
    assert len(sure_gpus) <= report["gpus"] <= len(maybe_gpus)


def test_seven_day_horizon_has_both_classes(fleet: K8sFleet, evaluation: Evaluation) -> None:
    """The 7-day labels match the generator's failures: rows whose window ends inside the
    history, positive when that UUID fails within 7 days of the row."""
    end = max(fleet.reported)
    labelled = [t for t in evaluation_times(fleet) if t + HORIZON <= end]
    rows = [0, 0]
    positives = [0, 0]
    for t in labelled:
        for k, uuids in enumerate(present_at(fleet, t)):
            rows[k] += len(uuids)
            positives[k] += sum(fails_within(fleet, u, t) for u in uuids)
    assert 0 < positives[0] < rows[1], "the fleet gives the 7-day horizon a single class"
    entry = evaluation.report["horizons"]["7d"]
    assert rows[0] <= entry["rows"] <= rows[1]
    assert positives[0] <= entry["positives"] <= positives[1]
    assert 0 < entry["positives"] < entry["rows"]


def test_fields_the_fleet_writes_feed_their_features(
    fleet: K8sFleet, evaluation: Evaluation
) -> None:
    """A feature reading any DCGM field the generator wrote has data despite the churn (the
    scorer sums or falls back across fields); only features reading none of them are empty."""
    collected = {*MODEL_FEATURES, *PEER_FEATURES}  # what evaluate computes at each time
    reads = {
        f.name: set(re.findall(r"DCGM_FI_\w+", f.build(DCGM) or ""))
        for f in FEATURES
        if f.name in collected and f.from_inventory is None
    }
    fed = {name for name, fields in reads.items() if fields & fleet.fields}
    assert fed, "no feature reads a field the fleet writes"
    empty = set(evaluation.report["empty_features"])
    assert not fed & empty, f"features with data in the fleet reported empty: {sorted(fed & empty)}"
    assert empty <= set(reads) - fed


def test_score_at_a_time_of_churn_lists_each_gpu_once(
    fleet: K8sFleet, prometheus_factory: Callable[..., stack.Server]
) -> None:
    """``score --at`` where a board's pod, exporter instance or driver changed inside the
    presence lookback (so its series under both label sets are in the inventory's window) and
    some board stopped reporting in the last hours: one entry per UUID, and exactly the UUIDs
    that reported in the presence lookback are not absent."""
    times = sorted(fleet.reported)
    lookback, window = int(duration_arg(PRESENCE_LOOKBACK)), 3 * 3600

    def churn(t: int) -> tuple[bool, int]:
        seen = {u for ts in times if t - window < ts <= t for u in fleet.reported[ts]}
        gone = seen - set(present_at(fleet, t)[1])
        return bool(gone), len(split_within(fleet, t, lookback))

    at = max(times[len(times) // 10 :], key=churn)  # past the first tenth: a full lookback
    gone, relabelled = churn(at)
    assert gone and relabelled, "no time with a board relabelled in the lookback and one gone"
    server = prometheus_factory(data_dir=fleet.data_dir / "prometheus")
    command = [*SCORER, "score", "--prometheus.url", server.url, "--schema", "dcgm"]
    result = subprocess.run(
        [*command, "--at", str(at), "--json", "--model", "rules"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    gpus = json.loads(result.stdout)["gpus"]
    uuids = [g["uuid"] for g in gpus]
    assert len(uuids) == len(set(uuids)), "a UUID listed twice"
    sure, maybe = present_at(fleet, at)
    present = {g["uuid"] for g in gpus if g["state"] != "absent"}
    assert set(sure) <= present <= set(maybe)
