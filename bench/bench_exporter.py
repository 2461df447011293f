"""Exporter benchmark: scrape cost by backend and GPU count, against a baseline in the same run.

What is measured (all on this machine, in one run, so ratios are meaningful):

- *scrape*: median wall time of one full ``/metrics`` render in-process (collect from the backend,
  health model update, text exposition), for the replay backend (real H100 readings through the
  NVML code path) and the sim backend, with 1, 8 and 64 GPUs;
- *baseline*: rendering a plain ``prometheus_client`` registry holding the same number of series
  as ordinary labelled Gauges whose values are already set — the floor any Python exporter pays
  for the exposition alone. ``ratio`` = scrape / baseline;
- *HTTP*: median end-to-end GET of /metrics from the exporter process (8 GPUs, replay);
- *process*: RSS and CPU seconds per scrape of a running ``gpu-health-exporter`` process;
- *NVML time on an H100 (estimate)*: the calls one scrape makes on the real scrape path,
  counted with the fake binding, priced with the per-call costs recorded on the H100
  (``nvml_h100.json`` ``timing_us``). An estimate from recorded costs, not a hardware
  measurement — ``bench/bench_nvml_vs_nvidia_smi.py`` measures it on a GPU machine.

Usage: ``python bench/bench_exporter.py [--quick] [--write docs/benchmarks.md]``
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from gpu_health import stack
from gpu_health.exporter.backend import Backend
from gpu_health.exporter.backends.replay import ReplayBackend
from gpu_health.exporter.cli import make_health
from gpu_health.exporter.collector import ExporterCollector
from gpu_health.exporter.data import NVML_H100, data_path

BEGIN = "<!-- exporter-bench:begin -->"
END = "<!-- exporter-bench:end -->"
REPO = Path(__file__).resolve().parent.parent


def median_seconds(fn: Callable[[], object], repeat: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def paired_medians(
    a: Callable[[], object], b: Callable[[], object], repeat: int
) -> tuple[float, float]:
    """Medians of ``a`` and ``b`` timed alternately, so load from other processes hits both."""
    a()
    b()
    times_a, times_b = [], []
    for _ in range(repeat):
        started = time.perf_counter()
        a()
        times_a.append(time.perf_counter() - started)
        started = time.perf_counter()
        b()
        times_b.append(time.perf_counter() - started)
    return statistics.median(times_a), statistics.median(times_b)


def baseline_registry(text: str) -> CollectorRegistry:
    """The same series as ``text`` (names, labels, values) as plain labelled Gauges."""
    registry = CollectorRegistry(auto_describe=False)
    for family in text_string_to_metric_families(text):
        if not family.samples:
            continue
        label_names = sorted({k for s in family.samples for k in s.labels})
        gauge = Gauge(
            family.name.replace(".", "_") + "_baseline",
            family.documentation or "x",
            label_names,
            registry=registry,
        )
        for s in family.samples:
            child = (
                gauge.labels(*[s.labels.get(k, "") for k in label_names]) if label_names else gauge
            )
            child.set(s.value)
    return registry


def make_sim(gpus: int) -> Backend | None:
    try:
        from gpu_health.exporter.backends.sim import make_sim_backend

        return make_sim_backend(
            gpus, seed=1, speed=1.0, faults=[], faults_file=None, start_time=None
        )
    except Exception as exc:  # the simulator is a separate helper's module
        print(f"  sim backend unavailable: {exc}", file=sys.stderr)
        return None


def scrape_rows(counts: list[int], repeat: int) -> list[dict[str, Any]]:
    rows = []
    for backend_name in ("replay", "sim"):
        for gpus in counts:
            backend: Backend | None
            if backend_name == "replay":
                backend = ReplayBackend(gpus=gpus, poll_interval=3600)
            else:
                backend = make_sim(gpus)
            if backend is None:
                rows.append({"backend": backend_name, "gpus": gpus, "missing": True})
                continue
            try:
                collector = ExporterCollector(
                    backend, backend.inventory(), make_health(None), version="bench"
                )
                registry = CollectorRegistry(auto_describe=False)
                registry.register(collector)
                text = generate_latest(registry).decode()
                series = sum(1 for line in text.splitlines() if line and line[0] != "#")
                base = baseline_registry(text)
                scrape, baseline = paired_medians(
                    partial(generate_latest, registry), partial(generate_latest, base), repeat
                )
            finally:
                backend.close()
            row: dict[str, Any] = {
                "backend": backend_name,
                "gpus": gpus,
                "series": series,
                "scrape_ms": scrape * 1e3,
                "baseline_ms": baseline * 1e3,
                "ratio": scrape / baseline,
            }
            rows.append(row)
            print(f"  {backend_name:6} {gpus:3} GPUs: {rows[-1]}", file=sys.stderr)
    return rows


def nvml_estimate() -> dict[str, float]:
    """NVML calls one scrape of one GPU makes, priced with the H100's recorded per-call costs."""
    fixture = json.loads(data_path(NVML_H100).read_text())
    timing = fixture["timing_us"]
    backend = ReplayBackend(gpus=1, poll_interval=3600)
    try:
        (gpu,) = backend.inventory()
        backend.sample(gpu)  # unsupported calls discovered
        before = dict(backend.fake.calls)
        backend.sample(gpu)
        made = {k: v - before.get(k, 0) for k, v in backend.fake.calls.items()}
    finally:
        backend.close()
    price = {
        "nvmlDeviceGetTemperature": timing["nvmlDeviceGetTemperature"],
        "nvmlDeviceGetClockInfo": timing["clock:sm"],
        "nvmlDeviceGetTotalEccErrors": timing["ecc:corrected:volatile"],
        # the one-id MEMORY_TEMP batch: 3 µs measured (exporter-anchors §5.2)
        "nvmlDeviceGetFieldValues": 3.0,
    }
    total = 0.0
    for call, count in made.items():
        if count:
            total += count * float(price.get(call, timing.get(call, 0.0)))
    naive = total + sum(
        float(timing[k])
        for k in (
            "nvmlDeviceGetTotalEnergyConsumption",
            "pcie_throughput:tx",
            "pcie_throughput:rx",
            "violation:NVML_PERF_POLICY_POWER",
            "violation:NVML_PERF_POLICY_THERMAL",
            "violation:NVML_PERF_POLICY_SYNC_BOOST",
            "violation:NVML_PERF_POLICY_BOARD_LIMIT",
            "violation:NVML_PERF_POLICY_LOW_UTILIZATION",
            "violation:NVML_PERF_POLICY_RELIABILITY",
            "nvmlDeviceGetPcieReplayCounter",
        )
    )
    return {"calls": float(sum(made.values())), "scrape_us": total, "naive_us": naive}


def served_scrape_cost(
    backend: list[str], scrapes: int, ready_s: float = 30.0, scrape_timeout_s: float = 10.0
) -> dict[str, float]:
    """A ``gpu-health-exporter`` started with ``backend``'s arguments on a free port, scraped
    over HTTP ``scrapes`` times after one warm-up: the median scrape (ms), the process' CPU per
    scrape (ms, the warm-up included) and its resident memory (MB). Shared with
    ``bench_nvml_vs_nvidia_smi.py``, which runs it against a real GPU."""
    port = stack.free_port()
    command = [
        sys.executable, "-m", "gpu_health.exporter.cli", *backend,
        "--web.listen-address", f"127.0.0.1:{port}", "--log.level", "warning",
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}/metrics"

    def get() -> bytes:
        with urllib.request.urlopen(url, timeout=scrape_timeout_s) as response:
            return bytes(response.read())

    try:
        stack.wait_until(url, ready_s, process)
        get()
        cpu_before = stack.cpu_seconds(process.pid)
        http = median_seconds(get, scrapes)
        cpu_after = stack.cpu_seconds(process.pid)
        rss_kib = next(
            int(line.split()[1])
            for line in Path(f"/proc/{process.pid}/status").read_text().splitlines()
            if line.startswith("VmRSS:")
        )
    finally:
        process.terminate()
        process.wait(timeout=15)
    cpu = math.nan if cpu_before is None or cpu_after is None else cpu_after - cpu_before
    return {
        "http_ms": http * 1e3,
        "cpu_ms_per_scrape": cpu / (scrapes + 1) * 1e3,
        "rss_mb": rss_kib / 1024,
    }


def process_numbers(gpus: int, scrapes: int) -> dict[str, float]:
    """:func:`served_scrape_cost` of the recorded H100 readings' replay over ``gpus`` GPUs, and
    the resident memory of a bare Python that imported prometheus_client (the floor)."""
    python_only = subprocess.run(
        [sys.executable, "-c", "import prometheus_client, pathlib; print(next(int(l.split()[1]) "
         "for l in pathlib.Path('/proc/self/status').read_text().splitlines() "
         "if l.startswith('VmRSS:')))"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    cost = served_scrape_cost(["--backend", "replay", "--replay.gpus", str(gpus)], scrapes)
    return {"gpus": gpus, **cost, "python_rss_mb": int(python_only.stdout.strip()) / 1024}


def render(rows: list[dict[str, Any]], estimate: dict[str, float], proc: dict[str, float]) -> str:
    lines = [
        BEGIN,
        "## Exporter",
        "",
        f"Measured by `bench/bench_exporter.py` on {platform.machine()} "
        f"({os.cpu_count()} CPUs, Python {platform.python_version()}), "
        f"{time.strftime('%Y-%m-%d', time.gmtime())}. **No GPU machine was available for this "
        "run**: the replay backend serves the real H100 readings through the NVML backend's code "
        "with a fake binding, so these numbers are the exporter's own cost (collection, health, "
        "exposition) without driver time. Baseline: the same series as plain labelled "
        "`prometheus_client` Gauges rendered by the same library in the same run, timed "
        "alternately with the scrape.",
        "",
        "| backend | GPUs | series | scrape (ms, median) | baseline (ms) | ratio |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        if row.get("missing"):
            lines.append(f"| {row['backend']} | {row['gpus']} | — | not installed | — | — |")
            continue
        lines.append(
            f"| {row['backend']} | {row['gpus']} | {row['series']} | {row['scrape_ms']:.2f} | "
            f"{row['baseline_ms']:.2f} | {row['ratio']:.2f}× |"
        )
    lines += [
        "",
        f"Exporter process ({proc['gpus']:.0f} replayed GPUs): /metrics over HTTP "
        f"{proc['http_ms']:.2f} ms median, {proc['cpu_ms_per_scrape']:.2f} ms CPU per scrape, "
        f"RSS {proc['rss_mb']:.1f} MB (target < 60 MB; a bare Python importing "
        f"prometheus_client: {proc['python_rss_mb']:.1f} MB).",
        "",
        f"NVML time per scrape of one H100, estimated from recorded per-call costs: "
        f"{estimate['calls']:.0f} calls ≈ {estimate['scrape_us']:.0f} µs on the scrape path "
        f"(target < 1 ms; `nvidia-smi --query-gpu` takes ~36 000 µs). Reading the expensive "
        f"calls at scrape time as well would cost ≈ {estimate['naive_us'] / 1000:.0f} ms — "
        "which is why energy, PCIe throughput, violation time and the replay counter come from the "
        "background poller. To measure on hardware: `python bench/bench_nvml_vs_nvidia_smi.py`.",
        END,
    ]
    return "\n".join(lines) + "\n"


def write_section(path: Path, section: str) -> None:
    text = path.read_text() if path.exists() else "# Benchmarks\n\n"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        tail = rest.split(END, 1)[1].lstrip("\n")
        text = head + section + ("\n" + tail if tail else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (smoke run)")
    parser.add_argument("--write", type=Path, default=None, help="update this markdown file")
    args = parser.parse_args()
    repeat = 20 if args.quick else 200
    print("scrape latency ...", file=sys.stderr)
    rows = scrape_rows([1, 8, 64], repeat)
    print("NVML estimate ...", file=sys.stderr)
    estimate = nvml_estimate()
    print("exporter process ...", file=sys.stderr)
    proc = process_numbers(8, 20 if args.quick else 200)
    section = render(rows, estimate, proc)
    print(section)
    if args.write:
        write_section(args.write, section)
        print(f"updated {args.write}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
