"""What the kernel log has said since boot: XIDs per GPU (by PCI address) and SXids per NVSwitch.

Bounded by construction, because every label value here comes from text in the log: counts are
kept only for the PCI addresses of the GPUs in the inventory; a line naming any other address (a
GPU NVML no longer lists, or a forged line) adds to one ``unknown`` bucket. Codes and switch
numbers arrive bounded by the parser (XIDs 1-999, switches 0-63, SXids 1-99999), which still
allowed ~1,000 ``xid`` series per GPU and 4,225 SXid series; so here, per GPU (and for the
``unknown`` bucket), codes of NVIDIA's catalogue keep their own series (they exist from birth
anyway) but only the first :data:`MAX_UNCATALOGUED_XIDS` other codes do, later ones count as
``xid="other"``; and only the first :data:`MAX_NVSWITCH_LABELS` switch numbers get a ``nvswitch``
label (later ones: ``unknown``), each with at most :data:`MAX_SXID_LABELS` SXid codes (later
ones: ``other``). Worst case: len(XID_CATALOGUE) + MAX_UNCATALOGUED_XIDS + 1 ``xid`` values per
GPU and (MAX_NVSWITCH_LABELS + 1) * (MAX_SXID_LABELS + 1) SXid series.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field

from gpu_health.exporter.kmsg.parser import PciKey, SxidEvent, XidEvent, pci_key
from gpu_health.telemetry.xids import XID_CATALOGUE, XID_OTHER, bounded_code, xid_class

#: Distinct codes outside NVIDIA's catalogue labelled per GPU before the rest count as
#: ``xid="other"``: a new driver's new codes still show by number, a flood of forged ones not.
#: A real GPU logs a handful of codes in its life, nearly all catalogued. The NVML event thread
#: folds with the same bound (:func:`fold_xid`), so the two views of one XID stream key it alike.
MAX_UNCATALOGUED_XIDS = 8
#: Distinct NVSwitch numbers labelled before the rest count as ``nvswitch="unknown"``; a node
#: has at most 12 (HGX-2), most 2 to 6.
MAX_NVSWITCH_LABELS = 16
#: Distinct SXid codes labelled per NVSwitch before the rest count as ``sxid="other"``.
MAX_SXID_LABELS = 16


def is_uncatalogued(code: int) -> bool:
    """A code with a label of its own that NVIDIA's catalogue does not list (not ``other``)."""
    return code not in XID_CATALOGUE and code != XID_OTHER


def uncatalogued_full(codes: Mapping[int, int]) -> bool:
    """Whether ``codes`` already holds :data:`MAX_UNCATALOGUED_XIDS` uncatalogued codes."""
    return sum(1 for c in codes if is_uncatalogued(c)) >= MAX_UNCATALOGUED_XIDS


def fold_xid(codes: Mapping[int, int], code: int, keep: Collection[int] = ()) -> int:
    """The key one more event of ``code`` is counted under in ``codes`` (one GPU's counts).

    The code itself when it is catalogued (so every code the health score, the alerts and the
    scorer read keeps its own series: they are all catalogued), already counted, or among the
    first :data:`MAX_UNCATALOGUED_XIDS` uncatalogued codes; else :data:`XID_OTHER`, as is a
    code outside ``1..MAX_XID_CODE``. Every event is still counted, under one key or another.
    """
    code = bounded_code(code)
    if code in codes or code in keep or not is_uncatalogued(code) or not uncatalogued_full(codes):
        return code
    return XID_OTHER


def fold_counts(
    counts: Mapping[int, int], labelled: Collection[int] = (), keep: Collection[int] = ()
) -> dict[int, int]:
    """``counts`` (one GPU's exact counts per code) keyed as they are served: catalogued codes,
    codes in ``keep`` (those a site's health policy scores) and codes in ``labelled`` (those the
    kernel log already serves under their own number) keep their key; other codes keep theirs
    while the GPU serves fewer than :data:`MAX_UNCATALOGUED_XIDS` uncatalogued codes (in the
    order ``counts`` holds them: first seen, first labelled, so a labelled code stays labelled
    from scrape to scrape), and count as :data:`XID_OTHER` after. Every event stays counted.

    The NVML view counts exactly and is folded here, when it is served or merged, not when it
    counts: folded as it counted, an XID the kernel log had labelled since boot and NVML (its
    first few slots taken since the exporter started) folded was served under both keys, and
    the merge's per-key maximum counted it twice, more with every repeat."""
    room = MAX_UNCATALOGUED_XIDS - sum(1 for c in labelled if is_uncatalogued(c))
    out: dict[int, int] = {}
    for code, count in counts.items():
        key = bounded_code(code)
        if is_uncatalogued(key) and key not in labelled and key not in keep:
            if room > 0:
                room -= 1
                labelled = {*labelled, key}
            else:
                key = XID_OTHER
        out[key] = out.get(key, 0) + count
    return out


@dataclass
class XidTally:
    """XID counts of one GPU (or of the unknown bucket) with the time of the last one."""

    codes: dict[int, int] = field(default_factory=dict)
    classes: dict[str, int] = field(default_factory=dict)
    last: float | None = None
    #: codes never folded: those the health policy scores (a site's may be uncatalogued)
    keep: frozenset[int] = frozenset()

    def add(self, code: int, cls: str, when: float | None) -> None:
        code = fold_xid(self.codes, code, self.keep)
        self.codes[code] = self.codes.get(code, 0) + 1
        self.classes[cls] = self.classes.get(cls, 0) + 1
        if when is not None and (self.last is None or when > self.last):
            self.last = when

    def copy(self) -> XidTally:
        return XidTally(dict(self.codes), dict(self.classes), self.last, self.keep)


class KernelLogCounts:
    """Thread-safe counters fed by the reader thread and read by every scrape."""

    def __init__(self, gpu_addresses: Iterable[str], keep: Collection[int] = ()) -> None:
        """``keep``: XID codes never folded into ``other`` (the health policy's)."""
        keys = {pci_key(address) for address in gpu_addresses}
        kept = frozenset(keep)
        self._gpus: dict[PciKey, XidTally] = {
            k: XidTally(keep=kept) for k in keys if k is not None
        }
        self._unknown = XidTally(keep=kept)
        #: (switch label, sxid label) -> count
        self._sxids: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()
        #: Xid/SXid lines counted, and lines that named an address outside the inventory
        self.events = 0
        self.unattributed = 0

    def add(self, event: XidEvent | SxidEvent, when: float | None) -> None:
        with self._lock:
            self.events += 1
            if isinstance(event, XidEvent):
                tally = self._gpus.get(event.pci)
                if tally is None:
                    self.unattributed += 1
                    tally = self._unknown
                tally.add(event.code, xid_class(event.code, event.text), when)
                return
            switch = str(event.switch) if event.switch >= 0 else "unknown"
            switches = {s for s, _ in self._sxids if s != "unknown"}
            if switch not in switches and len(switches) >= MAX_NVSWITCH_LABELS:
                switch = "unknown"
            code = str(event.code) if event.code >= 0 else "other"
            labelled = {c for s, c in self._sxids if s == switch and c != "other"}
            if code not in labelled and len(labelled) >= MAX_SXID_LABELS:
                code = "other"
            key = (switch, code)
            self._sxids[key] = self._sxids.get(key, 0) + 1

    def for_gpu(self, pci_bus_id: str) -> XidTally | None:
        """A copy of one GPU's tally (None: its address is not one the counts were built for)."""
        key = pci_key(pci_bus_id)
        with self._lock:
            tally = self._gpus.get(key) if key is not None else None
            return tally.copy() if tally is not None else None

    def unknown(self) -> XidTally:
        with self._lock:
            return self._unknown.copy()

    def sxids(self) -> dict[tuple[str, str], int]:
        with self._lock:
            return dict(self._sxids)
