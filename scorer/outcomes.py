"""Live accuracy: how the scorer's past flags turned out, from Prometheus and the ledger.

The scorer's own output is in Prometheus (``gpu_failure_probability{horizon}``), so its track
record can be read back: at every prediction time ``t`` of a rolling window (one per ``step``),
a GPU is *flagged* when its probability was at or above the model's threshold, and *failed*
when the ledger has a failure of that GPU in ``(t, t + horizon]``. Counting GPU-time rows the
way ``evaluate`` does (a true positive is a flagged row whose GPU failed within the horizon)
makes the live figures comparable with an offline evaluation of the same period. Prediction
times whose horizon has not yet ended are left out, even when the GPU already failed — the rule
``evaluate`` labels by: keeping the early failures while the survivors of the same times wait
would count those times' flags as hits more often than they are. Lead time: for
each failure in the window, how long before it the GPU was first flagged (within the horizon).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from gpu_health.errors import UserError
from gpu_health.scorer.model import HORIZON_SECONDS, HORIZONS

#: Prometheus refuses more than 11,000 points per series in one range query.
MAX_STEPS_PER_QUERY = 10_000


@dataclass(frozen=True)
class Outcome:
    horizon: str
    true_positive: int
    false_positive: int
    false_negative: int
    true_negative: int
    lead_days: tuple[float, ...]
    failures: int

    @property
    def precision(self) -> float:
        flagged = self.true_positive + self.false_positive
        return self.true_positive / flagged if flagged else math.nan

    @property
    def recall(self) -> float:
        failed = self.true_positive + self.false_negative
        return self.true_positive / failed if failed else math.nan

    @property
    def median_lead_days(self) -> float:
        return statistics.median(self.lead_days) if self.lead_days else math.nan


def _range_by_uuid(
    client: Any, promql: str, start: float, end: float, step: float
) -> dict[str, list[tuple[float, float]]]:
    """``{uuid: [(t, value), ...]}`` of a range query, asked in pieces Prometheus accepts."""
    out: dict[str, list[tuple[float, float]]] = {}
    t = start
    while t <= end:
        stop = min(end, t + step * (MAX_STEPS_PER_QUERY - 1))
        for series in client.query_range(promql, t, stop, step):
            uuid = series["metric"].get("uuid", "")
            if uuid:
                out.setdefault(uuid, []).extend((float(a), float(b)) for a, b in series["values"])
        t = stop + step
    return out


def _step_window(step: float) -> str:
    # max over (t - step, t]: a value published between two prediction times still counts,
    # the previous time's own sample does not (Prometheus 2 ranges include their start).
    return f"{max(step - 1, 1):.0f}s"


def probability_history(
    client: Any, horizon: str, start: float, end: float, step: float
) -> dict[str, list[tuple[float, float]]]:
    """``{uuid: [(t, p), ...]}``: the published probability at each prediction time."""
    promql = (
        f'max by (uuid) (max_over_time(gpu_failure_probability{{horizon="{horizon}"}}'
        f"[{_step_window(step)}]))"
    )
    return _range_by_uuid(client, promql, start, end, step)


#: The GPU states for which the scorer publishes probability 1 by rule, not by prediction.
STATE_NOT_PREDICTED = ("failed", "absent", "replaced")


def state_rows(client: Any, start: float, end: float, step: float) -> set[tuple[str, float]]:
    """The ``(uuid, t)`` rows at which the scorer published a GPU as failed, absent or replaced
    (``gpu_state``) at some point of the step before ``t``.

    There its probability is 1 on every horizon because the GPU already broke, not because the
    model foresaw anything: counted as flags, every lost GPU added a false positive at each
    prediction time until it came back (about 14 a week at 12-hour steps), so two lost GPUs
    reached the 20 flagged rows of ``GPUScorerPrecisionLow`` and could fire it, and a later
    failure of the same GPU turned the rule's "failed now" into a foreseen failure. ``evaluate``
    has no such rows: a GPU that does not report has no features to predict from."""
    states = "|".join(STATE_NOT_PREDICTED)
    promql = f'max by (uuid) (max_over_time(gpu_state{{state=~"{states}"}}[{_step_window(step)}]))'
    return {
        (uuid, t)
        for uuid, rows in _range_by_uuid(client, promql, start, end, step).items()
        for t, value in rows
        if value >= 1
    }


def outcomes(
    history: dict[str, list[tuple[float, float]]],
    failures: Iterable[tuple[str, float]],
    horizon: str,
    threshold: float,
    window_end: float,
    not_predicted: Collection[tuple[str, float]] = frozenset(),
) -> Outcome:
    """Count rows whose horizon ended by ``window_end`` (both outcomes known alike), leaving out
    the rows in ``not_predicted`` (:func:`state_rows`): neither counted nor a flag's lead."""
    h = HORIZON_SECONDS[horizon]
    by_uuid: dict[str, list[float]] = {}
    for uuid, when in failures:
        by_uuid.setdefault(uuid, []).append(when)
    tp = fp = fn = tn = 0
    leads: list[float] = []
    judged: set[tuple[str, float]] = set()
    first_row = min((t for rows in history.values() for t, _ in rows), default=math.inf)
    for uuid, all_rows in history.items():
        fails = sorted(by_uuid.get(uuid, ()))
        rows = [(t, p) for t, p in all_rows if (uuid, t) not in not_predicted]
        for t, p in rows:
            if t + h > window_end:
                continue  # the horizon has not ended: censored whatever happened so far
            failed = any(t < f <= t + h for f in fails)
            flagged = p >= threshold
            tp += flagged and failed
            fp += flagged and not failed
            fn += failed and not flagged
            tn += not flagged and not failed
        for f in fails:
            if not first_row + h <= f <= window_end:
                continue  # the whole horizon before it was not observed
            judged.add((uuid, f))
            flags = [t for t, p in rows if f - h <= t < f and p >= threshold]
            if flags:
                leads.append((f - min(flags)) / 86400.0)
    return Outcome(horizon, tp, fp, fn, tn, tuple(leads), len(judged))


def exposition(results: Sequence[Outcome], window: str) -> str:
    """Prometheus text format (for the node-exporter textfile collector or a push); names and
    help from :data:`gpu_health.scorer.catalogue.OUTCOME_METRICS`, which the alert rules read."""
    from gpu_health.scorer.catalogue import OUTCOME_METRICS

    helps = {name: text for name, _kind, text, _labels in OUTCOME_METRICS}
    lines = [
        f"# HELP gpu_prediction_outcomes {helps['gpu_prediction_outcomes']}",
        "# TYPE gpu_prediction_outcomes gauge",
    ]
    for r in results:
        for name, value in (
            ("true_positive", r.true_positive),
            ("false_positive", r.false_positive),
            ("false_negative", r.false_negative),
        ):
            lines.append(
                f'gpu_prediction_outcomes{{horizon="{r.horizon}",outcome="{name}",'
                f'window="{window}"}} {value}'
            )
    for metric, attr in (
        ("gpu_prediction_precision", "precision"),
        ("gpu_prediction_recall", "recall"),
        ("gpu_prediction_lead_time_days", "median_lead_days"),
    ):
        lines += [f"# HELP {metric} {helps[metric]}", f"# TYPE {metric} gauge"]
        for r in results:
            value = getattr(r, attr)
            if not math.isnan(value):
                lines.append(f'{metric}{{horizon="{r.horizon}",window="{window}"}} {value:.6g}')
    return "\n".join(lines) + "\n"


def horizons_or_all(names: Sequence[str] | None) -> tuple[str, ...]:
    chosen = tuple(names or HORIZONS)
    unknown = [h for h in chosen if h not in HORIZONS]
    if unknown:
        raise UserError(f"unknown horizon {unknown[0]!r} (choose from {', '.join(HORIZONS)})")
    return chosen
