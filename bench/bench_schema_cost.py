#!/usr/bin/env python3
"""What the scorer's queries cost on our exporter's schema against dcgm-exporter's, same fleet.

The scorer's speed benches (``bench_scorer.py`` and the A/B benches built on it) write
dcgm-exporter's schema. Our exporter splits two signals into many counters per GPU that
dcgm-exporter sends as a few fields: NVLink errors per ``link`` and ``type`` (72 counters on an
18-link board, where dcgm-exporter sends one total per error kind) and XIDs per catalogued
``xid`` code, each from 0 (docs/metrics.md). A feature over such a signal reads every one of
those counters over its whole window (a counter's rise is read per counter, three readings
each: docs/scorer.md), so the same fleet costs more to score in our schema.

This bench writes one simulated fleet in both schemas (``gpu-health backfill``, the same seed,
so the same GPUs and physics), serves each in its own Prometheus, and measures three arms: our
schema as the scorer reads it (the per-GPU totals our exporter sends beside the split counters,
``gpu_nvlink_errors_all_links_total`` and ``gpu_xid_errors_all_codes_total``, where every GPU
sent them: docs/scorer.md), the same history read from the split counters (as history written
before the totals is read), and dcgm-exporter's. Per arm: the samples the feature queries read
(Prometheus' ``stats=all``, each query sent once at the history's end), the queries reading the
most, and whole scoring runs of the shipped default model with the economics, interleaved (one
cold run each, then ``--pairs`` rounds). It prints the medians and the ratios to dcgm-exporter's.
Nothing is timed before each Prometheus has merged the 2-hour blocks the backfill wrote, as an
operator's Prometheus does within minutes of starting (``bench_scorer.wait_compacted``: a few
minutes of waiting, even for a small fleet).

    .venv/bin/python bench/bench_schema_cost.py --gpus 200 --days 14 --step 300 \
        --work /tmp/schema-cost --json /tmp/schema-cost.json
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_scorer

from gpu_health import stack
from gpu_health.scorer import feature_frame
from gpu_health.scorer.feature_frame import compute_features, presence_window, totals_readable
from gpu_health.scorer.feature_plan import plan_queries
from gpu_health.scorer.feature_schema import SCHEMAS, SchemaName, schema_by_name
from gpu_health.scorer.features import FEATURES
from gpu_health.scorer.promclient import PromClient, PromConfig

#: The end of the history: a fixed time, so two runs write the same fleet.
END = 1796083200


def build(out: Path, schema: SchemaName, gpus: int, days: float, step: int, seed: int) -> None:
    """The fleet's history in ``schema``, as an operator backfills it (``gpu-health
    backfill``); kept when ``out`` already holds one (a rerun measures the same data)."""
    if (out / "failures.csv").exists():
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    argv = [
        *(sys.executable, "-m", "gpu_health.cli", "backfill", "--schema", schema),
        *("--gpus", str(gpus), "--days", f"{days:g}", "--resolution", f"{step}s"),
        *("--seed", str(seed), "--end-time", str(END), "--out", str(out)),
    ]
    if subprocess.run(argv, stdout=subprocess.DEVNULL).returncode != 0:
        raise SystemExit(f"bench_schema_cost: writing the {schema} history into {out} failed")


#: The arms: name -> (schema, read the split counters even where the totals are there).
ARMS: dict[str, tuple[SchemaName, bool]] = {
    "dcgm": ("dcgm", False),
    "ours": ("ours", False),
    "ours_split": ("ours", True),
}


@contextmanager
def split_counters(split: bool) -> Iterator[None]:
    """Within it, every feature frame reads our split counters (``split``) or decides itself."""
    if not split:
        yield
        return
    with mock.patch.object(feature_frame, "totals_readable", lambda *_args: False):
        yield


def query_costs(url: str, queries: tuple[str, ...], at: float) -> list[tuple[int, str]]:
    """Per query, the samples Prometheus read to answer it at ``at`` (``stats=all``)."""
    return list(zip(bench_scorer.samples_per_query(url, queries, at), queries, strict=True))


def metric_of(promql: str) -> str:
    """The first metric name a query selects (enough to say which signal it reads)."""
    found = re.search(r"\(([a-zA-Z_:][a-zA-Z0-9_:]*)(\{|\[)", promql)
    return found.group(1) if found else "?"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    bench_scorer.ab_options(parser)
    parser.set_defaults(gpus=200, pairs=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--work", type=Path, help="keep the two histories here (reused when present)"
    )
    parser.add_argument("--top", type=int, default=5, help="queries to list per schema")
    parser.add_argument(
        "--arms",
        nargs="+",
        choices=list(ARMS),
        default=list(ARMS),
        help="arms to measure (default: all three); a fleet too large to write in our schema "
        "in the time at hand can be measured in dcgm-exporter's alone (ratios need dcgm)",
    )
    parser.add_argument(
        "--no-compaction-wait",
        action="store_true",
        help="time from each Prometheus' start instead of after its first compaction cycle "
        "(a --work history an earlier run's Prometheus already merged; two minutes saved)",
    )
    args = parser.parse_args()
    arms = {arm: ARMS[arm] for arm in ARMS if arm in args.arms}
    schemas = [schema for schema in SCHEMAS if any(s == schema for s, _ in arms.values())]
    at = float(END - 60)
    result: dict[str, Any] = {
        "gpus": args.gpus,
        "days": args.days,
        "step_s": args.step,
        "seed": args.seed,
        "pairs": args.pairs,
        "schemas": {},
    }
    with ExitStack() as stack_:
        work = args.work or Path(stack_.enter_context(tempfile.TemporaryDirectory()))
        clients: dict[SchemaName, PromClient] = {}
        written: dict[SchemaName, int] = {}
        result["blocks"] = {}
        for schema in schemas:
            data = work / schema
            print(f"{schema}: writing the history", file=sys.stderr)
            build(data, schema, args.gpus, args.days, args.step, args.seed)
            prom_dir = work / f"prom-{schema}"
            prom_dir.mkdir(exist_ok=True)
            config = stack.write_prometheus_config(prom_dir / "prometheus.yml")
            written[schema] = bench_scorer.tsdb_blocks(data)
            prom = stack_.enter_context(stack.prometheus(prom_dir, config, data_dir=data))
            clients[schema] = PromClient(PromConfig(prom.url, timeout_s=600))
        for schema, client in clients.items():
            # each Prometheus merges its 2-hour blocks while the next history is written;
            # nothing is timed before they all have (bench_scorer.wait_compacted)
            if args.no_compaction_wait:
                served = written[schema]
            else:
                print(f"{schema}: waiting for Prometheus to compact the history", file=sys.stderr)
                served = bench_scorer.wait_compacted(client.base_url)
            result["blocks"][schema] = {"written": written[schema], "served": served}
            print(f"{schema}: {written[schema]} blocks written, {served} served", file=sys.stderr)
        scored = {
            schema: {gpu[2] for gpu in compute_features(client, schema, at).gpus}
            for schema, client in clients.items()
        }
        # None where one schema alone was written
        result["same_gpus"] = scored["ours"] == scored["dcgm"] if len(scored) == 2 else None
        result["gpus_scored"] = max(len(gpus) for gpus in scored.values())
        for arm, (schema, split) in arms.items():
            client = clients[schema]
            s = replace(schema_by_name(schema), fresh=presence_window(client, at))
            s = replace(s, totals=not split and totals_readable(client, s, at))
            costs = sorted(query_costs(client.base_url, plan_queries(s, FEATURES).queries, at))
            with split_counters(split):
                cold = bench_scorer.scoring_run_s(client, args.workers, at, schema=schema)
            result["schemas"][arm] = {
                "schema": schema,
                "totals_read": s.totals,
                "queries": len(costs),
                "samples_read": sum(n for n, _ in costs),
                "top": [{"samples": n, "metric": metric_of(q)} for n, q in costs[::-1][: args.top]],
                "cold_s": round(cold, 3),
                "runs_s": [],
            }
        for _ in range(args.pairs):
            for arm, (schema, split) in arms.items():
                with split_counters(split):
                    run = bench_scorer.scoring_run_s(
                        clients[schema], args.workers, at, schema=schema
                    )
                result["schemas"][arm]["runs_s"].append(round(run, 3))
    for entry in result["schemas"].values():
        entry["median_s"] = round(statistics.median(entry["runs_s"]), 3)
    dcgm = result["schemas"].get("dcgm")
    compared = [arm for arm in ("ours", "ours_split") if dcgm and arm in result["schemas"]]
    for arm in compared:
        entry = result["schemas"][arm]
        entry["ratio_samples"] = round(entry["samples_read"] / dcgm["samples_read"], 2)
        entry["ratio_median"] = round(entry["median_s"] / dcgm["median_s"], 2)
    scored_line = (
        f"{result['gpus_scored']} GPUs scored"
        if result["same_gpus"] is None
        else f"the same {result['gpus_scored']} GPUs scored in both: {result['same_gpus']}"
    )
    print(
        f"{args.gpus} GPUs x {args.days:g} d at {args.step} s, median of {args.pairs} "
        f"({scored_line}):"
    )
    for arm, entry in result["schemas"].items():
        print(
            f"  {arm:10s} {entry['median_s']:7.2f} s a scoring run "
            f"(cold {entry['cold_s']:.2f} s), {entry['queries']} queries, "
            f"{entry['samples_read'] / 1e6:.1f} M samples read"
        )
        for top in entry["top"]:
            print(f"      {top['samples'] / 1e6:7.2f} M  {top['metric']}")
    for arm in compared:
        entry = result["schemas"][arm]
        print(
            f"{arm} / dcgm: {entry['ratio_median']}x the time, "
            f"{entry['ratio_samples']}x the samples (per-GPU totals read: {entry['totals_read']})"
        )
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0 if result["same_gpus"] in (True, None) else 1


if __name__ == "__main__":
    raise SystemExit(main())
