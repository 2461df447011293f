"""The same dcgm-exporter fleet evaluated with NVLink5's error counters read and not read.

NVLink5 boards (Blackwell) count their NVLink errors only in ``DCGM_FI_DEV_NVLINK_COUNT_*``
fields, four of which the scorer reads (``NVLINK5_ERROR_FIELDS``, docs/scorer.md). This runs
``gpu-health-scorer evaluate --schema dcgm --step 24h --model xgboost`` on one fleet twice: as
shipped, and with those four fields taken out of the metric catalogue, which is how the scorer
read dcgm-exporter before it read them. It prints, per subset of the 7-day horizon, the rule's
and the model's ROC AUC and recall at 5 % FPR, without → with (docs/model-card.md,
``bench/blackwell_fleet.py``). Both evaluations of a 224-GPU, 45-day fleet at 10-minute data
took 2.5 minutes here, one after the other.

    .venv/bin/python bench/nvlink5_on_fleet.py --data-dir /tmp/bw/s1 [--work DIR]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

EVALUATE = ["evaluate", "--schema", "dcgm", "--step", "24h", "--model", "xgboost"]


def _without_nvlink5(argv: list[str]) -> int:
    """Run the scorer's CLI with the NVLink5 error fields out of the catalogue."""
    from gpu_health.telemetry import catalogue

    catalogue.CATALOGUE = tuple(
        dataclasses.replace(
            spec, dcgm=tuple(f for f in spec.dcgm if f.name not in catalogue.NVLINK5_ERROR_FIELDS)
        )
        for spec in catalogue.CATALOGUE
    )
    from gpu_health.scorer.cli import main

    return main(argv)


def _evaluate(data_dir: Path, out: Path, without: bool) -> dict[str, Any]:
    argv = [*EVALUATE, "--data-dir", str(data_dir), "--json", str(out)]
    prefix = (
        [sys.executable, __file__, "--without-nvlink5"]
        if without
        else [
            sys.executable,
            "-m",
            "gpu_health.scorer.cli",
        ]
    )
    result = subprocess.run([*prefix, *argv], capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(
            f"evaluate failed ({'without' if without else 'with'} NVLink5):\n"
            + result.stderr[-2000:]
        )
    report: dict[str, Any] = json.loads(out.read_text())
    return report


def main() -> int:
    if sys.argv[1:2] == ["--without-nvlink5"]:
        return _without_nvlink5(sys.argv[2:])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True, help="DIR with DIR/prometheus")
    parser.add_argument("--work", type=Path, help="where the two JSON reports go (default: tmp)")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="nvlink5-"))
    work.mkdir(parents=True, exist_ok=True)
    before = _evaluate(args.data_dir, work / "without.json", without=True)
    after = _evaluate(args.data_dir, work / "with.json", without=False)
    print(f"rows {before['rows']} / {after['rows']}; empty without: {before['empty_features']}")
    for subset, b in before["horizons"]["7d"].items():
        a = after["horizons"]["7d"].get(subset)
        if not isinstance(b, dict) or "rule" not in b or not isinstance(a, dict):
            continue
        cells = [
            f"{who} ROC AUC {b[who]['roc_auc']:.3f} -> {a[who]['roc_auc']:.3f}, recall "
            f"{b[who]['recall_at_5pct_fpr']:.2f} -> {a[who]['recall_at_5pct_fpr']:.2f}"
            for who in ("rule", "model")
        ]
        print(f"7d {subset:<18} {a['positives']:>4} ({a['failures']}): " + "; ".join(cells))
    print(f"reports: {work}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
