"""Every PromQL query the docs hand an operator works on a real Prometheus.

The runbooks tell on-call what to ask Prometheus (``curl … --data-urlencode 'query=…'``) and
docs/*.md show ```promql blocks to paste. A query with a syntax error costs the first minutes of
an incident; one that names a metric, a label or an alert nothing publishes answers an empty
result, which reads as "all clear". So the queries are collected from docs/ and README.md at test
time (a new one is checked without touching this file), placeholders such as ``<uuid>`` are
filled in, and each query:

1. is asked of a real Prometheus that holds the shipped rules (rules/) and an hour of simulated
   fleet history with faults and scorer outputs (``tests.mixin.rule_history``): an error answer,
   HTTP 400 for the syntax or 422 for the evaluation, fails;
2. reads only series that exist: an exporter or scorer metric (the catalogues the exporter,
   the scorer and docs/metrics.md are built from), a recording rule of rules/, or Prometheus'
   own ``up``, ``ALERTS`` and ``ALERTS_FOR_STATE``; every label a selector, ``by``, ``on`` or
   ``group_left`` names is one those series carry (a recording rule's labels are worked out from
   its expression), and every ``alertname`` is a shipped alert;
3. matches exactly only label values the history holds (``type="uncorrected"``,
   ``job="gpu-health-exporter"``), where the history has that metric and label.

One Prometheus serves the whole module: the history costs about a second of CPU to write.
"""

from __future__ import annotations

import json
import re
import shlex
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import promql_parser as pp
import pytest
import yaml

from gpu_health import stack
from gpu_health.scorer.catalogue import OUTCOME_METRICS, SCORER_IDENTITY_LABELS, SCORER_METRICS
from gpu_health.telemetry.catalogue import (
    CATALOGUE,
    HEALTH_METRICS,
    IDENTITY_LABELS,
    INFO_LABELS,
    NVSWITCH_METRICS,
    POD_LABELS,
    SELF_METRICS,
)
from gpu_health.web import SERVER_METRICS
from tests.mixin import rule_history

REPO = Path(__file__).resolve().parents[2]
DOC_FILES = (*sorted((REPO / "docs").rglob("*.md")), REPO / "README.md")
RULES = REPO / "rules" / "gpu-health-rules.yaml"
ALERTS = REPO / "rules" / "gpu-health-alerts.yaml"

#: What the docs write for a value the operator fills in, and what the test fills in: values of
#: the simulated fleet's shape. A query with a placeholder not listed here fails: add it.
PLACEHOLDERS = {
    "uuid": "GPU-0003",
    "node": "gpu-node-001",
    "gpu": "3",
    "index": "3",
    "instance": "gpu-node-001:9840",
    "pci_bus_id": "00000000:1B:00.0",
    "model": "H100",
}
PLACEHOLDER = re.compile(r"<([a-z][a-z0-9_]*)>")
FENCE = re.compile(r"^\s*(```+|~~~+)\s*([\w+-]*)")
#: ``query=`` as curl's --data-urlencode or a URL's parameter gives it (not ``--query-gpu=``)
QUERY_PARAM = re.compile(r"(?<![\w.-])query=")
#: A regular expression that only lists names: ``GPUFallenOffBus|GPUMetricsAbsent``
ALTERNATION = re.compile(r"[A-Za-z0-9_]+(\|[A-Za-z0-9_]+)*")
#: Labels Prometheus adds to every scraped series.
TARGET_LABELS = frozenset({"job", "instance"})
#: Scorer series about the scorer or the fleet, not one GPU: no GPU identity labels.
SCORER_FLEET_PREFIXES = ("gpu_scorer_", "gpu_plan_", "gpu_prediction_")
#: The history is this long (rule_history makes 3 hours; 1 is enough to run every query and
#: takes a third of the time to write).
HISTORY_HOURS = 1


# ------------------------------------------------------------------------------------------
# The queries in the docs


@dataclass(frozen=True)
class DocQuery:
    """One query as a doc gives it: ``where`` is ``path:line``, ``lines`` the lines it spans."""

    where: str
    text: str
    lines: tuple[int, ...]

    def filled(self) -> str:
        """The query with its placeholders filled in (unknown ones left as they are)."""
        return PLACEHOLDER.sub(lambda m: PLACEHOLDERS.get(m[1], m[0]), self.text)


def _blocks(lines: list[str]) -> Iterator[tuple[str, list[tuple[int, str]]]]:
    """(language, [(line number, text)]) of every fenced code block."""
    language: str | None = None
    block: list[tuple[int, str]] = []
    for number, line in enumerate(lines, 1):
        fence = FENCE.match(line)
        if fence and language is None:
            language, block = fence[2].lower(), []
        elif fence and language is not None:
            yield language, block
            language = None
        elif language is not None:
            block.append((number, line))


def _promql_block(rel: str, block: list[tuple[int, str]]) -> Iterator[DocQuery]:
    """A ```promql block holds queries separated by ``# comment`` lines or blank lines; a query
    may span several lines."""
    current: list[tuple[int, str]] = []
    for number, line in [*block, (0, "")]:
        if line.strip() and not line.strip().startswith("#"):
            current.append((number, line))
            continue
        if current:
            numbers = tuple(n for n, _ in current)
            text = "\n".join(t for _, t in current)
            yield DocQuery(f"{rel}:{numbers[0]}", text, numbers)
        current = []


def _shell_block(rel: str, block: list[tuple[int, str]]) -> Iterator[DocQuery]:
    """The ``query=`` of every curl command (lines ending in a backslash continue it)."""
    command: list[tuple[int, str]] = []
    for number, line in block:
        command.append((number, line.rstrip().removesuffix("\\")))
        if line.rstrip().endswith("\\"):
            continue
        numbers = tuple(n for n, _ in command)
        text = " ".join(t for _, t in command)
        command = []
        if "curl" not in text or not QUERY_PARAM.search(text):
            continue
        for word in shlex.split(text, comments=True):
            if word.startswith("query="):
                yield DocQuery(f"{rel}:{numbers[0]}", word.removeprefix("query="), numbers)
            elif "?" in word and QUERY_PARAM.search(word):
                for query in urllib.parse.parse_qs(urllib.parse.urlsplit(word).query)["query"]:
                    yield DocQuery(f"{rel}:{numbers[0]}", query, numbers)


def collect_queries() -> list[DocQuery]:
    """Every query the docs give: ```promql blocks and curl commands in other code blocks."""
    queries: list[DocQuery] = []
    for path in DOC_FILES:
        rel = path.relative_to(REPO).as_posix()
        for language, block in _blocks(path.read_text().splitlines()):
            if language == "promql":
                queries += _promql_block(rel, block)
            else:
                queries += _shell_block(rel, block)
    return queries


QUERIES = collect_queries()
IDS = [q.where for q in QUERIES]


# ------------------------------------------------------------------------------------------
# What series exist and which labels they carry


def _rules(path: Path) -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(path.read_text())["groups"] for rule in group["rules"]]


def published_labels() -> dict[str, frozenset[str]]:
    """Metric name -> its labels, for every series the exporter and the scorer publish (the
    catalogues they are built from) and Prometheus' ``up``."""
    ident, target = set(IDENTITY_LABELS), set(TARGET_LABELS)
    labels: dict[str, set[str]] = {"up": target}
    for spec in CATALOGUE:
        labels[spec.name] = ident | set(spec.labels) | target
    labels["gpu_info"] = ident | set(INFO_LABELS) | target
    labels["gpu_pod_info"] = ident | set(POD_LABELS) | target
    for name, _help, own in HEALTH_METRICS:
        labels[name] = ident | set(own) | target
    for name, _kind, _help, own in (*SELF_METRICS, *NVSWITCH_METRICS):
        labels[name] = set(own) | target
    for name, _type, _help, own in (*SCORER_METRICS, *OUTCOME_METRICS):
        per_gpu = not name.startswith(SCORER_FLEET_PREFIXES)
        labels[name] = set(own) | target | (set(SCORER_IDENTITY_LABELS) if per_gpu else set())
    # the scorer's HTTP server (the exporter's are among SELF_METRICS)
    for name, _server_kind, _help in SERVER_METRICS:
        labels[f"gpu_scorer_{name}"] = set(target)
    return {name: frozenset(value) for name, value in labels.items()}


class LabelModel:
    """Which labels a PromQL expression's result carries, and what in it names a metric, a label
    or an alert that does not exist. Recording rules and alerts get the labels of their
    expression, as Prometheus computes them (aggregation ``by``/``without``, one-to-one matching
    ``on``/``ignoring``, ``group_left``/``group_right``, ``label_replace``)."""

    def __init__(self) -> None:
        self.metrics: dict[str, frozenset[str]] = published_labels()
        self.alerts: dict[str, frozenset[str]] = {}
        self.problems: list[str] = []
        for rule in _rules(RULES):  # in file order: a rule reads only the ones before it
            own = self.labels(pp.parse(rule["expr"])) or set()
            self.metrics[rule["record"]] = frozenset(own | set(rule.get("labels", {})))
        for rule in _rules(ALERTS):
            own = self.labels(pp.parse(rule["expr"])) or set()
            extra = set(rule.get("labels", {})) | {"alertname"}
            self.alerts[rule["alert"]] = self.alerts.get(rule["alert"], frozenset()) | own | extra

    @property
    def records(self) -> set[str]:
        return {rule["record"] for rule in _rules(RULES)}

    def check(self, promql: str) -> list[str]:
        """What in ``promql`` names something that does not exist (empty: nothing)."""
        self.problems = []
        self.labels(pp.parse(promql))
        return self.problems

    def _need(self, what: str, wanted: Any, have: set[str] | None) -> None:
        missing = sorted(set(wanted) - have) if have is not None else []
        if missing:
            self.problems.append(f"{what} {missing}: the series carry only {sorted(have or ())}")

    def _selector(self, selector: Any) -> set[str]:
        name: str | None = selector.name
        matchers = selector.matchers.matchers
        used = {m.name for m in matchers} - {"__name__"}
        if name in ("ALERTS", "ALERTS_FOR_STATE"):
            have = self._alert_labels(matchers)
            if name == "ALERTS":
                have.add("alertstate")
        elif name in self.metrics:
            have = set(self.metrics[name])
        else:
            self.problems.append(
                f"unknown metric {name!r}: not an exporter or scorer metric, nor a "
                "recording rule of rules/"
            )
            return used
        self._need(f"{name}{{…}} selects on labels", used, have)
        return have

    def _alert_labels(self, matchers: Any) -> set[str]:
        """The labels of the alerts an ``ALERTS`` selector names (``alertname="A"`` or
        ``=~"A|B"``), or of every alert; a name no rule has, or an ``alertstate`` that is
        neither firing nor pending, is a problem."""
        named: list[str] = []
        for m in matchers:
            plain = m.op == pp.MatchOp.Equal or (
                m.op == pp.MatchOp.Re and ALTERNATION.fullmatch(m.value)
            )
            if m.name == "alertname" and plain:
                named += m.value.split("|")
            if m.name == "alertstate" and plain:
                wrong = set(m.value.split("|")) - {"firing", "pending"}
                if wrong:
                    self.problems.append(f"alertstate is firing or pending, not {sorted(wrong)}")
        unknown = [alert for alert in named if alert not in self.alerts]
        if unknown:
            self.problems.append(f"no alert is named {unknown} (rules/{ALERTS.name})")
        chosen = [self.alerts[a] for a in named if a in self.alerts] or self.alerts.values()
        return set(frozenset().union(*chosen))

    def labels(self, expr: Any) -> set[str] | None:
        """The labels of ``expr``'s result; None for a scalar or a string."""
        if isinstance(expr, pp.VectorSelector):
            return self._selector(expr)
        if isinstance(expr, pp.MatrixSelector):
            return self._selector(expr.vector_selector)
        if isinstance(expr, pp.SubqueryExpr | pp.ParenExpr | pp.UnaryExpr):
            return self.labels(expr.expr)
        if isinstance(expr, pp.NumberLiteral | pp.StringLiteral):
            return None
        if isinstance(expr, pp.Call):
            return self._call(expr)
        if isinstance(expr, pp.AggregateExpr):
            return self._aggregate(expr)
        if isinstance(expr, pp.BinaryExpr):
            return self._binary(expr)
        raise TypeError(f"PromQL node not modelled: {type(expr).__name__}")

    def _call(self, call: Any) -> set[str] | None:
        args = [self.labels(arg) for arg in call.args]
        if call.func.return_type != pp.ValueType.Vector:
            return None
        if call.func.name in ("label_replace", "label_join"):
            return (args[0] or set()) | {call.args[1].val}
        if call.func.name in ("vector", "absent", "absent_over_time"):
            return set()
        return set().union(*(a for a in args if a is not None))

    def _aggregate(self, agg: Any) -> set[str]:
        inner = self.labels(agg.expr) or set()
        if agg.param is not None:
            self.labels(agg.param)
        op, modifier = str(agg.op), agg.modifier
        if modifier is not None and modifier.type == pp.AggModifierType.By:
            self._need(f"{op} by", modifier.labels, inner)
            result = set(modifier.labels)
        elif modifier is not None:
            result = inner - set(modifier.labels)
        else:
            result = set()
        if op in ("topk", "bottomk", "limitk", "limit_ratio"):
            return inner  # they select series, which keep all their labels
        if op == "count_values":
            result.add(agg.param.val)
        return result

    def _binary(self, binary: Any) -> set[str] | None:
        lhs, rhs = self.labels(binary.lhs), self.labels(binary.rhs)
        if lhs is None or rhs is None:  # with a scalar: the vector side's labels
            return rhs if lhs is None else lhs
        op, modifier = str(binary.op), binary.modifier
        matching = None if modifier is None else modifier.matching
        card = None if modifier is None else modifier.card
        group = set() if modifier is None else set(modifier.group_labels or ())
        on: set[str] | None = None  # on (…): the labels matched on
        ignoring: set[str] = set()
        if matching is not None and matching.type == pp.LabelModifierType.Include:
            on = set(matching.labels)
            self._need(f"{op} on (left side)", on, lhs)
            self._need(f"{op} on (right side)", on, rhs)
        elif matching is not None:
            ignoring = set(matching.labels)
        if op == "or":
            return lhs | rhs
        if op in ("and", "unless"):
            return lhs
        if card == pp.VectorMatchCardinality.ManyToOne:
            self._need(f"{op} group_left", group, rhs)
            return lhs | group
        if card == pp.VectorMatchCardinality.OneToMany:
            self._need(f"{op} group_right", group, lhs)
            return rhs | group
        if on is not None:
            return on  # one-to-one on (…) keeps only those labels
        return lhs - ignoring


@pytest.fixture(scope="module")
def model() -> LabelModel:
    return LabelModel()


# ------------------------------------------------------------------------------------------
# Static checks: no Prometheus needed


def test_the_docs_give_queries_and_every_one_is_collected() -> None:
    """Guards the collector: a doc line with ``query=`` that no collected query spans would go
    unchecked (a query in prose, or a form the collector does not know)."""
    assert len(QUERIES) >= 40, f"the collector lost queries (46 when it was written): {IDS}"
    assert any(q.where.startswith("docs/runbooks/") for q in QUERIES)
    assert any("\n" in q.text for q in QUERIES), "the multi-line ```promql query was lost"
    spanned = {(q.where.rsplit(":", 1)[0], n) for q in QUERIES for n in q.lines}
    missed = [
        f"{path.relative_to(REPO).as_posix()}:{n}"
        for path in DOC_FILES
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if QUERY_PARAM.search(line) and (path.relative_to(REPO).as_posix(), n) not in spanned
    ]
    assert missed == [], "query= outside a fenced curl command: put it in a ```sh block"


@pytest.mark.parametrize("query", QUERIES, ids=IDS)
def test_a_documented_query_reads_only_series_labels_and_alerts_that_exist(
    query: DocQuery, model: LabelModel
) -> None:
    """Checked without Prometheus, so a wrong name fails with the reason, not an empty answer."""
    unknown = sorted(set(PLACEHOLDER.findall(query.filled())))
    assert not unknown, f"{query.where}: placeholders {unknown}: add them to PLACEHOLDERS"
    try:
        problems = model.check(query.filled())
    except ValueError as exc:  # promql_parser: the query does not parse
        pytest.fail(f"{query.where}: {query.text!r} does not parse: {exc}")
    if problems:
        pytest.fail(f"{query.where}: {query.text!r}: " + "; ".join(problems))


def test_the_label_model_reads_the_shipped_rules_without_complaint(model: LabelModel) -> None:
    """The model is right about ~70 real expressions: every label a rule groups, joins or
    selects on is one it derives for that series."""
    complaints = {}
    for rule in _rules(RULES) + _rules(ALERTS):
        if problems := model.check(rule["expr"]):
            complaints[rule.get("record") or rule.get("alert")] = problems
    assert complaints == {}


@pytest.mark.parametrize(
    "promql, complaint",
    [
        ("gpu_row_remap_pendng", "unknown metric 'gpu_row_remap_pendng'"),
        ('gpu_up{uid="x"}', "gpu_up{…} selects on labels ['uid']"),
        ("sum by (rack) (gpu_up)", "sum by ['rack']"),
        ('gpu_type:gpu_ecc_errors:rate5m{scope="volatile"}', "selects on labels ['scope']"),
        ('node:gpu_up:sum{uuid="x"}', "selects on labels ['uuid']"),
        ("gpu_up * on (uuid) group_left (rack) gpu_info", "group_left ['rack']"),
        ("gpu_up unless on (rack) gpu_asset_info", "on (left side) ['rack']"),
        ('ALERTS{alertname="GPUFallenOfBus"}', "no alert is named ['GPUFallenOfBus']"),
        ('ALERTS{alertname=~"GPUExporterDown|GPUMetricAbsent"}', "['GPUMetricAbsent']"),
        ('ALERTS{alertname="GPUMassFailure", uuid="x"}', "selects on labels ['uuid']"),
        ('ALERTS{alertstate="fired"}', "alertstate is firing or pending, not ['fired']"),
        ('ALERTS_FOR_STATE{alertname="GPUFallenOffBus", alertstate="firing"}', "['alertstate']"),
    ],
)
def test_the_label_model_finds_what_does_not_exist(
    promql: str, complaint: str, model: LabelModel
) -> None:
    """The static check is only as good as the model: each of these must be caught."""
    problems = model.check(promql)
    assert any(complaint in p for p in problems), problems


@pytest.mark.parametrize(
    "promql",
    [
        'sum by (datacenter, rack) (gpu_failure_probability{horizon="30d"} * on (uuid) '
        "group_left (datacenter, rack) max by (uuid, datacenter, rack) (gpu_asset_info))",
        'label_replace(gpu_up, "host", "$1", "node", "(.*)") * on (host) group_left () '
        'label_replace(up, "host", "$1", "instance", "(.*):.*")',
        'count_values("v", gpu_up) * on (v) group_left () count_values("v", up)',
        "time() - gpu_scorer_last_run_timestamp_seconds",
        "topk by (node) (1, gpu_temperature_celsius) * on (uuid) group_left (driver_version) "
        "gpu_info",
    ],
)
def test_the_label_model_accepts_what_does_exist(promql: str, model: LabelModel) -> None:
    assert model.check(promql) == []


# ------------------------------------------------------------------------------------------
# On a real Prometheus


def _wait_for_rule_groups(url: str, timeout: float = 30.0) -> None:
    """Until every rule group has been evaluated once (so recording rules have series)."""
    deadline = time.monotonic() + timeout
    while True:
        groups = json.loads(stack.http_get(f"{url}/api/v1/rules"))["data"]["groups"]
        if groups and all(not g["lastEvaluation"].startswith("0001-") for g in groups):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"rule groups not evaluated within {timeout}s: {groups}")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One Prometheus for every query: the shipped rules, and an hour of simulated fleet with
    faults, a lost GPU, a down exporter and scorer outputs, ending now (so the rules, evaluated
    live, read it)."""
    work = tmp_path_factory.mktemp("documented-queries")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(rule_history, "HOURS", HISTORY_HOURS)
        history = rule_history.make_history(time.time())
    source = work / "history.om"
    source.write_text(history.text)
    stack.promtool_backfill(source, work / "tsdb", block_duration="2400h")
    source.unlink()
    config = stack.write_prometheus_config(work / "prometheus.yml", rule_files=[RULES, ALERTS])
    with stack.prometheus(work, config, data_dir=work / "tsdb") as server:
        _wait_for_rule_groups(server.url)
        yield server.url


@pytest.mark.integration
@pytest.mark.parametrize("query", QUERIES, ids=IDS)
def test_a_documented_query_runs_on_prometheus(query: DocQuery, prometheus: str) -> None:
    """Prometheus accepts and evaluates it: HTTP 400 is a syntax error, 422 an evaluation
    that fails (such as a many-to-many match), both bugs in the doc."""
    try:
        stack.query(prometheus, query.filled())
    except RuntimeError as exc:
        pytest.fail(f"{query.where}: {exc}")


@pytest.mark.integration
@pytest.mark.parametrize("query", QUERIES, ids=IDS)
def test_a_documented_query_matches_label_values_the_history_holds(
    query: DocQuery, prometheus: str, model: LabelModel
) -> None:
    """A value matched with ``=`` (``type="uncorrected"``) is one the history holds for that
    metric, where it holds the metric with that label: the simulator's exporter series are the
    exporter's own. Placeholders, recording rules (whose series the live rules made only just
    now) and ``ALERTS`` (checked against the rules statically) are left out."""
    try:
        tree = pp.parse(query.filled())
    except ValueError:
        pytest.skip("does not parse: the other two tests of this query say so")
    wrong = []
    for selector in _selectors(tree):
        name = selector.name
        if name is None or ":" in name or name.startswith("ALERTS") or name not in model.metrics:
            continue
        for matcher in selector.matchers.matchers:
            if matcher.op != pp.MatchOp.Equal or matcher.value in PLACEHOLDERS.values():
                continue
            held = _held_values(prometheus, name, matcher.name)
            if held and matcher.value not in held:
                wrong.append(f'{name}{{{matcher.name}="{matcher.value}"}}: holds {sorted(held)}')
    if wrong:
        pytest.fail(f"{query.where}: {query.text!r}: " + "; ".join(wrong))


def _selectors(expr: Any) -> Iterator[Any]:
    """Every vector selector in a parsed expression."""
    found: list[Any] = []

    def visit(node: Any) -> bool:
        if isinstance(node, pp.VectorSelector):
            found.append(node)
        return True

    pp.walk(expr, visit)
    return iter(found)


_HELD: dict[tuple[str, str, str], set[str]] = {}


def _held_values(url: str, metric: str, label: str) -> set[str]:
    """The values ``label`` takes on ``metric`` over the history (empty: it has none)."""
    key = (url, metric, label)
    if key not in _HELD:
        promql = f'group by ({label}) (last_over_time({{__name__="{metric}"}}[{HISTORY_HOURS}h]))'
        _HELD[key] = {s["metric"].get(label, "") for s in stack.query(url, promql)} - {""}
    return _HELD[key]
