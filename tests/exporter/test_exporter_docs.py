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


def test_label_values_a_query_must_match_are_listed() -> None:
    """A writer of our schema (or of a query) needs the values of ``reason``, ``type``, ``xid``
    and ``class``: a blind writer of a test fleet once guessed them from the table above."""
    from gpu_health.telemetry.readings import (
        CLOCK_EVENT_REASONS,
        NVLINK_ERROR_TYPES,
        VIOLATION_POLICIES,
    )
    from gpu_health.telemetry.xids import XID_CATALOGUE, XID_CLASSES

    text = docs.render_metrics_markdown()
    section = text.split("## Label values", 1)[1].split("\n## ", 1)[0]
    rows = {line.split("|")[1].strip(" `"): line for line in section.splitlines()[4:] if line}
    for name in CLOCK_EVENT_REASONS.values():
        assert f"`{name}`" in rows["gpu_clock_event_active"], name
    for policy in VIOLATION_POLICIES:
        assert f"`{policy}`" in rows["gpu_clock_event_seconds_total"], policy
    for kind in NVLINK_ERROR_TYPES:
        assert f"`{kind}`" in rows["gpu_nvlink_errors_total"], kind
    for code in XID_CATALOGUE:
        assert f"`{code}`" in rows["gpu_xid_errors_total"], code
    for cls in XID_CLASSES:
        assert f"`{cls}`" in rows["gpu_xid_class_errors_total"], cls
