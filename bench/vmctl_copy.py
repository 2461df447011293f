"""Copy a Prometheus data directory into VictoriaMetrics with vmctl, every sample of it.

Debian's vmctl 1.79 can leave out the last few series it reads, and still exit 0. Its importer
hands series to its workers through a queue of ``4 * --vm-concurrency`` places, and at the end
it signals the workers to stop while series may still wait there: each worker then sends what
it holds and returns, and what is left in the queue is never sent. On the 12-GPU test history
about half of the copies lost one to five whole series (the last GPU's, as the blocks are read
in order), which showed as one GPU scored differently on the two engines.

So the copy reads the directory through a staging directory that links the blocks' files and
adds one more block, later than all of them, of :data:`SENTINELS` series of a metric no query
asks for (:data:`SENTINEL`). vmctl reads blocks in time order with one reader, so only those can
be left in the queue. Then the copy checks the count: the samples vmctl says it sent, less the
sentinel samples VictoriaMetrics holds, must be the samples the blocks record in their
``meta.json``; any other count is an error naming both.
"""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_scaling import tsdb_stats  # same directory: the blocks' series, samples, bytes

from gpu_health import stack
from gpu_health.scorer.cli_history import block_time_range

#: The metric of the staging block's series: no query of the scorer names it.
SENTINEL = "vmctl_copy_sentinel"
#: vmctl's import workers; its queue holds four series per worker.
VM_CONCURRENCY = 2
#: Series in the staging block: more than the queue holds, so no series of the data waits in
#: it at the end.
SENTINELS = 16 * VM_CONCURRENCY


def blocks(data: Path) -> list[Path]:
    """The TSDB blocks of data directory ``data`` (the directories holding a ``meta.json``)."""
    return sorted(d for d in data.iterdir() if (d / "meta.json").is_file())


def block_samples(data: Path) -> tuple[int, float]:
    """The samples the blocks of ``data`` hold and the latest time they reach (Unix seconds),
    from their ``meta.json`` (a UserError where there is no block)."""
    _first, last = block_time_range(data)
    return tsdb_stats(data)[1], last


def linked(block: Path, into: Path) -> None:
    """A copy of ``block`` under ``into`` made of real directories and symbolic links to its
    files (Prometheus' reader passes over a block directory that is itself a link)."""
    for root, _dirs, files in os.walk(block):
        here = into / Path(root).relative_to(block.parent)
        here.mkdir(parents=True, exist_ok=True)
        for name in files:
            (here / name).symlink_to(Path(root, name).resolve())


def staged(data: Path, work: Path) -> tuple[Path, int]:
    """A staging directory under ``work``: the blocks of ``data`` (linked) and a last block of
    :data:`SENTINELS` series an hour after them; and the samples of ``data``'s blocks."""
    expected, last = block_samples(data)
    snapshot = work / "snapshot"
    snapshot.mkdir(parents=True)
    for block in blocks(data):
        linked(block, snapshot)
    at_s = int(last) + 3600
    source = work / "sentinel.om"
    lines = [f'{SENTINEL}{{n="{i}"}} 1 {at_s}' for i in range(SENTINELS)]
    source.write_text("\n".join([f"# TYPE {SENTINEL} gauge", *lines, "# EOF"]) + "\n")
    stack.promtool_backfill(source, snapshot)
    return snapshot, expected


def run_vmctl(argv: list[str], timeout_s: float) -> tuple[int, str]:
    """Run vmctl on a pseudo-terminal (it insists on one even when told not to ask, ``-s``),
    read as it writes; its exit status and what it said."""
    leader, follower = pty.openpty()
    said: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal closed with vmctl
                return
            if not chunk:
                return
            said.append(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        done = subprocess.run(
            argv, stdin=follower, stdout=follower, stderr=follower, timeout=timeout_s, check=False
        )
    finally:
        os.close(follower)
        reader.join(timeout=10)
        os.close(leader)
    return done.returncode, b"".join(said).decode(errors="replace")


def samples_sent(said: str) -> int:
    """The samples vmctl's importer says it sent (``total samples: N`` in its closing stats)."""
    found = re.findall(r"total samples:\s*(\d+)", said)
    if not found:
        raise RuntimeError(f"vmctl did not say how many samples it sent: {said.strip()[-300:]}")
    return int(found[-1])


def exported_samples(url: str, match: str) -> dict[str, int]:
    """Each series' raw sample count in the VictoriaMetrics at ``url`` (its export API), by its
    labels, for the series selector ``match``."""
    body = stack.http_get(f"{url}/api/v1/export?match[]={match}", timeout=60)
    rows = [json.loads(line) for line in body.splitlines() if line.strip()]
    return {json.dumps(r["metric"], sort_keys=True): len(r["values"]) for r in rows}


def sentinel_samples(url: str) -> int:
    """The sentinel samples the VictoriaMetrics at ``url`` holds."""
    return sum(exported_samples(url, SENTINEL).values())


def copy_blocks(data: Path, url: str, work: Path, timeout_s: float = 3600.0) -> float:
    """Copy the blocks of Prometheus data directory ``data`` into the VictoriaMetrics at ``url``
    (staging under ``work``), check that every sample arrived, and make them searchable; the
    seconds it took."""
    began = time.monotonic()
    snapshot, expected = staged(data, work)
    argv = [stack.find_binary("vmctl"), "prometheus", "-s", "--vm-disable-progress-bar"]
    argv += ["--prom-concurrency=1", f"--vm-concurrency={VM_CONCURRENCY}"]
    argv += [f"--prom-snapshot={snapshot}", f"--vm-addr={url}"]
    status, said = run_vmctl(argv, timeout_s)
    if status != 0:
        tail = said.strip().splitlines()[-5:]
        raise RuntimeError(f"vmctl exited with {status}: {' | '.join(tail)}")
    stack.http_get(f"{url}/internal/force_flush", timeout=60)
    copied = samples_sent(said) - sentinel_samples(url)
    if copied != expected:
        raise RuntimeError(f"vmctl copied {copied} of the {expected} samples in {data}")
    return time.monotonic() - began
