"""The shipped model's recipe (``python -m gpu_health.scorer.train_default``) draws the same
histories on whatever day it runs: each ends at the pinned ``END``, not at "now". Until the
pin, every run simulated a slightly different fleet (the held-out one drawn two days later had
149 failures, not 153), so the command could not rebuild the shipped model or its reports."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from gpu_health.scorer import cli, train_default
from gpu_health.scorer.cli_history import block_time_range
from gpu_health.sim import families

#: The recipe's fleets, cut down to seconds of work.
SMALL = train_default.Fleet(gpus=8, days=3, resolution=3600, seed=11, hazard_scale=20.0)

History = tuple[str, str, tuple[int, int]]


def _history(path: Path) -> History:
    """Ground truth, GPUs and the TSDB's time range of one simulated history (whole seconds:
    a block's maxTime is exclusive, a millisecond past its last sample)."""
    first, last = block_time_range(path / "prometheus")
    return (
        (path / "failures.csv").read_text(),
        (path / "gpus.csv").read_text(),
        (round(first), round(last)),
    )


def _run_recipe(
    work: Path, monkeypatch: pytest.MonkeyPatch, clock: float, *extra: str, through: str
) -> list[list[str]]:
    """Run the recipe at wall-clock time ``clock`` with small fleets. Training and evaluation
    only record their arguments; the run stops at the first call named ``through`` ("train",
    or "family": a gate family's evaluation). Returns the recorded calls, families included."""
    calls: list[list[str]] = []

    def scorer_cli(argv: list[str]) -> int:
        calls.append(argv)
        stop = argv[0] == through or (through == "family" and "family-" in " ".join(argv))
        return 1 if stop else 0

    def family(argv: list[str]) -> int:
        calls.append(["families", *argv])
        return 0

    with monkeypatch.context() as m:
        m.setattr(train_default, "TRAIN", SMALL)
        m.setattr(train_default, "HELD_OUT", SMALL)
        m.setattr(cli, "main", scorer_cli)
        m.setattr(families, "main", family)
        m.setattr(time, "time", lambda: clock)
        code = train_default.main(["--work", str(work), "--out", str(work / "model"), *extra])
    assert code == 1
    return calls


def test_the_recipe_draws_the_same_history_whatever_day_it_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    end = train_default.END
    calls = _run_recipe(tmp_path / "a", monkeypatch, end + 3 * 86400, through="train")
    assert [argv[0] for argv in calls] == ["train"]
    _run_recipe(tmp_path / "b", monkeypatch, end + 41 * 86400 + 1234, through="train")
    first, later = (_history(tmp_path / run / "train-dcgm") for run in ("a", "b"))
    assert first == later
    assert first[2] == (end - SMALL.days * 86400, end)


def test_every_history_of_the_recipe_ends_at_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Training, the held-out fleet in both schemas and the gate's families, with ``--end``."""
    other_end = train_default.END - 5 * 86400
    calls = _run_recipe(
        tmp_path, monkeypatch, train_default.END + 86400, "--end", str(other_end), through="family"
    )
    for name in ("train-dcgm", "heldout-dcgm", "heldout-ours"):
        assert _history(tmp_path / name)[2] == (other_end - SMALL.days * 86400, other_end), name
    family = next(argv for argv in calls if argv[0] == "families")
    assert family[family.index("--end") + 1] == str(other_end)
