"""``gpu-health demo fault SPEC``: inject a fault into the simulated fleet of a running demo.

The demo starts its exporter with ``--sim-faults-file WORKDIR/live-faults.yaml``; the simulator
watches that file and starts every entry appended to it from the moment it sees it
(``gpu_health.sim.live``). This command validates the fault, checks that a demo is running in
the work dir and that the slot holds a board (the simulator silently drops a fault in an empty
slot), and appends the entry atomically (write a temporary file, then rename), so the
exporter never reads half a file. Nothing listens on the network for it: faults reach the demo
only through a file in its own work dir.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import yaml

from gpu_health.errors import UserError
from gpu_health.output_file import write_atomically
from gpu_health.sim.faults import FAULT_HELP, MAX_FAULTS, parse_fault

FAULTS_FILE = "live-faults.yaml"
FLEET_FILE = "fleet.json"
PIDS_FILE = "pids"


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
    """Node, per-node GPU and whether a board is installed now, for each fleet-wide slot."""
    from gpu_health.sim.fleet import build_fleet

    at = time.time() if now is None else now
    return [
        {"node": slot.node, "gpu": slot.gpu, "board": slot.board_at(at) is not None}
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


def check_slot(slots: list[dict[str, Any]], gpu: int) -> str:
    """Where slot ``gpu`` is (``GPU 2 on gpu-node-002``); UserError when it holds no board."""
    if gpu >= len(slots):
        raise UserError(f"the demo's fleet has slots 0-{len(slots) - 1}")
    slot = slots[gpu]
    where = f"GPU {slot['gpu']} on {slot['node']}"
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
        description="Inject a fault into the simulated fleet of the demo running in --workdir; "
        "it starts at the exporter's next scrape (plus after=) and shows in the alerts within "
        "minutes. gpu=N is the fleet-wide slot, 8 per node: alerts name slot 10 GPU 2 on "
        "gpu-node-002. " + FAULT_HELP,
    )
    parser.add_argument("spec", metavar="SPEC", help="e.g. 'gpu=3,fault=thermal'")
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
        target = check_slot(slots, fault.gpu)
    except UserError as exc:
        raise UserError(f"{where}: {exc}") from None
    data = yaml.safe_load(path.read_text()) or {}
    entries = data.get("faults") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise UserError(f"{path}: not a faults file; restart the demo")
    if len(entries) >= MAX_FAULTS:
        raise UserError(f"{path}: already {len(entries)} faults (at most {MAX_FAULTS})")
    entry: dict[str, Any] = {"gpu": fault.gpu, "fault": fault.fault}
    for part in spec.split(","):
        key, _, value = part.partition("=")
        if key.strip() in ("after", "for"):
            entry[key.strip()] = value.strip()
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
