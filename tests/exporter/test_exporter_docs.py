"""docs/metrics.md is generated from the catalogue and must not go stale."""

from __future__ import annotations

from pathlib import Path

from gpu_health.exporter import docs
from gpu_health.telemetry.catalogue import CATALOGUE, HEALTH_METRICS, SELF_METRICS

DOC = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"


def test_metrics_doc_is_current() -> None:
    assert DOC.read_text() == docs.render_metrics_markdown(), (
        "docs/metrics.md is stale: run  python -m gpu_health.exporter.docs"
    )


def test_every_metric_is_documented() -> None:
    text = docs.render_metrics_markdown()
    every = [s.name for s in CATALOGUE] + [n for n, *_ in HEALTH_METRICS]
    every += [n for n, *_ in SELF_METRICS] + ["gpu_info", "gpu_pod_info"]
    for name in every:
        assert f"| `{name}` |" in text, name


def test_check_mode_detects_a_stale_file(tmp_path: Path) -> None:
    path = tmp_path / "metrics.md"
    assert docs.main([str(path)]) == 0
    assert docs.main([str(path), "--check"]) == 0
    path.write_text(path.read_text().replace("gpu_power_watts", "gpu_power_wats"))
    assert docs.main([str(path), "--check"]) == 1
