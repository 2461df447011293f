"""What the rule's node-relative temperature costs a scoring run: an A/B in one Prometheus.

The same history (``bench_scorer.write_history``: dcgm-exporter schema, nodes of 8) is scored
alternately by the shipped rule and by the same rule reading the model-relative temperature
features it used before, in interleaved pairs so that the machine's drift hits both alike;
then each of the four temperature queries is timed alone. Prints a table and optionally JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_scorer

from gpu_health import stack
from gpu_health.scorer import rules, service
from gpu_health.scorer.econ.bridge import make_econ_hook
from gpu_health.scorer.features import FEATURES, schema_by_name
from gpu_health.scorer.model import load_model
from gpu_health.scorer.promclient import PromClient, PromConfig
from gpu_health.scorer.service import Scorer

#: The rule's node-relative features and the model-relative ones they replaced.
BEFORE = {
    "temp_gpu_node_excess_24h": "temp_gpu_excess_24h",
    "temp_gpu_node_excess_change_7d": "temp_gpu_excess_change_7d",
}


@contextmanager
def rule_terms(node_relative: bool) -> Iterator[None]:
    """The shipped rule, or the same rule reading the model-relative temperature features."""
    shipped = rules.TERMS, rules.RULE_FEATURES
    if not node_relative:
        rules.TERMS = tuple(
            replace(t, feature=BEFORE.get(t.feature, t.feature)) for t in shipped[0]
        )
        # The service imported the list of features it asks for: patch its copy too.
        rules.RULE_FEATURES = service.RULE_FEATURES = tuple(BEFORE.get(f, f) for f in shipped[1])
    try:
        yield
    finally:
        rules.TERMS, rules.RULE_FEATURES = shipped
        service.RULE_FEATURES = shipped[1]


def one_run(client: PromClient, node_relative: bool, workers: int) -> float:
    with rule_terms(node_relative):
        scorer = Scorer(client, load_model(None), "dcgm", make_econ_hook(), workers=workers)
        assert scorer.run_once(), scorer.last_error
        assert scorer.snapshot is not None
        return scorer.snapshot.duration_s


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gpus", type=int, default=2000)
    parser.add_argument("--days", type=float, default=14)
    parser.add_argument("--step", type=int, default=300, help="history resolution in seconds")
    parser.add_argument("--pairs", type=int, default=5, help="interleaved A/B pairs")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-node-temp-") as tmp:
        work = Path(tmp)
        end = int(time.time()) // 60 * 60
        print(f"building {args.gpus} GPUs x {args.days} d ...", file=sys.stderr, flush=True)
        bench_scorer.write_history(work / "h.om", args.gpus, args.days, args.step, end)
        stack.promtool_backfill(work / "h.om", work / "tsdb", block_duration="480h")
        (work / "h.om").unlink()
        config = stack.write_prometheus_config(work / "prometheus.yml")
        with stack.prometheus(work, config, data_dir=work / "tsdb") as prom:
            client = PromClient(PromConfig(prom.url, timeout_s=120))
            for node_relative in (False, True):  # cold runs: chunks into the page cache
                one_run(client, node_relative, args.workers)
            runs: dict[str, list[float]] = {"model-relative": [], "node-relative": []}
            for k in range(args.pairs):
                runs["model-relative"].append(one_run(client, False, args.workers))
                runs["node-relative"].append(one_run(client, True, args.workers))
                print(f"pair {k + 1}/{args.pairs}", file=sys.stderr, flush=True)
            s = schema_by_name("dcgm")
            alone: dict[str, float] = {}
            for feature in FEATURES:
                if feature.name in (*BEFORE, *BEFORE.values()):
                    query = feature.build(s)
                    assert query is not None
                    times = []
                    for _ in range(3):
                        began = time.monotonic()
                        client.query(query, None)
                        times.append(time.monotonic() - began)
                    alone[feature.name] = round(statistics.median(times), 3)
    a, b = (statistics.median(v) for v in runs.values())
    result = {
        "gpus": args.gpus,
        "days": args.days,
        "step_s": args.step,
        "runs_s": {k: [round(x, 2) for x in v] for k, v in runs.items()},
        "median_s": {"model-relative": round(a, 2), "node-relative": round(b, 2)},
        "ratio": round(b / a, 3),
        "query_alone_s": alone,
    }
    print(f"whole scoring run, median of {args.pairs}: model-relative {a:.2f} s, "
          f"node-relative {b:.2f} s, ratio {b / a:.3f}")  # fmt: skip
    for name, seconds in alone.items():
        print(f"  {name:34s} {seconds:6.3f} s alone")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
