"""The kernel-log XID source in a running exporter, fed a kmsg-format log as the kernel writes it.

Real-format NVRM Xid and NVSwitch SXid lines are appended, as ``/dev/kmsg`` records of facility 0
(the kernel's), to a log file the exporter follows with ``--kernel-log.path``, and a running
replay exporter, whose GPU has the PCI address the lines name, must count them on that GPU. The
machine's real ``/dev/kmsg`` cannot serve here: what user space writes to it gets facility 1, and
the exporter rightly ignores such lines (``tests/exporter/test_kmsg_trust.py`` writes one there
and checks exactly that). Each test gives its GPU a random PCI domain and bus.
"""

from __future__ import annotations

import json
import random
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from gpu_health.exporter.cli import Exporter, build_parser
from gpu_health.exporter.data import NVML_H100, data_path

Series = dict[tuple[str, frozenset[tuple[str, str]]], float]


class KernelLogFile:
    """A kmsg-format log the test appends to; its first record is number 0, as after boot."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.seq = 0
        path.write_bytes(b"")
        self.write("Linux version 6.0.0 (test)", level=5)

    def write(self, line: str, facility: int = 0, level: int = 4) -> None:
        """One record ``PRI,SEQ,USEC,FLAGS;TEXT`` timed now on the kernel's clock."""
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        with self.path.open("a") as handle:
            handle.write(f"{facility * 8 + level},{self.seq},{usec},-;{line}\n")
        self.seq += 1


class Gpu:
    """A replay GPU at a PCI address unique to this test run, and the kernel log it logs to."""

    def __init__(self, tmp_path: Path) -> None:
        rng = random.Random()
        self.domain = rng.randrange(0x1000, 0xFFFF)
        self.bus = rng.randrange(0x10, 0xFF)
        fixture = json.loads(data_path(NVML_H100).read_text())
        pci = fixture["calls"]["nvmlDeviceGetPciInfo"]
        pci["busId"] = f"{self.domain:08X}:{self.bus:02X}:00.0"
        pci["busIdLegacy"] = f"{self.domain:04X}:{self.bus:02X}:00.0"
        pci["domain"], pci["bus"], pci["device"] = self.domain, self.bus, 0
        self.fixture = tmp_path / "nvml.json"
        self.fixture.write_text(json.dumps(fixture))
        self.log = KernelLogFile(tmp_path / "kmsg")

    @property
    def xid_address(self) -> str:
        """The address as the driver prints it in an Xid line: domain:bus:device."""
        return f"{self.domain:04x}:{self.bus:02x}:00"

    def xid(self, code: int, text: str) -> None:
        self.log.write(f"NVRM: Xid (PCI:{self.xid_address}): {code}, pid='<unknown>', {text}")


def start_exporter(gpu: Gpu, *extra: str) -> Exporter:
    args = build_parser().parse_args(
        ["--backend", "replay", "--replay.fixture", str(gpu.fixture),
         "--kernel-log.path", str(gpu.log.path), "--web.listen-address", "127.0.0.1:0",
         "--node-name", "kmsg-node", *extra]
    )  # fmt: skip
    return Exporter(args).start()


@pytest.fixture
def gpu(tmp_path: Path) -> Gpu:
    return Gpu(tmp_path)


@pytest.fixture
def exporter(gpu: Gpu) -> Iterator[Exporter]:
    exporter = start_exporter(gpu)
    try:
        yield exporter
    finally:
        exporter.close()


def scrape(exporter: Exporter) -> Series:
    with urllib.request.urlopen(f"http://127.0.0.1:{exporter.port}/metrics") as response:
        text = response.read().decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(series: Series, name: str, **labels: str) -> float | None:
    found = [v for (n, ls), v in series.items() if n == name and set(labels.items()) <= ls]
    assert len(found) <= 1, (name, labels, found)
    return found[0] if found else None


def wait_for(exporter: Exporter, name: str, expected: float, **labels: str) -> Series:
    deadline = time.monotonic() + 10
    while True:
        series = scrape(exporter)
        if value(series, name, **labels) == expected:
            return series
        assert time.monotonic() < deadline, (name, labels, value(series, name, **labels))
        time.sleep(0.1)


def test_xid_and_sxid_lines_in_the_kernel_log_are_counted_on_the_right_gpu(
    gpu: Gpu, exporter: Exporter
) -> None:
    series = scrape(exporter)
    assert value(series, "gpu_exporter_source_info", source="kernel_log_kmsg") == 1
    assert value(series, "gpu_exporter_source_info", source="replay") == 1
    assert value(series, "gpu_xid_errors_total", gpu="0", xid="79") == 0  # born at zero
    started = time.time()
    gpu.xid(79, "name=<unknown>, GPU has fallen off the bus.")
    series = wait_for(exporter, "gpu_xid_errors_total", 1, gpu="0", xid="79")
    assert value(series, "gpu_xid_class_errors_total", gpu="0", **{"class": "fallen_off_bus"}) == 1
    last = value(series, "gpu_last_xid_timestamp_seconds", gpu="0")
    assert last is not None and started - 2 <= last <= time.time() + 2
    # an uncatalogued code: counted under its number, classed by its text
    gpu.xid(131, "name=python3, Uncontained: LTC TAG (0x2,0x0). RST: Yes, D-RST: No")
    series = wait_for(exporter, "gpu_xid_errors_total", 1, gpu="0", xid="131")
    assert value(series, "gpu_xid_class_errors_total", gpu="0", **{"class": "uncontained_ecc"}) == 1

    rng = random.Random()
    switch, code = rng.randrange(0, 64), rng.randrange(10_000, 99_999)
    gpu.log.write(
        f"nvidia-nvswitch{switch}: SXid (PCI:{gpu.domain:04x}:{gpu.bus + 1:02x}:00.0): "
        f"{code}, Non-fatal, Link 32 egress non-posted PRIV error (First)"
    )
    wait_for(exporter, "nvswitch_sxid_errors_total", 1, nvswitch=str(switch), sxid=str(code))


def test_xid_at_an_unknown_address_counts_under_gpu_unknown(gpu: Gpu, exporter: Exporter) -> None:
    def unknown(series: Series) -> float:
        return value(series, "gpu_xid_errors_total", gpu="unknown", xid="48") or 0.0

    before = unknown(scrape(exporter))
    gpu.log.write(
        f"NVRM: Xid (PCI:{gpu.domain:04x}:{(gpu.bus + 2) % 256:02x}:00): 48, pid=1, "
        "name=x, An uncorrectable double bit error (DBE) has been detected on GPU"
    )
    deadline = time.monotonic() + 10
    while unknown(series := scrape(exporter)) < before + 1:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert value(series, "gpu_xid_errors_total", gpu="0", xid="48") == 0


def test_exporter_restart_between_two_xids_counts_two(gpu: Gpu) -> None:
    first = start_exporter(gpu)
    try:
        gpu.xid(48, "name=<unknown>, An uncorrectable double bit error (DBE) has been detected")
        wait_for(first, "gpu_xid_errors_total", 1, gpu="0", xid="48")
    finally:
        first.close()
    # the second XID arrives while no exporter runs
    gpu.xid(48, "name=<unknown>, An uncorrectable double bit error (DBE) has been detected")
    second = start_exporter(gpu)
    try:
        # the backlog is read before the first scrape is served: 2 at once, never 1 then 2
        series = scrape(second)
        assert value(series, "gpu_xid_errors_total", gpu="0", xid="48") == 2
        time.sleep(0.5)
        assert value(scrape(second), "gpu_xid_errors_total", gpu="0", xid="48") == 2
    finally:
        second.close()


def test_an_xid_seen_by_nvml_and_the_kernel_log_is_counted_once(
    gpu: Gpu, exporter: Exporter
) -> None:
    exporter.backend.fake.emit_xid(0, 74)  # type: ignore[attr-defined]
    gpu.xid(74, "name=<unknown>, NVLink: fatal error detected on link 1")
    assert exporter.kernel_log is not None
    deadline = time.monotonic() + 10
    while True:
        kernel = exporter.kernel_log.counts.for_gpu(exporter.identities[0].pci_bus_id)
        nvml = exporter.backend._devices[exporter.identities[0].uuid].xid_counts  # type: ignore[attr-defined]
        if kernel is not None and kernel.codes.get(74) == 1 and nvml.get(74) == 1:
            break
        assert time.monotonic() < deadline, (kernel, nvml)
        time.sleep(0.05)
    series = scrape(exporter)
    assert value(series, "gpu_xid_errors_total", gpu="0", xid="74") == 1
    assert value(series, "gpu_xid_class_errors_total", gpu="0", **{"class": "interconnect"}) == 1


def test_disabled_kernel_log_is_not_read(gpu: Gpu) -> None:
    exporter = start_exporter(gpu, "--kernel-log.disable")
    try:
        gpu.xid(79, "name=<unknown>, GPU has fallen off the bus.")
        time.sleep(0.5)
        series = scrape(exporter)
        assert value(series, "gpu_xid_errors_total", gpu="0", xid="79") == 0
        assert value(series, "gpu_exporter_source_info", source="kernel_log_kmsg") == 0
        assert value(series, "nvswitch_sxid_errors_total") is None
    finally:
        exporter.close()


def test_a_lost_gpu_keeps_its_kernel_log_xids(gpu: Gpu) -> None:
    # NVML loses the GPU right after start-up and never delivers an event; the kernel log has
    # the XID 79 that announced it, so the counter is still served next to gpu_up 0.
    exporter = start_exporter(gpu, "--replay.fault", "*@0=GPU_IS_LOST")
    try:
        gpu.xid(79, "name=<unknown>, GPU has fallen off the bus.")
        series = wait_for(exporter, "gpu_xid_errors_total", 1, gpu="0", xid="79")
        assert value(series, "gpu_up", gpu="0") == 0
        assert value(series, "gpu_power_watts", gpu="0") is None
    finally:
        exporter.close()
