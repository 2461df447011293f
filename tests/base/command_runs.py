"""Running a command's ``main`` in-process, as a user runs it, for the one-line-error tests."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest

Main = Callable[[Sequence[str]], int]


def run_main(main: Main, argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """The exit code (argparse's ``SystemExit`` included) and what the command wrote to stderr."""
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    return code, capsys.readouterr().err


def is_one_line_error(code: int, err: str) -> bool:
    """A failure said in exactly one line, never a traceback."""
    return code != 0 and err.count("\n") == 1 and "Traceback" not in err
