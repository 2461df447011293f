"""The scrape: one sample per GPU from the backend, rendered from the metric catalogue.

A ``prometheus_client`` custom collector (``collect()`` yields metric families) rather than
Gauge objects updated in a loop: every scrape reads fresh values, a GPU that vanished leaves no
stale series behind, and nothing is computed between scrapes. A GPU that fails is rendered as
``gpu_up 0`` and every other GPU is still served; a failing health model costs its own series
only. Self-metrics (``gpu_exporter_*``) say how long each part took and which NVML calls fail.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from gpu_health.exporter.backend import Backend, Instrumented
from gpu_health.exporter.kmsg.counts import fold_counts
from gpu_health.telemetry.catalogue import (
    CATALOGUE,
    HEALTH_METRICS,
    IDENTITY_LABELS,
    INFO_LABELS,
    NVSWITCH_METRICS,
    POD_INFO_HELP,
    POD_LABELS,
    SELF_METRICS,
    UNKNOWN_GPU,
)
from gpu_health.telemetry.readings import GpuIdentity, GpuLostError, GpuSample

log = logging.getLogger(__name__)

HealthUpdate = Callable[[GpuIdentity, GpuSample], Any]


@dataclass
class ProbeResult:
    """What ``/healthz`` reports: how many GPUs answered out of those in the inventory."""

    up: int
    total: int


Family = GaugeMetricFamily | CounterMetricFamily


def _family(name: str, kind: str, help_text: str, labels: tuple[str, ...]) -> Family:
    if kind == "counter":
        return CounterMetricFamily(name, help_text, labels=list(labels))
    return GaugeMetricFamily(name, help_text, labels=list(labels))


#: Families that also carry the kernel log's XIDs at unknown PCI addresses.
_UNATTRIBUTED = (
    "gpu_xid_errors_total",
    "gpu_xid_class_errors_total",
    "gpu_last_xid_timestamp_seconds",
)
_NVSWITCH = {name: (kind, help_text, labels) for name, kind, help_text, labels in NVSWITCH_METRICS}

_SELF = {name: (kind, help_text, labels) for name, kind, help_text, labels in SELF_METRICS}


def _self_family(name: str) -> Family:
    kind, help_text, labels = _SELF[name]
    return _family(name, kind, help_text, labels)


def scored_xids(health: Any | None) -> frozenset[int]:
    """The XID codes the health model's policy scores (critical or penalised): served, and
    counted by the kernel log, under their own number whatever else a GPU reports."""
    if health is None:
        return frozenset()
    return frozenset({*health.policy.xid.critical, *health.policy.xid.penalised})


class ExporterCollector(Collector):
    """Renders every catalogue metric, ``gpu_info``, health series and self-metrics per scrape."""

    def __init__(
        self,
        backend: Backend,
        identities: list[GpuIdentity],
        health: Any | None = None,
        version: str = "",
        pods: Any | None = None,
        pod_labels: bool = False,
        kernel_log: Any | None = None,
    ) -> None:
        """``pods``: a :class:`~gpu_health.exporter.kube.podresources.PodAttribution` or None.

        ``kernel_log``: a :class:`~gpu_health.exporter.kmsg.source.KernelLog` (or None) whose
        since-boot XID counts are merged into every GPU's sample, lost GPUs included.

        With ``pod_labels`` every per-GPU series also carries ``namespace``, ``pod`` and
        ``container`` (empty while no pod holds the GPU), as dcgm-exporter does; without it the
        attribution is the single ``gpu_pod_info`` series to join on ``uuid``, which keeps pods
        coming and going from minting new series for every metric.
        """
        self.backend = backend
        self.identities = list(identities)
        self.health = health
        #: XID codes the health policy scores: served under their own number whatever else a
        #: GPU reports (:func:`~gpu_health.exporter.kmsg.counts.fold_counts`), so a site's
        #: critical code outside NVIDIA's catalogue is never folded into ``other`` unscored
        self._kept_xids = scored_xids(health)
        self.pods = pods
        self.pod_labels = pod_labels and pods is not None
        self._label_names = IDENTITY_LABELS + (POD_LABELS if self.pod_labels else ())
        self.version = version
        self.kernel_log = kernel_log
        # Scrapes are serialised: the health model keeps per-GPU state and NVML handles are
        # shared; two Prometheus servers scraping at once simply take turns (a scrape is ~ms).
        self._lock = threading.Lock()
        self._sample_errors = 0
        self._health_errors = 0
        #: event counters (XIDs) of GPUs that are lost right now, still exported
        self._lost_events: dict[str, GpuSample] = {}
        #: uuids currently lost (their loss has been logged)
        self._lost: set[str] = set()

    def describe(self) -> list[Metric]:
        # Nothing to check at registration time; returning [] keeps register() from collecting.
        return []

    def _sample_all(self) -> list[tuple[GpuIdentity, GpuSample | None]]:
        out: list[tuple[GpuIdentity, GpuSample | None]] = []
        for identity in self.identities:
            try:
                sample = self.backend.sample(identity)
            except GpuLostError as exc:
                # Once per loss, not once per scrape: a dead GPU must not flood the log.
                if identity.uuid not in self._lost:
                    log.warning("%s", exc)
                    self._lost.add(identity.uuid)
                out.append((identity, None))
                events = exc.events
                if events is None and self._kernel_log_active():
                    events = GpuSample(timestamp=time.time(), up=False)
                if events is not None:
                    self._serve_xids(identity, events)
                    self._lost_events[identity.uuid] = events
                continue
            except Exception:  # a backend bug on one GPU must not take the others down
                log.exception("sampling GPU %s failed", identity.index)
                self._sample_errors += 1
                out.append((identity, None))
                continue
            self._lost_events.pop(identity.uuid, None)
            if identity.uuid in self._lost:
                self._lost.discard(identity.uuid)
                log.info("GPU %s (%s) answers again", identity.index, identity.uuid)
            self._serve_xids(identity, sample)
            out.append((identity, sample))
        return out

    def _serve_xids(self, identity: GpuIdentity, sample: GpuSample) -> None:
        """Key ``sample``'s XID counts as they are served: merged with the kernel log's (which
        keys them), else folded here (:func:`~gpu_health.exporter.kmsg.counts.fold_counts`)."""
        merged = self.kernel_log is not None and self.kernel_log.merge(
            identity, sample, self._kept_xids
        )
        if not merged:
            sample.xid_counts = fold_counts(sample.xid_counts, keep=self._kept_xids)

    def probe(self) -> ProbeResult:
        """Sample every GPU once (cheap getters only) without touching the health model."""
        with self._lock:
            samples = self._sample_all()
        return ProbeResult(sum(1 for _, s in samples if s is not None), len(samples))

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            yield from self._collect()

    def _collect(self) -> Iterator[Metric]:
        durations = _self_family("gpu_exporter_scrape_collector_duration_seconds")
        success = _self_family("gpu_exporter_scrape_collector_success")

        started = time.perf_counter()
        samples = self._sample_all()
        durations.add_metric(["gpu"], time.perf_counter() - started)
        success.add_metric(["gpu"], 1.0 if any(s for _, s in samples) or not samples else 0.0)

        yield from self._render_catalogue(samples)
        yield self._render_info()
        if self.pods is not None:
            yield self._render_pods(self.pods)

        if self.health is not None:
            started = time.perf_counter()
            families, ok = self._render_health(self.health, samples)
            durations.add_metric(["health"], time.perf_counter() - started)
            success.add_metric(["health"], 1.0 if ok else 0.0)
            yield from families

        yield durations
        yield success
        yield from self._render_self(samples)

    def _base_labels(self, identity: GpuIdentity) -> list[str]:
        """Label values every per-GPU series starts with (identity, then pod when enabled)."""
        base = list(identity.labels().values())
        if self.pod_labels and self.pods is not None:
            ref = self.pods.lookup(identity.uuid, identity.index)
            base += [ref.namespace, ref.pod, ref.container] if ref else ["", "", ""]
        return base

    def _render_catalogue(
        self, samples: list[tuple[GpuIdentity, GpuSample | None]]
    ) -> Iterator[Metric]:
        bases = [self._base_labels(identity) for identity, _ in samples]
        for spec in CATALOGUE:
            family = _family(spec.name, spec.kind, spec.help, self._label_names + spec.labels)
            for base, (identity, sample) in zip(bases, samples, strict=True):
                if sample is None:
                    if spec.name == "gpu_up":
                        family.add_metric(base, 0.0)
                    events = self._lost_events.get(identity.uuid)
                    if spec.cost == "event" and events is not None:
                        for extra, value in spec.extract(identity, events):
                            family.add_metric(base + list(extra), value)
                    continue
                for extra, value in spec.extract(identity, sample):
                    family.add_metric(base + list(extra), value)
            if spec.name in _UNATTRIBUTED and self._kernel_log_active():
                self._render_unattributed(family, spec.extract)
            if family.samples:
                yield family

    def _kernel_log_active(self) -> bool:
        return self.kernel_log is not None and self.kernel_log.source is not None

    def _render_unattributed(self, family: Family, extract: Any) -> None:
        """XIDs at PCI addresses no inventoried GPU has: one bounded ``gpu="unknown"`` series."""
        assert self.kernel_log is not None
        tally = self.kernel_log.counts.unknown()
        if not tally.codes:
            return
        events = GpuSample(timestamp=time.time(), up=False)
        events.xid_counts = dict(tally.codes)
        events.xid_class_counts = dict(tally.classes)
        events.last_xid_timestamp = tally.last
        node = self.identities[0].node if self.identities else ""
        unknown = GpuIdentity(index=-1, uuid="", model="", node=node)
        base = [node, UNKNOWN_GPU, "", "", ""] + ([""] * len(POD_LABELS) if self.pod_labels else [])
        for extra, value in extract(unknown, events):
            family.add_metric(base + list(extra), value)

    def _render_info(self) -> Metric:
        family = GaugeMetricFamily(
            "gpu_info",
            "Static facts about each GPU (driver, VBIOS, serial); always 1.",
            labels=list(IDENTITY_LABELS + INFO_LABELS),
        )
        for identity in self.identities:
            info = [getattr(identity, label) or "" for label in INFO_LABELS]
            family.add_metric(list(identity.labels().values()) + info, 1.0)
        return family

    def _render_pods(self, pods: Any) -> Metric:
        family = GaugeMetricFamily(
            "gpu_pod_info", POD_INFO_HELP, labels=list(IDENTITY_LABELS + POD_LABELS)
        )
        for identity in self.identities:
            ref = pods.lookup(identity.uuid, identity.index)
            if ref is not None:
                labels = [*identity.labels().values(), ref.namespace, ref.pod, ref.container]
                family.add_metric(labels, 1.0)
        return family

    def _render_health(
        self, health: Any, samples: list[tuple[GpuIdentity, GpuSample | None]]
    ) -> tuple[list[Metric], bool]:
        meta = {name: (help_text, labels) for name, help_text, labels in HEALTH_METRICS}
        score = GaugeMetricFamily(
            "gpu_health_score",
            meta["gpu_health_score"][0],
            labels=list(self._label_names + meta["gpu_health_score"][1]),
        )
        penalty = GaugeMetricFamily(
            "gpu_health_penalty",
            meta["gpu_health_penalty"][0],
            labels=list(self._label_names + meta["gpu_health_penalty"][1]),
        )
        grade = GaugeMetricFamily(
            "gpu_health_grade",
            meta["gpu_health_grade"][0],
            labels=list(self._label_names + meta["gpu_health_grade"][1]),
        )
        from gpu_health.health.result import GRADES

        ok = True
        for identity, sample in samples:
            if sample is None:
                # A lost GPU is scored too: the model caps it (reason gpu_lost).
                sample = GpuSample(timestamp=time.time(), up=False)
            try:
                result = health.update(identity, sample)
            except Exception:  # the model must never cost the raw metrics
                log.exception("health model failed for GPU %s", identity.index)
                self._health_errors += 1
                ok = False
                continue
            base = self._base_labels(identity)
            score.add_metric([*base, "overall"], float(result.overall))
            for dimension, value in sorted(result.dimensions.items()):
                score.add_metric([*base, dimension], float(value))
            for p in result.penalties:
                penalty.add_metric([*base, p.dimension, p.reason], float(p.points))
            for name in GRADES:
                grade.add_metric([*base, name], 1.0 if name == result.grade else 0.0)
        return [score, penalty, grade], ok

    def _render_self(self, samples: list[tuple[GpuIdentity, GpuSample | None]]) -> Iterator[Metric]:
        build = _self_family("gpu_exporter_build_info")
        build.add_metric([self.version, self.backend.name], 1.0)
        yield build
        expected = _self_family("gpu_exporter_gpus")
        expected.add_metric(["inventory"], float(len(samples)))
        expected.add_metric(["up"], float(sum(1 for _, s in samples if s is not None)))
        yield expected
        yield from self._render_sources()
        errors = _self_family("gpu_exporter_collect_errors_total")
        errors.add_metric(["gpu"], float(self._sample_errors))
        if self.health is not None:
            errors.add_metric(["health"], float(self._health_errors))
        yield errors
        if self.pods is not None:
            pod_errors = _self_family("gpu_exporter_pod_resources_errors_total")
            pod_errors.add_metric([], float(self.pods.errors))
            yield pod_errors
        if isinstance(self.backend, Instrumented):
            stats = self.backend.stats()
            calls = _self_family("gpu_exporter_nvml_errors_total")
            for (call, error), count in sorted(stats.call_errors.items()):
                calls.add_metric([call, error], float(count))
            yield calls
            if stats.poll_duration_seconds is not None:
                poll = _self_family("gpu_exporter_poll_duration_seconds")
                poll.add_metric([], stats.poll_duration_seconds)
                yield poll
            unsupported = _self_family("gpu_exporter_unsupported_calls")
            by_index = {i.index: i for i in self.identities}
            for index, count in sorted(stats.unsupported_calls.items()):
                if index in by_index:
                    unsupported.add_metric(list(by_index[index].labels().values()), float(count))
            yield unsupported

    def _render_sources(self) -> Iterator[Metric]:
        """``gpu_exporter_source_info`` and, with the kernel log, the NVSwitch SXid counters."""
        sources = _self_family("gpu_exporter_source_info")
        sources.add_metric([self.backend.name], 1.0)
        active = self.kernel_log.source if self.kernel_log is not None else None
        for source in ("kmsg", "journal"):
            sources.add_metric([f"kernel_log_{source}"], 1.0 if active == source else 0.0)
        yield sources
        if self.kernel_log is None or active is None:
            return
        lost = _self_family("gpu_exporter_kernel_log_overwritten_total")
        lost.add_metric([], float(self.kernel_log.reader.overwritten))
        yield lost
        kind, help_text, labels = _NVSWITCH["nvswitch_sxid_errors_total"]
        sxids = _family("nvswitch_sxid_errors_total", kind, help_text, labels)
        node = self.identities[0].node if self.identities else ""
        for (switch, code), count in sorted(self.kernel_log.counts.sxids().items()):
            sxids.add_metric([node, switch, code], float(count))
        yield sxids
