"""What the kernel-log reader believes: who wrote a line, when it says it happened, how many series.

Three defects a tester found: an Xid line that user space wrote into ``/dev/kmsg`` (facility 1,
which the kernel forces on every write) was counted as the driver's and graded the GPU critical;
a record dated 10^14 s set ``gpu_last_xid_timestamp_seconds`` for good (it only moves forward);
and hostile lines multiplied the series count about tenfold. Plus the start-up check of
``--kernel-log.path``.
"""

from __future__ import annotations

import json
import logging
import os
import random
import stat
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from gpu_health.errors import UserError
from gpu_health.exporter.cli import Exporter, build_parser
from gpu_health.exporter.data import NVML_H100, data_path
from gpu_health.exporter.kmsg.counts import (
    MAX_NVSWITCH_LABELS,
    MAX_SXID_LABELS,
    MAX_UNCATALOGUED_XIDS,
    KernelLogCounts,
)
from gpu_health.exporter.kmsg.parser import SxidEvent, XidEvent, parse_journal_line
from gpu_health.exporter.kmsg.parser import parse_kmsg_record as kmsg
from gpu_health.exporter.kmsg.reader import CLOCK_SLACK, KernelLogReader
from gpu_health.telemetry.xids import XID_CATALOGUE, XID_OTHER

GPU = "00000000:18:00.0"
XID79 = "NVRM: Xid (PCI:0000:18:00): 79, pid=1, GPU has fallen off the bus."
SXID = "nvidia-nvswitch2: SXid (PCI:0000:06:00.0): 12028, Non-fatal, Link 32"


def _now_usec() -> int:
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


def _read(tmp_path: Path, records: list[str]) -> KernelLogReader:
    """Read a kmsg-format file to its end; the reader is returned closed."""
    path = tmp_path / "kmsg"
    path.write_text("".join(r + "\n" for r in records))
    reader = KernelLogReader(KernelLogCounts([GPU]), str(path), journal_command=None)
    try:
        assert reader.start(wait=10) == "kmsg"
    finally:
        reader.close()
    return reader


# -- 1. lines user space wrote -----------------------------------------------------------------


def test_the_facility_of_a_record_says_whether_the_kernel_logged_it() -> None:
    # PRI = facility * 8 + level: 3 and 4 are the kernel's (facility 0), 12 is what
    # `echo … > /dev/kmsg` gives (facility 1, user), 30 a daemon logging to kmsg (facility 3)
    for pri, kernel in ((3, True), (4, True), (0, True), (12, False), (30, False)):
        record = kmsg(f"{pri},1,100,-;{XID79}".encode())
        assert record is not None and record.from_kernel is kernel, pri
    assert kmsg(f"12,1,100,-;{XID79}".encode()).facility == 1  # type: ignore[union-attr]


def test_a_user_space_xid_line_is_not_counted_and_the_kernels_is(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    usec = _now_usec()
    with caplog.at_level(logging.WARNING):
        reader = _read(
            tmp_path,
            [
                f"6,0,{usec},-;Linux version",
                f"12,1,{usec},-;{XID79}",  # echo "NVRM: Xid …" > /dev/kmsg
                f"30,2,{usec},-;{XID79}",  # a daemon logging to kmsg with facility 3
                f"12,3,{usec},-;{SXID}",
                f"3,4,{usec},-;{XID79}",  # the driver's own line
                f"4,5,{usec},-;{SXID}",
            ],
        )
    gpu = reader.counts.for_gpu(GPU)
    assert gpu is not None and gpu.codes == {79: 1}
    assert reader.counts.sxids() == {("2", "12028"): 1}
    assert reader.not_from_kernel == 3
    lines = [r.getMessage() for r in caplog.records if "facility" in r.getMessage()]
    assert len(lines) == 1 and "facility 1" in lines[0] and "\n" not in lines[0]


def _read_journal(
    tmp_path: Path, entries: list[dict[str, str]]
) -> tuple[KernelLogReader, KernelLogCounts]:
    """A reader that has read ``entries`` from a fake journal, and its counts."""
    counts = KernelLogCounts([GPU])
    reader = KernelLogReader(
        counts, str(tmp_path / "none"), journal_command=_journal(tmp_path, entries)
    )
    try:
        assert reader.start(wait=10) == "journal"
    finally:
        reader.close()
    return reader, counts


def _journal(tmp_path: Path, entries: list[dict[str, str]]) -> list[str]:
    """A fake ``journalctl`` printing ``entries`` (then following for ever)."""
    data = tmp_path / "entries.json"
    data.write_text(json.dumps(entries))
    script = tmp_path / "journalctl"
    script.write_text(
        f"#!{sys.executable}\nimport json, sys, time\n"
        f"entries = json.load(open({str(data)!r}))\n"
        "if '-n' in sys.argv: entries = entries[-1:]\n"
        "if any(a.startswith('--after-cursor') for a in sys.argv): entries = []\n"
        "for e in entries: print(json.dumps(e), flush=True)\n"
        "if '--follow' in sys.argv: time.sleep(60)\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return [str(script)]


def test_the_journal_path_counts_only_kernel_transport_and_facility_0(tmp_path: Path) -> None:
    now = str(int(time.time() * 1e6))

    def entry(i: int, code: int, **fields: str) -> dict[str, str]:
        message = f"NVRM: Xid (PCI:0000:18:00): {code}, pid=1, text"
        return {"MESSAGE": message, "__REALTIME_TIMESTAMP": now, "__CURSOR": f"c{i}", **fields}

    entries = [
        entry(0, 48, SYSLOG_FACILITY="0", _TRANSPORT="kernel"),  # the driver's
        entry(1, 79, SYSLOG_FACILITY="1", _TRANSPORT="kernel"),  # echo … > /dev/kmsg
        entry(2, 79, SYSLOG_FACILITY="0", _TRANSPORT="syslog"),  # logger -p kern.err
        entry(3, 79, SYSLOG_FACILITY="0", _TRANSPORT="stdout"),
        entry(4, 79, _TRANSPORT="kernel"),  # no facility at all
        entry(5, 79, SYSLOG_FACILITY="00000000000000000000000", _TRANSPORT="kernel"),
    ]
    record = parse_journal_line(json.dumps(entries[1]).encode())
    assert record is not None and record.facility == 1 and not record.from_kernel
    reader, counts = _read_journal(tmp_path, entries)
    gpu = counts.for_gpu(GPU)
    assert gpu is not None and gpu.codes == {48: 1}
    assert reader.not_from_kernel == 5


def _kmsg_unwritable() -> str | None:
    try:
        with open("/dev/kmsg", "w"):
            pass
    except OSError as exc:
        return f"/dev/kmsg is not writable here ({exc.strerror}); needs root"
    return None if os.access("/dev/kmsg", os.R_OK) else "/dev/kmsg is not readable here"


def _scrape(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics") as response:
        text = response.read().decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _value(
    series: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float | None:
    found = [v for (n, ls), v in series.items() if n == name and set(labels.items()) <= ls]
    return found[0] if found else None


@pytest.mark.skipif(_kmsg_unwritable() is not None, reason=str(_kmsg_unwritable()))
def test_an_xid_line_written_into_the_real_dev_kmsg_does_not_fail_the_gpu(tmp_path: Path) -> None:
    """The tester's attack, on this machine's /dev/kmsg: the exporter reads the line (its
    not-from-kernel count grows) and still counts nothing and grades nothing."""
    rng = random.Random()
    domain, bus = rng.randrange(0x1000, 0xFFFF), rng.randrange(0x10, 0xFF)
    fixture = json.loads(data_path(NVML_H100).read_text())
    pci = fixture["calls"]["nvmlDeviceGetPciInfo"]
    pci["busId"] = f"{domain:08X}:{bus:02X}:00.0"
    pci["busIdLegacy"] = f"{domain:04X}:{bus:02X}:00.0"
    pci["domain"], pci["bus"], pci["device"] = domain, bus, 0
    (tmp_path / "nvml.json").write_text(json.dumps(fixture))
    args = build_parser().parse_args(
        ["--backend", "replay", "--replay.fixture", str(tmp_path / "nvml.json"),
         "--kernel-log.path", "/dev/kmsg", "--web.listen-address", "127.0.0.1:0"]
    )  # fmt: skip
    exporter = Exporter(args).start()
    try:
        assert exporter.kernel_log is not None and exporter.kernel_log.source == "kmsg"
        reader = exporter.kernel_log.reader
        before = reader.not_from_kernel
        line = f"NVRM: Xid (PCI:{domain:04x}:{bus:02x}:00): 79, pid=1, GPU has fallen off the bus."
        for prefix in ("", "<4>", "<3>"):  # no prefix; asking for facility 0 with level 4 / 3
            with open("/dev/kmsg", "w") as handle:
                handle.write(prefix + line + "\n")
        deadline = time.monotonic() + 10
        while reader.not_from_kernel < before + 3:
            assert time.monotonic() < deadline, reader.not_from_kernel - before
            time.sleep(0.05)
        series = _scrape(exporter.port)
        assert _value(series, "gpu_xid_errors_total", gpu="0", xid="79") == 0
        assert _value(series, "gpu_last_xid_timestamp_seconds", gpu="0") is None
        assert _value(series, "gpu_health_grade", gpu="0", grade="critical") in (0.0, None)
    finally:
        exporter.close()


# -- 2. times outside this boot ----------------------------------------------------------------


def test_a_record_dated_outside_this_boot_does_not_set_the_last_xid_time(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    good = _now_usec() - 5_000_000  # five seconds ago
    with caplog.at_level(logging.WARNING):
        reader = _read(
            tmp_path,
            [
                "6,0,1,-;Linux version",
                f"3,1,{good},-;{XID79}",
                f"3,2,99999999999999999999,-;{XID79}",  # the tester's 10^14 s
                f"3,3,{_now_usec() + int(10 * CLOCK_SLACK * 1e6)},-;{XID79}",  # ten minutes ahead
            ],
        )
    gpu = reader.counts.for_gpu(GPU)
    assert gpu is not None and gpu.codes == {79: 3}  # still counted
    assert gpu.last is not None and abs(gpu.last - (time.time() - 5)) < 2  # the good one's time
    assert reader.bad_times == 2
    lines = [r.getMessage() for r in caplog.records if "outside this boot" in r.getMessage()]
    assert len(lines) == 1 and "\n" not in lines[0]


def test_a_live_record_with_a_bad_time_gets_the_time_it_was_read(tmp_path: Path) -> None:
    path = tmp_path / "kmsg"
    path.write_text(f"6,0,1,-;Linux version\n3,1,99999999999999999999,-;{XID79}\n")
    counts = KernelLogCounts([GPU])
    reader = KernelLogReader(counts, str(path), journal_command=None)
    try:
        assert reader.start(wait=10) == "kmsg"
        gpu = counts.for_gpu(GPU)
        assert gpu is not None and gpu.codes == {79: 1} and gpu.last is None  # backlog: no time
        written = time.time()
        with path.open("a") as handle:
            handle.write(f"3,2,99999999999999999999,-;{XID79}\n")
        deadline = time.monotonic() + 10
        while (gpu := counts.for_gpu(GPU)) is None or gpu.codes.get(79) != 2:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert gpu.last is not None and written - 1 <= gpu.last <= time.time() + 1
    finally:
        reader.close()


def test_a_journal_entry_dated_before_this_boot_or_in_the_future_has_no_time(
    tmp_path: Path,
) -> None:
    boot = time.time() - time.monotonic()
    entries = [
        {"MESSAGE": XID79, "__REALTIME_TIMESTAMP": str(int(t * 1e6)), "__CURSOR": f"c{i}",
         "SYSLOG_FACILITY": "0", "_TRANSPORT": "kernel"}
        for i, t in enumerate((boot - 3600, 95_617_584_000.0, boot + 1))  # year 5000
    ]  # fmt: skip
    reader, counts = _read_journal(tmp_path, entries)
    gpu = counts.for_gpu(GPU)
    assert gpu is not None and gpu.codes == {79: 3} and reader.bad_times == 2
    assert gpu.last == pytest.approx(boot + 1, abs=0.01)


# -- 3. series bounds --------------------------------------------------------------------------


def test_a_flood_of_codes_and_switches_stays_within_the_documented_bounds() -> None:
    counts = KernelLogCounts([GPU])
    gpu_key = (0, 0x18, 0)
    for code in range(1, 1000):  # every code the parser lets through, for one GPU
        counts.add(XidEvent(gpu_key, code, "forged"), None)
        counts.add(XidEvent((7, 7, 7), code, "forged"), None)  # and for an unknown address
    for switch in range(80):
        for code in range(80):
            counts.add(SxidEvent(switch, (0, 6, 0), 20_000 + code, "forged"), None)
    for tally in (counts.for_gpu(GPU), counts.unknown()):
        assert tally is not None and sum(tally.codes.values()) == 999  # nothing lost
        assert set(XID_CATALOGUE) <= set(tally.codes)  # every catalogued code keeps its series
        uncatalogued = sorted(c for c in tally.codes if c not in XID_CATALOGUE and c != XID_OTHER)
        first = [c for c in range(1, 1000) if c not in XID_CATALOGUE][:MAX_UNCATALOGUED_XIDS]
        assert uncatalogued == first  # a new driver's first new codes still show by number
        assert len(tally.codes) == len(XID_CATALOGUE) + MAX_UNCATALOGUED_XIDS + 1
    sxids = counts.sxids()
    assert sum(sxids.values()) == 80 * 80
    switches = {s for s, _ in sxids}
    assert switches == {str(n) for n in range(MAX_NVSWITCH_LABELS)} | {"unknown"}
    assert len(sxids) == (MAX_NVSWITCH_LABELS + 1) * (MAX_SXID_LABELS + 1)


def test_the_tester_flood_through_a_sim_exporter_adds_a_bounded_number_of_series(
    tmp_path: Path,
) -> None:
    log = tmp_path / "kmsg"
    log.write_text("6,0,1,-;Linux version\n")
    args = build_parser().parse_args(
        ["--backend", "sim", "--sim-gpus", "8", "--kernel-log.path", str(log),
         "--web.listen-address", "127.0.0.1:0"]
    )  # fmt: skip
    exporter = Exporter(args).start()
    try:
        assert exporter.kernel_log is not None and exporter.kernel_log.source == "kmsg"
        quiet = len(_scrape(exporter.port))
        pci = exporter.identities[0].pci_bus_id.split(":")
        address = f"{int(pci[0], 16):04x}:{pci[1].lower()}:{pci[2][:2].lower()}"
        usec, lines = _now_usec(), []
        for code in range(1, 1000):
            lines.append(f"NVRM: Xid (PCI:{address}): {code}, forged")
        for switch in range(80):
            lines += [
                f"nvidia-nvswitch{switch}: SXid (PCI:0000:06:00.0): {20000 + c}, x"
                for c in range(80)
            ]
        for n in range(3000):
            lines.append(f"NVRM: Xid (PCI:{n:04x}:ee:00): 48, forged")
        with log.open("a") as handle:
            handle.writelines(f"3,{i + 1},{usec},-;{line}\n" for i, line in enumerate(lines))
        deadline = time.monotonic() + 30
        while exporter.kernel_log.counts.events < len(lines):
            assert time.monotonic() < deadline, exporter.kernel_log.counts.events
            time.sleep(0.1)
        flooded = _scrape(exporter.port)
    finally:
        exporter.close()
    extra_xids = MAX_UNCATALOGUED_XIDS + 1  # on the one GPU; its catalogued series exist already
    unknown_gpu = 3 * (len(XID_CATALOGUE) + MAX_UNCATALOGUED_XIDS + 1)  # its xid, class, time
    sxid = (MAX_NVSWITCH_LABELS + 1) * (MAX_SXID_LABELS + 1) + 1  # + the overwritten counter
    assert len(flooded) - quiet <= extra_xids + unknown_gpu + 14 + sxid  # 14: unknown's classes
    nvswitch = [k for k in flooded if k[0] == "nvswitch_sxid_errors_total"]
    assert len(nvswitch) == (MAX_NVSWITCH_LABELS + 1) * (MAX_SXID_LABELS + 1)


# -- 4. --kernel-log.path at start -------------------------------------------------------------


def _sim_args(path: str) -> list[str]:
    return ["--backend", "sim", "--sim-gpus", "1", "--kernel-log.path", path,
            "--web.listen-address", "127.0.0.1:0"]  # fmt: skip


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        ("/tmp", "--kernel-log.path /tmp: a directory, not a kernel log"),
        ("/dev/zero", "--kernel-log.path /dev/zero: character device 1:5, not the kernel log"),
    ],
)
def test_a_path_that_cannot_be_a_kernel_log_is_an_error_at_start(path: str, problem: str) -> None:
    with pytest.raises(UserError, match=problem):
        Exporter(build_parser().parse_args(_sim_args(path)))


def test_the_error_is_one_line_and_exit_code_1() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "gpu_health.exporter.cli", *_sim_args("/tmp")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "error: --kernel-log.path /tmp: a directory, not a kernel log "
        "(give /dev/kmsg or a file in its format)"
    ]


def test_a_missing_path_only_warns_and_names_no_nvml_for_the_sim(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        exporter = Exporter(build_parser().parse_args(_sim_args(str(tmp_path / "absent")))).start()
    exporter.close()
    lines = [r.getMessage() for r in caplog.records if "kernel log" in r.getMessage()]
    assert len(lines) == 1 and "No such file or directory" in lines[0]
    assert "NVML" not in lines[0] and "/dev/kmsg" not in lines[0] and "journal" not in lines[0]
    assert "XIDs come from the backend alone" in lines[0]
