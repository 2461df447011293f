"""Fault → alert → notification timing on the real stack, for the done-when test and the bench.

Injects simulated faults through the real exporter (``--backend sim``), evaluates the shipped
rules (``rules/``) in a real Prometheus, routes through a real Alertmanager with the shipped
configuration (or the demo's one-second ``group_wait`` with ``fast``) and records what the local
PagerDuty/Slack sink receives. The clock is the wall clock at ``--sim-speed 1``, so the latencies
are the ones an operator would see with the shipped windows.

Onset is taken as the moment the exporter was asked to start plus the fault's ``after``; the
exporter's own clock starts a little later, so measured latencies are, if anything, too long.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gpu_health import die_with_parent, stack
from gpu_health.demo.notify_sink import Notification, NotificationSink, local_alertmanager_config
from gpu_health.sim import fleet as fleetlib

REPO_ROOT = Path(__file__).resolve().parents[3]
RULE_FILES = (
    REPO_ROOT / "rules" / "gpu-health-rules.yaml",
    REPO_ROOT / "rules" / "gpu-health-alerts.yaml",
)
ALERTMANAGER_CONFIG = REPO_ROOT / "alertmanager" / "alertmanager.yml"
JOB = "gpu-health-exporter"
ROUTING_KEY = "a1e27a1e27a1e27a1e27a1e27a1e27a1"

#: Each ``--sim-fault`` kind and the alerts that must fire for it (its own alerts; others that
#: accompany it, such as GPURowRemapPending next to uncorrectable errors, may fire too).
FAULT_ALERTS: dict[str, tuple[str, ...]] = {
    "xid79": ("GPUFallenOffBus",),
    "gpu_lost": ("GPUFallenOffBus",),
    "ecc_storm": ("GPUCorrectableEccStorm",),
    "uncorrectable_ecc": ("GPUUncorrectableEccErrors", "GPUXidMemoryError"),
    "row_remap_pending": ("GPURowRemapPending",),
    "row_remap_failure": ("GPURowRemapFailure",),
    "thermal": ("GPUThermalSlowdown",),
    "pcie_replay_storm": ("GPUPcieReplayStorm",),
    "nvlink_errors": ("GPUNvlinkErrors", "GPUXidNvlinkError"),
    "power_brake": ("GPUPowerBrake",),
}


@dataclass
class AlertTrack:
    """One alert series (alert name and GPU) as Prometheus reported it over the run."""

    first_pending: float | None = None
    first_firing: float | None = None
    #: wall times at which a firing alert was no longer listed
    resolved: list[float] = field(default_factory=list)
    firing_now: bool = False


@dataclass
class TimingRun:
    """What one run saw; times are wall-clock seconds (time.time())."""

    onset: float
    #: fault kind -> uuid of the GPU it was injected into
    fault_gpus: dict[str, str]
    healthy: list[str]
    #: (alertname, uuid or instance) -> track
    tracks: dict[tuple[str, str], AlertTrack]
    notifications: list[Notification]
    severities: dict[str, str]

    def fired_after(self, alertname: str, uuid: str) -> float | None:
        """Seconds from onset to the alert first seen firing (None: it never fired)."""
        track = self.tracks.get((alertname, uuid))
        if track is None or track.first_firing is None:
            return None
        return track.first_firing - self.onset

    def is_critical(self, fault: str) -> bool:
        return any(self.severities.get(a) == "critical" for a in FAULT_ALERTS[fault])

    def pagerduty_events(self, uuid: str) -> list[dict[str, Any]]:
        """PagerDuty events whose summary names this GPU, in arrival order."""
        return [
            n.payload
            for n in self.notifications
            if n.service == "pagerduty" and uuid in json.dumps(n.payload.get("payload") or {})
        ]

    def incidents(self, uuid: str) -> int:
        """Incidents opened for the GPU: a trigger opens one unless its dedup key is open."""
        open_keys: set[str] = set()
        opened = 0
        for event in self.pagerduty_events(uuid):
            key = str(event.get("dedup_key"))
            if event.get("event_action") == "trigger" and key not in open_keys:
                open_keys.add(key)
                opened += 1
            elif event.get("event_action") == "resolve":
                open_keys.discard(key)
        return opened

    def first_notification_after(
        self, service: str, uuid: str, alerts: Sequence[str] = ()
    ) -> float | None:
        """Seconds from onset to the first notification naming the GPU (and, when given, one
        of ``alerts``: a GPU's first message may be about a side effect of its fault)."""
        for note in self.notifications:
            text = json.dumps(note.payload)
            if note.service != service or uuid not in text:
                continue
            if not alerts or any(alert in text for alert in alerts):
                return note.received_at - self.onset
        return None


def slot_identity(index: int, seed: int = 0) -> tuple[str, str]:
    """(node, gpu) labels of simulated slot ``index`` (the exporter's ``--sim-fault gpu=N``)."""
    slot = fleetlib.build_slot(index, seed, 1.0)
    return slot.node, str(slot.gpu)


#: The alert a degradation episode of the simulator (the precursor of a future failure) is
#: allowed to raise while it plays: a degrading PCIe link or NVLink is real telemetry.
EPISODE_ALERTS = {"pcie": "GPUPcieReplayStorm", "nvlink": "GPUNvlinkErrors"}


def latched_at_start(
    gpus: int,
    seed: int = 0,
    window: float = 3600.0,
    start_time: float | None = None,
    speed: float = 1.0,
) -> dict[str, set[str]]:
    """uuid -> the alerts a GPU of the simulated fleet owes without any injected fault.

    A fleet without injected faults is not spotless: a board may carry a row remap that has been
    pending since an old benign event, which is a real reason for a (warning) alert, not a false
    alarm, and a board may be in a degradation episode (a PCIe link or NVLink degrading towards
    a failure) during the next ``window`` simulated seconds, whose alert is then owed too
    (:data:`EPISODE_ALERTS`), as is the PCIe storm's on a board whose background replays come
    in one burst above the alert's budget (:func:`_replay_burst`; ``speed``: the run's, which
    stretches the alert's 5-minute rate window over as many simulated minutes). The
    simulator's own readings and boards say which GPUs those are; the live simulation starts at
    the wall-clock time (``start_time``: another), so which boards they are changes with it.
    """
    from gpu_health.sim.live import SimBackend
    from gpu_health.telemetry.readings import GpuLostError

    backend = SimBackend(gpus=gpus, seed=seed, start_time=start_time)
    start = backend.start_time
    owed: dict[str, set[str]] = {}
    span = STORM_RATE_WINDOW_S * speed
    for slot in fleetlib.build_fleet(gpus, seed, 1.0).slots:  # the backend's fleet
        board = slot.board_at(start)
        if board is None:
            continue
        for episode in board.episodes:
            alert = EPISODE_ALERTS.get(episode.kind)
            if alert is not None and episode.start < start + window and episode.end > start:
                owed.setdefault(board.uuid, set()).add(alert)
        if _replay_burst(board.events.times, board.events.totals, start, start + window, span):
            owed.setdefault(board.uuid, set()).add(EPISODE_ALERTS["pcie"])
    for gpu in backend.inventory():
        try:
            sample = backend.sample(gpu)
        except GpuLostError:
            owed.setdefault(gpu.uuid, set()).add("GPUFallenOffBus")
            continue
        checks = (
            (sample.row_remap_pending, "GPURowRemapPending"),
            (sample.row_remap_failed, "GPURowRemapFailure"),
            ((sample.ecc_uncorrected_volatile or 0) > 0, "GPUUncorrectableEccErrors"),
        )
        for latched, alert in checks:
            if latched:
                owed.setdefault(gpu.uuid, set()).add(alert)
    return owed


#: The PCIe storm alert's rate window (``rate5m``), in seconds of the run's wall clock.
STORM_RATE_WINDOW_S = 300.0
#: The share of the storm's budget over its rate window that one burst of replays must reach
#: to be owed: Prometheus' ``rate()`` extrapolates a jump inside its window to the window's
#: edges, so a burst somewhat under the budget can fire.
STORM_BURST_SHARE = 0.75


def _replay_burst(
    times: dict[str, list[float]],
    totals: dict[str, list[float]],
    start: float,
    end: float,
    span: float,
) -> bool:
    """Whether a board's PCIe replays (its ``replay`` event times and running totals) rise by
    more than :data:`STORM_BURST_SHARE` of the storm alert's budget within ``span`` simulated
    seconds (the alert's rate window) between ``start`` and ``end``. Only replays after the
    start count: Prometheus' first scrape of the counter is its baseline."""
    run = [
        (t, total)
        for t, total in zip(times.get("replay", []), totals.get("replay", []), strict=True)
        if start <= t < end
    ]
    limit = STORM_BURST_SHARE * replay_storm_budget() * STORM_RATE_WINDOW_S / 60
    first = 0
    for t, total in run:
        while run[first][0] <= t - span:
            first += 1
        base = run[first - 1][1] if first else _total_before(times, totals, start)
        if total - base > limit:
            return True
    return False


def _total_before(
    times: dict[str, list[float]], totals: dict[str, list[float]], at: float
) -> float:
    """A board's replays before ``at`` (its running total then)."""
    before = [
        total
        for t, total in zip(times.get("replay", []), totals.get("replay", []), strict=True)
        if t < at
    ]
    return before[-1] if before else 0.0


def replay_storm_budget() -> float:
    """The PCIe replays per minute above which the shipped ``GPUPcieReplayStorm`` fires (its
    expression ends ``* 60 > BUDGET``)."""
    doc = yaml.safe_load(RULE_FILES[1].read_text())
    for group in doc["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == EPISODE_ALERTS["pcie"]:
                return float(str(rule["expr"]).rsplit(">", 1)[1])
    raise RuntimeError(f"{RULE_FILES[1]}: no {EPISODE_ALERTS['pcie']} alert")


def quiet_start(
    gpus: int,
    seed: int = 0,
    window: float = 3600.0,
    before: float | None = None,
    margin: float = 3600.0,
) -> float:
    """A simulated start time, a whole minute at or before ``before`` (default: now), at which no
    board of the fleet fails or goes down from ``margin`` seconds before it to ``window`` seconds
    after it.

    The simulated fleet fails on its own (its hazard model), at times fixed by the seed: run from
    the wall-clock time, a "healthy" fleet had a board fall off the bus within its 30 simulated
    minutes on some days (a real page, not a false alarm), so a test of silence or of alert
    timing failed by the calendar. Such tests start the simulation here instead.
    """
    fleet = fleetlib.build_fleet(gpus, seed, 1.0)
    t = float(int((time.time() if before is None else before) // 60 * 60))
    for _ in range(10_000):
        lo, hi = t - margin, t + window
        busy = False
        for slot in fleet.slots:
            for board in slot.boards:
                if board.end <= lo or board.start >= hi:
                    continue
                downs = [*board.down, *((f.down_from, f.down_to) for f in board.failures)]
                failing = any(lo <= f.time < hi for f in board.failures)
                if failing or any(a < hi and b > lo for a, b in downs):
                    busy = True
                    break
            if busy:
                break
        if not busy:
            return t
        t -= window
    raise RuntimeError(f"no quiet hour found for {gpus} simulated GPUs (seed {seed})")


def _severities() -> dict[str, str]:
    doc = yaml.safe_load(RULE_FILES[1].read_text())
    return {
        rule["alert"]: rule["labels"]["severity"]
        for group in doc["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }


@contextlib.contextmanager
def exporter(workdir: Path, args: Sequence[str]) -> Iterator[stack.Server]:
    """Run the sim exporter with ``args`` in ``workdir`` (its cwd, where its log goes)."""
    port = stack.free_port()
    log_path = workdir / "exporter.log"
    argv = [sys.executable, "-m", "gpu_health.exporter.cli", "--backend", "sim"]
    argv += ["--web.listen-address", f"127.0.0.1:{port}", *args]
    with log_path.open("ab") as log:
        process = die_with_parent.spawn(
            argv, stdout=log, stderr=subprocess.STDOUT, cwd=workdir, start_new_session=True
        )
    server = stack.Server("exporter", f"http://127.0.0.1:{port}", port, process, log_path, workdir)
    try:
        try:
            stack.wait_until(f"{server.url}/metrics", 60, process)
        except (RuntimeError, TimeoutError) as exc:
            raise RuntimeError(f"exporter did not start: {exc}\n{server.log_tail()}") from exc
        yield server
    finally:
        server.stop()


def _uuids(prometheus: stack.Server) -> dict[tuple[str, str], str]:
    result = stack.wait_for_query(prometheus.url, f'gpu_up{{job="{JOB}"}}', timeout=60)
    return {
        (r["metric"]["node"], r["metric"]["gpu"]): r["metric"]["uuid"]
        for r in result
        if "uuid" in r["metric"]
    }


def _poll_alerts(prometheus: stack.Server, tracks: dict[tuple[str, str], AlertTrack]) -> None:
    payload = json.loads(stack.http_get(f"{prometheus.url}/api/v1/alerts"))
    now = time.time()
    seen: set[tuple[str, str]] = set()
    for alert in payload["data"]["alerts"]:
        labels = alert["labels"]
        key = (labels["alertname"], labels.get("uuid") or labels.get("instance") or "")
        track = tracks.setdefault(key, AlertTrack())
        if track.first_pending is None:
            track.first_pending = now
        if alert["state"] == "firing":
            seen.add(key)
            track.firing_now = True
            if track.first_firing is None:
                track.first_firing = now
    for key, track in tracks.items():
        if track.firing_now and key not in seen:
            track.firing_now = False
            track.resolved.append(now)


def run_faults(
    workdir: Path,
    faults: Sequence[str],
    gpus: int,
    after: float = 30.0,
    deadline: float = 330.0,
    settle: float = 45.0,
    fast: bool = False,
    scrape_interval: str = "15s",
    speed: float = 1.0,
    observe: float | None = None,
    start_time: float | None = None,
) -> TimingRun:
    """Inject one fault of each kind in ``faults`` (GPU i gets faults[i]) ``after`` seconds in.

    Polls until every expected alert has fired and ``settle`` more seconds passed (so pages and
    any wrong resolve arrive), or ``deadline`` seconds after onset. With no faults the run lasts
    ``observe`` seconds after onset. ``fast`` uses the demo's one-second group_wait instead of the
    shipped timings. ``start_time``: the simulated time the fleet starts at (default: now; see
    :func:`quiet_start`).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    severities = _severities()
    args = ["--sim-gpus", str(gpus), "--sim-speed", str(speed)]
    if start_time is not None:
        args += ["--sim-start-time", f"{start_time:.0f}"]
    for index, fault in enumerate(faults):
        args += ["--sim-fault", f"gpu={index},fault={fault},after={after:g}s"]
    tracks: dict[tuple[str, str], AlertTrack] = {}
    with contextlib.ExitStack() as stack_:
        sink = stack_.enter_context(NotificationSink(expected_routing_key=ROUTING_KEY))
        am_config = local_alertmanager_config(
            ALERTMANAGER_CONFIG, workdir / "am", sink.url, ROUTING_KEY, fast=fast
        )
        (workdir / "am-run").mkdir(exist_ok=True)
        alertmanager = stack_.enter_context(stack.alertmanager(workdir / "am-run", am_config))
        start = time.time()
        (workdir / "exporter").mkdir(exist_ok=True)
        exporter_server = stack_.enter_context(exporter(workdir / "exporter", args))
        onset = start + after / speed
        prom_dir = workdir / "prometheus"
        prom_dir.mkdir(exist_ok=True)
        prom_config = stack.write_prometheus_config(
            prom_dir / "prometheus.yml",
            scrape_targets={JOB: [f"127.0.0.1:{exporter_server.port}"]},
            rule_files=RULE_FILES,
            alertmanagers=[f"127.0.0.1:{alertmanager.port}"],
            scrape_interval=scrape_interval,
            evaluation_interval=scrape_interval,
        )
        prometheus = stack_.enter_context(stack.prometheus(prom_dir, prom_config))
        by_slot = _uuids(prometheus)
        uuids = [by_slot[slot_identity(i)] for i in range(gpus)]
        fault_gpus = {fault: uuids[i] for i, fault in enumerate(faults)}
        expected = [(a, uuids[i]) for i, fault in enumerate(faults) for a in FAULT_ALERTS[fault]]
        end = onset + (observe if observe is not None else deadline)
        done_at: float | None = None
        while time.time() < end:
            _poll_alerts(prometheus, tracks)
            if expected and all(
                tracks.get(k) and tracks[k].first_firing is not None for k in expected
            ):
                done_at = done_at or time.time()
                if time.time() - done_at >= settle:
                    break
            time.sleep(2.0)
        notifications = sink.notifications()
    return TimingRun(
        onset=onset,
        fault_gpus=fault_gpus,
        healthy=uuids[len(faults) :],
        tracks=tracks,
        notifications=notifications,
        severities=severities,
    )


def markdown_table(run: TimingRun) -> str:
    """The fault → alert → notification table of docs/alerts.md."""
    lines = [
        "| fault | alert (severity) | firing after onset | first notification | incidents |",
        "|---|---|---:|---|---:|",
    ]
    for fault, uuid in run.fault_gpus.items():
        alerts = ", ".join(f"{a} ({run.severities.get(a, '?')})" for a in FAULT_ALERTS[fault])
        fired = [run.fired_after(a, uuid) for a in FAULT_ALERTS[fault]]
        fired_text = " / ".join("never" if f is None else f"{f:.0f} s" for f in fired)
        service = "pagerduty" if run.is_critical(fault) else "slack"
        note = run.first_notification_after(service, uuid, FAULT_ALERTS[fault])
        note_text = "none" if note is None else f"{service} {note:.0f} s"
        lines.append(f"| {fault} | {alerts} | {fired_text} | {note_text} | {run.incidents(uuid)} |")
    return "\n".join(lines)
