"""dcgm-exporter 4.9 sends its default fields under DCGM 4.6's names: the scorer reads them as
it reads the names before, and a fleet whose exporters are upgraded mid-history keeps its GPUs
and their evidence.

DCGM 4.6 renamed fields without changing their ids or units (``DCGM_FI_DEV_POWER_USAGE`` is
``DCGM_FI_DEV_BOARD_POWER_WATTS``, id 155; :data:`~gpu_health.telemetry.catalogue.DCGM_RENAMED`),
and dcgm-exporter 4.9 renamed its default counters file to match, so a metric carries the new
name from the upgrade on; it sends clocks as other fields, in base units (Hz where MHz). One
history of a physics family is written three times: as dcgm-exporter 4.8 writes it, as 4.9
writes it, and with the exporters of two of the three nodes upgraded 12 hours before the
scored time. Each is backfilled into a real Prometheus and its
features are read through the scorer's own frame; expectations come from the legacy history's
answer, never from typed numbers.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gpu_health import stack
from gpu_health.report.gather import Gatherer
from gpu_health.scorer.feature_frame import (
    FeatureFrame,
    compute_features,
    renamed_fields_query,
    repeated_series_query,
)
from gpu_health.scorer.feature_schema import DCGM, inventory_query
from gpu_health.scorer.labels import ScanConfig, scan
from gpu_health.scorer.promclient import PromClient, PromConfig, PrometheusError
from gpu_health.sim.dcgm_renames import DRIVER_LABEL, SAMPLE, renamed, upgraded_nodes
from gpu_health.sim.families import FAMILIES, write
from gpu_health.telemetry import freshness
from gpu_health.telemetry.catalogue import DCGM_BASE_UNITS, DCGM_RENAMED
from gpu_health.telemetry.schema import count_query
from gpu_health.telemetry.state_queries import state_queries
from gpu_health.telemetry.xids import DCGM_XID_GAUGES
from tests.conftest import import_openmetrics
from tests.scorer.dcgm_history import score_at, serve

pytestmark = [pytest.mark.integration]

DAY = 86400
#: 24 GPUs on three nodes for 8 days of 10-minute data, every failure with a precursor.
FAMILY = replace(
    FAMILIES["steps"],
    resolution=600.0,
    warmup_days=1.0,
    precursor_share=1.0,
    failure_share=0.5,
)
GPUS, DAYS, SEED = 24, 8.0, 5
START = 1796083200 - int(DAYS * DAY)
AT = START + int(6.5 * DAY) // 600 * 600
#: When the upgraded nodes' exporters start sending the new names: within the GPU state's
#: 24-hour XID window before the scored time, and the 7-day features' window.
UPGRADE = AT - 12 * 3600
UPGRADED_NODES = ("node-000", "node-002")
#: A healthy GPU of an upgraded node logs XID 48 this long before the scored time and holds
#: the code (no reset) through the upgrade, which carries it over to the new name.
HELD_SINCE = AT - 3 * DAY
HELD_CODE = 48


def _holding_a_code(root: Path) -> tuple[str, str]:
    """The family's history with one healthy GPU of an upgraded node holding XID
    :data:`HELD_CODE` from :data:`HELD_SINCE` on, and that GPU's UUID."""
    text = (root / "fleet.om").read_text()
    failing = {row.split(",")[0] for row in (root / "failures.csv").read_text().splitlines()[1:]}
    node = UPGRADED_NODES[0]
    uuids = re.findall(rf'^DCGM_FI_DEV_XID_ERRORS{{Hostname="{node}",UUID="([^"]+)"', text, re.M)
    held = sorted(set(uuids) - failing)[0]
    out = []
    for line in text.splitlines():
        found = SAMPLE.match(line)
        if (
            found
            and found[1] == "DCGM_FI_DEV_XID_ERRORS"
            and f'UUID="{held}"' in found[2]
            and float(found[5]) >= HELD_SINCE
        ):
            line = f"{found[1]}{found[2]} {HELD_CODE} {found[5]}"
        out.append(line)
    return "\n".join(out) + "\n", held


def _with_sm_clocks(text: str) -> str:
    """``text`` with every GPU's SM clock in MHz beside its power (the family writes no clock):
    1,095 MHz and 2 MHz a watt, up to 1,980, so GPUs of one model differ. dcgm-exporter 4.9
    sends the clock as another field, in Hz (:data:`DCGM_BASE_UNITS`)."""
    clocks = [
        f"DCGM_FI_DEV_SM_CLOCK{found[2]} {min(1980, 1095 + int(2 * float(found[4])))} {found[5]}"
        for line in text.splitlines()
        if (found := SAMPLE.match(line)) and found[1] == "DCGM_FI_DEV_POWER_USAGE"
    ]
    body = text.rstrip().removesuffix("# EOF").rstrip()
    return f"{body}\n# TYPE DCGM_FI_DEV_SM_CLOCK gauge\n" + "\n".join(clocks) + "\n# EOF\n"


class CheckFails(PromClient):
    """Prometheus failing the check for renamed fields (a timeout, say), answering the rest."""

    refused = 0

    def query(self, promql: str, at: float | None = None) -> list[dict[str, Any]]:
        check = renamed_fields_query(replace(DCGM, fresh="FRESH")) or ""
        if re.fullmatch(re.escape(check).replace("FRESH", r"\w+"), promql):
            self.refused += 1
            raise PrometheusError("timed out")
        return super().query(promql, at)


def _frame(url: str) -> FeatureFrame:
    client = PromClient(PromConfig(url, retries=1, timeout_s=60))
    return compute_features(client, "dcgm", AT)


def _frame_when_the_check_fails(url: str) -> FeatureFrame:
    client = CheckFails(PromConfig(url, retries=1, timeout_s=60))
    frame = compute_features(client, "dcgm", AT)
    assert client.refused == 1
    return frame


@pytest.fixture(scope="module")
def histories(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("renamed")
    write(FAMILY, GPUS, DAYS, SEED, float(START), root)
    legacy, held = _holding_a_code(root)
    legacy = _with_sm_clocks(legacy)
    texts = {
        "legacy": legacy,
        "renamed": renamed(legacy, lambda _node, _t: True),
        "upgraded": renamed(legacy, upgraded_nodes(UPGRADED_NODES, UPGRADE)),
    }
    out: dict[str, Any] = {"texts": texts, "held": held}
    for name, text in texts.items():
        with serve(root, text, name, DAYS) as server:
            out[name] = (
                _frame(server.url),
                score_at(server.url, AT),
                _signals(server.url),
                _report_xids(server.url),
            )
            if name != "upgraded":  # it sends new names now: the view the check would choose
                out[f"{name}, check failed"] = _frame_when_the_check_fails(server.url)
    with serve(root, _clock_in_hz_only(legacy), "clock-in-hz", DAYS) as server:
        out["clock in Hz only"] = _frame(server.url)
    return out


def _clock_in_hz_only(legacy: str) -> str:
    """The legacy history with only the SM clock in Hz, under its base-unit field's name (a
    counters file that takes 4.9's clock and keeps every other name)."""
    clock, factor = DCGM_BASE_UNITS["DCGM_FI_DEV_SM_CLOCK"]
    text = re.sub(
        r"^DCGM_FI_DEV_SM_CLOCK(\{.*\}) (\S+) (\S+)$",
        lambda m: f"{clock}{m[1]} {float(m[2]) / factor!r} {m[3]}",
        legacy,
        flags=re.M,
    )
    return text.replace("# TYPE DCGM_FI_DEV_SM_CLOCK gauge", f"# TYPE {clock} gauge")


def _report_xids(url: str) -> list[tuple[str, str, float]]:
    """The report's XID table over the 4 days before the scored time: (UUID, code, count)."""
    report = Gatherer(url, "4d", at=AT).gather("dcgm", 20, ("xids",))
    return sorted((x.uuid, x.xid, x.count) for x in report.xids)


def _signals(url: str) -> list[tuple[str, str, float]]:
    """The failure scan's signals over the whole history: (UUID, kind, time)."""
    client = PromClient(PromConfig(url, retries=1, timeout_s=60))
    found = scan(client, "dcgm", ScanConfig(START, START + DAYS * DAY - 600))
    return sorted((s.uuid, s.kind, s.start) for s in found)


def _columns(frame: FeatureFrame) -> dict[str, dict[str, float]]:
    return {
        name: {g[2]: float(frame.values[i, j]) for i, g in enumerate(frame.gpus)}
        for j, name in enumerate(frame.names)
    }


def _assert_same_features(expected: FeatureFrame, actual: FeatureFrame, where: str = "") -> None:
    """Every feature of every GPU of ``actual`` equals ``expected``'s (NaN where it is NaN)."""
    a, b = _columns(expected), _columns(actual)
    for feature in expected.names:
        np.testing.assert_allclose(
            [b[feature][u] for u in sorted(b[feature])],
            [a[feature][u] for u in sorted(a[feature])],
            rtol=1e-9,
            err_msg=where + feature,
        )


def test_the_history_sends_renamed_fields(histories: dict[str, Any]) -> None:
    """The test means something: the family writes fields DCGM renamed (power, temperature,
    XIDs, PCIe replays, NVLink errors, remapped rows), and the renamed history has none of
    their legacy names left."""
    legacy, renamed = histories["texts"]["legacy"], histories["texts"]["renamed"]
    written = {n for n in DCGM_RENAMED if f"# TYPE {n} " in legacy}
    assert len(written) >= 8
    assert not any(f"# TYPE {n} " in renamed for n in written)
    clock, factor = DCGM_BASE_UNITS["DCGM_FI_DEV_SM_CLOCK"]
    assert f"# TYPE {clock} " in renamed and "# TYPE DCGM_FI_DEV_SM_CLOCK " not in renamed
    mhz = re.search(r"^DCGM_FI_DEV_SM_CLOCK(\{.*\}) (\S+) (\S+)$", legacy, re.M)
    assert mhz is not None
    labels = mhz[1].replace(*DRIVER_LABEL)  # 4.9 renames the driver label too
    hz = re.search(rf"^{clock}{re.escape(labels)} (\S+) {mhz[3]}$", renamed, re.M)
    assert hz is not None and float(hz[1]) * factor == pytest.approx(float(mhz[2]))
    # utilization as a 0-1 ratio under DCGM 4.7's name, the driver label under 4.9's
    ratio, _ = DCGM_BASE_UNITS["DCGM_FI_DEV_GPU_UTIL"]
    utils = [float(v) for v in re.findall(rf"^{ratio}\{{.*\}} (\S+) \S+$", renamed, re.M)]
    assert "# TYPE DCGM_FI_DEV_GPU_UTIL " in legacy and "DCGM_FI_DEV_GPU_UTIL{" not in renamed
    assert utils and max(utils) <= 1 and max(utils) > 0.2
    assert "DCGM_FI_DRIVER_VERSION=" in legacy and "DCGM_FI_DRIVER_VERSION=" not in renamed


def test_every_presence_reader_takes_the_new_power_and_temperature_names() -> None:
    """The scrape-interval measure, the schema choice, the scorer's inventory and the GPU state
    find a GPU by its power or temperature: under the new names too."""
    new = [DCGM_RENAMED["DCGM_FI_DEV_POWER_USAGE"], DCGM_RENAMED["DCGM_FI_DEV_GPU_TEMP"]]
    assert new[0] in freshness.PRESENCE and new[0] in freshness.interval_query()
    for query in (count_query("dcgm"), inventory_query(DCGM)):
        assert all(n in query for n in new), query
    assert new[1] in state_queries("dcgm")["fresh"]  # the state finds GPUs by temperature
    assert ("DCGM_FI_DEV_XID_ERRORS", DCGM_RENAMED["DCGM_FI_DEV_XID_ERRORS"]) == DCGM_XID_GAUGES


def test_a_shards_selectors_keep_every_name_of_a_field() -> None:
    """A scorer shard's selectors carry its UUID matcher on every name: the field's aliases
    (the clock-event bitmask's two names) in either view, and both names of a renamed one."""
    shard = replace(DCGM, shard_matcher='UUID=~"GPU-a.*"')
    suffix = '{UUID=~"GPU-a.*"}'
    for view in (shard, replace(shard, names="renamed")):
        found = view.selectors_and_aliases("gpu_clock_event_active")
        assert found is not None
        assert sorted(found[0]) == [
            "DCGM_FI_DEV_CLOCKS_EVENT_REASONS" + suffix,
            "DCGM_FI_DEV_CLOCK_THROTTLE_REASONS" + suffix,
        ]
    assert replace(shard, names="renamed").selectors_over_names("gpu_power_watts") == [
        "DCGM_FI_DEV_BOARD_POWER_WATTS" + suffix,
        "DCGM_FI_DEV_POWER_USAGE" + suffix,
    ]


def test_a_fleet_on_the_new_names_scores_as_on_the_old(
    histories: dict[str, Any],
) -> None:
    legacy, renamed = histories["legacy"][0], histories["renamed"][0]
    assert renamed.gpus == legacy.gpus and len(legacy.gpus) >= GPUS - 6
    assert renamed.failed_queries == legacy.failed_queries == 0
    # the clock is read (in MHz and in Hz), and GPUs of one model differ
    clocks = _columns(legacy)["sm_clock_vs_model_24h"].values()
    assert len({round(v, 6) for v in clocks if np.isfinite(v)}) > 5
    # utilization is read (in percent and as a ratio), and it is a ratio
    for feature in ("utilization_avg_7d", "utilization_avg_30d"):
        used = [v for v in _columns(legacy)[feature].values() if np.isfinite(v)]
        assert len(used) >= GPUS - 6 and 0 < max(used) <= 1, feature
    _assert_same_features(legacy, renamed)
    scored = {g["uuid"]: g for g in histories["legacy"][1]["gpus"]}
    for gpu in histories["renamed"][1]["gpus"]:
        assert gpu["failure_probability"] == pytest.approx(
            scored[gpu["uuid"]]["failure_probability"]
        ), gpu["uuid"]
        assert gpu["risk_factors"] == scored[gpu["uuid"]]["risk_factors"], gpu["uuid"]
    assert histories["renamed"][1]["empty_features"] == histories["legacy"][1]["empty_features"]


def test_a_failed_check_for_new_names_reads_both(histories: dict[str, Any]) -> None:
    """When Prometheus does not answer the check for renamed fields, the run reads every field
    under both names: a 4.9 fleet keeps its features, and a legacy one reads as when the check
    answers."""
    for name in ("legacy", "renamed"):
        checked, failed = histories[name][0], histories[f"{name}, check failed"]
        assert failed.gpus == checked.gpus and failed.failed_queries == 0
        _assert_same_features(checked, failed, f"{name}: ")


def test_a_fleet_that_sends_only_its_clock_in_hz_reads_it(histories: dict[str, Any]) -> None:
    """A clock in base units alone (every other field under its old name) is found by the check
    for new names: the run reads the renamed view, and every feature is the legacy history's."""
    legacy, hz = histories["legacy"][0], histories["clock in Hz only"]
    assert hz.gpus == legacy.gpus and hz.failed_queries == 0
    assert np.isfinite(list(_columns(hz)["sm_clock_vs_model_24h"].values())).sum() > 5
    _assert_same_features(legacy, hz)


#: Of the (feature, GPU) values of the fleet upgraded mid-window, the share that may differ from
#: the legacy fleet's, and the features that may: a counter read as the span of its readings
#: loses the rise between the last reading under the old name and the first under the new one
#: (one scrape interval); a standard deviation is taken over each name's part of the window
#: and the larger kept. 4.9 renames the driver label too, so every series of an upgraded GPU
#: splits there, as at a driver upgrade: a counter's increase is extrapolated at the split
#: (corrected ECC, whose name is kept), and at the upgrade's instant the GPU's power under both
#: names is two readings, of which the node's comparison takes the larger. Measured on
#: Prometheus: 36 values of 1,365 (2.6 %), ECC and the node comparison within 0.4 %; 14, all
#: ``power_cv_24h``, before the label was renamed.
MAX_DIFFERING_SHARE = 0.03
APPROXIMATE_FEATURES = (
    "ecc_corrected_per_day_7d",
    "power_noise_node_log_24h",
    "pcie_replays_per_min_24h",
    "pcie_replays_per_min_7d",
    "pcie_replays_log_change_7d",
    "remapped_rows_correctable_7d",
    "remapped_rows_uncorrectable_30d",
    "nvlink_errors_per_min_24h",
    "nvlink_errors_per_min_7d",
    "power_cv_24h",
)


def _differing(legacy: FeatureFrame, other: FeatureFrame) -> list[tuple[str, str, float, float]]:
    a, b = _columns(legacy), _columns(other)
    out = []
    for name in legacy.names:
        for uuid, x in a[name].items():
            y = b[name][uuid]
            if not (np.isnan(x) and np.isnan(y)) and not np.isclose(x, y, rtol=1e-6):
                out.append((name, uuid, x, y))
    return out


def test_a_fleet_upgraded_mid_window_keeps_its_gpus_and_their_evidence(
    histories: dict[str, Any],
) -> None:
    legacy, upgraded = histories["legacy"][0], histories["upgraded"][0]
    assert upgraded.gpus == legacy.gpus and upgraded.failed_queries == 0
    differing = _differing(legacy, upgraded)
    cells = len(legacy.names) * len(legacy.gpus)
    assert len(differing) <= MAX_DIFFERING_SHARE * cells, differing
    # what differs is a counter's rise or a spread: never a value that appears or vanishes,
    # never an XID, a temperature, an average or a presence
    assert all(np.isfinite(x) and np.isfinite(y) for _, _, x, y in differing), differing
    assert {name for name, *_ in differing} <= set(APPROXIMATE_FEATURES), differing
    before = {g["uuid"]: g for g in histories["legacy"][1]["gpus"]}
    after = {g["uuid"]: g for g in histories["upgraded"][1]["gpus"]}
    assert after.keys() == before.keys()
    for uuid, gpu in before.items():
        assert after[uuid]["failure_probability"]["7d"] == pytest.approx(
            gpu["failure_probability"]["7d"], abs=0.01
        ), uuid
        assert after[uuid]["state"] == gpu["state"], uuid

    def top(gpus: dict[str, Any]) -> list[str]:
        return sorted(gpus, key=lambda u: -gpus[u]["failure_probability"]["7d"])[:5]

    assert top(after) == top(before)
    assert histories["upgraded"][1]["empty_features"] == histories["legacy"][1]["empty_features"]


def test_victoriametrics_reads_both_names_as_prometheus_does(
    histories: dict[str, Any],
    victoriametrics_factory: Callable[[], stack.Server],
) -> None:
    """On VictoriaMetrics, too, the renamed and the upgraded fleets read as the legacy one."""
    frames = {}
    for name in ("legacy", "renamed", "upgraded"):
        vm = victoriametrics_factory()
        import_openmetrics(vm, histories["texts"][name])
        frames[name] = _frame(vm.url)
    assert frames["renamed"].gpus == frames["upgraded"].gpus == frames["legacy"].gpus
    assert not _differing(frames["legacy"], frames["renamed"])
    cells = len(frames["legacy"].names) * len(frames["legacy"].gpus)
    differing = _differing(frames["legacy"], frames["upgraded"])
    assert len(differing) <= MAX_DIFFERING_SHARE * cells, differing
    assert {name for name, *_ in differing} <= set(APPROXIMATE_FEATURES), differing


def test_the_failure_scan_finds_the_same_failures_under_either_name(
    histories: dict[str, Any],
) -> None:
    """The failure scan (the ledger's signals: XIDs, remapped rows, vanished GPUs) finds under
    the new names what it finds under the old, at the same times; an upgrade mid-history adds
    none (a code or flag carried over to the new name is no event) and loses none."""
    legacy = histories["legacy"][2]
    kinds = {kind for _, kind, _ in legacy}
    assert len(legacy) >= 5 and len(kinds) >= 2, legacy
    held = [s for s in legacy if s[2] == HELD_SINCE]
    assert [k for _, k, _ in held] == ["uncorrectable_memory"], held  # XID 48, once
    assert histories["renamed"][2] == legacy
    upgraded = histories["upgraded"][2]
    assert {(u, k) for u, k, _ in upgraded} == {(u, k) for u, k, _ in legacy}
    assert len(upgraded) == len(legacy)


def test_the_reports_xid_table_is_the_same_under_either_name(histories: dict[str, Any]) -> None:
    """The report counts each GPU's XIDs alike under the old names, the new ones, and across an
    upgrade that carries a held code over to the new name (which is no second event)."""
    legacy = histories["legacy"][3]
    assert (histories["held"], str(HELD_CODE), 1.0) in legacy, legacy
    assert histories["renamed"][3] == legacy
    assert histories["upgraded"][3] == legacy


def test_gpus_sent_twice_under_the_new_names_are_named_and_an_upgrade_is_no_copy(
    histories: dict[str, Any], tmp_path: Path
) -> None:
    """The check for GPUs reported twice at once (two scrape jobs on one exporter) reads power
    under the new name too; the series an upgrade ends and the one it starts follow one
    another, which is no copy (the upgraded fleet's GPUs named at no time around it)."""
    text = histories["texts"]["upgraded"]
    twice = sorted(
        set(re.findall(r'^DCGM_FI_DEV_BOARD_POWER_WATTS\{[^}]*UUID="([^"]+)"', text, re.M))
    )[:2]
    lines = []
    for line in text.splitlines():
        lines.append(line)
        if any(f'UUID="{u}"' in line for u in twice) and not line.startswith("#"):
            lines.append(line.replace("{", '{job="second",', 1))
    s = replace(DCGM, fresh="30m")
    for name, history, expected in (("plain", text, []), ("twice", "\n".join(lines) + "\n", twice)):
        with serve(tmp_path, history, name, DAYS) as server:
            client = PromClient(PromConfig(server.url, retries=1, timeout_s=60))
            # ten minutes after the upgrade the new series hold too few samples to judge
            for at, named in ((AT, expected), (UPGRADE + 600, []), (UPGRADE + 1800, expected)):
                found = client.query(repeated_series_query(s), at)
                assert sorted(r["metric"]["UUID"] for r in found) == named, (name, at)
