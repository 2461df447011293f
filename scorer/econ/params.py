"""Economic parameters: the shipped YAML defaults, an operator's overlay, and ``--set`` overrides.

Everything the engine multiplies by lives here, validated once at load, so a typo in a price is a
one-line ``file: key.path: problem (allowed: ...)`` error and never a silently wrong NPV.
"""

from __future__ import annotations

import copy
import functools
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from gpu_health import config
from gpu_health.config import join_key, show
from gpu_health.errors import ConfigError

log = logging.getLogger(__name__)

DEFAULTS_RESOURCE = "default_economics.yaml"
DEPRECIATION_METHODS = frozenset({"straight_line", "declining_balance"})

_TOP_KEYS = frozenset(
    {
        "currency",
        "horizon_months",
        "discount_rate",
        "energy_price",
        "pue",
        "host_power_w",
        "colocation_per_kw_month",
        "maintenance_per_gpu_month",
        "default_utilisation",
        "baseline_annual_failure_rate",
        "hysteresis",
        "models",
    }
)
#: Optional top-level keys (older parameter files lack them): key -> default.
_OPTIONAL_TOP: dict[str, Any] = {"warranty_repair_cost": 0.0, "sla_penalties": {}}
_MODEL_KEYS = frozenset(
    {
        "match",
        "purchase_price",
        "useful_life_years",
        "depreciation",
        "salvage_floor",
        "rental_rate",
        "rental_decline",
        "typical_power_w",
        "provisioned_kw",
        "repurpose",
        "resale_curve",
        "liquidation_factor",
        "repair_cost",
        "downtime_days_per_failure",
        "disposal_cost",
        "health_discount",
    }
)
#: Optional per-model keys (older parameter files lack them): key -> default.
_OPTIONAL_MODEL: dict[str, Any] = {"match_whole_word": False}
_HYSTERESIS_KEYS = frozenset({"absolute", "relative"})
_DEPRECIATION_KEYS = frozenset({"method", "rate"})
_REPURPOSE_KEYS = frozenset({"rate", "utilisation", "power_fraction"})

# Upper bounds of money amounts, in the parameters' own currency. Without them a typo such as
# rental_rate=1e308 overflowed the NPV sums to inf and NaN, NaN won max(), and a GPU with a 90 %
# 30-day risk was recommended "keep" (and --format json printed NaN). They must hold every real
# price in any currency: the weakest in use, the Iranian rial, trades near 1e6 per US dollar, so
# an H200 bought for $35,000 costs about 3.5e10 rials. Each bound is that rate times a generous
# dollar figure: 1e6 dollars for a one-off amount per GPU (price, repair, disposal, penalty),
# 1,000 dollars a GPU-hour for a rental rate, 1e5 dollars a month for a running cost.
#: A one-off amount per GPU: purchase price, repair, warranty repair, disposal, SLA penalty,
#: the hysteresis margin.
MAX_AMOUNT = 1e12
#: A rental rate per GPU-hour (the market's and the lower tier's).
MAX_HOURLY_RATE = 1e9
#: A cost per month: colocation per provisioned kW, maintenance per GPU.
MAX_MONTHLY_COST = 1e11
# With every bound at once the engine's sums stay far inside a float: a month's cash flow is at
# most revenue 730 h x 1e9 + a failure (1e12 + 730 h x 1e9 + a penalty) + facility 20 kW x 1e11
# + maintenance 1e11 ~ 5e12, so 120 months and the terminal value stay below 1e15
# (tests/scorer/test_econ_bounds.py values a GPU with all of them).

#: The name of an NVIDIA vGPU profile (virtual GPU type), which a VM's driver reports as its GPU's
#: name: a board, a hyphen, for a MIG-backed profile its slice count and a hyphen, the frame
#: buffer in GB and the series letter: Q (virtual workstation), B (virtual PC; older types add a
#: display count, ``B4``), A (virtual applications) or C (compute; ``CME`` with the media
#: extensions). ``GRID T4-16Q``, ``NVIDIA A40-12Q``, ``GRID A100D-1-20C``, ``NVIDIA H100XM-80C``,
#: ``NVIDIA RTX Pro 6000 Blackwell DC-4-96Q`` (NVIDIA's vGPU user guide lists the types of each
#: board). A board's own name has no such part: ``A100-SXM4-40GB`` ends in GB, not a series.
_VGPU_PROFILE = re.compile(r"[a-z0-9]-(?:[0-9]+-)?[0-9]+(?:[abq][0-9]?|c(?:me)?)(?![a-z0-9])")

#: What a message about an unvalued vGPU profile adds, so the operator knows why a name that
#: contains a priced board is not valued and what values it.
VGPU_PROFILE_NOTE = "a vGPU profile, a VM's share of a board, that no entry names"


def profiles_said(profiles: int, models: int) -> str:
    """What a message listing ``models`` unvalued models (the scorer's WARNING, the report's
    "not valued" line) adds when ``profiles`` of them are vGPU profiles: why a name that holds a
    priced board's (``NVIDIA A40-12Q``) is not valued, and what values it ("" when none is)."""
    if not profiles:
        return ""
    if models == 1:
        which = "it is a vGPU profile, a VM's share of a board"
    elif profiles == 1:
        which = "1 of these models is a vGPU profile, a VM's share of a board"
    else:
        which = f"{profiles} of these models are vGPU profiles, each a VM's share of a board"
    return (
        f"{which}, valued only by an entry whose match names the profile (match: [A40-12Q]),"
        " never by its board's"
    )


@functools.lru_cache(maxsize=4096)  # asked per entry for each GPU's model: few distinct names
def is_vgpu_profile(name: str) -> bool:
    """Whether ``name`` (any case) is a vGPU profile's name: a slice of a board, not the board.

    A VM's share of a board is not the board: valued by the board's entry it got the board's
    purchase price, resale value, rent and repair cost, and four VMs on one A40 counted as four
    A40s. So such a name fits only a ``match`` that names a profile itself
    (:meth:`ModelParams.fits`)."""
    return _VGPU_PROFILE.search(name.casefold()) is not None


def name_fits(needle: str, wanted: str, whole_word: bool = False) -> bool:
    """Whether the substring ``needle`` fits the model name ``wanted`` (both casefolded), for
    an economics entry's ``match`` and a market quote's model alike.

    With ``whole_word`` the characters on either side of it, if any, are not letters or digits.
    A vGPU profile's name (``NVIDIA A40-12Q``) is fitted only by a substring that is a profile's
    name too (``A40-12Q``), never by a board's (``A40``), and only as a whole word: ``A100-1-5C``
    is not ``A100-1-5CME`` (:func:`is_vgpu_profile`)."""
    if is_vgpu_profile(wanted):
        if not is_vgpu_profile(needle):
            return False
        whole_word = True
    if not whole_word:
        return needle in wanted
    start = wanted.find(needle)
    while start >= 0:
        end = start + len(needle)
        before = wanted[start - 1] if start else ""
        after = wanted[end] if end < len(wanted) else ""
        if not before.isalnum() and not after.isalnum():
            return True
        start = wanted.find(needle, start + 1)
    return False


@dataclass(frozen=True)
class Depreciation:
    method: Literal["straight_line", "declining_balance"]
    #: Fraction of value lost per year (declining_balance only).
    rate: float = 0.0


@dataclass(frozen=True)
class Repurpose:
    """The lower tier (inference, dev, batch) a GPU can be moved to."""

    rate: float
    utilisation: float
    power_fraction: float


@dataclass(frozen=True)
class ModelParams:
    key: str
    match: tuple[str, ...]
    purchase_price: float
    useful_life_years: float
    depreciation: Depreciation
    #: Lowest value as a fraction of purchase price: the book floor and a hard-failed card's price.
    salvage_floor: float
    rental_rate: float
    #: Fraction the market rental price falls per year.
    rental_decline: float
    #: Average GPU power assumed when none was measured.
    typical_power_w: float
    provisioned_kw: float
    repurpose: Repurpose
    #: Resale price as a fraction of purchase price at age 0, 1, 2, ... years (working card).
    resale_curve: tuple[float, ...]
    liquidation_factor: float
    repair_cost: float
    downtime_days_per_failure: float
    disposal_cost: float
    #: Price cut at health 0 (linear in 100 - health).
    health_discount: float
    #: A ``match`` substring fits only as a whole word of the model name: the characters on
    #: either side of it, if any, are not letters or digits. ``L4`` then fits ``NVIDIA L4`` but
    #: not ``NVIDIA L40``/``L40S``, and ``A10`` fits ``NVIDIA A10`` but not ``A100``/``A1000``.
    match_whole_word: bool = False

    @property
    def salvage_value(self) -> float:
        return self.purchase_price * self.salvage_floor

    def fits(self, needle: str, wanted: str) -> bool:
        """Whether ``needle`` (casefolded) fits the casefolded model name ``wanted``
        (:func:`name_fits`)."""
        return name_fits(needle, wanted, self.match_whole_word)


@dataclass(frozen=True)
class Hysteresis:
    absolute: float
    relative: float


@dataclass(frozen=True)
class EconParams:
    currency: str
    horizon_months: int
    discount_rate: float
    energy_price: float
    pue: float
    host_power_w: float
    colocation_per_kw_month: float
    maintenance_per_gpu_month: float
    default_utilisation: float
    baseline_annual_failure_rate: float
    hysteresis: Hysteresis
    models: tuple[ModelParams, ...]
    #: What a failure costs while under warranty (RMA handling, shipping) instead of repair_cost.
    warranty_repair_cost: float = 0.0
    #: SLA tier (inventory ``sla_tier``) -> penalty owed per failure.
    sla_penalties: tuple[tuple[str, float], ...] = ()

    def sla_penalty(self, tier: str) -> float:
        """The penalty per failure of ``tier``; 0 for a tier without one."""
        return dict(self.sla_penalties).get(tier, 0.0)

    def model_for(self, name: str) -> ModelParams | None:
        """The parameters whose ``match`` substring fits the GPU's model name best.

        Matching is case-insensitive; the longest matching substring wins so that a specific
        entry (``"H100 PCIe"``) beats a generic one (``"H100"``) whatever the file order. An
        entry with ``match_whole_word`` fits only where its substring is a whole word of the
        name, and a vGPU profile's name only a substring that names a profile
        (:meth:`ModelParams.fits`).
        """
        wanted = name.casefold()
        best: tuple[int, ModelParams] | None = None
        for model in self.models:
            for needle in model.match:
                longer = best is None or len(needle) > best[0]
                if longer and model.fits(needle.casefold(), wanted):
                    best = (len(needle), model)
        return best[1] if best else None


def default_raw() -> dict[str, Any]:
    """The shipped defaults as a plain mapping (a fresh copy every call)."""
    text = resources.files(__package__).joinpath(DEFAULTS_RESOURCE).read_text(encoding="utf-8")
    raw = config.parse_yaml(text, DEFAULTS_RESOURCE)
    if not isinstance(raw, dict):
        raise ConfigError(DEFAULTS_RESOURCE, "", "expected a mapping at the top")
    return raw


def merge(base: Mapping[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    """Overlay mappings recursively; lists and scalars in ``overlay`` replace ``base``'s."""
    merged = copy.deepcopy(dict(base))
    for key, value in overlay.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def load_raw(path: Path | str | None) -> tuple[dict[str, Any], str]:
    """Defaults, overlaid with ``path`` when given; returns the mapping and its source name."""
    raw = default_raw()
    if path is None:
        return raw, DEFAULTS_RESOURCE
    source = str(path)
    # A key written twice in one mapping is an error: the last value silently winning hid
    # edits such as "energy_price: 0.1" followed further down by "energy_price: 9.9".
    text = config.read_text_file(path)
    overlay = config.expect_mapping(config.parse_yaml(text, source, unique_keys=True), source, "")
    merged = merge(raw, overlay)
    user_models = overlay.get("models")
    if isinstance(user_models, Mapping) and isinstance(merged.get("models"), dict):
        _yield_to_user_models(merged["models"], raw.get("models", {}), user_models, source)
    return merged, source


def _needles(entry: Any) -> set[str]:
    """An entry's ``match`` substrings, casefolded (whatever is not text is left to validate)."""
    match = entry.get("match") if isinstance(entry, Mapping) else None
    return {m.casefold() for m in match if isinstance(m, str)} if isinstance(match, list) else set()


def _yield_to_user_models(
    merged: dict[str, Any], shipped: Mapping[str, Any], user: Mapping[str, Any], source: str
) -> None:
    """A parameter file's own model entries win over the shipped ones they overlap.

    A shipped entry (one the file does not name) whose ``match`` shares a substring with an
    entry of the file is dropped, with one log line: a file written when the defaults had no
    V100 entry (the docs said to add one) priced its V100s under its own key, and once the
    defaults gained ``v100`` the shared substring refused the start. And an entry of the file
    that gives ``depreciation`` gives all of it: merged key by key with the shipped one, a
    ``straight_line`` method kept the shipped ``rate`` and was refused (``rate`` is only for
    ``declining_balance``)."""
    theirs = {key: _needles(entry) for key, entry in user.items()}
    for key in list(merged):
        if key in user or key not in shipped:
            continue
        shared = sorted(_needles(shipped[key]) & set().union(*theirs.values()))
        if shared:
            owner = next(k for k, n in theirs.items() if shared[0] in n)
            log.info(
                "economics: the shipped models.%s is not used: models.%s of %s also matches %r, "
                "and the file's own entry prices those GPUs",
                key,
                owner,
                source,
                shared[0],
            )
            del merged[key]
    for key, entry in user.items():
        if isinstance(entry, Mapping) and "depreciation" in entry and key in merged:
            merged[key]["depreciation"] = copy.deepcopy(entry["depreciation"])


def printable(item: str) -> str:
    """A ``--set`` item as errors show it: a byte that is not UTF-8 as ``\\xff`` (Python reads
    it from argv as a lone surrogate) and a control character escaped (``\\x01``), cut to 200
    characters."""
    try:
        text = item.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:
        text = item.encode("utf-8", "backslashreplace").decode("utf-8")
    text = "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)
    return text if len(text) <= 200 else text[:199] + "…"


def load_params(path: Path | str | None = None, overrides: Sequence[str] = ()) -> EconParams:
    """Validated parameters: defaults, the optional file over them, then ``key=value`` overrides."""
    raw, source = load_raw(path)
    validate(raw, source)
    for item in overrides:
        raw = apply_override(raw, item)
        validate(raw, f"--set {printable(item)}")
    return validate(raw, source)


def apply_override(raw: Mapping[str, Any], item: str) -> dict[str, Any]:
    """Apply one ``key.path=value``; the value is parsed as YAML (``0.2``, ``true``, ``[H100]``)."""
    source = f"--set {printable(item)}"
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError("--set", printable(item), "expected KEY=VALUE (e.g. energy_price=0.20)")
    value = config.parse_yaml(text, source) if text.strip() else None
    if value is None:
        raise ConfigError(source, printable(key), "missing value")
    updated = copy.deepcopy(dict(raw))
    parts = key.split(".")
    node: dict[str, Any] = updated
    for depth, part in enumerate(parts[:-1]):
        where = ".".join(parts[: depth + 1])
        child = node.get(part)
        if child is None:
            allowed = ", ".join(sorted(str(k) for k in node))
            raise ConfigError(source, printable(where), f"unknown key (allowed: {allowed})")
        if not isinstance(child, dict):
            raise ConfigError(source, printable(where), "is a value, not a section")
        node = child
    node[parts[-1]] = value
    return updated


def validate(raw: Any, source: str) -> EconParams:
    top = config.expect_mapping(raw, source, "")
    config.reject_unknown(top, _TOP_KEYS | set(_OPTIONAL_TOP), source, "")
    _require(top, _TOP_KEYS, source, "")
    hyst = config.expect_mapping(top["hysteresis"], source, "hysteresis")
    config.reject_unknown(hyst, _HYSTERESIS_KEYS, source, "hysteresis")
    _require(hyst, _HYSTERESIS_KEYS, source, "hysteresis")
    models_raw = config.expect_mapping(top["models"], source, "models")
    if not models_raw:
        raise ConfigError(source, "models", "at least one GPU model is required")
    num = config.expect_number
    models = tuple(
        _model(str(name), body, source, join_key("models", str(name)))
        for name, body in models_raw.items()
    )
    _refuse_shared_match(models, source)
    return EconParams(
        currency=_currency(top["currency"], source),
        horizon_months=config.expect_int(top["horizon_months"], source, "horizon_months", 1, 120),
        discount_rate=num(top["discount_rate"], source, "discount_rate", 0, 1),
        energy_price=num(top["energy_price"], source, "energy_price", 0, 10),
        pue=num(top["pue"], source, "pue", 1, 3),
        host_power_w=num(top["host_power_w"], source, "host_power_w", 0, 5000),
        colocation_per_kw_month=num(
            top["colocation_per_kw_month"], source, "colocation_per_kw_month", 0, MAX_MONTHLY_COST
        ),
        maintenance_per_gpu_month=num(
            top["maintenance_per_gpu_month"],
            source,
            "maintenance_per_gpu_month",
            0,
            MAX_MONTHLY_COST,
        ),
        default_utilisation=num(top["default_utilisation"], source, "default_utilisation", 0, 1),
        baseline_annual_failure_rate=num(
            top["baseline_annual_failure_rate"], source, "baseline_annual_failure_rate", 0, 1
        ),
        hysteresis=Hysteresis(
            absolute=num(hyst["absolute"], source, "hysteresis.absolute", 0, MAX_AMOUNT),
            relative=num(hyst["relative"], source, "hysteresis.relative", 0, 10),
        ),
        models=models,
        warranty_repair_cost=num(
            top.get("warranty_repair_cost", _OPTIONAL_TOP["warranty_repair_cost"]),
            source,
            "warranty_repair_cost",
            0,
            MAX_AMOUNT,
        ),
        sla_penalties=_sla_penalties(top.get("sla_penalties"), source),
    )


def _refuse_shared_match(models: Sequence[ModelParams], source: str) -> None:
    """Refuse a ``match`` substring listed twice (case-insensitive), in two entries or one.

    In two entries it fits the same model names in both with the same length, so the longest-
    match rule ties and file order decides: ``--set models.h100.match=[A100]`` valued A100s with
    the H100's prices or the A100's depending on the order of the YAML, and an entry added
    under a new key with a default's substring was never used. Different substrings that both
    fit a name (``H100`` and ``H100 PCIe``) are the intended way to price a variant: the longer
    wins (:meth:`EconParams.model_for`).
    """
    seen: dict[str, str] = {}
    for model in models:
        for i, needle in enumerate(model.match):
            folded = needle.casefold()
            where = join_key(join_key("models", model.key), "match") + f"[{i}]"
            other = seen.get(folded)
            if other is None:
                seen[folded] = model.key
            elif other == model.key:
                raise ConfigError(source, where, f"{show(needle)} is listed twice in this entry")
            else:
                raise ConfigError(
                    source,
                    where,
                    f"{show(needle)} is also a match of models.{other}: two entries with the "
                    "same substring tie on every GPU it fits (change that entry, or give this "
                    "one a longer, more specific substring)",
                )


def _sla_penalties(raw: Any, source: str) -> tuple[tuple[str, float], ...]:
    tiers = config.expect_mapping(raw, source, "sla_penalties")
    return tuple(
        (
            str(tier),
            config.expect_number(
                value, source, join_key("sla_penalties", str(tier)), 0, MAX_AMOUNT
            ),
        )
        for tier, value in tiers.items()
    )


def _currency(value: Any, source: str) -> str:
    text = config.expect_str(value, source, "currency")
    if not (text.isascii() and text.isalpha() and 1 <= len(text) <= 8):
        raise ConfigError(
            source, "currency", f"{show(text)} is not a currency code (e.g. USD, EUR)"
        )
    return text


def _require(mapping: Mapping[str, Any], keys: frozenset[str], source: str, key: str) -> None:
    missing = sorted(k for k in keys if k not in mapping)
    if missing:
        raise ConfigError(source, join_key(key, missing[0]), "missing (required)")


def _model(name: str, raw: Any, source: str, key: str) -> ModelParams:
    body = config.expect_mapping(raw, source, key)
    config.reject_unknown(body, _MODEL_KEYS | set(_OPTIONAL_MODEL), source, key)
    _require(body, _MODEL_KEYS, source, key)
    num = config.expect_number

    def k(child: str) -> str:
        return join_key(key, child)

    match = body["match"]
    if isinstance(match, str):
        match = [match]
    if not isinstance(match, list) or not match:
        raise ConfigError(source, k("match"), "expected a non-empty list of model-name substrings")
    needles = tuple(config.expect_str(m, source, k(f"match[{i}]")) for i, m in enumerate(match))
    if any(not n.strip() for n in needles):
        raise ConfigError(source, k("match"), "an empty substring would match every GPU")

    dep = config.expect_mapping(body["depreciation"], source, k("depreciation"))
    config.reject_unknown(dep, _DEPRECIATION_KEYS, source, k("depreciation"))
    if "method" not in dep:
        raise ConfigError(source, k("depreciation.method"), "missing (required)")
    method = config.expect_str(
        dep.get("method"), source, k("depreciation.method"), set(DEPRECIATION_METHODS)
    )
    rate = 0.0
    if method == "declining_balance":
        if "rate" not in dep:
            raise ConfigError(
                source, k("depreciation.rate"), "missing (required for declining_balance)"
            )
        rate = num(dep["rate"], source, k("depreciation.rate"), 0, 1)
    elif "rate" in dep:
        raise ConfigError(
            source, k("depreciation.rate"), "only used by declining_balance (allowed: method)"
        )

    rep = config.expect_mapping(body["repurpose"], source, k("repurpose"))
    config.reject_unknown(rep, _REPURPOSE_KEYS, source, k("repurpose"))
    _require(rep, _REPURPOSE_KEYS, source, k("repurpose"))

    curve_raw = body["resale_curve"]
    if not isinstance(curve_raw, list) or not curve_raw:
        raise ConfigError(
            source, k("resale_curve"), "expected a list of fractions of purchase price by year"
        )
    curve = tuple(num(v, source, k(f"resale_curve[{i}]"), 0, 1.5) for i, v in enumerate(curve_raw))
    for i in range(1, len(curve)):
        if curve[i] > curve[i - 1]:
            raise ConfigError(
                source, k(f"resale_curve[{i}]"), "a resale curve must not rise with age"
            )

    return ModelParams(
        key=name,
        match=needles,
        purchase_price=num(body["purchase_price"], source, k("purchase_price"), 0, MAX_AMOUNT),
        useful_life_years=num(body["useful_life_years"], source, k("useful_life_years"), 0.5, 30),
        depreciation=Depreciation(method=method, rate=rate),  # type: ignore[arg-type]
        salvage_floor=num(body["salvage_floor"], source, k("salvage_floor"), 0, 1),
        rental_rate=num(body["rental_rate"], source, k("rental_rate"), 0, MAX_HOURLY_RATE),
        rental_decline=num(body["rental_decline"], source, k("rental_decline"), 0, 0.99),
        typical_power_w=num(body["typical_power_w"], source, k("typical_power_w"), 0, 5000),
        provisioned_kw=num(body["provisioned_kw"], source, k("provisioned_kw"), 0, 20),
        repurpose=Repurpose(
            rate=num(rep["rate"], source, k("repurpose.rate"), 0, MAX_HOURLY_RATE),
            utilisation=num(rep["utilisation"], source, k("repurpose.utilisation"), 0, 1),
            power_fraction=num(rep["power_fraction"], source, k("repurpose.power_fraction"), 0, 2),
        ),
        resale_curve=curve,
        liquidation_factor=num(body["liquidation_factor"], source, k("liquidation_factor"), 0, 1),
        repair_cost=num(body["repair_cost"], source, k("repair_cost"), 0, MAX_AMOUNT),
        # Capped at one month so lost revenue per failure never exceeds a month's revenue, which
        # keeps "a higher rental rate never lowers keep's NPV" true for any hazard.
        downtime_days_per_failure=num(
            body["downtime_days_per_failure"], source, k("downtime_days_per_failure"), 0, 30
        ),
        disposal_cost=num(body["disposal_cost"], source, k("disposal_cost"), 0, MAX_AMOUNT),
        health_discount=num(body["health_discount"], source, k("health_discount"), 0, 1),
        match_whole_word=config.expect_bool(
            body.get("match_whole_word", _OPTIONAL_MODEL["match_whole_word"]),
            source,
            k("match_whole_word"),
        ),
    )
