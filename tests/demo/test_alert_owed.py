"""Which alerts a simulated GPU owes without an injected fault (the silent-fleet test's
exemptions): latched states, the PCIe/NVLink degradation episodes the simulator plays, and a
burst of background PCIe replays above the storm alert's budget."""

from __future__ import annotations

from gpu_health.demo.alert_timing import (
    EPISODE_ALERTS,
    STORM_RATE_WINDOW_S,
    latched_at_start,
    quiet_start,
    replay_storm_budget,
)
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


def test_a_burst_of_background_replays_above_the_storm_budget_owes_the_storm() -> None:
    """The simulator's background PCIe replays come in bursts, and one above the storm alert's
    budget over its rate window fires the alert on a board in no degradation episode (a
    healthy-fleet run started minutes before such a burst did): the storm is owed while the
    burst falls inside the run, and not once the run starts after it (Prometheus' first scrape
    of the counter is its baseline)."""
    alert = EPISODE_ALERTS["pcie"]
    budget = replay_storm_budget() * STORM_RATE_WINDOW_S / 60
    found = []
    for slot in fleetlib.build_fleet(GPUS, 0, 1.0).slots:
        for board in slot.boards:
            times = board.events.times.get("replay", [])
            totals = board.events.totals.get("replay", [])
            for i in range(1, len(times) - 1):
                quiet = (
                    times[i] - times[i - 1] > 3 * WINDOW and times[i + 1] - times[i] > 3 * WINDOW
                )
                no_episode = not any(
                    e.kind == "pcie"
                    and e.start < times[i] + 3 * WINDOW
                    and e.end > times[i] - 3 * WINDOW
                    for e in board.episodes
                )
                in_service = (
                    board.start < times[i] - 3 * WINDOW and board.end > times[i] + 3 * WINDOW
                )
                if totals[i] - totals[i - 1] > budget and quiet and no_episode and in_service:
                    found.append((board.uuid, times[i]))
    assert found, "the seed-0 fleet has no replay burst above the storm's budget to test with"
    uuid, at = found[0]
    owed = latched_at_start(GPUS, window=WINDOW, start_time=(at - WINDOW / 2) // 60 * 60)
    assert alert in owed.get(uuid, set())
    owed = latched_at_start(GPUS, window=WINDOW, start_time=(at + 120) // 60 * 60)
    assert alert not in owed.get(uuid, set())
