"""Arguments and entry point of ``gpu-health report``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gpu_health import cli_validate
from gpu_health.output_file import write_atomically
from gpu_health.prometheus_access import access_from_args, add_access_arguments
from gpu_health.report import html, text
from gpu_health.report.gather import DEFAULT_QUERY_TIMEOUT, Gatherer
from gpu_health.report.plan_section import add_plan_section
from gpu_health.report.runbooks import DEFAULT_RUNBOOK_URL_PATTERN, check_pattern

#: The longest --query-timeout: an hour per query already means a report of hours.
MAX_QUERY_TIMEOUT = 3600.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Print a fleet report (GPU states: failed, absent, degraded, healthy, replaced, with why; "
        "health by grade; GPUs ranked by state then failure risk with their top risk factors "
        "and most likely failure class (linked to its runbook); "
        "recommended actions with NPV; the live accuracy of past flags per horizon (from "
        "gpu-health-scorer outcomes); each XID code with its count and the alerts of the "
        "period; trends) from a Prometheus or VictoriaMetrics that holds gpu-health-exporter "
        "metrics, or dcgm-exporter metrics plus the scorer's. Optionally also write it as one "
        "self-contained HTML file with charts."
    )
    parser.add_argument(
        "--prometheus",
        required=True,
        type=cli_validate.http_url,
        metavar="URL",
        help="Prometheus base URL, e.g. http://127.0.0.1:9090",
    )
    add_access_arguments(
        parser.add_argument_group("Prometheus connection (TLS and credentials, as the scorer's)")
    )
    parser.add_argument(
        "--period",
        default="7d",
        help="look-back window for XIDs, alerts and trends (default: %(default)s)",
    )
    parser.add_argument(
        "--html", type=Path, metavar="FILE", help="also write the report as HTML here"
    )
    parser.add_argument(
        "--schema",
        choices=["auto", "ours", "dcgm"],
        default="auto",
        help="input metric names: ours, dcgm-exporter's, or auto = the schema with more GPUs "
        "reporting now, i.e. in the last 30 min or 1.5 scrape intervals of sparser data "
        "(default: %(default)s); an explicit schema is always used",
    )
    parser.add_argument(
        "--top",
        type=cli_validate.integer(0, 100_000),
        default=20,
        help="GPUs in the risk ranking (default: %(default)s)",
    )
    parser.add_argument(
        "--runbook-url-pattern",
        default=DEFAULT_RUNBOOK_URL_PATTERN,
        metavar="URL",
        help="where a failure class links its runbook; %%s is the runbook name (the same "
        "pattern as the mixin's runbookURLPattern; default: %(default)s)",
    )
    parser.add_argument(
        "--query-timeout",
        type=cli_validate.duration(0.0, MAX_QUERY_TIMEOUT),
        default=DEFAULT_QUERY_TIMEOUT,
        metavar="SECONDS",
        help="how long each Prometheus request may take, up to the last byte of the answer, "
        "before the report fails with a timeout; the trend (range) queries get twice it. Raise "
        "it for a large or busy Prometheus (an XID query over 10,000 GPUs took 19-35 s). Plain "
        "seconds or 90s, 2m; at most 1h (default: %(default)g)",
    )
    parser.add_argument(
        "--at",
        type=cli_validate.unix_time,
        metavar="TIME",
        help="report time, Unix seconds or ISO 8601 (default: now)",
    )


def run(args: argparse.Namespace) -> int:
    if args.html:  # checked before querying: no directory is created, /proc is refused
        cli_validate.output_path(args.html, "--html", inputs=args)
    pattern = check_pattern(args.runbook_url_pattern)
    access = access_from_args(args)
    gatherer = Gatherer(
        args.prometheus,
        args.period,
        at=args.at,
        runbook_url_pattern=pattern,
        query_timeout=args.query_timeout,
        access=access,
    )
    report = gatherer.gather(args.schema, args.top)
    add_plan_section(report, args.prometheus, args.at, access)
    sys.stdout.write(text.render(report))
    if args.html:
        write_atomically(args.html, html.render(report), "--html")
        print(f"HTML report written to {args.html}", file=sys.stderr)
    return 0
