"""Reading a health policy from YAML, as an overlay on a base policy, with one-line errors.

Every key is checked against its allowed range, and a bad value is reported as
``file: key.path: problem (allowed: a to b)``. An operator's file only names what it changes:
each section overlays the same section of the base (the shipped defaults).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import fields, replace
from typing import Any

from gpu_health.config import (
    expect_int,
    expect_mapping,
    expect_number,
    expect_str,
    join_key,
    reject_unknown,
)
from gpu_health.errors import ConfigError
from gpu_health.health.policy_types import (
    Caps,
    Flag,
    HardLimits,
    Limits,
    ModelOverride,
    Policy,
    Ramp,
    TemperatureRule,
    Thresholds,
    Windows,
    XidPolicy,
    XidRule,
)
from gpu_health.health.result import DIMENSIONS, GRADES

_MAX_POINTS = 100.0


class _Section:
    """One mapping being parsed: known keys, base values for an overlay, error locations."""

    def __init__(
        self,
        raw: Any,
        source: str,
        key: str,
        allowed: set[str] | frozenset[str],
        base: Mapping[str, Any] | None,
    ) -> None:
        self.raw = expect_mapping(raw, source, key)
        self.source = source
        self.key = key
        self.base = base
        reject_unknown(self.raw, allowed, source, key)

    def has(self, name: str) -> bool:
        return name in self.raw

    def path(self, name: str) -> str:
        return join_key(self.key, name)

    def value(self, name: str) -> Any:
        if name in self.raw:
            return self.raw[name]
        if self.base is None or name not in self.base:
            raise ConfigError(self.source, self.path(name), "missing key")
        return self.base[name]

    def number(self, name: str, low: float | None, high: float | None) -> float:
        if name not in self.raw and self.base is not None and name in self.base:
            return float(self.base[name])
        return expect_number(self.value(name), self.source, self.path(name), low, high)

    def optional_number(self, name: str, low: float, high: float) -> float | None:
        if name not in self.raw:
            return None if self.base is None else self.base.get(name)
        raw = self.raw[name]
        if raw is None:
            return None
        return expect_number(raw, self.source, self.path(name), low, high)

    def optional_int(self, name: str, low: int, high: int) -> int | None:
        if name not in self.raw:
            return None if self.base is None else self.base.get(name)
        raw = self.raw[name]
        if raw is None:
            return None
        return expect_int(raw, self.source, self.path(name), low, high)


def _asdict(obj: Any) -> dict[str, Any] | None:
    if obj is None:
        return None
    return {f.name: getattr(obj, f.name) for f in fields(obj)}


def _parse_ramp(raw: Any, source: str, key: str, base: Ramp | None, high: float) -> Ramp:
    sec = _Section(raw, source, key, {"start", "full", "points"}, _asdict(base))
    start = sec.number("start", 0, high)
    full = sec.number("full", 0, high)
    points = sec.number("points", 0, _MAX_POINTS)
    if full <= start:
        raise ConfigError(
            source,
            sec.path("full"),
            f"{full:g} must be above start (allowed: above {start:g} to {high:g})",
        )
    return Ramp(start, full, points)


def _parse_flag(raw: Any, source: str, key: str, base: Flag | None) -> Flag:
    sec = _Section(raw, source, key, {"points"}, _asdict(base))
    return Flag(sec.number("points", 0, _MAX_POINTS))


def _parse_temperature(
    raw: Any, source: str, key: str, base: TemperatureRule | None
) -> TemperatureRule:
    allowed = {"margin_celsius", "points_at_limit", "points_at_critical"}
    allowed |= {"critical_over_limit_celsius"}
    sec = _Section(raw, source, key, allowed, _asdict(base))
    margin = sec.number("margin_celsius", 0, 50)
    at_limit = sec.number("points_at_limit", 0, _MAX_POINTS)
    at_critical = sec.number("points_at_critical", at_limit, _MAX_POINTS)
    over = 5.0
    if sec.has("critical_over_limit_celsius") or base is not None:
        over = sec.number("critical_over_limit_celsius", 0.5, 50)
    return TemperatureRule(margin, at_limit, at_critical, over)


#: Threshold names and the largest value their ramp may use (fractions stop at 1).
_RAMP_RANGES: dict[str, float] = {
    "thermal_slowdown": 1,
    "hw_slowdown": 1,
    "power_brake": 1,
    "board_limit": 1,
    "reliability_limit": 1,
    "power_over_limit": 10,
    "power_limit_reduced": 1,
    "sm_clock_low": 1,
    "pcie_link_width_degraded": 1,
    "pcie_link_gen_degraded": 1,
    "pcie_replay_rate": 1_000,
    "ecc_correctable_rate": 1e9,
    "ecc_uncorrectable_lifetime": 1e9,
    "remapped_rows_uncorrectable": 1e6,
    "remapped_rows_correctable": 1e6,
    "retired_pages": 1e6,
    "nvlink_crc_rate": 1e12,
    "nvlink_link_errors": 1e9,
}
_FLAGS = ("row_remap_pending", "retired_pages_pending")
_TEMPERATURES = ("gpu_temperature", "memory_temperature")


def _parse_thresholds(raw: Any, source: str, key: str, base: Thresholds | None) -> Thresholds:
    allowed = set(_RAMP_RANGES) | set(_FLAGS) | set(_TEMPERATURES) | {"load_utilization"}
    sec = _Section(raw, source, key, allowed, _asdict(base))
    values: dict[str, Any] = {}
    for name in _TEMPERATURES:
        prior = getattr(base, name) if base is not None else None
        values[name] = (
            _parse_temperature(sec.value(name), source, sec.path(name), prior)
            if sec.has(name) or prior is None
            else prior
        )
    for name, high in _RAMP_RANGES.items():
        prior = getattr(base, name) if base is not None else None
        values[name] = (
            _parse_ramp(sec.value(name), source, sec.path(name), prior, high)
            if sec.has(name) or prior is None
            else prior
        )
    for name in _FLAGS:
        prior = getattr(base, name) if base is not None else None
        values[name] = (
            _parse_flag(sec.value(name), source, sec.path(name), prior)
            if sec.has(name) or prior is None
            else prior
        )
    values["load_utilization"] = sec.number("load_utilization", 0, 1)
    return Thresholds(**values)


def _parse_weights(raw: Any, source: str, base: dict[str, float] | None) -> dict[str, float]:
    sec = _Section(raw, source, "weights", set(DIMENSIONS), base)
    weights = {name: sec.number(name, 0, 1) for name in DIMENSIONS}
    total = sum(weights.values())
    if not math.isclose(total, 1.0, abs_tol=1e-6):
        raise ConfigError(
            source, "weights", f"weights sum to {total:g}, they must sum to 1 (allowed: 1 to 1)"
        )
    return weights


def _parse_grades(raw: Any, source: str, base: dict[str, float] | None) -> dict[str, float]:
    names = GRADES[:-1]
    sec = _Section(raw, source, "grades", set(names), base)
    grades: dict[str, float] = {}
    upper = 100.0
    for name in names:
        value = sec.number(name, 0, upper)
        if value >= upper and name != names[0]:
            raise ConfigError(
                source,
                sec.path(name),
                f"{value:g} must be below the band above it (allowed: 0 to below {upper:g})",
            )
        grades[name] = value
        upper = value
    return grades


def _parse_caps(raw: Any, source: str, base: Caps | None, poor: float) -> Caps:
    names = [f.name for f in fields(Caps)]
    sec = _Section(raw, source, "caps", set(names), _asdict(base))
    # A cap must land in the critical band: at least one point below the poor band's bound.
    # Base values are checked again: a new grades.poor can push an inherited cap out of band.
    high = max(0.0, poor - 1)
    return Caps(
        **{name: expect_number(sec.value(name), source, sec.path(name), 0, high) for name in names}
    )


def _parse_hard_limits(raw: Any, source: str, base: HardLimits | None) -> HardLimits:
    names = [f.name for f in fields(HardLimits)]
    sec = _Section(raw, source, "hard_limits", set(names), _asdict(base))
    values = {}
    for name in names:
        if sec.has(name):
            values[name] = expect_int(sec.raw[name], source, sec.path(name), 1, 1_000_000)
        else:
            values[name] = int(sec.value(name))
    return HardLimits(**values)


def _parse_windows(raw: Any, source: str, base: Windows | None) -> Windows:
    names = [f.name for f in fields(Windows)]
    sec = _Section(raw, source, "windows", set(names), _asdict(base))
    # From ten seconds (shorter than most scrape intervals makes rates meaningless) to a week.
    return Windows(**{name: sec.number(name, 10, 7 * 86400) for name in names})


def _parse_xid_code(raw: Any, source: str, key: str) -> int:
    code = raw
    if isinstance(raw, str) and raw.strip().isdigit():
        code = int(raw)
    return expect_int(code, source, join_key(key, str(raw)), 1, 1023)


def _xid_codes(raw: Mapping[Any, Any], source: str, key: str) -> dict[int, Any]:
    """The mapping's codes parsed (:func:`_parse_xid_code`), each code once: ``79``, ``"79"``,
    ``79.0`` and ``0x4f`` are one XID, and two of them in one mapping used to let the last one
    win without a word."""
    codes: dict[int, Any] = {}
    spelled: dict[int, Any] = {}
    for code_raw, value in raw.items():
        code = _parse_xid_code(code_raw, source, key)
        if code in codes:
            raise ConfigError(
                source,
                join_key(key, str(code_raw)),
                f"XID {code} is given twice (as {spelled[code]!r} and {code_raw!r}); keep one",
            )
        codes[code], spelled[code] = value, code_raw
    return codes


def _parse_xid(raw: Any, source: str, base: XidPolicy | None) -> XidPolicy:
    sec = _Section(raw, source, "xid", {"critical", "penalised"}, None if base is None else {})
    critical = dict(base.critical) if base is not None else {}
    penalised = dict(base.penalised) if base is not None else {}
    if sec.has("critical") or base is None:
        crit_raw = expect_mapping(sec.value("critical"), source, sec.path("critical"))
        critical = {}
        for code, dim in _xid_codes(crit_raw, source, sec.path("critical")).items():
            critical[code] = expect_str(
                dim, source, join_key(sec.path("critical"), str(code)), set(DIMENSIONS)
            )
    if sec.has("penalised") or base is None:
        pen_raw = expect_mapping(sec.value("penalised"), source, sec.path("penalised"))
        penalised = {}
        for code, rule_raw in _xid_codes(pen_raw, source, sec.path("penalised")).items():
            key = join_key(sec.path("penalised"), str(code))
            rule = _Section(
                rule_raw, source, key, {"dimension", "points_per_event", "max_points"}, None
            )
            penalised[code] = XidRule(
                dimension=expect_str(
                    rule.value("dimension"), source, rule.path("dimension"), set(DIMENSIONS)
                ),
                points_per_event=rule.number("points_per_event", 0, _MAX_POINTS),
                max_points=rule.number("max_points", 0, _MAX_POINTS),
            )
    both = sorted(set(critical) & set(penalised))
    if both:
        raise ConfigError(
            source,
            join_key(sec.path("penalised"), str(both[0])),
            "an XID is either critical or penalised, not both (allowed: one of the two)",
        )
    return XidPolicy(critical, penalised)


def _parse_limits(raw: Any, source: str, key: str, base: Limits | None) -> Limits:
    names = {f.name for f in fields(Limits)}
    sec = _Section(raw, source, key, names, _asdict(base) if base is not None else {})
    limits = Limits(
        slowdown_temp_celsius=sec.optional_number("slowdown_temp_celsius", 0, 150),
        shutdown_temp_celsius=sec.optional_number("shutdown_temp_celsius", 0, 150),
        memory_max_temp_celsius=sec.optional_number("memory_max_temp_celsius", 0, 150),
        power_limit_watts=sec.optional_number("power_limit_watts", 1, 10_000),
        max_sm_clock_mhz=sec.optional_number("max_sm_clock_mhz", 1, 10_000),
        pcie_max_generation=sec.optional_int("pcie_max_generation", 1, 7),
        pcie_max_width=sec.optional_int("pcie_max_width", 1, 32),
    )
    if (
        limits.slowdown_temp_celsius is not None
        and limits.shutdown_temp_celsius is not None
        and limits.shutdown_temp_celsius < limits.slowdown_temp_celsius
    ):
        raise ConfigError(
            source,
            join_key(key, "shutdown_temp_celsius"),
            f"{limits.shutdown_temp_celsius:g} is below the slowdown temperature "
            f"(allowed: {limits.slowdown_temp_celsius:g} to 150)",
        )
    return limits


def _parse_models(
    raw: Any, source: str, thresholds: Thresholds, base: tuple[ModelOverride, ...]
) -> tuple[ModelOverride, ...]:
    by_name = {m.match: m for m in base}
    mapping = expect_mapping(raw, source, "models")
    for name_raw, entry_raw in mapping.items():
        name = str(name_raw)
        key = join_key("models", name)
        if not name.strip():
            raise ConfigError(source, key, "empty model match (allowed: a model-name substring)")
        sec = _Section(entry_raw, source, key, {"limits", "thresholds"}, None)
        prior = by_name.get(name)
        limits = (
            _parse_limits(
                sec.raw.get("limits"), source, sec.path("limits"), prior.limits if prior else None
            )
            if sec.has("limits")
            else (prior.limits if prior else Limits())
        )
        model_thresholds = prior.thresholds if prior else None
        if sec.has("thresholds"):
            model_thresholds = _parse_thresholds(
                sec.raw["thresholds"], source, sec.path("thresholds"), thresholds
            )
        by_name[name] = ModelOverride(name, limits, model_thresholds)
    return tuple(by_name.values())


_TOP_KEYS = frozenset(
    {
        "weights",
        "grades",
        "caps",
        "hard_limits",
        "windows",
        "thresholds",
        "xid",
        "default_limits",
        "models",
    }
)


def parse_policy(raw: Any, source: str, base: Policy | None = None) -> Policy:
    """Validate a parsed policy document; with ``base`` it is an overlay on that policy."""
    if raw is None and base is not None:
        return replace(base, source=source, _cache={})
    top = _Section(raw, source, "", _TOP_KEYS, None)

    def part(name: str) -> Any:
        if top.has(name):
            return top.raw[name]
        if base is None:
            raise ConfigError(source, name, "missing key")
        return None

    def section(name: str, parse: Any, current: Any) -> Any:
        """Parse a section the document has (or every section without a base); else inherit."""
        if top.has(name) or base is None:
            return parse(part(name), current)
        return current

    weights = section(
        "weights", lambda v, b: _parse_weights(v, source, b), base.weights if base else None
    )
    grades = section(
        "grades", lambda v, b: _parse_grades(v, source, b), base.grades if base else None
    )
    caps = _parse_caps(part("caps") or {}, source, base.caps if base else None, grades["poor"])
    hard_limits = section(
        "hard_limits",
        lambda v, b: _parse_hard_limits(v, source, b),
        base.hard_limits if base else None,
    )
    windows = section(
        "windows", lambda v, b: _parse_windows(v, source, b), base.windows if base else None
    )
    thresholds = section(
        "thresholds",
        lambda v, b: _parse_thresholds(v, source, "thresholds", b),
        base.thresholds if base else None,
    )
    xid = section("xid", lambda v, b: _parse_xid(v, source, b), base.xid if base else None)
    default_limits = section(
        "default_limits",
        lambda v, b: _parse_limits(v, source, "default_limits", b),
        base.default_limits if base else None,
    )
    models = _parse_models(
        top.raw.get("models"), source, thresholds, base.models if base is not None else ()
    )
    return Policy(
        source=source,
        weights=weights,
        grades=grades,
        caps=caps,
        hard_limits=hard_limits,
        windows=windows,
        thresholds=thresholds,
        xid=xid,
        default_limits=default_limits,
        models=models,
    )
