"""``gpu-health-scorer train`` and ``evaluate``: histories, the Prometheus client, reports.

Both replay the serving feature queries at past timestamps, either against a running
Prometheus (``--prometheus.url`` with ``--start/--end``) or against backfilled data directories
that they serve themselves with a private Prometheus (``--data-dir``). Split from
:mod:`gpu_health.scorer.cli`, which dispatches to the runners (the options are in
:mod:`gpu_health.scorer.cli_arguments`, ``serve`` and ``score`` in
:mod:`gpu_health.scorer.cli_serve`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import re
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np

from gpu_health import __version__, cli_validate
from gpu_health.errors import UserError
from gpu_health.output_file import open_atomically, write_atomically
from gpu_health.safetext import one_line
from gpu_health.unix_time import iso_utc

log = logging.getLogger("gpu_health.scorer")


def client_for(args: argparse.Namespace, url: str | None = None) -> Any:
    from gpu_health.prometheus_access import parse_headers
    from gpu_health.scorer.promclient import PromClient, PromConfig

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
            max_answer_bytes=getattr(args, "prom_max_bytes", 64 << 20),
            max_series=getattr(args, "prom_max_series", 200_000),
        )
    )


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


def _exit_on_signal(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def open_history(args: argparse.Namespace) -> Iterator[tuple[Any, float, float, Path]]:
    """Yield (client, start, end, failures path) for --data-dir or --prometheus.url."""
    if args.data_dir:
        from gpu_health import stack

        # Absolute: the private Prometheus runs in a temporary working directory, where a
        # relative path would open (and create) an empty database.
        tsdb = _tsdb_dir(args.data_dir.resolve())
        _refuse_if_open(args.data_dir, tsdb)
        start, end = block_time_range(tsdb)
        start = args.start or start
        end = args.end or end
        failures = (args.failures or args.data_dir / "failures.csv").resolve()
        with tempfile.TemporaryDirectory(prefix="gpu-health-scorer-") as tmp:
            work = Path(tmp)
            config = stack.write_prometheus_config(work / "prometheus.yml")
            print(f"starting a private Prometheus on {tsdb} ...", file=sys.stderr, flush=True)
            # SIGTERM unwinds like Ctrl-C, so the private Prometheus is stopped, not orphaned
            # (an orphan would hold the data dir's lock and block the next run).
            signal.signal(signal.SIGTERM, _exit_on_signal)
            # The lock file keeps a second private Prometheus out of the database (two runs
            # that both found it free); a running Prometheus was refused above.
            lock = ["--storage.tsdb.use-lockfile"]
            started = False
            try:
                ctx = stack.prometheus(
                    work, config, data_dir=tsdb, retention="36500d", extra_args=lock
                )
                with ctx as server:
                    started = True
                    yield client_for(args, server.url), start, end, failures
            except stack.MissingBinaryError as exc:
                raise UserError(str(exc)) from None
            except RuntimeError as exc:
                if started:
                    raise
                raise UserError(
                    f"the private Prometheus on {tsdb} did not start: {_why(exc)}"
                ) from None
        return
    if not args.failures:
        raise UserError("--failures CSV is required with --prometheus.url (or use --data-dir)")
    if not args.start:
        raise UserError("--start is required with --prometheus.url (or use --data-dir)")
    yield client_for(args), args.start, args.end or time.time(), args.failures


def _refuse_if_open(given: Path, tsdb: Path) -> None:
    """A UserError where another process has the database open: a second Prometheus on the
    directory of a running one writes into the same database (:mod:`gpu_health.tsdb_holders`)."""
    from gpu_health.tsdb_holders import holders

    found = holders(tsdb)
    if found:
        pid, name = found[0]
        raise UserError(
            f"--data-dir {given}: process {pid} ({name}) has the database {tsdb} open, and a "
            "second Prometheus on it would write into the same database: query that one "
            "(--prometheus.url with --failures and --start), or give --data-dir a snapshot of "
            "it (POST /api/v1/admin/tsdb/snapshot)"
        )


def _why(exc: RuntimeError) -> str:
    """The cause in a Prometheus start-up failure: its log's last ``err=`` (a lock held, a
    directory it may not write), else the failure's first line."""
    text = str(exc)
    reasons = re.findall(r'err="((?:[^"\\]|\\.)*)"', text)
    return one_line(reasons[-1] if reasons else text.splitlines()[0], 300)


#: Called by :func:`_collect` with the prediction times and the failures before any feature
#: is read; returns the first time to read (earlier ones are skipped) or raises UserError.
Planner = Callable[[list[float], list[Any]], float]


def _collect(
    args: argparse.Namespace, label: str, plan: Planner | None = None
) -> tuple[Any, list[Any], str]:
    from gpu_health.scorer.features import count_gpus, counters_hint, detect_schema
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
        if plan is not None:
            first = plan(times, failures)
            times = [t for t in times if t >= first]
            if not times:
                raise UserError(
                    f"no prediction time from {iso_utc(first)} on: the history ends {iso_utc(end)}"
                )
        present = count_gpus(client, schema, start, end)
        if present == 0:
            raise UserError(
                f"no GPU series ({schema} schema) in the history from {iso_utc(start)} to "
                f"{iso_utc(end)}: wrong --data-dir/--prometheus.url, --schema or time range?"
            )
        print(
            f"{label}: {len(times)} time steps, schema {schema}, {len(failures)} failures",
            file=sys.stderr,
            flush=True,
        )
        progress = print_progress(label)
        data = collect(client, schema, times, failures, end, progress, args.workers, args.history)
        if client.errors:
            raise UserError(f"{client.errors} feature queries failed; see the log above")
        read = ", ".join(f"{source} at {n}" for source, n in sorted(data.sources.items()))
        print(
            f"{label}: --history {args.history} read {read} of {len(times)} times",
            file=sys.stderr,
            flush=True,
        )
    if len(data) == 0:
        raise UserError(
            f"no GPU reported at any of the {len(times)} time steps after the warm-up; "
            "shorten --warmup or check the time range"
        )
    check_failures_match(
        [(f.uuid, f.time) for f in failures], data.uuids, times[0], end, failures_path
    )
    empty = [n for j, n in enumerate(data.features) if np.isnan(data.x[:, j]).all()]
    if empty:
        log.warning(
            "%d feature(s) have no data in the %s schema: %s", len(empty), schema, ", ".join(empty)
        )
        hint = counters_hint(schema, data.features, empty)
        if hint:
            log.warning("%s", hint)
    return data, failures, schema


def check_failures_match(
    failures: Sequence[tuple[str, float]],
    uuids: Iterable[str],
    first: float,
    end: float,
    path: Path,
) -> None:
    """Failures of the evaluated span whose UUID no GPU of the history carries count nowhere:
    a ticket export whose UUIDs are written otherwise (upper case, a serial number) gave an
    evaluation of negative rows only, without a word. All of them unmatched is an error; some, a
    note on stderr (a GPU that reported only after its last prediction time is one)."""
    inside = [(uuid, when) for uuid, when in failures if first <= when <= end]
    seen = set(uuids)
    unmatched = sorted({uuid for uuid, _ in inside if uuid not in seen})
    if not unmatched:
        return
    named = ", ".join(repr(u) for u in unmatched[:3]) + (", ..." if len(unmatched) > 3 else "")
    example = next(iter(sorted(seen)), "")
    if len(unmatched) == len({uuid for uuid, _ in inside}):
        raise UserError(
            f"{path}: none of the {len(inside)} failures from {iso_utc(first)} to {iso_utc(end)} "
            f"names a GPU of the history ({named}; its GPUs are named like {example!r}, "
            "compared exactly as written)"
        )
    print(
        f"note: {len(unmatched)} GPU(s) of {path} name no GPU of the history and count nowhere: "
        f"{named}",
        file=sys.stderr,
        flush=True,
    )


def run_train(args: argparse.Namespace) -> int:
    from gpu_health.scorer.training import fit

    if args.hazard_scale <= 0 or not 0 <= args.signal_dropout < 1:
        raise UserError("--hazard-scale must be > 0 and --signal-dropout in [0, 1)")
    if not 0 < args.valid_fraction < 1:
        raise UserError("--valid-fraction must be between 0 and 1")
    # checked before the history is read: a bad path found after the run loses the run
    cli_validate.output_path(args.out, "--out", directory=True)
    from gpu_health.scorer.registry import check_model_out

    check_model_out(args.out, "--out")  # not into a model store, past its gate
    for extra in args.also_data_dirs:  # a typo was found after the main history's whole read
        if not extra.is_dir():
            raise UserError(f"--also-data-dir {extra}: not a directory (a backfilled history)")
    if args.dump_dataset:
        cli_validate.output_path(args.dump_dataset, "--dump-dataset", inputs=args)
    began = time.monotonic()
    data, _failures, schema = _collect(args, "train")
    if args.also_data_dirs:
        from gpu_health.scorer.training import concat

        parts = [data]
        for extra in args.also_data_dirs:
            more = argparse.Namespace(**{**vars(args), "data_dir": extra, "failures": None})
            parts.append(_collect(more, f"train {extra.name}")[0])
        data = concat(parts)
    if args.dump_dataset:
        _dump(data, args.dump_dataset, "--dump-dataset")
    model, report = fit(
        data,
        seed=args.seed,
        valid_fraction=args.valid_fraction,
        n_estimators=args.trees,
        dropout=args.signal_dropout,
        hazard_scale=args.hazard_scale,
        metadata={
            "schema_trained_on": schema,
            "source": ", ".join(
                str(d) for d in [args.data_dir or args.prom_url, *args.also_data_dirs]
            ),
            "step_s": args.step,
            "created_by": f"gpu-health-scorer {__version__}",
            # what the promotion gate holds a window out against (it needed --trained-until)
            "trained_until": data.history_end,
            "failures_trained_on": data.failures_seen,
        },
    )
    try:
        model.save(args.out)
    except OSError as exc:
        why = exc.strerror or exc
        raise UserError(f"--out {args.out}: cannot write the model: {why}") from None
    print(json.dumps(report, indent=2))
    print(f"model written to {args.out} in {time.monotonic() - began:.0f}s", file=sys.stderr)
    return 0


def _dump(data: Any, path: Path, flag: str) -> None:
    import csv

    from gpu_health.scorer.model import HORIZONS

    with open_atomically(path, flag) as handle:
        w = csv.writer(handle)
        w.writerow(["uuid", "time", *data.features, *(f"y_{h}" for h in HORIZONS)])
        for i in range(len(data)):
            w.writerow(
                [data.uuids[i], data.times[i], *data.x[i], *(data.labels[h][i] for h in HORIZONS)]
            )


def run_evaluate(args: argparse.Namespace) -> int:
    from gpu_health.scorer.evaluation import evaluate, format_report
    from gpu_health.scorer.model import load_model

    if not 0 <= args.bootstrap <= 10_000:
        raise UserError("--bootstrap must be between 0 and 10000")
    if args.json_out:  # before the run, which it would otherwise lose
        cli_validate.output_path(args.json_out, "--json", inputs=args)
    model = load_model(args.model)
    data, failures, schema = _collect(args, "evaluate")
    report = evaluate(model, data, failures, bootstrap=args.bootstrap)
    report["schema"] = schema
    report["history"] = {"asked": args.history, "read_at_times": data.sources}
    report["empty_features"] = [
        n for j, n in enumerate(data.features) if np.isnan(data.x[:, j]).all()
    ]
    print(format_report(report))  # first: a JSON file that cannot be written loses nothing
    if args.json_out:
        write_atomically(args.json_out, json.dumps(report, indent=2) + "\n", "--json")
    return 0
