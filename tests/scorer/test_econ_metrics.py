"""The economic metric families expose with the catalogue's names and labels."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from gpu_health.scorer.catalogue import SCORER_IDENTITY_LABELS, SCORER_METRICS
from gpu_health.scorer.econ import (
    GpuEconInput,
    Recommender,
    econ_metric_families,
    load_params,
    value_fleet,
)
from gpu_health.scorer.econ.metrics import INPUT_METRICS


class _Collector:
    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        yield from self.families


def _exposition() -> dict[str, list[tuple[dict[str, str], float]]]:
    params = load_params()
    fleet = [
        GpuEconInput(
            uuid="GPU-a",
            model="NVIDIA H100 80GB HBM3",
            age_days=730,
            utilisation=0.8,
            power_w=525,
            p7=0.001,
            p30=0.003,
            health=97,
            node="n1",
            gpu="0",
        ),
        GpuEconInput(
            uuid="GPU-b", model="NVIDIA L40S", age_days=400, hard_fault=True, node="n1", gpu="1"
        ),
        GpuEconInput(uuid="GPU-c", model="Tesla K80", age_days=4000, node="n1", gpu="2"),
    ]
    results, skipped = value_fleet(fleet, params)
    assert [g.uuid for g, _ in skipped] == ["GPU-c"]
    results = Recommender(params.hysteresis).recommend_all(results)
    registry = CollectorRegistry()
    registry.register(_Collector(econ_metric_families(results)))  # type: ignore[arg-type]
    text = generate_latest(registry).decode()
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        out[family.name] = [(s.labels, s.value) for s in family.samples]
    return out


def test_families_match_the_scorer_catalogue() -> None:
    exposed = _exposition()
    catalogue = {name: labels for name, _k, _h, labels in SCORER_METRICS}
    inputs = [spec.metric for spec in INPUT_METRICS]
    for name in ["gpu_residual_value", "gpu_npv", "gpu_recommended_action", *inputs]:
        assert name in exposed, name
        for labels, _value in exposed[name]:
            assert set(labels) == set(SCORER_IDENTITY_LABELS) | set(catalogue[name]), name


def test_one_recommended_action_per_gpu_and_hard_fault_not_kept() -> None:
    exposed = _exposition()
    chosen: dict[str, list[str]] = {}
    for labels, value in exposed["gpu_recommended_action"]:
        assert value in (0.0, 1.0)
        if value == 1.0:
            chosen.setdefault(labels["uuid"], []).append(labels["action"])
    assert chosen["GPU-a"] == ["keep"]
    assert len(chosen["GPU-b"]) == 1 and chosen["GPU-b"] != ["keep"]
    assert "GPU-c" not in chosen
    currencies = {labels["currency"] for labels, _ in exposed["gpu_npv"]}
    assert currencies == {"USD"}
    assert len(exposed["gpu_npv"]) == 2 * 5


def test_unmeasured_inputs_are_not_published() -> None:
    exposed = _exposition()
    probabilities_b = [
        labels
        for labels, _ in exposed["gpu_econ_failure_probability_ratio"]
        if labels["uuid"] == "GPU-b"
    ]
    assert probabilities_b == []
    assert any(labels["uuid"] == "GPU-b" for labels, _ in exposed["gpu_econ_monthly_hazard_ratio"])
    hard = [v for labels, v in exposed["gpu_econ_hard_fault"] if labels["uuid"] == "GPU-b"]
    assert hard == [1.0]


def test_inputs_are_in_base_units() -> None:
    exposed = _exposition()

    def of_a(name: str) -> dict[str, float]:
        return {
            labels.get("horizon", labels.get("currency", "")): v
            for labels, v in exposed[name]
            if labels["uuid"] == "GPU-a"
        }

    assert of_a("gpu_econ_age_seconds") == {"": 730 * 86400.0}
    assert of_a("gpu_econ_power_watts") == {"": 525.0}
    assert of_a("gpu_econ_utilisation_ratio") == {"": 0.8}
    assert of_a("gpu_econ_failure_probability_ratio") == {"7d": 0.001, "30d": 0.003}
    params = load_params()
    assert of_a("gpu_econ_energy_price_per_kwh") == {"USD": params.energy_price}
    h100 = params.model_for("NVIDIA H100 80GB HBM3")
    assert h100 is not None
    assert of_a("gpu_econ_rental_price_per_hour") == {"USD": h100.rental_rate}
    assert "gpu_econ_input" not in exposed
