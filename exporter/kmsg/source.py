"""The kernel-log XID source as the collector sees it: start, merge into samples, close.

Precedence and deduplication: the NVIDIA driver writes every XID it raises to the kernel log, and
NVML delivers the same XID as an event — so the two are two views of one stream, not two
streams to add. Per GPU and code the exported count is the larger of the two: the kernel log's
"since boot" count normally, the NVML count when the kernel log lost lines (a wrapped ring) or
has not read the line yet. Both counts only grow, so their maximum only grows too.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from gpu_health.errors import UserError
from gpu_health.exporter.kmsg.counts import KernelLogCounts, XidTally, fold_counts
from gpu_health.exporter.kmsg.reader import JOURNALCTL, KMSG, KernelLogReader, other_device
from gpu_health.telemetry.readings import GpuIdentity, GpuSample
from gpu_health.telemetry.xids import xid_class

log = logging.getLogger(__name__)

#: Backends whose GPUs are this host's GPUs: the kernel log is read by default for them only
#: (a simulated or replayed GPU is not the host's, so the host's XIDs do not belong to it).
HARDWARE_BACKENDS = ("auto", "nvml", "dcgm")


@dataclass(frozen=True)
class KernelLogOptions:
    """What the command line decided: off, or which kmsg path (journal as the fallback)."""

    enabled: bool
    kmsg_path: str = KMSG
    journal: bool = True
    #: the backend's GPUs are the host's (its warning then points at NVML and /dev/kmsg)
    host_gpus: bool = True


def options_for(backend: str, disable: bool, path: str | None) -> KernelLogOptions:
    """On for hardware backends unless disabled; for replay/sim only with an explicit path."""
    if disable:
        return KernelLogOptions(False)
    host = backend in HARDWARE_BACKENDS
    if path is not None:
        return KernelLogOptions(True, path, journal=host, host_gpus=host)
    return KernelLogOptions(host, host_gpus=host)


def check_path(path: str | None) -> None:
    """Refuse a ``--kernel-log.path`` that exists but cannot be a kernel log: a directory, a
    block device, a socket, a character device other than the kernel log's. Those are typing
    mistakes and fail at start; a path that does not exist (yet) only warns when read, because a
    DaemonSet must not crash-loop on a node without ``/dev/kmsg``."""
    if path is None:
        return
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return  # missing or not ours to look at: the reader's one warning line says why
    kinds = {stat.S_ISDIR: "a directory", stat.S_ISBLK: "a block device", stat.S_ISSOCK: "a socket"}
    kind = next((name for test, name in kinds.items() if test(mode)), None)
    problem = (
        f"{kind}, not a kernel log (give /dev/kmsg or a file in its format)"
        if kind is not None
        else other_device(path)
    )
    if problem is not None:
        raise UserError(f"--kernel-log.path {path}: {problem}")


class KernelLog:
    """Counts from the kernel log, merged into each GPU's sample; ``source`` None: inactive."""

    def __init__(self, reader: KernelLogReader, source: str | None) -> None:
        self.reader = reader
        self.counts = reader.counts
        self.source = source

    @classmethod
    def start(
        cls,
        identities: Sequence[GpuIdentity],
        options: KernelLogOptions,
        wait: float = 10.0,
        keep: Collection[int] = (),
    ) -> KernelLog | None:
        """Read the backlog and follow; None when switched off (not when unreadable).
        ``keep``: XID codes the health policy scores, never folded into ``other``."""
        if not options.enabled:
            log.debug("kernel log: off, XIDs come from the backend alone")
            return None
        counts = KernelLogCounts((i.pci_bus_id for i in identities), keep)
        reader = KernelLogReader(
            counts,
            options.kmsg_path,
            JOURNALCTL if options.journal else None,
            host_gpus=options.host_gpus,
        )
        source = reader.start(wait=wait)
        if source is not None:
            log.info(
                "kernel log: counting XIDs and SXids from %s (%d so far)",
                options.kmsg_path if source == "kmsg" else "the journal",
                counts.events,
            )
        return cls(reader, source)

    def merge(self, identity: GpuIdentity, sample: GpuSample, keep: Collection[int] = ()) -> bool:
        """Fold this GPU's kernel-log counts into ``sample`` (counted once, see module doc);
        ``keep``: codes never served as ``other`` (:func:`merge_tally`). True when merged: the
        sample's codes are then keyed as served already."""
        if self.source is None:
            return False
        tally = self.counts.for_gpu(identity.pci_bus_id)
        if tally is None:
            return False
        merge_tally(sample, tally, keep)
        return True

    def close(self) -> None:
        self.reader.close()


def merge_tally(sample: GpuSample, tally: XidTally, keep: Collection[int] = ()) -> None:
    """Per code and per class the larger of the backend's and the kernel log's count, the
    backend's exact counts keyed first as the kernel log serves them
    (:func:`~gpu_health.exporter.kmsg.counts.fold_counts` with the kernel log's codes): a code
    the kernel log serves under its number keeps it, and the backend's other codes fill what is
    left of the GPU's uncatalogued slots, then count as ``other`` (so do the kernel log's own
    beyond its first few). An XID is then counted once, whichever view saw it first. ``keep``:
    codes a site's health policy scores, never folded on the backend's side."""
    sample.xids_watched = True
    classes: dict[str, int] = dict(sample.xid_class_counts)
    if not classes:
        for code, count in sample.xid_counts.items():
            cls = xid_class(code)
            classes[cls] = classes.get(cls, 0) + count
    sample.xid_counts = fold_counts(sample.xid_counts, tally.codes, keep)
    for code, count in tally.codes.items():
        sample.xid_counts[code] = max(sample.xid_counts.get(code, 0), count)
    for cls, count in tally.classes.items():
        classes[cls] = max(classes.get(cls, 0), count)
    sample.xid_class_counts = classes
    if tally.last is not None and (
        sample.last_xid_timestamp is None or tally.last > sample.last_xid_timestamp
    ):
        sample.last_xid_timestamp = tally.last

