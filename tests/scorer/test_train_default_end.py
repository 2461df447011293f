"""The shipped model's recipe (``python -m gpu_health.scorer.train_default``) draws the same
histories on whatever day it runs: each ends at the pinned ``END``, not at "now". Until the
pin, every run simulated a slightly different fleet (its failures fell elsewhere against the
step grid), so the command could not rebuild the shipped model or the reports beside it."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from gpu_health.scorer import cli, train_default
from gpu_health.scorer.cli_history import block_time_range

#: The recipe's training fleet, cut down to seconds of work.
SMALL = train_default.Fleet(gpus=8, days=3, resolution=3600, seed=11, hazard_scale=20.0)

History = tuple[str, str, tuple[int, int]]


def _recipe_history(
    work: Path, monkeypatch: pytest.MonkeyPatch, clock: float, *extra: str
) -> History:
    """Run the recipe at wall-clock time ``clock`` until its training step, and return the
    training history it simulated: ground truth, GPUs and the TSDB's time range."""
    calls: list[list[str]] = []

    def stop_at_training(argv: list[str]) -> int:
        calls.append(argv)
        return 1

    with monkeypatch.context() as m:
        m.setattr(train_default, "TRAIN", SMALL)
        m.setattr(cli, "main", stop_at_training)
        m.setattr(time, "time", lambda: clock)
        code = train_default.main(["--work", str(work), "--out", str(work / "model"), *extra])
    assert code == 1 and [argv[0] for argv in calls] == ["train"]
    history = work / "train-dcgm"
    # whole seconds: a block's maxTime is exclusive, a millisecond past its last sample
    first, last = block_time_range(history / "prometheus")
    return (
        (history / "failures.csv").read_text(),
        (history / "gpus.csv").read_text(),
        (round(first), round(last)),
    )


def test_the_recipe_draws_the_same_history_whatever_day_it_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    end = train_default.END
    first = _recipe_history(tmp_path / "a", monkeypatch, end + 3 * 86400)
    later = _recipe_history(tmp_path / "b", monkeypatch, end + 41 * 86400 + 1234)
    assert first == later
    assert first[2] == (end - SMALL.days * 86400, end)


def test_end_draws_the_history_ending_there(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other_end = train_default.END - 5 * 86400
    other = _recipe_history(
        tmp_path / "c", monkeypatch, train_default.END + 86400, "--end", str(other_end)
    )
    assert other[2] == (other_end - SMALL.days * 86400, other_end)
