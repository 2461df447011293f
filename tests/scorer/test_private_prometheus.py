"""The private Prometheus of ``evaluate``/``train``/``labels``/``models promote`` never shares
a database with a running Prometheus, and a start that fails is one line naming the cause.

Debian's Prometheus 2.42 takes no lock on its data directory by default, so ``evaluate
--data-dir`` on the directory of a running Prometheus started a second one on the same database,
each writing its own write-ahead log and compactions into it; and a private Prometheus that
could not open the database (a corrupted block) ended the command in a traceback.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from gpu_health.scorer import cli as scorer_cli
from gpu_health.tsdb_holders import holders
from tests.base.command_runs import is_one_line_error, run_main
from tests.conftest import PrometheusFactory


def _history(backfill: Callable[[str], Path]) -> Path:
    now = int(time.time()) // 60 * 60
    lines = ["# TYPE gpu_up gauge"]
    lines += [f'gpu_up{{uuid="GPU-a",node="n1"}} 1 {t}' for t in range(now - 7200, now, 60)]
    return backfill("\n".join([*lines, "# EOF"]) + "\n")


def test_the_database_of_a_running_prometheus_is_refused(
    prometheus_factory: PrometheusFactory,
    backfill: Callable[[str], Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    data = _history(backfill)
    prometheus_factory(data_dir=data)
    before = sorted(p.name for p in data.iterdir())
    argv = ["evaluate", "--data-dir", str(data), "--step", "1h", "--warmup", "1m"]
    code, err = run_main(scorer_cli.main, argv, capsys)
    assert is_one_line_error(code, err), err
    assert "(prometheus) has the database" in err and "snapshot" in err, err
    assert "private Prometheus" not in err  # refused before one was started
    assert sorted(p.name for p in data.iterdir()) == before


def test_a_private_prometheus_that_cannot_open_the_database_is_one_line(
    backfill: Callable[[str], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    data = _history(backfill)
    broken = data / "01BADBADBADBADBADBADBADBAD"
    broken.mkdir()
    (broken / "meta.json").write_text(
        '{"ulid":"01BADBADBADBADBADBADBADBAD","minTime":0,"maxTime":1,"version":1}'
    )
    argv = ["evaluate", "--data-dir", str(data), "--step", "1h", "--warmup", "1m"]
    code, err = run_main(scorer_cli.main, argv, capsys)
    err = err.removeprefix(f"starting a private Prometheus on {data} ...\n")
    assert is_one_line_error(code, err), err
    assert "did not start: opening storage failed" in err and "corrupted block" in err, err


def test_holders_are_the_processes_with_a_file_inside_open(tmp_path: Path) -> None:
    inside = tmp_path / "db" / "wal"
    inside.mkdir(parents=True)
    (inside / "00000001").write_text("")
    link = tmp_path / "via-link"
    link.symlink_to(tmp_path / "db")
    with (inside / "00000001").open() as held:
        sleeper = subprocess.Popen(["sleep", "30"], stdin=held)
    try:
        assert holders(tmp_path / "db") == [(sleeper.pid, "sleep")]
        assert holders(link) == [(sleeper.pid, "sleep")]  # the path as the user typed it
        assert holders(tmp_path / "d") == []  # a name that only starts alike
    finally:
        sleeper.kill()
        sleeper.wait()
    assert holders(tmp_path / "db") == []
