"""Start and stop the real Prometheus tooling (Prometheus, Alertmanager, promtool) on loopback.

The test fixtures and ``gpu-health demo`` both use this module, so the way a process is started,
waited for and stopped is written once. Every server binds 127.0.0.1 on a free port, keeps its data
in a directory the caller owns, and is stopped (SIGTERM, then SIGKILL) when the context exits.
Every child is started through :mod:`gpu_health.die_with_parent`, so on Linux it also gets SIGTERM
when the process that started it dies, even by SIGKILL.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gpu_health import die_with_parent, http_deadline
from gpu_health.prometheus_access import PLAIN, Access, non_api_answer
from gpu_health.safetext import one_line

#: Debian package that provides each binary, for the one-line install hint.
PACKAGES = {
    "prometheus": "prometheus",
    "promtool": "prometheus",
    "prometheus-alertmanager": "prometheus-alertmanager",
    "alertmanager": "prometheus-alertmanager",
    "amtool": "prometheus-alertmanager",
    "jsonnet": "jsonnet",
    "victoria-metrics": "victoria-metrics",
    "vmctl": "victoria-metrics",
}


class MissingBinaryError(RuntimeError):
    """A required program is not installed; the message is the exact install line."""


def find_binary(*names: str) -> str:
    """Return the first of ``names`` on PATH, or raise with the apt-get line that installs it."""
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    package = PACKAGES.get(names[0], names[0])
    raise MissingBinaryError(
        f"{names[0]} is not installed; install it with: sudo apt-get install -y {package}"
    )


#: Where Linux says which local ports it hands to outgoing connections (and to ``bind(0)``).
EPHEMERAL_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
#: The lowest port :func:`free_port` chooses: above the usual servers' own defaults
#: (Prometheus 9090, Alertmanager 9093, node_exporter 9100, VictoriaMetrics 8428).
LOWEST_CHOSEN_PORT = 10000
#: Ports :func:`free_port` tries before it lets the kernel choose.
FREE_PORT_TRIES = 64


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing is bound to right now, outside the kernel's
    ephemeral range where there is room outside it.

    A port from ``bind(0)`` comes from the ephemeral range, the range the kernel also takes the
    local port of every outgoing connection from. Between the choice and the server's own bind,
    any client on the machine (the parallel test workers' HTTP clients, a scorer's queries) can
    be given that port for a connection, and the server then fails with "address already in
    use". A port outside the range is never handed out that way: only another caller of this
    function can take it, and the choice is random among tens of thousands (:func:`listening`
    retries a start that lost even so)."""
    rng = random.SystemRandom()
    outside = _outside_ephemeral_range()
    for _ in range(FREE_PORT_TRIES if outside else 0):
        port = rng.choice(outside)
        if _bindable(port):
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _outside_ephemeral_range() -> list[int]:
    """The ports from :data:`LOWEST_CHOSEN_PORT` up that the kernel does not hand to outgoing
    connections; empty where the range cannot be read or leaves fewer than 1,000 of them."""
    try:
        low, high = (int(n) for n in EPHEMERAL_RANGE_FILE.read_text().split())
    except (OSError, ValueError):
        return []
    ports = [*range(LOWEST_CHOSEN_PORT, min(low, 65536)), *range(max(high + 1, 0), 65536)]
    return ports if len(ports) >= 1000 else []


def _bindable(port: int) -> bool:
    """Whether 127.0.0.1:``port`` can be bound now (without SO_REUSEADDR, so a port still in
    TIME_WAIT is refused too)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def http_get(url: str, timeout: float = 5.0, access: Access = PLAIN) -> bytes:
    """GET a URL and return the body, all of it within ``timeout`` seconds and 64 MiB
    (raises urllib errors, TimeoutError, or ValueError for a larger answer); ``access``: the
    headers and TLS context of a Prometheus that asks for them."""
    return http_deadline.fetch(url, timeout, headers=access.headers, context=access.context)


def _json(url: str, timeout: float, access: Access = PLAIN) -> Any:
    """The JSON answer at ``url``; ValueError when it is not JSON or nested absurdly deep."""
    body = http_get(url, timeout=timeout, access=access)
    try:
        return json.loads(body)
    except RecursionError:
        raise ValueError(f"{url.split('?')[0]}: JSON nested too deeply") from None
    except ValueError:  # "Expecting value: line 1 column 1 (char 0)" said nothing useful
        raise ValueError(f"{url.split('?')[0]}: {non_api_answer(200, body)}") from None


def wait_until(url: str, timeout: float, process: subprocess.Popen[bytes] | None = None) -> None:
    """Poll ``url`` until it answers 200, the process dies, or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    last_error = ""
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with code {process.returncode} before {url} was up")
        try:
            http_get(url, timeout=1.0)
            return
        except (urllib.error.URLError, ConnectionError, OSError) as exc:
            last_error = str(exc)
        time.sleep(0.1)
    raise TimeoutError(f"{url} not ready after {timeout:.0f}s ({last_error})")


def cpu_seconds(pid: int | None) -> float | None:
    """The CPU time (user and system, seconds) a process has used, from ``/proc`` (Linux); None
    for no process, elsewhere, or once it has gone. The benches time servers' CPU per request
    with it."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def stop_process(process: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """SIGTERM the process (and its group), then SIGKILL after ``grace`` seconds."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=grace)


@dataclass
class Server:
    """A started server process with its base URL and log file."""

    name: str
    url: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    workdir: Path
    extra: dict[str, Any] = field(default_factory=dict)

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of the server's log, for error messages."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        stop_process(self.process)


def _spawn(argv: Sequence[str], log_path: Path, cwd: Path) -> subprocess.Popen[bytes]:
    log = log_path.open("ab")
    try:
        return die_with_parent.spawn(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=cwd,
            start_new_session=True,
        )
    finally:
        log.close()


def write_prometheus_config(
    path: Path,
    scrape_targets: dict[str, list[str]] | None = None,
    rule_files: Sequence[Path] = (),
    alertmanagers: Sequence[str] = (),
    scrape_interval: str = "1s",
    evaluation_interval: str = "1s",
    external_labels: dict[str, str] | None = None,
    extra_scrape_configs: Sequence[dict[str, Any]] = (),
    remote_write: Sequence[str] = (),
) -> Path:
    """Write a prometheus.yml: one job per key of ``scrape_targets`` (host:port strings);
    ``remote_write`` URLs get every sample Prometheus scrapes or records, as it stores it."""
    config: dict[str, Any] = {
        "global": {
            "scrape_interval": scrape_interval,
            "evaluation_interval": evaluation_interval,
        },
        "rule_files": [str(p) for p in rule_files],
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": targets}]}
            for job, targets in (scrape_targets or {}).items()
        ]
        + list(extra_scrape_configs),
    }
    if external_labels:
        config["global"]["external_labels"] = external_labels
    if remote_write:
        config["remote_write"] = [{"url": url} for url in remote_write]
    if alertmanagers:
        config["alerting"] = {
            "alertmanagers": [{"static_configs": [{"targets": list(alertmanagers)}]}]
        }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@contextlib.contextmanager
def prometheus(
    workdir: Path,
    config_path: Path,
    data_dir: Path | None = None,
    port: int | None = None,
    retention: str = "90d",
    ready_timeout: float = 60.0,
    extra_args: Sequence[str] = (),
) -> Iterator[Server]:
    """Run Debian's Prometheus on 127.0.0.1 until the context exits (on ``port``, or on a free
    one: :func:`listening`)."""
    binary = find_binary("prometheus")
    data_dir = data_dir or workdir / "prometheus-data"
    data_dir.mkdir(parents=True, exist_ok=True)

    def argv(chosen: int) -> list[str]:
        return [
            binary,
            f"--config.file={config_path}",
            f"--storage.tsdb.path={data_dir}",
            f"--storage.tsdb.retention.time={retention}",
            f"--web.listen-address=127.0.0.1:{chosen}",
            "--web.enable-lifecycle",
            "--web.enable-admin-api",
            *extra_args,
        ]

    server = listening("prometheus", "Prometheus", argv, workdir, port, ready_timeout)
    try:
        yield server
    finally:
        server.stop()


#: How many free ports a server is started on when each is taken before the server binds it.
PORT_ATTEMPTS = 3


def listening(
    name: str,
    title: str,
    argv: Callable[[int], list[str]],
    workdir: Path,
    port: int | None,
    ready_timeout: float,
    ready_path: str = "/-/ready",
) -> Server:
    """Start ``argv(port)`` and wait until ``ready_path`` answers (its log:
    ``workdir/NAME.log``); the caller stops it.

    Without ``port``, a free one is chosen, and chosen again (up to :data:`PORT_ATTEMPTS`
    times) when the server's log says another process bound it between the choice and the
    server's start: parallel test workers and benches each pick free ports, and one such race
    failed a CI run. A port the caller asks for is kept; the error then says why it failed."""
    log_path = workdir / f"{name}.log"
    attempts = 1 if port else PORT_ATTEMPTS
    for attempt in range(1, attempts + 1):
        chosen = port or free_port()
        logged = log_path.stat().st_size if log_path.exists() else 0
        process = _spawn(argv(chosen), log_path, workdir)
        url = f"http://127.0.0.1:{chosen}"
        server = Server(name, url, chosen, process, log_path, workdir)
        try:
            wait_until(f"{server.url}{ready_path}", ready_timeout, process)
            return server
        except (RuntimeError, TimeoutError) as exc:
            server.stop()
            if attempt < attempts and _port_taken(log_path, logged):
                continue
            raise RuntimeError(f"{title} did not start: {exc}\n{server.log_tail()}") from exc
    raise AssertionError("unreachable: the last attempt returns or raises")


def _port_taken(log_path: Path, since: int) -> bool:
    """Whether the log written after byte ``since`` says the listen address was in use."""
    try:
        with log_path.open("rb") as log:
            log.seek(since)
            return b"address already in use" in log.read()
    except OSError:
        return False


def victoriametrics(
    workdir: Path, extra_args: Sequence[str] = (), ready_timeout: float = 30.0
) -> Server:
    """Start Debian's VictoriaMetrics on a free loopback port (:func:`listening`) with its data
    in ``workdir`` (created) and ``extra_args`` after its own; the caller stops it. Its result
    cache is off: the tests import history after their first queries, and the benches repeat
    a query whose answer must be evaluated again, as a scorer's next run at another time
    would have it."""
    binary = find_binary("victoria-metrics")
    workdir.mkdir(parents=True, exist_ok=True)

    def argv(port: int) -> list[str]:
        return [
            binary,
            f"-storageDataPath={workdir / 'data'}",
            f"-httpListenAddr=127.0.0.1:{port}",
            "-retentionPeriod=100y",
            "-search.disableCache",
            "-search.latencyOffset=0s",
            *extra_args,
        ]

    name = "victoria-metrics"
    return listening(name, name, argv, workdir, None, ready_timeout, ready_path="/health")


@contextlib.contextmanager
def alertmanager(
    workdir: Path,
    config_path: Path,
    port: int | None = None,
    ready_timeout: float = 30.0,
    extra_args: Sequence[str] = (),
) -> Iterator[Server]:
    """Run Debian's Alertmanager on 127.0.0.1 (clustering off) until the context exits (on
    ``port``, or on a free one: :func:`listening`)."""
    binary = find_binary("prometheus-alertmanager", "alertmanager")
    data_dir = workdir / "alertmanager-data"
    data_dir.mkdir(parents=True, exist_ok=True)

    def argv(chosen: int) -> list[str]:
        return [
            binary,
            f"--config.file={config_path}",
            f"--storage.path={data_dir}",
            f"--web.listen-address=127.0.0.1:{chosen}",
            "--cluster.listen-address=",
            *extra_args,
        ]

    server = listening("alertmanager", "Alertmanager", argv, workdir, port, ready_timeout)
    try:
        yield server
    finally:
        server.stop()


def promtool_backfill(
    openmetrics_file: Path,
    data_dir: Path,
    block_duration: str | None = None,
    on_start: Callable[[subprocess.Popen[str]], None] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Turn an OpenMetrics file (ending in ``# EOF``) into TSDB blocks under ``data_dir``.

    ``on_start`` gets the running promtool, so that another thread can stop it (an interrupted
    backfill must not wait minutes for a window it will throw away)."""
    promtool = find_binary("promtool")
    data_dir.mkdir(parents=True, exist_ok=True)
    argv = [promtool, "tsdb", "create-blocks-from", "openmetrics"]
    if block_duration:
        argv.append(f"--max-block-duration={block_duration}")
    argv += [str(openmetrics_file), str(data_dir)]
    return _promtool(argv, f"backfill {openmetrics_file}", on_start)


def _promtool(
    argv: list[str],
    what: str,
    on_start: Callable[[subprocess.Popen[str]], None] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run promtool (through the guard: a backfill of a long history keeps it busy for
    minutes); a failure is a RuntimeError saying it could not do ``what``."""
    with die_with_parent.spawn(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True
    ) as process:
        if on_start is not None:
            on_start(process)
        stdout, stderr = process.communicate()
    result = subprocess.CompletedProcess(argv, process.returncode, stdout, stderr)
    if result.returncode != 0:
        raise RuntimeError(f"promtool could not {what}: {(stderr or stdout).strip()}")
    return result


#: The blocks promtool writes (and Prometheus' head block): 2 hours, aligned to the epoch.
PROMTOOL_BLOCK_S = 7200


def promtool_backfill_rules(
    rule_file: Path, url: str, start: float, end: float, out_dir: Path
) -> subprocess.CompletedProcess[str]:
    """Evaluate ``rule_file``'s recording rules over ``[start, end]`` against the Prometheus at
    ``url`` (``promtool tsdb create-blocks-from rules``, at each group's interval) and write
    the results as TSDB blocks under ``out_dir``: how an operator gives new recording rules the
    history that came before them. Move the blocks into Prometheus' data directory to serve
    them: a running Prometheus loads them at its next reload, about a minute later.

    ``start`` is moved back to the 2-hour block it falls in: promtool writes no block at all,
    and exits 0, when the start falls after a group's last evaluation in its 2-hour block
    (prometheus/prometheus#19714; a 1-hour group started 1 s before a block's end wrote
    nothing here). That is enough for groups evaluated at least every 2 hours (ours: 5 minutes
    and 1 hour), whose every block holds an evaluation; a slower group would need its start
    moved to just before its own first evaluation."""
    promtool = find_binary("promtool")
    out_dir.mkdir(parents=True, exist_ok=True)
    start = start - start % PROMTOOL_BLOCK_S
    argv = [
        *(promtool, "tsdb", "create-blocks-from", "rules", "--quiet"),
        *(f"--url={url}", f"--start={int(start)}", f"--end={int(end)}"),
        *(f"--output-dir={out_dir}", str(rule_file)),
    ]
    return _promtool(argv, f"backfill the rules of {rule_file}")


def api_answer(url: str, timeout: float, promql: str, what: str, access: Access = PLAIN) -> Any:
    """The JSON answer to a query; where Prometheus (or VictoriaMetrics) refused it with an
    error answer (HTTP 400 for a range it cannot take, 422 for an evaluation that failed), a
    RuntimeError naming its reason, as for an answer whose status is "error"; a 4xx without such
    JSON, a RuntimeError saying what it likely means (:func:`non_api_answer`). Before, the callers
    saw only urllib's HTTPError and reported "cannot reach Prometheus: Bad Request". A 5xx that is
    not such JSON (a proxy's 502) stays an HTTPError: the server is down, not reached."""
    try:
        return _json(url, timeout, access)
    except urllib.error.HTTPError as exc:
        try:
            body = exc.read()
        except OSError:
            body = b""
        try:
            payload = json.loads(body)
        except (ValueError, RecursionError):
            payload = None
        if exc.code < 500 and not isinstance(payload, dict):
            # a 4xx without the API's JSON: credentials, a wrong path (VictoriaMetrics answers
            # 400 "unsupported path"), a proxy's page; a 5xx is the server or its proxy down
            raise RuntimeError(
                f"{what} answered HTTP {exc.code} ({exc.reason}): {non_api_answer(exc.code, body)}"
            ) from None
        if not isinstance(payload, dict) or payload.get("status") != "error":
            raise
        reason = one_line(str(payload.get("error")), 300)
        raise RuntimeError(
            f"{what} refused (HTTP {exc.code}): {reason}; the {what} was {one_line(promql, 300)!r}"
        ) from None


def _result(url: str, timeout: float, promql: str, what: str, access: Access) -> list[Any]:
    """``data.result`` of a query's answer (``what``: "query" or "range query"; raises on an
    error answer, or on one that is not Prometheus')."""
    payload = api_answer(url, timeout, promql, what, access)
    if not isinstance(payload, dict):
        raise ValueError(f"{what} {promql!r}: not a Prometheus answer")
    if payload.get("status") != "success":
        raise RuntimeError(f"{what} {promql!r} failed: {payload.get('error')}")
    result: list[Any] = payload["data"]["result"]
    return result


def query(
    base_url: str,
    promql: str,
    at: float | None = None,
    timeout: float = 30.0,
    access: Access = PLAIN,
) -> list[Any]:
    """Run an instant query and return ``data.result`` (raises on an error answer)."""
    params = {"query": promql}
    if at is not None:
        params["time"] = f"{at:.3f}"
    url = f"{base_url}/api/v1/query?{urllib.parse.urlencode(params)}"
    return _result(url, timeout, promql, "query", access)


def query_range(
    base_url: str,
    promql: str,
    start: float,
    end: float,
    step: float,
    timeout: float = 60.0,
    access: Access = PLAIN,
) -> list[Any]:
    """Run a range query and return ``data.result`` (matrix; raises on an error answer)."""
    params = {"query": promql, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:g}"}
    url = f"{base_url}/api/v1/query_range?{urllib.parse.urlencode(params)}"
    return _result(url, timeout, promql, "range query", access)


def wait_for_query(
    base_url: str, promql: str, timeout: float = 30.0, predicate: Any = None
) -> list[Any]:
    """Re-run ``promql`` until it returns a non-empty result (or ``predicate(result)`` holds)."""
    deadline = time.monotonic() + timeout
    result: list[Any] = []
    while time.monotonic() < deadline:
        result = query(base_url, promql)
        if predicate(result) if predicate else bool(result):
            return result
        time.sleep(0.25)
    raise TimeoutError(f"{promql!r} did not return the expected result in {timeout}s: {result}")
