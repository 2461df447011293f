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
