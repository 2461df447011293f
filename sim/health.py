"""The health model's series (gpu_health_score / _penalty / _grade) for the backfill.

The exporter's own :class:`~gpu_health.health.model.HealthTracker` scores each simulated
reading, so dashboards show the same scores over the backfilled history that the live exporter
shows afterwards. Scoring is pure Python per sample, so it runs at a coarser cadence than the raw
metrics: every k-th sample, the largest k that keeps the scores at most ``every`` seconds apart
(default 5 minutes, Prometheus' lookback, so a bare selector never loses them between scores).
"""

from __future__ import annotations

import math
from typing import Any

from gpu_health.health.model import HealthTracker
from gpu_health.health.policy import load_policy
from gpu_health.health.result import GRADES
from gpu_health.sim.batch import Row
from gpu_health.sim.model import _BOOL_FIELDS, _INT_FIELDS
from gpu_health.sim.openmetrics import scrape_labels
from gpu_health.telemetry.catalogue import HEALTH_METRICS, IDENTITY_LABELS
from gpu_health.telemetry.readings import GpuSample

_KEYED = ("xid_counts", "nvlink_errors", "clock_event_seconds")


def _sample(
    up: bool, cols: dict[str, list[float]], keyed: dict[str, Any], j: int, t: float
) -> GpuSample:
    """The reading at the ``j``-th scored time (``cols``/``keyed`` hold the scored times only);
    a NaN is a field the GPU did not report then."""
    if not up:
        return GpuSample(timestamp=t, up=False)
    s = GpuSample(timestamp=t)
    for name, values in cols.items():
        v = values[j]
        if v != v:  # NaN: absent
            continue
        if name in _INT_FIELDS:
            setattr(s, name, int(v))
        elif name in _BOOL_FIELDS:
            setattr(s, name, bool(v))
        elif name == "last_xid_timestamp":
            s.last_xid_timestamp = v if v > 0 else None
        else:
            setattr(s, name, v)
    s.xid_counts = {k: int(v[j]) for k, v in keyed["xid_counts"].items() if v[j] == v[j]}
    s.nvlink_errors = {k: int(v[j]) for k, v in keyed["nvlink_errors"].items() if v[j] == v[j]}
    s.clock_event_seconds = {
        k: v[j] for k, v in keyed["clock_event_seconds"].items() if v[j] == v[j]
    }
    return s


class HealthSeries:
    """Renders the three health families for a window of rows (state carries across windows)."""

    def __init__(self, writer: Any, resolution: float, every: float = 300.0) -> None:
        self.tracker = HealthTracker(load_policy(None))
        self.writer = writer
        self.resolution = resolution
        #: A whole number of samples: a cadence that is not one (5 minutes at 2-minute samples)
        #: would only land on a sample every least common multiple (10 minutes).
        self.step = resolution * max(1, math.floor(every / resolution + 1e-9))

    def scored(self, ts: Any) -> Any:
        """Indices of ``ts`` (samples ``resolution`` apart) to score: the first sample of each
        ``step``-long bucket of absolute time, so windows and shards pick the same times."""
        import numpy as np

        bucket = np.floor(ts / self.step + 1e-9)
        previous = np.floor((ts - self.resolution) / self.step + 1e-9)
        return np.flatnonzero(bucket != previous)

    def __call__(self, rows: list[Row], ts: Any) -> str:
        import numpy as np

        pick = self.scored(ts)
        if not pick.size:
            return ""
        sub = ts[pick]
        suffix = [f" {int(t)}\n" for t in sub]
        fams: dict[str, list[str]] = {
            "gpu_health_score": [],
            "gpu_health_penalty": [],
            "gpu_health_grade": [],
        }
        for row in rows:
            if not row.present[pick].any():
                continue
            ident = row.slot.identity(row.board)
            cols = {
                n: np.asarray(v)[pick].tolist()
                for n, v in row.values.items()
                if n not in _KEYED and n in GpuSample.__dataclass_fields__
            }
            keyed = {
                k: {kk: np.asarray(vv)[pick].tolist() for kk, vv in row.values.get(k, {}).items()}
                for k in _KEYED
            }
            n = len(sub)
            score: dict[str, list[float]] = {}
            penalty: dict[tuple[str, str], list[float]] = {}
            grade: dict[str, list[float]] = {g: [float("nan")] * n for g in GRADES}
            for j, t in enumerate(sub.tolist()):
                if not row.present[pick[j]]:
                    continue
                up = bool(row.up[pick[j]])
                result = self.tracker.update(ident, _sample(up, cols, keyed, j, t))
                score.setdefault("overall", [float("nan")] * n)[j] = float(result.overall)
                for dim, value in result.dimensions.items():
                    score.setdefault(dim, [float("nan")] * n)[j] = float(value)
                for p in result.penalties:
                    penalty.setdefault((p.dimension, p.reason), [float("nan")] * n)[j] = float(
                        p.points
                    )
                for g in GRADES:
                    grade[g][j] = 1.0 if g == result.grade else 0.0
            pairs = scrape_labels(ident, instance=self.writer.instance) + [
                (k, v) for k, v in ident.labels().items() if k in IDENTITY_LABELS
            ]
            base = ",".join(f'{k}="{v}"' for k, v in pairs)
            for dim, vals in score.items():
                prefix = f'gpu_health_score{{{base},dimension="{dim}"}} '
                self.writer._emit(fams["gpu_health_score"], prefix, np.array(vals), suffix)
            for (dim, reason), vals in sorted(penalty.items()):
                prefix = f'gpu_health_penalty{{{base},dimension="{dim}",reason="{reason}"}} '
                self.writer._emit(fams["gpu_health_penalty"], prefix, np.array(vals), suffix)
            for g, vals in grade.items():
                prefix = f'gpu_health_grade{{{base},grade="{g}"}} '
                self.writer._emit(fams["gpu_health_grade"], prefix, np.array(vals), suffix)
        helps = {name: help_ for name, help_, _ in HEALTH_METRICS}
        out = []
        for name, body in fams.items():
            if body:
                out.append(f"# TYPE {name} gauge\n# HELP {name} {helps.get(name, name)}\n")
                out.extend(body)
        return "".join(out)
