"""``gpu-health``: the umbrella command (demo, generate, backfill, report, econ).

Each sub-command lives in its own module exposing ``add_arguments(parser)`` and ``run(args)``;
the table below is the only place that names them, and a module is imported only when its
sub-command runs, so ``gpu-health --help`` stays fast and the base install never imports the
scorer's heavy dependencies.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from types import ModuleType

from gpu_health import __version__
from gpu_health.cli_support import OneLineArgumentParser, run_main

#: (name, module, one-line help)
SUBCOMMANDS: tuple[tuple[str, str, str], ...] = (
    ("demo", "gpu_health.demo.cli", "run the local demo stack on a simulated fleet"),
    ("generate", "gpu_health.mixin.render", "render the jsonnet mixin into rules/ and grafana/"),
    (
        "backfill",
        "gpu_health.sim.backfill",
        "write simulated fleet history as a Prometheus data dir",
    ),
    ("report", "gpu_health.report.cli", "fleet report (terminal and HTML) from a Prometheus"),
    ("econ", "gpu_health.scorer.econ.cli", "what-if: how recommendations change with parameters"),
    ("plan", "gpu_health.scorer.planning.cli", "failures to expect, spares, capacity at risk"),
)


def _load(module_name: str) -> ModuleType | None:
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        # Only "this sub-command is not part of this install" is tolerated; a missing
        # dependency inside an existing module is a real error and is re-raised.
        if exc.name and module_name.startswith(exc.name):
            return None
        raise


def build_parser(load_all: bool = True) -> argparse.ArgumentParser:
    parser = OneLineArgumentParser(
        prog="gpu-health",
        description="GPU fleet health for Prometheus: demo stack, mixin rendering, simulated "
        "history, fleet reports and economics what-ifs. Run 'gpu-health COMMAND --help' for "
        "each command's options.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(
        dest="command", metavar="COMMAND", parser_class=OneLineArgumentParser
    )
    for name, module_name, help_text in SUBCOMMANDS:
        module = _load(module_name) if load_all else None
        if load_all and module is None:
            continue
        child = sub.add_parser(name, help=help_text, description=help_text)
        if module is not None:
            module.add_arguments(child)
            child.set_defaults(_module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    def body() -> int:
        parser = build_parser()
        args = parser.parse_args(list(argv) if argv is not None else None)
        if not getattr(args, "command", None):
            parser.print_help()
            return 2
        module: ModuleType = args._module
        result: int = module.run(args)
        return result

    return run_main(body)


if __name__ == "__main__":
    sys.exit(main())
