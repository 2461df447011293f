"""Pod attribution: which namespace, pod and container holds each GPU, from the kubelet.

The kubelet serves the pod-resources API (gRPC, ``v1.PodResourcesLister/List``) on a unix socket,
by default ``/var/lib/kubelet/pod-resources/kubelet.sock``. dcgm-exporter reads the same API to
put ``namespace``/``pod``/``container`` labels on a GPU's series while a pod holds it; we do the
same, so per-job dashboards and alerts work unchanged.

The reply is decoded by hand (protobuf wire format, four nested messages) so the exporter needs
grpcio for the transport only, and no generated code or protobuf runtime. ``podresources_v1.proto``
beside this file documents the fields read; the tests compile it with grpc_tools to run a real
gRPC server, so the decoder is checked against protoc's encoder, not against itself.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from gpu_health.errors import UserError

log = logging.getLogger(__name__)

DEFAULT_SOCKET = "/var/lib/kubelet/pod-resources/kubelet.sock"
LIST_METHOD = "/v1.PodResourcesLister/List"
#: Resource names that denote NVIDIA GPUs (whole GPUs, MIG slices, shared/time-sliced GPUs).
GPU_RESOURCE_PREFIXES = ("nvidia.com/gpu", "nvidia.com/mig-")


class WireFormatError(ValueError):
    """The bytes are not a valid protobuf message of the expected shape."""


@dataclass(frozen=True)
class Allocation:
    """One device held by one container."""

    namespace: str
    pod: str
    container: str
    resource_name: str
    device_id: str


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = 0
    shift = 0
    while True:
        if pos >= len(buf):
            raise WireFormatError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise WireFormatError("varint too long")


def _fields(buf: bytes) -> Iterator[tuple[int, int, bytes | int]]:
    """Yield (field number, wire type, value) for each field of one message."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire_type = key >> 3, key & 0x7
        if number == 0:
            raise WireFormatError("field number 0")
        if wire_type == 0:
            value, pos = _varint(buf, pos)
            yield number, wire_type, value
        elif wire_type == 2:
            length, pos = _varint(buf, pos)
            if pos + length > len(buf):
                raise WireFormatError("truncated length-delimited field")
            yield number, wire_type, buf[pos : pos + length]
            pos += length
        elif wire_type == 1:
            pos += 8
        elif wire_type == 5:
            pos += 4
        else:
            raise WireFormatError(f"unsupported wire type {wire_type}")
        if pos > len(buf):
            raise WireFormatError("truncated fixed-width field")


def _text(value: bytes | int) -> str:
    if isinstance(value, int):
        raise WireFormatError("expected a string, got a varint")
    return value.decode("utf-8", errors="replace")


def _message(value: bytes | int) -> bytes:
    if isinstance(value, int):
        raise WireFormatError("expected a message, got a varint")
    return value


def decode_list_response(buf: bytes) -> list[Allocation]:
    """Decode ``ListPodResourcesResponse`` into one Allocation per (container, device)."""
    allocations: list[Allocation] = []
    for number, _, pod_value in _fields(buf):
        if number != 1:  # pod_resources
            continue
        pod = namespace = ""
        containers: list[bytes] = []
        for f, _, v in _fields(_message(pod_value)):
            if f == 1:
                pod = _text(v)
            elif f == 2:
                namespace = _text(v)
            elif f == 3:
                containers.append(_message(v))
        for container_buf in containers:
            container = ""
            devices: list[bytes] = []
            for f, _, v in _fields(container_buf):
                if f == 1:
                    container = _text(v)
                elif f == 2:
                    devices.append(_message(v))
            for device_buf in devices:
                resource = ""
                ids: list[str] = []
                for f, _, v in _fields(device_buf):
                    if f == 1:
                        resource = _text(v)
                    elif f == 2:
                        ids.append(_text(v))
                allocations.extend(
                    Allocation(namespace, pod, container, resource, device_id) for device_id in ids
                )
    return allocations


def list_allocations(socket_path: str = DEFAULT_SOCKET, timeout: float = 5.0) -> list[Allocation]:
    """Call ``List`` on the kubelet socket (raises ``UserError`` with the reason on failure)."""
    try:
        import grpc
    except ImportError:
        raise UserError(
            "pod attribution needs grpcio: pip install 'gpu-health-monitor[k8s]'"
        ) from None
    target = f"unix://{socket_path}"
    with grpc.insecure_channel(target) as channel:
        call = channel.unary_unary(
            LIST_METHOD,
            request_serializer=lambda _request: b"",
            response_deserializer=decode_list_response,
        )
        try:
            result: list[Allocation] = call(None, timeout=timeout)
        except grpc.RpcError as exc:
            code = exc.code() if hasattr(exc, "code") else "unknown"
            raise UserError(f"kubelet pod-resources at {socket_path}: {code}") from None
    return result


@dataclass(frozen=True)
class PodRef:
    namespace: str
    pod: str
    container: str


class PodAttribution:
    """A refreshed map from GPU (uuid or index) to the pod holding it.

    The kubelet is asked every ``refresh_seconds`` by a background thread, never on the scrape
    path; if the kubelet stops answering, the last map is kept for ``stale_after_seconds`` and
    then dropped, so a dead kubelet cannot pin a GPU to a pod that is long gone.
    """

    def __init__(
        self,
        socket_path: str = DEFAULT_SOCKET,
        refresh_seconds: float = 10.0,
        stale_after_seconds: float = 120.0,
        fetch: Callable[[], list[Allocation]] | None = None,
    ) -> None:
        self._fetch = fetch or (lambda: list_allocations(socket_path))
        self._refresh_seconds = refresh_seconds
        self._stale_after = stale_after_seconds
        self._lock = threading.Lock()
        self._by_device: dict[str, PodRef] = {}
        self._updated = 0.0
        self.errors = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def refresh(self) -> None:
        """Ask the kubelet once; keep the old map on failure."""
        try:
            allocations = self._fetch()
        except Exception as exc:  # kubelet restarts are routine; log and keep serving
            self.errors += 1
            log.warning("pod-resources refresh failed: %s", exc)
            return
        mapping = {
            a.device_id: PodRef(a.namespace, a.pod, a.container)
            for a in allocations
            if a.resource_name.startswith(GPU_RESOURCE_PREFIXES)
        }
        with self._lock:
            self._by_device = mapping
            self._updated = time.monotonic()

    def lookup(self, uuid: str, index: int) -> PodRef | None:
        """The pod holding this GPU, by uuid (device plugin default) or index."""
        with self._lock:
            if self._updated and time.monotonic() - self._updated > self._stale_after:
                self._by_device = {}
            return self._by_device.get(uuid) or self._by_device.get(str(index))

    def start(self) -> PodAttribution:
        self.refresh()
        self._thread = threading.Thread(target=self._run, name="pod-resources", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self._refresh_seconds):
            self.refresh()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
