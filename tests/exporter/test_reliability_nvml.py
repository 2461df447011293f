"""Every NVML call failing in turn, with every error kind: the exporter keeps serving the rest.

Through the exporter's own pieces end to end (fault-injecting fake ``pynvml`` -> NvmlBackend ->
ExporterCollector -> the shared HTTP server -> /metrics parsed by the Prometheus parser), one GPU
of three broken at a time. What must hold for every (call, error): the scrape answers 200, the two
healthy GPUs expose exactly the series they exposed before, the broken GPU shows either ``gpu_up
0`` or a subset of its series (never a made-up value), and after the fault heals it comes back.
"""

from __future__ import annotations

import http.client
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from gpu_health.exporter.backends.nvml import NvmlBackend
from gpu_health.exporter.collector import ExporterCollector
from gpu_health.exporter.fake_nvml import FakeNvml
from gpu_health.web import server as web

FIXTURE = Path(__file__).parent.parent / "fixtures" / "h100" / "nvml_h100.json"
#: NOT_SUPPORTED last: the backend remembers it for the process' life by design.
ERRORS = ("GPU_IS_LOST", "UNKNOWN", "TIMEOUT", "NOT_SUPPORTED")
#: Per-device and system calls of the binding (nvmlInit is the start-up test below).
CALLS = sorted(
    name
    for name in dir(FakeNvml)
    if name.startswith(("nvmlDevice", "nvmlSystem")) and name != "nvmlDeviceGetCount"
)
BROKEN = "1"

Series = dict[tuple[str, frozenset[tuple[str, str]]], float]


class Exporter:
    """The exporter's scrape path on a real HTTP server, over a fake NVML with 3 GPUs."""

    def __init__(self, fake: FakeNvml) -> None:
        self.fake = fake
        self.backend = NvmlBackend(nvml=fake, node="n1", poll_interval=3600, watch_events=False)
        registry = CollectorRegistry(auto_describe=False)
        registry.register(ExporterCollector(self.backend, self.backend.inventory()))
        routes = {"/metrics": web.metrics_handler(registry)}
        self.server = web.WebServer("127.0.0.1:0", routes).start()

    def scrape(self) -> Series:
        conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=10)
        try:
            conn.request("GET", "/metrics")
            resp = conn.getresponse()
            body = resp.read().decode()
            assert resp.status == 200, body[:200]
        finally:
            conn.close()
        return {
            (s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(body)
            for s in family.samples
        }

    def close(self) -> None:
        self.server.shutdown()
        self.backend.close()


def per_gpu(series: Series, gpu: str) -> set[tuple[str, frozenset[tuple[str, str]]]]:
    return {
        key for key in series if ("gpu", gpu) in key[1] and not key[0].startswith("gpu_exporter")
    }


def up(series: Series, gpu: str) -> float:
    return next(v for (n, ls), v in series.items() if n == "gpu_up" and ("gpu", gpu) in ls)


@pytest.fixture
def exporter() -> Iterator[Exporter]:
    ex = Exporter(FakeNvml.from_file(FIXTURE, gpus=3))
    try:
        yield ex
    finally:
        ex.close()


@pytest.fixture
def baseline(exporter: Exporter) -> Series:
    exporter.scrape()  # the first scrape settles what is unsupported on this GPU model
    return exporter.scrape()


@pytest.mark.parametrize("call", CALLS)
def test_each_call_failing_on_one_gpu_spares_the_others(
    exporter: Exporter, baseline: Series, call: str
) -> None:
    healthy = {gpu: per_gpu(baseline, gpu) for gpu in ("0", "2")}
    broken_before = per_gpu(baseline, BROKEN)
    for error in ERRORS:
        exporter.fake.fail(call, gpu=int(BROKEN), error=error)
        try:
            for _ in range(2):  # the first failure and the steady state after it
                series = exporter.scrape()
                for gpu, expected in healthy.items():
                    assert per_gpu(series, gpu) == expected, f"{call} {error}: GPU {gpu} changed"
                    assert up(series, gpu) == 1
                broken = per_gpu(series, BROKEN)
                assert broken <= broken_before, f"{call} {error}: new series on the broken GPU"
                if up(series, BROKEN) == 1:
                    for key in broken & broken_before:
                        if key[0] in {"gpu_info", "gpu_up"}:
                            assert series[key] == baseline[key]
        finally:
            exporter.fake.heal()
        # Healed: the broken GPU is back with its series (a NOT_SUPPORTED answer is remembered
        # for the process' life by design, so only that error may leave a series missing).
        series = exporter.scrape()
        series = exporter.scrape()
        assert up(series, BROKEN) == 1, f"{call} {error}: GPU did not come back"
        if error != "NOT_SUPPORTED":
            missing = {k[0] for k in broken_before - per_gpu(series, BROKEN)}
            assert not missing, f"{call} {error}: still missing after heal: {sorted(missing)}"


def test_all_gpus_lost_then_driver_back(exporter: Exporter, baseline: Series) -> None:
    """A driver reload: every call fails (lost, then uninitialised) and then everything answers."""
    for error in ("GPU_IS_LOST", "UNINITIALIZED", "DRIVER_NOT_LOADED"):
        exporter.fake.fail("*", error=error)
        try:
            series = exporter.scrape()  # the endpoint answers; the exporter says what it knows
            assert all(up(series, gpu) == 0 for gpu in ("0", "1", "2")) or error != "GPU_IS_LOST"
        finally:
            exporter.fake.heal()
        series = exporter.scrape()
        series = exporter.scrape()
        assert all(up(series, gpu) == 1 for gpu in ("0", "1", "2")), error


@pytest.mark.parametrize("call", ["nvmlDeviceGetUUID", "nvmlDeviceGetName", "nvmlDeviceGetPciInfo"])
def test_gpu_failing_at_start_up_does_not_stop_the_exporter(call: str) -> None:
    fake = FakeNvml.from_file(FIXTURE, gpus=3)
    fake.fail(call, gpu=1, error="GPU_IS_LOST")
    ex = Exporter(fake)
    try:
        series = ex.scrape()
        assert up(series, "0") == 1 and up(series, "2") == 1
    finally:
        ex.close()


def test_the_fault_injection_bites(exporter: Exporter, baseline: Series) -> None:
    """Guards the loop above against passing vacuously: a scrape-path call really breaks GPU 1."""
    exporter.fake.fail("nvmlDeviceGetPowerUsage", gpu=1, error="GPU_IS_LOST")
    assert up(exporter.scrape(), BROKEN) == 0
    exporter.fake.fail("nvmlDeviceGetPowerUsage", gpu=1, error="TIMEOUT")
    series = exporter.scrape()
    assert up(series, BROKEN) == 1
    assert not [k for k in per_gpu(series, BROKEN) if k[0] == "gpu_power_watts"]
    errors = [v for (n, _), v in series.items() if n == "gpu_exporter_nvml_errors_total"]
    assert sum(errors) >= 1
