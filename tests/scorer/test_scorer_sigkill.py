"""``gpu-health-scorer evaluate --data-dir`` killed with SIGKILL takes its private Prometheus along.

The scorer cannot stop Prometheus itself after SIGKILL; Prometheus was started through
``gpu_health.die_with_parent`` (by ``stack.prometheus``), so the kernel sends it SIGTERM, and it
releases the data dir's lock for the next run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gpu_health import die_with_parent, stack
from tests import proctree
from tests.scorer_fleet import DAY, failures_csv, make_fleet, openmetrics

SCORER = [sys.executable, "-m", "gpu_health.scorer.cli"]
DAYS = 30
BOUND = 15.0

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(not die_with_parent.supported(), reason="Linux only"),
]


def test_sigkilled_evaluate_takes_its_private_prometheus_along(tmp_path: Path) -> None:
    start = int(time.time()) - DAYS * DAY - 60
    gpus = make_fleet(12, {1: 12, 5: 20, 7: 25})
    om = tmp_path / "history.om"
    om.write_text(openmetrics(gpus, days=DAYS, step=6 * 3600, schema="dcgm", start=start))
    stack.promtool_backfill(om, tmp_path / "prometheus", block_duration="2400h")
    failures_csv(gpus, tmp_path / "failures.csv", start=start)

    # A SIGKILLed scorer cannot remove its temporary directory (Prometheus' config and log):
    # keep it in this test's own directory, not the machine's /tmp.
    (tmp_path / "tmp").mkdir()
    scorer = subprocess.Popen(
        [*SCORER, "evaluate", "--data-dir", str(tmp_path), "--step", "1d", "--bootstrap", "0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TMPDIR": str(tmp_path / "tmp")},
    )
    tree: list[proctree.Proc] = []
    try:
        assert scorer.stderr is not None
        for line in scorer.stderr:  # printed while it queries its running Prometheus
            if "time steps" in line:
                break
        tree = proctree.descendants(scorer.pid)
        commands = [proctree.command(p) for p in tree]
        assert len(tree) == 1 and commands[0].startswith(stack.find_binary("prometheus")), commands
        assert scorer.poll() is None and proctree.alive(tree[0])

        scorer.kill()
        assert scorer.wait(timeout=10) == -signal.SIGKILL  # killed, not finished on its own
        left = proctree.wait_gone(tree, BOUND)
        assert left == [], [proctree.command(p) for p in left]
        # The scorer made its work dir where TMPDIR said (so the SIGTERM test's check that
        # none is left is a real one).
        made = [p.name for p in (tmp_path / "tmp").iterdir()]
        assert len(made) == 1 and made[0].startswith("gpu-health-scorer-"), made
    finally:
        proctree.kill_all(scorer, tree)


def test_sigterm_ends_serve_during_a_run_against_a_vanished_prometheus(tmp_path: Path) -> None:
    """The demo's scorer gets SIGTERM together with its Prometheus: it must not keep retrying.

    Nothing listens at the Prometheus URL and each query may retry 8 times with back-off (about
    a minute), so a scorer that finished its run before looking at the signal would take that
    long; it abandons the run instead.
    """
    port = stack.free_port()
    argv = [*SCORER, "serve", f"--prometheus.url=http://127.0.0.1:{stack.free_port()}"]
    argv += [f"--web.listen-address=127.0.0.1:{port}", "--prometheus.retries=8"]
    serve = subprocess.Popen(
        [*argv, "--interval=10m", "--no-econ"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        stack.wait_until(f"http://127.0.0.1:{port}/metrics", 60, serve)
        deadline = time.monotonic() + 30
        while b'state="running"} 1' not in stack.http_get(f"http://127.0.0.1:{port}/metrics"):
            assert time.monotonic() < deadline, "the first scoring run never started"
            time.sleep(0.1)
        time.sleep(1.0)  # well into the retries
        serve.send_signal(signal.SIGTERM)
        started = time.monotonic()
        output = serve.communicate(timeout=30)[0]
        took = time.monotonic() - started
    finally:
        if serve.poll() is None:
            serve.kill()
            serve.communicate()
    assert serve.returncode == 0, output[-2000:]
    assert "Traceback" not in output
    # Abandoned because it is stopping, not reported as a run that blew its budget.
    assert "shutting down" in output and "--run.budget" not in output, output[-2000:]
    assert took < 5, f"the scorer took {took:.1f} s to stop"
