"""The distribution is one namespaced package; commands explain themselves and fail in one line."""

from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CODE_DIRS = {
    "gpu_health": REPO / "src" / "gpu_health",
    "gpu_health.exporter": REPO / "exporter",
    "gpu_health.scorer": REPO / "scorer",
    "gpu_health.sim": REPO / "sim",
}
COMMANDS = ["gpu-health", "gpu-health-exporter", "gpu-health-scorer"]
BIN = Path(sys.executable).parent


def _pyproject() -> dict:  # type: ignore[type-arg]
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def test_every_python_package_folder_is_listed_in_pyproject() -> None:
    listed = set(_pyproject()["tool"]["setuptools"]["packages"])
    found = set()
    for root_name, root in CODE_DIRS.items():
        for init in root.rglob("__init__.py"):
            rel = init.parent.relative_to(root)
            found.add(".".join([root_name, *rel.parts]) if rel.parts else root_name)
    assert found - listed == set(), "add these packages to [tool.setuptools] packages"
    assert listed - found == set(), "these listed packages have no folder"


def test_every_folder_is_named_by_its_import_path() -> None:
    """From any ``import gpu_health.a.b`` a reader finds the file by folder names alone."""
    mapping = _pyproject()["tool"]["setuptools"]["package-dir"]
    assert mapping.keys() == CODE_DIRS.keys()
    for package, folder in mapping.items():
        assert package.split(".")[-1] == Path(folder).name, (package, folder)


def test_wheel_installs_only_the_namespaced_package(tmp_path: Path) -> None:
    """Build the real wheel: every module in it lives under gpu_health/, none at the top."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "-q",
            "-w",
            str(tmp_path),
            str(REPO),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    (wheel,) = tmp_path.glob("gpu_health_monitor-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        modules = [n for n in archive.namelist() if n.endswith(".py")]
    top_level = {name.split("/")[0] for name in modules}
    assert top_level == {"gpu_health"}
    assert "gpu_health/telemetry/catalogue.py" in modules
    assert "gpu_health/scorer/__init__.py" in modules
    assert "gpu_health/sim/fleet.py" in modules
    import gpu_health.exporter
    import gpu_health.scorer

    assert Path(gpu_health.exporter.__file__).resolve().parent == REPO / "exporter"
    assert Path(gpu_health.scorer.__file__).resolve().parent == REPO / "scorer"


def test_base_dependencies_pull_no_ml_or_dataframe_package() -> None:
    base = " ".join(_pyproject()["project"]["dependencies"]).lower()
    for heavy in ("xgboost", "pandas", "scikit", "numpy", "torch", "scipy"):
        assert heavy not in base


@pytest.mark.parametrize("command", COMMANDS)
def test_help_explains_and_exits_zero(command: str) -> None:
    result = subprocess.run(
        [str(BIN / command), "--help"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "usage:" in result.stdout and len(result.stdout.splitlines()) >= 3


@pytest.mark.parametrize("command", COMMANDS)
def test_bad_arguments_exit_nonzero_with_one_line(command: str) -> None:
    result = subprocess.run(
        [str(BIN / command), "--no-such-option"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--no-such-option" in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_umbrella_without_command_prints_help_and_fails() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gpu_health.cli"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 2
    assert "COMMAND" in result.stdout
