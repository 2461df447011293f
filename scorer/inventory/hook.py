"""The scorer's per-run hook: join the inventory, run the economics, plan, publish it all.

It wraps the economics hook (``gpu_health.scorer.econ.bridge``) so the inventory and the plan are
published even with ``--no-econ``, and a failure in the economics never drops the asset labels.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from gpu_health.scorer.failure_log import RecurringFailure
from gpu_health.scorer.inventory import kube
from gpu_health.scorer.inventory.market import MarketPrices
from gpu_health.scorer.inventory.metrics import (
    asset_metric_families,
    inventory_self_families,
    market_metric_family,
)
from gpu_health.scorer.inventory.model import Asset, merge_labels
from gpu_health.scorer.inventory.source import InventorySource
from gpu_health.scorer.planning.metrics import plan_metric_families
from gpu_health.scorer.planning.plan import GpuRisk, build_plan
from gpu_health.scorer.service import EconHook, GpuScore

log = logging.getLogger(__name__)

#: Instant query for the serial of each GPU (exporter's ``gpu_info``), used when records are
#: keyed by serial: the scorer's own series carry no serial.
SERIAL_QUERY = "max by (uuid, serial) (gpu_info)"


class AssetJoin:
    """Finds each scored GPU's record: inventory file first, node labels filling the gaps."""

    def __init__(self, source: InventorySource, query: Callable[[str], list[Any]] | None = None):
        self.source = source
        self.query = query
        #: The records of the last run, by uuid (the economics reads them).
        self.latest: Mapping[str, Asset] = {}
        self.unknown = 0

    def _safe_query(self, promql: str) -> list[Any]:
        if self.query is None:
            return []
        try:
            return self.query(promql)
        except Exception as exc:  # labels and serials are optional sources
            log.debug("inventory query %s failed: %s", promql, exc)
            return []

    def resolve(self, gpus: Sequence[GpuScore]) -> Mapping[str, Asset]:
        inventory = self.source.current()
        serials: dict[str, str] = {}
        if any(a.serial and not a.uuid for a in inventory.assets):
            for item in self._safe_query(SERIAL_QUERY):
                labels = item.get("metric", {})
                if labels.get("uuid") and labels.get("serial"):
                    serials[labels["uuid"]] = labels["serial"]
        node_labels = kube.from_series(self._safe_query(kube.QUERY))
        out: dict[str, Asset] = {}
        missing: list[str] = []
        for g in gpus:
            record = inventory.lookup(g.uuid, g.node, g.gpu, serials.get(g.uuid, ""))
            if record is None:
                missing.append(g.uuid)
            asset = merge_labels(record, node_labels.get(g.node))
            if asset is not None:
                out[g.uuid] = asset
        self.source.note_unknown(missing)
        self.unknown = len(missing) if len(inventory) else 0
        self.latest = out
        return out


def make_fleet_hook(
    join: AssetJoin,
    econ: EconHook | None = None,
    *,
    market: MarketPrices | None = None,
    currency: str = "USD",
    downtime_hours: Callable[[str], float] | None = None,
    service_level: float = 0.95,
) -> EconHook:
    """Per run: assets, then economics (reading ``join.latest``), then the plan."""
    econ_failure = RecurringFailure(
        log, "economics", "publishing the inventory and plan without it"
    )

    def hook(gpus: Sequence[GpuScore]) -> tuple[list[GpuScore], list[Any]]:
        now = time.time()
        assets = join.resolve(gpus)
        scored = list(gpus)
        families: list[Any] = []
        if econ is not None:
            try:
                scored, families = econ(gpus)
            except Exception as exc:  # the economics must not take the inventory and plan down
                econ_failure.failed(exc)
            else:
                econ_failure.worked()
        families += asset_metric_families(scored, assets, now)
        families.append(market_metric_family(market, currency))
        families += inventory_self_families(
            len(join.source.current()), join.unknown, join.source.reload_errors
        )
        risks = [
            GpuRisk(
                uuid=g.uuid,
                model=g.model,
                probability=g.probability,
                datacenter=assets[g.uuid].datacenter if g.uuid in assets else "",
                team=assets[g.uuid].team if g.uuid in assets else "",
                **({"downtime_hours": downtime_hours(g.model)} if downtime_hours else {}),
            )
            for g in scored
        ]
        families += plan_metric_families(build_plan(risks, service_level=service_level))
        return scored, families

    return hook
