"""``gpu-health-scorer``: serve (default), train and evaluate the failure model.

``serve`` reads Prometheus every interval and publishes probabilities, risk factors, anomaly
scores and economics on its own /metrics and a JSON API. ``train`` and ``evaluate`` replay the
same feature queries at past timestamps, either against a running Prometheus (``--prometheus.url``
with ``--start/--end``) or against a backfilled data directory that they serve themselves with a
private Prometheus (``--data-dir``, the output of ``gpu-health backfill``).
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from gpu_health import __version__, cli_validate
from gpu_health.cli_support import (
    OneLineArgumentParser,
    configure_logging,
    log_level_argument,
    run_main,
)
from gpu_health.errors import UserError
from gpu_health.scorer.cli_history import client_for, iso_utc, run_evaluate, run_train

log = logging.getLogger("gpu_health.scorer")

DEFAULT_LISTEN = ":9836"
SUBCOMMANDS = ("serve", "train", "evaluate", "score", "labels", "models", "outcomes")
MODEL_HELP = (
    "model directory, 'rules' (the transparent rule baseline) or 'xgboost' (the shipped "
    "trained model); default: the shipped default, the rule (docs/model-card.md)"
)


def _duration(text: str) -> float:
    """``90s``, ``15m``, ``12h``, ``7d`` or plain seconds: finite, positive, at most 10 years."""
    return cli_validate.duration(0.0, 10 * 365 * 86400.0)(text)


def _time(text: str) -> float:
    from gpu_health.scorer.training import parse_time

    try:
        return parse_time(text)
    except UserError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _prometheus_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("Prometheus connection")
    g.add_argument(
        "--prometheus.url",
        dest="prom_url",
        default="http://localhost:9090",
        help="base URL of Prometheus, Mimir/Cortex (with /prometheus) or Thanos Query "
        "(default: %(default)s)",
    )
    g.add_argument(
        "--prometheus.timeout",
        dest="prom_timeout",
        type=_duration,
        default=30.0,
        help="per-request timeout, e.g. 30s (default: 30s)",
    )
    g.add_argument(
        "--prometheus.retries",
        dest="prom_retries",
        type=cli_validate.integer(1, 20),
        default=3,
        help="attempts per query with exponential back-off (default: %(default)s)",
    )
    g.add_argument(
        "--prometheus.ca-file",
        dest="prom_ca_file",
        help="CA bundle to verify the server's TLS certificate",
    )
    g.add_argument(
        "--prometheus.insecure-skip-verify",
        dest="prom_insecure",
        action="store_true",
        help="do not verify TLS certificates (testing only)",
    )
    g.add_argument(
        "--prometheus.bearer-token-file",
        dest="prom_token_file",
        help="file holding a bearer token (read at start, never logged)",
    )
    g.add_argument(
        "--prometheus.basic-auth-username", dest="prom_user", help="basic-auth user name"
    )
    g.add_argument(
        "--prometheus.basic-auth-password-file",
        dest="prom_password_file",
        help="file holding the basic-auth password",
    )
    g.add_argument(
        "--prometheus.header",
        dest="prom_headers",
        action="append",
        default=[],
        metavar="'NAME: VALUE'",
        help="extra request header, repeatable (e.g. 'X-Scope-OrgID: team-a')",
    )
    g.add_argument(
        "--prometheus.max-answer-bytes",
        dest="prom_max_bytes",
        type=cli_validate.integer(1024, 4 << 30),
        default=64 << 20,
        metavar="BYTES",
        help="refuse a query answer larger than this, after decompression (default: 64 MiB)",
    )
    g.add_argument(
        "--prometheus.max-series",
        dest="prom_max_series",
        type=cli_validate.integer(1, 10_000_000),
        default=200_000,
        metavar="N",
        help="refuse a query answer with more series than this (default: %(default)s)",
    )
    g.add_argument(
        "--schema",
        choices=["auto", "ours", "dcgm"],
        default="auto",
        help="input metric names: ours (gpu-health-exporter), dcgm (dcgm-exporter's "
        "DCGM_FI_DEV_*), or auto-detect (default: %(default)s)",
    )


def _history_arguments(parser: argparse.ArgumentParser, what: str) -> None:
    g = parser.add_argument_group("history")
    g.add_argument(
        "--data-dir",
        type=Path,
        help="a backfilled directory (gpu-health backfill --out): its Prometheus "
        "data is served by a private Prometheus, failures.csv read from it",
    )
    g.add_argument(
        "--failures",
        type=Path,
        help="CSV of known failures: uuid,time,mode (time: ISO 8601 or Unix seconds); "
        "default: DATA_DIR/failures.csv",
    )
    g.add_argument("--start", type=_time, help="first time of the history (with --prometheus.url)")
    g.add_argument("--end", type=_time, help="last time of the history (default: now)")
    g.add_argument(
        "--step",
        type=_duration,
        default=12 * 3600.0,
        help=f"time between {what} examples (default: 12h)",
    )
    g.add_argument(
        "--warmup",
        type=_duration,
        default=7 * 86400.0,
        help="history skipped at the start so windows are filled (default: 7d)",
    )
    g.add_argument(
        "--workers",
        type=cli_validate.integer(1, 64),
        default=4,
        help="parallel queries (default: 4)",
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(
        dest="command", metavar="COMMAND", parser_class=OneLineArgumentParser
    )
    serve = sub.add_parser(
        "serve",
        help="score GPUs periodically and serve /metrics (default)",
        description="Score every GPU each interval and serve the results.",
    )
    _prometheus_arguments(serve)
    serve.add_argument(
        "--web.listen-address",
        dest="listen",
        default=DEFAULT_LISTEN,
        help="address to serve /metrics and /api/v1/gpus on (default: %(default)s)",
    )
    serve.add_argument(
        "--web.config.file",
        dest="web_config_file",
        type=Path,
        default=None,
        metavar="FILE",
        help="exporter-toolkit web config (TLS, client certificates, basic auth), the same file "
        "format Prometheus exporters use; default: plain HTTP",
    )
    serve.add_argument(
        "--web.max-requests",
        dest="web_max_requests",
        type=cli_validate.integer(1, 10_000),
        default=40,
        metavar="N",
        help="requests served at once; more wait briefly, then get 503 (default: %(default)s)",
    )
    serve.add_argument(
        "--interval",
        type=cli_validate.duration(0.0, 7 * 86400.0),
        default=300.0,
        help="time between scoring runs, up to 7d (default: 5m)",
    )
    serve.add_argument(
        "--run.budget",
        dest="run_budget",
        type=cli_validate.duration(0.0, 7 * 86400.0),
        default=None,
        metavar="DURATION",
        help="wall-clock time a scoring run may take; past it the run is abandoned, "
        "gpu_scorer_run_state says timed_out and the previous results stay served "
        "(default: the --interval)",
    )
    serve.add_argument("--model", help=MODEL_HELP)
    serve.add_argument(
        "--top-factors",
        type=cli_validate.integer(0, 50),
        default=3,
        help="risk factors published per GPU and horizon (default: %(default)s)",
    )
    serve.add_argument(
        "--workers",
        type=cli_validate.integer(1, 64),
        default=4,
        help="parallel feature queries (default: %(default)s)",
    )
    serve.add_argument(
        "--no-econ", dest="econ", action="store_false", help="do not run the economic engine"
    )
    serve.add_argument(
        "--econ.params",
        dest="econ_params",
        type=Path,
        help="economics YAML merged over the shipped defaults",
    )
    serve.add_argument(
        "--econ.inventory",
        dest="econ_inventory",
        type=Path,
        help="CSV with uuid and age_days or purchase_date for each GPU",
    )
    from gpu_health.scorer.inventory.options import add_arguments as add_inventory_arguments

    add_inventory_arguments(serve)
    serve.add_argument(
        "--econ.default-age-days",
        dest="econ_age",
        type=cli_validate.number(0.0, 36500.0),
        default=730.0,
        help="age assumed for GPUs not in the inventory (default: %(default)s)",
    )
    serve.add_argument(
        "--shard",
        default="0/1",
        help="score only shard N of M (GPUs split by uuid; every replica reads the whole "
        "fleet for the fleet-relative features) (default: %(default)s)",
    )
    serve.add_argument(
        "--once",
        action="store_true",
        help="score once, print the ranking as JSON and exit (no server)",
    )
    log_level_argument(serve)

    train = sub.add_parser(
        "train",
        help="train the failure model from history + failures",
        description="Train one calibrated XGBoost per horizon (7d, 30d) and "
        "an isolation forest from the serving feature queries evaluated at "
        "past times.",
    )
    _prometheus_arguments(train)
    _history_arguments(train, "training")
    train.add_argument(
        "--also-data-dir",
        dest="also_data_dirs",
        type=Path,
        action="append",
        default=[],
        metavar="DIR",
        help="another backfilled history (e.g. another physics family) whose examples are "
        "added to the training set; repeatable",
    )
    train.add_argument("--out", type=Path, required=True, help="model directory to write")
    train.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    train.add_argument(
        "--valid-fraction",
        type=cli_validate.number(0.0, 1.0, exclusive_minimum=True),
        default=0.3,
        help="latest share of time held out for calibration (default: 0.3)",
    )
    train.add_argument(
        "--trees",
        type=cli_validate.integer(1, 10_000),
        default=300,
        help="boosting rounds (default: 300)",
    )
    train.add_argument(
        "--hazard-scale",
        type=cli_validate.number(0.0, 1e6, exclusive_minimum=True),
        default=1.0,
        help="the simulated history's failure rates were multiplied by this; probabilities "
        "are rescaled to the unscaled rates (default: %(default)s)",
    )
    train.add_argument(
        "--signal-dropout",
        type=cli_validate.number(0.0, 1.0),
        default=0.25,
        help="share of extra training rows per feature family blanked, so the model copes "
        "with fleets lacking a signal (default: %(default)s)",
    )
    train.add_argument(
        "--dump-dataset", type=Path, help="also write the feature table as CSV (for inspection)"
    )
    log_level_argument(train)

    evaluate = sub.add_parser(
        "evaluate",
        help="measure a model on a held-out history",
        description="ROC AUC, PR AUC, recall at 5%% FPR and lead times on "
        "a held-out (e.g. differently seeded) fleet.",
    )
    _prometheus_arguments(evaluate)
    _history_arguments(evaluate, "evaluation")
    evaluate.add_argument("--model", help=MODEL_HELP)
    evaluate.add_argument("--json", dest="json_out", type=Path, help="write the report as JSON")
    evaluate.add_argument(
        "--bootstrap",
        type=int,
        default=200,
        help="bootstrap resamples of GPUs for the 95%% intervals (default: %(default)s)",
    )
    log_level_argument(evaluate)

    score = sub.add_parser(
        "score",
        help="score the fleet as of a past time (backtest)",
        description="Score every GPU as of --at from the Prometheus history, with the same "
        "code as serve, and print the GPUs by 30-day risk (a table, or JSON with --json).",
    )
    _prometheus_arguments(score)
    score.add_argument(
        "--at", type=_time, required=True, help="time to score at: ISO 8601 or Unix seconds"
    )
    score.add_argument("--model", help=MODEL_HELP)
    score.add_argument("--json", dest="json_out", action="store_true", help="print JSON")
    score.add_argument(
        "--top-factors", type=int, default=3, help="risk factors per GPU (default: %(default)s)"
    )
    score.add_argument(
        "--workers", type=int, default=4, help="parallel feature queries (default: %(default)s)"
    )
    log_level_argument(score)

    from gpu_health.scorer.labels_cli import add_parser as add_labels_parser
    from gpu_health.scorer.models_cli import add_parser as add_models_parser
    from gpu_health.scorer.outcomes_cli import add_parser as add_outcomes_parser

    add_labels_parser(sub, _prometheus_arguments)
    add_models_parser(sub, _prometheus_arguments, _history_arguments)
    add_outcomes_parser(sub, _prometheus_arguments)


# ---- serve --------------------------------------------------------------------------------


def run_serve(args: argparse.Namespace) -> int:
    from prometheus_client import CollectorRegistry, ProcessCollector

    from gpu_health.scorer.api import gpu_json, gpus_handler, openapi_handler
    from gpu_health.scorer.inventory.wiring import fleet_hook
    from gpu_health.scorer.model import load_model
    from gpu_health.scorer.service import Scorer, ScorerCollector
    from gpu_health.web.server import Response, WebServer, landing_page, metrics_handler

    model = load_model(args.model)
    client = client_for(args)
    econ = fleet_hook(args, client.query)
    from gpu_health.scorer.sharding import Shard

    shard = Shard.parse(args.shard)
    scorer = Scorer(
        client,
        model,
        args.schema,
        econ,
        args.top_factors,
        args.workers,
        keep=shard.owns if shard.count > 1 else None,
        shard_regex=shard.uuid_regex(),
        model_dir=_reloadable(args.model),
        run_budget_s=args.run_budget or args.interval,
    )
    if args.once:
        from gpu_health.telemetry.state import rank_key

        ok = scorer.run_once()
        snap, error = scorer.current()
        if not ok or snap is None:
            raise UserError(f"scoring failed: {error}")
        ranked = sorted(snap.gpus, key=lambda g: rank_key(g.state, g.probability["30d"]))
        print(json.dumps({"schema": snap.schema, "gpus": [gpu_json(g) for g in ranked]}))
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
    log.info(
        "serving on port %d, scoring %s every %.0fs", server.port, args.prom_url, args.interval
    )
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: shutting down", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        scorer.loop(args.interval, stop)
    finally:
        server.shutdown()
    return 0


def _reloadable(model: str | None) -> Path | None:
    """The model directory watched for hot reload (none for the default or the rule)."""
    from gpu_health.scorer.model import RULES, XGBOOST

    return None if model in (None, RULES, XGBOOST) else Path(model)


def run_score(args: argparse.Namespace) -> int:
    """Score as of ``--at`` with the serving code (:class:`Scorer` with ``at`` set)."""
    from gpu_health.scorer.api import gpu_json
    from gpu_health.scorer.model import load_model
    from gpu_health.scorer.service import Scorer

    model = load_model(args.model)
    scorer = Scorer(client_for(args), model, args.schema, None, args.top_factors, args.workers)
    scorer.at = args.at
    if not scorer.run_once():
        raise UserError(f"scoring failed: {scorer.current()[1]}")
    snap, _ = scorer.current()
    assert snap is not None
    if not snap.gpus:
        raise UserError(f"no GPU reported at {iso_utc(args.at)} ({snap.schema} schema)")
    ranked = sorted(snap.gpus, key=lambda g: -g.probability["30d"])
    if args.json_out:
        body = {
            "at": args.at,
            "schema": snap.schema,
            "model": model.kind,
            "empty_features": list(snap.empty_features),
            "gpus": [gpu_json(g) for g in ranked],
        }
        print(json.dumps(body))
        return 0
    print(f"scored {len(ranked)} GPUs at {iso_utc(args.at)} ({snap.schema} schema, {model.kind})")
    print(f"{'uuid':<40} {'node':<16} {'p7d':>7} {'p30d':>7} {'p90d':>7}  class")
    for g in ranked:
        p = g.probability
        print(
            f"{g.uuid:<40} {g.node:<16} {p['7d']:>7.4f} {p['30d']:>7.4f} {p['90d']:>7.4f}  "
            f"{g.failure_class} ({g.failure_class_probability:.2f})"
        )
    return 0


def run(args: argparse.Namespace) -> int:
    configure_logging(getattr(args, "log_level", "info"))
    command = args.command or "serve"
    if command == "score":
        return run_score(args)
    if command == "train":
        return run_train(args)
    if command == "evaluate":
        return run_evaluate(args)
    if command == "labels":
        from gpu_health.scorer.labels_cli import run as run_labels

        return run_labels(args, client_for)
    if command == "models":
        from gpu_health.scorer.models_cli import run as run_models

        return run_models(args)
    if command == "outcomes":
        from gpu_health.scorer.outcomes_cli import run as run_outcomes

        return run_outcomes(args, client_for)
    return run_serve(args)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineArgumentParser(
        prog="gpu-health-scorer",
        description="GPU failure prediction sidecar for Prometheus. Commands: serve (default), "
        "train, evaluate, score, labels, models, outcomes; run 'gpu-health-scorer COMMAND "
        "--help' for their options.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    add_arguments(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if not args_list or (
        args_list[0] not in SUBCOMMANDS and args_list[0] not in ("-h", "--help", "--version")
    ):
        args_list.insert(0, "serve")

    def body() -> int:
        args = build_parser().parse_args(args_list)
        return run(args)

    return run_main(body)


if __name__ == "__main__":
    sys.exit(main())
