"""What a failed scoring run says: a serving scorer logs that it keeps serving (and which
results), a one-shot command (``score --at``, ``serve --once``) says why it failed once, on
one line, against a real refused connection."""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gpu_health.scorer.model import load_model
from gpu_health.scorer.promclient import PromClient, PromConfig
from gpu_health.scorer.service import Scorer, Snapshot

DEAD = "http://127.0.0.1:9"  # discard: nothing listens


def _scorer(serving: bool) -> Scorer:
    client = PromClient(PromConfig(DEAD, timeout_s=5, retries=1))
    return Scorer(client, load_model("rules"), "dcgm", serving=serving)


def test_a_serving_scorer_says_what_it_keeps_serving(caplog: pytest.LogCaptureFixture) -> None:
    scorer = _scorer(serving=True)
    with caplog.at_level(logging.WARNING, logger="gpu_health.scorer.service"):
        assert not scorer.run_once()
        scorer.snapshot = Snapshot(1_796_083_200.0, 1.0, "dcgm", ())
        assert not scorer.run_once()
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 2, said
    assert said[0].startswith("scoring run failed, no results to serve yet: ")
    assert said[1].startswith("scoring run failed, serving the results of 2026-12-01T00:00:00Z: ")
    assert all("connection refused" in s for s in said)
    assert scorer.runs_failed == 2


def test_a_one_shot_run_logs_nothing_of_its_own(caplog: pytest.LogCaptureFixture) -> None:
    scorer = _scorer(serving=False)
    with caplog.at_level(logging.DEBUG, logger="gpu_health.scorer.service"):
        assert not scorer.run_once()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert "connection refused" in scorer.last_error and scorer.runs_failed == 1


@pytest.mark.parametrize(
    "argv",
    [["score", "--at", "1796083200"], ["serve", "--once", "--no-econ"]],
    ids=["score", "serve-once"],
)
def test_a_failed_one_shot_command_says_so_on_one_line(argv: list[str]) -> None:
    exe = shutil.which("gpu-health-scorer", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.skip("gpu-health-scorer not installed")
    done = subprocess.run(
        [exe, *argv, "--prometheus.url", DEAD, "--prometheus.retries", "1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("error: scoring failed: ") and "connection refused" in done.stderr
