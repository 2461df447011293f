"""Which query engine answers (Prometheus or VictoriaMetrics) and the PromQL it needs.

VictoriaMetrics' MetricsQL counts a series' first sample in ``increase()``, ``changes()`` and
``delta()`` as an event (a counter that sat at 4 for 30 days "increased" by 4), while Prometheus
(and Thanos, Mimir, Cortex, which run Prometheus' engine) never does. MetricsQL also offers
``increase_prometheus()``, ``changes_prometheus()`` and ``delta_prometheus()`` with Prometheus'
meaning, so on VictoriaMetrics every query is rewritten to those before it is sent; the same
history then gives the same states and report on both engines, and features that differ only
by Prometheus' extrapolation to the window's edges (about a scrape interval over the window).

Detection: ``/api/v1/status/buildinfo`` from Prometheus' family names a revision and a Go
version; VictoriaMetrics answers with an empty or version-only object. When the build info does
not say, a MetricsQL-only probe query decides (Prometheus rejects the unknown function).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

PROMETHEUS = "prometheus"
VICTORIAMETRICS = "victoriametrics"
#: Functions whose MetricsQL meaning differs from PromQL's, and their Prometheus-compatible twin.
COMPATIBLE = {
    "increase": "increase_prometheus",
    "changes": "changes_prometheus",
    "delta": "delta_prometheus",
}
_CALL = re.compile(r"\b(" + "|".join(COMPATIBLE) + r")\s*\(")
# (A label value that spells one of these calls would be rewritten too; none of ours does.)
#: A query only MetricsQL answers.
PROBE = "changes_prometheus(vector(1)[2m:1m])"


def rewrite(promql: str, engine: str) -> str:
    """``promql`` with the functions above replaced when ``engine`` is VictoriaMetrics."""
    if engine != VICTORIAMETRICS:
        return promql
    return _CALL.sub(lambda m: COMPATIBLE[m.group(1)] + "(", promql)


def from_buildinfo(payload: Any) -> str | None:
    """Prometheus when the build info is Prometheus'; None when it cannot tell."""
    data = payload.get("data") if isinstance(payload, dict) else None
    if isinstance(data, dict) and data.get("revision") and data.get("goVersion"):
        return PROMETHEUS
    return None


def detect(buildinfo: Any, probe: Callable[[str], bool]) -> str:
    """The engine behind an HTTP API from its parsed build-info JSON (None: the endpoint is
    missing, as on old Prometheus or a proxy, which means Prometheus semantics) and, only when
    the build info answers but not like Prometheus, ``probe(promql)``: did the query succeed."""
    if not isinstance(buildinfo, dict) or from_buildinfo(buildinfo) is not None:
        return PROMETHEUS
    return VICTORIAMETRICS if probe(PROBE) else PROMETHEUS
