"""The rule's temperature evidence is relative to the GPU's own node, on a real Prometheus.

A hot aisle or a warm rack heats every GPU of a node alike and is not a failing board; one
board running hotter than the neighbours that share its air and its job is, once what its own
load explains is taken off (a job holding half of a node warms that half). The outside fleets
(bench/outside_fleet.py, bench/k8s_fleet.py, bench/two_minute_fleet.py) all hold warm but healthy
nodes, and against same-model peers their GPUs were the rule's most common false alarms.
The feature's PromQL (per node name, pieces weighted by samples) runs on Prometheus and on
VictoriaMetrics with the same result.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gpu_health import stack
from gpu_health.scorer.feature_plan import queries_of
from gpu_health.scorer.feature_promql import NodeExcess
from gpu_health.scorer.feature_schema import schema_by_name
from gpu_health.scorer.features import FEATURES, compute_features
from gpu_health.scorer.promclient import PromClient, PromConfig
from gpu_health.scorer.rules import RuleModel
from tests.conftest import import_openmetrics

DAY = 86400.0
START = 1_700_000_000
AT = START + 8.5 * DAY
H100 = "NVIDIA H100 80GB HBM3"

pytestmark = pytest.mark.integration


#: A node whose job holds half of its GPUs: busy ones draw 650 W and run at 70 °C, idle ones
#: 100 W and 42.5 °C (0.05 °C per watt, an H100's); every other GPU draws 500 W.
SHARED_BUSY = (14, 15, 16, 17)


def _power(node: str, index: int) -> float:
    if node == "shared":
        return 650.0 if index in SHARED_BUSY else 100.0
    return 500.0


def _temperature(node: str, index: int, t: float) -> float:
    """°C of one GPU ``t`` seconds into the history."""
    if node == "shared":
        return 70.0 if index in SHARED_BUSY else 42.5
    if node == "aisle":  # a hot aisle: every GPU of the node 15 °C warmer, all the time
        return 75.0
    if node == "mixed" and index == 7:  # its cooling fails on day 4: 12 °C above its node
        return 72.0 if t >= 4 * DAY else 60.0
    if node == "small":  # two GPUs only: compared with the model's median instead
        return 66.0 if index == 8 else 60.0
    return 60.0


NODES = {
    "aisle": (0, 1, 2, 3),
    "mixed": (4, 5, 6, 7),
    "small": (8, 9),
    "cool": (10, 11, 12, 13),
    "shared": tuple(range(14, 22)),
}


def _history(schema: str, restart_at: float | None) -> str:
    """OpenMetrics for both schemas; ``restart_at``: dcgm-exporter's pods on the "aisle" and
    "mixed" nodes restart then and report their new pod names as ``Hostname`` (no
    ``NODE_NAME``). The hot aisle is renamed too: were its GPUs compared with the model's
    median instead of their node's, they would read 15 °C, not 0."""
    names = (
        ("gpu_temperature_celsius", "gpu_power_watts")
        if schema == "ours"
        else ("DCGM_FI_DEV_GPU_TEMP", "DCGM_FI_DEV_POWER_USAGE")
    )
    lines: dict[str, list[str]] = {n: [] for n in names}
    step = 1800.0
    for node, indices in NODES.items():
        for i in indices:
            for k in range(int(8.5 * DAY / step) + 1):
                t = k * step
                if schema == "ours":
                    ident = f'node="{node}",gpu="{i}",uuid="GPU-{i:04d}",model="{H100}"'
                    temp = f'{names[0]}{{{ident},sensor="gpu"}}'
                else:
                    host = node
                    if restart_at is not None and node in ("aisle", "mixed"):
                        pod = "b" if t >= restart_at else "a"
                        host = f"dcgm-exporter-{node}-{pod}"
                    ident = f'Hostname="{host}",gpu="{i}",UUID="GPU-{i:04d}",modelName="{H100}"'
                    temp = f"{names[0]}{{{ident}}}"
                lines[names[0]].append(f"{temp} {_temperature(node, i, t)} {START + t:.0f}")
                power = f"{names[1]}{{{ident}}} {_power(node, i)}"
                lines[names[1]].append(f"{power} {START + t:.0f}")
    body = "".join(f"# TYPE {n} gauge\n" + "\n".join(v) + "\n" for n, v in lines.items())
    return body + "# EOF\n"


NAMES = (
    "temp_gpu_node_excess_24h",
    "temp_gpu_node_excess_change_7d",
    "temp_gpu_excess_24h",
    "power_node_excess_24h",
    "power_node_excess_change_7d",
)


def _read(client: PromClient, schema: str) -> dict[str, dict[str, float]]:
    frame = compute_features(client, schema, AT)  # type: ignore[arg-type]
    assert frame.failed_queries == 0
    return {
        g[2]: {n: float(frame.column(n)[row]) for n in NAMES} for row, g in enumerate(frame.gpus)
    }


def _features(
    tmp_path: Path, prometheus_factory, schema: str, restart_at: float | None = None
) -> dict[str, dict[str, float]]:
    om = tmp_path / f"{schema}-{restart_at}.om"
    om.write_text(_history(schema, restart_at))
    data = tmp_path / f"tsdb-{schema}-{restart_at}"
    stack.promtool_backfill(om, data, block_duration="480h")
    return _read(PromClient(PromConfig(prometheus_factory(data_dir=data).url, retries=1)), schema)


@pytest.mark.parametrize("schema", ["ours", "dcgm"])
def test_a_hot_node_is_no_evidence_and_a_gpu_hotter_than_its_node_is(
    tmp_path: Path, prometheus_factory, schema: str
) -> None:
    f = _features(tmp_path, prometheus_factory, schema)
    # The hot aisle is 15 °C above the model's median (60 °C), and 0 above its own node.
    for i in NODES["aisle"]:
        assert f[f"GPU-{i:04d}"]["temp_gpu_excess_24h"] == pytest.approx(15.0)
        assert f[f"GPU-{i:04d}"]["temp_gpu_node_excess_24h"] == pytest.approx(0.0)
        assert f[f"GPU-{i:04d}"]["temp_gpu_node_excess_change_7d"] == pytest.approx(0.0)
    # The board whose cooling failed is 12 °C above its neighbours, 12 more than a week ago.
    assert f["GPU-0007"]["temp_gpu_node_excess_24h"] == pytest.approx(12.0)
    assert f["GPU-0007"]["temp_gpu_node_excess_change_7d"] == pytest.approx(12.0)
    assert f["GPU-0005"]["temp_gpu_node_excess_24h"] == pytest.approx(0.0)
    # A node of two GPUs is too small to be its own reference: the model's median (60 °C).
    assert f["GPU-0008"]["temp_gpu_node_excess_24h"] == pytest.approx(6.0)
    assert f["GPU-0009"]["temp_gpu_node_excess_24h"] == pytest.approx(0.0)
    # Where a job holds half of a node, its GPUs stand out from their node's median by the
    # load, and the power says by how much: 275 W and 13.75 °C either side.
    for i in NODES["shared"]:
        sign = 1.0 if i in SHARED_BUSY else -1.0
        assert f[f"GPU-{i:04d}"]["temp_gpu_node_excess_24h"] == pytest.approx(sign * 13.75)
        assert f[f"GPU-{i:04d}"]["power_node_excess_24h"] == pytest.approx(sign * 275.0)
        assert f[f"GPU-{i:04d}"]["power_node_excess_change_7d"] == pytest.approx(0.0)
    assert f["GPU-0007"]["power_node_excess_24h"] == pytest.approx(0.0)


def test_the_rule_ranks_the_failing_board_above_the_hot_aisle(
    tmp_path: Path, prometheus_factory
) -> None:
    """Through the rule's own factors: neither the hot aisle nor the busy half of a shared
    node gives temperature evidence; the board whose cooling failed does."""
    client_features = _features(tmp_path, prometheus_factory, "dcgm")
    rule = RuleModel()
    cols = list(rule.features)
    uuids = sorted(client_features)
    x = np.full((len(uuids), len(cols)), np.nan)
    for r, u in enumerate(uuids):
        for name, v in client_features[u].items():
            if name in cols:
                x[r, cols.index(name)] = v
    names, values = rule.factors("7d", x)
    temp = values[:, names.index("temperature_excess_24h")]
    rise = values[:, names.index("temperature_rise_7d")]
    assert temp[uuids.index("GPU-0007")] > 1.0 and rise[uuids.index("GPU-0007")] > 2.0
    for i in NODES["aisle"]:
        assert temp[uuids.index(f"GPU-{i:04d}")] == 0.0
    busy = [uuids.index(f"GPU-{i:04d}") for i in SHARED_BUSY]
    assert temp[busy].max() < 0.05 * temp[uuids.index("GPU-0007")]
    hazard = rule.hazard(x)
    assert hazard[uuids.index("GPU-0007")] == hazard.max()
    # Without the power readings the busy GPUs read 13.75 °C above their node: evidence.
    blind = x.copy()
    blind[:, [cols.index("power_node_excess_24h"), cols.index("power_node_excess_change_7d")]] = (
        np.nan
    )
    names, values = rule.factors("7d", blind)
    assert values[busy, names.index("temperature_excess_24h")].min() > 1.0


def test_a_dcgm_exporter_restart_that_renames_the_node_changes_nothing(
    tmp_path: Path, prometheus_factory
) -> None:
    """The pod restarts on day 8.2, inside the 24 h window: the node's GPUs are compared with
    each other under each name, and the pieces weighted by their samples."""
    before = _features(tmp_path, prometheus_factory, "dcgm")
    after = _features(tmp_path, prometheus_factory, "dcgm", restart_at=8.2 * DAY)
    for uuid, values in before.items():
        for name in NAMES:
            assert after[uuid][name] == pytest.approx(values[name], abs=1e-6), (uuid, name)


def test_victoriametrics_gives_the_same_node_relative_temperatures(
    tmp_path: Path, prometheus_factory, victoriametrics_factory
) -> None:
    """Agree across engines: the same history, with the exporter restart, in VictoriaMetrics."""
    on_prometheus = _features(tmp_path, prometheus_factory, "dcgm", restart_at=8.2 * DAY)
    vm = victoriametrics_factory()
    import_openmetrics(vm, _history("dcgm", 8.2 * DAY))
    on_vm = _read(PromClient(PromConfig(vm.url, retries=1)), "dcgm")
    assert set(on_vm) == set(on_prometheus)
    for uuid, values in on_prometheus.items():
        for name, value in values.items():
            assert on_vm[uuid][name] == pytest.approx(value, abs=1e-6), (uuid, name)
    assert on_vm["GPU-0007"]["temp_gpu_node_excess_24h"] == pytest.approx(12.0)


@pytest.mark.parametrize("schema", ["ours", "dcgm"])
def test_the_parts_sent_give_the_whole_expressions_values(
    tmp_path: Path, prometheus_factory, victoriametrics_factory, schema: str
) -> None:
    """The feature frame sends each node comparison as the sum and count of the samples per
    GPU and node name and takes the medians and the weights itself: the whole expressions'
    values, on the history with a small node (the model's median) and an exporter restart
    (two node names in one window; GPU 5 runs 8 °C warmer after it, so its two pieces differ
    and their weights count), on Prometheus and (dcgm) VictoriaMetrics, while the window is
    read twice where the whole expression reads it eleven times."""
    node = [f for f in FEATURES if isinstance(f.build, NodeExcess)]
    assert {f.name for f in node} == {"temp_gpu_node_excess_24h", "power_node_excess_24h"}
    s = schema_by_name(schema)
    for f in node:
        (parts,) = queries_of(f.build, s) or ()
        whole_expression = f.build(s)
        assert whole_expression is not None and whole_expression.count("_over_time(") == 11
        assert parts.count("_over_time(") == 2
    history = _warmer_after(_history(schema, 8.2 * DAY), 5, START + 8.2 * DAY, 8.0)
    om = tmp_path / "h.om"
    om.write_text(history)
    stack.promtool_backfill(om, tmp_path / "tsdb", block_duration="480h")
    clients = [PromClient(PromConfig(prometheus_factory(data_dir=tmp_path / "tsdb").url))]
    if schema == "dcgm":
        vm = victoriametrics_factory()
        import_openmetrics(vm, history)
        clients.append(PromClient(PromConfig(vm.url, retries=1)))
    for client in clients:
        parts_frame = compute_features(client, schema, AT)  # type: ignore[arg-type]
        whole = compute_features(client, schema, AT, share_parts=False)  # type: ignore[arg-type]
        assert parts_frame.gpus == whole.gpus and len(parts_frame.gpus) == 22
        for name in NAMES:
            np.testing.assert_allclose(
                parts_frame.column(name), whole.column(name), rtol=0, atol=1e-9, err_msg=name
            )
        # not vacuous: the small node's hot GPU (against its model) and GPU 5, whose pieces
        # on dcgm read 0 °C for 0.7 days and 4 °C (68 against 64) for 0.3 (2 unweighted)
        excess = dict(zip((g[2] for g in whole.gpus), whole.column(NAMES[0]), strict=True))
        # 66 °C against the model's median, (60 + 62.4) / 2 (GPU 5's mean); 3 against its node
        assert excess["GPU-0008"] == pytest.approx(66 - (60 + 62.4) / 2, abs=0.1)
        assert excess["GPU-0005"] == pytest.approx(4.0 * 0.3, abs=0.1)


def _warmer_after(history: str, gpu: int, at: float, by: float) -> str:
    """``history`` with GPU ``gpu``'s temperature ``by`` °C higher from ``at`` on."""
    out = []
    for line in history.splitlines():
        if "TEMP" in line.upper() and f'gpu="{gpu}"' in line and not line.startswith("#"):
            series, value, stamp = line.rsplit(" ", 2)
            if float(stamp) >= at:
                line = f"{series} {float(value) + by} {stamp}"
        out.append(line)
    return "\n".join(out) + "\n"
