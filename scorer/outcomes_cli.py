"""``gpu-health-scorer outcomes``: live precision, recall and lead time of the scorer's flags.

Reads ``gpu_failure_probability`` history back from Prometheus and the failure ledger
(``labels`` output, reviewed), and prints ``gpu_prediction_outcomes``, ``_precision``,
``_recall`` and ``_lead_time_days`` per horizon in the Prometheus text format. Written to the
node-exporter textfile directory (``--textfile``) on a timer, they reach Prometheus, where the
``GpuPredictionPrecisionLow`` alert watches them.

A flag here is the published probability at or above the model's fixed threshold
(``model.threshold``): the history of ``gpu_failure_probability`` does not say how often the
fleet was failing at each time. For a trained model that is exactly its ``flagged``. For the
rule it is the floor of its per-row threshold (8 times the public base hazard), which equals
``flagged`` only while the fleet fails no more often than the public rate; in a fleet failing
above it these counts include GPUs the service did not flag (``evaluate`` reports both).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gpu_health import cli_validate
from gpu_health.errors import UserError
from gpu_health.output_file import write_atomically
from gpu_health.unix_time import iso_utc


def add_parser(sub: Any, prometheus_arguments: Callable[[argparse.ArgumentParser], None]) -> None:
    from gpu_health.cli_support import log_level_argument
    from gpu_health.scorer.cli_arguments import duration_arg, time_arg

    p = sub.add_parser(
        "outcomes",
        help="live precision/recall/lead time of past flags against the ledger",
        description="How the scorer's past flags (gpu_failure_probability at or above the "
        "model's fixed threshold) turned out against the failure ledger, per horizon, over a "
        "rolling window; printed as Prometheus metrics. The published probabilities do not "
        "say how often the fleet was failing, so for the rule baseline a flag here is its "
        "absolute floor (8 times the public base hazard), not the per-fleet flag the service "
        "sets: in a fleet failing above the public rate this counts more flags than "
        "'flagged' in the API shows.",
    )
    prometheus_arguments(p)
    p.add_argument("--ledger", type=Path, required=True, help="failures CSV (uuid,time,mode)")
    p.add_argument(
        "--model",
        help="model whose thresholds define a flag: a model directory, 'rules' or 'xgboost' "
        "(default: the shipped default, as serve uses it)",
    )
    p.add_argument(
        "--window", type=duration_arg, default=90 * 86400.0, help="rolling window (default: 90d)"
    )
    p.add_argument(
        "--step", type=duration_arg, default=12 * 3600.0, help="prediction spacing (default: 12h)"
    )
    p.add_argument("--end", type=time_arg, help="end of the window (default: now)")
    p.add_argument("--horizon", action="append", help="horizon(s) to report (default: all)")
    p.add_argument(
        "--textfile", type=Path, help="write the metrics here (atomically) instead of stdout"
    )
    p.add_argument("--json", dest="json_out", action="store_true", help="print JSON instead")
    log_level_argument(p)


def run(args: argparse.Namespace, client_factory: Callable[..., Any]) -> int:
    from gpu_health.scorer.model import ModelError, load_model
    from gpu_health.scorer.outcomes import (
        exposition,
        horizons_or_all,
        outcomes,
        probability_history,
        state_rows,
    )
    from gpu_health.scorer.training import load_failures

    horizons = horizons_or_all(args.horizon)
    if args.textfile:  # before the queries
        cli_validate.output_path(args.textfile, "--textfile", inputs=args)
    try:
        model = load_model(args.model)
    except ModelError as exc:
        raise UserError(f"outcomes: {exc}") from None
    failures = [(f.uuid, f.time) for f in load_failures(args.ledger)]
    end = args.end or time.time()
    start = end - args.window
    client = client_factory(args)
    results = []
    histories = []
    from gpu_health.scorer.cli_history import check_failures_match
    from gpu_health.scorer.promclient import PrometheusError

    try:
        not_predicted = state_rows(client, start, end, args.step)
    except PrometheusError as exc:
        raise UserError(f"outcomes: {exc}") from None
    for h in horizons:
        try:
            history = probability_history(client, h, start, end, args.step)
        except PrometheusError as exc:
            raise UserError(f"outcomes: {exc}") from None
        histories.append(history)
        results.append(outcomes(history, failures, h, model.threshold(h), end, not_predicted))
    if client.errors:
        raise UserError(f"{client.errors} queries failed; see the log above")
    published = {uuid for history in histories for uuid in history}
    if not published:  # all-zero counts would read as a model that flagged nothing
        raise UserError(
            f"outcomes: no gpu_failure_probability between {iso_utc(start)} and {iso_utc(end)} at "
            f"{args.prom_url}: is gpu-health-scorer running and scraped by it?"
        )
    check_failures_match(failures, published, start, end, args.ledger)
    window = f"{args.window / 86400:g}d"
    if args.json_out:
        print(
            json.dumps(
                {
                    r.horizon: {
                        "true_positive": r.true_positive,
                        "false_positive": r.false_positive,
                        "false_negative": r.false_negative,
                        "true_negative": r.true_negative,
                        "precision": _finite(r.precision),
                        "recall": _finite(r.recall),
                        "median_lead_days": _finite(r.median_lead_days),
                        "failures": r.failures,
                    }
                    for r in results
                },
                indent=2,
            )
        )
        return 0
    text = exposition(results, window)
    if args.textfile:
        write_atomically(args.textfile, text, "--textfile")
    else:
        sys.stdout.write(text)
    return 0


def _finite(value: float) -> float | None:
    return None if value != value else value
