"""Evaluate the mixin's rules on Prometheus and on VictoriaMetrics and diff the answers.

Recording rules are recorded by each engine: Prometheus by range queries at each minute (its
rule evaluation repeated at each step), VictoriaMetrics by the real ``vmalert -replay.*``
(written back through remote write) or by instant queries asked as a live vmalert asks them.
Rules that read other recorded series are recorded in a later pass, once the series they read
are stored. Expressions are compared as instant queries; a :class:`Diff` names the rule, the
labels, the time and both values.
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

#: relative tolerance for "the same number": float summation order differs between engines
REL = 1e-9
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


_EXTRAPOLATING = re.compile(r"\b(rate|increase)\(")


def extrapolates(expr: str) -> bool:
    """Whether ``expr`` uses rate()/increase(), which the two engines define differently."""
    return bool(_EXTRAPOLATING.search(expr))


def read_by_alerts(rules: list[Rule]) -> set[str]:
    """Recording rules the alerts read, directly or through other recording rules."""
    records = {r.name: r.expr for r in rules if not r.alert}
    out = {n for n in records if any(n in r.expr for r in rules if r.alert)}
    grew = True
    while grew:
        more = {d for d in records if d not in out and any(d in records[n] for n in out)}
        out |= more
        grew = bool(more)
    return out


def extrapolating_rules(rules: list[Rule]) -> set[str]:
    """Recording rules that use rate()/increase() or read a recording rule that does."""
    records = {r.name: r.expr for r in rules if not r.alert}
    out = {name for name, expr in records.items() if extrapolates(expr)}
    grew = True
    while grew:
        more = {n for n, e in records.items() if n not in out and any(d in e for d in out)}
        out |= more
        grew = bool(more)
    return out


def _rfc3339(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def prometheus_record(url: str, layer: list[Rule], start: float, end: float) -> str:
    """Prometheus' evaluation of ``layer`` every minute in [start, end] as OpenMetrics text.

    A range query is Prometheus' rule evaluation repeated at each step (promtool's rule
    backfill runs the same queries, but at an offset in the minute that differs per group);
    at the minute-aligned steps vmalert's replay uses, the two recordings line up sample for
    sample.
    """
    out = []
    for r in layer:
        out.append(f"# TYPE {r.name} gauge")
        for series in stack.query_range(url, r.expr, start, end, 60):
            labels = {k: v for k, v in series["metric"].items() if k != "__name__"}
            text = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
            out += [f"{r.name}{{{text}}} {v} {float(t):.0f}" for t, v in series["values"]]
    return "\n".join(out) + "\n# EOF\n"


def vm_record(url: str, layer: list[Rule], times: list[float]) -> str:
    """VictoriaMetrics' answers to ``layer`` at ``times``, asked as a live vmalert asks
    (instant queries with its ``step``), as OpenMetrics text for import."""
    jobs = [(r, t) for r in layer for t in times]
    with ThreadPoolExecutor(max_workers=4) as pool:
        answers = list(pool.map(lambda job: instant(url, job[0].expr, job[1], vm=True), jobs))
    out = []
    for (r, t), answer in zip(jobs, answers, strict=True):
        for key, v in answer.items():
            text = ",".join(f'{k}="{val}"' for k, val in key)
            out.append(f"{r.name}{{{text}}} {v!r} {t:.0f}")
    return "\n".join(out) + "\n"


def vmalert_replay(
    vm_url: str, rule_file: Path, start: float, end: float, log: Path, step: str = "5m"
) -> None:
    """VictoriaMetrics' own rule engine (``vmalert``) replaying ``rule_file`` over [start, end],
    its range queries stepped by ``step`` (``-datasource.queryStep``)."""
    vmalert = shutil.which("vmalert")
    assert vmalert is not None
    argv = [vmalert, f"-rule={rule_file}", f"-datasource.url={vm_url}"]
    argv += [f"-datasource.queryStep={step}"]
    argv += [f"-remoteWrite.url={vm_url}", "-remoteWrite.flushInterval=200ms"]
    # Default flags otherwise, as deployed: the replay steps its range queries by
    # -datasource.queryStep (5m), which is also the lookback a live vmalert asks for, so the
    # recordings are 5 minutes apart.
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
) -> tuple[list[Diff], int]:
    """Each rule's expression at each instant on both engines: (disagreements, series compared)."""
    jobs = [(r, t) for r in rules for t in instants]

    def one(job: tuple[Rule, float]) -> tuple[list[Diff], int]:
        r, t = job
        p = instant(prom_url, r.expr, t, vm=False)
        v = instant(vm_url, r.expr, t, vm=True)
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


def compare_recordings(
    prom_url: str, vm_url: str, rules: list[Rule], start: float, end: float, derived: set[str]
) -> tuple[list[Diff], list[Diff], int]:
    """Each engine's recordings, sample by sample at the times VictoriaMetrics recorded:
    (disagreements of rules in ``derived``, of the others, samples compared)."""
    prom = {r.name: raw_samples(prom_url, r.name, start, end) for r in rules}
    vm = {r.name: raw_samples(vm_url, r.name, start, end) for r in rules}
    times = {t for samples in vm.values() for _, t in samples}
    exact: list[Diff] = []
    other: list[Diff] = []
    n = 0
    for r in rules:
        p = {k: v for k, v in prom[r.name].items() if k[1] in times}
        v = vm[r.name]
        assert p, f"{r.name}: Prometheus recorded nothing"
        n += len(set(p) | set(v))
        for key in sorted(set(p) | set(v)):
            a, b = p.get(key), v.get(key)
            if a is None or b is None or not close(a, b, REL):
                labels = tuple(kv for kv in key[0] if kv[0] != "__name__")
                (other if r.name in derived else exact).append(Diff(r.name, labels, key[1], a, b))
    return other, exact, n


def missing_series(
    prom_url: str,
    vm_url: str,
    rules: list[Rule],
    start: float,
    end: float,
    may_be_empty: frozenset[str] = frozenset(),
) -> list[str]:
    """Rules whose recorded series (label sets over the whole range) differ between engines,
    or that recorded nothing (unless named in ``may_be_empty``: nothing on either engine)."""
    out = []
    for r in rules:
        p = {key for key, _ in raw_samples(prom_url, r.name, start, end)}
        v = {key for key, _ in raw_samples(vm_url, r.name, start, end)}
        if p != v or (not p and r.name not in may_be_empty):
            out.append(
                f"{r.name}: only Prometheus {sorted(p - v)[:2]}, only vmalert {sorted(v - p)[:2]}"
            )
    return out


def max_relative(diffs: list[Diff]) -> float:
    """The largest |P - V| / max(|P|, |V|) among disagreements present on both engines."""
    worst = 0.0
    for d in diffs:
        if d.prometheus is not None and d.victoriametrics is not None:
            scale = max(abs(d.prometheus), abs(d.victoriametrics))
            worst = max(worst, abs(d.prometheus - d.victoriametrics) / scale)
    return worst


def nearest_shift(prom_url: str, vm_url: str, expr: str, d: Diff, most: int) -> int | None:
    """In how many evaluation intervals (1 minute) the engine that lacked ``d``'s series at
    ``d.at`` has it, looking up to ``most`` minutes before and after; None if not."""
    url, vm = (vm_url, True) if d.victoriametrics is None else (prom_url, False)
    for k in range(1, most + 1):
        for sign in (-1, 1):
            if d.labels in instant(url, expr, d.at + sign * k * 60.0, vm):
                return k
    return None
