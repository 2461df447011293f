"""The same dcgm-exporter fleet evaluated with and without one thing the scorer knows of NVLink5.

NVLink5 boards (Blackwell) differ from Hopper in two ways the scorer reads, each measured here by
``--change``:

- ``fields`` (default): they count NVLink errors only in ``DCGM_FI_DEV_NVLINK_COUNT_*`` fields,
  four of which the scorer reads (``NVLINK5_ERROR_FIELDS``, docs/scorer.md). "Without" takes
  them out of the metric catalogue, which is how the scorer read dcgm-exporter before.
- ``xids``: they log NVLink errors as XIDs 144-150, not 74 (``NVLINK5_XIDS``): NVLink evidence,
  a reset-required code and a failure. "Without" takes them out of the XID catalogue before
  anything else is imported, which is how the scorer classed them before: as "other".

It runs ``gpu-health-scorer evaluate --schema dcgm --step 24h --model xgboost`` on one fleet
twice, without and as shipped, and prints, per subset of the 7-day horizon, the rule's and the
model's ROC AUC and recall at 5 % FPR, without → with (docs/model-card.md,
``bench/blackwell_fleet.py``). Both evaluations of a 224-GPU, 45-day fleet at 10-minute data
took 2.5 minutes here, one after the other.

    .venv/bin/python bench/nvlink5_on_fleet.py --data-dir /tmp/bw/s1 [--change xids] [--work DIR]
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


def _without_nvlink5(change: str, argv: list[str]) -> int:
    """Run the scorer's CLI without the NVLink5 error fields or the NVLink5 XIDs."""
    if change == "xids":
        # Before any module copies them: every list derived from these is then derived as it
        # was before the scorer knew the codes.
        from gpu_health.telemetry import xids

        gone = set(xids.NVLINK5_XIDS)
        xids.NVLINK5_XIDS = ()
        xids.XID_CATALOGUE = {k: v for k, v in xids.XID_CATALOGUE.items() if k not in gone}
        xids.RESET_REQUIRED_XIDS = tuple(c for c in xids.RESET_REQUIRED_XIDS if c not in gone)
    else:
        from gpu_health.telemetry import catalogue

        catalogue.CATALOGUE = tuple(
            dataclasses.replace(
                spec,
                dcgm=tuple(f for f in spec.dcgm if f.name not in catalogue.NVLINK5_ERROR_FIELDS),
            )
            for spec in catalogue.CATALOGUE
        )
    from gpu_health.scorer.cli import main

    return main(argv)


def _evaluate(data_dir: Path, out: Path, without: bool, change: str) -> dict[str, Any]:
    argv = [*EVALUATE, "--data-dir", str(data_dir), "--json", str(out)]
    prefix = (
        [sys.executable, __file__, "--without-nvlink5", change]
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
        return _without_nvlink5(sys.argv[2], sys.argv[3:])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True, help="DIR with DIR/prometheus")
    parser.add_argument("--work", type=Path, help="where the two JSON reports go (default: tmp)")
    parser.add_argument(
        "--change",
        choices=("fields", "xids"),
        default="fields",
        help="what to take away: the NVLink5 error fields (default) or the NVLink5 XIDs",
    )
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="nvlink5-"))
    work.mkdir(parents=True, exist_ok=True)
    before = _evaluate(args.data_dir, work / "without.json", without=True, change=args.change)
    after = _evaluate(args.data_dir, work / "with.json", without=False, change=args.change)
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
