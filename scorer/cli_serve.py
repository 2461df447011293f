"""``gpu-health-scorer serve`` and ``score``: the runners that score with the serving code.

``serve`` scores every interval and serves /metrics and the JSON API (or, with ``--once``,
prints one ranking); ``score`` runs the same :class:`~gpu_health.scorer.service.Scorer` as of a
past time. Split from :mod:`gpu_health.scorer.cli`, which dispatches to them.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import signal
import threading
import time
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from gpu_health.errors import UserError
from gpu_health.scorer.cli_history import client_for
from gpu_health.unix_time import iso_utc

if TYPE_CHECKING:  # the scorer's modules load lazily: --help stays fast
    from gpu_health.scorer.model import RiskModel
    from gpu_health.scorer.promclient import PromClient
    from gpu_health.scorer.service import EconHook, Scorer

log = logging.getLogger("gpu_health.scorer")


def run_serve(args: argparse.Namespace) -> int:
    from prometheus_client import CollectorRegistry, ProcessCollector

    from gpu_health.scorer.api import gpu_json, gpus_handler, openapi_handler
    from gpu_health.scorer.inventory.wiring import fleet_hook
    from gpu_health.scorer.model import load_model
    from gpu_health.scorer.service import ScorerCollector
    from gpu_health.web.server import Response, WebServer, landing_page, metrics_handler

    model = load_model(args.model)
    client = client_for(args)
    econ = fleet_hook(args, client.query)
    scorer = _replica(
        args,
        client,
        model,
        econ,
        model_dir=_reloadable(args.model),
        run_budget_s=args.run_budget or args.interval,
        serving=not args.once,
    )
    if args.once:
        ok = scorer.run_once()
        snap, error = scorer.current()
        if not ok or snap is None:
            raise UserError(f"scoring failed: {error}")
        gpus = snap.ranked("30d")
        print(json.dumps({"schema": snap.schema, "gpus": [gpu_json(g) for g in gpus]}))
        return 0
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ScorerCollector(scorer))
    # process_* (RSS, CPU, open fds): the scorer's own footprint, watchable from Prometheus.
    ProcessCollector(registry=registry)
    routes = {
        "/": landing_page(
            "gpu-health-scorer",
            {
                "/metrics": "Metrics",
                "/api/v1/gpus": "GPUs by risk (JSON)",
                "/api/v1/openapi.json": "OpenAPI document",
            },
        ),
        "/metrics": metrics_handler(registry),
        "/api/v1/gpus": gpus_handler(scorer),
        "/api/v1/openapi.json": openapi_handler(),
        "/healthz": lambda _r: Response(200, b"ok\n"),
    }
    server = WebServer(
        args.listen,
        routes,
        web_config=args.web_config_file,
        max_in_flight=args.web_max_requests,
    ).start()
    registry.register(server.metrics_collector("gpu_scorer"))
    log.info(
        "serving on port %d, scoring %s every %.0fs", server.port, args.prom_url, args.interval
    )
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: shutting down", signum)
        stop.set()
        # Abandon the run in flight too (its remaining queries fail at once): a scorer whose
        # parent died gets SIGTERM together with that parent's Prometheus, and retrying the
        # vanished Prometheus would keep it running for a whole --run.budget.
        client.shut_down()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        scorer.loop(args.interval, stop)
    finally:
        server.shutdown()
    return 0


def _replica(
    args: argparse.Namespace,
    client: PromClient,
    model: RiskModel,
    econ: EconHook | None,
    **options: Any,
) -> Scorer:
    """The :class:`Scorer` of ``serve`` and ``score``: ``--shard``'s share of the fleet (its
    GPUs kept, its uuid regex in the queries), with ``options`` passed on."""
    from gpu_health.scorer.service import Scorer
    from gpu_health.scorer.sharding import Shard

    shard = Shard.parse(args.shard)
    return Scorer(
        client,
        model,
        args.schema,
        econ,
        args.top_factors,
        args.workers,
        keep=shard.owns if shard.count > 1 else None,
        shard_regex=shard.uuid_regex(),
        history=args.history,
        **options,
    )


def _reloadable(model: str | None) -> Path | None:
    """The model directory watched for hot reload (none for the default or the rule)."""
    from gpu_health.scorer.model import RULES, XGBOOST

    return None if model in (None, RULES, XGBOOST) else Path(model)


#: How far ahead of this host's clock ``score --at`` may ask: another host's clock skew.
FUTURE_SLACK_S = 300.0


def run_score(args: argparse.Namespace) -> int:
    """Score as of ``--at`` with the serving code (:class:`Scorer` with ``at`` set)."""
    from gpu_health.scorer.api import gpu_json
    from gpu_health.scorer.model import load_model
    from gpu_health.telemetry.state import rank_key

    if args.at > time.time() + FUTURE_SLACK_S:  # it said "no GPU reported at 2030-..."
        raise UserError(
            f"--at {iso_utc(args.at)} is in the future: score --at backtests a time the history "
            "holds (serve scores now)"
        )
    model = load_model(args.model)
    scorer = _replica(args, client_for(args), model, None, at=args.at, serving=False)
    if not scorer.run_once():
        raise UserError(f"scoring failed: {scorer.current()[1]}")
    snap, _ = scorer.current()
    assert snap is not None
    if not snap.gpus:
        of_shard = f" of shard {args.shard.strip()}" if scorer.keep else ""
        raise UserError(f"no GPU{of_shard} reported at {iso_utc(args.at)} ({snap.schema} schema)")
    # highest first; NaN (an absent GPU of a silent node) counts as the highest
    ranked = sorted(snap.gpus, key=lambda g: rank_key("", g.probability["30d"]))
    if args.json_out:
        body = {
            "at": args.at,
            "schema": snap.schema,
            "model": model.kind,
            "empty_features": list(snap.empty_features),
            "history": snap.history,
            "gpus": [gpu_json(g) for g in ranked],
        }
        print(json.dumps(body))
        return 0
    print(
        f"scored {len(ranked)} GPUs at {iso_utc(args.at)} "
        f"({snap.schema} schema, {model.kind}, {snap.history} history)"
    )
    print(f"{'uuid':<40} {'node':<16} {'state':<9} {'p7d':>7} {'p30d':>7} {'p90d':>7}  class")
    for g in ranked:
        p = g.probability
        known = g.failure_class and math.isfinite(g.failure_class_probability)
        klass = f"{g.failure_class} ({g.failure_class_probability:.2f})" if known else "-"
        print(
            f"{g.uuid:<40} {g.node:<16} {g.state:<9} {p['7d']:>7.4f} {p['30d']:>7.4f} "
            f"{p['90d']:>7.4f}  {klass}"
        )
    return 0
