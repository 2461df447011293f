"""Faults survived with real processes: Alertmanager down while alerts fire, Prometheus and the
exporter restarted under a running scorer.

Everything on 127.0.0.1 with the real Debian binaries and our own commands; only Slack and
PagerDuty are played by a local HTTP server. Timings are shortened by configuration
(Prometheus' alert resend delay, Alertmanager's group_wait), not by patching code.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from gpu_health import stack

REPO = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slow, pytest.mark.integration]


class Receiver:
    """Plays Slack and PagerDuty: records every POST body by path."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with contextlib.suppress(ValueError):
                    outer.posts.append((self.path, json.loads(body)))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def wait(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, RuntimeError, KeyError, IndexError, ValueError):
            result = predicate()
            if result:
                return result
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def our_alertmanager_config(tmp: Path, receiver: Receiver) -> Path:
    """alertmanager/alertmanager.yml with its secrets pointing at the fake Slack/PagerDuty and
    the waits shortened; routes, receivers and templates as shipped."""
    config = yaml.safe_load((REPO / "alertmanager" / "alertmanager.yml").read_text())
    shutil.copytree(REPO / "alertmanager" / "templates", tmp / "templates")
    (tmp / "slack_url").write_text(f"{receiver.url}/slack\n")
    (tmp / "pd_key").write_text("test-routing-key\n")
    config.setdefault("global", {})["pagerduty_url"] = f"{receiver.url}/pagerduty"

    def shorten(route: dict[str, Any]) -> None:
        for key in ("group_wait", "group_interval"):
            if key in route:
                route[key] = "1s"
        for child in route.get("routes", []):
            shorten(child)

    config["route"]["group_wait"] = "1s"
    config["route"]["group_interval"] = "1s"
    shorten(config["route"])
    for r in config["receivers"]:
        for slack in r.get("slack_configs", []):
            slack["api_url_file"] = str(tmp / "slack_url")
        for pd in r.get("pagerduty_configs", []):
            pd["routing_key_file"] = str(tmp / "pd_key")
    path = tmp / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def _notification_errors(url: str) -> float:
    """Prometheus' own count of failed sends to Alertmanager (it does not scrape itself here)."""
    body = stack.http_get(f"{url}/metrics").decode()
    return sum(
        s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
        if s.name == "prometheus_notifications_errors_total"
    )


def test_alerts_fired_while_alertmanager_is_down_are_delivered_when_it_is_back(
    tmp_path: Path,
) -> None:
    receiver = Receiver()
    am_port = stack.free_port()
    rules = tmp_path / "rules.yml"
    rules.write_text(
        yaml.safe_dump(
            {
                "groups": [
                    {
                        "name": "t",
                        "rules": [
                            {
                                "alert": "GPUThermalSlowdown",
                                "expr": "vector(1)",
                                "labels": {
                                    "severity": "warning",
                                    "node": "node-a",
                                    "uuid": "GPU-1",
                                },
                                "annotations": {"summary": "test", "description": "test"},
                            }
                        ],
                    }
                ]
            }
        )
    )
    with contextlib.ExitStack() as es:
        es.callback(receiver.close)
        (tmp_path / "prom").mkdir()
        config = stack.write_prometheus_config(
            tmp_path / "prom" / "prometheus.yml",
            rule_files=[rules],
            alertmanagers=[f"127.0.0.1:{am_port}"],
        )
        prom = es.enter_context(
            stack.prometheus(
                tmp_path / "prom", config, extra_args=["--rules.alert.resend-delay=1s"]
            )
        )
        wait(
            lambda: stack.query(prom.url, 'ALERTS{alertstate="firing"}'),
            30,
            "the alert to fire",
        )
        wait(
            lambda: _notification_errors(prom.url) > 0,
            30,
            "Prometheus to fail sending to the absent Alertmanager",
        )
        assert receiver.posts == []
        (tmp_path / "am").mkdir()
        es.enter_context(
            stack.alertmanager(
                tmp_path / "am", our_alertmanager_config(tmp_path / "am", receiver), port=am_port
            )
        )
        posts = wait(
            lambda: [p for path, p in receiver.posts if path == "/slack"], 60, "the Slack post"
        )
        assert "GPUThermalSlowdown" in json.dumps(posts[0])


# -- Prometheus and exporter restarts under a running scorer ------------------------------------


def _console(name: str) -> list[str]:
    exe = shutil.which(name, path=str(Path(sys.executable).parent))
    return [exe] if exe else pytest.skip(f"{name} not installed")  # type: ignore[list-item]


def _metrics(port: int) -> dict[str, float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("GET", "/metrics")
    body = conn.getresponse().read().decode()
    conn.close()
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(body):
        for s in family.samples:
            key = s.name if not s.labels else f"{s.name}{sorted(s.labels.items())}"
            out[key] = s.value
    return out


@contextlib.contextmanager
def _process(argv: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("ab") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield proc
    finally:
        stack.stop_process(proc)


def test_scorer_survives_prometheus_and_exporter_restarts(tmp_path: Path) -> None:
    pytest.importorskip("xgboost")
    try:
        import gpu_health.sim.live  # noqa: F401
    except ImportError:
        pytest.skip("simulator not installed")
    exporter_port, prom_port, scorer_port = (stack.free_port() for _ in range(3))
    exporter_argv = [
        *_console("gpu-health-exporter"), "--backend", "sim", "--sim-gpus", "4",
        "--web.listen-address", f"127.0.0.1:{exporter_port}", "--log.level", "warning",
    ]  # fmt: skip
    (tmp_path / "prom").mkdir()
    config = stack.write_prometheus_config(
        tmp_path / "prom" / "prometheus.yml",
        scrape_targets={"gpu-health-exporter": [f"127.0.0.1:{exporter_port}"]},
    )
    data = tmp_path / "prom" / "data"
    scorer_argv = [
        *_console("gpu-health-scorer"), "serve", "--prometheus.url", f"http://127.0.0.1:{prom_port}",
        "--prometheus.timeout", "2s", "--prometheus.retries", "1", "--interval", "2s",
        "--web.listen-address", f"127.0.0.1:{scorer_port}", "--no-econ", "--log.level", "warning",
    ]  # fmt: skip
    with contextlib.ExitStack() as es:
        exporter = es.enter_context(_process(exporter_argv, tmp_path / "exporter.log"))
        prom_ctx = stack.prometheus(tmp_path / "prom", config, data_dir=data, port=prom_port)
        prom = prom_ctx.__enter__()
        try:
            es.enter_context(_process(scorer_argv, tmp_path / "scorer.log"))
            wait(
                lambda: _metrics(scorer_port).get("gpu_scorer_gpus_scored") == 4,
                90,
                "4 GPUs scored",
            )
            before = _metrics(scorer_port)
            scored_series = {k for k in before if k.startswith("gpu_failure_probability")}
            assert scored_series
        finally:
            prom_ctx.__exit__(None, None, None)  # Prometheus goes away mid-loop

        # While Prometheus is down: runs fail, the last results keep being served.
        wait(
            lambda: (
                _metrics(scorer_port)["gpu_scorer_runs_failed_total"]
                > before.get("gpu_scorer_runs_failed_total", 0)
            ),
            30,
            "a failed scoring run",
        )
        during = _metrics(scorer_port)
        assert scored_series <= set(during), "results vanished while Prometheus was down"
        assert during["gpu_scorer_results_age_seconds"] >= before["gpu_scorer_results_age_seconds"]

        # Prometheus back (same port, same data): scoring resumes by itself.
        es.enter_context(stack.prometheus(tmp_path / "prom", config, data_dir=data, port=prom_port))
        last = during["gpu_scorer_last_run_timestamp_seconds"]
        wait(
            lambda: _metrics(scorer_port)["gpu_scorer_last_run_timestamp_seconds"] > last,
            60,
            "a successful run after Prometheus came back",
        )

        # The exporter restarts on its port at once (no 'address in use') and is scraped again:
        # Prometheus sees the new process (its start time) with up = 1.
        started = "process_start_time_seconds"
        old_start = _metrics(exporter_port)[started]
        stack.stop_process(exporter)
        es.enter_context(_process(exporter_argv, tmp_path / "exporter2.log"))
        wait(
            lambda: (
                float(
                    stack.query(
                        prom.url, f'{started}{{job="gpu-health-exporter"}} and on() up == 1'
                    )[0]["value"][1]
                )
                > old_start
            ),
            30,
            "the restarted exporter to be scraped",
        )
        assert "address" not in (tmp_path / "exporter2.log").read_text().lower()
        assert scored_series <= set(_metrics(scorer_port))
