"""GPUs lost on the node and in the fleet, counted in the scorer from one query of parts.

Both counts read every presence series over 30 days; their whole expressions read it three
times (the fleet count twice), the parts query once for both. On a fleet with a lost board, a
node down as a whole, an exporter restart that renames a node after one of its GPUs was lost,
and a replaced board, the counts from the parts are the whole expressions', on Prometheus and
VictoriaMetrics.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gpu_health import stack
from gpu_health.scorer.feature_plan import plan_queries
from gpu_health.scorer.feature_promql import LostGpus
from gpu_health.scorer.feature_schema import DCGM
from gpu_health.scorer.features import FEATURES, compute_features
from gpu_health.scorer.promclient import PromClient, PromConfig
from tests.conftest import import_openmetrics

pytestmark = [pytest.mark.integration]

DAY = 86400
START = 1_700_000_000
STEP = 1800
AT = START + 10 * DAY
#: Per GPU: (node name until the restart, node name after it, first day, last day).
GPUS = {
    "A": ("n1", "n1", 0, 10),
    "B": ("n1", "n1", 0, 5),  # lost
    "C": ("n1", "n1", 0, 10),
    "D": ("n1", "n1", 0, 10),
    # a node down as a whole: its exporter or host, not failures
    **{g: ("n2", "n2", 0, 6) for g in "EFGH"},
    # the exporter restarts on day 7 and reports its new pod name; J was lost before that
    "I": ("pod-a", "pod-b", 0, 10),
    "J": ("pod-a", "pod-b", 0, 6.5),
    "K": ("pod-a", "pod-b", 0, 10),
    "L": ("pod-a", "pod-b", 0, 10),
    # a board replaced on day 8: the new one has a new UUID
    "M": ("n4", "n4", 0, 8),
    "M2": ("n4", "n4", 8.02, 10),
    "N": ("n4", "n4", 0, 10),
}
RESTART_DAY = 7
EXPECTED_NODE = {"A": 1, "C": 1, "D": 1, "I": 0, "K": 0, "L": 0, "M2": 1, "N": 1}
EXPECTED_FLEET = 3  # B, J (lost under the old name of a node that still reports) and M


def _history() -> str:
    lines = ["# TYPE DCGM_FI_DEV_POWER_USAGE gauge"]
    for i, (gpu, (before, after, first, last)) in enumerate(GPUS.items()):
        t = START + first * DAY
        while t <= START + last * DAY:
            host = before if t < START + RESTART_DAY * DAY else after
            labels = f'Hostname="{host}",gpu="{i % 4}",UUID="GPU-{gpu}",modelName="NVIDIA H100"'
            lines.append(f"DCGM_FI_DEV_POWER_USAGE{{{labels}}} 300 {t:.0f}")
            t += STEP
    return "\n".join([*lines, "# EOF"]) + "\n"


def test_the_lost_gpus_counted_from_parts_are_the_whole_expressions(
    tmp_path: Path, prometheus_factory, victoriametrics_factory
) -> None:
    lost = [f for f in FEATURES if isinstance(f.build, LostGpus)]
    assert [f.name for f in lost] == ["node_lost_gpus_30d", "fleet_lost_gpus_30d"]
    (parts,) = plan_queries(DCGM, lost).queries
    assert parts.count("[30d]") == 1
    wholes = plan_queries(DCGM, lost, share_parts=False).queries
    assert sum(q.count("[30d]") for q in wholes) == 3
    history = _history()
    om = tmp_path / "lost.om"
    om.write_text(history)
    stack.promtool_backfill(om, tmp_path / "tsdb", block_duration="480h")
    clients = {
        "prometheus": PromClient(PromConfig(prometheus_factory(data_dir=tmp_path / "tsdb").url))
    }
    vm = victoriametrics_factory()
    import_openmetrics(vm, history)
    clients["victoriametrics"] = PromClient(PromConfig(vm.url, retries=1))
    for name, client in clients.items():
        frame = compute_features(client, "dcgm", AT, lost)
        whole = compute_features(client, "dcgm", AT, lost, share_parts=False)
        assert frame.failed_queries == whole.failed_queries == 0
        assert frame.gpus == whole.gpus
        np.testing.assert_array_equal(frame.values, whole.values, err_msg=name)
        gpus = [g[2][4:] for g in frame.gpus]
        assert sorted(gpus) == sorted(EXPECTED_NODE), name
        node = dict(zip(gpus, frame.column("node_lost_gpus_30d"), strict=True))
        assert node == {g: float(n) for g, n in EXPECTED_NODE.items()}, name
        assert set(frame.column("fleet_lost_gpus_30d")) == {float(EXPECTED_FLEET)}, name
