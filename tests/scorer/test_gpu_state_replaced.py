"""A board replaced while its node reported stays replaced when the node falls silent later.

The state classification (``gpu_health.telemetry.state.classify``) called a board "replaced"
only while its successor reported now. When the whole node then fell silent (exporter or host
down), the board RMA'd a day earlier came back as a lost GPU, failure probability 1, beside its
successor's "node not reporting".
"""

from __future__ import annotations

from typing import Any

from gpu_health.telemetry.state import classify

AT = 1_796_083_200.0
HOUR = 3600.0


def _sample(uuid: str, slot: str, value: float | None = None, node: str = "n1") -> dict[str, Any]:
    metric = {"node": node, "gpu": slot, "uuid": uuid, "model": "NVIDIA H100 80GB HBM3"}
    return {"metric": metric, "value": [AT, str(value if value is not None else 1)]}


def _results(fresh: list[str]) -> dict[str, list[dict[str, Any]]]:
    """GPU-old in slot 5 last seen 26 h ago, GPU-new in the same slot since then until 2 h ago
    (or now when ``fresh``), GPU-other in slot 3 the same; the node silent unless ``fresh``."""
    last = {"GPU-old": AT - 26 * HOUR, "GPU-new": AT - 2 * HOUR, "GPU-other": AT - 2 * HOUR}
    slots = {"GPU-old": "5", "GPU-new": "5", "GPU-other": "3"}
    return {
        "seen": [_sample(u, slots[u]) for u in last],
        "last_seen": [_sample(u, slots[u], t) for u, t in last.items() if u not in fresh],
        "fresh": [_sample(u, slots[u]) for u in fresh],
    }


def test_a_replaced_board_stays_replaced_when_its_node_falls_silent() -> None:
    while_reporting = classify("ours", _results(["GPU-new", "GPU-other"]), AT)
    assert while_reporting["GPU-old"].state == "replaced"
    assert while_reporting["GPU-old"].replaced_by == "GPU-new"

    silent = classify("ours", _results([]), AT)
    assert silent["GPU-old"].state == "replaced", silent["GPU-old"]
    assert silent["GPU-old"].replaced_by == "GPU-new"
    for uuid in ("GPU-new", "GPU-other"):  # the node's own silence, not lost boards
        assert silent[uuid].state == "absent" and silent[uuid].node_silent, silent[uuid]


def test_a_board_silent_with_its_neighbour_in_the_slot_is_not_replaced_by_it() -> None:
    """Two UUIDs whose last samples are within the presence window of each other (one board
    relabelled, or a successor that never outlived it) do not replace one another."""
    results = _results([])
    results["last_seen"] = [
        _sample("GPU-old", "5", AT - 2 * HOUR - 60),
        _sample("GPU-new", "5", AT - 2 * HOUR),
        _sample("GPU-other", "3", AT - 2 * HOUR),
    ]
    states = classify("ours", results, AT)
    assert states["GPU-old"].state == "absent" and states["GPU-new"].state == "absent"
