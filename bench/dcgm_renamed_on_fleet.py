#!/usr/bin/env python3
"""One blind fleet evaluated as dcgm-exporter 4.8 writes it, as 4.9 writes it, and with half
its nodes' exporters upgraded to 4.9 in the middle of the history.

The fleet is ``bench/lab_fleet.py``'s (a generator the scorer was never tuned on, which writes
every field of dcgm-exporter's default counters file, the SM clock included) or, with
``--generator outside``, ``bench/outside_fleet.py``'s (the issue's kind of fleet: driver
upgrades that split every series, resets, replacements, scrape gaps). Each OpenMetrics chunk
is passed through :func:`gpu_health.sim.dcgm_renames.renamed` before promtool reads it, so the
three histories hold the same samples (counted, chunk by chunk) under different names: DCGM
4.6's names for the renamed fields, Hz for the SM clock. "Half upgraded" is every other node
of the lab fleet, and the hosts of the outside fleet whose name hashes even. Each is
then scored with ``gpu-health-scorer evaluate --schema dcgm --step 24h --model rules`` (the
shipped default), and the rule's ROC AUC and recall at 5 % FPR are printed per 7-day subset
next to the legacy history's: the renamed history should give the same numbers, the upgraded
one nearly the same. A second run with the same ``--work`` reuses the fleets and reports it
finds (delete them to measure again). Three lab fleets of 40 days (1.5–2 minutes each) and
their evaluations (about 4 minutes each) took about 14 minutes here, three outside fleets of 45
days also about 14.

    .venv/bin/python bench/dcgm_renamed_on_fleet.py --work /tmp/renamed-lab [--seed 1]
    .venv/bin/python bench/dcgm_renamed_on_fleet.py --work /tmp/renamed-out --generator outside
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import shutil
import subprocess
import sys
import types
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gpu_health.sim.dcgm_renames import renamed

HERE = Path(__file__).resolve().parent
EVALUATE = ["evaluate", "--schema", "dcgm", "--step", "24h", "--model", "rules"]
VARIANTS = ("legacy", "renamed", "upgraded")
#: When the outside fleet's history ends (the card's draws of it end there too).
OUTSIDE_END = 1796083200


def _module(name: str) -> Any:
    """``bench/<name>.py`` as a module (bench/ is no package)."""
    spec = importlib.util.spec_from_file_location(name, HERE / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _samples(text: str) -> int:
    return sum(1 for line in text.splitlines() if line and not line.startswith("#"))


def _renaming(variant: str, half: Callable[[str], bool], upgrade_at: float) -> Callable[[str], str]:
    """OpenMetrics text -> the same samples as ``variant`` names them (``half``: the nodes
    upgraded at ``upgrade_at``); stops the run if a sample is lost."""
    upgraded: Callable[[str, float], bool] = (
        (lambda _node, _t: True)
        if variant == "renamed"
        else (lambda node, t: half(node) and t >= upgrade_at)
    )

    def rename(text: str) -> str:
        out = text if variant == "legacy" else renamed(text, upgraded)
        if _samples(out) != _samples(text):
            sys.exit(f"{variant}: the renaming lost samples ({_samples(text)} -> {_samples(out)})")
        return out

    return rename


def _write(generator: str, variant: str, seed: int, days: float, out: Path) -> None:
    """The fleet of ``generator`` and ``seed`` in ``out``, renamed as ``variant`` says."""
    module = _module(f"{generator}_fleet")
    end = module.DEFAULT_END if generator == "lab" else OUTSIDE_END
    upgrade_at = end - days * 86400 / 2
    if generator == "lab":
        # every other node of the drawn physics; each renderer chunk is renamed in memory
        plain = module.Renderer.chunk_text

        def chunk_text(self: Any, ks: Any) -> str:
            text: str = plain(self, ks)
            if variant == "legacy":
                return text
            half = {n["name"] for n in self.ph.nodes[::2]}.__contains__
            return _renaming(variant, half, upgrade_at)(text).removesuffix("# EOF\n")

        module.Renderer.chunk_text = chunk_text
        argv = ["--seed", str(seed), "--schema", "dcgm", "--days", f"{days:g}", "--out", str(out)]
        if module.main(argv) != 0:
            sys.exit(f"{variant}: bench/lab_fleet.py failed")
        return
    # outside_fleet writes each chunk to a file and runs promtool on it: the file is renamed
    # just before; half the hosts by a hash of the name, the same in every chunk
    rename = _renaming(variant, lambda node: zlib.crc32(node.encode()) % 2 == 0, upgrade_at)
    run = subprocess.run

    def promtool(cmd: list[str], *args: Any, **kwargs: Any) -> Any:
        if cmd[:3] == ["promtool", "tsdb", "create-blocks-from"]:
            chunk = Path(cmd[-2])
            chunk.write_text(rename(chunk.read_text()))
        return run(cmd, *args, **kwargs)

    module.subprocess = types.SimpleNamespace(run=promtool)
    module.main(["--seed", str(seed), "--days", f"{days:g}", "--end", str(end), "--out", str(out)])


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
        generator, variant, seed, days, out = sys.argv[2:7]
        _write(generator, variant, int(seed), float(days), Path(out))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, required=True, help="where the fleets go")
    parser.add_argument("--generator", choices=("lab", "outside"), default="lab")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--days", type=float, help="default: 40 (lab), 45 (outside)")
    args = parser.parse_args()
    days = args.days or (40.0 if args.generator == "lab" else 45.0)
    reports = {}
    for variant in VARIANTS:
        out = args.work / variant
        if not out.is_dir():
            print(f"writing the {variant} fleet ...", file=sys.stderr, flush=True)
            # a process of its own (the renderer is patched for this variant only), into a
            # folder renamed when it is whole, so that a second run reuses only whole fleets
            partial = args.work / f"{variant}.partial"
            shutil.rmtree(partial, ignore_errors=True)
            write = [sys.executable, __file__, "--write", args.generator, variant]
            if subprocess.run([*write, str(args.seed), str(days), str(partial)]).returncode:
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
