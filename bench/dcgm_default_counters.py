"""What dcgm-exporter's default counters hide from the rule: one fleet, two field sets.

Most fleets run dcgm-exporter with its default counters, which leave out ECC, clock-hold
violations, retired pages and NVLink errors. This bench writes one physics family's fleet,
keeps it whole (what ``deploy/dcgm-exporter/gpu-health-counters.csv`` collects) and a copy
with only dcgm-exporter's default fields (``gpu_health.telemetry.schema.DCGM_EXPORTER_DEFAULTS``),
evaluates the rule on both with ``gpu-health-scorer evaluate --model rules`` and prints the
same rows of both reports side by side (and JSON with ``--json``).

    .venv/bin/python bench/dcgm_default_counters.py --family plateau --work /tmp/counters
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from gpu_health import stack
from gpu_health.sim.families import FAMILIES, write
from gpu_health.telemetry.schema import DCGM_EXPORTER_DEFAULTS

DAY = 86400.0
SCORER = [sys.executable, "-m", "gpu_health.scorer.cli"]


def keep_defaults(source: Path, target: Path) -> tuple[int, int]:
    """Copy the OpenMetrics ``source`` with only the default fields' families; (kept, dropped)
    sample lines."""
    kept = dropped = 0
    keep = False
    with source.open() as src, target.open("w") as out:
        for line in src:
            if line.startswith("# TYPE "):
                keep = line.split()[2] in DCGM_EXPORTER_DEFAULTS
            elif line.startswith("# EOF"):
                keep = True
            elif not line.startswith("#"):
                kept, dropped = (kept + 1, dropped) if keep else (kept, dropped + 1)
            if keep:
                out.write(line)
    return kept, dropped


def evaluate(data_dir: Path, report: Path) -> dict[str, Any]:
    command = [*SCORER, "evaluate", "--data-dir", str(data_dir), "--schema", "dcgm"]
    command += ["--step", "24h", "--model", "rules", "--json", str(report)]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    result: dict[str, Any] = json.loads(report.read_text())
    return result


def rows(report: dict[str, Any]) -> dict[str, float]:
    """The rule's headline numbers of one report (7 days; per failure mode, ROC AUC)."""
    seven = report["horizons"]["7d"]
    out = {
        "roc_auc_all": seven["all"]["model"]["roc_auc"],
        "roc_auc_visible": seven["precursor_visible"]["model"]["roc_auc"],
        "recall_at_5pct_fpr_visible": seven["precursor_visible"]["model"]["recall_at_5pct_fpr"],
    }
    for key, entry in sorted(seven.items()):
        if key.startswith("mode:"):
            out[f"roc_auc_{key}"] = entry["model"]["roc_auc"]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--family", choices=sorted(FAMILIES), default="plateau")
    parser.add_argument("--work", type=Path, required=True, help="a new or empty directory")
    parser.add_argument("--gpus", type=int, default=200)
    parser.add_argument("--days", type=float, default=45.0)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--end", type=float, default=1796083200.0)
    parser.add_argument("--resolution", type=float, default=3600.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    family = replace(FAMILIES[args.family], resolution=args.resolution)
    start = math.floor((args.end - args.days * DAY) / args.resolution) * args.resolution
    whole = args.work / "whole"
    write(family, args.gpus, args.days, args.seed, start, whole)
    defaults = args.work / "defaults"
    defaults.mkdir(parents=True, exist_ok=True)
    (defaults / "failures.csv").write_bytes((whole / "failures.csv").read_bytes())
    kept, dropped = keep_defaults(whole / "fleet.om", defaults / "fleet.om")
    block = f"{int(args.days * 24) + 48}h"
    results = {}
    for name, directory in (("whole", whole), ("defaults", defaults)):
        stack.promtool_backfill(directory / "fleet.om", directory / "prometheus", block)
        (directory / "fleet.om").unlink()
        results[name] = rows(evaluate(directory, args.work / f"{name}.json"))
    print(f"{args.family}: {kept:,} sample lines kept, {dropped:,} outside the default counters")
    print(f"{'7 days, rule':34s} {'all fields':>11s} {'defaults':>9s}")
    for key in results["whole"]:
        a, b = results["whole"][key], results["defaults"].get(key, float("nan"))
        print(f"{key:34s} {a:11.3f} {b:9.3f}")
    if args.json:
        args.json.write_text(json.dumps({"family": args.family, **results}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
