"""Measure fault → alert → notification times for every ``--sim-fault`` kind, and write the table
into docs/alerts.md.

Runs the ten fault kinds at once, one per GPU plus four healthy GPUs, through the real exporter
(sim backend, wall-clock speed), Prometheus with the shipped ``rules/`` (15 s scrape and
evaluation) and Alertmanager with the shipped ``alertmanager.yml`` (``--fast``: the demo's
one-second group_wait), delivering to the local PagerDuty/Slack sink. The same harness
(``gpu_health.demo.alert_timing``) backs the done-when test
``tests/alertmanager/test_alert_timing.py``. One run takes about five minutes.

    .venv/bin/python bench/bench_alerts.py [--fast] [--write docs/alerts.md]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

from gpu_health.demo.alert_timing import FAULT_ALERTS, markdown_table, run_faults


def markers(fast: bool) -> tuple[str, str]:
    """The block this run replaces: one for the shipped timings, one for the demo's."""
    name = "alert-timing-bench-fast" if fast else "alert-timing-bench"
    return f"<!-- {name}:begin -->", f"<!-- {name}:end -->"


def section(table: str, fast: bool, seconds: float) -> str:
    timings = (
        "the demo's Alertmanager timings (group_wait 1 s)"
        if fast
        else "the shipped Alertmanager timings (group_wait 10 s for pages, 30 s for the rest)"
    )
    begin, end = markers(fast)
    return "\n".join(
        [
            begin,
            "",
            f"Measured by `bench/bench_alerts.py{' --fast' if fast else ''}` on "
            f"{platform.machine()} ({os.cpu_count()} CPUs, Python {platform.python_version()}), "
            f"{time.strftime('%Y-%m-%d', time.gmtime())}, in {seconds:.0f} s: all ten fault "
            "kinds at once, each on its own GPU, onset 30 s after the exporter started, "
            "with the shipped rules (15 s scrape and evaluation) and " + timings + ". Seconds "
            "from onset (the exporter's clock starts a moment later, so they are upper bounds); "
            "`incidents` counts PagerDuty incidents opened for the GPU.",
            "",
            table,
            "",
            end,
        ]
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="the demo's 1 s group_wait")
    parser.add_argument("--write", type=Path, help="replace the table in this Markdown file")
    args = parser.parse_args()
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        faults = list(FAULT_ALERTS)
        run = run_faults(Path(tmp), faults, gpus=len(faults) + 4, fast=args.fast)
    text = section(markdown_table(run), args.fast, time.monotonic() - started)
    print(text)
    if args.write:
        begin, end = markers(args.fast)
        doc = args.write.read_text()
        if begin not in doc or end not in doc:
            print(f"{args.write}: no {begin} ... {end} block", file=sys.stderr)
            return 1
        head, _, rest = doc.partition(begin)
        _, _, tail = rest.partition(end)
        args.write.write_text(head + text + tail)
    return 0


if __name__ == "__main__":
    sys.exit(main())
