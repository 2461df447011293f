"""The same fleet scraped every 2 minutes and every hour: ``score --at`` says the same thing.

Fleets differ in their scrape interval (15 s to hourly downsampled data), and a scorer that
read the interval as a property of the GPU would rank the GPUs of one fleet by how often it is
scraped. One history of a physics family is written at 2-minute resolution and thinned to
hourly (:mod:`gpu_health.sim.resample`: the same counters, resets, gaps and failures, seen
less often); each is backfilled into a real Prometheus and scored with the CLI at the same
times. Expectations come from the fine-grained answer, never from typed numbers: the same GPUs,
each GPU's hazard within :data:`HAZARD_TOLERANCE` in log units, the same order, the same
failure class where it is clear. ``bench/resolution_invariance.py`` measures the same on a
200-GPU fleet and down to 15 s (docs/model-card.md, "Resolution").
"""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gpu_health import stack
from gpu_health.sim.families import FAMILIES, write
from gpu_health.sim.resample import thin_file
from tests.conftest import ONE_PASS_BLOCKS

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SCORER = [sys.executable, "-m", "gpu_health.scorer.cli"]
DAY = 86400
FINE, COARSE = 120, 3600
#: 16 GPUs (two nodes of eight) for 9 days; every failing board has a precursor, so the fleet
#: holds GPUs with evidence of several kinds at the scored times. Failures from the second day.
FAMILY = replace(
    FAMILIES["steps"],
    resolution=float(FINE),
    warmup_days=1.0,
    precursor_share=1.0,
    failure_share=0.6,
)
GPUS, DAYS, SEED = 16, 9.0, 11
END = 1796083200
#: The largest change of a GPU's hazard between the two intervals, as |ln(coarse / fine)|: a
#: 24-hour average holds 720 samples at 2 minutes and 24 at an hour, so noisy gauges (power,
#: temperature against the node) average slightly differently. Measured here: at most 0.13.
#: Hours with activity counted from samples instead of 2-hour slots keep most hazards within
#: it (the peers' median takes a fleet-wide factor off) but reorder the top GPUs (checked).
HAZARD_TOLERANCE = 0.3
#: Scored times, seconds after the start: days 4, 6 and 8 at midnight (a sample of both
#: histories at that second), and day 6 at 00:40, when the hourly history's last sample is 40
#: minutes old (every GPU read as lost when "reporting" meant a sample in the last 30 minutes).
SCORED = (4 * DAY, 8 * DAY, 6 * DAY, 6 * DAY + 2400)


def _failures(path: Path) -> dict[str, float]:
    with path.open() as handle:
        return {row["uuid"]: float(row["time"]) for row in csv.DictReader(handle)}


@pytest.fixture(scope="module")
def histories(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    """The fine history and its hourly thinning, each a backfilled Prometheus data dir."""
    root = tmp_path_factory.mktemp("resolution")
    start = (END - int(DAYS * DAY)) // COARSE * COARSE
    write(FAMILY, GPUS, DAYS, SEED, float(start), root)
    dirs = {}
    for interval in (FINE, COARSE):
        out = root / f"every-{interval}s"
        out.mkdir()
        thin_file(root / "fleet.om", out / "fleet.om", interval)
        stack.promtool_backfill(out / "fleet.om", out / "prometheus", ONE_PASS_BLOCKS)
        dirs[interval] = out
    (root / "fleet.om").unlink()
    return {**dirs, 0: root}


def _score(server: stack.Server, at: int) -> dict[str, dict[str, Any]]:
    result = subprocess.run(
        [
            *(*SCORER, "score", "--prometheus.url", server.url, "--schema", "dcgm"),
            *("--at", str(at), "--json", "--model", "rules"),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return {g["uuid"]: g for g in json.loads(result.stdout)["gpus"]}


@pytest.fixture(scope="module")
def scores(
    histories: dict[int, Path], tmp_path_factory: pytest.TempPathFactory
) -> dict[int, dict[int, dict[str, dict[str, Any]]]]:
    """``score --at`` at each scored time, per interval: {interval: {time: {uuid: gpu}}}."""
    start = (END - int(DAYS * DAY)) // COARSE * COARSE
    out: dict[int, dict[int, dict[str, dict[str, Any]]]] = {}
    for interval in (FINE, COARSE):
        work = tmp_path_factory.mktemp(f"prom-{interval}")
        config = stack.write_prometheus_config(work / "prometheus.yml")
        data = histories[interval] / "prometheus"
        with stack.prometheus(work, config, data_dir=data) as server:
            out[interval] = {start + d: _score(server, start + d) for d in SCORED}
    return out


def _hazard(gpu: dict[str, Any]) -> float:
    p = gpu["failure_probability"]["7d"]
    return -math.log1p(-p) / 7.0


def _alive(histories: dict[int, Path], at: int) -> Callable[[str], bool]:
    """Scored GPUs that have not failed by ``at`` (a board that died minutes before a coarse
    scrape is legitimately seen differently: its last samples fall between two scrapes)."""
    failed = _failures(histories[0] / "failures.csv")
    return lambda uuid: failed.get(uuid, math.inf) > at


def test_both_intervals_score_the_same_gpus(scores: Any) -> None:
    for at, fine in scores[FINE].items():
        assert set(fine) == set(scores[COARSE][at])


def test_a_gpu_reporting_hourly_is_present_between_its_samples(histories: Any, scores: Any) -> None:
    """Between two hourly samples every GPU that has not failed is scored as present, as in
    the 2-minute history, not as lost with failure probability 1."""
    for at, coarse in scores[COARSE].items():
        alive = [u for u in coarse if _alive(histories, at)(u)]
        assert alive
        for u in alive:
            assert coarse[u]["state"] != "absent", (at, u, coarse[u]["state_reasons"])
            assert coarse[u]["failure_probability"]["7d"] < 1.0


def test_each_gpu_keeps_its_hazard_order_and_class(histories: Any, scores: Any) -> None:
    spread_seen = 0
    for at, fine in scores[FINE].items():
        coarse = scores[COARSE][at]
        alive = [u for u in fine if _alive(histories, at)(u) and fine[u]["state"] != "absent"]
        assert len(alive) >= GPUS // 2
        a = np.array([_hazard(fine[u]) for u in alive])
        b = np.array([_hazard(coarse[u]) for u in alive])
        moved = np.abs(np.log(b / a))
        worst = alive[int(np.argmax(moved))]
        assert moved.max() <= HAZARD_TOLERANCE, (
            f"{worst} at {at}: hazard {a.max():.3g} vs {b.max():.3g} per day "
            f"(|ln ratio| {moved.max():.2f}); inputs fine {fine[worst]['inputs']} "
            f"coarse {coarse[worst]['inputs']}"
        )
        # The GPUs the fine view ranks highest stay highest.
        top = max(1, len(alive) // 4)
        order_fine = [alive[k] for k in np.argsort(-a, kind="stable")[:top]]
        order_coarse = [alive[k] for k in np.argsort(-b, kind="stable")[:top]]
        assert set(order_fine) == set(order_coarse)
        # Where the class is clear, it is the same class.
        for u in alive:
            if fine[u]["failure_class"]["probability"] >= 0.6:
                assert coarse[u]["failure_class"]["class"] == fine[u]["failure_class"]["class"]
        # Not a vacuous comparison: some GPUs carry evidence far above the others.
        spread_seen += int((a >= 3.0 * np.median(a)).sum())
    assert spread_seen >= 2, "no GPU with evidence at the scored times"


def test_between_two_hourly_samples_each_gpu_keeps_its_state(histories: Any, scores: Any) -> None:
    """At 00:00 and at 00:40 the hourly history holds the same samples, so every GPU that was
    reporting at 00:00 has the same state and reasons: the recent windows hold the same
    samples whatever the minute ("degraded" read over one sample or two came and went)."""
    start = (END - int(DAYS * DAY)) // COARSE * COARSE
    on, after = start + 6 * DAY, start + 6 * DAY + 2400
    alive = [u for u in scores[COARSE][on] if _alive(histories, on)(u)]
    assert alive
    for u in alive:
        then, now = scores[COARSE][on][u], scores[COARSE][after][u]
        assert (then["state"], then["state_reasons"]) == (now["state"], now["state_reasons"]), u
