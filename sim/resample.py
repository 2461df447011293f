"""The same fleet history at a coarser scrape interval: keep every sample whose timestamp is a
multiple of the new interval.

A scorer that holds on fleets it has never seen must not read the scrape interval as a
property of the GPU: one fleet scrapes every 15 s, another every 10 minutes, a third keeps hourly
downsampled data. Simulating each resolution separately draws different physics (the random
draws follow the number of samples), so the comparison would mix two questions. Thinning one
fine-grained history instead gives the *same* counters, gauges, resets, gaps and failures seen
less often, which is what a longer scrape interval is.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path


def thin_lines(lines: Iterable[str], every: int) -> Iterator[str]:
    """OpenMetrics lines with only the samples at multiples of ``every`` seconds (comments,
    ``# TYPE``/``# EOF`` and blank lines pass through). Every sample line must end in an
    integer Unix timestamp, as the simulators write them."""
    if every < 1:
        raise ValueError(f"interval must be at least 1 s, got {every}")
    for line in lines:
        if not line.strip() or line.startswith("#"):
            yield line
            continue
        # name{labels} value timestamp: what follows the labels (or the name) is two fields.
        tail = line[line.rindex("}") + 1 :] if "}" in line else line.split(" ", 1)[-1]
        fields = tail.split()
        if len(fields) != 2 or not fields[1].isdigit():
            raise ValueError(f"sample without an integer timestamp: {line[:80]!r}")
        if int(fields[1]) % every == 0:
            yield line


def thin_file(source: Path, target: Path, every: int) -> None:
    """Write ``source`` (OpenMetrics text) to ``target`` with only the samples at multiples of
    ``every`` seconds; ``target`` appears only when complete, and nothing is left behind when
    a line cannot be thinned."""
    partial = target.with_name(target.name + ".partial")
    try:
        with source.open() as src, partial.open("w") as dst:
            dst.writelines(thin_lines(src, every))
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    partial.replace(target)
