"""Live accuracy read back from Prometheus equals an offline evaluation of the same period.

The model's predictions over a fleet history are written to Prometheus as the scorer publishes
them (``gpu_failure_probability{uuid,horizon}``); ``gpu-health-scorer outcomes`` reads them
back with the failure ledger and must count exactly the rows that ``evaluate`` counts offline.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gpu_health import stack
from gpu_health.scorer.cli import main
from gpu_health.scorer.evaluation import evaluate, predict_snapshots
from gpu_health.scorer.model import HORIZONS, load_model
from gpu_health.scorer.promclient import PromClient, PromConfig
from gpu_health.scorer.training import collect, load_failures, prediction_times
from tests.scorer_fleet import DAY, failures_csv, make_fleet, openmetrics

pytestmark = [pytest.mark.integration, pytest.mark.slow]
DAYS = 80
FAILS = {1: 30, 5: 38, 7: 45, 9: 50, 13: 57, 17: 64, 19: 25, 23: 70}
STEP = 2 * DAY


def test_live_outcomes_match_offline_evaluate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    start = int(time.time()) - DAYS * DAY - 60
    gpus = make_fleet(24, FAILS)
    om = tmp_path / "history.om"
    om.write_text(openmetrics(gpus, days=DAYS, step=6 * 3600, schema="dcgm", start=start))
    stack.promtool_backfill(om, tmp_path / "tsdb", block_duration="2400h")
    ledger = failures_csv(gpus, tmp_path / "ledger.csv", start=start)
    failures = load_failures(ledger)
    model = load_model()  # the shipped default, as `outcomes` uses it
    config = stack.write_prometheus_config(tmp_path / "prometheus.yml")
    with stack.prometheus(tmp_path, config, data_dir=tmp_path / "tsdb", retention="36500d") as s:
        times = prediction_times(start, start + DAYS * DAY, STEP, 7 * DAY)
        client = PromClient(PromConfig(url=s.url))
        data = collect(client, "dcgm", times, failures, times[-1])
    offline = evaluate(model, data, failures, bootstrap=0)

    # What the scorer would have published at each of those times: each time's fleet scored
    # together, as `serve` scores it (the rule reads a GPU against its fleet at that time).
    lines = ["# TYPE gpu_failure_probability gauge"]
    x = data.matrix(model.features)
    published_p = {h: predict_snapshots(model, h, x, data.times) for h in HORIZONS}
    for h in HORIZONS:
        for uuid, t, p in zip(data.uuids, data.times, published_p[h], strict=True):
            lines.append(f'gpu_failure_probability{{uuid="{uuid}",horizon="{h}"}} {p:.9g} {t:.0f}')
    published = tmp_path / "published.om"
    published.write_text("\n".join(lines) + "\n# EOF\n")
    stack.promtool_backfill(published, tmp_path / "scores", block_duration="2400h")
    (tmp_path / "scores-run").mkdir()
    config = stack.write_prometheus_config(tmp_path / "scores-run" / "prometheus.yml")
    with stack.prometheus(
        tmp_path / "scores-run", config, data_dir=tmp_path / "scores", retention="36500d"
    ) as s:
        capsys.readouterr()
        window = times[-1] - times[0]
        argv = ["outcomes", "--prometheus.url", s.url, "--ledger", str(ledger), "--json"]
        argv += ["--end", f"{times[-1]:.0f}", "--window", f"{window:.0f}s", "--step", "2d"]
        assert main(argv) == 0
        live = json.loads(capsys.readouterr().out)
        textfile = tmp_path / "gpu_prediction.prom"
        plain = [a for a in argv if a != "--json"]
        assert main([*plain, "--textfile", str(textfile)]) == 0
    exposed = {
        (s.name, s.labels.get("horizon"), s.labels.get("outcome")): s.value
        for family in text_string_to_metric_families(textfile.read_text())
        for s in family.samples
    }
    for h in HORIZONS:
        for outcome in ("true_positive", "false_positive", "false_negative"):
            assert exposed[("gpu_prediction_outcomes", h, outcome)] == live[h][outcome]
        if live[h]["precision"] is not None:
            assert exposed[("gpu_prediction_precision", h, None)] == pytest.approx(
                live[h]["precision"], rel=1e-5
            )

    flagged_any = False
    for h in HORIZONS:
        y = data.labels[h]
        known = ~np.isnan(y)
        p = published_p[h]
        thr = model.threshold(h)
        expect_tp = int(((p >= thr) & (y == 1) & known).sum())
        expect_fp = int(((p >= thr) & (y == 0) & known).sum())
        expect_fn = int(((p < thr) & (y == 1) & known).sum())
        got = live[h]
        assert (got["true_positive"], got["false_positive"], got["false_negative"]) == (
            expect_tp,
            expect_fp,
            expect_fn,
        ), h
        flagged_any |= expect_tp > 0
        # outcomes reads published probabilities only: it counts the fixed threshold, which
        # evaluate reports next to the model's own (per-fleet, for the rule) flags.
        recall = offline["horizons"][h].get("recall_at_absolute_threshold")
        if recall is not None:
            assert abs(got["recall"] - recall) <= 0.01
        fpr = offline["horizons"][h].get("fpr_at_absolute_threshold")
        if fpr is not None:
            negatives = offline["horizons"][h]["rows"] - offline["horizons"][h]["positives"]
            assert abs(got["false_positive"] / negatives - fpr) <= 0.01
    assert flagged_any, "the model should flag some failing GPU on this fleet"
