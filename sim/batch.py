"""The batch driver: every GPU of a fleet over a time grid, vectorised with numpy.

:func:`window` evaluates one stretch of time for all slots at once (the healthy signal model as
(GPUs x steps) arrays, then each board's counters and episodes row by row); the OpenMetrics writer
and :func:`simulate_fleet` both consume it. numpy is required here (it ships with the ``scorer``
extra); the live driver does not need it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from gpu_health.errors import UserError
from gpu_health.sim import signals
from gpu_health.sim.fleet import Board, Failure, Fleet, Slot, build_fleet
from gpu_health.sim.model import fields


def _numpy() -> Any:
    try:
        import numpy
    except ModuleNotFoundError:
        raise UserError(
            "the batch simulator needs numpy: pip install 'gpu-health-monitor[scorer]' "
            "(or pip install numpy)"
        ) from None
    return numpy


@dataclass
class Row:
    """One board's readings over a window; arrays are NaN where the board is absent or down."""

    slot: Slot
    board: Board
    present: Any  # bool array: the board is installed
    up: Any  # bool array: installed and readable
    values: dict[str, Any]
    #: The XID counts (``xid_counts``, ``last_xid_timestamp``) wherever the board is installed,
    #: down included: our exporter keeps sending a lost GPU's XID counters beside its
    #: ``gpu_up 0`` (the live driver's lost sample), so the XID 79 that came with a fall off
    #: the bus stays counted. ``values`` keeps them NaN while down, as dcgm-exporter, which
    #: reads nothing from a GPU it lost, and the training arrays have them.
    events: dict[str, Any] = field(default_factory=dict)


#: The fields our exporter still sends for a GPU it lost (:attr:`Row.events`).
LOST_EVENT_FIELDS = frozenset({"xid_counts", "last_xid_timestamp"})


class Windows:
    """Evaluates windows of a fleet; caches the per-slot parameter arrays."""

    def __init__(self, fleet: Fleet) -> None:
        np = _numpy()
        from gpu_health.sim.ops import numpy_ops

        self.np = np
        self.xp = numpy_ops()
        self.fleet = fleet
        per_slot = [signals.params_of(s) for s in fleet.slots]
        cols: dict[str, Any] = {}
        for name in signals.Params.__dataclass_fields__:
            raw = [getattr(p, name) for p in per_slot]
            dtype = np.uint64 if name.endswith("_key") else np.float64
            cols[name] = np.array(raw, dtype=dtype).reshape(-1, 1)
        self.params = signals.Params(**cols)

    def window(self, ts: Any) -> Iterator[Row]:
        np = self.np
        base = signals.base_signals(self.xp, ts[None, :], self.params)
        lo, hi = float(ts[0]), float(ts[-1]) + 1
        shape = ts.shape
        for g, slot in enumerate(self.fleet.slots):
            row_base = {k: (v[g] if np.ndim(v) == 2 else v) for k, v in base.items()}
            for board in slot.boards:
                if board.start >= hi or board.end <= lo:
                    continue
                present = (ts >= board.start) & (ts < board.end)
                up = present.copy()
                for a, b in board.down:
                    if a < hi and b > lo:
                        up &= ~((ts >= a) & (ts < b))
                values = fields(self.xp, ts, slot, board, row_base)
                out: dict[str, Any] = {}
                events: dict[str, Any] = {}
                for name, value in values.items():
                    if value is None:
                        continue
                    for mask, into in ((up, out), (present, events)):
                        if into is events and name not in LOST_EVENT_FIELDS:
                            continue
                        if isinstance(value, dict):
                            into[name] = {
                                k: np.where(mask, np.broadcast_to(v, shape), np.nan)
                                for k, v in value.items()
                            }
                        else:
                            into[name] = np.where(mask, np.broadcast_to(value, shape), np.nan)
                yield Row(slot, board, present, up, out, events)


@dataclass
class FleetData:
    """What :func:`simulate_fleet` returns: arrays for training and evaluation, plus ground truth.

    ``series[field]`` is a (boards x steps) float array named after :class:`GpuSample` fields
    (base units; NaN where the board was absent or down); ``up`` is 1/0/NaN; ``xids[code]`` the
    XID counts since the last driver load; ``boards`` one dict per row (uuid, node, gpu, model,
    installed, removed, lemon, sbe_active); ``failures`` the ground truth inside the window.
    """

    timestamps: Any
    boards: list[dict[str, Any]]
    series: dict[str, Any]
    up: Any
    xids: dict[int, Any]
    nvlink_errors: dict[str, Any]
    failures: list[Failure]
    all_failures: list[Failure] = field(default_factory=list)


def simulate_fleet(
    gpus: int,
    days: float,
    seed: int = 0,
    resolution: float = 300.0,
    end_time: float | None = None,
    hazard_scale: float = 1.0,
    fields_wanted: tuple[str, ...] | None = None,
) -> FleetData:
    """Simulate ``gpus`` GPUs for ``days`` at ``resolution`` seconds, ending at ``end_time``.

    The same seed gives the same fleet as the backfill and the live driver. ``hazard_scale``
    multiplies every failure rate (the reference rates give ~0.13 failures per GPU-year, so a
    model needs many GPU-years or a scaled hazard to see enough failures).
    """
    np = _numpy()
    end = _aligned_end(end_time, resolution)
    steps = max(1, int(days * 86400 / resolution))
    ts = end - resolution * np.arange(steps - 1, -1, -1, dtype=np.float64)
    fleet = build_fleet(gpus, seed, hazard_scale)
    rows = list(Windows(fleet).window(ts))
    names = (
        fields_wanted or tuple(k for k, v in rows[0].values.items() if not isinstance(v, dict))
        if rows
        else ()
    )
    series = {n: np.stack([r.values.get(n, np.full(steps, np.nan)) for r in rows]) for n in names}
    if "last_xid_timestamp" in series:
        lx = series["last_xid_timestamp"]
        series["last_xid_timestamp"] = np.where(lx > 0, lx, np.nan)
    codes = sorted({c for r in rows for c in r.values.get("xid_counts", {})})
    xids = {
        c: np.stack([r.values["xid_counts"].get(c, np.full(steps, np.nan)) for r in rows])
        for c in codes
    }
    nvl: dict[str, Any] = {}
    for kind in ("crc_flit", "crc_data", "replay", "recovery"):
        nvl[kind] = np.stack(
            [
                sum(
                    (v for (_, k), v in r.values.get("nvlink_errors", {}).items() if k == kind),
                    np.where(r.up, 0.0, np.nan),
                )
                for r in rows
            ]
        )
    up = np.stack([np.where(r.present, r.up.astype(float), np.nan) for r in rows])
    boards = [board_record(r.slot, r.board, float(ts[-1])) for r in rows]
    return FleetData(
        timestamps=ts,
        boards=boards,
        series=series,
        up=up,
        xids=xids,
        nvlink_errors=nvl,
        failures=fleet.failures(float(ts[0]), float(ts[-1]) + resolution),
        all_failures=fleet.failures(),
    )


def board_record(slot: Slot, board: Board, at: float) -> dict[str, Any]:
    """One gpus.csv row: identity, purchase date, hours in service at ``at``, cohort."""
    import datetime

    removed = board.end if board.end != math.inf else None
    in_service = max(0.0, min(at, board.end) - board.start) / 3600.0
    return {
        "uuid": board.uuid,
        "serial": board.serial,
        "node": slot.node,
        "gpu": slot.gpu,
        "pci_bus_id": slot.pci_bus_id,
        "model": slot.spec.name,
        "purchase_date": datetime.datetime.fromtimestamp(board.start, datetime.UTC).date(),
        "installed": board.start,
        "removed": removed,
        "hours_in_service": round(in_service, 1),
        "lemon": board.lemon,
        "sbe_active": board.sbe_active,
    }


def _aligned_end(end_time: float | None, resolution: float) -> float:
    import time

    end = time.time() if end_time is None else end_time
    return math.floor(end / resolution) * resolution
