"""Evaluate the mixin's rules on Prometheus and on VictoriaMetrics and diff the answers.

Recording rules are evaluated by each engine's own rule tooling over the history:
``promtool tsdb create-blocks-from rules`` (Prometheus' rule evaluation as range queries, written
as TSDB blocks) and ``vmalert -replay.*`` (VictoriaMetrics' rule engine, written back through
remote write). Rules that read other recorded series are evaluated in a later pass, once the
series they read are stored, as both tools evaluate one file's rules against the stored data.
Alert expressions (and every recording rule's expression) are then asked as instant queries,
the way Prometheus' rule manager and a live ``vmalert`` ask them.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import urllib.parse
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from gpu_health import stack

#: a live vmalert adds step=-datasource.queryStep (default 5m) to every instant query
VMALERT_QUERY_STEP = "5m"
Key = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Rule:
    group: str
    name: str  # record name or alert name
    expr: str
    alert: bool


def load_rules(*paths: Path) -> list[Rule]:
    rules = []
    for path in paths:
        for group in yaml.safe_load(path.read_text())["groups"]:
            for r in group["rules"]:
                alert = "alert" in r
                name = r["alert"] if alert else r["record"]
                rules.append(Rule(group["name"], name, r["expr"], alert))
    return rules


def layers(rules: list[Rule]) -> list[list[Rule]]:
    """Recording rules in evaluation passes: a rule comes after every recorded series it reads."""
    records = {r.name: r for r in rules if not r.alert}
    depth: dict[str, int] = {}

    def level(name: str, seen: frozenset[str] = frozenset()) -> int:
        if name not in depth:
            assert name not in seen, f"recording rules loop through {name}"
            deps = [d for d in records if d != name and d in records[name].expr]
            depth[name] = 1 + max((level(d, seen | {name}) for d in deps), default=-1)
        return depth[name]

    out: list[list[Rule]] = []
    for name in records:
        k = level(name)
        while len(out) <= k:
            out.append([])
        out[k].append(records[name])
    return out


def write_rule_file(rules: Iterable[Rule], path: Path) -> Path:
    groups: dict[str, list[dict[str, str]]] = {}
    for r in rules:
        groups.setdefault(r.group, []).append({"record": r.name, "expr": r.expr})
    doc = {"groups": [{"name": g, "interval": "1m", "rules": rs} for g, rs in groups.items()]}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


_RATE = re.compile(r"\brate\(([^()]*)\[(\d+)m\]\)")
_INCREASE = re.compile(r"\bincrease\(")


def extrapolates(expr: str) -> bool:
    """Whether ``expr`` uses rate()/increase(), which the two engines define differently."""
    return bool(_RATE.search(expr) or _INCREASE.search(expr))


def prometheus_compatible(expr: str) -> str:
    """``expr`` in MetricsQL with Prometheus' extrapolating increase: VictoriaMetrics'
    ``increase_prometheus``, and Prometheus' rate() as that increase over the window."""
    expr = _RATE.sub(lambda m: f"(increase_prometheus({m[1]}[{m[2]}m]) / {int(m[2]) * 60})", expr)
    return _INCREASE.sub("increase_prometheus(", expr)


def _rfc3339(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def promtool_record(url: str, rule_file: Path, start: float, end: float, out: Path) -> None:
    """Prometheus' evaluation of ``rule_file`` every minute in [start, end], as TSDB blocks."""
    promtool = stack.find_binary("promtool")
    argv = [promtool, "tsdb", "create-blocks-from", "rules", f"--url={url}", "--quiet"]
    argv += [f"--start={int(start)}", f"--end={int(end)}", "--eval-interval=60s"]
    argv += [f"--output-dir={out}", str(rule_file)]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, f"promtool rules backfill failed: {result.stderr}"


def vmalert_replay(vm_url: str, rule_file: Path, start: float, end: float, log: Path) -> None:
    """VictoriaMetrics' own rule engine (``vmalert``) replaying ``rule_file`` over [start, end]."""
    vmalert = shutil.which("vmalert")
    assert vmalert is not None
    argv = [vmalert, f"-rule={rule_file}", f"-datasource.url={vm_url}"]
    argv += [f"-remoteWrite.url={vm_url}", "-remoteWrite.flushInterval=200ms"]
    argv += [f"-replay.timeFrom={_rfc3339(start)}", f"-replay.timeTo={_rfc3339(end)}"]
    argv += ["-replay.rulesDelay=0s", "-replay.disableProgressBar", "-httpListenAddr=127.0.0.1:0"]
    with log.open("ab") as handle:
        result = subprocess.run(argv, stdout=handle, stderr=subprocess.STDOUT, timeout=120)
    assert result.returncode == 0, f"vmalert replay failed, see {log}"
    stack.http_get(f"{vm_url}/internal/force_flush", timeout=30)


def _key(metric: dict[str, str], keep_name: bool = True) -> Key:
    return tuple(sorted((k, v) for k, v in metric.items() if keep_name or k != "__name__"))


def raw_samples(url: str, name: str, start: float, end: float) -> dict[tuple[Key, float], float]:
    """Every stored sample of ``name`` in [start, end] as {(labels, t): value}."""
    window = int(end - start) + 1
    out = {}
    for series in stack.query(url, f'{{__name__="{name}"}}[{window}s]', at=end):
        key = _key(series["metric"])
        for t, v in series["values"]:
            out[(key, round(float(t), 3))] = float(v)
    return out


def as_openmetrics(samples: dict[tuple[Key, float], float]) -> str:
    """Samples from :func:`raw_samples` as import text (seconds timestamps)."""
    lines = []
    for (key, t), v in sorted(samples.items()):
        labels = dict(key)
        name = labels.pop("__name__")
        text = ",".join(f'{k}="{val}"' for k, val in sorted(labels.items()))
        lines.append(f"{name}{{{text}}} {v!r} {t:.3f}")
    return "\n".join(lines) + "\n"


def instant(url: str, expr: str, at: float, vm: bool) -> dict[Key, float]:
    """The instant vector of ``expr`` at ``at``; VictoriaMetrics gets vmalert's ``step``."""
    params = {"query": expr, "time": f"{at:.3f}"}
    if vm:
        params["step"] = VMALERT_QUERY_STEP
    body = stack.http_get(f"{url}/api/v1/query?{urllib.parse.urlencode(params)}", timeout=60)
    payload: dict[str, Any] = json.loads(body)
    assert payload.get("status") == "success", (expr, payload)
    result = payload["data"]["result"]
    if payload["data"]["resultType"] == "scalar":
        return {(): float(result[1])}
    # A rule's output never keeps the input's name (records rename, alerts drop it), while
    # MetricsQL keeps it through *_over_time(): compare without it.
    return {_key(s["metric"], keep_name=False): float(s["value"][1]) for s in result}


def close(a: float, b: float, rel: float, abs_: float = 1e-9) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return math.isclose(a, b, rel_tol=rel, abs_tol=abs_)


@dataclass
class Diff:
    rule: str
    labels: Key
    at: float
    prometheus: float | None
    victoriametrics: float | None

    def __str__(self) -> str:
        labels = ",".join(f'{k}="{v}"' for k, v in self.labels)
        return (
            f"{self.rule}{{{labels}}} @{self.at:.0f}: "
            f"prometheus={self.prometheus} victoriametrics={self.victoriametrics}"
        )


def diff(
    rule: str, at: float, prom: dict[Key, float], vm: dict[Key, float], rel: float
) -> list[Diff]:
    out = []
    for key in sorted(set(prom) | set(vm)):
        p, v = prom.get(key), vm.get(key)
        if p is None or v is None or not close(p, v, rel):
            out.append(Diff(rule, key, at, p, v))
    return out


def compare_instants(
    prom_url: str,
    vm_url: str,
    rules: list[Rule],
    instants: list[float],
    rel: float,
    compatible: bool = False,
) -> tuple[list[Diff], int]:
    """Each rule's expression at each instant on both engines: (disagreements, series compared).

    ``compatible`` asks VictoriaMetrics the :func:`prometheus_compatible` form."""
    jobs = [(r, t) for r in rules for t in instants]

    def one(job: tuple[Rule, float]) -> tuple[list[Diff], int]:
        r, t = job
        p = instant(prom_url, r.expr, t, vm=False)
        v = instant(vm_url, prometheus_compatible(r.expr) if compatible else r.expr, t, vm=True)
        return diff(r.name, t, p, v, rel), len(set(p) | set(v))

    diffs: list[Diff] = []
    compared = 0
    with ThreadPoolExecutor(max_workers=4) as pool:
        for d, n in pool.map(one, jobs):
            diffs += d
            compared += n
    return diffs, compared


def summary(diffs: list[Diff], examples: int = 2) -> list[str]:
    """Per rule: how many disagreements, and the first few in full."""
    by_rule: dict[str, list[Diff]] = {}
    for d in diffs:
        by_rule.setdefault(d.rule, []).append(d)
    lines = []
    for rule, ds in by_rule.items():
        lines.append(f"{rule}: {len(ds)} disagreements")
        lines += [f"    {d}" for d in ds[:examples]]
    return lines


def max_relative(diffs: list[Diff]) -> float:
    """The largest |P - V| / max(|P|, |V|) among disagreements present on both engines."""
    worst = 0.0
    for d in diffs:
        if d.prometheus is not None and d.victoriametrics is not None:
            scale = max(abs(d.prometheus), abs(d.victoriametrics))
            worst = max(worst, abs(d.prometheus - d.victoriametrics) / scale)
    return worst
