"""What sending three kinds of feature as parts labelled in one query saves a scoring run.

Three kinds of feature made Prometheus read the same samples many times in one expression:

* the four XID-class features on dcgm-exporter's last-XID gauge (memory, bus, NVLink, "other"),
  one query each, read the week of the gauge eleven times between them (its changes, twice
  where PromQL fills the GPUs of other classes with 0, and its last code). They now share one
  query whose answers are labelled by part (``feature_promql.XidClassEvents``): two reads;
* each node comparison (a GPU's temperature or power against its node's median, now and a week
  ago) read its window eleven times (the GPU's average, the node's, the model's, the node's size
  and the weights). It now sends the sum and the count per GPU and node name
  (``feature_promql.NodeExcess``) and the scorer takes the medians and weights: two reads;
* the GPUs lost on the node and in the fleet read every presence series over 30 days three
  times between them (the fleet count twice); they now share one query of the pairs seen and
  reporting now (``feature_promql.LostGpus``), counted in the scorer: one read.

This bench serves ``bench_scorer.write_history``'s fleet and runs whole scoring runs in four
arms, interleaved so that the machine's drift hits each alike: none of them (the release
before), then each kind added in turn, the last arm as shipped. It checks that every arm gives
the same feature values (within 1e-9: the scorer sums in another order than Prometheus), and
prints the medians, each arm's ratio to the first, its number of queries and the samples its
feature queries read (Prometheus' ``stats=all``, each query sent once at the history's end;
JSON with ``--json``).

    .venv/bin/python bench/bench_labelled_parts.py --gpus 2000 --days 14 --step 300
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import sys
from contextlib import AbstractContextManager, ExitStack
from pathlib import Path
from unittest import mock

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_scorer

from gpu_health.scorer import feature_plan
from gpu_health.scorer.feature_promql import LostGpus, NodeExcess, XidClassEvents
from gpu_health.scorer.feature_schema import DCGM
from gpu_health.scorer.features import FEATURES
from gpu_health.scorer.promclient import PromClient

ARMS = (
    "none (before)",
    "+ XID classes",
    "+ node comparisons",
    "+ lost GPUs (shipped)",
)


def sending(arm: str) -> AbstractContextManager[object]:
    """The feature plan of ``arm``: the kinds sent as parts up to that arm's (a kind not sent
    as parts has no parts query, so its features send their whole expressions)."""
    stack = ExitStack()
    k = ARMS.index(arm)
    for kind in (XidClassEvents, NodeExcess, LostGpus)[k:]:
        stack.enter_context(mock.patch.object(kind, "parts", lambda self, s: None))
    return stack


def queries_sent(arm: str) -> tuple[str, ...]:
    """The queries a dcgm-schema feature frame sends in ``arm``."""
    with sending(arm):
        return feature_plan.plan_queries(DCGM, FEATURES).queries


def samples_read(url: str, queries: tuple[str, ...], at: float) -> int:
    """The samples Prometheus read to answer ``queries`` at ``at`` (``totalQueryableSamples``
    of each query's ``stats=all``, summed)."""
    return sum(bench_scorer.samples_per_query(url, queries, at))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    bench_scorer.ab_options(parser)
    args = parser.parse_args()
    arms = {arm: functools.partial(sending, arm) for arm in ARMS}
    sent = {arm: queries_sent(arm) for arm in ARMS}
    read: dict[str, int] = {}

    def count_samples(client: PromClient, end: int) -> None:
        read.update({arm: samples_read(client.base_url, q, end) for arm, q in sent.items()})

    frames, runs = bench_scorer.frames_and_runs(args, arms, "bench-parts-", count_samples)
    same = all(
        f.gpus == frames[0].gpus
        and np.allclose(f.values, frames[0].values, rtol=0, atol=1e-9, equal_nan=True)
        for f in frames[1:]
    )
    queries = {arm: len(q) for arm, q in sent.items()}
    # how many of each arm's queries the release before does not send
    changed = {arm: len(set(q) - set(sent[ARMS[0]])) for arm, q in sent.items()}
    result, medians = bench_scorer.ab_summary(
        args,
        runs,
        same_values=same,
        queries=queries,
        queries_not_sent_before=changed,
        samples_read=read,
        gpus_scored=len(frames[-1].gpus),
    )
    first = medians[ARMS[0]]
    result["ratio_to_before"] = {arm: round(m / first, 3) for arm, m in medians.items()}
    print(f"whole scoring run, median of {args.pairs} (same feature values: {same}):")
    for arm, median in medians.items():
        print(
            f"  {arm:22s} {median:6.2f} s  {median / first:6.3f}x  "
            f"({queries[arm]} queries, {read[arm] / 1e6:.1f} M samples read)"
        )
    print(
        f"runs: {json.dumps(result['runs_s'])}; spread of the first arm: "
        f"{statistics.pstdev(runs[ARMS[0]]):.2f} s"
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
