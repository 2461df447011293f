"""The report's health section on sparse history and its note when there is no health score.

Prometheus finds an instant sample only within its 5-minute lookback: history sampled every 15
minutes (``gpu-health backfill --resolution 15m``), or a report asked a few minutes after the
exporter's last scrape, showed no health by grade and ``-`` in the risk ranking's health column
while every GPU counted as reporting, and the note blamed dcgm-exporter input on our schema.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from gpu_health import stack
from gpu_health.report.gather import Gatherer
from tests.conftest import PrometheusFactory

pytestmark = pytest.mark.integration
BIN = Path(sys.executable).parent
STEP = 900  # one sample every 15 minutes
MODEL = 'model="NVIDIA H100 80GB HBM3"'
GRADE_NAMES = ("excellent", "good", "fair", "poor", "critical")
#: uuid -> overall health score; the grade bands of the exporter (90, 75, 60, 40)
SCORES = {"GPU-a": 95.0, "GPU-b": 80.0, "GPU-c": 65.0, "GPU-d": 30.0}


def _grade(score: float) -> str:
    cuts = ((90, "excellent"), (75, "good"), (60, "fair"), (40, "poor"))
    return next((name for cut, name in cuts if score >= cut), "critical")


def _exporter(lines: list[str], uuid: str, ts: int, score: float | None, inst: str) -> None:
    """One scrape of our exporter for ``uuid`` at ``ts``; ``score`` None: no health series."""
    ident = f'node="n1",gpu="{uuid[-1]}",uuid="{uuid}",{MODEL}'
    lines.append(f"gpu_up{{{ident}}} 1 {ts}")
    lines.append(f"gpu_power_watts{{{ident}}} 300 {ts}")
    if score is None:
        return
    health = f'{ident},instance="{inst}"'
    lines.append(f'gpu_health_score{{{health},dimension="overall"}} {score} {ts}')
    for grade in GRADE_NAMES:
        value = int(grade == _grade(score))
        lines.append(f'gpu_health_grade{{{health},grade="{grade}"}} {value} {ts}')


def _sparse_history(end: int, moved: int) -> str:
    """Six hours of four GPUs every 15 minutes up to ``end``, and the scorer's probabilities
    every minute up to ``end + 600``. GPU-d's exporter moves at ``moved`` (a new ``instance``;
    its last sample under the old one is a step before, with the grade "poor")."""
    lines: list[str] = []
    for ts in range(end - 6 * 3600, end + 1, STEP):
        for uuid, score in SCORES.items():
            inst = "old:9840" if uuid == "GPU-d" and ts < moved else "n1:9840"
            _exporter(lines, uuid, ts, 50.0 if inst == "old:9840" else score, inst)
    for ts in range(end - 6 * 3600, end + 601, 60):
        for uuid in SCORES:
            ident = f'node="n1",gpu="{uuid[-1]}",uuid="{uuid}",{MODEL}'
            lines.append(f'gpu_failure_probability{{{ident},horizon="30d"}} 0.1 {ts}')
            lines.append(f'gpu_failure_probability{{{ident},horizon="7d"}} 0.05 {ts}')
    return _openmetrics(lines)


def _openmetrics(lines: list[str]) -> str:
    """``lines`` grouped by metric name under one TYPE line each (OpenMetrics asks for it)."""
    by_name: dict[str, list[str]] = {}
    for line in lines:
        by_name.setdefault(line.split("{", 1)[0], []).append(line)
    out: list[str] = []
    for name, samples in by_name.items():
        out.append(f"# TYPE {name} gauge")
        out.extend(sorted(samples, key=lambda s: int(s.rsplit(" ", 1)[1])))
    return "\n".join(out) + "\n# EOF\n"


def _end() -> int:
    end = int(time.time()) - 3600
    return end - end % STEP


def _grades(url: str, at: float) -> tuple[dict[str, int], list[float], list[str]]:
    report = Gatherer(url, "6h", at=at).gather("ours", 20, ("states", "health", "risk"))
    health = sorted(r.health for r in report.risks if r.health is not None)
    return report.grades, health, report.notes


def test_fifteen_minute_history_shows_health_by_grade_on_both_engines(
    on_both_engines: Callable[[str], tuple[str, str]],
) -> None:
    """Ten minutes after the last 15-minute sample (past Prometheus' 5-minute lookback, within
    the 30-minute presence window) every GPU has its grade, its scores and its health in the
    risk ranking, on Prometheus and VictoriaMetrics alike. On Prometheus the grades were
    empty and the health column ``-`` when the score was read at an instant."""
    end = _end()
    prom, vm = on_both_engines(_sparse_history(end, moved=end - 3 * 3600))
    stack.wait_for_query(prom, "count(last_over_time(gpu_health_grade[9d]))")
    expected = {"excellent": 1, "good": 1, "fair": 1, "poor": 0, "critical": 1}
    for url in (prom, vm):
        grades, health, notes = _grades(url, end + 600)
        assert grades == expected, url
        assert health == sorted(SCORES.values()), url
        assert not any(n.startswith("No health score") for n in notes), (url, notes)

    argv = [str(BIN / "gpu-health"), "report", "--prometheus", prom, "--period", "6h"]
    result = subprocess.run(
        [*argv, "--at", str(end + 600)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "Health by grade" in result.stdout
    assert "mean overall score 67.5, worst 30.0" in result.stdout
    assert "No health score" not in result.stdout


def test_a_gpu_whose_exporter_moved_counts_once_under_its_current_grade(
    prometheus_factory: PrometheusFactory, backfill: Callable[[str], Path]
) -> None:
    """GPU-d's health series moved to a new ``instance`` one minute before the report; its
    old series (grade "poor", 16 minutes old) is still inside the presence window. The window
    is read only for a GPU with no current sample, so GPU-d counts once, as critical
    (``last_over_time`` over the window alone counted it under both grades)."""
    end = _end()
    moved = end - 2 * 3600
    prom = prometheus_factory(data_dir=backfill(_sparse_history(end, moved=moved)))
    stack.wait_for_query(prom.url, "count(last_over_time(gpu_health_grade[9d]))")
    grades, health, _ = _grades(prom.url, moved + 60)
    assert grades == {"excellent": 1, "good": 1, "fair": 1, "poor": 0, "critical": 1}
    assert health == sorted(SCORES.values())


def _stopped_history(end: int) -> str:
    """Eight days of two of our GPUs every 15 minutes, with a health score only in the first
    seven hours, and an hour of three dcgm-exporter GPUs up to ``end``."""
    lines: list[str] = []
    start = end - 8 * 86400
    for ts in range(start, end + 1, STEP):
        for uuid in ("GPU-a", "GPU-b"):
            _exporter(lines, uuid, ts, SCORES[uuid] if ts <= start + 7 * 3600 else None, "n1:9840")
    for ts in range(end - 3600, end + 1, 60):
        for i in range(3):
            labels = f'Hostname="d1",UUID="GPU-d{i}",gpu="{i}",modelName="NVIDIA A100-SXM4-80GB"'
            lines.append(f"DCGM_FI_DEV_GPU_TEMP{{{labels}}} 60 {ts}")
    return _openmetrics(lines)


def test_the_note_says_why_there_is_no_health_score_in_each_schema(
    prometheus_factory: PrometheusFactory, backfill: Callable[[str], Path]
) -> None:
    """dcgm-exporter's schema has no health score; ours has none when it stopped (older samples
    within the last 7 days) or none in those 7 days. The note said "dcgm-exporter input
    carries no health score" in all three."""
    end = _end()
    prom = prometheus_factory(data_dir=backfill(_stopped_history(end)))
    stack.wait_for_query(prom.url, "count(last_over_time(DCGM_FI_DEV_GPU_TEMP[9d]))")

    def note(schema: str, at: float) -> list[str]:
        report = Gatherer(prom.url, "6h", at=at).gather(schema, 20, ("health",))
        assert not report.grades
        return [n for n in report.notes if n.startswith("No health score")]

    assert note("dcgm", end) == [
        "No health score: dcgm-exporter's metrics carry none (gpu-health-exporter computes "
        "gpu_health_score and gpu_health_grade)."
    ]
    stopped_at = end - 8 * 86400 + 7 * 3600  # six hours of data before: a 15-minute interval
    assert note("ours", stopped_at + 2 * 3600) == [
        "No health score: no gpu_health_grade sample in the last 30m (the window in which a GPU "
        "counts as reporting); the last ones are older, within the last 7d."
    ]
    assert note("ours", end) == ["No health score: gpu_health_grade has no sample in the last 7d."]
