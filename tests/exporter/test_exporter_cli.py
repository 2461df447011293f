"""``gpu-health-exporter`` as a process: scraped by a real Prometheus, errors, shutdown."""

from __future__ import annotations

import ctypes.util
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from gpu_health import stack
from tests.conftest import PrometheusFactory

FIXTURE = Path(__file__).parent.parent / "fixtures" / "h100" / "nvml_h100.json"
CALLS = json.loads(FIXTURE.read_text())["calls"]
SCRIPT = Path(sys.executable).parent / "gpu-health-exporter"
COMMAND = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "gpu_health.exporter.cli"]
NO_DRIVER = ctypes.util.find_library("nvidia-ml") is None


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*COMMAND, *args], capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture
def exporter_process(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], int]]:
    port = stack.free_port()
    process = subprocess.Popen(
        [
            *COMMAND,
            "--backend",
            "replay",
            "--replay.fixture",
            str(FIXTURE),
            "--replay.gpus",
            "2",
            "--web.listen-address",
            f"127.0.0.1:{port}",
            "--node-name",
            "replay-node",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        stack.wait_until(f"http://127.0.0.1:{port}/healthz", 30, process)  # type: ignore[arg-type]
        yield process, port
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=10)


@pytest.mark.integration
def test_prometheus_scrapes_the_replay_exporter(
    prometheus_factory: PrometheusFactory,
    exporter_process: tuple[subprocess.Popen[str], int],
) -> None:
    _, port = exporter_process
    prom = prometheus_factory(scrape_targets={"gpu": [f"127.0.0.1:{port}"]})
    uuid = CALLS["nvmlDeviceGetUUID"]
    result = stack.wait_for_query(prom.url, f'gpu_power_watts{{uuid="{uuid}"}}')
    assert float(result[0]["value"][1]) == CALLS["nvmlDeviceGetPowerUsage"] / 1000
    assert result[0]["metric"]["node"] == "replay-node"
    assert result[0]["metric"]["model"] == CALLS["nvmlDeviceGetName"]
    (up,) = stack.query(prom.url, 'sum(gpu_up{job="gpu"})')
    assert float(up["value"][1]) == 2
    (temp,) = stack.query(prom.url, f'gpu_temperature_celsius{{uuid="{uuid}",sensor="memory"}}')
    assert float(temp["value"][1]) == CALLS["field_values"]["NVML_FI_DEV_MEMORY_TEMP"]["value"]
    # a counter Prometheus can rate, and no unsupported series
    assert stack.query(prom.url, "gpu_energy_joules_total")
    assert stack.query(prom.url, "gpu_fan_speed_ratio") == []
    (scrape_ok,) = stack.query(prom.url, 'up{job="gpu"}')
    assert scrape_ok["value"][1] == "1"


def test_sigterm_exits_cleanly(exporter_process: tuple[subprocess.Popen[str], int]) -> None:
    process, _port = exporter_process
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=15)
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr and "stopped" in stderr


def test_sigint_exits_cleanly(exporter_process: tuple[subprocess.Popen[str], int]) -> None:
    process, _ = exporter_process
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=15)
    assert process.returncode == 0 and "Traceback" not in stderr


@pytest.mark.skipif(not NO_DRIVER, reason="an NVIDIA driver is installed here")
@pytest.mark.parametrize("backend", ["nvml", "auto"])
def test_nvml_init_failure_is_one_line_and_non_zero(backend: str) -> None:
    result = run("--backend", backend, "--web.listen-address", "127.0.0.1:0")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and "--backend sim" in lines[0]
    assert "NVML" in lines[0]


def test_dcgm_without_bindings_names_what_is_missing() -> None:
    result = run("--backend", "dcgm", "--web.listen-address", "127.0.0.1:0")
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert "pydcgm" in line or "libdcgm" in line


@pytest.mark.parametrize(
    "args",
    [
        ["--backend", "magic"],
        ["--poll-interval", "0"],
        ["--replay.gpus", "-1"],
        ["--web.listen-address", "nonsense", "--backend", "replay"],
    ],
)
def test_bad_input_is_one_line(args: list[str]) -> None:
    result = run(*args)
    assert result.returncode in (1, 2)
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr


def test_help_documents_the_flags() -> None:
    result = run("--help")
    assert result.returncode == 0
    for flag in (
        "--backend",
        "--web.listen-address",
        "--web.config.file",
        "--node-name",
        "--poll-interval",
        "--sim-fault",
        "--replay.trace",
        "--health.policy",
        "--log.level",
        "--kubernetes.pod-resources-socket",
        "--replay.fault",
    ):
        assert flag in result.stdout
    assert ":9840" in result.stdout


def test_node_name_defaults_to_the_environment() -> None:
    env = dict(os.environ, NODE_NAME="from-env")
    result = subprocess.run(
        [*COMMAND, "--help"], capture_output=True, text=True, env=env, check=False, timeout=60
    )
    assert "from-env" in result.stdout


def test_web_config_file_reaches_the_server(tmp_path: Path) -> None:
    bad = tmp_path / "web.yml"
    bad.write_text(
        "tls_server_config:\n  cert_file: /nonexistent.pem\n  key_file: /nonexistent.key\n"
    )
    result = run(
        "--backend", "replay", "--web.listen-address", "127.0.0.1:0", "--web.config.file", str(bad)
    )  # fmt: skip
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert "web.yml" in line or "nonexistent" in line, line


def test_a_gpu_lost_in_a_running_process_reads_up_0_and_healthz_still_200() -> None:
    port = stack.free_port()
    process = subprocess.Popen(
        [*COMMAND, "--backend", "replay", "--replay.gpus", "3", "--replay.fault", "*@1",
         "--replay.fault", "nvmlDeviceGetPowerUsage@2=TIMEOUT",
         "--web.listen-address", f"127.0.0.1:{port}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        stack.wait_until(f"http://127.0.0.1:{port}/healthz", 30, process)  # type: ignore[arg-type]
        text = stack.http_get(f"http://127.0.0.1:{port}/metrics").decode()
        health = stack.http_get(f"http://127.0.0.1:{port}/healthz").decode()
    finally:
        process.terminate()
        process.communicate(timeout=15)
    ups = {
        s.labels["gpu"]: s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == "gpu_up"
    }
    assert ups == {"0": 1.0, "1": 0.0, "2": 1.0}
    assert 'gpu_power_watts{gpu="2"' not in text and 'gpu_power_watts{gpu="0"' in text
    assert 'call="nvmlDeviceGetPowerUsage",error="timeout"' in text
    assert health == "ok: 2/3 GPUs answering\n"


def test_a_bad_replay_fault_is_one_line() -> None:
    result = run("--backend", "replay", "--replay.fault", "x@y=NOPE")
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert "--replay.fault" in line


#: ``n`` and the byte 0xff as Python hands a command line or environment that is not UTF-8 to
#: the program (a lone surrogate): the exporter started, then every /metrics answered 500.
NOT_UTF8 = "n\udcff"


@pytest.mark.parametrize(
    ("args", "env", "code", "fragment"),
    [
        (["--backend", "sim", "--node-name", NOT_UTF8], {}, 2, "--node-name: 'n\\udcff': not"),
        (["--backend", "replay"], {"NODE_NAME": NOT_UTF8}, 1, "NODE_NAME environment variable"),
        (["--backend", "replay"], {"NODE_NAME": "a" * 254}, 1, "254 characters long (at most"),
        (["--backend", "replay", "--node-name", "a" * 254], {}, 2, "254 characters long (at most"),
    ],
    ids=["flag-not-utf8", "env-not-utf8", "env-too-long", "flag-too-long"],
)
def test_a_node_name_that_cannot_be_a_label_is_refused_at_start(
    args: list[str], env: dict[str, str], code: int, fragment: str
) -> None:
    """The node name is on every series: one the exposition cannot encode made every /metrics
    a 500 while /healthz stayed 200 (liveness green, scraping dead)."""
    result = subprocess.run(
        [*COMMAND, *args, "--web.listen-address", "127.0.0.1:0"],
        capture_output=True, text=True, env=dict(os.environ, **env), timeout=30, check=False,
    )  # fmt: skip
    assert result.returncode == code, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert fragment in line, line
    assert ("--node-name" if code == 2 else "cannot be the node label") in line, line


def test_the_help_shows_a_node_name_that_is_not_utf8_escaped() -> None:
    """The help names the default node name; printed raw to a strict UTF-8 terminal, a lone
    surrogate was a traceback instead of the help."""
    env = dict(os.environ, NODE_NAME=NOT_UTF8, PYTHONIOENCODING="utf-8:strict")
    result = subprocess.run(
        [*COMMAND, "--help"], capture_output=True, text=True, env=env, check=False, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "n\\udcff" in " ".join(result.stdout.split())


def test_a_non_ascii_node_name_is_served() -> None:
    """UTF-8 text beyond ASCII is a valid node label: refused only when it is not UTF-8."""
    port = stack.free_port()
    process = subprocess.Popen(
        [*COMMAND, "--backend", "replay", "--web.listen-address", f"127.0.0.1:{port}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=dict(os.environ, NODE_NAME="nœud-ü"),
    )  # fmt: skip
    try:
        stack.wait_until(f"http://127.0.0.1:{port}/healthz", 30, process)  # type: ignore[arg-type]
        text = stack.http_get(f"http://127.0.0.1:{port}/metrics").decode()
    finally:
        process.terminate()
        process.communicate(timeout=15)
    assert 'node="nœud-ü"' in text


def test_a_fixture_label_that_cannot_be_served_is_refused_at_start(tmp_path: Path) -> None:
    """A 100,000-character GPU name in a replay fixture made an 11 MB /metrics."""
    fixture = json.loads(FIXTURE.read_text())
    fixture["calls"]["nvmlDeviceGetName"] = "x" * 100_000
    path = tmp_path / "long-name.json"
    path.write_text(json.dumps(fixture))
    result = run("--backend", "replay", "--replay.fixture", str(path),
                 "--web.listen-address", "127.0.0.1:0", timeout=30)  # fmt: skip
    assert result.returncode == 1, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert str(path) in line and "calls.nvmlDeviceGetName: 100,000 characters long" in line
