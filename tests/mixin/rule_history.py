"""A short, fault-rich fleet history that makes every mixin rule say something.

The GPU telemetry is the simulator's own (``gpu_health.sim``: the same fleet model, fault
injection and health score as ``gpu-health backfill`` and the live ``--backend sim``), so no new
physics is written here. Only what a scrape or the scorer would add is appended by hand: ``up``
per exporter and scorer, the exporter's collector self-metric, and a few scorer outputs
(probabilities, NPVs, warranty, precision) whose rules are plain aggregations and joins.

Two losses of telemetry are cut out of the text afterwards: one GPU stops reporting (all its
series end, as when the driver loses it without an XID), and the second node's exporter goes
down (its ``up`` turns 0 and every series of that node ends).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from gpu_health.sim import openmetrics as om
from gpu_health.sim.batch import Windows
from gpu_health.sim.faults import parse_fault
from gpu_health.sim.fleet import build_fleet
from gpu_health.sim.health import HealthSeries
from gpu_health.sim.live import inject
from gpu_health.telemetry.catalogue import CATALOGUE

HOURS = 3
RESOLUTION = 30.0
#: Samples fall 7 s after the half-minute, as a scrape's offset puts them: never on the
#: minute-aligned instants rules are evaluated at (there, Prometheus 2.x counts a sample exactly
#: at the window's start and VictoriaMetrics does not; Prometheus 3 does not either).
SCRAPE_OFFSET = 7
GPUS = 16  # two nodes of eight
SEED = 3
#: Families the rules read; the others would only make the history slower to load.
FAMILIES = frozenset(
    {
        "gpu_up",
        "gpu_clock_event_active",
        "gpu_clock_event_seconds_total",
        "gpu_ecc_errors_total",
        "gpu_row_remap_pending",
        "gpu_row_remap_failed",
        "gpu_xid_errors_total",
        "gpu_pcie_replays_total",
        "gpu_nvlink_errors_total",
        "gpu_nvlink_errors_all_links_total",
    }
)
#: One of each injected fault the alerts know, on distinct GPUs (slot index = fleet position).
FAULTS = (
    "gpu=0,fault=ecc_storm,after=30m,for=40m",
    "gpu=1,fault=uncorrectable_ecc,after=45m",
    "gpu=2,fault=thermal,after=20m",
    "gpu=3,fault=xid79,after=100m",
    "gpu=4,fault=power_brake,after=50m,for=60m",
    "gpu=5,fault=pcie_replay_storm,after=40m,for=30m",
    "gpu=6,fault=nvlink_errors,after=60m,for=40m",
    "gpu=9,fault=row_remap_failure,after=70m",
    "gpu=10,fault=row_remap_pending,after=35m",
    "gpu=11,fault=xid46,after=80m",
    "gpu=12,fault=xid13,after=30m",
)
#: node 1's GPU 7 stops reporting this long before the end
GONE_BEFORE_END = 50 * 60.0
#: node 2's exporter goes down this long before the end
DOWN_BEFORE_END = 25 * 60.0
NODE1, NODE2 = "gpu-node-001:9840", "gpu-node-002:9840"
SCORER = "scorer:9841"
_INSTANCE = re.compile(r'instance="([^"]*)"')
_GPU = re.compile(r'[{,]gpu="([^"]*)"')


@dataclass(frozen=True)
class History:
    text: str  # OpenMetrics, ends with # EOF
    start: float
    end: float
    gone_at: float
    down_at: float


def _sim_text(start: float, end: float) -> str:
    fleet = build_fleet(GPUS, SEED)
    for spec in FAULTS:
        fault = parse_fault(spec)
        slot = fleet.slots[fault.gpu]
        board = next(b for b in slot.boards if b.start <= start < b.end)
        inject(slot, board, fault, start)
    import numpy as np

    ts = np.arange(start, end + RESOLUTION / 2, RESOLUTION, dtype=np.float64)
    rows = list(Windows(fleet).window(ts))
    keep = tuple(spec for spec in CATALOGUE if spec.name in FAMILIES)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(om, "CATALOGUE", keep)
        writer = om.Writer("ours")
        text = writer.render(rows, ts)
        # A GPU off the bus is present but unreadable: it has no health score (as live).
        readable = [dataclasses.replace(r, present=r.up) for r in rows]
        # The exporter scores every GPU at each scrape; so does the history.
        text += HealthSeries(writer, RESOLUTION, every=RESOLUTION)(readable, ts)
    return text


def _quiet_links(text: str) -> set[str]:
    """NVLink error series that never count an error, except link 0's. Half the history's
    samples are NVLink counters (18 links x 4 types per H100); the quiet ones add 0 to every
    sum the rules take, and link 0 keeps every GPU's per-GPU NVLink series."""
    counting: set[str] = set()
    quiet: set[str] = set()
    for line in text.splitlines():
        if line.startswith("gpu_nvlink_errors_total{") and 'link="0"' not in line:
            series, value, _ = line.rsplit(" ", 2)
            (counting if float(value) else quiet).add(series)
    return quiet - counting


def _cut(text: str, gone_at: float, down_at: float) -> Iterator[str]:
    """Drop node 1 GPU 7's samples from ``gone_at`` and all of node 2's from ``down_at``
    (and the quiet NVLink links); move every sample by the scrape offset."""
    quiet = _quiet_links(text)
    for line in text.splitlines():
        if line.startswith("#"):
            yield line
            continue
        series, _, stamp = line.rpartition(" ")
        if series.rpartition(" ")[0] in quiet:
            continue
        ts = float(stamp) + SCRAPE_OFFSET
        instance = _INSTANCE.search(line)
        host = instance.group(1) if instance else ""
        if host == NODE2 and ts >= down_at:
            continue
        if host == NODE1 and ts >= gone_at:
            gpu = _GPU.search(line)
            if gpu and gpu.group(1) == "7":
                continue
        yield f"{series} {ts:.0f}"


def _extra(start: float, end: float, down_at: float) -> str:
    """``up``, the collector self-metric and scorer outputs, as scrapes would store them."""
    fams: dict[str, list[str]] = {}

    def add(name: str, labels: str, value: float, t: float) -> None:
        fams.setdefault(name, []).append(f"{name}{{{labels}}} {value:g} {t:.0f}")

    t = start + SCRAPE_OFFSET
    while t <= end + SCRAPE_OFFSET:
        for inst in (NODE1, NODE2):
            exporter = f'job="gpu-health-exporter",instance="{inst}"'
            down = inst == NODE2 and t >= down_at
            add("up", exporter, 0.0 if down else 1.0, t)
            if not down:
                # the collector fails for 20 minutes on node 1 (NVML unreadable)
                failing = inst == NODE1 and start + 3600 <= t < start + 4800
                add("gpu_exporter_scrape_collector_success", exporter + ',collector="gpu"',
                    0.0 if failing else 1.0, t)  # fmt: skip
        if int(t - start - SCRAPE_OFFSET) % 60 == 0:
            _scorer_samples(add, start, end, t)
        t += RESOLUTION
    out = []
    for name, lines in fams.items():
        out.append(f"# TYPE {name} gauge")
        out.extend(lines)
    return "\n".join(out)


def _scorer_samples(
    add: Callable[[str, str, float, float], None], start: float, end: float, t: float
) -> None:
    """Per-GPU scorer outputs for 16 GPUs; a few cross the alert thresholds as time passes."""
    scorer = f'job="gpu-health-scorer",instance="{SCORER}"'
    # the scorer stops running 80 minutes before the end (its last-run time freezes)
    last_run = min(t, end - 80 * 60)
    add("up", scorer, 1.0, t)
    add("gpu_scorer_last_run_timestamp_seconds", scorer, last_run, t)
    progress = (t - start) / (end - start)
    for i in range(GPUS):
        node = "gpu-node-001" if i < 8 else "gpu-node-002"
        ident = f'{scorer},node="{node}",gpu="{i % 8}",uuid="GPU-{i:04d}",model="H100"'
        p7 = round(min(0.9, 0.02 * (i + 1) * (1 + 2 * progress)), 4)
        p30 = round(min(0.99, 2.5 * p7), 4)
        add("gpu_failure_probability", ident + ',horizon="7d"', p7, t)
        add("gpu_failure_probability", ident + ',horizon="30d"', p30, t)
        row, rack = divmod(i, 4)
        info = f'datacenter="dc{i % 2}",row="r{row}",rack="k{rack}",team="t{i % 3}",sla_tier="gold"'
        add("gpu_asset_info", f"{ident},{info}", 1.0, t)
        add("gpu_warranty_remaining_seconds", ident, (5 + 4 * i) * 86400 - (t - start), t)
        keep = 20000.0 - 1500.0 * i * progress
        npv = {"keep": keep, "repair": keep - 3000, "sell": 9000.0, "decommission": 500.0}
        best = max(npv, key=lambda a: npv[a])
        for action, value in npv.items():
            add("gpu_npv", f'{ident},action="{action}",currency="USD"', round(value, 2), t)
            add("gpu_recommended_action", f'{ident},action="{action}"', float(action == best), t)
        add("gpu_residual_value", ident + ',currency="USD"', 25000.0 - 800.0 * i, t)
    for horizon in ("7d", "30d"):
        labels = f'{scorer},horizon="{horizon}",window="30d"'
        add("gpu_prediction_precision", labels, 0.04 if horizon == "7d" else 0.4, t)
        for outcome, n in (("true_positive", 3), ("false_positive", 30), ("false_negative", 2)):
            add("gpu_prediction_outcomes", f'{labels},outcome="{outcome}"', float(n), t)


def make_history(end: float) -> History:
    """Three hours of history from a minute-aligned start, samples at the scrape offset."""
    end = float(int(end) // 60 * 60)
    start = end - HOURS * 3600
    gone_at, down_at = end - GONE_BEFORE_END, end - DOWN_BEFORE_END
    sim = "\n".join(_cut(_sim_text(start, end), gone_at, down_at))
    text = sim.rstrip("\n") + "\n" + _extra(start, end, down_at) + "\n# EOF\n"
    return History(text, start, end, gone_at, down_at)
