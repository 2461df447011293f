"""How one board's signals become failures (:func:`gpu_health.scorer.ledger.merge`).

The scan's own tests (``test_labels.py``) run these cases through real Prometheus; here each
rule of the merge is checked alone, on signals written by hand, including one the
hand-written histories cannot hold: an XID read after the board's temperature stopped.
"""

from __future__ import annotations

from gpu_health.scorer.ledger import Signal, merge

HOUR = 3600.0


def _signal(start: float, kind: str, end: float | None = None, *, final: bool = False) -> Signal:
    conf = {"fell_off_bus": 0.9, "nvlink": 0.6, "lost": 0.8}.get(kind, 0.7)
    return Signal("GPU-A", "n1", "0", start, start if end is None else end, kind, conf, kind, final)


def _rows(*signals: Signal) -> list[tuple[float, str]]:
    return [(e.time, e.kind) for e in merge(signals)]


def test_a_board_pulled_days_after_its_failure_is_one_failure() -> None:
    xid = _signal(0.0, "fell_off_bus")
    gone = _signal(3 * 24 * HOUR, "disappeared", 3 * 24 * HOUR + 6 * HOUR, final=True)
    replaced = _signal(3 * 24 * HOUR, "replaced", final=True)
    assert _rows(xid, gone, replaced) == [(0.0, "fell_off_bus")]


def test_a_board_pulled_after_the_removal_window_is_another_row() -> None:
    xid = _signal(0.0, "fell_off_bus")
    gone = _signal(8 * 24 * HOUR, "disappeared", 8 * 24 * HOUR + 6 * HOUR, final=True)
    assert _rows(xid, gone) == [(0.0, "fell_off_bus"), (8 * 24 * HOUR, "disappeared")]


def test_a_disappearance_the_board_came_back_from_is_its_own_failure() -> None:
    xid = _signal(0.0, "fell_off_bus")
    blip = _signal(20 * HOUR, "disappeared", 22 * HOUR)  # back afterwards: not final
    assert _rows(xid, blip) == [(0.0, "fell_off_bus"), (20 * HOUR, "disappeared")]


def test_a_board_seen_after_it_vanished_did_not_leave() -> None:
    """Its temperature stopped (a final disappearance by that series) but an XID 79 was read
    from it later: the disappearance is the fall off the bus, not the earlier error's
    removal."""
    dbe = _signal(0.0, "uncorrectable_memory")
    gone = _signal(46 * HOUR, "disappeared", 47.6 * HOUR, final=True)
    later = _signal(47.8 * HOUR, "fell_off_bus")
    assert _rows(dbe, gone, later) == [(0.0, "uncorrectable_memory"), (46 * HOUR, "fell_off_bus")]


def test_a_board_that_leaves_after_an_xid_that_needs_no_pull_failed_then() -> None:
    """An NVLink or reset-required XID is often the forerunner: the board that vanished for
    good hours later failed when it vanished."""
    for kind in ("nvlink", "gpu_reset_required"):
        xid = _signal(0.0, kind)
        gone = _signal(3.5 * HOUR, "disappeared", 9.5 * HOUR, final=True)
        assert _rows(xid, gone) == [(0.0, kind), (3.5 * HOUR, "disappeared")]


def test_a_board_reset_in_place_and_lost_later_failed_twice() -> None:
    xid = _signal(0.0, "fell_off_bus")
    down = _signal(0.0, "lost", HOUR)  # gpu_up 0 for an hour, then back in service
    gone = _signal(26 * HOUR, "disappeared", 32 * HOUR, final=True)
    assert _rows(xid, down, gone) == [(0.0, "fell_off_bus"), (26 * HOUR, "disappeared")]
