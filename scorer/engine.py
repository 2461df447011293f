"""The query engine behind the scorer's PromClient, detected once per client.

Hooked into :meth:`PromClient.query`, so every feature, state and training query is phrased
for the engine that answers it (see :mod:`gpu_health.telemetry.engine`): on VictoriaMetrics
``increase``/``changes``/``delta`` become their ``*_prometheus`` twins and rankings agree with
Prometheus on the same history. Detection needs one build-info request and at most one probe
query; an unreachable server is not cached, so the engine is found once it comes up.
"""

from __future__ import annotations

import logging
import threading
import weakref
from typing import TYPE_CHECKING, Any

import requests

from gpu_health.telemetry import engine as telemetry_engine

if TYPE_CHECKING:
    from gpu_health.scorer.promclient import PromClient

log = logging.getLogger(__name__)
_ENGINES: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


class _Unreachable(Exception):
    pass


def engine_of(client: PromClient) -> str:
    """``prometheus`` or ``victoriametrics`` for this client's server (cached per client)."""
    with _LOCK:
        known = _ENGINES.get(client)
    if known is not None:
        return known

    def buildinfo() -> Any:
        try:
            status, body = client.get_json("/api/v1/status/buildinfo")
        except Exception as exc:  # refused, timed out, over a budget: not known yet
            raise _Unreachable(str(exc)) from None
        return body if status == 200 else None

    def probe(promql: str) -> bool:
        try:
            client._post(
                "/api/v1/query", {"query": promql}, client._deadline(client.config.timeout_s)
            )
        except requests.RequestException as exc:
            raise _Unreachable(str(exc)) from None
        except Exception:
            return False
        return True

    try:
        try:
            info = buildinfo()
        except ValueError:  # not JSON: not Prometheus' build info
            info = None
        found = telemetry_engine.detect(info, probe)
    except _Unreachable:
        return telemetry_engine.PROMETHEUS
    with _LOCK:
        _ENGINES[client] = found
    log.info("query engine at %s: %s", client.base_url, found)
    return found


def adapt(client: PromClient, promql: str) -> str:
    """``promql`` as the client's engine needs it."""
    return telemetry_engine.rewrite(promql, engine_of(client))
