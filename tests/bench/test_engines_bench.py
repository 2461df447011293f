"""bench/bench_engines.py runs end to end on a small history and reports what it says.

Its numbers are in docs/benchmarks.md; this runs the bench as a command on the test fleet of
``tests/scorer_fleet.py`` in dcgm-exporter's schema (12 GPUs, one failed), copied into a real
VictoriaMetrics with vmctl (every sample: ``bench/vmctl_copy.py``) and served by a real
Prometheus, and checks that the report holds together: both engines scored the same GPUs, in
the same states, with close probabilities.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.bench.bench_runs import SCORER_FLEET_AT, run_bench, scorer_fleet_history

pytestmark = [pytest.mark.integration]

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_engines.py"
AT = SCORER_FLEET_AT


def test_both_engines_score_the_same_fleet_and_are_timed(tmp_path: Path) -> None:
    for binary in ("victoria-metrics", "vmctl"):
        if shutil.which(binary) is None:
            pytest.skip(f"{binary} is not installed (run.sh installs it)")
    data = scorer_fleet_history(tmp_path)
    args = ("--data-dir", str(data), "--at", str(AT), "--history", "raw", "--pairs", "2")
    done, report = run_bench(BENCH, tmp_path, *args, "--no-compaction-wait")
    said = done.stderr[-3000:]
    assert report["detected"] == {"prometheus": "prometheus", "victoriametrics": "victoriametrics"}
    same = report["agreement"]
    assert same["gpus"] == [12, 12] and same["in_both"] == 12  # the failed GPU is listed too
    assert same["same_states"] is True, (same["states_apart"], said)
    assert same["history_read"] == ["raw", "raw"]
    for horizon in ("7d", "30d"):
        assert same[f"probability_{horizon}"]["largest_difference"] < 0.001, said
        assert same[f"probability_{horizon}"]["rank_correlation"] > 0.9
    for engine in ("prometheus", "victoriametrics"):
        runs = report["runs_s"][engine]
        assert len(runs) == 2 and all(r > 0 for r in runs)
        assert report["median_s"][engine] == pytest.approx(float(np.median(runs)), abs=0.01)
    assert report["ratio"] == pytest.approx(
        report["median_s"]["victoriametrics"] / report["median_s"]["prometheus"], rel=0.05
    )
    assert report["copy_s"] > 0


def test_the_bench_refuses_a_missing_data_dir(tmp_path: Path) -> None:
    args = ["--data-dir", str(tmp_path / "none"), "--at", "0"]
    done = subprocess.run(
        [sys.executable, str(BENCH), *args], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2 and "is not a directory" in done.stderr, done.stderr


def test_ties_share_their_rank() -> None:
    sys.path.insert(0, str(BENCH.parent))
    try:
        import bench_engines
    finally:
        sys.path.remove(str(BENCH.parent))
    ranks = bench_engines.average_ranks(np.array([3.0, 1.0, 1.0, 2.0]))
    assert ranks.tolist() == [3.0, 0.5, 0.5, 2.0]
    tied = np.array([0.1, 0.1, 0.1, 0.5])
    assert bench_engines.rank_correlation(tied, tied) == pytest.approx(1.0)
    assert bench_engines.rank_correlation(tied, np.full(4, 0.2)) is None
