"""``gpu-health-scorer``: serve (default), train and evaluate the failure model.

``serve`` reads Prometheus every interval and publishes probabilities, risk factors, anomaly
scores and economics on its own /metrics and a JSON API. ``train`` and ``evaluate`` replay the
same feature queries at past timestamps, either against a running Prometheus (``--prometheus.url``
with ``--start/--end``) or against a backfilled data directory that they serve themselves with a
private Prometheus (``--data-dir``, the output of ``gpu-health backfill``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from gpu_health import __version__
from gpu_health.cli_support import (
    OneLineArgumentParser,
    configure_logging,
    log_level_argument,
    run_main,
)
from gpu_health.errors import UserError

log = logging.getLogger("gpu_health.scorer")

DEFAULT_LISTEN = ":9836"
SUBCOMMANDS = ("serve", "train", "evaluate", "labels", "models", "outcomes")


def _duration(text: str) -> float:
    """``90s``, ``15m``, ``12h``, ``7d`` or plain seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    try:
        value = float(text[:-1]) * units[text[-1]] if text and text[-1] in units else float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a duration (e.g. 60s, 12h, 7d)"
        ) from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be positive")
    return value


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
        type=int,
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
        "--schema",
        choices=["auto", "ours", "dcgm"],
        default="auto",
        help="input metric names: ours (gpu-health-exporter), dcgm (dcgm-exporter's "
        "DCGM_FI_DEV_*), or auto-detect (default: %(default)s)",
    )


def _client(args: argparse.Namespace, url: str | None = None) -> Any:
    from gpu_health.scorer.promclient import PromClient, PromConfig, parse_headers

    if args.prom_retries < 1:
        raise UserError("--prometheus.retries must be at least 1")
    return PromClient(
        PromConfig(
            url=url or args.prom_url,
            timeout_s=args.prom_timeout,
            retries=args.prom_retries,
            ca_file=args.prom_ca_file,
            insecure_skip_verify=args.prom_insecure,
            bearer_token_file=args.prom_token_file,
            basic_auth_username=args.prom_user,
            basic_auth_password_file=args.prom_password_file,
            headers=parse_headers(args.prom_headers),
        )
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
    g.add_argument("--workers", type=int, default=4, help="parallel queries (default: 4)")


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
        "--interval", type=_duration, default=300.0, help="time between scoring runs (default: 5m)"
    )
    serve.add_argument(
        "--model", type=Path, help="model directory (default: the model shipped with the package)"
    )
    serve.add_argument(
        "--top-factors",
        type=int,
        default=3,
        help="risk factors published per GPU and horizon (default: %(default)s)",
    )
    serve.add_argument(
        "--workers", type=int, default=4, help="parallel feature queries (default: %(default)s)"
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
    serve.add_argument(
        "--econ.default-age-days",
        dest="econ_age",
        type=float,
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
    train.add_argument("--out", type=Path, required=True, help="model directory to write")
    train.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    train.add_argument(
        "--valid-fraction",
        type=float,
        default=0.3,
        help="latest share of time held out for calibration (default: 0.3)",
    )
    train.add_argument("--trees", type=int, default=300, help="boosting rounds (default: 300)")
    train.add_argument(
        "--hazard-scale",
        type=float,
        default=1.0,
        help="the simulated history's failure rates were multiplied by this; probabilities "
        "are rescaled to the unscaled rates (default: %(default)s)",
    )
    train.add_argument(
        "--signal-dropout",
        type=float,
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
    evaluate.add_argument("--model", type=Path, help="model directory (default: shipped model)")
    evaluate.add_argument("--json", dest="json_out", type=Path, help="write the report as JSON")
    log_level_argument(evaluate)

    from gpu_health.scorer.labels_cli import add_parser as add_labels_parser

    add_labels_parser(sub, _prometheus_arguments)
    from gpu_health.scorer.models_cli import add_parser as add_models_parser

    add_models_parser(sub, _prometheus_arguments, _history_arguments)
    from gpu_health.scorer.outcomes_cli import add_parser as add_outcomes_parser

    add_outcomes_parser(sub, _prometheus_arguments)


# ---- history (shared by train and evaluate) ------------------------------------------------


def block_time_range(data_dir: Path) -> tuple[float, float]:
    """Earliest and latest sample time of the TSDB blocks in ``data_dir`` (from meta.json)."""
    lo, hi = float("inf"), float("-inf")
    for meta in data_dir.glob("*/meta.json"):
        try:
            m = json.loads(meta.read_text())
            lo = min(lo, m["minTime"] / 1000.0)
            hi = max(hi, m["maxTime"] / 1000.0)
        except (OSError, ValueError, KeyError):
            continue
    if lo == float("inf"):
        raise UserError(f"{data_dir}: no Prometheus blocks found")
    return lo, hi


def _tsdb_dir(data_dir: Path) -> Path:
    for candidate in (data_dir / "prometheus", data_dir / "data", data_dir / "tsdb", data_dir):
        if any(candidate.glob("*/meta.json")):
            return candidate
    raise UserError(f"{data_dir}: no Prometheus blocks found (expected gpu-health backfill --out)")


@contextlib.contextmanager
def open_history(args: argparse.Namespace) -> Iterator[tuple[Any, float, float, Path]]:
    """Yield (client, start, end, failures path) for --data-dir or --prometheus.url."""
    if args.data_dir:
        from gpu_health import stack

        tsdb = _tsdb_dir(args.data_dir)
        start, end = block_time_range(tsdb)
        start = args.start or start
        end = args.end or end
        failures = args.failures or args.data_dir / "failures.csv"
        with tempfile.TemporaryDirectory(prefix="gpu-health-scorer-") as tmp:
            work = Path(tmp)
            config = stack.write_prometheus_config(work / "prometheus.yml")
            print(f"starting a private Prometheus on {tsdb} ...", file=sys.stderr, flush=True)
            try:
                ctx = stack.prometheus(work, config, data_dir=tsdb, retention="36500d")
                with ctx as server:
                    yield _client(args, server.url), start, end, failures
            except stack.MissingBinaryError as exc:
                raise UserError(str(exc)) from None
        return
    if not args.failures:
        raise UserError("--failures CSV is required with --prometheus.url (or use --data-dir)")
    if not args.start:
        raise UserError("--start is required with --prometheus.url (or use --data-dir)")
    yield _client(args), args.start, args.end or time.time(), args.failures


def _collect(args: argparse.Namespace, label: str) -> tuple[Any, list[Any], str]:
    from gpu_health.scorer.features import detect_schema
    from gpu_health.scorer.training import (
        collect,
        load_failures,
        prediction_times,
        print_progress,
    )

    with open_history(args) as (client, start, end, failures_path):
        failures = load_failures(failures_path)
        schema = args.schema if args.schema != "auto" else detect_schema(client, end)
        times = prediction_times(start, end, args.step, args.warmup)
        print(
            f"{label}: {len(times)} time steps, schema {schema}, {len(failures)} failures",
            file=sys.stderr,
            flush=True,
        )
        data = collect(
            client, schema, times, failures, end, print_progress(label), workers=args.workers
        )
        if client.errors:
            raise UserError(f"{client.errors} feature queries failed; see the log above")
    return data, failures, schema


def run_train(args: argparse.Namespace) -> int:
    from gpu_health.scorer.training import fit

    if args.hazard_scale <= 0 or not 0 <= args.signal_dropout < 1:
        raise UserError("--hazard-scale must be > 0 and --signal-dropout in [0, 1)")
    if not 0 < args.valid_fraction < 1:
        raise UserError("--valid-fraction must be between 0 and 1")
    began = time.monotonic()
    data, _failures, schema = _collect(args, "train")
    if args.dump_dataset:
        _dump(data, args.dump_dataset)
    model, report = fit(
        data,
        seed=args.seed,
        valid_fraction=args.valid_fraction,
        n_estimators=args.trees,
        dropout=args.signal_dropout,
        hazard_scale=args.hazard_scale,
        metadata={
            "schema_trained_on": schema,
            "source": str(args.data_dir or args.prom_url),
            "step_s": args.step,
            "created_by": f"gpu-health-scorer {__version__}",
        },
    )
    model.save(args.out)
    print(json.dumps(report, indent=2))
    print(f"model written to {args.out} in {time.monotonic() - began:.0f}s", file=sys.stderr)
    return 0


def _dump(data: Any, path: Path) -> None:
    import csv

    from gpu_health.scorer.model import HORIZONS

    with path.open("w", newline="") as handle:
        w = csv.writer(handle)
        w.writerow(["uuid", "time", *data.features, *(f"y_{h}" for h in HORIZONS)])
        for i in range(len(data)):
            w.writerow(
                [data.uuids[i], data.times[i], *data.x[i], *(data.labels[h][i] for h in HORIZONS)]
            )


def run_evaluate(args: argparse.Namespace) -> int:
    from gpu_health.scorer.model import FailureModel
    from gpu_health.scorer.training import evaluate

    model = FailureModel.load(args.model)
    data, failures, schema = _collect(args, "evaluate")
    report = evaluate(model, data, failures)
    report["schema"] = schema
    if args.json_out:
        args.json_out.write_text(json.dumps(report, indent=2) + "\n")
    print(format_report(report))
    return 0


def format_report(report: dict[str, Any]) -> str:
    def f(v: Any) -> str:
        return "-" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))

    lines = [f"schema {report.get('schema')}, {report['rows']} GPU-time rows"]
    lines.append("horizon  rows  pos  ROC_AUC  PR_AUC  recall@5%FPR  FPR@thr  recall@thr")
    for h, e in report["horizons"].items():
        lines.append(
            f"{h:>7} {e['rows']:>5} {e['positives']:>4}  {f(e.get('roc_auc')):>7} "
            f"{f(e.get('pr_auc')):>7}  {f(e.get('recall_at_5pct_fpr')):>12}  "
            f"{f(e.get('fpr_at_threshold')):>7}  {f(e.get('recall_at_threshold')):>10}"
        )
    for h, e in report["horizons"].items():
        for subset in ("precursor_failures", "precursor_visible"):
            if subset in e:
                sub = e[subset]
                lines.append(
                    f"{h:>7} {subset}: ROC_AUC {f(sub['roc_auc'])}, PR_AUC {f(sub['pr_auc'])}, "
                    f"recall@5%FPR {f(sub['recall_at_5pct_fpr'])} ({sub['positives']} positives)"
                )
    lt = report["lead_time"]
    for key in ("all", "with_precursor", "precursor_began_7d_before"):
        s = lt[key]
        lines.append(
            f"lead time ({key}): {s['failures']} failures, {s['flagged']} flagged, "
            f"{s['flagged_7d_early']} >= 7 d early ({f(s['share_flagged_7d_early'])}), "
            f"median lead {f(s['median_lead_days'])} d"
        )
    for mode, s in lt["by_mode"].items():
        lines.append(
            f"  {mode}: {s['failures']} failures, {s['flagged_7d_early']} flagged >= 7 d early"
        )
    return "\n".join(lines)


# ---- serve --------------------------------------------------------------------------------


def run_serve(args: argparse.Namespace) -> int:
    from prometheus_client import CollectorRegistry, ProcessCollector

    from gpu_health.scorer.api import gpu_json, gpus_handler, openapi_handler
    from gpu_health.scorer.model import FailureModel
    from gpu_health.scorer.service import Scorer, ScorerCollector
    from gpu_health.web.server import Response, WebServer, landing_page, metrics_handler

    model = FailureModel.load(args.model)
    econ = None
    if args.econ:
        from gpu_health.scorer.econ.bridge import make_econ_hook

        econ = make_econ_hook(args.econ_params, args.econ_inventory, args.econ_age)
    from gpu_health.scorer.sharding import Shard

    shard = Shard.parse(args.shard)
    scorer = Scorer(
        _client(args),
        model,
        args.schema,
        econ,
        args.top_factors,
        args.workers,
        keep=shard.owns if shard.count > 1 else None,
        shard_regex=shard.uuid_regex(),
        model_dir=args.model,
    )
    if args.once:
        ok = scorer.run_once()
        snap, error = scorer.current()
        if not ok or snap is None:
            raise UserError(f"scoring failed: {error}")
        ranked = sorted(snap.gpus, key=lambda g: -g.probability["30d"])
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
    server = WebServer(args.listen, routes, web_config=args.web_config_file).start()
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


def run(args: argparse.Namespace) -> int:
    configure_logging(getattr(args, "log_level", "info"))
    command = args.command or "serve"
    if command == "train":
        return run_train(args)
    if command == "evaluate":
        return run_evaluate(args)
    if command == "labels":
        from gpu_health.scorer.labels_cli import run as run_labels

        return run_labels(args, _client)
    if command == "models":
        from gpu_health.scorer.models_cli import run as run_models

        return run_models(args)
    if command == "outcomes":
        from gpu_health.scorer.outcomes_cli import run as run_outcomes

        return run_outcomes(args, _client)
    return run_serve(args)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineArgumentParser(
        prog="gpu-health-scorer",
        description="GPU failure prediction sidecar for Prometheus. Commands: serve (default), "
        "train, evaluate, labels, models, outcomes; run 'gpu-health-scorer COMMAND --help' for "
        "their options.",
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
