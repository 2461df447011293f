"""``gpu-health demo`` killed with SIGKILL leaves no process behind.

SIGKILL cannot be caught, so the demo cannot stop its children itself; each child was started
through ``gpu_health.die_with_parent`` and the kernel sends it SIGTERM when the demo dies.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from gpu_health import die_with_parent
from gpu_health.demo import processes
from tests import proctree
from tests.demo.small_demo import small_demo_argv

#: How long the demo's children may take to stop after it is SIGKILLed (Prometheus flushes its
#: head block on SIGTERM; about 1 s here).
BOUND = 15.0

pytestmark = pytest.mark.skipif(not die_with_parent.supported(), reason="Linux only")


@pytest.mark.slow
@pytest.mark.integration
def test_sigkilled_demo_leaves_no_process_running(tmp_path: Path) -> None:
    workdir = tmp_path / "demo"
    # --duration: were the SIGKILL never sent, the demo would still end by itself.
    argv = small_demo_argv(workdir)
    demo = subprocess.Popen(
        [*argv, "--duration", "150", "--no-summary"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    tree: list[proctree.Proc] = []
    try:
        deadline = time.monotonic() + 120
        while not (workdir / "urls.json").is_file():  # written once every child answers
            assert demo.poll() is None, f"demo exited early: {demo.communicate()[1][-2000:]}"
            assert time.monotonic() < deadline, "the demo did not come up in 120 s"
            time.sleep(0.5)
        tree = proctree.descendants(demo.pid)
        recorded = {int(line.split()[1]) for line in (workdir / "pids").read_text().splitlines()}
        assert len(recorded) == 4  # alertmanager, exporter, prometheus, scorer
        assert recorded <= {pid for pid, _ in tree}, (recorded, tree)
        assert all(proctree.alive(p) for p in tree)

        demo.kill()
        demo.wait(timeout=10)
        started = time.monotonic()
        left = proctree.wait_gone(tree, BOUND)
        took = time.monotonic() - started
        assert left == [], [proctree.command(p) for p in left]
        print(f"{len(tree)} descendants gone {took:.1f} s after the demo's SIGKILL")
    finally:
        proctree.kill_all(demo, tree)
        processes.stop_leftovers(workdir)  # the recorded children, found by their working dir
