"""Issue #19: every bad command-line value is one line on stderr and a non-zero exit, before any
work starts (no GPU is simulated, no Prometheus is queried, no directory is created)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gpu_health import cli as umbrella
from gpu_health import cli_validate
from gpu_health.exporter import cli as exporter_cli
from gpu_health.scorer import cli as scorer_cli
from tests.base.command_runs import Main, is_one_line_error, run_main

DEAD_PROMETHEUS = ["--prometheus.url", "http://127.0.0.1:9"]


EXPORTER_CASES = [
    (["--backend", "sim", "--sim-gpus", "10000000"], "--sim-gpus"),
    (["--backend", "replay", "--replay.gpus", "100000000"], "--replay.gpus"),
    (["--backend", "sim", "--poll-interval", "nan"], "--poll-interval"),
    (["--backend", "sim", "--poll-interval", "inf"], "--poll-interval"),
    (["--backend", "replay", "--replay.rate", "nan"], "--replay.rate"),
    (["--backend", "sim", "--sim-speed", "-1"], "--sim-speed"),
    # the simulator draws every board's life to 2036: 1,000 took 126 s and 2 GB for 8 GPUs
    (["--backend", "sim", "--sim-hazard-scale", "1000"], "--sim-hazard-scale"),
    (["--backend", "sim", "--sim-start-time", "nan"], "--sim-start-time"),
    (["--backend", "sim", "--node-name", " "], "--node-name"),
    (["--backend", "replay", "--replay.fault", "nvmlDeviceGetPowrUsage@0=TIMEOUT"], "unknown NVML"),
    (["--backend", "replay", "--replay.gpus", "2", "--replay.fault", "*@7"], "GPU 7"),
    # options another backend reads: accepted and without effect before
    (["--backend", "replay", "--sim-gpus", "5"], "--sim-gpus: only the sim backend reads it"),
    (["--backend", "replay", "--sim-faults-file", "f.yaml"], "--sim-faults-file: only the sim"),
    (["--backend", "sim", "--replay.gpus=2"], "--replay.gpus: only the replay backend"),
    (["--sim-gpus", "8"], "(--backend auto); add --backend sim"),  # the default value, given
    (["--backend", "sim", "--kernel-log.path", "k", "--kernel-log.disable"], "give one of them"),
    (["--backend", "sim", "--kubernetes.pod-labels"], "--kubernetes.pod-resources-socket too"),
]


@pytest.mark.parametrize(("argv", "named"), EXPORTER_CASES, ids=[c[1] for c in EXPORTER_CASES])
def test_exporter_refuses_bad_values(
    argv: list[str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = run_main(exporter_cli.main, [*argv, "--web.listen-address", "127.0.0.1:0"], capsys)
    assert is_one_line_error(code, err), err
    assert named in err


SCORER_CASES = [
    (["serve", *DEAD_PROMETHEUS, "--interval", "nan"], "--interval"),
    (["serve", *DEAD_PROMETHEUS, "--interval", "inf"], "--interval"),
    (["serve", *DEAD_PROMETHEUS, "--top-factors", "-3"], "--top-factors"),
    (["serve", *DEAD_PROMETHEUS, "--workers", "0"], "--workers"),
    (["serve", *DEAD_PROMETHEUS, "--prometheus.retries", "0"], "--prometheus.retries"),
    (["serve", *DEAD_PROMETHEUS, "--prometheus.timeout", "nan"], "--prometheus.timeout"),
    (["serve", *DEAD_PROMETHEUS, "--run.budget", "-5s"], "--run.budget"),
    (["serve", *DEAD_PROMETHEUS, "--econ.default-age-days", "nan"], "--econ.default-age-days"),
    (["serve", *DEAD_PROMETHEUS, "--prometheus.header", "X-Org: a\r\nX-Evil: b"], "control"),
    (["serve", *DEAD_PROMETHEUS, "--prometheus.header", "X-Org team-a"], "Name: value"),
    (["serve", *DEAD_PROMETHEUS, "--prometheus.header", "X Org: a"], "valid header name"),
]


#: Times (Unix seconds or ISO 8601) from 1970 to the year 9999, and the one-shot score's numbers.
SCORER_ONE_SHOT_CASES = [
    (["score", *DEAD_PROMETHEUS, "--at", "nan"], "--at"),
    (["score", *DEAD_PROMETHEUS, "--at", "-5"], "--at"),
    (["score", *DEAD_PROMETHEUS, "--at", "1e300"], "--at"),
    (["score", *DEAD_PROMETHEUS, "--at", "1796083200000"], "milliseconds?"),
    (["score", *DEAD_PROMETHEUS, "--at", "0001-01-01"], "--at"),
    (["score", *DEAD_PROMETHEUS, "--at", "0", "--workers", "0"], "--workers"),
    (["score", *DEAD_PROMETHEUS, "--at", "0", "--top-factors", "-1"], "--top-factors"),
    (["evaluate", *DEAD_PROMETHEUS, "--end", "inf"], "--end"),
    (["train", *DEAD_PROMETHEUS, "--start", "nan"], "--start"),
    (["train", *DEAD_PROMETHEUS, "--hazard-scale", "1000"], "--hazard-scale"),
    # both histories given: the directory was read and the URL ignored without a word
    (["evaluate", *DEAD_PROMETHEUS, "--data-dir", "d"], "--data-dir and --prometheus.url"),
    (["labels", *DEAD_PROMETHEUS, "--data-dir", "d"], "--data-dir and --prometheus.url"),
    (["labels", *DEAD_PROMETHEUS, "--end", "-1"], "--end"),
    (["models", "promote", "cand", "--store", "st", "--min-gain", "nan"], "--min-gain"),
]


@pytest.mark.parametrize(
    ("argv", "named"),
    SCORER_ONE_SHOT_CASES,
    ids=[" ".join([c[0][0], *c[0][3:]]) for c in SCORER_ONE_SHOT_CASES],
)
def test_scorer_commands_refuse_bad_times_and_numbers(
    argv: list[str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = run_main(scorer_cli.main, argv, capsys)
    assert is_one_line_error(code, err), err
    assert named in err


@pytest.mark.parametrize(
    "url", ["", "ftp://x", "localhost:9090", "http://", "http://[::1", "http://h:99999"]
)
def test_prometheus_urls_are_checked_at_start(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Before, an empty URL or a bad IPv6 address ended ``plan`` in a traceback, and the others
    failed only at the first query, each command in its own words."""
    commands: list[tuple[Main, list[str]]] = [
        (umbrella.main, ["report", "--prometheus", url]),
        (umbrella.main, ["plan", "--prometheus", url]),
        (umbrella.main, ["econ", "--prometheus", url]),
        (scorer_cli.main, ["score", "--at", "0", "--prometheus.url", url]),
    ]
    for main, argv in commands:
        code, err = run_main(main, argv, capsys)
        assert is_one_line_error(code, err), (argv, err)
        assert code == 2 and f"argument {argv[-2]}: {url!r}" in err, (argv, err)


@pytest.mark.parametrize(
    "url", ["http://admin:hunter2@127.0.0.1:9", "http://admin:hunter2@[::1", "https://admin@h:9"]
)
def test_credentials_in_a_prometheus_url_are_refused_and_never_shown(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before, the scorer took them and printed the password in every error naming the URL,
    and ``report`` and ``plan`` looked ``admin:hunter2@127.0.0.1`` up as a host name, printing
    it too. Now every command refuses the URL at start, with the password masked."""
    commands: list[tuple[Main, list[str]]] = [
        (umbrella.main, ["report", "--prometheus", url]),
        (umbrella.main, ["plan", "--prometheus", url]),
        (umbrella.main, ["econ", "--prometheus", url]),
        (scorer_cli.main, ["score", "--at", "0", "--prometheus.url", url]),
        (scorer_cli.main, ["serve", "--once", "--prometheus.url", url]),
    ]
    for main, argv in commands:
        code, err = run_main(main, argv, capsys)
        assert is_one_line_error(code, err), (argv, err)
        assert code == 2 and f"argument {argv[-2]}: " in err, (argv, err)
        assert "hunter2" not in err, (argv, err)
        assert "credentials in the URL" in err or "is not a URL" in err, (argv, err)
    assert cli_validate.without_password(url).count("hunter2") == 0


@pytest.mark.parametrize(
    ("url", "base"),
    [
        ("http://prom:9090/graph?g0.expr=up", "http://prom:9090"),
        ("http://prom:9090/api/v1/query?query=up", "http://prom:9090"),
        ("https://mimir:8080/prometheus/api/v1/query", "https://mimir:8080/prometheus"),
        ("http://vm:8428/vmui/", "http://vm:8428"),
    ],
)
def test_a_pasted_web_page_is_refused_with_the_base_url(
    url: str, base: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The address bar's URL of Prometheus' query page is what a newcomer pastes: it failed at
    the first query with "Not Found" or "not a Prometheus answer"."""
    for main, argv in [
        (umbrella.main, ["report", "--prometheus", url]),
        (scorer_cli.main, ["score", "--at", "0", "--prometheus.url", url]),
    ]:
        code, err = run_main(main, argv, capsys)
        assert is_one_line_error(code, err) and code == 2, err
        assert err.rstrip().endswith(f"not its base URL; give {base} (see --help)"), err


def test_an_at_sign_in_a_url_path_is_no_credential() -> None:
    assert cli_validate.http_url("http://h:9/x@y") == "http://h:9/x@y"


def test_prometheus_urls_with_a_path_or_spaces_are_taken() -> None:
    assert cli_validate.http_url(" http://127.0.0.1:9090 ") == "http://127.0.0.1:9090"
    mimir = "https://mimir.example:8080/prometheus"
    assert cli_validate.http_url(mimir) == mimir


def test_times_keep_their_value_in_range() -> None:
    from gpu_health.unix_time import LATEST_TIME_S, parse_time

    assert parse_time("1796083200") == 1_796_083_200.0
    assert parse_time("2026-12-01T00:00:00Z") == 1_796_083_200.0
    assert parse_time("2026-12-01") == 1_796_083_200.0  # no zone: UTC
    assert parse_time("0") == 0.0 and parse_time("9999-12-31T23:59:59Z") == LATEST_TIME_S


@pytest.mark.parametrize(("argv", "named"), SCORER_CASES, ids=[c[1] for c in SCORER_CASES])
def test_scorer_refuses_bad_values(
    argv: list[str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    started = time.monotonic()
    code, err = run_main(scorer_cli.main, [*argv, "--once", "--no-econ"], capsys)
    assert is_one_line_error(code, err), err
    assert named in err
    assert time.monotonic() - started < 30  # refused at start, not after a run


def test_umbrella_refuses_bad_values(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    cases = [
        (["backfill", "--gpus", "99999999999", "--out", str(tmp_path / "d")], "--gpus"),
        (["backfill", "--days", "nan", "--out", str(tmp_path / "d")], "--days"),
        (["backfill", "--out", "/proc/x"], "--out"),
        (["backfill", "--end-time", "nan", "--out", str(tmp_path / "d")], "--end-time"),
        (["backfill", "--end-time", "-5", "--out", str(tmp_path / "d")], "--end-time"),
        (["backfill", "--end-time", "1796083200000", "--out", str(tmp_path / "d")], "millis"),
        (["backfill", "--end-time", "86400", "--out", str(tmp_path / "d")], "before 1970"),
        (["backfill", "--end-time", "2099-01-01", "--out", str(tmp_path / "d")], "days from now"),
        (["backfill", "--resolution", "2d", "--out", str(tmp_path / "d")], "at most 1h"),
        (["backfill", "--hazard-scale", "1000", "--out", str(tmp_path / "d")], "--hazard-scale"),
        (["backfill", "--instance", 'h"x:1', "--out", str(tmp_path / "d")], "not HOST:PORT"),
        (["backfill", "--instance", "bad host", "--out", str(tmp_path / "d")], "not HOST:PORT"),
        (["demo", "--hazard-scale", "1000"], "--hazard-scale"),
        (["backfill", "--end-time", "last week", "--out", str(tmp_path / "d")], "ISO 8601"),
        (["backfill", "--out", str(a_file / "d")], "not a directory"),
        (["backfill", "--out", str(tmp_path / "no" / "such" / "d")], "does not exist"),
        (["report", "--prometheus", "http://127.0.0.1:9", "--top", "-3"], "--top"),
        (["report", "--prometheus", "http://127.0.0.1:9", "--at", "nan"], "--at"),
        # both reached Prometheus, which refused the query: "cannot reach Prometheus"
        (["report", "--prometheus", "http://127.0.0.1:9", "--period", "0d"], "at most 3650d"),
        (["report", "--prometheus", "http://127.0.0.1:9", "--period", "99999999w"], "3650d"),
        (["report", "--prometheus", "http://127.0.0.1:9", "--at", "1796083200000"], "millis"),
        (["report", "--prometheus", "http://127.0.0.1:9", "--html", "/proc/x.html"], "--html"),
        (
            [
                "report",
                "--prometheus",
                "http://127.0.0.1:9",
                "--html",
                str(tmp_path / "n/d/r.html"),
            ],
            "does not exist",
        ),
        (["econ", "--top", "-3"], "--top"),
        (["econ", "--fleet", ""], "is a directory"),  # was a traceback (read as no --fleet)
        (["generate", "--output-dir", "/proc/x"], "--output-dir"),  # was a traceback
        (["plan", "--prometheus", "http://127.0.0.1:9", "--at", "nan"], "--at"),
        (["plan", "--prometheus", "http://127.0.0.1:9", "--at", "1796083200000"], "millis"),
    ]
    for argv, named in cases:
        code, err = run_main(umbrella.main, argv, capsys)
        assert is_one_line_error(code, err), (argv, err)
        assert named in err, (argv, err)
    assert not (tmp_path / "n").exists() and not (tmp_path / "no").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]  # nothing else created


@pytest.mark.parametrize(
    ("text", "ok"),
    [("1", True), ("0", False), ("nan", False), ("inf", False), ("-inf", False), ("1e309", False),
     ("x", False), ("100000", True), ("100001", False)],
)  # fmt: skip
def test_validators_accept_only_finite_values_in_range(text: str, ok: bool) -> None:
    import argparse

    parsers = (
        cli_validate.number(0, 1e5, exclusive_minimum=True),
        cli_validate.integer(1, 100_000),
    )
    for parse in parsers:
        try:
            parse(text)
            accepted = True
        except argparse.ArgumentTypeError:
            accepted = False
        assert accepted == ok, (parse, text)


def test_durations_refuse_nan_and_accept_units() -> None:
    import argparse

    parse = cli_validate.duration(0.0, 86400.0)
    assert parse("500ms") == 0.5 and parse("15m") == 900.0 and parse("2") == 2.0
    for bad in ("nan", "nans", "inf", "0s", "-1s", "2d", "abc"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse(bad)
    # the range in units a reader reads, not in raw seconds ("(0, 86400]")
    with pytest.raises(argparse.ArgumentTypeError, match=r"longer than 0s, at most 1d\)"):
        parse("2d")
    assert [cli_validate.show_duration(s) for s in (604800, 3600, 90, 0.5, 1.25)] == [
        "1w", "1h", "90s", "500ms", "1250ms",
    ]  # fmt: skip


def test_exporter_honours_sigterm_during_start_up(tmp_path: Path) -> None:
    """Building 4,096 simulated GPUs takes tens of seconds; SIGTERM must end it at once."""
    exe = shutil.which("gpu-health-exporter", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.skip("gpu-health-exporter not installed")
    proc = subprocess.Popen(
        [exe, "--backend", "sim", "--sim-gpus", "4096", "--web.listen-address", "127.0.0.1:0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        time.sleep(3.0)  # imports done, the fleet being built
        assert proc.poll() is None
        sent = time.monotonic()
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
        assert time.monotonic() - sent < 5.0
        assert proc.returncode != 0
        assert b"Traceback" not in (proc.stderr.read() if proc.stderr else b"")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_hostile_config_files_are_one_line_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A "billion laughs" alias bomb, a document nested thousands deep and a device instead of a
    file, given to each YAML option: one line naming the file, at once, never a traceback."""
    from tests.base.test_config import BILLION_LAUGHS

    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(BILLION_LAUGHS)
    deep = tmp_path / "deep.yaml"
    deep.write_text("a: " + "[" * 5000 + "]" * 5000 + "\n")
    listen = ["--web.listen-address", "127.0.0.1:0"]
    for path in (bomb, deep, Path("/dev/zero")):
        for option in ("--health.policy", "--web.config.file", "--sim-faults-file"):
            argv = ["--backend", "sim", option, str(path), *listen]
            code, err = run_main(exporter_cli.main, argv, capsys)
            assert is_one_line_error(code, err) and str(path) in err, (option, path, err)
        argv = ["serve", *DEAD_PROMETHEUS, "--once", "--econ.params", str(path)]
        code, err = run_main(scorer_cli.main, argv, capsys)
        assert is_one_line_error(code, err) and str(path) in err, err


@pytest.mark.parametrize(
    ("main", "argv"),
    [
        (scorer_cli.main, ["train", "--prometheus.url", "http://127.0.0.1:9", "--out", "m"]),
        (umbrella.main, ["demo"]),
    ],
    ids=["train", "demo"],
)
@pytest.mark.parametrize("seed", ["-1", "1099511627776", "1.5"])
def test_seeds_are_checked_at_start(
    main: Main, argv: list[str], seed: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """``train --seed -1`` failed with numpy's traceback after the whole feature read."""
    code, err = run_main(main, [*argv, "--seed", seed], capsys)
    assert is_one_line_error(code, err) and "--seed" in err, err


def test_a_reader_that_stops_early_ends_the_command_quietly(tmp_path: Path) -> None:
    """``gpu-health-scorer score --json | head`` ended in a BrokenPipeError traceback."""
    fleet = tmp_path / "fleet.csv"
    rows = (f"GPU-{i},NVIDIA H100 80GB HBM3,{i % 1000},0.05\n" for i in range(5000))
    fleet.write_text("uuid,model,age_days,p30\n" + "".join(rows))
    reader = subprocess.Popen(["head", "-c", "100"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    command = [sys.executable, "-m", "gpu_health.cli", "econ", "--fleet", str(fleet)]
    done = subprocess.run(
        [*command, "--format", "json"], stdout=reader.stdin, stderr=subprocess.PIPE, timeout=120
    )
    assert reader.stdin is not None
    reader.stdin.close()
    assert reader.wait(timeout=30) == 0 and reader.stdout is not None
    assert len(reader.stdout.read()) == 100
    assert "Traceback" not in done.stderr.decode() and done.stderr == b"", done.stderr
    assert done.returncode == 141  # as a shell reports a process ended by SIGPIPE


def test_score_in_the_future_and_a_missing_extra_history_are_named_at_start(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``score --at 2030-01-01`` said "no GPU reported at 2030-01-01T00:00:00Z"; a mistyped
    ``--also-data-dir`` was found after the main history's whole feature read."""
    dead = ["--prometheus.url", "http://127.0.0.1:9"]
    code, err = run_main(scorer_cli.main, ["score", *dead, "--at", "2030-01-01"], capsys)
    assert is_one_line_error(code, err) and "is in the future" in err, err
    argv = ["train", *dead, "--out", str(tmp_path / "m"), "--also-data-dir", str(tmp_path / "x")]
    code, err = run_main(scorer_cli.main, argv, capsys)
    assert is_one_line_error(code, err) and "--also-data-dir" in err, err
    assert "127.0.0.1:9" not in err  # before Prometheus was asked anything


@pytest.mark.parametrize(
    ("main", "argv", "written"),
    [
        (umbrella.main, ["report", "--period", "-5d"], "--period=-5d"),
        (scorer_cli.main, ["score", "--at", "-1d"], "--at=-1d"),
        (umbrella.main, ["backfill", "--out", "x", "--end-time", "-1h"], "--end-time=-1h"),
    ],
)
def test_a_value_that_starts_with_a_dash_is_shown_how_to_give_it(
    main: Main, argv: list[str], written: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--period -5d`` reads as two options: argparse said only "expected one argument", which
    reads as a forgotten value. The error now says how to write such a value (it may still be
    refused for its range, as ``--period=-5d`` is, by the option's own check)."""
    code, err = run_main(main, argv, capsys)
    assert is_one_line_error(code, err) and "expected one argument" in err, err
    assert f"a value that starts with '-' is given as {written}" in err, err
    # a value simply forgotten gets no such hint, nor one forgotten before the next option
    for forgot in (argv[:-1], [*argv[:-1], "--help-me", "x"]):
        code, err = run_main(main, forgot, capsys)
        assert is_one_line_error(code, err) and "starts with '-'" not in err, err
    # an abbreviation of the option gets the hint in the form given
    abbreviated = [*argv[:-2], argv[-2][:5], argv[-1]]
    code, err = run_main(main, abbreviated, capsys)
    assert f"given as {argv[-2][:5]}={argv[-1]}" in err, err
