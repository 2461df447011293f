"""The plan from a Prometheus that holds the scorer's series (``gpu-health plan``, the report)."""

from __future__ import annotations

import math
import re
import urllib.error
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from gpu_health import stack
from gpu_health.errors import UserError
from gpu_health.prometheus_access import PLAIN, Access
from gpu_health.safetext import one_line
from gpu_health.scorer.inventory.model import Inventory
from gpu_health.scorer.planning.plan import DEFAULT_DOWNTIME_HOURS, FleetPlan, GpuRisk, build_plan

Query = Callable[[str], list[Any]]
#: Bound on the GPUs read back (the DP is quadratic in the largest group).
MAX_GPUS = 200_000


def prometheus_query(url: str, at: float | None = None, access: Access = PLAIN) -> Query:
    base = url.rstrip("/")

    def query(promql: str) -> list[Any]:
        try:
            return stack.query(base, promql, at=at, access=access)
        except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
            reason = getattr(exc, "reason", exc)
            raise UserError(f"cannot reach Prometheus at {base}: {reason}") from None
        except (RuntimeError, ValueError) as exc:  # refused, too large, not JSON
            raise UserError(f"Prometheus at {base}: {one_line(str(exc), 300)}") from None

    return query


def _is_horizon(text: object) -> bool:
    """``7d``, ``30d``, ``90d``: a whole number of days, as the scorer labels its horizons."""
    return isinstance(text, str) and bool(re.fullmatch(r"[0-9]{1,4}d", text))


def gather_risks(
    query: Query,
    inventory: Inventory | None = None,
    downtime_hours: Callable[[str], float] | None = None,
    unmatched: list[str] | None = None,
) -> list[GpuRisk]:
    """One :class:`GpuRisk` per uuid with a ``gpu_failure_probability``.

    Datacenter and team come from ``inventory`` when given, else from ``gpu_asset_info`` (what
    the scorer joined). ``max by`` folds duplicates from scorer replicas. ``unmatched`` receives
    the UUIDs the inventory has no record of (their datacenter and team stay empty).
    """
    probs: dict[str, dict[str, float]] = defaultdict(dict)
    meta: dict[str, dict[str, str]] = {}
    for item in query("max by (uuid, model, node, gpu, horizon) (gpu_failure_probability)"):
        labels = item.get("metric", {})
        uuid, horizon = labels.get("uuid"), labels.get("horizon")
        try:
            value = float(item["value"][1])
        except (TypeError, ValueError, IndexError, KeyError):
            continue
        # the scorer writes horizons as "7d", "30d", "90d": anything else is not its series
        if not uuid or not _is_horizon(horizon) or not math.isfinite(value):
            continue
        probs[uuid][horizon] = value
        meta[uuid] = {k: str(labels.get(k, "")) for k in ("model", "node", "gpu")}
        if len(meta) > MAX_GPUS:
            raise UserError(f"more than {MAX_GPUS} GPUs have failure probabilities")
    places: dict[str, tuple[str, str]] = {}
    if inventory is None:
        for item in query("max by (uuid, datacenter, team) (gpu_asset_info)"):
            labels = item.get("metric", {})
            if labels.get("uuid"):
                places[labels["uuid"]] = (labels.get("datacenter", ""), labels.get("team", ""))
    risks = []
    for uuid, by_horizon in sorted(probs.items()):
        m = meta[uuid]
        if inventory is not None:
            asset = inventory.lookup(uuid, m["node"], m["gpu"])
            place = (asset.datacenter, asset.team) if asset else ("", "")
            if asset is None and unmatched is not None:
                unmatched.append(uuid)
        else:
            place = places.get(uuid, ("", ""))
        risks.append(
            GpuRisk(
                uuid=uuid,
                model=m["model"],
                probability=by_horizon,
                datacenter=place[0],
                team=place[1],
                downtime_hours=downtime_hours(m["model"])
                if downtime_hours
                else DEFAULT_DOWNTIME_HOURS,
            )
        )
    return risks


def plan_from_prometheus(
    url: str,
    at: float | None = None,
    inventory: Inventory | None = None,
    level: float = 0.8,
    service_level: float = 0.95,
    access: Access = PLAIN,
    unmatched: list[str] | None = None,
) -> FleetPlan:
    from gpu_health.scorer.econ.params import load_params

    params = load_params()

    def downtime(model: str) -> float:
        found = params.model_for(model)
        return found.downtime_days_per_failure * 24.0 if found else DEFAULT_DOWNTIME_HOURS

    risks = gather_risks(prometheus_query(url, at, access), inventory, downtime, unmatched)
    return build_plan(risks, level=level, service_level=service_level)
