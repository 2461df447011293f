"""The demo the demo tests start: 16 GPUs, two days of history, every server on a free port
(two such tests on two workers would otherwise both find the usual ports free and both take
them)."""

from __future__ import annotations

import sys
from pathlib import Path

GPU_HEALTH = Path(sys.executable).with_name("gpu-health")


def small_demo_argv(workdir: Path) -> list[str]:
    """``gpu-health demo`` on a small fleet in ``workdir``; options may follow."""
    small = ("--gpus", "16", "--days", "2", "--any-ports")
    return [str(GPU_HEALTH), "demo", *small, "--workdir", str(workdir)]
