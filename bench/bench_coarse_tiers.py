"""What coarser samples than hourly would buy the long windows: 6-hourly and daily tiers.

A window of 7 days or more reads the mixin's hourly samples (``--history hourly``), and what
it still costs is chunks: Prometheus cuts a series' chunk at every 2-hour block, so an hourly
series holds one chunk per 2 hours, as the raw one does (``bench_chunk_cost.py``). Only samples
sparser than every 2 hours have fewer chunks: one a sample. This bench measures what that would
buy before anything is built on it.

It gives the history the samples the hourly group's rules would record at each tier's interval
(``last_over_time(X[6h])`` every 6 hours, ``avg_over_time`` for the averaged gauges; the same at
1 day), named as the hourly ones with the tier for ``1h`` (``gpu:X:last_over_time6h``). They
are the answers of range queries over the history, written as OpenMetrics and turned into
2-hour blocks by promtool, as a live Prometheus would store them, once: a data directory that
has them keeps them (the hourly samples too, built the same way where missing). Then, as of
``--at``, each feature query that reads the hourly samples is sent in three forms, one at a
time, ``--rounds`` times after a cold pass: as shipped (hourly), with every long window on
the coarser tier (window one tier interval longer than the raw one, as the hourly form is one
hour longer), and with only the windows of :data:`MIN_LONG_TIER_WINDOW` or more on it. For each
form it reports Prometheus' evaluation time summed over the queries (``evalTotalTime``) and,
per query, how many GPUs read the same value as the hourly form (within 1e-6, relative) and
within 5 %.

    .venv/bin/python bench/bench_coarse_tiers.py --data-dir W/dcgm --at 1796083140 \
        [--rounds 3] [--json out.json]

``W/dcgm`` is what ``bench/bench_hourly_history.py --work W`` leaves. The series this bench
adds have names of their own; the shipped queries never read them.
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import sys
import tempfile
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import requests
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_query_profile import (  # same directory
    run_queries,
    served,
    served_args,
    served_options,
)
from bench_recorded_history import _settled, group_file, report
from bench_scorer import query_stats

from gpu_health import stack
from gpu_health.scorer.cli_history import block_time_range
from gpu_health.scorer.feature_promql import window_seconds
from gpu_health.scorer.promclient import PromClient, PromConfig

HOURLY_GROUP = "gpu-health-scorer-hourly.rules"
#: The coarser tiers measured: name suffix and interval (s).
TIERS = {"6h": 21600, "1d": 86400}
#: The shortest window the "long windows only" form moves to a coarser tier: a day of edge
#: is at most 1/21 of it.
MIN_LONG_TIER_WINDOW = "21d"
#: A call on the hourly samples, and its window as :func:`to_hourly` wrote it (raw + 1 h).
_HOURLY_CALL = re.compile(r"(gpu:[A-Za-z_][A-Za-z0-9_]*:(?:last|avg)_over_time)1h\[(\d+)s\]")


def tier_rules(tag: str) -> list[dict[str, str]]:
    """The hourly group's rules at tier ``tag``: each record renamed, each ``[1h]`` window
    made ``[tag]``."""
    with tempfile.TemporaryDirectory() as tmp:
        groups = yaml.safe_load(group_file(HOURLY_GROUP, Path(tmp) / "g.yaml").read_text())
    return [
        {
            "record": r["record"].removesuffix("1h") + tag,
            "expr": r["expr"].replace("[1h]", f"[{tag}]"),
        }
        for r in groups["groups"][0]["rules"]
    ]


def has_tier(url: str, tag: str, step: int, at: float) -> bool:
    """Whether the served history holds a series of tier ``tag`` within two of its intervals
    before ``at`` (the names the index holds there: no sample is read)."""
    found = requests.get(
        f"{url}/api/v1/label/__name__/values",
        params={
            "match[]": f'{{__name__=~"gpu:.+:(last|avg)_over_time{tag}"}}',
            "start": str(at - 2 * step),
            "end": str(at),
        },
        timeout=600,
    )
    found.raise_for_status()
    return bool(found.json()["data"])


def write_tier(url: str, tag: str, step: int, start: float, end: float, out: Path) -> int:
    """Tier ``tag``'s samples over ``[start, end]`` (every ``step`` s, aligned to it) as
    OpenMetrics in ``out``; how many."""
    first = (int(start) // step + 1) * step
    written = 0
    with out.open("w") as f:
        for rule in tier_rules(tag):
            r = requests.post(
                f"{url}/api/v1/query_range",
                data={"query": rule["expr"], "start": first, "end": int(end), "step": step},
                timeout=600,
            )
            r.raise_for_status()
            series = r.json()["data"]["result"]
            if not series:
                continue
            f.write(f"# TYPE {rule['record']} gauge\n")
            for s in series:
                labels = ",".join(
                    f'{k}="{v}"' for k, v in sorted(s["metric"].items()) if k != "__name__"
                )
                for t, v in s["values"]:
                    f.write(f"{rule['record']}{{{labels}}} {v} {int(t)}\n")
                    written += 1
        f.write("# EOF\n")
    return written


def add_tiers(data: Path, at: float, settle_s: float) -> dict[str, int]:
    """Give the history every tier it lacks (``1h`` too); samples written per tier."""
    start, end = block_time_range(data)
    end = min(end, at)
    written: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="bench-coarse-tiers-") as tmp:
        work = Path(tmp)
        with served(data) as prom:
            for tag, step in {"1h": 3600, **TIERS}.items():
                if has_tier(prom.url, tag, step, at):
                    continue
                print(f"writing the {tag} tier", file=sys.stderr, flush=True)
                om = work / f"{tag}.om"
                written[tag] = write_tier(prom.url, tag, step, start, end, om)
                stack.promtool_backfill(om, work / f"blocks-{tag}")
        for blocks in work.glob("blocks-*"):  # Prometheus stopped: its directory is free
            for block in blocks.iterdir():
                shutil.move(block, data / block.name)
    if written:  # let Prometheus merge the new blocks before anything is timed
        with served(data):
            _settled(data, settle_s)
    return written


def on_tier(promql: str, tag: str, min_window_s: float = 0.0) -> str:
    """``promql`` (hourly form) with each hourly call whose raw window is at least
    ``min_window_s`` reading tier ``tag`` over a window one tier interval longer than raw."""
    step = window_seconds(tag)

    def move(m: re.Match[str]) -> str:
        raw = int(m.group(2)) - 3600
        if raw < min_window_s:
            return m.group(0)
        return f"{m.group(1)}{tag}[{round(raw + step)}s]"

    return _HOURLY_CALL.sub(move, promql)


def values(session: requests.Session, url: str, promql: str, at: float) -> dict[str, float]:
    """Each answer of ``promql`` at ``at``, keyed by its labels."""
    r = session.post(f"{url}/api/v1/query", data={"query": promql, "time": at}, timeout=600)
    r.raise_for_status()
    return {
        ",".join(f"{k}={v}" for k, v in sorted(s["metric"].items())): float(s["value"][1])
        for s in r.json()["data"]["result"]
    }


def agreement(base: dict[str, float], other: dict[str, float]) -> dict[str, int]:
    """How many answers of ``other`` equal ``base``'s (1e-6 relative) and are within 5 %."""
    keys = set(base) | set(other)

    def within(k: str, tol: float) -> bool:
        return k in base and k in other and abs(base[k] - other[k]) <= tol * max(1.0, abs(base[k]))

    return {
        "answers": len(keys),
        "same": sum(within(k, 1e-6) for k in keys),
        "within_5pct": sum(within(k, 0.05) for k in keys),
    }


def compare(url: str, at: float, rounds: int) -> dict[str, Any]:
    """Every feature query that reads the hourly samples, in each form: times and agreement."""
    client = PromClient(PromConfig(url, timeout_s=600))
    queries = [
        (q, features)
        for q, features, _ in run_queries("dcgm", client, at, "hourly")
        if _HOURLY_CALL.search(q)
    ]
    long_s = window_seconds(MIN_LONG_TIER_WINDOW)
    forms: dict[str, Callable[[str], str]] = {"hourly": str}
    for tag in TIERS:
        forms[f"{tag}_all_long"] = partial(on_tier, tag=tag)
        forms[f"{tag}_from_{MIN_LONG_TIER_WINDOW}"] = partial(on_tier, tag=tag, min_window_s=long_s)
    rows: list[dict[str, Any]] = []
    with requests.Session() as session:
        for q, _ in queries:
            for form in forms.values():
                query_stats(session, url, form(q), at)
        for q, features in queries:
            sent = {name: form(q) for name, form in forms.items()}
            seconds = {
                name: statistics.median(query_stats(session, url, p, at)[0] for _ in range(rounds))
                for name, p in sent.items()
            }
            base = values(session, url, sent["hourly"], at)
            rows.append(
                {
                    "features": list(features),
                    "seconds": {k: round(v, 3) for k, v in seconds.items()},
                    "agreement": {
                        name: agreement(base, values(session, url, p, at))
                        for name, p in sent.items()
                        if name != "hourly"
                    },
                }
            )
    totals = {name: round(sum(r["seconds"][name] for r in rows), 3) for name in forms}
    return {
        "queries": len(rows),
        "seconds": totals,
        "over_hourly": {k: round(v / totals["hourly"], 3) for k, v in totals.items()},
        "per_query": rows,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    served_options(parser)
    parser.add_argument(
        "--settle-s",
        type=float,
        default=90.0,
        help="new blocks unchanged this long count as merged (default: %(default)s)",
    )
    args = served_args(parser)
    written = add_tiers(args.data_dir, args.at, args.settle_s)
    with served(args.data_dir, not args.no_compaction_wait) as prom:
        result = compare(prom.url, args.at, args.rounds)
    return report({"tier_samples_written": written, **result}, args.json)


if __name__ == "__main__":
    sys.exit(main())
