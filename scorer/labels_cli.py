"""``gpu-health-scorer labels``: derive the failure ledger from the history in Prometheus.

Kept out of :mod:`gpu_health.scorer.cli`, which only registers the subcommand. The output is
the CSV that ``train --failures`` reads; ``--truth`` judges it against a known list (the
simulator's failures.csv, or an RMA list) and prints recall and precision per kind.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from gpu_health import cli_validate
from gpu_health.errors import UserError
from gpu_health.scorer.ledger import Judged, Score, Truth

DESCRIPTION = (
    "Find the failures recorded in Prometheus: XID 79 (fell off the bus), uncorrectable memory "
    "errors (XID 48/94/95/140, DBE, uncorrectable row remaps), row-remap failures (XID 64 or the "
    "flag), NVLink and reset-required XIDs, gpu_up 0 outages, GPUs that vanished while their "
    "node kept reporting, and boards replaced by a new UUID in the same node and slot. "
    "Application XIDs (13, 31, 43, 45, ...) are not failures. Writes one CSV row per failure "
    "(uuid,time,mode + node, gpu, confidence, evidence) that 'train --failures' reads; review "
    "it, delete rows or add RMA tickets by hand. Only UUIDs, node names and slot indexes are "
    "written; nothing is sent anywhere."
)


def add_parser(sub: Any, prometheus_arguments: Callable[[argparse.ArgumentParser], None]) -> None:
    from gpu_health.cli_support import log_level_argument
    from gpu_health.scorer.cli_arguments import duration_arg, time_arg

    p = sub.add_parser(
        "labels", help="derive a failure ledger from the history", description=DESCRIPTION
    )
    prometheus_arguments(p)
    g = p.add_argument_group("history")
    g.add_argument(
        "--since",
        type=duration_arg,
        default=90 * 86400.0,
        help="how far back to look (default: 90d)",
    )
    g.add_argument("--end", type=time_arg, help="end of the history (default: now)")
    g.add_argument(
        "--data-dir",
        type=Path,
        help="a backfilled directory (gpu-health backfill --out) served by a private Prometheus; "
        "the whole of it is scanned",
    )
    g.add_argument(
        "--step",
        type=duration_arg,
        default=300.0,
        help="scan resolution (default: 5m); on history sampled more sparsely each step looks "
        "back 1.1 sample intervals, measured, so keep it shorter than the interval",
    )
    g.add_argument(
        "--chunk",
        type=duration_arg,
        default=7 * 86400.0,
        help="history per range query (default: 7d)",
    )
    g.add_argument(
        "--min-outage",
        type=duration_arg,
        default=600.0,
        help="shortest gpu_up 0 or disappearance counted (default: 10m)",
    )
    g.add_argument(
        "--merge-window",
        type=duration_arg,
        default=1800.0,
        help="a GPU's signal this soon after the previous one's end belongs to the same "
        "failure (default: 30m)",
    )
    g.add_argument(
        "--removal-window",
        type=duration_arg,
        default=7 * 86400.0,
        help="a board leaving for good (replaced, or gone and never seen again) this soon "
        "after a failure that ends its service (remap failure, uncorrectable error, off the "
        "bus) is that failure's removal, not another failure (default: 7d)",
    )
    p.add_argument(
        "--min-confidence",
        type=float,
        default=0.5,
        help="leave out failures less certain than this (0-1, default: %(default)s)",
    )
    p.add_argument("--out", type=Path, help="ledger CSV to write (default: standard output)")
    p.add_argument(
        "--truth",
        type=Path,
        help="known failures (uuid,time,mode CSV, e.g. the simulator's failures.csv): print "
        "recall and precision per kind. Read and checked before the scan: a mode that is not a "
        "ledger kind or a simulator's mode, or a GPU listed twice at the same time, is refused; "
        "rows outside the scanned history (before its start, after its end or in its last hour) "
        "are not judged, and those after its end are counted in a warning",
    )
    log_level_argument(p)


def run(args: argparse.Namespace, client_factory: Callable[..., Any]) -> int:
    from gpu_health.scorer.ledger import hand_rows, merge, write_ledger

    if not 0 <= args.min_confidence <= 1:
        raise UserError("--min-confidence must be between 0 and 1")
    truth: list[Truth] | None = None
    if args.truth is not None:  # before the scan and before --out is written
        from gpu_health.scorer.ledger import read_truth

        truth = read_truth(args.truth)
    kept: list[tuple[float, dict[str, str]]] = []
    if args.out is not None:  # before the scan, which a bad path would otherwise lose
        cli_validate.output_path(args.out, "--out", inputs=args)
        kept = hand_rows(args.out)  # an existing ledger's hand-added rows stay
    began = time.monotonic()
    from gpu_health.scorer.labels import ScanConfig, scan
    from gpu_health.scorer.promclient import PrometheusError

    try:
        with _history(args, client_factory) as (client, start, end):
            if truth is not None:
                _warn_after_end(truth, args.truth, end)
            schema = _schema(args, client, end)
            config = ScanConfig(start, end, args.step, args.chunk, args.min_outage)
            signals = scan(client, schema, config)
    except PrometheusError as exc:
        raise UserError(f"labels: {exc}") from None
    events = [
        e
        for e in merge(signals, args.merge_window, args.removal_window)
        if e.confidence >= args.min_confidence
    ]
    text = write_ledger(events, args.out, kept=kept)
    if args.out is None:
        sys.stdout.write(text)
    if kept:
        print(
            f"labels: kept {len(kept)} row(s) of {args.out} that labels did not derive "
            "(source other than 'derived')",
            file=sys.stderr,
        )
    print(
        f"labels: {len(events)} failures from {len(signals)} signals ({schema} schema, "
        f"{(end - start) / 86400:.0f} days) in {time.monotonic() - began:.0f}s",
        file=sys.stderr,
    )
    if truth is not None:
        print(judged(events, truth, start, end).markdown(), file=sys.stderr)
    return 0


def _warn_after_end(truth: Sequence[Truth], path: Path, end: float) -> None:
    """One warning for the known failures dated after the scanned history's end: not judged
    (the history cannot show them), and a year such as 2099 is more likely a typo than a
    failure to come. Not refused: a truth file may cover more than the scan (``--end`` in its
    middle)."""
    from gpu_health.unix_time import iso_utc

    late = [t for t in truth if t.time > end]
    if late:
        first = min(late, key=lambda t: t.line)
        print(
            f"labels: warning: --truth {path}: {len(late)} of {len(truth)} failures are dated "
            f"after the scan's end ({iso_utc(end)}), e.g. line {first.line} at "
            f"{iso_utc(first.time)}: they are not judged",
            file=sys.stderr,
        )


def judged(events: Sequence[Judged], truth: Sequence[Truth], start: float, end: float) -> Score:
    """Recall/precision against the known failures inside [start, end - 1h] (a failure in the
    last hour may not have left its outage in the history yet)."""
    from gpu_health.scorer.ledger import score

    return score(events, [t for t in truth if start <= t.time <= end - 3600.0])


def judge(events: Sequence[Judged], truth_path: Path, start: float, end: float) -> Score:
    """:func:`judged` against the known failures of the CSV at ``truth_path``
    (:func:`~gpu_health.scorer.ledger.read_truth`)."""
    from gpu_health.scorer.ledger import read_truth

    return judged(events, read_truth(truth_path), start, end)


def judge_file(ledger: Path, truth_path: Path, start: float, end: float) -> Score:
    """:func:`judge` on a ledger CSV as written (or as an operator edited it)."""
    from gpu_health.scorer.ledger import read_ledger

    return judge(read_ledger(ledger), truth_path, start, end)


def _schema(args: argparse.Namespace, client: Any, end: float) -> str:
    if args.schema != "auto":
        return str(args.schema)
    from gpu_health.scorer.features import detect_schema

    return str(detect_schema(client, end))


class _history:
    """(client, start, end) for --data-dir (private Prometheus) or --prometheus.url."""

    def __init__(self, args: argparse.Namespace, client_factory: Callable[..., Any]) -> None:
        self.args = args
        self.client_factory = client_factory
        self._ctx: Any = None

    def __enter__(self) -> tuple[Any, float, float]:
        args = self.args
        if args.data_dir is None:
            end = args.end or time.time()
            return self.client_factory(args), end - args.since, end
        from gpu_health.scorer.cli_history import open_history

        ns = argparse.Namespace(**vars(args))
        ns.failures, ns.start = None, None
        self._ctx = open_history(ns)
        client, start, end, _failures = self._ctx.__enter__()
        return client, max(start, end - args.since), end

    def __exit__(self, *exc: object) -> None:
        if self._ctx is not None:
            self._ctx.__exit__(*exc)
