"""bench/bench_chunk_cost.py runs end to end on a small history and reports what it says.

Its numbers are in docs/benchmarks.md ("What a long window costs"); this runs the bench as a
command on a hand-made history (4 GPUs, 2 days of 5-minute readings and their hourly samples,
written by promtool in 2-hour blocks as Prometheus' head writes them) and checks that its
report holds together: one chunk per series and 2-hour block, the same chunks for both tiers
over every window, twelve times the samples in the raw one, every GPU read, and a fit.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gpu_health import stack
from gpu_health.scorer.history_source import hourly_name
from tests.bench.bench_runs import run_bench

pytestmark = [pytest.mark.integration]

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_chunk_cost.py"
START = 1_700_006_400  # a multiple of 2 hours: the blocks' edges
END = START + 2 * 86400
NAME = "DCGM_FI_DEV_POWER_USAGE"


def _history() -> str:
    lines = [f"# TYPE {NAME} gauge", f"# TYPE {hourly_name(NAME)} gauge"]
    for name, step in ((NAME, 300), (hourly_name(NAME), 3600)):
        for gpu in range(4):
            labels = f'Hostname="n0",gpu="{gpu}",UUID="GPU-{gpu}",modelName="H100"'
            lines += [f"{name}{{{labels}}} {300 + gpu} {t}" for t in range(START, END, step)]
    return "\n".join([*lines, "# EOF"]) + "\n"


def test_the_bench_counts_chunks_and_samples_of_both_tiers(tmp_path: Path) -> None:
    source = tmp_path / "history.om"
    source.write_text(_history())
    data = tmp_path / "tsdb"
    stack.promtool_backfill(source, data)
    _, report = run_bench(
        BENCH, tmp_path, "--data-dir", str(data), "--at", str(END - 1), "--runs", "1"
    )
    assert report["chunks_per_series_and_span"] == 1.0
    reads = {(r["tier"], r["window"]): r for r in report["reads"]}
    assert len(reads) == 8
    for window in ("1d", "3d", "7d", "13d"):
        raw, hourly = reads[("raw", window)], reads[("hourly", window)]
        assert raw["series"] == hourly["series"] == 4
        assert raw["chunks"] == hourly["chunks"] > 0
        assert raw["samples"] == 12 * hourly["samples"]
    assert reads[("raw", "1d")]["chunks"] == 4 * 13  # 12 blocks and the one it starts in
    assert reads[("raw", "7d")]["chunks"] == 4 * 24  # the history's two days
    assert set(report["fit"]) == {"per_read_s", "per_chunk_us", "per_sample_ns", "largest_misfit"}
