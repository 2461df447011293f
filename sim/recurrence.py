"""Node recurrence: GPU faults come back on the node that just had one.

In the public stepfun-ai/InfiniteHBD-Trace (348 days of 400 GPU servers) 23 % of GPU faults were
followed by another GPU fault on the same node within 30 days, with a median gap of 18 days. A
node's shared parts (baseboard, PCIe switches, NVSwitch tray, power shelf, cooling loop, firmware
state) outlive the board that failed, so a fault says something about the node, not only about
the GPU. Both simulators reproduce it the same way: each fault schedules a follow-up fault on the
node (any of its 8 slots, so another GPU or the same slot's board or replacement) with a
probability chosen so that, together with the node's independent background failures, 23 % of
faults are followed within 30 days; the follow-up comes after a lognormal gap.

The follow-up probability falls as the background rises: a fleet whose 7 node peers already fail
often enough to reach 23 % within 30 days (e.g. one simulated with a large ``hazard_scale``) gets
no follow-ups at all, and its schedule is the one it had without recurrence.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable

import numpy as np

DAY = 86400.0
#: InfiniteHBD-Trace: share of faults followed by another on the node within 30 d (23 %).
NODE_REPEAT_SHARE = 0.23
NODE_REPEAT_WINDOW_DAYS = 30.0
#: Lognormal law of a scheduled repeat's gap. Its median sits above the trace's 18 days because
#: the node's background failures, mixed in, shorten the observed first-repeat gap to ~18 d.
NODE_REPEAT_MEDIAN_DAYS = 22.0
NODE_REPEAT_SIGMA = 0.5
#: GPUs on a node besides the one that failed (8-GPU servers, as in the trace).
NODE_PEERS = 7


def follow_probability(peer_daily_rate: float, same_board_share: float = 0.0) -> float:
    """Probability that a fault schedules a follow-up on its node.

    ``peer_daily_rate`` is one GPU's failure probability per day. The node's 7 peers alone make
    ``background`` of faults followed within 30 days, and ``same_board_share`` more are followed
    by a fault of the same board that the simulator already draws (memory-error streaks);
    follow-ups make up the rest of the trace's 23 %, and only the share of their gaps that falls
    inside 30 days counts towards it.
    """
    peers_quiet = math.exp(-NODE_PEERS * peer_daily_rate * NODE_REPEAT_WINDOW_DAYS)
    background = 1.0 - peers_quiet * (1.0 - min(same_board_share, 1.0))
    if background >= NODE_REPEAT_SHARE:
        return 0.0
    # P(lognormal gap <= 30 d)
    z = math.log(NODE_REPEAT_WINDOW_DAYS / NODE_REPEAT_MEDIAN_DAYS) / NODE_REPEAT_SIGMA
    within = 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))
    need = (NODE_REPEAT_SHARE - background) / (1.0 - background)
    return min(1.0, max(0.0, need / within))


def gap_seconds(normal: float) -> float:
    """The follow-up's delay for a standard normal draw ``normal`` (lognormal, median 22 d)."""
    return NODE_REPEAT_MEDIAN_DAYS * DAY * math.exp(normal * NODE_REPEAT_SIGMA)


def repeat_stats(
    failures: Iterable[tuple[float, Hashable]],
    end: float,
    within_days: float = NODE_REPEAT_WINDOW_DAYS,
) -> tuple[float, float]:
    """(share of failures followed by another on the same node within ``within_days``, median of
    those first-repeat gaps in days), over (time, node) failures at least ``within_days`` before
    ``end`` (later ones are censored: their window is not over). NaN median when none repeat."""
    by_node: dict[Hashable, list[float]] = {}
    for t, node in failures:
        by_node.setdefault(node, []).append(t)
    horizon = end - within_days * DAY
    counted = 0
    gaps: list[float] = []
    for times in by_node.values():
        times.sort()
        for k, t in enumerate(times):
            if t > horizon:
                continue
            counted += 1
            later = next((t2 for t2 in times[k + 1 :] if t2 > t), None)
            if later is not None and later - t <= within_days * DAY:
                gaps.append((later - t) / DAY)
    share = len(gaps) / counted if counted else 0.0
    return share, float(np.median(gaps)) if gaps else math.nan
