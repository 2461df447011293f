"""A scoring run on Prometheus against the same run on VictoriaMetrics, on one history.

The scorer reads either engine (docs/scorer.md, "Query engines"), and every other figure of
docs/benchmarks.md is Prometheus'. This bench copies a Prometheus data directory into Debian's
VictoriaMetrics (``vmctl prometheus``, which reads the blocks, checked to have copied every
sample: :mod:`vmctl_copy`; its result cache off, so a repeated query is evaluated again, as a
scorer's next run at another time would be), then
serves the directory from Debian's Prometheus, and:

* times ``--pairs`` whole scoring runs on each engine, taking them in turn after one cold run
  of each, so the machine's drift hits both alike;
* compares what the two runs said of every GPU: the same GPUs and states, and how far their
  probabilities are apart (MetricsQL's ``increase_prometheus`` does not extrapolate to the
  window's edges, so they agree closely, not exactly).

    .venv/bin/python bench/bench_engines.py --data-dir DIR --at 1796083140 \\
        [--history hourly] [--pairs 3] [--json out.json]

``DIR`` is a Prometheus data directory in dcgm-exporter's schema, such as the ``W/dcgm`` that
``bench/bench_hourly_history.py --work W`` leaves (its hourly samples are copied too, so both
engines can read them) or the ``--out`` of ``gpu-health backfill --schema dcgm``. Prometheus
merges the directory's blocks when it serves it, as the other benches' Prometheus does.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_query_profile import history_option, served, served_args, served_options
from bench_recorded_history import report  # same directory: print, and write with --json
from vmctl_copy import copy_blocks

from gpu_health import stack
from gpu_health.scorer.econ.bridge import make_econ_hook
from gpu_health.scorer.engine import engine_of
from gpu_health.scorer.history_source import HistoryMode
from gpu_health.scorer.model import load_model
from gpu_health.scorer.promclient import PromClient, PromConfig
from gpu_health.scorer.service import Scorer, Snapshot

ENGINES = ("prometheus", "victoriametrics")


@contextmanager
def victoriametrics(work: Path) -> Iterator[stack.Server]:
    """Debian's VictoriaMetrics (:func:`gpu_health.stack.victoriametrics`: result cache off),
    its data in ``work``; stopped when the context exits."""
    server = stack.victoriametrics(work, ready_timeout=60.0)
    try:
        yield server
    finally:
        server.stop()


def scored(client: PromClient, at: float, history: HistoryMode, workers: int) -> Snapshot:
    """One whole scoring run of the shipped default model with the economics, as of ``at``,
    through ``client`` (one per engine for the whole bench, as a serving scorer keeps one: the
    engine is detected once, and every run reads it as the same engine)."""
    scorer = Scorer(
        client, load_model(None), "dcgm", make_econ_hook(), workers=workers, at=at, history=history
    )
    if not scorer.run_once():
        raise RuntimeError(f"{client.base_url}: the scoring run failed: {scorer.last_error}")
    assert scorer.snapshot is not None
    return scorer.snapshot


def average_ranks(values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Each value's rank (0 = smallest), tied values sharing the mean of their ranks: the many
    GPUs without evidence share one probability, and an arbitrary order among them would read
    as disagreement."""
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(len(values), dtype=float)
    _, tie = np.unique(values, return_inverse=True)
    return np.asarray(np.bincount(tie, ranks) / np.bincount(tie), dtype=float)[tie]


def rank_correlation(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]) -> float | None:
    """Spearman's correlation of ``a`` and ``b`` (None for fewer than three pairs, or where one
    side holds a single value)."""
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return None
    return float(np.corrcoef(average_ranks(a), average_ranks(b))[0, 1])


def agreement(a: Snapshot, b: Snapshot) -> dict[str, Any]:
    """What two runs said of the same fleet: GPUs, states, read history, probabilities."""
    first = {g.uuid: g for g in a.gpus}
    second = {g.uuid: g for g in b.gpus}
    both = sorted(set(first) & set(second))
    out: dict[str, Any] = {
        "gpus": [len(first), len(second)],
        "in_both": len(both),
        "same_states": all(first[u].state == second[u].state for u in both),
        "states_apart": {  # GPU: [its state on the first engine, on the second]
            u: [first[u].state, second[u].state] for u in both if first[u].state != second[u].state
        },
        "history_read": [a.history, b.history],
    }
    for horizon in ("7d", "30d"):
        x = np.array([first[u].probability[horizon] for u in both], dtype=float)
        y = np.array([second[u].probability[horizon] for u in both], dtype=float)
        finite = np.isfinite(x) & np.isfinite(y)
        apart = np.abs(np.where(finite, x - y, 0.0))
        worst = int(np.argmax(apart)) if len(both) else 0
        out[f"probability_{horizon}"] = {
            "most_apart": [both[worst], float(x[worst]), float(y[worst])] if len(both) else [],
            "largest_difference": float(np.max(np.abs(x[finite] - y[finite]), initial=0.0)),
            "rank_correlation": rank_correlation(x[finite], y[finite]),
        }
    return out


def interleaved(
    clients: dict[str, PromClient], args: argparse.Namespace
) -> tuple[dict[str, list[float]], dict[str, Snapshot]]:
    """One cold run on each engine, then ``--pairs`` rounds of one run each, in turn: the run
    times per engine, and each engine's last snapshot."""
    last = {k: scored(c, args.at, args.history, args.workers) for k, c in clients.items()}
    runs: dict[str, list[float]] = {k: [] for k in clients}
    for pair in range(1, args.pairs + 1):
        print(f"pair {pair}/{args.pairs}", file=sys.stderr, flush=True)
        for engine, client in clients.items():
            last[engine] = scored(client, args.at, args.history, args.workers)
            runs[engine].append(last[engine].duration_s)
    return runs, last


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    served_options(parser, rounds=False)
    history_option(parser)
    parser.add_argument("--pairs", type=int, default=3, help="(default: %(default)s)")
    parser.add_argument("--workers", type=int, default=4, help="(default: %(default)s)")
    args = served_args(parser)
    if args.pairs < 1:
        parser.error("--pairs: must be at least 1")
    for binary in ("victoria-metrics", "vmctl"):
        if shutil.which(binary) is None:
            parser.error(f"{binary} is not installed (apt-get install victoria-metrics)")
    with (
        tempfile.TemporaryDirectory(prefix="bench-engines-") as tmp,
        victoriametrics(Path(tmp)) as vm,
    ):
        print("copying the blocks into VictoriaMetrics", file=sys.stderr, flush=True)
        copied_s = copy_blocks(args.data_dir, vm.url, Path(tmp) / "staging")
        with served(args.data_dir, not args.no_compaction_wait) as prom:
            urls = dict(zip(ENGINES, (prom.url, vm.url), strict=True))
            clients = {k: PromClient(PromConfig(u, timeout_s=600)) for k, u in urls.items()}
            detected = {k: engine_of(c) for k, c in clients.items()}
            runs, last = interleaved(clients, args)
    medians = {k: statistics.median(v) for k, v in runs.items()}
    result: dict[str, Any] = {
        "history": args.history,
        "at": args.at,
        "copy_s": round(copied_s, 1),
        "detected": detected,  # the engine the scorer found behind each URL
        "runs_s": {k: [round(x, 2) for x in v] for k, v in runs.items()},
        "median_s": {k: round(v, 2) for k, v in medians.items()},
        "ratio": round(medians["victoriametrics"] / medians["prometheus"], 3),
        "agreement": agreement(last["prometheus"], last["victoriametrics"]),
    }
    return report(result, args.json)


if __name__ == "__main__":
    sys.exit(main())
