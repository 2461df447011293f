"""The scorer reads the 5-minute history the mixin's recording rules keep as it reads the raw
one, and ``auto`` reads it only where it reaches as far back as the raw history.

One history of a physics family, written at 5-minute resolution, is backfilled into a real
Prometheus. Then promtool evaluates the generated ``rules/gpu-health-scorer-history.yaml`` over
its first days (``promtool tsdb create-blocks-from rules``, as an operator backfills the rules
over the history they already have), and those blocks are served beside the raw ones. The
same history goes into VictoriaMetrics, where ``vmalert`` replays the same rule file.
Expectations come from the raw history's answer, never from typed numbers.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from gpu_health import stack
from gpu_health.mixin import render
from gpu_health.scorer import feature_frame, history_source
from gpu_health.scorer.feature_frame import FeatureFrame, compute_features
from gpu_health.scorer.feature_plan import plan_queries
from gpu_health.scorer.feature_schema import SCHEMAS, presence_names, schema_by_name
from gpu_health.scorer.feature_table import FEATURES
from gpu_health.scorer.history_source import (
    HOURLY_AVERAGED,
    HOURLY_INTERVAL,
    HOURLY_MIN_WINDOW,
    RECORDED_INTERVAL,
    hourly_calls,
    hourly_name,
    hourly_names,
    reach_query,
    recorded_name,
    selected_names,
    to_hourly,
    to_recorded,
)
from gpu_health.scorer.model import load_model
from gpu_health.scorer.promclient import PromClient, PromConfig
from gpu_health.scorer.service import Scorer, ScorerCollector
from gpu_health.sim.families import FAMILIES, write
from gpu_health.telemetry.freshness import interval_query
from tests.conftest import ONE_PASS_BLOCKS, import_openmetrics, launch_victoriametrics
from tests.mixin.engine_rules import vmalert_replay
from tests.scorer.dcgm_history import SCORER, score_at

REPO = Path(__file__).resolve().parents[2]
HISTORY_RULES = REPO / render.HISTORY_FILE

DAY = 86400
FAMILY = replace(
    FAMILIES["steps"],
    resolution=300.0,
    warmup_days=1.0,
    precursor_share=1.0,
    failure_share=0.5,
)
GPUS, DAYS, SEED = 16, 7.0, 3
START = 1796083200 - int(DAYS * DAY)
#: The recording rules are backfilled over the first days only: scored within them, the
#: recorded history covers the raw one; scored after them, it holds no GPU now. Two days:
#: promtool's rule backfill takes about 8-11 s a simulated day here (setup 40.9 s with three
#: days, 32.8 s with two), and scored at 1.75 days 43 of the 57 features compared on
#: Prometheus have a value (50 of 65 on VictoriaMetrics; the comparison asks for 30).
RECORDED_UNTIL = START + 2 * DAY
COVERED_AT = START + int(1.75 * DAY)
UNCOVERED_AT = START + int(6.5 * DAY)


def _every_query(schema: str) -> list[str]:
    """Every query a feature frame of ``schema`` may send: each feature's, under both names of
    a renamed field, with or without the volatile ECC fallback and the per-GPU totals, and the
    frame's checks."""
    queries = [interval_query()]
    for names in ("legacy", "renamed"):
        for fallback in (True, False):
            for totals in (True, False):
                s = replace(
                    schema_by_name(schema),
                    fresh="30m",
                    names=names,
                    volatile_ecc_fallback=fallback,
                    totals=totals,
                )
                queries += plan_queries(s, FEATURES).queries
                queries += [
                    feature_frame.inventory_query(s),
                    feature_frame.repeated_series_query(s),
                ]
                queries += [feature_frame.volatile_ecc_only_query(s) or ""]
                queries += [feature_frame.missing_totals_query(s) or ""]
                queries += [feature_frame.renamed_fields_query(s) or "", reach_query(s)]
    return queries


def test_the_rules_record_every_series_the_scorer_reads_and_no_other() -> None:
    """The hand-kept list in jsonnet/rules/scorer_history.libsonnet is exactly the metric names
    the scorer's queries select, each recorded as its 5-minute last reading."""
    wanted = {
        name for schema in SCHEMAS for q in _every_query(schema) for name in selected_names(q)
    }
    groups = yaml.safe_load(HISTORY_RULES.read_text())["groups"]
    assert [g["name"] for g in groups] == [
        "gpu-health-scorer-history.rules",
        "gpu-health-scorer-hourly.rules",
    ]
    assert groups[0]["interval"] == RECORDED_INTERVAL
    rules = groups[0]["rules"]
    recorded = {r["expr"].removeprefix("last_over_time(").removesuffix("[5m])") for r in rules}
    assert recorded == wanted, (sorted(wanted - recorded), sorted(recorded - wanted))
    assert all(r["record"] == recorded_name(r["expr"][15:-5]) for r in rules)
    # the count the docs give
    assert f"the {len(rules)} series names" in (REPO / "docs" / "alerts.md").read_text()
    hourly = groups[1]["rules"]
    assert f"{len(rules)} + {len(hourly)} more rules" in (REPO / "README.md").read_text()
    # and every query, once renamed, selects recorded series only
    for schema in SCHEMAS:
        for q in _every_query(schema):
            assert all(n.startswith("gpu:") for n in selected_names(to_recorded(q))), q


def test_the_hourly_rules_record_every_series_a_long_window_reads_and_no_other() -> None:
    """The hourly group samples exactly the names the scorer reads over windows of a week or
    more: the gauges it averages there as each hour's average, every other name as its last
    reading of the hour. The presence series are among them (the check of the hourly
    history's reach reads them), an averaged gauge is never read there but averaged, counted
    or seen, and every such window, once :func:`to_hourly`-ed, reads them and nothing raw."""
    functions: dict[str, set[str]] = {}
    for schema in SCHEMAS:
        for q in _every_query(schema):
            for name, fn in hourly_calls(q):
                functions.setdefault(name, set()).add(fn)
    averaged = {n for n, fns in functions.items() if fns & {"sum_over_time", "count_over_time"}}
    assert averaged == HOURLY_AVERAGED
    for name in averaged:
        assert functions[name] <= {"sum_over_time", "count_over_time", "last_over_time"}, name
    group = yaml.safe_load(HISTORY_RULES.read_text())["groups"][1]
    assert group["interval"] == HOURLY_INTERVAL
    rules = group["rules"]
    recorded: dict[str, str] = {}
    for r in rules:
        fn, _, rest = r["expr"].partition("(")
        recorded[rest.removesuffix("[1h])")] = fn
    assert set(recorded) == set(functions), (
        sorted(set(functions) - set(recorded)),
        sorted(set(recorded) - set(functions)),
    )
    assert {n for n, fn in recorded.items() if fn == "avg_over_time"} == HOURLY_AVERAGED
    assert {fn for n, fn in recorded.items() if n not in HOURLY_AVERAGED} == {"last_over_time"}
    assert all(r["record"] == hourly_name(r["expr"].partition("(")[2][:-5]) for r in rules)
    assert (
        f"the {len(recorded)} series names the scorer reads over"
        in (REPO / "docs" / "alerts.md").read_text()
    )
    for schema in SCHEMAS:
        for names in ("legacy", "renamed"):
            s = replace(schema_by_name(schema), fresh="30m", names=names)
            assert set(presence_names(s).split("|")) <= set(recorded)
        for q in _every_query(schema):
            assert not hourly_names(to_hourly(q)), q


def test_only_long_windows_read_the_hourly_samples() -> None:
    """Range functions over a week or more of a named series read its hourly samples, with
    their label matchers (braces in a regex too) and offset, over a window an hour longer;
    shorter windows, subqueries' inner windows, ``changes()``, dcgm-exporter's XID gauge and
    recorded names are left alone, and renaming twice changes nothing. The 5-minute renaming
    then leaves the hourly names alone."""
    promql = (
        'max by (UUID) (increase(DCGM_FI_DEV_ECC_SBE_VOL_TOTAL{UUID=~"GPU-a[0-9]{2}}"}[7d]'
        " offset 1d)) + min_over_time(DCGM_FI_DEV_GPU_TEMP [23d] offset 7d)"
        " + max_over_time(DCGM_FI_DEV_GPU_TEMP[24h]) + changes(gpu_power_watts[30d])"
        " + min_over_time(DCGM_FI_DEV_XID_ERRORS[30d])"
        " + sum_over_time((increase(DCGM_FI_DEV_PCIE_REPLAY_COUNTER[2h]) > bool 0)[7d:2h])"
        " + last_over_time(gpu:DCGM_FI_DEV_POWER_USAGE:last_over_time5m[30d])"
        " + count_over_time(gpu_power_watts[168h])"
    )
    assert HOURLY_MIN_WINDOW == "7d"
    hourly = to_hourly(promql)
    assert hourly == (
        "max by (UUID) (increase(gpu:DCGM_FI_DEV_ECC_SBE_VOL_TOTAL:last_over_time1h"
        '{UUID=~"GPU-a[0-9]{2}}"}[608400s] offset 1d))'
        " + min_over_time(gpu:DCGM_FI_DEV_GPU_TEMP:avg_over_time1h [1990800s] offset 7d)"
        " + max_over_time(DCGM_FI_DEV_GPU_TEMP[24h]) + changes(gpu_power_watts[30d])"
        " + min_over_time(DCGM_FI_DEV_XID_ERRORS[30d])"
        " + sum_over_time((increase(DCGM_FI_DEV_PCIE_REPLAY_COUNTER[2h]) > bool 0)[7d:2h])"
        " + last_over_time(gpu:DCGM_FI_DEV_POWER_USAGE:last_over_time5m[30d])"
        " + count_over_time(gpu:gpu_power_watts:avg_over_time1h[608400s])"
    )
    assert to_hourly(hourly) == hourly
    assert hourly_names(promql) == {
        "DCGM_FI_DEV_ECC_SBE_VOL_TOTAL",
        "DCGM_FI_DEV_GPU_TEMP",
        "gpu_power_watts",
    }
    assert "gpu:DCGM_FI_DEV_GPU_TEMP:avg_over_time1h [1990800s]" in to_recorded(hourly)
    assert "max_over_time(gpu:DCGM_FI_DEV_GPU_TEMP:last_over_time5m[24h])" in to_recorded(hourly)


def test_the_rules_follow_the_mixin_config() -> None:
    """``scorerHistorySelector`` narrows every copied series; ``scorerEnabled: false`` renders
    no file (the exporter alone needs none)."""
    narrowed = render.render(overrides={"scorerHistorySelector": 'job="dcgm"'})[render.HISTORY_FILE]
    exprs = [r["expr"] for r in yaml.safe_load(narrowed)["groups"][0]["rules"]]
    assert exprs and all(e.endswith('{job="dcgm"}[5m])') for e in exprs)
    assert render.HISTORY_FILE not in render.render(overrides={"scorerEnabled": False})


def test_only_metric_names_are_renamed() -> None:
    """Selectors and ``__name__`` lists are renamed; label values and regexes (a shard's UUID
    regex holds brackets) and function names are not, and renaming twice changes nothing."""
    promql = (
        'max by (UUID) (increase(DCGM_FI_DEV_XID_ERRORS{UUID=~"GPU-abc[0-9]x{2}"}[7d] offset 1d))'
        ' + on (UUID) last_over_time({__name__=~"gpu_power_watts|DCGM_FI_DEV_GPU_TEMP"}[30m])'
        " + count_over_time(gpu_temperature_celsius [1h]) + (DCGM_FI_DEV_GPU_TEMP)[1d:5m]"
    )
    assert to_recorded(promql) == (
        "max by (UUID) (increase(gpu:DCGM_FI_DEV_XID_ERRORS:last_over_time5m"
        '{UUID=~"GPU-abc[0-9]x{2}"}[7d] offset 1d))'
        ' + on (UUID) last_over_time({__name__=~"gpu:gpu_power_watts:last_over_time5m|'
        'gpu:DCGM_FI_DEV_GPU_TEMP:last_over_time5m"}[30m])'
        " + count_over_time(gpu:gpu_temperature_celsius:last_over_time5m [1h])"
        " + (DCGM_FI_DEV_GPU_TEMP)[1d:5m]"
    )
    assert to_recorded(to_recorded(promql)) == to_recorded(promql)
    with pytest.raises(ValueError, match="not a list of names"):
        to_recorded('count({__name__=~"DCGM_FI_.*"})')


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The family's history (``fleet.om``) in a directory of its own."""
    root = tmp_path_factory.mktemp("history-source")
    write(FAMILY, GPUS, DAYS, SEED, float(START), root)
    return root


def _history_rule_groups(history: Path) -> list[dict[str, Any]]:
    """The generated rule file's groups, each without the rules whose input the fleet does not
    send (our schema's names, dcgm-exporter's other names): those record nothing, but promtool
    and vmalert spend a query on each of them per window (with them, promtool took 36.5 s for
    the 5-minute group and 28.6 s for the hourly one here)."""
    sent = set()
    with (history / "fleet.om").open() as lines:
        for line in lines:
            if not line.startswith("#"):
                sent.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    groups = []
    for group in yaml.safe_load(HISTORY_RULES.read_text())["groups"]:
        rules = [r for r in group["rules"] if r["expr"].split("(")[1].split("[")[0] in sent]
        assert len(rules) >= 10, group["name"]
        groups.append({**group, "rules": rules})
    return groups


@pytest.fixture(scope="module")
def served(history: Path) -> Iterator[stack.Server]:
    """A Prometheus serving the raw history and, over its first days, the recorded one."""
    data = history / "tsdb"
    stack.promtool_backfill(history / "fleet.om", data, ONE_PASS_BLOCKS)
    work = history / "prom"
    work.mkdir()
    config = stack.write_prometheus_config(work / "prometheus.yml")
    recorded = history / "rec"
    rules = history / "history-rules.yaml"
    rules.write_text(yaml.safe_dump({"groups": _history_rule_groups(history)}))
    with stack.prometheus(work, config, data_dir=data) as raw:
        stack.promtool_backfill_rules(rules, raw.url, START, RECORDED_UNTIL, recorded)
    blocks = [b for b in recorded.iterdir() if b.is_dir()]
    assert blocks, "promtool wrote no block"
    for block in blocks:
        shutil.move(str(block), data / block.name)
    with stack.prometheus(work, config, data_dir=data) as server:
        yield server


@pytest.fixture(scope="module")
def served_vm(history: Path) -> Iterator[stack.Server]:
    """VictoriaMetrics holding the same raw history and, over the same days, the recorded one
    as VictoriaMetrics' own rule engine writes it (``vmalert`` replaying the rule file).

    vmalert's replay evaluates in chunks of 1,000 points and writes the point where two chunks
    meet twice; VictoriaMetrics keeps both copies unless it deduplicates, so it runs with
    ``-dedup.minScrapeInterval=1s`` (only samples less than a second apart are merged).
    Without it, six features moved by up to 0.08 % (averages and the reporting-gap share over
    7 to 30 days, which count the copy)."""
    server = launch_victoriametrics(history / "vm", ["-dedup.minScrapeInterval=1s"])
    try:
        import_openmetrics(server, (history / "fleet.om").read_text())
        # vmalert's replay steps each group by -datasource.queryStep, not by its interval: the
        # hourly group replays on its own, stepped by its interval, as a live vmalert runs it
        for group in _history_rule_groups(history):
            rules = history / f"{group['name']}.yaml"
            rules.write_text(yaml.safe_dump({"groups": [group]}))
            log = history / "vmalert.log"
            vmalert_replay(server.url, rules, START, RECORDED_UNTIL, log, group["interval"])
        yield server
    finally:
        server.stop()


class Recording(PromClient):
    """A client that keeps every query it sends."""

    def __init__(self, config: PromConfig) -> None:
        super().__init__(config)
        self.sent: list[str] = []

    def query(self, promql: str, at: float | None = None) -> list[dict[str, Any]]:
        self.sent.append(promql)
        return super().query(promql, at)


def _frame(url: str, at: float, history: Any) -> tuple[FeatureFrame, list[str]]:
    client = Recording(PromConfig(url, retries=1, timeout_s=60))
    return compute_features(client, "dcgm", at, history=history), client.sent


def _columns(frame: FeatureFrame) -> dict[str, dict[str, float]]:
    return {
        name: {g[2]: float(frame.values[i, j]) for i, g in enumerate(frame.gpus)}
        for j, name in enumerate(frame.names)
    }


def _recorded_features(sent: list[str]) -> bool:
    """Whether the feature queries (those after the frame's checks) read recorded series."""
    reads = [selected_names(q) for q in sent if "increase(" in q]
    assert reads
    return all(n.startswith("gpu:") for names in reads for n in names)


def _evaluation_offset(url: str) -> float:
    """Seconds from a raw sample to its recorded copy. Prometheus evaluates a rule group at a
    fixed offset within its interval (from a hash of the group), and promtool's backfill does
    the same, so the recorded samples are the raw ones (every 5 minutes here) moved later by
    that offset."""
    found = stack.query(url, f"{recorded_name('DCGM_FI_DEV_GPU_TEMP')}[1h]", COVERED_AT)
    offsets = {round(float(t) % FAMILY.resolution, 3) for r in found for t, _ in r["values"]}
    assert len(offsets) == 1, offsets
    return offsets.pop()


#: A subquery (``(...)[7d:2h]``) evaluates its inner expression at multiples of its step since
#: the epoch, not at steps back from the scored time, so moving the scored time moves the
#: readings its steps see: features read through one are compared through the scores below.
SUBQUERY = re.compile(r"\[\d+[smhdwy]:\d*[smhdwy]?\]")


def _features_reading(where: Callable[[str], object]) -> set[str]:
    """The features of dcgm-exporter's schema one of whose queries ``where`` is true of."""
    s = replace(schema_by_name("dcgm"), fresh="30m")
    plan = plan_queries(s, FEATURES)
    return {
        f.name
        for f, uses in zip(FEATURES, plan.uses, strict=True)
        if any(where(plan.queries[k]) for k in uses)
    }


def _read_through_a_subquery() -> set[str]:
    return _features_reading(SUBQUERY.search)


def _assert_same_features(raw: FeatureFrame, recorded: FeatureFrame, skip: set[str]) -> None:
    """Every feature of every GPU but those in ``skip`` is the same in both frames (NaN where
    it is NaN), and at least 30 of them have a value somewhere (the comparison covers most
    features)."""
    a, b = _columns(raw), _columns(recorded)
    compared = [n for n in raw.names if n not in skip]
    read = [n for n in compared if np.isfinite(list(a[n].values())).any()]
    assert len(read) >= 30, read
    for name in compared:
        np.testing.assert_allclose(
            [b[name][u] for u in sorted(b[name])],
            [a[name][u] for u in sorted(a[name])],
            rtol=1e-9,
            atol=1e-12,
            err_msg=name,
        )


@pytest.mark.integration
def test_the_recorded_history_gives_the_raw_historys_features(served: stack.Server) -> None:
    """On 5-minute history each recorded series holds the raw samples, each moved later by
    the rules' evaluation offset; scored that much later, every feature of every GPU that is
    not read through a subquery is the raw one (its windows hold the same readings at the same
    distances from their ends)."""
    delay = _evaluation_offset(served.url)
    assert 0 < delay < FAMILY.resolution  # else this compares a history with itself
    raw, sent_raw = _frame(served.url, COVERED_AT, "raw")
    recorded, sent = _frame(served.url, COVERED_AT + delay, "recorded")
    assert not _recorded_features(sent_raw) and _recorded_features(sent)
    assert len(raw.gpus) >= GPUS * 3 // 4 and recorded.gpus == raw.gpus
    stepped = _read_through_a_subquery()
    assert len(stepped) <= 10, stepped
    _assert_same_features(raw, recorded, stepped)


@pytest.mark.integration
def test_victoriametrics_reads_its_recorded_history_as_its_raw_history(
    served_vm: stack.Server,
) -> None:
    """On VictoriaMetrics, with the recordings vmalert made, every feature of every GPU read
    from the recorded series is the one read from the raw series (scored the recordings' offset
    later, none on this history), and ``auto`` chooses them and the hourly ones."""
    delay = _evaluation_offset(served_vm.url)
    raw, sent_raw = _frame(served_vm.url, COVERED_AT, "raw")
    recorded, sent = _frame(served_vm.url, COVERED_AT + delay, "recorded")
    assert not _recorded_features(sent_raw) and _recorded_features(sent)
    assert _frame(served_vm.url, COVERED_AT + delay, "auto")[0].history == "recorded+hourly"
    assert len(raw.gpus) >= GPUS * 3 // 4 and recorded.gpus == raw.gpus
    _assert_same_features(raw, recorded, set() if delay == 0 else _read_through_a_subquery())


def _history_metric(url: str, at: float) -> dict[str, float]:
    """``gpu_scorer_history_source`` of a serving scorer (``--history auto``) after a run."""
    client = PromClient(PromConfig(url, retries=1, timeout_s=60))
    scorer = Scorer(client, load_model("rules"), "dcgm", at=at, history="auto")
    assert scorer.run_once(), scorer.last_error
    family = next(
        f for f in ScorerCollector(scorer).collect() if f.name == "gpu_scorer_history_source"
    )
    return {s.labels["source"]: s.value for s in family.samples}


@pytest.mark.integration
def test_auto_reads_the_recorded_history_only_where_it_reaches(
    served: stack.Server, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Within the recorded days ``auto`` reads the recorded series; after them (no recorded
    GPU reports now) the raw ones, with the reason in the log; the scorer's
    ``gpu_scorer_history_source`` says which. ``recorded`` reads them even there, and warns."""
    # the choice is logged when it changes, per schema and process: forget earlier tests'
    monkeypatch.setattr(history_source, "_last_reason", {})
    with caplog.at_level(logging.INFO, logger="gpu_health.scorer.history_source"):
        frame, sent = _frame(served.url, COVERED_AT, "auto")
        assert _recorded_features(sent) and frame.history == "recorded+hourly"
        assert "reading the 5-minute recorded history" in caplog.text
        assert "reading the hourly recorded history" in caplog.text
        # a day after the history began: the raw history's first samples sit at the end of
        # the 1-day check's window and their copies a few minutes later, which still counts
        frame, sent = _frame(served.url, START + DAY, "auto")
        assert _recorded_features(sent) and frame.history == "recorded+hourly"
        caplog.clear()
        frame, sent = _frame(served.url, UNCOVERED_AT, "auto")
        assert not _recorded_features(sent) and frame.gpus and frame.history == "raw"
        assert f"recorded history holds 0 of the {len(frame.gpus)} GPUs reporting now" in (
            caplog.text
        )
        assert f"hourly history holds 0 of the {len(frame.gpus)} GPUs reporting now" in (
            caplog.text
        )
        caplog.clear()
        # asked for explicitly, it is read all the same, with a warning saying why it is thin
        thin, _ = _frame(served.url, UNCOVERED_AT, "recorded")
        assert thin.history == "recorded" and not thin.gpus
        assert "reading recorded history as asked, but the recorded history holds 0" in caplog.text
        thin, _ = _frame(served.url, UNCOVERED_AT, "hourly")
        assert thin.history == "hourly"
        assert "reading hourly history as asked, but the hourly history holds 0" in caplog.text
    off = dict.fromkeys(history_source.HISTORY_SOURCES, 0.0)
    assert _history_metric(served.url, COVERED_AT) == {**off, "recorded+hourly": 1.0}
    assert _history_metric(served.url, UNCOVERED_AT) == {**off, "raw": 1.0}


#: The largest change of a GPU's 7-day hazard, as |ln(recorded / raw)|, between the two
#: histories scored at the same time: the recorded samples lag the raw ones by up to 5 minutes
#: and the rules' evaluation offset, which moves what the subquery steps see (measured here:
#: at most 0.05).
HAZARD_TOLERANCE = 0.1


def _hazard(gpu: dict[str, Any]) -> float:
    return -math.log1p(-gpu["failure_probability"]["7d"]) / 7.0


@pytest.mark.integration
def test_score_says_the_same_from_either_history(served: stack.Server) -> None:
    """``gpu-health-scorer score --history recorded`` (and the default, ``auto``), at the same
    time as ``--history raw``: the same GPUs in the same states, each GPU's 7-day hazard within
    :data:`HAZARD_TOLERANCE` in log units, the same top quarter and the same failure class
    wherever it is clear."""
    _assert_same_scores(served.url, {"recorded": "recorded"}, HAZARD_TOLERANCE)


def _assert_same_scores(url: str, histories: dict[str, str], tolerance: float) -> None:
    """``score --history H`` for each H of ``histories`` (the history it must say it read),
    against ``--history raw``: the same GPUs in the same states, each 7-day hazard within
    ``tolerance`` in log units, the same top quarter, the same class wherever it is clear."""
    body = score_at(url, COVERED_AT, "--history", "raw")
    assert body["history"] == "raw"
    raw = {g["uuid"]: g for g in body["gpus"]}
    assert len(raw) >= GPUS * 3 // 4
    for history, read in histories.items():
        body = score_at(url, COVERED_AT, "--history", history)
        assert body["history"] == read, history
        other = {g["uuid"]: g for g in body["gpus"]}
        assert set(other) == set(raw), history
        assert all(other[u]["state"] == raw[u]["state"] for u in raw), history
        scored = [u for u in raw if raw[u]["state"] != "absent"]
        a = np.array([_hazard(raw[u]) for u in scored])
        b = np.array([_hazard(other[u]) for u in scored])
        moved = np.abs(np.log(b / a))
        assert moved.max() <= tolerance, (history, scored[int(np.argmax(moved))], moved)
        top = len(scored) // 4
        assert {scored[k] for k in np.argsort(-a)[:top]} == {
            scored[k] for k in np.argsort(-b)[:top]
        }, history
        for u in scored:
            if raw[u]["failure_class"]["probability"] >= 0.6:
                assert other[u]["failure_class"]["class"] == raw[u]["failure_class"]["class"]


def _long_window_features() -> set[str]:
    """Features whose queries read the hourly samples once :func:`to_hourly`-ed."""
    return _features_reading(hourly_names)


def _assert_hourly_frame(raw: FeatureFrame, hourly: FeatureFrame) -> None:
    """Every feature without a long window is the raw one; every long one has a value where the
    raw one has (and none where it has none), and at least 15 of them have a value somewhere.
    The hours with activity count raw 2-hour slots (a subquery's inner window is short); their
    week-long window only tells whether the GPU sends the signal, so they too are the raw
    ones."""
    assert hourly.gpus == raw.gpus and len(raw.gpus) >= GPUS * 3 // 4
    long = _long_window_features() - _read_through_a_subquery()
    _assert_same_features(raw, hourly, long)
    a, b = _columns(raw), _columns(hourly)
    for name in long:
        x = np.array([a[name][u] for u in sorted(a[name])])
        y = np.array([b[name][u] for u in sorted(b[name])])
        assert np.array_equal(np.isnan(x), np.isnan(y)), name
    assert sum(np.isfinite(list(a[n].values())).any() for n in long) >= 15


#: The largest change of a GPU's 7-day hazard, as |ln(hourly / raw)|, scored at the same time
#: from the hourly samples and from the raw history (measured here: at most 0.008 on
#: Prometheus, 0.022 with the 5-minute samples too, under 0.001 on VictoriaMetrics).
HOURLY_HAZARD_TOLERANCE = 0.05


def _hourly_spacing(url: str) -> set[float]:
    """Seconds between a GPU's hourly samples, as stored."""
    found = stack.query(url, f"{hourly_name('DCGM_FI_DEV_GPU_TEMP')}[6h]", COVERED_AT)
    times = [float(t) for t, _ in found[0]["values"]]
    return {round(b - a, 3) for a, b in itertools.pairwise(times)}


@pytest.mark.integration
def test_the_hourly_history_tells_the_raw_historys_story(served: stack.Server) -> None:
    """Read from the hourly samples (promtool's backfill of the hourly group), the features
    over a week or more move a little (their windows end at the group's last evaluation and
    read a gauge once an hour), every other feature is the raw one, and ``score`` says the same
    of every GPU: same states, same top quarter, hazards within
    :data:`HOURLY_HAZARD_TOLERANCE`. ``auto`` reads both recorded tiers there."""
    raw, _ = _frame(served.url, COVERED_AT, "raw")
    assert _hourly_spacing(served.url) == {3600.0}
    hourly, sent = _frame(served.url, COVERED_AT, "hourly")
    assert hourly.history == "hourly"
    assert any(hourly_name("DCGM_FI_DEV_POWER_USAGE") in q for q in sent)
    assert not any(f":last_over_time{RECORDED_INTERVAL}" in q for q in sent)
    _assert_hourly_frame(raw, hourly)
    _assert_same_scores(
        served.url,
        {"hourly": "hourly", "auto": "recorded+hourly"},
        HOURLY_HAZARD_TOLERANCE,
    )


@pytest.mark.integration
def test_victoriametrics_tells_the_same_story_from_its_hourly_history(
    served_vm: stack.Server,
) -> None:
    """On VictoriaMetrics, with the hourly samples vmalert made, the same holds: features
    without a long window are the raw ones, the long ones keep their values' presence, and
    ``score`` says the same of every GPU."""
    assert _hourly_spacing(served_vm.url) == {3600.0}
    raw, _ = _frame(served_vm.url, COVERED_AT, "raw")
    hourly, _ = _frame(served_vm.url, COVERED_AT, "hourly")
    assert hourly.history == "hourly"
    _assert_hourly_frame(raw, hourly)
    _assert_same_scores(served_vm.url, {"hourly": "hourly"}, HOURLY_HAZARD_TOLERANCE)


def _evaluate(url: str, history: Path, out: Path, *extra: str) -> tuple[dict[str, Any], str]:
    """``gpu-health-scorer evaluate`` with the rule over the recorded days (a day of warm-up,
    a time every 6 hours): its JSON report and its stderr."""
    result = subprocess.run(
        [
            *(*SCORER, "evaluate", "--prometheus.url", url, "--schema", "dcgm", "--model", "rules"),
            *("--failures", str(history / "failures.csv"), "--bootstrap", "0"),
            *("--start", str(START), "--end", str(RECORDED_UNTIL), "--warmup", "1d"),
            *("--step", "6h", "--json", str(out), *extra),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(out.read_text()), result.stderr


@pytest.mark.integration
def test_evaluate_reads_the_history_serve_would_read(
    served: stack.Server, history: Path, tmp_path: Path
) -> None:
    """``evaluate`` (and ``train``, through the same collection) takes ``--history`` as
    ``serve`` and ``score`` do, ``auto`` by default: a backtest over the recorded days reads the
    recorded samples at every time, as a scorer serving then would have, and ``raw`` the raw
    series. The same GPU-times either way, and the report says what was read."""
    chosen, said = _evaluate(served.url, history, tmp_path / "auto.json")
    assert chosen["history"]["asked"] == "auto"
    times = chosen["history"]["read_at_times"]
    assert list(times) == ["recorded+hourly"] and times["recorded+hourly"] >= 4
    assert f"--history auto read recorded+hourly at {times['recorded+hourly']} of" in said
    raw, _ = _evaluate(served.url, history, tmp_path / "raw.json", "--history", "raw")
    assert raw["history"] == {"asked": "raw", "read_at_times": {"raw": times["recorded+hourly"]}}
    assert raw["rows"] == chosen["rows"] >= GPUS * times["recorded+hourly"] // 2
    assert raw["horizons"].keys() == chosen["horizons"].keys()
    for horizon, result in raw["horizons"].items():
        assert result["rows"] == chosen["horizons"][horizon]["rows"], horizon


def test_a_tier_left_unread_is_logged_again_when_it_holds_more_not_when_the_fleet_changes(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tier that is not there is said once, however many GPUs come and go (a backtest over
    failures, a serving scorer whose fleet loses a GPU); what the tier holds, and where, is
    said again when it changes."""
    monkeypatch.setattr(history_source, "_last_reason", {})
    s = schema_by_name("dcgm")
    raw = dict.fromkeys(history_source.CHECKED_OFFSETS, 200)
    with caplog.at_level(logging.INFO, logger="gpu_health.scorer.history_source"):
        for reporting in (200, 205, 199):
            fleet = {**raw, "0s": reporting}
            reason = history_source._recorded_short_of(fleet, {})
            assert not history_source._use("recorded", reason, s, "auto")
        partly = history_source._recorded_short_of(raw, dict.fromkeys(raw, 150))
        assert not history_source._use("recorded", partly, s, "auto")
        assert history_source._use("recorded", None, s, "auto")
    said = [r.getMessage() for r in caplog.records]
    assert said == [
        "not reading the recorded history: the recorded history holds 0 of the 200 GPUs "
        "reporting now (the gpu-health-scorer-history.rules group is not loaded, or is newer "
        "than the raw history and was not backfilled)",
        "not reading the recorded history: the recorded history holds 150 of the 200 GPUs "
        "reporting now (the gpu-health-scorer-history.rules group is not loaded, or is newer "
        "than the raw history and was not backfilled)",
        "reading the 5-minute recorded history (gpu:*:last_over_time5m)",
    ]
