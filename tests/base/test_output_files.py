"""Output files: a bad path is refused before the work that would fill it, and a file is written
whole or not at all (``gpu_health.output_file``)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from gpu_health import cli as umbrella
from gpu_health.errors import UserError
from gpu_health.mixin import dashpreview
from gpu_health.output_file import open_atomically, write_atomically
from gpu_health.scorer import cli as scorer_cli
from gpu_health.scorer.model import DEFAULT_MODEL_DIR
from gpu_health.sim import families
from tests.base.command_runs import Main, run_main

#: Nothing listens on the discard port: a command that queried before checking its output
#: path would fail with a connection error that names no output option.
DEAD = "http://127.0.0.1:9"


def test_a_finished_write_replaces_the_file_whole(tmp_path: Path) -> None:
    target = tmp_path / "report.json"
    target.write_text("old\n")
    write_atomically(target, "new\n", "--json")
    assert target.read_text() == "new\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]  # no temporary left
    mode = stat.S_IMODE(target.stat().st_mode)
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o666 & ~umask  # as open() would make it, not a temporary file's 0600


def test_an_interrupted_write_leaves_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "ledger.csv"
    target.write_text("uuid,time\nGPU-1,100\n")
    with pytest.raises(KeyboardInterrupt), open_atomically(target, "--out") as handle:
        handle.write("uuid,time\nGPU-")
        raise KeyboardInterrupt  # the operator's Ctrl-C halfway through
    assert target.read_text() == "uuid,time\nGPU-1,100\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ledger.csv"]


def test_an_unwritable_target_is_one_line_naming_the_option(tmp_path: Path) -> None:
    (tmp_path / "a-directory").mkdir()
    with pytest.raises(UserError, match=r"^--html .*a-directory: cannot write: Is a directory$"):
        write_atomically(tmp_path / "a-directory", "<html>", "--html")
    with pytest.raises(UserError, match=r"^--out .*missing/x.csv: cannot write: No such file"):
        write_atomically(tmp_path / "missing" / "x.csv", "x", "--out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-directory"]
    assert not list((tmp_path / "a-directory").iterdir())


def _cases(tmp: Path) -> list[tuple[Main, list[str], str]]:
    """(command, argv, what the one line must name) for each output option with a bad path."""
    a_file = tmp / "a-file"
    a_dir = tmp / "a-dir"
    scorer = scorer_cli.main
    shipped = str(DEFAULT_MODEL_DIR)  # a valid candidate: only the store is wrong
    history = ["--prometheus.url", DEAD, "--start", "1796000000", "--end", "1796083140"]
    return [
        (scorer, ["evaluate", *history, "--json", "/proc/report.json"], "--json /proc/report.json"),
        (scorer, ["evaluate", *history, "--json", str(a_dir)], "--json"),
        (scorer, ["train", *history, "--out", str(a_file)], "exists and is a file"),
        (scorer, ["train", *history, "--out", "/sys/model"], "--out /sys/model"),
        (
            scorer,
            ["train", *history, "--out", str(tmp / "m"), "--dump-dataset", str(tmp / "no/x.csv")],
            "--dump-dataset",
        ),
        (
            scorer,
            ["labels", "--prometheus.url", DEAD, "--out", str(a_dir)],
            "exists and is a directory",
        ),
        (
            scorer,
            [
                "outcomes",
                "--prometheus.url",
                DEAD,
                "--ledger",
                str(a_file),
                "--textfile",
                "/proc/x",
            ],
            "--textfile /proc/x",
        ),
        (umbrella.main, ["plan", "--prometheus", DEAD, "--html", str(a_dir)], "--html"),
        (umbrella.main, ["report", "--prometheus", DEAD, "--html", "/proc/r.html"], "--html"),
        (
            families.main,
            ["--family", "plateau", "--gpus", "8", "--days", "8", "--out", str(a_file)],
            "--out",
        ),
        (dashpreview.main, ["--prometheus", DEAD, "--out", str(a_file)], "--out"),
        (scorer, ["models", "list", "--store", str(tmp / "typo")], "no model store there"),
        (scorer, ["models", "rollback", "--store", str(a_file)], "not a directory"),
        (scorer, ["models", "promote", shipped, "--store", "/proc/s", "--force"], "--store /proc"),
        (scorer, ["models", "promote", shipped, "--store", str(a_file), "--force"], "is a file"),
    ]


CASE_IDS = [
    "evaluate-json-proc",
    "evaluate-json-dir",
    "train-out-file",
    "train-out-sys",
    "train-dump-missing-dir",
    "labels-out-dir",
    "outcomes-textfile-proc",
    "plan-html-dir",
    "report-html-proc",
    "families-out-file",
    "dashpreview-out-file",
    "models-list-typo",
    "models-rollback-file",
    "models-promote-proc",
    "models-promote-file",
]


@pytest.mark.parametrize("case", range(len(CASE_IDS)), ids=CASE_IDS)
def test_a_bad_output_path_is_refused_before_any_work(
    case: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "a-file").write_text("uuid,time,mode\n")
    (tmp_path / "a-dir").mkdir()
    main, argv, named = _cases(tmp_path)[case]
    code, err = run_main(main, argv, capsys)
    assert code != 0 and err.count("\n") == 1 and "Traceback" not in err, err
    assert named in err, err
    assert "127.0.0.1:9" not in err  # refused before Prometheus was asked anything
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-dir", "a-file"]  # nothing made


def _input_as_output_cases(tmp: Path) -> list[tuple[Main, list[str], str]]:
    """(command, argv, the input option named) for each output given a file the command reads."""
    inventory = tmp / "fleet.csv"
    token = tmp / "token"
    ledger = tmp / "ledger.csv"
    link = tmp / "link.csv"
    history = ["--prometheus.url", DEAD, "--start", "1796000000", "--end", "1796083140"]
    return [
        (
            umbrella.main,
            ["plan", "--prometheus", DEAD, "--inventory", str(inventory), "--html", str(inventory)],
            "--inventory",
        ),
        (
            umbrella.main,
            ["plan", "--prometheus", DEAD, "--inventory", str(inventory), "--html", str(link)],
            "--inventory",  # a link to the input is the input
        ),
        (
            umbrella.main,
            [
                "report",
                "--prometheus",
                DEAD,
                "--prometheus.bearer-token-file",
                str(token),
                "--html",
                str(token),
            ],
            "--prometheus.bearer-token-file",
        ),
        (
            scorer_cli.main,
            ["evaluate", *history, "--failures", str(ledger), "--json", str(ledger)],
            "--failures",
        ),
        (
            scorer_cli.main,
            [
                "outcomes",
                "--prometheus.url",
                DEAD,
                "--ledger",
                str(ledger),
                "--textfile",
                str(ledger),
            ],
            "--ledger",
        ),
        (
            scorer_cli.main,
            ["labels", "--prometheus.url", DEAD, "--truth", str(ledger), "--out", str(ledger)],
            "--truth",
        ),
    ]


INPUT_CASE_IDS = ["plan-inventory", "plan-link", "report-token", "evaluate", "outcomes", "labels"]


@pytest.mark.parametrize("case", range(len(INPUT_CASE_IDS)), ids=INPUT_CASE_IDS)
def test_an_output_that_is_one_of_the_inputs_is_refused(
    case: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``plan --inventory fleet.csv --html fleet.csv`` replaced the inventory with the HTML
    plan and exited 0; a token file given as ``--html`` was overwritten the same way."""
    contents = {
        "fleet.csv": "node,datacenter\nnode-1,fra1\n",
        "token": "secret-token\n",
        "ledger.csv": "uuid,time,mode\nGPU-1,1796000000,hbm\n",
    }
    for name, text in contents.items():
        (tmp_path / name).write_text(text)
    (tmp_path / "link.csv").symlink_to(tmp_path / "fleet.csv")
    main, argv, named = _input_as_output_cases(tmp_path)[case]
    code, err = run_main(main, argv, capsys)
    assert code != 0 and err.count("\n") == 1 and "Traceback" not in err, err
    assert f"is the file {named} reads" in err, err
    assert "127.0.0.1:9" not in err  # refused before Prometheus was asked anything
    for name, text in contents.items():
        assert (tmp_path / name).read_text() == text  # every input as it was
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*contents, "link.csv"])


def test_an_output_beside_its_inputs_is_written(tmp_path: Path) -> None:
    """Only the same file is refused: another file, or one that does not exist yet, is taken."""
    from gpu_health import cli_validate
    from gpu_health.cli_support import OneLineArgumentParser

    parser = OneLineArgumentParser()
    parser.add_argument("--inventory", type=Path)
    parser.add_argument("--html", type=Path)
    (tmp_path / "fleet.csv").write_text("x\n")
    (tmp_path / "old.html").write_text("<p>\n")
    for html in ("old.html", "new.html"):
        args = parser.parse_args(
            ["--inventory", str(tmp_path / "fleet.csv"), "--html", str(tmp_path / html)]
        )
        assert cli_validate.output_path(args.html, "--html", inputs=args) == args.html
