#!/usr/bin/env python3
"""The rule with and without terms for errors still going on in the last day (tried, not kept).

docs/model-card.md, "Errors still going on in the last day": on our physics families most of
the healthy GPU-days among the rule's top 5 % were benign boards whose burst had already ended,
so three terms were tried, each ``weight × ln(1 + errors of the last 24 h)`` above the GPU's own
daily rate of the 23 days before the week (corrected ECC, PCIe replays, NVLink errors), taken
above the same-model peers' median like the rule's other count terms. This bench collects the
rows ``gpu-health-scorer evaluate`` collects from each fleet directory (``prometheus/`` and
``failures.csv``, as the generators write them) and prints, rule without → with the terms:
7-day ROC AUC on all failures, 7-day recall at 5 % FPR on visible precursors, and the same at
30 days, plus the share of healthy rows over ``GPUFailurePredicted``'s 0.3, and, for the rule
as shipped, the visible-precursor rows it misses at its 5 % FPR cut by failure mode.

    .venv/bin/python bench/still_active_terms.py plateau=/tmp/fam/plateau \\
        outside-s1=/tmp/outside/fleet-s1 --json /tmp/still_active.json
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import resolution_invariance  # evaluate's own row collection

from gpu_health.errors import UserError
from gpu_health.scorer import rules
from gpu_health.scorer.evaluation import (
    _weighted_scores,
    belongs,
    predict_snapshots,
    subsets,
    upcoming_failures,
)
from gpu_health.scorer.training import Dataset, Failure

#: The weight tried (chosen on the seven physics families alone, from 0.3, 0.6, 1.0 and 1.5).
WEIGHT = 1.0

STILL_ACTIVE = (
    rules.Term(
        "corrected_ecc_24h",
        "memory",
        "ecc_corrected_per_day_24h",
        WEIGHT,
        baseline="ecc_corrected_per_day_prior_23d",
    ),
    rules.Term(
        "pcie_replays_24h",
        "bus",
        "pcie_replays_per_min_24h",
        WEIGHT,
        scale=1440.0,
        baseline="pcie_replays_per_min_prior_23d",
        baseline_scale=1440.0,
    ),
    rules.Term(
        "nvlink_errors_24h",
        "nvlink",
        "nvlink_errors_per_min_24h",
        WEIGHT,
        scale=1440.0,
        baseline="nvlink_errors_per_min_prior_23d",
        baseline_scale=1440.0,
    ),
)


#: Printed columns and their decimals, in the header's order.
COLUMNS = (
    ("roc_auc_all_7d", 2),
    ("recall_visible_7d", 2),
    ("roc_auc_all_30d", 2),
    ("recall_visible_30d", 2),
    ("healthy_over_0.3_7d", 4),
)

HEADER = (
    "| fleet | 7 d ROC AUC, all | 7 d recall @ 5 % FPR, visible | 30 d ROC AUC, all "
    "| 30 d recall, visible | healthy rows over 0.3 (7 d) |"
)


def fleets(parser: argparse.ArgumentParser, items: list[str]) -> Iterator[tuple[str, Path]]:
    """``LABEL=DIR`` arguments as (label, fleet directory); a usage error otherwise."""
    for item in items:
        label, _, directory = item.partition("=")
        if not directory:
            parser.error(f"{item!r}: expected LABEL=DIR")
        yield label, Path(directory)


def table_row(label: str, before: dict[str, float], after: dict[str, float]) -> str:
    """One line of the printed table: each of :data:`COLUMNS`, before → after."""
    cells = " | ".join(f"{before[k]:.{d}f} → {after[k]:.{d}f}" for k, d in COLUMNS)
    return f"| {label} | {cells} |"


@contextmanager
def with_terms(extra: tuple[rules.Term, ...]) -> Iterator[None]:
    """The rule with ``extra`` terms added (and their features read)."""
    terms = (*rules.TERMS, *extra)
    read = (*(t.feature for t in extra), *(t.baseline for t in extra if t.baseline))
    features = tuple(dict.fromkeys((*rules.RULE_FEATURES, *read)))
    with (
        mock.patch.object(rules, "TERMS", terms),
        mock.patch.object(rules, "RULE_FEATURES", features),
    ):
        yield


def measure(data: Dataset, failures: list[Failure]) -> dict[str, float]:
    """The four headline numbers and the alert share for the rule as it stands."""
    model = rules.RuleModel()
    x = data.matrix(model.features)
    out: dict[str, float] = {}
    for horizon in ("7d", "30d"):
        y = data.labels[horizon]
        ok = ~np.isnan(y)
        p = predict_snapshots(model, horizon, x, data.times)
        visible = ok & subsets(data, failures, horizon)["precursor_visible"]
        out[f"roc_auc_all_{horizon}"] = _weighted_scores(p[ok], y[ok], np.ones(ok.sum()))[0]
        out[f"recall_visible_{horizon}"] = _weighted_scores(
            p[visible], y[visible], np.ones(visible.sum())
        )[1]
        if horizon == "7d":
            healthy = ok & (y == 0)
            out["healthy_over_0.3_7d"] = float((p[healthy] > 0.3).mean())
            # the rows GPUFailurePredicted would page on: before a failure, and healthy
            out["pages_true_7d"] = float((p[ok & (y == 1)] > 0.3).sum())
            out["pages_false_7d"] = float((p[healthy] > 0.3).sum())
            out.update(missed_by_mode(data, failures, p, healthy, visible & (y == 1)))
    return out


def missed_by_mode(
    data: Dataset, failures: list[Failure], p: Any, healthy: Any, positives: Any
) -> dict[str, float]:
    """Visible-precursor rows at or below the 5 %-FPR cut (the 95th percentile of the healthy
    rows' 7-day probabilities), counted by the mode of the failure ahead: which failures the
    rule does not see."""
    cut = float(np.quantile(p[healthy], 0.95))
    ahead = upcoming_failures(data, failures, "7d")
    missed: dict[str, float] = {}
    for i in np.flatnonzero(positives & (p <= cut)):
        seen = [f for f in ahead[i] if belongs("precursor_visible", f, float(data.times[i]))]
        mode = seen[0].mode if seen else "unknown"
        missed[f"missed_visible_7d:{mode}"] = missed.get(f"missed_visible_7d:{mode}", 0) + 1
    return missed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("fleets", nargs="+", help="LABEL=DIR (a fleet directory)")
    parser.add_argument("--json", type=Path, help="also write the numbers as JSON")
    args = parser.parse_args()
    results: dict[str, Any] = {}
    print(HEADER)
    for label, directory in fleets(parser, args.fleets):
        try:
            data, failures = resolution_invariance.collect(directory, label, warmup="7d")
        except UserError as e:  # a fleet directory without history: one line, no traceback
            parser.exit(2, f"{parser.prog}: error: {e}\n")
        before = measure(data, failures)
        with with_terms(STILL_ACTIVE):
            after = measure(data, failures)
        results[label] = {"without": before, "with": after}
        print(table_row(label, before, after), flush=True)
        missed = {k.split(":")[1]: int(v) for k, v in before.items() if k.startswith("missed_")}
        print(
            f"  {label}: visible 7-day rows the rule misses at its 5 % FPR cut, by mode: {missed}"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
