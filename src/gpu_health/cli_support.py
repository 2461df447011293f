"""Shared command-line behaviour: one-line errors, exit codes, and the umbrella's sub-commands."""

from __future__ import annotations

import argparse
import itertools
import logging
import os
import re
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from gpu_health.errors import UserError

EXIT_USAGE = 2
EXIT_FAILURE = 1
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141
#: The namespace attribute mapping each destination to its option string (see
#: :meth:`OneLineArgumentParser.parse_known_args`).
OPTION_NAMES = "_option_names"


#: argparse's message for an option whose value is missing, naming the option string(s).
_MISSING_VALUE = re.compile(r"argument (?P<options>\S+): expected one argument")


#: A value argparse reads as an option: a dash, then a digit or a point (``-5d``, ``-1``, ``-.5``).
_DASH_VALUE = re.compile(r"-[0-9.]")


def dash_value_hint(message: str, argv: Sequence[str]) -> str:
    """How to give the value argparse took for an option: ``--period -5d`` (a negative number,
    with a unit or not) reads as two options, so argparse said only "expected one argument";
    the value is given as ``--period=-5d``. "" when ``message`` is not that error, or no such
    value follows the option (or an abbreviation of it) in ``argv``: after ``--period --out``
    the value was forgotten, not given."""
    found = _MISSING_VALUE.fullmatch(message)
    if found is None:
        return ""
    options = found["options"].split("/")
    for given, value in itertools.pairwise(argv):
        named = any(o == given or (given.startswith("--") and o.startswith(given)) for o in options)
        if named and _DASH_VALUE.match(value):
            return f"; a value that starts with '-' is given as {given}={value}"
    return ""


class OneLineArgumentParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line naming the program, never a usage dump."""

    #: the arguments of the last parse, for :func:`dash_value_hint`
    _argv: Sequence[str] = ()

    def error(self, message: str) -> NoReturn:
        hint = dash_value_hint(message, self._argv)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}{hint} (see --help)\n")

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        """Parse as argparse does, and remember each destination's longest option string in
        ``OPTION_NAMES`` on the namespace, so that a later check names the option a value came
        from (``--inventory``, not ``inventory``). A sub-command's parser records its own
        options first; the parent adds the ones it lacks."""
        self._argv = list(sys.argv[1:] if args is None else args)
        parsed, rest = super().parse_known_args(self._argv, namespace)
        names = dict(getattr(parsed, OPTION_NAMES, {}))
        for action in self._actions:
            if action.option_strings:
                names.setdefault(action.dest, max(action.option_strings, key=len))
        setattr(parsed, OPTION_NAMES, names)
        return parsed, rest


def explicit_options(
    build: Callable[[], argparse.ArgumentParser], argv: Sequence[str] | None
) -> dict[str, str]:
    """The options given on the command line, whatever their value (destination -> option
    string): ``--sim-gpus 8`` is given though 8 is its default, and so is a
    ``--prometheus.url`` equal to its default. ``build`` makes a fresh parser, whose every
    default (sub-commands' included) is suppressed before ``argv`` is parsed again, so
    abbreviations and ``--flag=value`` read as the real parse read them. Call it after the real
    parse succeeded: its errors are not reported here."""
    parser = build()
    names: dict[str, str] = {}
    parsers = [parser]
    while parsers:
        current = parsers.pop()
        for action in current._actions:
            action.default = argparse.SUPPRESS
            if isinstance(action, argparse._SubParsersAction):
                parsers.extend(action.choices.values())
            elif action.option_strings:
                names.setdefault(action.dest, max(action.option_strings, key=len))
        current._defaults.clear()
    try:
        given, _ = parser.parse_known_args(list(argv) if argv is not None else None)
    except SystemExit:  # not expected after the real parse; nothing can be told then
        return {}
    return {dest: names[dest] for dest in vars(given) if dest in names}


def run_main(body: Callable[[], int]) -> int:
    """Run a command body, turning the errors a user can fix into one line on stderr."""
    try:
        return body()
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # ``score --json | head``: the reader has what it wanted. Point stdout at /dev/null so
        # that the interpreter's own flush at exit does not raise again, and exit as a shell
        # reports a process ended by SIGPIPE.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE


def configure_logging(level: str) -> None:
    """Plain ``time level name: message`` lines on stderr."""
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def log_level_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--log.level",
        dest="log_level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="log verbosity (default: %(default)s)",
    )


def parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    return parser.parse_args(list(argv) if argv is not None else None)
