"""``gpu-health backfill --out DIR`` into an earlier backfill's DIR: only the same fleet extends it.

Two different fleets over one time range, with the same node names, were both accepted into
one data dir, whose failures.csv and gpus.csv then described the second alone: ``train`` and
``evaluate --data-dir`` scored the first fleet's failures as negatives. ``backfill.json``
records what defines the history; anything but the same fleet over an overlapping or adjoining
time range is refused in one line, before anything is written.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool missing")

BIN = Path(sys.executable).parent / "gpu-health"
#: Whole hours, a few behind now: inside Prometheus' retention, and not in the future.
END = float(int(time.time() // 3600 * 3600) - 3 * 3600)
#: One node at hourly samples for a quarter of a day, no health series: about a second.
TINY = ("--gpus", "8", "--resolution", "1h", "--no-health")


def _run(
    out: Path, *extra: str, days: float = 0.25, end: float = END
) -> subprocess.CompletedProcess[str]:
    argv = [str(BIN), "backfill", *TINY, "--days", f"{days:g}", "--end-time", f"{end:.0f}"]
    return subprocess.run(
        [*argv, "--out", str(out), *extra],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def _ok(out: Path, *extra: str, days: float = 0.25, end: float = END) -> None:
    done = _run(out, *extra, days=days, end=end)
    assert done.returncode == 0, done.stderr


def _snapshot(root: Path) -> dict[str, tuple[int, int, str]]:
    """Every file and directory under ``root``: size, mtime and a digest of its bytes."""
    found = {}
    for path in sorted(root.rglob("*")):
        stat = path.stat()
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
        found[str(path.relative_to(root))] = (stat.st_size, stat.st_mtime_ns, digest)
    return found


def _refused(tmp_path: Path, out: Path, *extra: str, days: float = 0.25, end: float = END) -> str:
    """Run a backfill that must be refused; assert that it is one line and that neither ``out``
    nor its parent changed; return the line."""
    before, beside = _snapshot(out), sorted(p.name for p in tmp_path.iterdir())
    result = _run(out, *extra, days=days, end=end)
    assert result.returncode == 1, result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    assert "windows)" not in result.stderr  # no progress line: no window was written
    assert _snapshot(out) == before  # nothing written, replaced or touched
    assert sorted(p.name for p in tmp_path.iterdir()) == beside  # no staging dir left
    return result.stderr


def test_another_seed_is_refused_and_nothing_changes(tmp_path: Path) -> None:
    out = tmp_path / "data"
    _ok(out, "--seed", "3")
    line = _refused(tmp_path, out, "--seed", "7")
    assert "--seed 3 → 7" in line and "backfill.json" in line, line
    assert "--gpus" not in line.split("give")[0].split("→", 1)[1]  # only what differs is named
    # the outside probe's second run: each parameter that differs is named, old → new
    probe = ("--seed", "7", "--gpus", "16", "--hazard-scale", "100")
    line = _refused(tmp_path, out, *probe)
    for named in ("--seed 3 → 7", "--gpus 8 → 16", "--hazard-scale 1 → 100"):
        assert named in line, line


def test_another_schema_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "data"
    _ok(out)
    line = _refused(tmp_path, out, "--schema", "dcgm")
    assert "--schema ours → dcgm" in line, line
    line = _refused(tmp_path, out, "--instance", "10.0.0.7:9840")
    assert "--instance default → 10.0.0.7:9840" in line, line
    line = _refused(tmp_path, out, "--resolution", "30m")
    assert "--resolution 3600s → 1800s" in line, line


def test_a_later_range_extends_and_the_ground_truth_covers_both(tmp_path: Path) -> None:
    """The legitimate extension: the same fleet, a later --end-time (or more --days). The
    ground truth then describes the whole history the directory holds, byte for byte what one
    backfill of that whole range writes: the first range's failure is not lost."""
    from gpu_health.sim.fleet import build_fleet

    failures = build_fleet(8, 0).failures(0.0, time.time() - 86400)
    assert failures, "seed 0 has no failure to keep: pick another seed"
    first_end = (failures[-1].time // 3600 + 3) * 3600  # its 6 hours hold the failure
    later_end = first_end + 7 * 3600  # the next 6 hours, adjoining: no sample twice, none missed
    out, whole = tmp_path / "data", tmp_path / "whole"
    _ok(out, end=first_end)
    earlier_blocks = {p.name for p in out.iterdir() if p.is_dir()}
    _ok(out, end=later_end)
    assert earlier_blocks < {p.name for p in out.iterdir() if p.is_dir()}  # blocks kept
    _ok(whole, days=13 / 24, end=later_end)
    for name in ("failures.csv", "gpus.csv", "backfill.json"):
        assert (out / name).read_bytes() == (whole / name).read_bytes(), name
    assert failures[-1].uuid in (out / "failures.csv").read_text()
    _ok(out, days=0.5, end=later_end)  # more days over part of the same range: overlaps
    for name in ("failures.csv", "gpus.csv", "backfill.json"):
        assert (out / name).read_bytes() == (whole / name).read_bytes(), name
    manifest = json.loads((out / "backfill.json").read_text())
    assert manifest["start"] == first_end - 6 * 3600 and manifest["end"] == later_end + 3600
    assert manifest["seed"] == 0 and manifest["gpus"] == 8 and manifest["health"] is False
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "whole"]


def test_a_range_apart_from_the_recorded_one_is_refused(tmp_path: Path) -> None:
    """A day later, leaving hours without samples between: the scorer reads the whole span of
    the blocks, where those hours are GPUs that stopped reporting."""
    out = tmp_path / "data"
    _ok(out, end=END - 86400)
    line = _refused(tmp_path, out)
    assert "hours between them without samples" in line and "overlaps or adjoins" in line, line


def test_an_earlier_backfill_without_a_manifest_is_refused(tmp_path: Path) -> None:
    """A directory written before backfill.json existed: its fleet cannot be checked, and its
    ground truth would be replaced by this run's alone."""
    out = tmp_path / "data"
    _ok(out)
    (out / "backfill.json").unlink()
    line = _refused(tmp_path, out)
    assert "recorded no backfill.json" in line, line
    (out / "backfill.json").write_text("{}\n")
    assert "is not a record of gpu-health backfill" in _refused(tmp_path, out)
