"""The per-GPU totals of the counters our exporter splits per link and per code.

``gpu_nvlink_errors_all_links_total{type}`` and ``gpu_xid_errors_all_codes_total`` exist so the
scorer reads one series per NVLink error type and one XID series per GPU over 30 days instead
of one per link and per code (docs/scorer.md, "Reading history at scale"). They are worth
reading only if they are exactly the sums, live and backfilled alike, and never fall while the
counters they sum do not: Prometheus reads a fall as a reset and counts the whole remaining
total as new errors.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from gpu_health.exporter.backends.nvml import NvmlBackend
from gpu_health.exporter.collector import ExporterCollector
from gpu_health.exporter.fake_nvml import FakeNvml
from gpu_health.telemetry.readings import NVLINK_ERROR_TYPES

live = pytest.importorskip("gpu_health.sim.live")
batch = pytest.importorskip("gpu_health.sim.batch")
fleet = pytest.importorskip("gpu_health.sim.fleet")
openmetrics = pytest.importorskip("gpu_health.sim.openmetrics")

FIXTURE = Path(__file__).parent.parent / "fixtures" / "h100" / "nvml_h100.json"
#: A time well inside the simulated boards' lives; hazard scaled so some GPUs have XIDs and
#: NVLink errors.
AT = 1_790_000_040.0
GPUS, SEED, HAZARD = 16, 11, 40.0
TOTALS = ("gpu_nvlink_errors_all_links_total", "gpu_xid_errors_all_codes_total")
SPLIT = ("gpu_nvlink_errors_total", "gpu_xid_errors_total")

Values = dict[tuple[str, str, str], float]


def _series(text: str) -> Values:
    """(family, uuid, type) -> value of the split counters summed per GPU (and NVLink type),
    and of the totals, from one exposition."""
    out: Values = defaultdict(float)
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name in (*TOTALS, *SPLIT):
                out[(s.name, s.labels["uuid"], s.labels.get("type", ""))] += s.value
    return dict(out)


def _live_scrape(clock: float | None = None) -> str:
    kwargs = {} if clock is None else {"clock": lambda: clock}
    backend = live.SimBackend(gpus=GPUS, seed=SEED, start_time=AT, hazard_scale=HAZARD, **kwargs)
    registry = CollectorRegistry()
    registry.register(ExporterCollector(backend, backend.inventory()))
    return generate_latest(registry).decode()


def test_each_total_is_the_sum_of_the_counters_it_totals() -> None:
    series = _series(_live_scrape())
    for (name, uuid, kind), value in series.items():
        if name in SPLIT:
            total = TOTALS[SPLIT.index(name)]
            assert series[(total, uuid, kind)] == value, (name, uuid, kind)
    totals = {k for k in series if k[0] in TOTALS}
    assert totals == {(TOTALS[SPLIT.index(k[0])], *k[1:]) for k in series if k[0] in SPLIT}
    xid = [v for k, v in series.items() if k[0] == TOTALS[1]]
    nvlink = [v for k, v in series.items() if k[0] == TOTALS[0]]
    assert len(xid) > GPUS // 2 and any(v > 0 for v in xid)
    assert nvlink and {k[2] for k in series if k[0] == TOTALS[0]} == set(NVLINK_ERROR_TYPES)
    assert any(v > 0 for v in nvlink), "the fleet should have seen some NVLink errors"


def test_the_backfill_writes_the_totals_the_live_exporter_sends() -> None:
    import numpy as np

    scraped = _series(_live_scrape(clock=0.0))
    windows = batch.Windows(fleet.build_fleet(GPUS, SEED, HAZARD))
    ts = np.array([AT - 60.0, AT], dtype=np.float64)
    text = openmetrics.Writer("ours").render(list(windows.window(ts)), ts)
    last = [line for line in text.splitlines() if line.endswith(f" {int(AT)}")]
    backfilled = _series("".join(line.rsplit(" ", 1)[0] + "\n" for line in last) + "# EOF\n")
    assert {k: v for k, v in backfilled.items() if k[0] in TOTALS} == {
        k: v for k, v in scraped.items() if k[0] in TOTALS
    }
    assert any(v > 0 for k, v in scraped.items() if k[0] == TOTALS[0])


def _nvlink_totals(registry: CollectorRegistry) -> dict[str, float]:
    return {
        s.labels["type"]: s.value
        for family in text_string_to_metric_families(generate_latest(registry).decode())
        for s in family.samples
        if s.name == TOTALS[0]
    }


def test_a_link_read_that_fails_keeps_its_count_in_the_total() -> None:
    """A timed-out read of the NVLink counters must not make the total fall (or vanish and
    come back): the last counts stay until the next good read."""
    import pynvml

    fake = FakeNvml.from_file(FIXTURE, gpus=1)
    fake.set(0, "nvlink", {"0": 1, "1": 1})
    kinds = {
        "crc_flit": pynvml.NVML_NVLINK_ERROR_DL_CRC_FLIT,
        "crc_data": pynvml.NVML_NVLINK_ERROR_DL_CRC_DATA,
        "replay": pynvml.NVML_NVLINK_ERROR_DL_REPLAY,
        "recovery": pynvml.NVML_NVLINK_ERROR_DL_RECOVERY,
    }

    def counts(link0: int, link1: int) -> None:
        for kind, const in kinds.items():
            fake.set(0, f"nvlink_errors_0_{const}", link0 if kind == "replay" else 0)
            fake.set(0, f"nvlink_errors_1_{const}", link1 if kind == "replay" else 0)

    counts(5, 7)
    backend = NvmlBackend(nvml=fake, node="n1", poll_interval=3600, watch_events=False)
    registry = CollectorRegistry()
    registry.register(ExporterCollector(backend, backend.inventory()))
    try:
        backend._poll_once()
        assert _nvlink_totals(registry) == dict.fromkeys(kinds, 0.0) | {"replay": 12.0}
        fake.fail("nvmlDeviceGetNvLinkErrorCounter", gpu=0, error="TIMEOUT")
        counts(6, 8)  # unseen: every read times out
        backend._poll_once()
        assert _nvlink_totals(registry)["replay"] == 12.0
        fake.heal()
        backend._poll_once()
        assert _nvlink_totals(registry)["replay"] == 14.0
    finally:
        backend.close()
