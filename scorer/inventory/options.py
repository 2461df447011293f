"""``gpu-health-scorer serve`` options for the inventory, market prices and planning.

Kept apart from the hook so that ``--help`` does not import the scoring stack.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``serve`` options for the inventory, market prices and planning."""
    inv = parser.add_argument_group(
        "asset inventory and planning (docs/inventory.md)",
    )
    inv.add_argument(
        "--inventory.file",
        dest="inventory_file",
        type=Path,
        metavar="FILE",
        help="CSV, YAML or NetBox device export with each GPU's purchase date and price, "
        "warranty end, datacenter, row, rack, SLA tier, contract rate and team; re-read when "
        "it changes (an invalid edit keeps the last good file)",
    )
    inv.add_argument(
        "--inventory.format",
        dest="inventory_format",
        choices=["auto", "csv", "yaml", "netbox"],
        default="auto",
        help="format of --inventory.file (default: %(default)s: by extension and header)",
    )
    inv.add_argument(
        "--market.prices",
        dest="market_prices",
        type=Path,
        metavar="FILE",
        help="CSV of model,condition,price,date: resale values come from it (never scraped)",
    )
    inv.add_argument(
        "--plan.service-level",
        dest="service_level",
        type=float,
        metavar="P",
        default=0.95,
        help="probability that the spares published on gpu_plan_spares last the horizon "
        "(default: %(default)s)",
    )
