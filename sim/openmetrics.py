"""Render simulated windows as OpenMetrics text, in our schema or dcgm-exporter's.

Names, types, help and label names come from :mod:`gpu_health.telemetry.catalogue` — the same
table the live exporter renders — by running each metric's extractor on a *probe* sample whose
fields hold unique sentinel values: the sentinel that comes back tells which simulated array feeds
which series. A catalogue change therefore reaches the backfill without touching this file.
Lines are built per series with string joins (constant series in one C-level join), which is what
makes >1 M samples/s possible in Python.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from gpu_health.sim.batch import Row
from gpu_health.telemetry.catalogue import CATALOGUE, IDENTITY_LABELS, INFO_LABELS, MetricSpec
from gpu_health.telemetry.readings import CLOCK_EVENT_REASONS, GpuIdentity, GpuSample
from gpu_health.telemetry.xids import XID_CATALOGUE, XID_CLASSES, xid_class

SENTINEL = 7.0e15
#: Our exporter keeps sending a lost GPU's XID counters (the XID 79 of a fall off the bus
#: among them) beside its ``gpu_up 0``, as the live collector does; dcgm-exporter reads
#: nothing from a GPU it lost, and every other family stops while the GPU is down.
SENT_WHILE_LOST = frozenset(
    {
        "gpu_xid_errors_total",
        "gpu_xid_errors_all_codes_total",
        "gpu_xid_class_errors_total",
        "gpu_last_xid_timestamp_seconds",
    }
)
KEYED = ("xid_counts", "nvlink_errors", "clock_event_seconds")
#: The job and port a scrape of each exporter would add, so backfilled history answers the same
#: selectors (the mixin's ``job="gpu-health-exporter"``) as what Prometheus scrapes live.
SCRAPE_JOBS = {"ours": ("gpu-health-exporter", 9840), "dcgm": ("dcgm-exporter", 9400)}


def scrape_labels(
    ident: GpuIdentity, schema: str = "ours", instance: str | None = None
) -> list[tuple[str, str]]:
    """``job`` and ``instance`` as a Prometheus scrape would set them.

    By default one exporter per node (``NODE:9840``, the DaemonSet layout); ``instance`` names
    one exporter serving the whole fleet instead, as the demo's live simulated exporter does, so
    that history and live series line up as one series.
    """
    job, port = SCRAPE_JOBS[schema]
    return [("job", job), ("instance", instance or f"{ident.node}:{port}")]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(pairs: Iterable[tuple[str, str]]) -> str:
    return ",".join(f'{k}="{_escape(v)}"' for k, v in pairs)


@dataclass
class Source:
    """Where one series' values come from: a field (and key), a reason bit, or a constant."""

    field: str | None
    key: Any = None
    bit: int = 0
    constant: float | None = None


def probe(
    spec: MetricSpec, identity: GpuIdentity, row: Row
) -> list[tuple[tuple[str, ...], Source]]:
    """The series of ``spec`` for this row's fields, found by running the catalogue extractor."""
    if spec.name == "gpu_up":
        return [((), Source("__up__"))]
    if spec.name == "gpu_clock_event_active":
        if "clock_event_reasons" not in row.values:
            return []
        return [
            ((name,), Source("clock_event_reasons", bit=b))
            for b, name in CLOCK_EVENT_REASONS.items()
        ]
    if spec.name == "gpu_xid_class_errors_total":
        if "xid_counts" not in row.values:
            return []
        return [((cls,), Source("__xid_class__", key=cls)) for cls in XID_CLASSES]
    if spec.name == "gpu_xid_errors_all_codes_total":
        return [((), Source("__xid_total__"))] if "xid_counts" in row.values else []
    if spec.name == "gpu_nvlink_errors_all_links_total":
        kinds = sorted({kind for _link, kind in row.values.get("nvlink_errors", {})})
        return [((kind,), Source("__nvlink_total__", key=kind)) for kind in kinds]
    sample = GpuSample(timestamp=0.0, xids_watched="xid_counts" in row.values)
    lookup: dict[float, Source] = {}
    n = 0
    for name, value in row.values.items():
        if name in KEYED:
            d = {}
            for k in value:
                n += 1
                d[k] = SENTINEL + n
                lookup[SENTINEL + n] = Source(name, key=k)
            setattr(sample, name, d)
        elif hasattr(sample, name):
            n += 1
            setattr(sample, name, SENTINEL + n)
            lookup[SENTINEL + n] = Source(name)
    out = []
    for labels, value in spec.extract(identity, sample):
        src = lookup.get(value)
        out.append((labels, src if src is not None else Source(None, constant=value)))
    return out


def _summed(sending: Any, counters: dict[Any, Any]) -> Any:
    """The sum of a row's keyed counters wherever ``sending`` (a bool array) holds: the
    per-GPU total the live exporter sends beside them (a counter missing from a sample adds
    nothing)."""
    import numpy as np

    total = np.where(sending, 0.0, np.nan)
    for counts in counters.values():
        total = total + np.nan_to_num(np.asarray(counts, dtype=np.float64))
    return total


def _fmt(value: float) -> str:
    return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)


class Writer:
    """Turns windows of rows into OpenMetrics text for one schema."""

    def __init__(self, schema: str = "ours", instance: str | None = None) -> None:
        self.schema = schema
        self.instance = instance
        self._probes: dict[tuple[Any, ...], list[tuple[MetricSpec, list[Any]]]] = {}
        self.samples = 0

    def _values(self, row: Row, src: Source, lost_too: bool = False) -> Any:
        """The series' values over the window; ``lost_too``: also while the GPU is down (our
        exporter's XID families, :data:`SENT_WHILE_LOST`)."""
        import numpy as np

        lost_too = lost_too and bool(row.events)
        sending = row.present if lost_too else row.up
        if src.field == "__up__":
            return np.where(row.present, row.up.astype(np.float64), np.nan)
        if src.field is None:
            return np.where(sending, float(src.constant or 0.0), np.nan)
        if src.field in ("__xid_class__", "__xid_total__"):
            xids = (row.events if lost_too else row.values)["xid_counts"]
        if src.field == "__xid_class__":
            # Zero-born like the live exporter: 0 while sent, plus every code of the class.
            total = np.where(sending, 0.0, np.nan)
            for code, counts in xids.items():
                if xid_class(code) == src.key:
                    total = np.where(np.isnan(total), counts, total + counts)
            return total
        if src.field == "__xid_total__":
            # every code's count, as the live exporter sums them: 0 while sent before any event
            return _summed(sending, xids)
        if src.field == "__nvlink_total__":
            links = row.values["nvlink_errors"]
            return _summed(row.up, {k: v for k, v in links.items() if k[1] == src.key})
        value = (row.events if lost_too and src.field in row.events else row.values)[src.field]
        if src.key is not None:
            value = value[src.key]
            if src.field == "xid_counts" and src.key not in XID_CATALOGUE:
                # Codes outside the catalogue are born with their first event, as live.
                value = np.where(value > 0, value, np.nan)
        if src.bit:
            value = np.floor(value / src.bit) % 2
        if src.field == "last_xid_timestamp":
            value = np.where(value > 0, value, np.nan)
        return value

    def _series(self, row: Row) -> list[tuple[MetricSpec, list[Any]]]:
        ident = row.slot.identity(row.board)
        sig = (
            row.slot.spec.key,
            tuple(sorted(row.values.get("xid_counts", {}))),
        )
        cached = self._probes.get(sig)
        if cached is None:
            cached = [(spec, probe(spec, ident, row)) for spec in CATALOGUE]
            self._probes[sig] = cached
        return cached

    def render(self, rows: list[Row], ts: Any) -> str:
        """One window as OpenMetrics text (families in catalogue order, no ``# EOF``)."""
        suffix = [f" {int(t)}\n" for t in ts]
        per_row = [(row, self._series(row), row.slot.identity(row.board)) for row in rows]
        if self.schema == "dcgm":
            return self._render_dcgm(per_row, ts, suffix)
        chunks: list[str] = []
        for i, spec in enumerate(CATALOGUE):
            family = spec.name[:-6] if spec.kind == "counter" else spec.name
            header = f"# TYPE {family} {spec.kind}\n# HELP {family} {_escape(spec.help)}\n"
            body: list[str] = []
            for row, series, ident in per_row:
                base = scrape_labels(ident, instance=self.instance) + [
                    (k, v) for k, v in ident.labels().items() if k in IDENTITY_LABELS
                ]
                for labels, src in series[i][1]:
                    pairs = base + list(zip(spec.labels, labels, strict=True))
                    prefix = f"{spec.name}{{{_labels(pairs)}}} "
                    values = self._values(row, src, spec.name in SENT_WHILE_LOST)
                    self._emit(body, prefix, values, suffix)
            if body:
                chunks.append(header)
                chunks.extend(body)
        chunks.append(self._render_info(per_row, suffix))
        return "".join(chunks)

    def _render_info(self, per_row: list[Any], suffix: list[str]) -> str:
        """``gpu_info`` (always 1), as the exporter serves it, so joins on it work on history."""
        lines = ["# TYPE gpu_info gauge\n# HELP gpu_info Static facts about each GPU.\n"]
        for _row, _series, ident in per_row:
            pairs = scrape_labels(ident, instance=self.instance) + [
                (k, v) for k, v in ident.labels().items() if k in IDENTITY_LABELS
            ]
            pairs += [(name, getattr(ident, name) or "") for name in INFO_LABELS]
            head = f"gpu_info{{{_labels(pairs)}}} 1"
            lines.append(head + head.join(suffix))
            self.samples += len(suffix)
        return "".join(lines)

    def _emit(self, body: list[str], prefix: str, values: Any, suffix: list[str]) -> None:
        import numpy as np

        ok = ~np.isnan(values)
        count = int(ok.sum())
        if not count:
            return
        self.samples += count
        if count == len(values) and values[0] == values[-1] and np.all(values == values[0]):
            head = prefix + _fmt(float(values[0]))
            body.append(head + head.join(suffix))
            return
        if count == len(values):
            strs = list(map(_fmt, values.tolist()))
            body.append("".join([prefix + v + s for v, s in zip(strs, suffix, strict=True)]))
            return
        idx = np.flatnonzero(ok).tolist()
        vals = values[ok].tolist()
        body.append("".join([prefix + _fmt(v) + suffix[j] for v, j in zip(vals, idx, strict=True)]))

    def _render_dcgm(self, per_row: list[Any], ts: Any, suffix: list[str]) -> str:
        """dcgm-exporter names, labels and units (MiB, MHz, mJ, %, ns; XID as last value)."""
        import numpy as np

        chunks: list[str] = []
        for i, spec in enumerate(CATALOGUE):
            for df in spec.dcgm:
                body: list[str] = []
                for row, series, ident in per_row:
                    base = _labels(
                        (
                            *scrape_labels(ident, "dcgm", self.instance),
                            ("gpu", str(ident.index)),
                            ("UUID", ident.uuid),
                            ("pci_bus_id", ident.pci_bus_id),
                            ("device", f"nvidia{ident.index}"),
                            ("modelName", ident.model),
                            ("Hostname", ident.node),
                        )
                    )
                    prefix = f"{df.name}{{{base}}} "
                    wanted = dict(df.labels)
                    if wanted.get("xid") == "*value*":
                        if "last_xid_code" in row.values:
                            self._emit(body, prefix, row.values["last_xid_code"], suffix)
                        continue
                    if wanted.get("reason") == "*bitmask*":
                        if "clock_event_reasons" in row.values:
                            self._emit(body, prefix, row.values["clock_event_reasons"], suffix)
                        continue
                    if wanted.get("direction") == "*rate*":
                        if "nvlink_tx_bytes" in row.values:
                            rate = np.where(row.up, 2 * 25e9 / 1e6, np.nan)
                            self._emit(body, prefix, rate, suffix)
                        continue
                    total = None
                    for labels, src in series[i][1]:
                        got = dict(zip(spec.labels, labels, strict=True))
                        if all(v in ("all",) or got.get(k) == v for k, v in wanted.items()):
                            v = self._values(row, src)
                            total = v if total is None else total + v
                    if total is not None:
                        self._emit(body, prefix, np.rint(total / df.scale * 1000) / 1000, suffix)
                if body:
                    chunks.append(f"# TYPE {df.name} gauge\n")
                    chunks.extend(body)
        return "".join(chunks)
