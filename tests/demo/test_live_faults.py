"""Live fault injection: the simulator watches its faults file, and ``gpu-health demo fault``
appends to the running demo's file — checked on the backend with a fake clock, then end to end
through a real exporter process and the real command."""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gpu_health import stack
from gpu_health.demo import live_faults
from gpu_health.demo.alert_timing import exporter
from gpu_health.errors import UserError
from gpu_health.sim.faults import FAULTS, load_faults_file
from gpu_health.sim.live import MAX_FAULTS_PER_BOARD, WATCH_EVERY, SimBackend
from gpu_health.telemetry.readings import GpuLostError
from tests.base.command_runs import is_one_line_error, run_main


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def _backend(path: Path, clock: Clock) -> SimBackend:
    return SimBackend(gpus=4, seed=0, clock=clock, faults_file=path)


def _lost(backend: SimBackend, index: int) -> bool:
    gpu = next(g for g in backend.inventory() if g.index == index)
    try:
        backend.sample(gpu)
    except GpuLostError:
        return True
    return False


def test_entries_appended_while_running_start_when_seen(tmp_path: Path) -> None:
    path = tmp_path / "faults.yaml"
    path.write_text("faults:\n  - {gpu: 0, fault: xid79, after: 10s}\n")
    clock = Clock()
    backend = _backend(path, clock)
    clock.now += 5
    assert not _lost(backend, 0) and not _lost(backend, 1)
    clock.now += 6  # an entry present at start counts `after` from the start
    assert _lost(backend, 0)

    clock.now += 100
    path.write_text(
        "faults:\n  - {gpu: 0, fault: xid79, after: 10s}\n  - {gpu: 1, fault: xid79}\n"
        "  - {gpu: 2, fault: xid79, after: 30s}\n"
    )
    clock.now += WATCH_EVERY
    assert _lost(backend, 1)  # after 0: lost at once, although the run is 100 s old
    assert not _lost(backend, 2)  # after 30 s counts from when it was seen
    clock.now += 31
    assert _lost(backend, 2)
    assert not _lost(backend, 3)


def test_an_unreadable_file_is_reported_once_per_change_and_read_again_when_fixed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "faults.yaml"
    path.write_text("faults: [{gpu: 0, fault: xid79}]\n")
    clock = Clock()
    backend = _backend(path, clock)
    caplog.set_level(logging.INFO, logger="gpu_health.sim.live")
    caplog.clear()
    # Cut off while typing: no entry can be told from the next, none is read.
    for text in (
        "faults: [{gpu: 0, fault: xid79}, {gpu: 1\n",
        "faults: [{gpu: 0, fault: xid79}, {\n",
    ):
        path.write_text(text)
        for _ in range(3):  # looked at on several scrapes, logged once per change
            clock.now += WATCH_EVERY
            assert not _lost(backend, 1)
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2, messages
    assert all(
        m.startswith(f"live faults: {path}: invalid YAML at line 2")
        and m.endswith(
            "; no entry of the file is read until it is fixed (faults injected before stay)"
        )
        for m in messages
    ), messages
    caplog.clear()
    path.write_text("faults: [{gpu: 0, fault: xid79}, {gpu: 1, fault: xid79}]\n")
    clock.now += WATCH_EVERY
    assert _lost(backend, 1)
    # gpu 0's entry was in the file before it broke: fixing the file does not inject it again.
    assert [r.getMessage() for r in caplog.records] == ["fault injected: gpu=1 fault=xid79"]


def test_a_board_takes_a_bounded_number_of_faults_however_often_the_file_changes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A soak that rewrote the faults file every second with new entries grew the exporter
    ~10 MB an hour: every fault stays on its board. A board takes MAX_FAULTS_PER_BOARD, then
    one warning line, then nothing; other boards are unaffected."""
    path = tmp_path / "faults.yaml"
    path.write_text("faults: []\n")
    clock = Clock()
    backend = _backend(path, clock)
    caplog.set_level(logging.INFO, logger="gpu_health.sim.live")
    gpu0 = next(g for g in backend.inventory() if g.index == 0)
    entries: list[str] = []
    extra_events = []
    for n in range(MAX_FAULTS_PER_BOARD + 8):
        entries.append(f"  - {{gpu: 0, fault: xid13, after: {n + 1}s}}\n")
        path.write_text("faults:\n" + "".join(entries))
        clock.now += WATCH_EVERY
        backend.sample(gpu0)
        extra_events.append(len(backend._boards[gpu0.uuid][1].extra_events))
    path.write_text("faults:\n" + "".join(entries) + "  - {gpu: 1, fault: xid13}\n")
    clock.now += WATCH_EVERY
    backend.sample(gpu0)
    said = [r.getMessage() for r in caplog.records]
    assert sum(m.startswith("fault injected: gpu=0 ") for m in said) == MAX_FAULTS_PER_BOARD
    assert sum("dropped: GPU 0 has taken" in m for m in said) == 1, said
    assert "fault injected: gpu=1 fault=xid13" in said
    # what the board holds stops growing at the cap
    assert extra_events[MAX_FAULTS_PER_BOARD - 1] == extra_events[-1] > 0


def test_entries_count_by_what_they_say_not_by_their_place(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "faults.yaml"
    path.write_text("faults:\n- {gpu: 0, fault: xid13}\n- {gpu: 1, fault: xid13}\n")
    clock = Clock()
    backend = _backend(path, clock)
    caplog.set_level(logging.INFO, logger="gpu_health.sim.live")
    caplog.clear()

    def injected_after(text: str) -> list[str]:
        caplog.clear()
        path.write_text(text)
        clock.now += WATCH_EVERY
        backend.sample(backend.inventory()[0])
        return [r.getMessage() for r in caplog.records]

    # the first entry removed: the second moves up and is not injected again
    assert injected_after("faults:\n- {gpu: 1, fault: xid13}\n") == []
    # the same entry once more is a second fault; spacing and 60s for 1m change nothing
    assert injected_after("faults:\n- {gpu: 1, fault: xid13}\n- {gpu: 1, fault: xid13}\n") == [
        "fault injected: gpu=1 fault=xid13"
    ]
    assert injected_after("faults: [{gpu: 1, fault: xid13}, {gpu: 1, fault: xid13}]  \n") == []
    # a removed entry written again (gpu-health demo fault after a hand edit) is injected
    assert injected_after(
        "faults: [{gpu: 1, fault: xid13}, {gpu: 1, fault: xid13}, {gpu: 0, fault: xid13}]\n"
    ) == ["fault injected: gpu=0 fault=xid13"]


def test_add_fault_needs_a_running_demo_and_a_valid_fault(tmp_path: Path) -> None:
    live_faults.prepare(tmp_path, gpus=8)
    with pytest.raises(UserError, match="no demo is running"):
        live_faults.add_fault(tmp_path, "gpu=3,fault=thermal")
    sleeper = subprocess.Popen(["sleep", "30"], cwd=tmp_path)
    try:
        (tmp_path / "pids").write_text(f"exporter {sleeper.pid}\n")
        with pytest.raises(UserError, match="slots 0-7"):
            live_faults.add_fault(tmp_path, "gpu=8,fault=thermal")
        with pytest.raises(UserError, match="unknown fault 'warm'"):
            live_faults.add_fault(tmp_path, "gpu=3,fault=warm")
        live_faults.add_fault(tmp_path, "gpu=3,fault=thermal")
        live_faults.add_fault(tmp_path, "gpu=5,fault=ecc_storm,after=30s,for=10m")
    finally:
        sleeper.kill()
        sleeper.wait()
    faults = load_faults_file(tmp_path / live_faults.FAULTS_FILE)
    assert [(f.gpu, f.fault, f.after, f.duration) for f in faults] == [
        (3, "thermal", 0.0, float("inf")),
        (5, "ecc_storm", 30.0, 600.0),
    ]


@pytest.mark.integration
def test_demo_fault_command_reaches_a_running_exporter(tmp_path: Path) -> None:
    faults_file = live_faults.prepare(tmp_path, gpus=4)
    args = ["--sim-gpus", "4", "--sim-faults-file", str(faults_file)]
    with exporter(tmp_path, args) as server:
        (tmp_path / "pids").write_text(f"exporter {server.process.pid}\n")
        assert b'gpu_up{gpu="2"' in stack.http_get(f"{server.url}/metrics")

        def demo_fault(spec: str) -> subprocess.CompletedProcess[str]:
            argv = [sys.executable, "-m", "gpu_health.cli", "demo", "fault", spec]
            return subprocess.run(
                [*argv, "--workdir", str(tmp_path)],
                capture_output=True,
                text=True,
                check=False,
                timeout=60,
            )

        bad = demo_fault("gpu=4,fault=xid79")
        assert bad.returncode == 1 and bad.stderr.count("\n") == 1 and "slots 0-3" in bad.stderr
        good = demo_fault("gpu=2,fault=xid79")
        assert good.returncode == 0, good.stderr
        assert "injected xid79 into slot 2, which alerts and the summary call GPU 2 on " in (
            good.stdout
        )
        assert "starts it at its next scrape (Prometheus scrapes it every 5s)" in good.stdout

        # The next scrape at least WATCH_EVERY after the last look at the file starts it (the
        # command itself takes longer than that): no waiting beyond one scrape.
        time.sleep(WATCH_EVERY)
        lines = stack.http_get(f"{server.url}/metrics").decode().splitlines()
        up = {
            line.split('gpu="')[1].split('"')[0]: line.split()[-1]
            for line in lines
            if line.startswith("gpu_up{")
        }
        assert up == {"0": "1.0", "1": "1.0", "2": "0.0", "3": "1.0"}


NOW = 1_790_000_000.0  # fixed, so which slot is empty is the same on every run


def _empty_slots(gpus: int, seed: int, hazard_scale: float, at: float) -> list[int]:
    from gpu_health.sim.fleet import build_fleet

    return [s.index for s in build_fleet(gpus, seed, hazard_scale).slots if s.board_at(at) is None]


def test_fault_command_refuses_a_slot_without_a_board_and_names_the_target(
    tmp_path: Path,
) -> None:
    # Seed 1 at 20x the failure rates: at NOW one board of 16 is away for RMA, and the
    # simulator shows 15 GPUs (an injected fault in that slot would be dropped).
    assert _empty_slots(16, 1, 20.0, NOW) == [11]
    backend = SimBackend(gpus=16, seed=1, hazard_scale=20.0, start_time=NOW)
    assert len(backend.inventory()) == 15
    live_faults.prepare(tmp_path, gpus=16, seed=1, hazard_scale=20.0, now=NOW)
    sleeper = subprocess.Popen(["sleep", "30"], cwd=tmp_path)
    try:
        (tmp_path / "pids").write_text(f"exporter {sleeper.pid}\n")

        def demo_fault(spec: str) -> subprocess.CompletedProcess[str]:
            argv = [sys.executable, "-m", "gpu_health.cli", "demo", "fault", spec]
            return subprocess.run(
                [*argv, "--workdir", str(tmp_path)], capture_output=True, text=True, timeout=60
            )

        bad = demo_fault("gpu=11,fault=thermal")
        assert bad.returncode == 1 and bad.stdout == ""
        assert bad.stderr == (
            "error: fault 'gpu=11,fault=thermal': slot 11 (GPU 3 on gpu-node-002) has no board "
            "installed (it is away for RMA), so a fault there would never fire; slots with a "
            "board: 0-10, 12-15\n"
        )
        # gpu= is the fleet-wide slot; the output names the node and per-node GPU of alerts.
        good = demo_fault("gpu=10,fault=thermal")
        assert good.returncode == 0, good.stderr
        assert good.stdout.startswith(
            "injected thermal into slot 10, which alerts and the summary call GPU 2 on "
            "gpu-node-002, of the demo in "
        )
    finally:
        sleeper.kill()
        sleeper.wait()
    faults = load_faults_file(tmp_path / live_faults.FAULTS_FILE)
    assert [(f.gpu, f.fault) for f in faults] == [(10, "thermal")]


def test_demo_refuses_a_start_fault_in_a_slot_without_a_board(tmp_path: Path) -> None:
    now = time.time()
    empty = next(
        ((seed, slots[0]) for seed in range(20) if (slots := _empty_slots(16, seed, 20.0, now))),
        None,
    )
    assert empty is not None, "no seed has a board away for RMA now"
    seed, slot = empty
    spec = f"gpu={slot},fault=xid79"
    workdir = tmp_path / "demo"
    argv = [sys.executable, "-m", "gpu_health.cli", "demo", "--gpus", "16", "--seed", str(seed)]
    result = subprocess.run(
        [*argv, "--fault", spec, "--workdir", str(workdir)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"error: --fault {spec!r}: slot {slot} (GPU ")
    assert "has no board installed" in result.stderr
    assert not workdir.exists()  # refused before anything started


def test_the_exporter_logs_a_fault_in_a_slot_without_a_board(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from gpu_health.sim.faults import parse_fault

    assert _empty_slots(16, 1, 20.0, NOW) == [11]
    faults = [parse_fault("gpu=11,fault=thermal"), parse_fault("gpu=3,fault=thermal")]
    with caplog.at_level(logging.INFO, logger="gpu_health.sim.live"):
        SimBackend(gpus=16, seed=1, hazard_scale=20.0, start_time=NOW, faults=faults)
    messages = [r.getMessage() for r in caplog.records]
    assert any("gpu=11 fault=thermal dropped: slot 11 has no board" in m for m in messages)
    assert "fault injected: gpu=3 fault=thermal" in messages


# --- the command's refusals: one line, nothing written ---------------------------------------

#: Seed 0's first four nodes hold H100, A100, H200 and L40S boards: slots 24-31 are L40S boards,
#: which have no NVLink.
L40S_SLOT = 26


@pytest.fixture
def running_demo(tmp_path: Path) -> Iterator[Path]:
    """A work dir as a running 32-GPU demo (seed 0, 20x) leaves it: its faults file and fleet,
    and an "exporter" (a sleeper) working in it."""
    live_faults.prepare(tmp_path, gpus=32, seed=0, hazard_scale=20.0, now=NOW)
    sleeper = subprocess.Popen(["sleep", "120"], cwd=tmp_path)
    (tmp_path / "pids").write_text(f"exporter {sleeper.pid}\n")
    try:
        yield tmp_path
    finally:
        sleeper.kill()
        sleeper.wait()


def _demo_fault(workdir: Path, spec: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    from gpu_health.cli import main

    return run_main(main, ["demo", "fault", spec, "--workdir", str(workdir)], capsys)


def test_fault_command_refuses_nvlink_errors_on_a_board_without_nvlink(
    running_demo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = running_demo / live_faults.FAULTS_FILE
    before = path.read_bytes()
    code, err = _demo_fault(running_demo, f"gpu={L40S_SLOT},fault=nvlink_errors", capsys)
    assert is_one_line_error(code, err), err
    assert err == (
        f"error: fault 'gpu={L40S_SLOT},fault=nvlink_errors': slot {L40S_SLOT} (GPU 2 on "
        "gpu-node-004, L40S) has no NVLink; a fault there would never fire\n"
    )
    assert path.read_bytes() == before
    # Every other fault is taken there, and nvlink_errors on a board with NVLink (an H100).
    assert _demo_fault(running_demo, f"gpu={L40S_SLOT},fault=ecc_storm", capsys)[0] == 0
    assert _demo_fault(running_demo, "gpu=2,fault=nvlink_errors", capsys)[0] == 0
    faults = load_faults_file(path)
    assert [(f.gpu, f.fault) for f in faults] == [(L40S_SLOT, "ecc_storm"), (2, "nvlink_errors")]


def test_demo_refuses_a_start_fault_the_board_cannot_show(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from gpu_health.cli import main

    workdir = tmp_path / "demo"
    spec = f"gpu={L40S_SLOT},fault=nvlink_errors"
    # Small and bounded: were the fault taken, this demo would stop by itself.
    small = ["--gpus", "32", "--days", "0.01", "--duration", "1", "--any-ports"]
    argv = ["demo", *small, "--fault", spec, "--workdir", str(workdir)]
    code, err = run_main(main, argv, capsys)
    assert is_one_line_error(code, err), err
    assert err == (
        f"error: --fault {spec!r}: slot {L40S_SLOT} (GPU 2 on gpu-node-004, L40S) has no "
        "NVLink; a fault there would never fire\n"
    )
    assert not workdir.exists()  # refused before anything started


def test_demo_refuses_a_start_fault_longer_than_a_year(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from gpu_health.cli import main

    workdir = tmp_path / "demo"
    spec = "gpu=3,fault=ecc_storm,after=5m,for=400d"
    # Small and bounded: were the fault taken, this demo would stop by itself.
    small = ["--gpus", "8", "--days", "0.01", "--duration", "1", "--any-ports"]
    code, err = run_main(main, ["demo", *small, "--fault", spec, "--workdir", str(workdir)], capsys)
    assert is_one_line_error(code, err), err
    assert err == (
        f"error: --fault {spec!r}: for '400d' is more than 366 days, longer than the simulator "
        "runs (leave it out: until exit)\n"
    )
    assert not workdir.exists()  # refused before anything started


def _add_concurrently(workdir: str, spec: str, barrier: Any, codes: Any, i: int) -> None:
    """One ``gpu-health demo fault`` in a process of its own, started with the others."""
    import contextlib
    import io

    from gpu_health.cli import main

    barrier.wait()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        codes[i] = main(["demo", "fault", spec, "--workdir", workdir])


def test_concurrent_fault_commands_lose_no_fault(running_demo: Path) -> None:
    import multiprocessing

    ctx = multiprocessing.get_context("fork")  # the commands start at once, not one per import
    slots = [s for s in range(32) if s != L40S_SLOT][:24]
    barrier = ctx.Barrier(len(slots))
    codes = ctx.Array("i", [-1] * len(slots))
    procs = [
        ctx.Process(
            target=_add_concurrently,
            args=(str(running_demo), f"gpu={s},fault=xid13", barrier, codes, i),
        )
        for i, s in enumerate(slots)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert list(codes) == [0] * len(slots)  # every command said it injected its fault ...
    faults = load_faults_file(running_demo / live_faults.FAULTS_FILE)
    assert sorted(f.gpu for f in faults) == slots  # ... and every one is in the file


#: how the command ends its refusal of a file the exporter reads no entry of, and of a file
#: with an entry the exporter skips
NONE_READ = "(the demo's exporter reads no entry of the file until it is fixed; nothing was added)"
SKIPPED = (
    "(the demo's exporter skips that entry and applies the others; fix or remove it first, "
    "nothing was added)"
)


@pytest.mark.parametrize(
    ("content", "says"),
    [
        # cut off while typing
        (b"faults: [\n  - gpu: 3\n", ": invalid YAML at line 2, column 3: "),
        (b"faults:\n- gpu: 3\n  fault: \xff\xfe\n", ": not UTF-8 text"),
        # a hand edit the exporter refuses: an unknown key, an unknown fault, a slot outside the
        # fleet, a fault the slot's board cannot show
        (
            b"faults:\n- gpu: 20\n  fault: thermal\n  severity: high\n",
            ": faults[0].severity: unknown key (allowed: after, fault, for, gpu)",
        ),
        (b"faults:\n- {gpu: 1, fault: melted}\n", ": faults[0]: unknown fault 'melted'"),
        (b"faults:\n- {gpu: 40, fault: thermal}\n", ": faults[0]: the demo's fleet has slots 0-31"),
        (
            b"faults:\n- {gpu: 27, fault: xid79}\n- {gpu: 27, fault: nvlink_errors}\n",
            ": faults[1]: slot 27 (GPU 3 on gpu-node-004, L40S) has no NVLink",
        ),
    ],
)
def test_fault_command_refuses_a_faults_file_with_an_entry_the_exporter_skips(
    running_demo: Path, content: bytes, says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = running_demo / live_faults.FAULTS_FILE
    path.write_bytes(content)
    code, err = _demo_fault(running_demo, "gpu=5,fault=thermal", capsys)
    assert is_one_line_error(code, err), err
    assert err.startswith(f"error: {path}{says}")
    assert err.endswith(f" {SKIPPED if 'faults[' in says else NONE_READ}\n")
    assert path.read_bytes() == content  # nothing written


def test_the_exporter_skips_what_the_fault_command_refuses(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The watched file with nvlink_errors on an L40S is reported, as the command says, and the
    file's other entry applies."""
    path = tmp_path / "faults.yaml"
    path.write_text("faults: []\n")
    clock = Clock()
    backend = SimBackend(gpus=32, seed=0, clock=clock, faults_file=path, hazard_scale=20.0)
    caplog.set_level(logging.WARNING, logger="gpu_health.sim.live")
    path.write_text(
        f"faults: [{{gpu: {L40S_SLOT}, fault: nvlink_errors}}, {{gpu: 1, fault: xid79}}]\n"
    )
    clock.now += WATCH_EVERY
    assert _lost(backend, 1)
    assert [r.getMessage() for r in caplog.records] == [
        f"live faults: {path}: faults[0]: slot {L40S_SLOT} (GPU 2 on gpu-node-004, L40S) has no "
        "NVLink; a fault there would never fire; entry skipped, the file's other entries apply "
        "(fixing it injects it from then)"
    ]


def test_an_invalid_entry_at_the_exporters_start_refuses_the_start(tmp_path: Path) -> None:
    """At start the file is checked like --sim-fault: the one line names file and entry."""
    path = tmp_path / "faults.yaml"
    path.write_text("faults: [{gpu: 1, fault: xid79}, {gpu: 9, fault: thermal}]\n")
    exporter_bin = Path(sys.executable).with_name("gpu-health-exporter")
    argv = [str(exporter_bin), "--backend", "sim", "--sim-gpus", "4"]
    argv += ["--sim-faults-file", str(path), "--web.listen-address=127.0.0.1:0"]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode != 0 and result.stdout == ""
    assert result.stderr == f"error: {path}: faults[1]: the simulated fleet has GPUs 0-3\n"


def _log_lines(path: Path, fragment: str) -> list[str]:
    """The exporter's log lines holding ``fragment``, without their time stamps."""
    lines = path.read_text(errors="replace").splitlines()
    return [line.split(" WARNING ", 1)[-1] for line in lines if fragment in line]


@pytest.mark.integration
def test_a_running_exporter_applies_the_valid_entries_of_a_file_with_an_invalid_one(
    tmp_path: Path,
) -> None:
    """One bad entry of the watched file is skipped and logged once per change of the file;
    the others are injected (before, the exporter ignored the whole file until it was fixed)."""
    faults_file = tmp_path / "faults.yaml"
    faults_file.write_text("faults: []\n")
    args = ["--sim-gpus", "4", "--sim-faults-file", str(faults_file)]
    with exporter(tmp_path, args) as server:
        log = server.log_path

        def up_after(text: str) -> dict[str, str]:
            faults_file.write_text(text)
            time.sleep(WATCH_EVERY)
            lines = stack.http_get(f"{server.url}/metrics").decode().splitlines()
            return {
                line.split('gpu="')[1].split('"')[0]: line.split()[-1]
                for line in lines
                if line.startswith("gpu_up{")
            }

        bad = "- {gpu: 1, fault: melted}\n- {gpu: 9, fault: thermal}\n"
        up = up_after("faults:\n" + bad + "- {gpu: 2, fault: xid79}\n")
        assert up == {"0": "1.0", "1": "1.0", "2": "0.0", "3": "1.0"}
        skipped = [
            f"gpu_health.sim.live: live faults: {faults_file}: faults[0]: unknown fault 'melted' "
            "(allowed: " + ", ".join(FAULTS) + ", xidNN); entry skipped, the file's other "
            "entries apply (fixing it injects it from then)",
            f"gpu_health.sim.live: live faults: {faults_file}: faults[1]: the simulated fleet "
            "has GPUs 0-3; entry skipped, the file's other entries apply (fixing it injects it "
            "from then)",
        ]
        assert _log_lines(log, "live faults:") == skipped
        # Further scrapes of an unchanged file log nothing more ...
        time.sleep(WATCH_EVERY)
        stack.http_get(f"{server.url}/metrics")
        assert _log_lines(log, "live faults:") == skipped
        # ... each change of the file says again which entries are skipped.
        up = up_after("faults:\n" + bad + "- {gpu: 2, fault: xid79}\n- {gpu: 3, fault: xid79}\n")
        assert up == {"0": "1.0", "1": "1.0", "2": "0.0", "3": "0.0"}
        assert _log_lines(log, "live faults:") == skipped * 2
        # Fixed, the entry is injected; the others are not injected twice.
        up = up_after("faults:\n" + "".join(f"- {{gpu: {g}, fault: xid79}}\n" for g in (1, 2, 3)))
        assert up == {"0": "1.0", "1": "0.0", "2": "0.0", "3": "0.0"}
        assert _log_lines(log, "live faults:") == skipped * 2
        injected = _log_lines(log, "fault injected:")
        assert [line.split(": ", 1)[-1] for line in injected] == [
            f"fault injected: gpu={gpu} fault=xid79" for gpu in (2, 3, 1)
        ]


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("gpu=1_0,fault=thermal", "gpu '1_0' is not a GPU index"),  # int() reads slot 10
        ("gpu=+3,fault=thermal", "gpu '+3' is not a GPU index"),
        ("gpu=3,fault=thermal,after=99999999999d", "after '99999999999d' is more than 366 days"),
        (
            "gpu=3,fault=thermal,for=99999999999d",
            "for '99999999999d' is more than 366 days, longer than the simulator runs (leave it "
            "out: until exit)\n",
        ),
    ],
)
def test_fault_command_refuses_a_spec_that_means_something_else(
    running_demo: Path, spec: str, says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = running_demo / live_faults.FAULTS_FILE
    before = path.read_bytes()
    code, err = _demo_fault(running_demo, spec, capsys)
    assert is_one_line_error(code, err), err
    assert err.startswith(f"error: fault {spec!r}: {says}")
    assert path.read_bytes() == before


def test_fault_command_help_describes_its_one_spec(capsys: pytest.CaptureFixture[str]) -> None:
    from gpu_health.cli import main

    with pytest.raises(SystemExit) as stop:
        main(["demo", "fault", "--help"])
    assert stop.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "repeatable" not in text  # one SPEC per command, unlike the demo's --fault
    assert "SPEC the fault: 'gpu=N,fault=NAME[,after=60s][,for=10m]'" in text
    assert "after = simulated time from when the exporter sees it" in text
    assert "nvlink_errors" in text and "xidNN" in text
