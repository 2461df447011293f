"""``gpu-health report`` against a real Prometheus holding a small fleet's history."""

from __future__ import annotations

import random
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from PIL import Image

from gpu_health.report.svg import PALETTE
from tests.conftest import PrometheusFactory

pytestmark = pytest.mark.integration
BIN = Path(sys.executable).parent
GRADE_OF = [(90, "excellent"), (75, "good"), (60, "fair"), (40, "poor"), (0, "critical")]
ACTIONS = ("keep", "repair", "repurpose", "sell", "decommission")
CLASSES = ("memory", "bus", "nvlink", "thermal_power", "other")
#: Runbook page of each class (scorer RUNBOOKS), written out so a changed map is noticed here.
CLASS_RUNBOOK = {
    "memory": "GPUXidMemoryError",
    "bus": "GPUFallenOffBus",
    "nvlink": "GPUNvlinkErrors",
    "thermal_power": "GPUThermalSlowdown",
    "other": "GPUFailurePredicted",
}


@dataclass
class FakeGpu:
    uuid: str
    node: str
    health: float
    p7: float
    p30: float
    action: str
    xids: int
    #: the scorer's most likely failure class and its probability (None: no class series)
    failure_class: str | None = None
    class_p: float = 0.0
    #: two more scorer replicas answer for this GPU: one ties on a later class, one is weaker
    tied: bool = False


def _grade(score: float) -> str:
    return next(name for cut, name in GRADE_OF if score >= cut)


def _fleet(seed: int) -> list[FakeGpu]:
    rng = random.Random(seed)
    gpus = []
    for i in range(8):
        p30 = round(rng.uniform(0.01, 0.9), 3)
        gpus.append(
            FakeGpu(
                uuid=f"GPU-{i:02x}{rng.randrange(16**6):06x}-0000-0000-0000-000000000000",
                node=f"node-{i // 4}",
                health=round(rng.uniform(20, 99), 1),
                p7=round(p30 / 3, 3),
                p30=p30,
                action=rng.choice(ACTIONS),
                xids=rng.choice([0, 0, 2, 5]),
                # GPU 0 is "bus" (tied with a later class, see _openmetrics); the last has none
                failure_class="bus" if i == 0 else None if i == 7 else rng.choice(CLASSES),
                class_p=round(rng.uniform(0.3, 0.95), 2),
                tied=i == 0,
            )
        )
    return gpus


def _openmetrics(gpus: list[FakeGpu], end: int, hours: int = 6) -> str:
    lines: dict[str, list[str]] = {}

    def add(name: str, labels: str, value: float, ts: int, kind: str = "gauge") -> None:
        lines.setdefault(f"# TYPE {name} {kind}", []).append(f"{name}{{{labels}}} {value} {ts}")

    for step in range(hours * 12 + 1):
        ts = end - hours * 3600 + step * 300
        for g in gpus:
            ident = f'node="{g.node}",gpu="0",uuid="{g.uuid}",model="NVIDIA H100 80GB HBM3"'
            add("gpu_up", ident, 1, ts)
            add("gpu_health_score", ident + ',dimension="overall"', g.health, ts)
            for grade in ("excellent", "good", "fair", "poor", "critical"):
                add(
                    "gpu_health_grade",
                    ident + f',grade="{grade}"',
                    int(grade == _grade(g.health)),
                    ts,
                )
            add("gpu_failure_probability", ident + ',horizon="7d"', g.p7, ts)
            add("gpu_failure_probability", ident + ',horizon="30d"', g.p30, ts)
            if g.failure_class:
                add(
                    "gpu_failure_class_probability",
                    ident + f',class="{g.failure_class}"',
                    g.class_p,
                    ts,
                )
            if g.tied:
                # a second scorer replica ties on another class, a third names a weaker one:
                # the report shows the highest probability, the tie to the first class by name
                tie = ident + ',instance="scorer-b",class="thermal_power"'
                add("gpu_failure_class_probability", tie, g.class_p, ts)
                weaker = ident + ',instance="scorer-c",class="memory"'
                add("gpu_failure_class_probability", weaker, g.class_p / 2, ts)
            add(
                "gpu_failure_risk_factor",
                ident + ',horizon="30d",feature="ecc_corrected_rate_24h"',
                g.p30,
                ts,
            )
            add(
                "gpu_failure_risk_factor",
                ident + ',horizon="30d",feature="temp_margin_7d"',
                -0.1,
                ts,
            )
            for action in ACTIONS:
                add(
                    "gpu_recommended_action",
                    ident + f',action="{action}"',
                    int(action == g.action),
                    ts,
                )
                add(
                    "gpu_npv",
                    ident + f',action="{action}",currency="USD"',
                    1000.0 * (ACTIONS.index(action) + 1),
                    ts,
                )
            add("gpu_residual_value", ident + ',currency="USD"', 15000, ts)
            xid_count = g.xids if step > hours * 6 else 0
            add("gpu_xid_errors_total", ident + ',xid="79"', xid_count, ts, "counter")
            if g.p30 > 0.5:
                add(
                    "ALERTS",
                    f'alertname="GpuFailurePredicted",alertstate="firing",severity="warning",{ident}',
                    1,
                    ts,
                )
    text = []
    for header, samples in lines.items():
        text.append(header)
        text.extend(samples)
    return "\n".join(text).replace("gpu_xid_errors_total{", "gpu_xid_errors_total{") + "\n# EOF\n"


def _run_report(url: str, at: int, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(BIN / "gpu-health"),
            "report",
            "--prometheus",
            url,
            "--period",
            "6h",
            "--at",
            str(at),
            "--html",
            str(tmp_path / "report.html"),
            *extra,
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


@pytest.fixture
def fleet_prometheus(
    prometheus_factory: PrometheusFactory, backfill: Callable[[str], Path]
) -> tuple[str, int, list[FakeGpu]]:
    end = int(time.time()) - 7200
    end -= end % 300
    gpus = _fleet(seed=int(time.time()) % 1000)
    prom = prometheus_factory(data_dir=backfill(_openmetrics(gpus, end)))
    return prom.url, end, gpus


def test_terminal_report_ranks_by_risk_and_counts_grades(
    fleet_prometheus: tuple[str, int, list[FakeGpu]], tmp_path: Path
) -> None:
    url, at, gpus = fleet_prometheus
    result = _run_report(url, at, tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "8 GPUs" in out
    # a GPU with an XID 79 in the period has failed (off the bus): failed GPUs rank first
    ranked = sorted(gpus, key=lambda g: (0 if g.xids else 1, -g.p30))
    risk_part = out.split("Riskiest GPUs")[1].split("Recommended actions")[0]
    positions = [risk_part.index(g.uuid[:16]) for g in ranked if g.uuid[:16] in risk_part]
    assert positions == sorted(positions) and len(positions) == 8
    states = out.split("GPU states")[1].split("Health by grade")[0]
    failed = sum(1 for g in gpus if g.xids)
    assert any(line.split() == ["failed", str(failed)] for line in states.splitlines())
    for g in gpus:
        assert (g.uuid[:16] in states) == bool(g.xids)
    if failed:
        assert "XID 79" in states
    for grade in {_grade(g.health) for g in gpus}:
        count = sum(_grade(g.health) == grade for g in gpus)
        assert any(line.split() == [grade, str(count)] for line in out.splitlines())
    worst = max(gpus, key=lambda g: g.p30)
    assert f"{100 * worst.p30:.1f}%" in out
    for g in gpus:
        (line,) = [ln for ln in risk_part.splitlines() if g.uuid[:16] in ln]
        likely = f" {g.failure_class} {100 * g.class_p:.0f}% " if g.failure_class else " - "
        assert likely in line, (g, line)
    xid_total = sum(g.xids for g in gpus)
    reported = sum(
        int(line.split()[-1])
        for line in out.split("XIDs in the last 6h")[1].split("Alerts")[0].splitlines()[3:]
        if line.strip()
    )
    assert reported == xid_total
    if any(g.p30 > 0.5 for g in gpus):
        assert "GpuFailurePredicted" in out


def test_html_report_is_self_contained_and_its_charts_render(
    fleet_prometheus: tuple[str, int, list[FakeGpu]], tmp_path: Path
) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "Debian's chromium is required (./run.sh installs it)"
    url, at, gpus = fleet_prometheus
    wiki = "https://wiki.example.com/gpu/%s"
    assert _run_report(url, at, tmp_path, "--runbook-url-pattern", wiki).returncode == 0
    page = (tmp_path / "report.html").read_text()
    assert "<script" not in page and "src=" not in page and "@import" not in page
    # each GPU's row names its most likely failure class with its probability, linked to the
    # class runbook through the given pattern; a GPU without a class series shows "-"
    risks = page.split("GPUs ranked by failure risk")[1].split("</table>")[0]
    for g in gpus:
        row = re.search(rf"<tr[^>]*><td>[^<]*</td><td>0</td><td>{g.uuid}</td>.*?</tr>", risks)
        assert row, g.uuid
        if g.failure_class:
            link = f'<a href="{wiki % CLASS_RUNBOOK[g.failure_class]}">{g.failure_class}</a>'
            cell = f"<td class='fclass'>{link}</td><td class='num'>{100 * g.class_p:.1f}%</td>"
        else:
            cell = "<td class='fclass'>-</td><td class='num'>-</td>"
        assert cell in row.group(0), (g, row.group(0))
    for chart in ("grades", "health-distribution", "actions"):
        assert f'data-chart="{chart}"' in page
    shot = tmp_path / "report.png"
    subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'chrome'}",
            "--hide-scrollbars",
            f"--screenshot={shot}",
            "--window-size=1280,1400",
            f"file://{tmp_path / 'report.html'}",
        ],
        capture_output=True,
        check=False,
        timeout=90,
    )
    assert shot.exists(), "chromium produced no screenshot"
    shutil.copy(shot, Path("/tmp/report-shot.png")) if Path(
        "/tmp/keep-report-shot"
    ).exists() else None
    image = Image.open(shot).convert("RGB")
    pixels = [image.getpixel((x, y)) for y in range(0, image.height, 2) for x in range(image.width)]

    # Every bar is drawn in its palette colour: each colour some bar of this fleet needs is on the
    # screen, and a colour no bar needs is not (every other row is sampled). The fleet is drawn
    # from a time-based seed, so which colours are needed is read from the fleet, not assumed.

    def count(rgb: tuple[int, int, int]) -> int:
        return sum(1 for p in pixels if all(abs(a - b) <= 6 for a, b in zip(p, rgb, strict=True)))

    needed = _bar_colours(gpus)
    for index, colour in enumerate(PALETTE[:5]):
        rgb = (int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16))
        drawn = count(rgb)
        if index in needed:
            assert drawn > 100, f"bars in {colour} not rendered ({drawn} pixels, {gpus})"
        else:
            assert drawn < 10, f"{drawn} pixels in {colour}, which no bar of this fleet needs"
    blue_line = count((0x45, 0x75, 0xB4))  # trend polylines
    assert blue_line > 50, f"trend lines not rendered ({blue_line} blue pixels)"


def _bar_colours(gpus: list[FakeGpu]) -> set[int]:
    """Palette indices the report's bars need for this fleet: grade bars (excellent first),
    health-histogram bins (coloured by the grade of their scores, two bins per grade, 20 points
    wide) and action bars (keep first)."""
    grades = [name for _, name in GRADE_OF]
    needed = {grades.index(_grade(g.health)) for g in gpus}
    needed |= {4 - min(4, int(g.health // 20)) for g in gpus}
    needed |= {ACTIONS.index(g.action) for g in gpus}
    return needed


def test_unreachable_prometheus_is_one_line(tmp_path: Path) -> None:
    result = _run_report("http://127.0.0.1:9", int(time.time()), tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0 and "cannot reach Prometheus" in result.stderr


@pytest.mark.parametrize(
    "body",
    [b"[" * 100_000 + b"]" * 100_000, b"[1, 2]", b"<html>proxy error</html>"],
    ids=["nested-deep", "not-an-object", "not-json"],
)
def test_a_server_that_is_not_prometheus_is_one_line(tmp_path: Path, body: bytes) -> None:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        result = _run_report(url, int(time.time()), tmp_path)
    finally:
        server.shutdown()
        server.server_close()
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.strip().count("\n") == 0 and url in result.stderr
    assert not (tmp_path / "report.html").exists()


def test_bad_runbook_url_pattern_is_one_line(tmp_path: Path) -> None:
    result = _run_report(
        "http://127.0.0.1:9", int(time.time()), tmp_path, "--runbook-url-pattern", "wiki/%s/%d"
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0 and "--runbook-url-pattern" in result.stderr
    assert not (tmp_path / "report.html").exists()


def test_bad_period_is_one_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            str(BIN / "gpu-health"),
            "report",
            "--prometheus",
            "http://127.0.0.1:9",
            "--period",
            "week",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (
        result.returncode == 1 and "--period" in result.stderr and "Traceback" not in result.stderr
    )
