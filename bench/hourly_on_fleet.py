#!/usr/bin/env python3
"""Whether the mixin's hourly samples tell a fleet's story as its raw history does, on any
fleet: a blind generator's, or a real fleet's TSDB.

``bench/bench_hourly_history.py`` measures the hourly tier on our own simulator's fleet. This
copies any Prometheus data directory into ``--work``, serves the copy with Debian's Prometheus,
backfills the rules of ``gpu-health-scorer-hourly.rules`` whose input the fleet sends with
``promtool tsdb create-blocks-from rules`` (from 31 days before the first ``--at``, or from the
fleet's first block where that is later, to the last ``--at``),
lets Prometheus merge the blocks, and at each ``--at`` time computes the feature frame from the
raw series and from the hourly ones (``--history raw`` and ``hourly``) and scores both with the
shipped model: each GPU's 7-day hazard (the largest and median ``|ln(hourly / raw)|``), the
riskiest tenth in both, each feature's largest relative difference, and what ``--history
auto`` would read there.

    .venv/bin/python bench/hourly_on_fleet.py --data-dir /tmp/hall-s1/prometheus \
        --work /tmp/hall-s1-hourly --at 1795478400 --at 1796083200 --json out.json

``--work`` keeps the copy and its hourly samples: a second run with the same ``--work`` and
times within the backfilled range reuses them.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_recorded_history import _agreement, _settled, group_file  # same directory

from gpu_health import stack
from gpu_health.errors import UserError
from gpu_health.scorer.cli_history import block_time_range
from gpu_health.scorer.feature_frame import compute_features
from gpu_health.scorer.features import schema_by_name
from gpu_health.scorer.history_source import choose
from gpu_health.scorer.promclient import PromClient, PromConfig

HOURLY_GROUP = "gpu-health-scorer-hourly.rules"
#: The longest window the scorer reads, and the hour the hourly windows add to it.
REACH_S = 31 * 86400


def first_block_time(data_dir: Path) -> float | None:
    """The earliest time a block of ``data_dir`` holds (``train``'s and ``evaluate``'s
    :func:`block_time_range`), or None without blocks: the hourly rules are backfilled from
    there, not over the empty weeks before a short fleet's history (promtool evaluates every
    rule at each hour regardless)."""
    try:
        return block_time_range(data_dir)[0]
    except UserError:
        return None


def prepared(data_dir: Path, work: Path, start: float, end: float, settle_s: float) -> Path:
    """The copy of ``data_dir`` under ``work`` with the hourly samples of ``[start, end]``
    (made once: a copy that has them is reused)."""
    tsdb = work / "tsdb"
    done = work / "hourly-backfilled.json"
    if done.exists():
        kept = json.loads(done.read_text())
        if kept["start"] <= start and kept["end"] >= end:
            return tsdb
        shutil.rmtree(tsdb)
    if tsdb.exists():
        shutil.rmtree(tsdb)
    print(f"copying {data_dir} to {tsdb}", file=sys.stderr, flush=True)
    shutil.copytree(data_dir, tsdb)
    config = stack.write_prometheus_config(work / "prometheus.yml")
    out = work / "hourly-blocks"
    shutil.rmtree(out, ignore_errors=True)
    with stack.prometheus(work, config, data_dir=tsdb) as prom:
        listed = stack.http_get(f"{prom.url}/api/v1/label/__name__/values", timeout=60)
        rules = group_file(HOURLY_GROUP, work / "hourly.yaml", set(json.loads(listed)["data"]))
        kept = len(yaml.safe_load(rules.read_text())["groups"][0]["rules"])
        print(f"backfilling {kept} hourly rules", file=sys.stderr, flush=True)
        began = time.monotonic()
        stack.promtool_backfill_rules(rules, prom.url, start, end, out)
        seconds = time.monotonic() - began
    for block in out.iterdir():
        shutil.move(str(block), tsdb / block.name)
    with stack.prometheus(work, config, data_dir=tsdb):
        print("letting Prometheus merge the blocks", file=sys.stderr, flush=True)
        _settled(tsdb, settle_s)
    done.write_text(json.dumps({"start": start, "end": end, "rules": kept, "backfill_s": seconds}))
    return tsdb


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True, help="a Prometheus TSDB")
    parser.add_argument("--work", type=Path, required=True, help="the copy and its samples")
    parser.add_argument(
        "--at", type=float, action="append", required=True, help="Unix time (repeat)"
    )
    parser.add_argument("--schema", default="dcgm", choices=("ours", "dcgm"))
    parser.add_argument(
        "--settle-s",
        type=float,
        default=120.0,
        help="blocks unchanged this long count as merged (default: %(default)s)",
    )
    parser.add_argument("--json", type=Path, help="write the result here as JSON")
    args = parser.parse_args()
    if not args.data_dir.is_dir():
        parser.error(f"--data-dir: {args.data_dir} is not a directory")
    args.work.mkdir(parents=True, exist_ok=True)
    start, end = min(args.at) - REACH_S, max(args.at)
    first = first_block_time(args.data_dir)
    if first is not None:  # no rule records anything before the fleet's first sample
        start = max(start, first)
    tsdb = prepared(args.data_dir, args.work, start, end, args.settle_s)
    meta = json.loads((args.work / "hourly-backfilled.json").read_text())
    result: dict[str, Any] = {
        "data_dir": args.data_dir.name,
        "schema": args.schema,
        "hourly_rules": meta["rules"],
        "rules_backfill_s": round(meta["backfill_s"], 1),
        "times": [],
    }
    config = stack.write_prometheus_config(args.work / "prometheus.yml")
    with stack.prometheus(args.work, config, data_dir=tsdb) as prom:
        client = PromClient(PromConfig(prom.url, timeout_s=600))
        for at in args.at:
            s = replace(schema_by_name(args.schema), fresh="30m")
            _, auto = choose(client, s, at, "auto")
            raw = compute_features(client, args.schema, at, history="raw")
            hourly = compute_features(client, args.schema, at, history="hourly")
            agreement = _agreement(raw, hourly)
            differing = agreement["features_differing"]
            assert isinstance(differing, dict)
            result["times"].append({"at": at, "auto_reads": auto, **agreement})
            print(
                f"at {at:.0f}: auto reads {auto}; hazard |ln ratio| max "
                f"{agreement['hazard_abs_log_ratio_max']}, median "
                f"{agreement['hazard_abs_log_ratio_median']}; riskiest tenth shared "
                f"{agreement['top_tenth_shared']}; "
                f"{len(differing)} features differ",
                flush=True,
            )
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
