"""Arguments and entry point of ``gpu-health demo``: bring the stack up, show it, tear it down.

Start order follows the data: the notification sink, Alertmanager (delivering to the sink), the
exporter (the live fleet), Prometheus (the backfilled history, the generated rules, scraping the
exporter and the scorer), then the scorer (which reads Prometheus). Every process runs in its own
process group and is stopped on Ctrl-C, SIGTERM, SIGHUP, ``--duration``, any start-up error, or
when one of them ends while the demo runs (:class:`ChildExited` says how).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from gpu_health import cli_validate, stack
from gpu_health.cli_support import OneLineArgumentParser
from gpu_health.demo import history as historylib
from gpu_health.demo import live_faults
from gpu_health.demo import summary as summarylib
from gpu_health.demo.assets import asset_arguments
from gpu_health.demo.processes import (
    ProcessTable,
    one_demo_per_workdir,
    port_or_free,
    stop_leftovers,
)
from gpu_health.errors import UserError

REPO_ROOT = Path(__file__).resolve().parents[3]
RULES_DIR = REPO_ROOT / "rules"
ALERTMANAGER_CONFIG = REPO_ROOT / "alertmanager" / "alertmanager.yml"
#: Alertmanager's --storage.path under the work dir (set by stack.alertmanager).
ALERTMANAGER_DATA = "alertmanager-data"
#: The URLs of a demo that is up (written once every server answers, removed at a clean stop).
URLS_FILE = "urls.json"

#: The usual ports, used when free (else any free port).
PORTS = {
    "prometheus": 9090,
    "alertmanager": 9093,
    "exporter": 9840,
    "scorer": 9836,
    "sink": 9099,
}
SCRAPE_INTERVAL = "5s"
SCORER_INTERVAL = "30s"
#: Piped output gets a summary block this often (a terminal redraws every --refresh seconds).
PLAIN_SUMMARY_EVERY = 30.0
#: The fleet fails this many times more often than the published rates, so two weeks of 64
#: GPUs hold a few failures and a few boards degrading toward one.
DEFAULT_HAZARD_SCALE = 20.0
#: --speed and --hazard-scale take what the demo's exporter takes (it refuses 0).
_POSITIVE = cli_validate.number(0.0, 1e6, exclusive_minimum=True)
_HAZARD = cli_validate.number(0.0, cli_validate.MAX_HAZARD_SCALE, exclusive_minimum=True)


def _workdir(text: str) -> Path:
    """``--workdir``: not empty (an unset shell variable would run the demo in the current
    directory and fill it with data, configs and logs)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return Path(text)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Run the whole stack locally on a simulated fleet: backfill its history, start a real "
        "Prometheus with the generated rules, a real Alertmanager delivering to a local sink "
        "that prints each PagerDuty/Slack notification, the exporter continuing the fleet live, "
        "and the scorer; then print the URLs and a live summary. Ctrl-C stops everything. "
        "Needs Debian's prometheus and prometheus-alertmanager packages."
    )
    parser.add_argument(
        "--gpus",
        type=cli_validate.integer(1, cli_validate.MAX_EXPORTER_GPUS),
        default=64,
        help="simulated GPUs, 8 per node; one exporter serves them, so at most "
        f"{cli_validate.MAX_EXPORTER_GPUS} (default: %(default)s)",
    )
    parser.add_argument(
        "--days",
        type=cli_validate.number(0.0, 365.0, exclusive_minimum=True),
        default=14.0,
        help="days of backfilled history, at most 365 (default: %(default)s)",
    )
    parser.add_argument(
        "--speed",
        type=_POSITIVE,
        default=1.0,
        help="simulated seconds per wall-clock second for the live fleet (default: %(default)s)",
    )
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="SPEC",
        help="inject a fault into the live fleet, repeatable, e.g. "
        "'gpu=3,fault=xid79,after=30s' (see gpu-health-exporter --help, --sim-fault)",
    )
    parser.add_argument(
        "--seed",
        type=cli_validate.integer(0, 2**32 - 1),
        default=0,
        help="fleet seed, 0 to 4294967295 (default: %(default)s)",
    )
    parser.add_argument(
        "--hazard-scale",
        type=_HAZARD,
        default=DEFAULT_HAZARD_SCALE,
        help="multiply the published failure rates so a small fleet shows failures in a short "
        "history (default: %(default)s; 1 = realistic)",
    )
    parser.add_argument(
        "--resolution",
        default="15m",
        help="time between backfilled samples; finer is slower to backfill (default: %(default)s)",
    )
    parser.add_argument(
        "--workdir",
        type=_workdir,
        default=Path("gpu-health-demo"),
        help="where the data, configs, logs and cached history go (default: ./%(default)s)",
    )
    parser.add_argument(
        "--duration",
        type=cli_validate.number(0.0, 366 * 86400.0, exclusive_minimum=True),
        default=None,
        metavar="SECONDS",
        help="stop by itself this many seconds after the stack is up (default: run until Ctrl-C)",
    )
    parser.add_argument(
        "--refresh",
        type=cli_validate.number(0.0, 3600.0, exclusive_minimum=True),
        default=5.0,
        metavar="SECONDS",
        help="seconds between summary refreshes on a terminal (default: %(default)s)",
    )
    actions = parser.add_subparsers(
        dest="demo_action",
        metavar="ACTION",
        parser_class=OneLineArgumentParser,
        title="while a demo runs",
    )
    live_faults.add_arguments(actions)
    parser.add_argument(
        "--any-ports",
        action="store_true",
        help="give every server a free port instead of the usual ones (9090, 9093, 9840, 9836, "
        "9099 where free): for several demos on one machine, whose checks for a free usual "
        "port could otherwise both succeed before either binds it",
    )
    parser.add_argument(
        "--no-summary",
        action="store_true",
        help="print only the URLs and the notifications, no fleet summary (plain text is used "
        "anyway when the output is not a terminal)",
    )


class Stopped(Exception):
    """A stop signal arrived (SIGTERM, SIGHUP); the stack is being torn down."""


@dataclass(frozen=True)
class Child:
    """A server the demo started and watches while it runs."""

    name: str  # as messages name it: "the exporter", "Prometheus"
    process: subprocess.Popen[bytes]
    log: Path


class ChildExited(Exception):
    """A child ended while the demo ran: the demo never stops one before its tear-down, so
    something else did (a ``kill``, the OOM killer) or it failed. The message says which."""

    def __init__(self, child: Child) -> None:
        self.child = child
        code = child.process.returncode
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = str(-code)
            what = f"was stopped from outside (signal {name})"
        elif code == 0:
            # Every server here ends cleanly, with 0, on a SIGTERM: the demo cannot tell who
            # sent it, only that it did not, as it stops its children only in its tear-down.
            what = (
                "exited with code 0 although the demo did not stop it (stopped from outside, "
                f"e.g. kill {child.process.pid}?)"
            )
        else:
            what = f"exited by itself with code {code}"
        super().__init__(f"{child.name} (pid {child.process.pid}) {what}")


def _validate(args: argparse.Namespace) -> float:
    """Check the arguments; returns the resolution in seconds."""
    from gpu_health.sim.faults import parse_fault
    from gpu_health.sim.timeparse import parse_duration

    resolution = parse_duration(args.resolution, "--resolution")
    if not 1 <= resolution <= 3600:
        raise UserError("--resolution: must be between 1s and 1h")
    for spec in args.fault:
        try:
            fault = parse_fault(spec)
        except (UserError, ValueError) as exc:
            # The simulator names its own option; say it in the demo's terms.
            text = str(exc).removeprefix(f"--sim-fault {spec!r}: ")
            raise UserError(f"--fault {spec!r}: {text}") from None
        if fault.gpu >= args.gpus:
            raise UserError(f"--fault {spec!r}: the fleet has slots 0-{args.gpus - 1}")
    if args.fault:
        # A fault in a slot whose board is away for RMA would be dropped by the simulator, and
        # one the slot's model cannot show (nvlink_errors on an L40S) would never fire.
        slots = live_faults.fleet_slots(args.gpus, args.seed, args.hazard_scale)
        for spec in args.fault:
            fault = parse_fault(spec)
            try:
                live_faults.check_slot(slots, fault.gpu, fault.fault)
            except UserError as exc:
                raise UserError(f"--fault {spec!r}: {exc}") from None
    return resolution


def check_binaries() -> dict[str, str]:
    """Path of each program the demo runs, or one error naming every missing package."""
    found: dict[str, str] = {}
    missing: list[str] = []
    for key, names in (
        ("prometheus", ("prometheus",)),
        ("promtool", ("promtool",)),
        ("alertmanager", ("prometheus-alertmanager", "alertmanager")),
    ):
        try:
            found[key] = stack.find_binary(*names)
        except stack.MissingBinaryError:
            missing.append(names[0])
    if missing:
        packages = sorted({stack.PACKAGES.get(name, name) for name in missing})
        raise UserError(
            f"{', '.join(missing)} not installed; install with: "
            f"sudo apt-get install -y {' '.join(packages)}"
        )
    return found


def _check_repo_files() -> list[Path]:
    rules = sorted(RULES_DIR.glob("*.yaml"))
    if not rules or not ALERTMANAGER_CONFIG.is_file():
        raise UserError(
            f"the generated rules ({RULES_DIR}/*.yaml) and {ALERTMANAGER_CONFIG} were not found; "
            "run the demo from a checkout of gpu-health-monitor (./run.sh demo)"
        )
    return rules


@contextlib.contextmanager
def _stop_signals() -> Iterator[Callable[[], None]]:
    """SIGTERM/SIGHUP raise :class:`Stopped` (SIGINT raises KeyboardInterrupt) exactly once.

    Yields a function that ignores the signals from then on: tear-down must not be interrupted
    half-way, and it is bounded anyway (SIGKILL after a grace period).
    """
    signals = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)
    previous = {s: signal.getsignal(s) for s in signals}

    def ignore_further() -> None:
        for s in signals:
            signal.signal(s, signal.SIG_IGN)

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        ignore_further()
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise Stopped(signal.Signals(signum).name)

    for s in signals:
        signal.signal(s, on_signal)
    try:
        yield ignore_further
    finally:
        ignore_further()
        for s, handler in previous.items():
            signal.signal(s, handler)


def _say(out: TextIO, text: str) -> None:
    print(text, file=out, flush=True)


def run(args: argparse.Namespace) -> int:
    if getattr(args, "demo_action", None) == "fault":
        return live_faults.run(args)
    resolution = _validate(args)
    check_binaries()
    rules = _check_repo_files()
    workdir: Path = args.workdir.resolve()
    try:
        workdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # under /proc, or a file of that name: one line, not a traceback
        raise UserError(f"--workdir {args.workdir}: cannot create it: {exc.strerror}") from None
    with one_demo_per_workdir(workdir):
        return _run_in(args, resolution, rules, workdir)


def _run_in(args: argparse.Namespace, resolution: float, rules: list[Path], workdir: Path) -> int:
    """Run the demo in ``workdir``, which no other demo uses (its lock is held)."""
    out = sys.stdout
    # A run killed too hard to clean up left its URLs: they are not this run's until it is up.
    (workdir / URLS_FILE).unlink(missing_ok=True)
    leftovers = stop_leftovers(workdir)
    if leftovers:
        _say(sys.stderr, f"stopped leftovers of an earlier run: {', '.join(leftovers)}")
    table = ProcessTable(workdir)
    reason = "error"
    exited: ChildExited | None = None
    with contextlib.ExitStack() as resources, _stop_signals() as ignore_signals:
        try:
            _run_stack(args, resolution, rules, workdir, table, resources, out)
            reason = f"--duration {args.duration:g}s elapsed"
        except KeyboardInterrupt:
            reason = "interrupted"
        except Stopped as exc:
            reason = f"received {exc}"
        except ChildExited as exc:
            reason = f"{exc.child.name} ended"
            exited = exc
        finally:
            ignore_signals()
            _say(sys.stderr, f"stopping ({reason}) ...")
            table.stop_owned()
            resources.close()
    alive = [f"{name} {pid}" for name, pid in table.entries if _alive(pid)]
    if alive:
        _say(sys.stderr, f"warning: still running: {', '.join(alive)}")
    else:
        # Nothing runs any more: the pids and URLs no longer name anything.
        (workdir / live_faults.PIDS_FILE).unlink(missing_ok=True)
        (workdir / URLS_FILE).unlink(missing_ok=True)
    if exited is not None:
        rest = "the demo stopped the rest" if not alive else "the demo stopped what it could"
        raise UserError(f"{exited}; {rest} (log: {exited.child.log})")
    if alive:
        return 1
    _say(sys.stderr, f"stopped; all {len(table.entries)} processes ended")
    return 0


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(") ")[-1][:1] != "Z"
    except OSError:
        return False


def _run_stack(
    args: argparse.Namespace,
    resolution: float,
    rules: list[Path],
    workdir: Path,
    table: ProcessTable,
    resources: contextlib.ExitStack,
    out: TextIO,
) -> None:
    from gpu_health.demo.notify_sink import NotificationSink, local_alertmanager_config

    spec = historylib.HistorySpec(args.gpus, args.days, args.seed, resolution, args.hazard_scale)
    hist = historylib.prepare(workdir, spec, sys.stderr)
    data_dir = workdir / "prometheus-data"
    historylib.link_data_dir(hist, data_dir)
    _say(sys.stderr, f"history: {hist.failures} failures in the backfilled window")

    try:
        sink = NotificationSink(0 if args.any_ports else PORTS["sink"])
    except OSError:
        sink = NotificationSink(0)
    resources.enter_context(sink)
    choose = (lambda _usual: stack.free_port()) if args.any_ports else port_or_free
    ports = {name: choose(p) for name, p in PORTS.items() if name != "sink"}

    am_config = local_alertmanager_config(
        ALERTMANAGER_CONFIG, workdir / "alertmanager", sink.url, fast=True
    )
    # Alertmanager's notification log and silences live here. The run starts on fresh
    # Prometheus data and an empty faults file, so a kept log would remember the pages of the
    # last run and hold the same fault's page on the same GPU for repeat_interval (4 h).
    shutil.rmtree(workdir / ALERTMANAGER_DATA, ignore_errors=True)
    am_port = ports["alertmanager"]
    try:
        am = resources.enter_context(
            stack.alertmanager(
                workdir,
                am_config,
                port=am_port,
                # Notifications link here (PagerDuty's client_url); the default,
                # http://<hostname>:9093, is not where this one listens.
                extra_args=[f"--web.external-url=http://127.0.0.1:{am_port}"],
            )
        )
    except RuntimeError as exc:
        raise _start_failed(exc, workdir / "alertmanager.log") from None
    table.record("alertmanager", am.process.pid)

    exporter_url = f"http://127.0.0.1:{ports['exporter']}"
    exporter_argv = [
        sys.executable,
        "-m",
        "gpu_health.exporter.cli",
        "--sim-hazard-scale",
        f"{args.hazard_scale:g}",
        "--backend",
        "sim",
        "--sim-gpus",
        str(args.gpus),
        "--sim-seed",
        str(args.seed),
        "--sim-speed",
        f"{args.speed:g}",
        f"--web.listen-address=127.0.0.1:{ports['exporter']}",
    ]
    for fault in args.fault:
        exporter_argv += ["--sim-fault", fault]
    # `gpu-health demo fault SPEC` appends to this file; the simulator watches it.
    faults_file = live_faults.prepare(workdir, args.gpus, args.seed, args.hazard_scale)
    exporter_argv += ["--sim-faults-file", str(faults_file)]
    exporter = table.spawn("exporter", exporter_argv)
    _wait(f"{exporter_url}/metrics", 60.0, exporter, workdir / "exporter.log", "exporter")

    prom_config = stack.write_prometheus_config(
        workdir / "prometheus.yml",
        scrape_targets={
            "gpu-health-scorer": [f"127.0.0.1:{ports['scorer']}"],
            "alertmanager": [f"127.0.0.1:{am.port}"],
            "prometheus": [f"127.0.0.1:{ports['prometheus']}"],
        },
        rule_files=rules,
        alertmanagers=[f"127.0.0.1:{am.port}"],
        scrape_interval=SCRAPE_INTERVAL,
        evaluation_interval=SCRAPE_INTERVAL,
        # The exporter's series carry the instance the backfilled history carries, whatever
        # port it got, so each GPU's history and live samples are one series.
        extra_scrape_configs=[
            {
                "job_name": "gpu-health-exporter",
                "static_configs": [
                    {
                        "targets": [f"127.0.0.1:{ports['exporter']}"],
                        "labels": {"instance": spec.instance},
                    }
                ],
            }
        ],
    )
    _say(sys.stderr, "starting Prometheus on the backfilled history ...")
    try:
        prom = resources.enter_context(
            stack.prometheus(
                workdir,
                prom_config,
                data_dir=data_dir,
                port=ports["prometheus"],
                ready_timeout=120.0,
                # Instant queries look back this far for a sample: at least one backfill step, or
                # the history would show only every third point at 15-minute resolution.
                extra_args=[f"--query.lookback-delta={max(300, int(resolution) + 60)}s"],
            )
        )
    except RuntimeError as exc:
        raise _start_failed(exc, workdir / "prometheus.log") from None
    table.record("prometheus", prom.process.pid)

    scorer_url = f"http://127.0.0.1:{ports['scorer']}"
    scorer = table.spawn(
        "scorer",
        [
            sys.executable,
            "-m",
            "gpu_health.scorer.cli",
            "serve",
            f"--prometheus.url={prom.url}",
            f"--web.listen-address=127.0.0.1:{ports['scorer']}",
            f"--interval={SCORER_INTERVAL}",
            *asset_arguments(),
        ],
    )
    _wait(f"{scorer_url}/metrics", 120.0, scorer, workdir / "scorer.log", "scorer")

    endpoints = [
        summarylib.Endpoint("prometheus", prom.url),
        summarylib.Endpoint("alertmanager", am.url),
        summarylib.Endpoint("gpu-health-exporter", exporter_url),
        summarylib.Endpoint("gpu-health-scorer", scorer_url),
        summarylib.Endpoint("notification sink", f"{sink.url}/notifications"),
    ]
    urls = {e.name: e.url for e in endpoints}
    (workdir / URLS_FILE).write_text(json.dumps(urls, indent=2) + "\n")
    title = (
        f"gpu-health demo: {args.gpus} simulated GPUs, seed {args.seed}, speed {args.speed:g}x"
        + (f" (stops after {args.duration:g}s)" if args.duration else " (Ctrl-C stops everything)")
    )
    _say(out, "gpu-health demo is up:")
    for endpoint in endpoints:
        _say(out, f"  {endpoint.name:<22} {endpoint.url}")
    _say(out, f"  {'work dir':<22} {workdir} (logs, configs, pids)")
    children = [
        Child("Alertmanager", am.process, am.log_path),
        Child("the exporter", exporter, workdir / "exporter.log"),
        Child("Prometheus", prom.process, prom.log_path),
        Child("the scorer", scorer, workdir / "scorer.log"),
    ]
    _watch(args, title, prom.url, endpoints, sink, children, out)


def _start_failed(exc: Exception, log: Path) -> UserError:
    """One line for a server that did not come up (its log has the details)."""
    return UserError(f"{str(exc).splitlines()[0]} (log: {log})")


def _wait(url: str, timeout: float, process: subprocess.Popen[bytes], log: Path, name: str) -> None:
    try:
        stack.wait_until(url, timeout, process)
    except (RuntimeError, TimeoutError) as exc:
        tail = ""
        with contextlib.suppress(OSError):
            lines = log.read_text(errors="replace").strip().splitlines()
            tail = f": {lines[-1]}" if lines else ""
        raise UserError(f"the {name} did not start ({exc}){tail} (log: {log})") from None


def _watch(
    args: argparse.Namespace,
    title: str,
    prometheus_url: str,
    endpoints: list[summarylib.Endpoint],
    sink: Any,
    children: Sequence[Child],
    out: TextIO,
) -> None:
    """Show the summary and the notifications until the duration is over (or a signal);
    :class:`ChildExited` when one of ``children`` ends."""
    live = out.isatty() and not args.no_summary
    started = time.monotonic()
    deadline = None if args.duration is None else started + args.duration
    next_summary = started if live else started + min(PLAIN_SUMMARY_EVERY, args.refresh * 3)
    seen = 0

    def print_new_notifications() -> list[Any]:
        nonlocal seen
        notifications: list[Any] = sink.notifications()
        if not live:
            for notification in notifications[seen:]:
                _say(out, f"notification: {notification.summary()}")
        seen = len(notifications)
        return notifications

    try:
        while deadline is None or time.monotonic() < deadline:
            for child in children:
                if child.process.poll() is not None:
                    raise ChildExited(child)
            notifications = print_new_notifications()
            now = time.monotonic()
            if now >= next_summary and not args.no_summary:
                text = summarylib.snapshot(title, prometheus_url, endpoints, notifications)
                if live:
                    out.write(summarylib.CLEAR + text)
                    out.flush()
                    next_summary = now + args.refresh
                else:
                    _say(out, text)
                    next_summary = now + PLAIN_SUMMARY_EVERY
            time.sleep(0.5)
    finally:
        # A notification that arrived since the last tick is still reported.
        print_new_notifications()
