"""One state per GPU: healthy, degraded, failed, absent or replaced, shared by every consumer.

The scorer, the economics and the report each used to infer "is this GPU broken?" on their own,
and a GPU that fell off the bus could rank as the safest because its features were NaN. This
module holds the PromQL evidence for each state (both metric schemas, in one place) and the
pure classification over the query results, so every consumer runs the same queries with its own
HTTP client and gets the same answer.

* ``failed``: a hard fault that needs a reset or a repair before the GPU can serve work: lost
  (``gpu_up`` 0), an XID the mixin pages "drain and reset" for
  (:data:`~gpu_health.telemetry.xids.RESET_REQUIRED_XIDS`: 46, 48, 62, 64, 74, 79, 95, 109, 119,
  120, 140, 143, and the NVLink5 errors 144-150) in the last :data:`HARD_WINDOW` or, in our
  schema, still counted by the exporter (the count the XID alerts page on), uncorrectable
  ECC errors in that window or a volatile uncorrectable count above zero (no reset has cleared
  it since), or the
  row-remap-failure flag. The XID of a contained ECC error (94) is not: the job stopped, the
  GPU serves (the uncorrectable count the error adds is, until a reset clears it).
* ``absent``: known in the last :data:`LOOKBACK` but no sample in the recent window (30 minutes,
  or one and a half scrape intervals of sparser data: :mod:`gpu_health.telemetry.freshness`); the
  state it had when it was last seen is kept (``last_state``) with the age of its last sample.
  A GPU that went silent while another GPU of its node still reported fell off on its own: it is
  down ("failed now"). When the whole node went silent at once (no GPU it had in the LOOKBACK
  reports now, and this GPU's last sample is within the recent window of the node's last one) the
  exporter or the host is down and nothing is known about the GPU: it stays ``absent`` with the
  reason "node N not reporting (exporter or host down)" and ``node_silent`` set, but is not down
  unless it was already failed when last seen (:attr:`GpuState.down`). A node is its identity
  label (``node`` ours, ``Hostname`` dcgm) together with every UUID seen under that name, so a
  dcgm-exporter pod restart that renamed ``Hostname`` does not make a node look silent while its
  GPUs report under the new name. A node with a single GPU cannot tell the two apart: its
  silence counts as the node's.
* ``replaced``: absent, and another UUID reports fresh samples from the same node and slot.
* ``degraded``: reporting, no hard fault, but a health penalty of at least
  :data:`DEGRADED_PENALTY` points within the recent window (intermittent faults such as
  power-brake slowdowns come and go), a pending row remap, or (dcgm-exporter, which has no health
  score) a new XID event in the last 24 hours, PCIe replays or thermal/board-limit violations
  in the recent window. A GPU of our schema without ``gpu_health_score`` (its health series
  dropped by relabelling) is judged by the same evidence, its XIDs within the recent window too
  (a 24-hour increase over every code of every GPU would double the cost of the hard-XID query).
  Application-class XIDs (:data:`APPLICATION_XIDS`: the job's bug, not the GPU's) never make a GPU
  degraded in either schema.
* ``healthy``: everything else that reports.

Failed and absent GPUs rank above every other GPU (:func:`rank_key`); a GPU that stopped
reporting is therefore never ranked from missing features as safe.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

# The evidence queries live in state_queries; re-exported here, where every consumer looks.
from gpu_health.telemetry import freshness
from gpu_health.telemetry.state_queries import (
    FRESH,
    FRESH_S,
    HARD_XIDS,
    LABELS,
    Identity,
    Labels,
)
from gpu_health.telemetry.state_queries import last_sample_query as last_sample_query
from gpu_health.telemetry.state_queries import last_seen_query as last_seen_query
from gpu_health.telemetry.state_queries import regex_literal as regex_literal
from gpu_health.telemetry.state_queries import state_queries as state_queries

STATES: tuple[str, ...] = ("failed", "absent", "degraded", "healthy", "replaced")
#: Ranking order: failed first, then absent, degraded, healthy; replaced GPUs left the fleet.
_RANK = {name: i for i, name in enumerate(STATES)}
#: States that count as "failed now" for the risk ranking and the economics.
DOWN_STATES = frozenset({"failed", "absent"})
#: The last-seen subquery is asked only for absent GPUs, this many per query (a 7-day
#: subquery at 5-minute steps: in its first form, with ``timestamp()``, it took 90 s over
#: every GPU of a 2,000-GPU fleet on a 2-core machine).
LAST_SEEN_BATCH = 50
#: Distinct step times read back per query of :func:`last_sample_query` (each is one term: 16
#: keep every query of a batch under 7 KB, where the batch's first query is 4.5 KB; the report
#: sends its queries in the URL, which a proxy in front of Prometheus may cap at 8 KB).
LAST_SAMPLE_STEPS = 16
#: At most this many absent GPUs get their last-sample time looked up (a mass outage costs a
#: bounded time: 3.1 s for 1,000 on a 2,000-GPU history, where the first form of the lookup
#: took 10.9 s for its bound of 200); the rest are absent with an unknown age.
LAST_SEEN_MAX = 1000

#: Evidence that makes a reporting GPU failed, with the reason shown to people.
FAILED_EVIDENCE = {
    "lost": "lost (gpu_up 0)",
    "hard_xid": "XID {xid}",
    "uncorrectable_ecc": "uncorrectable ECC errors",
    "remap_failed": "row remap failure",
}
DEGRADED_EVIDENCE = {
    "remap_pending": "row remap pending",
    "health_penalty": "health penalty {reason}",
    "recent_xid": "XID {xid}",
    "violations": "PCIe replays or clock violations",
}


@dataclass(frozen=True)
class GpuState:
    """The state of one GPU and why."""

    node: str
    gpu: str
    uuid: str
    model: str
    state: str
    reasons: tuple[str, ...] = ()
    #: Unix time of the last sample (NaN when unknown).
    last_seen: float = math.nan
    #: Seconds since the last sample at the evaluation time (0 for a reporting GPU).
    age_s: float = 0.0
    #: For an absent or replaced GPU: the state it had when last seen.
    last_state: str = ""
    #: For a replaced GPU: the UUID now in its slot.
    replaced_by: str = ""
    #: For an absent GPU: it went silent together with its whole node (exporter or host down).
    node_silent: bool = False

    @property
    def down(self) -> bool:
        """Failed or absent: "failed now" for the ranking and the economics.

        Not an absent GPU whose whole node went silent at once: a scrape gap or a host reboot
        says nothing about the GPU, and calling eight healthy GPUs failed on a 35-minute exporter
        outage sent them to repair. Unless it was already failed when last seen.
        """
        if self.node_silent and self.last_state != "failed":
            return False
        return self.state in DOWN_STATES


def rank_key(state: str, probability: float) -> tuple[int, float, bool]:
    """Sort key: state first (failed, absent, degraded, healthy), then risk, highest first.

    An unknown probability (NaN: an absent GPU whose node stopped reporting) ranks as high as
    1 within its state, but after the GPUs known to be failed now: someone should look at the
    node, after the GPUs that are certainly broken.
    """
    known = math.isfinite(probability)
    return (_RANK.get(state, len(STATES)), -(probability if known else 1.0), not known)


def _reason(template: str, metric: Mapping[str, Any], value: object) -> str:
    xid = str(metric.get("xid", "")) or _code(value)
    return template.format(xid=xid, reason=metric.get("reason", ""))


def _code(value: object) -> str:
    """An XID code as text; "?" for anything that is not a finite number (±Inf from a broken
    exporter would otherwise fail the whole run)."""
    try:
        return str(int(float(value)))  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return "?"


def evidence_state(
    schema: str, results: Mapping[str, Sequence[Mapping[str, Any]]]
) -> dict[str, tuple[str, tuple[str, ...]]]:
    """uuid -> (failed/degraded/healthy, reasons) from the evidence queries' results."""
    lab = LABELS[schema]
    results = _with_hard_xids(schema, results)
    reasons: dict[str, dict[str, list[str]]] = {}
    for bucket, table in (("failed", FAILED_EVIDENCE), ("degraded", DEGRADED_EVIDENCE)):
        for name, template in table.items():
            for sample in results.get(name, ()):
                metric = sample.get("metric", {})
                uuid = lab.identity(metric)[2]
                text = _reason(template, metric, sample.get("value", [0, ""])[1])
                per = reasons.setdefault(uuid, {}).setdefault(bucket, [])
                if text not in per:
                    per.append(text)
    out: dict[str, tuple[str, tuple[str, ...]]] = {}
    for uuid, found in reasons.items():
        if found.get("failed"):
            both = found["failed"] + found.get("degraded", [])
            out[uuid] = ("failed", tuple(dict.fromkeys(both)))
        else:
            out[uuid] = ("degraded", tuple(found.get("degraded", [])))
    return out


#: The hard XID codes as the text :func:`_code` gives them.
_HARD_CODES = frozenset(str(x) for x in HARD_XIDS)


def _with_hard_xids(
    schema: str, results: Mapping[str, Sequence[Mapping[str, Any]]]
) -> Mapping[str, Sequence[Mapping[str, Any]]]:
    """dcgm-exporter's hard XIDs: the ``recent_xid`` answers whose value (the code the gauge
    holds) is one of :data:`HARD_XIDS` (no query of their own:
    :mod:`gpu_health.telemetry.state_queries`). Our schema asks for them by ``xid`` label."""
    if schema == "ours":
        return results
    hard = [
        sample
        for sample in results.get("recent_xid", ())
        if _code(sample.get("value", [0, ""])[1]) in _HARD_CODES
    ]
    return {**results, "hard_xid": hard}


def classify(
    schema: str,
    results: Mapping[str, Sequence[Mapping[str, Any]]],
    at: float,
    last_known: Mapping[str, tuple[str, tuple[str, ...]]] | None = None,
    fresh_s: float = FRESH_S,
) -> dict[str, GpuState]:
    """uuid -> :class:`GpuState` for every GPU seen in the LOOKBACK, at evaluation time ``at``.

    ``results`` holds the answer of every :func:`state_queries` query (asked with the window
    of ``fresh_s`` seconds). ``last_known`` gives the (state, reasons) of absent GPUs when they
    were last seen (see :func:`last_seen_times`).
    """
    lab = LABELS[schema]
    evidence = evidence_state(schema, results)
    seen: dict[str, tuple[Identity, float]] = {}
    for sample in results.get("seen", ()):
        ident = lab.identity(sample.get("metric", {}))
        if ident[2]:
            seen.setdefault(ident[2], (ident, math.nan))
    for sample in results.get("last_seen", ()):
        ident = lab.identity(sample.get("metric", {}))
        try:
            t = float(sample["value"][1])
        except (KeyError, IndexError, TypeError, ValueError):
            continue
        earlier = seen.get(ident[2], (ident, math.nan))[1]
        if ident[2] and not t <= earlier:
            seen[ident[2]] = (ident, t)
    fresh: dict[str, Identity] = {}
    for sample in results.get("fresh", ()):
        ident = lab.identity(sample.get("metric", {}))
        if ident[2]:
            fresh[ident[2]] = ident
            seen[ident[2]] = (ident, at)
    fresh_in_slot = {(ident[0], ident[1]): uuid for uuid, ident in fresh.items()}
    # The board that last reported from each slot, and when: a board replaced while its node
    # reported stays replaced when the node later falls silent (it came back as a lost GPU,
    # failure probability 1, beside its successor's "node not reporting").
    last_in_slot: dict[tuple[str, str], tuple[float, str]] = {}
    for uuid, (ident, t) in seen.items():
        slot = (ident[0], ident[1])
        if math.isfinite(t) and t > last_in_slot.get(slot, (-math.inf, ""))[0]:
            last_in_slot[slot] = (t, uuid)
    silent_nodes = _silent_nodes(lab, results, seen, fresh)
    known = dict(last_known or {})
    states: dict[str, GpuState] = {}
    for uuid, (ident, t) in seen.items():
        age = max(0.0, at - t) if math.isfinite(t) else math.nan
        if uuid in fresh:
            state, reasons = evidence.get(uuid, ("healthy", ()))
            states[uuid] = GpuState(*ident, state, reasons, t, 0.0)
            continue
        last_state, last_reasons = known.get(uuid, ("", ()))
        successor = fresh_in_slot.get((ident[0], ident[1]), "")
        if not successor and math.isfinite(t):
            later_t, later = last_in_slot.get((ident[0], ident[1]), (math.nan, ""))
            successor = later if later_t > t + fresh_s else ""
        name = "replaced" if successor and successor != uuid else "absent"
        silent = _age_text(age) if math.isfinite(age) else f"at least {_age_text(fresh_s)}"
        reasons = (f"no samples for {silent}", *last_reasons)
        # Silent with its node, unless the node still reported a sibling well after this GPU
        # stopped (then it fell off on its own); an unknown time (NaN) cannot show that.
        with_node = name == "absent" and ident[0] in silent_nodes
        with_node = with_node and not t < silent_nodes.get(ident[0], math.nan) - fresh_s
        if with_node:
            reasons = (f"node {ident[0]} not reporting (exporter or host down)", *reasons)
        states[uuid] = GpuState(
            *ident, name, reasons, t, age, last_state, successor, node_silent=with_node
        )
    # A GPU with evidence but no last_seen (a schema quirk) still gets its state.
    for uuid, (state, reasons) in evidence.items():
        if uuid not in states and uuid:
            states[uuid] = GpuState("", "", uuid, "", state, reasons)
    return states


def _silent_nodes(
    lab: Labels,
    results: Mapping[str, Sequence[Mapping[str, Any]]],
    seen: Mapping[str, tuple[Identity, float]],
    fresh: Mapping[str, Identity],
) -> dict[str, float]:
    """Node name -> last sample time (NaN when unknown) of every node none of whose GPUs
    reports now.

    A node's GPUs are every UUID seen under its name in the LOOKBACK: a GPU that now reports
    under another name (a renamed dcgm-exporter pod) keeps its old node reporting.
    """
    members: dict[str, set[str]] = {}
    for sample in results.get("seen", ()):
        ident = lab.identity(sample.get("metric", {}))
        if ident[2]:
            members.setdefault(ident[0], set()).add(ident[2])
    for uuid, (ident, _) in seen.items():
        members.setdefault(ident[0], set()).add(uuid)
    out: dict[str, float] = {}
    for node, uuids in members.items():
        if uuids & fresh.keys():
            continue
        times = [seen[u][1] for u in uuids if u in seen and math.isfinite(seen[u][1])]
        out[node] = max(times) if times else math.nan
    return out


def needs_history(states: Mapping[str, GpuState], limit: int = 8) -> list[float]:
    """Distinct last-seen times (most recent first, at most ``limit``) of absent GPUs.

    Evaluating the evidence queries just after each of these times gives the state an absent
    GPU had when it was last seen; bounded so a mass outage costs at most ``limit`` rounds.
    """
    times = sorted(
        {s.last_seen for s in states.values() if s.state in ("absent", "replaced")},
        reverse=True,
    )
    return [t for t in times if math.isfinite(t)][:limit]


def with_history(
    states: Mapping[str, GpuState], history: Mapping[str, tuple[str, tuple[str, ...]]]
) -> dict[str, GpuState]:
    """Fill ``last_state`` (and its reasons) of absent/replaced GPUs from past evaluations."""
    out = dict(states)
    for uuid, s in states.items():
        if s.state in ("absent", "replaced") and uuid in history:
            last_state, reasons = history[uuid]
            out[uuid] = replace(s, reasons=(*s.reasons, *reasons), last_state=last_state)
    return out


#: State queries sent at once. They are independent, and the scorer sends them after its
#: feature queries, when Prometheus has cores to spare: one at a time they left one of them idle.
STATE_WORKERS = 4


def _each(query: Any, asks: Sequence[tuple[str, float]], workers: int) -> list[Any]:
    """``query(promql, at)`` of every (promql, at), in their order; the first failure raises
    (after the others finish), so no state is derived from half the evidence."""
    if workers <= 1 or len(asks) <= 1:
        return [query(promql, at) for promql, at in asks]
    with ThreadPoolExecutor(max_workers=min(workers, len(asks))) as pool:
        return list(pool.map(lambda ask: query(*ask), asks))


def gather_states(
    query: Any,
    schema: str,
    at: float,
    history_limit: int = 8,
    interval_s: float | None = None,
    workers: int | None = None,
) -> dict[str, GpuState]:
    """Run the state queries with ``query(promql, at) -> vector`` and classify every GPU.

    The caller's client does the HTTP (the scorer's PromClient, the report's stack.query) and
    must allow ``workers`` calls at once (:data:`STATE_WORKERS` when None); a failed evidence
    query raises from the client, so a state is never derived from half the evidence.
    ``interval_s``: the data's scrape interval, which sets the recent windows (measured from
    the data at ``at`` when not given: :mod:`gpu_health.telemetry.freshness`).
    """
    if interval_s is None:
        interval_s = freshness.measure(lambda promql: query(promql, at))
    workers = STATE_WORKERS if workers is None else workers
    change = freshness.as_range(freshness.change_seconds(interval_s))
    fresh = freshness.fresh_range(interval_s)
    queries = state_queries(schema, fresh, change, freshness.scrapes_failed_range(interval_s))
    answers = _each(query, [(promql, at) for promql in queries.values()], workers)
    results = dict(zip(queries, answers, strict=True))
    results["last_seen"] = _last_seen(query, schema, results, at, fresh)
    states = classify(schema, results, at, fresh_s=freshness.fresh_seconds(interval_s))
    history: dict[str, tuple[str, tuple[str, ...]]] = {}
    evidence = [name for name in queries if name not in ("seen", "fresh")]
    times = needs_history(states, history_limit)
    asks = [(queries[name], t + 1.0) for t in times for name in evidence]
    found_then = iter(_each(query, asks, workers))
    for _t in times:  # most recent first: a GPU's latest past state wins
        past = {name: next(found_then) for name in evidence}
        for uuid, found in evidence_state(schema, past).items():
            history.setdefault(uuid, found)
    absent_at = {u for u, s in states.items() if s.state in ("absent", "replaced")}
    for uuid in absent_at - set(history):
        history[uuid] = ("healthy", ())
    return with_history(states, history)


def _last_seen(
    query: Any,
    schema: str,
    results: Mapping[str, Sequence[Mapping[str, Any]]],
    at: float,
    fresh: str = FRESH,
) -> list[Mapping[str, Any]]:
    """Last-sample times of the GPUs seen in the LOOKBACK that do not report now, asked in
    batches of LAST_SEEN_BATCH for at most LAST_SEEN_MAX of them: first the last step of a
    subquery at which each had a sample (:func:`last_seen_query`), then the sample's own time
    at that step (:func:`last_sample_query`: the latest sample at or before the step, which is
    the GPU's last, since no later step had one). Where the second finds none (an engine whose
    lookback differs), the step's time stands: at most the server's lookback late."""
    lab = LABELS[schema]

    def uuids(name: str) -> set[str]:
        return {lab.identity(m.get("metric", {}))[2] for m in results.get(name, ())} - {""}

    absent = sorted(uuids("seen") - uuids("fresh"))[:LAST_SEEN_MAX]
    found: list[Mapping[str, Any]] = []
    for i in range(0, len(absent), LAST_SEEN_BATCH):
        stepped = query(last_seen_query(schema, absent[i : i + LAST_SEEN_BATCH]), at)
        steps = {lab.identity(m.get("metric", {}))[2]: _sample_value(m) for m in stepped}
        steps = {u: t for u, t in steps.items() if u and math.isfinite(t)}
        exact: dict[str, float] = {}
        for part in _by_distinct_steps(steps, LAST_SAMPLE_STEPS):
            for m in query(last_sample_query(schema, part, fresh), at):
                uuid, t = lab.identity(m.get("metric", {}))[2], _sample_value(m)
                if uuid in steps and math.isfinite(t) and t <= steps[uuid]:
                    exact[uuid] = t
        for m in stepped:
            uuid = lab.identity(m.get("metric", {}))[2]
            if uuid in exact:
                m = {**m, "value": [m.get("value", [at])[0], repr(exact[uuid])]}
            found.append(m)
    return found


def _by_distinct_steps(steps: Mapping[str, float], limit: int) -> list[dict[str, float]]:
    """``steps`` (uuid -> step time) in parts holding at most ``limit`` distinct step times:
    each distinct time is one term of :func:`last_sample_query`."""
    times = sorted(set(steps.values()))
    chunks = [set(times[i : i + limit]) for i in range(0, len(times), limit)]
    return [{u: t for u, t in steps.items() if t in chunk} for chunk in chunks]


def _sample_value(sample: Mapping[str, Any]) -> float:
    """The value of one instant-query sample, NaN where it is not a number."""
    try:
        return float(sample["value"][1])
    except (KeyError, IndexError, TypeError, ValueError):
        return math.nan


def _age_text(seconds: float) -> str:
    if seconds >= 86400:
        return f"{seconds / 86400:.1f} d"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 60:.0f} min"
