"""The scoring loop and what it serves: metrics families and the ranked JSON view.

Every interval the loop reads the features of all GPUs from Prometheus, runs the model and swaps
in a new immutable :class:`Snapshot`. Readers (``/metrics``, ``/api/v1/gpus``) only ever see a
whole snapshot. When Prometheus is down or a query fails, the previous snapshot stays served,
its age keeps growing on ``gpu_scorer_results_age_seconds``, the error is counted, and the loop
tries again next interval; nothing in a run can take the process down.
"""

from __future__ import annotations

import functools
import itertools
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gpu_health.errors import UserError
from gpu_health.safetext import one_line, without_paths
from gpu_health.scorer.catalogue import SCORER_IDENTITY_LABELS, SCORER_METRICS
from gpu_health.scorer.factor_labels import factor_label
from gpu_health.scorer.failure_log import RecurringFailure
from gpu_health.scorer.features import (
    ECON_FEATURES,
    FEATURES,
    FeatureFrame,
    SchemaName,
    compute_features,
    counters_hint,
    partial_signals,
)
from gpu_health.scorer.history_source import HISTORY_SOURCES, HistoryMode, HistorySource
from gpu_health.scorer.model import CHECKSUMS, HORIZONS, ModelError, RiskModel, load_model
from gpu_health.scorer.promclient import PromClient, PrometheusError, RunTimedOut
from gpu_health.scorer.rules import RULE_FEATURES, failure_class, time_to_failure_quantile
from gpu_health.scorer.sanitize import BadValues
from gpu_health.scorer.state import apply_states, state_families
from gpu_health.telemetry.freshness import fresh_range, measure
from gpu_health.telemetry.schema import choose_schema
from gpu_health.telemetry.state import rank_key

log = logging.getLogger(__name__)
_HELP = {name: help_text for name, _kind, help_text, _labels in SCORER_METRICS}
#: Seconds past the run budget before a run that is still going is reported "stuck".
STUCK_GRACE_SECONDS = 5.0
RUN_STATES = ("idle", "running", "ok", "failed", "timed_out", "stuck")


@dataclass(frozen=True)
class GpuScore:
    node: str
    gpu: str
    uuid: str
    model: str
    probability: dict[str, float]
    flagged: dict[str, bool]
    #: per horizon: (feature, contribution to the log-odds), largest first
    risk_factors: dict[str, list[tuple[str, float]]]
    anomaly: float
    #: economics inputs measured in PromQL (NaN = not available)
    inputs: dict[str, float]
    econ: Any = None
    #: healthy, degraded, failed or absent (gpu_health.telemetry.state), and why.
    state: str = "healthy"
    state_reasons: tuple[str, ...] = ()
    #: Seconds since the GPU's last sample (absent GPUs).
    state_age_s: float = 0.0
    #: time to failure (seconds) at quantiles 0.1, 0.5, 0.9 of the survival curve
    time_to_failure: dict[str, float] = field(default_factory=dict)
    #: most likely failure class (memory, bus, nvlink, thermal_power, other) and its probability
    failure_class: str = ""
    failure_class_probability: float = math.nan
    #: Why the economics did not value the GPU (``econ`` is None), e.g. "no economics for model
    #: Tesla K80"; "" when it was valued or the economics did not run.
    econ_unvalued: str = ""

    @property
    def labels(self) -> list[str]:
        return [self.node, self.gpu, self.uuid, self.model]


@dataclass(frozen=True)
class Snapshot:
    finished_at: float
    duration_s: float
    schema: SchemaName
    gpus: tuple[GpuScore, ...]
    econ_families: tuple[Any, ...] = ()
    #: GPUs replaced by a new UUID in their slot: published as gpu_state, not ranked.
    gone: tuple[Any, ...] = ()
    #: model features with no value for any GPU in this schema (named once in the log)
    empty_features: tuple[str, ...] = ()
    #: the history the features were read from (``--history``)
    history: HistorySource = "raw"

    def ranked(self, horizon: str) -> tuple[GpuScore, ...]:
        """The scorer's ranking at ``horizon``: failed and absent GPUs first ("failed now"),
        then degraded, then healthy; by risk within a state; ties by uuid, so the API,
        ``gpu_risk_rank`` and every dashboard panel agree. Sorted once per snapshot (on first
        use), not on every scrape or API call."""
        return self._rankings[horizon]

    @functools.cached_property
    def _rankings(self) -> dict[str, tuple[GpuScore, ...]]:
        def key(h: str) -> Callable[[GpuScore], tuple[Any, ...]]:
            return lambda g: (*rank_key(g.state, g.probability[h]), g.uuid)

        return {h: tuple(sorted(self.gpus, key=key(h))) for h in HORIZONS}


#: Called with the GPUs of a run; returns them with ``econ`` set plus metric families.
EconHook = Callable[[Sequence[GpuScore]], tuple[list[GpuScore], list[Any]]]


#: Quantiles of the time to failure published (10 %, median, 90 %: an 80 % interval).
TTF_QUANTILES: tuple[str, ...] = ("0.1", "0.5", "0.9")


def empty_features(model: RiskModel, frame: FeatureFrame) -> tuple[str, ...]:
    """Model features that no GPU of the frame has a value for (the schema lacks the signal)."""
    if not frame.gpus:
        return ()
    x = frame.select(model.features)
    return tuple(n for j, n in enumerate(model.features) if np.isnan(x[:, j]).all())


def score_frame(model: RiskModel, frame: FeatureFrame, top_k: int = 3) -> list[GpuScore]:
    """Turn one feature frame into per-GPU scores (probabilities, factors, anomaly)."""
    if not frame.gpus:
        return []
    x = frame.select(model.features)
    probs = {h: model.predict(h, x) for h in HORIZONS}
    hazard = model.hazard(x)
    ttf = {q: time_to_failure_quantile(hazard, float(q)) for q in TTF_QUANTILES}
    classes, class_p = failure_class(frame.names, frame.values)
    # Two separately trained models can disagree at the margin, but failing within 7 days is
    # failing within 30: a longer horizon never gets the lower probability.
    ordered = sorted(HORIZONS, key=lambda h: int(h.rstrip("d")))
    for shorter, longer in itertools.pairwise(ordered):
        probs[longer] = np.maximum(probs[longer], probs[shorter])
    # "Flagged" is the model's own call on the published probability: for the rule, a GPU
    # that stands out from this fleet now (RuleModel.flags), not a fixed probability.
    flags = {h: model.flags(h, x, probs[h]) for h in HORIZONS}
    contribs = {h: model.factors(h, x) for h in HORIZONS}
    anomaly = model.anomaly(x)
    econ = frame.select(ECON_FEATURES)
    out: list[GpuScore] = []
    for i, (node, gpu, uuid, gmodel) in enumerate(frame.gpus):
        factors: dict[str, list[tuple[str, float]]] = {}
        for h in HORIZONS:
            names, values = contribs[h]
            row = values[i]
            order = np.argsort(-row)[:top_k]
            factors[h] = [(names[j], float(row[j])) for j in order if row[j] > 0]
        out.append(
            GpuScore(
                node,
                gpu,
                uuid,
                gmodel,
                {h: float(probs[h][i]) for h in HORIZONS},
                {h: bool(flags[h][i]) for h in HORIZONS},
                factors,
                float(anomaly[i]),
                {name: float(econ[i, j]) for j, name in enumerate(ECON_FEATURES)},
                time_to_failure={q: float(ttf[q][i]) for q in TTF_QUANTILES},
                failure_class=classes[i],
                failure_class_probability=float(class_p[i]),
            )
        )
    return out


@dataclass
class Scorer:
    """Holds the client, model and latest snapshot; ``run_once`` never raises."""

    client: PromClient
    model: RiskModel
    schema: str = "auto"
    econ: EconHook | None = None
    top_k: int = 3
    workers: int = 4
    #: Only GPUs whose uuid this returns True for are scored (``--shard N/M``).
    keep: Callable[[str], bool] | None = None
    #: PromQL regex of this shard's uuids, so Prometheus evaluates only its series.
    shard_regex: str | None = None
    #: Where the features read history: the raw series, the mixin's 5-minute recorded samples,
    #: its hourly samples for windows of a week or more, or each tier where it holds every GPU
    #: the raw series hold (``--history``; :mod:`gpu_health.scorer.history_source`). The CLI's
    #: default is ``auto``. GPU states are read from the raw series whatever it says.
    history: HistoryMode = "raw"
    snapshot: Snapshot | None = None
    runs_failed: int = 0
    last_error: str = ""
    #: The model directory watched for a new model between runs (None: never reload).
    model_dir: Path | None = None
    model_reload_errors: int = 0
    #: Score as of this Unix time instead of now (``gpu-health-scorer score --at``).
    at: float | None = None
    #: Whether runs feed a server that keeps the last good results through a failed run (the
    #: failure is logged as such); a one-shot run (``score``, ``serve --once``) is not, and its
    #: command reports the failure itself.
    serving: bool = True
    _empty_logged: tuple[str, ...] | None = None
    _partial_logged: str | None = None
    #: The economics' failures, logged with a traceback once per distinct error.
    _econ_failure: RecurringFailure = field(
        default_factory=lambda: RecurringFailure(
            log, "economics", "serving failure scores without it"
        )
    )
    _model_stamp: tuple[int, int] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    #: Wall-clock seconds a run may take; past it, queries fail at once and the run is abandoned
    #: and reported as timed out (None: no budget).
    run_budget_s: float | None = None
    #: Feature values the model could not take (not finite in float32), per feature.
    bad_values: BadValues = field(default_factory=BadValues)
    #: "idle" (no run yet), "running", "ok", "failed" or "timed_out"; see :meth:`run_state`.
    _state: str = "idle"
    _run_started: float | None = None

    def _stamp(self) -> tuple[int, int] | None:
        assert self.model_dir is not None
        try:
            st = (self.model_dir / CHECKSUMS).stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def reload_model_if_changed(self) -> None:
        """Swap in a model written to ``model_dir`` since the last run, if it verifies.

        A new model is deployed by rewriting the directory (checksums file last). One that is
        missing, truncated or altered is refused with one log line and counted, and the last
        good model keeps scoring: a bad deploy must not blind the fleet's risk view.
        """
        if self.model_dir is None:
            return
        stamp = self._stamp()
        if self._model_stamp is None:
            self._model_stamp = stamp
            return
        if stamp == self._model_stamp:
            return
        self._model_stamp = stamp
        try:
            model = load_model(self.model_dir)
        except ModelError as exc:
            self.model_reload_errors += 1
            log.warning("new model refused, keeping the last good one: %s", exc)
            return
        self.model = model
        log.info("loaded a new model from %s", self.model_dir)

    def resolve_schema(self, interval_s: float | None = None) -> SchemaName:
        if self.schema in ("ours", "dcgm"):
            return self.schema  # type: ignore[return-value]
        try:
            choice = choose_schema(
                lambda promql: self.client.query(promql, at=self.at), interval_s=interval_s
            )
        except UserError:  # nothing reports yet: nothing to score
            return "ours"
        log.debug("schema: %s", choice.reason)
        return "dcgm" if choice.name == "dcgm" else "ours"

    def run_once(self) -> bool:
        started = time.monotonic()
        with self._lock:
            self._state, self._run_started = "running", started
        if self.run_budget_s is not None:
            self.client.set_run_deadline(started + self.run_budget_s)
        try:
            return self._run(started)
        finally:
            self.client.set_run_deadline(None)
            with self._lock:
                self._run_started = None

    def _run(self, started: float) -> bool:
        self.reload_model_if_changed()
        try:
            # One scrape interval, so one presence window, for the whole run: the schema
            # choice, the inventory, the fleet's losses and the GPU states all tell present
            # from absent GPUs alike.
            interval_s = measure(lambda promql: self.client.query(promql, at=self.at))
            schema = self.resolve_schema(interval_s)
            # Only what the model, the failure class (rule terms) and the economics read.
            needed = {*self.model.features, *RULE_FEATURES, *ECON_FEATURES}
            frame = compute_features(
                self.client,
                schema,
                self.at,
                [f for f in FEATURES if f.name in needed],
                self.workers,
                keep=self.keep,
                shard_regex=self.shard_regex,
                fresh=fresh_range(interval_s),
                history=self.history,
            )
            self.client.check_run_deadline()  # failed feature queries must not pass as a run
            frame = self.bad_values.clean(frame)
            gpus = score_frame(self.model, frame, self.top_k)
            empty = empty_features(self.model, frame)
            if empty != self._empty_logged and frame.gpus:
                self._empty_logged = empty
                if empty:
                    log.warning(
                        "%d model feature(s) have no data in the %s schema (not exported, or "
                        "not yet enough history for their window): %s",
                        len(empty),
                        schema,
                        ", ".join(empty),
                    )
                    hint = counters_hint(schema, self.model.features, empty)
                    if hint:
                        log.warning("%s", hint)
            partial = partial_signals(frame)
            if partial != self._partial_logged:
                self._partial_logged = partial
                if partial:
                    log.warning("%s", partial)
            gpus, gone = apply_states(
                self.client, schema, gpus, self.keep, at=self.at, interval_s=interval_s
            )
            families: list[Any] = []
            if self.econ is not None and gpus:
                try:
                    gpus, families = self.econ(gpus)
                except Exception as exc:  # economics must never stop the failure scores
                    self._econ_failure.failed(exc)
                else:
                    self._econ_failure.worked()
        except RunTimedOut as exc:
            if exc.shutting_down:
                log.info("%s; previous results stay served until exit", exc)
                return False
            self._fail(
                f"timed out: the scoring run was abandoned after {self.run_budget_s:.0f}s "
                "(--run.budget); previous results stay served",
                "timed_out",
            )
            return False
        except PrometheusError as exc:
            self._fail(one_line(exc))
            return False
        except Exception as exc:  # a bug in one run must not end the sidecar
            log.exception("scoring run failed")
            # The API shows this: the exception's kind and text, never the installation's paths.
            self._fail(f"internal error: {type(exc).__name__}: {without_paths(one_line(exc))}")
            return False
        snap = Snapshot(
            time.time(),
            time.monotonic() - started,
            schema,
            tuple(gpus),
            tuple(families),
            gone,
            empty,
            frame.history,
        )
        with self._lock:
            self.snapshot = snap
            self.last_error = ""
            self._state = "ok"
        log.info(
            "scored %d GPUs (%s schema, %s history) in %.2fs, %d feature queries failed",
            len(gpus),
            schema,
            frame.history,
            snap.duration_s,
            frame.failed_queries,
        )
        return True

    def _fail(self, message: str, state: str = "failed") -> None:
        with self._lock:
            self.runs_failed += 1
            self.last_error = message
            self._state = state
        if not self.serving:
            return  # a one-shot run says why it failed through its command, once
        if self.snapshot is None:
            log.warning("scoring run failed, no results to serve yet: %s", message)
        else:
            when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.snapshot.finished_at))
            log.warning("scoring run failed, serving the results of %s: %s", when, message)

    def run_state(self) -> str:
        """What the scoring loop is doing: "stuck" while a run is past its budget (something
        other than a query, e.g. the model, is hanging), else the state of the last run."""
        with self._lock:
            return self._state_locked()

    def _state_locked(self) -> str:
        if (
            self._run_started is not None
            and self.run_budget_s is not None
            and time.monotonic() - self._run_started > self.run_budget_s + STUCK_GRACE_SECONDS
        ):
            return "stuck"
        return self._state

    def loop(self, interval_s: float, stop: threading.Event) -> None:
        while not stop.is_set():
            began = time.monotonic()
            self.run_once()
            stop.wait(max(0.0, interval_s - (time.monotonic() - began)))

    def current(self) -> tuple[Snapshot | None, str]:
        with self._lock:
            if self._state_locked() == "stuck":
                assert self._run_started is not None
                age = time.monotonic() - self._run_started
                return self.snapshot, (
                    f"stuck: the current scoring run has taken {age:.0f}s, past its "
                    f"{self.run_budget_s:.0f}s budget; previous results stay served"
                )
            return self.snapshot, self.last_error


def risk_factor_info(gpus: Iterable[GpuScore]) -> Any:
    """``gpu_scorer_risk_factor_info{feature, label} 1`` for every feature now among the factors.

    One series per feature (not per GPU): alert annotations and dashboards join on ``feature`` to
    show the operator words of :mod:`.factor_labels` next to a risk factor.
    """
    from prometheus_client.core import GaugeMetricFamily

    info = GaugeMetricFamily(
        "gpu_scorer_risk_factor_info",
        _HELP["gpu_scorer_risk_factor_info"],
        labels=["feature", "label"],
    )
    names = {name for g in gpus for factors in g.risk_factors.values() for name, _ in factors}
    for name in sorted(names):
        info.add_metric([name, factor_label(name)], 1.0)
    return info


class ScorerCollector:
    """prometheus_client collector rendering the current snapshot and self-metrics."""

    def __init__(self, scorer: Scorer) -> None:
        self.scorer = scorer

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        snap, _ = self.scorer.current()
        ident = list(SCORER_IDENTITY_LABELS)
        prob = GaugeMetricFamily(
            "gpu_failure_probability", _HELP["gpu_failure_probability"], labels=[*ident, "horizon"]
        )
        factor = GaugeMetricFamily(
            "gpu_failure_risk_factor",
            _HELP["gpu_failure_risk_factor"],
            labels=[*ident, "horizon", "feature"],
        )
        anomaly = GaugeMetricFamily("gpu_anomaly_score", _HELP["gpu_anomaly_score"], labels=ident)
        rank = GaugeMetricFamily(
            "gpu_risk_rank", _HELP["gpu_risk_rank"], labels=[*ident, "horizon"]
        )
        ttf = GaugeMetricFamily(
            "gpu_time_to_failure_seconds",
            _HELP["gpu_time_to_failure_seconds"],
            labels=[*ident, "quantile"],
        )
        fclass = GaugeMetricFamily(
            "gpu_failure_class_probability",
            _HELP["gpu_failure_class_probability"],
            labels=[*ident, "class"],
        )
        if snap is not None:
            for g in snap.gpus:
                for q, seconds in g.time_to_failure.items():
                    if math.isfinite(seconds):
                        ttf.add_metric([*g.labels, q], seconds)
                if g.failure_class and math.isfinite(g.failure_class_probability):
                    fclass.add_metric([*g.labels, g.failure_class], g.failure_class_probability)
                for h in HORIZONS:
                    if math.isfinite(g.probability[h]):  # NaN: not known (node not reporting)
                        prob.add_metric([*g.labels, h], g.probability[h])
                    for name, value in g.risk_factors[h]:
                        factor.add_metric([*g.labels, h, name], value)
                if math.isfinite(g.anomaly):
                    anomaly.add_metric(g.labels, g.anomaly)
            for h in HORIZONS:
                for place, g in enumerate(snap.ranked(h), start=1):
                    rank.add_metric([*g.labels, h], float(place))
        yield prob
        yield rank
        yield factor
        yield anomaly
        yield risk_factor_info(snap.gpus if snap is not None else [])
        yield from state_families(snap)
        yield ttf
        yield fclass
        if snap is not None:
            yield from snap.econ_families
        now = time.time()
        last = GaugeMetricFamily(
            "gpu_scorer_last_run_timestamp_seconds",
            _HELP["gpu_scorer_last_run_timestamp_seconds"],
        )
        duration = GaugeMetricFamily(
            "gpu_scorer_run_duration_seconds", _HELP["gpu_scorer_run_duration_seconds"]
        )
        scored = GaugeMetricFamily("gpu_scorer_gpus_scored", _HELP["gpu_scorer_gpus_scored"])
        age = GaugeMetricFamily(
            "gpu_scorer_results_age_seconds", _HELP["gpu_scorer_results_age_seconds"]
        )
        if snap is not None:
            last.add_metric([], snap.finished_at)
            duration.add_metric([], snap.duration_s)
            scored.add_metric([], len(snap.gpus))
            age.add_metric([], max(0.0, now - snap.finished_at))
        yield last
        yield duration
        yield scored
        yield age
        errors = CounterMetricFamily(
            "gpu_scorer_query_errors", _HELP["gpu_scorer_query_errors_total"]
        )
        errors.add_metric([], float(self.scorer.client.errors))
        yield errors
        failed = CounterMetricFamily(
            "gpu_scorer_runs_failed", _HELP["gpu_scorer_runs_failed_total"]
        )
        failed.add_metric([], float(self.scorer.runs_failed))
        yield failed
        refused = CounterMetricFamily(
            "gpu_scorer_model_reload_errors", _HELP["gpu_scorer_model_reload_errors_total"]
        )
        refused.add_metric([], float(self.scorer.model_reload_errors))
        yield refused
        bad = CounterMetricFamily(
            "gpu_scorer_bad_values", _HELP["gpu_scorer_bad_values_total"], labels=["feature"]
        )
        for feature, count in sorted(self.scorer.bad_values.counts().items()):
            bad.add_metric([feature], float(count))
        yield bad
        state = GaugeMetricFamily(
            "gpu_scorer_run_state", _HELP["gpu_scorer_run_state"], labels=["state"]
        )
        current = self.scorer.run_state()
        for name in RUN_STATES:
            state.add_metric([name], 1.0 if name == current else 0.0)
        yield state
        history = GaugeMetricFamily(
            "gpu_scorer_history_source", _HELP["gpu_scorer_history_source"], labels=["source"]
        )
        if snap is not None:
            for name in HISTORY_SOURCES:
                history.add_metric([name], 1.0 if name == snap.history else 0.0)
        yield history
