"""The asset inventory: what the operator knows about each GPU that telemetry cannot tell.

Purchase date and price, warranty end, where the board sits (datacenter, row, rack), its SLA tier,
the contracted rental rate and the owning team. The scorer joins it to every scored GPU (by uuid,
then serial, then node and slot, then node), publishes it for PromQL (``gpu_asset_info``,
``gpu_age_seconds``, ``gpu_warranty_remaining_seconds``) and feeds it to the economics. Fields,
sources and an example: docs/inventory.md.
"""

from __future__ import annotations

from gpu_health.scorer.inventory.loader import load_inventory
from gpu_health.scorer.inventory.model import FIELDS, Asset, Inventory
from gpu_health.scorer.inventory.source import InventorySource

__all__ = ["FIELDS", "Asset", "Inventory", "InventorySource", "load_inventory"]
