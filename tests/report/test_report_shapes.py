"""Issue #19: ``gpu-health report`` survives a range query answered in the instant shape."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from gpu_health import cli as umbrella


@pytest.fixture
def odd_prometheus() -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if "/api/v1/query_range" in self.path:  # answered like an instant query
                data = {"resultType": "vector", "result": [{"metric": {}, "value": [1, "0.5"]}]}
            elif "/api/v1/query" in self.path:
                # One GPU in every count (so --schema ours has GPUs), no labels anywhere.
                data = {"resultType": "vector", "result": [{"metric": {}, "value": [1, "1"]}]}
            else:
                data = {"alerts": []} if "alerts" in self.path else {}
            body = json.dumps({"status": "success", "data": data}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_POST = do_GET

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_instant_shaped_range_answer_is_no_trend_not_a_crash(
    odd_prometheus: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = umbrella.main(["report", "--prometheus", odd_prometheus, "--schema", "ours"])
    _out, err = capsys.readouterr()
    assert code == 0, err
    assert "KeyError" not in err and "Traceback" not in err


def test_label_values_cannot_drive_the_terminal_or_swell_the_report() -> None:
    """Node names and models come from outside: an OSC sequence would set the operator's window
    title, CSI 2J clear the screen, a CR overwrite a line, and a 100 KB name made an 8 MB
    terminal report. Every cell is one bounded line and no control character but the line
    break is printed."""
    from gpu_health.report import text
    from gpu_health.report.model import FleetReport, RiskRow, StateRow, XidRow

    evil = "node\x1b]0;pwned\x07\x1b[2J\rX" + "n" * 100_000
    report = FleetReport("http://prometheus:9090", 1_790_000_000.0, "7d", "ours")
    report.gpu_count = 1
    report.states = {"failed": 1}
    report.unhealthy = [StateRow(evil, "0", "GPU-a", "failed", (evil,), 0.0)]
    report.risks = [RiskRow("GPU-a", evil, evil, "0", 0.5, 0.9)]
    report.xids = [XidRow(evil, "GPU-a", "79", 1.0)]
    report.notes = [evil]
    out = text.render(report)
    assert not set(out) & ({chr(c) for c in range(32)} - {"\n"} | {"\x7f"})
    assert len(out) < 20_000  # 103,697 characters before the cut
    assert max(len(line) for line in out.splitlines() if "GPU-a" in line) < 1_000
