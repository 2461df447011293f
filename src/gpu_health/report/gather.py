"""Gather a fleet report from Prometheus with a handful of fleet-wide PromQL queries.

Each section is one or two queries that return every GPU at once (never a query per GPU), so a
report of 10,000 GPUs costs the same number of round trips as one of 10. A section whose metrics
are absent (no scorer running, dcgm-exporter input, which has no health score, or a health score
that stopped) is left empty and explained in ``notes`` rather than failing the report.
"""

from __future__ import annotations

import json
import math
import re
import time
import urllib.error
from collections.abc import Callable
from typing import Any

from gpu_health import stack
from gpu_health.errors import UserError
from gpu_health.prometheus_access import PLAIN, Access
from gpu_health.report.accuracy import NO_ACCURACY, gather_accuracy
from gpu_health.report.model import (
    ACTIONS,
    GRADES,
    AlertRow,
    FleetReport,
    RiskRow,
    StateRow,
    XidRow,
)
from gpu_health.report.runbooks import DEFAULT_RUNBOOK_URL_PATTERN, class_runbook_url
from gpu_health.safetext import one_line
from gpu_health.scorer.econ.engine import not_valued_reason
from gpu_health.telemetry import engine as query_engine
from gpu_health.telemetry.freshness import fresh_range, measure
from gpu_health.telemetry.schema import DCGM_INSTANCE_LABEL, choose_schema
from gpu_health.telemetry.state import STATES, gather_states, rank_key
from gpu_health.telemetry.state_queries import LABELS, LOOKBACK
from gpu_health.telemetry.xids import DCGM_XID_CODE_LABEL, DCGM_XID_GAUGES

Query = Callable[[str], list[Any]]
_DURATION = re.compile(r"^(\d+)([smhdw])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
TREND_POINTS = 120
#: Seconds each instant query may take, status line to last byte (``--query-timeout``); a busy
#: Prometheus of 10,000 GPUs answered an XID query in 19 to 35 s.
DEFAULT_QUERY_TIMEOUT = 30.0
#: A range query (the trends) may take this many times the instant-query timeout: it evaluates
#: the expression at every step of the period (60 s by default, as before the option).
RANGE_TIMEOUT_FACTOR = 2.0


#: The longest ``--period``: ten years, far past any retention. ``0d`` and ``99999999w`` reached
#: Prometheus, which refused the query, and the report said it could not reach Prometheus.
MAX_PERIOD_S = 3650 * 86400


def parse_period(text: str) -> int:
    """``7d``, ``24h``, ``90m`` -> seconds, from one second to :data:`MAX_PERIOD_S`."""
    match = _DURATION.match(text.strip())
    if not match or len(match.group(1)) > 12:
        raise UserError(f"--period {text!r}: expected a duration like 24h, 7d or 30d")
    seconds = int(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if not 0 < seconds <= MAX_PERIOD_S:
        raise UserError(f"--period {text!r}: expected more than 0 and at most 3650d")
    return seconds


def _value(sample: dict[str, Any]) -> float:
    return float(sample["value"][1])


def _class_of(sample: dict[str, Any]) -> str:
    return _label(sample, "class")


def _timed_out(exc: BaseException) -> bool:
    """Whether a request failed by running out of time rather than by finding no server: the
    deadline's TimeoutError, or urllib's URLError around a socket timeout."""
    return isinstance(exc, TimeoutError) or isinstance(getattr(exc, "reason", None), TimeoutError)


def _label(sample: dict[str, Any], *names: str) -> str:
    metric = sample["metric"]
    for name in names:
        if name in metric:
            return str(metric[name])
    return ""


class Gatherer:
    """Runs the report's queries against one Prometheus at one evaluation time."""

    def __init__(
        self,
        url: str,
        period: str,
        at: float | None = None,
        runbook_url_pattern: str = DEFAULT_RUNBOOK_URL_PATTERN,
        query_timeout: float = DEFAULT_QUERY_TIMEOUT,
        timeout_hint: str = "raise --query-timeout",
        access: Access = PLAIN,
    ) -> None:
        self.url = url.rstrip("/")
        #: credentials and TLS context of every request
        self.access = access
        #: what a timeout error tells the user to do ("" for a caller with no such option)
        self.timeout_hint = timeout_hint
        #: seconds each request may take (range queries: RANGE_TIMEOUT_FACTOR times it)
        self.query_timeout = query_timeout
        self.runbook_url_pattern = runbook_url_pattern
        self.period = period
        self.period_seconds = parse_period(period)
        self.at = at if at is not None else time.time()
        self._engine: str | None = None
        #: uuid -> state, filled by the states section for the risk ranking
        self._state_of: dict[str, str] = {}
        #: The data's scrape interval at the report's time, measured once per report: the
        #: schema choice and the GPU states read the same recent windows from it.
        self._interval_s: float | None = None
        self._scores: list[Any] | None = None  # the overall health scores, once per report

    @property
    def engine(self) -> str:
        """The query engine (Prometheus or VictoriaMetrics), detected on first use."""
        if self._engine is None:
            try:
                # a side request with a fallback (the engine probe), not data: short
                body = stack.http_get(
                    f"{self.url}/api/v1/status/buildinfo",
                    timeout=min(5.0, self.query_timeout),
                    access=self.access,
                )
                info = json.loads(body)
            except (OSError, ValueError, RecursionError):  # URLError is an OSError
                info = None
            self._engine = query_engine.detect(info, self._probe)
        return self._engine

    def _probe(self, promql: str) -> bool:
        try:
            stack.query(
                self.url, promql, at=self.at, timeout=self.query_timeout, access=self.access
            )
        except (OSError, RuntimeError, ValueError):  # URLError, TimeoutError: OSErrors
            return False
        return True

    def query(self, promql: str, at: float | None = None) -> list[Any]:
        promql = query_engine.rewrite(promql, self.engine)
        when = self.at if at is None else at
        try:
            return stack.query(
                self.url, promql, at=when, timeout=self.query_timeout, access=self.access
            )
        except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
            raise self._unanswered(exc, self.query_timeout) from None
        except (ValueError, RuntimeError) as exc:  # too large, not JSON, refused by Prometheus
            raise UserError(f"Prometheus at {self.url}: {one_line(str(exc), 300)}") from None

    def _unanswered(self, exc: OSError, timeout: float, what: str = "") -> UserError:
        """The one-line error for a request that got no answer: a timeout names the timeout and
        the option that raises it; anything else (refused, no route, unknown host) is
        "cannot reach"."""
        if _timed_out(exc):
            hint = f" ({self.timeout_hint})" if self.timeout_hint else ""
            return UserError(
                f"Prometheus at {self.url} did not answer {what}within {timeout:g} s{hint}"
            )
        reason = getattr(exc, "reason", exc)
        return UserError(f"cannot reach Prometheus at {self.url}: {one_line(str(reason), 200)}")

    #: Report sections, in the order they are gathered.
    SECTIONS = ("inventory", "states", "health", "risk", "accuracy", "xids", "alerts", "trends")

    def gather(
        self, schema: str = "auto", top: int = 20, sections: tuple[str, ...] = SECTIONS
    ) -> FleetReport:
        """Run the queries of ``sections`` (a live view may skip the range-query ones)."""
        unknown = set(sections) - set(self.SECTIONS)
        if unknown:
            raise ValueError(f"unknown report sections: {sorted(unknown)}")
        self._interval_s = measure(self.query)
        self._scores = None
        choice = choose_schema(self.query, schema, interval_s=self._interval_s)
        report = FleetReport(self.url, self.at, self.period, choice.name, choice.reason)
        report.engine = self.engine
        report.gpu_count = choice.counts[choice.name]
        steps = {
            "inventory": lambda: None,  # counted by the schema decision
            "states": lambda: self._states(report),
            "health": lambda: self._health(report),
            "risk": lambda: self._risk(report, top),
            "accuracy": lambda: self._accuracy(report),
            "xids": lambda: self._xids(report),
            "alerts": lambda: self._alerts(report),
            "trends": lambda: self._trends(report),
        }
        for name in self.SECTIONS:
            if name in sections:
                steps[name]()
        return report

    def _states(self, report: FleetReport) -> None:
        """GPUs per state, and the ones not healthy, from the shared state model."""
        states = gather_states(self.query, report.schema, self.at, interval_s=self._interval_s)
        self._state_of = {uuid: s.state for uuid, s in states.items()}
        report.states = {
            name: sum(1 for s in states.values() if s.state == name) for name in STATES
        }
        # every GPU of the fleet, the absent ones included (replaced ones left it)
        report.gpu_count = len(states) - report.states["replaced"]
        report.unhealthy = [
            StateRow(s.node, s.gpu, s.uuid, s.state, s.reasons, s.age_s, s.last_state)
            for s in sorted(states.values(), key=lambda s: (rank_key(s.state, 0.0), s.uuid))
            if s.state != "healthy"
        ]

    def _recent(self, selector: str, per: str) -> str:
        """``selector``'s series now, or for one with none in the engine's lookback (5 minutes
        on Prometheus) its last value in the presence window the GPU states use (30 minutes,
        or one and a half scrape intervals of sparser data). ``per``: the label that tells a
        GPU's series of ``selector`` apart (``grade``, ``dimension``).

        Read at an instant alone, history sampled every 15 minutes, or a report a few minutes
        after the exporter's last scrape, had no health score at all while every GPU counted
        as reporting. The window is only the fallback, per GPU and ``per`` (``or on``): a GPU
        with a current sample keeps it, so a series that ended (an exporter that moved to
        another ``instance``) is not counted beside the new one, as ``last_over_time`` alone
        counted it for the whole window. ``per`` is in the ``on`` list because
        VictoriaMetrics, given ``on (uuid)`` alone, gave each of a GPU's grades the value 1."""
        window = fresh_range(self._interval_s or 0.0)
        return f"({selector} or on (uuid, {per}) last_over_time({selector}[{window}]))"

    def _health(self, report: FleetReport) -> None:
        grades = self.query(f"count by (grade) ({self._recent('gpu_health_grade', 'grade')} == 1)")
        if not grades:
            report.notes.append(self._no_health(report.schema))
            return
        counts = {_label(s, "grade"): int(_value(s)) for s in grades}
        report.grades = {grade: counts.get(grade, 0) for grade in GRADES}
        report.scores = sorted(_value(s) for s in self._overall_scores())

    def _overall_scores(self) -> list[Any]:
        """Every GPU's overall health score (:meth:`_recent`), asked once per report: the
        health and risk sections both show it."""
        if self._scores is None:
            self._scores = self.query(
                self._recent('gpu_health_score{dimension="overall"}', "dimension")
            )
        return self._scores

    def _no_health(self, schema: str) -> str:
        """Why there is no health score, by schema (the note blamed dcgm-exporter input on
        either): dcgm-exporter's metrics have none; ours have one unless it stopped (older
        samples lie in the LOOKBACK) or was never written. The LOOKBACK read takes one series
        per GPU (one grade's), as the states' own LOOKBACK query does; the last sample's exact
        age would take a subquery over every GPU's series, so it is not asked."""
        if schema != "ours":
            return (
                "No health score: dcgm-exporter's metrics carry none (gpu-health-exporter "
                "computes gpu_health_score and gpu_health_grade)."
            )
        window = fresh_range(self._interval_s or 0.0)
        older = self.query(
            f'count(last_over_time(gpu_health_grade{{grade="{GRADES[0]}"}}[{LOOKBACK}]))'
        )
        if older:
            return (
                f"No health score: no gpu_health_grade sample in the last {window} (the window "
                f"in which a GPU counts as reporting); the last ones are older, within the last "
                f"{LOOKBACK}."
            )
        return f"No health score: gpu_health_grade has no sample in the last {LOOKBACK}."

    def _risk(self, report: FleetReport, top: int) -> None:
        probabilities = self.query("gpu_failure_probability")
        if not probabilities:
            report.notes.append(
                "No risk ranking: gpu_failure_probability is absent (is gpu-health-scorer "
                "running and scraped?)."
            )
            return
        rows: dict[str, RiskRow] = {}

        def row(sample: dict[str, Any]) -> RiskRow:
            uuid = _label(sample, "uuid", "UUID")
            if uuid not in rows:
                rows[uuid] = RiskRow(
                    uuid=uuid,
                    node=_label(sample, "node", "Hostname", "hostname"),
                    model=_label(sample, "model", "modelName"),
                    gpu=_label(sample, "gpu"),
                )
            return rows[uuid]

        for sample in probabilities:
            horizon = _label(sample, "horizon")
            if horizon == "7d":
                row(sample).p7 = _value(sample)
            elif horizon == "30d":
                row(sample).p30 = _value(sample)
        for sample in self._overall_scores():
            if _label(sample, "uuid") in rows:
                rows[_label(sample, "uuid")].health = _value(sample)
        for sample in self.query('gpu_failure_risk_factor{horizon="30d"}'):
            if _label(sample, "uuid") in rows:
                rows[_label(sample, "uuid")].factors.append(
                    (_label(sample, "feature"), _value(sample))
                )
        self._failure_classes(rows)
        for sample in self.query("gpu_recommended_action == 1"):
            if _label(sample, "uuid") in rows:
                rows[_label(sample, "uuid")].action = _label(sample, "action")
        for sample in self.query("gpu_npv"):
            if _label(sample, "uuid") in rows:
                rows[_label(sample, "uuid")].npv[_label(sample, "action")] = _value(sample)
                report.currency = _label(sample, "currency") or report.currency
        for sample in self.query("gpu_residual_value"):
            if _label(sample, "uuid") in rows:
                rows[_label(sample, "uuid")].residual_value = _value(sample)
        self._unvalued(report, rows)
        for r in rows.values():
            r.state = self._state_of.get(r.uuid, "healthy")
        # Failed and absent GPUs first ("failed now"), then degraded, then healthy; risk within.
        ranked = sorted(
            rows.values(),
            key=lambda r: (*rank_key(r.state, r.p30 or 0.0), -(r.p7 or 0.0), r.uuid),
        )
        for r in ranked:
            r.factors.sort(key=lambda f: -abs(f[1]))
            del r.factors[3:]
        report.risks = ranked[:top]
        report.risk_count = len(ranked)
        actions = [r.action for r in rows.values() if r.action]
        if actions:
            report.actions = {a: actions.count(a) for a in ACTIONS}
            for r in rows.values():
                if r.action and r.action in r.npv:
                    report.npv_by_action[r.action] = (
                        report.npv_by_action.get(r.action, 0.0) + r.npv[r.action]
                    )
        elif report.unvalued:
            report.notes.append(
                "No recommendations: the scorer valued no GPU (no economics for the fleet's "
                "models; see Recommended actions)."
            )
        else:
            report.notes.append("No recommendations: gpu_recommended_action is absent.")
        residuals = [r.residual_value for r in rows.values() if r.residual_value is not None]
        report.fleet_residual_value = sum(residuals) if residuals else None

    def _unvalued(self, report: FleetReport, rows: dict[str, RiskRow]) -> None:
        """GPUs the scorer's economics did not value: its ``gpu_scorer_econ_unvalued_gpus``
        names their models, and a GPU of such a model without an action is one of them. Counted
        here per GPU (not summed from the series), so scorer replicas count a GPU once."""
        models = {_label(s, "model") for s in self.query("gpu_scorer_econ_unvalued_gpus > 0")}
        for r in rows.values():
            if r.action is None and r.model in models:
                r.not_valued = not_valued_reason(r.model)
        counts: dict[str, int] = {}
        for r in rows.values():
            if r.not_valued:
                counts[r.model] = counts.get(r.model, 0) + 1
        report.unvalued = dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))

    def _failure_classes(self, rows: dict[str, RiskRow]) -> None:
        """Each GPU's most likely failure class, chosen as the GPUFailurePredicted alert does:
        the highest probability, an exact tie (two scorer replicas) to the first class by name."""
        for sample in sorted(self.query("gpu_failure_class_probability"), key=_class_of):
            row = rows.get(_label(sample, "uuid"))
            value = _value(sample)
            if row is None or not math.isfinite(value):
                continue
            if row.failure_class_probability is None or value > row.failure_class_probability:
                row.failure_class = _class_of(sample)
                row.failure_class_probability = value
                row.runbook_url = class_runbook_url(row.failure_class, self.runbook_url_pattern)

    def _accuracy(self, report: FleetReport) -> None:
        report.accuracy = gather_accuracy(self.query)
        if not report.accuracy:
            report.accuracy_note = NO_ACCURACY

    def _xids(self, report: FleetReport) -> None:
        """Each XID code per GPU with its count in the period.

        ``increase()`` alone misses the first event of a counter that is created at its first
        XID (it starts at 1); such a counter born inside the period adds its first value. Born:
        no sample of it in the period before (not "none in the lookback before the period's
        start": on history sampled every 10 minutes that misses counters that were there).
        """
        window = self.period
        if report.schema == "ours":
            xid = "gpu_xid_errors_total"
            by = "node, uuid, xid"
            grown = f"sum by ({by}) (increase({xid}[{window}]))"
            before = f"last_over_time({xid}[{window}] offset {window})"
            born = f"sum by ({by}) (min_over_time({xid}[{window}]) unless {before})"
            promql = f"(({grown} + {born}) or {grown}) > 0.5"
            for s in self.query(promql):
                report.xids.append(
                    XidRow(_label(s, "node"), _label(s, "uuid"), _label(s, "xid"), round(_value(s)))
                )
        else:
            # dcgm-exporter keeps only the last XID code as a gauge: count its changes, plus
            # one for a code that appeared in the period (nothing of that GPU and code in the
            # period before, and no 0 of the GPU's gauge in the period: then its changes count
            # it). Since 3.3.6 dcgm-exporter also puts the code in a label, so a new code is a
            # new series that never changes and counts once, as a code born in the period.
            # Label churn splits a code's series (a job's pod, an exporter upgrade): a code is
            # born once whatever its series, and each series' changes add up. A MIG GPU
            # reports the gauge once per GPU instance: the largest instance counts. The node
            # is read under either of dcgm-exporter's names for it, and the gauge under either
            # of its names (dcgm-exporter 4.9 renamed it, DCGM_XID_GAUGES): the changes under
            # both add up, and a code the old name held in the period or the one before is not
            # born under the new one (an exporter upgrade carries the code a GPU holds over).
            lab, code = LABELS["dcgm"], DCGM_XID_CODE_LABEL
            per = f"{lab.uuid}, {lab.node}, {code}, {DCGM_INSTANCE_LABEL}"
            each = [
                f'label_replace({lab.named(f"changes({g}[{window}])")}, "name", "{i}", "", "")'
                for i, g in enumerate(DCGM_XID_GAUGES)
            ]
            changes = f"sum by ({per}) ({' or '.join(each)})"

            def first(gauge: str, earlier: tuple[str, ...]) -> str:
                held = "".join(
                    f" or last_over_time({g}[{window}]) or last_over_time({g}[{window}] offset "
                    f"{window})"
                    for g in earlier
                )
                return (
                    f"(min_over_time({gauge}[{window}]) > 0) unless on ({lab.uuid}, {code}) "
                    f"(last_over_time({gauge}[{window}] offset {window}) "
                    f"or min_over_time({gauge}[{window}]) == 0{held})"
                )

            firsts = [
                lab.named(first(g, DCGM_XID_GAUGES[:i])) for i, g in enumerate(DCGM_XID_GAUGES)
            ]
            born = f"group by ({per}) ({' or '.join(firsts)})"
            per_instance = f"(({changes} + {born}) or {changes} or {born})"
            promql = f"max by ({lab.uuid}, {lab.node}, {code}) ({per_instance}) > 0"
            last = {  # the newer name's code where a GPU has both
                _label(s, "UUID"): str(int(_value(s)))
                for g in DCGM_XID_GAUGES
                for s in self.query(f"last_over_time({g}[{window}]) > 0")
            }
            for s in self.query(promql):
                uuid = _label(s, "UUID")
                xid = _label(s, code) or last.get(uuid, "?")
                report.xids.append(XidRow(_label(s, lab.node), uuid, xid, _value(s)))
        report.xids.sort(key=lambda x: (-x.count, x.node, x.uuid, x.xid))

    def _alerts(self, report: FleetReport) -> None:
        firing_now = {
            (_label(s, "alertname"), _label(s, "uuid"), _label(s, "node"))
            for s in self.query('ALERTS{alertstate="firing"}')
        }
        for s in self.query(f'max_over_time(ALERTS{{alertstate="firing"}}[{self.period}])'):
            key = (_label(s, "alertname"), _label(s, "uuid"), _label(s, "node"))
            report.alerts.append(
                AlertRow(key[0], _label(s, "severity"), key[2], key[1], key in firing_now)
            )
        order = {"critical": 0, "warning": 1, "info": 2}
        report.alerts.sort(key=lambda a: (order.get(a.severity, 3), a.alertname, a.node, a.uuid))

    def _trends(self, report: FleetReport) -> None:
        start = self.at - self.period_seconds
        step = max(60.0, self.period_seconds / TREND_POINTS)
        range_timeout = RANGE_TIMEOUT_FACTOR * self.query_timeout
        series = {
            "fleet mean health score": 'avg(gpu_health_score{dimension="overall"})',
            "mean 30-day failure probability": 'avg(gpu_failure_probability{horizon="30d"})',
        }
        if report.schema == "ours":
            series["XIDs per hour"] = "sum(increase(gpu_xid_errors_total[1h]))"
            series["corrected ECC errors per hour"] = (
                'sum(increase(gpu_ecc_errors_total{type="corrected",scope="volatile"}[1h]))'
            )
        for name, promql in series.items():
            try:
                result = stack.query_range(
                    self.url,
                    promql,
                    start,
                    self.at,
                    step,
                    timeout=range_timeout,
                    access=self.access,
                )
            except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
                what = "a trend (range) query "
                raise self._unanswered(exc, range_timeout, what) from None
            except (ValueError, RuntimeError) as exc:
                raise UserError(f"Prometheus at {self.url}: {one_line(str(exc), 300)}") from None
            points = _range_points(result)
            if points:
                report.trends[name] = points


def _range_points(result: Any) -> list[tuple[float, float]]:
    """The (time, value) pairs of a range answer's first series; an answer of another shape
    (an instant ``value``, a proxy's error page turned JSON) is no trend rather than a crash."""
    if not isinstance(result, list) or not result or not isinstance(result[0], dict):
        return []
    values = result[0].get("values")
    if not isinstance(values, list):
        return []
    points = []
    for pair in values:
        try:
            t, v = pair
            points.append((float(t), float(v)))
        except (TypeError, ValueError):
            continue
    return points
