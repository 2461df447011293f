"""``gpu-health demo fault SPEC``: inject a fault into the simulated fleet of a running demo.

The demo starts its exporter with ``--sim-faults-file WORKDIR/live-faults.yaml``; the simulator
watches that file and starts every entry appended to it from the moment it sees it
(``gpu_health.sim.live``). This command validates the fault, checks that a demo is running in
the work dir, that the slot holds a board (the simulator silently drops a fault in an empty
slot) whose model can show the fault (no ``nvlink_errors`` on an L40S), and that every entry
of the file as it stands is one the exporter takes (it skips an invalid entry, and reads no
entry of a file it cannot read whole; the command refuses both, so a broken hand edit is said
where the command runs, not only in the exporter's log). It then appends
the entry atomically (write a temporary file, then rename), so the exporter never reads half a
file, holding an exclusive lock on ``live-faults.yaml.lock`` from the read to the rename, so
that commands run at once never drop each other's entries. Nothing listens on the network for
it: faults reach the demo only through a file in its own work dir.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from gpu_health.config import load_yaml
from gpu_health.demo.processes import open_lock_file
from gpu_health.errors import ConfigError, UserError
from gpu_health.output_file import write_atomically
from gpu_health.sim.faults import (
    FAULTS,
    MAX_FAULTS,
    Fault,
    model_name,
    never_fires,
    parse_fault,
    read_faults_file,
)
from gpu_health.sim.models import MODELS

FAULTS_FILE = "live-faults.yaml"
#: held (flock, exclusive) from reading the faults file to renaming its new version over it
LOCK_FILE = FAULTS_FILE + ".lock"
FLEET_FILE = "fleet.json"
PIDS_FILE = "pids"
#: how ``gpu-health demo fault`` ends its refusal of a file with an invalid entry
_SKIPPED = (
    "the demo's exporter skips that entry and applies the others; fix or remove it first, "
    "nothing was added"
)


def prepare(
    workdir: Path,
    gpus: int,
    seed: int = 0,
    hazard_scale: float = 1.0,
    now: float | None = None,
) -> Path:
    """Start the demo with an empty faults file (faults of an earlier run are not replayed).

    Also records, for ``gpu-health demo fault``, which node and per-node GPU each fleet-wide
    slot is and whether a board is installed in it now. The simulator injects a fault into the
    board a slot holds when the exporter starts (moments after this) and drops one for an empty
    slot (its board away for RMA) with only a warning in its log, so the command must refuse
    those itself. ``seed``
    and ``hazard_scale`` must be the exporter's; the defaults are the simulator's.
    """
    slots = fleet_slots(gpus, seed, hazard_scale, now)
    (workdir / FLEET_FILE).write_text(json.dumps({"gpus": gpus, "slots": slots}) + "\n")
    path = workdir / FAULTS_FILE
    _write_atomically(path, {"faults": []})
    return path


def fleet_slots(
    gpus: int, seed: int, hazard_scale: float, now: float | None = None
) -> list[dict[str, Any]]:
    """Node, per-node GPU, board model and whether a board is installed now, for each
    fleet-wide slot."""
    from gpu_health.sim.fleet import build_fleet

    at = time.time() if now is None else now
    return [
        {
            "node": slot.node,
            "gpu": slot.gpu,
            "board": slot.board_at(at) is not None,
            "model": slot.spec.key,
        }
        for slot in build_fleet(gpus, seed, hazard_scale).slots
    ]


def load_slots(workdir: Path) -> list[dict[str, Any]]:
    """The slots :func:`prepare` recorded for the demo running in ``workdir``."""
    path = workdir / FLEET_FILE
    try:
        slots = json.loads(path.read_text())["slots"]
        if not isinstance(slots, list) or not all(
            isinstance(s, dict)
            and isinstance(s.get("node"), str)
            and isinstance(s.get("gpu"), int)
            and isinstance(s.get("board"), bool)
            # absent in the file of a demo started before models were recorded
            and s.get("model", "h100") in MODELS
            for s in slots
        ):
            raise TypeError
    except (OSError, ValueError, KeyError, TypeError):
        raise UserError(f"{path}: unreadable; restart the demo") from None
    return slots


def live_slots(slots: list[dict[str, Any]]) -> str:
    """The slots holding a board, as ranges: ``0-7, 9-15``."""
    runs: list[list[int]] = []  # [first, last] of each run of consecutive live slots
    for i, slot in enumerate(slots):
        if not slot["board"]:
            continue
        if runs and runs[-1][1] == i - 1:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs) or "none"


def check_model(slots: list[dict[str, Any]], gpu: int, fault: str) -> None:
    """UserError when slot ``gpu`` (which exists) holds a model that cannot show ``fault``, as
    the simulator has it (:func:`gpu_health.sim.faults.never_fires`)."""
    slot = slots[gpu]
    if "model" not in slot:
        return
    spec = MODELS[slot["model"]]
    reason = never_fires(fault, spec)
    if reason:
        raise UserError(
            f"slot {gpu} (GPU {slot['gpu']} on {slot['node']}, {model_name(spec)}) {reason}; "
            "a fault there would never fire"
        )


def check_slot(slots: list[dict[str, Any]], gpu: int, fault: str | None = None) -> str:
    """Where slot ``gpu`` is (``GPU 2 on gpu-node-002``); UserError when it holds no board, or
    a board whose model cannot show ``fault``."""
    if gpu >= len(slots):
        raise UserError(f"the demo's fleet has slots 0-{len(slots) - 1}")
    slot = slots[gpu]
    where = f"GPU {slot['gpu']} on {slot['node']}"
    if fault is not None:
        check_model(slots, gpu, fault)
    if not slot["board"]:
        raise UserError(
            f"slot {gpu} ({where}) has no board installed (it is away for RMA), so a fault there "
            f"would never fire; slots with a board: {live_slots(slots)}"
        )
    return where


def add_arguments(actions: Any) -> None:
    """Register ``fault`` under the demo's sub-commands."""
    parser = actions.add_parser(
        "fault",
        help="inject a fault into the running demo",
        description="Inject one fault into the simulated fleet of the demo running in "
        "--workdir; it starts at the exporter's next scrape (plus after=) and shows in the "
        "alerts within minutes. gpu=N is the fleet-wide slot, 8 per node: alerts name slot 10 "
        "GPU 2 on gpu-node-002. Run the command again for each further fault.",
    )
    parser.add_argument(
        "spec",
        metavar="SPEC",
        help="the fault: 'gpu=N,fault=NAME[,after=60s][,for=10m]', e.g. 'gpu=3,fault=thermal'; "
        "after = simulated time from when the exporter sees it (default 0), for = how long a "
        "storm lasts (default: until the demo stops); NAME is one of " + ", ".join(FAULTS) + ", "
        "or xidNN for any XID code",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=argparse.SUPPRESS,
        help="work dir of the running demo (default: the demo's, ./gpu-health-demo)",
    )


def _exporter_running(workdir: Path) -> bool:
    try:
        lines = (workdir / PIDS_FILE).read_text().splitlines()
    except OSError:
        return False
    here = workdir.resolve()
    for line in lines:
        name, _, pid = line.partition(" ")
        if name == "exporter" and pid.strip().isdigit():
            try:
                if Path(os.readlink(f"/proc/{int(pid)}/cwd")) == here:
                    return True
            except OSError:
                continue
    return False


def _write_atomically(path: Path, data: dict[str, Any]) -> None:
    """The faults file whole: the exporter watching it never reads half an edit."""
    write_atomically(path, yaml.safe_dump(data, sort_keys=False), "faults file")


@contextlib.contextmanager
def _locked(workdir: Path) -> Iterator[None]:
    """Hold the faults file's lock: an exclusive flock on a file beside it (the faults file
    itself is replaced by a rename on every write, so a lock on it would guard an old copy)."""
    fd = open_lock_file(workdir / LOCK_FILE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _check_existing(path: Path, slots: list[dict[str, Any]]) -> list[Fault]:
    """The entries of the faults file, all of them valid as the demo's exporter reads them.

    The exporter reads no entry of a file it cannot read as a whole (broken YAML), and skips an
    invalid entry while it applies the others (``gpu_health.sim.live``); the command refuses
    both, so a hand edit gone wrong is said on the terminal instead of only in exporter.log,
    and its entries are added to a file the exporter reads whole."""
    try:
        entries = read_faults_file(path)
    except ConfigError as exc:
        raise UserError(
            f"{exc} (the demo's exporter reads no entry of the file until it is fixed; nothing "
            "was added)"
        ) from None
    faults = []
    for i, entry in enumerate(entries):
        try:
            if isinstance(entry, ConfigError):
                raise entry
            if entry.gpu >= len(slots):
                raise UserError(f"the demo's fleet has slots 0-{len(slots) - 1}")
            check_model(slots, entry.gpu, entry.fault)
        except ConfigError as exc:
            raise UserError(f"{exc} ({_SKIPPED})") from None
        except UserError as exc:
            raise UserError(f"{path}: faults[{i}]: {exc} ({_SKIPPED})") from None
        faults.append(entry)
    return faults


def add_fault(workdir: Path, spec: str) -> str:
    """Append ``spec`` to the running demo's faults file; returns a one-line confirmation."""
    where = f"fault {spec!r}"
    try:
        fault = parse_fault(spec)
    except UserError as exc:
        raise UserError(f"{where}: {str(exc).removeprefix(f'--sim-fault {spec!r}: ')}") from None
    path = workdir / FAULTS_FILE
    if not path.is_file() or not _exporter_running(workdir):
        raise UserError(
            f"no demo is running in {workdir} (start one with 'gpu-health demo', or pass the "
            "--workdir it runs in)"
        )
    slots = load_slots(workdir)
    try:
        target = check_slot(slots, fault.gpu, fault.fault)
    except UserError as exc:
        raise UserError(f"{where}: {exc}") from None
    entry: dict[str, Any] = {"gpu": fault.gpu, "fault": fault.fault}
    for part in spec.split(","):
        key, _, value = part.partition("=")
        if key.strip() in ("after", "for"):
            entry[key.strip()] = value.strip()
    with _locked(workdir):
        if len(_check_existing(path, slots)) >= MAX_FAULTS:
            raise UserError(f"{path}: already {MAX_FAULTS} faults (at most {MAX_FAULTS})")
        # As written (an after: 90s stays 90s); _check_existing has just read it whole.
        entries = (load_yaml(path) or {}).get("faults") or []
        entries.append(entry)
        _write_atomically(path, {"faults": entries})
    from gpu_health.demo.cli import SCRAPE_INTERVAL

    return (
        f"injected {fault.fault} into slot {fault.gpu}, which alerts and the summary call "
        f"{target}, of the demo in {workdir}: the exporter starts it at its next scrape "
        f"(Prometheus scrapes it every {SCRAPE_INTERVAL}); its alerts follow within five minutes"
    )


def run(args: argparse.Namespace) -> int:
    print(add_fault(args.workdir.resolve(), args.spec), flush=True)
    return 0
