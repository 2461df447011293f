"""``gpu-health demo fault SPEC``: inject a fault into the simulated fleet of a running demo.

The demo starts its exporter with ``--sim-faults-file WORKDIR/live-faults.yaml``; the simulator
watches that file and starts every entry appended to it from the moment it sees it
(``gpu_health.sim.live``). This command validates the fault, checks that a demo is running in
the work dir, and appends the entry atomically (write a temporary file, then rename), so the
exporter never reads half a file. Nothing listens on the network for it: faults reach the demo
only through a file in its own work dir.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

import yaml

from gpu_health.errors import UserError
from gpu_health.sim.faults import FAULT_HELP, MAX_FAULTS, parse_fault

FAULTS_FILE = "live-faults.yaml"
FLEET_FILE = "fleet.json"
PIDS_FILE = "pids"


def prepare(workdir: Path, gpus: int) -> Path:
    """Start the demo with an empty faults file (faults of an earlier run are not replayed)."""
    (workdir / FLEET_FILE).write_text(json.dumps({"gpus": gpus}) + "\n")
    path = workdir / FAULTS_FILE
    _write_atomically(path, {"faults": []})
    return path


def add_arguments(actions: Any) -> None:
    """Register ``fault`` under the demo's sub-commands."""
    parser = actions.add_parser(
        "fault",
        help="inject a fault into the running demo",
        description="Inject a fault into the simulated fleet of the demo running in --workdir; "
        "it starts now (plus after=) and shows in the alerts within minutes. " + FAULT_HELP,
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
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(yaml.safe_dump(data, sort_keys=False))
    os.replace(tmp, path)


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
    try:
        gpus = int(json.loads((workdir / FLEET_FILE).read_text())["gpus"])
    except (OSError, ValueError, KeyError, TypeError):
        raise UserError(f"{workdir / FLEET_FILE}: unreadable; restart the demo") from None
    if fault.gpu >= gpus:
        raise UserError(f"{where}: the demo's fleet has GPUs 0-{gpus - 1}")
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
    return (
        f"injected {fault.fault} into GPU {fault.gpu} of the demo in {workdir}: the exporter "
        "starts it within a second; its alerts follow within five minutes"
    )


def run(args: argparse.Namespace) -> int:
    print(add_fault(args.workdir.resolve(), args.spec), flush=True)
    return 0
