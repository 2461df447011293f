"""A model directory that is missing, truncated or altered is refused with one clear line.

Through the scorer's command line (``gpu-health-scorer serve --once --model DIR``), in-process:
the model is checked before Prometheus is ever asked, so no Prometheus is needed. Two kinds of
damage: accidental (a file truncated, altered, deleted: the checksums catch it) and consistent
(content replaced *and* checksums recomputed, as a careless hand edit would: the loader must
still refuse garbage with a message, never a traceback or a half-loaded model).
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

pytest.importorskip("xgboost")

from gpu_health.scorer import cli
from gpu_health.scorer.model import CHECKSUMS, DEFAULT_MODEL_DIR

pytestmark = pytest.mark.skipif(
    not (DEFAULT_MODEL_DIR / CHECKSUMS).is_file(), reason="no shipped model yet"
)


def _rehash(model: Path) -> None:
    lines = [
        f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.name}"
        for p in sorted(model.iterdir())
        if p.name != CHECKSUMS
    ]
    (model / CHECKSUMS).write_text("\n".join(lines) + "\n")


def _truncate(model: Path) -> str:
    data = (model / "xgb-7d.ubj").read_bytes()
    (model / "xgb-7d.ubj").write_bytes(data[: len(data) // 2])
    return "xgb-7d.ubj"


def _flip(model: Path) -> str:
    data = bytearray((model / "manifest.json").read_bytes())
    data[len(data) // 2] ^= 0x01
    (model / "manifest.json").write_bytes(bytes(data))
    return "manifest.json"


def _delete(model: Path) -> str:
    (model / "iforest.json").unlink()
    return "iforest.json"


def _no_checksums(model: Path) -> str:
    (model / CHECKSUMS).unlink()
    return CHECKSUMS


def _garbage_booster(model: Path) -> str:
    (model / "xgb-30d.ubj").write_bytes(b"\x00not a booster\xff" * 50)
    _rehash(model)
    return "model"


def _empty_manifest(model: Path) -> str:
    (model / "manifest.json").write_text("{}")
    _rehash(model)
    return "model"


def _manifest_not_json(model: Path) -> str:
    (model / "manifest.json").write_text('{"format_version": 1, "features": [')
    _rehash(model)
    return "manifest"


def _missing_dir(model: Path) -> str:
    shutil.rmtree(model)
    return str(model.name)


DAMAGE: dict[str, Callable[[Path], str]] = {
    "truncated": _truncate,
    "altered": _flip,
    "file deleted": _delete,
    "checksums missing": _no_checksums,
    "directory missing": _missing_dir,
    "garbage booster, checksums redone": _garbage_booster,
    "empty manifest, checksums redone": _empty_manifest,
    "manifest not JSON, checksums redone": _manifest_not_json,
}


CASES = [pytest.param(name, id=name) for name in DAMAGE]


@pytest.mark.parametrize("damage", CASES)
def test_damaged_model_is_refused_with_one_line(
    tmp_path: Path, damage: str, capsys: pytest.CaptureFixture[str]
) -> None:
    model = tmp_path / "model"
    shutil.copytree(DEFAULT_MODEL_DIR, model)
    named = DAMAGE[damage](model)
    code = cli.main(
        ["serve", "--once", "--model", str(model), "--prometheus.url", "http://127.0.0.1:9"]
    )
    err = capsys.readouterr().err.strip()
    assert code != 0
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert named.lower() in err.lower(), err
    assert "prometheus" not in err.lower() or "model" in err.lower()  # refused before querying


def test_intact_copy_is_accepted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The same command with an undamaged copy gets past the model (and fails on Prometheus)."""
    model = tmp_path / "model"
    shutil.copytree(DEFAULT_MODEL_DIR, model)
    code = cli.main(
        [
            "serve", "--once", "--model", str(model), "--prometheus.url", "http://127.0.0.1:9",
            "--prometheus.retries", "1",
        ]
    )  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code != 0 and "model" not in err.lower().split(":")[0], err
