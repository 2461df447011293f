"""Load test: many concurrent scrapers on the exporter's /metrics, on loopback, bounded in time.

Usage::

    .venv/bin/python bench/load_scrape.py                      # 50 scrapers, 60 s, 8 GPUs
    .venv/bin/python bench/load_scrape.py --scrapers 10 --duration 5 --json out.json
    .venv/bin/python bench/load_scrape.py --target http://127.0.0.1:9840/metrics

It starts ``gpu-health-exporter`` itself (simulated fleet when the simulator is installed, else the
recorded-H100 replay backend) on a free 127.0.0.1 port unless ``--target`` is given. Each scraper
keeps one keep-alive connection like Prometheus does and scrapes every ``--interval`` seconds
(0 = back to back, a saturation test). The *baseline* is a single scraper measured for a few seconds
in the same run, so the result is a ratio (loaded p99 / unloaded p50) that means the same on a
laptop and on CI. Exit status 1 if any scrape failed.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import http.client
import json
import os
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from dataclasses import asdict, dataclass, field
from pathlib import Path

from gpu_health import stack

MAX_SCRAPERS = 200
MAX_DURATION = 900.0
SCRAPE_TIMEOUT = 10.0  # Prometheus' default scrape_timeout


@dataclass
class Phase:
    name: str
    scrapers: int
    seconds: float
    scrapes: int = 0
    errors: int = 0
    error_kinds: dict[str, int] = field(default_factory=dict)
    p50_ms: float = 0.0
    p90_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0
    rate_per_s: float = 0.0
    bytes_per_scrape: int = 0  # on the wire (gzipped when negotiated)
    server_cpu_ms_per_scrape: float | None = None


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def run_phase(
    url: str,
    name: str,
    scrapers: int,
    seconds: float,
    interval: float,
    expect: bytes,
    pid: int | None,
    tls: ssl.SSLContext | None = None,
    headers: dict[str, str] | None = None,
    gzip_ok: bool = True,
) -> Phase:
    parts = urllib.parse.urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    # What Prometheus sends (it always accepts gzip); gzip=False measures the uncompressed path.
    request_headers = {"Accept": "text/plain;version=0.0.4", **(headers or {})}
    if gzip_ok:
        request_headers["Accept-Encoding"] = "gzip"
    path = parts.path or "/metrics"
    latencies: list[list[float]] = [[] for _ in range(scrapers)]
    errors: dict[str, int] = {}
    sizes: list[int] = []
    lock = threading.Lock()
    start_at = time.monotonic() + 0.2
    stop_at = start_at + seconds

    def scraper(index: int) -> None:
        conn: http.client.HTTPConnection | None = None
        # Spread the first scrapes over one interval, as independent Prometheus servers would be.
        next_at = start_at + (interval * index / scrapers if interval else 0.0)
        while True:
            now = time.monotonic()
            if next_at >= stop_at or now >= stop_at:
                break
            if next_at > now:
                time.sleep(next_at - now)
            began = time.perf_counter()
            try:
                if conn is None:
                    conn = (
                        http.client.HTTPSConnection(host, port, timeout=SCRAPE_TIMEOUT, context=tls)
                        if tls is not None
                        else http.client.HTTPConnection(host, port, timeout=SCRAPE_TIMEOUT)
                    )
                conn.request("GET", path, headers=request_headers)
                resp = conn.getresponse()
                body = resp.read()
                latencies[index].append(time.perf_counter() - began)
                wire = len(body)
                if resp.getheader("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                if resp.status != 200 or expect not in body:
                    latencies[index].pop()
                    raise RuntimeError(f"HTTP {resp.status}")
                if index == 0:
                    sizes.append(wire)
            except (OSError, http.client.HTTPException, RuntimeError) as exc:
                kind = type(exc).__name__ if not isinstance(exc, RuntimeError) else str(exc)
                with lock:
                    errors[kind] = errors.get(kind, 0) + 1
                if conn is not None:
                    conn.close()
                conn = None
            next_at = next_at + interval if interval else time.monotonic()
        if conn is not None:
            conn.close()

    cpu_before = stack.cpu_seconds(pid)
    threads = [threading.Thread(target=scraper, args=(i,), daemon=True) for i in range(scrapers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=max(0.0, stop_at - time.monotonic()) + SCRAPE_TIMEOUT + 5)
    cpu_after = stack.cpu_seconds(pid)
    flat = [v * 1000 for per in latencies for v in per]
    phase = Phase(name, scrapers, seconds)
    phase.scrapes = len(flat)
    phase.errors = sum(errors.values())
    phase.error_kinds = errors
    phase.p50_ms = round(percentile(flat, 0.50), 2)
    phase.p90_ms = round(percentile(flat, 0.90), 2)
    phase.p99_ms = round(percentile(flat, 0.99), 2)
    phase.max_ms = round(max(flat, default=0.0), 2)
    phase.rate_per_s = round(len(flat) / seconds, 2)
    phase.bytes_per_scrape = int(statistics.median(sizes)) if sizes else 0
    if cpu_before is not None and cpu_after is not None and flat:
        phase.server_cpu_ms_per_scrape = round((cpu_after - cpu_before) * 1000 / len(flat), 2)
    return phase


def exporter_command(gpus: int, port: int, extra: list[str] | None = None) -> tuple[list[str], str]:
    """The exporter on the simulated fleet when installed, else the recorded-H100 replay."""
    exe = shutil.which("gpu-health-exporter", path=str(Path(sys.executable).parent))
    base = [exe] if exe else [sys.executable, "-m", "gpu_health.exporter.cli"]
    base += ["--web.listen-address", f"127.0.0.1:{port}", "--log.level", "warning", *(extra or [])]
    try:
        import gpu_health.sim.live  # noqa: F401

        return [*base, "--backend", "sim", "--sim-gpus", str(gpus), "--sim-speed", "60"], "sim"
    except ImportError:
        return [
            *base,
            "--backend",
            "replay",
            "--replay.gpus",
            str(gpus),
            "--replay.trace",
            "h100",
        ], ("replay")


def wait_ready(
    url: str,
    proc: subprocess.Popen[bytes],
    timeout: float = 30.0,
    tls: ssl.SSLContext | None = None,
    headers: dict[str, str] | None = None,
) -> None:
    deadline = time.monotonic() + timeout
    parts = urllib.parse.urlsplit(url)
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"exporter exited with code {proc.returncode}")
        try:
            conn: http.client.HTTPConnection = (
                http.client.HTTPSConnection(
                    parts.hostname or "", parts.port, timeout=2, context=tls
                )
                if tls is not None
                else http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=2)
            )
            conn.request("GET", parts.path, headers=headers or {})
            if conn.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"exporter not ready at {url} after {timeout:.0f} s")


def tls_auth_setup(work: Path) -> tuple[Path, ssl.SSLContext, dict[str, str]]:
    """A self-signed cert (openssl CLI) and one bcrypt user: the web config an operator runs."""
    import bcrypt

    cert, key = work / "cert.pem", work / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    password = base64.b64encode(os.urandom(12)).decode()
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=10)).decode()
    config = work / "web-config.yml"
    config.write_text(
        f"tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\n"
        f"basic_auth_users:\n  bench: '{hashed}'\n"
    )
    ctx = ssl.create_default_context(cafile=str(cert))
    token = base64.b64encode(f"bench:{password}".encode()).decode()
    return config, ctx, {"Authorization": f"Basic {token}"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scrapers", type=int, default=50, help="concurrent scrapers (max 200)")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load (max 900)")
    parser.add_argument(
        "--interval", type=float, default=1.0, help="seconds between one scraper's scrapes; 0 = "
        "back to back (default: %(default)s, i.e. 50 scrapes/s for 50 scrapers)"
    )  # fmt: skip
    parser.add_argument("--baseline", type=float, default=5.0, help="seconds of 1-scraper baseline")
    parser.add_argument("--gpus", type=int, default=8, help="GPUs the started exporter serves")
    parser.add_argument("--target", help="scrape this URL instead of starting an exporter")
    parser.add_argument(
        "--no-gzip", action="store_true", help="do not send Accept-Encoding: gzip (Prometheus does)"
    )
    parser.add_argument(
        "--compare-tls",
        action="store_true",
        help="also run the same load against a second exporter with TLS + basic auth "
        "(--web.config.file) and report the ratio to plain HTTP",
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    if not 1 <= args.scrapers <= MAX_SCRAPERS or not 0 < args.duration <= MAX_DURATION:
        parser.error(f"--scrapers 1..{MAX_SCRAPERS}, --duration 0..{MAX_DURATION:.0f}")

    proc: subprocess.Popen[bytes] | None = None
    backend = "external"
    url = args.target
    if url is None:
        port = stack.free_port()
        command, backend = exporter_command(args.gpus, port)
        url = f"http://127.0.0.1:{port}/metrics"
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    try:
        if proc is not None:
            wait_ready(url, proc)
        pid = proc.pid if proc else None
        print(f"target {url} ({backend}); baseline {args.baseline:.0f} s ...", file=sys.stderr)
        gz = not args.no_gzip
        base = run_phase(
            url, "baseline", 1, args.baseline, args.interval / 4 or 0, b"gpu_", pid, gzip_ok=gz
        )
        print(
            f"load: {args.scrapers} scrapers x {args.duration:.0f} s, "
            f"interval {args.interval} s ...",
            file=sys.stderr,
        )
        load = run_phase(
            url, "load", args.scrapers, args.duration, args.interval, b"gpu_", pid, gzip_ok=gz
        )
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
    tls_phase = None
    if args.compare_tls and args.target is None:
        with tempfile.TemporaryDirectory(prefix="gpu-health-bench-") as tmp:
            config, ctx, auth = tls_auth_setup(Path(tmp))
            port = stack.free_port()
            command, _ = exporter_command(args.gpus, port, ["--web.config.file", str(config)])
            tls_url = f"https://127.0.0.1:{port}/metrics"
            tproc = subprocess.Popen(command, stdout=subprocess.DEVNULL)
            try:
                wait_ready(tls_url, tproc, tls=ctx, headers=auth)
                print("load over TLS + basic auth ...", file=sys.stderr)
                tls_phase = run_phase(
                    tls_url, "tls+auth", args.scrapers, args.duration, args.interval, b"gpu_",
                    tproc.pid, tls=ctx, headers=auth, gzip_ok=gz,
                )  # fmt: skip
            finally:
                tproc.terminate()
                try:
                    tproc.wait(10)
                except subprocess.TimeoutExpired:
                    tproc.kill()
    ratio = round(load.p99_ms / base.p50_ms, 2) if base.p50_ms else None
    result = {
        "target": url,
        "backend": backend,
        "gpus": args.gpus if proc else None,
        "gzip": not args.no_gzip,
        "cpus": os.cpu_count(),
        # Other work on the machine skews latency: record how busy it was (1-minute average).
        "loadavg_1m_end": round(os.getloadavg()[0], 2),
        "phases": [asdict(p) for p in (base, load, tls_phase) if p is not None],
        "p99_loaded_over_p50_unloaded": ratio,
    }
    if tls_phase is not None and load.p50_ms:
        result["tls_auth_over_plain_p50"] = round(tls_phase.p50_ms / load.p50_ms, 2)
        result["tls_auth_over_plain_p99"] = round(tls_phase.p99_ms / load.p99_ms, 2)
    for phase in (p for p in (base, load, tls_phase) if p is not None):
        cpu = phase.server_cpu_ms_per_scrape
        print(
            f"{phase.name:9s} scrapers={phase.scrapers:3d} scrapes={phase.scrapes:6d} "
            f"rate={phase.rate_per_s:7.1f}/s errors={phase.errors} p50={phase.p50_ms} ms "
            f"p90={phase.p90_ms} ms p99={phase.p99_ms} ms max={phase.max_ms} ms "
            f"size={phase.bytes_per_scrape} B server_cpu={cpu} ms/scrape"
        )
    print(f"p99 under load / unloaded p50 = {ratio} (load average {os.getloadavg()[0]:.1f})")
    if "tls_auth_over_plain_p50" in result:
        print(
            f"TLS + basic auth / plain: p50 x{result['tls_auth_over_plain_p50']}, "
            f"p99 x{result['tls_auth_over_plain_p99']}"
        )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    failed = load.errors or base.errors or (tls_phase is not None and tls_phase.errors)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
