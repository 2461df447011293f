"""The simulated fleet, from the simulator package (imported only when asked for)."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from gpu_health.exporter.backend import Backend
from gpu_health.telemetry.readings import BackendUnavailableError

DEFAULT_FAULT_HELP = "inject a fault into the simulated fleet (see the simulator documentation)"


def _live() -> Any:
    try:
        live = importlib.import_module("gpu_health.sim.live")
    except ImportError as exc:
        raise BackendUnavailableError(
            f"the simulator is not part of this install (gpu_health.sim.live: {exc})"
        ) from None
    return live


def fault_help() -> str:
    """The simulator's help text for ``--sim-fault`` (a generic line when it is absent).

    Read from the fault parser's module, which imports no numpy: every exporter builds its
    argument parser, and importing the live simulator here loaded numpy and the simulator's
    tables for one help line: 13 MB and 0.11 s on a replayed exporter, 5 MB on an H200's.
    """
    try:
        faults = importlib.import_module("gpu_health.sim.faults")
        return str(faults.FAULT_HELP)
    except (ImportError, AttributeError):
        return DEFAULT_FAULT_HELP


def make_sim_backend(
    gpus: int,
    seed: int,
    speed: float,
    faults: list[str],
    faults_file: Path | None,
    start_time: float | None,
    hazard_scale: float = 1.0,
) -> Backend:
    backend: Backend = _live().SimBackend.from_options(
        gpus=gpus,
        seed=seed,
        speed=speed,
        faults=faults,
        faults_file=faults_file,
        start_time=start_time,
        hazard_scale=hazard_scale,
    )
    return backend
