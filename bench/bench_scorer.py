"""Scoring cost end to end: 500, 1,000 and 2,000 GPUs with 14 days of history in a real Prometheus.

For each fleet size the bench writes dcgm-exporter-schema history (the series the features read,
with realistic shapes: noisy temperatures and power, monotone counters, a last-XID gauge) as
OpenMetrics, backfills it with promtool, serves it with Debian's Prometheus, and then measures:

* ``prometheus_s`` — the baseline: the same feature queries sent straight to Prometheus with the
  same concurrency and nothing else (what any PromQL-based scorer must pay);
* ``scorer_s`` — one full ``Scorer.run_once()`` (inventory, feature queries, JSON decoding,
  the shipped default model with its risk factors, isolation forest, economics), median of
  the warm runs;
* ``model_s`` — the model part alone (score_frame + economics) on the same frame;
* ``rss_mb`` — peak RSS of ``gpu-health-scorer --once`` run as its own process.

The ratio ``scorer_s / prometheus_s`` is the overhead the scorer adds over Prometheus itself.
History resolution defaults to 5 minutes (``--step 60`` gives the issue's 1 minute; at 2,000 GPUs
that is ~400 M samples, which takes longer to backfill than this 2-core machine should spend).

    .venv/bin/python bench/bench_scorer.py --sizes 500 1000 2000 --step 300
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from gpu_health import stack
from gpu_health.scorer.econ.bridge import make_econ_hook
from gpu_health.scorer.feature_frame import FeatureFrame
from gpu_health.scorer.feature_plan import plan_queries
from gpu_health.scorer.feature_schema import SchemaName
from gpu_health.scorer.features import FEATURES, compute_features, schema_by_name
from gpu_health.scorer.history_source import HistoryMode
from gpu_health.scorer.model import load_model
from gpu_health.scorer.promclient import PromClient, PromConfig
from gpu_health.scorer.service import Scorer, score_frame
from gpu_health.sim.dcgm_renames import as_sent_by_49

if TYPE_CHECKING:  # imported where used: the history writers need no HTTP client
    import requests

DAY = 86400
MODELS = ("NVIDIA H100 80GB HBM3", "NVIDIA A100-SXM4-80GB", "NVIDIA H200")


def write_history(
    path: Path,
    gpus: int,
    days: float,
    step: int,
    end: int,
    seed: int = 0,
    aggregate_ecc: bool = False,
    renamed: bool = False,
) -> int:
    """dcgm-schema OpenMetrics for ``gpus`` GPUs; returns the number of samples written.

    ``aggregate_ecc``: the aggregate ECC counters too (the project's dcgm-exporter counters
    file sends both), with the volatile ones' readings (no reset in this history).
    ``renamed``: the same readings as dcgm-exporter 4.9 sends them
    (:func:`~gpu_health.sim.dcgm_renames.as_sent_by_49`: every field DCGM 4.6 renamed under its
    new name, the SM clock in Hz, utilization as a 0-1 ratio; the same random draws, so the two
    histories differ in names and units only)."""
    rng = np.random.default_rng(seed)
    times = np.arange(end - int(days * DAY), end + 1, step)
    n = len(times)
    stamps = [str(int(t)) for t in times]
    samples = 0
    with path.open("w") as out:

        def family(name: str, values_for) -> None:  # type: ignore[no-untyped-def]
            nonlocal samples
            name, factor = as_sent_by_49(name) if renamed else (name, 1.0)
            out.write(f"# TYPE {name} gauge\n")
            for g in range(gpus):
                labels = (
                    f'{name}{{Hostname="node{g // 8:04d}",UUID="GPU-{g:08d}-bench",'
                    f'gpu="{g % 8}",modelName="{MODELS[g % len(MODELS)]}"}} '
                )
                values = values_for(g) / factor
                out.write(
                    "".join(f"{labels}{v:.6g} {s}\n" for v, s in zip(values, stamps, strict=False))
                )
                samples += n

        load = lambda: np.clip(rng.normal(0.7, 0.2, n), 0, 1)  # noqa: E731
        counter = lambda rate: np.cumsum(rng.poisson(rate, n)).astype(float)  # noqa: E731
        family("DCGM_FI_DEV_GPU_TEMP", lambda g: 45 + 25 * load() + g % 5)
        family("DCGM_FI_DEV_MEMORY_TEMP", lambda g: 40 + 25 * load() + g % 5)
        family("DCGM_FI_DEV_POWER_USAGE", lambda g: 100 + 500 * load())
        family("DCGM_FI_DEV_GPU_UTIL", lambda g: 100 * load())
        family("DCGM_FI_DEV_SM_CLOCK", lambda g: 1980 - 300 * load())
        corrected: dict[int, np.ndarray] = {}

        def sbe(g: int) -> np.ndarray:
            found = counter(0.02 if g % 20 == 0 else 0.0)
            if aggregate_ecc:
                corrected[g] = found
            return found

        family("DCGM_FI_DEV_ECC_SBE_VOL_TOTAL", sbe)
        family("DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", lambda g: np.zeros(n))
        if aggregate_ecc:
            family("DCGM_FI_DEV_ECC_SBE_AGG_TOTAL", corrected.__getitem__)
            family("DCGM_FI_DEV_ECC_DBE_AGG_TOTAL", lambda g: np.zeros(n))
        family("DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS", lambda g: np.zeros(n))
        family("DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS", lambda g: np.zeros(n))
        family("DCGM_FI_DEV_ROW_REMAP_FAILURE", lambda g: np.zeros(n))
        family("DCGM_FI_DEV_PCIE_REPLAY_COUNTER", lambda g: counter(0.001))
        family(
            "DCGM_FI_DEV_XID_ERRORS",
            lambda g: np.where(np.arange(n) > n * 0.9, 13.0 if g % 50 == 0 else 0.0, 0.0),
        )
        family("DCGM_FI_DEV_THERMAL_VIOLATION", lambda g: counter(0.01) * 1e9)
        out.write("# EOF\n")
    return samples


def prometheus_only(url: str, workers: int) -> float:
    """The baseline: the scorer's queries sent straight to Prometheus (no model, no parsing)."""
    import requests

    queries = plan_queries(schema_by_name("dcgm"), FEATURES).queries
    session = requests.Session()

    def one(q: str) -> None:
        r = session.post(f"{url}/api/v1/query", data={"query": q}, timeout=120, verify=True)
        r.raise_for_status()

    began = time.monotonic()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(one, queries))
    return time.monotonic() - began


def query_stats(session: requests.Session, url: str, promql: str, at: float) -> tuple[float, int]:
    """Prometheus' own evaluation time (s, ``evalTotalTime``) and the samples it read
    (``totalQueryableSamples``) for ``promql`` at ``at``, from its ``stats=all``."""
    r = session.post(
        f"{url}/api/v1/query", data={"query": promql, "time": at, "stats": "all"}, timeout=600
    )
    r.raise_for_status()
    stats = r.json()["data"]["stats"]
    return float(stats["timings"]["evalTotalTime"]), int(stats["samples"]["totalQueryableSamples"])


def samples_per_query(url: str, queries: tuple[str, ...], at: float) -> list[int]:
    """Per query, the samples Prometheus read to answer it at ``at`` (:func:`query_stats`),
    each query sent once."""
    import requests

    with requests.Session() as session:
        return [query_stats(session, url, q, at)[1] for q in queries]


def peak_rss_mb(url: str) -> float:
    """Peak RSS of ``gpu-health-scorer --once`` as a separate process."""
    code = (
        "import resource, subprocess, sys;"
        "p = subprocess.run([sys.executable, '-m', 'gpu_health.scorer.cli', '--once',"
        f" '--schema', 'dcgm', '--prometheus.url', '{url}'], capture_output=True);"
        "assert p.returncode == 0, p.stderr[-500:];"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(out.stdout.strip()) / 1024


def history_options(parser: argparse.ArgumentParser, gpus: int = 2000) -> None:
    """The options every bench on one served history shares."""
    parser.add_argument("--gpus", type=int, default=gpus)
    parser.add_argument("--days", type=float, default=14)
    parser.add_argument("--step", type=int, default=300, help="history resolution in seconds")


def ab_options(parser: argparse.ArgumentParser) -> None:
    """The options of an A/B bench of whole scoring runs on one served history."""
    history_options(parser)
    parser.add_argument("--pairs", type=int, default=5, help="interleaved rounds of the arms")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--json", type=Path)


def scoring_run_s(
    client: PromClient,
    workers: int,
    at: float | None = None,
    history: HistoryMode = "raw",
    schema: SchemaName = "dcgm",
) -> float:
    """One whole scoring run of the shipped default model with the economics (seconds), as of
    ``at`` (None: now), reading ``history`` (:mod:`gpu_health.scorer.history_source`) in
    ``schema``."""
    scorer = Scorer(
        client, load_model(None), schema, make_econ_hook(), workers=workers, at=at, history=history
    )
    assert scorer.run_once(), scorer.last_error
    assert scorer.snapshot is not None
    return scorer.snapshot.duration_s


def interleaved_runs(
    client: PromClient,
    arms: Mapping[str, Callable[[], AbstractContextManager[object]]],
    pairs: int,
    workers: int,
    at: float | None = None,
    history: HistoryMode = "raw",
    schema: SchemaName = "dcgm",
) -> dict[str, list[float]]:
    """Whole scoring runs (seconds) of each arm, the arm's context entered around each: one
    cold run per arm first (chunks into the page cache), then ``pairs`` rounds taking the arms
    in turn, so the machine's drift hits every arm alike (``at``, ``history``, ``schema``: as
    :func:`scoring_run_s`)."""
    for arm in arms.values():
        with arm():
            scoring_run_s(client, workers, at, history, schema)
    runs: dict[str, list[float]] = {name: [] for name in arms}
    for k in range(pairs):
        for name, arm in arms.items():
            with arm():
                runs[name].append(scoring_run_s(client, workers, at, history, schema))
        print(f"round {k + 1}/{pairs}", file=sys.stderr, flush=True)
    return runs


def frames_and_runs(
    args: argparse.Namespace,
    arms: Mapping[str, Callable[[], AbstractContextManager[object]]],
    prefix: str,
    before: Callable[[PromClient, int], None] | None = None,
) -> tuple[list[FeatureFrame], dict[str, list[float]]]:
    """An A/B of feature readers on :func:`served_history`'s fleet: each arm's feature frame at
    the history's end (one fixed time: two frames "now" would read windows apart), then
    :func:`interleaved_runs` of whole scoring runs; ``before`` is called first with the client
    and the history's end (a bench's own measurement on the same Prometheus)."""
    aggregate_ecc = getattr(args, "aggregate_ecc", False)
    served = served_history(args.gpus, args.days, args.step, prefix, aggregate_ecc=aggregate_ecc)
    with served as (client, end):
        if before is not None:
            before(client, end)
        frames = []
        for arm in arms.values():
            with arm():
                frames.append(compute_features(client, "dcgm", end))
        return frames, interleaved_runs(client, arms, args.pairs, args.workers)


def ab_summary(
    args: argparse.Namespace, runs: Mapping[str, list[float]], **extra: object
) -> tuple[dict[str, object], dict[str, float]]:
    """The JSON result of an A/B bench (``extra`` after the history's size, then each arm's
    runs and median) and the medians by arm."""
    medians = {arm: statistics.median(v) for arm, v in runs.items()}
    result = {
        "gpus": args.gpus,
        "days": args.days,
        "step_s": args.step,
        **extra,
        "runs_s": {k: [round(x, 2) for x in v] for k, v in runs.items()},
        "median_s": {k: round(v, 2) for k, v in medians.items()},
    }
    return result, medians


def report_ab(
    args: argparse.Namespace,
    runs: Mapping[str, list[float]],
    ratio_key: str,
    headline: str,
    ok: bool,
    notes: Mapping[str, str] | None = None,
    **extra: object,
) -> int:
    """Print an A/B bench's medians (each arm's ``notes`` after it) and the ratio of the
    second arm to the first (under ``headline``), write its JSON (:func:`ab_summary` plus the
    ratio as ``ratio_key``) to ``--json``; the exit status: 0 when ``ok`` (the arms agreed on
    the feature values)."""
    result, medians = ab_summary(args, runs, **extra)
    first, second = list(medians)
    ratio = medians[second] / medians[first]
    result[ratio_key] = round(ratio, 3)
    width = max(map(len, medians)) + 2
    print(f"whole scoring run, median of {args.pairs} ({headline}):")
    for arm, median in medians.items():
        note = f"  {notes[arm]}" if notes and arm in notes else ""
        print(f"  {arm:{width}s} {median:6.2f} s{note}")
    print(f"  {'second / first':{width}s} {ratio:6.3f}x")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0 if ok else 1


def _prometheus_metric(url: str, name: str) -> float:
    """One unlabelled metric of Prometheus' own (``/metrics``)."""
    import requests

    for line in requests.get(f"{url}/metrics", timeout=30).text.splitlines():
        if line.startswith(f"{name} "):
            return float(line.split()[1])
    raise RuntimeError(f"{url}/metrics has no {name}")


def tsdb_blocks(data_dir: Path) -> int:
    """The blocks in a Prometheus data dir (the directories named by a 26-character ULID)."""
    return sum(1 for p in data_dir.iterdir() if p.is_dir() and len(p.name) == 26)


def wait_compacted(url: str, limit_s: float = 3600.0) -> int:
    """Wait until the Prometheus at ``url`` has merged the blocks it started with; the blocks
    it serves then.

    ``gpu-health backfill`` writes 2-hour blocks, as promtool does by default; a Prometheus
    started on them merges them within its first compaction cycle (a minute after start),
    and every operator's Prometheus serves a history of weeks from a few large blocks. Queries
    over 169 two-hour blocks took 2.8x as long as over the 8 blocks Prometheus made of them
    (200 GPUs x 14 d: 8.64-9.13 s against 2.86-3.30 s a scoring run), so a bench that timed
    the first minutes measured the layout, not the scorer. Prometheus counts a cycle as
    triggered when it starts and runs the next only after the last one returned: a second
    trigger means the first cycle has finished."""
    began = time.monotonic()
    while _prometheus_metric(url, "prometheus_tsdb_compactions_triggered_total") < 2:
        if time.monotonic() - began > limit_s:
            raise RuntimeError(f"{url} did not finish compacting within {limit_s:.0f} s")
        time.sleep(5)
    return int(_prometheus_metric(url, "prometheus_tsdb_blocks_loaded"))


@contextmanager
def served_history(
    gpus: int,
    days: float,
    step: int,
    prefix: str,
    timeout_s: float = 120,
    aggregate_ecc: bool = False,
    renamed: bool = False,
    end: int | None = None,
) -> Iterator[tuple[PromClient, int]]:
    """A client of Debian's Prometheus serving :func:`write_history`'s fleet, and the history's
    end (``end``, or now); everything is removed afterwards."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        work = Path(tmp)
        end = int(time.time()) // 60 * 60 if end is None else end
        print(f"building {gpus} GPUs x {days:g} d at {step} s ...", file=sys.stderr, flush=True)
        write_history(
            work / "h.om", gpus, days, step, end, aggregate_ecc=aggregate_ecc, renamed=renamed
        )
        stack.promtool_backfill(work / "h.om", work / "tsdb", block_duration="480h")
        (work / "h.om").unlink()
        config = stack.write_prometheus_config(work / "prometheus.yml")
        with stack.prometheus(work, config, data_dir=work / "tsdb") as prom:
            yield PromClient(PromConfig(prom.url, timeout_s=timeout_s)), end


def bench_size(gpus: int, days: float, step: int, workers: int, runs: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-scorer-") as tmp:
        work = Path(tmp)
        end = int(time.time()) // 60 * 60
        began = time.monotonic()
        samples = write_history(work / "h.om", gpus, days, step, end)
        stack.promtool_backfill(work / "h.om", work / "tsdb", block_duration="480h")
        (work / "h.om").unlink()
        build_s = time.monotonic() - began
        config = stack.write_prometheus_config(work / "prometheus.yml")
        with stack.prometheus(work, config, data_dir=work / "tsdb") as prom:
            client = PromClient(PromConfig(prom.url, timeout_s=120))
            model = load_model(None)  # the shipped default (the rule, docs/model-card.md)
            econ = make_econ_hook()
            scorer = Scorer(client, model, "dcgm", econ, workers=workers)
            assert scorer.run_once(), scorer.last_error  # cold: loads chunks into page cache
            cold = scorer.snapshot.duration_s if scorer.snapshot else float("nan")
            totals, proms = [], []
            for _ in range(runs):
                proms.append(prometheus_only(prom.url, workers))
                assert scorer.run_once(), scorer.last_error
                assert scorer.snapshot is not None
                totals.append(scorer.snapshot.duration_s)
            frame = compute_features(client, "dcgm", None, FEATURES, workers)
            t0 = time.monotonic()
            scores = score_frame(model, frame)
            econ(scores)
            model_s = time.monotonic() - t0
            rss = peak_rss_mb(prom.url)
            scored = len(scorer.snapshot.gpus)
    scorer_s = statistics.median(totals)
    prom_s = statistics.median(proms)
    return {
        "gpus": gpus,
        "scored": scored,
        "samples": samples,
        "build_s": round(build_s, 1),
        "cold_s": round(cold, 2),
        "scorer_s": round(scorer_s, 2),
        "prometheus_s": round(prom_s, 2),
        "overhead_ratio": round(scorer_s / prom_s, 2),
        "model_s": round(model_s, 2),
        "rss_mb": round(rss, 0),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[500, 1000, 2000])
    parser.add_argument("--days", type=float, default=14)
    parser.add_argument("--step", type=int, default=300, help="history resolution in seconds")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rows = []
    print("gpus  samples      build_s  cold_s  scorer_s  prometheus_s  ratio  model_s  rss_mb")
    for n in args.sizes:
        r = bench_size(n, args.days, args.step, args.workers, args.runs)
        rows.append(r)
        print(
            f"{r['gpus']:>4}  {r['samples']:>11,}  {r['build_s']:>7}  {r['cold_s']:>6}  "
            f"{r['scorer_s']:>8}  {r['prometheus_s']:>12}  {r['overhead_ratio']:>5}  "
            f"{r['model_s']:>7}  {r['rss_mb']:>6}",
            flush=True,
        )
    if args.json:
        args.json.write_text(json.dumps({"step_s": args.step, "days": args.days, "rows": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
