"""A small hand-made fleet with one GPU per state, as OpenMetrics history in our schema.

Each GPU reports every ``STEP`` seconds for the last ``HOURS`` hours (before ``end``), and its
series are shaped like the exporter's: error counters start at 0 when the GPU is first seen;
``gpu_up`` goes to 0 when a GPU is lost. Shared by the state tests and the engine-agreement test.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

MODEL = "NVIDIA H100 80GB HBM3"
STEP = 60
HOURS = 3


@dataclass(frozen=True)
class StateGpu:
    index: int
    uuid: str
    node: str
    slot: str
    #: the state the classification must give, and what the history does to get there
    expect: str
    kind: str


FLEET = (
    StateGpu(0, "GPU-healthy-0", "n1", "0", "healthy", "healthy"),
    StateGpu(1, "GPU-healthy-1", "n1", "1", "healthy", "healthy"),
    StateGpu(2, "GPU-lost", "n1", "2", "failed", "lost"),
    StateGpu(3, "GPU-xid79", "n1", "3", "failed", "xid79"),
    StateGpu(4, "GPU-uncorrectable", "n1", "4", "failed", "uncorrectable"),
    StateGpu(5, "GPU-remap-failed", "n1", "5", "failed", "remap_failed"),
    StateGpu(6, "GPU-remap-pending", "n1", "6", "degraded", "remap_pending"),
    StateGpu(7, "GPU-absent", "n2", "0", "absent", "absent"),
    StateGpu(8, "GPU-old", "n2", "1", "replaced", "replaced_old"),
    StateGpu(9, "GPU-new", "n2", "1", "healthy", "replaced_new"),
    StateGpu(10, "GPU-xid48-born-at-1", "n2", "2", "failed", "xid48_born_at_1"),
    StateGpu(11, "GPU-penalty", "n2", "3", "degraded", "penalty"),
    # XID 46 (GPU stopped processing) needs a reset: failed; XID 94 (a contained ECC error: the
    # job stopped, the GPU serves on) is only the health model's 40-point penalty: degraded
    StateGpu(18, "GPU-xid46", "n2", "4", "failed", "xid46"),
    StateGpu(19, "GPU-xid94", "n2", "5", "degraded", "xid94"),
)

#: Whole nodes that stopped reporting 40 minutes ago (an exporter or host down): n3 with
#: four GPUs, one of which had fallen off the bus two hours ago (its replacement pending) and one
#: that had an XID 79 before the node went silent; n4 with a single GPU.
SILENT_NODES = (
    StateGpu(12, "GPU-n3-0", "n3", "0", "absent", "node_silent"),
    StateGpu(13, "GPU-n3-1", "n3", "1", "absent", "node_silent"),
    StateGpu(14, "GPU-n3-gone", "n3", "2", "absent", "absent_before_node"),
    StateGpu(15, "GPU-n3-xid79", "n3", "3", "absent", "xid79_node_silent"),
    StateGpu(16, "GPU-n4-0", "n4", "0", "absent", "node_silent"),
)
#: A reporting GPU whose only health penalty is for an application XID (32, the job's bug): healthy.
APP_XID = StateGpu(17, "GPU-app-xid", "n1", "7", "healthy", "app_xid_penalty")
#: Of those, the GPUs that went silent with their node (``GpuState.node_silent``) ...
NODE_SILENT = frozenset({"GPU-n3-0", "GPU-n3-1", "GPU-n3-xid79", "GPU-n4-0"})
#: ... and the ones still "failed now": silent before its node, or failed when last seen.
STILL_DOWN = frozenset({"GPU-n3-gone", "GPU-n3-xid79"})
#: Seconds before ``end`` at which the silent nodes stopped reporting.
NODE_SILENT_FOR = 40 * 60


def _series(g: StateGpu, t: float, end: float) -> Iterator[tuple[str, dict[str, str], float]]:
    """(metric, extra labels, value) of one GPU at ``t``; nothing when it does not report."""
    late = t >= end - 3600  # the fault happens an hour before the end
    if g.kind in ("absent", "replaced_old", "absent_before_node") and t >= end - 2 * 3600:
        return
    if g.kind in ("node_silent", "xid79_node_silent") and t >= end - NODE_SILENT_FOR:
        return
    if g.kind == "replaced_new" and t < end - 2 * 3600 + 600:
        return
    yield "gpu_up", {}, 0.0 if g.kind == "lost" and late else 1.0
    if g.kind != "unscored":  # the exporter scores every GPU it serves (health model on)
        yield "gpu_health_score", {"dimension": "overall"}, 100.0
    yield "gpu_power_watts", {}, 400.0 + g.index
    yield "gpu_temperature_celsius", {"sensor": "gpu"}, 60.0 + g.index % 3
    xid79 = 1.0 if g.kind in ("xid79", "xid79_node_silent") and late else 0.0
    yield "gpu_xid_errors_total", {"xid": "79"}, xid79
    if g.kind == "xid48_born_at_1" and late:
        yield "gpu_xid_errors_total", {"xid": "48"}, 1.0
    for code in ("46", "94"):  # created at 0 (the exporter's catalogue), one event at the fault
        yield "gpu_xid_errors_total", {"xid": code}, 1.0 if g.kind == f"xid{code}" and late else 0.0
    if g.kind == "xid94":
        xid94 = 40.0 if late else 0.0  # what the default health policy gives one XID 94
        yield "gpu_health_penalty", {"dimension": "memory", "reason": "xid_94"}, xid94
    unc = 2.0 if g.kind == "uncorrectable" and late else 0.0
    yield "gpu_ecc_errors_total", {"type": "uncorrected", "scope": "aggregate"}, unc
    yield "gpu_row_remap_failed", {}, 1.0 if g.kind == "remap_failed" and late else 0.0
    pending = g.kind == "remap_pending" and late
    pending = pending or (g.kind == "absent" and t >= end - 3 * 3600 + 1800)
    yield "gpu_row_remap_pending", {}, 1.0 if pending else 0.0
    penalty = 30.0 if g.kind == "penalty" and late else 0.0
    yield "gpu_health_penalty", {"dimension": "thermal", "reason": "gpu_temperature"}, penalty
    yield "gpu_health_penalty", {"dimension": "overall", "reason": "gpu_temperature"}, 0.0
    if g.kind == "app_xid_penalty":
        app = 20.0 if late else 0.0
        yield "gpu_health_penalty", {"dimension": "reliability", "reason": "xid_32"}, app


def openmetrics(end: float, fleet: tuple[StateGpu, ...] = FLEET) -> str:
    """The history as one OpenMetrics document (seconds timestamps, ends with ``# EOF``)."""
    families: dict[str, list[str]] = {}
    start = end - HOURS * 3600
    times = [start + k * STEP for k in range(HOURS * 3600 // STEP + 1)]
    for g in fleet:
        for t in times:
            for name, extra, value in _series(g, t, end):
                labels = {"node": g.node, "gpu": g.slot, "uuid": g.uuid, "model": MODEL, **extra}
                text = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
                families.setdefault(name, []).append(f"{name}{{{text}}} {value} {t:.0f}")
    out = []
    for name, lines in families.items():
        out.append(f"# TYPE {name} gauge")
        out.extend(lines)
    out.append("# EOF")
    return "\n".join(out) + "\n"
