"""The GPU state model applied to a scoring run (see :mod:`gpu_health.telemetry.state`).

The failure model predicts the future of GPUs that still work. A GPU that has already failed
(fell off the bus, uncorrectable ECC, a hard XID awaiting reset) or stopped reporting has
missing or stale features that the trees would route to "low risk", so after the model runs its
prediction is replaced: such a GPU gets probability 1 ("failed now") on every horizon and the
hard-fault input that makes the economics choose between repair and replacement. Absent GPUs
are added back to the ranking even though the feature inventory no longer lists them; replaced
ones (a new UUID in their slot) leave the ranking and are only published as ``gpu_state``.

An absent GPU whose whole node went silent at once (``GpuState.node_silent``: the exporter or
the host is down) is neither: nothing is known about it, so it gets no probability (NaN on every
horizon, so ``gpu_failure_probability`` is not published for it), no hard fault and no failure
class (:func:`_unknown`). Its features are as stale or missing as a failed GPU's, so the model's
prediction is dropped too. It still ranks above degraded and healthy GPUs (``rank_key`` puts
the ``absent`` state there), so someone looks at the node.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import re
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from gpu_health.scorer.feature_promql import XID_CLASSES
from gpu_health.scorer.model import HORIZONS
from gpu_health.scorer.promclient import PromClient
from gpu_health.telemetry.state import STATES, GpuState, gather_states
from gpu_health.telemetry.xids import XID_CATALOGUE

if TYPE_CHECKING:
    from gpu_health.scorer.service import GpuScore, Snapshot

log = logging.getLogger(__name__)


_XID_REASON = re.compile(r"XID (\d+)$")
#: State reasons (gpu_health.telemetry.state's FAILED/DEGRADED_EVIDENCE texts) that name a
#: memory fault.
_MEMORY_REASONS = ("uncorrectable ECC errors", "row remap failure", "row remap pending")
#: The failure class of an XID code: the scorer's XID evidence classes first, then the exporter
#: catalogue's class of the codes they leave out (140, an unrecovered ECC error, is a memory
#: fault; 121, a C2C link error, an NVLink one). GSP, firmware, timeout and initialisation codes
#: name no class.
_CATALOGUE_CLASSES = {
    "uncorrectable_ecc": "memory",
    "uncontained_ecc": "memory",
    "contained_ecc": "memory",
    "row_remap": "memory",
    "fallen_off_bus": "bus",
    "interconnect": "nvlink",
}
_CLASS_OF_CODE: dict[int, str] = {
    **{
        code: _CATALOGUE_CLASSES[cls]
        for code, (_, cls) in XID_CATALOGUE.items()
        if cls in _CATALOGUE_CLASSES
    },
    **{code: name for name, codes in XID_CLASSES.items() for code in codes},
}


def fault_class(reasons: Sequence[str]) -> str:
    """The failure class of the fault a down GPU already has, from its state reasons ("" when
    none names one).

    A GPU that fell off the bus is a "bus" failure, not a prediction: its operator needs the
    bus runbook now. The first reason that names a class wins (the failed evidence comes first,
    then what an absent GPU showed when last seen). A lost GPU with no XID names none.
    """
    for reason in reasons:
        xid = _XID_REASON.search(reason)
        if xid and int(xid.group(1)) in _CLASS_OF_CODE:
            return _CLASS_OF_CODE[int(xid.group(1))]
        if reason in _MEMORY_REASONS:
            return "memory"
    return ""


def _down(score: GpuScore, state: GpuState) -> GpuScore:
    """A failed or absent GPU: failed now on every horizon, a hard fault for the economics.

    Its failure class is the fault it has (:func:`fault_class`, probability 1); failing that,
    the class its features predicted, if it still had features; otherwise "other" with an
    unknown probability, so the report and the API still link a runbook for every down GPU.
    """
    from gpu_health.scorer.service import TTF_QUANTILES

    known = fault_class(state.reasons)
    if known:
        klass, klass_p = known, 1.0
    elif score.failure_class:
        klass, klass_p = score.failure_class, score.failure_class_probability
    else:
        klass, klass_p = "other", math.nan
    return dataclasses.replace(
        score,
        failure_class=klass,
        failure_class_probability=klass_p,
        probability={h: 1.0 for h in HORIZONS},
        flagged={h: True for h in HORIZONS},
        risk_factors={h: [(f"state_{state.state}", 1.0)] for h in HORIZONS},
        inputs={**score.inputs, "hard_fault": 1.0},
        # Failed now: no time left at any quantile of the survival curve.
        time_to_failure={q: 0.0 for q in TTF_QUANTILES},
        state=state.state,
        state_reasons=state.reasons,
        state_age_s=state.age_s,
    )


def _unknown(score: GpuScore, state: GpuState) -> GpuScore:
    """An absent GPU of a node that stopped reporting as a whole: not failed, not scored."""
    from gpu_health.scorer.service import TTF_QUANTILES

    return dataclasses.replace(
        score,
        failure_class="",
        failure_class_probability=math.nan,
        probability={h: math.nan for h in HORIZONS},
        flagged={h: False for h in HORIZONS},
        risk_factors={h: [] for h in HORIZONS},
        inputs={**score.inputs, "hard_fault": 0.0},
        time_to_failure={q: math.nan for q in TTF_QUANTILES},
        state=state.state,
        state_reasons=state.reasons,
        state_age_s=state.age_s,
    )


def apply_states(
    client: PromClient,
    schema: str,
    gpus: Sequence[GpuScore],
    keep: Callable[[str], bool] | None = None,
    at: float | None = None,
    interval_s: float | None = None,
) -> tuple[list[GpuScore], tuple[GpuState, ...]]:
    """Scores with their state set, absent GPUs added; and the replaced GPUs (off the ranking).

    ``keep`` limits the added GPUs to this scorer shard's. A failing state query raises
    :class:`PrometheusError` like a failing inventory: the run is retried rather than served
    with GPUs wrongly called healthy. ``interval_s``: the run's measured scrape interval (the
    inventory's presence window follows it; measured from the data when not given).
    """
    from gpu_health.scorer.service import GpuScore

    now = time.time() if at is None else at
    states = gather_states(client.query, schema, now, interval_s=interval_s)
    out: list[GpuScore] = []
    scored = set()
    for g in gpus:
        scored.add(g.uuid)
        state = states.get(g.uuid)
        if state is None:
            out.append(g)
        elif state.down:
            out.append(_down(g, state))
        elif state.node_silent:
            out.append(_unknown(g, state))
        else:
            out.append(dataclasses.replace(g, state=state.state, state_reasons=state.reasons))
    gone: list[GpuState] = []
    for uuid, state in sorted(states.items()):
        if uuid in scored or (keep is not None and not keep(uuid)):
            continue
        if state.state == "replaced":
            gone.append(state)
        elif state.down or state.node_silent:
            empty = {name: math.nan for name in (gpus[0].inputs if gpus else {})}
            base = GpuScore(
                state.node,
                state.gpu,
                uuid,
                state.model,
                {h: 1.0 for h in HORIZONS},
                {h: True for h in HORIZONS},
                {h: [] for h in HORIZONS},
                math.nan,
                empty,
            )
            out.append(_down(base, state) if state.down else _unknown(base, state))
    counts = {s: sum(1 for g in out if g.state == s) for s in STATES}
    counts["replaced"] = len(gone)
    log.debug("GPU states: %s", counts)
    return out, tuple(gone)


def state_families(snap: Snapshot | None) -> Iterator[Any]:
    """``gpu_state`` (1 on the current state, 0 on the others) and ``gpu_state_age_seconds``."""
    from prometheus_client.core import GaugeMetricFamily

    from gpu_health.scorer.catalogue import SCORER_IDENTITY_LABELS, SCORER_METRICS

    helps = {name: help_text for name, _kind, help_text, _labels in SCORER_METRICS}
    ident = list(SCORER_IDENTITY_LABELS)
    state = GaugeMetricFamily("gpu_state", helps["gpu_state"], labels=[*ident, "state"])
    age = GaugeMetricFamily("gpu_state_age_seconds", helps["gpu_state_age_seconds"], labels=ident)
    rows: list[tuple[list[str], str, float]] = []
    if snap is not None:
        rows += [(g.labels, g.state, g.state_age_s) for g in snap.gpus]
        rows += [([s.node, s.gpu, s.uuid, s.model], s.state, s.age_s) for s in snap.gone]
    for labels, current, age_s in rows:
        for name in STATES:
            state.add_metric([*labels, name], 1.0 if name == current else 0.0)
        if math.isfinite(age_s):  # unknown for absent GPUs past the last-seen lookup bound
            age.add_metric(labels, age_s)
    yield state
    yield age
