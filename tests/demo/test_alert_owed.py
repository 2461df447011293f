"""Which alerts a simulated GPU owes without an injected fault (the silent-fleet test's
exemptions): latched states, and the PCIe/NVLink degradation episodes the simulator plays."""

from __future__ import annotations

from gpu_health.demo.alert_timing import EPISODE_ALERTS, latched_at_start, quiet_start
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


def test_a_quiet_start_has_no_failure_near_it() -> None:
    """quiet_start steps back past a board that fails on its own, so a silence test started
    there sees no real page (one started at the wall-clock time failed on some days)."""
    fleet = fleetlib.build_fleet(GPUS, 0, 1.0)
    failures = sorted(f.time for slot in fleet.slots for b in slot.boards for f in b.failures)
    # a failure well inside the fleet's history, with room for quiet hours before it
    failure = failures[len(failures) // 2]
    start = quiet_start(GPUS, window=WINDOW, before=failure + WINDOW / 2, margin=WINDOW)
    assert start <= failure + WINDOW / 2 and start % 60 == 0
    near = [t for t in failures if start - WINDOW <= t < start + WINDOW]
    assert near == []
    # nothing is lost at that start and no board is down in the window
    for slot in fleet.slots:
        for board in slot.boards:
            for a, b in board.down:
                assert not (a < start + WINDOW and b > start - WINDOW), (board.uuid, a, b)
    owed = latched_at_start(GPUS, window=WINDOW, start_time=start)
    assert not any("GPUFallenOffBus" in alerts for alerts in owed.values())
