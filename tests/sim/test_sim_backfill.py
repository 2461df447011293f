"""``gpu-health backfill`` via its real CLI: deterministic bytes, served by a real Prometheus."""

from __future__ import annotations

import csv
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gpu_health import stack

BIN = Path(sys.executable).parent / "gpu-health"
END = float(int(time.time() // 3600 * 3600))  # inside Prometheus' retention


def _backfill(
    out: Path, *extra: str, seed: int = 3, gpus: int = 8
) -> subprocess.CompletedProcess[str]:
    argv = [str(BIN), "backfill", "--gpus", str(gpus), "--days", "0.125", "--out", str(out)]
    argv += ["--seed", str(seed), "--end-time", str(END), "--keep-openmetrics", *extra]
    result = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=300)
    assert result.returncode == 0, result.stderr
    return result


def _files(out: Path) -> dict[str, bytes]:
    found = {p.name: p.read_bytes() for p in sorted((out / "openmetrics").glob("*.om"))}
    found |= {p.name: p.read_bytes() for p in (out / "failures.csv", out / "gpus.csv")}
    return found


@pytest.mark.slow
@pytest.mark.integration
def test_backfill_is_deterministic_and_prometheus_serves_it(
    tmp_path: Path, prometheus_factory: stack.Any
) -> None:
    first = _backfill(tmp_path / "a", "--hazard-scale", "30")
    _backfill(tmp_path / "b", "--hazard-scale", "30")
    _backfill(tmp_path / "c", "--hazard-scale", "30", seed=4)
    a, b, c = _files(tmp_path / "a"), _files(tmp_path / "b"), _files(tmp_path / "c")
    assert len(a) >= 3 and a == b  # same seed, same bytes
    assert a["gpus.csv"] != c["gpus.csv"]
    assert "samples/s" in first.stderr and "100.0%" in first.stderr  # progress and throughput

    with (tmp_path / "a" / "gpus.csv").open() as fh:
        gpus = list(csv.DictReader(fh))
    assert {"uuid", "node", "model", "purchase_date", "hours_in_service"} <= set(gpus[0])
    server = prometheus_factory(data_dir=tmp_path / "a")
    up = stack.query(server.url, "gpu_up", at=END)
    live = [g for g in gpus if not g["removed"] or float(g["removed"]) > END]
    assert {r["metric"]["uuid"] for r in up} <= {g["uuid"] for g in gpus}
    assert len(up) >= len(live) - 1
    temps = stack.query(
        server.url, 'max_over_time(gpu_temperature_celsius{sensor="gpu"}[3h])', at=END
    )
    assert temps and all(20 < float(r["value"][1]) < 100 for r in temps)
    sample_count = stack.query(server.url, "count_over_time(gpu_power_watts[3h])", at=END)
    assert max(int(r["value"][1]) for r in sample_count) >= 170  # one sample a minute
    health = stack.query(server.url, 'gpu_health_score{dimension="overall"}', at=END)
    assert health and all(0 <= float(r["value"][1]) <= 100 for r in health)
    labels = up[0]["metric"]
    assert {"node", "gpu", "uuid", "pci_bus_id", "model"} <= set(labels)
    assert labels["node"].startswith("gpu-node-")
    # History answers the mixin's selectors like a scrape of a per-node exporter would.
    assert labels["job"] == "gpu-health-exporter"
    assert labels["instance"] == f"{labels['node']}:9840"
    info = stack.query(server.url, 'gpu_info{job="gpu-health-exporter"}', at=END)
    assert {r["metric"]["uuid"] for r in info} == {g["uuid"] for g in gpus if g["uuid"]} & {
        r["metric"]["uuid"] for r in info
    } and len(info) >= len(up)
    scored = stack.query(server.url, 'gpu_health_grade{job="gpu-health-exporter"} == 1', at=END)
    assert len(scored) == len(up)


@pytest.mark.slow
@pytest.mark.integration
def test_dcgm_schema_uses_dcgm_exporter_names_labels_and_units(
    tmp_path: Path, prometheus_factory: stack.Any
) -> None:
    # 64 GPUs = 8 nodes: jobs churn per node in 4-hour blocks, so a single node can sit idle
    # for the whole 3-hour window; eight together practically never do.
    _backfill(tmp_path / "d", "--schema", "dcgm", "--instance", "10.0.0.7:9400", gpus=64)
    text = next((tmp_path / "d" / "openmetrics").glob("*.om")).read_text()
    assert "gpu_temperature_celsius" not in text
    server = prometheus_factory(data_dir=tmp_path / "d")
    temp = stack.query(server.url, "DCGM_FI_DEV_GPU_TEMP", at=END)
    assert len(temp) >= 60  # a few may be away for RMA
    assert {"gpu", "UUID", "pci_bus_id", "device", "modelName", "Hostname"} <= set(
        temp[0]["metric"]
    )
    assert temp[0]["metric"]["device"] == f"nvidia{temp[0]['metric']['gpu']}"
    assert {r["metric"]["job"] for r in temp} == {"dcgm-exporter"}
    assert {r["metric"]["instance"] for r in temp} == {"10.0.0.7:9400"}
    clock = stack.query(server.url, "max(DCGM_FI_DEV_SM_CLOCK)", at=END)
    assert 100 < float(clock[0]["value"][1]) <= 2520  # MHz, not Hz
    used = stack.query(server.url, "max(DCGM_FI_DEV_FB_USED)", at=END)
    assert 100 < float(used[0]["value"][1]) < 150_000  # MiB, not bytes
    util = stack.query(server.url, "max(max_over_time(DCGM_FI_DEV_GPU_UTIL[3h]))", at=END)
    assert 1 < float(util[0]["value"][1]) <= 100  # percent, not a ratio
    for name in (
        "DCGM_FI_DEV_XID_ERRORS",
        "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION",
        "DCGM_FI_DEV_PCIE_REPLAY_COUNTER",
        "DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS",
    ):
        assert stack.query(server.url, name, at=END), name


def test_bad_arguments_fail_in_one_line(tmp_path: Path) -> None:
    for extra, word in (
        (["--resolution", "soon"], "--resolution"),
        (["--end-time", "x"], "--end-time"),
    ):
        argv = [str(BIN), "backfill", "--out", str(tmp_path / "x"), *extra]
        result = subprocess.run(argv, capture_output=True, text=True, check=False)
        assert result.returncode != 0
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and word in lines[0] and "Traceback" not in result.stderr


def _progress_argv(out: Path) -> list[str]:
    # One GPU for a day at 15-minute steps: 13 two-hour windows, about a second.
    argv = [str(BIN), "backfill", "--gpus", "1", "--days", "1", "--resolution", "15m"]
    return [*argv, "--out", str(out), "--end-time", str(END)]


def test_piped_progress_is_a_few_plain_lines(tmp_path: Path) -> None:
    result = subprocess.run(
        _progress_argv(tmp_path / "p"), capture_output=True, text=True, check=False, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "\r" not in result.stderr  # no terminal frames in a log or CI transcript
    lines = [line for line in result.stderr.splitlines() if line.startswith("backfill ")]
    assert 2 <= len(lines) <= 10  # one per tenth of the windows at most
    assert lines[-1].startswith("backfill 100.0% (13/13 windows)")
    assert "samples/s written" in lines[-1] and " left" not in lines[-1]
    assert all(line.endswith(" left") for line in lines[:-1])  # how long the rest should take


def test_a_history_that_cannot_fit_is_refused_before_it_is_written(tmp_path: Path) -> None:
    """10 years of 1,000 GPUs at one sample a second: terabytes. It was started (its 2.5 GB of
    timestamps allocated first), to end days later on a full disk."""
    argv = [str(BIN), "backfill", "--gpus", "1000", "--days", "3650", "--resolution", "1s"]
    result = subprocess.run(
        [*argv, "--out", str(tmp_path / "huge"), "--end-time", str(END)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1, result.stderr  # no progress line: no window written
    assert "GB in Prometheus' format" in result.stderr and "GB free" in result.stderr
    assert "coarser --resolution" in result.stderr
    assert list(tmp_path.iterdir()) == []  # no staging directory left behind


def test_progress_on_a_terminal_is_a_redrawn_bar(tmp_path: Path) -> None:
    import os
    import pty

    leader, follower = pty.openpty()
    try:
        process = subprocess.Popen(
            _progress_argv(tmp_path / "t"), stdout=subprocess.DEVNULL, stderr=follower
        )
        os.close(follower)
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        assert process.wait(timeout=120) == 0
    finally:
        os.close(leader)
    shown = b"".join(chunks).decode()
    assert shown.count("\rbackfill [") == 13
    assert "100.0%" in shown


def test_out_is_a_new_empty_or_data_directory(tmp_path: Path) -> None:
    """``--out`` into a folder holding the operator's own ledger replaced it without a word, and
    ``--out ''`` wrote into the current directory."""
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "failures.csv").write_text("MY LEDGER\n")
    argv = [str(BIN), "backfill", "--gpus", "2", "--days", "0.01", "--resolution", "1h"]
    result = subprocess.run([*argv, "--out", str(mine)], capture_output=True, text=True)
    assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
    assert "holds 'failures.csv', which no Prometheus data directory" in result.stderr
    assert (mine / "failures.csv").read_text() == "MY LEDGER\n"
    (tmp_path / "cwd").mkdir()
    (tmp_path / "cwd" / "notes.txt").write_text("x\n")
    result = subprocess.run(
        [*argv, "--out", ""], capture_output=True, text=True, cwd=tmp_path / "cwd"
    )
    assert result.returncode == 1 and "holds 'notes.txt'" in result.stderr, result.stderr
    assert sorted(p.name for p in (tmp_path / "cwd").iterdir()) == ["notes.txt"]
    data = tmp_path / "data"
    for _ in range(2):  # a new directory, then the same one extended
        done = subprocess.run([*argv, "--out", str(data)], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
