"""``gpu-health-scorer``: serve (default), train and evaluate the failure model.

``serve`` reads Prometheus every interval and publishes probabilities, risk factors, anomaly
scores and economics on its own /metrics and a JSON API. ``train`` and ``evaluate`` replay the
same feature queries at past timestamps, either against a running Prometheus (``--prometheus.url``
with ``--start/--end``) or against a backfilled data directory that they serve themselves with a
private Prometheus (``--data-dir``, the output of ``gpu-health backfill``).

This module only builds the parser and dispatches: the options are defined in
:mod:`gpu_health.scorer.cli_arguments`, ``serve`` and ``score`` run in
:mod:`gpu_health.scorer.cli_serve`, ``train`` and ``evaluate`` in
:mod:`gpu_health.scorer.cli_history`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from gpu_health import __version__
from gpu_health.cli_support import (
    EXIT_USAGE,
    OneLineArgumentParser,
    configure_logging,
    explicit_options,
    run_main,
)
from gpu_health.scorer.cli_arguments import (
    DEFAULT_LISTEN,
    MODEL_HELP,
    add_arguments,
    duration_arg,
    time_arg,
)
from gpu_health.scorer.cli_history import client_for, run_evaluate, run_train
from gpu_health.scorer.cli_serve import run_score, run_serve

__all__ = [
    "DEFAULT_LISTEN",
    "MODEL_HELP",
    "SUBCOMMANDS",
    "add_arguments",
    "build_parser",
    "main",
    "run",
    "run_score",
    "run_serve",
]

SUBCOMMANDS = ("serve", "train", "evaluate", "score", "labels", "models", "outcomes")
# The option types' names before the split, for code that still imports them from here.
_duration = duration_arg
_time = time_arg


def run(args: argparse.Namespace) -> int:
    configure_logging(getattr(args, "log_level", "info"))
    command = args.command or "serve"
    if command == "score":
        return run_score(args)
    if command == "train":
        return run_train(args)
    if command == "evaluate":
        return run_evaluate(args)
    if command == "labels":
        from gpu_health.scorer.labels_cli import run as run_labels

        return run_labels(args, client_for)
    if command == "models":
        from gpu_health.scorer.models_cli import run as run_models

        return run_models(args)
    if command == "outcomes":
        from gpu_health.scorer.outcomes_cli import run as run_outcomes

        return run_outcomes(args, client_for)
    return run_serve(args)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineArgumentParser(
        prog="gpu-health-scorer",
        description="GPU failure prediction sidecar for Prometheus. Commands: serve (default), "
        "train, evaluate, score, labels, models, outcomes; run 'gpu-health-scorer COMMAND "
        "--help' for their options.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    add_arguments(parser)
    return parser


def _unknown_command(word: str) -> str:
    """The one line for a first word that is no command. serve takes no positional argument,
    so such a word was only ever a mistake, reported as "unrecognized arguments"; the
    umbrella's commands (``plan``, ``report``, ``econ``...) are named where they live."""
    from gpu_health.cli import SUBCOMMANDS as UMBRELLA_COMMANDS

    where = ""
    if word in {name for name, _module, _help in UMBRELLA_COMMANDS}:
        where = f"; {word} is a command of gpu-health: gpu-health {word}"
    return (
        f"gpu-health-scorer: error: unknown command {word!r} (commands: "
        f"{', '.join(SUBCOMMANDS)}){where} (see --help)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list and not args_list[0].startswith("-") and args_list[0] not in SUBCOMMANDS:
        print(_unknown_command(args_list[0]), file=sys.stderr)
        return EXIT_USAGE
    if not args_list or (
        args_list[0] not in SUBCOMMANDS and args_list[0] not in ("-h", "--help", "--version")
    ):
        args_list.insert(0, "serve")

    def body() -> int:
        parser = build_parser()
        args = parser.parse_args(args_list)
        if getattr(args, "data_dir", None) is not None:
            given = explicit_options(build_parser, args_list)
            if "prom_url" in given:
                # The directory was served and the URL ignored without a word (an outside
                # trial gave both and read the wrong history).
                parser.error(
                    f"--data-dir and {given['prom_url']}: give one (--data-dir serves a "
                    "backfilled directory with a private Prometheus; --prometheus.url reads "
                    "a running one)"
                )
        return run(args)

    return run_main(body)


if __name__ == "__main__":
    sys.exit(main())
