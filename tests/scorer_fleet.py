"""A tiny hand-made fleet history as OpenMetrics, in our schema or dcgm-exporter's.

The scorer tests need history whose feature values are known in advance (so the PromQL can be
checked number by number) and that exists before the simulator does. Failing GPUs show a
corrected-ECC ramp and rising temperature before they stop reporting; healthy GPUs are flat.
Values are written in our units and converted with the catalogue's DcgmField scales for dcgm.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

from gpu_health.telemetry.catalogue import by_name

MODEL = "NVIDIA H100 80GB HBM3"
DAY = 86400


@dataclass(frozen=True)
class FleetGpu:
    index: int
    node: str
    uuid: str
    #: seconds after the start when the GPU fails (stops reporting), or None
    fails_at: float | None = None
    #: how long before the failure the precursor (ECC ramp, heating) starts
    lead: float = 5 * DAY


def make_fleet(n: int = 12, fail_days: dict[int, float] | None = None) -> list[FleetGpu]:
    """``n`` GPUs on nodes of four; ``fail_days`` maps a GPU index to its failure day."""
    fail_days = {1: 6.5, 5: 6.3} if fail_days is None else fail_days
    gpus = []
    for i in range(n):
        fails = fail_days[i] * DAY if i in fail_days else None
        gpus.append(FleetGpu(i, f"node{i // 4}", f"GPU-{i:04d}-test", fails))
    return gpus


def _signals(g: FleetGpu, t: float) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Our-schema values of one GPU at ``t`` seconds after the start."""
    onset = None if g.fails_at is None else g.fails_at - g.lead
    ramp = 0.0 if onset is None or t < onset else (t - onset) / DAY  # days into the precursor
    # Corrected ECC: 10/day baseline on odd GPUs, plus a ramp of 200/day per day of precursor.
    ecc = (10.0 if g.index % 2 else 0.0) * t / DAY + 100.0 * ramp * ramp
    xid = 1.0 if ramp > 2 else 0.0
    return {
        ("gpu_temperature_celsius", (("sensor", "gpu"),)): 60.0 + g.index % 3 + 2.0 * ramp,
        ("gpu_temperature_celsius", (("sensor", "memory"),)): 55.0 + g.index % 3 + 2.0 * ramp,
        ("gpu_power_watts", ()): 500.0,
        ("gpu_utilization_ratio", (("engine", "gpu"),)): 0.8,
        ("gpu_ecc_errors_total", (("scope", "volatile"), ("type", "corrected"))): float(int(ecc)),
        ("gpu_remapped_rows_total", (("cause", "correctable"),)): float(int(ramp)),
        ("gpu_remapped_rows_total", (("cause", "uncorrectable"),)): 0.0,
        ("gpu_pcie_replays_total", ()): float(int(t / 3600)) if g.index == 3 else 0.0,
        ("gpu_xid_errors_total", (("xid", "63"),)): xid,
        ("gpu_row_remap_pending", ()): 1.0 if ramp > 1 else 0.0,
    }


def openmetrics(
    gpus: list[FleetGpu],
    days: float = 8,
    step: float = 1800,
    schema: str = "ours",
    start: float = 1_700_000_000,
    driver_change_at: float | None = None,
    exporter_restart_at: float | None = None,
    lowercase_hostname_at: float | None = None,
    mig_instances: int = 0,
    xid_code_labels: bool = False,
    job_hours: float = 0.0,
) -> str:
    """The whole history as one OpenMetrics document (ends with ``# EOF``).

    ``driver_change_at`` (seconds after the start): every series carries the driver version
    as a label (dcgm-exporter's ``DCGM_FI_DRIVER_VERSION``, ours ``driver_version``), which
    changes there, as a driver upgrade splits every series in two.

    ``exporter_restart_at`` (dcgm only): a dcgm-exporter pod on Kubernetes without
    ``NODE_NAME`` reports its own pod name as ``Hostname``, so a restart of the exporter pod
    changes the ``Hostname`` of every series of the node; job churn adds and changes the
    ``pod``/``namespace``/``container`` labels. Both happen there.

    ``lowercase_hostname_at`` (dcgm only): from there on the node is labelled ``hostname``
    instead of ``Hostname``, as an upgrade to a dcgm-exporter with NVIDIA/dcgm-exporter#655
    (May 2026) relabels it.

    ``mig_instances`` (dcgm only): the GPUs of even-numbered nodes have MIG enabled with that
    many GPU instances, and report every series once per instance (``GPU_I_ID``,
    ``GPU_I_PROFILE``) with the same device-level value, as dcgm-exporter does in its default
    flexible mode.

    ``xid_code_labels`` (dcgm only): the XID gauge also carries its code as ``err_code`` (and
    ``err_msg``), as dcgm-exporter 3.3.6-3.4.2 and later write it: every code is a series.

    ``job_hours`` (dcgm only): jobs of that many hours alternate with idle stretches of half
    as long. dcgm-exporter on Kubernetes labels a series with the pod of the job that holds
    the GPU (each job a new pod) and writes it without pod labels while the GPU is idle, so
    the idle label set comes back in every gap.
    """
    catalogue = by_name()
    times = [k * step for k in range(int(days * DAY / step) + 1)]
    families: dict[str, list[str]] = {}
    for g in gpus:
        for t in times:
            if g.fails_at is not None and t >= g.fails_at:
                break
            for (metric, extra), value in _signals(g, t).items():
                if schema == "ours":
                    name = metric
                    labels = {
                        "node": g.node,
                        "gpu": str(g.index),
                        "uuid": g.uuid,
                        "model": MODEL,
                        **dict(extra),
                    }
                    v = value
                else:
                    fields = [
                        f
                        for f in catalogue[metric].dcgm
                        if all(f.labels.get(k) == val for k, val in extra)
                    ]
                    if metric == "gpu_xid_errors_total":
                        fields = list(catalogue[metric].dcgm)
                    if not fields:
                        continue  # dcgm-exporter has no such field
                    f = fields[0]
                    name = f.name
                    labels = {
                        "Hostname": g.node,
                        "gpu": str(g.index),
                        "UUID": g.uuid,
                        "modelName": MODEL,
                    }
                    # dcgm-exporter's XID gauge holds the last XID code (0 before any).
                    v = (
                        (63.0 if value else 0.0)
                        if metric == "gpu_xid_errors_total"
                        else (value / f.scale)
                    )
                if exporter_restart_at is not None and schema != "ours":
                    after = t >= exporter_restart_at
                    labels["Hostname"] = f"dcgm-exporter-{g.node}-{'b' if after else 'a'}"
                    labels["pod"] = f"train-{g.index}-{'y' if after else 'x'}"
                    labels["namespace"] = "ml"
                    labels["container"] = "trainer"
                if job_hours and schema != "ours":
                    cycle, into = divmod(t, job_hours * 1.5 * 3600)
                    if into < job_hours * 3600:
                        labels["pod"] = f"job-{g.index}-{cycle:.0f}"
                        labels["namespace"] = "ml"
                        labels["container"] = "trainer"
                if (
                    lowercase_hostname_at is not None
                    and schema != "ours"
                    and t >= lowercase_hostname_at
                ):
                    labels["hostname"] = labels.pop("Hostname")
                if driver_change_at is not None:
                    key = "driver_version" if schema == "ours" else "DCGM_FI_DRIVER_VERSION"
                    labels[key] = "535.129.03" if t < driver_change_at else "550.54.15"
                if xid_code_labels and metric == "gpu_xid_errors_total" and schema != "ours":
                    labels["err_code"] = f"{v:.0f}"
                    labels["err_msg"] = "No Error" if v == 0 else f"XID {v:.0f}"
                instances: list[dict[str, str]] = [{}]
                if mig_instances and schema != "ours" and (g.index // 4) % 2 == 0:
                    instances = [
                        {"GPU_I_ID": str(i), "GPU_I_PROFILE": "1g.10gb"}
                        for i in range(1, mig_instances + 1)
                    ]
                for instance in instances:
                    text = ",".join(
                        f'{k}="{val}"' for k, val in sorted({**labels, **instance}.items())
                    )
                    families.setdefault(name, []).append(f"{name}{{{text}}} {v} {start + t:.0f}")
    out = io.StringIO()
    for name, lines in families.items():
        out.write(f"# TYPE {name} gauge\n")
        out.write("\n".join(lines))
        out.write("\n")
    out.write("# EOF\n")
    return out.getvalue()


def failures_csv(gpus: list[FleetGpu], path: Path, start: float = 1_700_000_000) -> Path:
    with path.open("w", newline="") as handle:
        w = csv.writer(handle)
        w.writerow(["uuid", "time", "mode", "precursor"])
        for g in gpus:
            if g.fails_at is not None:
                w.writerow([g.uuid, f"{start + g.fails_at:.0f}", "hbm", "true"])
    return path
