"""What the rule's node-relative temperature costs a scoring run: an A/B/C in one Prometheus.

The same history (``bench_scorer.write_history``: dcgm-exporter schema, nodes of 8) is scored
in turn by the same rule reading the model-relative temperature features it used two releases
ago, the node-relative ones without the load (the last release), and the shipped rule (the
node-relative ones with each GPU's power above its node taken off), interleaved so that the
machine's drift hits every arm alike; then each temperature and power query is timed alone.
Prints a table and optionally JSON.
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_scorer

from gpu_health.scorer import rules, service
from gpu_health.scorer.features import FEATURES, schema_by_name

#: The rule's node-relative features and the model-relative ones they replaced.
BEFORE = {
    "temp_gpu_node_excess_24h": "temp_gpu_excess_24h",
    "temp_gpu_node_excess_change_7d": "temp_gpu_excess_change_7d",
}
#: The power features the shipped rule reads to take each GPU's load off its temperature.
LOAD = ("power_node_excess_24h", "power_node_excess_change_7d")
ARMS = ("model-relative", "node-relative", "node-relative, load aside")


@contextmanager
def rule_terms(arm: str) -> Iterator[None]:
    """The shipped rule, or the same rule as it read its temperature in an earlier release."""
    shipped = rules.TERMS, rules.RULE_FEATURES
    if arm != ARMS[2]:
        rename = BEFORE if arm == ARMS[0] else {}
        rules.TERMS = tuple(
            replace(t, feature=rename.get(t.feature, t.feature), load=None) for t in shipped[0]
        )
        features = tuple(rename.get(f, f) for f in shipped[1] if f not in LOAD)
        # The service imported the list of features it asks for: patch its copy too.
        rules.RULE_FEATURES = service.RULE_FEATURES = features
    try:
        yield
    finally:
        rules.TERMS, rules.RULE_FEATURES = shipped
        service.RULE_FEATURES = shipped[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    bench_scorer.ab_options(parser)
    args = parser.parse_args()
    with bench_scorer.served_history(args.gpus, args.days, args.step, "bench-node-temp-") as (
        client,
        _,
    ):
        arms = {arm: functools.partial(rule_terms, arm) for arm in ARMS}
        runs = bench_scorer.interleaved_runs(client, arms, args.pairs, args.workers)
        s = schema_by_name("dcgm")
        alone: dict[str, float] = {}
        for feature in FEATURES:
            if feature.name in (*BEFORE, *BEFORE.values(), *LOAD):
                query = feature.build(s)
                assert query is not None
                times = []
                for _ in range(3):
                    began = time.monotonic()
                    client.query(query, None)
                    times.append(time.monotonic() - began)
                alone[feature.name] = round(statistics.median(times), 3)
    result, medians = bench_scorer.ab_summary(args, runs)
    base = medians[ARMS[0]]
    result["ratio_to_model_relative"] = {k: round(v / base, 3) for k, v in medians.items()}
    result["query_alone_s"] = alone
    print(f"whole scoring run, median of {args.pairs}:")
    for arm, median in medians.items():
        print(f"  {arm:28s} {median:6.2f} s  {median / base:.3f}x")
    for name, seconds in alone.items():
        print(f"  {name:34s} {seconds:6.3f} s alone")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
