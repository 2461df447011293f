"""``gpu-health plan``: failures to expect, 80 % intervals, spares and capacity at risk."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from gpu_health import cli_validate
from gpu_health.errors import UserError
from gpu_health.output_file import write_atomically
from gpu_health.prometheus_access import access_from_args, add_access_arguments


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"{text} must lie strictly between 0 and 1")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Plan for failures: from the failure probabilities the scorer publishes "
        "(gpu_failure_probability), the failures to expect in the next 30 and 90 days per "
        "model, datacenter and team, with an 80 % interval (exact Poisson-binomial), the "
        "spares to stock for a service level, and the GPU-hours at risk. Datacenter and team "
        "come from gpu_asset_info (the scorer's inventory) or --inventory."
    )
    parser.add_argument(
        "--prometheus",
        required=True,
        type=cli_validate.http_url,
        metavar="URL",
        help="Prometheus base URL with the scorer's series",
    )
    add_access_arguments(
        parser.add_argument_group("Prometheus connection (TLS and credentials, as the scorer's)")
    )
    parser.add_argument(
        "--inventory",
        type=Path,
        metavar="FILE",
        help="inventory (CSV, YAML, NetBox export) for datacenter and team, instead of "
        "gpu_asset_info",
    )
    parser.add_argument(
        "--service-level",
        type=_fraction,
        default=0.95,
        help="probability that the spares last the horizon (default: %(default)s)",
    )
    parser.add_argument(
        "--level",
        type=_fraction,
        default=0.8,
        help="probability the interval aims to hold (default: %(default)s)",
    )
    parser.add_argument("--html", type=Path, metavar="FILE", help="also write the plan as HTML")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    parser.add_argument(
        "--at",
        type=cli_validate.unix_time,
        metavar="TIME",
        help="plan time, Unix seconds or ISO 8601 (default: now)",
    )


def run(args: argparse.Namespace) -> int:
    from gpu_health.scorer.inventory.loader import load_inventory
    from gpu_health.scorer.planning.gather import plan_from_prometheus
    from gpu_health.scorer.planning.render import render_html, render_text

    if args.html:  # checked before querying: no directory is created, /proc is refused
        cli_validate.output_path(args.html, "--html", inputs=args)
    inventory = load_inventory(args.inventory) if args.inventory else None
    unmatched: list[str] = []
    plan = plan_from_prometheus(
        args.prometheus,
        args.at,
        inventory,
        level=args.level,
        service_level=args.service_level,
        access=access_from_args(args),
        unmatched=unmatched,
    )
    if unmatched:  # before, they were silently grouped under an empty datacenter and team
        shown = ", ".join(unmatched[:3]) + (", ..." if len(unmatched) > 3 else "")
        print(
            f"note: {len(unmatched)} GPU(s) are not in --inventory {args.inventory} (matched by "
            f"uuid, then node and slot, then node): their datacenter and team are empty: {shown}",
            file=sys.stderr,
        )
    if not plan.groups:
        raise UserError(
            f"{args.prometheus} has no gpu_failure_probability series: is gpu-health-scorer "
            "running and scraped?"
        )
    if args.json:
        print(json.dumps(asdict(plan), indent=2))
    else:
        sys.stdout.write(render_text(plan))
    if args.html:
        page = (
            "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>GPU fleet plan"
            "</title></head><body>" + render_html(plan) + "</body></html>\n"
        )
        write_atomically(args.html, page, "--html")
        print(f"plan written to {args.html}", file=sys.stderr)
    return 0
