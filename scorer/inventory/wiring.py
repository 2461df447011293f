"""Builds the scorer's per-run hook from its command-line options (kept out of scorer/cli.py)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from gpu_health.errors import UserError
from gpu_health.scorer.inventory.hook import AssetJoin, make_fleet_hook
from gpu_health.scorer.inventory.market import load_market_prices
from gpu_health.scorer.inventory.source import InventorySource
from gpu_health.scorer.planning.plan import DEFAULT_DOWNTIME_HOURS
from gpu_health.scorer.service import EconHook


def fleet_hook(args: argparse.Namespace, query: Callable[[str], list[Any]]) -> EconHook:
    """Inventory + economics (unless --no-econ) + planning; raises UserError on bad files."""
    from gpu_health.scorer.econ.params import load_params

    if not 0 < args.service_level < 1:
        raise UserError("--plan.service-level must lie strictly between 0 and 1 (e.g. 0.95)")
    source = InventorySource(args.inventory_file, args.inventory_format)
    join = AssetJoin(source, query)
    market = load_market_prices(args.market_prices) if args.market_prices else None
    params = load_params(args.econ_params)
    econ = None
    if args.econ:
        from gpu_health.scorer.econ.bridge import make_econ_hook

        econ = make_econ_hook(
            args.econ_params,
            args.econ_inventory,
            args.econ_age,
            assets=lambda: join.latest,
            market=market,
        )

    def downtime_hours(model: str) -> float:
        found = params.model_for(model)
        return found.downtime_days_per_failure * 24.0 if found else DEFAULT_DOWNTIME_HOURS

    return make_fleet_hook(
        join,
        econ,
        market=market,
        currency=params.currency,
        downtime_hours=downtime_hours,
        service_level=args.service_level,
    )
