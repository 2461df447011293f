"""Run ``gpu-health-exporter --backend sim`` with a failure-rate multiplier.

The demo's backfill multiplies every failure rate (``--hazard-scale``) so that two weeks of a
64-GPU fleet show a few failures; the live exporter must draw the same fleet or the uuids' futures
would not match their pasts. The exporter's command line has no such option yet, so this wrapper
builds the simulated backend with the multiplier and hands everything else to the exporter
unchanged. Usage: ``python -m gpu_health.demo.sim_exporter --hazard-scale X EXPORTER_ARGS...``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from gpu_health.exporter import cli as exporter_cli
from gpu_health.exporter.backend import Backend
from gpu_health.exporter.backends import sim as sim_backend


def _with_hazard(hazard_scale: float) -> object:
    def make(
        gpus: int,
        seed: int,
        speed: float,
        faults: list[str],
        faults_file: Path | None,
        start_time: float | None,
    ) -> Backend:
        from gpu_health.sim import faults as faultlib
        from gpu_health.sim.live import SimBackend

        parsed = [faultlib.parse_fault(text) for text in faults]
        if faults_file is not None:
            parsed += faultlib.load_faults_file(faults_file)
        return SimBackend(
            gpus=gpus,
            seed=seed,
            speed=speed,
            faults=parsed,
            start_time=start_time,
            hazard_scale=hazard_scale,
        )

    return make


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    hazard_scale = 1.0
    if len(args) >= 2 and args[0] == "--hazard-scale":
        hazard_scale = float(args[1])
        args = args[2:]
    if hazard_scale != 1.0:
        # make_backend imports make_sim_backend from this module at call time.
        sim_backend.make_sim_backend = _with_hazard(hazard_scale)  # type: ignore[assignment]
    return exporter_cli.main(args)


if __name__ == "__main__":
    sys.exit(main())
