"""Fleet input from CSV and the before/after comparison behind ``gpu-health econ``."""

from __future__ import annotations

import csv
import io
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

from gpu_health.csv_file import read_csv
from gpu_health.errors import UserError
from gpu_health.prometheus_access import PLAIN, Access
from gpu_health.safetext import one_line
from gpu_health.scorer.econ.engine import ACTIONS, EconResult, GpuEconInput

REQUIRED_COLUMNS = ("uuid", "model", "age_days")
OPTIONAL_COLUMNS = (
    "utilisation",
    "power_w",
    "p7",
    "p30",
    "p90",
    "health",
    "hard_fault",
    "node",
    "gpu",
)
#: Most GPUs (rows) a fleet CSV may list: the asset inventory's cap
#: (``gpu_health.scorer.inventory.loader.MAX_RECORDS``; not imported, it would load numpy into the
#: base install's command). Under the 64 MiB byte limit a CSV held 1.5 million rows, which took
#: four minutes and 5.5 GB to value; 500,000 take about a minute and 2 GB, and any real fleet
#: (10,000 GPUs is a large one) stays far below. Counted before a row is valued.
MAX_FLEET_ROWS = 500_000
_TRUE = {"1", "true", "yes", "y", "t"}
_FALSE = {"0", "false", "no", "n", "f", ""}


def read_fleet_csv(path: Path | str) -> list[GpuEconInput]:
    """One GPU per row; empty optional cells mean "not measured" (the engine uses a default)."""
    path = Path(path)
    table = read_csv(path)
    header = list(table.header)
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise UserError(
            f"{path}: missing column {missing[0]!r} (required: uuid, model, "
            f"age_days; optional: {', '.join(OPTIONAL_COLUMNS)})"
        )
    unknown = [c for c in header if c not in REQUIRED_COLUMNS + OPTIONAL_COLUMNS]
    if unknown:
        allowed = ", ".join(REQUIRED_COLUMNS + OPTIONAL_COLUMNS)
        raise UserError(f"{path}: unknown column {unknown[0]!r} (allowed: {allowed})")
    rows = _count_rows(table.text)
    if rows > MAX_FLEET_ROWS:
        raise UserError(
            f"{path}: {rows:,} rows, more than the {MAX_FLEET_ROWS:,} GPUs a fleet CSV may list "
            "(the asset inventory's cap): split the fleet into several files"
        )
    gpus: list[GpuEconInput] = []
    # A GPU listed twice was valued twice and counted twice, and compare() paired both rows with
    # the last one, reporting a "recommendation changed" with no --set. Refused like the
    # inventory's duplicate keys (scorer/inventory/loader.py), naming both lines.
    first_line: dict[str, int] = {}
    for number, row in table.rows():
        gpu = _row(path, number, row)
        if gpu.uuid in first_line:
            raise UserError(
                f"{path}: line {number}: uuid: {one_line(gpu.uuid)} is already listed on line "
                f"{first_line[gpu.uuid]}"
            )
        first_line[gpu.uuid] = number
        gpus.append(gpu)
    if not gpus:
        raise UserError(f"{path}: no GPUs (the file has a header but no rows)")
    return gpus


def _count_rows(text: str) -> int:
    """Rows below the header that are not blank, counted by the C parser (about a second for
    the cap) before any row is checked or valued; 0 when the file is malformed, which
    :meth:`~gpu_health.csv_file.CsvFile.rows` then names with its line."""
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        return sum(1 for cells in reader if any(c.strip() for c in cells)) - 1
    except csv.Error:
        return 0


def _row(path: Path, line: int, raw: dict[str, Any]) -> GpuEconInput:
    row = {str(k).strip(): (v or "").strip() for k, v in raw.items() if k is not None}
    where = f"{path}: line {line}"

    def number(column: str) -> float | None:
        text = row.get(column, "")
        if text == "":
            return None
        try:
            return float(text)
        except ValueError:
            raise UserError(f"{where}: {column}: expected a number, got {text!r}") from None

    flag = row.get("hard_fault", "").casefold()
    if flag not in _TRUE | _FALSE:
        raise UserError(f"{where}: hard_fault: expected true or false, got {flag!r}")
    if not row.get("uuid") or not row.get("model"):
        raise UserError(f"{where}: uuid and model must not be empty")
    age = number("age_days")
    if age is None:
        raise UserError(f"{where}: age_days: missing (required)")
    given = [(c, v) for c in ("p7", "p30", "p90") if (v := number(c)) is not None]
    for (shorter, p_short), (longer, p_long) in pairwise(given):
        if p_short > p_long:  # a failure within 7 days is also one within 30: P cannot fall
            raise UserError(
                f"{where}: {longer}: {p_long:g} is below {shorter} {p_short:g} (the probability "
                "of failing within a longer horizon cannot be smaller)"
            )
    try:
        return GpuEconInput(
            uuid=row["uuid"],
            model=row["model"],
            age_days=age,
            utilisation=number("utilisation"),
            power_w=number("power_w"),
            p7=number("p7"),
            p30=number("p30"),
            p90=number("p90"),
            health=number("health"),
            hard_fault=flag in _TRUE,
            node=row.get("node", ""),
            gpu=row.get("gpu", ""),
        )
    except ValueError as exc:
        raise UserError(f"{where}: {exc}") from None


@dataclass(frozen=True)
class Change:
    uuid: str
    model: str
    before: str
    after: str
    npv_before: float
    npv_after: float


@dataclass(frozen=True)
class WhatIf:
    """How the fleet's recommendations move from one parameter set to another."""

    counts_before: dict[str, int]
    counts_after: dict[str, int]
    #: GPUs valued by both runs whose recommended action differs.
    changes: list[Change]
    #: Sum over the GPUs each run valued of the recommended action's NPV.
    value_before: float
    value_after: float
    #: Per GPU valued by both runs: NPV of every action after minus before.
    npv_deltas: dict[str, dict[str, float]]
    #: GPUs only one run valued (a ``--set`` of ``models.*.match`` or of the models makes a model
    #: match an entry, or none), in fleet order: they have no "before" or no "after" to compare.
    only_before: list[EconResult] = field(default_factory=list)
    only_after: list[EconResult] = field(default_factory=list)


def compare(before: Sequence[EconResult], after: Sequence[EconResult]) -> WhatIf:
    """Pair results by uuid and summarise the differences. A GPU valued by one run only (its
    model matches an economics entry under one parameter set, not the other) is listed apart,
    never paired: it crashed the comparison (``KeyError``) or, valued only after, raised the
    counts and the fleet value while "GPUs whose recommendation changed" said 0."""
    before_by_uuid = {r.uuid: r for r in before}
    after_by_uuid = {r.uuid: r for r in after}
    changes: list[Change] = []
    deltas: dict[str, dict[str, float]] = {}
    for old in before:
        new = after_by_uuid.get(old.uuid)
        if new is None:
            continue
        deltas[old.uuid] = {a: new.npv[a] - old.npv[a] for a in ACTIONS}
        if new.recommended_action != old.recommended_action:
            changes.append(
                Change(
                    uuid=old.uuid,
                    model=old.model,
                    before=old.recommended_action,
                    after=new.recommended_action,
                    npv_before=old.npv[old.recommended_action],
                    npv_after=new.npv[new.recommended_action],
                )
            )

    def counts(results: Sequence[EconResult]) -> dict[str, int]:
        tally = Counter(r.recommended_action for r in results)
        return {a: tally.get(a, 0) for a in ACTIONS}

    return WhatIf(
        counts_before=counts(before),
        counts_after=counts(after),
        changes=changes,
        value_before=sum(r.npv[r.recommended_action] for r in before),
        value_after=sum(r.npv[r.recommended_action] for r in after),
        npv_deltas=deltas,
        only_before=[r for r in before if r.uuid not in after_by_uuid],
        only_after=[r for r in after if r.uuid not in before_by_uuid],
    )


def read_fleet_prometheus(
    base_url: str, lookback: str = "1h", at: float | None = None, access: Access = PLAIN
) -> list[GpuEconInput]:
    """The fleet as the scorer last valued it, from its ``gpu_econ_*`` input series.

    The scorer publishes every decision input after defaults (age, utilisation, power, p7, p30, p90,
    health, hard fault), so a what-if over Prometheus re-values exactly what production valued.
    ``last_over_time`` over ``lookback`` tolerates a missed scrape. One query per input metric
    (:data:`~gpu_health.scorer.econ.metrics.INPUT_METRICS`), each covering the whole fleet.
    """
    import urllib.error

    from gpu_health import stack
    from gpu_health.scorer.econ.metrics import INPUT_METRICS

    url = base_url.rstrip("/")
    by_gpu: dict[str, dict[str, Any]] = {}
    for metric in dict.fromkeys(spec.metric for spec in INPUT_METRICS):
        try:
            series = stack.query(url, f"last_over_time({metric}[{lookback}])", at=at, access=access)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise UserError(f"--prometheus {base_url}: cannot query: {reason}") from None
        except RuntimeError as exc:
            raise UserError(f"--prometheus {base_url}: {exc}") from None
        for item in series:
            labels = item.get("metric", {})
            uuid = labels.get("uuid")
            spec = next(
                (
                    s
                    for s in INPUT_METRICS
                    if s.metric == metric and (not s.label or labels.get(s.label[0]) == s.label[1])
                ),
                None,
            )
            if not uuid or spec is None:
                continue
            entry = by_gpu.setdefault(
                uuid,
                {
                    "model": labels.get("model", ""),
                    "node": labels.get("node", ""),
                    "gpu": labels.get("gpu", ""),
                    "values": {},
                },
            )
            entry["values"][spec.key] = float(item["value"][1]) / spec.scale
    gpus: list[GpuEconInput] = []
    for uuid, entry in sorted(by_gpu.items()):
        values: dict[str, float] = entry["values"]
        if "age_days" not in values:
            continue
        try:
            gpus.append(
                GpuEconInput(
                    uuid=uuid,
                    model=entry["model"],
                    age_days=values["age_days"],
                    utilisation=values.get("utilisation"),
                    power_w=values.get("power_w"),
                    p7=values.get("p7"),
                    p30=values.get("p30"),
                    p90=values.get("p90"),
                    health=values.get("health"),
                    hard_fault=values.get("hard_fault", 0.0) > 0,
                    node=entry["node"],
                    gpu=entry["gpu"],
                )
            )
        except ValueError as exc:
            raise UserError(f"--prometheus {base_url}: GPU {uuid}: {exc}") from None
    if not gpus:
        raise UserError(
            f"--prometheus {base_url}: no gpu_econ_age_seconds series in the last {lookback} "
            "(is gpu-health-scorer running and scraped?)"
        )
    return gpus


def unvalued_in_prometheus(
    base_url: str, lookback: str = "1h", at: float | None = None, access: Access = PLAIN
) -> dict[str, int]:
    """model -> GPUs the scorer did not value (``gpu_scorer_econ_unvalued_gpus``, summed over
    scorer shards): they publish no ``gpu_econ_*`` inputs, so :func:`read_fleet_prometheus`
    cannot see them, and a what-if over Prometheus says so instead of leaving them out."""
    import urllib.error

    from gpu_health import stack

    query = f"sum by (model) (last_over_time(gpu_scorer_econ_unvalued_gpus[{lookback}])) > 0"
    try:
        series = stack.query(base_url.rstrip("/"), query, at=at, access=access)
    except (urllib.error.URLError, OSError, ValueError, RuntimeError) as exc:
        reason = getattr(exc, "reason", exc)
        raise UserError(f"--prometheus {base_url}: cannot query: {reason}") from None
    out: dict[str, int] = {}
    for item in series:
        try:
            count = float(item["value"][1])
        except (KeyError, IndexError, TypeError, ValueError):
            continue
        if math.isfinite(count):
            out[str(item.get("metric", {}).get("model", ""))] = int(count)
    return out
