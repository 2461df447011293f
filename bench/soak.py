"""Soak: run the exporter (simulated fleet) and the scorer for minutes under steady scraping and
report whether their memory (RSS) and open file descriptors stay flat.

Usage::

    .venv/bin/python bench/soak.py                       # 10 minutes, exporter + scorer
    .venv/bin/python bench/soak.py --duration 60 --json soak.json
    .venv/bin/python bench/soak.py --no-scorer

Everything runs on 127.0.0.1: the exporter (``--backend sim`` when the simulator is installed,
else the recorded-H100 replay) scraped ``--scrape-rate`` times a second (far above Prometheus'
15 s interval, to compress hours of scrapes into minutes), a real Prometheus scraping it every
second, and the scorer scoring from that Prometheus every ``--score-interval`` seconds while its
own /metrics is scraped too. RSS and fds of both are sampled every ``--sample-every`` seconds.

The verdict uses the *second half* of the samples (the first half is warm-up: imports, caches,
allocator arenas, Prometheus filling up) and fits a least-squares line. Flat means the fitted
growth over the whole run is below ``--tolerance-kib`` (RSS) and below two descriptors (fds: one
comes and goes with each in-flight scrape). The /metrics body size is sampled too: RSS that
grows with it is more series (new XID codes, say), not a leak.
The first-half baseline is reported too, so growth is read as a ratio in the same run.
Exit status 1 if either process died or grew.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

MAX_DURATION = 3600.0


@dataclass
class Series:
    name: str
    t: list[float] = field(default_factory=list)
    rss_kib: list[int] = field(default_factory=list)
    fds: list[int] = field(default_factory=list)
    threads: list[int] = field(default_factory=list)
    #: size of the last /metrics body at each sample: growth here explains RSS growth (more series)
    body_bytes: list[int] = field(default_factory=list)
    last_body_bytes: int = 0
    scrapes: int = 0
    scrape_errors: int = 0
    died: str = ""
    work: dict[str, float] = field(default_factory=dict)


def proc_sample(pid: int) -> tuple[int, int, int] | None:
    """(RSS KiB, open fds, threads) of a live process from /proc, or None if it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]), fds, int(fields["Threads"])


def slope(xs: list[float], ys: list[int]) -> float:
    """Least-squares slope dy/dx (0 with fewer than 3 points)."""
    n = len(xs)
    if n < 3:
        return 0.0
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx if sxx else 0.0


def verdict(s: Series, duration: float, tolerance_kib: float) -> dict[str, Any]:
    half = len(s.t) // 2
    t2, r2, f2 = s.t[half:], s.rss_kib[half:], s.fds[half:]
    rss_slope = slope(t2, r2)  # KiB per second
    fd_slope = slope(t2, f2)
    first = s.rss_kib[:half] or s.rss_kib
    return {
        "process": s.name,
        "samples": len(s.t),
        "scrapes": s.scrapes,
        "scrape_errors": s.scrape_errors,
        "died": s.died,
        "rss_kib_start": s.rss_kib[0] if s.rss_kib else None,
        "rss_kib_warm_median": sorted(first)[len(first) // 2] if first else None,
        "rss_kib_end": s.rss_kib[-1] if s.rss_kib else None,
        "rss_kib_max": max(s.rss_kib, default=None),
        "rss_slope_kib_per_min": round(rss_slope * 60, 2),
        "rss_growth_over_run_kib": round(rss_slope * duration, 1),
        "fds_start": s.fds[0] if s.fds else None,
        "fds_end": s.fds[-1] if s.fds else None,
        "fds_max": max(s.fds, default=None),
        "fd_slope_per_min": round(fd_slope * 60, 3),
        "threads_max": max(s.threads, default=None),
        "body_bytes_start": s.body_bytes[1] if len(s.body_bytes) > 1 else None,
        "body_bytes_end": s.body_bytes[-1] if s.body_bytes else None,
        "work": s.work,
        # Only growth counts: descriptors come and go with in-flight scrapes (hence 2, not 0).
        "flat": bool(
            not s.died and rss_slope * duration < tolerance_kib and fd_slope * duration < 2
        ),
    }


def console(name: str) -> list[str]:
    exe = shutil.which(name, path=str(Path(sys.executable).parent))
    module = {"gpu-health-exporter": "exporter", "gpu-health-scorer": "scorer"}[name]
    return [exe] if exe else [sys.executable, "-m", f"gpu_health.{module}.cli"]


def exporter_argv(port: int, gpus: int) -> tuple[list[str], str]:
    base = [*console("gpu-health-exporter"), "--web.listen-address", f"127.0.0.1:{port}"]
    base += ["--log.level", "warning", "--node-name", "soak-node"]
    try:
        import gpu_health.sim.live  # noqa: F401

        return [*base, "--backend", "sim", "--sim-gpus", str(gpus), "--sim-speed", "3600"], "sim"
    except ImportError:
        argv = [*base, "--backend", "replay", "--replay.gpus", str(gpus), "--replay.trace", "h100"]
        return argv, "replay"


def get(port: int, path: str = "/metrics", timeout: float = 10.0) -> tuple[int, int]:
    """(status, body length) of one GET."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, len(resp.read())
    finally:
        conn.close()


#: Self-metrics read at the end: how much work each process did during the soak.
WORK_METRICS = (
    "gpu_exporter_gpus",
    "gpu_scorer_gpus_scored",
    "gpu_scorer_runs_failed_total",
    "gpu_scorer_query_errors_total",
    "process_cpu_seconds_total",
)


def self_metrics(port: int) -> dict[str, float]:
    from prometheus_client.parser import text_string_to_metric_families

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/metrics")
        body = conn.getresponse().read().decode()
    finally:
        conn.close()
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(body):
        for s in family.samples:
            if s.name in WORK_METRICS:
                label = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
                out[f"{s.name}{{{label}}}" if label else s.name] = s.value
    return out


def wait_http(port: int, proc: subprocess.Popen[bytes], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode} during start-up")
        with contextlib.suppress(OSError):
            if get(port, "/metrics", 2)[0] == 200:
                return
        time.sleep(0.3)
    raise RuntimeError(f"{what} did not answer on port {port} within {timeout:.0f} s")


def scrape_loop(port: int, rate: float, series: Series, stop: threading.Event) -> None:
    period = 1.0 / rate
    next_at = time.monotonic()
    while not stop.is_set():
        try:
            status, size = get(port)
            ok = status == 200
            series.last_body_bytes = size
        except (OSError, http.client.HTTPException):
            ok = False
        series.scrapes += 1
        series.scrape_errors += not ok
        next_at += period
        stop.wait(max(0.0, next_at - time.monotonic()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=600.0, help="seconds (default: 600)")
    parser.add_argument("--gpus", type=int, default=8, help="simulated GPUs (default: 8)")
    parser.add_argument("--scrape-rate", type=float, default=5.0, help="exporter scrapes/s")
    parser.add_argument("--score-interval", default="5s", help="scorer --interval (default: 5s)")
    parser.add_argument("--sample-every", type=float, default=5.0, help="seconds between samples")
    parser.add_argument(
        "--tolerance-kib", type=float, default=2048.0, help="RSS growth over the run that still "
        "counts as flat (default: 2048 KiB, allocator noise)"
    )  # fmt: skip
    parser.add_argument("--no-scorer", action="store_true", help="soak the exporter only")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    if not 0 < args.duration <= MAX_DURATION:
        parser.error(f"--duration must be in (0, {MAX_DURATION:.0f}]")

    from gpu_health import stack

    work = Path(tempfile.mkdtemp(prefix="gpu-health-soak-"))
    stop = threading.Event()
    procs: dict[str, subprocess.Popen[bytes]] = {}
    series: dict[str, Series] = {}
    notes: list[str] = []
    threads: list[threading.Thread] = []
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(shutil.rmtree, work, ignore_errors=True)
        exporter_port = stack.free_port()
        scorer_port = 0
        argv_e, backend = exporter_argv(exporter_port, args.gpus)
        log_e = (work / "exporter.log").open("wb")
        cleanup.callback(log_e.close)
        procs["exporter"] = subprocess.Popen(
            argv_e, stdout=log_e, stderr=subprocess.STDOUT, start_new_session=True
        )
        cleanup.callback(stack.stop_process, procs["exporter"])
        wait_http(exporter_port, procs["exporter"], "exporter")
        series["exporter"] = Series("exporter")
        threads.append(
            threading.Thread(
                target=scrape_loop,
                args=(exporter_port, args.scrape_rate, series["exporter"], stop),
                daemon=True,
            )
        )
        if not args.no_scorer:
            config = stack.write_prometheus_config(
                work / "prometheus.yml",
                scrape_targets={"gpu-health-exporter": [f"127.0.0.1:{exporter_port}"]},
            )
            prom = cleanup.enter_context(stack.prometheus(work, config))
            scorer_port = stack.free_port()
            argv_s = [
                *console("gpu-health-scorer"), "serve", "--prometheus.url", prom.url,
                "--web.listen-address", f"127.0.0.1:{scorer_port}",
                "--interval", args.score_interval, "--log.level", "warning",
            ]  # fmt: skip
            log_s = (work / "scorer.log").open("wb")
            cleanup.callback(log_s.close)
            procs["scorer"] = subprocess.Popen(
                argv_s, stdout=log_s, stderr=subprocess.STDOUT, start_new_session=True
            )
            cleanup.callback(stack.stop_process, procs["scorer"])
            try:
                wait_http(scorer_port, procs["scorer"], "scorer")
            except RuntimeError as exc:
                tail = (work / "scorer.log").read_text(errors="replace").strip().splitlines()
                notes.append(f"scorer not soaked: {exc}: {' | '.join(tail[-3:])}")
                del procs["scorer"]
            else:
                series["scorer"] = Series("scorer")
                threads.append(
                    threading.Thread(
                        target=scrape_loop,
                        args=(scorer_port, 1.0, series["scorer"], stop),
                        daemon=True,
                    )
                )
        for thread in threads:
            thread.start()
        began = time.monotonic()
        print(
            f"soaking {', '.join(procs)} ({backend} backend, {args.gpus} GPUs) for "
            f"{args.duration:.0f} s ...",
            file=sys.stderr,
        )
        next_report = began + 60
        while (now := time.monotonic()) - began < args.duration:
            for name, proc in procs.items():
                s = series[name]
                if s.died:
                    continue
                sample = proc_sample(proc.pid) if proc.poll() is None else None
                if sample is None:
                    s.died = f"exited with code {proc.poll()}"
                    continue
                s.t.append(now - began)
                s.rss_kib.append(sample[0])
                s.fds.append(sample[1])
                s.threads.append(sample[2])
                s.body_bytes.append(s.last_body_bytes)
            if now >= next_report:
                status = "; ".join(
                    f"{n} rss={s.rss_kib[-1] if s.rss_kib else '?'} KiB fds="
                    f"{s.fds[-1] if s.fds else '?'} scrapes={s.scrapes}"
                    for n, s in series.items()
                )
                print(f"  {now - began:5.0f} s: {status}", file=sys.stderr)
                next_report += 60
            time.sleep(min(args.sample_every, max(0.0, args.duration - (now - began))))
        stop.set()
        for thread in threads:
            thread.join(15)
        # What the processes did meanwhile (a soak of an idle process proves little).
        for name, port in (("exporter", exporter_port), ("scorer", scorer_port)):
            if name in series:
                with contextlib.suppress(OSError, http.client.HTTPException):
                    series[name].work = self_metrics(port)
    results = [verdict(s, args.duration, args.tolerance_kib) for s in series.values()]
    report = {
        "duration_s": args.duration,
        "backend": backend,
        "gpus": args.gpus,
        "scrape_rate_per_s": args.scrape_rate,
        "score_interval": args.score_interval,
        "loadavg_1m_end": round(os.getloadavg()[0], 2),
        "results": results,
        "notes": notes,
        "series": [asdict(s) for s in series.values()],
    }
    for r in results:
        print(
            f"{r['process']:8s} rss {r['rss_kib_start']} -> {r['rss_kib_end']} KiB "
            f"(max {r['rss_kib_max']}), slope {r['rss_slope_kib_per_min']} KiB/min; "
            f"fds {r['fds_start']} -> {r['fds_end']}, slope {r['fd_slope_per_min']}/min; "
            f"body {r['body_bytes_start']} -> {r['body_bytes_end']} B; "
            f"scrapes {r['scrapes']} ({r['scrape_errors']} failed); "
            f"{'FLAT' if r['flat'] else 'GROWING or DIED ' + r['died']}"
        )
    for note in notes:
        print(f"note: {note}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0 if all(r["flat"] and not r["scrape_errors"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
