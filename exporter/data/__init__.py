"""Recorded readings of one real H100 (copied from ``tests/fixtures/h100/``) that the replay
backend serves, shipped with the package so users without the repository have them."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

#: NVML answers, errors and call costs of an H100 80GB HBM3 (driver 580.159.04).
NVML_H100 = "nvml_h100.json"
#: 10 Hz trace of the same GPU: idle, 75 s of bf16 matmul, cool-down.
H100_LOAD_TRACE = "h100_load_trace.csv"


def data_path(name: str) -> Path:
    """Path of a bundled data file (the package is installed unzipped, so this is a real file)."""
    return Path(str(files(__name__).joinpath(name)))
