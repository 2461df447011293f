"""The dashboards as Grafana would load them: schema, uids, links, units, and every query's PromQL.

The dashboards are rendered from the mixin (jsonnet/mixin.libsonnet) exactly as `gpu-health
generate` renders them; the committed grafana/*.json must match that rendering.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import _jsonnet
import jsonschema
import promql_parser
import pytest
import yaml

from gpu_health.mixin.dashquery import LABEL_VALUES_RE, builtin_values, substitute
from gpu_health.scorer.catalogue import OUTCOME_METRICS, SCORER_METRICS
from gpu_health.telemetry.catalogue import CATALOGUE, HEALTH_METRICS, SELF_METRICS

REPO = Path(__file__).resolve().parents[2]
JSONNET = REPO / "jsonnet"
SCHEMA = json.loads((JSONNET / "dashboards" / "dashboard.schema.json").read_text())

#: The uids are link targets (bookmarks, alert dashboard_url, the tables' data links): pinned.
EXPECTED_UIDS = {
    "gpu-fleet-overview.json": "gpu-health-fleet-overview",
    "gpu-detail.json": "gpu-health-gpu-detail",
    "gpu-risk-economics.json": "gpu-health-risk-economics",
}

#: Values a user could pick for each variable, to turn every query into plain PromQL.
SAMPLE_VARIABLES = {
    "datasource": "prometheus",
    "cluster": ".*",
    "node": "(node-0|node-1)",
    "model": ".*",
    "gpu": "GPU-00000000-0000-0000-0000-000000000000",
    "horizon": "30d",
    "datacenter": ".*",
    "rack": ".*",
    **builtin_values(0, 86400, 60, 15),
}


def render(config: str = "{}") -> dict[str, Any]:
    snippet = f"((import 'mixin.libsonnet') + {{ _config+:: {config} }}).grafanaDashboards"
    result: dict[str, Any] = json.loads(
        _jsonnet.evaluate_snippet("dashboards", snippet, jpathdir=[str(JSONNET)])
    )
    return result


def render_rules() -> dict[str, Any]:
    result: dict[str, Any] = json.loads(
        _jsonnet.evaluate_snippet(
            "rules", "(import 'mixin.libsonnet').prometheusRules", jpathdir=[str(JSONNET)]
        )
    )
    return result


@pytest.fixture(scope="module")
def dashboards() -> dict[str, Any]:
    return render()


def all_queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, PromQL) for every target, annotation and variable query."""
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            yield f"{panel['title']}/{target['refId']}", target["expr"]
    for annotation in dashboard["annotations"]["list"]:
        if "expr" in annotation:
            yield f"annotation {annotation['name']}", annotation["expr"]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            match = LABEL_VALUES_RE.match(variable["definition"])
            assert match, (
                f"variable {variable['name']}: not label_values(): {variable['definition']}"
            )
            yield f"variable {variable['name']}", match["selector"]


def parse(expr: str) -> Any:
    return promql_parser.parse(substitute(expr, SAMPLE_VARIABLES))


def metric_names(expr: str) -> set[str]:
    names: set[str] = set()

    def visit(node: Any) -> bool:
        if isinstance(node, promql_parser.VectorSelector):
            assert node.name, f"selector without a metric name in {expr}"
            names.add(node.name)
        return True

    promql_parser.walk(parse(expr), visit)
    return names


def known_metrics() -> set[str]:
    names = {spec.name for spec in CATALOGUE} | {"gpu_info", "up"}  # up: Prometheus' own
    names |= {name for name, _kind, _help, _labels in SELF_METRICS}
    names |= {name for name, _help, _labels in HEALTH_METRICS}
    names |= {name for name, _kind, _help, _labels in SCORER_METRICS}
    # gpu-health-scorer outcomes: published through the textfile collector, not the scorer job
    names |= {name for name, _kind, _help, _labels in OUTCOME_METRICS}
    names |= {r["record"] for g in render_rules()["groups"] for r in g["rules"] if "record" in r}
    return names


def test_three_dashboards_with_pinned_unique_uids(dashboards: dict[str, Any]) -> None:
    assert {name: d["uid"] for name, d in dashboards.items()} == EXPECTED_UIDS
    assert len({d["uid"] for d in dashboards.values()}) == len(dashboards)


def test_every_dashboard_matches_the_pinned_schema(dashboards: dict[str, Any]) -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    validator = jsonschema.Draft202012Validator(SCHEMA)
    for name, dashboard in dashboards.items():
        errors = [
            f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in validator.iter_errors(dashboard)
        ]
        assert not errors, f"{name}: {errors[:5]}"


def test_schema_rejects_a_panel_without_unit(dashboards: dict[str, Any]) -> None:
    broken = json.loads(json.dumps(dashboards["gpu-detail.json"]))
    del broken["panels"][3]["fieldConfig"]["defaults"]["unit"]
    assert not jsonschema.Draft202012Validator(SCHEMA).is_valid(broken)
    broken["panels"][3]["fieldConfig"]["defaults"]["unit"] = "watt"
    broken["panels"][3]["type"] = "graph"  # the AngularJS panel removed in Grafana 11
    assert not jsonschema.Draft202012Validator(SCHEMA).is_valid(broken)


def test_panels_tile_the_grid_without_overlap(dashboards: dict[str, Any]) -> None:
    for name, dashboard in dashboards.items():
        cells: dict[tuple[int, int], str] = {}
        ids = [p["id"] for p in dashboard["panels"]]
        assert len(ids) == len(set(ids)), name
        for panel in dashboard["panels"]:
            pos = panel["gridPos"]
            assert pos["x"] + pos["w"] <= 24, (name, panel["title"])
            for x in range(pos["x"], pos["x"] + pos["w"]):
                for y in range(pos["y"], pos["y"] + pos["h"]):
                    assert (x, y) not in cells, f"{name}: {panel['title']} overlaps {cells[(x, y)]}"
                    cells[(x, y)] = panel["title"]


def test_variables_chain_cluster_node_gpu(dashboards: dict[str, Any]) -> None:
    for name, dashboard in dashboards.items():
        variables = {v["name"]: v for v in dashboard["templating"]["list"]}
        names = list(variables)
        assert names[0] == "datasource" and variables["datasource"]["label"] == "Data source"
        assert names.index("cluster") < names.index("node"), name
        # cluster must work where no series has the label: "All" is the regex .*
        assert variables["cluster"]["includeAll"] and variables["cluster"]["allValue"] == ".*"
        assert "$cluster" in variables["node"]["definition"]
    detail = {v["name"]: v for v in dashboards["gpu-detail.json"]["templating"]["list"]}
    assert "$node" in detail["gpu"]["definition"] and ", uuid)" in detail["gpu"]["definition"]
    assert not detail["gpu"]["includeAll"] and not detail["gpu"]["multi"]
    for panel in dashboards["gpu-detail.json"]["panels"]:
        for target in panel["targets"]:
            assert 'uuid="$gpu"' in target["expr"], (panel["title"], target["expr"])


def test_every_query_uses_the_variables_it_offers(dashboards: dict[str, Any]) -> None:
    for name in ("gpu-fleet-overview.json", "gpu-risk-economics.json"):
        for where, expr in all_queries(dashboards[name]):
            if where.startswith("variable") or "gpu_scorer_last_run" in expr:
                continue
            # Fleet-level scorer series (plan, market prices, live accuracy) carry no node or
            # model label.
            if any(m in expr for m in ("gpu_plan_", "gpu_market_price", "gpu_prediction_")):
                assert "$cluster" in expr, f"{name} {where} ignores $cluster: {expr}"
                continue
            for variable in ("$cluster", "$node", "$model"):
                assert variable in expr, f"{name} {where} ignores {variable}: {expr}"


def test_dashboards_link_to_each_other(dashboards: dict[str, Any]) -> None:
    uids = {d["uid"] for d in dashboards.values()}
    for name, dashboard in dashboards.items():
        targets = {link["url"].removeprefix("/d/") for link in dashboard["links"]}
        assert targets == uids - {dashboard["uid"]}, name
        assert all(link["includeVars"] and link["keepTime"] for link in dashboard["links"])
        assert set(dashboard["tags"]) >= {"gpu-health-mixin"}
    # The worst-GPU and risk tables open the detail dashboard on the clicked GPU.
    detail = EXPECTED_UIDS["gpu-detail.json"]
    for name, title in (
        ("gpu-fleet-overview.json", "Worst GPUs"),
        ("gpu-risk-economics.json", "Failure probability ranking"),
    ):
        panel = next(p for p in dashboards[name]["panels"] if p["title"] == title)
        urls = [
            link["url"]
            for override in panel["fieldConfig"]["overrides"]
            for prop in override["properties"]
            if prop["id"] == "links"
            for link in prop["value"]
        ]
        assert urls and all(u.startswith(f"/d/{detail}?var-gpu=${{__value.raw}}") for u in urls)


def test_every_panel_has_unit_thresholds_and_description(dashboards: dict[str, Any]) -> None:
    for name, dashboard in dashboards.items():
        for panel in dashboard["panels"]:
            defaults = panel["fieldConfig"]["defaults"]
            assert defaults["unit"], (name, panel["title"])
            assert defaults["thresholds"]["steps"][0]["value"] is None, (name, panel["title"])
            assert panel["description"].strip(), (name, panel["title"])


def test_every_query_parses_after_substitution(dashboards: dict[str, Any]) -> None:
    count = 0
    for name, dashboard in dashboards.items():
        for where, expr in all_queries(dashboard):
            try:
                parse(expr)
            except Exception as exc:  # the parser raises ValueError subclasses
                pytest.fail(f"{name} {where}: {exc}\n{substitute(expr, SAMPLE_VARIABLES)}")
            count += 1
    assert count > 60


def test_the_parser_catches_a_broken_query() -> None:
    with pytest.raises(ValueError):
        parse('sum by (node (gpu_up{node=~"$node"})')


def test_rates_use_the_rate_interval(dashboards: dict[str, Any]) -> None:
    """dashboard-linter's target-rate-interval-rule; fixed windows live in recording rules."""
    for name, dashboard in dashboards.items():
        for where, expr in all_queries(dashboard):
            for window in re.findall(r"\b(?:rate|irate)\([^\[]*\[([^\]]+)\]", expr):
                assert window == "$__rate_interval", f"{name} {where}: {expr}"


def test_every_metric_named_exists(dashboards: dict[str, Any]) -> None:
    known = known_metrics()
    for name, dashboard in dashboards.items():
        for where, expr in all_queries(dashboard):
            unknown = metric_names(expr) - known
            assert not unknown, f"{name} {where} names unknown metrics {unknown}"


def test_detail_dashboard_shows_every_exporter_metric(dashboards: dict[str, Any]) -> None:
    detail = dashboards["gpu-detail.json"]
    used = {m for _, expr in all_queries(detail) for m in metric_names(expr)}
    # A raw counter may be shown through the per-GPU recording rule built on it.
    rules = render_rules()
    for group in rules["groups"]:
        for rule in group["rules"]:
            if rule.get("record") in used:
                used |= metric_names(rule["expr"])
    exporter = {spec.name for spec in CATALOGUE} | {n for n, _, _ in HEALTH_METRICS} | {"gpu_info"}
    assert exporter - used == set()


def test_risk_dashboard_shows_every_per_gpu_scorer_metric(dashboards: dict[str, Any]) -> None:
    risk = dashboards["gpu-risk-economics.json"]
    used = {m for _, expr in all_queries(risk) for m in metric_names(expr)}
    per_gpu = {
        name for name, _kind, _help, _labels in SCORER_METRICS if not name.startswith("gpu_scorer_")
    }
    assert per_gpu - used == set()


def test_config_overrides_reach_every_query() -> None:
    custom = render(
        "{ gpuExporterSelector: 'job=\"gpu\"', gpuScorerSelector: 'job=\"sc\"',"
        " predictionOutcomesSelector: 'job=\"out\"' }"
    )
    for name, dashboard in custom.items():
        for where, expr in all_queries(dashboard):
            assert "gpu-health-exporter" not in expr and "gpu-health-scorer" not in expr, where
            if any(m.startswith("gpu_") and m.count(":") == 0 for m in metric_names(expr)):
                jobs = ('job="gpu"', 'job="sc"', 'job="out"')
                assert any(job in expr for job in jobs), f"{name} {where}: {expr}"


def test_scorer_disabled_drops_the_risk_dashboard_and_its_links() -> None:
    custom = render("{ scorerEnabled: false }")
    assert set(custom) == {"gpu-fleet-overview.json", "gpu-detail.json"}
    for dashboard in custom.values():
        assert all("risk" not in link["url"] for link in dashboard["links"])


def test_committed_dashboards_are_up_to_date(dashboards: dict[str, Any]) -> None:
    for name, dashboard in dashboards.items():
        path = REPO / "grafana" / name
        assert path.is_file(), f"{path} missing: run gpu-health generate"
        assert json.loads(path.read_text()) == dashboard, (
            f"{path} is stale: run gpu-health generate"
        )


def test_provisioning_loads_the_committed_dashboards() -> None:
    provisioning = REPO / "grafana" / "provisioning"
    datasources = yaml.safe_load((provisioning / "datasources" / "prometheus.yaml").read_text())
    assert datasources["apiVersion"] == 1
    (source,) = datasources["datasources"]
    assert source["type"] == "prometheus" and source["url"].startswith("http")
    providers = yaml.safe_load((provisioning / "dashboards" / "gpu-health.yaml").read_text())
    assert providers["apiVersion"] == 1
    (provider,) = providers["providers"]
    assert provider["type"] == "file"
    # The provider path is where docs/dashboards.md tells the user to mount grafana/.
    mounted = provider["options"]["path"]
    docs = (REPO / "docs" / "dashboards.md").read_text()
    assert f"grafana:{mounted}:ro" in docs
    assert "grafana/provisioning:/etc/grafana/provisioning:ro" in docs
    assert {p.name for p in (REPO / "grafana").glob("*.json")} >= set(EXPECTED_UIDS)


def test_docs_describe_every_panel(dashboards: dict[str, Any]) -> None:
    docs = (REPO / "docs" / "dashboards.md").read_text()
    for name, dashboard in dashboards.items():
        assert f"img/{Path(name).stem}.png" in docs, name
        for panel in dashboard["panels"]:
            assert f"| {panel['title']} |" in docs, f"{name}: {panel['title']} not in docs"
