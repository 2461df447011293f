"""``report``, ``plan`` and ``econ --prometheus`` reach a Prometheus behind TLS and basic auth.

Until this release only the scorer had ``--prometheus.ca-file`` and the credential files: the
base install's commands read a secured Prometheus not at all (a private CA failed
verification, and a URL holding the password was their only way to send one, which they did
not send either). Here a real Prometheus serves its API over TLS with a self-signed certificate
and a bcrypt-hashed user (its own ``--web.config.file``); each command is refused in one line
without the options, and answers with them.
"""

from __future__ import annotations

import base64
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gpu_health import cli as umbrella
from gpu_health import http_deadline, stack
from gpu_health.prometheus_access import Access
from tests.base.command_runs import is_one_line_error, run_main

bcrypt = pytest.importorskip("bcrypt")

USER, PASSWORD = "gpu-health", "s3cret-pw"


def _certificate(out: Path) -> tuple[Path, Path]:
    key, cert = out / "key.pem", out / "cert.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"),
            *("-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    return key, cert


@pytest.fixture
def secured(tmp_path: Path, backfill: Callable[[str], Path]) -> Iterator[tuple[str, Path, int]]:
    """(https URL, CA file, a time with data) of a Prometheus that asks for TLS and a password."""
    now = int(time.time()) // 60 * 60
    labels = 'uuid="GPU-a",node="n1",gpu="0",model="NVIDIA H100 80GB HBM3"'
    lines = []
    for name, value in (
        ("gpu_up", "1"),
        ("gpu_power_watts", "300"),
        ("gpu_temperature_celsius", "50"),
    ):
        lines.append(f"# TYPE {name} gauge")
        lines += [f"{name}{{{labels}}} {value} {t}" for t in range(now - 7200, now, 60)]
    lines.append("# TYPE gpu_failure_probability gauge")
    for horizon in ("7d", "30d", "90d"):
        lines += [
            f'gpu_failure_probability{{{labels},horizon="{horizon}"}} 0.01 {t}'
            for t in range(now - 7200, now, 60)
        ]
    data = backfill("\n".join([*lines, "# EOF"]) + "\n")
    key, cert = _certificate(tmp_path)
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    web = tmp_path / "web.yml"
    web.write_text(
        f"tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\n"
        f"basic_auth_users:\n  {USER}: {hashed}\n"
    )
    config = stack.write_prometheus_config(tmp_path / "prometheus.yml")
    port = stack.free_port()
    process = subprocess.Popen(
        [
            stack.find_binary("prometheus"),
            f"--config.file={config}",
            f"--storage.tsdb.path={data}",
            f"--web.listen-address=127.0.0.1:{port}",
            f"--web.config.file={web}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own group: stack.stop_process signals the group
    )
    url = f"https://127.0.0.1:{port}"
    basic = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    trusted = Access({"Authorization": f"Basic {basic}"}, ssl.create_default_context(cafile=cert))
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                http_deadline.fetch(
                    f"{url}/-/ready", 2.0, headers=trusted.headers, context=trusted.context
                )
                break
            except OSError:
                assert time.monotonic() < deadline and process.poll() is None, "not ready"
                time.sleep(0.2)
        yield url, cert, now - 60
    finally:
        stack.stop_process(process)


@pytest.mark.parametrize("command", ["report", "plan", "econ"])
def test_tls_and_basic_auth_reach_a_secured_prometheus(
    command: str,
    secured: tuple[str, Path, int],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url, cert, at = secured
    password_file = tmp_path / "password"
    password_file.write_text(PASSWORD + "\n")
    argv = [command, "--prometheus", url]
    if command != "econ":
        argv += ["--at", str(at)]

    def run(*extra: str) -> tuple[int, str, str]:
        try:
            code = umbrella.main([*argv, *extra])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        said = capsys.readouterr()
        return code, said.err.removeprefix(f"querying {url} for the fleet ...\n"), said.out

    code, err, _ = run()
    assert is_one_line_error(code, err) and "CERTIFICATE_VERIFY_FAILED" in err, err
    code, err, _ = run("--prometheus.ca-file", str(cert))
    assert is_one_line_error(code, err) and "HTTP 401" in err and "credentials" in err, err
    code, err, _ = run("--prometheus.insecure-skip-verify")
    assert is_one_line_error(code, err) and "HTTP 401" in err, err
    wrong = tmp_path / "wrong"
    wrong.write_text("nope")
    credentials = [
        "--prometheus.basic-auth-username",
        USER,
        "--prometheus.basic-auth-password-file",
    ]
    code, err, _ = run("--prometheus.ca-file", str(cert), *credentials, str(wrong))
    assert is_one_line_error(code, err) and "HTTP 401" in err and "nope" not in err, err
    code, err, out = run("--prometheus.ca-file", str(cert), *credentials, str(password_file))
    assert PASSWORD not in err + out
    if command == "econ":  # reached: the scorer's econ series are what this Prometheus lacks
        assert is_one_line_error(code, err) and "no gpu_econ_age_seconds series" in err, err
    else:
        assert code == 0, err
        assert "GPU-a" in out or "H100" in out, out


LEAN_PROBE = """
import argparse, sys
from gpu_health import stack
from gpu_health.prometheus_access import access_from_args, add_access_arguments
from gpu_health.report.gather import Gatherer
parser = argparse.ArgumentParser()
add_access_arguments(parser)
access_from_args(parser.parse_args(["--prometheus.insecure-skip-verify"]))
print(sorted(m for m in sys.modules if m.split(".")[0] in ("requests", "urllib3", "tenacity")))
"""


def test_the_base_installs_client_loads_no_scorer_dependency() -> None:
    """The access options came from the scorer's requests client; the base install's commands
    read them with urllib and must not pull requests (the scorer's extra) in."""
    result = subprocess.run(
        [sys.executable, "-c", LEAN_PROBE], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]", result.stdout


def test_the_scorer_names_the_missing_credentials_too(
    secured: tuple[str, Path, int], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Both clients explain a 401 alike (``prometheus_access.non_api_answer``): the scorer said
    "not a Prometheus answer; the answer is not JSON (it begins 'Unauthorized')"."""
    from gpu_health.scorer import cli as scorer_cli

    url, cert, at = secured
    password_file = tmp_path / "password"
    password_file.write_text(PASSWORD)
    argv = ["score", "--at", str(at), "--prometheus.url", url, "--prometheus.ca-file", str(cert)]
    code, err = run_main(scorer_cli.main, argv, capsys)
    assert code == 1 and "HTTP 401" in err and "give the server's credentials" in err, err
    credentials = ["--prometheus.basic-auth-username", USER]
    credentials += ["--prometheus.basic-auth-password-file", str(password_file)]
    code, err = run_main(scorer_cli.main, [*argv, *credentials], capsys)
    assert code == 0 and "HTTP 401" not in err, err


def test_the_dashboard_preview_reaches_a_secured_prometheus(
    secured: tuple[str, Path, int], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The development tool that draws the dashboards had no TLS or credential options: it
    could not preview a secured Prometheus at all. It takes the report's now."""
    pytest.importorskip("matplotlib")
    from gpu_health.mixin import dashpreview

    url, cert, at = secured
    password_file = tmp_path / "password"
    password_file.write_text(PASSWORD)
    dashboard = Path(__file__).parents[2] / "grafana" / "gpu-fleet-overview.json"
    out = tmp_path / "img"
    argv = ["--prometheus", url, "--dashboards", str(dashboard), "--out", str(out)]
    argv += ["--end", str(at), "--range", "1h", "--scrape-interval", "60s"]
    code, err = run_main(dashpreview.main, argv, capsys)
    assert is_one_line_error(code, err) and "CERTIFICATE_VERIFY_FAILED" in err, err
    argv += ["--prometheus.ca-file", str(cert)]
    code, err = run_main(dashpreview.main, argv, capsys)
    assert is_one_line_error(code, err) and "HTTP 401" in err and "credentials" in err, err
    argv += ["--prometheus.basic-auth-username", USER]
    argv += ["--prometheus.basic-auth-password-file", str(password_file)]
    code, err = run_main(dashpreview.main, argv, capsys)
    assert code == 0, err
    assert (out / "gpu-fleet-overview.png").stat().st_size > 0
    assert PASSWORD not in err
