"""What the mixin's rules cost Prometheus per evaluation: two rule sets, A/B in one Prometheus.

At 10,000 GPUs an outside trial measured the per-GPU rule group at 27-63 s per 30-second
evaluation on two cores (docs/scaling.md): evaluations were missed, so alerts came late. This
bench measures where the time goes, rule by rule, and what a change of the rules buys.

It writes ``--gpus`` simulated GPUs' history of ``--hours`` (``gpu-health backfill``, the
exporter's own series, enough to fill the rules' 6-hour windows) ending now, then serves it with
Debian's Prometheus scraping a live simulated exporter that continues the same series (the
same seed and address), so the rules read the history's blocks and live samples as a
production Prometheus does. Scrape and evaluation every ``--interval``. It loads rule set A (the
generated ``rules/`` at the git revision ``--base``), then B (``rules/`` as it is in the work
tree), switching by a configuration reload, ``--rounds`` times each, and after every switch
reads the evaluation time of every group and rule from Prometheus' ``/api/v1/rules`` over
``--evaluations`` evaluations. It prints the median per group and per rule, A and B and B/A,
the costliest first. Rules cost in proportion to the series they read, so the time per 1,000
GPUs is printed too; a different fleet size is a different run.

    .venv/bin/python bench/bench_rule_cost.py [--gpus 256] [--hours 7] [--interval 30s] \
        [--base HEAD] [--rounds 3] [--evaluations 2] [--history DIR] [--json out.json]

``--history DIR`` keeps the backfilled history there and reuses it on the next run with the
same ``--gpus`` (a copy is served: Prometheus adds to the data it serves); the history must end
within the last hour or its newest samples fall out of the rules' windows. The bench needs
about 3 minutes to write 256 GPUs x 7 hours at 30 s, then 100 s per round and rule set.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path

from gpu_health import stack
from gpu_health.sim.timeparse import parse_duration

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
#: Every file the mixin generates for Prometheus' rule_files.
RULE_FILES = ("gpu-health-rules.yaml", "gpu-health-alerts.yaml", "gpu-health-scorer-history.yaml")
GROUP = "(group)"

Times = dict[tuple[str, str], list[float]]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gpus", type=int, default=256, help="GPUs, 8 per node (default 256)")
    parser.add_argument("--hours", type=float, default=7.0, help="hours of history (default 7)")
    parser.add_argument("--interval", default="30s", help="scrape and evaluation interval")
    parser.add_argument("--base", default="HEAD", help="git revision of rule set A (default HEAD)")
    parser.add_argument("--rounds", type=int, default=3, help="switches to each set (default 3)")
    parser.add_argument("--evaluations", type=int, default=2, help="evaluations read per switch")
    parser.add_argument("--history", type=Path, help="keep and reuse the history here")
    parser.add_argument("--json", type=Path, help="also write the medians here")
    args = parser.parse_args(argv)
    if not 8 <= args.gpus <= 100_000 or args.rounds < 1 or args.evaluations < 1:
        parser.error("--gpus 8..100000, --rounds and --evaluations at least 1")
    if not 0.25 <= args.hours <= 48:
        parser.error("--hours: 0.25 to 48 (more than 6 fills the rules' 6-hour windows)")
    return args


def rule_set(directory: Path, revision: str | None) -> Path:
    """The generated rule files at ``revision`` (None: the work tree) in ``directory``."""
    directory.mkdir(parents=True)
    for name in RULE_FILES:
        source = REPO / "rules" / name
        if revision is None:
            shutil.copy(source, directory / name)
            continue
        shown = subprocess.run(
            ["git", "-C", str(REPO), "show", f"{revision}:rules/{name}"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if shown.returncode != 0:
            raise SystemExit(f"error: --base {revision}: no rules/{name} there")
        (directory / name).write_text(shown.stdout)
    return directory


def history(args: argparse.Namespace, work: Path, port: int) -> Path:
    """A backfill of ``--gpus`` GPUs ending now, under the live exporter's address."""
    keep = args.history
    marker = f"{args.gpus} gpus, {args.hours} h, {args.interval}\n"
    if keep is not None and (keep / "bench.txt").is_file():
        made = (keep / "bench.txt").stat().st_mtime
        if (keep / "bench.txt").read_text() == marker and time.time() - made < 3600:
            print(f"reusing the history in {keep}", file=sys.stderr)
            return Path(keep)
    out = keep or work / "history"
    if out.exists():
        shutil.rmtree(out)
    print(f"writing {args.gpus} GPUs x {args.hours} h of history ...", file=sys.stderr)
    subprocess.run(
        [str(BIN / "gpu-health"), "backfill", "--gpus", str(args.gpus),
         "--days", str(args.hours / 24), "--resolution", args.interval, "--out", str(out),
         "--instance", f"127.0.0.1:{port}"],
        check=True,
    )  # fmt: skip
    (out / "bench.txt").write_text(marker)
    return out


@contextmanager
def served(args: argparse.Namespace, work: Path, rules: Path) -> Iterator[stack.Server]:
    """Prometheus over a copy of the history, scraping the live exporter, rules from ``rules``."""
    port = 19840 if args.history else stack.free_port()  # a kept history names its port
    data = history(args, work, port)
    with ExitStack() as cleanup:
        served_data = work / "served"
        shutil.copytree(data, served_data, ignore=shutil.ignore_patterns("openmetrics"))
        log = (work / "exporter.log").open("wb")
        cleanup.callback(log.close)
        exporter = subprocess.Popen(
            [str(BIN / "gpu-health-exporter"), "--backend", "sim", "--sim-gpus", str(args.gpus),
             "--sim-seed", "0", "--web.listen-address", f"127.0.0.1:{port}"],
            stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,  # its own group: stop_process signals the group
        )  # fmt: skip
        cleanup.callback(stack.stop_process, exporter)
        config = stack.write_prometheus_config(
            work / "prometheus.yml",
            scrape_targets={"gpu-health-exporter": [f"127.0.0.1:{port}"]},
            rule_files=[rules / "*.yaml"],
            scrape_interval=args.interval,
            evaluation_interval=args.interval,
        )
        server = cleanup.enter_context(stack.prometheus(work, config, data_dir=served_data))
        stack.wait_for_query(server.url, 'up{job="gpu-health-exporter"} == 1', 180)
        yield server


def use(rules: Path, chosen: Path, url: str) -> None:
    """Make ``chosen`` the rule set Prometheus evaluates (files replaced, then a reload)."""
    for old in rules.glob("*.yaml"):
        old.unlink()
    for name in RULE_FILES:
        shutil.copy(chosen / name, rules / name)
    request = urllib.request.Request(url + "/-/reload", method="POST")
    with urllib.request.urlopen(request, timeout=60) as answer:
        answer.read()


def evaluations(url: str, interval: float, wanted: int) -> Times:
    """Evaluation times (seconds) of the groups evaluated every ``interval`` and of their rules,
    over ``wanted`` evaluations after the next one (the first after a reload is skipped)."""
    times: Times = {}
    seen: set[tuple[str, float]] = set()
    time.sleep(interval + min(5.0, interval))
    deadline = time.monotonic() + (wanted + 3) * interval * 2
    while time.monotonic() < deadline:
        with urllib.request.urlopen(url + "/api/v1/rules", timeout=60) as answer:
            groups = json.load(answer)["data"]["groups"]
        for group in groups:
            if group["interval"] != interval or not group["lastEvaluation"]:
                continue
            key = (group["name"], group["lastEvaluation"])
            if key in seen:
                continue
            seen.add(key)
            times.setdefault((group["name"], GROUP), []).append(group["evaluationTime"])
            for rule in group["rules"]:
                times.setdefault((group["name"], rule["name"]), []).append(rule["evaluationTime"])
        counts = {name for name, _ in seen}
        if counts and all(sum(1 for s in seen if s[0] == n) >= wanted for n in counts):
            return times
        time.sleep(interval / 2)
    return times


def medians(times: Times) -> dict[tuple[str, str], float]:
    return {key: statistics.median(values) for key, values in times.items()}


def table(a: Mapping[tuple[str, str], float], b: Mapping[tuple[str, str], float], gpus: int) -> str:
    rows = [
        "| group | rule | A ms | B ms | B/A | B ms per 1,000 GPUs |",
        "|---|---|---:|---:|---:|---:|",
    ]
    keys = sorted(set(a) | set(b), key=lambda k: (-max(a.get(k, 0.0), b.get(k, 0.0)), k))
    for key in keys:
        ta, tb = a.get(key), b.get(key)
        if max(ta or 0.0, tb or 0.0) < 0.002 and key[1] != GROUP:
            continue  # rules under 2 ms in both sets: noise at this size
        show = [f"{t * 1000:.1f}" if t is not None else "—" for t in (ta, tb)]
        ratio = f"{tb / ta:.2f}×" if ta and tb is not None else "—"
        per = f"{tb * 1000 * 1000 / gpus:.0f}" if tb is not None else "—"
        rows.append(f"| {key[0]} | {key[1]} | {show[0]} | {show[1]} | {ratio} | {per} |")
    return "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    interval = parse_duration(args.interval, "--interval")
    with tempfile.TemporaryDirectory(prefix="bench-rule-cost-") as tmp:
        work = Path(tmp)
        sets = {"A": rule_set(work / "A", args.base), "B": rule_set(work / "B", None)}
        rules = work / "rules"
        rules.mkdir()
        use_files = sets["A"]
        for name in RULE_FILES:
            shutil.copy(use_files / name, rules / name)
        times: dict[str, Times] = {"A": {}, "B": {}}
        with served(args, work, rules) as server:
            for n in range(args.rounds):
                for arm in ("A", "B"):
                    use(rules, sets[arm], server.url)
                    got = evaluations(server.url, interval, args.evaluations)
                    for key, values in got.items():
                        times[arm].setdefault(key, []).extend(values)
                    group_ms = (
                        statistics.median(
                            v
                            for (g, r), vs in got.items()
                            if r == GROUP and "gpu.rules" in g
                            for v in vs
                        )
                        * 1000
                        if got
                        else float("nan")
                    )
                    print(f"round {n + 1} {arm}: gpu group {group_ms:.1f} ms", file=sys.stderr)
    a, b = medians(times["A"]), medians(times["B"])
    print(
        f"{args.gpus} GPUs, {args.hours:g} h of history, every {args.interval}; "
        f"A = rules/ at {args.base}, B = the work tree's; medians of "
        f"{args.rounds} x {args.evaluations} evaluations each"
    )
    print(table(a, b, args.gpus))
    if args.json:
        per_arm = {
            arm: {f"{g} / {r}": t for (g, r), t in m.items()} for arm, m in (("A", a), ("B", b))
        }
        args.json.write_text(json.dumps(per_arm, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
