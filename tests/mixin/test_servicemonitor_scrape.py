"""The exporter's ServiceMonitor, applied by a real Prometheus to a real exporter.

No Kubernetes API server runs here, so the target the Prometheus Operator would discover is
handed to Prometheus through file discovery with the ``__meta_kubernetes_*`` labels Kubernetes
discovery would give it, and the scrape job is written the way the Operator writes one from a
ServiceMonitor endpoint: its default target labels (namespace, service, pod, container, job,
endpoint) first, then the endpoint's own ``relabelings``. Prometheus' relabeling engine and the
exporter are the real ones.

What matters: replacing the exporter pod (an upgrade, an eviction, a node reboot) must not
start new series for the GPUs it serves. A series that restarts under a new ``pod`` label is
born at its old count, which MetricsQL's ``increase()`` reads as that many new events.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from gpu_health import stack

REPO = Path(__file__).resolve().parents[2]
MONITOR = REPO / "deploy" / "kubernetes" / "exporter-servicemonitor.yaml"
NAMESPACE = "gpu-health"
SERVICE = "gpu-health-exporter"

pytestmark = pytest.mark.integration


def _sanitize(label: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in label)


def operator_scrape_config(monitor: dict[str, Any], targets_file: Path) -> dict[str, Any]:
    """The Prometheus scrape job the Operator generates for the monitor's first endpoint."""
    spec = monitor["spec"]
    endpoint = spec["endpoints"][0]
    defaults: list[dict[str, Any]] = [
        {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
        {"source_labels": ["__meta_kubernetes_service_name"], "target_label": "service"},
        {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
        {"source_labels": ["__meta_kubernetes_pod_container_name"], "target_label": "container"},
        {"source_labels": ["__meta_kubernetes_service_name"], "target_label": "job"},
    ]
    if "jobLabel" in spec:
        meta = f"__meta_kubernetes_service_label_{_sanitize(spec['jobLabel'])}"
        defaults.append({"source_labels": [meta], "target_label": "job", "regex": "(.+)"})
    defaults.append({"target_label": "endpoint", "replacement": endpoint["port"]})
    renamed = {"sourceLabels": "source_labels", "targetLabel": "target_label"}
    own = [
        {renamed.get(key, key): value for key, value in rule.items()}
        for rule in endpoint.get("relabelings", [])
    ]
    return {
        "job_name": f"serviceMonitor/{NAMESPACE}/{monitor['metadata']['name']}/0",
        "honor_labels": endpoint.get("honorLabels", False),
        "scrape_interval": "1s",
        "metrics_path": endpoint.get("path", "/metrics"),
        "file_sd_configs": [{"files": [str(targets_file)], "refresh_interval": "1s"}],
        "relabel_configs": defaults + own,
    }


def discovered(address: str, pod: str, node: str, monitor: dict[str, Any]) -> list[Any]:
    """The target Kubernetes endpoints discovery would give for one exporter pod."""
    app = monitor["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"]
    labels = {
        "__meta_kubernetes_namespace": NAMESPACE,
        "__meta_kubernetes_service_name": SERVICE,
        "__meta_kubernetes_service_label_app_kubernetes_io_name": app,
        "__meta_kubernetes_pod_name": pod,
        "__meta_kubernetes_pod_container_name": "exporter",
        "__meta_kubernetes_pod_node_name": node,
        "__meta_kubernetes_endpoint_port_name": monitor["spec"]["endpoints"][0]["port"],
    }
    return [{"targets": [address], "labels": labels}]


def _write(path: Path, content: Any) -> None:
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(content))
    partial.replace(path)


def _series_per_gpu(url: str) -> dict[str, list[dict[str, str]]]:
    per_gpu: dict[str, list[dict[str, str]]] = {}
    for row in stack.query(url, "last_over_time(gpu_up[10m])"):
        per_gpu.setdefault(row["metric"]["uuid"], []).append(row["metric"])
    return per_gpu


def _wait_for_pod(url: str, pod: str, timeout: float = 30.0) -> None:
    """Until Prometheus has scraped the target discovered under ``pod`` twice."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = stack.query(url, "count_over_time(up[10m])")
        targets = json.loads(stack.http_get(f"{url}/api/v1/targets"))["data"]["activeTargets"]
        pods = {t["discoveredLabels"].get("__meta_kubernetes_pod_name") for t in targets}
        if pods == {pod} and any(float(r["value"][1]) >= 2 for r in rows):
            time.sleep(2.5)
            return
        time.sleep(0.5)
    raise TimeoutError(f"Prometheus did not scrape the exporter as pod {pod}")


def test_a_replaced_exporter_pod_keeps_every_gpu_series(
    tmp_path: Path,
    prometheus_factory: Callable[..., stack.Server],
    sim_exporter_factory: Callable[..., stack.Server],
) -> None:
    monitor = yaml.safe_load(MONITOR.read_text())
    exporter = sim_exporter_factory("--sim-gpus", "4", node="gpu-node-7")
    targets = tmp_path / "targets.json"
    address = exporter.url.removeprefix("http://")
    _write(targets, discovered(address, "gpu-health-exporter-x7k2p", "gpu-node-7", monitor))
    prometheus = prometheus_factory(extra_scrape_configs=[operator_scrape_config(monitor, targets)])
    _wait_for_pod(prometheus.url, "gpu-health-exporter-x7k2p")
    before = _series_per_gpu(prometheus.url)
    assert len(before) == 4

    # The DaemonSet replaces the pod: a new name, the same node, the same GPUs.
    _write(targets, discovered(address, "gpu-health-exporter-q9m4z", "gpu-node-7", monitor))
    _wait_for_pod(prometheus.url, "gpu-health-exporter-q9m4z")
    after = _series_per_gpu(prometheus.url)

    assert after == before, "a GPU's series changed identity when the exporter pod was replaced"
    for (labels,) in after.values():
        assert labels["instance"] == "gpu-node-7"
        assert labels["job"] == SERVICE
        assert not {"pod", "container", "service", "endpoint"} & labels.keys()
