"""Our exporter's XID counters: a code's first event in a boot counts, also for a code outside
the catalogue, whose series is born at 1, on real Prometheus and VictoriaMetrics.

Our exporter starts every catalogued code at 0, so ``increase()`` sees its first event. A code
outside the catalogue appears only at its first event, already at 1, and ``increase()`` over a
series has no earlier reading to rise from: that event was lost, and such a code that happened
once was never counted.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from gpu_health.scorer.feature_promql import XID_CLASSES
from gpu_health.scorer.feature_table import FEATURES
from gpu_health.scorer.features import compute_features
from gpu_health.scorer.promclient import PromClient, PromConfig
from gpu_health.telemetry.xids import XID_CATALOGUE

pytestmark = pytest.mark.integration

DAY = 86400
START = 1_700_000_000
DAYS = 16.5
AT = START + 16.4 * DAY
STEP = 1800
#: Codes outside the catalogue, whose series start at their first event: 56 (a display-engine
#: error; class "other") twice in the last week, 57 once 9 days before it (not in the week).
UNCATALOGUED = {56: (11.0, 12.0), 57: (0.5,)}
#: Catalogued codes (series from 0): a contained ECC error (94, memory) and an NVLink error (74)
#: in the week.
CATALOGUED = {94: (13.0,), 74: (14.0,)}
#: Features over the last 7 days: the class features and all XIDs but application errors.
EXPECTED = {
    "xid_other_events_7d": 2.0,
    "xid_nvlink_events_7d": 1.0,
    "xid_memory_events_7d": 1.0,
    "xid_bus_events_7d": 0.0,
    "xid_events_7d": 4.0,
}


def _history() -> str:
    ident = 'node="n0",gpu="0",uuid="GPU-0000-xid",model="NVIDIA H100 80GB HBM3"'
    assert not set(UNCATALOGUED) & set(XID_CATALOGUE)
    assert set(CATALOGUED) <= set(XID_CATALOGUE)
    power: list[str] = []
    xids: list[str] = []
    for k in range(int(DAYS * DAY / STEP) + 1):
        t = k * STEP
        d, ts = t / DAY, START + t
        power.append(f"gpu_power_watts{{{ident}}} 500 {ts}")
        counts = dict.fromkeys(XID_CATALOGUE, 0)
        for code, days in (UNCATALOGUED | CATALOGUED).items():
            n = sum(1 for x in days if x <= d)
            if n or code in counts:
                counts[code] = n
        xids += [f'gpu_xid_errors_total{{{ident},xid="{c}"}} {n} {ts}' for c, n in counts.items()]
    return (
        "# TYPE gpu_power_watts gauge\n"
        + "\n".join(power)
        + "\n# TYPE gpu_xid_errors_total gauge\n"
        + "\n".join(xids)
        + "\n# EOF\n"
    )


def _read(url: str) -> dict[str, float]:
    client = PromClient(PromConfig(url, retries=1, timeout_s=60))
    wanted = [f for f in FEATURES if f.name in EXPECTED]
    frame = compute_features(client, "ours", AT, features=wanted)
    assert frame.failed_queries == 0
    assert len(frame.gpus) == 1
    return {name: round(float(frame.column(name)[0]), 1) for name in EXPECTED}


def test_a_code_born_at_one_counts_its_first_event(
    on_both_engines: Callable[[str], tuple[str, str]],
) -> None:
    for url in on_both_engines(_history()):
        assert _read(url) == EXPECTED


def test_every_code_of_a_class_is_catalogued() -> None:
    """The class features read first counts only for "other": a code of any other class is
    catalogued, so our exporter sends it from 0 and ``increase()`` sees its first event."""
    assert {code for codes in XID_CLASSES.values() for code in codes} <= set(XID_CATALOGUE)
