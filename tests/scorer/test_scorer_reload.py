"""A model redeployed under a running scorer is verified first; a bad one keeps the last good."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from types import SimpleNamespace

from gpu_health.scorer.model import CHECKSUMS, DEFAULT_MODEL_DIR, FailureModel
from gpu_health.scorer.service import Scorer, ScorerCollector


def _bump(path: Path) -> None:
    """Make the checksums file look rewritten (a deploy), whatever the clock resolution."""
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def _reload_errors(scorer: Scorer) -> float:
    for family in ScorerCollector(scorer).collect():
        if family.name == "gpu_scorer_model_reload_errors":
            return float(family.samples[0].value)
    raise AssertionError("reload-error counter not exported")


def test_damaged_redeploy_is_refused_and_a_good_one_is_taken(tmp_path: Path) -> None:
    model_dir = tmp_path / "model"
    shutil.copytree(DEFAULT_MODEL_DIR, model_dir)
    first = FailureModel.load(model_dir)
    scorer = Scorer(client=SimpleNamespace(errors=0), model=first, model_dir=model_dir)  # type: ignore[arg-type]
    scorer.reload_model_if_changed()  # remembers the deployed version
    assert scorer.model is first and _reload_errors(scorer) == 0

    booster = model_dir / "xgb-30d.ubj"
    good_bytes = booster.read_bytes()
    booster.write_bytes(good_bytes[: len(good_bytes) // 2])  # a deploy cut short
    _bump(model_dir / CHECKSUMS)
    scorer.reload_model_if_changed()
    assert scorer.model is first, "a truncated model must not replace the good one"
    assert _reload_errors(scorer) == 1

    booster.write_bytes(good_bytes)  # the deploy is redone properly
    _bump(model_dir / CHECKSUMS)
    scorer.reload_model_if_changed()
    assert scorer.model is not first and scorer.model.features == first.features
    assert _reload_errors(scorer) == 1


def test_unchanged_directory_is_not_reloaded(tmp_path: Path) -> None:
    model_dir = tmp_path / "model"
    shutil.copytree(DEFAULT_MODEL_DIR, model_dir)
    first = FailureModel.load(model_dir)
    scorer = Scorer(client=SimpleNamespace(errors=0), model=first, model_dir=model_dir)  # type: ignore[arg-type]
    for _ in range(3):
        scorer.reload_model_if_changed()
    assert scorer.model is first
