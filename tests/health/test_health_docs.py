"""docs/health-model.md cannot drift: its worked example and its tables are recomputed here."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import yaml

from gpu_health.health.model import HealthTracker
from gpu_health.health.policy import DEFAULT_POLICY_PATH, load_policy
from gpu_health.health.result import HealthResult
from gpu_health.health.rules import score
from gpu_health.health.signals import Signals
from gpu_health.telemetry.readings import GpuSample
from tests.health.test_health_support import h100_identity, h100_sample

DOC = Path(__file__).resolve().parents[2] / "docs" / "health-model.md"


def worked_example() -> tuple[Signals, HealthResult]:
    """The degraded H100 of the doc: one sample every 10 s for an hour, scored by the tracker."""
    tracker = HealthTracker(load_policy(None))
    identity = h100_identity()
    base = h100_sample()
    signals: Signals | None = None
    for step in range(361):
        t = step * 10.0
        sample: GpuSample = dataclasses.replace(
            base,
            timestamp=t,
            temperature_gpu_celsius=84.0,
            temperature_memory_celsius=88.0,
            power_watts=690.0,
            power_limit_watts=700.0,
            sm_clock_hertz=1_755e6,
            utilization_gpu_ratio=0.97,
            # SW power cap always; SW thermal slowdown on every tenth sample.
            clock_event_reasons=0x4 | (0x20 if step % 10 == 0 else 0),
            pcie_link_generation=5,
            pcie_link_width=8,
            pcie_replays=int(62 * t / 60),
            ecc_corrected_volatile=40 + int(12 * t / 3600),
            ecc_uncorrected_volatile=0,
            ecc_uncorrected_aggregate=1,
            remapped_rows_correctable=2,
            remapped_rows_uncorrectable=1,
            row_remap_pending=True,
            row_remap_failed=False,
            xid_counts={63: 1} if t >= 1800 else {},
        )
        signals, thresholds = tracker.signals(identity, sample)
    assert signals is not None
    return signals, score(signals, tracker.policy, thresholds)


def _doc_block(name: str) -> str:
    text = DOC.read_text(encoding="utf-8")
    match = re.search(rf"<!-- {name}:start -->(.*?)<!-- {name}:end -->", text, re.S)
    assert match, f"{name} block missing from {DOC}"
    return match.group(1)


def _rows(block: str) -> list[list[str]]:
    rows = []
    for line in block.splitlines():
        cells = [c.strip().strip("`*") for c in line.strip().strip("|").split("|")]
        if line.strip().startswith("|") and not set("".join(cells)) <= set("-: "):
            rows.append(cells)
    return rows[1:]  # without the header


def test_worked_example_penalties_match_the_doc() -> None:
    _, result = worked_example()
    documented = {(r[0], r[1]): float(r[3]) for r in _rows(_doc_block("worked-example-penalties"))}
    computed = {(p.dimension, p.reason): p.points for p in result.penalties}
    assert documented == computed


def test_worked_example_scores_match_the_doc() -> None:
    _, result = worked_example()
    documented = {r[0]: r[1] for r in _rows(_doc_block("worked-example-scores"))}
    computed = {d: f"{v:.2f}" for d, v in result.dimensions.items()}
    computed["overall"] = f"{result.overall:.2f}"
    computed["grade"] = result.grade
    assert documented == computed


def test_doc_lists_every_weight_cap_and_threshold_of_the_shipped_policy() -> None:
    raw = yaml.safe_load(DEFAULT_POLICY_PATH.read_text())
    text = DOC.read_text(encoding="utf-8")
    for section in ("weights", "caps", "thresholds", "windows", "hard_limits", "grades"):
        for key in raw[section]:
            assert f"`{key}`" in text, f"{section}.{key} is not documented"
    for code in [*raw["xid"]["critical"], *raw["xid"]["penalised"]]:
        assert f"| {code} |" in text, f"XID {code} is not documented"
    for dimension, weight in raw["weights"].items():
        assert re.search(rf"\| {dimension} \| {weight:.2f} \|", text), dimension
