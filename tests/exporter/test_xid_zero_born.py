"""Counters that start at zero: live scrapes and the simulator's backfill agree series for series.

A counter born with its first event is invisible to ``increase()`` on Prometheus and counted
wrongly on VictoriaMetrics, so every catalogued XID code and every XID class exists at 0 from the
moment a GPU is watched — in the live exporter and in the backfilled history alike.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from gpu_health.exporter.collector import ExporterCollector
from gpu_health.telemetry.xids import NVLINK5_XIDS, XID_CATALOGUE, XID_CLASSES, zero_born_xids

FIXTURE = Path(__file__).parent.parent / "fixtures" / "h200" / "nvml_h200.json"

live = pytest.importorskip("gpu_health.sim.live")
batch = pytest.importorskip("gpu_health.sim.batch")
fleet = pytest.importorskip("gpu_health.sim.fleet")
openmetrics = pytest.importorskip("gpu_health.sim.openmetrics")

#: A time well inside the simulated boards' lives; hazard scaled so some GPUs have XIDs.
AT = 1_790_000_040.0
GPUS, SEED, HAZARD = 8, 11, 40.0
FAMILIES = ("gpu_xid_errors_total", "gpu_xid_class_errors_total")


def _xid_series(text: str) -> dict[tuple[str, str, str], float]:
    """(family, uuid, xid or class) -> value for the XID families of one exposition."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name in FAMILIES:
                key = s.labels.get("xid") or s.labels["class"]
                out[(s.name, s.labels["uuid"], key)] = s.value
    return out


def test_live_scrape_has_every_code_and_class_from_zero() -> None:
    backend = live.SimBackend(gpus=GPUS, seed=SEED, start_time=AT, hazard_scale=HAZARD)
    identities = backend.inventory()
    registry = CollectorRegistry()
    registry.register(ExporterCollector(backend, identities))
    series = _xid_series(generate_latest(registry).decode())
    uuids = {uuid for _, uuid, _ in series}
    assert uuids == {i.uuid for i in identities}
    for uuid in uuids:
        codes = {k for f, u, k in series if u == uuid and f == FAMILIES[0]}
        classes = {k for f, u, k in series if u == uuid and f == FAMILIES[1]}
        assert {str(c) for c in zero_born_xids("NVIDIA H100 80GB HBM3")} <= codes
        # the simulated boards are Hopper and Ampere: no NVLink5 counters at 0 on them
        assert not codes & {str(c) for c in NVLINK5_XIDS}
        assert classes == set(XID_CLASSES)
        # the class counters add up to the code counters, per GPU
        by_code = sum(v for (f, u, _), v in series.items() if u == uuid and f == FAMILIES[0])
        by_class = sum(v for (f, u, _), v in series.items() if u == uuid and f == FAMILIES[1])
        assert by_code == by_class
    assert any(v > 0 for v in series.values()), "the fleet should have seen some XIDs"


def test_backfill_emits_the_same_zero_born_series_as_the_live_exporter() -> None:
    import numpy as np

    backend = live.SimBackend(
        gpus=GPUS, seed=SEED, start_time=AT, hazard_scale=HAZARD, clock=lambda: 0.0
    )
    registry = CollectorRegistry()
    registry.register(ExporterCollector(backend, backend.inventory()))
    scraped = _xid_series(generate_latest(registry).decode())

    windows = batch.Windows(fleet.build_fleet(GPUS, SEED, HAZARD))
    ts = np.array([AT - 60.0, AT], dtype=np.float64)
    text = openmetrics.Writer("ours").render(list(windows.window(ts)), ts)
    # keep the last timestamp's sample of each series (the live scrape's moment)
    last_lines = [line for line in text.splitlines() if line.endswith(f" {int(AT)}")]
    backfilled = _xid_series(
        "".join(line.rsplit(" ", 1)[0] + "\n" for line in last_lines) + "# EOF\n"
    )
    assert any(v > 0 for v in scraped.values())
    assert backfilled == scraped


@pytest.mark.parametrize(
    ("model", "nvlink5"),
    [("NVIDIA B200", True), ("NVIDIA GB200", True), ("NVIDIA H200", False)],
)
def test_nvlink5_codes_start_at_zero_only_on_boards_that_log_them(
    model: str, nvlink5: bool
) -> None:
    """Blackwell logs NVLink errors as 144-150 (Hopper as 74): on a B200 or GB200 they exist
    from 0, so the first one is seen by increase(); on other boards they would only be seven
    more series per GPU that never move."""
    from gpu_health.exporter.backends.nvml import NvmlBackend
    from gpu_health.exporter.fake_nvml import FakeNvml

    fake = FakeNvml.from_file(FIXTURE)
    fake.set(0, "nvmlDeviceGetName", model)
    backend = NvmlBackend(nvml=fake, poll_interval=3600)
    try:
        identities = backend.inventory()
        registry = CollectorRegistry()
        registry.register(ExporterCollector(backend, identities))
        series = _xid_series(generate_latest(registry).decode())
    finally:
        backend.close()
    codes = {k for f, _, k in series if f == FAMILIES[0]}
    assert {str(c) for c in XID_CATALOGUE if c not in NVLINK5_XIDS} <= codes
    assert ({str(c) for c in NVLINK5_XIDS} <= codes) is nvlink5
    assert all(v == 0 for v in series.values())


def test_an_nvlink5_xid_caps_a_blackwell_boards_health_score() -> None:
    """XID 145 is a fatal NVLink error on a B200 (NVIDIA's catalog: the NVLink5 error
    workflow), as 74 is on an H100: the score is capped, not left healthy as an unknown code."""
    import time

    from gpu_health.exporter.backends.nvml import NvmlBackend
    from gpu_health.exporter.fake_nvml import FakeNvml
    from gpu_health.health.model import score_sample
    from gpu_health.health.policy import load_default_policy

    fake = FakeNvml.from_file(FIXTURE)
    fake.set(0, "nvmlDeviceGetName", "NVIDIA B200")
    backend = NvmlBackend(nvml=fake, poll_interval=3600)
    try:
        (gpu,) = backend.inventory()
        policy = load_default_policy()
        before = score_sample(gpu, backend.sample(gpu), policy)
        fake.emit_xid(0, 145)
        deadline = time.monotonic() + 5
        while 145 not in (sample := backend.sample(gpu)).xid_counts:
            assert time.monotonic() < deadline, "the XID event never arrived"
            time.sleep(0.02)
    finally:
        backend.close()
    after = score_sample(gpu, sample, policy)
    assert before.overall == 100
    assert after.overall <= policy.caps.xid_critical and after.grade != "excellent"


def test_a_gpu_lost_off_the_bus_keeps_its_xid_79_in_the_backfill_as_live() -> None:
    """The batch simulator blanked every reading of a board while it was down, XID counters
    included, and a fall off the bus takes it down at the failure itself: the backfilled
    history never held the XID 79 that the live exporter keeps sending beside ``gpu_up 0``."""
    import numpy as np

    built = fleet.build_fleet(GPUS, 1, HAZARD)
    lost = [
        f
        for slot in built.slots
        for board in slot.boards
        for f in board.failures
        if f.mode == "fell_off_bus" and f.down_to - f.down_from > 600
    ]
    assert lost, "the fleet should lose a GPU off the bus"
    failure = lost[0]
    at = float(int(failure.time) + 300)  # down since the failure
    backend = live.SimBackend(
        gpus=GPUS, seed=1, start_time=at, hazard_scale=HAZARD, clock=lambda: 0.0
    )
    registry = CollectorRegistry()
    registry.register(ExporterCollector(backend, backend.inventory()))
    scraped = {k: v for k, v in _xid_series(generate_latest(registry).decode()).items()}
    assert scraped[("gpu_xid_errors_total", failure.uuid, "79")] >= 1  # live: still counted

    windows = batch.Windows(built)
    ts = np.array([at - 60.0, at], dtype=np.float64)
    text = openmetrics.Writer("ours").render(list(windows.window(ts)), ts)
    last_lines = [line for line in text.splitlines() if line.endswith(f" {int(at)}")]
    backfilled = _xid_series(
        "".join(line.rsplit(" ", 1)[0] + "\n" for line in last_lines) + "# EOF\n"
    )
    assert "gpu_up{" in text and any(
        line.startswith("gpu_up{") and failure.uuid in line and line.endswith(f" 0 {int(at)}")
        for line in last_lines
    )
    mine = {k: v for k, v in backfilled.items() if k[1] == failure.uuid}
    assert mine == {k: v for k, v in scraped.items() if k[1] == failure.uuid}
    assert mine[("gpu_xid_class_errors_total", failure.uuid, "fallen_off_bus")] >= 1

    # dcgm-exporter reads nothing from a GPU it lost: its history keeps no sample of it
    dcgm = openmetrics.Writer("dcgm").render(list(windows.window(ts)), ts)
    assert not [
        line for line in dcgm.splitlines() if failure.uuid in line and line.endswith(f" {int(at)}")
    ]
