"""A board whose power wanders apart from its node's, on real Prometheus and VictoriaMetrics.

A node's GPUs usually run one job, so its ramps, communication pauses and stops move all of
them together; a voltage regulator losing regulation, or a sagging input that browns a board
out under load, moves one board alone. ``power_noise_node_log_24h`` is the standard deviation of
the board's power minus its node's median at each instant: zero for every board of a node
whose job swings by hundreds of watts, 30 W for the one whose reading jitters by ±30 W
(read as ln(1 + W): boards compare by ratios).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gpu_health import stack
from gpu_health.scorer.features import compute_features
from gpu_health.scorer.promclient import PromClient, PromConfig
from gpu_health.scorer.rules import RuleModel
from tests.conftest import import_openmetrics

DAY = 86400.0
START = 1_700_000_000
AT = START + 3 * DAY
STEP = 600.0
H100 = "NVIDIA H100 80GB HBM3"
NOISY = 3
JITTER = 30.0

pytestmark = pytest.mark.integration

NODES = {
    "swinging": tuple(range(0, 8)),  # one job, 100 W to 700 W and back every few hours
    "steady": tuple(range(8, 16)),  # one steady job at 500 W
    "small": (16, 17),  # two GPUs: too few to be a reference
}


def _job(node: str, k: int) -> float:
    if node == "swinging":
        return (100.0, 400.0, 700.0, 250.0)[(k // 17) % 4]
    return 500.0


def _power(node: str, index: int, k: int) -> float:
    """W of one GPU at scrape ``k``: the node's job, a constant per-board offset (pipeline
    stages differ), and on the noisy board ±30 W alternating from one scrape to the next."""
    watts = _job(node, k) + 2.0 * (index % 4)
    if index == NOISY:
        watts += JITTER if k % 2 else -JITTER
    return watts


def _history(restart_at: float | None) -> str:
    """dcgm-exporter's power series; ``restart_at``: the pods on the "swinging" node restart
    and report their new names as ``Hostname``."""
    lines = ["# TYPE DCGM_FI_DEV_POWER_USAGE gauge"]
    for node, indices in NODES.items():
        for i in indices:
            for k in range(int(3 * DAY / STEP) + 1):
                t = k * STEP
                host = node
                if restart_at is not None and node == "swinging":
                    host = f"dcgm-exporter-{'b' if t >= restart_at else 'a'}"
                ident = f'Hostname="{host}",gpu="{i % 8}",UUID="GPU-{i:04d}",modelName="{H100}"'
                lines.append(
                    f"DCGM_FI_DEV_POWER_USAGE{{{ident}}} {_power(node, i, k)} {START + t:.0f}"
                )
    return "\n".join(lines) + "\n# EOF\n"


def _read(client: PromClient) -> dict[str, float]:
    frame = compute_features(client, "dcgm", AT)
    assert frame.failed_queries == 0
    column = frame.column("power_noise_node_log_24h")
    return {g[2]: float(column[row]) for row, g in enumerate(frame.gpus)}


def _on_prometheus(
    tmp_path: Path, prometheus_factory, restart_at: float | None
) -> dict[str, float]:
    om = tmp_path / f"power-{restart_at}.om"
    om.write_text(_history(restart_at))
    data = tmp_path / f"tsdb-{restart_at}"
    stack.promtool_backfill(om, data, block_duration="480h")
    return _read(PromClient(PromConfig(prometheus_factory(data_dir=data).url, retries=1)))


def _expected() -> dict[str, float]:
    """The definition, in numpy: over the 144 scrapes of the last 24 h (one per 10-minute
    step), each board's power minus its node's median at that scrape, and ln(1 + its
    population standard deviation). The noisy board is one of the eight its median is taken
    over, so the median moves by a watt with it (its offsets 0..6 W around the job's level)."""
    out: dict[str, float] = {}
    scrapes = range(int(2 * DAY / STEP), int(3 * DAY / STEP))
    for node, indices in NODES.items():
        watts = np.array([[_power(node, i, k) for k in scrapes] for i in indices])
        apart = watts - np.median(watts, axis=0)
        for row, i in enumerate(indices):
            out[f"GPU-{i:04d}"] = np.log1p(apart[row].std()) if len(indices) >= 4 else np.nan
    return out


def test_only_the_board_that_wanders_alone_reads_noise(tmp_path: Path, prometheus_factory) -> None:
    noise = _on_prometheus(tmp_path, prometheus_factory, None)
    expected = _expected()
    assert set(noise) == set(expected)
    for uuid, value in expected.items():
        if np.isnan(value):  # a node of two GPUs has no median to compare with: missing
            assert np.isnan(noise[uuid]), uuid
        else:
            assert noise[uuid] == pytest.approx(value, rel=1e-6, abs=1e-6), uuid
    # The ±30 W board reads nearly that; its node swings by 600 W and the others' offsets
    # are constant, so they read at most the watt its median moves by.
    assert noise[f"GPU-{NOISY:04d}"] > np.log1p(0.9 * JITTER)
    others = [v for u, v in noise.items() if u != f"GPU-{NOISY:04d}" and not np.isnan(v)]
    assert len(others) == 15 and max(others) <= np.log1p(1.0)


def test_a_restart_that_renames_the_node_mid_window_changes_nothing(
    tmp_path: Path, prometheus_factory
) -> None:
    before = _on_prometheus(tmp_path, prometheus_factory, None)
    after = _on_prometheus(tmp_path, prometheus_factory, 2.5 * DAY)
    for uuid, value in before.items():
        if np.isnan(value):
            assert np.isnan(after[uuid])
        else:
            assert after[uuid] == pytest.approx(value, rel=1e-3, abs=1e-6), uuid


def test_victoriametrics_reads_the_same_noise(
    tmp_path: Path, prometheus_factory, victoriametrics_factory
) -> None:
    on_prometheus = _on_prometheus(tmp_path, prometheus_factory, 2.5 * DAY)
    vm = victoriametrics_factory()
    import_openmetrics(vm, _history(2.5 * DAY))
    on_vm = _read(PromClient(PromConfig(vm.url, retries=1)))
    assert set(on_vm) == set(on_prometheus)
    for uuid, value in on_prometheus.items():
        if np.isnan(value):
            assert np.isnan(on_vm[uuid]), uuid
        else:
            assert on_vm[uuid] == pytest.approx(value, rel=1e-3, abs=1e-6), uuid


def test_the_rule_counts_the_noisy_board_under_thermal_power(
    tmp_path: Path, prometheus_factory
) -> None:
    """Through the rule's own factors: only the noisy board gets power-noise evidence, and it
    is the riskiest GPU of the fleet."""
    noise = _on_prometheus(tmp_path, prometheus_factory, None)
    rule = RuleModel()
    cols = list(rule.features)
    uuids = sorted(noise)
    x = np.full((len(uuids), len(cols)), np.nan)
    x[:, cols.index("power_noise_node_log_24h")] = [noise[u] for u in uuids]
    names, values = rule.factors("7d", x)
    evidence = values[:, names.index("power_noise_24h")]
    noisy = uuids.index(f"GPU-{NOISY:04d}")
    assert evidence[noisy] > 1.0
    # Its node-mates read the half watt their median moves by with it (ln 1.5 against ln 31,
    # where every other board reads 0): an eighth of its evidence.
    assert np.delete(evidence, noisy).max() < 0.2 * evidence[noisy]
    for i in NODES["steady"]:
        assert evidence[uuids.index(f"GPU-{i:04d}")] == 0.0
    hazard = rule.hazard(x)
    assert hazard[noisy] == hazard.max() > np.delete(hazard, noisy).max()
