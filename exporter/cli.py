"""``gpu-health-exporter``: serve GPU metrics and health scores to Prometheus.

Default port 9840: 9400 (dcgm-exporter) and 9835 (utkuozdemir/nvidia_gpu_exporter) are taken on
the Prometheus default-port-allocations page, and an operator migrating from either wants both
running side by side on a node. (Registering the port on that wiki page is a release task.)
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from gpu_health import __version__, cli_validate
from gpu_health.cli_support import (
    OneLineArgumentParser,
    configure_logging,
    explicit_options,
    log_level_argument,
    run_main,
)
from gpu_health.config import show
from gpu_health.errors import UserError
from gpu_health.exporter.backend import Backend
from gpu_health.exporter.label_values import MAX_LABEL_VALUE, displayed, node_name_problem
from gpu_health.telemetry.readings import BackendUnavailableError

log = logging.getLogger("gpu_health.exporter")

DEFAULT_PORT = 9840
DEFAULT_LISTEN = f":{DEFAULT_PORT}"
BACKENDS = ("auto", "nvml", "dcgm", "replay", "sim")


# Every numeric flag is finite and bounded (gpu_health.cli_validate): nan/inf never pass.
_positive_float = cli_validate.number(0.0, 1e6, exclusive_minimum=True)
_seconds = cli_validate.number(0.0, 86400.0, exclusive_minimum=True)
_gpu_count = cli_validate.integer(1, cli_validate.MAX_EXPORTER_GPUS)


def _node_name(text: str) -> str:
    """A ``node`` label value: not blank, valid UTF-8 text, at most 253 characters
    (:func:`~gpu_health.exporter.label_values.node_name_problem`)."""
    problem = node_name_problem(text)
    if problem == "must not be empty":
        raise argparse.ArgumentTypeError(f"{problem} (or leave it out for the default)")
    if problem:
        raise argparse.ArgumentTypeError(f"{show(text)}: {problem}")
    return text


def default_node_name() -> str:
    return os.environ.get("NODE_NAME") or socket.gethostname()


def node_name(args: argparse.Namespace) -> str:
    """The ``node`` label: --node-name (checked as it is parsed), else $NODE_NAME, else the
    hostname; a default that cannot be a label value is a one-line UserError naming where it
    came from, never a node whose every scrape fails."""
    if args.node_name:
        return str(args.node_name)
    env = os.environ.get("NODE_NAME")
    if env:
        text, where, fix = env, "the NODE_NAME environment variable", "fix it or set --node-name"
    else:
        text, where, fix = socket.gethostname(), "the hostname", "set --node-name or NODE_NAME"
    problem = node_name_problem(text)
    if problem:
        raise UserError(f"{where} {show(text)} cannot be the node label: {problem} ({fix})")
    return text


def build_parser() -> argparse.ArgumentParser:
    from gpu_health.exporter.backends.sim import fault_help

    parser = OneLineArgumentParser(
        prog="gpu-health-exporter",
        description="Prometheus exporter for GPU health: raw NVML/DCGM metrics with "
        "dcgm-exporter parity, XID counts and a per-GPU health score. Endpoints: /metrics, "
        "/healthz, /.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        default="auto",
        help="telemetry source: nvml (driver), dcgm (DCGM bindings), replay (recorded H100), "
        "sim (simulated fleet); auto = nvml when a driver answers, else an error — it never "
        "silently simulates (default: %(default)s)",
    )
    parser.add_argument(
        "--web.listen-address",
        dest="listen_address",
        default=DEFAULT_LISTEN,
        metavar="HOST:PORT",
        help="address to serve on (default: %(default)s, all interfaces)",
    )
    parser.add_argument(
        "--web.config.file",
        dest="web_config_file",
        type=Path,
        default=None,
        metavar="FILE",
        help="exporter-toolkit web config (TLS, basic auth); default: plain HTTP",
    )
    parser.add_argument(
        "--web.max-requests",
        dest="web_max_requests",
        type=cli_validate.integer(1, 10_000),
        default=40,
        metavar="N",
        help="requests served at once; more wait briefly, then get 503 (as node_exporter's "
        "flag; idle and slow connections never count) (default: %(default)s)",
    )
    parser.add_argument(
        "--node-name",
        type=_node_name,
        default=None,
        help=f"value of the node label, UTF-8 text of at most {MAX_LABEL_VALUE} characters "
        f"(default: $NODE_NAME or the hostname, here {displayed(default_node_name())}; the "
        "sim backend keeps its simulated node names unless given)",
    )
    parser.add_argument(
        "--poll-interval",
        type=_seconds,
        default=10.0,
        metavar="SECONDS",
        help="how often the background poller refreshes expensive NVML readings (energy, "
        "PCIe throughput, violation time, PCIe replays) (default: %(default)s)",
    )
    parser.add_argument(
        "--health.policy",
        dest="health_policy",
        type=Path,
        default=None,
        metavar="FILE",
        help="health-model policy YAML overlaying the shipped defaults",
    )
    parser.add_argument(
        "--kubernetes.pod-resources-socket",
        dest="pod_resources_socket",
        default=None,
        metavar="PATH",
        help="kubelet pod-resources socket (e.g. /var/lib/kubelet/pod-resources/kubelet.sock): "
        "export gpu_pod_info naming the pod holding each GPU; default: off",
    )
    parser.add_argument(
        "--kubernetes.refresh-interval",
        dest="pod_resources_refresh",
        type=_seconds,
        default=10.0,
        metavar="SECONDS",
        help="how often the pod map is re-read from the kubelet (default: %(default)s)",
    )
    parser.add_argument(
        "--kubernetes.pod-labels",
        dest="pod_labels",
        action="store_true",
        help="also put namespace, pod and container labels on every per-GPU series while a pod "
        "holds the GPU (dcgm-exporter's behaviour; more series churn than joining gpu_pod_info)",
    )
    log_level_argument(parser)

    kernel_log = parser.add_argument_group("kernel log (XIDs since boot, NVSwitch SXids)")
    kernel_log.add_argument(
        "--kernel-log.disable",
        dest="kernel_log_disable",
        action="store_true",
        help="do not read the kernel log; XIDs then come from NVML events alone, counted since "
        "the exporter started (default: read /dev/kmsg, else the journal, when readable; for "
        "the nvml and dcgm backends only, since replayed and simulated GPUs are not the host's)",
    )
    kernel_log.add_argument(
        "--kernel-log.path",
        dest="kernel_log_path",
        default=None,
        metavar="PATH",
        help="kmsg device (or a file in its format) to read instead of /dev/kmsg; also turns "
        "the kernel log on for the replay and sim backends",
    )

    replay = parser.add_argument_group("replay backend")
    replay.add_argument(
        "--replay.fixture",
        dest="replay_fixture",
        type=Path,
        default=None,
        metavar="FILE",
        help="NVML fixture JSON to serve (default: the bundled H100 readings)",
    )
    replay.add_argument(
        "--replay.gpus",
        dest="replay_gpus",
        type=_gpu_count,
        default=1,
        help="serve the fixture as this many GPUs, at most "
        f"{cli_validate.MAX_EXPORTER_GPUS} (default: %(default)s)",
    )
    replay.add_argument(
        "--replay.trace",
        dest="replay_trace",
        default=None,
        metavar="CSV|h100",
        help="step through a load trace ('h100' = the bundled 100 s matmul trace); "
        "default: serve the fixture's static values",
    )
    replay.add_argument(
        "--replay.rate",
        dest="replay_rate",
        type=_positive_float,
        default=1.0,
        help="trace seconds per wall-clock second (default: %(default)s)",
    )

    replay.add_argument(
        "--replay.fault",
        dest="replay_faults",
        action="append",
        default=[],
        metavar="CALL[@GPU][=ERROR]",
        help="after start-up, make an NVML call fail (repeatable; testing aid): e.g. "
        "'*@1=GPU_IS_LOST' loses GPU 1, 'nvmlDeviceGetPowerUsage@0=TIMEOUT' fails one reading; "
        "errors: NOT_SUPPORTED, GPU_IS_LOST, UNKNOWN, TIMEOUT, ...",
    )

    sim = parser.add_argument_group("sim backend")
    sim.add_argument(
        "--sim-gpus",
        type=_gpu_count,
        default=8,
        help=f"GPUs, at most {cli_validate.MAX_EXPORTER_GPUS} (default: %(default)s)",
    )
    sim.add_argument(
        "--sim-seed",
        type=cli_validate.integer(0, 2**32 - 1),
        default=0,
        help="random seed (default: %(default)s)",
    )
    sim.add_argument(
        "--sim-speed",
        type=_positive_float,
        default=1.0,
        help="simulated seconds per wall-clock second (default: %(default)s)",
    )
    sim.add_argument(
        "--sim-fault",
        action="append",
        default=[],
        metavar="FAULT",
        help=fault_help().replace("%", "%%"),
    )
    sim.add_argument(
        "--sim-faults-file",
        type=Path,
        default=None,
        metavar="FILE",
        help="faults YAML file (the --sim-fault keys under faults:), watched while running: "
        "entries added later are injected; an invalid entry is logged and skipped",
    )
    sim.add_argument(
        "--sim-start-time",
        type=cli_validate.number(0.0, 4102444800.0),
        default=None,
        metavar="UNIX_SECONDS",
        help="simulated clock start (default: now)",
    )
    sim.add_argument(
        "--sim-hazard-scale",
        type=cli_validate.number(0.0, cli_validate.MAX_HAZARD_SCALE, exclusive_minimum=True),
        default=1.0,
        metavar="X",
        help="multiply every failure rate; must match the backfill's --hazard-scale when the "
        "live fleet continues a backfilled history (default: %(default)s = published rates)",
    )
    return parser


def make_backend(args: argparse.Namespace) -> Backend:
    """The backend the flags ask for; BackendUnavailableError when it cannot start here."""
    if args.backend == "sim":  # keeps its simulated node names, or takes --node-name later
        return _make_sim(args)
    node = node_name(args)
    if args.backend in ("auto", "nvml"):
        from gpu_health.exporter.backends.nvml import NvmlBackend

        try:
            return NvmlBackend(node=node, poll_interval=args.poll_interval)
        except BackendUnavailableError as exc:
            prefix = "--backend auto: no NVIDIA driver answered; " if args.backend == "auto" else ""
            raise BackendUnavailableError(
                f"{prefix}{exc}; without a GPU run --backend sim (simulated fleet) or "
                "--backend replay (recorded H100)"
            ) from None
    if args.backend == "replay":
        from gpu_health.exporter.backends.replay import ReplayBackend, resolve_trace

        check_replay_faults(args.replay_faults, args.replay_gpus)
        return ReplayBackend(
            fixture=args.replay_fixture,
            gpus=args.replay_gpus,
            trace=resolve_trace(args.replay_trace),
            rate=args.replay_rate,
            node=node,
            poll_interval=args.poll_interval,
            faults=args.replay_faults,
        )
    if args.backend == "dcgm":
        from gpu_health.exporter.backends.dcgm import DcgmBackend

        return DcgmBackend(node=node)
    raise AssertionError(f"unknown backend {args.backend!r}")  # argparse's choices refuse it


def _make_sim(args: argparse.Namespace) -> Backend:
    from gpu_health.exporter.backends.sim import make_sim_backend

    try:
        return make_sim_backend(
            gpus=args.sim_gpus,
            seed=args.sim_seed,
            speed=args.sim_speed,
            faults=list(args.sim_fault),
            faults_file=args.sim_faults_file,
            start_time=args.sim_start_time,
            hazard_scale=args.sim_hazard_scale,
        )
    except ValueError as exc:
        raise UserError(f"--backend sim: {exc}") from None


def check_replay_faults(faults: Sequence[str], gpus: int) -> None:
    """Refuse a --replay.fault naming an NVML call the fake does not have or a GPU it does not
    serve: such a fault would silently never fire, and the test relying on it pass for nothing."""
    from gpu_health.exporter.backends.replay import parse_fault
    from gpu_health.exporter.fake_nvml import FakeNvml

    calls = {name for name in dir(FakeNvml) if name.startswith("nvml")}
    for text in faults:
        call, gpu, _error = parse_fault(text)
        if call != "*" and call not in calls:
            raise UserError(
                f"--replay.fault {text!r}: unknown NVML call {call!r} "
                "(allowed: '*' or an nvml* call name, e.g. nvmlDeviceGetPowerUsage)"
            )
        if gpu is not None and gpu >= gpus:
            raise UserError(
                f"--replay.fault {text!r}: GPU {gpu} does not exist (allowed: 0 to {gpus - 1})"
            )


def make_health(policy_path: Path | None) -> Any | None:
    """The health tracker, or None (with a warning) while the model is not installed."""
    try:
        from gpu_health.health.model import HealthTracker
        from gpu_health.health.policy import load_policy
    except ImportError as exc:
        if policy_path is not None:
            raise UserError(
                f"--health.policy given but the health model is missing: {exc}"
            ) from None
        log.warning("health model unavailable, serving raw metrics only: %s", exc)
        return None
    return HealthTracker(load_policy(policy_path))


def make_pod_attribution(args: argparse.Namespace) -> Any | None:
    """Pod attribution when a kubelet socket is given (grpcio is the ``k8s`` extra)."""
    if not args.pod_resources_socket:
        return None
    try:
        import grpc  # noqa: F401 - only checking the optional dependency is there
    except ImportError:
        raise UserError(
            "--kubernetes.pod-resources-socket needs grpcio: pip install 'gpu-health-monitor[k8s]'"
        ) from None
    from gpu_health.exporter.kube.podresources import PodAttribution

    # A kubelet that is not answering yet is logged and retried, not fatal: the exporter's GPU
    # metrics matter more than attribution (gpu_exporter_pod_resources_errors_total counts it).
    return PodAttribution(
        args.pod_resources_socket, refresh_seconds=args.pod_resources_refresh
    ).start()


class Exporter:
    """Backend + collector + HTTP server; :meth:`close` stops all three."""

    def __init__(self, args: argparse.Namespace) -> None:
        from prometheus_client import CollectorRegistry
        from prometheus_client.process_collector import ProcessCollector

        from gpu_health.exporter.collector import ExporterCollector, scored_xids
        from gpu_health.exporter.kmsg.source import KernelLog, check_path, options_for
        from gpu_health.web.server import WebServer

        if not args.kernel_log_disable:
            check_path(args.kernel_log_path)  # before a slow backend start, not after
        try:
            self.backend = make_backend(args)
        except BackendUnavailableError as exc:
            raise UserError(str(exc)) from None
        try:
            health = make_health(args.health_policy)
            self.pods = make_pod_attribution(args)
            identities = self.backend.inventory()
            if args.node_name and any(i.node != args.node_name for i in identities):
                # the sim names its own nodes; an explicit --node-name wins
                identities = [dataclasses.replace(i, node=args.node_name) for i in identities]
            if not identities:
                log.warning("the %s backend found no GPU", self.backend.name)
            self.kernel_log = KernelLog.start(
                identities,
                options_for(args.backend, args.kernel_log_disable, args.kernel_log_path),
                keep=scored_xids(health),
            )
            self.collector = ExporterCollector(
                self.backend,
                identities,
                health,
                __version__,
                self.pods,
                args.pod_labels,
                kernel_log=self.kernel_log,
            )
            registry = CollectorRegistry(auto_describe=False)
            registry.register(self.collector)
            ProcessCollector(registry=registry)
            self.server = WebServer(
                args.listen_address,
                self.routes(registry),
                web_config=args.web_config_file,
                max_in_flight=getattr(args, "web_max_requests", 40),
            )
            registry.register(self.server.metrics_collector("gpu_exporter"))
        except BaseException:
            self.backend.close()
            kernel_log = getattr(self, "kernel_log", None)
            if kernel_log is not None:
                kernel_log.close()
            pods = getattr(self, "pods", None)
            if pods is not None:
                pods.stop()
            raise
        self.identities = identities

    def routes(self, registry: Any) -> dict[str, Any]:
        from gpu_health.web.server import Request, Response, landing_page, metrics_handler

        def healthz(_: Request) -> Response:
            probe = self.collector.probe()
            text = f"{probe.up}/{probe.total} GPUs answering\n"
            if probe.up == 0:
                return Response(503, f"unhealthy: {text}".encode())
            return Response(200, f"ok: {text}".encode())

        return {
            "/metrics": metrics_handler(registry),
            "/healthz": healthz,
            "/": landing_page(
                "GPU health exporter",
                {"/metrics": "Metrics", "/healthz": "Health (GPUs answering)"},
            ),
        }

    def start(self) -> Exporter:
        self.server.start()
        return self

    @property
    def port(self) -> int:
        return self.server.port

    def close(self) -> None:
        self.server.shutdown()
        if self.pods is not None:
            self.pods.stop()
        if self.kernel_log is not None:
            self.kernel_log.close()
        self.backend.close()


def run(args: argparse.Namespace) -> int:
    configure_logging(args.log_level)
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s, shutting down", signal.Signals(signum).name)
        stop.set()

    def abort_start_up(signum: int, _frame: FrameType | None) -> None:
        # Building a backend can take a while (many simulated GPUs, a slow driver); a flag
        # would only be read after it, so a SIGTERM now ends start-up at once.
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, abort_start_up)
    signal.signal(signal.SIGINT, abort_start_up)
    exporter = Exporter(args).start()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    log.info(
        "serving %d GPU(s) from the %s backend on %s (port %d)",
        len(exporter.identities),
        exporter.backend.name,
        args.listen_address,
        exporter.port,
    )
    try:
        while not stop.wait(1.0):
            pass
    finally:
        exporter.close()
    log.info("stopped")
    return 0


#: Options that only one backend reads, by the group that lists them in ``--help``.
_BACKEND_GROUPS = {"sim": "sim backend", "replay": "replay backend"}


def ignored_options(
    parser: argparse.ArgumentParser, args: argparse.Namespace, argv: Sequence[str] | None
) -> str:
    """Why options given on the command line would have no effect, or "" (one line).

    An outside trial gave ``--backend replay`` a faults file with an invalid entry and
    ``--sim-gpus 5``, ``--kernel-log.path`` beside ``--kernel-log.disable``, and
    ``--kubernetes.pod-labels`` without the pod-resources socket: each was accepted and did
    nothing, and the operator believed it applied."""
    given = explicit_options(build_parser, argv)
    groups = {g.title: g for g in parser._action_groups}
    for backend, title in _BACKEND_GROUPS.items():
        if args.backend == backend:
            continue
        flags = [given[a.dest] for a in groups[title]._group_actions if a.dest in given]
        if flags:
            return (
                f"{', '.join(flags)}: only the {backend} backend reads "
                f"{'it' if len(flags) == 1 else 'them'} (--backend {args.backend}); "
                f"add --backend {backend} or leave {'it' if len(flags) == 1 else 'them'} out"
            )
    if "kernel_log_path" in given and args.kernel_log_disable:
        return "--kernel-log.path: --kernel-log.disable turns the kernel log off; give one of them"
    if "pod_labels" in given and not args.pod_resources_socket:
        return (
            "--kubernetes.pod-labels: the pod labels come from the kubelet's pod-resources API; "
            "give --kubernetes.pod-resources-socket too"
        )
    return ""


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(list(argv) if argv is not None else None)
    problem = ignored_options(parser, args, argv)
    if problem:
        parser.error(problem)
    return run_main(lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
