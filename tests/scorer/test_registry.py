"""Model store and champion/challenger gate through ``gpu-health-scorer models``, against a real
Prometheus serving a fleet history; rollback reaches a running scorer without a restart."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from gpu_health import stack
from gpu_health.scorer.cli import main
from gpu_health.scorer.model import DEFAULT_MODEL_DIR, FailureModel
from gpu_health.scorer.registry import Store
from gpu_health.scorer.service import Scorer
from tests.scorer_fleet import DAY, failures_csv, make_fleet, openmetrics

DAYS = 80
HOLDOUT_DAY = 52
FAILS = {1: 30, 5: 38, 7: 45, 9: 50, 13: 57, 17: 64, 19: 25, 23: 70, 21: DAYS + 2}

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    """A dcgm-schema fleet history ending now, served by a real Prometheus."""
    out = tmp_path_factory.mktemp("history")
    start = int(time.time()) - DAYS * DAY - 60
    gpus = make_fleet(24, FAILS)
    om = out / "history.om"
    om.write_text(openmetrics(gpus, days=DAYS, step=6 * 3600, schema="dcgm", start=start))
    stack.promtool_backfill(om, out / "prometheus", block_duration="2400h")
    om.unlink()
    failures = failures_csv(gpus, out / "failures.csv", start=start)
    config = stack.write_prometheus_config(out / "prometheus.yml")
    with stack.prometheus(out, config, data_dir=out / "prometheus", retention="36500d") as server:
        yield SimpleNamespace(
            url=server.url, start=start, holdout=start + HOLDOUT_DAY * DAY, failures=failures
        )


def _history_args(h: SimpleNamespace) -> list[str]:
    return [
        "--prometheus.url", h.url, "--failures", str(h.failures), "--start", str(h.start),
        "--step", "2d", "--schema", "dcgm",
    ]  # fmt: skip


def _flipped(model_dir: Path, out: Path) -> Path:
    """The same model with its calibration reversed: it ranks the fleet upside down."""
    model = FailureModel.load(model_dir)
    for h in model.horizons.values():
        h.calib_a = -h.calib_a
    model.metadata = {**model.metadata, "note": "deliberately worse"}
    model.save(out)
    return out


def _promote(h: SimpleNamespace, store: Path, candidate: Path, *extra: str) -> int:
    return main(
        [
            "models", "promote", str(candidate), "--store", str(store), *_history_args(h),
            "--holdout-start", str(h.holdout), "--trained-until", str(h.holdout),
            "--horizon", "7d", "--min-failures", "3", *extra,
        ]
    )  # fmt: skip


def test_gate_refuses_a_worse_candidate_and_promotes_a_better_one(
    history: SimpleNamespace, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = tmp_path / "good"
    # Trained only on the history before the held-out window (--end): nothing leaks.
    train = [
        "train", *_history_args(history), "--end", str(history.holdout),
        "--trees", "40", "--out", str(good),
    ]  # fmt: skip
    assert main(train) == 0
    worse = _flipped(good, tmp_path / "worse")
    store = tmp_path / "store"
    capsys.readouterr()

    # No champion yet: the worse model must still beat the rule baseline, and does not.
    assert _promote(history, store, worse) != 0
    assert "does not beat the rule baseline" in capsys.readouterr().err
    assert not (store / "versions").exists() or not list((store / "versions").iterdir())

    # An operator forces it in (an emergency); the gate is then judged against it.
    assert _promote(history, store, worse, "--force") == 0
    assert Store(store).current == "0001"

    assert _promote(history, store, good) == 0
    out = capsys.readouterr()
    assert "promoted: ROC AUC" in out.out
    # Only the held-out window is read: from day 52 of 80, every 2 days (the whole history
    # after its warm-up would be more steps).
    assert "gate: 14 time steps" in out.err, out.err[:500]
    decision = json.loads(out.err[out.err.index("{") :])
    aucs = decision["roc_auc"]
    assert aucs["candidate"] > aucs["champion"] and aucs["candidate"] >= aucs["rule_baseline"]
    assert decision["holdout_positives"] > 0
    assert Store(store).current == "0002"

    # The worse one again, now against a real champion: refused, champion keeps serving.
    assert _promote(history, store, worse) != 0
    assert "does not beat the champion" in capsys.readouterr().err
    assert Store(store).current == "0002"

    # Too few failures in its training: refused with the reason, before any evaluation.
    assert _promote(history, store, good, "--min-failures", "1000") != 0
    err = capsys.readouterr().err
    assert "fewer than the 1000 required" in err and "Traceback" not in err
    assert "time steps" not in err  # refused before a single feature query

    # A candidate that saw the held-out window is refused (time split).
    code = main(
        [
            "models", "promote", str(good), "--store", str(store), *_history_args(history),
            "--holdout-start", str(history.holdout), "--trained-until",
            str(history.holdout + 5 * DAY), "--horizon", "7d", "--min-failures", "3",
        ]
    )  # fmt: skip
    assert code != 0
    err = capsys.readouterr().err
    assert "reaches into the held-out window" in err and "time steps" not in err

    # A held-out window after the history's end: one line naming it, nothing read.
    late = str(history.start + (DAYS + 3) * DAY)
    code = _promote(history, store, good, "--holdout-start", late, "--trained-until", late)
    err = capsys.readouterr().err
    assert code != 0 and "no prediction time from" in err and "time steps" not in err, err
    assert "Traceback" not in err

    assert main(["models", "list", "--store", str(store)]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert len(listing) == 3 and listing[2].split()[:2] == ["0002", "*"]
    # Every version keeps its manifest, evaluation and checksums.
    for version in ("0001", "0002"):
        files = {p.name for p in (store / "versions" / version).iterdir()}
        assert {"manifest.json", "evaluation.json", "checksums.sha256"} <= files
    evaluation = json.loads((store / "versions" / "0002" / "evaluation.json").read_text())
    assert evaluation["gate"]["roc_auc"]["candidate"] == aucs["candidate"]
    with history.failures.open() as handle:
        assert sum(1 for _ in csv.DictReader(handle)) == len(FAILS)


def _variant(out: Path, note: str) -> Path:
    model = FailureModel.load(DEFAULT_MODEL_DIR)
    model.metadata = {**model.metadata, "note": note}
    model.save(out)
    return out


def test_rollback_reaches_a_running_scorer_without_restart(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    for note in ("first", "second"):
        version = store.add(_variant(tmp_path / note, note), {"reason": note})
        store.activate(version.name, "promote", note)
    scorer = Scorer(
        client=SimpleNamespace(errors=0),  # type: ignore[arg-type]
        model=FailureModel.load(store.serving_dir),
        model_dir=store.serving_dir,
    )
    scorer.reload_model_if_changed()
    assert scorer.model.metadata["note"] == "second"

    assert main(["models", "rollback", "--store", str(store.root)]) == 0
    scorer.reload_model_if_changed()
    assert scorer.model.metadata["note"] == "first"
    assert scorer.model_reload_errors == 0
    assert store.current == "0001"
    assert [h["action"] for h in store.history] == ["promote", "promote", "rollback"]

    # Nothing earlier than the first version: a one-line refusal, the model stays.
    assert main(["models", "rollback", "--store", str(store.root)]) != 0
    assert main(["models", "rollback", "--store", str(store.root), "--to", "0002"]) == 0
    scorer.reload_model_if_changed()
    assert scorer.model.metadata["note"] == "second"


def test_damaged_version_is_never_served(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    for note in ("first", "second"):
        version = store.add(_variant(tmp_path / note, note), {"reason": note})
        store.activate(version.name, "promote", note)
    booster = store.root / "versions" / "0001" / "xgb-30d.ubj"
    booster.write_bytes(booster.read_bytes()[:100])
    assert main(["models", "rollback", "--store", str(store.root)]) != 0
    assert store.current == "0002"
    assert FailureModel.load(store.serving_dir).metadata["note"] == "second"
    shutil.rmtree(store.root / "versions" / "0001")


def _gpu_probability(base: str, uuid: str) -> float | None:
    try:
        with urllib.request.urlopen(f"{base}/api/v1/gpus?horizon=7d", timeout=5) as r:
            ranking = json.loads(r.read())
    except OSError:
        return None
    for gpu in ranking.get("gpus", []):
        if gpu["uuid"] == uuid:
            return float(gpu["failure_probability"]["7d"])
    return None


def _until(predicate: Callable[[], Any], timeout: float = 120.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError("condition not reached")


def test_rollback_reaches_a_running_serve_process(history: SimpleNamespace, tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    good = _variant(tmp_path / "good", "shipped")
    for candidate in (good, _flipped(good, tmp_path / "flipped")):
        version = store.add(candidate, {"reason": candidate.name})
        store.activate(version.name, "promote", candidate.name)
    port = stack.free_port()
    command = [
        sys.executable, "-m", "gpu_health.scorer.cli", "serve", "--prometheus.url",
        history.url, "--web.listen-address", f"127.0.0.1:{port}", "--interval", "1s",
        "--model", str(store.serving_dir), "--no-econ", "--schema", "dcgm",
    ]  # fmt: skip
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )
    base = f"http://127.0.0.1:{port}"
    ramping = "GPU-0021-test"  # fails two days after the history ends: its signs are visible
    try:
        flipped = _until(lambda: _gpu_probability(base, ramping))
        assert main(["models", "rollback", "--store", str(store.root)]) == 0
        restored = _until(
            lambda: (p := _gpu_probability(base, ramping)) is not None and p > flipped and p
        )
        assert restored > flipped
        assert proc.poll() is None, "the scorer must not restart"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    output = proc.communicate(timeout=20)[0].decode()
    assert "loaded a new model" in output and "Traceback" not in output, output[-2000:]
