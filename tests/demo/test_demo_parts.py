"""The demo's parts that decide whether a second run works: the history cache, its top-up, and
the clean-up of processes a killed run left behind."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import time
from pathlib import Path

from gpu_health.demo import history, processes

SPEC = history.HistorySpec(gpus=1, days=0.05, seed=3, resolution=60.0, hazard_scale=1.0)
NOW = 1_790_000_000.0  # fixed, so the windows (and their blocks) are the same on every run


def _block_ranges(tsdb: Path) -> list[tuple[int, int]]:
    return sorted(
        (meta["minTime"], meta["maxTime"])
        for meta in (json.loads(m.read_text()) for m in tsdb.glob("*/meta.json"))
    )


def test_history_is_cached_then_topped_up_to_now(tmp_path: Path) -> None:
    log = io.StringIO()
    first = history.prepare(tmp_path, SPEC, log, now=NOW)
    assert not first.reused
    assert first.end == NOW - NOW % 60
    assert abs(first.start - (NOW - SPEC.days * 86400)) <= 60
    blocks = _block_ranges(first.tsdb)
    assert blocks and max(b[1] for b in blocks) >= first.end * 1000

    # Shortly after: reused as is, nothing backfilled.
    log = io.StringIO()
    again = history.prepare(tmp_path, SPEC, log, now=NOW + 120)
    assert again.reused and again.end == first.end
    assert not [line for line in log.getvalue().splitlines() if line.startswith("backfill ")]
    assert _block_ranges(again.tsdb) == blocks

    # Twenty minutes later: only the gap is backfilled, on the same one-minute grid.
    log = io.StringIO()
    later = history.prepare(tmp_path, SPEC, log, now=NOW + 1200)
    assert later.reused and later.end == first.end + 1200
    assert "backfilling the last 20 minutes" in log.getvalue()
    added = sorted(set(_block_ranges(later.tsdb)) - set(blocks))
    assert added
    assert min(b[0] for b in added) == (first.end + 60) * 1000
    assert max(b[1] for b in added) >= later.end * 1000
    assert not (tmp_path / "history" / SPEC.key / "topup").exists()

    # Prometheus gets hard links, so its compactions never touch the cache.
    data = tmp_path / "prometheus-data"
    history.link_data_dir(later, data)
    assert _block_ranges(data) == _block_ranges(later.tsdb)
    chunk = next(data.glob("*/chunks/000001"))
    assert chunk.stat().st_nlink == 2


def test_interrupted_or_different_history_is_made_again(tmp_path: Path) -> None:
    made = history.prepare(tmp_path, SPEC, io.StringIO(), now=NOW)
    (made.tsdb.parent / "history.json").unlink()  # as if the first backfill was interrupted
    log = io.StringIO()
    remade = history.prepare(tmp_path, SPEC, log, now=NOW)
    assert not remade.reused and "backfilling" in log.getvalue()
    other = history.HistorySpec(1, 0.05, seed=4, resolution=60.0, hazard_scale=1.0)
    assert other.key != SPEC.key
    assert not history.prepare(tmp_path, other, io.StringIO(), now=NOW).reused


def test_leftovers_of_a_killed_run_are_stopped_and_nothing_else(tmp_path: Path) -> None:
    workdir = tmp_path / "demo"
    workdir.mkdir()
    mine = subprocess.Popen(["sleep", "60"], cwd=workdir, start_new_session=True)
    foreign = subprocess.Popen(["sleep", "60"], cwd=tmp_path, start_new_session=True)
    try:
        (workdir / "pids").write_text(f"exporter {mine.pid}\nscorer {foreign.pid}\nbad line\n")
        stopped = processes.stop_leftovers(workdir)
        assert stopped == [f"exporter (pid {mine.pid})"]
        assert mine.wait(timeout=5) != 0
        assert foreign.poll() is None
    finally:
        for process in (mine, foreign):
            process.kill()
            process.wait()
    assert processes.stop_leftovers(tmp_path / "nowhere") == []


def test_process_table_records_and_stops_whole_groups(tmp_path: Path) -> None:
    table = processes.ProcessTable(tmp_path)
    # The child forks a grandchild; stopping the child's group must end both.
    parent = table.spawn("shell", ["sh", "-c", "sleep 60 & echo $! > grandchild; wait"])
    marker = tmp_path / "grandchild"
    deadline = time.monotonic() + 5
    while not (marker.exists() and marker.read_text().strip()):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    grandchild = int(marker.read_text())
    assert (tmp_path / "pids").read_text() == f"shell {parent.pid}\n"
    table.stop_owned()
    assert parent.poll() is not None
    deadline = time.monotonic() + 5
    while os.path.exists(f"/proc/{grandchild}") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not os.path.exists(f"/proc/{grandchild}")


def test_usual_port_when_free_else_another(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        other = processes.port_or_free(taken)
        assert other != taken
    assert processes.port_or_free(taken) == taken


def test_summary_shows_grades_risks_alerts_and_notifications() -> None:
    from gpu_health.demo import summary
    from gpu_health.demo.notify_sink import Notification
    from gpu_health.report.model import AlertRow, FleetReport, RiskRow

    report = FleetReport("http://prom", 0.0, "1h", "ours", gpu_count=3)
    report.grades = {"excellent": 2, "good": 0, "fair": 0, "poor": 0, "critical": 1}
    report.risks = [
        RiskRow("GPU-aaaa", "node-1", "H100", "5", p7=0.25, p30=0.5, health=12.0, action="sell"),
        RiskRow("GPU-cccc", "node-3", "Tesla V100", "0", p7=0.5, p30=0.75, health=40.0),
    ]
    report.risks[0].state = "failed"  # a GPU's state reads at once, the scorer's numbers later
    # a GPU the scorer's economics did not value says why, as the report does
    report.risks[1].not_valued = "no economics for model Tesla V100"
    report.alerts = [
        AlertRow("GPUFallenOffBus", "critical", "node-1", "GPU-aaaa", True),
        AlertRow("GPUThermalSlowdown", "warning", "node-2", "GPU-bbbb", False),
    ]
    page = Notification(
        "pagerduty",
        "/v2/enqueue",
        {"event_action": "trigger", "payload": {"severity": "critical", "summary": "fell off"}},
    )
    text = summary.render(
        "title",
        [summary.Endpoint("prometheus", "http://prom")],
        report,
        {"prometheus": "up"},
        [page],
    )
    assert "http://prom  [up]" in text
    assert "Fleet health (3 GPUs): excellent 2  good 0  fair 0  poor 0  critical 1" in text
    row = next(line for line in text.splitlines() if line.startswith("node-1"))
    assert row.split() == ["node-1", "5", "GPU-aaaa", "failed", "25.0%", "50.0%", "12", "sell"]
    unvalued = next(line for line in text.splitlines() if line.startswith("node-3"))
    assert unvalued.endswith("not valued (no economics for model Tesla V100)"), unvalued
    assert "Alerts firing: 1" in text and "GPUThermalSlowdown" not in text
    assert "Notifications received: 1" in text
    assert "pagerduty trigger [critical] fell off (ok)" in text
    waiting = summary.render("title", [], None, {}, [], error="connection refused")
    assert "waiting for data: connection refused" in waiting


#: A stand-in for a running demo: it holds the work dir's lock, as the demo does, and is its
#: "exporter" in the pids file.
_HOLDER = """
import fcntl, os, sys, time
fd = os.open("demo.lock", os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)
os.write(fd, f"{os.getpid()}\\n".encode())
print("held", flush=True)
time.sleep(120)
"""


def test_a_second_demo_in_the_same_workdir_leaves_the_running_one_alone(tmp_path: Path) -> None:
    import sys

    from tests.demo.small_demo import small_demo_argv

    workdir = tmp_path / "demo"
    workdir.mkdir()
    first = subprocess.Popen(
        [sys.executable, "-c", _HOLDER], cwd=workdir, stdout=subprocess.PIPE, text=True
    )
    try:
        assert first.stdout is not None and first.stdout.readline() == "held\n"
        pids = f"exporter {first.pid}\n"
        (workdir / "pids").write_text(pids)
        # Were it not refused, this demo would stop the first one's processes and run 1 s.
        argv = [*small_demo_argv(workdir), "--days", "0.01", "--duration", "1"]
        second = subprocess.run(argv, capture_output=True, text=True, timeout=180, check=False)
        assert second.returncode == 1 and second.stdout == ""
        assert second.stderr == (
            f"error: another demo (pid {first.pid}) is running in {workdir}; stop it first "
            "(Ctrl-C where it runs) or give this one another --workdir\n"
        )
        assert first.poll() is None  # the first demo runs on, its pids file untouched
        assert (workdir / "pids").read_text() == pids
    finally:
        first.kill()
        first.wait()
