"""What reading dcgm-exporter 4.9's field names costs a scoring run: one fleet written with the
names up to 4.8, with 4.9's names, and with half its nodes upgraded 12 hours before the scored
time; each served by Debian's Prometheus and scored (every feature at one time) in interleaved
rounds after one cold run of each, and the legacy one once more with Prometheus refusing the
run's check for renamed fields (which then reads the renamed view). Prints the median seconds,
the queries sent, and each run's ratio to the legacy one (JSON with ``--json``).

A fleet on the legacy names sends one more query per run (the check for renamed fields); on
one that sends new names, each reading of a renamed field reads its legacy name too.

    .venv/bin/python bench/bench_dcgm_renamed.py [--gpus 96] [--days 14] [--rounds 5]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from gpu_health import stack
from gpu_health.scorer.feature_frame import renamed_fields_query
from gpu_health.scorer.feature_schema import DCGM
from gpu_health.scorer.features import compute_features
from gpu_health.scorer.promclient import PromClient, PromConfig, PrometheusError
from gpu_health.sim.dcgm_renames import renamed, upgraded_nodes
from gpu_health.sim.families import FAMILIES, write

END = 1796083200
DAY = 86400


class Counting(PromClient):
    """A client that counts the instant queries it sends (and those it refuses)."""

    sent = 0
    refused = 0

    def query(self, promql: str, at: float | None = None) -> list[dict[str, object]]:
        self.sent += 1
        return super().query(promql, at)


class CheckRefused(Counting):
    """Prometheus refusing the run's check for renamed fields (a timeout, say): the run then
    reads the renamed view, whatever the fleet sends."""

    def query(self, promql: str, at: float | None = None) -> list[dict[str, object]]:
        if RENAMED_CHECK.fullmatch(promql):
            self.sent += 1
            self.refused += 1
            raise PrometheusError("refused by the bench")
        return super().query(promql, at)


#: The run's check for renamed fields, whatever presence window the run measured.
RENAMED_CHECK = re.compile(
    re.escape(renamed_fields_query(replace(DCGM, fresh="FRESH")) or "").replace("FRESH", r"\w+")
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gpus", type=int, default=96)
    parser.add_argument("--days", type=float, default=14.0)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--family", default="steps", choices=sorted(FAMILIES))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", type=Path, help="write the results here too")
    args = parser.parse_args()
    start = END - int(args.days * DAY)
    at = END - DAY // 2
    family = replace(FAMILIES[args.family], resolution=600.0, warmup_days=1.0)
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as servers:
        root = Path(tmp)
        print(f"writing {args.gpus} GPUs x {args.days:g} days ...", file=sys.stderr)
        write(family, args.gpus, args.days, args.seed, float(start), root)
        legacy = (root / "fleet.om").read_text()
        nodes = sorted({line.split('Hostname="')[1].split('"')[0] for line in legacy.splitlines()
                        if 'Hostname="' in line})  # fmt: skip
        texts = {
            "legacy": legacy,
            "renamed": renamed(legacy, lambda _n, _t: True),
            "upgraded": renamed(legacy, upgraded_nodes(tuple(nodes[::2]), at - DAY / 2)),
        }
        urls = {}
        for name, text in texts.items():
            print(f"backfilling {name} ...", file=sys.stderr)
            om = root / f"{name}.om"
            om.write_text(text)
            stack.promtool_backfill(om, root / f"tsdb-{name}", f"{int(args.days * 24) + 48}h")
            work = root / f"prom-{name}"
            work.mkdir()
            config = stack.write_prometheus_config(work / "prometheus.yml")
            server = servers.enter_context(
                stack.prometheus(work, config, data_dir=root / f"tsdb-{name}")
            )
            urls[name] = server.url
        # the legacy fleet once more, read in the renamed view (what a failed check gives)
        runs: dict[str, tuple[str, type[Counting]]] = {
            name: (url, Counting) for name, url in urls.items()
        }
        runs["legacy, check refused"] = (urls["legacy"], CheckRefused)
        seconds: dict[str, list[float]] = {name: [] for name in runs}
        queries: dict[str, int] = {}
        gpus: dict[str, int] = {}
        refused: dict[str, int] = {}
        for round_ in range(args.rounds + 1):
            for name, (url, kind) in runs.items():
                client = kind(PromConfig(url, timeout_s=120))
                t0 = time.perf_counter()
                frame = compute_features(client, "dcgm", at)
                if round_:  # the first round is the cold one
                    seconds[name].append(time.perf_counter() - t0)
                queries[name], gpus[name] = client.sent, len(frame.gpus)
                refused[name] = client.refused
    result = {
        name: {
            "median_s": statistics.median(seconds[name]),
            "ratio_to_legacy": statistics.median(seconds[name])
            / statistics.median(seconds["legacy"]),
            "queries": queries[name],
            "gpus": gpus[name],
            "refused": refused[name],
        }
        for name in runs
    }
    for name, row in result.items():
        print(
            f"{name:22} {row['median_s']:.3f} s  x{row['ratio_to_legacy']:.2f}  "
            f"{row['queries']} queries  {row['gpus']} GPUs"
        )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
