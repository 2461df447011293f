"""Feeds each scoring run into the economic engine (``gpu_health.scorer.econ``).

The failure model and PromQL give utilisation, power, the survival curve (p7/p30/p90: the hazard
is read from its 30 d and 90 d points), health score and a hard-fault flag;
the GPU's age comes from an inventory CSV (``uuid`` plus ``age_days`` or ``purchase_date``), or a
default when the GPU is not listed. A GPU the economics cannot value (no ``models.*.match`` fits
its model) keeps its failure scores and its state, gets no NPV and no recommended action, and says
so: ``GpuScore.econ_unvalued`` (the API's ``economics.valued: false``),
``gpu_scorer_econ_unvalued_gpus{model}``, and one WARNING each time the set of such models (or
their GPU counts) changes, naming them and the option that adds them (:class:`UnvaluedLog`).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from gpu_health.csv_file import read_csv
from gpu_health.errors import UserError
from gpu_health.safetext import counted_by_name, gpus_counted, shown
from gpu_health.scorer.service import EconHook, GpuScore
from gpu_health.unix_time import parse_time

log = logging.getLogger(__name__)

#: The oldest GPU age an ages CSV may give (100 years, as --econ.default-age-days allows).
MAX_AGE_DAYS = 36500.0
#: The scorer's option that names the economics YAML (``gpu-health-scorer serve --help``).
PARAMS_OPTION = "--econ.params"
#: Models the log line names at most; the others are counted.
MAX_MODELS_LOGGED = 10


class UnvaluedLog:
    """Says which GPU models the economics cannot value, once per change (not every run).

    A WARNING names each model without an economics entry and its number of GPUs, and how to
    add an entry; it is said again only when that set or a count changes, and an INFO line
    says so when every GPU is valued again.
    """

    def __init__(self, matches: Iterable[str]) -> None:
        self.matches = tuple(matches)
        self._said: dict[str, int] = {}

    def note(self, unvalued: Mapping[str, int], scored: int) -> None:
        counts = dict(unvalued)
        if counts == self._said:
            return
        self._said = counts
        if not counts:
            log.info("economics: every GPU is valued now (%s)", gpus_counted(scored))
            return
        named = counted_by_name(counts, MAX_MODELS_LOGGED, lambda model: f"'{shown(model)}'")
        from gpu_health.scorer.econ.params import (  # as make_econ_hook: lazily
            is_vgpu_profile,
            profiles_said,
        )

        profiles = sum(1 for model in counts if is_vgpu_profile(model))
        log.warning(
            "economics: %d of %s not valued (no NPV, no recommended action): no economics "
            "entry matches their model: %s (the entries match %s)%s. To value them, add an entry "
            "for each model under models: (match: and its prices, docs/economics.md) to the "
            "YAML given with %s; until then /api/v1/gpus shows them with economics.valued "
            "false and gpu_scorer_econ_unvalued_gpus{model} counts them",
            sum(counts.values()),
            gpus_counted(scored),
            named,
            ", ".join(self.matches) or "nothing",
            f"; {profiles_said(profiles, len(counts))}" if profiles else "",
            PARAMS_OPTION,
        )


def read_ages(path: Path, now: float | None = None) -> dict[str, float]:
    """``uuid -> age in days`` from an inventory CSV (``age_days`` or ``purchase_date``)."""
    now = time.time() if now is None else now
    ages: dict[str, float] = {}
    table = read_csv(path)
    cols = set(table.header)
    if "uuid" not in cols or not cols & {"age_days", "purchase_date"}:
        raise UserError(f"{path}: needs columns uuid and age_days or purchase_date")
    for n, row in table.rows():
        try:
            if row.get("age_days"):
                age = float(row["age_days"])
                if not 0 <= age <= MAX_AGE_DAYS:  # nan, inf and a negative age included
                    raise UserError(f"age_days: expected 0 to {MAX_AGE_DAYS:g} days, got {age:g}")
                ages[row["uuid"]] = age
            elif row.get("purchase_date"):
                bought = parse_time(row["purchase_date"])
                if bought > now + 86400:  # was taken as age 0 without a word
                    raise UserError(f"purchase_date: {row['purchase_date']} is in the future")
                ages[row["uuid"]] = max(0.0, (now - bought) / 86400)
            else:  # an empty age_days without a purchase_date column was a KeyError traceback
                raise UserError("no age: give age_days or purchase_date")
        except (ValueError, UserError) as exc:
            raise UserError(f"{path}: line {n}: {exc}") from None
    return ages


def _opt(value: float, low: float, high: float) -> float | None:
    if not math.isfinite(value):
        return None
    return min(max(value, low), high)


def _asset_inputs(asset: Any, params: Any, now: float) -> dict[str, Any]:
    """Economics inputs from one inventory record (absent fields keep the defaults)."""
    if asset is None:
        return {}
    out: dict[str, Any] = {}
    age = asset.age_seconds(now)
    if age is not None:
        out["age_days"] = min(age / 86400.0, 36500.0)
    if asset.purchase_price is not None:
        out["purchase_price"] = asset.purchase_price
    if asset.rental_rate is not None:
        out["rental_rate"] = asset.rental_rate
    remaining = asset.warranty_remaining_seconds(now)
    if remaining is not None:
        out["warranty_days"] = max(-36500.0, min(remaining / 86400.0, 36500.0))
    if asset.sla_tier:
        out["sla_penalty"] = params.sla_penalty(asset.sla_tier)
    return out


def make_econ_hook(
    params_path: Path | None = None,
    inventory: Path | None = None,
    default_age_days: float = 730.0,
    overrides: Sequence[str] = (),
    assets: Callable[[], Mapping[str, Any]] | None = None,
    market: Any = None,
) -> EconHook:
    """Build the per-run economics callback; raises UserError on a bad parameter file.

    ``assets`` returns this run's asset-inventory records by uuid (``gpu_health.scorer.
    inventory``): their purchase date, price, contract rate, warranty and SLA tier replace the
    defaults. ``market`` (a ``MarketPrices``) sets resale values from the user's price table.
    """
    from gpu_health.scorer.econ.engine import GpuEconInput, not_valued_reason, value_fleet
    from gpu_health.scorer.econ.metrics import econ_metric_families, unvalued_family
    from gpu_health.scorer.econ.params import load_params
    from gpu_health.scorer.econ.recommender import Recommender

    params = load_params(params_path, overrides)
    recommender = Recommender(params.hysteresis)
    ages = read_ages(inventory) if inventory else {}
    said = UnvaluedLog(needle for model in params.models for needle in model.match)

    def hook(gpus: Sequence[GpuScore]) -> tuple[list[GpuScore], list[Any]]:
        inputs = []
        records = assets() if assets is not None else {}
        now = time.time()
        for g in gpus:
            hard = g.inputs.get("hard_fault", math.nan)
            asset = _asset_inputs(records.get(g.uuid), params, now)
            quote = market.lookup(g.model) if market is not None else None
            if quote is not None:
                asset["market_price"] = quote.price
                asset["market_price_date"] = quote.date
            inputs.append(
                GpuEconInput(
                    uuid=g.uuid,
                    model=g.model,
                    age_days=asset.pop("age_days", ages.get(g.uuid, default_age_days)),
                    utilisation=_opt(g.inputs.get("utilization_avg_30d", math.nan), 0, 1),
                    power_w=_opt(g.inputs.get("power_avg_30d_watts", math.nan), 0, 5000),
                    p7=_opt(g.probability["7d"], 0, 1),
                    p30=_opt(g.probability["30d"], 0, 1),
                    p90=_opt(g.probability.get("90d", math.nan), 0, 1),
                    health=_opt(g.inputs.get("health_score", math.nan), 0, 100),
                    hard_fault=bool(math.isfinite(hard) and hard > 0),
                    node=g.node,
                    gpu=g.gpu,
                    **asset,
                )
            )
        results, skipped = value_fleet(inputs, params)
        unvalued = Counter(gpu.model for gpu, _reason in skipped)
        said.note(unvalued, len(gpus))
        results = recommender.recommend_all(results)
        by_uuid = {r.uuid: r for r in results}
        unpriced = {gpu.uuid for gpu, _reason in skipped}
        out = [
            dataclasses.replace(
                g,
                econ=by_uuid.get(g.uuid),
                econ_unvalued=not_valued_reason(g.model) if g.uuid in unpriced else "",
            )
            for g in gpus
        ]
        return out, [*econ_metric_families(results), unvalued_family(unvalued)]

    return hook
