"""The generated rules: valid for promtool, unit-tested, lint-clean, documented, and reading only
metrics that exist (exporter and scorer catalogues, or a recording rule)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml

from gpu_health.mixin import render as mixin
from gpu_health.report.runbooks import DEFAULT_RUNBOOK_URL_PATTERN, class_runbook_url
from gpu_health.scorer.catalogue import OUTCOME_METRICS, SCORER_METRICS
from gpu_health.scorer.rules import FAILURE_CLASSES, RUNBOOKS
from gpu_health.stack import find_binary
from gpu_health.telemetry.catalogue import (
    CATALOGUE,
    HEALTH_METRICS,
    IDENTITY_LABELS,
    INFO_LABELS,
    SELF_METRICS,
)
from tests.mixin.promql_names import metric_names

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / mixin.RULES_FILE
ALERTS = REPO / mixin.ALERTS_FILE
UNIT_TESTS = sorted((REPO / "tests" / "rules").glob("*.yaml"))

#: Series that come from Prometheus itself or from the exporter outside the per-GPU catalogue.
OTHER_METRICS = {"up", "gpu_info"}

# mixtool lint (monitoring-mixins/mixtool pkg/mixer/lint.go), re-implemented.
CAMEL_CASE = re.compile(r"^([A-Z]+[a-z0-9]+)+$")
GO_TEMPLATE = re.compile(r"\{\{.+\}\}")
SENTENCE = re.compile(r"^[A-Z].+\.$")
RUNBOOK_URL = re.compile(r"https?://[^{}\s]+")


def _rules(path: Path) -> list[dict[str, Any]]:
    doc = yaml.safe_load(path.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def _alerts() -> list[dict[str, Any]]:
    return _rules(ALERTS)


def _promtool() -> str:
    return find_binary("promtool")


def test_promtool_check_rules_accepts_the_generated_files() -> None:
    result = subprocess.run(
        [_promtool(), "check", "rules", str(RULES), str(ALERTS)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_unit_tests_pass() -> None:
    assert UNIT_TESTS, "no promtool test files in tests/rules"
    result = subprocess.run(
        [_promtool(), "test", "rules", *map(str, UNIT_TESTS)],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO / "tests" / "rules",
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _unit_test_cases() -> tuple[dict[str, set[bool]], str]:
    """alertname -> {fires?} over every alert_rule_test; and all promql_expr_test exprs."""
    cases: dict[str, set[bool]] = {}
    exprs: list[str] = []
    for path in UNIT_TESTS:
        doc = yaml.safe_load(path.read_text())
        for group in doc["tests"]:
            for case in group.get("alert_rule_test", []):
                cases.setdefault(case["alertname"], set()).add(bool(case.get("exp_alerts")))
            exprs += [case["expr"] for case in group.get("promql_expr_test", [])]
    return cases, "\n".join(exprs)


def test_every_alert_has_a_firing_and_a_silent_unit_test() -> None:
    cases, _ = _unit_test_cases()
    missing = {
        alert["alert"]: sorted(
            kind
            for kind, fires in (("firing", True), ("silent", False))
            if fires not in cases.get(alert["alert"], set())
        )
        for alert in _alerts()
    }
    assert {name: kinds for name, kinds in missing.items() if kinds} == {}


def test_every_recording_rule_has_an_expression_test() -> None:
    _, exprs = _unit_test_cases()
    untested = [
        rule["record"]
        for rule in _rules(RULES)
        if not re.search(rf"(^|\W){re.escape(rule['record'])}($|\W)", exprs)
    ]
    assert untested == []


def test_the_slot_record_drops_every_label_of_gpu_info_but_the_slot_node_and_model() -> None:
    """An exporter that adds a label to gpu_info (a new version field) must not split the
    coverage panels' slots: the record's ``without`` list is the catalogue's, less what names
    the slot (node, PCI bus id) and what the dashboards filter on (model)."""
    (expr,) = [r["expr"] for r in _rules(RULES) if r["record"] == "slot:gpu_info:seen1d"]
    dropped = re.search(r"^max without \(([^)]*)\)", expr)
    assert dropped, expr
    kept = {"node", "pci_bus_id", "model"}
    assert set(dropped[1].split(", ")) == (set(IDENTITY_LABELS) - kept) | set(INFO_LABELS)


def test_recording_rules_follow_level_metric_operations() -> None:
    for rule in _rules(RULES):
        level, metric, operations = rule["record"].split(":")
        assert level and operations, rule["record"]
        assert metric.startswith("gpu_") and not metric.endswith("_total"), rule["record"]


def test_alerts_pass_the_mixtool_lint_rules() -> None:
    doc = yaml.safe_load(ALERTS.read_text())
    problems = []
    for group in doc["groups"]:
        if len(group["rules"]) > 20 or len(group["name"]) > 40:
            problems.append(f"group {group['name']}: too many rules or name too long")
        for rule in group["rules"]:
            name = rule["alert"]
            annotations = rule.get("annotations", {})
            if not CAMEL_CASE.match(name) or len(name) > 40 or not name.startswith("GPU"):
                problems.append(f"{name}: name")
            if rule.get("labels", {}).get("severity") not in {"critical", "warning", "info"}:
                problems.append(f"{name}: severity")
            summary = annotations.get("summary", "")
            if not SENTENCE.match(summary) or GO_TEMPLATE.search(summary):
                problems.append(f"{name}: summary must be a static sentence")
            if not GO_TEMPLATE.search(annotations.get("description", "")):
                problems.append(f"{name}: description must be templated")
            if "for" not in rule:
                problems.append(f"{name}: no explicit for")
    assert problems == []


#: A label pasted into a lookup's PromQL must first pass this guard (jsonnet: uuidIsPlain).
PLAIN_UUID_GUARD = '{{ if match "^[A-Za-z0-9._:-]+$" $labels.uuid }}'


def test_every_annotation_lookup_runs_only_for_a_plain_uuid() -> None:
    """Annotations that look something up (``printf ... $labels.uuid | query``) paste the label
    into PromQL; a forged UUID with a quote would rewrite the query. Each lookup must sit
    inside the guard (tests/rules/alerts.test.yaml shows one that would read 100 without it)."""
    lookups = 0
    for alert in _alerts():
        for name, text in alert.get("annotations", {}).items():
            for lookup in re.finditer(r"\$labels\.uuid \| query", text):
                lookups += 1
                before = text[: lookup.start()]
                opened = before.rfind(PLAIN_UUID_GUARD)
                assert opened >= 0, f"{alert['alert']}.{name}: a lookup outside the UUID guard"
                # the guard's block is still open where the lookup runs
                between = before[opened:]
                assert between.count("{{ if ") + between.count("{{ with ") + between.count(
                    "{{ range "
                ) > between.count("{{ end }}"), f"{alert['alert']}.{name}: guard closed early"
    assert lookups >= 3


def test_gpu_alert_descriptions_name_gpu_node_model_and_value() -> None:
    for rule in _alerts():
        description = rule["annotations"]["description"]
        if rule["alert"].startswith(("GPUExporter", "GPUScorer")):
            assert "$labels.instance" in description, rule["alert"]
            continue
        if rule["alert"] == "GPUMassFailure":  # a count over the fleet: no GPU of its own
            assert "$value" in description and "$labels" not in description
            continue
        if rule["alert"] == "GPUEconomicsUnvalued":  # a count per model: no GPU of its own
            assert "$value" in description and "$labels.model" in description
            continue
        for needle in ("$labels.gpu", "$labels.node", "$labels.model", "$labels.uuid"):
            assert needle in description, (rule["alert"], needle)
        assert "$value" in description or rule["alert"] == "GPUMetricsAbsent", rule["alert"]


def test_every_alert_links_an_existing_runbook_with_the_required_sections() -> None:
    for rule in _alerts():
        name = rule["alert"]
        # GPUFailurePredicted picks its failure class's runbook; its own is the last resort.
        urls = RUNBOOK_URL.findall(rule["annotations"]["runbook_url"])
        assert urls and urls[-1].endswith(f"/docs/runbooks/{name}.md"), urls
        for url in urls:
            page = REPO / "docs" / "runbooks" / url.rsplit("/", 1)[-1]
            assert page.is_file(), f"missing runbook {page}"
            text = page.read_text()
            for heading in (
                "## Meaning",
                "## Impact",
                "## Diagnosis",
                "## Mitigation",
                "## When to RMA",
            ):
                assert heading in text, f"{page.name}: no {heading!r} section"
            assert "```" in text, f"{page.name}: no commands to confirm"


def test_failure_prediction_links_the_scorer_runbook_of_every_failure_class() -> None:
    """jsonnet's failureClassRunbooks and the scorer's RUNBOOKS (API, report) name the same page."""
    (rule,) = [r for r in _alerts() if r["alert"] == "GPUFailurePredicted"]
    template = rule["annotations"]["runbook_url"]
    pairs = re.findall(r'eq \$class "(\w+)" \}\}(https?://[^{}\s]+)', template)
    linked = {cls: url.rsplit("/", 1)[-1] for cls, url in pairs}
    assert linked == {c: Path(RUNBOOKS[c]).name for c in FAILURE_CLASSES}
    # the HTML report links the same pages by default
    assert {url for _, url in pairs} == {
        class_runbook_url(c, DEFAULT_RUNBOOK_URL_PATTERN) for c in FAILURE_CLASSES
    }


def test_alert_overview_lists_every_alert_and_recording_rule() -> None:
    overview = (REPO / "docs" / "alerts.md").read_text()
    for rule in _alerts():
        assert f"[{rule['alert']}]" in overview, rule["alert"]
    for rule in _rules(RULES):
        assert f"`{rule['record']}`" in overview, rule["record"]


def test_every_metric_a_rule_reads_exists() -> None:
    known = (
        {spec.name for spec in CATALOGUE}
        | {name for name, _help, _labels in HEALTH_METRICS}
        | {name for name, _kind, _help, _labels in SCORER_METRICS}
        | {name for name, _kind, _help, _labels in OUTCOME_METRICS}
        | {name for name, _kind, _help, _labels in SELF_METRICS}
        | OTHER_METRICS
    )
    records = {rule["record"] for rule in _rules(RULES)}
    unknown: dict[str, set[str]] = {}
    for rule in _rules(RULES) + _alerts():
        names = metric_names(promql_parser.parse(rule["expr"]))
        assert names, rule
        bad = names - known - records
        if bad:
            unknown[rule.get("alert") or rule["record"]] = bad
    assert unknown == {}


@pytest.mark.parametrize(
    "expr, expected",
    [
        ('max_over_time(gpu_up{job="x"}[5m]) == 0 or absent(up)', {"gpu_up", "up"}),
        ("sum without (a) (rate(b_total[5m])) * on (c) group_left d", {"b_total", "d"}),
    ],
)
def test_selector_walker_finds_every_metric(expr: str, expected: set[str]) -> None:
    # The metric-existence test is only as good as this walker.
    assert metric_names(promql_parser.parse(expr)) == expected
