"""What the outside-fleet tests share: reading a generator's outputs back, and ``evaluate``.

``test_outside_fleet.py`` and ``test_k8s_fleet.py`` each run an independent dcgm-exporter-schema
generator (``bench/outside_fleet.py``, ``bench/k8s_fleet.py``) and check the scorer against what
that generator wrote. Both read the OpenMetrics text it fed to promtool and its ``failures.csv``
the same way, run ``gpu-health-scorer evaluate`` with the same options, and derive the same
bounds from the presence samples, so those live here once; what each test expects stays in its
own file.
"""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gpu_health.scorer.cli_arguments import duration_arg
from gpu_health.scorer.feature_schema import DCGM, PRESENCE_LOOKBACK
from gpu_health.scorer.feature_table import FEATURES, FLEET_FEATURES, MODEL_FEATURES, PEER_FEATURES
from gpu_health.scorer.model import HORIZON_SECONDS

SCORER = [sys.executable, "-m", "gpu_health.scorer.cli"]
#: ``evaluate``'s time grid: a row every STEP after a WARMUP from the first sample.
STEP, WARMUP = "24h", "7d"
HORIZON = int(HORIZON_SECONDS["7d"])
#: The signal the scorer's inventory reads (power or temperature: both generators write both
#: for every sample they keep).
PRESENCE_FIELD = "DCGM_FI_DEV_POWER_USAGE"
SAMPLE = re.compile(r"^(\w+)\{(.*)\} (\S+) (\d+)$")
LABEL = re.compile(r'(\w+)="([^"]*)"')

Labels = dict[str, str]
#: sample time -> UUID -> the labels of its presence series at that time
Reported = dict[int, dict[str, Labels]]


@dataclass
class GeneratedFleet:
    """What a generator wrote, read back from its own outputs."""

    data_dir: Path
    failures: dict[str, list[int]]  # UUID -> failure times
    reported: Reported
    fields: set[str]  # DCGM fields with at least one sample


@dataclass
class Evaluation:
    result: subprocess.CompletedProcess[str]
    report: dict[str, Any]


def run_generator(
    generator: Path, args: Sequence[str], out: Path, env: Mapping[str, str] | None = None
) -> None:
    """Run a generator's CLI into ``out`` (it builds the TSDB under ``out/prometheus``)."""
    result = subprocess.run(
        [sys.executable, str(generator), *args, "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-2000:]


def read_openmetrics(paths: Sequence[Path]) -> tuple[Reported, set[str]]:
    """Presence samples (time -> UUID -> labels) and every field with a sample, straight from
    the text the generator fed to promtool."""
    reported: Reported = defaultdict(dict)
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


def read_failures(path: Path) -> dict[str, list[int]]:
    """UUID -> failure times, from the generator's ``failures.csv``."""
    failures: dict[str, list[int]] = defaultdict(list)
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            failures[row["uuid"]].append(int(row["time"]))
    return dict(failures)


def read_back(out: Path, texts: Sequence[Path]) -> GeneratedFleet:
    """The fleet a generator wrote into ``out``, from the OpenMetrics ``texts`` it fed to
    promtool (deleted once read: tens of MB, and the TSDB under ``out/prometheus`` is what the
    scorer reads) and its ``failures.csv``."""
    reported, fields = read_openmetrics(texts)
    for path in texts:
        path.unlink()
    return GeneratedFleet(out, read_failures(out / "failures.csv"), reported, fields)


def evaluate(data_dir: Path) -> Evaluation:
    """``gpu-health-scorer evaluate`` on the generator's TSDB (served by a private Prometheus)
    with the rule model, its report read from ``--json``."""
    report_path = data_dir / "report.json"
    command = [*SCORER, "evaluate", "--data-dir", str(data_dir), "--schema", "dcgm"]
    command += ["--step", STEP, "--warmup", WARMUP, "--model", "rules", "--bootstrap", "20"]
    result = subprocess.run(
        [*command, "--json", str(report_path)], capture_output=True, text=True, timeout=240
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return Evaluation(result, json.loads(report_path.read_text()))


def evaluation_times(first_sample: int, last_sample: int) -> list[int]:
    """--warmup after the first sample, then every --step up to the last sample."""
    first = first_sample + int(duration_arg(WARMUP))
    return list(range(first, last_sample + 1, int(duration_arg(STEP))))


def present_at(fleet: GeneratedFleet, t: int) -> tuple[dict[str, Labels], dict[str, Labels]]:
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


def presence_bounds(
    fleet: GeneratedFleet, times: Sequence[int]
) -> tuple[tuple[int, int], tuple[int, int]]:
    """(fewest, most) rows and (fewest, most) distinct GPUs the report may have at ``times``:
    one row per UUID present at a time, certainly or possibly (see :func:`present_at`)."""
    presence = [present_at(fleet, t) for t in times]
    rows = sum(len(s) for s, _ in presence), sum(len(m) for _, m in presence)
    sure_gpus: set[str] = set().union(*(s for s, _ in presence))
    maybe_gpus: set[str] = set().union(*(m for _, m in presence))
    return rows, (len(sure_gpus), len(maybe_gpus))


def fails_within(fleet: GeneratedFleet, uuid: str, t: int) -> bool:
    return any(t < f <= t + HORIZON for f in fleet.failures.get(uuid, ()))


def horizon_counts(
    fleet: GeneratedFleet, labelled: Sequence[int]
) -> tuple[tuple[int, int], tuple[int, int]]:
    """(fewest, most) rows and (fewest, most) positives of the 7-day horizon at the
    ``labelled`` times: a row is positive when its UUID fails within 7 days of it."""
    rows = [0, 0]
    positives = [0, 0]
    for t in labelled:
        for k, uuids in enumerate(present_at(fleet, t)):
            rows[k] += len(uuids)
            positives[k] += sum(fails_within(fleet, u, t) for u in uuids)
    return (rows[0], rows[1]), (positives[0], positives[1])


def dcgm_feature_reads() -> dict[str, set[str]]:
    """Feature name -> the DCGM fields its query reads, for every feature ``evaluate`` computes
    at each time from the TSDB (inventory-derived features read no field)."""
    collected = {*MODEL_FEATURES, *FLEET_FEATURES, *PEER_FEATURES}
    return {
        f.name: set(re.findall(r"DCGM_FI_\w+", f.build(DCGM) or ""))
        for f in FEATURES
        if f.name in collected and f.from_inventory is None
    }
