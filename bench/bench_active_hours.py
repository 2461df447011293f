"""Hours with activity: the shipped form against the summed form it replaced, on a history.

The six hours-with-activity features (corrected ECC, PCIe replays, NVLink
errors, power and thermal holds, hardware holds) count the 2-hour slots of the week in which a
counter rose. The summed form (``feature_promql.active_hours_by_sum``,
``hardware_hold_hours_by_max``) combined every field's value per GPU and slot and compared the
result with 0; the shipped form (``active_hours``, ``hardware_hold_hours``) keeps only the
series that rose before combining. This bench serves a TSDB with Debian's Prometheus, checks
that both forms give every GPU the same value, and times them per feature and as a whole feature
frame (every feature, one form or the other), in interleaved rounds after one cold run of
each, reading the raw history or its hourly samples (``--history``). Both forms run in one
session, so the ratios are what the change buys.

    .venv/bin/python bench/bench_active_hours.py --data-dir DIR --at 1796083120 \
        [--history hourly] [--rounds 5] [--json out.json]

``DIR`` is a Prometheus data directory in dcgm-exporter's schema, such as the one
``bench/bench_hourly_history.py --work W`` leaves in ``W/dcgm`` (its hourly samples included).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, get_args

from bench_xid_classes import timed  # same directory: one query timed, its values by UUID

from gpu_health import stack
from gpu_health.scorer.feature_promql import (
    ECC_CORR_AGG,
    ECC_CORR_VOL,
    Builder,
    active_hours,
    active_hours_by_sum,
    aggregate_first,
    hardware_hold_hours,
    hardware_hold_hours_by_max,
)
from gpu_health.scorer.feature_table import FEATURES, Feature
from gpu_health.scorer.features import compute_features, schema_by_name
from gpu_health.scorer.history_source import HistoryMode, to_hourly
from gpu_health.scorer.promclient import PromClient, PromConfig

ECC = "gpu_ecc_errors_total"


def _counters(metric: str, **labels: str) -> tuple[Builder, Builder]:
    return active_hours(metric, "7d", **labels), active_hours_by_sum(metric, "7d", **labels)


_AGG, _VOL = _counters(ECC, **ECC_CORR_AGG), _counters(ECC, **ECC_CORR_VOL)
#: Each feature's builder in the shipped form and in the summed form.
FORMS: dict[str, tuple[Builder, Builder]] = {
    "ecc_corrected_active_hours_7d": (
        aggregate_first(_AGG[0], _VOL[0]),
        aggregate_first(_AGG[1], _VOL[1]),
    ),
    "pcie_replay_active_hours_7d": _counters("gpu_pcie_replays_total"),
    "nvlink_error_active_hours_7d": _counters("gpu_nvlink_errors_total"),
    "power_violation_active_hours_7d": _counters("gpu_clock_event_seconds_total", reason="power"),
    "thermal_violation_active_hours_7d": _counters(
        "gpu_clock_event_seconds_total", reason="thermal"
    ),
    "hardware_hold_hours_7d": (hardware_hold_hours("7d"), hardware_hold_hours_by_max("7d")),
}


def summed_table() -> tuple[Feature, ...]:
    """The feature table with the summed form of each hours-with-activity feature."""
    assert {f.name for f in FEATURES} >= set(FORMS)
    return tuple(replace(f, build=FORMS[f.name][1]) if f.name in FORMS else f for f in FEATURES)


def per_feature(
    client: PromClient, at: float, history: HistoryMode, rounds: int
) -> dict[str, dict[str, Any]]:
    """Each feature's query in both forms, alternated: medians, ratio, GPUs, same values."""
    s = replace(schema_by_name("dcgm"), fresh="30m")
    out = {}
    for name, (shipped_build, summed_build) in FORMS.items():
        shipped, summed = shipped_build(s), summed_build(s)
        assert shipped is not None and summed is not None
        if history == "hourly":
            shipped, summed = to_hourly(shipped), to_hourly(summed)
        timed(client, summed, at)  # cold run of each
        timed(client, shipped, at)
        times: dict[str, list[float]] = {"summed": [], "shipped": []}
        same = True
        for _ in range(rounds):
            t, old = timed(client, summed, at)
            times["summed"].append(t)
            t, new = timed(client, shipped, at)
            times["shipped"].append(t)
            same = same and old == new
        medians = {k: statistics.median(v) for k, v in times.items()}
        out[name] = {
            "median_s": {k: round(v, 3) for k, v in medians.items()},
            "shipped_over_summed": round(medians["shipped"] / medians["summed"], 3),
            "gpus": len(new),
            "gpus_active": sum(1 for v in new.values() if float(v) > 0),
            "same_values": same,
        }
        print(name, json.dumps(out[name]), file=sys.stderr, flush=True)
    return out


def whole_frames(
    client: PromClient, at: float, history: HistoryMode, rounds: int, workers: int
) -> dict[str, Any]:
    """Every feature at one time, the hours in either form, interleaved rounds."""
    arms = {"summed": summed_table(), "shipped": FEATURES}
    for table in arms.values():
        compute_features(client, "dcgm", at, table, workers, history=history)
    runs: dict[str, list[float]] = {arm: [] for arm in arms}
    for k in range(rounds):
        for arm, table in arms.items():
            began = time.perf_counter()
            frame = compute_features(client, "dcgm", at, table, workers, history=history)
            runs[arm].append(time.perf_counter() - began)
            assert frame.failed_queries == 0, arm
        print(f"round {k + 1}/{rounds}", file=sys.stderr, flush=True)
    medians = {arm: statistics.median(v) for arm, v in runs.items()}
    return {
        "runs_s": {k: [round(x, 2) for x in v] for k, v in runs.items()},
        "median_s": {k: round(v, 2) for k, v in medians.items()},
        "shipped_over_summed": round(medians["shipped"] / medians["summed"], 3),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True, help="a Prometheus data dir")
    parser.add_argument("--at", type=float, required=True, help="evaluation time (unix s)")
    parser.add_argument(
        "--history", choices=("raw", "hourly"), default="raw", help="(default: %(default)s)"
    )
    parser.add_argument("--rounds", type=int, default=5, help="(default: %(default)s)")
    parser.add_argument("--workers", type=int, default=4, help="(default: %(default)s)")
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args()
    if not args.data_dir.is_dir():
        parser.error(f"--data-dir: {args.data_dir} is not a directory")
    assert args.history in get_args(HistoryMode)
    with tempfile.TemporaryDirectory(prefix="bench-active-hours-") as tmp:
        work = Path(tmp)
        config = stack.write_prometheus_config(work / "prometheus.yml")
        with stack.prometheus(work, config, data_dir=args.data_dir) as prom:
            client = PromClient(PromConfig(prom.url, timeout_s=300))
            features = per_feature(client, args.at, args.history, args.rounds)
            frames = whole_frames(client, args.at, args.history, args.rounds, args.workers)
    result = {"history": args.history, "per_feature": features, "whole_frame": frames}
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0 if all(f["same_values"] for f in features.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
