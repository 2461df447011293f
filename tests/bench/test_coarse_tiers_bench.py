"""bench/bench_coarse_tiers.py runs end to end on a small history and reports what it says.

Its numbers are in docs/benchmarks.md; this runs the bench as a command, twice, on the random
history of ``tests/scorer/test_active_hours.py`` (12 GPUs, real Prometheus and promtool), which
has no hourly samples: the first run writes every tier, the second reuses them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bench.bench_runs import run_bench, small_dcgm_history
from tests.scorer.test_active_hours import AT

pytestmark = [pytest.mark.integration]

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_coarse_tiers.py"
FORMS = {"hourly", "6h_all_long", "6h_from_21d", "1d_all_long", "1d_from_21d"}


def test_the_bench_writes_the_tiers_once_and_times_every_form(tmp_path: Path) -> None:
    data = small_dcgm_history(tmp_path)
    args = (
        "--data-dir",
        str(data),
        "--at",
        str(AT),
        "--rounds",
        "1",
        "--settle-s",
        "2",
        "--no-compaction-wait",
    )
    _, first = run_bench(BENCH, tmp_path, *args)
    written = first["tier_samples_written"]
    assert set(written) == {"1h", "6h", "1d"}
    # the same series at every tier: about 6 and 4 times fewer samples each step up
    assert written["1h"] > 4 * written["6h"] > 0
    assert written["6h"] > 3 * written["1d"] > 0
    assert first["queries"] > 0
    assert set(first["seconds"]) == FORMS
    rows = first["per_query"]
    assert len(rows) == first["queries"]
    assert all(set(r["seconds"]) == FORMS and r["features"] for r in rows)
    # a query whose windows are all under 21 days is sent unchanged in the "from 21d" forms
    unchanged = [r for r in rows if all("30d" not in f and "23d" not in f for f in r["features"])]
    assert unchanged
    for r in unchanged:
        for form in ("6h_from_21d", "1d_from_21d"):
            a = r["agreement"][form]
            assert a["same"] == a["answers"], (r["features"], form, a)
    assert any(r["agreement"]["1d_all_long"]["answers"] > 0 for r in rows)

    _, again = run_bench(BENCH, tmp_path, *args)
    assert again["tier_samples_written"] == {}
    assert again["queries"] == first["queries"]
