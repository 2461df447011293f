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

import itertools
import json
import os
import shutil
import subprocess
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import pytest

from gpu_health import stack
from gpu_health.scorer.cli_arguments import duration_arg
from gpu_health.scorer.feature_schema import PRESENCE_LOOKBACK
from tests.scorer import outside_support as support
from tests.scorer.outside_support import (
    HORIZON,
    SCORER,
    Evaluation,
    GeneratedFleet,
    Labels,
    present_at,
)

GENERATOR = Path(__file__).resolve().parents[2] / "bench" / "k8s_fleet.py"
#: 2 nodes (16 GPUs) over 17 days at 15-minute scrapes: a 7-day warm-up, then 4 daily rows per
#: GPU whose 7-day window ends inside the history. More failures than the default rate so that
#: window holds positives; a fixed end keeps the fleet the same from run to run. Scrapes closer
#: than the presence lookback, so a relabelled board shows under both label sets inside it.
FLEET_ARGS = ["--gpus", "16", "--days", "17", "--resolution", "900", "--seed", "2"]
FLEET_ARGS += ["--failures", "10", "--end", "1780000000"]
#: Labels the churn changes on one board: the job's pod, the exporter pod's address, the driver.
CHURN_LABELS = ("pod", "instance", "DCGM_FI_DRIVER_VERSION")
PROMTOOL_TEE = """#!/bin/sh
# Keep the OpenMetrics file (the argument before the TSDB directory), then run promtool.
n=$#; i=0
for a in "$@"; do i=$((i + 1)); [ "$i" -eq $((n - 1)) ] && ln "$a" "$KEEP_OPENMETRICS/"; done
exec "$REAL_PROMTOOL" "$@"
"""

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> GeneratedFleet:
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
    support.run_generator(GENERATOR, FLEET_ARGS, out, env=env)
    texts = sorted(kept.glob("*.om"))
    assert texts, "no OpenMetrics text reached promtool"
    return support.read_back(out, texts)


@pytest.fixture(scope="module")
def evaluation(fleet: GeneratedFleet) -> Evaluation:
    return support.evaluate(fleet.data_dir)


def evaluation_times(fleet: GeneratedFleet) -> list[int]:
    """Evaluation times over the span of the presence samples (evaluate reads the history's span
    from the TSDB blocks, which hold exactly these samples)."""
    return support.evaluation_times(min(fleet.reported), max(fleet.reported))


def churned_before(fleet: GeneratedFleet, t: int, window: int) -> dict[str, set[str]]:
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


def split_within(fleet: GeneratedFleet, t: int, window: int) -> dict[str, set[str]]:
    """UUID -> the churn labels that differ between its samples in (t - window, t]."""
    seen: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for ts, reported in fleet.reported.items():
        if t - window < ts <= t:
            for uuid, labels in reported.items():
                for name in CHURN_LABELS:
                    seen[uuid][name].add(labels.get(name, ""))
    split = {u: {n for n, values in names.items() if len(values) > 1} for u, names in seen.items()}
    return {u: names for u, names in split.items() if names}


def test_label_churn_is_in_the_evaluated_period(
    fleet: GeneratedFleet, evaluation: Evaluation
) -> None:
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


def test_label_churn_splits_no_gpu(fleet: GeneratedFleet, evaluation: Evaluation) -> None:
    """A row is one UUID at one time: a board relabelled by its job, its exporter or the driver
    upgrade is not two GPUs, and every UUID that reported at an evaluation time is a GPU of the
    report."""
    report, times = evaluation.report, evaluation_times(fleet)
    reported_uuids = {u for ts, seen in fleet.reported.items() if ts <= times[-1] for u in seen}
    assert report["gpus"] <= len(reported_uuids)
    assert report["rows"] <= report["gpus"] * len(times)
    rows, gpus = support.presence_bounds(fleet, times)
    assert rows[0] <= report["rows"] <= rows[1]
    assert gpus[0] <= report["gpus"] <= gpus[1]


def test_seven_day_horizon_has_both_classes(fleet: GeneratedFleet, evaluation: Evaluation) -> None:
    """The 7-day labels match the generator's failures: rows whose window ends inside the
    history, positive when that UUID fails within 7 days of the row."""
    end = max(fleet.reported)
    labelled = [t for t in evaluation_times(fleet) if t + HORIZON <= end]
    rows, positives = support.horizon_counts(fleet, labelled)
    assert 0 < positives[0] < rows[1], "the fleet gives the 7-day horizon a single class"
    entry = evaluation.report["horizons"]["7d"]
    assert rows[0] <= entry["rows"] <= rows[1]
    assert positives[0] <= entry["positives"] <= positives[1]
    assert 0 < entry["positives"] < entry["rows"]


def test_fields_the_fleet_writes_feed_their_features(
    fleet: GeneratedFleet, evaluation: Evaluation
) -> None:
    """A feature reading any DCGM field the generator wrote has data despite the churn (the
    scorer sums or falls back across fields); only features reading none of them are empty."""
    reads = support.dcgm_feature_reads()
    fed = {name for name, fields in reads.items() if fields & fleet.fields}
    assert fed, "no feature reads a field the fleet writes"
    empty = set(evaluation.report["empty_features"])
    assert not fed & empty, f"features with data in the fleet reported empty: {sorted(fed & empty)}"
    assert empty <= set(reads) - fed


def test_score_at_a_time_of_churn_lists_each_gpu_once(
    fleet: GeneratedFleet, prometheus_factory: Callable[..., stack.Server]
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
