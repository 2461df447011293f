"""The recording rules split into passes for ``promtool tsdb create-blocks-from rules``.

Promtool evaluates each rule against what the Prometheus at ``--url`` already holds, so a record
that reads another record gets history only once the blocks of that one are loaded (Prometheus'
backfilling documentation: run the backfill again for dependent rules). Pass 0 holds the records
that read only scraped series; pass k those whose deepest record read is in pass k - 1. An
operator backfills pass 0, moves its blocks into Prometheus' data directory, waits for them to
load (Prometheus rereads the directory about once a minute), then runs pass 1, and so on
(docs/dashboards.md). ``gpu-health generate`` writes the passes under ``rules/backfill/``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any


def _reads(expr: str, names: set[str]) -> set[str]:
    """The records of ``names`` that ``expr`` names, each as a whole metric name (not inside a
    longer name; a name inside a ``__name__`` regex is not found)."""
    return {n for n in names if re.search(rf"(?<![\w:]){re.escape(n)}(?![\w:])", expr)}


def record_depths(doc: Mapping[str, Any]) -> dict[str, int]:
    """Each record's pass: 0 when it reads no record of ``doc``, else one more than the
    deepest record it reads (over every rule of that name: Prometheus allows several). A cycle
    (a record reading itself through others) is refused."""
    exprs: dict[str, list[str]] = {}
    for group in doc.get("groups", []):
        for rule in group["rules"]:
            if "record" in rule:
                exprs.setdefault(rule["record"], []).append(str(rule["expr"]))
    names = set(exprs)
    depths: dict[str, int] = {}
    visiting: set[str] = set()

    def depth(name: str) -> int:
        if name in depths:
            return depths[name]
        if name in visiting:
            raise ValueError(f"recording rule {name} reads itself through other records")
        visiting.add(name)
        read = set().union(*(_reads(e, names) for e in exprs[name])) - {name}
        depths[name] = 1 + max((depth(other) for other in read), default=-1)
        visiting.discard(name)
        return depths[name]

    for name in exprs:
        depth(name)
    return depths


def passes(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    """``doc``'s recording rules as one rule document per pass, groups (with their interval)
    kept, alerting rules left out (promtool backfills records only)."""
    depths = record_depths(doc)
    count = 1 + max(depths.values(), default=-1)
    out: list[dict[str, Any]] = []
    for level in range(count):
        groups = []
        for group in doc.get("groups", []):
            rules = [r for r in group["rules"] if "record" in r and depths[r["record"]] == level]
            if rules:
                groups.append({**group, "rules": rules})
        out.append({"groups": groups})
    return out
