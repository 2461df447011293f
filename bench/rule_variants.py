#!/usr/bin/env python3
"""Three variants of the rule, each tried blind on outside fleets and not kept (docs/model-card.md).

Each arm changes one thing and is compared with the rule as shipped on the same collected rows:

* ``per-model``: after the rule solves its baseline for the snapshot (the rate of a GPU without
  evidence at which the fleet's hazards account for the GPUs it lost in the last 30 days,
  ``rules.baseline_rate``), the same equation again over each GPU model's GPUs and losses
  (models with at least ``rules.MIN_PEERS`` GPUs in the snapshot), with the fleet's baseline as
  the prior, worth ``--prior-failures`` failures at that rate (a prior in failures, not
  GPU-years, so it weighs the same in a fleet at the public rate and in one failing twenty
  times faster). Public reliability studies report rates that differ by GPU generation. The
  losses by model are read from the collected rows (a GPU of the model seen at one of the last
  30 daily prediction times and not at this one; its exposure the rows of the model), scaled so
  that they sum to the fleet's own ``fleet_lost_gpus_30d`` and ``fleet_gpu_days_30d``.
* ``thermal``: every GPU's whole hazard doubled per 10 °C of its 24-hour temperature above its
  model's median (the Arrhenius rule of thumb), before the baseline is solved.
* ``spread-x2``: the rule's "spread" terms (temperature above the node, its 7-day rise, the
  power's wandering against the node) at twice their weight, 0.4 per spread instead of 0.2.

It collects the rows ``gpu-health-scorer evaluate`` collects from each fleet directory
(``prometheus/`` and ``failures.csv``, as the generators write them; ``--cache`` keeps them),
and prints, rule as shipped → with each arm, the numbers of ``bench/still_active_terms.py``,
and each model's losses per GPU-year over the last 30 days.

    .venv/bin/python bench/rule_variants.py hpc-s1=/tmp/hpc/s1 outside-s1=/tmp/outside/fleet-s1 \\
        --cache /tmp/rule_variants --json /tmp/rule_variants.json
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import resolution_invariance  # evaluate's own row collection
import still_active_terms  # the numbers printed

from gpu_health.errors import UserError
from gpu_health.scorer import rules
from gpu_health.scorer.feature_table import MODEL_KEY
from gpu_health.scorer.training import Dataset, Failure, load_failures

MODEL_LOST = "model_lost_gpus_30d"
MODEL_DAYS = "model_gpu_days_30d"
DAY = 86400.0


def with_model_losses(data: Dataset) -> Dataset:
    """``data`` with two columns: the GPUs of the row's model lost in the last 30 days and the
    GPU-days the model reported in them, split from the fleet's totals by the rows."""
    key = data.matrix([MODEL_KEY])[:, 0]
    lost_fleet, days_fleet = data.matrix([rules.FLEET_LOST, rules.FLEET_GPU_DAYS]).T
    uuids = np.asarray(data.uuids)
    times = np.unique(data.times)
    lost = np.zeros(len(data))
    days = np.zeros(len(data))
    for t in times:
        now = data.times == t
        window = (data.times >= t - 30 * DAY) & (data.times < t)
        present = set(uuids[now])
        split_lost: dict[float, float] = {}
        split_days: dict[float, float] = {}
        for g in np.unique(key[now]):
            mine = key == g
            seen = set(uuids[window & mine])
            split_lost[g] = float(len(seen - present))
            split_days[g] = float((mine & (window | now)).sum())
        total_lost = sum(split_lost.values())
        total_days = sum(split_days.values())
        row = np.flatnonzero(now)[0]  # the fleet's totals are the same on every row of a time
        fleet_lost = np.nan_to_num(lost_fleet[row])
        fleet_days = np.nan_to_num(days_fleet[row])
        for g in split_lost:
            sel = now & (key == g)
            lost[sel] = fleet_lost * split_lost[g] / total_lost if total_lost else 0.0
            days[sel] = fleet_days * split_days[g] / total_days if total_days else 0.0
    return Dataset(
        (*data.features, MODEL_LOST, MODEL_DAYS),
        np.column_stack([data.x, lost, days]),
        data.times,
        data.uuids,
        data.labels,
    )


@contextmanager
def per_model(prior_failures: float) -> Iterator[None]:
    """The rule with each model's baseline solved from its own losses."""
    fleet = rules.baseline_rate
    features = (*rules.RULE_FEATURES, MODEL_LOST, MODEL_DAYS)

    def baseline(feats: Any, x: Any, prior_rate: float, relative: Any, added: Any) -> Any:
        base = fleet(feats, x, prior_rate, relative, added)
        key = rules._column(feats, x, MODEL_KEY)
        lost = rules._column(feats, x, MODEL_LOST)
        days = rules._column(feats, x, MODEL_DAYS)
        if key is None or lost is None or days is None:
            return base
        out = base.copy()
        for g in np.unique(key[np.isfinite(key)]):
            rows = key == g
            if rows.sum() < rules.MIN_PEERS or days[rows][0] <= 0:
                continue
            r = float(base[rows][0])
            out[rows] = rules._solve_baseline(
                r,
                float(lost[rows][0]),
                float(days[rows][0]) / 365.0,
                relative[rows],
                added[rows],
                prior_years=prior_failures / r,
            )
        return out

    with (
        mock.patch.object(rules, "baseline_rate", baseline),
        mock.patch.object(rules, "RULE_FEATURES", features),
    ):
        yield


#: Failure rate doubles per this many degrees (the electronics rule of thumb from Arrhenius).
DOUBLING_C = 10.0
TEMP_VS_MODEL = "temp_gpu_excess_24h"


@contextmanager
def thermal_acceleration() -> Iterator[None]:
    """The rule with each GPU's whole hazard multiplied by ``2 ** (excess / DOUBLING_C)``,
    ``excess`` its 24-hour temperature above its model's median (none below it): the same
    evidence added to every class, so the class shares are unchanged."""
    evidence = rules.class_evidence
    features = (*rules.RULE_FEATURES, TEMP_VS_MODEL)

    def accelerated(feats: Any, x: Any) -> Any:
        out = evidence(feats, x)
        excess = rules._column(feats, x, TEMP_VS_MODEL)
        if excess is None:
            return out
        boost = math.log(2.0) / DOUBLING_C * np.clip(np.nan_to_num(excess), 0.0, None)
        return out + boost[:, np.newaxis]

    with (
        mock.patch.object(rules, "class_evidence", accelerated),
        mock.patch.object(rules, "RULE_FEATURES", features),
    ):
        yield


#: How much the "spread" arm multiplies the weight of each spread term.
SPREAD_FACTOR = 2.0


@contextmanager
def spread_weights(factor: float = SPREAD_FACTOR) -> Iterator[None]:
    """The rule with every "spread" term's weight multiplied by ``factor``."""
    terms = tuple(
        replace(t, weight=t.weight * factor) if t.transform == "spread" else t for t in rules.TERMS
    )
    with mock.patch.object(rules, "TERMS", terms):
        yield


def loss_rates_by_model(data: Dataset) -> list[float]:
    """Each model's losses per GPU-year over the 30 days before the last prediction time
    (models with at least ``rules.MIN_PEERS`` GPUs then), highest first: how far apart the
    fleet's models are."""
    last = data.times == data.times.max()
    key, lost, days = data.matrix([MODEL_KEY, MODEL_LOST, MODEL_DAYS])[last].T
    rates = []
    for g in np.unique(key):
        rows = key == g
        if rows.sum() >= rules.MIN_PEERS and days[rows][0] > 0:
            rates.append(round(365.0 * float(lost[rows][0]) / float(days[rows][0]), 2))
    return sorted(rates, reverse=True)


def cached(directory: Path, label: str, cache: Path | None) -> tuple[Dataset, list[Failure]]:
    """The fleet's rows, from ``cache`` when collected before (npz + JSON, nothing pickled)."""
    if cache is not None and (cache / f"{label}.npz").exists():
        npz = np.load(cache / f"{label}.npz")
        meta = json.loads((cache / f"{label}.json").read_text())
        labels = {h: npz[f"y_{h}"] for h in meta["horizons"]}
        data = Dataset(tuple(meta["features"]), npz["x"], npz["times"], meta["uuids"], labels)
        return data, load_failures(directory / "failures.csv")
    data, failures = resolution_invariance.collect(directory, label, warmup="7d")
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, Any] = {f"y_{h}": v for h, v in data.labels.items()}
        np.savez(cache / f"{label}.npz", x=data.x, times=data.times, **arrays)
        meta = {"features": data.features, "uuids": data.uuids, "horizons": list(data.labels)}
        (cache / f"{label}.json").write_text(json.dumps(meta))
    return data, failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("fleets", nargs="+", help="LABEL=DIR (a fleet directory)")
    parser.add_argument("--prior-failures", type=float, default=3.0)
    parser.add_argument("--cache", type=Path, help="keep each fleet's collected rows here")
    parser.add_argument("--json", type=Path, help="also write the numbers as JSON")
    args = parser.parse_args()
    results: dict[str, Any] = {}
    print(still_active_terms.HEADER)
    for label, directory in still_active_terms.fleets(parser, args.fleets):
        try:
            data, failures = cached(directory, label, args.cache)
        except UserError as e:  # a fleet directory without history: one line, no traceback
            parser.exit(2, f"{parser.prog}: error: {e}\n")
        data = with_model_losses(data)
        before = still_active_terms.measure(data, failures)
        rates = loss_rates_by_model(data)
        results[label] = {"shipped": before, "loss_rates_by_model": rates}
        print(f"  {label}: each model's losses per GPU-year, last 30 days: {rates}")
        arms = {
            "per-model": per_model(args.prior_failures),
            "thermal": thermal_acceleration(),
            "spread-x2": spread_weights(),
        }
        for arm, patch in arms.items():
            with patch:
                after = still_active_terms.measure(data, failures)
            results[label][arm] = after
            print(still_active_terms.table_row(f"{label} ({arm})", before, after), flush=True)
            print(
                f"  {label} ({arm}): 7-day rows over 0.3, before a failure + healthy: "
                f"{before['pages_true_7d']:.0f} + {before['pages_false_7d']:.0f} → "
                f"{after['pages_true_7d']:.0f} + {after['pages_false_7d']:.0f}"
            )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
