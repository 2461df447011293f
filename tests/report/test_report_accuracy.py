"""The report's "Prediction accuracy" section, from outcome series in a real Prometheus.

The series are what ``gpu-health-scorer outcomes`` publishes (its own ``exposition``), stamped
over the last half hour and backfilled next to a small fleet, as a textfile collector scraped
every minute would leave them; the report is run through its command line (text and HTML).
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from gpu_health import stack
from gpu_health.report.accuracy import NO_ACCURACY
from gpu_health.scorer.outcomes import Outcome, exposition
from tests.conftest import PrometheusFactory
from tests.scorer import state_fleet

pytestmark = pytest.mark.integration
BIN = Path(sys.executable).parent

#: Published out of order (30d first): the report sorts horizons by length.
OUTCOMES = (
    # precision 12/20, recall 12/16, median lead 11 days
    Outcome("30d", 12, 8, 4, 500, (10.0, 12.0), 3),
    # precision 3/12, recall 3/4, median lead 4 days
    Outcome("7d", 3, 9, 1, 700, (2.0, 4.0, 5.0), 2),
    # nothing flagged: no precision and no lead time are published, only recall 0
    Outcome("90d", 0, 0, 2, 300, (), 1),
)


def _outcome_history(end: float) -> str:
    """The exposition's samples repeated once a minute over the last 30 minutes (OpenMetrics)."""
    times = [end - 1800 + 60 * k for k in range(31)]
    out = []
    for line in exposition(OUTCOMES, "90d").splitlines():
        if line.startswith("#"):
            out.append(line)
        else:
            out += [f"{line} {t:.0f}" for t in times]
    return "\n".join(out) + "\n"


def _report(url: str, at: float, html: Path) -> str:
    argv = [str(BIN / "gpu-health"), "report", "--prometheus", url, "--period", "1h"]
    run = subprocess.run(
        [*argv, "--at", f"{at:.0f}", "--html", str(html)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    return run.stdout


def _text_rows(text: str) -> list[list[str]]:
    """The rows of the text report's accuracy table, split into cells."""
    block = text.split("Prediction accuracy\n", 1)[1].split("\n\n", 1)[0]
    return [line.split() for line in block.splitlines()[2:]]


def _html_rows(page: str) -> list[list[str]]:
    section = page.split("<section id='prediction-accuracy'>", 1)[1].split("</section>", 1)[0]
    return [
        re.findall(r"<td[^>]*>(.*?)</td>", row) for row in re.findall(r"<tr>(.*?)</tr>", section)
    ][1:]


EXPECTED = [
    ["7d", "90d", "25.0%", "75.0%", "4.0", "3", "9", "1"],
    ["30d", "90d", "60.0%", "75.0%", "11.0", "12", "8", "4"],
    ["90d", "90d", "-", "0.0%", "-", "0", "0", "2"],
]


def test_report_shows_live_accuracy_per_horizon(
    prometheus_factory: PrometheusFactory, backfill: Callable[[str], Path], tmp_path: Path
) -> None:
    end = float(int(time.time()) - 60)
    fleet = state_fleet.openmetrics(end).replace("# EOF\n", "")
    server = prometheus_factory(data_dir=backfill(fleet + _outcome_history(end) + "# EOF\n"))
    stack.wait_for_query(server.url, "count(gpu_prediction_outcomes)")
    html = tmp_path / "report.html"

    text = _report(server.url, end, html)
    assert _text_rows(text) == EXPECTED
    assert NO_ACCURACY not in text
    page = html.read_text()
    assert _html_rows(page) == EXPECTED
    assert NO_ACCURACY not in page


def test_report_says_in_one_line_when_there_is_no_accuracy(
    prometheus_factory: PrometheusFactory, backfill: Callable[[str], Path], tmp_path: Path
) -> None:
    end = float(int(time.time()) - 60)
    server = prometheus_factory(data_dir=backfill(state_fleet.openmetrics(end)))
    stack.wait_for_query(server.url, "count(gpu_up)")
    html = tmp_path / "report.html"

    text = _report(server.url, end, html)
    assert f"Prediction accuracy\n{NO_ACCURACY}\n" in text
    page = html.read_text()
    section = page.split("<section id='prediction-accuracy'>", 1)[1].split("</section>", 1)[0]
    assert "<table>" not in section and NO_ACCURACY in section
