"""``gpu-health demo`` end to end: the real stack comes up, an injected fault pages, and every
process it started is gone after SIGTERM and after ``--duration``; a missing binary is one line."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from gpu_health import stack
from tests.demo.small_demo import GPU_HEALTH, small_demo_argv


def _demo(workdir: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*small_demo_argv(workdir), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _get(url: str) -> Any:
    return json.loads(stack.http_get(url, timeout=5.0))


def _poll(what: str, check: Any, timeout: float, demo: subprocess.Popen[str]) -> Any:
    """Re-run ``check()`` until it returns something truthy; fail if the demo exits first."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        assert demo.poll() is None, f"demo exited early while waiting for {what}"
        try:
            last = check()
        except OSError as exc:  # not listening yet
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(1.0)
    pytest.fail(f"{what} not seen in {timeout:.0f}s (last: {last})")


def _pids(workdir: Path) -> list[int]:
    lines = (workdir / "pids").read_text().splitlines()
    return [int(line.split()[1]) for line in lines if line.strip()]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as handle:  # a zombie is not running
        return handle.read().split(") ")[-1][:1] != "Z"


@pytest.mark.slow
@pytest.mark.integration
def test_demo_stack_pages_on_a_fault_and_stops_everything(tmp_path: Path) -> None:
    workdir = tmp_path / "demo"
    demo = _demo(workdir, "--duration", "170", "--fault", "gpu=1,fault=xid79,after=5s")
    try:
        urls = _poll(
            "urls.json",
            lambda: (
                (workdir / "urls.json").is_file()
                and json.loads((workdir / "urls.json").read_text())
            ),
            90,
            demo,
        )
        prom = urls["prometheus"]
        # --any-ports: no usual port, which another demo test on another worker may hold
        used = {urlsplit(u).port for u in urls.values() if isinstance(u, str)}
        assert len(used) == 5 and not used & {9090, 9093, 9840, 9836, 9099}, urls

        def targets() -> dict[str, str]:
            active = _get(f"{prom}/api/v1/targets?state=active")["data"]["activeTargets"]
            health = {t["labels"]["job"]: t["health"] for t in active}
            wanted = ("gpu-health-exporter", "gpu-health-scorer")
            return health if all(health.get(job) == "up" for job in wanted) else {}

        _poll("exporter and scorer targets up", targets, 60, demo)
        managers = _get(f"{prom}/api/v1/alertmanagers")["data"]["activeAlertmanagers"]
        assert [m["url"] for m in managers] == [f"{urls['alertmanager']}/api/v2/alerts"]
        groups = _get(f"{prom}/api/v1/rules")["data"]["groups"]
        rule_names = {r["name"] for g in groups for r in g["rules"]}
        assert {"GPUFallenOffBus", "GPUFailurePredicted"} <= rule_names
        assert len(rule_names) > 20
        # The backfilled history is there: the demo's fleet has samples from two days ago.
        assert stack.query(prom, "count(gpu_up)", at=time.time() - 86400)
        # ... and history and live samples of a GPU are one series (same job and instance).
        instances = stack.query(prom, "count by (job, instance) (count_over_time(gpu_up[3d]))")
        assert [i["metric"] for i in instances] == [
            {"job": "gpu-health-exporter", "instance": "demo-exporter:9840"}
        ]
        assert not stack.query(prom, "count by (uuid) (count_over_time(gpu_up[3d])) > 1")
        # The scorer read that history and published its ranking, which Prometheus scraped.
        probabilities = _poll(
            "scorer metrics",
            lambda: stack.query(prom, 'gpu_failure_probability{job="gpu-health-scorer"}'),
            90,
            demo,
        )
        assert {p["metric"]["horizon"] for p in probabilities} == {"7d", "30d", "90d"}
        assert stack.query(prom, 'gpu_recommended_action{job="gpu-health-scorer"} == 1')
        # The shipped inventory reached the scorer: its two nodes sit in the first two of its
        # three datacenters, and the ages come from it.
        datacenters = stack.query(prom, "count by (datacenter) (gpu_asset_info)")
        assert {d["metric"]["datacenter"] for d in datacenters} == {"fra1", "ams2"}
        from gpu_health.demo.assets import INVENTORY
        from gpu_health.scorer.inventory import load_inventory

        inventory = load_inventory(INVENTORY)
        ages = stack.query(prom, "gpu_econ_age_seconds")
        assert ages, "the scorer publishes no gpu_econ_age_seconds"
        for sample in ages:
            record = inventory.lookup("", node=sample["metric"]["node"])
            assert record is not None and record.purchase_date is not None
            age_days = (time.time() - record.purchase_date) / 86400
            assert float(sample["value"][1]) / 86400 == pytest.approx(age_days, abs=1.0)

        def paged() -> list[dict[str, Any]]:
            received = _get(urls["notification sink"])
            return [
                n
                for n in received
                if n["service"] == "pagerduty"
                and "GPUFallenOffBus" in n["payload"]["payload"]["summary"]
            ]

        pages = _poll("a PagerDuty page for the injected XID 79", paged, 150, demo)
        assert pages[0]["errors"] == []
        assert pages[0]["payload"]["event_action"] == "trigger"
        assert "GPU 1 " in pages[0]["payload"]["payload"]["summary"]
        # Its link points at the Alertmanager the demo runs, not at http://<hostname>:9093.
        assert pages[0]["payload"]["client_url"].startswith(urls["alertmanager"] + "/")
        uuid = re.search(r"GPU-[0-9a-f-]+", pages[0]["payload"]["payload"]["summary"])
        assert uuid is not None
        pids = _pids(workdir)
        assert len(pids) == 4 and all(_alive(pid) for pid in pids)
        demo.send_signal(signal.SIGTERM)
        out, err = demo.communicate(timeout=60)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.communicate()
    assert demo.returncode == 0, err
    assert "received SIGTERM" in err
    assert "backfill 100.0%" in err and "\r" not in err  # piped: plain progress lines
    assert "notification: pagerduty trigger [critical] GPUFallenOffBus" in out
    # Piped output gets plain summary blocks (no terminal escape codes).
    assert "Fleet health (" in out and "Riskiest GPUs" in out and "\x1b[" not in out
    assert not [pid for pid in pids if _alive(pid)]
    # A clean stop leaves no pids or URLs naming processes that are gone.
    assert "stopped; all 4 processes ended" in err
    assert not (workdir / "pids").exists() and not (workdir / "urls.json").exists()
    # Alertmanager logged the page (its notification log is saved on exit) ...
    nflog = workdir / "alertmanager-data" / "nflog"
    assert uuid.group().encode() in nflog.read_bytes()

    # Second run in the same work dir: the history is reused, and --duration stops it.
    again = _demo(workdir, "--duration", "3")
    out, err = again.communicate(timeout=120)
    assert again.returncode == 0, err
    assert "reusing the cached history" in err
    before = err.split("reusing the cached history")[0].splitlines()
    assert not [line for line in before if line.startswith("backfill ")]  # no progress lines
    assert "--duration 3s elapsed" in err
    assert "gpu-health demo is up" in out
    # The demo checks its own four processes gone before it says so (else it warns, exits 1).
    assert "stopped; all 4 processes ended" in err
    assert not (workdir / "pids").exists() and not (workdir / "urls.json").exists()
    # ... and a new run starts it on an empty log: the same fault on the same GPU pages again
    # instead of counting as already sent (and held for repeat_interval, 4 h).
    assert not nflog.exists() or uuid.group().encode() not in nflog.read_bytes()


def _path_with(tmp_path: Path, *programs: str) -> str:
    """A PATH holding only links to the named programs (those that exist here)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in programs:
        target = stack.find_binary(name)
        (bin_dir / name).symlink_to(target)
    return str(bin_dir)


def test_demo_without_prometheus_says_how_to_install_it(tmp_path: Path) -> None:
    env = dict(os.environ, PATH=_path_with(tmp_path, "prometheus-alertmanager"))
    workdir = tmp_path / "demo"
    result = subprocess.run(
        [str(GPU_HEALTH), "demo", "--workdir", str(workdir)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0] == (
        "error: prometheus, promtool not installed; "
        "install with: sudo apt-get install -y prometheus"
    )
    assert not workdir.exists()


def test_demo_without_alertmanager_names_its_package(tmp_path: Path) -> None:
    env = dict(os.environ, PATH=_path_with(tmp_path, "prometheus", "promtool"))
    result = subprocess.run(
        [str(GPU_HEALTH), "demo", "--workdir", str(tmp_path / "demo")],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "error: prometheus-alertmanager not installed; "
        "install with: sudo apt-get install -y prometheus-alertmanager"
    ]


@pytest.mark.parametrize(
    ("args", "message", "code"),
    [
        (["--fault", "gpu=99,fault=xid79"], "the fleet has slots 0-15", 1),
        (["--fault", "gpu=1,fault=nonsense"], "--fault 'gpu=1,fault=nonsense'", 1),
        (["--resolution", "fast"], "--resolution", 1),
        # refused by the parser (exit 2), with the ranges the demo's exporter takes
        (["--speed", "0"], "argument --speed: '0' is out of range", 2),
        (["--hazard-scale", "0"], "argument --hazard-scale: '0' is out of range", 2),
        (["--hazard-scale", "nan"], "argument --hazard-scale", 2),
        (["--gpus", "5000"], "argument --gpus: '5000' is out of range (allowed: 1 to 4096)", 2),
        (["--days", "0"], "argument --days", 2),
        (["--duration", "inf"], "argument --duration", 2),
        (["--refresh", "nan"], "argument --refresh", 2),
        (["--workdir", ""], "argument --workdir: must not be empty", 2),
        (["--workdir", "/dev/null"], "--workdir /dev/null: cannot create it: File exists", 1),
        (["--workdir", "/proc/gpu-health-demo"], "cannot create it", 1),
    ],
)
def test_demo_rejects_bad_options_in_one_line(
    tmp_path: Path, args: list[str], message: str, code: int
) -> None:
    result = subprocess.run(
        [str(GPU_HEALTH), "demo", *("--gpus", "16", "--workdir", str(tmp_path / "d")), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == code, result.stderr
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert message in result.stderr
    assert not (tmp_path / "d").exists()
