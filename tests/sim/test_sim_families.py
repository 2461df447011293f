"""Physics families: node recurrence as in the public trace, and histories the scorer reads."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from gpu_health.sim.families import FAMILIES, _board_series, build, node_repeats, plan

SCORER = [sys.executable, "-m", "gpu_health.scorer.cli"]


@pytest.mark.parametrize("share", [0.1, 0.3])
def test_node_recurrence_matches_the_infinitehbd_trace(share: float) -> None:
    """23 % of faults followed by another on the node within 30 d, median gap ~18 d."""
    shares, gaps = [], []
    for seed in range(3):
        p = plan(replace(FAMILIES["steps"], failure_share=share), 4000, 365, seed, 1.7e9)
        s, g = node_repeats(p)
        shares.append(s)
        gaps.append(g)
    assert 0.18 <= float(np.mean(shares)) <= 0.28
    assert 12.0 <= float(np.mean(gaps)) <= 24.0


def test_families_differ_in_the_physics_they_claim() -> None:
    mags = [f.magnitude for f in FAMILIES.values()]
    assert max(mags) / min(mags) >= 100  # magnitudes over two orders
    assert {f.shape for f in FAMILIES.values()} >= {"ramp", "bursts", "steps", "plateau", "drift"}
    assert {f.resolution for f in FAMILIES.values()} >= {600.0, 3600.0}


def test_replacements_get_new_uuids_and_failures_have_ground_truth() -> None:
    p = plan(FAMILIES["plateau"], 400, 60, 3, 1.7e9)
    uuids = [b.uuid for b in p.boards]
    assert len(uuids) == len(set(uuids))
    failed = [b for b in p.boards if b.failure_mode is not None]
    assert failed
    slots = {(b.node, b.index) for b in failed}
    assert all(sum(1 for b in p.boards if (b.node, b.index) == s) >= 2 for s in slots)
    share = sum(b.precursor_start is not None for b in failed) / len(failed)
    assert 0.1 <= share <= 0.5
    assert all(b.precursor_start is None or b.precursor_start < b.end for b in failed)


@pytest.mark.slow
@pytest.mark.integration
def test_a_family_history_is_read_by_the_scorer(tmp_path: Path, prometheus_factory) -> None:
    """A small family fleet backfills, relabels at the driver upgrade, and scores."""
    from gpu_health.scorer.features import compute_features
    from gpu_health.scorer.promclient import PromClient, PromConfig

    end = 1_750_000_000.0
    family = replace(FAMILIES["bursts-small"], resolution=1800.0)
    p = build(family, 24, 12, 7, tmp_path / "fleet", end)
    with (tmp_path / "fleet" / "failures.csv").open() as handle:
        header = csv.DictReader(handle).fieldnames
    assert header == ["uuid", "time", "mode", "precursor", "precursor_start"]
    server = prometheus_factory(data_dir=tmp_path / "fleet" / "prometheus")
    client = PromClient(PromConfig(server.url, retries=1))
    at = float(p.times[-1])
    frame = compute_features(client, "dcgm", at)
    alive = {b.uuid for b in p.boards if b.end > at}
    assert {g[2] for g in frame.gpus} == alive
    assert frame.failed_queries == 0
    # The driver upgrade split every series; no GPU reads as missing data for days.
    gap = frame.column("reporting_gap_share_7d")
    assert np.nanmedian(gap) < 0.1
    # Power violation is read in this schema (the counter exists, in microseconds).
    assert not math.isnan(float(np.nanmax(frame.column("power_violation_active_hours_7d"))))


def test_first_failures_wait_for_the_warm_up_unless_it_is_zero() -> None:
    start, day = 1.7e9, 86400.0

    def first_week_failures(warmup: float) -> int:
        p = plan(replace(FAMILIES["bursts-small"], warmup_days=warmup), 400, 45, 2, start)
        return sum(1 for b in p.boards if b.failure_mode and b.end < start + 7 * day)

    assert first_week_failures(7.0) == 0
    assert first_week_failures(0.0) > 0


@pytest.mark.parametrize(
    ("name", "low", "high"), [("generations", 10.0, 40.0), ("steps", 0.5, 2.0)]
)
def test_the_older_generation_logs_more_benign_errors_only_where_asked(
    name: str, low: float, high: float
) -> None:
    p = plan(FAMILIES[name], 160, 30, 4, 1.7e9)
    rng = np.random.default_rng(0)
    per_day: dict[int, list[float]] = {0: [], 1: []}
    for b in p.boards:
        if b.failure_mode is None and not b.noisy:
            sbe = _board_series(b, p, rng)["DCGM_FI_DEV_ECC_SBE_AGG_TOTAL"]
            per_day[b.model].append(float(np.nanmax(sbe)) / ((b.end - b.start) / 86400.0))
    ratio = float(np.mean(per_day[1])) / float(np.mean(per_day[0]))
    assert low <= ratio <= high, ratio


def _failure_rows(out: Path) -> list[list[str]]:
    with (out / "failures.csv").open() as handle:
        return list(csv.reader(handle))[1:]


def test_a_fixed_end_rebuilds_the_same_history(tmp_path: Path, capsys) -> None:
    """``--end`` pins the history in time: a rebuild on another day is the same history, and a
    later end shifts every failure by the difference (the published rows name their end)."""
    from gpu_health.sim.families import main

    end = 1_750_000_000
    common = ["--family", "steps", "--gpus", "16", "--days", "10", "--seed", "3"]
    for name, at in (("a", end), ("b", end), ("later", end + 7200)):
        assert main([*common, "--end", str(at), "--out", str(tmp_path / name)]) == 0
    a, b, later = (_failure_rows(tmp_path / n) for n in ("a", "b", "later"))
    assert a and a == b
    assert [float(r[1]) + 7200 for r in a] == [float(r[1]) for r in later]
    # An end in the future, or before the history could start, is refused in one line.
    for bad in ("4000000000", "1000"):
        with pytest.raises(SystemExit):
            main([*common, "--end", bad, "--out", str(tmp_path / "bad")])
        assert "--end must be" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


def test_the_scorer_says_the_same_of_a_fleet_in_either_dcgm_shape(
    tmp_path: Path, prometheus_factory
) -> None:
    """One family fleet written as dcgm-exporter wrote it before 3.3.6 (``Hostname``, the XID
    gauge one series) and as it writes it now (``hostname``, each XID code a series labelled
    ``err_code``): ``score --at`` ranks the same GPUs under the same nodes, in the same states,
    with the same probabilities."""
    from gpu_health.sim.families import main

    end = 1_750_000_000
    common = ["--family", "steps", "--gpus", "32", "--days", "12", "--seed", "7"]
    common += ["--resolution", "3600"]
    answers = {}
    for shape in ("legacy", "current"):
        out = tmp_path / shape
        assert main([*common, "--end", str(end), "--out", str(out), "--dcgm-shape", shape]) == 0
        server = prometheus_factory(data_dir=out / "prometheus")
        command = [*SCORER, "score", "--prometheus.url", server.url, "--schema", "dcgm"]
        result = subprocess.run(
            [*command, "--at", str(end - 3 * 86400), "--json", "--model", "rules"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        answers[shape] = json.loads(result.stdout)["gpus"]
    assert answers["legacy"] and answers["legacy"] == answers["current"]
    assert all(g["node"].startswith("node-") for g in answers["current"])


def test_writing_a_family_holds_readings_as_numbers_not_as_text(tmp_path: Path) -> None:
    """The history's OpenMetrics lines were all held until the fleet was done: 5.5 GB of
    memory for the default 200 GPUs x 45 days, beside a 4.0 GB file. Now one board's lines of
    one family at a time: the process' peak memory stays a fraction of the file it writes."""
    # VmHWM, the peak of this program's own memory: getrusage's maxrss keeps the peak of the
    # process it was forked from (here a test worker of a gigabyte) across the exec.
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from gpu_health.sim.families import FAMILIES, write\n"
        "write(FAMILIES['plateau'], 48, 30, 1, 1.79e9, Path(sys.argv[1]), 'legacy')\n"
        "hwm = [s for s in open('/proc/self/status') if s.startswith('VmHWM:')][0]\n"
        "print(int(hwm.split()[1]) * 1024)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=280,
    )
    peak = int(done.stdout.split()[-1])
    written = (tmp_path / "fleet.om").stat().st_size
    assert written > 400e6  # large enough that holding it as text would show
    assert peak < written / 2, (peak, written)
    with (tmp_path / "fleet.om").open() as handle:  # each family once, whole, then the end
        headers = [line.rstrip("\n") for line in handle if line.startswith("# ")]
    assert headers[-1] == "# EOF" and len(set(headers)) == len(headers) > 10
