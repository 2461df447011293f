"""The query runner and PNG preview: Grafana's variable rules; the CLI against a real Prometheus."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from gpu_health.mixin import preview_cells
from gpu_health.mixin.dashquery import (
    PanelResult,
    PromClient,
    Series,
    TargetResult,
    builtin_values,
    legend,
    resolve_variables,
    run_dashboard,
    substitute,
)

REPO = Path(__file__).resolve().parents[2]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_rate_interval_follows_grafanas_formula() -> None:
    # max($__interval + scrape, 4 * scrape): a 15 s scrape at a 60 s step gives 75 s.
    assert builtin_values(0, 3600, 60, 15)["__rate_interval"] == "75s"
    assert builtin_values(0, 3600, 15, 15)["__rate_interval"] == "60s"
    assert builtin_values(100, 3700, 15, 15)["__range"] == "3600s"


def test_substitute_all_syntaxes_and_refuse_unknown() -> None:
    values = {"node": "n1", "__rate_interval": "60s"}
    assert (
        substitute('rate(x{node=~"$node"}[$__rate_interval])', values) == 'rate(x{node=~"n1"}[60s])'
    )
    assert substitute("${node}/${node:raw}", values) == "n1/n1"
    with pytest.raises(KeyError, match=r"\$gpu"):
        substitute('x{uuid="$gpu"}', values)


def test_legend_like_grafana() -> None:
    labels = {"__name__": "gpu_up", "node": "n1", "gpu": "3"}
    assert legend("{{node}}/{{ gpu }}", labels) == "n1/3"
    assert legend("", labels) == 'gpu_up{gpu="3", node="n1"}'


@pytest.mark.parametrize(
    ("value", "unit", "expected"),
    [
        (0.873, "percentunit", "87.3%"),
        (71.4, "celsius", "71 °C"),
        (700, "watt", "700 W"),
        (1.98e9, "hertz", "1.98 GHz"),
        (80 * 2**30, "bytes", "80 GiB"),
        (7200, "s", "2.0 hour"),
        (1_250_000, "currencyUSD", "$1.25 M"),
        (float("nan"), "none", "–"),
    ],
)
def test_units(value: float, unit: str, expected: str) -> None:
    assert preview_cells.format_value(value, unit) == expected


def test_threshold_colour_picks_the_highest_step_reached() -> None:
    fieldconfig = {
        "defaults": {
            "thresholds": {
                "steps": [
                    {"color": "red", "value": None},
                    {"color": "orange", "value": 50},
                    {"color": "green", "value": 75},
                ]
            }
        }
    }
    assert preview_cells.threshold_colour(10, fieldconfig) == preview_cells.COLOURS["red"]
    assert preview_cells.threshold_colour(50, fieldconfig) == preview_cells.COLOURS["orange"]
    assert preview_cells.threshold_colour(99, fieldconfig) == preview_cells.COLOURS["green"]


def _history(end: float, gpus: int = 3, minutes: int = 60) -> str:
    """A small hand-made fleet: gpu_info, gpu_up and an overall health score per GPU."""
    lines = []
    families: dict[str, list[str]] = {"gpu_info": [], "gpu_up": [], "gpu_health_score": []}
    for i in range(gpus):
        ident = (
            f'job="gpu-health-exporter",node="node-{i % 2}",gpu="{i}",'
            f'uuid="GPU-{i:08d}",pci_bus_id="0000:{i:02x}:00.0",model="NVIDIA H100 80GB HBM3"'
        )
        for m in range(minutes):
            t = end - (minutes - m) * 60
            families["gpu_info"].append(f'gpu_info{{{ident},driver_version="550.54"}} 1 {t:.0f}')
            families["gpu_up"].append(f"gpu_up{{{ident}}} 1 {t:.0f}")
            score = 95 - 20 * i - m * 0.1
            families["gpu_health_score"].append(
                f'gpu_health_score{{{ident},dimension="overall"}} {score} {t:.0f}'
            )
    for name, samples in families.items():
        lines.append(f"# TYPE {name} gauge")
        lines.extend(samples)
    return "\n".join(lines) + "\n# EOF\n"


@pytest.fixture
def small_prometheus(
    backfill: Callable[[str], Path], prometheus_factory: Callable[..., object]
) -> tuple[str, float]:
    end = float(int(time.time()) // 60 * 60)
    data_dir = backfill(_history(end))
    server = prometheus_factory(data_dir=data_dir)
    return server.url, end  # type: ignore[attr-defined]


def _dashboard() -> dict[str, object]:
    return {
        "title": "test",
        "templating": {
            "list": [
                {"name": "datasource", "type": "datasource", "query": "prometheus"},
                {
                    "name": "node",
                    "type": "query",
                    "query": {"query": "label_values(gpu_info, node)", "refId": "A"},
                    "definition": "label_values(gpu_info, node)",
                    "includeAll": True,
                    "allValue": ".*",
                },
                {
                    "name": "gpu",
                    "type": "query",
                    "definition": 'label_values(gpu_info{node=~"$node"}, uuid)',
                    "query": 'label_values(gpu_info{node=~"$node"}, uuid)',
                    "includeAll": False,
                },
            ]
        },
        "panels": [
            {
                "type": "stat",
                "title": "score",
                "gridPos": {"x": 0, "y": 0, "w": 12, "h": 4},
                "targets": [
                    {
                        "refId": "A",
                        "expr": 'gpu_health_score{uuid="$gpu"}',
                        "legendFormat": "{{uuid}}",
                    }
                ],
            },
            {
                "type": "timeseries",
                "title": "up",
                "gridPos": {"x": 12, "y": 0, "w": 12, "h": 4},
                "targets": [
                    {
                        "refId": "A",
                        "expr": 'sum by (node) (gpu_up{node=~"$node"})',
                        "legendFormat": "{{node}}",
                    }
                ],
            },
        ],
    }


@pytest.mark.integration
def test_variables_resolve_in_order_against_prometheus(small_prometheus: tuple[str, float]) -> None:
    url, end = small_prometheus
    client = PromClient(url)
    values = resolve_variables(_dashboard(), client, end - 3600, end)
    assert values["node"] == ".*"  # All
    assert values["gpu"] == "GPU-00000000"  # first option, filtered by $node
    chosen = resolve_variables(_dashboard(), client, end - 3600, end, {"node": "node-1"})
    assert chosen["gpu"] == "GPU-00000001"
    result = run_dashboard(_dashboard(), client, end - 3600, end, 60, chosen)
    stat, series = result.panels
    assert [s.name for s in stat.targets[0].series] == ["GPU-00000001"]
    assert [s.name for s in series.targets[0].series] == ["node-1"]
    assert len(series.targets[0].series[0].values) > 30  # a range query over the hour


@pytest.mark.integration
def test_preview_cli_renders_the_committed_dashboards(
    small_prometheus: tuple[str, float], tmp_path: Path
) -> None:
    url, end = small_prometheus
    out = tmp_path / "img"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "gpu_health.mixin.dashpreview",
            "--prometheus",
            url,
            "--dashboards",
            str(REPO / "grafana"),
            "--out",
            str(out),
            "--end",
            str(end),
            "--range",
            "1h",
            "--scrape-interval",
            "60s",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert pngs == sorted(p.with_suffix(".png").name for p in (REPO / "grafana").glob("*.json"))
    for png in out.glob("*.png"):
        assert png.read_bytes()[:8] == PNG_MAGIC and png.stat().st_size > 20_000
    # The worst GPU (lowest score) became the detail dashboard's subject.
    assert "gpu=GPU-00000002" in run.stderr


def test_preview_cli_one_line_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    for argv, needle in (
        (["--range", "soon"], "not a duration"),
        (["--dashboards", str(tmp_path / "none")], "no dashboard JSON"),
        (
            ["--prometheus", "http://127.0.0.1:9", "--dashboards", str(REPO / "grafana")],
            "cannot reach Prometheus",
        ),
    ):
        run = subprocess.run(
            [sys.executable, "-m", "gpu_health.mixin.dashpreview", "--out", str(tmp_path), *argv],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert run.returncode != 0
        assert needle in run.stderr and len(run.stderr.strip().splitlines()) == 1, run.stderr


def _panel(transformations: list[dict[str, object]], *targets: list[Series]) -> PanelResult:
    panel = {"fieldConfig": {"defaults": {"unit": "none"}}, "transformations": transformations}
    return PanelResult(
        panel, [TargetResult(chr(65 + i), "x", True, t) for i, t in enumerate(targets)]
    )


def test_tables_follow_the_transformations() -> None:
    a = [
        Series({"uuid": "u1", "node": "n"}, "", [0], [0.5]),
        Series({"uuid": "u2", "node": "n"}, "", [0], [0.9]),
    ]
    b = [Series({"uuid": "u1", "node": "n"}, "", [0], [3.0])]
    organize = {
        "id": "organize",
        "options": {
            "excludeByName": {"node": True},
            "indexByName": {"uuid": 0},
            "renameByName": {"Value #A": "P", "Value #B": "Q"},
        },
    }
    panel = _panel([{"id": "merge", "options": {}}, organize], a, b)
    panel.panel["options"] = {"sortBy": [{"displayName": "P", "desc": True}]}
    columns, rows = preview_cells.table_rows(panel)
    assert columns == ["uuid", "P", "Q"]
    assert rows == [["u2", "0.9", ""], ["u1", "0.5", "3"]]
    inputs = [
        Series({"uuid": "u1", "input": "age"}, "", [0], [730.0]),
        Series({"uuid": "u1", "input": "health"}, "", [0], [87.0]),
    ]
    matrix = {"id": "groupingToMatrix", "options": {"rowField": "uuid", "columnField": "input"}}
    assert preview_cells.table_rows(_panel([matrix], inputs)) == (
        ["uuid\\input", "age", "health"],
        [["u1", "730", "87"]],
    )
