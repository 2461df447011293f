"""Hours with activity, as shipped and as the form it replaced, on real Prometheus and
VictoriaMetrics: the same value for every GPU of a random history.

The shipped form keeps only the series that rose in a slot before combining them
(:func:`~gpu_health.scorer.feature_promql.active_hours`); the form before summed every field's
increase per GPU and slot and compared the sum with 0
(:func:`~gpu_health.scorer.feature_promql.active_hours_by_sum`). The history holds what makes
the two differ if either is wrong: several fields of one signal, both of dcgm-exporter's names
for a field, MIG instances repeating the device's counters, driver upgrades that end one series
and start another, counter resets, GPUs whose counters never rise and GPUs without the signal.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from gpu_health import stack
from gpu_health.scorer.feature_promql import (
    ECC_CORR_AGG,
    Builder,
    active_hours,
    active_hours_by_sum,
    hardware_hold_hours,
    hardware_hold_hours_by_max,
)
from gpu_health.scorer.feature_schema import DCGM, OURS, Schema
from gpu_health.scorer.promclient import PromClient, PromConfig
from tests.conftest import PrometheusFactory, import_openmetrics, launch_victoriametrics

pytestmark = [pytest.mark.integration]

DAY = 86400
START = 1_700_000_000
AT = START + 3 * DAY
STEP = 900
MODEL = "NVIDIA H100 80GB HBM3"
#: dcgm-exporter's fields of each signal under every name (legacy and renamed), and ours.
SIGNALS: dict[str, tuple[str, dict[str, str]]] = {
    "nvlink": ("gpu_nvlink_errors_total", {}),
    "pcie": ("gpu_pcie_replays_total", {}),
    "ecc": ("gpu_ecc_errors_total", ECC_CORR_AGG),
    "power": ("gpu_clock_event_seconds_total", {"reason": "power"}),
}
RENAMED = replace(DCGM, names="renamed")
#: Bitmask values a board sends without a hardware hold: idle, power cap (0x4), HW slowdown
#: (0x8), display clocks (0x100); and with one (0x40, 0x80), display clocks with it.
NO_HOLD = (0, 4, 8, 0x100, 0x104)
HOLD = (0x40, 0x80, 0x140, 0xC4)


def _counters(rng: random.Random, rises: float) -> Iterator[float]:
    """A counter sampled every :data:`STEP`: rises with probability ``rises`` a sample, now
    and then by hundreds, and resets to 0 now and then (a driver reload)."""
    value = 0.0
    while True:
        yield value
        if rng.random() < 0.01:
            value = 0.0
        elif rng.random() < rises:
            value += rng.choice((1, 3, 30, 400))


def _series(rng: random.Random, names: list[str], labels: str, rises: float) -> list[str]:
    """OpenMetrics lines of one GPU: a random subset of ``names``, each a counter (or, for the
    clock-reason bitmask, a gauge) from a random start to a random end, split by a driver
    upgrade at a random time, and repeated by two MIG instances on some GPUs."""
    lines = []
    chosen = rng.sample(names, k=rng.randint(1, min(3, len(names))))
    instances = ['GPU_I_ID="1",', 'GPU_I_ID="2",'] if rng.random() < 0.3 else [""]
    for name in chosen:
        first = START + rng.choice((0, 0, 0.4 * DAY))
        last = START + 3 * DAY - rng.choice((0, 0, 0, 0.5 * DAY, 2.2 * DAY))
        upgrade = first + rng.random() * (last - first) if rng.random() < 0.4 else last + 1
        values = _counters(rng, rises)
        t = first
        while t <= last:
            driver = "535" if t < upgrade else "550"
            value: float
            if "REASONS" in name:
                value = rng.choice(HOLD if rng.random() < rises else NO_HOLD)
            else:
                value = next(values)
            for mig in instances:
                lines.append(
                    f'{name}{{{mig}{labels},DCGM_FI_DRIVER_VERSION="{driver}"}} {value} {t:.0f}'
                )
            t += STEP * rng.choice((1, 1, 1, 1, 4, 12))  # now and then a scrape gap
    return lines


def _fleet(seed: int = 7, gpus: int = 40) -> str:
    """A random dcgm-exporter history over every name the signals' fields have in both views,
    and our schema's series of the same GPUs (other names, so the two never meet)."""
    rng = random.Random(seed)
    names = {
        signal: sorted(
            set(DCGM.every_selector(m, **labels) or [])
            | set(RENAMED.every_selector(m, **labels) or [])
        )
        for signal, (m, labels) in SIGNALS.items()
    }
    names["holds"] = (DCGM.selectors_and_aliases("gpu_clock_event_active") or ([], 1.0))[0]
    lines = []
    for i in range(gpus):
        dcgm = f'Hostname="n{i // 8}",gpu="{i % 8}",UUID="GPU-{i:04d}",modelName="{MODEL}"'
        ours = f'node="n{i // 8}",gpu="{i % 8}",uuid="GPU-{i:04d}",model="{MODEL}"'
        rises = rng.choice((0.0, 0.002, 0.02, 0.2))
        for fields in names.values():
            if rng.random() < 0.15:
                continue  # a GPU without the signal
            lines += _series(rng, fields, dcgm, rises)
        for name, extra in (
            ("gpu_nvlink_errors_total", 'link="0",'),
            ("gpu_nvlink_errors_total", 'link="3",'),
            ("gpu_clock_event_seconds_total", 'reason="power",'),
            ("gpu_pcie_replays_total", ""),
            ("gpu_ecc_errors_total", 'type="corrected",scope="aggregate",'),
        ):
            if rng.random() < 0.15:
                continue
            lines += [
                line.replace(f"{name}{{", f"{name}{{{extra}", 1)
                for line in _series(rng, [name], ours, rises)
            ]
        held = [
            f'gpu_clock_event_active{{reason="{r}",{ours}}} {int(rng.random() < rises)} {t}'
            for r in ("hw_thermal_slowdown", "hw_power_brake_slowdown", "sw_power_cap")
            for t in range(START, AT + 1, STEP)
        ]
        lines += held if rng.random() < 0.8 else []
    return "\n".join([*lines, "# EOF"]) + "\n"


@pytest.fixture(scope="module")
def engines(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, PromClient]]:
    work = tmp_path_factory.mktemp("active-hours")
    text = _fleet()
    source = work / "fleet.om"
    source.write_text(text)
    data = work / "tsdb"
    stack.promtool_backfill(source, data, block_duration="480h")
    config = stack.write_prometheus_config(work / "prometheus.yml")
    with stack.prometheus(work, config, data_dir=data) as prometheus:
        victoria = launch_victoriametrics(work / "vm")
        try:
            import_openmetrics(victoria, text)
            yield {
                name: PromClient(PromConfig(server.url, retries=1))
                for name, server in (("prometheus", prometheus), ("victoriametrics", victoria))
            }
        finally:
            victoria.stop()


def _values(client: PromClient, promql: str, s: Schema) -> dict[str, float]:
    found = {}
    for r in client.query(promql, AT):
        metric, value = r["metric"], r["value"]
        assert isinstance(metric, dict) and isinstance(value, list)
        found[str(metric[s.uuid])] = float(value[1])
    return found


PAIRS: dict[str, tuple[Builder, Builder]] = {
    **{
        signal: (active_hours(m, "7d", **labels), active_hours_by_sum(m, "7d", **labels))
        for signal, (m, labels) in SIGNALS.items()
    },
    "holds": (hardware_hold_hours("7d"), hardware_hold_hours_by_max("7d")),
}


@pytest.mark.parametrize("signal", sorted(PAIRS))
@pytest.mark.parametrize("view", ["ours", "legacy", "renamed"])
def test_the_shipped_form_counts_the_hours_the_summed_form_counts(
    engines: dict[str, PromClient], signal: str, view: str
) -> None:
    """Every GPU has the same hours (or none, where it lacks the signal) in both forms, on
    both engines, in our schema and both of dcgm-exporter's views; GPUs that send the
    signal and never rose read 0, and some GPUs read more."""
    s = {"ours": OURS, "legacy": DCGM, "renamed": RENAMED}[view]
    shipped, summed = (build(s) for build in PAIRS[signal])
    if shipped is None:
        assert summed is None
        pytest.skip(f"{view} has no {signal} signal")
    assert summed is not None
    for name, client in engines.items():
        got, expected = _values(client, shipped, s), _values(client, summed, s)
        assert got == expected, (name, sorted(set(got.items()) ^ set(expected.items())))
        assert 0 in got.values() and max(got.values()) > 0, (name, got)
        assert len(got) < 40, (name, len(got))  # some GPUs lack the signal


def test_a_gpu_reads_two_hours_per_slot_with_a_rise_and_none_without_the_signal(
    tmp_path: Path,
    victoriametrics_factory: Callable[[], stack.Server],
    prometheus_factory: PrometheusFactory,
) -> None:
    """Hand-made: one rise on one field, rises on two fields in one slot and in another, a
    counter that never rises, and a GPU without the signal."""
    name_a, name_b = (DCGM.every_selector("gpu_nvlink_errors_total") or [])[4:6]
    lines = []
    plan = {"GPU-1": {name_a: [1.1]}, "GPU-2": {name_a: [1.1], name_b: [1.15, 2.3]}}
    plan["GPU-3"] = {name_a: []}
    for gpu, fields in plan.items():
        labels = f'Hostname="n0",gpu="0",UUID="{gpu}",modelName="{MODEL}"'
        for name, rises in fields.items():
            for t in range(START, AT + 1, STEP):
                value = sum(1 for day in rises if START + day * DAY <= t)
                lines.append(f"{name}{{{labels}}} {value} {t}")
    lines.append(f'DCGM_FI_DEV_POWER_USAGE{{UUID="GPU-4",modelName="{MODEL}"}} 300 {AT - 60}')
    text = "\n".join([*lines, "# EOF"]) + "\n"
    source = tmp_path / "hand.om"
    source.write_text(text)
    stack.promtool_backfill(source, tmp_path / "tsdb", block_duration="480h")
    victoria = victoriametrics_factory()
    import_openmetrics(victoria, text)
    promql = active_hours("gpu_nvlink_errors_total", "7d")(DCGM)
    assert promql is not None
    for server in (prometheus_factory(data_dir=tmp_path / "tsdb"), victoria):
        got = _values(PromClient(PromConfig(server.url, retries=1)), promql, DCGM)
        assert got == {"GPU-1": 2.0, "GPU-2": 4.0, "GPU-3": 0.0}, server.url
