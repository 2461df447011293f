"""A local stand-in for PagerDuty and Slack that checks notifications as those services would.

Alertmanager's PagerDuty and Slack receivers are pointed at this server (``url:`` of the
PagerDuty config, the Slack webhook URL in ``api_url_file``), so the end-to-end test and the demo
see exactly what would have been delivered, and a payload PagerDuty or Slack would reject is
answered with their error status instead of silently passing.

Endpoints (127.0.0.1 only):

- ``POST /v2/enqueue`` — PagerDuty Events API v2 (``routing_key``, ``event_action``,
  ``dedup_key``, ``payload.summary|source|severity``); 202 on success, 400 with the errors.
- ``POST /slack/...`` — a Slack incoming webhook (``text`` or ``blocks``/``attachments`` within
  Slack's limits); 200 ``ok`` or 400 ``invalid_payload``.
- ``GET /notifications`` — everything received so far, as JSON.

Run ``python -m gpu_health.demo.notify_sink --port 9099`` to print notifications as they arrive.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TextIO

import yaml

from gpu_health.cli_support import OneLineArgumentParser, run_main
from gpu_health.errors import UserError

PAGERDUTY_PATH = "/v2/enqueue"
SLACK_PREFIX = "/slack"

#: PagerDuty Events API v2 limits (developer.pagerduty.com, "Send an Alert Event").
PD_ACTIONS = ("trigger", "acknowledge", "resolve")
PD_SEVERITIES = ("critical", "error", "warning", "info")
PD_SUMMARY_MAX = 1024
PD_DEDUP_KEY_MAX = 255
#: Slack limits (api.slack.com, chat.postMessage / incoming webhooks): text is truncated past
#: 40,000 characters; at most 100 attachments and 50 blocks per message.
SLACK_TEXT_MAX = 40_000
SLACK_ATTACHMENTS_MAX = 100
SLACK_BLOCKS_MAX = 50
#: Request bodies above this are rejected outright (both services refuse large payloads).
MAX_BODY = 512 * 1024


@dataclass
class Notification:
    """One request as received, with what the real service would have said about it."""

    service: str
    path: str
    payload: Any
    errors: list[str] = field(default_factory=list)
    received_at: float = field(default_factory=time.time)

    @property
    def valid(self) -> bool:
        return not self.errors

    def summary(self) -> str:
        """One line for a terminal."""
        status = "ok" if self.valid else "REJECTED " + "; ".join(self.errors)
        if self.service == "pagerduty" and isinstance(self.payload, dict):
            inner = self.payload.get("payload") or {}
            return (
                f"pagerduty {self.payload.get('event_action')} "
                f"[{inner.get('severity')}] {inner.get('summary')} ({status})"
            )
        if self.service == "slack" and isinstance(self.payload, dict):
            text = self.payload.get("text") or ""
            for attachment in self.payload.get("attachments") or []:
                if isinstance(attachment, dict):
                    text = text or attachment.get("title") or attachment.get("fallback") or ""
            return f"slack {text.splitlines()[0] if text else ''} ({status})"
        return f"{self.service} {self.path} ({status})"


def _str(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def validate_pagerduty(body: Any, expected_routing_key: str | None = None) -> list[str]:
    """The checks PagerDuty's Events API v2 applies to an event; [] when it would accept it."""
    if not isinstance(body, dict):
        return ["body must be a JSON object"]
    errors = []
    key = body.get("routing_key")
    if not _str(key):
        errors.append("routing_key is required")
    elif expected_routing_key is not None and key != expected_routing_key:
        errors.append("routing_key does not match the integration key")
    action = body.get("event_action")
    if action not in PD_ACTIONS:
        errors.append(f"event_action must be one of {', '.join(PD_ACTIONS)}")
    dedup = body.get("dedup_key")
    if dedup is not None and (not isinstance(dedup, str) or len(dedup) > PD_DEDUP_KEY_MAX):
        errors.append(f"dedup_key must be a string of at most {PD_DEDUP_KEY_MAX} characters")
    if action in ("acknowledge", "resolve") and not _str(dedup):
        errors.append(f"dedup_key is required to {action}")
    payload = body.get("payload")
    if action == "trigger" or payload is not None:
        if not isinstance(payload, dict):
            errors.append("payload is required")
        else:
            summary = payload.get("summary")
            if not isinstance(summary, str) or not summary.strip():
                errors.append("payload.summary is required")
            elif len(summary) > PD_SUMMARY_MAX:
                errors.append(f"payload.summary is longer than {PD_SUMMARY_MAX} characters")
            if not _str(payload.get("source")):
                errors.append("payload.source is required")
            if payload.get("severity") not in PD_SEVERITIES:
                errors.append(f"payload.severity must be one of {', '.join(PD_SEVERITIES)}")
            details = payload.get("custom_details")
            if details is not None and not isinstance(details, dict):
                errors.append("payload.custom_details must be an object")
    for link in body.get("links") or []:
        if not isinstance(link, dict) or not _str(link.get("href")):
            errors.append("every link needs an href")
    return errors


def _slack_text_length(body: dict[str, Any]) -> int:
    total = len(body.get("text") or "")
    for attachment in body.get("attachments") or []:
        if isinstance(attachment, dict):
            for key in ("pretext", "title", "text", "fallback"):
                value = attachment.get(key)
                total += len(value) if isinstance(value, str) else 0
    return total


def validate_slack(body: Any) -> list[str]:
    """The checks a Slack incoming webhook applies; [] when it would post the message."""
    if not isinstance(body, dict):
        return ["invalid_payload: body must be a JSON object"]
    errors = []
    text = body.get("text")
    attachments = body.get("attachments")
    blocks = body.get("blocks")
    if not (_str(text) or attachments or blocks):
        errors.append("no_text: one of text, blocks or attachments is required")
    if text is not None and not isinstance(text, str):
        errors.append("invalid_payload: text must be a string")
    if attachments is not None:
        if not isinstance(attachments, list) or len(attachments) > SLACK_ATTACHMENTS_MAX:
            errors.append(f"invalid_attachments: at most {SLACK_ATTACHMENTS_MAX} attachments")
        else:
            for attachment in attachments:
                if not isinstance(attachment, dict) or not any(
                    _str(attachment.get(k)) for k in ("text", "fallback", "title", "pretext")
                ):
                    errors.append("invalid_attachments: an attachment has no text")
    if blocks is not None and (not isinstance(blocks, list) or len(blocks) > SLACK_BLOCKS_MAX):
        errors.append(f"invalid_blocks: at most {SLACK_BLOCKS_MAX} blocks")
    if _slack_text_length(body) > SLACK_TEXT_MAX:
        errors.append(f"msg_too_long: more than {SLACK_TEXT_MAX} characters of text")
    return errors


class NotificationSink:
    """The HTTP server and what it received; use as a context manager or start()/stop()."""

    def __init__(
        self,
        port: int = 0,
        expected_routing_key: str | None = None,
        echo: TextIO | None = None,
    ) -> None:
        self.expected_routing_key = expected_routing_key
        self.echo = echo
        self._notifications: list[Notification] = []
        self._changed = threading.Condition()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler_class())
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pagerduty_url(self) -> str:
        return self.url + PAGERDUTY_PATH

    @property
    def slack_url(self) -> str:
        return self.url + SLACK_PREFIX + "/services/T000/B000/XXXX"

    def notifications(self, service: str | None = None) -> list[Notification]:
        with self._changed:
            return [n for n in self._notifications if service in (None, n.service)]

    def wait_for(
        self, predicate: Callable[[list[Notification]], bool], timeout: float
    ) -> list[Notification]:
        """Block until ``predicate(all notifications)`` holds; raise TimeoutError otherwise."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate(list(self._notifications)):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    received = [n.summary() for n in self._notifications]
                    raise TimeoutError(f"notification not received in {timeout}s: {received}")
                self._changed.wait(remaining)
            return list(self._notifications)

    def _record(self, notification: Notification) -> None:
        with self._changed:
            self._notifications.append(notification)
            self._changed.notify_all()
        if self.echo is not None:
            print(notification.summary(), file=self.echo, flush=True)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the sink reports notifications, not requests."""

            def _reply(self, status: int, body: Any, content_type: str) -> None:
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if self.path.rstrip("/") == "/notifications":
                    items = [asdict(n) for n in sink.notifications()]
                    self._reply(200, items, "application/json")
                else:
                    self._reply(404, {"error": "not found"}, "application/json")

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_BODY:
                    self._reply(413, {"error": "request entity too large"}, "application/json")
                    return
                raw = self.rfile.read(length)
                try:
                    body: Any = json.loads(raw)
                except ValueError:
                    body = None
                if self.path == PAGERDUTY_PATH:
                    errors = (
                        ["body is not JSON"]
                        if body is None
                        else validate_pagerduty(body, sink.expected_routing_key)
                    )
                    sink._record(Notification("pagerduty", self.path, body, errors))
                    if errors:
                        reply = {"status": "invalid event", "message": "Event object is invalid"}
                        self._reply(400, reply | {"errors": errors}, "application/json")
                    else:
                        reply = {"status": "success", "message": "Event processed"}
                        dedup = {"dedup_key": body.get("dedup_key")}
                        self._reply(202, reply | dedup, "application/json")
                elif self.path.startswith(SLACK_PREFIX):
                    errors = ["invalid_payload"] if body is None else validate_slack(body)
                    sink._record(Notification("slack", self.path, body, errors))
                    if errors:
                        self._reply(400, errors[0].split(":")[0].encode(), "text/plain")
                    else:
                        self._reply(200, b"ok", "text/plain")
                else:
                    self._reply(404, {"error": "not found"}, "application/json")

        return Handler

    def start(self) -> NotificationSink:
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="notify-sink", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> NotificationSink:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


def local_alertmanager_config(
    source: Path,
    workdir: Path,
    sink_url: str,
    routing_key: str = "0123456789abcdef0123456789abcdef",
    fast: bool = False,
) -> Path:
    """Copy an Alertmanager config so that it delivers to a local sink instead of the services.

    The PagerDuty ``url`` and the secret files (``routing_key_file``, ``api_url_file``) are
    rewritten to files under ``workdir`` pointing at ``sink_url``; templates are made absolute.
    ``fast`` shortens group_wait / group_interval to one second for tests and demos. Returns
    the path of the new config.
    """
    config = yaml.safe_load(source.read_text())
    workdir.mkdir(parents=True, exist_ok=True)
    config["templates"] = [
        str(Path(t) if Path(t).is_absolute() else (source.parent / t).resolve())
        for t in config.get("templates", [])
    ]
    key_file = workdir / "pagerduty_routing_key"
    key_file.write_text(routing_key)
    slack_file = workdir / "slack_webhook_url"
    slack_file.write_text(f"{sink_url}{SLACK_PREFIX}/services/T000/B000/XXXX")
    for receiver in config.get("receivers", []):
        for pagerduty in receiver.get("pagerduty_configs", []):
            pagerduty["routing_key_file"] = str(key_file)
            pagerduty["url"] = sink_url + PAGERDUTY_PATH
        for slack in receiver.get("slack_configs", []):
            slack["api_url_file"] = str(slack_file)
    if fast:
        routes = [config["route"]]
        while routes:
            route = routes.pop()
            for key, value in (("group_wait", "1s"), ("group_interval", "1s")):
                if key in route or route is config["route"]:
                    route[key] = value
            routes.extend(route.get("routes", []))
    target = workdir / "alertmanager.yml"
    target.write_text(yaml.safe_dump(config, sort_keys=False))
    return target


def main(argv: Sequence[str] | None = None) -> int:
    parser = OneLineArgumentParser(
        prog="python -m gpu_health.demo.notify_sink",
        description="Receive Alertmanager's PagerDuty and Slack notifications on 127.0.0.1, "
        "check them as PagerDuty Events v2 and a Slack webhook would, and print one line each. "
        f"Point PagerDuty's url at http://127.0.0.1:PORT{PAGERDUTY_PATH} and the Slack webhook "
        f"URL at http://127.0.0.1:PORT{SLACK_PREFIX}/anything.",
    )
    parser.add_argument("--port", type=int, default=9099, help="port (default: %(default)s)")
    parser.add_argument(
        "--routing-key-file",
        help="reject PagerDuty events whose routing_key differs from this file's content",
    )
    args = parser.parse_args(list(argv) if argv is not None else None)

    def body() -> int:
        expected = None
        try:
            if args.routing_key_file:
                with open(args.routing_key_file) as handle:
                    expected = handle.read().strip()
            sink = NotificationSink(args.port, expected, echo=sys.stdout)
        except OSError as exc:
            raise UserError(f"{exc.filename or f'127.0.0.1:{args.port}'}: {exc.strerror}") from exc
        with sink:
            print(f"listening on {sink.url} (Ctrl-C to stop)", flush=True)
            while True:
                time.sleep(3600)

    return run_main(body)


if __name__ == "__main__":
    sys.exit(main())
