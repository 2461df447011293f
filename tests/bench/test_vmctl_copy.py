"""``bench/vmctl_copy.py`` copies every sample of a Prometheus data directory into a real
VictoriaMetrics with Debian's vmctl, and says so when one is missing.

Copied the plain way (``vmctl prometheus`` on the directory), 14 of 30 copies of the test
fleet's history lost some of the last GPU's series (the module's docstring says why), so
copying it eight times in a row, each time into a fresh VictoriaMetrics, would find a loss in
all but about 1 of 150 trials of the plain way ((16/30)^8).
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from gpu_health import stack
from gpu_health.errors import UserError
from tests.bench.bench_runs import scorer_fleet_history

pytestmark = [pytest.mark.integration]

BENCH = Path(__file__).resolve().parents[2] / "bench"
COPIES = 8


@pytest.fixture(scope="module")
def vmctl_copy() -> Iterator[ModuleType]:
    for binary in ("victoria-metrics", "vmctl"):
        if shutil.which(binary) is None:
            pytest.skip(f"{binary} is not installed (run.sh installs it)")
    sys.path.insert(0, str(BENCH))
    try:
        import vmctl_copy
    finally:
        sys.path.remove(str(BENCH))
    yield vmctl_copy


def test_every_copy_holds_every_sample(vmctl_copy: ModuleType, tmp_path: Path) -> None:
    data = scorer_fleet_history(tmp_path)
    expected, _ = vmctl_copy.block_samples(data)
    assert expected > 30_000  # 108 series of about 300 samples
    for copy in range(COPIES):
        work = tmp_path / f"copy-{copy}"
        vm = stack.victoriametrics(work / "vm", ready_timeout=60.0)
        try:
            vmctl_copy.copy_blocks(data, vm.url, work / "staging")
            counts = vmctl_copy.exported_samples(vm.url, '{__name__=~"DCGM_.*"}')
            sentinels = vmctl_copy.exported_samples(vm.url, vmctl_copy.SENTINEL)
        finally:
            vm.stop()
        assert len(counts) == 108, f"copy {copy}: {len(counts)} series"
        assert sum(counts.values()) == expected, f"copy {copy}: {sorted(counts.values())[:5]}"
        assert 0 < len(sentinels) <= vmctl_copy.SENTINELS
    assert not any(p.is_symlink() for p in data.rglob("*"))  # the data directory is untouched


def test_a_short_copy_is_an_error_naming_both_counts(
    vmctl_copy: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = scorer_fleet_history(tmp_path)
    expected, _ = vmctl_copy.block_samples(data)
    said = vmctl_copy.samples_sent
    monkeypatch.setattr(vmctl_copy, "samples_sent", lambda text: said(text) - 297)
    vm = stack.victoriametrics(tmp_path / "vm", ready_timeout=60.0)
    try:
        with pytest.raises(RuntimeError) as error:
            vmctl_copy.copy_blocks(data, vm.url, tmp_path / "staging")
    finally:
        vm.stop()
    assert str(error.value) == f"vmctl copied {expected - 297} of the {expected} samples in {data}"


def test_what_vmctl_says_is_read_or_refused(vmctl_copy: ModuleType, tmp_path: Path) -> None:
    stats = "Import finished!\nVictoriaMetrics importer stats:\n  total samples: 33705;\n"
    assert vmctl_copy.samples_sent(stats) == 33705
    with pytest.raises(RuntimeError, match="did not say how many samples"):
        vmctl_copy.samples_sent("error run prometheus import process: boom")
    with pytest.raises(UserError, match="no Prometheus blocks found"):
        vmctl_copy.block_samples(tmp_path)
