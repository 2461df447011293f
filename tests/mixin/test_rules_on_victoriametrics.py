"""The mixin's recording and alerting rules give the same answers on VictoriaMetrics (vmalert).

One simulated fleet history with faults (ECC storm, uncorrectable ECC, thermal, XID 79, power
brake, PCIe and NVLink storms, row remaps, XIDs 46 and 13, a GPU that stops reporting, an
exporter that goes down, a stalled scorer) is loaded into a real Prometheus and a real
VictoriaMetrics. Then:

* every recording rule is evaluated by each engine's own rule tooling (promtool's rule backfill,
  the real ``vmalert`` in replay mode) and the recorded samples are compared one by one;
* every recording and alerting rule's expression is asked as an instant query at instants spread
  over the history (VictoriaMetrics with the ``step`` a live vmalert sends); for an alert, the
  returned series are the alerts that would be pending or firing, so the sets must be equal.

Disagreements are listed as rule, labels, time and both values. docs/alerts.md ("On
VictoriaMetrics (vmalert)") reports what this test measures.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from gpu_health import stack
from tests.conftest import PrometheusFactory, import_openmetrics
from tests.mixin import engine_rules as er
from tests.mixin.rule_history import make_history

RULES = Path(__file__).resolve().parents[2] / "rules"
RULE_FILES = (RULES / "gpu-health-rules.yaml", RULES / "gpu-health-alerts.yaml")
#: relative tolerance for "the same number": float summation order differs between engines
REL = 1e-9
#: both tools evaluate every rule each minute (promtool --eval-interval, the groups' interval)
EVAL_INTERVAL = 60.0
#: an alert may start or end this many evaluations apart on the two engines
MAX_SHIFT = 3


def test_vmalert_loads_every_rule_file() -> None:
    """``vmalert -dryRun`` parses every expression with MetricsQL and every template."""
    vmalert = shutil.which("vmalert")
    if vmalert is None:
        pytest.skip("vmalert is not installed (the victoria-metrics package ships it)")
    argv = [vmalert, "-dryRun", *(f"-rule={p}" for p in RULE_FILES)]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    errors = [ln for ln in result.stderr.splitlines() if "error" in ln.lower()]
    assert result.returncode == 0 and not errors, result.stderr[-2000:]


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
    vm = victoriametrics_factory()
    replay = victoriametrics_factory()
    for server in (vm, replay):
        import_openmetrics(server, history.text)

    rules = er.load_rules(*RULE_FILES)
    passes = er.layers(rules)
    first, last = history.start + 900, history.end
    # Prometheus' rule evaluation (promtool) records every rule, pass by pass; its recorded
    # series are copied into VictoriaMetrics too, so that rules reading recorded series are
    # compared on the same inputs. The real vmalert replays the same passes into a second
    # VictoriaMetrics.
    for k, layer in enumerate(passes):
        rule_file = er.write_rule_file(layer, tmp_path / f"pass-{k}.yaml")
        blocks = tmp_path / f"promtool-{k}"
        er.promtool_record(prom.url, rule_file, first, last, blocks)
        er.vmalert_replay(replay.url, rule_file, first, last, tmp_path / "vmalert.log")
        prom.stop()
        for block in blocks.iterdir():
            shutil.move(str(block), data_dir / block.name)
        prom = prometheus_factory(data_dir=data_dir)
        for r in layer:
            import_openmetrics(vm, er.as_openmetrics(er.raw_samples(prom.url, r.name, first, last)))

    # vmalert's replay: every recording rule wrote the same series as Prometheus' evaluation.
    missing = []
    for r in (r for layer in passes for r in layer):
        p = {key for key, _ in er.raw_samples(prom.url, r.name, first, last)}
        v = {key for key, _ in er.raw_samples(replay.url, r.name, first, last)}
        if p != v or not p:
            only_p, only_v = sorted(p - v)[:3], sorted(v - p)[:3]
            missing.append(f"{r.name}: only Prometheus {only_p}, only vmalert {only_v}")
    print("\n".join(missing))

    # Instants off the 30 s sample grid (live scrape times carry milliseconds of jitter).
    instants = [history.start + 1207.5 + k * 217.0 for k in range(60)]
    instants = [t for t in instants if t <= history.end]
    exact = [r for r in rules if not er.extrapolates(r.expr)]
    extrapolating = [r for r in rules if er.extrapolates(r.expr)]
    diffs, compared = er.compare_instants(prom.url, vm.url, exact, instants, REL)
    print(f"{len(exact)} rules without rate()/increase(): {compared} series compared, "
          f"{len(diffs)} disagree")  # fmt: skip
    print("\n".join(er.summary(diffs, 3)))
    # rate()/increase() differ by definition: Prometheus extrapolates the increase seen inside
    # the window to its edges; MetricsQL takes the increase from the last sample before the
    # window and does not extrapolate. What a threshold reads must still agree: Prometheus
    # never sees an increase that VictoriaMetrics does not (VictoriaMetrics alone counts one
    # between the last sample before the window and the first inside it), and a series only
    # one engine returns (a counter that stopped within the window) is 0 there.
    plain, n_plain = er.compare_instants(prom.url, vm.url, extrapolating, instants, REL)
    one_sided = [d for d in plain if d.prometheus is None or d.victoriametrics is None]
    both = [d for d in plain if d not in one_sided]
    zero_flips = [d for d in both if (d.prometheus == 0) != (d.victoriametrics == 0)]
    prom_only_increase = [d for d in zero_flips if d.victoriametrics == 0]
    nonzero_alone = [
        d for d in one_sided if (d.prometheus or 0.0) != 0 or (d.victoriametrics or 0.0) != 0
    ]
    print(f"{len(extrapolating)} rules with rate()/increase(): {n_plain} series compared, "
          f"{len(both)} differ in value (largest relative {er.max_relative(both):.3f}), "
          f"{len(one_sided)} on one engine only (non-zero: {len(nonzero_alone)}), "
          f"zero on one engine only: {len(zero_flips)}")  # fmt: skip
    print("\n".join(er.summary(one_sided, 2)))
    print("\n".join(er.summary(zero_flips + nonzero_alone, 3)))
    # End to end: every alert on vmalert's own recordings (replayed at minute-aligned instants;
    # promtool evaluates each group at its own offset in the minute, as Prometheus does). An
    # alert seen by one engine only must be seen by the other within one evaluation interval.
    alerts = {r.name: r for r in rules if r.alert}
    e2e, n_e2e = er.compare_instants(prom.url, replay.url, list(alerts.values()), instants, REL)
    flips = [d for d in e2e if d.prometheus is None or d.victoriametrics is None]
    shifts = []  # how far in time the other engine's matching answer is, per flip
    for d in flips:
        other = replay.url if d.victoriametrics is None else prom.url
        expr = alerts[d.rule].expr
        found = None
        for step in range(1, MAX_SHIFT + 1):
            near = [
                er.instant(other, expr, d.at + sign * step * EVAL_INTERVAL, other == replay.url)
                for sign in (-1, 1)
            ]
            if any(d.labels in answer for answer in near):
                found = step
                break
        shifts.append(found)
    print(f"alerts on vmalert's own recordings: {n_e2e} series, {len(flips)} on one engine only, "
          f"found on the other engine within k evaluation intervals: "
          f"{sorted(k or 0 for k in shifts)} (0: not within {MAX_SHIFT})")  # fmt: skip
    print("\n".join(er.summary(flips, 3)))
    print(f"took {time.monotonic() - started:.1f}s")
    assert not missing, missing
    assert not diffs and not nonzero_alone and not prom_only_increase
    assert len(flips) <= 0.01 * n_e2e
