"""``outcomes`` counts predictions, not the states the scorer publishes for broken GPUs.

A failed, absent or replaced GPU is published with probability 1 on every horizon
(docs/health-model.md, "GPU state"). Those rows say the GPU already broke; the model foresaw
nothing there, and ``evaluate`` has no such rows (a GPU that does not report has no features).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from gpu_health.scorer.cli import main
from tests.base.command_runs import is_one_line_error, run_main
from tests.conftest import PrometheusFactory

pytestmark = [pytest.mark.integration]
HOUR = 3600
DAY = 86400


def _history(start: int, failed_at: int, end: int, with_state: bool) -> str:
    """Two GPUs scored every 15 minutes: GPU-ok at 0.001 throughout; GPU-x at 0.001 until it
    fails, then published as lost (probability 1) until the end, as ``serve`` publishes it."""
    lines = ["# TYPE gpu_failure_probability gauge"]
    if with_state:
        lines.append("# TYPE gpu_state gauge")
    for t in range(start, end + 1, 15 * 60):
        for uuid in ("GPU-ok", "GPU-x"):
            broken = uuid == "GPU-x" and t >= failed_at
            for horizon in ("7d", "30d", "90d"):
                p = 1.0 if broken else 0.001
                lines.append(
                    f'gpu_failure_probability{{uuid="{uuid}",horizon="{horizon}"}} {p} {t}'
                )
            if with_state:
                for state in ("healthy", "absent"):
                    value = int((state == "absent") == broken)
                    lines.append(f'gpu_state{{uuid="{uuid}",state="{state}"}} {value} {t}')
    return "\n".join(lines) + "\n# EOF\n"


@pytest.mark.parametrize("engine", ["prometheus", "victoriametrics"])
def test_a_lost_gpu_is_no_false_alarm_of_the_model(
    engine: str,
    on_both_engines: Callable[[str], tuple[str, str]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    end = (int(time.time()) // HOUR - 1) * HOUR  # recent: the test Prometheus keeps 15 days
    start = end - 12 * DAY
    failed_at = start + 2 * DAY
    ledger = tmp_path / "ledger.csv"
    ledger.write_text(f"uuid,time,mode\nGPU-x,{failed_at},fell_off_bus\n")

    def judged(text: str) -> dict[str, int]:
        prom, vm = on_both_engines(text)
        url = prom if engine == "prometheus" else vm
        argv = ["outcomes", "--prometheus.url", url, "--ledger", str(ledger), "--json"]
        argv += ["--end", str(end), "--window", "12d", "--step", "12h", "--horizon", "7d"]
        capsys.readouterr()
        assert main(argv) == 0
        counts: dict[str, int] = json.loads(capsys.readouterr().out)["7d"]
        return counts

    counts = judged(_history(start, failed_at, end, with_state=True))
    # 12-hour rows whose 7-day horizon ended by the window's end: days 0 to 5, 11 per GPU. GPU-x
    # failed on day 2: its 4 rows before are misses, its 7 rows from then on its published
    # state (the row at day 2 reads the step up to it, its failure included)
    assert counts["false_positive"] == 0, counts
    assert (counts["true_positive"], counts["false_negative"]) == (0, 4), counts
    assert counts["true_negative"] == 11, counts

    # Without gpu_state (a scorer that did not publish it) the same probabilities are flags:
    # what the counts were for every lost GPU before
    unmarked = judged(_history(start, failed_at, end, with_state=False))
    assert unmarked["false_positive"] == 7, unmarked


def test_no_published_probability_is_an_error_not_zero_counts(
    prometheus_factory: PrometheusFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """All-zero outcomes from a Prometheus that never scraped the scorer read as a model that
    flagged nothing; with failures in the ledger they read as a model that missed them all."""
    prom = prometheus_factory()
    ledger = tmp_path / "ledger.csv"
    now = int(time.time())
    ledger.write_text(
        "uuid,time,mode\n" + "".join(f"GPU-{i},{now - i * DAY},hbm\n" for i in (1, 2))
    )
    argv = ["outcomes", "--prometheus.url", prom.url, "--ledger", str(ledger), "--window", "7d"]
    code, err = run_main(main, argv, capsys)
    assert is_one_line_error(code, err), err
    assert "no gpu_failure_probability between" in err and "is gpu-health-scorer running" in err
