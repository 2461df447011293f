"""The exporter runs on every GPU node: starting it must not load the simulator or numpy.

Its argument parser once imported the live simulator (and with it numpy) for the text of one help
line; on an H200 the NVML exporter then held 70 MB of memory, and a replayed one 45 MB instead
of 33 MB (docs/benchmarks.md).
"""

from __future__ import annotations

import subprocess
import sys

from gpu_health.sim.faults import FAULT_HELP

PROBE = """
import sys
from gpu_health.exporter.cli import build_parser
help_text = build_parser().format_help()
heavy = sorted(m for m in sys.modules if m == "numpy" or m.startswith("gpu_health.sim.live"))
print(heavy)
print(help_text)
"""


def test_building_the_exporters_parser_imports_neither_numpy_nor_the_live_simulator() -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60, check=True
    )
    first, _, help_text = result.stdout.partition("\n")
    assert first == "[]", first
    # the --sim-fault help still lists the simulator's faults
    assert " ".join(FAULT_HELP.split()[:6]) in " ".join(help_text.split())
