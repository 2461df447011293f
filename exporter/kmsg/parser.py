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

Who wrote a record matters as much as what it says: any root process or privileged container can
write ``/dev/kmsg``, and a forged ``NVRM: Xid … 79`` would mark a healthy GPU failed. The kernel
stamps what user space writes with a facility other than 0 (``LOG_KERN``) — it forces
``LOG_USER`` on writes without one and ignores a requested facility 0 — so only a record with
:attr:`Record.from_kernel` can be the driver's. The patterns must also match at the start of the
message, where the driver puts ``NVRM: `` / ``nvidia-nvswitchN: ``, not inside some other kernel
message that quotes text a user or a device chose (a USB product string, mount options).
The ``dmesg``/syslog prefixes of published lines (``[  12.3] ``, ``kernel: ``) are added by the
tools that print the log and never reach this parser from ``/dev/kmsg`` or the journal.
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

#: The syslog facility of the kernel's own messages; user space cannot write records with it.
LOG_KERN = 0

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
    #: syslog facility (PRI >> 3 of a kmsg record, the journal's SYSLOG_FACILITY); None: unknown
    facility: int | None = None

    @property
    def from_kernel(self) -> bool:
        """Logged by the kernel itself (a driver), not written into the log by user space."""
        return self.facility == LOG_KERN


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
    return Record(
        text=_unescape(message),
        seq=int(fields[1]),
        monotonic_usec=int(fields[2]),
        facility=int(fields[0]) >> 3,  # PRI = facility * 8 + level
    )


_ESCAPE = re.compile(r"\\x([0-9a-fA-F]{2})")


def _unescape(message: str) -> str:
    """/dev/kmsg escapes non-printable bytes as ``\\xNN``; they never matter to the patterns."""
    return _ESCAPE.sub(" ", message)


def parse_journal_line(raw: bytes) -> Record | None:
    """One line of ``journalctl -o json``; MESSAGE may be a string or a list of byte values.

    The facility is kept only for entries journald read from the kernel (``_TRANSPORT=kernel``):
    journald copies a kmsg record's facility into SYSLOG_FACILITY, so a line user space wrote
    to ``/dev/kmsg`` keeps its facility 1 here too, and any other transport is user space."""
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
    facility = entry.get("SYSLOG_FACILITY")
    kernel = entry.get("_TRANSPORT") == "kernel"
    return Record(
        text=message[:MAX_RECORD],
        realtime_usec=_digits(realtime, 20),
        cursor=cursor[:256] if isinstance(cursor, str) else None,
        facility=_digits(facility, 3) if kernel else None,
    )


def _digits(value: object, width: int) -> int | None:
    """A journal field holding a decimal number of at most ``width`` digits, else None."""
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= width:
        return int(value)
    return None


def parse_nvidia(text: str) -> XidEvent | SxidEvent | None:
    """The Xid or SXid event a message starts with, or None (most kernel messages are neither).

    Only the first line is looked at, from its first character: the driver begins its messages
    with ``NVRM: `` / ``nvidia-nvswitchN: ``; the same words later in a message are quoted text."""
    line = text[:MAX_RECORD].split("\n", 1)[0]
    if line.startswith("NVRM: Xid ("):
        match = _XID.match(line)
        if match is None:
            return None
        pci = pci_key(match["pci"])
        if pci is None:
            return None
        rest = _PID_NAME.sub("", match["rest"] or "", count=1)
        return XidEvent(pci, bounded_code(int(match["code"])), _clean(rest))
    if line.startswith("nvidia-nvswitch"):
        match = _SXID.match(line)
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
