"""A GPU whose counter is split by a label into counters of its own (our exporter's NVLink
errors per link and type, retired pages per cause) reads the sum of their rises, as the same
GPU read through dcgm-exporter's per-type fields does, on real Prometheus and VictoriaMetrics.

A span is the difference of two readings of one counter. Taken over all of a GPU's NVLink
series at once, 18 links that each counted 2 CRC-flit and 1 CRC-data errors read as 2 errors,
not 54 (the largest reading of any one counter less the smallest of any); taken over both
causes of retired pages, 4 single-bit and 2 double-bit retirements read as 4; over our XID
counters (one per code), one XID 79 and two XID 94 read as 2.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from gpu_health.scorer.feature_table import FEATURES
from gpu_health.scorer.features import compute_features
from gpu_health.scorer.promclient import PromClient, PromConfig

pytestmark = pytest.mark.integration

DAY = 86400
START = 1_700_000_000
DAYS = 31.5
AT = START + 31.4 * DAY
STEP = 3 * 3600
LINKS = 18
#: NVLink error times, days after the start: link i counts crc_flit errors at day 26 + i/10 and
#: day 28 + i/10, and a crc_data error at day 29 + i/10, all inside the last 7 days.
FLIT_DAYS = (26.0, 28.0)
DATA_DAYS = (29.0,)
#: Retired pages: the counts before the history, and the days of each retirement. The 30-day
#: window opens at day 1.4: every retirement below falls inside it.
SBE_BEFORE, SBE_DAYS = 10, (5.0, 10.0, 15.0, 20.0)
DBE_BEFORE, DBE_DAYS = 2, (12.0, 25.0)
#: Our XID counters (dcgm-exporter sends a last-code gauge instead, read by its changes): an
#: XID 79 on day 27 and two XID 94 on days 28 and 29, three events in the week.
XIDS = {"79": (27.0,), "94": (28.0, 29.0), "13": ()}
EXPECTED = {"nvlink_errors": LINKS * (len(FLIT_DAYS) + len(DATA_DAYS)), "retired_pages": 6}


def _count(days: tuple[float, ...], t_days: float, shift: float = 0.0) -> int:
    return sum(1 for d in days if d + shift <= t_days)


def _readings(t: float) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """Our metrics at ``t`` seconds after the start: name -> extra labels -> value."""
    d = t / DAY
    nvlink: dict[tuple[tuple[str, str], ...], float] = {}
    for link in range(LINKS):
        for kind, days in (("crc_flit", FLIT_DAYS), ("crc_data", DATA_DAYS), ("replay", ())):
            labels = (("link", str(link)), ("type", kind))
            nvlink[labels] = float(_count(days, d, link / 10))
    pages = {
        (("cause", "single_bit_ecc"),): float(SBE_BEFORE + _count(SBE_DAYS, d)),
        (("cause", "double_bit_ecc"),): float(DBE_BEFORE + _count(DBE_DAYS, d)),
    }
    xids = {(("xid", str(code)),): float(_count(days, d)) for code, days in XIDS.items()}
    return {
        "gpu_nvlink_errors_total": nvlink,
        "gpu_retired_pages": pages,
        "gpu_xid_errors_total": xids,
    }


def _history(schema: str) -> str:
    """One H100's history in ``schema``: dcgm-exporter's fields carry the same counts, summed
    over links per type, one field per cause."""
    ident = (
        'node="n0",gpu="0",uuid="GPU-0000-sub",model="NVIDIA H100 80GB HBM3"'
        if schema == "ours"
        else 'Hostname="n0",gpu="0",UUID="GPU-0000-sub",modelName="NVIDIA H100 80GB HBM3"'
    )
    dcgm_name = {
        "crc_flit": "DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL",
        "crc_data": "DCGM_FI_DEV_NVLINK_CRC_DATA_ERROR_COUNT_TOTAL",
        "replay": "DCGM_FI_DEV_NVLINK_REPLAY_ERROR_COUNT_TOTAL",
        "single_bit_ecc": "DCGM_FI_DEV_RETIRED_SBE",
        "double_bit_ecc": "DCGM_FI_DEV_RETIRED_DBE",
    }
    lines: dict[str, list[str]] = {}
    for k in range(int(DAYS * DAY / STEP) + 1):
        t = k * STEP
        ts = START + t
        power = "gpu_power_watts" if schema == "ours" else "DCGM_FI_DEV_POWER_USAGE"
        lines.setdefault(power, []).append(f"{power}{{{ident}}} 500 {ts}")
        for metric, values in _readings(t).items():
            if schema == "dcgm" and metric == "gpu_xid_errors_total":
                continue
            if schema == "ours":
                for extra, v in values.items():
                    more = ",".join(f'{n}="{x}"' for n, x in extra)
                    lines.setdefault(metric, []).append(f"{metric}{{{ident},{more}}} {v} {ts}")
                continue
            totals: dict[str, float] = {}
            for extra, v in values.items():
                kind = dict(extra).get("type") or dict(extra)["cause"]
                totals[dcgm_name[kind]] = totals.get(dcgm_name[kind], 0.0) + v
            for name, v in totals.items():
                lines.setdefault(name, []).append(f"{name}{{{ident}}} {v} {ts}")
    out = [f"# TYPE {name} gauge\n" + "\n".join(body) for name, body in lines.items()]
    return "\n".join(out) + "\n# EOF\n"


def _read(url: str, schema: str) -> dict[str, float]:
    client = PromClient(PromConfig(url, retries=1, timeout_s=60))
    wanted = {"nvlink_errors_per_min_7d", "retired_pages_30d", "xid_events_7d"}
    frame = compute_features(
        client,
        schema,  # type: ignore[arg-type]
        AT,
        features=[f for f in FEATURES if f.name in wanted],
    )
    assert frame.failed_queries == 0
    assert len(frame.gpus) == 1
    read = {
        "nvlink_errors": round(float(frame.column("nvlink_errors_per_min_7d")[0]) * 7 * 1440, 3),
        "retired_pages": round(float(frame.column("retired_pages_30d")[0]), 3),
    }
    if schema == "ours":
        read["xid_events"] = round(float(frame.column("xid_events_7d")[0]), 3)
    return read


@pytest.mark.parametrize("schema", ["ours", "dcgm"])
def test_counters_split_by_a_label_read_the_sum_of_their_rises(
    schema: str, on_both_engines: Callable[[str], tuple[str, str]]
) -> None:
    expected = EXPECTED | ({"xid_events": 3} if schema == "ours" else {})
    for url in on_both_engines(_history(schema)):
        assert _read(url, schema) == expected
