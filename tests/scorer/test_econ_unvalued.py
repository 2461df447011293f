"""GPUs the economics cannot value (no economics entry for their model) are said to be so.

An outside trial ran a fleet of V100, L4, A10 and A6000 beside H100 and A100: the shipped
economics then had entries for H100, H200, A100 and L40S only, and 136 of 200 GPUs, failed ones
included, got no NPV and no recommended action while the scorer said nothing above DEBUG. (Those
four models have shipped entries since: tests/scorer/test_econ_models.py.) Here the small state
fleet (tests/scorer/state_fleet.py, one GPU per state) runs with three GPUs of a model that still
has none, the Tesla K80 (two of them failed), and one Quadro RTX 6000 (Turing, not the RTX 6000
Ada), and each place a GPU's valuation shows up must say that these are not valued and why: the
scorer's log (one WARNING per change, naming each model, its GPUs and the option that adds an
entry), ``/api/v1/gpus`` and ``serve
--once`` (``economics.valued: false`` with the reason), ``/metrics``
(``gpu_scorer_econ_unvalued_gpus{model}``) and ``gpu-health report`` (text and HTML). A failed
GPU without economics stays failed and gets no action at all, ``keep`` least of all.
"""

from __future__ import annotations

import json
import logging
import math
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from gpu_health import stack
from tests.conftest import PrometheusFactory
from tests.scorer import state_fleet

pytestmark = pytest.mark.integration

SCORER = [sys.executable, "-m", "gpu_health.scorer.cli"]
BIN = Path(sys.executable).parent
K80 = "Tesla K80"
QRTX = "Quadro RTX 6000"
#: uuid -> model for the GPUs of a model the shipped economics has no entry for.
UNPRICED = {
    "GPU-healthy-1": K80,
    "GPU-lost": K80,  # failed: gpu_up 0
    "GPU-xid79": K80,  # failed: fell off the bus
    "GPU-penalty": QRTX,  # degraded
}
FAILED_UNPRICED = ("GPU-lost", "GPU-xid79")
#: what the scorer reports per model: GPUs without a valuation
UNVALUED = {K80: 3, QRTX: 1}
#: GPUs the scorer scores (the replaced one leaves the ranking)
SCORED = [g.uuid for g in state_fleet.FLEET if g.expect != "replaced"]


def _history(end: float, models: dict[str, str] = UNPRICED) -> str:
    """The state fleet's history with the GPUs of ``models`` (uuid -> model) given their
    models; the others are H100s."""
    lines = []
    for line in state_fleet.openmetrics(end).splitlines():
        uuid = re.search(r'uuid="([^"]+)"', line)
        if uuid and uuid.group(1) in models:
            line = line.replace(f'model="{state_fleet.MODEL}"', f'model="{models[uuid.group(1)]}"')
        lines.append(line)
    return "\n".join(lines) + "\n"


@pytest.fixture
def end() -> float:
    return float(int(time.time()) - 30)


@pytest.fixture
def fleet_url(
    prometheus_factory: PrometheusFactory, backfill: Callable[[str], Path], end: float
) -> str:
    server = prometheus_factory(data_dir=backfill(_history(end)))
    stack.wait_for_query(server.url, "count(gpu_up)")
    return server.url


def _warnings(log: str) -> list[str]:
    return [line for line in log.splitlines() if "WARNING" in line and "not valued" in line]


def _check_warning(line: str) -> None:
    """The one WARNING: how many GPUs, each model with its GPUs, and how to add an entry."""
    assert "4 of 13 GPUs not valued (no NPV, no recommended action)" in line, line
    assert f"'{K80}' (3 GPUs), '{QRTX}' (1 GPU)" in line, line
    entries = "H100, H200, A100, L40S, V100, L4, A10, A10G, RTX A6000, T4, A40, L40, RTX 6000 Ada"
    assert f"the entries match {entries}" in line, line
    assert "under models:" in line and "--econ.params" in line, line


def _gpu_schema() -> dict[str, Any]:
    from gpu_health.scorer.api import openapi_document

    answer = openapi_document()["paths"]["/api/v1/gpus"]["get"]["responses"]["200"]
    gpu: dict[str, Any] = answer["content"]["application/json"]["schema"]["properties"]["gpus"]
    return dict(gpu["items"])


def _check_gpus(gpus: list[dict[str, Any]]) -> None:
    """Every GPU says whether it is valued; the unpriced ones say why, with nulls for the rest."""
    schema = _gpu_schema()
    assert sorted(g["uuid"] for g in gpus) == sorted(SCORED)
    for g in gpus:
        jsonschema.validate(g, schema)  # the OpenAPI document describes both shapes
        econ = g["economics"]  # present for every GPU: never a silently missing key
        if g["uuid"] in UNPRICED:
            assert econ == {
                "valued": False,
                "reason": f"no economics for model {UNPRICED[g['uuid']]}",
                "recommended_action": None,
                "npv": None,
                "residual_value": None,
                "currency": None,
                "price_date": None,
            }, g["uuid"]
        else:
            assert econ["valued"] is True and econ["reason"] is None, g["uuid"]
            assert econ["recommended_action"] in ("keep", "repair", "repurpose", "sell")
            if g["state"] in ("failed", "absent"):
                assert econ["recommended_action"] != "keep", g["uuid"]
    by_uuid = {g["uuid"]: g for g in gpus}
    for uuid in FAILED_UNPRICED:  # a broken GPU without economics is still shown broken
        assert by_uuid[uuid]["state"] == "failed", by_uuid[uuid]
        assert by_uuid[uuid]["failure_probability"] == {"7d": 1.0, "30d": 1.0, "90d": 1.0}
    ranked = [g["uuid"] for g in gpus]
    down = [g["uuid"] for g in gpus if g["state"] in ("failed", "absent")]
    assert ranked[: len(down)] == down and set(FAILED_UNPRICED) <= set(down)


def test_serve_once_says_which_gpus_are_not_valued_and_why(fleet_url: str) -> None:
    result = subprocess.run(
        [*SCORER, "serve", "--once", "--prometheus.url", fleet_url],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    _check_gpus(json.loads(result.stdout)["gpus"])
    warnings = _warnings(result.stderr)
    assert len(warnings) == 1, result.stderr[-3000:]
    _check_warning(warnings[0])
    # the option the warning names is the scorer's own
    usage = subprocess.run([*SCORER, "serve", "--help"], capture_output=True, text=True)
    assert "--econ.params" in usage.stdout


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return str(answer.read().decode())


def _families(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    return {
        family.name: [(s.labels, s.value) for s in family.samples]
        for family in text_string_to_metric_families(text)
    }


@pytest.fixture
def serving(fleet_url: str, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """``gpu-health-scorer serve`` scoring the fleet every second: (base URL, its log file)."""
    port = stack.free_port()
    log_path = tmp_path / "scorer.log"
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(
            [
                *SCORER,
                "--prometheus.url",
                fleet_url,
                "--web.listen-address",
                f"127.0.0.1:{port}",
                "--interval",
                "1s",
            ],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield f"http://127.0.0.1:{port}", log_path
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def test_serve_counts_unvalued_gpus_by_model_and_warns_once_across_runs(
    serving: tuple[str, Path],
) -> None:
    base, log_path = serving
    deadline = time.monotonic() + 120
    while True:  # at least four runs: the warning must not repeat with each
        runs = log_path.read_text().count("INFO gpu_health.scorer.service: scored ")
        if runs >= 4:
            break
        assert time.monotonic() < deadline, log_path.read_text()[-3000:]
        time.sleep(0.5)
    text = _get(f"{base}/metrics")
    assert "# HELP gpu_scorer_econ_unvalued_gpus Scored GPUs the economics did not value" in text
    assert "# TYPE gpu_scorer_econ_unvalued_gpus gauge" in text
    metrics = _families(text)
    counts = {labels["model"]: value for labels, value in metrics["gpu_scorer_econ_unvalued_gpus"]}
    assert counts == UNVALUED
    actions = {
        labels["uuid"]: labels["action"]
        for labels, value in metrics["gpu_recommended_action"]
        if value == 1
    }
    assert set(actions) == set(SCORED) - set(UNPRICED)  # no action, not even a default one
    failed = {
        labels["uuid"]
        for labels, value in metrics["gpu_state"]
        if value == 1 and labels["state"] == "failed"
    }
    assert set(FAILED_UNPRICED) <= failed
    _check_gpus(json.loads(_get(f"{base}/api/v1/gpus"))["gpus"])
    log = log_path.read_text()
    warnings = _warnings(log)
    assert len(warnings) == 1, log[-3000:]  # once, not per run
    _check_warning(warnings[0])


def _gpu(uuid: str, model: str) -> Any:
    from gpu_health.scorer.service import GpuScore

    curve = {"7d": 0.001, "30d": 0.003, "90d": 0.009}
    return GpuScore(
        node="n1",
        gpu=uuid[-1],
        uuid=uuid,
        model=model,
        probability=curve,
        flagged={h: False for h in curve},
        risk_factors={h: [] for h in curve},
        anomaly=0.1,
        inputs={"hard_fault": 0.0},
    )


def test_the_warning_is_said_again_only_when_the_unvalued_models_change(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """One WARNING per change of the models without economics or of their GPU counts, an INFO
    line when every GPU is valued again, and nothing on the runs in between."""
    from gpu_health.scorer.econ.bridge import make_econ_hook

    hook = make_econ_hook()
    h100 = _gpu("GPU-a", "NVIDIA H100 80GB HBM3")
    k80 = [_gpu(f"GPU-t{i}", K80) for i in range(3)]
    a4000 = _gpu("GPU-l", "NVIDIA RTX A4000")  # not the A40's entry (a whole word)
    fleets = [
        [h100, *k80],
        [h100, *k80],  # unchanged: nothing said
        [h100, *k80, a4000],  # a new model: said again
        [h100, *k80, a4000],
        [h100, *k80[:2], a4000],  # a K80 left: the counts changed
        [h100],  # every GPU valued again
        [h100],
    ]
    said = []
    for fleet in fleets:
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="gpu_health.scorer.econ.bridge"):
            scored, families = hook(fleet)
        said.append([(r.levelname, r.getMessage()) for r in caplog.records])
        unvalued = {g.uuid: g.econ_unvalued for g in scored if g.econ is None}
        assert unvalued == {g.uuid: f"no economics for model {g.model}" for g in fleet[1:]}
        family = next(f for f in families if f.name == "gpu_scorer_econ_unvalued_gpus")
        counts = {s.labels["model"]: s.value for s in family.samples}
        expected: dict[str, float] = {}
        for g in fleet[1:]:
            expected[g.model] = expected.get(g.model, 0) + 1
        assert counts == expected
    assert [len(lines) for lines in said] == [1, 0, 1, 0, 1, 1, 0]
    assert said[0][0][0] == "WARNING" and "3 of 4 GPUs not valued" in said[0][0][1]
    assert f"'{K80}' (3 GPUs), 'NVIDIA RTX A4000' (1 GPU)" in said[2][0][1]
    assert f"'{K80}' (2 GPUs), 'NVIDIA RTX A4000' (1 GPU)" in said[4][0][1]
    assert said[5] == [("INFO", "economics: every GPU is valued now (1 GPU)")]


def _scorer_history(url: str, end: float) -> str:
    """What the scorer (with its economics) publishes on /metrics for the fleet, as the last
    ten minutes of history before ``end``."""
    from gpu_health.scorer.econ.bridge import make_econ_hook
    from gpu_health.scorer.model import load_model
    from gpu_health.scorer.promclient import PromClient, PromConfig
    from gpu_health.scorer.service import Scorer, ScorerCollector

    client = PromClient(PromConfig(url, retries=2, backoff_s=0.1))
    scorer = Scorer(client, load_model(None), econ=make_econ_hook())
    assert scorer.run_once(), scorer.last_error
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ScorerCollector(scorer))
    lines: dict[str, list[str]] = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        if not family.name.startswith("gpu_"):
            continue
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            if not math.isfinite(sample.value):
                continue
            for t in range(int(end) - 600, int(end) + 1, 60):
                lines.setdefault(sample.name, []).append(
                    f"{sample.name}{{{labels}}} {sample.value} {t}"
                )
    out = []
    for name, samples in lines.items():
        out.append(f"# TYPE {name} gauge")
        out.extend(samples)
    return "\n".join(out) + "\n"


def _report(
    models: dict[str, str],
    prometheus_factory: PrometheusFactory,
    backfill: Callable[[str], Path],
    end: float,
    page: Path,
) -> str:
    """``gpu-health report`` (text; HTML to ``page``) of the fleet with ``models`` and what the
    scorer published for it."""
    scored = prometheus_factory(data_dir=backfill(_history(end, models)))
    stack.wait_for_query(scored.url, "count(gpu_up)")
    history = _history(end, models).replace("# EOF\n", "")
    history += _scorer_history(scored.url, end) + "# EOF\n"
    server = prometheus_factory(data_dir=backfill(history))
    stack.wait_for_query(server.url, "count(gpu_scorer_econ_unvalued_gpus)")
    result = subprocess.run(
        [
            str(BIN / "gpu-health"),
            "report",
            "--prometheus",
            server.url,
            "--period",
            "6h",
            "--at",
            f"{end:.0f}",
            "--html",
            str(page),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_report_says_not_valued_and_for_which_model(
    prometheus_factory: PrometheusFactory,
    backfill: Callable[[str], Path],
    end: float,
    tmp_path: Path,
) -> None:
    page = tmp_path / "report.html"
    text = _report(UNPRICED, prometheus_factory, backfill, end, page)
    rows = {
        line.split()[2]: line
        for line in text.split("Riskiest GPUs", 1)[1].split("\n\n", 1)[0].splitlines()[2:]
    }
    for uuid, model in UNPRICED.items():
        row = rows[uuid[:16]]
        assert f"not valued (no economics for model {model})" in row, row
        assert row.rstrip().endswith("-"), row  # no NPV
    for uuid in FAILED_UNPRICED:  # shown failed, and failed first
        assert re.search(r"\bfailed\b", rows[uuid[:16]]), rows[uuid[:16]]
    assert all("not valued" not in row for uuid, row in rows.items() if uuid not in UNPRICED)
    actions = text.split("Recommended actions", 1)[1].split("\n\n", 1)[0]
    assert re.search(r"^not valued\s+4\s+-\s*$", actions, re.MULTILINE), actions
    assert "fleet residual value" in actions and "(valued GPUs only)" in actions, actions
    assert (
        f"not valued: 4 GPUs (no NPV, no recommended action), no economics for model {K80} "
        f"(3 GPUs), {QRTX} (1 GPU); add an entry for each model under models:" in actions
    ), actions
    assert "--econ.params" in actions
    html = page.read_text()
    ranking = html.split("<h2>GPUs ranked by failure risk</h2>", 1)[1].split("</table>", 1)[0]
    for uuid, model in UNPRICED.items():
        row = re.search(rf"<tr[^>]*>(?:(?!</tr>).)*<td>{uuid}</td>.*?</tr>", ranking)
        assert row, uuid
        assert f"<td>{model}</td><td>" in row.group(0), row.group(0)
        assert f"<td>not valued (no economics for model {model})</td>" in row.group(0), row
        assert row.group(0).endswith("<td class='num'>-</td></tr>"), row.group(0)  # no NPV
    for uuid in FAILED_UNPRICED:
        row = re.search(rf"<tr class='crit'>(?:(?!</tr>).)*<td>{uuid}</td>", ranking)
        assert row and "<td>failed</td>" in ranking.split(f"<td>{uuid}</td>", 1)[1][:200], uuid
    assert "<tr class='unvalued'><td>not valued</td><td class='num'>4</td>" in html
    assert f"no economics for model {K80} (3 GPUs), {QRTX} (1 GPU)" in html


def test_report_of_a_fleet_without_economics_says_so_not_that_actions_are_absent(
    prometheus_factory: PrometheusFactory,
    backfill: Callable[[str], Path],
    end: float,
    tmp_path: Path,
) -> None:
    """Every GPU a K80: the scorer values none. The report's note said "gpu_recommended_action
    is absent", as if no scorer ran; it says why, and still counts the GPUs as not valued."""
    every = {g.uuid: K80 for g in state_fleet.FLEET}
    page = tmp_path / "report.html"
    text = _report(every, prometheus_factory, backfill, end, page)
    actions = text.split("Recommended actions", 1)[1].split("\n\n", 1)[0]
    table = actions.splitlines()[3:4]
    assert re.fullmatch(rf"not valued\s+{len(SCORED)}\s+-\s*", table[0]), actions
    assert f"no economics for model {K80} ({len(SCORED)} GPUs)" in actions
    assert "gpu_recommended_action is absent" not in text
    assert "note: No recommendations: the scorer valued no GPU" in text
    failed = [line for line in text.split("Riskiest GPUs", 1)[1].splitlines() if " failed " in line]
    assert failed and all(f"not valued (no economics for model {K80})" in r for r in failed)
    html = page.read_text()
    assert f"<tr class='unvalued'><td>not valued</td><td class='num'>{len(SCORED)}</td>" in html


@pytest.mark.parametrize("wrapped", [False, True], ids=["economics", "inventory-hook"])
def test_an_economics_error_is_logged_once_per_change(
    fleet_url: str, caplog: pytest.LogCaptureFixture, wrapped: bool
) -> None:
    """An economics that fails on every run (a bug, a broken parameter) was logged with its
    traceback on every run, every few minutes for as long as it lasted: now once per distinct
    error, and one line when it works again; the failure scores are served throughout. The same
    with an asset inventory (``--inventory.file``), whose hook runs the economics inside its own
    guard so the inventory and the plan are still published: it logged every run until
    2026-12-07."""
    from gpu_health.scorer.inventory.hook import AssetJoin, make_fleet_hook
    from gpu_health.scorer.inventory.source import InventorySource
    from gpu_health.scorer.model import load_model
    from gpu_health.scorer.promclient import PromClient, PromConfig
    from gpu_health.scorer.service import EconHook, Scorer

    errors = iter(["boom", "boom", "boom", "other", None, None])

    def econ(gpus: Any) -> tuple[Any, list[Any]]:
        error = next(errors)
        if error is not None:
            raise RuntimeError(error)
        return gpus, []

    client = PromClient(PromConfig(fleet_url, retries=2, backoff_s=0.1))
    hook: EconHook = econ
    consequence = "serving failure scores without it"
    if wrapped:
        hook = make_fleet_hook(AssetJoin(InventorySource(None), client.query), econ)
        consequence = "publishing the inventory and plan without it"
    scorer = Scorer(client, load_model(None), econ=hook)
    said = []
    for _ in range(6):
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="gpu_health.scorer"):
            assert scorer.run_once(), scorer.last_error
        said.append(
            [(r.levelname, r.getMessage()) for r in caplog.records if "economics" in r.getMessage()]
        )
    failed = ("ERROR", f"economics failed; {consequence}")
    assert said == [[failed], [], [], [failed], [("INFO", "economics works again")], []]
