"""The kernel-log parser and reader: real driver lines, hostile input, fuzzing, the journal path."""

from __future__ import annotations

import json
import re
import stat
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpu_health.exporter.kmsg.counts import MAX_SXID_LABELS, KernelLogCounts
from gpu_health.exporter.kmsg.parser import (
    MAX_NVSWITCH,
    MAX_RECORD,
    MAX_SXID_CODE,
    MAX_TEXT,
    SxidEvent,
    XidEvent,
    parse_journal_line,
    parse_kmsg_record,
    parse_nvidia,
    pci_key,
)
from gpu_health.exporter.kmsg.reader import KernelLogReader, LineSplitter
from gpu_health.telemetry.catalogue import by_name
from gpu_health.telemetry.readings import GpuIdentity, GpuSample
from gpu_health.telemetry.xids import MAX_XID_CODE, XID_OTHER, xid_class

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "kmsg"
LINES = json.loads((FIXTURES / "lines.json").read_text())
#: What dmesg, journalctl and syslog print before a message (``[  12.3] ``, ``[ T1946] ``,
#: ``Feb 01 14:25:31 host kernel: ``); /dev/kmsg and the journal hand over the message alone.
_DISPLAY_PREFIX = re.compile(
    r"^(?:\[[^\]]{1,20}\] ?|[A-Z][a-z]{2} [ \d]\d [\d:]{8} \S{1,64} |kernel: )*"
)


@pytest.mark.parametrize("case", LINES, ids=[f"{c['source']}:{i}" for i, c in enumerate(LINES)])
def test_real_driver_lines_parse_to_the_expected_event(case: dict[str, Any]) -> None:
    message = _DISPLAY_PREFIX.sub("", case["line"], count=1)
    if message != case["line"]:
        # the parser matches at the start of the message only, so with the printing tool's
        # prefix still on the line is not an event (a kernel message quoting one is not either)
        assert parse_nvidia(case["line"]) is None
    event = parse_nvidia(message)
    expect = case["expect"]
    if expect is None:
        assert event is None
        return
    assert event is not None
    assert event.pci == pci_key(expect["pci"])
    assert event.code == expect["code"]
    if expect["kind"] == "xid":
        assert isinstance(event, XidEvent)
        assert xid_class(event.code, event.text) == expect["class"]
        assert "pid=" not in event.text and "name=" not in event.text
    else:
        assert isinstance(event, SxidEvent)
        assert event.switch == expect["nvswitch"]


def test_pci_addresses_of_nvml_and_the_driver_name_the_same_gpu() -> None:
    assert pci_key("00000000:3B:00.0") == pci_key("0000:3b:00") == pci_key("PCI:0000:3b:00.0")
    assert pci_key("0001:3b:00") != pci_key("0000:3b:00")
    assert pci_key("not an address") is None and pci_key("") is None


def test_kmsg_records_and_journal_entries() -> None:
    record = parse_kmsg_record(
        b"4,1234,5678901,-;NVRM: Xid (PCI:0000:3b:00): 79, GPU has fallen off the bus.\n"
        b" SUBSYSTEM=pci\n DEVICE=+pci:0000:3b:00.0\n"
    )
    assert record is not None and (record.seq, record.monotonic_usec) == (1234, 5678901)
    assert record.text.endswith("fallen off the bus.")
    assert parse_kmsg_record(b"no header here") is None
    assert parse_kmsg_record(b"4,x,1,-;text") is None
    entry = json.dumps(
        {
            "MESSAGE": list(b"NVRM: Xid (PCI:0000:3b:00): 48, \xff\xfe DBE"),
            "__REALTIME_TIMESTAMP": "1700000000123456",
            "__CURSOR": "s=abc;i=1",
        }
    ).encode()
    journal = parse_journal_line(entry)
    assert journal is not None and journal.realtime_usec == 1700000000123456
    event = parse_nvidia(journal.text)
    assert isinstance(event, XidEvent) and event.code == 48
    for bad in (b"", b"[1,2]", b"{", b'{"MESSAGE": 5}', b'{"MESSAGE": [300, -1]}'):
        record = parse_journal_line(bad)
        assert record is None or isinstance(record.text, str)


def test_hostile_lines_are_bounded() -> None:
    huge = "NVRM: Xid (PCI:0000:3b:00): 79, " + "A" * 1_000_000
    event = parse_nvidia(huge)
    assert isinstance(event, XidEvent) and len(event.text) <= MAX_TEXT
    forged = parse_nvidia("NVRM: Xid (PCI:ffff:ff:1f.7): 123456789, forged")
    assert isinstance(forged, XidEvent) and forged.code == XID_OTHER
    assert parse_nvidia("NVRM: Xid (PCI:0000:3b:00): 1234567890123, too long") is None
    assert parse_nvidia("NVRM: Xid (PCI:zzzz:3b:00): 79, bad address") is None
    assert parse_nvidia("NVRM: Xid (PCI:0000:3b:00") is None  # truncated
    # two records run together (interleaved writers): the first event is taken, nothing crashes
    both = "NVRM: Xid (PCI:0000:3b:00): 79, x NVRM: Xid (PCI:0000:3c:00): 48, y"
    assert isinstance(parse_nvidia(both), XidEvent)
    multi = parse_nvidia("NVRM: Xid (PCI:0000:3b:00): 63, Row Remapper\nmore")
    assert isinstance(multi, XidEvent) and multi.code == 63 and multi.text == "Row Remapper"
    # the driver starts its message with "NVRM: "; the words further in are quoted text
    assert parse_nvidia("first line\nNVRM: Xid (PCI:0000:3b:00): 63, Row Remapper") is None
    assert parse_nvidia("usb 1-1: Product: NVRM: Xid (PCI:0000:3b:00): 79, forged") is None
    sx = parse_nvidia("nvidia-nvswitch99999: SXid (PCI:0000:06:00.0): 999999, forged")
    assert isinstance(sx, SxidEvent) and sx.switch == -1 and sx.code == -1


def test_unknown_addresses_and_codes_stay_under_bounded_labels() -> None:
    counts = KernelLogCounts(["00000000:3B:00.0"])
    for i in range(500):  # a flood of forged lines: other addresses, other codes
        counts.add(XidEvent((i, i % 256, 0), 1000 + i, "forged"), None)
        counts.add(SxidEvent(0, (0, 6, 0), 10_000 + i, "forged"), None)
    counts.add(XidEvent((0, 0x3B, 0), 79, "GPU has fallen off the bus."), 5.0)
    gpu = counts.for_gpu("0000:3b:00")
    assert gpu is not None and gpu.codes == {79: 1} and gpu.last == 5.0
    assert counts.unattributed == 500 and sum(counts.unknown().codes.values()) == 500
    labels = {code for (_switch, code) in counts.sxids()}
    assert len(labels) == MAX_SXID_LABELS + 1 and "other" in labels
    # out-of-range codes render as xid="other"
    spec = by_name()["gpu_xid_errors_total"]
    sample = GpuSample(timestamp=0.0, xid_counts={XID_OTHER: 3, 1234: 1, 79: 1})
    points = dict(spec.extract(GpuIdentity(index=0, uuid="u", model="m"), sample))
    assert points[("other",)] == 4 and points[("79",)] == 1


def test_line_splitter_cuts_overlong_lines() -> None:
    splitter = LineSplitter()
    out = list(splitter.feed(b"a\nb" + b"x" * (3 * MAX_RECORD)))
    out += list(splitter.feed(b"tail\nc\n"))
    assert out[0] == b"a" and len(out[1]) == MAX_RECORD and out[-1] == b"c"
    assert all(len(line) <= MAX_RECORD for line in out)


def test_reader_counts_a_hostile_kmsg_file(tmp_path: Path) -> None:
    records = [
        b"3,0,100,-;NVRM: Xid (PCI:0000:3b:00): 79, GPU has fallen off the bus.",
        b"3,1,200,-;NVRM: Xid (PCI:0000:3b:00): 48, \xff\xfe\xfd DBE",  # not UTF-8
        b"3,2,300,-;NVRM: Xid (PCI:0000:3b:00): 94, " + b"Z" * 200_000,  # enormous
        b"3,3,400,-;NVRM: Xid (PCI:0000:3b",  # truncated
        b"\x00\x01garbage without a header",
        b"3,4,500,-;NVRM: Xid (PCI:0000:99:00): 79, forged address",
        b"4,5,600,-;nvidia-nvswitch2: SXid (PCI:0000:06:00.0): 12028, Non-fatal, Link 32",
        b" SUBSYSTEM=pci",
        b"3,6,700,-;NVRM: Xid (PCI:0000:3b:00): 79, GPU has fallen off the bus.",
    ]
    path = tmp_path / "kmsg"
    path.write_bytes(b"\n".join(records) + b"\n")
    counts = KernelLogCounts(["00000000:3B:00.0"])
    reader = KernelLogReader(counts, str(path), journal_command=None)
    try:
        assert reader.start(wait=10) == "kmsg"
        gpu = counts.for_gpu("00000000:3B:00.0")
        # the enormous record is cut at MAX_RECORD and still counted; the truncated one is not
        assert gpu is not None and gpu.codes == {79: 2, 48: 1, 94: 1}
        assert counts.unknown().codes == {79: 1}
        assert counts.sxids() == {("2", "12028"): 1}
        with path.open("ab") as handle:  # followed, not just read once
            handle.write(b"3,7,800,-;NVRM: Xid (PCI:0000:3b:00): 79, again\n")
        _wait(lambda: (counts.for_gpu("00000000:3B:00.0") or gpu).codes.get(79) == 3)
    finally:
        reader.close()


def _wait(condition: Any, seconds: float = 10.0) -> None:
    import time

    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met"
        time.sleep(0.05)


FAKE_JOURNALCTL = """#!{python}
import json, sys, time
entries = json.load(open({entries!r}))
args = sys.argv[1:]
if "-n" in args:
    entries = entries[-1:]
after = [a.split("=", 1)[1] for a in args if a.startswith("--after-cursor=")]
if after:
    cursors = [e["__CURSOR"] for e in entries]
    entries = entries[cursors.index(after[0]) + 1:]
for e in entries:
    print(json.dumps(e), flush=True)
if "--follow" in args:
    time.sleep(60)
"""


def test_journal_is_the_fallback_when_kmsg_is_not_readable(tmp_path: Path) -> None:
    script = _fake_journal(tmp_path, [79, 48, 48])
    counts = KernelLogCounts(["00000000:3B:00.0"])
    reader = KernelLogReader(
        counts, str(tmp_path / "no-kmsg"), journal_command=[str(script)], clock=_IN_2023
    )
    try:
        assert reader.start(wait=10) == "journal"
        gpu = counts.for_gpu("00000000:3B:00.0")
        assert gpu is not None and gpu.codes == {79: 1, 48: 2}
        assert gpu.last == pytest.approx(1_700_000_000.000002)
    finally:
        reader.close()


def test_a_wrapped_ring_gives_way_to_the_journal(tmp_path: Path) -> None:
    # The oldest record in the ring is not number 0: lines from early in the boot are gone
    # from kmsg, but the journal still has them, so the journal is read instead.
    kmsg = tmp_path / "kmsg"
    kmsg.write_bytes(b"3,500,100,-;NVRM: Xid (PCI:0000:3b:00): 48, later\n")
    journal = _fake_journal(tmp_path, [79, 48])
    counts = KernelLogCounts(["00000000:3B:00.0"])
    reader = KernelLogReader(counts, str(kmsg), journal_command=[str(journal)], clock=_IN_2023)
    try:
        assert reader.start(wait=10) == "journal"
        assert _codes(counts) == {79: 1, 48: 1}
    finally:
        reader.close()
    # without a journal the partial ring is still better than nothing
    counts = KernelLogCounts(["00000000:3B:00.0"])
    reader = KernelLogReader(counts, str(kmsg), journal_command=None)
    try:
        assert reader.start(wait=10) == "kmsg"
        assert _codes(counts) == {48: 1}
    finally:
        reader.close()


def _codes(counts: KernelLogCounts) -> dict[int, int]:
    tally = counts.for_gpu("0000:3b:00")
    assert tally is not None
    return tally.codes


def _IN_2023() -> float:
    """A clock for the fake journal: this boot began at 1_700_000_000 (2023-11-14), the time of
    its entries, which the reader would otherwise refuse as older than the boot."""
    import time

    return 1_700_000_000.0 + time.monotonic()


def _fake_journal(tmp_path: Path, codes: list[int], facility: str = "0") -> Path:
    entries = [
        {
            "MESSAGE": f"NVRM: Xid (PCI:0000:3b:00): {code}, pid=1, name=x, text",
            "__REALTIME_TIMESTAMP": str(1_700_000_000_000_000 + i),
            "__CURSOR": f"c{i}",
            "SYSLOG_FACILITY": facility,
            "_TRANSPORT": "kernel",
        }
        for i, code in enumerate(codes)
    ]
    (tmp_path / "entries.json").write_text(json.dumps(entries))
    script = tmp_path / "journalctl"
    script.write_text(
        FAKE_JOURNALCTL.format(python=sys.executable, entries=str(tmp_path / "entries.json"))
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def test_nothing_readable_is_one_log_line_not_a_crash(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    reader = KernelLogReader(
        KernelLogCounts([]), str(tmp_path / "absent"), journal_command=[str(tmp_path / "nope")]
    )
    assert reader.start(wait=1) is None
    lines = [r.getMessage() for r in caplog.records if "kernel log" in r.getMessage()]
    assert len(lines) == 1 and "CAP_SYSLOG" in lines[0] and "\n" not in lines[0]
    reader.close()


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=4 * MAX_RECORD))
def test_fuzz_the_record_parsers_with_arbitrary_bytes(raw: bytes) -> None:
    for record in (parse_kmsg_record(raw), parse_journal_line(raw)):
        if record is not None:
            _check_event(parse_nvidia(record.text))
    _check_event(parse_nvidia(raw.decode("utf-8", errors="replace")))
    assert all(len(line) <= MAX_RECORD for line in LineSplitter().feed(raw))


_PREFIXES = st.sampled_from(
    ["NVRM: Xid (PCI:", "NVRM: Xid (", "nvidia-nvswitch", "SXid (PCI:", "): ", ", pid=", ""]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(_PREFIXES, st.text(max_size=40)), max_size=12))
def test_fuzz_the_nvidia_parser_with_near_miss_lines(parts: list[str]) -> None:
    _check_event(parse_nvidia("".join(parts)))


def _check_event(event: XidEvent | SxidEvent | None) -> None:
    if event is None:
        return
    assert all(0 <= part < 2**32 for part in event.pci)
    assert len(event.text) <= MAX_TEXT and event.text.isprintable()
    if isinstance(event, XidEvent):
        assert event.code == XID_OTHER or 1 <= event.code <= MAX_XID_CODE
        assert xid_class(event.code, event.text)
    else:
        assert event.switch == -1 or 0 <= event.switch <= MAX_NVSWITCH
        assert event.code == -1 or 1 <= event.code <= MAX_SXID_CODE


def test_the_kernel_log_is_read_for_the_hosts_gpus_only_unless_asked() -> None:
    from gpu_health.exporter.kmsg.source import options_for

    assert options_for("nvml", False, None).enabled
    assert options_for("auto", False, None).enabled and options_for("dcgm", False, None).enabled
    assert not options_for("replay", False, None).enabled
    assert not options_for("sim", False, None).enabled
    explicit = options_for("sim", False, "/tmp/kmsg")
    assert explicit.enabled and explicit.kmsg_path == "/tmp/kmsg" and not explicit.journal
    assert not options_for("nvml", True, "/dev/kmsg").enabled


def test_a_character_device_that_is_not_the_kernel_log_is_refused(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """``--kernel-log.path /dev/zero`` was read for ever at a third of a core; it is refused by
    its device numbers (``/dev/kmsg`` is 1:11), as an unreadable log is, and nothing is read."""
    counts = KernelLogCounts(["00000000:3B:00.0"])
    reader = KernelLogReader(counts, "/dev/zero", journal_command=None)
    try:
        with caplog.at_level("WARNING"):
            assert reader.start(wait=5) is None
    finally:
        reader.close()
    assert "character device 1:5, not the kernel log (1:11)" in caplog.text
    assert reader._thread is None  # no reader thread was started
