"""``gpu-health-exporter`` entry point (filled in by the exporter work)."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from gpu_health.cli_support import OneLineArgumentParser, run_main


def main(argv: Sequence[str] | None = None) -> int:
    parser = OneLineArgumentParser(
        prog="gpu-health-exporter", description="Prometheus exporter for GPU health."
    )
    parser.parse_args(list(argv) if argv is not None else None)
    return run_main(lambda: 0)


if __name__ == "__main__":
    sys.exit(main())
