"""Hours with a hardware clock hold, read from a hand-made history in both schemas on real
Prometheus and real VictoriaMetrics: the known hours, the power cap ignored, one number."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from gpu_health.scorer.feature_table import FEATURES
from gpu_health.scorer.features import compute_features
from gpu_health.scorer.promclient import PromClient, PromConfig
from gpu_health.telemetry.readings import CLOCK_EVENT_REASONS

pytestmark = pytest.mark.integration

HOUR = 3600
DAY = 24 * HOUR
#: A multiple of two hours, so the feature's 2-hour slots start on the episodes' grid.
START = 1_699_999_200
DAYS = 8
AT = START + DAYS * DAY
STEP = 120
BIT = {name: bit for bit, name in CLOCK_EVENT_REASONS.items()}
CAP, BRAKE = BIT["sw_power_cap"], BIT["hw_power_brake_slowdown"]
SLOWDOWN, HOT = BIT["hw_slowdown"], BIT["hw_thermal_slowdown"]


def _reasons(gpu: int, t: int) -> int:
    """The clock-event bitmask of GPU ``gpu`` at ``t`` seconds after the start.

    0: held by the power cap all the time (a busy board), never by the hardware.
    1: at the cap, plus a 10-minute power brake 30 minutes into every 6 hours.
    2: a 3 h 50 min HW thermal slowdown inside two 2-hour slots on day 3.
    3: nothing at all.
    4: HW slowdown alone every other hour (NVML sets it with the two holds read; alone it is
       not read: a bitmask's bit 3 cannot be told from its largest value in a slot).
    5: the power cap and the display-clock bit (0x100) all the time: no hold.
    6: as 1, its dcgm-exporter upgraded on day 5 to a counters file naming the bitmask by its
       DCGM 3.3 name (see :func:`_bitmask_names`).
    7: as 6, rolled back on day 5 from the new name to the old.
    """
    if gpu == 0:
        return CAP
    if gpu in (1, 6, 7):
        return CAP | (BRAKE | SLOWDOWN if 1800 <= t % (6 * HOUR) < 2400 else 0)
    if gpu == 2:
        inside = 3 * DAY + 2 * HOUR + 300 <= t < 3 * DAY + 6 * HOUR - 300
        return (HOT | SLOWDOWN) if inside else 0
    if gpu == 4:
        return SLOWDOWN if (t // HOUR) % 2 else 0
    if gpu == 5:
        return CAP | BIT["display_clock_setting"]
    return 0


#: GPU -> hours of the last 7 days with a hardware hold.
EXPECTED = {0: 0.0, 1: 56.0, 2: 4.0, 3: 0.0, 4: 0.0, 5: 0.0, 6: 56.0, 7: 56.0}
UPGRADE = 5 * DAY


def _bitmask_names(gpu: int, t: int) -> list[str]:
    """The dcgm-exporter names GPU ``gpu``'s bitmask is sent under at ``t``: the old name,
    except on GPUs 6 and 7, which change names on day 5. The first exporter sends its last
    sample 20 minutes into the day-5 slot and the second its first 10 minutes in, so the
    2-hour slot of the brake at 30 minutes holds both names and sees the brake in the second
    name's readings only (the new one on GPU 6, the old one on GPU 7)."""
    old, new = "DCGM_FI_DEV_CLOCK_THROTTLE_REASONS", "DCGM_FI_DEV_CLOCKS_EVENT_REASONS"
    if gpu not in (6, 7):
        return [old]
    first, second = (old, new) if gpu == 6 else (new, old)
    return [n for n, on in ((first, t <= UPGRADE + 1200), (second, t >= UPGRADE + 600)) if on]


def _history(schema: str) -> str:
    lines: dict[str, list[str]] = {}
    for gpu in EXPECTED:
        ident = (
            f'node="n0",gpu="{gpu}",uuid="GPU-{gpu:04d}-hold",model="NVIDIA H100 80GB HBM3"'
            if schema == "ours"
            else f'Hostname="n0",gpu="{gpu}",UUID="GPU-{gpu:04d}-hold",'
            f'modelName="NVIDIA H100 80GB HBM3"'
        )
        power = "gpu_power_watts" if schema == "ours" else "DCGM_FI_DEV_POWER_USAGE"
        for t in range(0, DAYS * DAY + 1, STEP):
            ts = START + t
            if t % 300 == 0:
                lines.setdefault(power, []).append(f"{power}{{{ident}}} 500 {ts}")
            mask = _reasons(gpu, t)
            if schema == "dcgm":
                for name in _bitmask_names(gpu, t):
                    lines.setdefault(name, []).append(f"{name}{{{ident}}} {mask} {ts}")
                continue
            name = "gpu_clock_event_active"
            for bit, reason in CLOCK_EVENT_REASONS.items():
                on = 1 if mask & bit else 0
                lines.setdefault(name, []).append(f'{name}{{{ident},reason="{reason}"}} {on} {ts}')
    out = [f"# TYPE {name} gauge\n" + "\n".join(body) for name, body in lines.items()]
    return "\n".join(out) + "\n# EOF\n"


def _hours(url: str, schema: str) -> dict[int, float]:
    client = PromClient(PromConfig(url, retries=1, timeout_s=60))
    feature = [f for f in FEATURES if f.name == "hardware_hold_hours_7d"]
    frame = compute_features(client, schema, AT, features=feature)  # type: ignore[arg-type]
    assert frame.failed_queries == 0
    column = frame.column("hardware_hold_hours_7d")
    return {int(g[1]): float(column[i]) for i, g in enumerate(frame.gpus)}


@pytest.mark.parametrize("schema", ["ours", "dcgm"])
def test_hardware_hold_hours_on_prometheus_and_victoriametrics(
    schema: str, on_both_engines: Callable[[str], tuple[str, str]]
) -> None:
    for url in on_both_engines(_history(schema)):
        assert _hours(url, schema) == EXPECTED
