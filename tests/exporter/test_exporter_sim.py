"""The sim backend behind the exporter's CLI (the simulator itself is tested by its own files)."""

from __future__ import annotations

import time
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from gpu_health.exporter.cli import Exporter, build_parser

live = pytest.importorskip("gpu_health.sim.live")


def test_sim_backend_serves_the_requested_fleet() -> None:
    args = build_parser().parse_args(
        ["--backend", "sim", "--sim-gpus", "4", "--sim-seed", "7", "--sim-speed", "60",
         "--web.listen-address", "127.0.0.1:0", "--node-name", "sim-node"]
    )  # fmt: skip
    exporter = Exporter(args).start()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{exporter.port}/metrics") as response:
            text = response.read().decode()
    finally:
        exporter.close()
    samples = [s for f in text_string_to_metric_families(text) for s in f.samples]
    ups = {s.labels["gpu"]: s.value for s in samples if s.name == "gpu_up"}
    assert ups == {"0": 1.0, "1": 1.0, "2": 1.0, "3": 1.0}
    assert all(s.labels["node"] == "sim-node" for s in samples if s.name == "gpu_up")
    assert any(s.name == "gpu_temperature_celsius" for s in samples)
    assert any(s.name == "gpu_health_score" for s in samples)
    build = [s for s in samples if s.name == "gpu_exporter_build_info"]
    assert build[0].labels["backend"] == exporter.backend.name


def test_sim_keeps_its_node_names_unless_one_is_given() -> None:
    args = build_parser().parse_args(
        ["--backend", "sim", "--sim-gpus", "2", "--web.listen-address", "127.0.0.1:0"]
    )
    exporter = Exporter(args)
    try:
        nodes = {i.node for i in exporter.identities}
        assert nodes == {i.node for i in exporter.backend.inventory()} and "" not in nodes
    finally:
        exporter.close()


def test_sim_fault_help_comes_from_the_simulator() -> None:
    help_text = " ".join(build_parser().format_help().split())
    assert " ".join(str(live.FAULT_HELP).split()) in help_text


def _scrape_sim(gpus: int, fault: str) -> list[Sample]:
    """Start the sim exporter in-process with one fault, scrape /metrics once, stop it."""
    args = build_parser().parse_args(
        ["--backend", "sim", "--sim-gpus", str(gpus), "--sim-fault", fault,
         "--web.listen-address", "127.0.0.1:0"]
    )  # fmt: skip
    exporter = Exporter(args).start()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{exporter.port}/metrics") as response:
            text = response.read().decode()
    finally:
        exporter.close()
    return [s for f in text_string_to_metric_families(text) for s in f.samples]


def test_a_simulated_lost_gpu_reads_up_0_and_is_scored_down() -> None:
    samples = _scrape_sim(3, "gpu=1,fault=gpu_lost")
    ups = {s.labels["gpu"]: s.value for s in samples if s.name == "gpu_up"}
    assert ups == {"0": 1.0, "1": 0.0, "2": 1.0}
    overall = {
        s.labels["gpu"]: s.value
        for s in samples
        if s.name == "gpu_health_score" and s.labels["dimension"] == "overall"
    }
    assert overall["1"] < min(overall["0"], overall["2"])


def test_a_simulated_xid79_keeps_its_xid_counted_while_the_gpu_is_lost() -> None:
    samples = _scrape_sim(2, "gpu=1,fault=xid79")
    ups = {s.labels["gpu"]: s.value for s in samples if s.name == "gpu_up"}
    assert ups == {"0": 1.0, "1": 0.0}
    xid79 = [
        s.value
        for s in samples
        if s.name == "gpu_xid_errors_total" and s.labels["gpu"] == "1" and s.labels["xid"] == "79"
    ]
    assert xid79 and xid79[0] >= 1


def test_sim_hazard_scale_draws_the_same_fleet_as_the_backfill() -> None:
    """--sim-hazard-scale X gives the fleet `gpu-health backfill --hazard-scale X` wrote."""
    from gpu_health.exporter.cli import make_backend
    from gpu_health.sim.fleet import build_fleet

    args = build_parser().parse_args(
        ["--backend", "sim", "--sim-gpus", "16", "--sim-seed", "5", "--sim-hazard-scale", "40"]
    )
    live = make_backend(args)
    try:
        live_uuids = {gpu.uuid for gpu in live.inventory()}
    finally:
        live.close()
    now = time.time()

    def present(hazard_scale: float) -> set[str]:
        boards = (slot.board_at(now) for slot in build_fleet(16, 5, hazard_scale).slots)
        return {board.uuid for board in boards if board is not None}

    scaled, default = present(40.0), present(1.0)
    assert live_uuids == scaled
    assert scaled != default  # the multiplier changes which boards have failed and been replaced
