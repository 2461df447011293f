#!/usr/bin/env python3
"""One blind fleet evaluated as dcgm-exporter 4.8 writes it, as 4.9 writes it, and with half
its nodes' exporters upgraded to 4.9 in the middle of the history.

The fleet is ``bench/lab_fleet.py``'s (a generator the scorer was never tuned on, which writes
every field of dcgm-exporter's default counters file, the SM clock included). Its renderer's
OpenMetrics chunks are passed through :func:`gpu_health.sim.dcgm_renames.renamed` before
promtool reads them, so the three histories hold the same samples (counted, chunk by chunk)
under different names: DCGM 4.6's names for the renamed fields, Hz for the SM clock. Each is
then scored with ``gpu-health-scorer evaluate --schema dcgm --step 24h --model rules`` (the
shipped default), and the rule's ROC AUC and recall at 5 % FPR are printed per 7-day subset
next to the legacy history's: the renamed history should give the same numbers, the upgraded
one nearly the same. A second run with the same ``--work`` reuses the fleets and reports it
finds (delete them to measure again). Three fleets of 40 days (1.5–2 minutes each) and their
evaluations (about 4 minutes each) took about 14 minutes here.

    .venv/bin/python bench/dcgm_renamed_on_fleet.py --work /tmp/renamed-lab [--seed 1]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gpu_health.sim.dcgm_renames import renamed, upgraded_nodes

HERE = Path(__file__).resolve().parent
EVALUATE = ["evaluate", "--schema", "dcgm", "--step", "24h", "--model", "rules"]
VARIANTS = ("legacy", "renamed", "upgraded")


def _lab_fleet() -> Any:
    """``bench/lab_fleet.py`` as a module (bench/ is no package)."""
    spec = importlib.util.spec_from_file_location("lab_fleet", HERE / "lab_fleet.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["lab_fleet"] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _samples(text: str) -> int:
    return sum(1 for line in text.splitlines() if line and not line.startswith("#"))


def _write(variant: str, seed: int, days: int, out: Path) -> None:
    """The lab fleet of ``seed`` in ``out``, its chunks renamed as ``variant`` says."""
    lab = _lab_fleet()
    end = lab.DEFAULT_END
    upgrade_at = end - days * 86400 / 2
    plain = lab.Renderer.chunk_text

    def chunk_text(self: Any, ks: Any) -> str:
        text: str = plain(self, ks)
        if variant == "legacy":
            return text
        nodes = tuple(n["name"] for n in self.ph.nodes[::2])
        upgraded: Callable[[str, float], bool] = (
            (lambda _node, _t: True) if variant == "renamed" else upgraded_nodes(nodes, upgrade_at)
        )
        out_text = renamed(text, upgraded).removesuffix("# EOF\n")
        if _samples(out_text) != _samples(text):
            sys.exit(
                f"{variant}: the renaming lost samples ({_samples(text)} -> {_samples(out_text)})"
            )
        return out_text

    lab.Renderer.chunk_text = chunk_text
    rc = lab.main(["--seed", str(seed), "--schema", "dcgm", "--days", str(days), "--out", str(out)])
    if rc != 0:
        sys.exit(f"{variant}: bench/lab_fleet.py failed ({rc})")


def _numbers(report: Any, prefix: str = "") -> dict[str, float]:
    """Every number of an evaluation report, by its path (lead times and timings included)."""
    if isinstance(report, dict):
        return {
            k: v for key, sub in report.items() for k, v in _numbers(sub, f"{prefix}/{key}").items()
        }
    if isinstance(report, list):
        return {
            k: v for i, sub in enumerate(report) for k, v in _numbers(sub, f"{prefix}/{i}").items()
        }
    if isinstance(report, int | float) and not isinstance(report, bool):
        return {prefix: float(report)}
    return {}


def _same(a: float, b: float | None) -> bool:
    return b is not None and (
        a == b or (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-9)
    )


def _cell(scores: dict[str, Any]) -> str:
    return f"{scores['roc_auc']:.3f} / {scores['recall_at_5pct_fpr']:.2f}"


def _evaluate(data_dir: Path, out: Path) -> dict[str, Any]:
    argv = [*EVALUATE, "--data-dir", str(data_dir), "--json", str(out)]
    cli = [sys.executable, "-m", "gpu_health.scorer.cli"]
    result = subprocess.run([*cli, *argv], capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"evaluate failed on {data_dir}:\n" + result.stderr[-2000:])
    report: dict[str, Any] = json.loads(out.read_text())
    return report


def main() -> int:
    if sys.argv[1:2] == ["--write"]:
        variant, seed, days, out = sys.argv[2:6]
        _write(variant, int(seed), int(days), Path(out))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, required=True, help="where the fleets go")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--days", type=int, default=40)
    args = parser.parse_args()
    reports = {}
    for variant in VARIANTS:
        out = args.work / variant
        if not out.is_dir():
            print(f"writing the {variant} fleet ...", file=sys.stderr, flush=True)
            # a process of its own (the renderer is patched for this variant only), into a
            # folder renamed when it is whole, so that a second run reuses only whole fleets
            partial = args.work / f"{variant}.partial"
            shutil.rmtree(partial, ignore_errors=True)
            write = [sys.executable, __file__, "--write", variant, str(args.seed)]
            if subprocess.run([*write, str(args.days), str(partial)]).returncode != 0:
                sys.exit(f"writing the {variant} fleet failed")
            partial.rename(out)
        report = args.work / f"{variant}.json"
        if not report.is_file():
            print(f"evaluating the {variant} fleet ...", file=sys.stderr, flush=True)
            _evaluate(out, report)
        reports[variant] = json.loads(report.read_text())
    print("rows " + " / ".join(str(reports[v]["rows"]) for v in VARIANTS))
    for variant in VARIANTS:
        print(f"{variant} empty features: {reports[variant]['empty_features']}")
    legacy = _numbers(reports["legacy"])
    for variant in VARIANTS[1:]:
        other = _numbers(reports[variant])
        differing = [k for k in legacy if not _same(legacy[k], other.get(k))]
        largest = max((abs(legacy[k] - other.get(k, math.nan)) for k in differing), default=0.0)
        print(
            f"{variant}: {len(differing)} of {len(legacy)} numbers of the report differ "
            f"(largest difference {largest:.4g})"
        )
    print("7 d, rule ROC AUC / recall at 5 % FPR: " + " | ".join(VARIANTS) + " | SRE line")
    for subset, a in reports["legacy"]["horizons"]["7d"].items():
        if not isinstance(a, dict) or "model" not in a:
            continue
        cells = []
        for variant in VARIANTS:
            b = reports[variant]["horizons"]["7d"].get(subset, {}).get("model")
            cells.append("-" if b is None else _cell(b))
        line = _cell(a["sre_line"])
        print(f"  {subset:<18} {a['positives']:>4} ({a['failures']}): {' | '.join(cells)} | {line}")
    print(f"reports: {args.work}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
