"""bench/bench_schema_cost.py runs end to end on a small fleet and reports what it says.

Its numbers are in docs/benchmarks.md ("Our exporter's schema against dcgm-exporter's"); this
runs the bench as a command on 8 GPUs and one day (``gpu-health backfill`` in both schemas,
real Prometheus) and checks that its report holds together: both schemas score the same GPUs,
the scorer reads our exporter's per-GPU totals on a history that has them, reading the split
counters instead reads more samples and reads most where our exporter splits NVLink errors per
link or XIDs per code, and the ratios are the report's own numbers; then one arm alone
(``--arms dcgm``, as a fleet too large to write in our schema is measured) reads the kept
history again without rewriting it and reports no ratios. Each run waits until Prometheus has
merged the backfill's 2-hour blocks before it times anything (the second, on the merged
history, with ``--no-compaction-wait``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bench.bench_runs import run_bench

pytestmark = [pytest.mark.integration]

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_schema_cost.py"


@pytest.mark.timeout(600)  # the first run waits two compaction cycles (a minute each)
def test_the_bench_scores_one_fleet_in_both_schemas(tmp_path: Path) -> None:
    fleet = ("--gpus", "8", "--days", "1", "--step", "600", "--pairs", "2")
    work = tmp_path / "work"
    result, report = run_bench(BENCH, tmp_path, *fleet, "--work", str(work))
    assert report["same_gpus"] is True and report["gpus_scored"] == 8
    # timed only once Prometheus has merged the backfill's 2-hour blocks (12 for the day)
    for schema in ("ours", "dcgm"):
        blocks = report["blocks"][schema]
        assert blocks["written"] >= 12 and 0 < blocks["served"] < blocks["written"], blocks
    arms = report["schemas"]
    ours, split, dcgm = arms["ours"], arms["ours_split"], arms["dcgm"]
    assert ours["totals_read"] is True and split["totals_read"] is False
    assert split["samples_read"] > ours["samples_read"] > 0 and dcgm["samples_read"] > 0
    assert split["top"][0]["metric"] in {"gpu_nvlink_errors_total", "gpu_xid_errors_total"}
    for entry in arms.values():
        samples = [t["samples"] for t in entry["top"]]
        assert samples == sorted(samples, reverse=True)
        assert len(entry["runs_s"]) == 2 and entry["cold_s"] > 0
        assert entry["median_s"] == pytest.approx(sum(entry["runs_s"]) / 2, abs=1e-3)
    for entry in (ours, split):
        assert entry["ratio_samples"] == round(entry["samples_read"] / dcgm["samples_read"], 2)
        assert entry["ratio_median"] == round(entry["median_s"] / dcgm["median_s"], 2)
    assert "the same 8 GPUs scored in both: True" in result.stdout
    assert "(per-GPU totals read: True)" in result.stdout

    # one arm alone, on the histories kept in --work: dcgm-exporter's is read again, as written
    written = (work / "dcgm" / "failures.csv").stat().st_mtime_ns
    # (the kept history is the one the first run's Prometheus merged: no need to wait again)
    alone, only = run_bench(
        BENCH, tmp_path, *fleet, "--work", str(work), "--arms", "dcgm", "--no-compaction-wait"
    )
    assert set(only["schemas"]) == {"dcgm"} and only["same_gpus"] is None
    assert only["gpus_scored"] == 8 and "(8 GPUs scored):" in alone.stdout
    assert "ratio_median" not in only["schemas"]["dcgm"] and " / dcgm:" not in alone.stdout
    # the kept history is the one the first Prometheus compacted, timed as it lies
    merged = report["blocks"]["dcgm"]["served"]
    assert only["blocks"]["dcgm"] == {"written": merged, "served": merged}
    assert (work / "dcgm" / "failures.csv").stat().st_mtime_ns == written
