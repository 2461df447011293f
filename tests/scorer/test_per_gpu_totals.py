"""The scorer reads our exporter's per-GPU totals where every GPU sent them, the split counters
otherwise, and both give the same features.

A simulated fleet is written in our exporter's schema with ``gpu-health backfill`` (the same
writer as the live exporter's series, tests/exporter/test_per_gpu_totals.py) and served by a
real Prometheus. The features read from the totals are compared with those read from the
counters per link and per code; then the totals are deleted from the first part of the history
(an exporter upgraded part-way through the window) and the scorer must notice and read the split
counters. Expectations come from the split counters' own answers.
"""

from __future__ import annotations

import contextlib
import logging
import re
import shutil
import subprocess
import sys
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from gpu_health import stack
from gpu_health.scorer import feature_frame
from gpu_health.scorer.feature_frame import TOTALS_REACH, FeatureFrame, compute_features
from gpu_health.scorer.feature_plan import plan_queries
from gpu_health.scorer.feature_promql import window_seconds
from gpu_health.scorer.feature_schema import PER_GPU_TOTALS, schema_by_name
from gpu_health.scorer.feature_table import FEATURES
from gpu_health.scorer.history_source import CHECKED_OFFSETS
from gpu_health.scorer.promclient import PromClient, PromConfig, PrometheusError

DAY = 86400
END = 1796083200
GPUS, DAYS, SEED, HAZARD = 16, 5, 3, 40
#: Read at: an hour before the end, and two days before it.
TIMES = (END - 3600, END - 2 * DAY)
#: Where the totals begin in the "upgraded" history: before it, only the split counters (half
#: a day before the first time read: the check looks a day back, among other points).
UPGRADED_AT = END - DAY // 2
#: Relative to max(1, |split|): a code outside the catalogue born in a window is its first count
#: exactly in the split reading and an extrapolated increase of the XID total (6.9e-5 apart on
#: a 35-day fleet: ``bench/parts_on_fleet.py --against split``).
TOLERANCE = 1e-3
READ_FROM_SPLIT = ("nvlink", "xid_events")


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fleet's TSDB, as an operator backfills our exporter's history. No Prometheus serves
    this directory: each serves its own copy (:func:`_copy`), since a copy taken from a served
    directory can lose the blocks its Prometheus merges meanwhile (it did, once in CI)."""
    out = tmp_path_factory.mktemp("per-gpu-totals") / "backfilled"
    cli = Path(sys.executable).parent / "gpu-health"
    argv = [str(cli), "backfill", "--gpus", str(GPUS), "--days", str(DAYS)]
    argv += ["--resolution", "300s", "--seed", str(SEED), "--hazard-scale", str(HAZARD)]
    argv += ["--schema", "ours", "--no-health", "--end-time", str(END), "--out", str(out)]
    subprocess.run(argv, check=True, capture_output=True, text=True, timeout=300)
    return out


def _copy(history: Path, name: str) -> Path:
    data = history.parent / name
    shutil.copytree(history, data)
    return data


@contextlib.contextmanager
def _served(data: Path) -> Iterator[PromClient]:
    work = data.parent / f"prom-{data.name}"
    work.mkdir()
    config = stack.write_prometheus_config(work / "prometheus.yml")
    with stack.prometheus(work, config, data_dir=data) as server:
        yield PromClient(PromConfig(server.url, timeout_s=120))


@pytest.fixture(scope="module")
def client(history: Path) -> Iterator[PromClient]:
    with _served(_copy(history, "tsdb")) as served:
        yield served


@pytest.fixture(scope="module")
def upgraded(history: Path) -> Iterator[PromClient]:
    """The same history with the totals deleted before :data:`UPGRADED_AT` (Prometheus' admin
    API), as an exporter from before them would have left it."""
    with _served(_copy(history, "upgraded")) as served:
        for name in PER_GPU_TOTALS.values():
            query = urllib.parse.urlencode({"match[]": name, "end": str(UPGRADED_AT)})
            url = f"{served.config.url}/api/v1/admin/tsdb/delete_series?{query}"
            with urllib.request.urlopen(urllib.request.Request(url, method="POST")) as resp:
                assert resp.status == 204
        yield served


#: How long before the first time read one GPU of :func:`rolled_back` has sent no totals.
ROLLED_BACK_FOR = 6 * 3600


@pytest.fixture(scope="module")
def rolled_back(history: Path, client: PromClient) -> Iterator[tuple[PromClient, str]]:
    """The same history with one GPU's totals deleted from :data:`ROLLED_BACK_FOR` before the
    first time read: a node whose exporter was rolled back to one from before the totals (or
    that joined with one) within the last day. Only the check at the scored time itself sees
    it; the other check points are a day or more back. Yields the client and that GPU."""
    found = client.query("group by (uuid) (gpu_xid_errors_all_codes_total)", TIMES[0])
    uuid = sorted(str(r["metric"]["uuid"]) for r in found)[0]
    with _served(_copy(history, "rolled-back")) as served:
        for name in PER_GPU_TOTALS.values():
            selector = f'{name}{{uuid="{uuid}"}}'
            start = str(TIMES[0] - ROLLED_BACK_FOR)
            query = urllib.parse.urlencode({"match[]": selector, "start": start})
            url = f"{served.config.url}/api/v1/admin/tsdb/delete_series?{query}"
            with urllib.request.urlopen(urllib.request.Request(url, method="POST")) as resp:
                assert resp.status == 204
        yield served, uuid


def _split_columns(frame: FeatureFrame) -> list[int]:
    return [j for j, n in enumerate(frame.names) if n.startswith(READ_FROM_SPLIT)]


def _apart(a: FeatureFrame, b: FeatureFrame) -> list[tuple[str, str, float, float]]:
    """(feature, GPU, a's value, b's value) wherever the frames differ beyond TOLERANCE."""
    assert a.gpus == b.gpus and a.names == b.names
    out = []
    for j, name in enumerate(a.names):
        for i, gpu in enumerate(a.gpus):
            x, y = a.values[i, j], b.values[i, j]
            if np.isnan(x) and np.isnan(y):
                continue
            if np.isnan(x) != np.isnan(y) or abs(x - y) > TOLERANCE * max(1.0, abs(y)):
                out.append((name, gpu[2], float(x), float(y)))
    return out


def test_no_feature_reads_the_split_counters_further_back_than_the_check_looks() -> None:
    """The check (:func:`feature_frame.missing_totals_query`) looks as far back as any query
    reading a total (its range plus its offset, at a 30-minute presence window), and at each of
    the recorded history's check points."""
    s = replace(schema_by_name("ours"), fresh="30m", totals=True)
    reach = window_seconds(TOTALS_REACH) + window_seconds(s.fresh)
    reads = 0
    for q in plan_queries(s, FEATURES).queries:
        for name in PER_GPU_TOTALS.values():
            for found in re.finditer(rf"{name}[^\[]*\[(\w+)(?::\w+)?\](?: offset (\w+))?", q):
                reads += 1
                offset = window_seconds(found.group(2)) if found.group(2) else 0
                assert window_seconds(found.group(1)) + offset <= reach, found.group(0)
    assert reads > 0
    check = feature_frame.missing_totals_query(s)
    assert check is not None
    looks = {0} | {int(o) for o in re.findall(r"\] offset (\d+)s\)", check)}
    assert looks == {round(window_seconds(o)) if o != "0s" else 0 for o in CHECKED_OFFSETS}
    assert max(looks) + window_seconds(s.fresh) == reach
    assert set(re.findall(r"\[(\w+)\]", check)) == {s.fresh}


def test_the_totals_give_the_features_the_split_counters_give(client: PromClient) -> None:
    s = schema_by_name("ours")
    for at in TIMES:
        assert feature_frame.totals_readable(client, s, at)
        totals = compute_features(client, "ours", at, totals=True)
        split = compute_features(client, "ours", at, totals=False)
        assert _apart(totals, split) == [], at
        # the scorer's own choice is the totals here
        chosen = compute_features(client, "ours", at)
        assert np.array_equal(chosen.values, totals.values, equal_nan=True)
        columns = _split_columns(split)
        assert np.nansum(split.values[:, columns]) > 0, "some GPU should show NVLink or XIDs"


def test_history_from_before_the_totals_is_read_from_the_split_counters(
    upgraded: PromClient, caplog: pytest.LogCaptureFixture
) -> None:
    s = schema_by_name("ours")
    at = TIMES[0]
    feature_frame._last_missing_totals.clear()
    with caplog.at_level(logging.INFO, logger="gpu_health.scorer.features"):
        assert not feature_frame.totals_readable(upgraded, s, at)
        assert not feature_frame.totals_readable(upgraded, s, at)
    said = [r.getMessage() for r in caplog.records if "per-GPU totals" in r.getMessage()]
    # every GPU reporting before the upgrade, said once
    found = re.search(r": (\d+) GPUs sent them without", said[0]) if len(said) == 1 else None
    assert found and int(found.group(1)) >= GPUS // 2, said
    split = compute_features(upgraded, "ours", at, totals=False)
    chosen = compute_features(upgraded, "ours", at)
    assert np.array_equal(chosen.values, split.values, equal_nan=True)
    # what reading the totals anyway would have lost: the events before the upgrade
    totals = compute_features(upgraded, "ours", at, totals=True)
    lost = _apart(totals, split)
    assert lost and all(x < y for _n, _g, x, y in lost), lost


#: One GPU's reboot within the week, written by hand: events before it, the reboot zeroing every
#: counter (day 3), then events that carry the totals back past their top. NVLink: link 0 counts
#: 5 CRC-flit errors on day 2; link 1 counts 3 on day 4 and 3 more on day 5. XIDs: one 69 on
#: day 2, one 13 on day 4 and another on day 5, and one 43 on day 1 and two after the reboot,
#: which carry that one counter back past its own top.
REBOOT_DAY = 3.0
NVLINK_STEPS = {"0": ((2.0, 5),), "1": ((4.0, 3), (5.0, 3))}
XID_STEPS = {"69": (2.0,), "13": (4.0, 5.0), "43": (1.0, 4.5, 5.5), "79": ()}
#: The one counter of :data:`XID_STEPS` that climbs back past its own top after the reboot.
CLIMBS_BACK = "43"
REBOOT_AT = 6.0  # days after the history's start: the features are read here


def _reboot_history() -> str:
    start, step = 1_700_000_000, 1800
    ident = 'node="n0",gpu="0",uuid="GPU-0000-reboot",model="NVIDIA H100 80GB HBM3"'
    lines: dict[str, list[str]] = {}

    def add(name: str, labels: str, value: float, ts: int) -> None:
        lines.setdefault(name, []).append(f"{name}{{{ident}{labels}}} {value} {ts}")

    for k in range(int(REBOOT_AT * DAY / step) + 1):
        d, ts = k * step / DAY, start + k * step
        since = REBOOT_DAY if d >= REBOOT_DAY else 0.0
        add("gpu_power_watts", "", 500, ts)
        flit = {
            link: sum(n for day, n in steps if since <= day <= d)
            for link, steps in NVLINK_STEPS.items()
        }
        for link, count in flit.items():
            add("gpu_nvlink_errors_total", f',link="{link}",type="crc_flit"', count, ts)
            add("gpu_nvlink_errors_total", f',link="{link}",type="replay"', 0, ts)
        add("gpu_nvlink_errors_all_links_total", ',type="crc_flit"', sum(flit.values()), ts)
        add("gpu_nvlink_errors_all_links_total", ',type="replay"', 0, ts)
        xids = {c: sum(1 for day in days if since <= day <= d) for c, days in XID_STEPS.items()}
        for code, count in xids.items():
            add("gpu_xid_errors_total", f',xid="{code}"', count, ts)
        add("gpu_xid_errors_all_codes_total", "", sum(xids.values()), ts)
    out = [f"# TYPE {name} gauge\n" + "\n".join(body) for name, body in lines.items()]
    return "\n".join(out) + "\n# EOF\n"


@pytest.mark.integration
def test_a_total_that_climbs_back_past_its_top_after_a_reboot_still_counts_every_rise(
    on_both_engines: Callable[[str], tuple[str, str]],
) -> None:
    """Each counter's own rise is summed by the split reading (link 0's 5 before the reboot,
    link 1's 6 after it); the total's span after the reboot (0 to 6) would hide the 5 before
    it, so where a total reset in the window its summed increase counts. The split reading
    has the same blind spot on one counter that climbs back past its own top (XID 43: its
    span after the reboot, 0 to 2, hides the one before), which the total's reading does not."""
    wanted = {"nvlink_errors_per_min_7d", "xid_events_7d"}
    features = [f for f in FEATURES if f.name in wanted]
    at = 1_700_000_000 + REBOOT_AT * DAY
    every = sum(len(days) for days in XID_STEPS.values())
    before = sum(1 for day in XID_STEPS[CLIMBS_BACK] if day < REBOOT_DAY)
    expected = {
        "nvlink_errors_per_min_7d": sum(n for steps in NVLINK_STEPS.values() for _d, n in steps),
        "xid_events_7d": every,
    }
    for url in on_both_engines(_reboot_history()):
        client = PromClient(PromConfig(url, retries=1, timeout_s=60))
        assert feature_frame.totals_readable(client, schema_by_name("ours"), at)
        for totals in (None, False):
            frame = compute_features(client, "ours", at, features=features, totals=totals)
            assert frame.failed_queries == 0 and len(frame.gpus) == 1
            read = {
                "nvlink_errors_per_min_7d": round(
                    float(frame.column("nvlink_errors_per_min_7d")[0]) * 7 * 1440, 3
                ),
                "xid_events_7d": round(float(frame.column("xid_events_7d")[0]), 3),
            }
            # the split counters lose XID 43's event before the reboot; the totals lose none
            hidden = before if totals is False else 0
            assert read == expected | {"xid_events_7d": every - hidden}, (url, totals)


def test_a_gpu_without_totals_only_lately_is_seen_by_the_check_at_the_scored_time(
    rolled_back: tuple[PromClient, str], caplog: pytest.LogCaptureFixture
) -> None:
    client, uuid = rolled_back
    s = schema_by_name("ours")
    check = feature_frame.missing_totals_query(s)
    assert check is not None
    # before the rollback every GPU sent its totals; after it, that GPU alone is named
    assert client.query(check, TIMES[0] - ROLLED_BACK_FOR - 3600) == []
    assert {str(r["metric"][s.uuid]) for r in client.query(check, TIMES[0])} == {uuid}
    feature_frame._last_missing_totals.clear()
    with caplog.at_level(logging.INFO, logger="gpu_health.scorer.features"):
        assert not feature_frame.totals_readable(client, s, TIMES[0])
    assert any(": 1 GPUs sent them without" in r.getMessage() for r in caplog.records)


class _Answering:
    """A querier that answers every query with ``answer``, or raises it when it is an error."""

    def __init__(self, answer: list[dict[str, object]] | PrometheusError) -> None:
        self.answer = answer
        self.sent: list[str] = []

    def query(self, promql: str, at: float | None = None) -> list[dict[str, object]]:
        self.sent.append(promql)
        if isinstance(self.answer, PrometheusError):
            raise self.answer
        return self.answer


def test_a_totals_check_that_fails_reads_the_split_counters() -> None:
    """A check Prometheus cannot answer is no proof that every GPU sends its totals: the run
    reads the split counters, which are always right, instead of failing."""
    s = schema_by_name("ours")
    failing = _Answering(PrometheusError("query timed out"))
    assert not feature_frame.totals_readable(failing, s, TIMES[0])
    assert failing.sent == [feature_frame.missing_totals_query(s)]
    # the same check answered with no GPU missing: the totals are read
    assert feature_frame.totals_readable(_Answering([]), s, TIMES[0])
    # dcgm-exporter's schema has no totals to check
    dcgm = _Answering([])
    assert not feature_frame.totals_readable(dcgm, schema_by_name("dcgm"), TIMES[0])
    assert dcgm.sent == []


@pytest.mark.integration
def test_the_kernel_logs_xids_of_no_gpu_do_not_count_as_a_gpu_without_totals(
    on_both_engines: Callable[[str], tuple[str, str]],
) -> None:
    """An exporter reading the kernel log sends the XIDs it saw at PCI addresses no inventoried
    GPU has as one series without a uuid (``gpu="unknown"``), which has no per-GPU total. The
    check counted it as a GPU from before the totals, so every run of a fleet whose exporters
    had logged one read the split counters (an outside soak test found it): it is no GPU."""
    end, step = 1_796_083_200, 300
    ident = 'node="n0",gpu="0",uuid="GPU-with-totals",model="NVIDIA H100 80GB HBM3"'
    rows = []
    for ts in range(end - 6 * 3600, end + 1, step):
        rows.append(f'gpu_xid_errors_total{{{ident},xid="79"}} 0 {ts}')
        rows.append(f"gpu_xid_errors_all_codes_total{{{ident}}} 0 {ts}")
        rows.append(f'gpu_xid_errors_total{{node="n0",gpu="unknown",xid="79"}} 0 {ts}')
        rows.append(f'gpu_xid_errors_total{{node="n0",gpu="unknown",xid="13"}} 2 {ts}')
    text = "# TYPE gpu_xid_errors_total counter\n" + "\n".join(rows) + "\n# EOF\n"
    s = schema_by_name("ours")
    for url in on_both_engines(text):
        client = PromClient(PromConfig(url))
        feature_frame._last_missing_totals.clear()
        assert feature_frame.totals_readable(client, s, end), url
