"""Counters that start at zero: live scrapes and the simulator's backfill agree series for series.

A counter born with its first event is invisible to ``increase()`` on Prometheus and counted
wrongly on VictoriaMetrics, so every catalogued XID code and every XID class exists at 0 from the
moment a GPU is watched — in the live exporter and in the backfilled history alike.
"""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from gpu_health.exporter.collector import ExporterCollector
from gpu_health.telemetry.xids import XID_CATALOGUE, XID_CLASSES

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
        assert {str(c) for c in XID_CATALOGUE} <= codes
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
