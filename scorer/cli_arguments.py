"""``gpu-health-scorer``'s argument definitions: every command's options and their checks.

Kept apart from the command runners (:mod:`gpu_health.scorer.cli_serve`,
:mod:`gpu_health.scorer.cli_history`) so ``--help`` and option validation can be read, and
changed, in one place; :mod:`gpu_health.scorer.cli` builds the parser from here.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from gpu_health import cli_validate
from gpu_health.cli_support import OneLineArgumentParser, log_level_argument
from gpu_health.prometheus_access import add_access_arguments

DEFAULT_LISTEN = ":9836"
MODEL_HELP = (
    "model directory, 'rules' (the transparent rule baseline) or 'xgboost' (the shipped "
    "trained model); default: the shipped default, the rule (docs/model-card.md)"
)


def duration_arg(text: str) -> float:
    """``90s``, ``15m``, ``12h``, ``7d`` or plain seconds: finite, positive, at most 10 years."""
    return cli_validate.duration(0.0, 10 * 365 * 86400.0)(text)


time_arg = cli_validate.unix_time


def _prometheus_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("Prometheus connection")
    g.add_argument(
        "--prometheus.url",
        dest="prom_url",
        type=cli_validate.http_url,
        default="http://localhost:9090",
        help="base URL of Prometheus, Mimir/Cortex (with /prometheus) or Thanos Query "
        "(default: %(default)s)",
    )
    g.add_argument(
        "--prometheus.timeout",
        dest="prom_timeout",
        type=duration_arg,
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
    add_access_arguments(g)
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
    g.add_argument(
        "--start", type=time_arg, help="first time of the history (with --prometheus.url)"
    )
    g.add_argument("--end", type=time_arg, help="last time of the history (default: now)")
    g.add_argument(
        "--step",
        type=duration_arg,
        default=12 * 3600.0,
        help=f"time between {what} examples (default: 12h)",
    )
    g.add_argument(
        "--warmup",
        type=duration_arg,
        default=7 * 86400.0,
        help="history skipped at the start so windows are filled (default: 7d)",
    )
    g.add_argument(
        "--workers",
        type=cli_validate.integer(1, 64),
        default=4,
        help="parallel queries (default: 4)",
    )
    _history_source_argument(g, f"at each {what} time, as serve reads it then")


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
    _shard_argument(serve)
    _history_source_argument(serve)
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
    train.add_argument(
        "--seed",
        type=cli_validate.integer(0, 2**32 - 1),
        default=0,
        help="random seed, 0 to 4294967295 (default: 0)",
    )
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
        type=cli_validate.number(0.0, cli_validate.MAX_HAZARD_SCALE, exclusive_minimum=True),
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
        description="ROC AUC and recall at 5% FPR with 95% GPU-bootstrap intervals for the "
        "model, the rule baseline and a one-line SRE rule on the same rows (all failures, "
        "visible precursors, each failure mode), plus calibration and lead times, on a "
        "held-out history (e.g. a differently seeded fleet or another physics family).",
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
        "--at", type=time_arg, required=True, help="time to score at: ISO 8601 or Unix seconds"
    )
    score.add_argument("--model", help=MODEL_HELP)
    score.add_argument("--json", dest="json_out", action="store_true", help="print JSON")
    score.add_argument(
        "--top-factors",
        type=cli_validate.integer(0, 50),
        default=3,
        help="risk factors per GPU (default: %(default)s)",
    )
    score.add_argument(
        "--workers",
        type=cli_validate.integer(1, 64),
        default=4,
        help="parallel feature queries (default: %(default)s)",
    )
    _shard_argument(score)
    _history_source_argument(score)
    log_level_argument(score)

    from gpu_health.scorer.labels_cli import add_parser as add_labels_parser
    from gpu_health.scorer.models_cli import add_parser as add_models_parser
    from gpu_health.scorer.outcomes_cli import add_parser as add_outcomes_parser

    add_labels_parser(sub, _prometheus_arguments)
    add_models_parser(sub, _prometheus_arguments, _history_arguments)
    add_outcomes_parser(sub, _prometheus_arguments)


def _history_source_argument(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup, when: str = ""
) -> None:
    """``--history`` of ``serve`` and ``score``, and (``when`` says at which times) of the
    commands that read features at many past times (:mod:`gpu_health.scorer.history_source`)."""
    from gpu_health.scorer.history_source import HISTORY_MODES

    parser.add_argument(
        "--history",
        choices=HISTORY_MODES,
        default="auto",
        help="read the raw series; their 5-minute samples kept by the mixin's "
        "gpu-health-scorer-history.rules recording rules (recorded: as fast at a 15-s scrape "
        "interval as at 5 minutes); or, for windows of 7 days or more, their hourly samples "
        "kept by its gpu-health-scorer-hourly.rules (hourly: a week is 168 samples a series; "
        "those windows then end at the group's last evaluation, up to an hour back); auto reads "
        "each once it reaches 30 days back and covers every reporting GPU, and logs which it "
        f"reads{' ' + when if when else ''} (default: %(default)s)",
    )


def _shard_argument(parser: argparse.ArgumentParser) -> None:
    """``--shard N/M`` of ``serve`` and ``score`` (:mod:`gpu_health.scorer.sharding`): a
    backtest of one replica scores the GPUs that replica scored."""
    parser.add_argument(
        "--shard",
        default="0/1",
        help="score only shard N of M (GPUs split by uuid; every replica reads the whole "
        "fleet for the fleet-relative features) (default: %(default)s)",
    )
