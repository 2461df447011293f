"""``gpu-health plan`` and the report's planning section against a real Prometheus."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gpu_health.scorer.planning import central_interval, failure_pmf

pytestmark = pytest.mark.integration
BIN = Path(sys.executable).parent
#: uuid -> (datacenter, team, p30)
FLEET = {
    f"GPU-{i:02d}": (("fra1", "ams2", "sjc1")[i % 3], ("vision", "nlp")[i % 2], 0.02 + 0.03 * i)
    for i in range(12)
}


def _openmetrics(end: int) -> str:
    lines: dict[str, list[str]] = {}
    for ts in (end - 120, end - 60, end):
        for i, (uuid, (dc, team, p30)) in enumerate(FLEET.items()):
            ident = f'node="n{i // 4}",gpu="{i % 4}",uuid="{uuid}",model="NVIDIA H100 80GB HBM3"'
            lines.setdefault("# TYPE gpu_failure_probability gauge", []).extend(
                [
                    f'gpu_failure_probability{{{ident},horizon="7d"}} {p30 / 4} {ts}',
                    f'gpu_failure_probability{{{ident},horizon="30d"}} {p30} {ts}',
                ]
            )
            # The exporter's own series, so the report counts these GPUs in our schema.
            lines.setdefault("# TYPE gpu_up gauge", []).append(f"gpu_up{{{ident}}} 1 {ts}")
            action = "sell" if uuid == "GPU-03" else "keep"
            lines.setdefault("# TYPE gpu_recommended_action gauge", []).extend(
                f'gpu_recommended_action{{{ident},action="{a}"}} {int(a == action)} {ts}'
                for a in ("keep", "sell")
            )
            lines.setdefault("# TYPE gpu_asset_info gauge", []).append(
                f'gpu_asset_info{{{ident},datacenter="{dc}",team="{team}",row="",rack="",'
                f'sla_tier=""}} 1 {ts}'
            )
        lines.setdefault("# TYPE gpu_market_price gauge", []).extend(
            [
                f'gpu_market_price{{model="H100",condition="used",date="2026-11-15",'
                f'currency="USD"}} 16500 {ts}',
                f'gpu_market_price{{model="H100",condition="used",date="2026-08-01",'
                f'currency="USD"}} 18000 {ts}',
            ]
        )
    body = [line for head, rows in lines.items() for line in (head, *rows)]
    return "\n".join([*body, "# EOF", ""])


@pytest.fixture
def prometheus(backfill, prometheus_factory) -> str:
    end = int(time.time()) - 30
    return str(prometheus_factory(data_dir=backfill(_openmetrics(end))).url)


def test_plan_prints_groups_with_exact_intervals(prometheus: str, tmp_path: Path) -> None:
    out = subprocess.run(
        [str(BIN / "gpu-health"), "plan", "--prometheus", prometheus, "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    plan = json.loads(out.stdout)
    groups = {(g["dimension"], g["group"], g["horizon"]): g for g in plan["groups"]}
    fra = [p for dc, _t, p in FLEET.values() if dc == "fra1"]
    row = groups[("datacenter", "fra1", "30d")]
    assert row["expected"] == pytest.approx(sum(fra))
    assert (row["lower"], row["upper"]) == central_interval(failure_pmf(fra), 0.8)[:2]
    assert groups[("team", "nlp", "30d")]["gpus"] == 6
    assert plan["extrapolated"] == ["90d"]

    html = tmp_path / "plan.html"
    text = subprocess.run(
        [str(BIN / "gpu-health"), "plan", "--prometheus", prometheus, "--html", str(html)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert text.returncode == 0, text.stderr
    assert "Failures in the next 30d, by datacenter" in text.stdout
    assert "fleet-plan" in html.read_text()


def test_report_html_carries_the_planning_section(prometheus: str, tmp_path: Path) -> None:
    html = tmp_path / "report.html"
    out = subprocess.run(
        [
            str(BIN / "gpu-health"),
            "report",
            "--prometheus",
            prometheus,
            "--schema",
            "ours",
            "--html",
            str(html),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    page = html.read_text()
    assert "<h2>Fleet planning</h2>" in page and "by datacenter" in page and "sjc1" in page
    # the one GPU recommended for sale shows the newest quote and its date
    section = page.split("<section id='sell-prices'>")[1].split("</section>")[0]
    assert "GPU-03" in section and "16,500 (2026-11-15)" in section
    assert "GPU-04" not in section and "2026-08-01" not in section


def test_plan_without_scorer_series_is_one_line(prometheus_factory) -> None:
    empty = prometheus_factory()
    out = subprocess.run(
        [str(BIN / "gpu-health"), "plan", "--prometheus", str(empty.url)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode != 0
    assert "no gpu_failure_probability series" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_gpus_missing_from_the_inventory_are_named(prometheus: str, tmp_path: Path) -> None:
    """``--inventory`` with records for some GPUs only: the others were silently grouped under an
    empty datacenter and team."""
    inventory = tmp_path / "inventory.csv"
    inventory.write_text("uuid,datacenter,team\nGPU-00,fra1,vision\nGPU-01,ams2,nlp\n")
    argv = ["plan", "--prometheus", prometheus, "--inventory", str(inventory)]
    out = subprocess.run(
        [str(BIN / "gpu-health"), *argv],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert f"note: 10 GPU(s) are not in --inventory {inventory}" in out.stderr, out.stderr
    assert "GPU-02, GPU-03, GPU-04, ..." in out.stderr and "GPU-00" not in out.stderr


def test_a_tiny_run_out_probability_is_not_printed_as_0(prometheus: str) -> None:
    """``--service-level 0.9999999999`` printed "runs out with probability at most 0 %"."""
    argv = [str(BIN / "gpu-health"), "plan", "--prometheus", prometheus]
    out = subprocess.run(
        [*argv, "--service-level", "0.9999999999"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert "runs out with probability at most 0.00000001 % within the horizon" in out.stdout
    assert "at most 0 %" not in out.stdout
