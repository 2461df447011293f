"""Pod attribution against a real gRPC server built from the published pod-resources v1 proto."""

from __future__ import annotations

import importlib
import sys
import time
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from types import ModuleType
from typing import Any

import grpc
import pytest
from grpc_tools import protoc

from gpu_health.errors import UserError
from gpu_health.exporter.kube import podresources

PROTO = Path(podresources.__file__).with_name("podresources_v1.proto")


@pytest.fixture(scope="module")
def pb2(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    """Compile the proto with protoc (grpc_tools) so the server side is protoc's own encoder."""
    out = tmp_path_factory.mktemp("pb2")
    code = protoc.main(["protoc", f"-I{PROTO.parent}", f"--python_out={out}", str(PROTO)])
    assert code == 0
    sys.path.insert(0, str(out))
    try:
        yield importlib.import_module("podresources_v1_pb2")
    finally:
        sys.path.remove(str(out))


class FakeKubelet:
    """A gRPC server on a unix socket answering List with whatever the test sets."""

    def __init__(self, pb2: ModuleType, socket_path: Path) -> None:
        self.pb2 = pb2
        self.socket_path = socket_path
        self.pods: list[dict[str, Any]] = []
        self.calls = 0
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        handler = grpc.method_handlers_generic_handler(
            "v1.PodResourcesLister",
            {
                "List": grpc.unary_unary_rpc_method_handler(
                    self._list,
                    request_deserializer=pb2.ListPodResourcesRequest.FromString,
                    response_serializer=lambda m: m.SerializeToString(),
                )
            },
        )
        self.server.add_generic_rpc_handlers((handler,))
        self.server.add_insecure_port(f"unix://{socket_path}")

    def _list(self, _request: Any, _context: Any) -> Any:
        self.calls += 1
        response = self.pb2.ListPodResourcesResponse()
        for pod in self.pods:
            p = response.pod_resources.add(name=pod["name"], namespace=pod["namespace"])
            for cname, devices in pod["containers"].items():
                c = p.containers.add(name=cname)
                c.cpu_ids.extend([0, 1, 2])  # fields the exporter ignores must not confuse it
                for resource, ids in devices.items():
                    d = c.devices.add(resource_name=resource)
                    d.device_ids.extend(ids)
                    d.topology.nodes.add(ID=1)
        return response

    def start(self) -> FakeKubelet:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop(grace=None)


@pytest.fixture
def kubelet(pb2: ModuleType, tmp_path: Path) -> Iterator[FakeKubelet]:
    server = FakeKubelet(pb2, tmp_path / "kubelet.sock").start()
    try:
        yield server
    finally:
        server.stop()


TRAINING_POD = {
    "name": "llm-train-0",
    "namespace": "research",
    "containers": {
        "trainer": {"nvidia.com/gpu": ["GPU-aaaa", "GPU-bbbb"], "example.com/nic": ["mlx5_0"]},
        "sidecar": {},
    },
}


def test_list_decodes_protoc_encoded_reply(kubelet: FakeKubelet) -> None:
    kubelet.pods = [
        TRAINING_POD,
        {
            "name": "inference",
            "namespace": "prod",
            "containers": {"srv": {"nvidia.com/mig-1g.10gb": ["MIG-1"]}},
        },
    ]
    allocations = podresources.list_allocations(str(kubelet.socket_path))
    assert (
        podresources.Allocation("research", "llm-train-0", "trainer", "nvidia.com/gpu", "GPU-bbbb")
        in allocations
    )
    assert (
        podresources.Allocation("prod", "inference", "srv", "nvidia.com/mig-1g.10gb", "MIG-1")
        in allocations
    )
    assert len(allocations) == 4  # two GPUs, one NIC, one MIG slice


def test_attribution_maps_gpus_and_ignores_other_devices(kubelet: FakeKubelet) -> None:
    kubelet.pods = [TRAINING_POD]
    attribution = podresources.PodAttribution(str(kubelet.socket_path))
    attribution.refresh()
    ref = attribution.lookup("GPU-aaaa", 0)
    assert ref == podresources.PodRef("research", "llm-train-0", "trainer")
    assert attribution.lookup("mlx5_0", 9) is None
    assert attribution.lookup("GPU-free", 5) is None


def test_attribution_follows_pods_coming_and_going(kubelet: FakeKubelet) -> None:
    kubelet.pods = [TRAINING_POD]
    attribution = podresources.PodAttribution(
        str(kubelet.socket_path), refresh_seconds=0.05
    ).start()
    try:
        assert attribution.lookup("GPU-aaaa", 0) is not None
        kubelet.pods = []
        deadline = time.monotonic() + 5
        while attribution.lookup("GPU-aaaa", 0) is not None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert attribution.lookup("GPU-aaaa", 0) is None
        assert kubelet.calls >= 2
    finally:
        attribution.stop()


def test_kubelet_down_keeps_last_map_then_goes_stale(kubelet: FakeKubelet) -> None:
    kubelet.pods = [TRAINING_POD]
    attribution = podresources.PodAttribution(str(kubelet.socket_path), stale_after_seconds=0.3)
    attribution.refresh()
    kubelet.stop()
    attribution.refresh()  # fails: counted, old map kept
    assert attribution.errors == 1
    assert attribution.lookup("GPU-aaaa", 0) is not None
    time.sleep(0.4)
    assert attribution.lookup("GPU-aaaa", 0) is None


def test_missing_socket_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"pod-resources at .*nope\.sock"):
        podresources.list_allocations(str(tmp_path / "nope.sock"), timeout=1)


@pytest.mark.parametrize(
    "garbage", [b"\x0a\x05abc", b"\x0a\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", b"\x0f"]
)
def test_malformed_reply_raises_wire_format_error(garbage: bytes) -> None:
    with pytest.raises(podresources.WireFormatError):
        podresources.decode_list_response(garbage)


def test_exporter_labels_gpu_series_with_the_pod_holding_them(
    kubelet: FakeKubelet, tmp_path: Path
) -> None:
    """The exporter process, pointed at the kubelet socket, puts the pod on that GPU's series."""
    import socket
    import subprocess
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    from gpu_health import stack

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    exporter = subprocess.Popen(
        [str(Path(sys.executable).parent / "gpu-health-exporter"), "--backend", "replay",
         "--replay.gpus", "2", "--web.listen-address", f"127.0.0.1:{port}",
         "--kubernetes.pod-resources-socket", str(kubelet.socket_path),
         "--kubernetes.refresh-interval", "0.2", "--kubernetes.pod-labels"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    try:
        stack.wait_until(f"http://127.0.0.1:{port}/healthz", 30, exporter)
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read()
        uuids = {
            s.labels["gpu"]: s.labels["uuid"]
            for f in text_string_to_metric_families(body.decode())
            for s in f.samples
            if f.name == "gpu_up"
        }
        kubelet.pods = [
            {"name": "llm-train-0", "namespace": "research",
             "containers": {"trainer": {"nvidia.com/gpu": [uuids["1"]]}}}
        ]  # fmt: skip
        deadline = time.monotonic() + 10
        held: dict[str, tuple[str, str, str]] = {}
        while time.monotonic() < deadline:
            body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read()
            held = {
                s.labels["gpu"]: (s.labels["namespace"], s.labels["pod"], s.labels["container"])
                for f in text_string_to_metric_families(body.decode())
                for s in f.samples
                if f.name in ("gpu_power_watts", "gpu_health_score") and "pod" in s.labels
            }
            if held.get("1", ("",))[0]:
                break
            time.sleep(0.2)
        assert held["1"] == ("research", "llm-train-0", "trainer")
        assert held["0"] == ("", "", "")
    finally:
        stack.stop_process(exporter)
