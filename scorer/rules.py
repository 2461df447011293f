"""The rule baseline: a transparent evidence score with a constant-hazard survival curve.

This is the floor no trained model may go under (``--model rules``). Every term is a piece of
evidence an SRE would name, read from the serving features and log-scaled (``ln(1 + count)``)
so that a burst of 30 corrected errors already counts and a burst of 3,000 does not drown
everything else: the score must not depend on one simulator's or one fleet's magnitudes.

Each failure class c (memory, bus, NVLink, thermal/power, other) gets evidence ``E_c``, the
sum of its terms (in log-hazard units). The hazard is proportional:

    lambda = sum_c baseline * prior_c * exp(E_c)

so P(fail within t) = 1 - exp(-lambda * t) is monotone in t by construction, adding evidence to
a GPU never lowers its risk, the class probabilities are ``baseline * prior_c * exp(E_c) /
lambda``, and the time to failure is exponential (median ln 2 / lambda, 80 % interval at the
10th and 90th percentiles). The weights are round numbers chosen from what each signal means,
not fitted to any simulator; the prior on the rate is public (see :data:`BASE_ANNUAL_RATE`).

Two things make the rule hold on fleets it has never seen:

* **Evidence is what stands out from the fleet now.** Each count term is taken above the
  median of the same term at the same time among the GPU's same-model peers (when at least
  :data:`MIN_PEERS` of them report it; else the whole fleet's median): a platform where every
  GPU logs a few PCIe replays a day, or every A100 a few corrected errors, gives those GPUs no
  evidence, while a GPU bursting where its peers do not still does. A GPU's own value only
  ever raises its own evidence.
* **The base rate is the fleet's own.** The public rate is a prior worth
  :data:`PRIOR_GPU_YEARS` GPU-years; the GPUs the fleet lost in the last 30 days over the
  GPU-days it reported (``fleet_lost_gpus_30d`` / ``fleet_gpu_days_30d``) update it, so a
  fleet failing twenty times more often than the public rate is told so. Evidence then
  redistributes that rate instead of adding to it: the baseline (the rate of a GPU without
  evidence) is the one at which the fleet's hazards, evidence included, account for the losses
  it had (:func:`baseline_rate`). A fleet where benign evidence is common is not told it will
  lose more GPUs than it does. Node recurrence is an *added* hazard per GPU the node lost
  (:data:`NODE_REPEAT_RATE`), so it matters in a fleet that rarely fails and fades into the
  base rate of one that often does.

A GPU is *flagged* when it stands out from its fleet, not when its probability passes a fixed
number: see :meth:`RuleModel.flags`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from gpu_health.scorer.feature_table import MODEL_KEY

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
DAY = 86400.0
YEAR = 365.0 * DAY

#: GPU-related job interruptions per GPU-year on a large H100 fleet: 268 GPU, HBM3, SRAM, GSP,
#: SDC and thermal interruptions in 54 days on 16,384 GPUs (Llama 3 paper, arXiv:2407.21783,
#: Table 5) = 0.11 per GPU-year.
BASE_ANNUAL_RATE = 0.11

FAILURE_CLASSES: tuple[str, ...] = ("memory", "bus", "nvlink", "thermal_power", "other")
#: Share of each class in the base rate, rounded from the same table (HBM3 72 of 268 -> memory;
#: the rest spread over bus, NVLink, thermal/power and other GPU faults). Only sets the class
#: shown when no evidence points anywhere.
CLASS_PRIOR: dict[str, float] = {
    "memory": 0.3,
    "bus": 0.15,
    "nvlink": 0.1,
    "thermal_power": 0.1,
    "other": 0.35,
}
#: Runbook per class (docs/runbooks/ in this repository).
RUNBOOKS: dict[str, str] = {
    "memory": "docs/runbooks/GPUXidMemoryError.md",
    "bus": "docs/runbooks/GPUFallenOffBus.md",
    "nvlink": "docs/runbooks/GPUNvlinkErrors.md",
    "thermal_power": "docs/runbooks/GPUThermalSlowdown.md",
    "other": "docs/runbooks/GPUFailurePredicted.md",
}
#: Evidence is capped so the hazard stays finite (exp(12) ~ 1.6e5 times the base rate).
MAX_EVIDENCE = 12.0
#: Count evidence is taken above the fleet median only with at least this many GPUs reporting
#: the signal (one node of 8); a smaller fleet has no baseline and uses the raw evidence.
MIN_PEERS = 8
#: Weight of the public base rate against the fleet's own failures, in GPU-years of exposure.
#: Two GPU-years: a 200-GPU fleet's month of history (16 GPU-years) outweighs it eightfold, a
#: single 8-GPU server's month (0.7 GPU-years) does not.
PRIOR_GPU_YEARS = 2.0
#: Added hazard (per GPU-year) for each GPU the node lost in the last 30 days. In the public
#: stepfun-ai/InfiniteHBD-Trace 23 % of GPU faults were followed by another on the same node
#: within 30 days; spread over the node's 8 slots that is 0.23 / 8 per 30 days = 0.35 per
#: GPU-year. A whole node's worth of losses (maintenance, a move) is capped at 8.
NODE_REPEAT_RATE = 0.23 / 8 * 365.0 / 30.0
NODE_LOST = "node_lost_gpus_30d"
FLEET_LOST = "fleet_lost_gpus_30d"
FLEET_GPU_DAYS = "fleet_gpu_days_30d"


@dataclass(frozen=True)
class Term:
    """One piece of evidence: ``weight * transform(feature * scale)`` added to a class."""

    name: str
    failure_class: str
    feature: str
    weight: float
    #: "log": ln(1 + max(0, v)); "spread": how many robust spreads of its peers the value
    #: stands above their median (see :func:`spread_units`); "flag": v > 0
    transform: str = "log"
    scale: float = 1.0
    #: The GPU's own earlier rate of the same signal (``baseline * baseline_scale`` is the
    #: count expected in the term's window): only activity above it is evidence.
    baseline: str | None = None
    baseline_scale: float = 1.0
    #: For an hours-with-activity term: the count term whose share of new (above-baseline)
    #: evidence scales this one, so chronic activity counts as little in hours as in counts.
    novelty_of: str | None = None
    #: For a "spread" term: the feature of the GPU's load in the same comparison (watts above
    #: its node); the part of the value that the fleet's own °C per watt explains is removed
    #: before counting (see :func:`without_load`).
    load: str | None = None


#: The evidence terms. A missing feature (NaN: the schema lacks it) contributes nothing.
TERMS: tuple[Term, ...] = (
    # memory: uncorrectable errors and remap failures are near-certain precursors; corrected
    # errors matter by their presence and spread over hours, not by their count.
    Term("uncorrectable_ecc_7d", "memory", "ecc_uncorrected_7d", 2.0),
    Term(
        "corrected_ecc_7d",
        "memory",
        "ecc_corrected_per_day_7d",
        0.6,
        scale=7.0,
        baseline="ecc_corrected_per_day_prior_23d",
        baseline_scale=7.0,
    ),
    Term(
        "corrected_ecc_hours_7d",
        "memory",
        "ecc_corrected_active_hours_7d",
        0.6,
        novelty_of="corrected_ecc_7d",
    ),
    Term("remapped_rows_correctable_7d", "memory", "remapped_rows_correctable_7d", 1.0),
    Term("remapped_rows_uncorrectable_30d", "memory", "remapped_rows_uncorrectable_30d", 2.0),
    Term("row_remap_failed_30d", "memory", "row_remap_failed_30d", 3.0, "flag"),
    Term("row_remap_pending_7d", "memory", "row_remap_pending_7d", 1.0, "flag"),
    Term("retired_pages_30d", "memory", "retired_pages_30d", 1.0),
    Term("memory_xid_7d", "memory", "xid_memory_events_7d", 2.0),
    # bus / PCIe
    Term(
        "pcie_replays_7d",
        "bus",
        "pcie_replays_per_min_7d",
        0.5,
        scale=7 * 1440.0,
        baseline="pcie_replays_per_min_prior_23d",
        baseline_scale=7 * 1440.0,
    ),
    Term(
        "pcie_replay_hours_7d",
        "bus",
        "pcie_replay_active_hours_7d",
        0.8,
        novelty_of="pcie_replays_7d",
    ),
    Term("bus_xid_7d", "bus", "xid_bus_events_7d", 3.0),
    # NVLink
    Term(
        "nvlink_errors_7d",
        "nvlink",
        "nvlink_errors_per_min_7d",
        0.5,
        scale=7 * 1440.0,
        baseline="nvlink_errors_per_min_prior_23d",
        baseline_scale=7 * 1440.0,
    ),
    Term(
        "nvlink_error_hours_7d",
        "nvlink",
        "nvlink_error_active_hours_7d",
        0.8,
        novelty_of="nvlink_errors_7d",
    ),
    Term("nvlink_xid_7d", "nvlink", "xid_nvlink_events_7d", 3.0),
    # thermal / power: °C above the other GPUs of the same node (they share the air, the
    # aisle and usually the job, so a warm rack or a busy job is no evidence; same-model peers
    # on nodes of fewer than 4 GPUs) and its rise over the week, less what the GPU's own load
    # explains, each counted in robust spreads of the fleet (0.2 per spread: a board 3.5
    # spreads out doubles its class's hazard), and hours of thermal or power clock holds.
    Term(
        "temperature_excess_24h",
        "thermal_power",
        "temp_gpu_node_excess_24h",
        0.2,
        "spread",
        load="power_node_excess_24h",
    ),
    Term(
        "temperature_rise_7d",
        "thermal_power",
        "temp_gpu_node_excess_change_7d",
        0.2,
        "spread",
        load="power_node_excess_change_7d",
    ),
    # A board whose power wanders apart from its node's at each instant (the node's job moves
    # all of its boards together): a regulator losing regulation, an input browning it out.
    Term("power_noise_24h", "thermal_power", "power_noise_node_log_24h", 0.2, "spread"),
    Term("thermal_hold_hours_7d", "thermal_power", "thermal_violation_active_hours_7d", 0.8),
    Term("power_hold_hours_7d", "thermal_power", "power_violation_active_hours_7d", 0.8),
    # The hardware's own brakes (HW thermal slowdown, external power brake): unlike the power
    # cap, which a busy board holds in almost every hour, rare on a healthy one.
    Term("hardware_hold_hours_7d", "thermal_power", "hardware_hold_hours_7d", 0.8),
    # other: any other XID and resets. (A node that recently lost a GPU adds hazard directly:
    # see NODE_REPEAT_RATE.)
    Term("other_xid_7d", "other", "xid_other_events_7d", 1.0),
    Term("resets_30d", "other", "resets_30d", 0.7),
)


def rule_features(terms: Sequence[Term]) -> tuple[str, ...]:
    """The features ``terms`` read, each once: callers build rows by these positions, and two
    terms may read the same feature (two temperature terms taking off the same load)."""
    return tuple(
        dict.fromkeys(
            (
                *(t.feature for t in terms),
                *(t.baseline for t in terms if t.baseline),
                *(t.load for t in terms if t.load),
                NODE_LOST,
                FLEET_LOST,
                FLEET_GPU_DAYS,
                MODEL_KEY,
            )
        )
    )


#: The features the rule reads (for selecting columns of a feature frame).
RULE_FEATURES: tuple[str, ...] = rule_features(TERMS)


def _transform(term: Term, v: FloatArray) -> FloatArray:
    v = np.where(np.isfinite(v), v * term.scale, 0.0)
    if term.transform == "log":
        out: FloatArray = np.log1p(np.maximum(v, 0.0))
    else:  # "flag" ("spread" needs the peers: see term_values)
        out = (v > 0).astype(np.float64)
    return term.weight * out


def _column(features: Sequence[str], x: FloatArray, name: str) -> FloatArray | None:
    index = {n: j for j, n in enumerate(features)}
    j = index.get(name)
    return None if j is None else x[:, j].astype(np.float64)


def term_values(features: Sequence[str], x: FloatArray) -> FloatArray:
    """Per row, each term's evidence (columns in :data:`TERMS` order).

    ``x`` is one snapshot of the fleet (every GPU at one time): count terms are taken above
    the median of the same term among the GPU's same-model peers (see :func:`peer_medians`).
    """
    out = np.zeros((x.shape[0], len(TERMS)))
    novelty: dict[str, FloatArray] = {}
    key = _column(features, x, MODEL_KEY)
    groups = np.full(x.shape[0], np.nan) if key is None else key
    for k, term in enumerate(TERMS):
        raw = _column(features, x, term.feature)
        if raw is None:
            continue
        if term.transform == "spread":
            value = raw * term.scale
            watts = None if term.load is None else _column(features, x, term.load)
            if watts is not None:
                value = without_load(value, watts, groups)
            units = spread_units(value, np.isfinite(raw), groups)
            v = term.weight * np.maximum(units, 0.0)
        else:
            v = _transform(term, raw)
        if term.baseline is not None:
            # Above the GPU's own earlier rate: chronic activity that never failed it is not
            # a new precursor. The share of the evidence that is new scales the hours term.
            before = _column(features, x, term.baseline)
            if before is not None:
                rescaled = Term(term.name, term.failure_class, "", term.weight, "log")
                old = _transform(rescaled, before * term.baseline_scale)
                new = np.maximum(v - old, 0.0)
                novelty[term.name] = np.divide(new, v, out=np.zeros_like(v), where=v > 0)
                v = new
        if term.novelty_of is not None and term.novelty_of in novelty:
            v = v * novelty[term.novelty_of]
        if term.transform == "log":
            v = np.maximum(v - peer_medians(v, np.isfinite(raw), groups), 0.0)
        out[:, k] = v
    return out


#: The smallest spread a "spread" term divides by, in the feature's unit (°C for temperature):
#: a fleet whose GPUs agree more closely than half a degree (a quiet week, liquid cooling) is
#: not allowed to turn a one-degree wobble into evidence, and a snapshot of fewer than
#: :data:`MIN_PEERS` GPUs, which has no spread of its own, uses this one.
MIN_SPREAD = 0.5


def spread_units(v: FloatArray, reporting: BoolArray, groups: FloatArray) -> FloatArray:
    """How far each value stands above its peers' median, in their robust spread: 1.4826 ×
    the median distance below the median of the peers under it (the standard deviation of a
    normal fleet), at least :data:`MIN_SPREAD`. Peers as in :func:`peer_medians` (both
    medians the lower middle value); rows that do not report get 0.

    Why spreads and not degrees: how much one GPU's temperature wanders against its node
    differs between fleets (air or liquid cooling, steady training or jobs holding part of a
    node). Three degrees above its node stands out in a fleet whose boards agree within one,
    and is ordinary where jobs share nodes and boards differ by five.

    Why only the peers below the median: the boards that stand out above it are what is being
    looked for, so they must not widen the yardstick. A board above the median then moves
    neither the median nor the spread, so raising its own value only ever raises its own
    evidence and leaves every other board's as it was (for the values passed in: with the load
    taken off first, a board's temperature also enters its peers' fitted °C per watt, see
    :func:`without_load`).
    """
    v = np.where(reporting, v, 0.0)
    median = peer_medians(v, reporting, groups, lower=True)
    below = reporting & (v < median)
    spread = peer_medians(median - v, below, groups, lower=True)
    out: FloatArray = (v - median) / np.maximum(1.4826 * spread, MIN_SPREAD)
    return np.where(reporting, out, 0.0)


#: The largest °C per watt :func:`without_load` may remove: a board's thermal resistance is
#: positive and small. An H100 SXM warms by about 0.05 °C per watt (37 °C idle at 72 W, 71 °C
#: at its 700 W cap: the H100 fixture); four times that bounds what a noisy fit may take away.
MAX_DEGREES_PER_WATT = 0.2


def without_load(v: FloatArray, watts: FloatArray, groups: FloatArray) -> FloatArray:
    """``v`` (°C above the GPU's node) less what its own load (W above its node) explains:
    ``v - k * watts``, with ``k`` the least-squares slope of ``v`` on ``watts`` over the GPU's
    peers, leaving the GPU itself out, bounded to 0..:data:`MAX_DEGREES_PER_WATT`.

    Where jobs hold part of a node, an idle GPU beside busy ones reads cold and a busy one hot;
    what a failing fan or dried thermal paste adds is the part its load does not explain. The
    slope is the fleet's own (air or liquid cooling, each model apart), fitted on differences
    within nodes, so a hot aisle or a busy node does not tilt it. Leaving the GPU out of its
    own fit keeps its evidence rising with its own temperature whatever its power.

    Peers as in :func:`peer_medians` (rows where both values are known); a GPU without a
    power reading, or without enough peers, keeps ``v``.
    """
    both = np.isfinite(v) & np.isfinite(watts)
    slope = np.full(v.shape, np.nan)

    def fit(peers: BoolArray, members: BoolArray) -> None:
        x, y = watts[peers], v[peers]
        n, sx, sy = float(peers.sum()), x.sum(), y.sum()
        sxx, sxy = (x * x).sum(), (x * y).sum()
        own = members & peers  # a GPU leaves itself out of its own fit
        xi, yi = np.where(own, watts, 0.0), np.where(own, v, 0.0)
        m = n - own
        mx, my = sx - xi, sy - yi
        var = (sxx - xi * xi) - mx * mx / m
        cov = (sxy - xi * yi) - mx * my / m
        ok = members & (var > 1e-9 * np.maximum(sxx, 1.0))
        slope[ok] = np.divide(cov, var, out=np.zeros_like(cov), where=ok)[ok]
        slope[members & ~ok] = 0.0

    # At least MIN_PEERS left once a GPU leaves itself out.
    for peers, members in _peer_groups(both, groups, MIN_PEERS + 1):
        fit(peers, members)
    k = np.clip(slope, 0.0, MAX_DEGREES_PER_WATT)
    out: FloatArray = np.where(both & np.isfinite(k), v - k * watts, v)
    return out


def peer_medians(
    v: FloatArray, reporting: npt.NDArray[np.bool_], groups: FloatArray, lower: bool = False
) -> FloatArray:
    """Each row's baseline: the median of ``v`` over the reporting GPUs of its model, when at
    least :data:`MIN_PEERS` of them report; else over every reporting GPU of the snapshot
    (same floor); else 0 (no baseline). A model whose every board logs a few corrected errors
    gives its own boards no evidence, and a GPU model of 3 boards is not compared with itself.

    ``lower``: of an even count's two middle values the lower one, a median that no value
    above it can move (see :func:`spread_units`).
    """

    def median(a: FloatArray) -> float:
        return float(np.quantile(a, 0.5, method="lower") if lower else np.median(a))

    out = np.zeros_like(v)
    for peers, members in _peer_groups(reporting, groups, MIN_PEERS):
        out[members] = median(v[peers])
    return out


def _peer_groups(
    reporting: BoolArray, groups: FloatArray, fewest: int
) -> Iterator[tuple[BoolArray, BoolArray]]:
    """Who each GPU's peers are, as ``(peers, members)`` pairs, later pairs overriding earlier
    ones for their members: the whole snapshot's reporting GPUs for every row, then each
    model's reporting GPUs for that model's rows, each only with at least ``fewest`` peers.
    One definition for the peer medians, the spreads and the load fit."""
    if reporting.sum() >= fewest:
        yield reporting, np.ones(reporting.shape, dtype=bool)
    known = np.isfinite(groups)
    for key in np.unique(groups[known]):
        members = groups == key
        peers = members & reporting
        if peers.sum() >= fewest:
            yield peers, members


def class_evidence(features: Sequence[str], x: FloatArray) -> FloatArray:
    """Evidence per failure class (columns in :data:`FAILURE_CLASSES` order), capped."""
    terms = term_values(features, x)
    out = np.zeros((x.shape[0], len(FAILURE_CLASSES)))
    for k, term in enumerate(TERMS):
        out[:, FAILURE_CLASSES.index(term.failure_class)] += terms[:, k]
    return np.minimum(out, MAX_EVIDENCE)


def fleet_losses(features: Sequence[str], x: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Per row, the GPUs the fleet lost in the last 30 days and the GPU-years it reported in
    them (0 where the schema or the history has none)."""
    n = x.shape[0]
    lost = _column(features, x, FLEET_LOST)
    days = _column(features, x, FLEET_GPU_DAYS)
    lost = np.zeros(n) if lost is None else np.where(np.isfinite(lost), np.maximum(lost, 0), 0)
    years = np.zeros(n) if days is None else np.where(np.isfinite(days), days, 0) / 365.0
    return lost, np.maximum(years, 0.0)


def _posterior_rate(
    prior_rate: float, lost: Any, years: Any, prior_years: float = PRIOR_GPU_YEARS
) -> Any:
    """Failures per GPU-year: the prior (worth ``prior_years``, by default
    :data:`PRIOR_GPU_YEARS`) updated by ``lost`` failures over ``years`` of exposure (floats
    or arrays alike)."""
    return (prior_rate * prior_years + lost) / (prior_years + years)


def fleet_rate(features: Sequence[str], x: FloatArray, prior_rate: float) -> FloatArray:
    """Failures per GPU-year for each row: the public prior updated by the fleet's own losses
    in the last 30 days (NaN fleet features: the prior alone)."""
    lost, years = fleet_losses(features, x)
    result: FloatArray = _posterior_rate(prior_rate, lost, years)
    return result


def node_repeat_rate(features: Sequence[str], x: FloatArray) -> FloatArray:
    """Added failures per GPU-year from GPUs the node lost in the last 30 days."""
    lost = _column(features, x, NODE_LOST)
    if lost is None:
        return np.zeros(x.shape[0])
    result: FloatArray = NODE_REPEAT_RATE * np.clip(np.nan_to_num(lost), 0.0, 8.0)
    return result


def baseline_rate(
    features: Sequence[str],
    x: FloatArray,
    prior_rate: float,
    relative: FloatArray,
    added: FloatArray,
) -> FloatArray:
    """Failures per GPU-year of a GPU without evidence, for each row: the rate at which the
    fleet's hazards, multiplied by their evidence, account for the GPUs it lost in the last 30
    days (with the public prior worth :data:`PRIOR_GPU_YEARS`, as in :func:`fleet_rate`).

    Why not the fleet's rate itself: that rate already counts every failure, those the
    evidence foretold included, and multiplying it by the evidence again counts them twice.
    In a fleet where benign evidence is common (chronic corrected errors, a PCIe replay
    trickle on a whole platform) the expected failures then run far above the losses the
    fleet actually has. Solving for the baseline instead makes the fleet's expected losses
    over the window equal its observed ones: the intercept of a Poisson regression with the
    evidence as a fixed offset. Each GPU explains at most one loss (``1 - exp(-hazard *
    exposure)``), so one dead board at the evidence cap does not lower every other GPU's risk.
    With no exposure on record, or a snapshot too small to stand for its fleet, the result is
    :func:`fleet_rate`'s.

    ``relative``: each row's hazard multiplier (``sum_c prior_c * exp(E_c)``); ``added``: its
    node-recurrence hazard per GPU-year. Rows are grouped by their fleet features, so every
    row of one snapshot has the same baseline; callers pass one snapshot at a time (rows of two
    snapshots with equal fleet features would be solved together, on their mean evidence).
    """
    lost, years = fleet_losses(features, x)
    out = np.empty(x.shape[0])
    pairs = np.column_stack([lost, years])
    for pair in np.unique(pairs, axis=0):
        rows = np.all(pairs == pair, axis=1)
        out[rows] = _solve_baseline(
            prior_rate, float(pair[0]), float(pair[1]), relative[rows], added[rows]
        )
    return out


def _solve_baseline(
    prior_rate: float,
    lost: float,
    years: float,
    relative: FloatArray,
    added: FloatArray,
    prior_years: float = PRIOR_GPU_YEARS,
) -> float:
    """The baseline ``r`` of one snapshot: ``r * B + (N / n) * sum_i (1 - exp(-(r * m_i + a_i)
    * y)) = A + lost``, where ``A / B`` is the prior (``B``: ``prior_years``), ``n`` the
    snapshot's GPUs, ``N`` the fleet's (``years`` over 30 days, at least ``n``: a scorer shard
    sees a sample of the fleet) and ``y = years / N`` each GPU's exposure. Solved by bisection
    in log space: the left side grows with ``r``, and at ``r = (A + lost) / B`` it is already
    too large.

    A snapshot of fewer than :data:`MIN_PEERS` GPUs says too little about the fleet's mix of
    evidence: it gets :func:`fleet_rate`'s answer, the same equation with every ``m_i = 1``."""
    pseudo = prior_rate * prior_years + lost
    n = relative.size
    if years <= 0.0 or n < MIN_PEERS:
        return float(_posterior_rate(prior_rate, lost, years, prior_years))
    gpus = max(float(n), years * 365.0 / 30.0)
    share = years / gpus

    def excess(r: float) -> float:
        expected = -np.expm1(-(r * relative + added) * share).sum() * gpus / n
        return float(r * prior_years + expected - pseudo)

    high = pseudo / prior_years
    low = high * 1e-9
    if excess(low) >= 0.0:
        return low
    for _ in range(60):
        mid = math.sqrt(low * high)
        if excess(mid) < 0.0:
            low = mid
        else:
            high = mid
    return math.sqrt(low * high)


def _rates(
    features: Sequence[str], x: FloatArray, prior_rate: float
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Per row: the baseline rate, the per-class multipliers ``prior_c * exp(E_c)`` and the
    node-recurrence rate (all per GPU-year)."""
    prior = np.array([CLASS_PRIOR[c] for c in FAILURE_CLASSES])
    relative = prior[np.newaxis, :] * np.exp(class_evidence(features, x))
    node = node_repeat_rate(features, x)
    base = baseline_rate(features, x, prior_rate, relative.sum(axis=1), node)
    return base, relative, node


def class_hazards(features: Sequence[str], x: FloatArray, prior_rate: float) -> FloatArray:
    """Hazard per second of each class: baseline * prior * exp(evidence), plus the node's
    recurrence hazard in "other"."""
    base, relative, node = _rates(features, x, prior_rate)
    per_year = base[:, np.newaxis] * relative
    per_year[:, FAILURE_CLASSES.index("other")] += node
    result: FloatArray = per_year / YEAR
    return result


def horizon_seconds(horizon: str) -> float:
    """``7d`` -> seconds."""
    return float(horizon.rstrip("d")) * DAY


def probability_within(hazard: FloatArray, seconds: float) -> FloatArray:
    """P(fail within ``seconds``) under a constant hazard: monotone in time."""
    result: FloatArray = -np.expm1(-hazard * seconds)
    return result


def time_to_failure_quantile(hazard: FloatArray, q: float) -> FloatArray:
    """The q-quantile of the exponential time to failure (seconds)."""
    result: FloatArray = -math.log1p(-q) / np.maximum(hazard, 1e-300)
    return result


@dataclass
class RuleModel:
    """The rule as a model: same interface as :class:`~gpu_health.scorer.model.FailureModel`."""

    base_rate: float = BASE_ANNUAL_RATE
    #: Flag a GPU when its hazard reaches this multiple of the hazard of a GPU without
    #: evidence in the same fleet (see :meth:`reference_hazard`).
    flag_multiplier: float = 8.0
    kind: str = "rules"
    #: An anomaly detector (the shipped isolation forest) and the features it reads; the rule
    #: itself has none, and without one the anomaly score is NaN (not published).
    anomaly_model: Any = None

    @property
    def features(self) -> tuple[str, ...]:
        extra = tuple(self.anomaly_model.features) if self.anomaly_model is not None else ()
        return tuple(dict.fromkeys((*RULE_FEATURES, *extra)))

    @property
    def metadata(self) -> dict[str, Any]:
        return {"kind": "rules", "base_annual_rate": self.base_rate}

    def hazard(self, x: FloatArray) -> FloatArray:
        """Total hazard per second for each row of ``x`` (columns: :attr:`features`)."""
        result: FloatArray = class_hazards(self.features, x, self.base_rate).sum(axis=1)
        return result

    def predict(self, horizon: str, x: FloatArray) -> FloatArray:
        return probability_within(self.hazard(x), horizon_seconds(horizon))

    def threshold(self, horizon: str) -> float:
        """The probability at ``flag_multiplier`` times the *public* base hazard: the floor of
        every row's flag threshold (:meth:`flags`), and the whole threshold where the fleet
        fails no more often than the public rate. For callers that only have published
        probabilities and cannot know the fleet's rate (``outcomes``)."""
        lam = self.base_rate / YEAR * self.flag_multiplier
        return float(-math.expm1(-lam * horizon_seconds(horizon)))

    def reference_hazard(self, x: FloatArray) -> FloatArray:
        """Per row, the hazard per second at which the rule flags: ``flag_multiplier`` times
        the hazard of a GPU with no evidence in this fleet at this time, i.e. times
        ``max(public base rate, the row's fleet rate)``.

        * The fleet's rate, because every GPU's hazard starts at it: in a fleet failing twenty
          times above the public rate a fixed threshold flags every GPU, and "flagged" then
          says nothing about the GPU. Against the fleet's own rate a GPU is flagged only when
          its evidence multiplies it by ``flag_multiplier``, i.e. when it stands out.
        * Never below the public rate: in a fleet that fails less often than the public
          rate, a GPU that stands out but is still under ``flag_multiplier`` times the public
          hazard is not worth an operator's time, and there the flag is what it always was
          (:meth:`threshold`).
        * Without the node-recurrence hazard: a GPU whose node just lost a board is at real
          extra risk (the published recurrence, :data:`NODE_REPEAT_RATE`, is about four times
          the public rate per lost GPU), so it must still be able to flag at the public rate
          (three lost GPUs reach the flag on their own). Putting the node term in the
          reference would make that GPU *harder* to flag than its peers. In a fleet that
          fails often the term is small next to the fleet rate, so it fades there as it does
          in the hazard itself.
        """
        rate = np.maximum(fleet_rate(self.features, x, self.base_rate), self.base_rate)
        result: FloatArray = self.flag_multiplier * rate / YEAR
        return result

    def flags(self, horizon: str, x: FloatArray, probabilities: FloatArray) -> BoolArray:
        """Whether each row stands out: its probability (as published, from :meth:`predict`
        on the same rows) reaches that of :meth:`reference_hazard` over the horizon. ``x`` is
        one snapshot of the fleet, as for :meth:`predict`."""
        reference = probability_within(self.reference_hazard(x), horizon_seconds(horizon))
        result: BoolArray = np.asarray(probabilities, dtype=np.float64) >= reference
        return result

    def factors(self, horizon: str, x: FloatArray) -> tuple[tuple[str, ...], FloatArray]:
        """Each term's evidence (log-hazard units) per row: the risk factors. The node's
        recurrence counts as ln(hazard with it / hazard without it)."""
        del horizon  # the same factors at every horizon
        total = self.hazard(x)
        node = node_repeat_rate(self.features, x) / YEAR
        lift = np.log(total / np.maximum(total - node, 1e-300))
        names = (*(t.name for t in TERMS), NODE_LOST)
        return names, np.column_stack([term_values(self.features, x), lift])

    def anomaly(self, x: FloatArray) -> FloatArray:
        """The attached detector's score on its own features, or NaN without one."""
        if self.anomaly_model is None:
            return np.full(x.shape[0], np.nan)
        index = {name: j for j, name in enumerate(self.features)}
        cols = [index[name] for name in self.anomaly_model.features]
        result: FloatArray = self.anomaly_model.anomaly(x[:, cols])
        return result

    def score(self, x: FloatArray) -> FloatArray:
        """A ranking score for evaluation: the log of the hazard over that of a GPU without
        evidence in the same fleet at the same time (the baseline cancels across snapshots)."""
        base, relative, node = _rates(self.features, x, self.base_rate)
        result: FloatArray = np.log(relative.sum(axis=1) + node / base)
        return result


def failure_class(features: Sequence[str], x: FloatArray) -> tuple[list[str], FloatArray]:
    """Most likely failure class of each row and its probability (share of the hazard)."""
    hz = class_hazards(features, x, BASE_ANNUAL_RATE)
    share = hz / hz.sum(axis=1, keepdims=True)
    best = np.argmax(share, axis=1)
    return [FAILURE_CLASSES[k] for k in best], share[np.arange(len(best)), best]
