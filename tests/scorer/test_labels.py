"""``gpu-health-scorer labels`` on a hand-written history served by a real Prometheus.

Each GPU of the history carries one situation, so every assertion names what the ledger must
(or must not) make of it: application and warning XIDs are not failures, a short blip is not an
outage, a node that stops reporting as a whole is a scrape problem, not a GPU failure.
"""

from __future__ import annotations

import csv
import math
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from gpu_health.scorer.cli import main
from gpu_health.scorer.training import load_failures

STEP = 60.0
HOUR = 3600.0


class History:
    """OpenMetrics for a few GPUs at one-minute resolution; a value of None means no sample."""

    def __init__(self, start: float, end: float, step: float = STEP) -> None:
        self.times = [start + i * step for i in range(int((end - start) / step) + 1)]
        self.families: dict[str, tuple[str, list[str]]] = {}

    def series(
        self, family: str, kind: str, labels: dict[str, str], value: Callable[[float], float | None]
    ) -> None:
        name = f"{family}_total" if kind == "counter" else family
        text = ",".join(f'{k}="{v}"' for k, v in labels.items())
        lines = self.families.setdefault(family, (kind, []))[1]
        for t in self.times:
            v = value(t)
            if v is not None:
                lines.append(f"{name}{{{text}}} {v:g} {t:.0f}")

    def text(self) -> str:
        out = []
        for family, (kind, lines) in self.families.items():
            out.append(f"# TYPE {family} {kind}")
            out.extend(lines)
        return "\n".join(out) + "\n# EOF\n"


def _gpu(node: str, slot: int, uuid: str) -> dict[str, str]:
    return {
        "job": "gpu-health-exporter",
        "instance": f"{node}:9840",
        "node": node,
        "gpu": str(slot),
        "uuid": uuid,
    }


def _history(start: float, end: float, step: float = STEP) -> tuple[str, dict[str, float]]:
    h = History(start, end, step)
    at = {name: start + hours * HOUR for name, hours in {
        "app_xids": 10, "fell_off": 12, "dbe": 16, "blip": 18, "vanish": 20, "remap": 26,
        "node_outage": 30,
    }.items()}  # fmt: skip
    gpus = {
        "A": ("n1", 0), "B": ("n1", 1), "C": ("n1", 2), "D": ("n1", 3), "E": ("n1", 4),
        "F": ("n1", 4), "G": ("n1", 5), "H": ("n2", 0),
    }  # fmt: skip

    def present(g: str, t: float) -> bool:
        if g == "E":
            return t < at["vanish"]
        if g == "F":
            return t >= at["vanish"] + 6 * HOUR
        if g == "H":
            return not at["node_outage"] <= t < at["node_outage"] + 2 * HOUR
        return True

    def up(g: str, t: float) -> float | None:
        if not present(g, t):
            return None
        if g == "B" and at["fell_off"] <= t < at["fell_off"] + 40 * 60:
            return 0.0
        # (off the 10-minute grid: a sparse history never samples the blip)
        if g == "D" and at["blip"] + 120 <= t < at["blip"] + 6 * 60:
            return 0.0
        return 1.0

    for g, (node, slot) in gpus.items():
        labels = _gpu(node, slot, f"GPU-{g}")
        h.series("gpu_up", "gauge", labels, lambda t, g=g: up(g, t))
        dbe = (lambda t: 2.0 if t >= at["dbe"] else 0.0) if g == "C" else (lambda t: 0.0)
        ecc_labels = {**labels, "type": "uncorrected", "scope": "aggregate"}
        h.series(
            "gpu_ecc_errors",
            "counter",
            ecc_labels,
            lambda t, g=g, f=dbe: f(t) if up(g, t) == 1.0 else None,
        )
        flag = (lambda t: 1.0 if t >= at["remap"] else 0.0) if g == "G" else (lambda t: 0.0)
        h.series(
            "gpu_row_remap_failed",
            "gauge",
            labels,
            lambda t, g=g, f=flag: f(t) if up(g, t) == 1.0 else None,
        )
    xids = {
        ("A", "13"): at["app_xids"], ("A", "31"): at["app_xids"] + HOUR,
        ("A", "43"): at["app_xids"] + 2 * HOUR, ("A", "63"): at["app_xids"] + 3 * HOUR,
        ("A", "92"): at["app_xids"] + 4 * HOUR, ("B", "79"): at["fell_off"],
        ("C", "48"): at["dbe"],
    }  # fmt: skip
    for (g, code), when in xids.items():
        node, slot = gpus[g]
        h.series(
            "gpu_xid_errors",
            "counter",
            {**_gpu(node, slot, f"GPU-{g}"), "xid": code},
            lambda t, w=when: 1.0 if t >= w else None,
        )
    return h.text(), at


def _ledgers(
    tmp_path: Path, urls: tuple[str, str], end: float, since: str, *extra: str
) -> list[tuple[str, list[dict[str, str]]]]:
    """``labels`` over ``since`` up to ``end`` on each engine (Prometheus, then
    VictoriaMetrics), with ``extra`` arguments: each URL with its ledger's rows."""
    out = []
    for k, url in enumerate(urls):
        ledger = tmp_path / f"ledger-{k}.csv"
        argv = ["labels", "--prometheus.url", url, "--since", since, "--end", f"{end:.0f}"]
        assert main([*argv, *extra, "--out", str(ledger)]) == 0
        out.append((url, list(csv.DictReader(ledger.open()))))
    return out


@pytest.mark.parametrize("resolution", [STEP, 600.0], ids=["1m", "10m"])
def test_ledger_finds_each_failure_and_nothing_else(
    resolution: float, tmp_path: Path, on_both_engines: Callable[[str], tuple[str, str]]
) -> None:
    """The same ledger from Prometheus and from VictoriaMetrics: the scan's queries (offsets,
    ``unless on``, ``timestamp`` in a subquery, the lookback of a range step) mean the same to
    both engines on this history, sampled each minute and (read through ``last_over_time``
    where Prometheus' 5-minute lookback would miss samples) every 10 minutes."""
    # Samples 17 s off the minute never sit on the left edge of a step's lookback: Prometheus 2
    # reads a sample there and VictoriaMetrics does not (a GPU would be gone a step apart).
    end = math.floor(time.time() / 600) * 600 - HOUR + 17
    start = end - 2 * 86400
    text, at = _history(start, end, resolution)
    ledgers = _ledgers(tmp_path, on_both_engines(text), end, "2d", "--schema", "ours")
    for k, (url, rows) in enumerate(ledgers):
        found = {r["uuid"]: r for r in rows}
        assert set(found) == {"GPU-B", "GPU-C", "GPU-E", "GPU-G"}, (url, rows)
        assert found["GPU-B"]["mode"] == "fell_off_bus"
        assert found["GPU-C"]["mode"] == "uncorrectable_memory"
        assert found["GPU-E"]["mode"] == "disappeared"
        assert "replaced by GPU-F" in found["GPU-E"]["evidence"]
        assert found["GPU-G"]["mode"] == "row_remap_failure"
        expected = {"GPU-B": "fell_off", "GPU-C": "dbe", "GPU-E": "vanish", "GPU-G": "remap"}
        for uuid, event in expected.items():
            late = abs(float(found[uuid]["time"]) - at[event])
            assert late <= max(600, 2 * resolution), (url, uuid, found[uuid])
            assert 0.5 <= float(found[uuid]["confidence"]) <= 0.99
            assert found[uuid]["node"] == "n1"
        # The ledger is a failures file as train reads it.
        failures = load_failures(tmp_path / f"ledger-{k}.csv")
        assert {f.uuid for f in failures} == set(expected)
        assert all(f.precursor is None for f in failures)
    # row for row: the same times, modes, confidences and evidence from both engines
    assert ledgers[0][1] == ledgers[1][1]


def test_a_replacement_is_seen_with_a_step_as_long_as_the_samples(
    tmp_path: Path, on_both_engines: Callable[[str], tuple[str, str]]
) -> None:
    """``--step 10m`` on 10-minute samples, each 400 s before a step: the board replaced in its
    slot is still found (its slot's boards are read through Prometheus' 5-minute lookback, so
    every 10 minutes they were never seen) on both engines."""
    resolution = 600.0
    end = math.floor(time.time() / resolution) * resolution - HOUR + 200
    text, _at = _history(end - 2 * 86400, end, resolution)
    extra = ("--step", "10m", "--min-outage", "20m", "--schema", "ours")
    for url, rows in _ledgers(tmp_path, on_both_engines(text), end, "2d", *extra):
        found = {r["uuid"]: r for r in rows}
        assert "replaced by GPU-F in n1 slot 4" in found["GPU-E"]["evidence"], (url, found)


def _fleet_history(start: float, end: float, step: float) -> tuple[str, dict[str, float]]:
    """Node n3's boards, each in one of the situations a fleet's operations leave: a board
    pulled (P) renumbers the one after it (Q: slot 2 reads as slot 1 until a new board R
    fills slot 1); a board with an uncorrectable error kept in service and pulled 20 hours
    later (S, then T in its slot); a board off the bus and reset in place (40 minutes of
    ``gpu_up`` 0), then lost for good 26 hours later (V); a board whose remap-failure flag
    stays 1 across 15 minutes in which that field went unread (U); and W, reporting
    throughout, so the node always does. On node n4, its only board X is replaced by Y while
    the node is down: X is seen gone only once the node is back, hours after its last
    sample."""
    at = {name: start + hours * HOUR for name, hours in {
        "dbe": 6, "reset": 7, "pull": 10, "flag": 12, "gap": 14, "node_swap": 20, "swap": 26,
        "lost": 33,
    }.items()}  # fmt: skip
    h = History(start, end, step)

    def slot(uuid: str, t: float) -> int | None:
        if uuid == "GPU-P":
            return 1 if t < at["pull"] else None
        if uuid == "GPU-Q":
            return 1 if at["pull"] <= t < at["pull"] + 3 * HOUR else 2
        if uuid == "GPU-R":
            return 1 if t >= at["pull"] + 3 * HOUR else None
        if uuid == "GPU-S":
            return 0 if t < at["swap"] else None
        if uuid == "GPU-T":
            return 0 if t >= at["swap"] + 2 * HOUR else None
        if uuid == "GPU-U":
            return 3
        if uuid == "GPU-V":
            return 4 if t < at["lost"] else None
        if uuid == "GPU-X":  # node n4's only board, swapped while the node was down 3 hours
            return 0 if t < at["node_swap"] else None
        if uuid == "GPU-Y":
            return 0 if t >= at["node_swap"] + 3 * HOUR else None
        return 5

    def up(uuid: str, t: float) -> float:
        reset = at["reset"] <= t < at["reset"] + 40 * 60
        return 0.0 if uuid == "GPU-V" and reset else 1.0

    for uuid in ("GPU-P", "GPU-Q", "GPU-R", "GPU-S", "GPU-T", "GPU-U", "GPU-V", "GPU-W",
                 "GPU-X", "GPU-Y"):  # fmt: skip
        node = "n4" if uuid in ("GPU-X", "GPU-Y") else "n3"
        for index in {0, 1, 2, 3, 4, 5}:

            def when(t: float, u: str = uuid, i: int = index) -> bool:
                return slot(u, t) == i

            labels = _gpu(node, index, uuid)
            h.series(
                "gpu_up", "gauge", labels, lambda t, w=when, u=uuid: up(u, t) if w(t) else None
            )
            dbe = (lambda t: 2.0 if t >= at["dbe"] else 0.0) if uuid == "GPU-S" else (lambda t: 0.0)
            h.series(
                "gpu_ecc_errors",
                "counter",
                {**labels, "type": "uncorrected", "scope": "aggregate"},
                lambda t, w=when, f=dbe: f(t) if w(t) else None,
            )
            flag = (lambda t: 1.0 if t >= at["flag"] else 0.0) if uuid == "GPU-U" else None
            # U's flag goes unread for 15 minutes (a field the exporter could not read) while
            # the board reports on
            unread = (at["gap"] + 60, at["gap"] + 16 * 60) if flag else (0.0, 0.0)
            h.series(
                "gpu_row_remap_failed",
                "gauge",
                labels,
                lambda t, w=when, f=flag, u=unread: (
                    None if not w(t) or u[0] <= t < u[1] else f(t) if f else 0.0
                ),
            )
            if uuid == "GPU-V":  # off the bus, reset in place (gpu_up 0 for 40 minutes)
                h.series(
                    "gpu_xid_errors",
                    "counter",
                    {**labels, "xid": "79"},
                    lambda t, w=when: 1.0 if w(t) and t >= at["reset"] else None,
                )
    return h.text(), at


@pytest.mark.parametrize("resolution", [STEP, 600.0], ids=["1m", "10m"])
def test_a_fleets_operations_are_no_failures_of_their_own(
    resolution: float, tmp_path: Path, on_both_engines: Callable[[str], tuple[str, str]]
) -> None:
    """One row per failure, none for operations: a board renumbered when the one before it
    was pulled is not replaced (it reported on: before, it was "replaced" by the new board
    and replaced by itself); a board pulled after its uncorrectable error is one failure at
    the error (before, a second row at the pull); a remap-failure flag held across a gap in
    its series turned 1 once: it is compared with its last value in the 6 hours before
    (before, with the step before alone, one more remap failure after the gap).
    A board off the bus, reset in place and lost a day later failed twice. A board replaced
    while its node was down is one row at its last sample (before, a second one when the
    node came back). On Prometheus and on VictoriaMetrics, at 1- and 10-minute samples."""
    end = math.floor(time.time() / 600) * 600 - HOUR + 17
    text, at = _fleet_history(end - 2 * 86400, end, resolution)
    extra = ("--schema", "ours", "--min-confidence", "0.5")
    ledgers = _ledgers(tmp_path, on_both_engines(text), end, "2d", *extra)
    for url, rows in ledgers:
        found: dict[str, list[dict[str, str]]] = {}
        for r in rows:
            found.setdefault(r["uuid"], []).append(r)
        assert set(found) == {"GPU-P", "GPU-S", "GPU-U", "GPU-V", "GPU-X"}, (url, rows)
        # the time of the board's last sample, not of the step that last saw it (which
        # differs between the engines)
        (x,) = found["GPU-X"]
        assert x["mode"] == "disappeared" and "replaced by GPU-Y in n4 slot 0" in x["evidence"]
        assert float(x["time"]) == at["node_swap"] - resolution, (url, x)
        (p,) = found["GPU-P"]
        assert p["mode"] == "disappeared" and "not seen again" in p["evidence"], (url, p)
        (s,) = found["GPU-S"]
        assert s["mode"] == "uncorrectable_memory", (url, s)
        assert abs(float(s["time"]) - at["dbe"]) <= max(600, 2 * resolution), (url, s)
        assert "replaced by GPU-T in n3 slot 0" in s["evidence"], (url, s)
        (u,) = found["GPU-U"]  # compared with the step before alone: again after the gap
        assert u["mode"] == "row_remap_failure", (url, u)
        assert abs(float(u["time"]) - at["flag"]) <= max(600, 2 * resolution), (url, u)
        off, gone = found["GPU-V"]
        assert off["mode"] == "fell_off_bus", (url, found["GPU-V"])
        assert gone["mode"] == "disappeared", (url, found["GPU-V"])
        assert abs(float(gone["time"]) - at["lost"]) <= max(600, 2 * resolution), (url, gone)
    assert ledgers[0][1] == ledgers[1][1]


def test_lone_xid_below_the_confidence_floor_is_left_out(
    tmp_path: Path, backfill: Callable[[str], Path], prometheus_factory: Callable[..., object]
) -> None:
    end = math.floor(time.time() / STEP) * STEP - HOUR
    start = end - 86400
    h = History(start, end)
    labels = _gpu("n1", 0, "GPU-X")
    h.series("gpu_up", "gauge", labels, lambda t: 1.0)
    h.series(
        "gpu_xid_errors",
        "counter",
        {**labels, "xid": "74"},
        lambda t: 1.0 if t >= start + 12 * HOUR else None,
    )
    server = prometheus_factory(data_dir=backfill(h.text()))
    common = ["labels", "--prometheus.url", server.url, "--since", "1d"]  # type: ignore[attr-defined]
    common += ["--end", f"{end:.0f}", "--schema", "ours"]
    strict, lenient = tmp_path / "strict.csv", tmp_path / "lenient.csv"
    assert main([*common, "--min-confidence", "0.7", "--out", str(strict)]) == 0
    assert main([*common, "--min-confidence", "0.5", "--out", str(lenient)]) == 0
    assert list(csv.DictReader(strict.open())) == []
    (row,) = list(csv.DictReader(lenient.open()))
    assert row["mode"] == "nvlink" and row["evidence"] == "XID 74"


def test_every_xid_that_needs_a_reset_is_a_failure(
    tmp_path: Path, backfill: Callable[[str], Path], prometheus_factory: Callable[..., object]
) -> None:
    """XID 140 (unrecovered ECC error), 143 (GPU initialisation failure) and Blackwell's
    NVLink5 errors (145 here) page "drain and reset" and make the GPU failed; the failure scan
    missed them."""
    end = math.floor(time.time() / STEP) * STEP - HOUR
    start = end - 86400
    h = History(start, end)
    for slot, (uuid, code) in enumerate((("GPU-U", "140"), ("GPU-I", "143"), ("GPU-N", "145"))):
        labels = _gpu("n1", slot, uuid)
        h.series("gpu_up", "gauge", labels, lambda t: 1.0)
        h.series(
            "gpu_xid_errors",
            "counter",
            {**labels, "xid": code},
            lambda t: 0.0 if t < start + 12 * HOUR else 1.0,
        )
    server = prometheus_factory(data_dir=backfill(h.text()))
    out = tmp_path / "ledger.csv"
    args = ["labels", "--prometheus.url", server.url, "--since", "1d"]  # type: ignore[attr-defined]
    args += ["--end", f"{end:.0f}", "--schema", "ours", "--min-confidence", "0.5"]
    assert main([*args, "--out", str(out)]) == 0
    found = {r["uuid"]: (r["mode"], r["evidence"]) for r in csv.DictReader(out.open())}
    assert found == {
        "GPU-U": ("uncorrectable_memory", "XID 140"),
        "GPU-I": ("gpu_reset_required", "XID 143"),
        "GPU-N": ("nvlink", "XID 145"),
    }


@pytest.mark.parametrize("node_label", ["Hostname", "hostname", "upgrade"])
def test_dcgm_nodes_stay_apart_under_either_node_label(
    tmp_path: Path, on_both_engines: Callable[[str], tuple[str, str]], node_label: str
) -> None:
    """dcgm-exporter called the node ``Hostname`` until NVIDIA/dcgm-exporter#655 (May 2026)
    and ``hostname`` since. Read under one name only, a newer exporter's fleet is one node
    called "": a node that stops reporting as a whole then looks like its GPUs vanishing
    while "their node" reports, and GPU 0 of every node looks like one slot. ``upgrade``: the
    exporter is upgraded (``Hostname`` → ``hostname``) mid-history. On Prometheus and on
    VictoriaMetrics."""
    end = math.floor(time.time() / STEP) * STEP - HOUR
    start = end - 86400
    upgrade = start + 6 * HOUR
    outage = (start + 12 * HOUR, start + 14 * HOUR)
    vanish = start + 16 * HOUR
    h = History(start, end)
    boards = {
        "GPU-P": ("n1", 0), "GPU-Q": ("n1", 1), "GPU-R": ("n2", 0), "GPU-S": ("n2", 1),
        "GPU-T": ("n3", 0), "GPU-V": ("n3", 0),
    }  # fmt: skip

    def present(uuid: str, t: float) -> bool:
        if uuid in ("GPU-R", "GPU-S"):  # node n2 down for two hours, then back
            return not outage[0] <= t < outage[1]
        if uuid == "GPU-T":  # fails, and is replaced in its slot 4 hours later by GPU-V
            return t < vanish
        if uuid == "GPU-V":
            return t >= vanish + 4 * HOUR
        return True

    for uuid, (node, slot) in boards.items():
        for name in ("Hostname", "hostname"):
            before = name == "Hostname"
            if node_label != "upgrade" and name != node_label:
                continue
            labels = {name: node, "gpu": str(slot), "UUID": uuid, "modelName": "NVIDIA H100"}
            h.series(
                "DCGM_FI_DEV_GPU_TEMP",
                "gauge",
                labels,
                lambda t, u=uuid, b=before: (
                    60.0
                    if present(u, t) and (node_label != "upgrade" or (t < upgrade) == b)
                    else None
                ),
            )
    extra = ("--schema", "dcgm", "--min-confidence", "0.5")
    for url, rows in _ledgers(tmp_path, on_both_engines(h.text()), end, "1d", *extra):
        assert {r["uuid"]: r["node"] for r in rows} == {"GPU-T": "n3"}, (url, rows)
        assert "replaced by GPU-V" in rows[0]["evidence"]


@pytest.mark.parametrize("code_labels", [False, True], ids=["last-value", "code-labels"])
def test_dcgm_xids_are_failures_whichever_shape_the_gauge_has(
    tmp_path: Path, on_both_engines: Callable[[str], tuple[str, str]], code_labels: bool
) -> None:
    """dcgm-exporter's last-XID gauge: one series whose value changes (before 3.3.6-3.4.2), or
    (since) the code as an ``err_code`` label too, so each new code is a new series that never
    changes. A hard XID is a failure either way; an application XID is not. On Prometheus and
    on VictoriaMetrics."""
    end = math.floor(time.time() / STEP) * STEP - HOUR
    start = end - 86400
    h = History(start, end)
    codes = {"GPU-X": 79.0, "GPU-Y": 48.0, "GPU-Z": 43.0}
    for slot, (uuid, code) in enumerate(codes.items()):
        labels = {"hostname": "n1", "gpu": str(slot), "UUID": uuid, "modelName": "NVIDIA H100"}
        h.series("DCGM_FI_DEV_GPU_TEMP", "gauge", labels, lambda t: 60.0)
        for value, since, until in (
            (0.0, start, start + 12 * HOUR),
            (code, start + 12 * HOUR, end),
        ):
            extra = (
                {"err_code": f"{value:.0f}", "err_msg": f"XID {value:.0f}"} if code_labels else {}
            )
            h.series(
                "DCGM_FI_DEV_XID_ERRORS",
                "gauge",
                {**labels, **extra},
                lambda t, v=value, a=since, b=until: v if a <= t < b or (t == b == end) else None,
            )
    extra = ("--schema", "dcgm", "--min-confidence", "0.5")
    for url, ledger in _ledgers(tmp_path, on_both_engines(h.text()), end, "1d", *extra):
        rows = {r["uuid"]: r for r in ledger}
        assert set(rows) == {"GPU-X", "GPU-Y"}, (url, rows)
        assert rows["GPU-X"]["mode"] == "fell_off_bus"
        assert rows["GPU-Y"]["mode"] == "uncorrectable_memory"
        for row in rows.values():
            assert abs(float(row["time"]) - (start + 12 * HOUR)) <= 600, (url, row)


def test_a_history_without_gpus_of_the_schema_is_refused_keeping_the_ledger(
    tmp_path: Path,
    backfill: Callable[[str], Path],
    prometheus_factory: Callable[..., object],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``--schema dcgm`` on our exporter's history (or a time range with no data) found no GPU,
    wrote a header-only ledger over the reviewed one and said "0 failures", exit 0."""
    end = math.floor(time.time() / STEP) * STEP - HOUR
    h = History(end - 86400, end)
    h.series("gpu_up", "gauge", _gpu("n1", 0, "GPU-X"), lambda t: 1.0)
    server = prometheus_factory(data_dir=backfill(h.text()))
    reviewed = tmp_path / "ledger.csv"
    reviewed.write_text("uuid,time,mode\nGPU-X,1790000000,hbm\n")
    common = ["labels", "--prometheus.url", server.url, "--since", "1d"]  # type: ignore[attr-defined]
    for wrong in (["--schema", "dcgm", "--end", f"{end:.0f}"], ["--end", "2030-01-01"]):
        capsys.readouterr()
        assert main([*common, *wrong, "--out", str(reviewed)]) == 1
        err = capsys.readouterr().err
        assert (
            err.startswith("error: labels: no GPU series (")
            and "time range?" in err
            and err.count("\n") == 1
        ), err
        assert reviewed.read_text() == "uuid,time,mode\nGPU-X,1790000000,hbm\n"
    assert main([*common, "--end", f"{end:.0f}", "--out", str(reviewed)]) == 0  # the right one


def test_a_chunk_shorter_than_a_step_or_splitting_into_too_many_queries_is_refused() -> None:
    """``--chunk`` under ``--step`` reached Prometheus as an HTTP 400 naming no option; ``--chunk
    1s`` over 10 days ran for minutes without a word (864,000 lookups)."""
    from gpu_health.errors import UserError
    from gpu_health.scorer.labels import MAX_CHUNKS, ScanConfig

    end = 1_796_083_200.0
    with pytest.raises(UserError, match=r"^labels: --chunk must be at least one --step$"):
        ScanConfig(end - 10 * 86400, end, step=300, chunk=60).validate()
    with pytest.raises(UserError, match=r"into 2,880 range queries per signal \(at most 2,000\)"):
        ScanConfig(end - 10 * 86400, end, step=300, chunk=300).validate()
    ScanConfig(end - 10 * 86400, end, step=300, chunk=(10 * 86400) / MAX_CHUNKS).validate()
    ScanConfig(end - 365 * 86400, end).validate()  # the defaults over a year


def test_a_rerun_keeps_the_rows_added_to_the_ledger_by_hand(
    tmp_path: Path,
    backfill: Callable[[str], Path],
    prometheus_factory: Callable[..., object],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The ledger is reviewed and added to by hand (docs/closed-loop.md); a rerun of ``labels
    --out`` over it replaced it, and the RMA tickets the operator had added were gone."""
    end = math.floor(time.time() / STEP) * STEP - HOUR
    h = History(end - 86400, end)
    labels = _gpu("n1", 0, "GPU-X")
    h.series("gpu_up", "gauge", labels, lambda t: 1.0)
    h.series(
        "gpu_xid_errors",
        "counter",
        {**labels, "xid": "74"},
        lambda t: 1.0 if t >= end - 12 * HOUR else None,
    )
    server = prometheus_factory(data_dir=backfill(h.text()))
    ledger = tmp_path / "ledger.csv"
    argv = ["labels", "--prometheus.url", server.url, "--since", "1d"]  # type: ignore[attr-defined]
    argv += ["--end", f"{end:.0f}", "--schema", "ours", "--out", str(ledger)]
    assert main(argv) == 0
    (derived,) = list(csv.DictReader(ledger.open()))
    assert derived["source"] == "derived" and derived["evidence"] == "XID 74"
    # the operator adds an RMA ticket (ISO time, a column left empty) and one with no source
    with ledger.open("a") as handle:
        handle.write(f"GPU-Y,{_iso(end - 20 * HOUR)},hbm,,n2,3,,RMA-1234,rma-ticket\n")
        handle.write(f"GPU-Z,{end - 2 * HOUR:.0f},other,,,,,,\n")
    capsys.readouterr()
    assert main(argv) == 0
    assert "kept 2 row(s) of" in capsys.readouterr().err
    rows = list(csv.DictReader(ledger.open()))
    assert [(r["uuid"], r["source"]) for r in rows] == [
        ("GPU-Y", "rma-ticket"),  # in time order: 20 h, 12 h, 2 h before the end
        ("GPU-X", "derived"),
        ("GPU-Z", ""),
    ]
    assert rows[0]["evidence"] == "RMA-1234" and rows[0]["time"] == _iso(end - 20 * HOUR)
    assert main(argv) == 0  # and a third run keeps them once, not twice
    assert len(list(csv.DictReader(ledger.open()))) == 3


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
