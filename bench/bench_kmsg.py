"""Kernel-log reader benchmark: reading a full ring buffer's backlog, against a baseline.

What is measured, in one run on this machine (so the ratio is meaningful):

- *backlog*: wall time for :class:`KernelLogReader` to read a kmsg-format file of ``--records``
  records (default 16,384 ≈ a 2 MiB ring) and count the NVIDIA Xid/SXid lines in it (one in 20
  records is one, the rest ordinary kernel messages), from ``start()`` to ``start()`` returning
  (the exporter serves no scrape before that);
- *baseline*: reading the same file and splitting it into lines with nothing parsed — the floor
  of any reader. ``ratio`` = backlog / baseline.

Usage: ``python bench/bench_kmsg.py [--records N]``; prints one line per figure.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from gpu_health.exporter.kmsg.counts import KernelLogCounts
from gpu_health.exporter.kmsg.reader import KernelLogReader

XID = "NVRM: Xid (PCI:0000:3b:00): 79, pid='<unknown>', name=<unknown>, GPU has fallen off the bus."
SXID = "nvidia-nvswitch0: SXid (PCI:0000:06:00.0): 20009, Non-fatal, Link 04 RX Short Error Rate"
OTHER = "EXT4-fs (nvme0n1p2): mounted filesystem with ordered data mode. Quota mode: none."


def write_ring(path: Path, records: int) -> int:
    lines = []
    for seq in range(records):
        text = (XID if seq % 40 == 0 else SXID) if seq % 20 == 0 else OTHER
        lines.append(f"4,{seq},{seq * 1000},-;{text}")
    data = ("\n".join(lines) + "\n").encode()
    path.write_bytes(data)
    return len(data)


def backlog_seconds(path: Path) -> tuple[float, int]:
    counts = KernelLogCounts(["00000000:3B:00.0"])
    reader = KernelLogReader(counts, str(path), journal_command=None)
    started = time.perf_counter()
    reader.start(wait=60)
    elapsed = time.perf_counter() - started
    reader.close()
    return elapsed, counts.events


def baseline_seconds(path: Path) -> float:
    started = time.perf_counter()
    with path.open("rb") as handle:
        lines = 0
        while chunk := handle.read(16384):
            lines += chunk.count(b"\n")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--records", type=int, default=16384)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "kmsg"
        size = write_ring(path, args.records)
        runs = [backlog_seconds(path) for _ in range(args.repeats)]
        backlog = statistics.median(seconds for seconds, _ in runs)
        events = runs[0][1]
        baseline = statistics.median(baseline_seconds(path) for _ in range(args.repeats))
    print(f"records {args.records} ({size / 1024:.0f} KiB), NVIDIA events counted {events}")
    print(f"backlog read + parse: {backlog * 1000:.1f} ms (median of {args.repeats})")
    print(f"baseline read + split: {baseline * 1000:.2f} ms")
    print(f"ratio backlog / baseline: {backlog / baseline:.0f}")
    print(f"records per second: {args.records / backlog:,.0f}")


if __name__ == "__main__":
    main()
