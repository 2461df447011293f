"""XID-class features on dcgm-exporter input: one week-long read against one read per code.

dcgm-exporter exports only the last XID code per GPU (``DCGM_FI_DEV_XID_ERRORS``), so the
memory and "other" class features must know whether that code is in a set of codes. The
earlier form compared the week's ``last_over_time`` with each code (6 reads for memory, 9 for
"other"); the shipped form (``gpu_health.scorer.feature_promql.xid_class_events``) reads it
once and matches the code as a label. This bench builds the same history as
``bench/bench_scorer.py`` (dcgm schema, last-XID gauge included), serves it with Debian's
Prometheus and times both forms per class, alternating them, and checks they give the same value
for every GPU. Both forms run in the same session, so the ratio is what the change buys.

    .venv/bin/python bench/bench_xid_classes.py --gpus 2000 --days 14 --step 300
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from bench_scorer import history_options, served_history  # same directory: its history

from gpu_health.scorer.feature_promql import xid_class_events, xid_class_events_per_code
from gpu_health.scorer.feature_schema import DCGM
from gpu_health.scorer.promclient import PromClient

CLASSES = ("memory", "other", "bus", "nvlink")


def timed(client: PromClient, promql: str, at: float) -> tuple[float, dict[str, str]]:
    began = time.monotonic()
    result = client.query(promql, at)
    took = time.monotonic() - began
    values = {}
    for r in result:
        metric, value = r["metric"], r["value"]
        assert isinstance(metric, dict) and isinstance(value, list)
        values[str(metric["UUID"])] = str(value[1])
    return took, values


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    history_options(parser)
    parser.add_argument("--runs", type=int, default=5, help="timed runs of each form per class")
    args = parser.parse_args()
    with served_history(args.gpus, args.days, args.step, "bench-xid-", timeout_s=300) as (
        client,
        end,
    ):
        print("class   per-code_s  shipped_s  ratio  GPUs  same values")
        for xid_class in CLASSES:
            shipped = xid_class_events(xid_class, "7d")(DCGM)
            per_code = xid_class_events_per_code(xid_class, "7d")(DCGM)
            assert shipped is not None and per_code is not None
            old_t, new_t = [], []
            timed(client, per_code, end)  # warm the page cache for both
            for _ in range(args.runs):
                t, old = timed(client, per_code, end)
                old_t.append(t)
                t, new = timed(client, shipped, end)
                new_t.append(t)
            a, b = statistics.median(old_t), statistics.median(new_t)
            print(
                f"{xid_class:<7} {a:>10.2f} {b:>10.2f} {a / b:>6.2f}x {len(new):>5}  "
                f"{'yes' if old == new else 'NO'}"
            )
            if old != new:
                return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
