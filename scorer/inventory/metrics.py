"""Inventory series for PromQL: ``gpu_asset_info``, ``gpu_age_seconds``, warranty and prices.

``gpu_asset_info`` follows the info-metric pattern (value 1, facts as labels) so any per-GPU
series can be grouped by datacenter, rack or team with ``* on (uuid) group_left (datacenter)
gpu_asset_info``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from gpu_health.scorer.catalogue import SCORER_IDENTITY_LABELS, SCORER_METRICS
from gpu_health.scorer.inventory.market import MarketPrices
from gpu_health.scorer.inventory.model import INFO_LABELS, Asset
from gpu_health.scorer.service import GpuScore

_HELP = {name: help_text for name, _kind, help_text, _labels in SCORER_METRICS}


def asset_metric_families(
    gpus: Sequence[GpuScore], assets: Mapping[str, Asset], now: float
) -> list[GaugeMetricFamily]:
    ident = list(SCORER_IDENTITY_LABELS)
    info = GaugeMetricFamily(
        "gpu_asset_info", _HELP["gpu_asset_info"], labels=[*ident, *INFO_LABELS]
    )
    age = GaugeMetricFamily("gpu_age_seconds", _HELP["gpu_age_seconds"], labels=ident)
    warranty = GaugeMetricFamily(
        "gpu_warranty_remaining_seconds", _HELP["gpu_warranty_remaining_seconds"], labels=ident
    )
    for g in gpus:
        asset = assets.get(g.uuid)
        if asset is None:
            continue
        info.add_metric([*g.labels, *(getattr(asset, name) for name in INFO_LABELS)], 1.0)
        seconds = asset.age_seconds(now)
        if seconds is not None:
            age.add_metric(g.labels, seconds)
        remaining = asset.warranty_remaining_seconds(now)
        if remaining is not None:
            warranty.add_metric(g.labels, remaining)
    return [info, age, warranty]


def market_metric_family(market: MarketPrices | None, currency: str) -> GaugeMetricFamily:
    family = GaugeMetricFamily(
        "gpu_market_price",
        _HELP["gpu_market_price"],
        labels=["model", "condition", "date", "currency"],
    )
    for p in market.prices if market is not None else ():
        family.add_metric([p.model, p.condition, p.date, currency], p.price)
    return family


def inventory_self_families(records: int, unknown: int, reload_errors: int) -> list[object]:
    recs = GaugeMetricFamily(
        "gpu_scorer_inventory_records", _HELP["gpu_scorer_inventory_records"], value=records
    )
    unk = GaugeMetricFamily(
        "gpu_scorer_inventory_unknown_gpus",
        _HELP["gpu_scorer_inventory_unknown_gpus"],
        value=unknown,
    )
    errors = CounterMetricFamily(
        "gpu_scorer_inventory_reload_errors",
        _HELP["gpu_scorer_inventory_reload_errors_total"],
        value=reload_errors,
    )
    return [recs, unk, errors]
