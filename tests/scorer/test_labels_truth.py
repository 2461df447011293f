"""``gpu-health-scorer labels --truth``: the known failures are read and checked before the scan.

The truth file was read after the whole scan, once the ledger was written: a wrong path or a
bad time cost the scan and left ``--out`` replaced. It accepted a mode no ledger kind could
match (``melted``), rows dated after the scanned history (2099), and a row listed twice was
counted twice, halving the recall.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from gpu_health.scorer.cli import main
from tests.base.command_runs import is_one_line_error, run_main
from tests.scorer.test_labels import HOUR, STEP, History, _gpu

#: Nothing listens here: a run that reached the scan would fail on it, and say so.
DEAD = ["--prometheus.url", "http://127.0.0.1:9", "--prometheus.retries", "1"]
HEADER = "uuid,time,mode\n"


@pytest.mark.parametrize(
    ("rows", "said"),
    [
        (None, "file not found"),
        ("GPU-a,yesterday,nvlink\n", "line 2: time 'yesterday': expected Unix seconds or ISO"),
        ("GPU-a,1790000000,nvlink\nGPU-b,1790000000,melted\n",
         "line 3: mode: 'melted' is not a known failure mode (allowed: "),
        ("GPU-a,1790000000,nvlink\nGPU-b,1790000000,hbm\nGPU-a,2026-09-21T14:13:20Z,hang\n",
         "line 4: GPU-a at 2026-09-21T14:13:20Z is already listed on line 2"),
        ("uuid,when,mode\n", "missing column(s) time"),
    ],
)  # fmt: skip
def test_a_bad_truth_file_is_refused_before_the_scan_and_the_ledger(
    tmp_path: Path, rows: str | None, said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    truth = tmp_path / "truth.csv"
    if rows is not None:
        truth.write_text(rows if rows.startswith("uuid,when") else HEADER + rows)
    ledger = tmp_path / "ledger.csv"
    argv = ["labels", *DEAD, "--since", "4d", "--truth", str(truth), "--out", str(ledger)]
    code, err = run_main(main, argv, capsys)
    assert is_one_line_error(code, err), err
    assert err.startswith(f"error: {truth}: ") and said in err, err
    assert "127.0.0.1:9" not in err  # refused before any query
    assert not ledger.exists()  # and before the ledger is written


def test_the_allowed_modes_are_the_ledgers_kinds_and_the_simulators() -> None:
    from gpu_health.scorer.ledger import KIND_PRIORITY, truth_modes
    from gpu_health.sim.hazard import MODE_BY_NAME

    assert truth_modes() >= set(KIND_PRIORITY) | set(MODE_BY_NAME) | {"hbm", "pcie", "other"}


def test_truth_after_the_scans_end_is_a_warning_and_recall_counts_each_failure_once(
    tmp_path: Path,
    backfill: Callable[[str], Path],
    prometheus_factory: Callable[..., object],
    capsys: pytest.CaptureFixture[str],
) -> None:
    end = math.floor(time.time() / STEP) * STEP - HOUR
    h = History(end - 86400, end)
    labels = _gpu("n1", 0, "GPU-X")
    h.series("gpu_up", "gauge", labels, lambda t: 1.0)
    failed = end - 12 * HOUR
    h.series(
        "gpu_xid_errors", "counter", {**labels, "xid": "74"}, lambda t: 1.0 if t >= failed else None
    )
    server = prometheus_factory(data_dir=backfill(h.text()))
    truth = tmp_path / "truth.csv"
    truth.write_text(HEADER + f"GPU-X,{failed:.0f},nvlink\nGPU-Y,2099-01-01T00:00:00Z,hang\n")
    argv = ["labels", "--prometheus.url", server.url, "--since", "1d"]  # type: ignore[attr-defined]
    argv += ["--end", f"{end:.0f}", "--schema", "ours", "--truth", str(truth)]
    argv += ["--out", str(tmp_path / "ledger.csv")]
    code, err = run_main(main, argv, capsys)
    assert code == 0, err
    assert (
        f"labels: warning: --truth {truth}: 1 of 2 failures are dated after the scan's end" in err
    ), err
    assert "e.g. line 3 at 2099-01-01T00:00:00Z: they are not judged" in err, err
    assert "| nvlink | 1 | 1 | 100% |" in err, err
    assert "| **all** | 1 | 1 | 100% |" in err, err
