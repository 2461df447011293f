"""The mixin's recording and alerting rules give the same answers on VictoriaMetrics (vmalert).

One simulated fleet history with faults (ECC storm, uncorrectable ECC, thermal, XID 79, power
brake, PCIe and NVLink storms, row remaps, XIDs 46 and 13, a GPU that stops reporting, an
exporter that goes down, a stalled scorer) is loaded into a real Prometheus and real
VictoriaMetrics instances. Then:

1. the real ``vmalert`` replays every recording rule; its recordings are compared sample by
   sample with Prometheus' evaluation of the same rules at the same instants;
2. every rule's expression (recording and alerting) is asked as an instant query on the same
   inputs (Prometheus' recordings copied into VictoriaMetrics) at instants spread over the
   history, VictoriaMetrics with the ``step`` a live vmalert sends; for an alert, the returned
   series are the alerts that would be pending or firing, so the sets must be equal;
3. end to end, the alerts are asked on each engine's own recordings (made each minute, as the
   rule groups run live): an alert seen by one engine only must be seen by the other within
   ``MAX_SHIFT`` evaluations.

rate()/increase() are defined differently by the two engines (see ``_extrapolation_check``), so
their values are reported, not asserted; what a threshold reads of them is asserted.
docs/alerts.md ("On VictoriaMetrics (vmalert)") reports what this test measures.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from gpu_health import stack
from tests.conftest import ONE_PASS_BLOCKS, PrometheusFactory, import_openmetrics
from tests.mixin import engine_rules as er
from tests.mixin.rule_history import RESOLUTION, make_history

RULES = Path(__file__).resolve().parents[2] / "rules"
RULE_FILES = (RULES / "gpu-health-rules.yaml", RULES / "gpu-health-alerts.yaml")
REL = er.REL
#: an alert may start or end this many evaluations (minutes) apart on the two engines: at the
#: end of a burst VictoriaMetrics' rate still holds the increment since the last sample before
#: its window for one more scrape interval (measured: 1)
MAX_SHIFT = 2


#: Records that stay empty over the history: GPUMassFailure's burst members need 32 GPUs lost at
#: once, and the history has 16 (tests/rules/*.test.yaml cover them on Prometheus).
NO_SERIES_IN_HISTORY = frozenset({"gpu:gpu_up:lost_in_burst30m"})


def test_vmalert_loads_every_rule_file() -> None:
    """``vmalert -dryRun`` parses every expression with MetricsQL and every template."""
    vmalert = shutil.which("vmalert")
    if vmalert is None:
        pytest.skip("vmalert is not installed (the victoria-metrics package ships it)")
    argv = [vmalert, "-dryRun", *(f"-rule={p}" for p in RULE_FILES)]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    errors = [ln for ln in result.stderr.splitlines() if "error" in ln.lower()]
    assert result.returncode == 0 and not errors, result.stderr[-2000:]


def _extrapolation_check(
    diffs: list[er.Diff], prom_url: str, exprs: dict[str, str]
) -> tuple[list[er.Diff], list[er.Diff]]:
    """What thresholds on a rate()/increase() rule may not see differently: (Prometheus saw an
    increase or a series VictoriaMetrics did not; VictoriaMetrics saw one that Prometheus did
    not show one scrape interval earlier).

    Prometheus extrapolates the increase inside the window to its edges and needs two samples
    inside it; MetricsQL takes the increase from the last sample *before* the window and does
    not extrapolate. So values differ, and VictoriaMetrics may still count, for one scrape
    interval, an increment (or a counter that stopped) that has just left Prometheus' window.
    """
    prom_ahead = [d for d in diffs if (d.prometheus or 0.0) != 0 and not d.victoriametrics]
    vm_ahead = [d for d in diffs if (d.victoriametrics or 0.0) != 0 and not d.prometheus] + [
        d for d in diffs if d.prometheus is None and d.victoriametrics == 0
    ]
    unexplained = []
    for d in vm_ahead:
        earlier = er.instant(prom_url, exprs[d.rule], d.at - RESOLUTION, vm=False)
        seen = earlier.get(d.labels)
        if seen is None or (d.victoriametrics and not seen):
            unexplained.append(d)
    return prom_ahead, unexplained


@pytest.mark.integration
@pytest.mark.slow
def test_rules_agree_on_prometheus_and_victoriametrics(
    prometheus_factory: PrometheusFactory,
    backfill: Callable[[str], Path],
    victoriametrics_factory: Callable[[], stack.Server],
    tmp_path: Path,
) -> None:
    if shutil.which("vmalert") is None:
        pytest.skip("vmalert is not installed (the victoria-metrics package ships it)")
    started = time.monotonic()
    history = make_history(time.time() - 600)
    data_dir = backfill(history.text)
    prom = prometheus_factory(data_dir=data_dir)
    # same: Prometheus' recordings copied in; replay: vmalert's; live: VictoriaMetrics' own
    # answers each minute, as a live vmalert would record them
    same, replay, live = (victoriametrics_factory() for _ in range(3))
    for server in (same, replay, live):
        import_openmetrics(server, history.text)

    rules = er.load_rules(*RULE_FILES)
    exprs = {r.name: r.expr for r in rules}
    passes = er.layers(rules)
    derived = er.extrapolating_rules(rules)
    alert_inputs = er.read_by_alerts(rules)
    first, last = history.start + 900, history.end  # minute-aligned
    minutes = [first + 60 * k for k in range(int((last - first) // 60) + 1)]
    for k, layer in enumerate(passes):
        text = er.prometheus_record(prom.url, layer, first, last)
        prom.stop()
        recorded = tmp_path / f"recorded-{k}.om"
        recorded.write_text(text)
        stack.promtool_backfill(recorded, data_dir, ONE_PASS_BLOCKS)
        prom = prometheus_factory(data_dir=data_dir)
        import_openmetrics(same, text)
        rule_file = er.write_rule_file(layer, tmp_path / f"pass-{k}.yaml")
        er.vmalert_replay(replay.url, rule_file, first, last, tmp_path / "vmalert.log")
        own = [r for r in layer if r.name in alert_inputs]
        if own:
            import_openmetrics(live, er.vm_record(live.url, own, minutes))

    print(f"loaded and recorded in {time.monotonic() - started:.1f}s")
    # 1. The real vmalert's recordings against Prometheus', sample by sample, for the rules
    #    that read stored series only. (A rule reading recorded series reads them 5 minutes
    #    apart in a replay, against each minute live, so near a series' end it averages over
    #    other series than a live evaluation; the instant queries below cover those rules.)
    recording = [r for layer in passes for r in layer]
    rec_other, rec_exact, rec_n = er.compare_recordings(
        prom.url, replay.url, passes[0], first, last, derived
    )
    unwritten = er.missing_series(
        prom.url, replay.url, recording, first, last, NO_SERIES_IN_HISTORY
    )
    rec_prom_only, rec_alone = _extrapolation_check(rec_other, prom.url, exprs)
    print(f"vmalert replay: all {len(recording)} rules recorded, {len(unwritten)} with other "
          f"series than Prometheus; {len(passes[0])} reading stored series only: {rec_n} samples "
          f"compared, {len(rec_exact)} disagree among those without rate()/increase(), "
          f"{len(rec_other)} differ among those with "
          f"(largest relative {er.max_relative(rec_other):.3f}), "
          f"{len(rec_prom_only)} increases Prometheus alone saw, {len(rec_alone)} VictoriaMetrics "
          f"alone saw beyond a scrape interval")  # fmt: skip
    print("\n".join(unwritten + er.summary(rec_exact + rec_prom_only + rec_alone, 3)))
    print(f"at {time.monotonic() - started:.1f}s")

    # 2. Every rule's expression as instant queries on the same inputs, at instants off the
    #    scrape grid and the minute (live evaluations fall anywhere in the minute).
    instants = [history.start + 1203.5 + k * 97.0 for k in range(110)]
    instants = [t for t in instants if t <= history.end]
    exact = [r for r in rules if not er.extrapolates(r.expr)]
    extrapolating = [r for r in rules if er.extrapolates(r.expr)]
    diffs, compared = er.compare_instants(prom.url, same.url, exact, instants, REL)
    plain, n_plain = er.compare_instants(prom.url, same.url, extrapolating, instants, REL)
    prom_only, alone = _extrapolation_check(plain, prom.url, exprs)
    print(f"instant queries: {len(exact)} rules without rate()/increase(): {compared} series "
          f"compared, {len(diffs)} disagree; {len(extrapolating)} with: {n_plain} compared, "
          f"{len(plain)} differ (largest relative {er.max_relative(plain):.3f}), "
          f"{len(prom_only)} increases Prometheus alone saw, {len(alone)} VictoriaMetrics alone "
          f"saw beyond a scrape interval")  # fmt: skip
    print("\n".join(er.summary(diffs + prom_only + alone, 3)))
    print(f"at {time.monotonic() - started:.1f}s")

    # 3. End to end: the alerts on each engine's own recordings (both each minute, aligned).
    #    An alert seen by one engine only is looked for on the other a few minutes around.
    alerts = {r.name: r for r in rules if r.alert}
    e2e, n_e2e = er.compare_instants(prom.url, live.url, list(alerts.values()), instants, REL)
    flips = [d for d in e2e if d.prometheus is None or d.victoriametrics is None]
    shifts = [
        er.nearest_shift(prom.url, live.url, alerts[d.rule].expr, d, MAX_SHIFT) for d in flips
    ]
    print(f"alerts on each engine's own recordings: {n_e2e} series compared, {len(flips)} on one "
          f"engine only, seen on the other that many evaluations away: "
          f"{sorted(k or 0 for k in shifts)} (0: not within {MAX_SHIFT})")  # fmt: skip
    print("\n".join(er.summary(flips, 3)))
    print(f"took {time.monotonic() - started:.1f}s")
    assert not unwritten and not rec_exact and not rec_prom_only and not rec_alone
    assert not diffs and not prom_only and not alone
    assert all(shifts), "an alert fired on one engine only, not just earlier or later"


def _xid_history(start: float, pods: tuple[str, str]) -> str:
    """XID 92 counted 5 times since boot, served for 20 minutes by one exporter pod and then by
    its replacement (every 30 s, 7 s off the minute)."""
    lines = ["# TYPE gpu_xid_errors counter"]
    for k in range(80):
        pod = pods[0] if k < 40 else pods[1]
        labels = f'job="gpu-health-exporter",instance="node-1",uuid="GPU-1",xid="92",pod="{pod}"'
        lines.append(f"gpu_xid_errors_total{{{labels}}} 5 {start + 7 + 30 * k:.0f}")
    return "\n".join([*lines, "# EOF", ""])


@pytest.mark.integration
def test_a_series_born_above_zero_is_new_events_on_victoriametrics_only(
    prometheus_factory: PrometheusFactory,
    backfill: Callable[[str], Path],
    victoriametrics_factory: Callable[[], stack.Server],
) -> None:
    """Why the exporter's ServiceMonitor drops the exporter pod's labels (docs/alerts.md): a
    counter that keeps its labels across the pod's replacement reads no events on either
    engine, one that restarts under a new pod label reads its count since boot as new XIDs on
    VictoriaMetrics, which fires GPUCorrectableEccStorm's XID 92 branch there alone."""
    start = float(int(time.time() - 7200) // 60 * 60)
    rules = er.load_rules(*RULE_FILES)
    expr = next(r.expr for r in rules if r.name == "gpu_xid:gpu_xid_errors:increase10m")
    at = start + 25 * 60  # five minutes after the replacement
    readings = {}
    for case, pods in (("kept", ("a", "a")), ("replaced", ("a", "b"))):
        text = _xid_history(start, pods)
        prom = prometheus_factory(data_dir=backfill(text))
        vm = victoriametrics_factory()
        import_openmetrics(vm, text)
        readings[case] = tuple(
            {dict(key)["pod"]: value for key, value in er.instant(url, expr, at, vm).items()}
            for url, vm in ((prom.url, False), (vm.url, True))
        )
    # the record keeps only codes with events: no series on either engine
    assert readings["kept"] == ({}, {})
    # the old pod's series is still inside the 10-minute window, without events
    assert readings["replaced"] == ({}, {"b": 5.0})
