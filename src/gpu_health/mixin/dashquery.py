"""Run a Grafana dashboard's queries against Prometheus the way Grafana would.

No Grafana server runs here, so the dashboard tests and the PNG previews need the part of
Grafana that turns a panel into PromQL: template variables resolved in order (``label_values``
against the server, ``All`` as its regex), Grafana's built-in intervals (``$__rate_interval``,
``$__interval``, ``$__range``), instant or range queries per target, and ``{{label}}`` legends.
Both the tests and the preview use this one implementation, so what the preview draws is what
the tests proved returns data.
"""

from __future__ import annotations

import math
import re
import urllib.error
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gpu_health import stack
from gpu_health.errors import UserError
from gpu_health.prometheus_access import PLAIN, Access

#: ``$name``, ``${name}`` and ``${name:format}`` (Grafana's variable syntaxes we emit).
VARIABLE_RE = re.compile(r"\$(?:\{(\w+)(?::[\w]+)?\}|(\w+))")
LEGEND_RE = re.compile(r"\{\{\s*(\w+)\s*\}\}")
LABEL_VALUES_RE = re.compile(r"^label_values\((?P<selector>.*),\s*(?P<label>\w+)\s*\)$", re.S)


def format_duration(seconds: float) -> str:
    """A PromQL duration for ``seconds`` (whole seconds, at least 1s)."""
    return f"{max(1, round(seconds))}s"


def builtin_values(start: float, end: float, step: float, scrape_interval: float) -> dict[str, str]:
    """Grafana's built-in variables for a query over ``[start, end]`` at ``step``.

    ``$__rate_interval`` is ``max($__interval + scrape interval, 4 * scrape interval)``, the
    formula Grafana's Prometheus data source documents, so a rate never spans fewer than four
    samples.
    """
    rate_interval = max(step + scrape_interval, 4 * scrape_interval)
    return {
        "__interval": format_duration(step),
        "__rate_interval": format_duration(rate_interval),
        "__range": format_duration(end - start),
        "__range_s": str(round(end - start)),
    }


def substitute(text: str, values: Mapping[str, str]) -> str:
    """Replace the variables in ``text``; an unknown variable is an error, not left in place."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in values:
            raise KeyError(f"variable ${name} has no value")
        return values[name]

    return VARIABLE_RE.sub(replace, text)


def legend(fmt: str, labels: Mapping[str, str]) -> str:
    """Grafana's legend: ``{{label}}`` replaced by the series' label value."""
    if not fmt:
        inner = ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items()) if k != "__name__")
        return f"{labels.get('__name__', '')}{{{inner}}}"
    return LEGEND_RE.sub(lambda m: labels.get(m.group(1), ""), fmt)


@dataclass
class Series:
    """One result series: labels, display name and samples (instant queries have one)."""

    labels: dict[str, str]
    name: str
    times: list[float] = field(default_factory=list)
    values: list[float] = field(default_factory=list)

    @property
    def last(self) -> float:
        return self.values[-1] if self.values else math.nan


@dataclass
class TargetResult:
    """What one target of a panel returned, with the PromQL actually sent."""

    ref_id: str
    expr: str
    instant: bool
    series: list[Series]


@dataclass
class PanelResult:
    panel: dict[str, Any]
    targets: list[TargetResult]

    @property
    def has_data(self) -> bool:
        return any(t.series for t in self.targets)


class PromClient:
    """The three Prometheus HTTP API calls a dashboard needs."""

    def __init__(self, base_url: str, timeout: float = 30.0, access: Access = PLAIN) -> None:
        """``access``: TLS and credentials, as the report has (``prometheus_access``)."""
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.access = access

    def _get(self, path: str, params: Sequence[tuple[str, str]]) -> Any:
        url = f"{self.base_url}{path}?{urllib.parse.urlencode(list(params))}"
        what = "query" if path.endswith("/query") else "range query"
        if "/label/" in path:
            what = "label lookup"
        try:
            payload = stack.api_answer(url, self.timeout, params[0][1], what, self.access)
        except RuntimeError as exc:  # refused, with Prometheus' reason or what a 4xx means
            raise UserError(f"Prometheus at {self.base_url}: {exc}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise UserError(f"cannot reach Prometheus at {self.base_url}: {exc}") from None
        except ValueError as exc:  # past the byte cap, or not JSON (a login page)
            raise UserError(f"Prometheus at {self.base_url}: {exc}") from None
        if not isinstance(payload, dict) or payload.get("status") != "success":
            error = payload.get("error") if isinstance(payload, dict) else "not a Prometheus answer"
            raise UserError(f"Prometheus rejected {params[0][1]!r}: {error}")
        return payload["data"]

    def instant(self, expr: str, at: float) -> list[Series]:
        data = self._get("/api/v1/query", [("query", expr), ("time", f"{at:.3f}")])
        out: list[Series] = []
        if data["resultType"] == "scalar":
            return [Series({}, "", [float(data["result"][0])], [float(data["result"][1])])]
        for item in data["result"]:
            t, v = item["value"]
            out.append(Series(dict(item["metric"]), "", [float(t)], [float(v)]))
        return out

    def range(self, expr: str, start: float, end: float, step: float) -> list[Series]:
        data = self._get(
            "/api/v1/query_range",
            [
                ("query", expr),
                ("start", f"{start:.3f}"),
                ("end", f"{end:.3f}"),
                ("step", f"{step}"),
            ],
        )
        return [
            Series(
                dict(item["metric"]),
                "",
                [float(t) for t, _ in item["values"]],
                [float(v) for _, v in item["values"]],
            )
            for item in data["result"]
        ]

    def label_values(self, label: str, selector: str, start: float, end: float) -> list[str]:
        params = [("match[]", selector), ("start", f"{start:.3f}"), ("end", f"{end:.3f}")]
        values: list[str] = self._get(f"/api/v1/label/{urllib.parse.quote(label)}/values", params)
        return sorted(values)


def variable_options(
    variable: Mapping[str, Any],
    client: PromClient,
    values: Mapping[str, str],
    start: float,
    end: float,
) -> list[str]:
    """The options a query or custom variable offers, given the variables before it."""
    if variable["type"] == "custom":
        return [o.strip() for o in str(variable["query"]).split(",") if o.strip()]
    query = variable["query"]
    text = query["query"] if isinstance(query, dict) else str(query)
    match = LABEL_VALUES_RE.match(substitute(text, values))
    if not match:
        raise ValueError(f"variable {variable['name']}: unsupported query {text!r}")
    return client.label_values(match["label"], match["selector"], start, end)


def resolve_variables(
    dashboard: Mapping[str, Any],
    client: PromClient,
    start: float,
    end: float,
    chosen: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Give every template variable a value, in dashboard order, as Grafana does on load.

    A value in ``chosen`` wins; otherwise a variable with an ``All`` option takes its regex
    (``.*``), a custom variable its current value, and a single-value variable its first option.
    """
    chosen = dict(chosen or {})
    values: dict[str, str] = {}
    for variable in dashboard.get("templating", {}).get("list", []):
        name = variable["name"]
        if variable["type"] == "datasource":
            values[name] = chosen.get(name, "prometheus")
        elif name in chosen:
            values[name] = chosen[name]
        elif variable.get("includeAll"):
            values[name] = str(variable.get("allValue", ".*"))
        elif variable["type"] == "custom" and variable.get("current", {}).get("value"):
            values[name] = str(variable["current"]["value"])
        else:
            options = variable_options(variable, client, values, start, end)
            if not options:
                raise UserError(f"variable ${name} has no values on {client.base_url}")
            values[name] = options[0]
    return values


def run_panel(
    panel: Mapping[str, Any],
    client: PromClient,
    values: Mapping[str, str],
    start: float,
    end: float,
    step: float,
) -> PanelResult:
    """Run every target of ``panel`` (variables already resolved in ``values``)."""
    results: list[TargetResult] = []
    for target in panel.get("targets", []):
        expr = substitute(target["expr"], values)
        instant = bool(target.get("instant")) or target.get("format") == "table"
        series = client.instant(expr, end) if instant else client.range(expr, start, end, step)
        for s in series:
            s.name = legend(target.get("legendFormat", ""), s.labels)
        results.append(TargetResult(target.get("refId", "A"), expr, instant, series))
    return PanelResult(dict(panel), results)


@dataclass
class DashboardResult:
    dashboard: dict[str, Any]
    variables: dict[str, str]
    start: float
    end: float
    panels: list[PanelResult]


def run_dashboard(
    dashboard: Mapping[str, Any],
    client: PromClient,
    start: float,
    end: float,
    scrape_interval: float = 15.0,
    chosen: Mapping[str, str] | None = None,
    points: int = 240,
) -> DashboardResult:
    """Resolve the variables and run every panel over ``[start, end]``."""
    step = max(scrape_interval, math.ceil((end - start) / points))
    values = resolve_variables(dashboard, client, start, end, chosen)
    values.update(builtin_values(start, end, step, scrape_interval))
    panels = [
        run_panel(p, client, values, start, end, step)
        for p in dashboard.get("panels", [])
        if p.get("type") != "row"
    ]
    return DashboardResult(dict(dashboard), values, start, end, panels)
