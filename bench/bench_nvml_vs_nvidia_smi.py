"""On a GPU machine: the NVML backend's scrape path against ``nvidia-smi --query-gpu``.

Both read the same fields of the same GPUs in the same run; the ratio is nvidia-smi's median over
the exporter's. Also measures the exporter *process* (CPU per scrape, RSS) with ``--backend nvml``
and checks the two tools agree on the values (temperature, power, clocks, memory used).

Usage: ``python bench/bench_nvml_vs_nvidia_smi.py [--repeat N] [--write docs/benchmarks.md]``.
Without a driver it exits 1 with a one-line reason (this script needs real hardware).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench_exporter import median_seconds, served_scrape_cost
from prometheus_client import CollectorRegistry, generate_latest

from gpu_health.exporter.backends.nvml import NvmlBackend
from gpu_health.exporter.collector import ExporterCollector
from gpu_health.telemetry.readings import BackendUnavailableError

BEGIN = "<!-- exporter-hw-bench:begin -->"
END = "<!-- exporter-hw-bench:end -->"
#: nvidia-smi fields matching what one exporter scrape reads at scrape time.
QUERY = (
    "index,uuid,name,pci.bus_id,temperature.gpu,temperature.memory,power.draw,"
    "enforced.power.limit,clocks.sm,clocks.mem,pstate,utilization.gpu,utilization.memory,"
    "memory.used,memory.free,memory.total,ecc.errors.corrected.volatile.total,"
    "ecc.errors.uncorrected.volatile.total,ecc.errors.corrected.aggregate.total,"
    "ecc.errors.uncorrected.aggregate.total,pcie.link.gen.current,pcie.link.width.current,"
    "clocks_event_reasons.active"
)


def smi() -> list[list[str]]:
    out = subprocess.run(
        ["nvidia-smi", f"--query-gpu={QUERY}", "--format=csv,noheader,nounits"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [[c.strip() for c in line.split(",")] for line in out.strip().splitlines()]


def process_numbers(scrapes: int) -> dict[str, float]:
    """The NVML backend served over HTTP (:func:`bench_exporter.served_scrape_cost`)."""
    cost = served_scrape_cost(["--backend", "nvml"], scrapes, ready_s=60.0, scrape_timeout_s=30.0)
    return {
        "http_ms": cost["http_ms"],
        "cpu_ms": cost["cpu_ms_per_scrape"],
        "rss_mb": cost["rss_mb"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--write", type=Path, default=None)
    args = parser.parse_args()
    if shutil.which("nvidia-smi") is None:
        print(
            "error: nvidia-smi not found: run this on a machine with an NVIDIA driver",
            file=sys.stderr,
        )
        return 1
    try:
        backend = NvmlBackend(poll_interval=10.0)
    except BackendUnavailableError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    try:
        identities = backend.inventory()
        collector = ExporterCollector(backend, identities, version="bench")
        registry = CollectorRegistry(auto_describe=False)
        registry.register(collector)
        one_gpu = median_seconds(lambda: backend.sample(identities[0]), args.repeat)
        full = median_seconds(lambda: generate_latest(registry), args.repeat)
        sample = backend.sample(identities[0])
    finally:
        backend.close()
    smi_time = median_seconds(smi, max(20, args.repeat // 10))
    row = smi()[0]
    agree = {
        "temperature.gpu": (float(row[4]), sample.temperature_gpu_celsius, 1.0),
        "power.draw W": (float(row[6]), sample.power_watts, 15.0),
        "clocks.mem MHz": (float(row[9]), (sample.memory_clock_hertz or 0) / 1e6, 1.0),
        "memory.used MiB": (float(row[13]), (sample.memory_used_bytes or 0) / 2**20, 64.0),
    }
    proc = process_numbers(min(args.repeat, 200))
    lines = [
        BEGIN,
        "## Exporter on real hardware (NVML vs nvidia-smi)",
        "",
        f"`bench/bench_nvml_vs_nvidia_smi.py`, {len(identities)} × {identities[0].model}, "
        f"driver {identities[0].driver_version}, {time.strftime('%Y-%m-%d', time.gmtime())}.",
        "",
        "| what | median |",
        "|---|---:|",
        f"| NVML backend, scrape path of one GPU | {one_gpu * 1e3:.3f} ms |",
        f"| full /metrics render, all GPUs (in-process) | {full * 1e3:.3f} ms |",
        f"| `nvidia-smi --query-gpu` (same fields, one process) | {smi_time * 1e3:.1f} ms |",
        f"| **ratio nvidia-smi / exporter (one GPU)** | **{smi_time / one_gpu:.0f}×** |",
        f"| exporter process: /metrics over HTTP | {proc['http_ms']:.2f} ms |",
        f"| exporter process: CPU per scrape | {proc['cpu_ms']:.2f} ms |",
        f"| exporter process: RSS | {proc['rss_mb']:.1f} MB |",
        "",
        "Agreement (nvidia-smi vs exporter): "
        + "; ".join(
            f"{k} {a:g} vs {b:g}{' OK' if b is not None and abs(a - b) <= tol else ' DIFFERS'}"
            for k, (a, b, tol) in agree.items()
        ),
        END,
    ]
    section = "\n".join(lines) + "\n"
    print(section)
    if args.write:
        text = args.write.read_text() if args.write.exists() else "# Benchmarks\n\n"
        if BEGIN in text and END in text:
            head, rest = text.split(BEGIN, 1)
            text = head + section + rest.split(END, 1)[1].lstrip("\n")
        else:
            text = text.rstrip("\n") + "\n\n" + section
        args.write.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
