"""docs/model-card.md lists every feature with the PromQL the scorer actually sends."""

from __future__ import annotations

from pathlib import Path

from gpu_health.scorer.features import feature_table_markdown


def test_the_model_card_feature_table_is_current(repo_root: Path) -> None:
    card = (repo_root / "docs" / "model-card.md").read_text(encoding="utf-8")
    table = feature_table_markdown()
    assert table in card, (
        "docs/model-card.md's feature table is stale: replace it with "
        "gpu_health.scorer.features.feature_table_markdown()"
    )
