"""CSV and secret files given on the command line: bounded, never waited on, one line per problem
(``gpu_health.csv_file``; the scorer's credential files)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gpu_health import cli as umbrella
from gpu_health.csv_file import read_csv
from gpu_health.errors import UserError
from gpu_health.exporter import cli as exporter_cli
from gpu_health.scorer import cli as scorer_cli
from gpu_health.scorer.training import load_failures
from tests.base.command_runs import Main, run_main

DEAD = "http://127.0.0.1:9"
DEAD_TLS = "https://127.0.0.1:9"


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    """A named pipe nobody writes to: opening it for reading would wait for ever."""
    path = tmp_path / "pipe.csv"
    os.mkfifo(path)
    return path


def test_rows_carry_their_line_and_a_spreadsheet_bom_is_dropped(tmp_path: Path) -> None:
    path = tmp_path / "f.csv"
    text = '\ufeffuuid , time,mode\nGPU-1,100,hbm\n\n,,\nGPU-2,200,"two\nlines"\nGPU-3,300\n'
    path.write_text(text)
    table = read_csv(path)
    assert table.header == ("uuid", "time", "mode")
    assert list(table.rows()) == [
        (2, {"uuid": "GPU-1", "time": "100", "mode": "hbm"}),
        (5, {"uuid": "GPU-2", "time": "200", "mode": "two\nlines"}),
        (7, {"uuid": "GPU-3", "time": "300", "mode": ""}),  # a short row: the rest empty
    ]


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"", "empty file"),
        (b"uuid,time,uuid\n", "line 1: column 'uuid' appears twice"),
        (b"uuid,time\nGPU-1,1,extra\n", "line 2: 3 cells, but the header has 2 columns"),
        (b"\x00\x01\xff\xfe", "not UTF-8 text"),
        (b"uuid,time\nGPU-1," + b"9" * 200_000 + b"\n", "line 2: field larger than field limit"),
    ],
    ids=["empty", "twice", "extra-cell", "binary", "huge-cell"],
)
def test_a_malformed_file_is_one_line_naming_it(
    tmp_path: Path, content: bytes, problem: str
) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(UserError) as caught:
        list(read_csv(path).rows())
    message = str(caught.value)
    assert message.startswith(f"{path}: ") and problem in message and "\n" not in message


def test_devices_pipes_and_large_files_are_refused_unread(tmp_path: Path, fifo: Path) -> None:
    for path in (Path("/dev/zero"), fifo):
        with pytest.raises(UserError, match="not a regular file"):
            read_csv(path)
    big = tmp_path / "big.csv"
    big.write_text("uuid,time\n" + "GPU-1,1\n" * 200)
    with pytest.raises(UserError, match="larger than 1 KiB; not read"):
        read_csv(big, max_bytes=1024)


def test_the_failures_list_names_the_line_of_a_bad_time(tmp_path: Path) -> None:
    path = tmp_path / "failures.csv"
    path.write_text("uuid,time,mode\nGPU-1,1796000000,hbm\n\nGPU-2,nan,pcie\n")
    with pytest.raises(UserError, match=r"failures.csv: line 4: .*nan"):
        load_failures(path)


def test_each_csv_and_secret_option_refuses_a_bad_file_in_one_line(
    tmp_path: Path, fifo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each of these read /dev/zero or the pipe for ever (or ended in a traceback) before."""
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"\x00\x01\xff\xfe")
    ages = tmp_path / "ages.csv"
    ages.write_text("uuid,age_days\nGPU-1,400\nGPU-2,nan\n")
    prices = tmp_path / "prices.csv"  # a cell past csv's field limit was a traceback
    prices.write_text("model,condition,price,date\nH100,used," + "9" * 200_000 + ",2026-01-01\n")
    history = ["--prometheus.url", DEAD, "--start", "1796000000", "--end", "1796083140"]
    score = ["score", "--at", "1796000000"]
    listen = ["--web.listen-address", "127.0.0.1:0"]
    model = ["--out", str(tmp_path / "m")]
    cases: list[tuple[Main, list[str], str]] = [
        (scorer_cli.main, ["outcomes", "--prometheus.url", DEAD, "--ledger", "/dev/zero"], ""),
        (scorer_cli.main, ["evaluate", *history, "--failures", str(fifo)], ""),
        (scorer_cli.main, ["train", *history, *model, "--failures", str(binary)], "UTF-8"),
        (umbrella.main, ["econ", "--fleet", str(fifo)], ""),
        (umbrella.main, ["econ", "--fleet", str(binary)], "UTF-8"),
        (
            scorer_cli.main,
            ["serve", "--prometheus.url", DEAD, "--once", "--econ.inventory", str(ages)],
            "line 3: age_days",
        ),
        (
            scorer_cli.main,
            ["serve", "--prometheus.url", DEAD, "--once", "--econ.inventory", "/dev/zero"],
            "",
        ),
        (
            scorer_cli.main,
            ["serve", "--prometheus.url", DEAD, "--once", "--market.prices", str(prices)],
            "line 2: field larger than field limit",
        ),
        (
            exporter_cli.main,
            ["--backend", "replay", "--replay.trace", "/dev/zero", *listen],
            "replay trace",
        ),
        (
            scorer_cli.main,
            [*score, "--prometheus.url", DEAD, "--prometheus.bearer-token-file", str(fifo)],
            "bearer token",
        ),
        (
            scorer_cli.main,
            [
                *score, "--prometheus.url", DEAD,
                "--prometheus.basic-auth-username", "u",
                "--prometheus.basic-auth-password-file", "/dev/zero",
            ],
            "basic-auth password",
        ),
        (
            scorer_cli.main,
            [*score, "--prometheus.url", DEAD_TLS, "--prometheus.ca-file", "/dev/zero"],
            "--prometheus.ca-file /dev/zero: not a regular file",
        ),
    ]  # fmt: skip
    for main, argv, named in cases:
        code, err = run_main(main, argv, capsys)
        assert code == 1 and err.count("\n") == 1 and "Traceback" not in err, (argv, err)
        assert named in err, (argv, err)
        named_files = (str(fifo), str(binary), str(ages), str(prices), "/dev/zero")
        bad = next(a for a in argv if a in named_files)
        assert bad in err, (argv, err)
        assert "127.0.0.1:9" not in err  # the file was read, and refused, before any query


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ('uuid,model,age_days,p30\n"GPU-a,NVIDIA H100,730,0.1\nGPU-b,NVIDIA H100,10,0.1\n', 2),
        ('"uuid,time\nGPU-1,1\n', 1),  # in the header
        ('uuid,time,mode\nGPU-1,"a\nb","x\nGPU-2,1,2\n', 3),  # on a row's second line
        ('uuid,time\r\nGPU-1,1\r\nGPU-2,"2\r\nGPU-3,3\r\n', 3),  # CRLF line ends
        ('uuid,time\nGPU-1,"a""b\n', 2),  # a doubled quote inside does not close it
        ('uuid,time\nGPU-1,1\n"', 3),  # the file's last character
    ],
    ids=["row", "header", "second-line", "crlf", "doubled-inside", "last-char"],
)
def test_a_quote_that_never_closes_is_named_at_its_line(
    tmp_path: Path, text: str, line: int
) -> None:
    """csv reads a file that ends inside a quoted cell without complaint, the cell holding the
    rest of the file: the fleet above said "line 2: age_days: missing"."""
    path = tmp_path / "f.csv"
    path.write_text(text, newline="")
    with pytest.raises(UserError) as caught:
        list(read_csv(path).rows())
    assert str(caught.value) == f"{path}: line {line}: a quote opened here is never closed"


def test_quotes_that_close_read_as_before(tmp_path: Path) -> None:
    """A cell ending in a doubled quote, a stray quote after a closed one (``"a"b``, read as
    ``ab`` as csv always did) and a quote inside an unquoted cell are not taken for a quote
    that never closes."""
    path = tmp_path / "f.csv"
    path.write_text('uuid,time,mode\nGPU-1,"a"b,c"d\nGPU-2,"two\nlines","ab"""')
    assert list(read_csv(path).rows()) == [
        (2, {"uuid": "GPU-1", "time": "ab", "mode": 'c"d'}),
        (3, {"uuid": "GPU-2", "time": "two\nlines", "mode": 'ab"'}),
    ]


def test_each_csv_option_names_a_quote_that_never_closes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Through the commands: the rows after the quote were read as one cell, and each command
    complained of a missing or malformed field of that row instead (or, for the scorer's ages
    inventory, ended in a traceback)."""
    files = {
        "fleet.csv": (
            'uuid,model,age_days,p30\n"GPU-a,NVIDIA H100,730,0.1\nGPU-b,NVIDIA H100,10,0.1\n'
        ),
        "ages.csv": 'uuid,age_days\nGPU-1,400\n"GPU-2,10\nGPU-3,20\n',
        "failures.csv": 'uuid,time,mode\nGPU-1,1796000000,hbm\nGPU-2,"1796000001,pcie\n',
        "inventory.csv": 'uuid,datacenter,team\nGPU-1,fra1,vision\nGPU-2,"ams2,nlp\n',
        "prices.csv": 'model,condition,price,date\nH100,used,"16500,2026-01-01\n',
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text)

    def at(name: str) -> str:
        return str(tmp_path / name)

    history = ["--prometheus.url", DEAD, "--start", "1796000000", "--end", "1796083140"]
    serve = ["serve", "--prometheus.url", DEAD, "--once"]
    cases: list[tuple[Main, list[str], str]] = [
        (umbrella.main, ["econ", "--fleet", at("fleet.csv")], "fleet.csv: line 2"),
        (scorer_cli.main, [*serve, "--econ.inventory", at("ages.csv")], "ages.csv: line 3"),
        (scorer_cli.main, ["evaluate", *history, "--failures", at("failures.csv")],
         "failures.csv: line 3"),
        (umbrella.main, ["plan", "--prometheus", DEAD, "--inventory", at("inventory.csv")],
         "inventory.csv: line 3"),
        (scorer_cli.main, [*serve, "--market.prices", at("prices.csv")], "prices.csv: line 2"),
    ]  # fmt: skip
    for main, argv, where in cases:
        code, err = run_main(main, argv, capsys)
        assert code == 1 and err.count("\n") == 1 and "Traceback" not in err, (argv, err)
        assert f"{tmp_path}/{where}: a quote opened here is never closed" in err, (argv, err)
        assert "127.0.0.1:9" not in err  # the file was refused before any query
