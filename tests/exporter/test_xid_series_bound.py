"""XID series per GPU stay bounded whatever codes a driver's events report, and totals stay exact.

A running replay exporter (the NVML backend over the fake binding) is fed XID events of every
code from 1 to 999, a few outside that range, and the codes the health score and the alerts
read once more, then scraped over HTTP. Before the bound, each distinct code made a series of
its own on that GPU for the exporter's life (1,000 of them here); the kernel-log view already
folded all but its first few uncatalogued codes into ``xid="other"``, which also made an XID
the two views keyed differently count twice.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gpu_health.exporter.backends.nvml_events import EVENT_LOG_LINES
from gpu_health.exporter.cli import Exporter, build_parser
from gpu_health.exporter.kmsg.counts import MAX_UNCATALOGUED_XIDS
from gpu_health.health.policy import load_default_policy
from gpu_health.telemetry.xids import RESET_REQUIRED_XIDS, XID_CATALOGUE, zero_born_xids
from tests.exporter.test_kernel_log import Gpu, Series, scrape, start_exporter, value

#: Codes out of 1-999 a corrupted event stream can carry (NVML's eventData is a 64-bit value).
OUT_OF_RANGE = (0, 1000, 2**31 - 1, 2**40)
#: Every code the default health policy scores (critical or penalised) and the alerts page for.
_POLICY = load_default_policy()
SCORED = tuple(sorted({*_POLICY.xid.critical, *_POLICY.xid.penalised}))


def xid_series(series: Series, gpu: str) -> dict[str, float]:
    return {
        dict(labels)["xid"]: v
        for (name, labels), v in series.items()
        if name == "gpu_xid_errors_total" and dict(labels)["gpu"] == gpu
    }


def wait_for_total(exporter: Exporter, gpu: str, total: float) -> Series:
    deadline = time.monotonic() + 30
    while True:
        series = scrape(exporter)
        seen = value(series, "gpu_xid_errors_all_codes_total", gpu=gpu)
        if seen == total:
            return series
        assert time.monotonic() < deadline, (seen, total)
        time.sleep(0.1)


def through_both_views(gpu: Gpu, before: list[int], after: list[int], *extra: str) -> Series:
    """``before`` in the kernel log since boot, then an exporter (``extra``: its options) and
    ``after`` through both views, NVML events and the kernel log; the scrape once both have
    counted every event."""
    for code in before:
        gpu.xid(code, "name=<unknown>, forged")
    exporter = start_exporter(gpu, *extra)
    try:
        for code in after:
            exporter.backend.fake.emit_xid(0, code)  # type: ignore[attr-defined]
            gpu.xid(code, "name=<unknown>, forged")
        assert exporter.kernel_log is not None
        deadline = time.monotonic() + 10
        uuid = exporter.identities[0].uuid
        while (
            exporter.kernel_log.counts.events < len(before) + len(after)
            or sum(exporter.backend._devices[uuid].xid_counts.values()) < len(after)  # type: ignore[attr-defined]
        ):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        return scrape(exporter)
    finally:
        exporter.close()


@pytest.fixture
def replay(tmp_path: Path) -> Iterator[Exporter]:
    args = build_parser().parse_args(
        ["--backend", "replay", "--replay.gpus", "2", "--web.listen-address", "127.0.0.1:0"]
    )
    exporter = Exporter(args).start()
    try:
        yield exporter
    finally:
        exporter.close()


def test_a_flood_of_distinct_codes_makes_a_bounded_number_of_series_with_exact_totals(
    replay: Exporter, caplog: pytest.LogCaptureFixture
) -> None:
    fake = replay.backend.fake  # type: ignore[attr-defined]
    quiet = xid_series(scrape(replay), "0")
    assert set(quiet) == {str(c) for c in zero_born_xids(replay.identities[0].model)}
    flood = [*range(1, 1000), *OUT_OF_RANGE, *SCORED, *RESET_REQUIRED_XIDS]
    with caplog.at_level(logging.WARNING, logger="gpu_health.exporter.backends.nvml"):
        for code in flood:
            fake.emit_xid(0, code)
        series = wait_for_total(replay, "0", len(flood))
    xids = xid_series(series, "0")
    # bounded: the catalogue's codes, the first few others, and "other"
    assert len(xids) == len(XID_CATALOGUE) + MAX_UNCATALOGUED_XIDS + 1, len(xids)
    uncatalogued = [c for c in range(1, 1000) if c not in XID_CATALOGUE]
    assert {k for k in xids if k != "other" and int(k) not in XID_CATALOGUE} == {
        str(c) for c in uncatalogued[:MAX_UNCATALOGUED_XIDS]
    }
    # exact: every event counted once, under its own code or under "other"
    assert sum(xids.values()) == len(flood)
    later = len(uncatalogued) - MAX_UNCATALOGUED_XIDS
    assert xids["other"] == later + len(OUT_OF_RANGE)
    # the codes the score and the alerts read are never folded
    for code in XID_CATALOGUE:
        assert xids[str(code)] == flood.count(code), code
    assert all(xids[str(code)] >= 2 for code in (*SCORED, *RESET_REQUIRED_XIDS))
    # classes follow the codes: "other" holds only uncatalogued and out-of-range codes
    classes = sum(
        v for (n, ls), v in series.items()
        if n == "gpu_xid_class_errors_total" and dict(ls)["gpu"] == "0"
    )  # fmt: skip
    assert classes == len(flood)
    assert xid_series(series, "1") == quiet  # the other GPU is untouched
    folded = [r for r in caplog.records if 'is served as xid="other"' in r.getMessage()]
    assert len(folded) == 1, [r.getMessage() for r in folded]  # once per GPU, not per event
    # the log names the first events, then says the rest are only counted: one line each for
    # 1,000 events filled the log with what /metrics counts
    lines = [r.getMessage() for r in caplog.records]
    assert sum(re.fullmatch(r"GPU 0: XID \d+", m) is not None for m in lines) == EVENT_LOG_LINES
    assert sum(m.startswith("GPU 0: more than") for m in lines) == 1, lines[-5:]
    fake.emit_xid(0, 5000)
    fake.emit_xid(0, 998)
    xids = xid_series(wait_for_total(replay, "0", len(flood) + 2), "0")
    assert xids["other"] == later + len(OUT_OF_RANGE) + 2


def test_codes_the_kernel_log_folded_before_the_exporter_started_are_counted_once(
    tmp_path: Path,
) -> None:
    # since boot, before the exporter: the kernel log's first uncatalogued codes; then the same
    # XIDs through both views (NVML counts them from its own start)
    before = [200 + i for i in range(MAX_UNCATALOGUED_XIDS)]
    after = [300 + i for i in range(MAX_UNCATALOGUED_XIDS)] + [79]
    series = through_both_views(Gpu(tmp_path), before, after)
    xids = xid_series(series, "0")
    assert value(series, "gpu_xid_errors_all_codes_total", gpu="0") == len(before) + len(after)
    assert sum(xids.values()) == len(before) + len(after)
    assert xids["other"] == MAX_UNCATALOGUED_XIDS and xids["79"] == 1
    assert all(xids[str(c)] == 1 for c in before)


def test_a_code_the_kernel_log_labelled_since_boot_is_counted_once_when_nvml_is_full(
    tmp_path: Path,
) -> None:
    """The other order: the kernel log labelled XID 200 before the exporter started; NVML,
    counting from its start, saw 8 other uncatalogued codes before 200 again. Folded as NVML
    counted, 200 was served under its number (kernel log) and as ``other`` (NVML), and the
    per-key maximum counted it twice, once more with every repeat."""
    after = [300 + i for i in range(MAX_UNCATALOGUED_XIDS)] + [200, 200, 200]
    series = through_both_views(Gpu(tmp_path), [200], after)
    xids = xid_series(series, "0")
    assert value(series, "gpu_xid_errors_all_codes_total", gpu="0") == 1 + len(after)
    assert sum(xids.values()) == 1 + len(after), xids
    assert xids["200"] == 4 and xids["other"] == 1


def test_a_code_the_health_policy_scores_is_never_folded(tmp_path: Path) -> None:
    """A site's policy may score a code outside NVIDIA's catalogue (here 122, critical). Eight
    other uncatalogued codes first, then 122: folded into ``other``, it was never scored and
    the GPU read 100."""
    policy = tmp_path / "policy.yaml"
    policy.write_text("xid:\n  critical:\n    122: reliability\n")
    args = build_parser().parse_args(
        ["--backend", "replay", "--replay.gpus", "1", "--web.listen-address", "127.0.0.1:0",
         "--kernel-log.disable", "--health.policy", str(policy)]
    )  # fmt: skip
    exporter = Exporter(args).start()
    try:
        codes = [200 + i for i in range(MAX_UNCATALOGUED_XIDS)] + [122]
        for code in codes:
            exporter.backend.fake.emit_xid(0, code)  # type: ignore[attr-defined]
        series = wait_for_total(exporter, "0", len(codes))
    finally:
        exporter.close()
    xids = xid_series(series, "0")
    assert xids["122"] == 1 and "other" not in xids, xids
    score = value(series, "gpu_health_score", gpu="0", dimension="overall")
    assert score is not None and score < 50


def test_an_ecc_storm_does_not_silence_the_xid_after_it(
    replay: Exporter, caplog: pytest.LogCaptureFixture
) -> None:
    """XIDs and ECC events have a log budget each: with one shared, 10 corrected-ECC events
    used it up and the XID 79 that followed within the minute had no line."""
    fake = replay.backend.fake  # type: ignore[attr-defined]
    with caplog.at_level(logging.INFO, logger="gpu_health.exporter.backends.nvml"):
        for _ in range(EVENT_LOG_LINES + 5):
            fake.emit_ecc(0)
        fake.emit_xid(0, 79)
        wait_for_total(replay, "0", 1)
    lines = [r.getMessage() for r in caplog.records]
    assert sum(m.startswith("GPU 0: ECC event") for m in lines) == EVENT_LOG_LINES
    assert "GPU 0: more than 10 ECC events within 60 s" in " ".join(lines)
    assert "GPU 0: XID 79" in lines, lines[-3:]


def test_the_kernel_log_keeps_a_code_the_health_policy_scores_too(tmp_path: Path) -> None:
    """The kernel log's own view folds as well: after 8 uncatalogued codes since boot it
    counted a site's critical 122 as ``other`` while NVML kept it, so the XID was served under
    both keys (the all-codes total one too high)."""
    policy = tmp_path / "policy.yaml"
    policy.write_text("xid:\n  critical:\n    122: reliability\n")
    before = [200 + i for i in range(MAX_UNCATALOGUED_XIDS)]
    series = through_both_views(Gpu(tmp_path), before, [122], "--health.policy", str(policy))
    xids = xid_series(series, "0")
    assert xids["122"] == 1 and xids.get("other", 0) == 0, xids
    assert value(series, "gpu_xid_errors_all_codes_total", gpu="0") == len(before) + 1
    score = value(series, "gpu_health_score", gpu="0", dimension="overall")
    assert score is not None and score < 50
