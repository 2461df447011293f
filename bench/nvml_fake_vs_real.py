"""On a GPU machine: the NVML backend over the driver and over the fake binding, call by call.

Every test of the NVML backend runs on :class:`FakeNvml`, so a way the fake answers that the
driver does not (another error, another structure, a call the driver refuses) is a way the tests
pass and the exporter breaks on hardware. This runs the backend's own sequence (inventory, two
polls so that GPM has a window, a wait on the XID event set, one scrape of every GPU, a
``/metrics`` render) once over real ``pynvml`` and once over the fake fed each ``--fixture``
(the recorded H100 readings by default; a fixture recorded from this very board with
``python -m gpu_health.exporter.nvml_recorder`` separates the fake's faults from the boards'
differences), logs every call with its arguments and the shape of its answer, and lists:

- calls made on one side only, and calls answered on one side and refused on the other, the
  first time or later (a call that answered, then timed out);
- answers of a different type or with different structure fields;
- readings the backend got on one side only, and ``/metrics`` series present on one side only.

Values are not compared (two boards, or one board a second later, read differently); the log
under ``--out`` keeps them. Usage::

    python bench/nvml_fake_vs_real.py [--fixture F ...] [--out DIR]

``--out`` also writes ``driver-calls.json``: the driver's side without the answers' values (they
hold the board's UUID and serial), which ``--driver-log F`` compares fakes against on a machine
without a GPU (``tests/fixtures/h200/driver_calls_h200.json`` is one, taken on an H200). Against
such a log, metric families the exporter renders that the log has no series of (added since it
was taken, such as a per-GPU total summed from readings) are named and not compared.
``--real-fixture F`` puts a fake fed ``F`` on the driver's side instead. Exit status 0 whether or
not differences are found; 1 when there is no driver to compare.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import fields
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pynvml
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from gpu_health.exporter.backends.nvml import NvmlBackend
from gpu_health.exporter.backends.nvml_values import error_name
from gpu_health.exporter.collector import ExporterCollector
from gpu_health.exporter.fake_nvml import FakeEventSet, FakeGpmSample, FakeHandle, FakeNvml
from gpu_health.exporter.nvml_recorder import plain
from gpu_health.telemetry.catalogue import IDENTITY_LABELS, INFO_LABELS
from gpu_health.telemetry.readings import BackendUnavailableError, GpuSample

DEFAULT_FIXTURE = Path(__file__).resolve().parent.parent / "exporter" / "data" / "nvml_h100.json"
#: Labels whose values name the board, the machine or the build, not the reading: masked before
#: comparing (the catalogue's identity and gpu_info labels, and the build info's version).
MASKED_LABELS = {*IDENTITY_LABELS, *INFO_LABELS, "version"}
#: Sample fields that hold times, not readings.
TIME_FIELDS = {"timestamp", "cache_age_seconds", "last_xid_timestamp"}


def is_opaque(value: Any) -> bool:
    """A token the caller only passes back: the driver's pointers, the fake's stand-ins."""
    return type(value).__name__.startswith("LP_") or isinstance(
        value, (FakeHandle, FakeEventSet, FakeGpmSample)
    )


def arg_key(value: Any) -> str:
    """An argument as it goes into a call's key: device handles and opaque tokens by kind."""
    if isinstance(value, FakeHandle) or type(value).__name__ == "LP_struct_c_nvmlDevice_t":
        return "gpu"
    if is_opaque(value):
        return "<opaque>"
    if isinstance(value, (bool, int, float, str)):
        return repr(value)
    if isinstance(value, (list, tuple)) and all(isinstance(v, int) for v in value):
        return "[" + ",".join(str(v) for v in value) + "]"
    return "<" + type(value).__name__.removeprefix("c_").removeprefix("struct_") + ">"


def struct_fields(value: Any) -> list[str] | None:
    """The field names of a ctypes structure or of the fake's SimpleNamespace stand-in."""
    if isinstance(value, SimpleNamespace):
        return sorted(vars(value))
    names = getattr(value, "_fields_", None)
    return sorted(str(f[0]) for f in names) if names else None


def shape(value: Any) -> str:
    """The type structure of an answer, without its values."""
    if value is None:
        return "None"
    if is_opaque(value):
        return "opaque"
    if isinstance(value, bytes):
        return "bytes"
    if isinstance(value, (bool, int, float, str)):
        return type(value).__name__
    if isinstance(value, (list, tuple)):
        inner = sorted({shape(v) for v in value})
        return f"list[{len(value)}]<{'|'.join(inner)}>"
    names = struct_fields(value)
    if names is not None:
        return "struct{" + ",".join(names) + "}"
    return type(value).__name__


class CallLog:
    """A binding wrapped so that each of its ``nvml*`` calls is logged, then answered as is."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.calls: dict[str, dict[str, Any]] = {}

    def _log(self, key: str, entry: dict[str, Any]) -> None:
        """The first answer in full; a later one only when it differs (an error after answers,
        another structure), so a call that stops answering is seen too."""
        known = self.calls.get(key)
        if known is None:
            self.calls[key] = {"count": 1, **entry}
            return
        known["count"] += 1
        outcome = entry.get("error") or entry.get("shape")
        if outcome != (known.get("error") or known.get("shape")):
            later = known.setdefault("later_outcomes", [])
            if outcome not in later:
                later.append(outcome)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not (name.startswith("nvml") and callable(attr)):
            return attr

        def call(*args: Any) -> Any:
            key = f"{name}({', '.join(arg_key(a) for a in args)})"
            try:
                value = attr(*args)
            except pynvml.NVMLError as exc:
                self._log(key, {"error": error_name(pynvml, exc)})
                raise
            answer = value
            if name == "nvmlGpmMetricsGet":  # the answers are in the request's metrics
                request = args[0]
                answer = [request.metrics[i] for i in range(int(request.numMetrics))]
            elif name == "nvmlDeviceGetFieldValues":
                answer = list(value)
            self._log(key, {"shape": shape(answer), "value": plain(answer)})
            if isinstance(answer, list) and answer and struct_fields(answer[0]) is not None:
                returns = sorted({int(getattr(a, "nvmlReturn", 0)) for a in answer})
                self.calls[key]["returns"] = returns
            return value

        return call


def exercise(binding: Any) -> dict[str, Any]:
    """The backend's sequence over ``binding``: calls made, samples read, series rendered."""
    log = CallLog(binding)
    backend = NvmlBackend(nvml=log, poll_interval=0.25, watch_events=True)
    try:
        identities = backend.inventory()
        time.sleep(1.0)  # three polls at least (GPM needs a window) and one event wait (0.5 s)
        samples: list[GpuSample] = []
        for identity in identities:
            samples.append(backend.sample(identity))
        registry = CollectorRegistry(auto_describe=False)
        registry.register(ExporterCollector(backend, identities, version="diff"))
        metrics = generate_latest(registry).decode()
    finally:
        backend.close()
    return {
        "gpus": len(identities),
        "calls": log.calls,
        "samples": [sample_fields(s) for s in samples],
        "series": sorted(series_keys(metrics)),
        "metrics": metrics,
    }


def sample_fields(sample: GpuSample) -> dict[str, Any]:
    """A sample's readings (not its times) as JSON."""
    out: dict[str, Any] = {}
    for f in fields(sample):
        if f.name in TIME_FIELDS:
            continue
        value = getattr(sample, f.name)
        out[f.name] = {str(k): v for k, v in value.items()} if isinstance(value, dict) else value
    return out


def series_keys(metrics: str) -> set[str]:
    """Each series as name and labels, with the identity labels' values masked."""
    keys = set()
    for family in text_string_to_metric_families(metrics):
        for s in family.samples:
            labels = ",".join(
                f"{k}={'*' if k in MASKED_LABELS else v}" for k, v in sorted(s.labels.items())
            )
            keys.add(f"{s.name}{{{labels}}}")
    return keys


def family(series_key: str) -> str:
    """The metric name of a series key (``name{labels}``)."""
    return series_key.split("{", 1)[0]


def newer_families(real: dict[str, Any], fake: dict[str, Any]) -> set[str]:
    """Metric families the fake's run renders that a recorded driver log has no series of: the
    exporter's own additions since the log was taken (a per-GPU total summed from readings both
    sides have), not the fake's doing. A family the fake renders from a reading the driver
    refused shows as that call and that reading on their own."""
    return {family(k) for k in fake["series"]} - {family(k) for k in real["series"]}


def compare(
    real: dict[str, Any], fake: dict[str, Any], skip_families: set[str] | None = None
) -> list[str]:
    """Differences between the two runs, one line each (empty when they behave alike); series
    of ``skip_families`` are not compared."""
    out: list[str] = []
    for key in sorted(set(real["calls"]) | set(fake["calls"])):
        a, b = real["calls"].get(key), fake["calls"].get(key)
        if a is None or b is None:
            out.append(f"call {key}: made only with the {'fake' if a is None else 'driver'}")
        elif a.get("error") != b.get("error"):
            out.append(
                f"call {key}: driver {a.get('error') or 'answers'}, "
                f"fake {b.get('error') or 'answers'}"
            )
        elif a.get("shape") != b.get("shape"):
            out.append(f"call {key}: driver answers {a['shape']}, fake {b['shape']}")
        elif a.get("returns") != b.get("returns"):
            out.append(f"call {key}: per-entry returns driver {a['returns']}, fake {b['returns']}")
        elif a.get("later_outcomes", []) != b.get("later_outcomes", []):
            out.append(
                f"call {key}: later answers driver {a.get('later_outcomes', [])}, "
                f"fake {b.get('later_outcomes', [])}"
            )
    for i, (sa, sb) in enumerate(zip(real["samples"], fake["samples"], strict=False)):
        for name in sorted(sa):
            empty_a, empty_b = is_empty(sa[name]), is_empty(sb.get(name))
            if empty_a != empty_b:
                side = "fake" if empty_a else "driver"
                out.append(f"reading GPU {i} {name}: only with the {side}")
    for key in sorted(set(real["series"]) ^ set(fake["series"])):
        if family(key) in (skip_families or set()):
            continue
        side = "driver" if key in real["series"] else "fake"
        out.append(f"series {key}: only with the {side}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--fixture",
        type=Path,
        action="append",
        default=None,
        help="readings to feed the fake (repeatable; default: the H100 ones)",
    )
    parser.add_argument(
        "--driver-log",
        type=Path,
        default=None,
        help="compare against this recorded driver-calls.json instead of the driver (no GPU)",
    )
    parser.add_argument(
        "--real-fixture",
        type=Path,
        default=None,
        help="put a fake fed this file on the driver's side (no GPU needed)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="folder for the full logs (one JSON per side) and report.md",
    )
    args = parser.parse_args(argv)  # fmt: skip
    fixtures = args.fixture or [DEFAULT_FIXTURE]
    try:
        if args.driver_log is not None:
            real = json.loads(args.driver_log.read_text())
        else:
            real = exercise(FakeNvml.from_file(args.real_fixture) if args.real_fixture else pynvml)
    except (BackendUnavailableError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    report = [f"# NVML backend: driver against fake binding ({real['gpus']} GPU(s))", ""]
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        write(args.out / "driver.json", real)
        write(args.out / "driver-calls.json", without_values(real))
    for fixture in fixtures:
        fake = exercise(FakeNvml.from_file(fixture, gpus=max(1, real["gpus"])))
        newer = newer_families(real, fake) if args.driver_log is not None else set()
        differences = compare(real, fake, newer)
        report += [f"## fake fed {fixture.name}: {len(differences)} difference(s)", ""]
        report += [f"- {line}" for line in differences] or ["- none"]
        if newer:
            report.append(f"- not in the driver log (newer families): {', '.join(sorted(newer))}")
        report.append("")
        if args.out is not None:
            write(args.out / f"fake-{fixture.stem}.json", fake)
    text = "\n".join(report)
    print(text)
    if args.out is not None:
        (args.out / "report.md").write_text(text + "\n")
    return 0


def is_empty(reading: Any) -> bool:
    """No reading: None, an empty group, or "empty" in a log written by :func:`without_values`."""
    return reading is None or reading == {} or reading == [] or reading == "empty"


def without_values(run: dict[str, Any]) -> dict[str, Any]:
    """A run as ``--driver-log`` reads it: what :func:`compare` uses, no answers' values."""
    calls = {k: {f: v for f, v in c.items() if f != "value"} for k, c in run["calls"].items()}
    samples = [
        {k: "empty" if is_empty(v) else "present" for k, v in sample.items()}
        for sample in run["samples"]
    ]
    return {"gpus": run["gpus"], "calls": calls, "samples": samples, "series": run["series"]}


def write(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=1, default=str) + "\n")


if __name__ == "__main__":
    sys.exit(main())
