"""Rebuild the shipped default model and its evaluation, exactly as docs/model-card.md states.

    .venv/bin/python -m gpu_health.scorer.train_default --work /tmp/scorer-train

1. simulate the training fleet (dcgm-exporter schema) into a Prometheus data dir;
2. ``gpu-health-scorer train`` on it, writing ``scorer/default_model/``;
3. simulate a held-out fleet (another seed) in both schemas and ``gpu-health-scorer evaluate``
   the new model on each, writing the reports into the model directory (``evaluation-*.json``).

Takes ~25 minutes on a 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from gpu_health.scorer import cli
from gpu_health.scorer.model import DEFAULT_MODEL_DIR
from gpu_health.scorer.simhistory import build_history


@dataclass(frozen=True)
class Fleet:
    gpus: int
    days: float
    resolution: float
    seed: int
    hazard_scale: float

    def build(self, out: Path, schema: str) -> None:
        build_history(
            out, self.gpus, self.days, self.resolution, self.seed, schema, self.hazard_scale
        )


#: The recipe of the shipped model (quoted in docs/model-card.md).
TRAIN = Fleet(gpus=500, days=120, resolution=3600, seed=11, hazard_scale=20.0)
HELD_OUT = Fleet(gpus=300, days=90, resolution=3600, seed=23, hazard_scale=20.0)
STEP = "12h"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, required=True, help="scratch directory")
    parser.add_argument("--out", type=Path, default=DEFAULT_MODEL_DIR, help="model directory")
    parser.add_argument("--skip-build", action="store_true", help="reuse histories in --work")
    args = parser.parse_args(argv)
    train_dir = args.work / "train-dcgm"
    if not args.skip_build:
        TRAIN.build(train_dir, "dcgm")
    code = cli.main(
        [
            "train",
            "--data-dir",
            str(train_dir),
            "--schema",
            "dcgm",
            "--step",
            STEP,
            "--hazard-scale",
            str(TRAIN.hazard_scale),
            "--out",
            str(args.out),
        ]
    )
    if code:
        return code
    for schema in ("dcgm", "ours"):
        held = args.work / f"heldout-{schema}"
        if not args.skip_build:
            HELD_OUT.build(held, schema)
        report = args.out / f"evaluation-{schema}.json"
        code = cli.main(
            [
                "evaluate",
                "--data-dir",
                str(held),
                "--schema",
                schema,
                "--step",
                STEP,
                "--model",
                str(args.out),
                "--json",
                str(report),
            ]
        )
        if code:
            return code
    print(json.dumps({"train": asdict(TRAIN), "held_out": asdict(HELD_OUT), "step": STEP}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
