"""The market-price table: what a used GPU of a model fetches today, as the operator records it.

A CSV of ``model,condition,price,date`` kept by the user (broker quotes, auction results); it is
never scraped. The newest row per (model, condition) sets the resale value of that model, and
its date travels with every sell recommendation so a stale quote is visible next to the advice.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from gpu_health.config import show
from gpu_health.csv_file import parse_csv
from gpu_health.errors import UserError
from gpu_health.scorer.econ.params import MAX_AMOUNT, name_fits
from gpu_health.scorer.inventory.loader import read_text

COLUMNS = ("model", "condition", "price", "date")
CONDITIONS = ("used", "refurbished", "for_parts")
#: The economics' ceiling for a one-off amount per GPU: prices are in the economics currency,
#: which may be one worth a millionth of a dollar (scorer/econ/params.py explains the bound).
MAX_PRICE = MAX_AMOUNT


@dataclass(frozen=True)
class MarketPrice:
    model: str
    condition: str
    price: float
    #: ISO date of the quote, shown with every sell recommendation.
    date: str


@dataclass(frozen=True)
class MarketPrices:
    source: str
    prices: tuple[MarketPrice, ...]

    def lookup(self, gpu_model: str, condition: str = "used") -> MarketPrice | None:
        """The newest quote whose model name is contained in the GPU's (longest match wins).

        A vGPU profile's name takes only a quote for that profile, never its board's
        (:func:`~gpu_health.scorer.econ.params.name_fits`): a VM's slice is not sold as a board.
        """
        wanted = gpu_model.casefold()
        best: MarketPrice | None = None
        for p in self.prices:
            if p.condition != condition or not name_fits(p.model.casefold(), wanted):
                continue
            if best is None or (len(p.model), p.date) > (len(best.model), best.date):
                best = p
        return best


def parse_market_prices(text: str, source: str) -> MarketPrices:
    table = parse_csv(text, source)
    header = list(table.header)
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise UserError(f"{source}: missing column {missing[0]!r} (required: {', '.join(COLUMNS)})")
    out: list[MarketPrice] = []
    for line, row in table.rows():
        where = f"{source}: line {line}"
        cells = {k: v.strip() for k, v in row.items()}
        if not any(cells.values()):
            continue
        model = cells["model"]
        if not model or len(model) > 64:
            raise UserError(f"{where}: model: expected a model name of 1 to 64 characters")
        condition = cells["condition"] or "used"
        if condition not in CONDITIONS:
            allowed = ", ".join(CONDITIONS)
            raise UserError(
                f"{where}: condition: {show(condition)} not allowed (allowed: {allowed})"
            )
        try:
            price = float(cells["price"])
        except ValueError:
            raise UserError(
                f"{where}: price: expected a number, got {show(cells['price'])}"
            ) from None
        if not 0 <= price <= MAX_PRICE:
            raise UserError(
                f"{where}: price: {price:g} is out of range (allowed: 0 to {MAX_PRICE:g})"
            )
        try:
            date = dt.date.fromisoformat(cells["date"]).isoformat()
        except ValueError:
            raise UserError(
                f"{where}: date: {show(cells['date'])} is not a date (expected YYYY-MM-DD)"
            ) from None
        out.append(MarketPrice(model, condition, price, date))
    return MarketPrices(source, tuple(out))


def load_market_prices(path: Path | str) -> MarketPrices:
    path = Path(path)
    return parse_market_prices(read_text(path), str(path))
