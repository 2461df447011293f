#!/usr/bin/env python3
"""Whether the features sent as labelled parts equal their whole expressions on any fleet, and
whether our exporter's per-GPU totals give the features its split counters give.

The scorer sends three kinds of feature as parts labelled in one query and combines them
itself (docs/scorer.md, "Reading history at scale"): the XID classes on dcgm-exporter's gauge,
the node comparisons and the GPUs lost. The tests compare the two on fleets written for them;
this serves any Prometheus data directory (a blind generator's fleet, a real fleet's TSDB),
computes the feature frame at each ``--at`` time twice, with the parts (as shipped) and with
every whole expression (``share_parts=False``), and prints, per feature that differs, the GPUs
where it differs and the largest difference. Two differences are deliberate (docs/scorer.md):
a mean that is not finite is left out of the node and model medians, and a GPU reporting under
two node names at once gets the larger lost-on-node count; the script names the features, so
a difference can be traced to one of them or to a fault.

    .venv/bin/python bench/parts_on_fleet.py --data-dir /tmp/outside/fleet-s1/prometheus \
        --at 1795000000 --at 1795500000 --json /tmp/parts-outside.json

With ``--against split`` (our exporter's schema) the two frames are instead the features read
from the per-GPU totals (``gpu_nvlink_errors_all_links_total``, ``gpu_xid_errors_all_codes_total``)
and from the counters per link and per code they sum, and the script says whether the scorer's
own check (``totals_readable``) would read the totals on this history.

Exit status 0 when every feature agrees within ``--tolerance`` at every time, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from gpu_health import stack
from gpu_health.scorer.feature_frame import FeatureFrame, compute_features, totals_readable
from gpu_health.scorer.feature_schema import schema_by_name
from gpu_health.scorer.promclient import PromClient, PromConfig


def differences(parts: FeatureFrame, whole: FeatureFrame, tolerance: float) -> dict[str, Any]:
    """Per feature that differs between the two frames: the GPUs where it differs (one side
    missing and the other not counts) and the largest absolute difference where both have a
    value. The frames must list the same GPUs in the same order."""
    out: dict[str, Any] = {}
    for j, name in enumerate(parts.names):
        a, b = parts.values[:, j], whole.values[:, j]
        both = np.isfinite(a) & np.isfinite(b)
        one_missing = np.isfinite(a) != np.isfinite(b)
        apart = np.zeros_like(both)
        apart[both] = np.abs(a[both] - b[both]) > tolerance * np.maximum(1.0, np.abs(b[both]))
        differ = apart | one_missing
        if differ.any():
            out[name] = {
                "gpus": int(differ.sum()),
                "one_side_missing": int(one_missing.sum()),
                "largest": float(np.abs(a[both] - b[both]).max()) if both.any() else None,
                "examples": [parts.gpus[i][2] for i in np.flatnonzero(differ)[:3]],
            }
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True, help="a Prometheus TSDB")
    parser.add_argument(
        "--at",
        type=float,
        action="append",
        required=True,
        help="Unix time to read at (repeat for several)",
    )
    parser.add_argument("--schema", default="dcgm", choices=("ours", "dcgm"))
    parser.add_argument(
        "--against",
        default="whole",
        choices=("whole", "split"),
        help="compare the parts with the whole expressions (default), or our exporter's "
        "per-GPU totals with its split counters (--schema ours)",
    )
    parser.add_argument(
        "--tolerance",
        type=float,
        default=1e-9,
        help="largest difference counted as equal, relative to max(1, |whole|) (default 1e-9)",
    )
    parser.add_argument("--json", type=Path, help="write the result here as JSON")
    args = parser.parse_args()
    if args.against == "split" and args.schema != "ours":
        parser.error("--against split reads our exporter's schema: add --schema ours")
    if not args.data_dir.is_dir():
        print(f"parts_on_fleet: {args.data_dir}: not a directory", file=sys.stderr)
        return 2
    result: dict[str, Any] = {
        "data_dir": args.data_dir.name,
        "schema": args.schema,
        "against": args.against,
        "times": [],
    }
    split = args.against == "split"
    agree = True
    with tempfile.TemporaryDirectory(prefix="parts-on-fleet-") as tmp:
        config = stack.write_prometheus_config(Path(tmp) / "prometheus.yml")
        with stack.prometheus(Path(tmp), config, data_dir=args.data_dir) as prom:
            client = PromClient(PromConfig(prom.url, timeout_s=300))
            for at in args.at:
                t0 = time.monotonic()
                if split:
                    parts = compute_features(client, args.schema, at, totals=True)
                else:
                    parts = compute_features(client, args.schema, at)
                t1 = time.monotonic()
                if split:
                    whole = compute_features(client, args.schema, at, totals=False)
                else:
                    whole = compute_features(client, args.schema, at, share_parts=False)
                t2 = time.monotonic()
                if parts.gpus != whole.gpus:
                    print(f"at {at:.0f}: the two frames list different GPUs")
                    agree = False
                    result["times"].append({"at": at, "same_gpus": False})
                    continue
                diff = differences(parts, whole, args.tolerance)
                failed = parts.failed_queries + whole.failed_queries
                agree = agree and not diff and not failed
                checked: dict[str, Any] = {}
                if split:
                    s = schema_by_name(args.schema)
                    checked["totals_readable"] = totals_readable(client, s, at)
                result["times"].append(
                    {
                        "at": at,
                        "same_gpus": True,
                        **checked,
                        "gpus": len(parts.gpus),
                        "features": len(parts.names),
                        "parts_s": round(t1 - t0, 2),
                        "whole_s": round(t2 - t1, 2),
                        "failed_queries": failed,
                        "differences": diff,
                    }
                )
                first, second = ("totals", "split counters") if split else ("parts", "whole")
                said = (
                    f"; the scorer's check reads the totals: {checked['totals_readable']}"
                    if split
                    else ""
                )
                print(
                    f"at {at:.0f}: {len(parts.gpus)} GPUs, {len(parts.names)} features; "
                    f"{first} {t1 - t0:.2f} s, {second} {t2 - t1:.2f} s; "
                    f"{len(diff)} features differ, {failed} queries failed{said}"
                )
                for name, d in diff.items():
                    print(
                        f"  {name:36s} GPUs {d['gpus']:4d} (one side missing "
                        f"{d['one_side_missing']}), largest {d['largest']}, e.g. {d['examples']}"
                    )
    result["agree"] = agree
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0 if agree else 1


if __name__ == "__main__":
    raise SystemExit(main())
