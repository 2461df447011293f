"""The derived inputs of the health model: one value per rule, already rated and normalised.

Scoring is a pure function of :class:`Signals` (see ``rules.py``), which keeps the rules easy to
test one by one and the property "a worse signal never raises a score" checkable field by field.
Turning raw samples into signals (windows, rates, limits) is the tracker's job (``model.py``).
Every field is ``None`` when the backend did not supply what it needs: unknown is never bad.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

#: PCIe transfer rate per lane in GT/s by generation (PCI-SIG base specifications).
PCIE_GT_PER_SECOND: dict[int, float] = {1: 2.5, 2: 5.0, 3: 8.0, 4: 16.0, 5: 32.0, 6: 64.0, 7: 128.0}
#: Link assumed for the replay budget when neither the sample nor the device names one.
FALLBACK_PCIE_LINK: tuple[int, int] = (4, 16)


def expected_pcie_replays_per_minute(generation: int, width: int) -> float:
    """Replays per minute expected at a bit error rate of 1e-12 (DCGM's GetExpectedPcieReplayRate).

    rate per lane = GT/s x 1e9 bit/s x 1e-12 errors/bit x 60 s; the link's budget is the ceiling
    of rate per lane x lanes: Gen4 x16 -> 16/min, Gen5 x16 -> 31/min.
    """
    per_lane = PCIE_GT_PER_SECOND.get(generation, PCIE_GT_PER_SECOND[4]) * 1e9 * 1e-12 * 60
    return float(max(1, math.ceil(per_lane * max(width, 1))))


@dataclass
class Signals:
    """What the rules look at for one GPU at one moment. Bigger is worse unless noted."""

    up: bool = True
    # thermal (limits resolved from the device or the policy's per-model defaults)
    gpu_temperature_celsius: float | None = None
    slowdown_temp_celsius: float | None = None
    shutdown_temp_celsius: float | None = None
    memory_temperature_celsius: float | None = None
    memory_max_temp_celsius: float | None = None
    #: time fractions (0..1) over the throttle window
    thermal_slowdown_fraction: float | None = None
    hw_slowdown_fraction: float | None = None
    power_brake_fraction: float | None = None
    board_limit_fraction: float | None = None
    reliability_limit_fraction: float | None = None
    # power
    #: mean power over the power window / enforced power limit
    power_ratio: float | None = None
    #: 1 - enforced limit / default limit (0 when running at the default)
    power_limit_reduction: float | None = None
    # performance
    #: SM clock / max SM clock (smaller is worse)
    sm_clock_ratio: float | None = None
    utilization: float | None = None
    #: a reason that makes low clocks normal is active (power cap, idle, app clocks, ...)
    benign_clock_reason: bool | None = None
    #: 1 - width / max width and 1 - gen / max gen
    pcie_width_loss: float | None = None
    pcie_generation_loss: float | None = None
    # reliability
    #: PCIe replays per minute / expected replays per minute for the link
    pcie_replay_ratio: float | None = None
    nvlink_crc_per_second: float | None = None
    nvlink_link_errors: float | None = None
    #: XID events per code inside the XID window (only codes the policy cares about)
    xid_events: dict[int, int] = field(default_factory=dict)
    # memory
    ecc_uncorrectable_volatile: float | None = None
    ecc_uncorrectable_lifetime: float | None = None
    ecc_correctable_rate: float | None = None
    row_remap_pending: bool | None = None
    row_remap_failed: bool | None = None
    remapped_rows_uncorrectable: float | None = None
    remapped_rows_correctable: float | None = None
    retired_pages: float | None = None
    retired_pages_pending: bool | None = None
