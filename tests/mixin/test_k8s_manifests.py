"""deploy/kubernetes validates against the Kubernetes and Prometheus Operator schemas, offline."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from gpu_health.mixin import kube as kube_manifests

REPO = Path(__file__).resolve().parents[2]
KUBE = REPO / "deploy" / "kubernetes"
SCHEMAS = Path(__file__).resolve().parent.parent / "k8s_schemas"
KUBERNETES_VERSION = "1.30"
CRD_SCHEMAS = {"ServiceMonitor": "servicemonitor.json", "PrometheusRule": "prometheusrule.json"}
BIN = Path(sys.executable).parent


def _documents() -> list[tuple[Path, dict[str, Any]]]:
    docs = []
    for path in sorted(KUBE.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                docs.append((path, doc))
    return docs


def _workloads() -> list[dict[str, Any]]:
    return [d for _, d in _documents() if d["kind"] in {"DaemonSet", "StatefulSet", "Deployment"}]


@pytest.mark.parametrize(
    ("path", "doc"),
    [(p, d) for p, d in _documents()],
    ids=[f"{p.name}:{d['kind']}:{d['metadata']['name']}" for p, d in _documents()],
)
def test_every_object_validates(path: Path, doc: dict[str, Any]) -> None:
    if doc["kind"] in CRD_SCHEMAS:
        schema = json.loads((SCHEMAS / CRD_SCHEMAS[doc["kind"]]).read_text())
        jsonschema.validate(doc, schema)
    else:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_validation_catches_a_typo() -> None:
    """The validators are not vacuous: a misspelt field fails both kinds of schema."""
    daemonset = next(d for d in _workloads() if d["kind"] == "DaemonSet")
    broken = json.loads(json.dumps(daemonset))
    broken["spec"]["template"]["spec"]["containers"][0]["securityContxt"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)
    monitor = next(d for _, d in _documents() if d["kind"] == "ServiceMonitor")
    broken = json.loads(json.dumps(monitor))
    broken["spec"]["endpoints"][0]["intervall"] = "15s"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, json.loads((SCHEMAS / "servicemonitor.json").read_text()))


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((KUBE / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"])
    present = {p.name for p in KUBE.glob("*.yaml")} - {"kustomization.yaml"}
    examples = {name for name in present if ".example." in name}
    assert listed == present - examples


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (kustomize) not installed")
def test_kustomize_build_puts_everything_in_one_namespace() -> None:
    result = subprocess.run(
        ["kubectl", "kustomize", str(KUBE)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    objects = [d for d in yaml.safe_load_all(result.stdout) if d]
    namespaced = [o for o in objects if o["kind"] != "Namespace"]
    assert {o["metadata"].get("namespace") for o in namespaced} == {"gpu-health"}
    assert {o["kind"] for o in objects} >= {"DaemonSet", "StatefulSet", "ServiceMonitor"}


@pytest.mark.parametrize("workload", _workloads(), ids=lambda w: w["metadata"]["name"])
def test_least_privilege(workload: dict[str, Any]) -> None:
    pod = workload["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert not pod.get("hostNetwork") and not pod.get("hostPID") and not pod.get("hostIPC")
    for container in pod["containers"]:
        sc = container["securityContext"]
        assert sc.get("privileged", False) is False
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["capabilities"]["drop"] == ["ALL"]
        assert "add" not in sc["capabilities"]
        resources = container["resources"]
        assert set(resources["requests"]) >= {"cpu", "memory"}
        assert "memory" in resources["limits"]
    for volume in pod.get("volumes", []):
        if "hostPath" in volume:
            # the kubelet's pod-resources socket and the kernel log, nothing else of the host
            assert volume["hostPath"]["path"] in ("/var/lib/kubelet/pod-resources", "/dev/kmsg")
            mounts = [
                m
                for c in pod["containers"]
                for m in c["volumeMounts"]
                if m["name"] == volume["name"]
            ]
            assert all(m["readOnly"] for m in mounts)


@pytest.mark.parametrize("workload", _workloads(), ids=lambda w: w["metadata"]["name"])
def test_container_flags_exist_in_the_commands(workload: dict[str, Any]) -> None:
    """Every --flag the manifests pass is one the real command accepts (per its --help)."""
    for container in workload["spec"]["template"]["spec"]["containers"]:
        command = container["command"][0]
        args = container.get("args", [])
        sub = [a for a in args if not a.startswith("-")][:1]
        help_text = subprocess.run(
            [str(BIN / command), *sub, "--help"], capture_output=True, text=True, check=False
        ).stdout
        for arg in args:
            if arg.startswith("--"):
                flag = arg.split("=", 1)[0]
                assert re.search(re.escape(flag) + r"\b", help_text), f"{command} has no {flag}"


def test_generated_manifests_are_up_to_date() -> None:
    for relative, content in kube_manifests.render_all(REPO).items():
        path = REPO / relative
        assert path.exists() and path.read_text() == content, (
            f"{relative} is stale: run gpu-health generate"
        )


def test_prometheusrule_carries_every_generated_rule() -> None:
    rule_doc = yaml.safe_load((REPO / kube_manifests.RULE_FILE).read_text())
    carried = {
        r.get("alert") or r.get("record") for g in rule_doc["spec"]["groups"] for r in g["rules"]
    }
    generated = set()
    for path in (REPO / "rules").glob("*.yaml"):
        for group in yaml.safe_load(path.read_text())["groups"]:
            generated |= {r.get("alert") or r.get("record") for r in group["rules"]}
    assert carried == generated and generated


def test_dashboards_configmaps_carry_every_dashboard() -> None:
    maps = [d for d in yaml.safe_load_all((REPO / kube_manifests.DASHBOARD_FILE).read_text()) if d]
    carried = {name for m in maps for name in m["data"]}
    assert carried == {p.name for p in (REPO / "grafana").glob("*.json")} and carried
    for config_map in maps:
        assert config_map["metadata"]["labels"][kube_manifests.GRAFANA_SIDECAR_LABEL] == "1"
        for text in config_map["data"].values():
            assert json.loads(text)["uid"]
