"""Draw a Grafana dashboard to a PNG from its own queries, without a Grafana server.

Grafana cannot be installed here, yet a reviewer wants to see the dashboards and a test wants
proof that each panel shows something. This module runs the dashboard's queries against a real
Prometheus (:mod:`gpu_health.mixin.dashquery`) and lays the panels out on Grafana's 24-column grid
with matplotlib (:mod:`.preview_draw`, numbers formatted by :mod:`.preview_cells`): time series as
lines, stats as big numbers coloured by their thresholds, bar gauges as bars, tables as tables and
heatmaps as bucket counts over time. It is a preview, not a pixel-perfect copy of Grafana. This
module is the command line.

Usage: ``python -m gpu_health.mixin.dashpreview --prometheus http://127.0.0.1:9090 --out docs/img``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from gpu_health import cli_validate
from gpu_health.cli_support import OneLineArgumentParser, run_main
from gpu_health.errors import UserError
from gpu_health.mixin.dashquery import PromClient, run_dashboard
from gpu_health.mixin.preview_draw import render
from gpu_health.prometheus_access import access_from_args, add_access_arguments


def parse_duration(text: str) -> float:
    """``30m``, ``24h``, ``2d`` or plain seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    try:
        if text and text[-1] in units:
            return float(text[:-1]) * units[text[-1]]
        return float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration like 30m, 24h or 2d") from exc


def parse_variable(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME=VALUE")
    return name, value


def worst_gpu(client: PromClient, at: float) -> str | None:
    """The uuid of the GPU with the lowest overall health score: the detail preview's subject."""
    series = client.instant('bottomk(1, gpu_health_score{dimension="overall"})', at)
    return series[0].labels.get("uuid") if series else None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--prometheus",
        type=cli_validate.http_url,
        default="http://127.0.0.1:9090",
        help="Prometheus base URL (default: %(default)s)",
    )
    parser.add_argument(
        "--dashboards",
        type=Path,
        default=Path("grafana"),
        help="folder of dashboard JSON files, or one file (default: %(default)s)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("docs/img"),
        help="folder for the PNGs (default: %(default)s)",
    )
    parser.add_argument(
        "--range",
        dest="range_s",
        type=parse_duration,
        default=parse_duration("24h"),
        help="time range ending now, e.g. 6h, 2d (default: 24h)",
    )
    parser.add_argument(
        "--end",
        type=cli_validate.unix_time,
        default=None,
        help="end of the range, Unix seconds or ISO 8601 (default: now)",
    )
    parser.add_argument(
        "--scrape-interval",
        type=parse_duration,
        default=parse_duration("15s"),
        help="scrape interval of the data, for $__rate_interval (default: 15s)",
    )
    parser.add_argument(
        "--var",
        action="append",
        type=parse_variable,
        default=[],
        metavar="NAME=VALUE",
        help="set a template variable (repeatable); gpu defaults to the worst GPU",
    )
    add_access_arguments(
        parser.add_argument_group(
            "Prometheus behind TLS or credentials (the same options as gpu-health report)"
        )
    )


def run(args: argparse.Namespace) -> int:
    try:
        import matplotlib  # noqa: F401
    except ModuleNotFoundError:
        raise UserError(
            "matplotlib is not installed; install it with: "
            "pip install 'gpu-health-monitor[preview]'"
        ) from None
    cli_validate.output_path(args.out, "--out", directory=True)  # before any query
    source: Path = args.dashboards
    files = sorted(source.glob("*.json")) if source.is_dir() else [source]
    if not files or not all(f.is_file() for f in files):
        raise UserError(f"{source}: no dashboard JSON files found")
    client = PromClient(args.prometheus, access=access_from_args(args))
    end = args.end or time.time()
    start = end - args.range_s
    chosen = dict(args.var)
    if "gpu" not in chosen:
        uuid = worst_gpu(client, end)
        if uuid:
            chosen["gpu"] = uuid
    for path in files:
        try:
            dashboard = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise UserError(f"{path}: not a dashboard JSON file ({exc})") from exc
        result = run_dashboard(dashboard, client, start, end, args.scrape_interval, chosen)
        out = render(result, args.out / f"{path.stem}.png")
        empty = sum(not p.has_data for p in result.panels if p.panel.get("targets"))
        chosen_text = " ".join(
            f"{k}={v}" for k, v in result.variables.items() if not k.startswith("__")
        )
        print(
            f"{out}: {len(result.panels)} panels, {empty} without data ({chosen_text})",
            file=sys.stderr,
        )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = OneLineArgumentParser(
        prog="python -m gpu_health.mixin.dashpreview",
        description="Render Grafana dashboards to PNG previews from their own queries "
        "against a Prometheus.",
    )
    add_arguments(parser)
    return run_main(lambda: run(parser.parse_args(list(argv) if argv is not None else None)))


if __name__ == "__main__":
    sys.exit(main())
