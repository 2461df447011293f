"""Net present value of keep, repair, repurpose, sell and decommission for one GPU.

Pure arithmetic over :class:`EconParams`; every formula is written out in docs/economics.md and
the tests recompute them by hand, so the code favours one obvious line per term over cleverness.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from gpu_health.errors import UserError
from gpu_health.scorer.econ.params import (
    MAX_AMOUNT,
    MAX_HOURLY_RATE,
    VGPU_PROFILE_NOTE,
    EconParams,
    ModelParams,
    is_vgpu_profile,
)

#: Actions in tie-break order: on equal NPV the less disruptive action wins. ``repair`` (pay the
#: repair and its downtime, then operate as a sound card) is offered only for a hard fault.
ACTIONS: tuple[str, ...] = ("keep", "repair", "repurpose", "sell", "decommission")
HOURS_PER_MONTH = 730.0
DAYS_PER_MONTH = 365.0 / 12.0
DAYS_PER_YEAR = 365.0


class UnknownModelError(UserError):
    """No ``models.*.match`` substring fits the GPU's model name."""


def not_valued_reason(model: str) -> str:
    """Why a GPU of ``model`` has no valuation, in the words the scorer's API, its log and the
    report use: ``no economics for model Tesla K80``."""
    if is_vgpu_profile(model):
        return f"no economics for model {model}: {VGPU_PROFILE_NOTE}"
    return f"no economics for model {model}"


@dataclass(frozen=True)
class GpuEconInput:
    """What the engine needs to know about one GPU; ``None`` = not measured (a default is used)."""

    uuid: str
    model: str
    age_days: float
    utilisation: float | None = None
    power_w: float | None = None
    p7: float | None = None
    p30: float | None = None
    #: Probability of failure within 90 days: with p30, the survival curve the hazard comes from.
    p90: float | None = None
    health: float | None = None
    hard_fault: bool = False
    node: str = ""
    gpu: str = ""
    # From the asset inventory (docs/inventory.md); None = the model's defaults apply.
    purchase_price: float | None = None
    #: Contracted rental rate per GPU-hour (replaces the model's market rate for keep).
    rental_rate: float | None = None
    #: Days of warranty left (<= 0: ended); a failure in a month under warranty costs an RMA.
    warranty_days: float | None = None
    #: Contractual penalty per failure for the GPU's SLA tier.
    sla_penalty: float = 0.0
    #: Market price of a used card of this model, and the date of that quote.
    market_price: float | None = None
    market_price_date: str = ""

    def __post_init__(self) -> None:
        _check("age_days", self.age_days, 0, 36500)
        _check("purchase_price", self.purchase_price, 0, MAX_AMOUNT)
        _check("rental_rate", self.rental_rate, 0, MAX_HOURLY_RATE)
        _check("warranty_days", self.warranty_days, -36500, 36500)
        _check("sla_penalty", self.sla_penalty, 0, MAX_AMOUNT)
        _check("market_price", self.market_price, 0, MAX_AMOUNT)
        _check("utilisation", self.utilisation, 0, 1)
        _check("power_w", self.power_w, 0, 5000)
        _check("p7", self.p7, 0, 1)
        _check("p30", self.p30, 0, 1)
        _check("p90", self.p90, 0, 1)
        _check("health", self.health, 0, 100)


def _check(name: str, value: float | None, low: float, high: float) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not math.isfinite(value) or not low <= value <= high:
        raise ValueError(f"{name}: {value!r} is out of range (allowed: {low:g} to {high:g})")


@dataclass(frozen=True)
class EconResult:
    """The valuation of one GPU and the inputs that drove it."""

    uuid: str
    model: str
    node: str
    gpu: str
    model_key: str
    currency: str
    npv: dict[str, float]
    residual_value: float
    #: Actions the guard rails allow (a hard-faulted GPU can only be sold or decommissioned).
    eligible: tuple[str, ...]
    #: Highest NPV among the eligible actions.
    best_action: str
    #: What to do: ``best_action``, or the current action while the lead is within hysteresis.
    recommended_action: str
    #: Decision inputs after defaults were applied (see docs/economics.md for each name).
    inputs: dict[str, float]
    #: Inputs that were not measured and fell back to a configured default.
    defaulted: tuple[str, ...] = field(default=())
    #: Date of the market-price quote behind ``npv["sell"]`` ("" = the resale curve was used).
    price_date: str = ""


#: Points of the scorer's survival curve the hazard is read from: (days, P(failure within them)).
CURVE_POINTS_DAYS: tuple[float, ...] = (30.0, 90.0)
#: Expected failures per month are capped at one: a failed card is out for its repair, and the
#: cap keeps P = 1 (an infinite cumulative hazard) finite.
MAX_MONTHLY_HAZARD = 1.0


def cumulative_hazard(probability: float) -> float:
    """Cumulative hazard at a point of the survival curve: -ln S(t) = -ln(1 - P(t))."""
    return math.inf if probability >= 1.0 else -math.log1p(-probability)


def monthly_hazard(p30: float | None, p90: float | None, annual_baseline: float) -> float:
    """Expected failures per calendar month, held constant over the horizon.

    Read off the scorer's survival curve: each point P(t) gives an average hazard rate
    -ln(1 - P(t)) / t over its first t days; the larger of the 30-day and 90-day rates, over a
    calendar month (365/12 days), is the hazard. Both coincide under a constant hazard; taking
    the larger keeps a risk concentrated in the first month, or rising after it, at its full
    rate. A rate, not a probability, because every failure is repaired and the card can fail
    again. Without either point the fleet's annual baseline applies the same way.
    """
    rates = [
        cumulative_hazard(p) / days
        for p, days in zip((p30, p90), CURVE_POINTS_DAYS, strict=True)
        if p is not None
    ]
    if not rates:
        return min(MAX_MONTHLY_HAZARD, cumulative_hazard(annual_baseline) / 12.0)
    return min(MAX_MONTHLY_HAZARD, DAYS_PER_MONTH * max(rates))


def health_factor(health: float, discount: float) -> float:
    """Buyers cut the price linearly with lost health: 1 at 100, ``1 - discount`` at 0."""
    return 1.0 - discount * (100.0 - health) / 100.0


def book_fraction(model: ModelParams, age_years: float) -> float:
    """Depreciated value as a fraction of purchase price; the salvage floor after useful life."""
    floor = model.salvage_floor
    if age_years >= model.useful_life_years:
        return floor
    if model.depreciation.method == "straight_line":
        fraction = 1.0 - age_years / model.useful_life_years
    else:
        fraction = math.pow(1.0 - model.depreciation.rate, age_years)
    return max(floor, fraction)


def residual_value(model: ModelParams, age_years: float, health: float, hard_fault: bool) -> float:
    """Depreciated value adjusted by health; a hard-failed card is worth its salvage."""
    if hard_fault:
        return model.salvage_value
    value = (
        model.purchase_price
        * book_fraction(model, age_years)
        * health_factor(health, model.health_discount)
    )
    return max(model.salvage_value, value)


def resale_fraction(curve: tuple[float, ...], age_years: float) -> float:
    """Linear interpolation between yearly points; the last point holds beyond the curve."""
    if age_years >= len(curve) - 1:
        return curve[-1]
    low = math.floor(age_years)
    weight = age_years - low
    return curve[low] + (curve[low + 1] - curve[low]) * weight


def sell_value(
    model: ModelParams,
    age_years: float,
    health: float,
    hard_fault: bool,
    market_price: float | None = None,
) -> float:
    """Cash from selling today: resale curve x liquidation haircut x health; salvage if failed.

    A recorded market price for a used card of the model replaces ``purchase price x resale
    curve``: it is what buyers pay now, whatever the card cost.
    """
    if hard_fault:
        return model.salvage_value
    gross = (
        market_price
        if market_price is not None
        else model.purchase_price * resale_fraction(model.resale_curve, age_years)
    )
    price = gross * model.liquidation_factor * health_factor(health, model.health_discount)
    return max(model.salvage_value, price)


def operate_npv(
    params: EconParams,
    model: ModelParams,
    *,
    rate: float,
    utilisation: float,
    power_w: float,
    hazard: float,
    terminal_value: float,
    warranty_months: float = 0.0,
    warranty_repair_cost: float = 0.0,
    sla_penalty: float = 0.0,
) -> float:
    """Discounted monthly cash flow of running the GPU at ``rate``, plus the terminal value.

    A month that starts under warranty repairs a failure for ``warranty_repair_cost`` (the RMA's
    handling and shipping) instead of the model's ``repair_cost``; ``sla_penalty`` is owed per
    failure on top of the lost revenue.
    """
    monthly_discount = math.pow(1.0 + params.discount_rate, 1.0 / 12.0)
    energy = (
        (power_w + params.host_power_w)
        / 1000.0
        * HOURS_PER_MONTH
        * params.pue
        * params.energy_price
    )
    facility = params.colocation_per_kw_month * model.provisioned_kw
    downtime_hours = min(model.downtime_days_per_failure * 24.0, HOURS_PER_MONTH)
    total = 0.0
    for month in range(1, params.horizon_months + 1):
        rate_m = rate * math.pow(1.0 - model.rental_decline, (month - 1) / 12.0)
        revenue = rate_m * HOURS_PER_MONTH * utilisation
        repair = warranty_repair_cost if month - 1 < warranty_months else model.repair_cost
        failure = hazard * (repair + downtime_hours * rate_m * utilisation + sla_penalty)
        net = revenue - energy - facility - params.maintenance_per_gpu_month - failure
        total += net / math.pow(monthly_discount, month)
    return total + terminal_value / math.pow(monthly_discount, params.horizon_months)


NORMAL_ACTIONS: tuple[str, ...] = tuple(a for a in ACTIONS if a != "repair")


def repair_npv(
    params: EconParams, model: ModelParams, utilisation: float, power_w: float, end_age: float
) -> float:
    """Repair now, then operate as a sound card: the repair cost and the revenue lost while
    the card is out are paid at once; afterwards the fleet baseline hazard applies and the
    terminal value is that of a healthy card."""
    downtime_hours = min(model.downtime_days_per_failure * 24.0, HOURS_PER_MONTH)
    outage = model.repair_cost + downtime_hours * model.rental_rate * utilisation
    after = operate_npv(
        params,
        model,
        rate=model.rental_rate,
        utilisation=utilisation,
        power_w=power_w,
        hazard=monthly_hazard(None, None, params.baseline_annual_failure_rate),
        terminal_value=residual_value(model, end_age, 100.0, False),
    )
    return after - outage


def value_gpu(gpu: GpuEconInput, params: EconParams) -> EconResult:
    """Value the four actions for one GPU and pick the best allowed one.

    Raises :class:`UnknownModelError` when no configured model matches ``gpu.model``.
    """
    model = params.model_for(gpu.model)
    if model is None:
        if is_vgpu_profile(gpu.model):  # the board entries are no help: none may fit it
            raise UnknownModelError(f"GPU {gpu.uuid}: model {gpu.model!r} is {VGPU_PROFILE_NOTE}")
        # each substring once (params refuses one listed twice; kept as a guard for messages)
        known = ", ".join(dict.fromkeys(m for entry in params.models for m in entry.match))
        raise UnknownModelError(
            f"GPU {gpu.uuid}: model {gpu.model!r} matches no economics model (allowed: {known})"
        )
    # The inventory's price and contract rate replace the model's list price and market rate.
    if gpu.purchase_price is not None:
        model = dataclasses.replace(model, purchase_price=gpu.purchase_price)
    if gpu.rental_rate is not None:
        model = dataclasses.replace(model, rental_rate=gpu.rental_rate)
    warranty_months = max(0.0, gpu.warranty_days or 0.0) / DAYS_PER_MONTH
    defaulted: list[str] = []
    utilisation = gpu.utilisation
    if utilisation is None:
        utilisation = params.default_utilisation
        defaulted.append("utilisation")
    power_w = gpu.power_w
    if power_w is None:
        power_w = model.typical_power_w
        defaulted.append("power_w")
    health = gpu.health
    if health is None:
        health = 100.0
        defaulted.append("health")
    if gpu.p30 is None and gpu.p90 is None:
        defaulted.append("failure_probability")
    hazard = monthly_hazard(gpu.p30, gpu.p90, params.baseline_annual_failure_rate)
    age_years = gpu.age_days / DAYS_PER_YEAR
    end_age = age_years + params.horizon_months / 12.0

    terminal = residual_value(model, end_age, health, gpu.hard_fault)
    keep = operate_npv(
        params,
        model,
        rate=model.rental_rate,
        utilisation=utilisation,
        power_w=power_w,
        hazard=hazard,
        terminal_value=terminal,
        warranty_months=warranty_months,
        warranty_repair_cost=params.warranty_repair_cost,
        sla_penalty=gpu.sla_penalty,
    )
    repurpose = operate_npv(
        params,
        model,
        rate=model.repurpose.rate,
        utilisation=model.repurpose.utilisation,
        power_w=power_w * model.repurpose.power_fraction,
        hazard=hazard,
        terminal_value=terminal,
        warranty_months=warranty_months,
        warranty_repair_cost=params.warranty_repair_cost,
    )
    npv = {
        "keep": keep,
        "repair": repair_npv(params, model, utilisation, power_w, end_age),
        "repurpose": repurpose,
        "sell": sell_value(model, age_years, health, gpu.hard_fault, gpu.market_price),
        "decommission": model.salvage_value - model.disposal_cost,
    }
    # A hard fault means the card cannot serve any tier until repaired: repair or replace it
    # (sell or decommission); a sound card has nothing to repair.
    eligible = ("repair", "sell", "decommission") if gpu.hard_fault else NORMAL_ACTIONS
    best = best_action(npv, eligible)
    inputs = {
        "age_days": float(gpu.age_days),
        "utilisation": utilisation,
        "power_w": power_w,
        "p7": gpu.p7 if gpu.p7 is not None else math.nan,
        "p30": gpu.p30 if gpu.p30 is not None else math.nan,
        "p90": gpu.p90 if gpu.p90 is not None else math.nan,
        "monthly_hazard": hazard,
        "health": health,
        "hard_fault": 1.0 if gpu.hard_fault else 0.0,
        "rental_rate": model.rental_rate,
        "energy_price": params.energy_price,
        "purchase_price": model.purchase_price,
        "warranty_days": gpu.warranty_days if gpu.warranty_days is not None else math.nan,
        "sla_penalty": gpu.sla_penalty,
    }
    return EconResult(
        uuid=gpu.uuid,
        model=gpu.model,
        node=gpu.node,
        gpu=gpu.gpu,
        model_key=model.key,
        currency=params.currency,
        npv=npv,
        residual_value=residual_value(model, age_years, health, gpu.hard_fault),
        eligible=eligible,
        best_action=best,
        recommended_action=best,
        inputs=inputs,
        defaulted=tuple(defaulted),
        price_date=gpu.market_price_date if gpu.market_price is not None else "",
    )


def best_action(npv: dict[str, float], eligible: Iterable[str]) -> str:
    """Highest finite NPV among ``eligible``; ties go to the earlier (less disruptive) action.

    An NPV that is not finite is never chosen: NaN compares false with everything, so ``max()``
    kept whichever action came first, and an overflowed keep (rental_rate=1e308) was recommended
    for a GPU with a 90 % 30-day risk. The parameters' bounds keep every NPV finite; an allowed
    set with none finite is therefore a bug, raised rather than answered with a guess.
    """
    allowed = [a for a in ACTIONS if a in set(eligible)]
    finite = [a for a in allowed if math.isfinite(npv[a])]
    if not finite:
        shown = ", ".join(f"{a} {npv[a]!r}" for a in allowed)
        raise ArithmeticError(f"no finite NPV among the allowed actions ({shown or 'none'})")
    return max(finite, key=lambda a: (npv[a], -ACTIONS.index(a)))


def value_fleet(
    gpus: Iterable[GpuEconInput], params: EconParams
) -> tuple[list[EconResult], list[tuple[GpuEconInput, str]]]:
    """Value every GPU; those with an unknown model are returned with the reason, not raised."""
    results: list[EconResult] = []
    skipped: list[tuple[GpuEconInput, str]] = []
    for gpu in gpus:
        try:
            results.append(value_gpu(gpu, params))
        except UnknownModelError as exc:
            skipped.append((gpu, str(exc)))
    return results, skipped
