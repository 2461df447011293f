"""The NVML backend against the fake binding: lost GPUs, failing calls, events, the poller."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from gpu_health.exporter.backends.nvml import NvmlBackend
from gpu_health.exporter.collector import ExporterCollector
from gpu_health.exporter.fake_nvml import FakeNvml
from gpu_health.telemetry.readings import BackendUnavailableError
from gpu_health.telemetry.xids import XID_CATALOGUE, zero_born_xids

FIXTURE = Path(__file__).parent.parent / "fixtures" / "h100" / "nvml_h100.json"


def render(collector: ExporterCollector) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    out = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def get(
    series: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> list[float]:
    return [v for (n, ls), v in series.items() if n == name and set(labels.items()) <= set(ls)]


@pytest.fixture
def fake() -> FakeNvml:
    return FakeNvml.from_file(FIXTURE, gpus=3)


@pytest.fixture
def backend(fake: FakeNvml) -> Iterator[NvmlBackend]:
    b = NvmlBackend(nvml=fake, node="n1", poll_interval=3600)
    try:
        yield b
    finally:
        b.close()


def test_lost_gpu_reads_up_0_while_the_others_are_served_and_is_retried(
    fake: FakeNvml, backend: NvmlBackend
) -> None:
    collector = ExporterCollector(backend, backend.inventory())
    fake.fail("*", gpu=1, error="GPU_IS_LOST")
    s = render(collector)
    assert get(s, "gpu_up", gpu="0") == [1] and get(s, "gpu_up", gpu="2") == [1]
    assert get(s, "gpu_up", gpu="1") == [0]
    assert get(s, "gpu_power_watts", gpu="1") == []  # no stale readings for a lost GPU
    assert len(get(s, "gpu_power_watts")) == 2
    assert get(s, "gpu_exporter_gpus", state="up") == [2]
    assert get(s, "gpu_exporter_nvml_errors_total", error="gpu_is_lost")[0] >= 1
    fake.heal()
    s = render(collector)
    assert get(s, "gpu_up", gpu="1") == [1]  # retried on the next scrape
    assert len(get(s, "gpu_power_watts")) == 3


def test_unknown_error_also_marks_the_gpu_lost(fake: FakeNvml, backend: NvmlBackend) -> None:
    collector = ExporterCollector(backend, backend.inventory())
    fake.fail("nvmlDeviceGetTemperature", gpu=2, error="UNKNOWN")
    s = render(collector)
    assert get(s, "gpu_up", gpu="2") == [0] and get(s, "gpu_up", gpu="0") == [1]


def test_a_failing_call_drops_one_series_and_is_counted(
    fake: FakeNvml, backend: NvmlBackend
) -> None:
    collector = ExporterCollector(backend, backend.inventory())
    fake.fail("nvmlDeviceGetPowerUsage", gpu=0, error="TIMEOUT")
    s = render(collector)
    assert get(s, "gpu_up", gpu="0") == [1]
    assert get(s, "gpu_power_watts", gpu="0") == []
    assert get(s, "gpu_power_watts", gpu="1") != []
    assert get(
        s, "gpu_exporter_nvml_errors_total", call="nvmlDeviceGetPowerUsage", error="timeout"
    ) == [1]
    fake.heal()
    # a timeout is not "unsupported": the call is made again and the series comes back
    assert get(render(collector), "gpu_power_watts", gpu="0") != []


def test_unsupported_calls_are_discovered_once(fake: FakeNvml, backend: NvmlBackend) -> None:
    identities = backend.inventory()
    for _ in range(5):
        for identity in identities:
            assert backend.sample(identity).fan_speed_ratio is None
    assert fake.calls["nvmlDeviceGetFanSpeed"] == len(identities)
    # injected NOT_SUPPORTED behaves the same: asked once, then omitted for good
    fake.fail("nvmlDeviceGetPerformanceState", gpu=0, error="NOT_SUPPORTED")
    before = fake.calls["nvmlDeviceGetPerformanceState"]
    for _ in range(3):
        assert backend.sample(identities[0]).performance_state is None
    assert fake.calls["nvmlDeviceGetPerformanceState"] == before + 1


def test_scrapes_never_make_the_expensive_calls(fake: FakeNvml, backend: NvmlBackend) -> None:
    collector = ExporterCollector(backend, backend.inventory())
    expensive = (
        "nvmlDeviceGetTotalEnergyConsumption",
        "nvmlDeviceGetPcieThroughput",
        "nvmlDeviceGetViolationStatus",
        "nvmlDeviceGetPcieReplayCounter",
    )
    before = {call: fake.calls.get(call, 0) for call in expensive}
    assert all(before.values())  # the start-up poll filled the cache
    s = render(collector)
    render(collector)
    assert {call: fake.calls.get(call, 0) for call in expensive} == before
    assert get(s, "gpu_energy_joules_total", gpu="0") != []
    ages = get(s, "gpu_cache_age_seconds", gpu="0", group="energy")
    assert len(ages) == 1 and 0 <= ages[0] < 60


def test_the_poller_refreshes_in_the_background(fake: FakeNvml) -> None:
    backend = NvmlBackend(nvml=fake, poll_interval=0.05, watch_events=False)
    try:
        (gpu, *_) = backend.inventory()
        fake.set(0, "nvmlDeviceGetTotalEnergyConsumption", 9_000_000)
        deadline = time.monotonic() + 5
        while backend.sample(gpu).energy_joules != 9000.0:
            assert time.monotonic() < deadline, "poller never refreshed the energy counter"
            time.sleep(0.02)
        assert backend.stats().polls_total >= 2
    finally:
        backend.close()


def test_xid_events_are_counted_per_code_with_the_last_time(
    fake: FakeNvml, backend: NvmlBackend
) -> None:
    collector = ExporterCollector(backend, backend.inventory())
    started = time.time()
    for xid in (79, 48, 79):
        fake.emit_xid(2, xid)
    deadline = time.monotonic() + 5
    while True:
        s = render(collector)
        if get(s, "gpu_xid_errors_total", gpu="2", xid="79") == [2]:
            break
        assert time.monotonic() < deadline, "XID events were not counted"
        time.sleep(0.05)
    assert get(s, "gpu_xid_errors_total", gpu="2", xid="48") == [1]
    # Every catalogued code an H100 can log exists from the start at 0 (so increase() sees a
    # first event); the NVLink5 codes only on boards that log them (test_xid_zero_born.py).
    h100 = zero_born_xids("NVIDIA H100 80GB HBM3")
    assert len(h100) == len(XID_CATALOGUE) - 7
    assert get(s, "gpu_xid_errors_total", gpu="0") == [0.0] * len(h100)
    assert get(s, "gpu_xid_errors_total", gpu="2", xid="94") == [0]
    assert get(s, "gpu_xid_class_errors_total", gpu="2", **{"class": "fallen_off_bus"}) == [2]
    assert get(s, "gpu_xid_class_errors_total", gpu="2", **{"class": "uncorrectable_ecc"}) == [1]
    assert get(s, "gpu_xid_class_errors_total", gpu="0", **{"class": "fallen_off_bus"}) == [0]
    (last,) = get(s, "gpu_last_xid_timestamp_seconds", gpu="2")
    assert started <= last <= time.time()


def test_nvml_init_failure_is_a_one_line_backend_error(fake: FakeNvml) -> None:
    fake.fail("nvmlInit", error="DRIVER_NOT_LOADED")
    with pytest.raises(BackendUnavailableError) as info:
        NvmlBackend(nvml=fake)
    assert "\n" not in str(info.value) and "Driver Not Loaded" in str(info.value)


def test_probe_reports_no_gpu_answering(fake: FakeNvml, backend: NvmlBackend) -> None:
    collector = ExporterCollector(backend, backend.inventory())
    fake.fail("*", error="GPU_IS_LOST")  # every device call on every GPU
    probe = collector.probe()
    assert (probe.up, probe.total) == (0, 3)


def test_gpm_profiling_ratios_and_pcie_rates_come_from_the_poller() -> None:
    probe = json.loads((FIXTURE.parent / "gpm_probe_h100.json").read_text())["gpm"]
    fake = FakeNvml.from_file(FIXTURE, gpus=1)
    fake.gpm = probe
    backend = NvmlBackend(nvml=fake, poll_interval=0.05, watch_events=False)
    try:
        (gpu,) = backend.inventory()
        deadline = time.monotonic() + 5
        while (sample := backend.sample(gpu)).tensor_active_ratio is None:
            assert time.monotonic() < deadline, "GPM metrics never appeared"
            time.sleep(0.02)
        assert sample.tensor_active_ratio == probe["ANY_TENSOR_UTIL"]["value"] / 100
        assert sample.graphics_engine_active_ratio == probe["GRAPHICS_UTIL"]["value"] / 100
        assert sample.dram_active_ratio == probe["DRAM_BW_UTIL"]["value"] / 100
        assert sample.pcie_tx_bytes_per_second == probe["PCIE_TX_PER_SEC"]["value"] * 2**20
        # with GPM the 21 ms-per-direction legacy throughput call is never made
        assert "nvmlDeviceGetPcieThroughput" not in fake.calls
        assert "gpm" in sample.cache_age_seconds
    finally:
        backend.close()


def test_memory_info_v2_gives_reserved_memory_when_the_driver_has_it() -> None:
    probe = json.loads((FIXTURE.parent / "gpm_probe_h100.json").read_text())
    total, reserved, free, used = (
        int(x) for x in probe["misc"]["nvmlDeviceGetMemoryInfo_v2"]["value"].strip("()").split(",")
    )
    fake = FakeNvml.from_file(FIXTURE)
    fake.set(
        0,
        "nvmlDeviceGetMemoryInfo_v2",
        {"total": total, "reserved": reserved, "free": free, "used": used},
    )
    backend = NvmlBackend(nvml=fake, watch_events=False, poll_interval=3600)
    try:
        (gpu,) = backend.inventory()
        sample = backend.sample(gpu)
    finally:
        backend.close()
    assert (sample.memory_reserved_bytes, sample.memory_used_bytes) == (reserved, used)
    assert sample.memory_total_bytes == total


def test_the_xid_79_that_announced_a_loss_stays_exported_while_the_gpu_is_lost(
    fake: FakeNvml, backend: NvmlBackend
) -> None:
    """A GPU that fell off the bus answers nothing, but its XID 79 must still be counted."""
    collector = ExporterCollector(backend, backend.inventory())
    fake.emit_xid(1, 79)
    deadline = time.monotonic() + 5
    while get(render(collector), "gpu_xid_errors_total", gpu="1", xid="79") != [1]:
        assert time.monotonic() < deadline, "XID event was not counted"
        time.sleep(0.05)
    fake.fail("*", gpu=1, error="GPU_IS_LOST")
    s = render(collector)
    assert get(s, "gpu_up", gpu="1") == [0]
    assert get(s, "gpu_xid_errors_total", gpu="1", xid="79") == [1]
    assert len(get(s, "gpu_last_xid_timestamp_seconds", gpu="1")) == 1
    assert get(s, "gpu_power_watts", gpu="1") == []


def test_a_lost_gpu_is_logged_once_not_on_every_scrape(
    fake: FakeNvml, backend: NvmlBackend, caplog: pytest.LogCaptureFixture
) -> None:
    collector = ExporterCollector(backend, backend.inventory())
    fake.fail("*", gpu=1, error="GPU_IS_LOST")
    with caplog.at_level("INFO", logger="gpu_health.exporter.collector"):
        for _ in range(5):
            render(collector)
        fake.heal()
        render(collector)
    lost = [r for r in caplog.records if r.levelname == "WARNING" and "GPU 1" in r.getMessage()]
    back = [r for r in caplog.records if "answers again" in r.getMessage()]
    assert len(lost) == 1 and len(back) == 1


def test_driver_strings_that_cannot_be_label_values_are_made_servable(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A driver's strings become label values on every series: one that is not UTF-8 (a lone
    surrogate) failed every scrape, a huge one swelled every scrape. The GPU is still served,
    with the bad bytes replaced and the value cut to 253 characters, and the log says so; the
    real H100's readings pass unchanged."""
    fixture = json.loads(FIXTURE.read_text())
    fixture["driver"] = "580\udcff"
    fixture["calls"]["nvmlDeviceGetName"] = "x" * 100_000
    fixture["calls"]["nvmlDeviceGetSerial"] = "1\udcff"
    broken = NvmlBackend(nvml=FakeNvml(fixture), node="n1", poll_interval=3600)
    try:
        with caplog.at_level("WARNING", logger="gpu_health.exporter.backend"):
            (identity,) = broken.inventory()
        registry = CollectorRegistry(auto_describe=False)
        registry.register(ExporterCollector(broken, [identity]))
        text = generate_latest(registry).decode()
    finally:
        broken.close()
    assert (identity.model, identity.serial, identity.driver_version) == (
        "x" * 253,
        "1\ufffd",
        "580\ufffd",
    )
    assert f'model="{"x" * 253}"' in text and len(text) < 200_000
    warnings = " | ".join(r.getMessage() for r in caplog.records)
    assert "GPU 0 name is 100000 characters long; serving its first 253" in warnings
    assert "GPU 0 serial is not valid UTF-8 text" in warnings

    recorded = json.loads(FIXTURE.read_text())
    calls = recorded["calls"]
    real = NvmlBackend(nvml=FakeNvml(recorded), node="n1", poll_interval=3600)
    try:
        (h100,) = real.inventory()
    finally:
        real.close()
    assert (h100.model, h100.uuid, h100.serial, h100.vbios_version, h100.pci_bus_id) == (
        calls["nvmlDeviceGetName"],
        calls["nvmlDeviceGetUUID"],
        calls["nvmlDeviceGetSerial"],
        calls["nvmlDeviceGetVbiosVersion"],
        calls["nvmlDeviceGetPciInfo"]["busId"],
    )
    assert h100.driver_version == recorded["driver"] and h100.model == "NVIDIA H100 80GB HBM3"
