"""The demo fleet's asset inventory and market prices, handed to the scorer.

``inventory.csv`` describes the simulated nodes ``gpu-node-001`` to ``gpu-node-032`` (256 GPUs,
the default seed's purchase dates, three datacenters, varied prices, SLA tiers and teams);
``market_prices.csv`` holds illustrative resale prices (docs/inventory.md). Without the
inventory file the scorer warns once and uses today's defaults; without the price table the
resale curve applies.
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent
INVENTORY = HERE / "inventory.csv"
MARKET_PRICES = HERE / "market_prices.csv"


def asset_arguments(inventory: Path = INVENTORY, prices: Path = MARKET_PRICES) -> list[str]:
    """Scorer flags for the shipped files (the inventory path even when missing: one warning)."""
    args = [f"--inventory.file={inventory}"]
    if prices.is_file():
        args.append(f"--market.prices={prices}")
    return args
