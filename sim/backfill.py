"""``gpu-health backfill``: simulated fleet history as a Prometheus data dir, plus ground truth.

The history is written in 2-hour windows aligned like promtool's blocks, one OpenMetrics file per
window, and each file is handed to ``promtool tsdb create-blocks-from openmetrics`` on a
background thread while the next window is computed. (promtool re-reads its whole input once per
2-hour block, so one 30-day file would be read 360 times; per-window files are read once.)
Beside the TSDB it writes ``failures.csv`` and ``gpus.csv``, the ground truth the scorer is
trained and judged on.

Everything is written into a hidden staging directory beside ``--out`` and moved into place only
when the whole history is written: an interrupted run (SIGTERM, Ctrl-C, an error) removes its
staging directory and never leaves a partial block in the data dir Prometheus serves.

``backfill.json`` beside them records what defines the history (:data:`FLEET_PARAMETERS`, the
fleet's models and a digest of its boards and failures, the time range covered). A later
backfill into the same directory must be the same fleet over a time range that overlaps or
adjoins the recorded one; anything else is refused before any work, naming each parameter that
differs, and the ground truth is rewritten for the whole range the directory then holds.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import hashlib
import json
import math
import os
import queue
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from gpu_health import __version__, cli_validate, stack
from gpu_health.errors import UserError
from gpu_health.output_file import write_atomically
from gpu_health.sim.batch import Windows, board_record
from gpu_health.sim.fleet import Fleet, build_fleet
from gpu_health.sim.timeparse import parse_duration
from gpu_health.unix_time import parse_time

BLOCK_SECONDS = 7200.0


#: ``--instance``: a host name, an IPv4 address or a bracketed IPv6 address, then a port.
_INSTANCE = re.compile(r"(?:[A-Za-z0-9][A-Za-z0-9._-]{0,252}|\[[0-9A-Fa-f:.]{2,45}\]):(\d{1,5})")


def _instance(text: str) -> str:
    """An argparse ``type``: the ``instance`` label every series gets, as Prometheus would set it
    for a scraped target (``HOST:PORT``). Any text was taken: a space or a quote went into the
    backfill's OpenMetrics input as written."""
    found = _INSTANCE.fullmatch(text)
    if found is None or not 1 <= int(found.group(1)) <= 65535:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not HOST:PORT (a host name, IPv4 or [IPv6] address, and a port 1-65535)"
        )
    return text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Simulate a GPU fleet (same model and seed as the exporter's --backend sim) and write "
        "its history as a Prometheus data dir (promtool), with failures.csv and gpus.csv as "
        "ground truth. Serve it with: prometheus --storage.tsdb.path=DATA_DIR "
        "--storage.tsdb.retention.time=90d (a retention longer than the history, or Prometheus "
        "deletes the old blocks at start)"
    )
    parser.add_argument(
        "--gpus",
        type=cli_validate.integer(1, cli_validate.MAX_GPUS),
        default=256,
        help=f"GPUs, 8 per node, at most {cli_validate.MAX_GPUS} (default: 256)",
    )
    parser.add_argument(
        "--days",
        type=cli_validate.number(0.0, 3650.0, exclusive_minimum=True),
        default=30.0,
        help="days of history, up to 3650 (default: 30)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        required=True,
        help=f"data dir to create, or to extend: a Prometheus data dir, or an earlier backfill's "
        f"(recorded in DATA_DIR/{MANIFEST}), which only the same fleet extends: --gpus, --seed, "
        "--schema, --resolution, --hazard-scale, --no-health and --instance as it was; only "
        "--days and --end-time may change, to a time range that overlaps or adjoins the one "
        "it holds (failures.csv and gpus.csv are then rewritten for the whole range)",
    )
    parser.add_argument(
        "--resolution", default="60s", help="time between samples, 1s to 1h (default: 60s)"
    )
    parser.add_argument(
        "--seed", type=cli_validate.integer(0, 2**32 - 1), default=0, help="fleet seed (default: 0)"
    )
    parser.add_argument(
        "--schema",
        choices=("ours", "dcgm"),
        default="ours",
        help="metric names: ours (gpu_*) or dcgm (dcgm-exporter's DCGM_FI_*) (default: ours)",
    )
    parser.add_argument(
        "--end-time",
        default=None,
        help="end of the history, unix seconds or ISO time, at most a day from now (default: now)",
    )
    parser.add_argument(
        "--hazard-scale",
        type=cli_validate.number(0.0, cli_validate.MAX_HAZARD_SCALE),
        default=1.0,
        help="multiply every failure rate (default 1 = published rates, ~0.13/GPU-year)",
    )
    parser.add_argument(
        "--no-health",
        action="store_true",
        help="skip the gpu_health_* series (faster; ours schema only)",
    )
    parser.add_argument(
        "--instance",
        type=_instance,
        default=None,
        metavar="HOST:PORT",
        help="instance label of every series (default: NODE:9840 for ours, NODE:9400 for dcgm, "
        "as a per-node exporter would be scraped); give the live exporter's address when one "
        "exporter will continue the whole fleet's history",
    )
    parser.add_argument(
        "--keep-openmetrics",
        action="store_true",
        help="keep the intermediate OpenMetrics files under DATA_DIR/openmetrics/",
    )


#: The coarsest sampling a history may have: the scorer reads a GPU as silent in each hour
#: without a sample.
MAX_RESOLUTION_S = 3600.0
#: How far past now a history may end: a day of clock skew or time zone confusion, no more.
MAX_FUTURE_S = 86400.0


def run(args: argparse.Namespace) -> int:
    resolution = parse_duration(args.resolution, "--resolution")
    if resolution < 1:
        raise UserError("--resolution: must be at least 1s")
    if resolution > MAX_RESOLUTION_S:
        raise UserError(
            f"--resolution {args.resolution}: at most 1h (samples further apart read as gaps: "
            "the scorer counts each hour without a sample as one the GPU did not report)"
        )
    if args.gpus < 1:
        raise UserError("--gpus: must be at least 1")
    if not 0 < args.days <= 3650:
        raise UserError("--days: must be between 0 and 3650")
    if args.hazard_scale < 0:
        raise UserError("--hazard-scale: must not be negative")
    end = time.time() if args.end_time is None else parse_time(args.end_time, "--end-time")
    if end - args.days * 86400 < 0:
        raise UserError(
            f"--end-time {args.end_time}: the history would start {args.days:g} day(s) before "
            "it, before 1970"
        )
    if end > time.time() + MAX_FUTURE_S:
        raise UserError(
            f"--end-time {args.end_time}: {(end - time.time()) / 86400:,.0f} days from now; a "
            "history ends by tomorrow at the latest (it is read as of now, where a history in "
            "the future shows nothing)"
        )
    cli_validate.output_path(args.out, "--out", directory=True)
    _check_extendable(args.out)
    health = not args.no_health and args.schema == "ours"
    first, stop = _time_grid(end, args.days, resolution)
    wanted = _record(args.gpus, args.seed, args.hazard_scale, args.schema, health, resolution,
                     args.instance, first, stop)  # fmt: skip
    _check_continues(args.out, wanted)  # the fleet's own digest is checked once it is drawn
    signal.signal(signal.SIGTERM, _exit_on_signal)  # unwind, so the staging dir is removed
    try:
        stack.find_binary("promtool")
    except stack.MissingBinaryError as exc:
        raise UserError(str(exc)) from None
    report = backfill(
        gpus=args.gpus,
        days=args.days,
        out=args.out,
        resolution=resolution,
        seed=args.seed,
        schema=args.schema,
        end_time=end,
        hazard_scale=args.hazard_scale,
        health=health,
        keep_openmetrics=args.keep_openmetrics,
        progress=sys.stderr,
        instance=args.instance,
    )
    print(
        f"wrote {report['samples']:,} samples for {args.gpus} GPUs over {args.days:g} days to "
        f"{args.out} in {report['wall_seconds']:.1f}s: {report['write_rate']:,.0f} samples/s "
        f"written, promtool {report['promtool_rate']:,.0f} samples/s; "
        f"{report['failures']} failures in failures.csv"
        + (
            f" (it and gpus.csv now cover the whole history, {_iso(report['truth_start'])} to "
            f"{_iso(report['truth_end'])})"
            if report["extended"]
            else ""
        ),
        file=sys.stderr,
    )
    return 0


#: What a Prometheus data directory or an earlier backfill holds besides its ULID-named blocks.
_DATA_DIR_ENTRIES = frozenset(
    {"wal", "chunks_head", "lock", "queries.active", "openmetrics", "backfill.json"}
)
_ULID = re.compile(r"[0-9A-HJKMNP-TV-Z]{26}")


def _check_extendable(out: Path) -> None:
    """Refuse an ``--out`` that is neither new, empty, a Prometheus data directory nor an
    earlier backfill's: the new blocks and ground truth are moved into it, and ``--out ''`` (the
    current directory) or a folder holding the operator's own ``failures.csv`` lost that file
    without a word. Our own ``failures.csv`` and ``gpus.csv`` are told by their header."""
    if not out.is_dir():
        return
    ours = {"failures.csv": ",".join(FAILURE_COLUMNS), "gpus.csv": ",".join(GPU_COLUMNS)}
    for entry in sorted(out.iterdir()):
        name = entry.name
        if name in _DATA_DIR_ENTRIES or (_ULID.fullmatch(name) and entry.is_dir()):
            continue
        if name in ours and _first_line(entry) == ours[name]:
            continue
        raise UserError(
            f"--out {out}: holds {name!r}, which no Prometheus data directory or earlier "
            "backfill has; backfill moves its blocks, failures.csv and gpus.csv into the "
            "directory, so give a new or empty one"
        )


def _first_line(path: Path) -> str:
    try:
        with path.open(encoding="utf-8", errors="replace") as handle:
            return handle.readline(4096).rstrip("\r\n")
    except OSError:
        return ""


#: The record of what an earlier backfill wrote into a data dir (see the module's docstring).
MANIFEST = "backfill.json"
MANIFEST_FORMAT = 1
#: What defines a backfilled history, besides its time range: (key in the manifest, how the
#: refusal names it). A later backfill into the same directory must give each the same value.
FLEET_PARAMETERS: tuple[tuple[str, str], ...] = (
    ("seed", "--seed"),
    ("gpus", "--gpus"),
    ("hazard_scale", "--hazard-scale"),
    ("schema", "--schema"),
    ("health", "gpu_health_* series (--no-health)"),
    ("resolution", "--resolution"),
    ("instance", "--instance"),
)
#: Drawn from the parameters above by the simulator: they differ only where another version of
#: it wrote the directory, and are compared once the fleet is drawn.
FLEET_DRAWN: tuple[tuple[str, str], ...] = (
    ("models", "the fleet's models"),
    ("fleet", "the fleet's boards and failures (digest)"),
)


def _time_grid(end_time: float, days: float, resolution: float) -> tuple[float, float]:
    """The first sample of the history and the end of its last step (exclusive): samples lie on
    multiples of ``resolution``, so two histories of one resolution share their grid."""
    end = math.floor(end_time / resolution) * resolution
    first = math.ceil((end - days * 86400.0) / resolution) * resolution
    return float(first), float(end + resolution)


def _record(
    gpus: int,
    seed: int,
    hazard_scale: float,
    schema: str,
    health: bool,
    resolution: float,
    instance: str | None,
    start: float,
    end: float,
    fleet: Fleet | None = None,
) -> dict[str, Any]:
    """What the manifest records of a history (``fleet``'s models and digest when given)."""
    record: dict[str, Any] = {
        "seed": seed,
        "gpus": gpus,
        "hazard_scale": float(hazard_scale),
        "schema": schema,
        "health": health,
        "resolution": float(resolution),
        "instance": instance,
    }
    if fleet is not None:
        models: dict[str, int] = {}
        for slot in fleet.slots:
            models[slot.spec.name] = models.get(slot.spec.name, 0) + 1
        record["models"] = dict(sorted(models.items()))
        record["fleet"] = _fleet_digest(fleet)
    record["start"] = start
    record["end"] = end
    return record


def _fleet_digest(fleet: Fleet) -> str:
    """A digest of every slot's boards and failures: equal for one fleet drawn twice."""
    digest = hashlib.sha256()
    for slot in fleet.slots:
        digest.update(f"{slot.index} {slot.node} {slot.gpu} {slot.spec.name}\n".encode())
        for board in slot.boards:
            digest.update(f"{board.uuid} {board.start:.3f} {board.end:.3f}\n".encode())
            for f in board.failures:
                digest.update(f"{f.time:.3f} {f.mode} {f.outcome}\n".encode())
    return digest.hexdigest()[:16]


def _manifest_text(record: dict[str, Any]) -> str:
    head = {"format": MANIFEST_FORMAT, "written_by": f"gpu-health backfill {__version__}"}
    times = {"start_iso": _iso(record["start"]), "end_iso": _iso(record["end"])}
    return json.dumps(head | record | times, indent=2) + "\n"


def _iso(t: float) -> str:
    return datetime.datetime.fromtimestamp(t, datetime.UTC).isoformat(timespec="seconds")


def _read_manifest(out: Path) -> dict[str, Any] | None:
    """The manifest of ``out``; None when there is none. A one-line UserError when it cannot be
    read or is not one of ours."""
    path = out / MANIFEST
    if not path.exists():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise UserError(f"--out {out}: {MANIFEST} cannot be read ({exc}); give a new or empty "
                        "directory") from None  # fmt: skip
    keys = {key for key, _ in FLEET_PARAMETERS} | {"start", "end"}
    if (
        not isinstance(manifest, dict)
        or manifest.get("format") != MANIFEST_FORMAT
        or not keys <= set(manifest)
        or not all(isinstance(manifest[k], (int, float)) for k in ("start", "end"))
    ):
        raise UserError(
            f"--out {out}: {MANIFEST} is not a record of gpu-health backfill (format "
            f"{MANIFEST_FORMAT}); give a new or empty directory"
        )
    return manifest


def _shown(key: str, value: Any) -> str:
    if value is None:
        return "default" if key == "instance" else "none"
    if key == "health":
        return "on" if value else "off"
    if key == "resolution":
        return f"{value:g}s"
    if key == "models":
        return "+".join(f"{n}x{name}" for name, n in value.items()) or "none"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _check_continues(out: Path, wanted: dict[str, Any]) -> dict[str, Any] | None:
    """Refuse, in one line, a backfill into ``out`` that would not extend the history recorded
    there: another fleet (each differing parameter named, old → new), a time range apart from
    the recorded one, or a directory with an earlier backfill's ground truth but no manifest.
    Returns the earlier manifest (None for a new, empty or plain Prometheus data dir)."""
    if not out.is_dir():
        return None
    earlier = _read_manifest(out)
    if earlier is None:
        left = [n for n in ("failures.csv", "gpus.csv") if (out / n).exists()]
        if left:
            raise UserError(
                f"--out {out}: holds {' and '.join(left)} of a backfill that recorded no "
                f"{MANIFEST} (an older gpu-health), so whether this run continues the same "
                "fleet cannot be checked, and its ground truth would be replaced by this run's "
                "alone; give a new or empty directory, and backfill the whole range there"
            )
        return None
    differ = [
        f"{name} {_shown(key, earlier.get(key))} → {_shown(key, wanted[key])}"
        for key, name in FLEET_PARAMETERS
        if earlier.get(key) != wanted[key]
    ]
    if not differ:
        differ = [
            f"{name} {_shown(key, earlier.get(key))} → {_shown(key, wanted[key])}"
            for key, name in FLEET_DRAWN
            if key in wanted and earlier.get(key) != wanted[key]
        ]
        if differ:  # same parameters, another fleet: another simulator wrote the directory
            differ[-1] += f" (written by {earlier.get('written_by', 'another version')})"
    if differ:
        raise UserError(
            f"--out {out}: holds the history of another fleet ({MANIFEST}): {'; '.join(differ)}; "
            "a backfill extends a directory only with the same fleet, changing --days and "
            "--end-time alone, so give a new or empty directory"
        )
    start, end = float(earlier["start"]), float(earlier["end"])
    if wanted["start"] > end or wanted["end"] < start:
        apart = max(wanted["start"] - end, start - wanted["end"]) / 3600
        raise UserError(
            f"--out {out}: holds this fleet from {_iso(start)} to {_iso(end)}, and this run "
            f"({_iso(wanted['start'])} to {_iso(wanted['end'])}) would leave {apart:,.1f} hours "
            "between them without samples, which the scorer reads as GPUs that stopped "
            "reporting; give --days or --end-time so that the range overlaps or adjoins it"
        )
    return earlier


class _Promtool(threading.Thread):
    """Runs promtool on finished window files while the next window is computed.

    :meth:`cancel` stops it at once: an interrupted backfill throws its staging directory away,
    so the window promtool is reading (tens of seconds on a busy machine) and the one waiting
    are not worth finishing, and the staging directory must not be removed while promtool
    still writes into it.
    """

    def __init__(self, data_dir: Path, keep: bool) -> None:
        super().__init__(daemon=True)
        self.data_dir = data_dir
        self.keep = keep
        self.jobs: queue.Queue[Path | None] = queue.Queue(maxsize=1)
        self.busy_seconds = 0.0
        self.error: Exception | None = None
        self.cancelled = threading.Event()
        self._lock = threading.Lock()
        self._running: subprocess.Popen[str] | None = None

    def run(self) -> None:
        while True:
            path = self.jobs.get()
            if path is None:
                return
            if self.error is None and not self.cancelled.is_set():
                started = time.perf_counter()
                try:
                    stack.promtool_backfill(path, self.data_dir, on_start=self._promtool_started)
                except Exception as exc:  # kept for the main thread, which would
                    self.error = exc  # otherwise wait forever on a dead worker
                finally:
                    with self._lock:
                        self._running = None
                self.busy_seconds += time.perf_counter() - started
            if not self.keep:
                path.unlink(missing_ok=True)

    def _promtool_started(self, process: subprocess.Popen[str]) -> None:
        with self._lock:
            self._running = process
            if self.cancelled.is_set():
                process.terminate()

    def cancel(self) -> None:
        """Skip the windows still queued and stop the promtool that is running."""
        with self._lock:
            self.cancelled.set()
            if self._running is not None and self._running.poll() is None:
                self._running.terminate()


def _exit_on_signal(signum: int, _frame: Any) -> None:
    raise SystemExit(128 + signum)


def backfill(
    gpus: int,
    days: float,
    out: Path,
    resolution: float = 60.0,
    seed: int = 0,
    schema: str = "ours",
    end_time: float | None = None,
    hazard_scale: float = 1.0,
    health: bool = True,
    keep_openmetrics: bool = False,
    progress: Any = None,
    instance: str | None = None,
) -> dict[str, Any]:
    """Write the history; returns counts and rates (the bench and the CLI report them).

    ``out`` may hold an earlier backfill of the same fleet (:func:`_check_continues`, a one-line
    UserError before anything is written otherwise); ``failures.csv`` and ``gpus.csv`` then
    cover the whole range the directory holds, and ``backfill.json`` records it."""
    first, stop = _time_grid(time.time() if end_time is None else end_time, days, resolution)
    fleet = build_fleet(gpus, seed, hazard_scale)
    record = _record(gpus, seed, hazard_scale, schema, health, resolution, instance, first, stop,
                     fleet)  # fmt: skip
    earlier = _check_continues(out, record)
    if earlier is not None:  # the ground truth of the whole history the directory will hold
        record["start"] = min(first, float(earlier["start"]))
        record["end"] = max(stop, float(earlier["end"]))
    out.parent.mkdir(parents=True, exist_ok=True)
    # mkdir, not mkdtemp: the data dir keeps the umask's permissions (mkdtemp's 0700 would hide
    # it from a Prometheus running as another user once renamed into place).
    staging = out.parent / f".{out.name}.partial-{os.getpid()}-{secrets.token_hex(4)}"
    staging.mkdir()
    try:
        report = _backfill(
            fleet, first, stop, staging, resolution, schema, health, keep_openmetrics, progress,
            instance, (record["start"], record["end"]),
        )  # fmt: skip
        write_atomically(staging / MANIFEST, _manifest_text(record), "--out")
        _move_into_place(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    report["extended"] = earlier is not None
    return report


def _move_into_place(staging: Path, out: Path) -> None:
    """A new data dir is one rename; an existing one gets the new blocks and ground truth, and
    the manifest last: it never records more than the directory holds."""
    if not out.exists():
        os.rename(staging, out)
        return
    entries = sorted(staging.iterdir(), key=lambda entry: entry.name == MANIFEST)
    for entry in entries:
        target = out / entry.name
        if entry.is_dir() and target.is_dir():  # openmetrics/ kept from an earlier run
            for inner in entry.iterdir():
                os.replace(inner, target / inner.name)
        else:
            os.replace(entry, target)


def _backfill(
    fleet: Fleet,
    first: float,
    stop: float,
    out: Path,
    resolution: float,
    schema: str,
    health: bool,
    keep_openmetrics: bool,
    progress: Any,
    instance: str | None,
    truth: tuple[float, float],
) -> dict[str, Any]:
    """Samples from ``first`` every ``resolution`` before ``stop``; the ground truth over
    ``truth`` (the whole history the data dir will hold)."""
    from gpu_health.sim.openmetrics import Writer

    windows = Windows(fleet)
    np = windows.np
    # Sized before any of it is written, or even its timestamps allocated.
    _check_room(out, _history_samples(fleet, first, stop, resolution, schema))
    ts_all = np.arange(first, stop - resolution / 2, resolution, dtype=np.float64)
    out.mkdir(parents=True, exist_ok=True)
    om_dir = out / "openmetrics" if keep_openmetrics else _scratch_dir(out)
    om_dir.mkdir(parents=True, exist_ok=True)
    writer = Writer(schema, instance)
    tracker = _health_writer(writer, resolution) if health else None
    worker = _Promtool(out, keep_openmetrics)
    worker.start()
    block_ids = np.floor(ts_all / BLOCK_SECONDS)
    edges = np.flatnonzero(np.diff(block_ids)) + 1
    chunks = np.split(ts_all, edges)
    started = time.perf_counter()
    busy = 0.0
    try:
        for i, ts in enumerate(chunks):
            t0 = time.perf_counter()
            rows = list(windows.window(ts))
            text = writer.render(rows, ts)
            if tracker is not None:
                text += tracker(rows, ts)
            path = om_dir / f"window-{int(ts[0])}.om"
            path.write_text(text + "# EOF\n")
            busy += time.perf_counter() - t0
            if worker.error is not None:
                break
            worker.jobs.put(path)
            if progress is not None:
                left = (time.perf_counter() - started) / (i + 1) * (len(chunks) - i - 1)
                _progress(progress, i + 1, len(chunks), writer.samples, busy, left)
    except BaseException:  # SIGTERM's SystemExit, Ctrl-C, an error: nothing here is kept
        worker.cancel()
        raise
    finally:
        worker.jobs.put(None)
        worker.join()
        if not keep_openmetrics:
            shutil.rmtree(om_dir, ignore_errors=True)
    if progress is not None and _is_tty(progress):
        progress.write("\n")  # end the bar's line
    if isinstance(worker.error, (RuntimeError, OSError)):
        raise UserError(str(worker.error))
    if worker.error is not None:
        raise worker.error
    failures = fleet.failures(*truth)
    write_ground_truth(out, fleet, *truth)
    wall = time.perf_counter() - started
    return {
        "samples": writer.samples,
        "write_seconds": busy,
        "promtool_seconds": worker.busy_seconds,
        "wall_seconds": wall,
        "write_rate": writer.samples / busy if busy else 0.0,
        "promtool_rate": writer.samples / worker.busy_seconds if worker.busy_seconds else 0.0,
        "failures": len(failures),
        "start": float(ts_all[0]),
        "end": float(ts_all[-1]),
        "truth_start": truth[0],
        "truth_end": truth[1],
    }


#: Prometheus' chunks store a sample in 2 bits at best (a timestamp and a value both equal to
#: the previous ones'); simulated readings vary, and a real block takes 1 to 3 bytes a sample.
#: Used as a floor: a history that needs more than the free space even at this size cannot fit.
MIN_BYTES_PER_SAMPLE = 0.25


#: Boards rendered to learn the series a board sends (spread over the fleet's models).
SIZE_PROBE_BOARDS = 16


def _history_samples(
    fleet: Fleet, start: float, end: float, resolution: float, schema: str
) -> float:
    """About how many samples the history of ``fleet`` over [start, end) holds: the seconds its
    boards are installed in it, one sample per ``resolution``, times the series a board sends
    (one instant of up to :data:`SIZE_PROBE_BOARDS` boards rendered; the health series, left
    out, only add to it). Cheap at any size: a board's time is arithmetic, and the render is
    of a few boards, not the fleet (an instant of 10,000 GPUs takes 40 s to render)."""
    import numpy as np

    from gpu_health.sim.openmetrics import Writer

    installed = sum(
        max(0.0, min(b.end, end) - max(b.start, start)) for sl in fleet.slots for b in sl.boards
    )
    last = end - resolution
    present = [sl for sl in fleet.slots if any(b.start <= last < b.end for b in sl.boards)]
    sample = present[:: max(1, len(present) // SIZE_PROBE_BOARDS)][:SIZE_PROBE_BOARDS]
    if not sample:
        return 0.0
    probe = Writer(schema, None)
    instant = np.array([last])
    probe.render(list(Windows(replace(fleet, slots=sample)).window(instant)), instant)
    return installed / resolution * probe.samples / len(sample)


def _check_room(staging: Path, samples: float) -> None:
    """Refuse, before writing, a history that cannot fit on the disk it is written to
    (``--days 3650 --resolution 1s`` is about 10^12 samples: days of writing, then a full
    disk and a traceback from promtool)."""
    need = samples * MIN_BYTES_PER_SAMPLE
    free = shutil.disk_usage(staging).free
    if need > free:
        raise UserError(
            f"--out: this history is about {samples:.2g} samples, at least {need / 1e9:,.1f} GB "
            f"in Prometheus' format, and the file system of {staging.parent} has "
            f"{free / 1e9:,.1f} GB free: fewer --gpus or --days, or a coarser --resolution"
        )


def _scratch_dir(out: Path) -> Path:
    """Where window files live until promtool has read them: RAM (/dev/shm) when roomy.

    A 2-hour window of 256 GPUs is ~650 MB of text read twice by promtool; keeping it off the
    disk saves the write-back, which otherwise costs as much as rendering it.
    """
    shm = Path("/dev/shm")
    try:
        st = os.statvfs(shm)
        if st.f_bavail * st.f_frsize > 4 * 1024**3:
            return Path(tempfile.mkdtemp(prefix="gpu-health-backfill-", dir=shm))
    except OSError:
        pass
    return out / "openmetrics"


def _health_writer(writer: Any, resolution: float) -> Any:
    """The gpu_health_* series for each window, or None when the health model is absent."""
    try:
        from gpu_health.sim.health import HealthSeries
    except ImportError:
        return None
    return HealthSeries(writer, resolution)


#: Piped progress gets at most this many lines: one each time another tenth of the windows is done.
PLAIN_PROGRESS_LINES = 10


def _is_tty(stream: Any) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty()) if callable(isatty) else False


def _progress(
    stream: Any, done: int, total: int, samples: int, busy: float, left_s: float = 0.0
) -> None:
    """Redraw a bar on a terminal; when piped, write a plain line per tenth of the windows.
    ``left_s``: the time the remaining windows should take at the pace so far.

    Carriage-return frames in a log or a CI transcript make one endless line of overdrawn bars.
    """
    rate = samples / busy if busy else 0.0
    figures = f"{samples / 1e6:8.1f}M samples  {rate / 1e6:5.2f}M samples/s written"
    if done < total:
        figures += f"  {_duration_text(left_s)} left"
    if not _is_tty(stream):
        lines = PLAIN_PROGRESS_LINES
        if done * lines // total > (done - 1) * lines // total:
            figures = " ".join(figures.split())
            stream.write(f"backfill {100 * done / total:.1f}% ({done}/{total} windows) {figures}\n")
            stream.flush()
        return
    width = 30
    filled = int(width * done / total)
    stream.write(
        f"\rbackfill [{'#' * filled}{'.' * (width - filled)}] {100 * done / total:5.1f}% {figures}"
    )
    stream.flush()


def _duration_text(seconds: float) -> str:
    """``45s``, ``12m``, ``3h 20m``, ``2d 4h``: an estimate, so no finer than it can be."""
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f}s"
    minutes = seconds / 60
    if minutes < 60:
        return f"{minutes:.0f}m"
    hours, minutes = divmod(int(minutes), 60)
    if hours < 48:
        return f"{hours}h {minutes:02d}m"
    return f"{hours // 24}d {hours % 24}h"


FAILURE_COLUMNS = (
    "uuid",
    "node",
    "gpu",
    "model",
    "time",
    "time_iso",
    "mode",
    "precursor_start",
    "lead_hours",
    "outcome",
    "down_from",
    "down_to",
    "repeat",
    "age_days",
)
GPU_COLUMNS = (
    "uuid",
    "serial",
    "node",
    "gpu",
    "pci_bus_id",
    "model",
    "purchase_date",
    "installed",
    "removed",
    "hours_in_service",
    "lemon",
    "sbe_active",
    "failures_in_window",
)


def write_ground_truth(out: Path, fleet: Any, start: float, end: float) -> None:
    """failures.csv (one row per failure in the window) and gpus.csv (one row per board)."""
    slots = {s.index: s for s in fleet.slots}
    failures = fleet.failures(start, end)
    with (out / "failures.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(FAILURE_COLUMNS)
        for f in failures:
            slot = slots[f.slot]
            iso = datetime.datetime.fromtimestamp(f.time, datetime.UTC).isoformat()
            lead = f.lead_seconds
            w.writerow(
                (
                    f.uuid,
                    slot.node,
                    slot.gpu,
                    slot.spec.name,
                    f"{f.time:.3f}",
                    iso,
                    f.mode,
                    "" if f.precursor_start is None else f"{f.precursor_start:.3f}",
                    "" if lead is None else f"{lead / 3600:.2f}",
                    f.outcome,
                    f"{f.down_from:.3f}",
                    f"{f.down_to:.3f}",
                    int(f.repeat),
                    f"{f.age_seconds / 86400:.1f}",
                )
            )
    counts: dict[str, int] = {}
    for f in failures:
        counts[f.uuid] = counts.get(f.uuid, 0) + 1
    with (out / "gpus.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(GPU_COLUMNS)
        for slot, board in fleet.boards(start, end):
            rec = board_record(slot, board, end)
            rec["failures_in_window"] = counts.get(board.uuid, 0)
            rec["installed"] = f"{rec['installed']:.0f}"
            rec["removed"] = "" if rec["removed"] is None else f"{rec['removed']:.0f}"
            rec["lemon"] = int(rec["lemon"])
            rec["sbe_active"] = int(rec["sbe_active"])
            w.writerow([rec[c] for c in GPU_COLUMNS])
