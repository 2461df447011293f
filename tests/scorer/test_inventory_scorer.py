"""The scorer's inventory hook against a real Prometheus: labels, serials, metrics, plan."""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from gpu_health.scorer.inventory.wiring import fleet_hook
from gpu_health.scorer.promclient import PromClient, PromConfig
from gpu_health.scorer.service import GpuScore

pytestmark = [pytest.mark.integration]


def _gpu(uuid: str, node: str, gpu: str, p30: float) -> GpuScore:
    return GpuScore(
        node=node,
        gpu=gpu,
        uuid=uuid,
        model="NVIDIA H100 80GB HBM3",
        # 90d from 30d at a constant hazard, as the survival curve gives it.
        probability={"7d": p30 / 4, "30d": p30, "90d": 1 - (1 - p30) ** 3},
        flagged={"7d": False, "30d": False, "90d": False},
        risk_factors={"7d": [], "30d": [], "90d": []},
        anomaly=0.1,
        inputs={"utilization_avg_30d": 0.8, "power_avg_30d_watts": 500.0, "health_score": 95.0},
    )


def _args(tmp_path: Path, **over: Any) -> argparse.Namespace:
    values: dict[str, Any] = {
        "inventory_file": None,
        "inventory_format": "auto",
        "market_prices": None,
        "service_level": 0.95,
        "econ": True,
        "econ_params": None,
        "econ_inventory": None,
        "econ_age": 730.0,
    }
    values.update(over)
    return argparse.Namespace(**values)


def _render(families: list[Any]) -> str:
    class Fixed:
        def collect(self) -> list[Any]:
            return families

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Fixed())  # type: ignore[arg-type]
    return generate_latest(registry).decode()


def _value(text: str, prefix: str) -> float:
    line = next(line for line in text.splitlines() if line.startswith(prefix))
    return float(line.rsplit(" ", 1)[1])


def test_hook_joins_file_serials_and_node_labels_and_publishes_them(
    tmp_path: Path, backfill, prometheus_factory
) -> None:
    now = int(time.time()) - 30
    om = "\n".join(
        [
            "# TYPE kube_node_labels gauge",
            f'kube_node_labels{{node="n2",label_topology_kubernetes_io_zone="zone-b",'
            f'label_gpu_health_io_rack="r11"}} 1 {now - 60}',
            f'kube_node_labels{{node="n2",label_topology_kubernetes_io_zone="zone-b",'
            f'label_gpu_health_io_rack="r11"}} 1 {now}',
            "# TYPE gpu_info gauge",
            f'gpu_info{{uuid="GPU-b",serial="S-77",node="n1"}} 1 {now}',
            "# EOF",
            "",
        ]
    )
    prom = prometheus_factory(data_dir=backfill(om))
    inventory = tmp_path / "inventory.csv"
    inventory.write_text(
        "uuid,serial,node,purchase_date,purchase_price,warranty_end,datacenter,rack,team,sla_tier\n"
        "GPU-a,,,2024-01-01,20000,2099-01-01,fra1,r01,vision,gold\n"
        ",S-77,,2023-01-01,,,ams2,r02,nlp,\n"
    )
    prices = tmp_path / "prices.csv"
    prices.write_text("model,condition,price,date\nH100,used,15000,2026-11-01\n")
    client = PromClient(PromConfig(url=prom.url, retries=1))
    hook = fleet_hook(_args(tmp_path, inventory_file=inventory, market_prices=prices), client.query)
    gpus = [
        _gpu("GPU-a", "n1", "0", 0.3),
        _gpu("GPU-b", "n1", "1", 0.2),
        _gpu("GPU-c", "n2", "0", 0.1),
        _gpu("GPU-d", "n3", "0", 0.05),
    ]
    scored, families = hook(gpus)
    text = _render(families)

    assert 'uuid="GPU-a"' in text and 'datacenter="fra1"' in text and 'sla_tier="gold"' in text
    assert 'rack="r02",row="",sla_tier="",team="nlp",uuid="GPU-b"' in text  # by serial
    assert 'datacenter="zone-b"' in text and 'rack="r11"' in text  # from node labels
    assert 'gpu_asset_info{datacenter="",gpu="0",model' not in text
    assert "GPU-d" not in "".join(ln for ln in text.splitlines() if ln.startswith("gpu_asset"))
    age = _value(text, 'gpu_age_seconds{gpu="0",model="NVIDIA H100 80GB HBM3",node="n1"')
    assert age == pytest.approx(time.time() - 1704067200, abs=120)
    assert _value(text, 'gpu_warranty_remaining_seconds{gpu="0"') > 70 * 365 * 86400
    assert _value(text, "gpu_scorer_inventory_records ") == 2
    assert _value(text, "gpu_scorer_inventory_unknown_gpus ") == 2  # GPU-c and GPU-d
    assert 'gpu_market_price{condition="used",currency="USD",date="2026-11-01"' in text

    expected = _value(
        text, 'gpu_plan_expected_failures{dimension="fleet",group="all",horizon="30d"}'
    )
    assert expected == pytest.approx(0.65)
    assert 'gpu_plan_expected_failures{dimension="datacenter",group="fra1"' in text
    assert (
        'gpu_plan_spares{dimension="fleet",group="all",horizon="90d",service_level="0.95"}' in text
    )

    from gpu_health.scorer.api import gpu_json

    assert gpu_json(scored[0])["economics"]["price_date"] == "2026-11-01"
    econ = {g.uuid: g.econ for g in scored}
    assert econ["GPU-a"].inputs["purchase_price"] == 20000
    assert econ["GPU-a"].price_date == "2026-11-01"
    assert econ["GPU-c"].inputs["age_days"] == 730.0  # not in the file: the default


def test_no_inventory_file_keeps_todays_defaults_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from gpu_health.demo.assets import asset_arguments

    # The demo's scorer flags for a deleted inventory: still passed, so the scorer says why.
    flags = asset_arguments(tmp_path / "gone.csv", tmp_path / "no-prices.csv")
    assert flags == [f"--inventory.file={tmp_path / 'gone.csv'}"]
    with caplog.at_level(logging.WARNING):
        hook = fleet_hook(_args(tmp_path, inventory_file=tmp_path / "gone.csv"), lambda _q: [])
        for _ in range(3):
            scored, families = hook([_gpu("GPU-a", "n1", "0", 0.3)])
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "gone.csv not found: using the defaults" in warnings[0]
    text = _render(families)
    assert "gpu_asset_info{" not in text and _value(text, "gpu_scorer_inventory_records ") == 0
    assert scored[0].econ.inputs["age_days"] == 730.0
    assert scored[0].econ.price_date == ""
