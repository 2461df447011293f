"""The one-line rule an SRE would write, as a third scorer in ``evaluate``.

The project's failure model must beat what an operator gets for free from dcgm-exporter and
one PromQL expression. Issue #16 measured the shipped model against exactly this line on an
outside fleet and found it no better::

    increase(SBE[7d]) + 100 * increase(DBE[7d]) + 10 * changes(XID[7d])
      + increase(PCIE_REPLAY[7d]) / 100

``evaluate`` reports it next to the evaluated model and the rule baseline on the same rows, so
"better than the simple rule" is a measured statement on every fleet, not a claim. It is a
ranking only (no probability, no calibration). It is read from the serving features, so it
sees the same history through the same queries as the other scorers; a signal the fleet does
not export counts as zero, as the sum would in an SRE's recording rule with ``or vector(0)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

#: (feature, multiplier to the line's units): the features hold per-day or per-minute rates,
#: the line wants raw 7-day increases.
TERMS: tuple[tuple[str, float], ...] = (
    ("ecc_corrected_per_day_7d", 7.0),  # increase(SBE[7d])
    ("ecc_uncorrected_7d", 100.0),  # 100 * increase(DBE[7d])
    ("xid_events_7d", 10.0),  # 10 * changes(XID[7d]) (dcgm's gauge; ours: the counters)
    ("pcie_replays_per_min_7d", 7 * 1440 / 100),  # increase(PCIE_REPLAY[7d]) / 100
)
FEATURES: tuple[str, ...] = tuple(name for name, _ in TERMS)
NAME = "sre_line"


def sre_line_score(features: Sequence[str], x: FloatArray) -> FloatArray:
    """The line's value per row of ``x`` (columns named by ``features``; missing = 0)."""
    index = {name: j for j, name in enumerate(features)}
    out = np.zeros(x.shape[0])
    for name, scale in TERMS:
        j = index.get(name)
        if j is not None:
            out += scale * np.nan_to_num(np.maximum(x[:, j], 0.0), nan=0.0)
    return out
