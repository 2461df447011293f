"""``gpu-health-scorer models list|promote|rollback``: manage a model store safely.

``promote`` runs the champion/challenger gate (:mod:`gpu_health.scorer.gate`) on the history —
a backfilled ``--data-dir`` or ``--prometheus.url`` with ``--start`` — and adds the candidate to
the store only when it passes; ``rollback`` serves the previous version again. Point ``serve
--model`` at ``STORE/current``: it picks up either change at its next scoring run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gpu_health import cli_validate
from gpu_health.errors import UserError


def add_parser(
    sub: Any,
    prometheus_arguments: Callable[[argparse.ArgumentParser], None],
    history_arguments: Callable[[argparse.ArgumentParser, str], None],
) -> None:
    from gpu_health.cli_support import OneLineArgumentParser, log_level_argument
    from gpu_health.scorer.cli_arguments import duration_arg, time_arg

    models = sub.add_parser(
        "models",
        help="list, promote (gated) or roll back model versions",
        description="Manage a model store: every promoted version with its manifest, "
        "evaluation and checksums; STORE/current is what 'serve --model' should read.",
    )
    msub = models.add_subparsers(
        dest="models_command", metavar="ACTION", parser_class=OneLineArgumentParser
    )
    listing = msub.add_parser(
        "list",
        help="versions in the store",
        description="List every version: when it was promoted, its held-out ROC AUC and why. "
        "A version whose files no longer verify is listed as DAMAGED with its problem (never "
        "roll back to it). Exit status 0 when what serve reads (the serving version and "
        "STORE/current) verifies, also with other versions damaged; 1, after the table, with "
        "one line saying what is damaged, when it does not.",
    )
    listing.add_argument("--store", type=Path, required=True, help="model store directory")
    log_level_argument(listing)

    promote = msub.add_parser(
        "promote",
        help="promote a candidate model directory if it passes the gate",
        description="Judge a candidate on the most recent held-out window of the history "
        "against the serving model and the rule baseline (ROC AUC, GPU-bootstrap intervals); "
        "add it to the store and serve it only if it beats both.",
    )
    promote.add_argument(
        "candidate", type=Path, help="model directory written by 'train' (outside the store)"
    )
    promote.add_argument(
        "--store",
        type=Path,
        required=True,
        help="model store directory (created if absent; not a model directory)",
    )
    prometheus_arguments(promote)
    history_arguments(promote, "evaluation")
    g = promote.add_argument_group("gate")
    g.add_argument(
        "--holdout-start",
        type=time_arg,
        help="first prediction time of the held-out window (default: history end - --holdout-days)",
    )
    g.add_argument(
        "--holdout-days",
        type=duration_arg,
        default=45 * 86400.0,
        help="held-out window when --holdout-start is not given (default: 45d; the 30-day "
        "horizon needs 30 of them to see outcomes)",
    )
    g.add_argument(
        "--trained-until",
        type=time_arg,
        help="end of the candidate's training history (default: its metadata trained_until)",
    )
    g.add_argument(
        "--min-failures",
        type=int,
        default=20,
        help="refuse candidates trained on fewer failures (default: %(default)s)",
    )
    g.add_argument(
        "--min-gain",
        type=cli_validate.number(-1.0, 1.0),
        default=0.0,
        help="ROC AUC margin the candidate must win by (default: %(default)s)",
    )
    g.add_argument("--horizon", choices=("7d", "30d"), default="30d", help="judged horizon")
    g.add_argument(
        "--force",
        action="store_true",
        help="skip the gate (first deployment or an emergency); recorded in the history",
    )
    log_level_argument(promote)

    rollback = msub.add_parser(
        "rollback",
        help="serve the previous version again",
        description="Serve the version that served before the current one (or --to VERSION). "
        "Only versions under STORE/versions whose files verify are served; --to the serving "
        "version copies it into STORE/current again when that copy is damaged.",
    )
    rollback.add_argument("--store", type=Path, required=True, help="model store directory")
    rollback.add_argument(
        "--to",
        metavar="VERSION",
        help="version name as 'models list' shows it, e.g. 0003 (default: the previous one)",
    )
    log_level_argument(rollback)


def run(args: argparse.Namespace) -> int:
    from gpu_health.scorer.registry import Store

    action = getattr(args, "models_command", None)
    if action is None:
        raise UserError("models: give an action: list, promote or rollback")
    _check_store(args.store, creating=action == "promote")
    store = Store(args.store)
    if action == "list":
        print(format_versions(store), flush=True)
        problem = store.serving_problem()
        if problem is not None:  # after the table: it shows the versions to roll back to
            raise UserError(f"--store {args.store}: {problem}")
        return 0
    if action == "rollback":
        version = store.rollback(args.to)
        print(f"serving version {version} from {store.serving_dir}")
        return 0
    return _promote(args, store)


def _check_store(path: Path, creating: bool) -> None:
    """``--store`` before anything is read or written: ``promote`` creates it (its parent must
    exist; /proc and a file in the way are refused), ``list`` and ``rollback`` need one. A
    mistyped store listed as an empty table looked like a store with nothing promoted. A model
    directory, or a directory inside one or inside another store, is no store
    (:func:`~gpu_health.scorer.registry.refuse_as_store`)."""
    from gpu_health.scorer.registry import refuse_as_store

    refuse_as_store(path)  # also: a name the system refuses (too long) is one line
    if creating:
        cli_validate.output_path(path, "--store", directory=True)
    elif not path.exists():
        raise UserError(f"--store {path}: no model store there ('models promote' creates one)")
    elif not path.is_dir():
        raise UserError(f"--store {path}: not a directory")


def format_versions(store: Any) -> str:
    """The table of ``models list``: every version, a damaged one with its problem in place of
    its evaluation (which no longer verifies either)."""
    from gpu_health.safetext import one_line
    from gpu_health.scorer.registry import Damaged

    current = store.current
    lines = ["version  serving  promoted              AUC(held-out)  failures  reason"]
    for v in store.versions():
        serving = f"{'*' if v.name == current else ' ':^7}"
        if isinstance(v, Damaged):
            lines.append(
                f"{v.name:>7}  {serving}  {'-':<20}  {'-':>13}  {'-':>8}  DAMAGED: {v.problem}"
            )
            continue
        ev = v.evaluation
        gate = _mapping(ev.get("gate"))
        auc = _mapping(gate.get("roc_auc")).get("candidate")
        when = dt.datetime.fromtimestamp(v.created, dt.UTC).strftime("%Y-%m-%d %H:%M")
        lines.append(
            f"{v.name:>7}  {serving}  {when:<20}  "
            f"{f'{auc:.3f}' if isinstance(auc, int | float) else '-':>13}  "
            f"{one_line(gate.get('failures_trained_on', '-'), 8):>8}  "
            f"{one_line(ev.get('reason', ''), 200)}"
        )
    return "\n".join(lines)


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _promote(args: argparse.Namespace, store: Any) -> int:
    from gpu_health.scorer.gate import GateConfig, judge, refusal
    from gpu_health.scorer.model import FailureModel, ModelError

    store.refuse_candidate(args.candidate)  # before the gate reads any history
    try:
        candidate = FailureModel.load(args.candidate)
    except ModelError as exc:
        raise UserError(f"candidate refused: {exc}") from None
    if args.force:
        version = store.add(args.candidate, {"reason": "forced (gate skipped)"})
        store.activate(version.name, "promote", "forced (gate skipped)")
        print(f"version {version.name} promoted without the gate (--force)")
        return 0
    if args.min_failures < 1:
        raise UserError("--min-failures must be at least 1")
    champion = None
    if store.current is not None:
        champion = FailureModel.load(store.serving_dir)
    from gpu_health.scorer.cli_history import _collect
    from gpu_health.scorer.promclient import PrometheusError

    config = GateConfig(args.min_failures, args.min_gain, args.horizon)
    trained_until = args.trained_until or _metadata_time(candidate.metadata, "trained_until")
    plan: dict[str, Any] = {}

    def held_out(times: list[float], failures: list[Any]) -> float:
        """Where the held-out window starts; refuse what needs no features before reading any
        (only the window is read: the gate judges nothing before it)."""
        holdout_start = args.holdout_start or times[-1] - args.holdout_days
        trained_on = candidate.metadata.get("failures_trained_on")
        if not isinstance(trained_on, int):
            limit = trained_until if trained_until is not None else holdout_start
            trained_on = sum(1 for f in failures if f.time < limit)
        early = refusal(holdout_start, trained_until, trained_on, config)
        if early is not None:
            print(json.dumps(early.to_json(), indent=2), file=sys.stderr)
            raise UserError(early.reason)
        plan.update(holdout_start=holdout_start, trained_on=trained_on)
        return float(holdout_start)

    try:
        data, _failures, _schema = _collect(args, "gate", held_out)
    except PrometheusError as exc:
        raise UserError(f"models promote: {exc}") from None
    decision = judge(
        candidate,
        champion,
        data,
        plan["holdout_start"],
        trained_until,
        plan["trained_on"],
        config,
    )
    print(json.dumps(decision.to_json(), indent=2), file=sys.stderr)
    if not decision.promote:
        raise UserError(decision.reason)
    version = store.add(args.candidate, {"reason": decision.reason, "gate": decision.scores})
    store.activate(version.name, "promote", decision.reason)
    print(f"version {version.name}: {decision.reason}")
    return 0


def _metadata_time(metadata: dict[str, Any], key: str) -> float | None:
    value = metadata.get(key)
    if isinstance(value, int | float):
        return float(value)
    return None
