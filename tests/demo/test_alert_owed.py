"""Which alerts a simulated GPU owes without an injected fault (the silent-fleet test's
exemptions): latched states, and the PCIe/NVLink degradation episodes the simulator plays."""

from __future__ import annotations

from gpu_health.demo.alert_timing import EPISODE_ALERTS, latched_at_start
from gpu_health.sim import fleet as fleetlib

GPUS = 64
WINDOW = 3600.0


def test_a_degrading_pcie_link_owes_its_alert_only_while_its_episode_plays() -> None:
    found = [
        (board, episode)
        for slot in fleetlib.build_fleet(GPUS, 0, 1.0).slots
        for board in slot.boards
        for episode in board.episodes
        if episode.kind == "pcie"
        and episode.end - episode.start > 2 * WINDOW
        and board.start <= episode.start - 3 * WINDOW
        and not any(
            e.kind == "pcie" and e.start < episode.start - 2 * WINDOW < e.end
            for e in board.episodes
        )
    ]
    assert found, "the seed-0 fleet has no PCIe degradation episode to test with"
    board, episode = found[0]
    alert = EPISODE_ALERTS["pcie"]

    during = episode.start + WINDOW
    assert alert in latched_at_start(GPUS, window=WINDOW, start_time=during).get(board.uuid, set())

    # Just before the episode it is owed once the episode starts within the window, not earlier.
    assert alert in latched_at_start(
        GPUS, window=WINDOW, start_time=episode.start - WINDOW / 2
    ).get(board.uuid, set())
    # Three windows before it, the same board owes nothing for its link.
    before = episode.start - 3 * WINDOW
    owed = latched_at_start(GPUS, window=WINDOW, start_time=before).get(board.uuid, set())
    assert alert not in owed
