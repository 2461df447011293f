"""XID-class features on dcgm-exporter's last-XID gauge, on real Prometheus and VictoriaMetrics.

dcgm-exporter exports only the last XID code per GPU, so a class feature counts the gauge's
changes in the week and attributes them to the class of the latest code. The feature reads the
week-long ``last_over_time`` once (codes as labels) instead of once per code; the expected
values below are what the per-code comparison it replaced gives, checked on the same history.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gpu_health import stack
from gpu_health.scorer.feature_plan import plan_queries
from gpu_health.scorer.feature_promql import (
    XidClassEvents,
    xid_class_events,
    xid_class_events_per_code,
)
from gpu_health.scorer.feature_schema import DCGM
from gpu_health.scorer.features import FEATURES, compute_features
from gpu_health.scorer.promclient import PromClient, PromConfig
from tests.conftest import import_openmetrics

pytestmark = [pytest.mark.integration]

DAY = 86400
START = 1_700_000_000
AT = START + 2.5 * DAY
STEP = 1800
#: Per GPU, the XID gauge's series as (driver version, first day, last day, [(from day, code)]).
HISTORY: dict[str, list[tuple[str, float, float, list[tuple[float, int]]]]] = {
    "A": [("535", 0, 2.5, [(0, 0), (1, 48)])],  # memory
    "B": [("535", 0, 2.5, [(0, 0), (1, 119)])],  # other (a GSP RPC timeout)
    "C": [("535", 0, 2.5, [(0, 0), (1, 79)])],  # bus
    # a row remap (63), then a driver upgrade: a new series that starts at 0
    "D": [("535", 0, 1.5, [(0, 0), (1, 63)]), ("550", 1.5, 2.5, [(1.5, 0)])],
    "E": [("535", 0, 2.5, [(0, 0), (1, 13), (2, 94)])],  # two changes, the latest memory
    "F": [("535", 0, 2.5, [(0, 0)])],  # never an XID
    "G": [("535", 0, 2.5, [(0, 0), (1, 74)])],  # NVLink
    # two series of one GPU whose last codes are both of one class
    "H": [("535", 0, 1.5, [(0, 0), (1, 48)]), ("550", 1.5, 2.5, [(1.5, 63)])],
    "I": [("535", 0, 1.5, [(0, 0), (1, 119)]), ("550", 1.5, 2.5, [(1.5, 62)])],
    # application errors (the job's bug): evidence of no class, "other" included
    "J": [("535", 0, 2.5, [(0, 0), (1, 13), (2, 43)])],
    # an NVLink5 error (Blackwell's 144-150, where Hopper logs 74): NVLink, not "other"
    "K": [("580", 0, 2.5, [(0, 0), (1, 145)])],
}


def _counts(**events: int) -> dict[str, int]:
    """Events per GPU of :data:`HISTORY` (0 for every GPU not named)."""
    return {gpu: events.get(gpu, 0) for gpu in HISTORY}


EXPECTED = {
    "memory": _counts(A=1, D=1, E=2, H=1),
    "other": _counts(B=1, I=1),
    "bus": _counts(C=1),
    "nvlink": _counts(G=1, K=1),
}


#: The same history as dcgm-exporter 3.3.6-3.4.2 and later writes it: the code is also a label
#: (``err_code``, with ``err_msg``), so each code is a series of its own that never changes, and
#: each code counts once, in its own class (E's 13 is an application error, H and I had two
#: codes of one class).
EXPECTED_CODE_LABELS = {
    "memory": _counts(A=1, D=1, E=1, H=2),
    "other": _counts(B=1, I=2),
    "bus": EXPECTED["bus"],
    "nvlink": EXPECTED["nvlink"],
}


def _openmetrics(code_labels: bool = False) -> str:
    xid, power = ["# TYPE DCGM_FI_DEV_XID_ERRORS gauge"], ["# TYPE DCGM_FI_DEV_POWER_USAGE gauge"]
    for i, (gpu, series) in enumerate(HISTORY.items()):
        for driver, first, last, codes in series:
            labels = (
                f'Hostname="node0",UUID="GPU-{gpu}",gpu="{i}",modelName="NVIDIA H100 80GB HBM3",'
                f'DCGM_FI_DRIVER_VERSION="{driver}"'
            )
            t = START + first * DAY
            while t <= START + last * DAY:
                code = [c for day, c in codes if START + day * DAY <= t][-1]
                extra = f',err_code="{code}",err_msg="XID {code}"' if code_labels else ""
                xid.append(f"DCGM_FI_DEV_XID_ERRORS{{{labels}{extra}}} {code} {t:.0f}")
                power.append(f"DCGM_FI_DEV_POWER_USAGE{{{labels}}} 300 {t:.0f}")
                t += STEP
    return "\n".join(xid + power + ["# EOF"]) + "\n"


def _values(client: PromClient, promql: str) -> dict[str, float]:
    out = {}
    for r in client.query(promql, AT):
        metric, value = r["metric"], r["value"]
        assert isinstance(metric, dict) and isinstance(value, list)
        out[str(metric["UUID"])[4:]] = float(value[1])
    return out


@pytest.fixture(params=[False, True], ids=["last-value", "code-labels"])
def engines(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    prometheus_factory,
    victoriametrics_factory: Callable[[], stack.Server],
) -> dict[str, PromClient]:
    text = _openmetrics(code_labels=request.param)
    source = tmp_path / "xid.om"
    source.write_text(text)
    data = tmp_path / "tsdb"
    stack.promtool_backfill(source, data, block_duration="480h")
    prometheus = prometheus_factory(data_dir=data)
    victoria = victoriametrics_factory()
    import_openmetrics(victoria, text)
    clients = {
        name: PromClient(PromConfig(server.url, retries=1))
        for name, server in (("prometheus", prometheus), ("victoriametrics", victoria))
    }
    return {"code_labels": request.param, **clients}


@pytest.mark.parametrize("xid_class", ["memory", "other", "bus", "nvlink"])
def test_xid_class_events_on_both_engines(engines: dict[str, Any], xid_class: str) -> None:
    """The class features agree with the per-code reference on the last-value gauge, and read
    each code once, in its class, when dcgm-exporter labels the gauge with its code (where the
    reference, and the features before, read 0 for every GPU)."""
    code_labels = engines.pop("code_labels")
    promql = xid_class_events(xid_class, "7d")(DCGM)
    per_code = xid_class_events_per_code(xid_class, "7d")(DCGM)
    assert promql is not None and per_code is not None
    table = EXPECTED_CODE_LABELS if code_labels else EXPECTED
    expected = {k: float(v) for k, v in table[xid_class].items()}
    if not code_labels:
        assert _values(engines["prometheus"], per_code) == expected
    for name, client in engines.items():
        assert _values(client, promql) == expected, name
    if xid_class in ("memory", "other"):  # the week-long range function is read once
        assert promql.count("last_over_time(DCGM_FI_DEV_XID_ERRORS[7d])") == 1


def test_the_frame_reads_every_class_from_one_query(engines: dict[str, Any]) -> None:
    """The feature frame sends one query for the four classes, its answers labelled by part,
    and takes each class's value from it: each class's whole expression's values, on both
    engines and both shapes of the gauge, reading the week of the gauge twice instead of
    eleven times."""
    code_labels = engines.pop("code_labels")
    table = EXPECTED_CODE_LABELS if code_labels else EXPECTED
    classes = [f for f in FEATURES if isinstance(f.build, XidClassEvents)]
    assert sorted(f.build.xid_class for f in classes) == sorted(table)  # type: ignore[attr-defined]
    (shared,) = plan_queries(DCGM, classes).queries
    assert shared.count("DCGM_FI_DEV_XID_ERRORS[7d]") == 2
    wholes = plan_queries(DCGM, classes, share_parts=False).queries
    assert sum(q.count("DCGM_FI_DEV_XID_ERRORS[7d]") for q in wholes) == 11
    for name, client in engines.items():
        frame = compute_features(client, "dcgm", AT, classes)
        assert frame.failed_queries == 0
        whole = compute_features(client, "dcgm", AT, classes, share_parts=False)
        np.testing.assert_array_equal(frame.values, whole.values)
        for f in classes:
            got = dict(zip((g[2][4:] for g in frame.gpus), frame.column(f.name), strict=True))
            expected = table[f.build.xid_class]  # type: ignore[attr-defined]
            assert got == {k: float(v) for k, v in expected.items()}, (name, f.name)
