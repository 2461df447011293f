"""Parse kernel-log records and the NVIDIA driver's Xid / SXid lines in them.

Two record formats reach the parser: ``/dev/kmsg`` records (``PRI,SEQ,USEC,FLAGS;TEXT``, see the
kernel's Documentation/ABI/testing/dev-kmsg) and ``journalctl -o json`` lines (the journal's copy
of the same kernel messages). The NVIDIA lines inside them look like (real examples with their
sources in ``tests/fixtures/kmsg/README.md``)::

    NVRM: Xid (PCI:0000:3b:00): 79, pid='<unknown>', name=<unknown>, GPU has fallen off the bus.
    NVRM: Xid (PCI:0000:01:00 GPU-I:05): 94, pid=7194, Contained: CE User Channel (0x9). ...
    NVRM: Xid (0000:03:00): 13, 0003 00000000 00008297 ...          (drivers before ~2014)
    nvidia-nvswitch3: SXid (PCI:0000:c1:00.0): 28006, Non-fatal, Link 46 MC TS crumbstore ...

Everything here treats its input as hostile: records are cut at :data:`MAX_RECORD` bytes before
any regular expression runs, bytes that are not UTF-8 are replaced, every pattern is anchored or
bounded, numbers are limited in length, and a line that does not parse is simply not an event.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from gpu_health.telemetry.xids import bounded_code

#: Longest record looked at (the kernel's own limit for one /dev/kmsg record is 8 KiB - 1
#: header); anything longer is truncated, never buffered whole.
MAX_RECORD = 8192
#: Longest message text kept for classification.
MAX_TEXT = 512
#: NVSwitch device numbers and SXid codes outside these ranges are counted as "other".
MAX_NVSWITCH = 63
MAX_SXID_CODE = 99_999

#: (domain, bus, device): a PCI address without the function, the form Xid lines carry.
PciKey = tuple[int, int, int]

_PCI = r"(?:PCI:)?(?P<pci>[0-9a-fA-F]{1,8}:[0-9a-fA-F]{1,2}:[0-9a-fA-F]{1,2}(?:\.[0-7])?)"
_XID = re.compile(
    r"NVRM: Xid \(" + _PCI + r"(?: [^)]{0,64})?\): (?P<code>\d{1,9})(?:,\s?(?P<rest>.*))?$"
)
_SXID = re.compile(
    r"nvidia-nvswitch(?P<switch>\d{1,9}): SXid \(" + _PCI + r"\): (?P<code>\d{1,9})"
    r"(?:,\s?(?P<rest>.*))?$"
)
#: ``pid=…, name=…,`` prefixes of current drivers, not part of the message text
_PID_NAME = re.compile(r"^(?:pid=[^,]{0,64},\s?)?(?:name=[^,]{0,64},\s?)?")
_PCI_FULL = re.compile(
    r"^(?:PCI:)?(?P<domain>[0-9a-fA-F]{1,8}):(?P<bus>[0-9a-fA-F]{1,2}):(?P<dev>[0-9a-fA-F]{1,2})"
    r"(?:\.[0-7])?$"
)


def pci_key(address: str) -> PciKey | None:
    """``0000:3b:00``, ``PCI:0000:3b:00.0`` and NVML's ``00000000:3B:00.0`` -> one key."""
    match = _PCI_FULL.match(address.strip())
    if match is None:
        return None
    return (int(match["domain"], 16), int(match["bus"], 16), int(match["dev"], 16))


@dataclass(frozen=True)
class Record:
    """One kernel-log message: its text and when it was logged (seconds since boot or epoch)."""

    text: str
    #: sequence number of a /dev/kmsg record (None from the journal)
    seq: int | None = None
    #: microseconds since boot (/dev/kmsg) — converted by the reader
    monotonic_usec: int | None = None
    #: Unix time in microseconds (the journal's ``__REALTIME_TIMESTAMP``)
    realtime_usec: int | None = None
    #: the journal cursor, to follow on from after the backlog
    cursor: str | None = None


@dataclass(frozen=True)
class XidEvent:
    """``NVRM: Xid (PCI:…): CODE, …`` — one XID on the GPU at ``pci``."""

    pci: PciKey
    code: int
    text: str


@dataclass(frozen=True)
class SxidEvent:
    """``nvidia-nvswitchN: SXid (PCI:…): CODE, …`` — one SXid on NVSwitch ``switch``."""

    switch: int
    pci: PciKey
    code: int
    text: str


def _clean(text: str) -> str:
    return "".join(c if c.isprintable() else " " for c in text[:MAX_TEXT])


def _decode(raw: bytes) -> str:
    return raw[:MAX_RECORD].decode("utf-8", errors="replace")


def parse_kmsg_record(raw: bytes) -> Record | None:
    """One ``/dev/kmsg`` record (``PRI,SEQ,USEC,FLAGS[,…];TEXT`` + continuation lines)."""
    text = _decode(raw)
    header, sep, body = text.partition(";")
    if not sep or len(header) > 64:
        return None
    fields = header.split(",")
    if len(fields) < 3 or not all(f.isdigit() and len(f) <= 20 for f in fields[:3]):
        return None
    message = body.split("\n", 1)[0]  # continuation lines (" KEY=value") carry no message
    return Record(text=_unescape(message), seq=int(fields[1]), monotonic_usec=int(fields[2]))


_ESCAPE = re.compile(r"\\x([0-9a-fA-F]{2})")


def _unescape(message: str) -> str:
    """/dev/kmsg escapes non-printable bytes as ``\\xNN``; they never matter to the patterns."""
    return _ESCAPE.sub(" ", message)


def parse_journal_line(raw: bytes) -> Record | None:
    """One line of ``journalctl -o json``; MESSAGE may be a string or a list of byte values."""
    try:
        entry = json.loads(_decode(raw))
    except ValueError:
        return None
    if not isinstance(entry, dict):
        return None
    message = entry.get("MESSAGE")
    if isinstance(message, list):  # not valid UTF-8: journald sends the bytes
        try:
            message = bytes(b for b in message[:MAX_RECORD] if isinstance(b, int) and 0 <= b < 256)
        except ValueError:
            return None
        message = message.decode("utf-8", errors="replace")
    if not isinstance(message, str):
        return None
    realtime = entry.get("__REALTIME_TIMESTAMP")
    cursor = entry.get("__CURSOR")
    return Record(
        text=message[:MAX_RECORD],
        realtime_usec=int(realtime) if isinstance(realtime, str) and realtime.isdigit() else None,
        cursor=cursor[:256] if isinstance(cursor, str) else None,
    )


def _line_at(text: str, start: int) -> str:
    """From ``start`` to the end of that line (a journal message may span several lines)."""
    end = text.find("\n", start)
    return text[start:] if end < 0 else text[start:end]


def parse_nvidia(text: str) -> XidEvent | SxidEvent | None:
    """The Xid or SXid event in one message, or None (most kernel messages are neither)."""
    text = text[:MAX_RECORD]
    start = text.find("NVRM: Xid (")
    if start >= 0:
        match = _XID.match(_line_at(text, start))
        if match is None:
            return None
        pci = pci_key(match["pci"])
        if pci is None:
            return None
        rest = _PID_NAME.sub("", match["rest"] or "", count=1)
        return XidEvent(pci, bounded_code(int(match["code"])), _clean(rest))
    start = text.find("nvidia-nvswitch")
    if start >= 0 and "SXid (" in text:
        match = _SXID.match(_line_at(text, start))
        if match is None:
            return None
        pci = pci_key(match["pci"])
        if pci is None:
            return None
        switch = int(match["switch"])
        code = int(match["code"])
        return SxidEvent(
            switch if switch <= MAX_NVSWITCH else -1,
            pci,
            code if 1 <= code <= MAX_SXID_CODE else -1,
            _clean(match["rest"] or ""),
        )
    return None
