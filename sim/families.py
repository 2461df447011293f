"""Physics families: fleets whose failure physics differ, to test that a scorer transfers.

The main simulator (:mod:`gpu_health.sim.fleet`) is one set of physics. A scorer that is good
only on it has learned its magnitudes. A *family* is a different draw of the things that vary
between real fleets and simulators: the precursor's shape (ramp, bursts, steps, plateau,
drift), its magnitude (spread over two orders between families), the lead-time law, benign
noisy boards that burst corrected errors and never fail, a GPU generation that logs more benign
errors than the other, node-level cooling offsets, resets that zero the volatile counters,
replacements with new UUIDs, driver upgrades that relabel every series, scrape gaps, and the
sampling resolution. Failures recur on a node as in the public
stepfun-ai/InfiniteHBD-Trace (23 % of GPU faults followed by another on the same node within
30 days, median gap 18 days).

The output is dcgm-exporter-schema OpenMetrics (``DCGM_FI_*``, ``UUID``/``Hostname``/
``modelName`` labels, ``DCGM_FI_DRIVER_VERSION`` on every series) plus ``failures.csv`` with
``uuid,time,mode,precursor,precursor_start``: what ``gpu-health-scorer evaluate`` reads.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TextIO

import numpy as np
import numpy.typing as npt

from gpu_health import cli_validate
from gpu_health.cli_support import OneLineArgumentParser
from gpu_health.errors import UserError
from gpu_health.sim.recurrence import (
    NODE_REPEAT_MEDIAN_DAYS,
    NODE_REPEAT_SIGMA,
    follow_probability,
    repeat_stats,
)
from gpu_health.telemetry.xids import XID_CATALOGUE

FloatArray = npt.NDArray[np.float64]
DAY = 86400.0
HOUR = 3600.0

#: Failure modes, their share of failures and their terminal XID.
MODES: dict[str, tuple[float, int]] = {
    "hbm": (0.35, 48),
    "pcie": (0.15, 79),
    "nvlink": (0.15, 74),
    "thermal": (0.1, 43),
    "power": (0.1, 62),
    "other": (0.15, 119),
}
MODELS = (("NVIDIA H100 80GB HBM3", 700.0, 62.0), ("NVIDIA A100-SXM4-80GB", 400.0, 58.0))


@dataclass(frozen=True)
class Family:
    """One draw of fleet physics (see the module docstring)."""

    name: str
    #: precursor shape: ramp | bursts | steps | plateau | drift
    shape: str
    #: median precursor size (errors, replays, °C for drift); draws spread ×/÷ e around it
    magnitude: float
    #: median lead time (days) and lognormal sigma
    lead_days: float = 3.0
    lead_sigma: float = 1.0
    precursor_share: float = 0.3
    failure_share: float = 0.3
    noisy_share: float = 0.05
    node_cooling_share: float = 0.1
    reset_rate_per_day: float = 0.01
    driver_upgrade: bool = True
    gap_share: float = 0.02
    resolution: float = 600.0
    #: Background corrected-ECC and PCIe-replay rates of the second GPU model (A100) over the
    #: first's: an older generation that logs more benign errors than its neighbours.
    older_model_noise: float = 1.0
    #: Days at the start of the history without first failures (every failure then has a week
    #: of telemetry before it; 0: failures from the first day, as in a fleet already running).
    warmup_days: float = 7.0


#: The families shipped for leave-one-family-out evaluation (magnitudes over two orders).
FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family("bursts-small", "bursts", magnitude=30.0, lead_days=4.0),
        Family("ramp-large", "ramp", magnitude=3000.0, lead_days=2.0, lead_sigma=0.7),
        Family("steps", "steps", magnitude=8.0, lead_days=10.0, lead_sigma=0.8),
        Family("plateau", "plateau", magnitude=300.0, lead_days=6.0),
        Family("drift-weeks", "drift", magnitude=12.0, lead_days=14.0, lead_sigma=0.5),
        Family("noisy-hourly", "bursts", magnitude=100.0, noisy_share=0.15, resolution=3600.0),
        Family("generations", "bursts", magnitude=60.0, lead_days=4.0, older_model_noise=20.0),
    )
}


@dataclass
class Board:
    """One GPU board in one slot, from install to failure (or the end)."""

    node: int
    index: int
    uuid: str
    model: int
    start: float
    end: float
    failure_mode: str | None = None
    precursor_start: float | None = None
    magnitude: float = 0.0
    noisy: bool = False


@dataclass(frozen=True)
class Plan:
    boards: list[Board]
    times: FloatArray
    cooling: dict[int, float]
    upgrade_at: dict[int, float]
    family: Family


def repeat_probability(failure_share: float, days: float) -> float:
    """Probability that a failure schedules a follow-up on its node, so that, together with the
    node's background failures (7 peers at the fleet's rate), 23 % of faults are followed by
    another within 30 days. A fleet whose background alone exceeds that gets no extra repeats.
    """
    return follow_probability(failure_share / max(days, 1.0))


def _uuid(rng: np.random.Generator) -> str:
    h = "".join(f"{v:02x}" for v in rng.integers(0, 256, 16))
    return f"GPU-{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def _mode(rng: np.random.Generator) -> str:
    names = list(MODES)
    p = np.array([MODES[m][0] for m in names])
    return names[int(rng.choice(len(names), p=p / p.sum()))]


def plan(family: Family, gpus: int, days: float, seed: int, start: float) -> Plan:
    """Draw the fleet: boards, failures (with node recurrence), replacements, node effects."""
    rng = np.random.default_rng(seed)
    end = start + days * DAY
    times = np.arange(start, end, family.resolution)
    nodes = max(1, gpus // 8)
    slots = [(n, i) for n in range(nodes) for i in range(8)][:gpus]
    models = {n: int(rng.integers(0, len(MODELS))) for n in range(nodes)}
    # First failures, then node repeats (a repeat can itself be followed: 23 % of *all* faults).
    warm = family.warmup_days * DAY
    follow = repeat_probability(family.failure_share, days)
    rate = family.failure_share * (1 - follow)
    queue = [(float(rng.uniform(start + warm, end)), n, i) for n, i in slots if rng.random() < rate]
    events: list[tuple[float, int, int]] = []
    while queue:
        t, n, i = queue.pop()
        events.append((t, n, i))
        if rng.random() < follow:
            gap = NODE_REPEAT_MEDIAN_DAYS * DAY * math.exp(rng.normal(0, NODE_REPEAT_SIGMA))
            peer = int(rng.integers(0, 8))
            if t + gap < end and (n, peer) in slots:
                queue.append((t + gap, n, peer))
    by_slot: dict[tuple[int, int], list[float]] = {}
    for t, n, i in sorted(events):
        by_slot.setdefault((n, i), []).append(t)
    boards: list[Board] = []
    for n, i in slots:
        begin = start
        for t in by_slot.get((n, i), []):
            if t <= begin + DAY:
                continue
            b = Board(n, i, _uuid(rng), models[n], begin, t, _mode(rng))
            if rng.random() < family.precursor_share:
                lead = family.lead_days * DAY * math.exp(rng.normal(0, family.lead_sigma))
                b.precursor_start = max(begin, t - min(lead, 30 * DAY))
                b.magnitude = family.magnitude * math.exp(rng.normal(0, 1.0))
            boards.append(b)
            begin = t + float(rng.uniform(6, 48)) * HOUR  # repair, then a new board (new UUID)
        if begin < end:
            b = Board(n, i, _uuid(rng), models[n], begin, end + family.resolution)
            b.noisy = rng.random() < family.noisy_share
            b.magnitude = family.magnitude * math.exp(rng.normal(0, 1.0)) if b.noisy else 0.0
            boards.append(b)
    cooling = {
        n: float(rng.uniform(4, 8))
        for n in range(nodes)
        if rng.random() < family.node_cooling_share
    }
    upgrade = (
        {n: float(rng.uniform(start, end)) for n in range(nodes)} if family.driver_upgrade else {}
    )
    return Plan(boards, times, cooling, upgrade, family)


def _shape(shape: str, u: FloatArray, rng: np.random.Generator) -> FloatArray:
    """Cumulative precursor in [0, 1] over progress ``u`` in [0, 1] (0 before onset)."""
    u = np.clip(u, 0.0, 1.0)
    if shape == "ramp":
        return u**2
    if shape == "plateau":
        return u
    if shape == "steps":
        cuts = np.sort(rng.uniform(0, 1, int(rng.integers(2, 6))))
        return np.searchsorted(cuts, u, side="right") / len(cuts)
    if shape == "drift":
        return u
    # bursts: a few clusters at random progress points
    cuts = np.sort(rng.uniform(0, 1, int(rng.integers(1, 4))))
    weights = rng.dirichlet(np.ones(len(cuts)))
    out = np.zeros_like(u)
    for c, w in zip(cuts, weights, strict=True):
        out += w * (u >= c)
    return out


def _board_series(b: Board, plan_: Plan, rng: np.random.Generator) -> dict[str, FloatArray]:
    """Every dcgm field of one board at its sample times (NaN = not reported)."""
    f = plan_.family
    t = plan_.times
    alive = (t >= b.start) & (t < b.end)
    t = t[alive]
    n = len(t)
    power_tdp, base_temp = MODELS[b.model][1], MODELS[b.model][2]
    util = np.clip(rng.normal(0.8, 0.1) + rng.normal(0, 0.05, n), 0, 1)
    temp = base_temp + 15 * util + plan_.cooling.get(b.node, 0.0) + rng.normal(0, 1.0, n)
    power = power_tdp * (0.3 + 0.65 * util) + rng.normal(0, 10, n)
    noise = f.older_model_noise if b.model == 1 else 1.0
    sbe = np.cumsum(rng.poisson(0.002 * noise, n)).astype(float)
    dbe = np.zeros(n)
    replay = np.cumsum(rng.poisson(0.01 * noise, n)).astype(float)
    nvlink = np.zeros(n)
    remap_c = np.zeros(n)
    remap_u = np.zeros(n)
    power_vio = np.cumsum(rng.poisson(0.001, n) * 2e6).astype(float)  # µs of power capping
    thermal_vio = np.zeros(n)
    xid = np.zeros(n)
    mode = b.failure_mode
    if b.noisy:  # benign: bursts of corrected errors that never lead to a failure
        u = (t - b.start) / max(1.0, b.end - b.start)
        sbe += np.round(b.magnitude * _shape("bursts", u, rng))
    if mode is not None and b.precursor_start is not None:
        u = (t - b.precursor_start) / max(HOUR, b.end - b.precursor_start)
        s = np.where(u >= 0, _shape(f.shape, u, rng), 0.0)
        m = b.magnitude
        if mode == "hbm":
            sbe += np.round(m * s)
            remap_c += np.round(min(8.0, 1 + m / 100) * (s > 0.5))
        elif mode == "pcie":
            replay += np.round(m * s)
        elif mode == "nvlink":
            nvlink += np.round(m * s)
        elif mode == "thermal":
            temp += min(25.0, m) * s
            thermal_vio += 3e8 * np.cumsum(s > 0.7)
        elif mode == "power":
            power_vio += 6e8 * np.cumsum(s * (rng.random(n) < 0.5))
            power -= 100 * (s > 0) * (rng.random(n) < 0.3)
        else:
            xid[(s > 0) & (rng.random(n) < 0.05)] = 13
    if mode is not None and n:
        xid[-1] = MODES[mode][1]
        if mode == "hbm":
            dbe[-1] += 1
            remap_u[-1] += 1
    # benign resets (driver reload) zero the volatile counters
    vol_sbe, vol_dbe = sbe.copy(), dbe.copy()
    resets = np.nonzero(rng.random(n) < f.reset_rate_per_day * f.resolution / DAY)[0]
    for r in resets:
        vol_sbe[r:] -= vol_sbe[r]
        vol_dbe[r:] -= vol_dbe[r]
    xid_gauge = np.maximum.accumulate(np.where(xid > 0, np.arange(n), -1))
    last_xid = np.where(xid_gauge >= 0, xid[np.maximum(xid_gauge, 0)], 0.0)
    fields = {
        "DCGM_FI_DEV_GPU_TEMP": np.round(temp),
        "DCGM_FI_DEV_MEMORY_TEMP": np.round(temp - 3),
        "DCGM_FI_DEV_POWER_USAGE": np.round(power, 1),
        "DCGM_FI_DEV_GPU_UTIL": np.round(util * 100),
        "DCGM_FI_DEV_ECC_SBE_VOL_TOTAL": vol_sbe,
        "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL": vol_dbe,
        "DCGM_FI_DEV_ECC_SBE_AGG_TOTAL": sbe,
        "DCGM_FI_DEV_ECC_DBE_AGG_TOTAL": dbe,
        "DCGM_FI_DEV_PCIE_REPLAY_COUNTER": replay,
        "DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL": nvlink,
        "DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS": remap_c,
        "DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS": remap_u,
        "DCGM_FI_DEV_POWER_VIOLATION": power_vio,
        "DCGM_FI_DEV_THERMAL_VIOLATION": thermal_vio,
        "DCGM_FI_DEV_XID_ERRORS": last_xid,
    }
    # scrape gaps: a few hours missing here and there
    keep = np.ones(n, dtype=bool)
    for g in np.nonzero(rng.random(n) < f.gap_share * f.resolution / (6 * HOUR))[0]:
        keep[g : g + int(rng.integers(1, max(2, int(6 * HOUR / f.resolution))))] = False
    if n:
        keep[-1] = True  # the failure sample itself is seen (a board may have no sample at all)
    out = {k: np.where(keep, v, np.nan) for k, v in fields.items()}
    out["_time"] = t
    return out


#: How dcgm-exporter writes its series: ``legacy`` as releases before 3.3.6-3.4.2 (May 2024) did,
#: the node as ``Hostname`` and the XID gauge one series whose value is the last code; ``current``
#: as releases since NVIDIA/dcgm-exporter#655 (May 2026) do, the node as ``hostname`` and the XID
#: gauge's code also a label (``err_code``, ``err_msg``), so each code is a series of its own.
DCGM_SHAPES = ("legacy", "current")


def _xid_labels(code: float) -> str:
    """The code labels dcgm-exporter's ``current`` shape adds to its XID gauge."""
    text = "No Error" if code == 0 else XID_CATALOGUE.get(int(code), ("Unknown Error", ""))[0]
    return f',err_code="{code:.0f}",err_msg="{text}"'


def _lines(
    b: Board, plan_: Plan, series: dict[str, FloatArray], shape: str = "legacy"
) -> Iterator[tuple[str, str]]:
    t = series["_time"]
    upgrade = plan_.upgrade_at.get(b.node)
    node = "hostname" if shape == "current" else "Hostname"
    base = (
        f'{node}="node-{b.node:03d}",UUID="{b.uuid}",gpu="{b.index}",device="nvidia{b.index}",'
        f'modelName="{MODELS[b.model][0]}"'
    )
    for name, values in series.items():
        if name == "_time":
            continue
        coded = shape == "current" and name == "DCGM_FI_DEV_XID_ERRORS"
        for k in np.nonzero(~np.isnan(values))[0]:
            driver = "550.54.15" if upgrade is not None and t[k] >= upgrade else "535.129.03"
            extra = _xid_labels(values[k]) if coded else ""
            yield (
                name,
                (
                    f'{name}{{{base},DCGM_FI_DRIVER_VERSION="{driver}"{extra}}} '
                    f"{values[k]:g} {t[k]:.0f}"
                ),
            )


def write(
    family: Family,
    gpus: int,
    days: float,
    seed: int,
    start: float,
    out: Path,
    shape: str = "legacy",
) -> Plan:
    """Write ``out/fleet.om`` (OpenMetrics) and ``out/failures.csv``; return the plan.
    ``shape``: how dcgm-exporter writes the series (:data:`DCGM_SHAPES`); the fleet, its
    physics and its values are the same in every shape."""
    p = plan(family, gpus, days, seed, start)
    rng = np.random.default_rng(seed + 1)
    out.mkdir(parents=True, exist_ok=True)
    # Every board's readings first (the random draws in board order, as always), as numbers:
    # holding them as text lines until the fleet was done took 5.7 GB for 200 GPUs x 45 days.
    readings = [(b, _board_series(b, p, rng)) for b in p.boards]
    with (out / "fleet.om").open("w") as handle:
        _write_families(handle, p, readings, shape)
    with (out / "failures.csv").open("w", newline="") as handle:
        w = csv.writer(handle)
        w.writerow(["uuid", "time", "mode", "precursor", "precursor_start"])
        for b in p.boards:
            if b.failure_mode is not None:
                w.writerow(
                    [
                        b.uuid,
                        f"{b.end:.0f}",
                        b.failure_mode,
                        "true" if b.precursor_start is not None else "false",
                        "" if b.precursor_start is None else f"{b.precursor_start:.0f}",
                    ]
                )
    return p


def _write_families(
    handle: TextIO,
    p: Plan,
    readings: list[tuple[Board, dict[str, FloatArray]]],
    shape: str,
) -> None:
    """OpenMetrics wants each family's samples together: one family at a time, its lines made
    and written board by board (families in the order of their first sample, boards in plan
    order), so no more than one board's lines of one family are held as text."""
    names: dict[str, None] = {}
    for _b, series in readings:
        for name, values in series.items():
            if name != "_time" and not np.isnan(values).all():
                names.setdefault(name)
    for name in names:
        handle.write(f"# TYPE {name} gauge\n")
        for b, series in readings:
            if name in series:
                one = {"_time": series["_time"], name: series[name]}
                handle.writelines(f"{line}\n" for _n, line in _lines(b, p, one, shape))
    handle.write("# EOF\n")


def node_repeats(p: Plan, within_days: float = 30.0) -> tuple[float, float]:
    """(share of failures followed by another on the same node within the window, median gap
    in days), over failures at least ``within_days`` before the end (not censored)."""
    failures = [(b.end, b.node) for b in p.boards if b.failure_mode is not None]
    return repeat_stats(failures, float(p.times[-1]), within_days)


def build(
    family: Family,
    gpus: int,
    days: float,
    seed: int,
    out: Path,
    end: float,
    shape: str = "legacy",
) -> Plan:
    """Write the family's fleet as a Prometheus data dir (``out/prometheus``) + failures.csv."""
    from gpu_health import stack

    start = math.floor((end - days * DAY) / family.resolution) * family.resolution
    p = write(family, gpus, days, seed, start, out, shape)
    om = out / "fleet.om"
    try:
        stack.promtool_backfill(om, out / "prometheus", block_duration=f"{int(days * 24) + 48}h")
    finally:
        om.unlink(missing_ok=True)
    return p


def main(argv: list[str] | None = None) -> int:
    """``python -m gpu_health.sim.families --family NAME --out DIR``: one family's history."""
    import time

    parser = OneLineArgumentParser(
        prog="python -m gpu_health.sim.families",
        description="Write a dcgm-exporter-schema fleet history of one physics family "
        "(Prometheus data dir + failures.csv) for gpu-health-scorer evaluate --data-dir.",
    )
    parser.add_argument("--family", choices=sorted(FAMILIES), required=True)
    parser.add_argument("--out", type=Path, required=True, help="directory to write")
    parser.add_argument("--gpus", type=int, default=200, help="GPUs (default: %(default)s)")
    parser.add_argument("--days", type=float, default=45.0, help="days (default: %(default)s)")
    parser.add_argument(
        "--seed",
        type=cli_validate.integer(0, 2**32 - 1),
        default=1,
        help="random seed, 0 to 4294967295 (default: %(default)s)",
    )
    parser.add_argument(
        "--resolution",
        type=float,
        help="seconds between samples (default: the family's own; 3600 for quick evaluations)",
    )
    parser.add_argument(
        "--warmup-days",
        type=float,
        help="days without first failures at the start (default: the family's own, 7)",
    )
    parser.add_argument(
        "--end",
        type=float,
        help="Unix seconds the history ends at (default: now). Pass the end a report names "
        "to reproduce its numbers: the same draw ending at another time scores slightly "
        "differently",
    )
    parser.add_argument(
        "--dcgm-shape",
        choices=DCGM_SHAPES,
        default="legacy",
        help="how dcgm-exporter writes the series: legacy (before 3.3.6, the node as Hostname, "
        "the XID gauge one series) or current (the node as hostname, each XID code a series "
        "labelled err_code); the same fleet either way (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    now = time.time()
    if args.end is not None and not args.days * DAY <= args.end <= now:
        parser.error("--end must be Unix seconds, at least --days after 1970, not in the future")
    if args.warmup_days is not None and not 0 <= args.warmup_days < args.days:
        parser.error("--warmup-days must be 0 or more and below --days")
    if not 8 <= args.gpus <= 5000 or not 8 <= args.days <= 400:
        parser.error("--gpus must be 8..5000 and --days 8..400")
    if args.resolution is not None and not 15 <= args.resolution <= 3600:
        parser.error("--resolution must be 15..3600 seconds")
    try:  # before the fleet is drawn: /proc or a file in the way is one line, not a traceback
        cli_validate.output_path(args.out, "--out", directory=True)
    except UserError as exc:
        parser.error(str(exc))
    family = FAMILIES[args.family]
    if args.resolution is not None:
        family = replace(family, resolution=args.resolution)
    if args.warmup_days is not None:
        family = replace(family, warmup_days=args.warmup_days)
    end = now if args.end is None else args.end
    p = build(family, args.gpus, args.days, args.seed, args.out, end, args.dcgm_shape)
    failed = [b for b in p.boards if b.failure_mode is not None]
    with_precursor = sum(1 for b in failed if b.precursor_start is not None)
    print(
        f"{args.family}: {len(p.boards)} boards, {len(failed)} failures "
        f"({with_precursor} with a precursor) -> {args.out}"
    )
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
