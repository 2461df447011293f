"""The replay backend serves the recorded H100 readings exactly, over real HTTP."""

from __future__ import annotations

import itertools
import json
import math
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from gpu_health.exporter.backends.replay import ReplayBackend, load_trace
from gpu_health.exporter.cli import Exporter, build_parser
from gpu_health.telemetry.catalogue import CATALOGUE

FIXTURE = Path(__file__).parent.parent / "fixtures" / "h100" / "nvml_h100.json"
TRACE = Path(__file__).parent.parent / "fixtures" / "h100" / "h100_load_trace.csv"
CALLS = json.loads(FIXTURE.read_text())["calls"]

Series = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(port: int, path: str = "/metrics") -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def parse(text: str) -> Series:
    series: Series = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            series[(s.name, frozenset(s.labels.items()))] = s.value
    return series


def value(series: Series, name: str, **labels: str) -> float:
    matches = [v for (n, ls), v in series.items() if n == name and set(labels.items()) <= set(ls)]
    assert len(matches) == 1, f"{name}{labels}: {len(matches)} series"
    return matches[0]


def names(series: Series) -> set[str]:
    return {n for n, _ in series}


@pytest.fixture
def exporter() -> Iterator[Exporter]:
    args = build_parser().parse_args(
        [
            "--backend",
            "replay",
            "--replay.fixture",
            str(FIXTURE),
            "--replay.gpus",
            "2",
            "--web.listen-address",
            "127.0.0.1:0",
            "--node-name",
            "node-a",
        ]
    )
    exp = Exporter(args).start()
    try:
        yield exp
    finally:
        exp.close()


def test_metrics_carry_the_fixture_values_exactly(exporter: Exporter) -> None:
    status, text = scrape(exporter.port)
    assert status == 200
    s = parse(text)
    gpu0 = {"gpu": "0", "uuid": CALLS["nvmlDeviceGetUUID"], "node": "node-a"}
    assert value(s, "gpu_up", **gpu0) == 1
    assert value(s, "gpu_temperature_celsius", sensor="gpu", **gpu0) == CALLS["temp_gpu"]
    memory_temp = CALLS["field_values"]["NVML_FI_DEV_MEMORY_TEMP"]["value"]
    assert value(s, "gpu_temperature_celsius", sensor="memory", **gpu0) == memory_temp
    assert value(s, "gpu_power_watts", **gpu0) == CALLS["nvmlDeviceGetPowerUsage"] / 1000
    assert (
        value(s, "gpu_power_limit_watts", **gpu0) == CALLS["nvmlDeviceGetEnforcedPowerLimit"] / 1000
    )
    assert (
        value(s, "gpu_energy_joules_total", **gpu0)
        == CALLS["nvmlDeviceGetTotalEnergyConsumption"] / 1000
    )
    assert value(s, "gpu_clock_hertz", clock="sm", **gpu0) == CALLS["clock_sm"] * 1e6
    assert value(s, "gpu_clock_hertz", clock="memory", **gpu0) == CALLS["clock_mem"] * 1e6
    assert value(s, "gpu_clock_max_hertz", clock="sm", **gpu0) == CALLS["maxclock_sm"] * 1e6
    memory = CALLS["nvmlDeviceGetMemoryInfo"]
    assert value(s, "gpu_memory_used_bytes", **gpu0) == memory["used"]
    assert value(s, "gpu_memory_free_bytes", **gpu0) == memory["free"]
    assert value(s, "gpu_memory_total_bytes", **gpu0) == memory["total"]
    assert value(s, "gpu_performance_state", **gpu0) == CALLS["nvmlDeviceGetPerformanceState"]
    assert value(s, "gpu_clock_event_active", reason="gpu_idle", **gpu0) == (
        CALLS["nvmlDeviceGetCurrentClocksEventReasons"] & 1
    )
    low_util = CALLS["violation_NVML_PERF_POLICY_LOW_UTILIZATION"]["violationTime"] / 1e9
    assert value(s, "gpu_clock_event_seconds_total", reason="low_utilization", **gpu0) == low_util
    _corr, unc, pending, failed = CALLS["nvmlDeviceGetRemappedRows"]
    assert value(s, "gpu_remapped_rows_total", cause="uncorrectable", **gpu0) == unc
    assert value(s, "gpu_row_remap_pending", **gpu0) == pending
    assert value(s, "gpu_row_remap_failed", **gpu0) == failed
    assert (
        value(s, "gpu_ecc_errors_total", type="corrected", scope="volatile", **gpu0)
        == CALLS["ecc_corrected_volatile"]
    )
    assert (
        value(s, "gpu_pcie_link_generation", **gpu0) == CALLS["nvmlDeviceGetCurrPcieLinkGeneration"]
    )
    assert value(s, "gpu_pcie_link_width", **gpu0) == CALLS["nvmlDeviceGetCurrPcieLinkWidth"]
    assert value(s, "gpu_pcie_replays_total", **gpu0) == CALLS["nvmlDeviceGetPcieReplayCounter"]
    assert (
        value(s, "gpu_pcie_throughput_bytes_per_second", direction="tx", **gpu0)
        == CALLS["pcie_throughput_tx"] * 1024
    )
    thresholds = {
        "slowdown": "NVML_TEMPERATURE_THRESHOLD_SLOWDOWN",
        "shutdown": "NVML_TEMPERATURE_THRESHOLD_SHUTDOWN",
        "memory_max": "NVML_TEMPERATURE_THRESHOLD_MEM_MAX",
        "gpu_max_operating": "NVML_TEMPERATURE_THRESHOLD_GPU_MAX",
    }
    for label, key in thresholds.items():
        assert value(s, "gpu_temperature_threshold_celsius", threshold=label, **gpu0) == CALLS[key]
    info = value(
        s,
        "gpu_info",
        driver_version="580.159.04",
        vbios_version=CALLS["nvmlDeviceGetVbiosVersion"],
        serial=CALLS["nvmlDeviceGetSerial"],
        model=CALLS["nvmlDeviceGetName"],
        pci_bus_id=CALLS["nvmlDeviceGetPciInfo"]["busId"],
        **gpu0,
    )
    assert info == 1
    # the second GPU is a distinct series with the same readings
    assert value(s, "gpu_power_watts", gpu="1") == CALLS["nvmlDeviceGetPowerUsage"] / 1000
    assert value(s, "gpu_exporter_gpus", state="up") == 2
    assert value(s, "gpu_exporter_build_info", backend="replay") == 1
    assert all(v >= 0 for (n, _), v in s.items() if n == "gpu_cache_age_seconds")


def test_unsupported_fields_are_absent_not_zero(exporter: Exporter) -> None:
    s = parse(scrape(exporter.port)[1])
    # The H100 fixture answers NOT_SUPPORTED for fan, retired pages and every NVLink.
    assert CALLS["nvmlDeviceGetFanSpeed"] is None
    for absent in (
        "gpu_fan_speed_ratio",
        "gpu_retired_pages",
        "gpu_retired_pages_pending",
        "gpu_nvlink_errors_total",
        "gpu_nvlink_bytes_total",
    ):
        assert absent not in names(s), absent
    # XIDs are watched (events), so every catalogued code is there at 0 rather than absent.
    assert value(s, "gpu_xid_errors_total", gpu="0", xid="79") == 0
    # ... and the exporter says how many calls it stopped making per GPU
    assert value(s, "gpu_exporter_unsupported_calls", gpu="0") >= 4
    # every other catalogue family with data in the fixture is present
    present = {spec.name for spec in CATALOGUE} & names(s)
    assert {
        "gpu_up",
        "gpu_power_watts",
        "gpu_energy_joules_total",
        "gpu_remapped_rows_total",
    } <= present


def test_healthz_and_landing_page(exporter: Exporter) -> None:
    status, body = scrape(exporter.port, "/healthz")
    assert (status, body) == (200, "ok: 2/2 GPUs answering\n")
    status, body = scrape(exporter.port, "/")
    assert status == 200 and 'href="/metrics"' in body
    assert scrape(exporter.port, "/nope")[0] == 404


def test_trace_replay_follows_the_recorded_load() -> None:
    rows = load_trace(TRACE)
    now = [1000.0]
    backend = ReplayBackend(
        trace=TRACE, rate=1.0, clock=lambda: now[0], poll_interval=3600, fixture=FIXTURE
    )
    try:
        (gpu,) = backend.inventory()
        for t in (0.0, 42.0, 99.0):
            now[0] = 1000.0 + t
            row = next(r for r in reversed(rows) if r.t <= t)
            sample = backend.sample(gpu)
            assert sample.power_watts == pytest.approx(row.power_w, abs=1e-3)
            assert sample.temperature_gpu_celsius == row.gpu_temp_c
            assert sample.sm_clock_hertz == row.sm_clock_mhz * 1e6
            assert sample.clock_event_reasons == row.clock_event_reasons
            assert sample.memory_used_bytes == row.mem_used_mib * 1024 * 1024
        # under load the trace sits at the power cap (reason 0x4), idle it does not
        now[0] = 1000.0 + 42.0
        assert backend.sample(gpu).clock_event_reasons == 4
    finally:
        backend.close()


def test_health_series_are_served_for_the_replayed_h100(tmp_path: Path) -> None:
    args = build_parser().parse_args(
        ["--backend", "replay", "--replay.fixture", str(FIXTURE), "--replay.trace", str(TRACE),
         "--replay.rate", "20", "--web.listen-address", "127.0.0.1:0"]
    )  # fmt: skip
    exp = Exporter(args).start()
    try:
        assert exp.collector.health is not None, "health model not wired"
        s = parse(scrape(exp.port)[1])
    finally:
        exp.close()
    dimensions = {dict(ls)["dimension"] for (n, ls), _ in s.items() if n == "gpu_health_score"}
    assert dimensions == {"overall", "thermal", "memory", "power", "performance", "reliability"}
    overall = value(s, "gpu_health_score", dimension="overall", gpu="0")
    assert 0 <= overall <= 100
    grades = [v for (n, ls), v in s.items() if n == "gpu_health_grade"]
    assert sorted(grades) == [0, 0, 0, 0, 1]
    # the recorded H100 is healthy: power capping under load is normal, not a fault
    (grade,) = [dict(ls)["grade"] for (n, ls), v in s.items() if n == "gpu_health_grade" and v]
    assert grade in ("excellent", "good"), grade
    assert value(s, "gpu_exporter_scrape_collector_success", collector="health") == 1


def test_a_lost_gpu_is_scored_with_the_lost_cap() -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    from gpu_health.exporter.collector import ExporterCollector
    from gpu_health.health.model import HealthTracker
    from gpu_health.health.policy import load_policy

    backend = ReplayBackend(fixture=FIXTURE, gpus=2, poll_interval=3600)
    try:
        collector = ExporterCollector(
            backend, backend.inventory(), HealthTracker(load_policy(None))
        )
        registry = CollectorRegistry(auto_describe=False)
        registry.register(collector)
        healthy = parse(generate_latest(registry).decode())
        backend.fake.fail("*", gpu=1, error="GPU_IS_LOST")
        s = parse(generate_latest(registry).decode())
    finally:
        backend.close()
    assert value(s, "gpu_up", gpu="1") == 0
    lost = value(s, "gpu_health_score", dimension="overall", gpu="1")
    assert lost < value(healthy, "gpu_health_score", dimension="overall", gpu="1")
    assert value(s, "gpu_health_score", dimension="overall", gpu="0") == value(
        healthy, "gpu_health_score", dimension="overall", gpu="0"
    )
    assert any(
        n == "gpu_health_penalty"
        and dict(ls).get("reason") == "gpu_lost"
        and dict(ls)["gpu"] == "1"
        for (n, ls), _ in s.items()
    )


def test_pod_attribution_is_an_info_series_joined_on_uuid() -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    from gpu_health.exporter.collector import ExporterCollector
    from gpu_health.exporter.kube.podresources import Allocation, PodAttribution

    backend = ReplayBackend(fixture=FIXTURE, gpus=2, poll_interval=3600)
    try:
        identities = backend.inventory()
        held = identities[1]
        pods = PodAttribution(
            fetch=lambda: [
                Allocation("ml", "train-0", "trainer", "nvidia.com/gpu", held.uuid),
                Allocation("ml", "train-0", "trainer", "example.com/nic", "eth1"),
            ]
        )
        pods.refresh()
        registry = CollectorRegistry(auto_describe=False)
        registry.register(ExporterCollector(backend, identities, pods=pods))
        s = parse(generate_latest(registry).decode())
    finally:
        backend.close()
    (labels,) = [dict(ls) for (n, ls), _ in s.items() if n == "gpu_pod_info"]
    assert (labels["uuid"], labels["namespace"], labels["pod"], labels["container"]) == (
        held.uuid, "ml", "train-0", "trainer",
    )  # fmt: skip
    # GPU series keep their labels: no pod labels that would churn series as pods come and go
    assert all("pod" not in dict(ls) for (n, ls), _ in s.items() if n == "gpu_power_watts")
    assert value(s, "gpu_exporter_pod_resources_errors_total") == 0


def test_an_unreachable_kubelet_is_counted_not_fatal(tmp_path: Path) -> None:
    args = build_parser().parse_args(
        ["--backend", "replay", "--replay.fixture", str(FIXTURE),
         "--web.listen-address", "127.0.0.1:0",
         "--kubernetes.pod-resources-socket", str(tmp_path / "kubelet.sock")]
    )  # fmt: skip
    exp = Exporter(args).start()
    try:
        s = parse(scrape(exp.port)[1])
    finally:
        exp.close()
    assert value(s, "gpu_exporter_pod_resources_errors_total") >= 1
    assert value(s, "gpu_up", gpu="0") == 1
    assert "gpu_pod_info" not in names(s)


def test_bundled_readings_are_the_test_fixtures() -> None:
    from gpu_health.exporter.data import H100_LOAD_TRACE, NVML_H100, data_path

    assert data_path(NVML_H100).read_bytes() == FIXTURE.read_bytes()
    assert data_path(H100_LOAD_TRACE).read_bytes() == TRACE.read_bytes()


CALLS_PCI = json.loads(FIXTURE.read_text())["calls"]["nvmlDeviceGetPciInfo"]


def _bundled_with(**changes: object) -> str:
    """The bundled H100 fixture as text, with calls (or, for ``driver`` and ``cuda_driver``,
    the top-level key) replaced; ``None`` removes the key."""
    fixture = json.loads(FIXTURE.read_text())
    for key, value in changes.items():
        table = fixture if key in ("driver", "cuda_driver") else fixture["calls"]
        if value is None:
            del table[key]
        else:
            table[key] = value
    return json.dumps(fixture)


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("[1, 2]", 'a JSON object with a "calls" object'),
        ('{"calls": ' + "[" * 100_000 + "]" * 100_000 + "}", "nested too deeply"),
        ("{", "Expecting"),
        ('{"calls": {}, "gpm": [1]}', '"gpm" must be an object'),
        # Each of these was a traceback: at start (no driver version), or on every scrape in
        # the collector's thread, which then served the GPU without readings.
        (_bundled_with(driver=None), "driver: missing"),
        (
            _bundled_with(nvmlDeviceGetPowerUsage="700W"),
            "calls.nvmlDeviceGetPowerUsage: expected a number, found a string",
        ),
        (
            _bundled_with(nvmlDeviceGetMemoryInfo={"total": "80GB", "used": 1, "free": 1}),
            "calls.nvmlDeviceGetMemoryInfo.total: expected a number, found a string",
        ),
        (
            _bundled_with(nvmlDeviceGetFanSpeed=[40]),
            "calls.nvmlDeviceGetFanSpeed: expected a number, found a list",
        ),
        # Label values: a lone surrogate (JSON's \udcff escape) failed every scrape, a huge
        # name made an 11 MB /metrics, a cuda_driver of NaN was a traceback at start.
        (_bundled_with(nvmlDeviceGetName="x" * 100_000), "calls.nvmlDeviceGetName: 100,000 ch"),
        (_bundled_with(nvmlDeviceGetSerial="1\udcff"), "calls.nvmlDeviceGetSerial: not valid UTF"),
        (_bundled_with(nvmlDeviceGetSerial="1" * 250), "calls.nvmlDeviceGetSerial: 250 characters"),
        (_bundled_with(nvmlDeviceGetUUID="GPU-\ud800"), "calls.nvmlDeviceGetUUID: not valid UTF"),
        (_bundled_with(nvmlDeviceGetVbiosVersion="9" * 254), "calls.nvmlDeviceGetVbiosVersion: 2"),
        (
            _bundled_with(nvmlDeviceGetPciInfo={**CALLS_PCI, "busId": "0\udcff"}),
            "calls.nvmlDeviceGetPciInfo.busId: not valid UTF-8 text",
        ),
        (_bundled_with(driver="580\udcff"), "driver: not valid UTF-8 text"),
        (_bundled_with(driver="5" * 254), "driver: 254 characters long"),
        (_bundled_with(cuda_driver=math.nan), "cuda_driver: expected a whole number"),
        (_bundled_with(cuda_driver=10**300), "cuda_driver: expected a whole number"),
    ],
    ids=[
        "list",
        "deep",
        "truncated",
        "gpm",
        "no-driver",
        "power-text",
        "memory-text",
        "fan",
        "long-name",
        "serial-not-utf8",
        "long-serial",
        "uuid-not-utf8",
        "long-vbios",
        "bus-id-not-utf8",
        "driver-not-utf8",
        "long-driver",
        "cuda-nan",
        "cuda-huge",
    ],
)
def test_a_broken_fixture_is_one_line(tmp_path: Path, content: str, fragment: str) -> None:
    from gpu_health.telemetry.readings import BackendUnavailableError

    path = tmp_path / "fixture.json"
    path.write_text(content)
    with pytest.raises(BackendUnavailableError, match=fragment) as info:
        ReplayBackend(fixture=path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(BackendUnavailableError, match="not a regular file"):
        ReplayBackend(fixture=Path("/dev/zero"))


def _trace_with(line: int, column: str, cell: str) -> str:
    """The bundled load trace as text with one cell of line ``line`` (1 = the header)
    replaced."""
    rows = TRACE.read_text().splitlines()
    header = rows[0].split(",")
    cells = rows[line - 1].split(",")
    cells[header.index(column)] = cell
    rows[line - 1] = ",".join(cells)
    return "\n".join(rows) + "\n"


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("x,y\n1,2\n", "line 1: not a load trace (a trace has the columns t, gpu_temp_c"),
        (
            "\n".join(r.rsplit(",", 1)[0] for r in TRACE.read_text().splitlines()) + "\n",
            "line 1: no column pstate (",
        ),
        (_trace_with(3, "gpu_temp_c", "nan"), "line 3: gpu_temp_c 'nan': expected a number"),
        (_trace_with(3, "power_w", "72456"), "line 3: power_w '72456': expected a number from 0"),
        (_trace_with(4, "util_gpu_pct", ""), "line 4: util_gpu_pct '': expected a number"),
        (_trace_with(5, "t", "0.0"), "line 5: t 0 is before the line above's 0.2"),
    ],
    ids=["other-csv", "no-pstate", "nan", "milliwatts", "empty-cell", "time-backwards"],
)
def test_a_broken_trace_is_one_line_naming_the_line(
    tmp_path: Path, content: str, fragment: str
) -> None:
    """A trace without a column was a KeyError printed as ``'t'``; a nan or a milliwatt
    reading was served as the GPU's; a time going backwards made the replay bisect an
    unsorted list."""
    from gpu_health.telemetry.readings import BackendUnavailableError

    path = tmp_path / "trace.csv"
    path.write_text(content)
    with pytest.raises(BackendUnavailableError, match=re.escape(fragment)) as info:
        load_trace(path)
    assert str(info.value).startswith(f"cannot read replay trace {path}: ")
    assert "\n" not in str(info.value)


def test_the_bundled_trace_loads_whole() -> None:
    rows = load_trace(TRACE)
    assert len(rows) == len(TRACE.read_text().splitlines()) - 1
    assert all(a.t <= b.t for a, b in itertools.pairwise(rows))


def test_fixture_label_values_at_their_bounds_are_served(tmp_path: Path) -> None:
    """The bounds refuse only what cannot be served: a UTF-8 name of 253 characters and a
    serial of 249 are served (a clone of --replay.gpus appends its number, up to 4 digits, to
    the serial: 4,096 clones take seconds to build, so two here)."""
    fixture = json.loads(FIXTURE.read_text())
    fixture["calls"]["nvmlDeviceGetName"] = "NVIDIA Grüße " + "x" * 240
    fixture["calls"]["nvmlDeviceGetSerial"] = "1" * 249
    path = tmp_path / "fixture.json"
    path.write_text(json.dumps(fixture))
    backend = ReplayBackend(fixture=path, gpus=2, poll_interval=3600)
    try:
        identities = backend.inventory()
    finally:
        backend.close()
    assert [i.model for i in identities] == [fixture["calls"]["nvmlDeviceGetName"]] * 2
    assert [len(i.serial or "") for i in identities] == [249, 250]


def test_a_board_without_a_serial_number_is_served(tmp_path: Path) -> None:
    """Some boards answer NOT_SUPPORTED for the serial, which the recorder writes as null: the
    shape check must not refuse such a fixture, and cloned GPUs keep it absent."""
    fixture = json.loads(FIXTURE.read_text())
    fixture["calls"]["nvmlDeviceGetSerial"] = None
    path = tmp_path / "fixture.json"
    path.write_text(json.dumps(fixture))
    backend = ReplayBackend(fixture=path, gpus=2, poll_interval=3600)
    identities = backend.inventory()
    assert len({i.uuid for i in identities}) == 2
    assert all(not i.serial for i in identities)
    for identity in identities:
        assert backend.sample(identity).power_watts is not None
