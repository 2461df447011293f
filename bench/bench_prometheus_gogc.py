"""What Prometheus' garbage-collector setting (GOGC) does to a scoring run, and costs in memory.

A scoring run is nearly all Prometheus' CPU (docs/benchmarks.md, "Where a run's time goes"),
and part of that CPU is Go's garbage collector, whose pace GOGC sets: the heap may grow by
GOGC % over what the last collection left before the next one starts. Debian's Prometheus
(2.42, the one every figure of docs/benchmarks.md was measured on) runs at Go's default of
100; Prometheus 2.53 and later set 75 unless the GOGC environment variable or the
configuration's ``runtime: {gogc: N}`` says otherwise (prometheus/prometheus#14288), trading
CPU for memory. This bench measures that trade on a data directory:

* for each round, and each ``--gogc`` value in turn (so the machine's drift hits each alike):
  Prometheus started on the data with that GOGC (read back from its environment), one cold
  scoring run, then ``--runs`` timed ones;
* per value: the median run, Prometheus' CPU per run (``/proc``), and its peak resident memory
  over the runs (``VmHWM``).

    .venv/bin/python bench/bench_prometheus_gogc.py --data-dir DIR --at 1796083140 \\
        [--gogc 75,100,200] [--rounds 2] [--runs 3] [--history hourly] [--json out.json]

``DIR`` is a Prometheus data directory in dcgm-exporter's schema, such as the ``W/dcgm`` that
``bench/bench_hourly_history.py --work W`` leaves.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_query_profile import history_option, served, served_args, served_options
from bench_recorded_history import report  # same directory: print, and write with --json
from bench_scorer import scoring_run_s

from gpu_health import stack
from gpu_health.scorer.promclient import PromClient, PromConfig


@contextmanager
def gogc(value: int) -> Iterator[None]:
    """``GOGC=value`` in the environment the servers started inside inherit."""
    before = os.environ.get("GOGC")
    os.environ["GOGC"] = str(value)
    try:
        yield
    finally:
        if before is None:
            del os.environ["GOGC"]
        else:
            os.environ["GOGC"] = before


def process_status(pid: int) -> dict[str, str]:
    """The GOGC a process runs with (its environment; "" for none) and its peak resident
    memory in MB (``VmHWM``)."""
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    found = [e.split(b"=", 1)[1].decode() for e in environ if e.startswith(b"GOGC=")]
    peak_kib = next(
        int(line.split()[1])
        for line in Path(f"/proc/{pid}/status").read_text().splitlines()
        if line.startswith("VmHWM:")
    )
    return {"gogc": found[0] if found else "", "peak_rss_mb": f"{peak_kib / 1024:.1f}"}


def one_start(
    args: argparse.Namespace, value: int
) -> tuple[list[float], list[float], dict[str, str]]:
    """Prometheus started on ``--data-dir`` at GOGC ``value``: its timed runs (seconds), its
    CPU in each (seconds), and its :func:`process_status` at the end."""
    with gogc(value), served(args.data_dir, not args.no_compaction_wait) as prom:
        client = PromClient(PromConfig(prom.url, timeout_s=600))
        pid = prom.process.pid
        scoring_run_s(client, args.workers, args.at, args.history)  # cold: chunks into cache
        runs, cpu = [], []
        for _ in range(args.runs):
            before = stack.cpu_seconds(pid)
            runs.append(scoring_run_s(client, args.workers, args.at, args.history))
            after = stack.cpu_seconds(pid)
            cpu.append(after - before if before is not None and after is not None else 0.0)
        return runs, cpu, process_status(pid)


def gogc_values(text: str) -> list[int]:
    """``--gogc``: a comma-separated list of percentages."""
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of whole numbers") from None
    if not values or any(not 1 <= v <= 10_000 for v in values) or len(set(values)) < len(values):
        raise argparse.ArgumentTypeError(f"{text!r}: distinct percentages from 1 to 10000")
    return values


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    served_options(parser)
    history_option(parser)
    parser.add_argument(
        "--gogc", type=gogc_values, default=[75, 100, 200], help="(default: 75,100,200)"
    )
    parser.add_argument("--runs", type=int, default=3, help="timed runs a start (default: 3)")
    parser.add_argument("--workers", type=int, default=4, help="(default: %(default)s)")
    args = served_args(parser)
    if args.runs < 1:
        parser.error("--runs: must be at least 1")
    found: dict[int, dict[str, Any]] = {
        v: {"runs_s": [], "prometheus_cpu_s": [], "peak_rss_mb": [], "seen_gogc": []}
        for v in args.gogc
    }
    for round_ in range(1, args.rounds + 1):
        for value in args.gogc:
            print(f"round {round_}/{args.rounds}: GOGC={value}", file=sys.stderr, flush=True)
            runs, cpu, status = one_start(args, value)
            found[value]["runs_s"] += [round(r, 2) for r in runs]
            found[value]["prometheus_cpu_s"] += [round(c, 2) for c in cpu]
            found[value]["peak_rss_mb"].append(float(status["peak_rss_mb"]))
            found[value]["seen_gogc"].append(status["gogc"])
    base = 100 if 100 in found else args.gogc[0]
    base_median = statistics.median(found[base]["runs_s"])
    result: dict[str, Any] = {"history": args.history, "at": args.at, "baseline_gogc": base}
    result["gogc"] = {
        str(v): {
            **f,
            "median_s": round(statistics.median(f["runs_s"]), 2),
            "median_prometheus_cpu_s": round(statistics.median(f["prometheus_cpu_s"]), 2),
            "largest_peak_rss_mb": max(f["peak_rss_mb"]),
            "ratio": round(statistics.median(f["runs_s"]) / base_median, 3),
        }
        for v, f in found.items()
    }
    return report(result, args.json)


if __name__ == "__main__":
    sys.exit(main())
