"""bench/bench_schema_cost.py runs end to end on a small fleet and reports what it says.

Its numbers are in docs/benchmarks.md ("Our exporter's schema against dcgm-exporter's"); this
runs the bench as a command on 8 GPUs and one day (``gpu-health backfill`` in both schemas,
real Prometheus) and checks that its report holds together: both schemas score the same GPUs,
our schema reads more samples for the same fleet, the signals it reads most are the ones our
exporter splits per NVLink link or per XID code, and the ratios are the report's own numbers.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bench.bench_runs import run_bench

pytestmark = [pytest.mark.integration]

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_schema_cost.py"


def test_the_bench_scores_one_fleet_in_both_schemas(tmp_path: Path) -> None:
    result, report = run_bench(
        BENCH, tmp_path, "--gpus", "8", "--days", "1", "--step", "600", "--pairs", "2"
    )
    assert report["same_gpus"] is True and report["gpus_scored"] == 8
    ours, dcgm = report["schemas"]["ours"], report["schemas"]["dcgm"]
    assert ours["samples_read"] > dcgm["samples_read"] > 0
    assert report["ratio_samples"] == round(ours["samples_read"] / dcgm["samples_read"], 2)
    assert ours["top"][0]["metric"] in {"gpu_nvlink_errors_total", "gpu_xid_errors_total"}
    assert [t["samples"] for t in ours["top"]] == sorted(
        (t["samples"] for t in ours["top"]), reverse=True
    )
    for entry in (ours, dcgm):
        assert len(entry["runs_s"]) == 2 and entry["cold_s"] > 0
        assert entry["median_s"] == pytest.approx(sum(entry["runs_s"]) / 2, abs=1e-3)
    assert report["ratio_median"] == round(ours["median_s"] / dcgm["median_s"], 2)
    assert "the same 8 GPUs scored in both: True" in result.stdout
