"""Regenerate the dashboard previews in docs/img/ from a simulated fleet with a day of history.

Run from the repository root: ``.venv/bin/python docs/img/render_previews.py`` (about 10 min).

What it runs is what tests/mixin/test_dashboards_live.py runs — `gpu-health backfill` (with the live
exporter's address as ``--instance``, so each history series continues as the live one), the
live exporter on the simulated fleet with injected faults, the scorer, a real Prometheus loaded
with the mixin's recording rules — plus one step so the previews show a day rather than minutes:
the recording rules are evaluated over the history with ``promtool tsdb create-blocks-from
rules``, as an operator would after backfilling: in passes, since promtool evaluates each rule
against what Prometheus holds, so a record that reads another record (the per-node coverage
reads the slot record; the overall score the silent and unknown records, themselves a chain)
gets its history only after the one it reads is loaded.

The scorer only runs live, so the risk panels' time series cover the last minutes only.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import yaml

from gpu_health import stack
from gpu_health.mixin.backfill_passes import passes

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
JOB = "gpu-health-exporter"
GPUS = 16
LIVE_SECONDS = 330  # past the 5 min lookback, so the last history samples go stale


def tsdb_gauge(url: str, name: str) -> float:
    """One of Prometheus' own TSDB metrics, from its ``/metrics``."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    (value,) = re.findall(rf"^{name} (\S+)$", text, re.M)
    return float(value)


def backfill_rules(work: Path, rules: Path, url: str, data: Path, start: float, end: float) -> None:
    """Evaluate ``rules`` over [start, end] in passes, each pass's blocks loaded before the
    next pass reads them. Prometheus rereads its data directory about once a minute: a pass
    waits until it holds the moved blocks, or has reread twice since (a compaction may have
    merged them already)."""
    for level, doc in enumerate(passes(yaml.safe_load(rules.read_text()))):
        pass_file = work / f"rules-pass-{level}.yaml"
        pass_file.write_text(yaml.safe_dump(doc, sort_keys=False))
        blocks = work / f"rule-blocks-{level}"
        stack.promtool_backfill_rules(pass_file, url, start, end, blocks)
        loaded = tsdb_gauge(url, "prometheus_tsdb_blocks_loaded")
        reloads = tsdb_gauge(url, "prometheus_tsdb_reloads_total")
        failed = tsdb_gauge(url, "prometheus_tsdb_reloads_failures_total")
        moved = 0
        for block in blocks.iterdir():
            shutil.move(str(block), data / block.name)
            moved += 1
        deadline = time.monotonic() + 180
        while not (
            tsdb_gauge(url, "prometheus_tsdb_blocks_loaded") >= loaded + moved
            or tsdb_gauge(url, "prometheus_tsdb_reloads_total") >= reloads + 2
        ):
            if time.monotonic() > deadline:
                raise SystemExit(f"rules pass {level}: Prometheus did not load its blocks in 180 s")
            time.sleep(5)
        # a reload counts whether it worked or not: a failed one leaves the next pass blind
        if tsdb_gauge(url, "prometheus_tsdb_reloads_failures_total") > failed:
            raise SystemExit(f"rules pass {level}: Prometheus failed to load blocks (its log)")
        records = sum(len(g["rules"]) for g in doc["groups"])
        print(f"rules pass {level}: {records} records, {moved} blocks", flush=True)


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="gpu-health-previews-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        exporter_port, scorer_port = stack.free_port(), stack.free_port()
        data = work / "tsdb"
        subprocess.run(
            [
                str(BIN / "gpu-health"),
                "backfill",
                "--gpus",
                str(GPUS),
                "--days",
                "1",
                "--seed",
                "0",
                "--instance",
                f"127.0.0.1:{exporter_port}",
                "--out",
                str(data),
            ],
            check=True,
        )
        rules = work / "rules.yaml"
        shutil.copy(REPO / "rules" / "gpu-health-rules.yaml", rules)
        log = (work / "exporter.log").open("wb")
        procs.append(
            subprocess.Popen(
                [
                    str(BIN / "gpu-health-exporter"),
                    "--backend",
                    "sim",
                    "--sim-gpus",
                    str(GPUS),
                    "--sim-seed",
                    "0",
                    "--sim-fault",
                    "gpu=1,fault=row_remap_pending",
                    "--sim-fault",
                    "gpu=1,fault=ecc_storm",
                    "--sim-fault",
                    "gpu=9,fault=thermal",
                    "--sim-fault",
                    "gpu=12,fault=xid79,after=60s",
                    "--web.listen-address",
                    f"127.0.0.1:{exporter_port}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
        time.sleep(3)
        history_end = time.time()
        config = stack.write_prometheus_config(
            work / "prometheus.yml",
            scrape_targets={
                JOB: [f"127.0.0.1:{exporter_port}"],
                "gpu-health-scorer": [f"127.0.0.1:{scorer_port}"],
            },
            rule_files=[rules],
            scrape_interval="5s",
            evaluation_interval="5s",
        )
        with stack.prometheus(work, config, data_dir=data) as prom:
            scorer_log = (work / "scorer.log").open("wb")
            procs.append(
                subprocess.Popen(
                    [
                        str(BIN / "gpu-health-scorer"),
                        "serve",
                        "--prometheus.url",
                        prom.url,
                        "--web.listen-address",
                        f"127.0.0.1:{scorer_port}",
                        "--interval",
                        "20s",
                    ],
                    stdout=scorer_log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
            backfill_rules(work, rules, prom.url, data, history_end - 86400, history_end)
            time.sleep(LIVE_SECONDS)  # live data, scorer runs, and the new blocks get loaded
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "gpu_health.mixin.dashpreview",
                    "--prometheus",
                    prom.url,
                    "--dashboards",
                    str(REPO / "grafana"),
                    "--out",
                    str(REPO / "docs" / "img"),
                    "--range",
                    "24h",
                    "--scrape-interval",
                    "60s",
                ],
                check=True,
            )
    finally:
        for proc in procs:
            stack.stop_process(proc)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
