"""Regenerate the dashboard previews in docs/img/ from a simulated fleet with a day of history.

Run from the repository root: ``.venv/bin/python docs/img/render_previews.py`` (about 4 min).

What it runs is what tests/mixin/test_dashboards_live.py runs — `gpu-health backfill` (with the live
exporter's address as ``--instance``, so each history series continues as the live one), the
live exporter on the simulated fleet with injected faults, the scorer, a real Prometheus loaded
with the mixin's recording rules — plus one step so the previews show a day rather than minutes:
the recording rules are evaluated over the history with ``promtool tsdb create-blocks-from
rules``, as an operator would after backfilling.

The scorer only runs live, so the risk panels' time series cover the last minutes only.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from gpu_health import stack

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
JOB = "gpu-health-exporter"
GPUS = 16
LIVE_SECONDS = 330  # past the 5 min lookback, so the last history samples go stale


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
            blocks = work / "rule-blocks"
            subprocess.run(
                [
                    stack.find_binary("promtool"),
                    "tsdb",
                    "create-blocks-from",
                    "rules",
                    f"--start={int(history_end - 86400)}",
                    f"--end={int(history_end)}",
                    f"--url={prom.url}",
                    f"--output-dir={blocks}",
                    "--eval-interval=60s",
                    str(rules),
                ],
                check=True,
            )
            for block in blocks.iterdir():
                shutil.move(str(block), data / block.name)
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
