"""``gpu-health generate``: committed output is current, --check names stale files, and a user
can import the mixin with their own ``_config``."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from gpu_health.errors import UserError
from gpu_health.mixin import render as mixin
from gpu_health.stack import find_binary

REPO = Path(__file__).resolve().parents[2]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gpu_health.cli", "generate", *args],
        capture_output=True,
        text=True,
        check=False,
    )


def test_committed_output_is_up_to_date() -> None:
    result = _cli("--check")
    assert result.returncode == 0, result.stderr
    assert "up to date" in result.stdout


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_check_names_changed_missing_and_orphaned_files(tmp_path: Path) -> None:
    # Each run renders the whole mixin (about 4 s of CPU): the tree is compared in Python where
    # the CLI's answer is not what is tested.
    assert _cli("--output-dir", str(tmp_path)).returncode == 0
    generated = _tree(tmp_path)

    alerts = tmp_path / mixin.ALERTS_FILE
    alerts.write_text(alerts.read_text().replace("for: 1m", "for: 2m", 1))
    (tmp_path / mixin.RULES_FILE).unlink()
    (tmp_path / "grafana" / "orphan.json").write_text("{}")
    # a backfill pass the rules no longer need (they once had more levels)
    extra_pass = f"{mixin.BACKFILL_DIR}/gpu-health-rules.pass-9.yaml"
    (tmp_path / extra_pass).write_text("groups: []\n")

    result = _cli("--check", "--output-dir", str(tmp_path))
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1, result.stderr
    # these four and no other: what generate had just written is current
    named = result.stderr.removeprefix("generated files are stale: ").split(" (run ")[0]
    assert sorted(named.split(", ")) == sorted(
        [mixin.ALERTS_FILE, mixin.RULES_FILE, "grafana/orphan.json", extra_pass]
    ), result.stderr

    # generating repairs it, removing the orphans
    fixed = _cli("--output-dir", str(tmp_path))
    assert "removed grafana/orphan.json" in fixed.stdout
    assert f"removed {extra_pass}" in fixed.stdout
    assert _tree(tmp_path) == generated


def test_missing_jsonnet_dir_is_a_one_line_error(tmp_path: Path) -> None:
    result = _cli("--check", "--jsonnet-dir", str(tmp_path))
    assert result.returncode == 1
    assert result.stderr.startswith("error: ") and "mixin.libsonnet" in result.stderr
    assert "Traceback" not in result.stderr


def test_help_explains_the_command() -> None:
    result = _cli("--help")
    assert result.returncode == 0
    assert "--check" in result.stdout and "stale" in result.stdout


def test_config_overrides_reach_every_rule() -> None:
    files = mixin.render(
        overrides={
            "gpuExporterSelector": 'job="gpu"',
            "scorerEnabled": False,
            "criticalSeverity": "warning",
            "runbookURLPattern": "https://wiki.example.com/gpu/%s",
            "healthDegradedThreshold": 42,
        }
    )
    alerts = yaml.safe_load(files[mixin.ALERTS_FILE])
    rules = yaml.safe_load(files[mixin.RULES_FILE])
    all_alerts = [r for g in alerts["groups"] for r in g["rules"]]
    all_records = [r for g in rules["groups"] for r in g["rules"]]
    assert not any("scorer" in g["name"] for g in alerts["groups"] + rules["groups"])
    # every page demoted; GPUMassFailureMember keeps infoSeverity (never notified)
    assert {r["labels"]["severity"] for r in all_alerts} == {"warning", "info"}
    assert [r["alert"] for r in all_alerts if r["labels"]["severity"] == "info"] == [
        "GPUMassFailureMember"
    ]
    for rule in all_alerts:
        assert rule["annotations"]["runbook_url"] == f"https://wiki.example.com/gpu/{rule['alert']}"
    exporter_exprs = [r["expr"] for r in all_alerts + all_records if "gpu-health" in r["expr"]]
    assert exporter_exprs == []
    degraded = next(r for r in all_alerts if r["alert"] == "GPUHealthDegraded")
    assert "< 42" in degraded["expr"]


def test_xid_code_in_two_classes_is_rejected() -> None:
    # (the defaults evaluate: test_committed_output_is_up_to_date)
    with pytest.raises(UserError, match="two xidClasses"):
        mixin.render(
            overrides={
                "xidClasses": [
                    {
                        "alert": "GPUXidA",
                        "codes": [48],
                        "severity": "critical",
                        "for": "0m",
                        "action": "a",
                    },
                    {
                        "alert": "GPUXidB",
                        "codes": [48],
                        "severity": "warning",
                        "for": "0m",
                        "action": "b",
                    },
                ]
            }
        )


def test_user_jsonnet_can_import_the_mixin_with_overrides(tmp_path: Path) -> None:
    # The way a user consumes the mixin: their own jsonnet, the jsonnet CLI, no Python.
    jsonnet = find_binary("jsonnet")
    vendor = tmp_path / "vendor"
    shutil.copytree(REPO / "jsonnet", vendor / "gpu-health-mixin")
    user = tmp_path / "fleet.jsonnet"
    user.write_text(
        "local gpu = (import 'gpu-health-mixin/mixin.libsonnet') + {\n"
        "  _config+:: {\n"
        "    gpuExporterSelector: 'job=\"dc1-gpu\"',\n"
        "    pcieReplaysPerMinuteThreshold: 16,\n"
        "  },\n"
        "};\n"
        "{ alerts: gpu.prometheusAlerts, rules: gpu.prometheusRules }\n"
    )
    result = subprocess.run(
        [jsonnet, "-J", str(vendor), str(user)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    alerts = {r["alert"]: r for g in doc["alerts"]["groups"] for r in g["rules"]}
    assert 'job="dc1-gpu"' in alerts["GPUFallenOffBus"]["expr"]
    assert "> 16" in alerts["GPUPcieReplayStorm"]["expr"]
    assert "budget 16" in alerts["GPUPcieReplayStorm"]["annotations"]["description"]


def test_mixin_sources_are_jsonnetfmt_clean() -> None:
    # The node-mixin formatting rules; dashboards/ is checked by its own tests.
    jsonnetfmt = find_binary("jsonnetfmt")
    sources = [REPO / "jsonnet" / "mixin.libsonnet", REPO / "jsonnet" / "config.libsonnet"]
    sources += sorted((REPO / "jsonnet" / "alerts").glob("*.libsonnet"))
    sources += sorted((REPO / "jsonnet" / "rules").glob("*.libsonnet"))
    style = ["-n", "2", "--max-blank-lines", "2", "--string-style", "s", "--comment-style", "s"]
    for source in sources:
        result = subprocess.run(
            [jsonnetfmt, *style, "--test", str(source)], capture_output=True, check=False
        )
        assert result.returncode == 0, f"{source} is not jsonnetfmt-formatted"
