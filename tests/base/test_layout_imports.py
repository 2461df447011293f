"""The layout's import rules, read from the source with ``ast`` (nothing is imported).

- The shared base (``src/gpu_health/*.py``, ``telemetry``, ``health``, ``web``) imports none of the
  parts built on it, so a GPU node's exporter never drags in the scorer, the simulator or a tool.
- The exporter never imports the scorer, and the scorer never imports the exporter: they meet
  only in Prometheus, through the metric names in ``gpu_health.telemetry``.

A string that is a module path (``"gpu_health.sim.live"``, for a lazy ``importlib`` import)
counts as an import. Every exception to a rule
is declared below with its reason, and an exception nothing needs any more fails the test too.
"""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: Import path -> folder, from pyproject.toml's package-dir (the one place that maps them).
PACKAGE_DIRS = {
    name: ROOT / folder
    for name, folder in tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-dir"
    ].items()
}
MODULE_PATH = re.compile(r"gpu_health(\.[a-z_][a-z0-9_]*)+")
BASE = ("gpu_health.telemetry", "gpu_health.health", "gpu_health.web")
BUILT_ON_BASE = (
    "gpu_health.exporter",
    "gpu_health.scorer",
    "gpu_health.sim",
    "gpu_health.report",
    "gpu_health.demo",
    "gpu_health.mixin",
)
RULES: dict[str, tuple[str, ...]] = {
    # importer prefix -> forbidden import prefixes ("base" is matched by is_base)
    "base": BUILT_ON_BASE,
    "gpu_health.exporter": ("gpu_health.scorer",),
    "gpu_health.scorer": ("gpu_health.exporter",),
}
# No rule forbids the exporter's sim backend importing the simulator (lazily, so an install
# without it gets a one-line error) or the scorer's training reading simulated history.
#: (importer, imported prefix) -> why it is allowed.
EXCEPTIONS: dict[tuple[str, str], str] = {
    ("gpu_health.cli", "gpu_health.demo"): "the umbrella CLI composes every part's command",
    ("gpu_health.cli", "gpu_health.mixin"): "the umbrella CLI composes every part's command",
    ("gpu_health.cli", "gpu_health.sim"): "the umbrella CLI composes every part's command",
    ("gpu_health.cli", "gpu_health.report"): "the umbrella CLI composes every part's command",
    ("gpu_health.cli", "gpu_health.scorer"): "the umbrella CLI composes every part's command",
}


def modules() -> dict[str, Path]:
    """Every module of the project by import path."""
    found: dict[str, Path] = {}
    for package, folder in PACKAGE_DIRS.items():
        for path in folder.rglob("*.py"):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join([package, *parts])] = path
    return found


def imports_of(source: str, module: str, is_package: bool = False) -> set[str]:
    """Absolute names ``module`` imports: import statements anywhere, relative ones resolved, and
    strings that are a module path (what ``importlib.import_module`` gets in a lazy import)."""
    names: set[str] = set()
    package = module.split(".") if is_package else module.split(".")[:-1]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                origin = ".".join([*base, *([node.module] if node.module else [])])
            else:
                origin = node.module or ""
            names |= {f"{origin}.{alias.name}" for alias in node.names}
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and MODULE_PATH.fullmatch(node.value)
        ):
            names.add(node.value)
    return names


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def is_base(module: str) -> bool:
    top_level = module.count(".") == 1 and not any(_under(module, p) for p in BUILT_ON_BASE)
    return module == "gpu_health" or top_level or any(_under(module, p) for p in BASE)


def violations() -> tuple[list[str], set[tuple[str, str]]]:
    """Forbidden imports as 'importer -> imported', and the declared exceptions that were used."""
    found: list[str] = []
    used: set[tuple[str, str]] = set()
    for module, path in sorted(modules().items()):
        rules = [f for key, f in RULES.items() if key != "base" and _under(module, key)]
        if is_base(module):
            rules.append(RULES["base"])
        imported = imports_of(path.read_text(), module, path.name == "__init__.py")
        for name in sorted(imported):
            for prefix in (p for forbidden in rules for p in forbidden):
                if not _under(name, prefix):
                    continue
                exception = next(
                    (key for key in EXCEPTIONS if _under(module, key[0]) and key[1] == prefix),
                    None,
                )
                if exception:
                    used.add(exception)
                else:
                    found.append(f"{module} -> {name}")
    return found, used


def test_layout_import_rules_hold() -> None:
    found, _ = violations()
    assert found == [], "imports that break the layout:\n" + "\n".join(found)


def test_every_declared_exception_is_still_needed() -> None:
    _, used = violations()
    stale = sorted(set(EXCEPTIONS) - used)
    assert stale == [], f"declared exceptions nothing needs any more: {stale}"


def test_the_checker_sees_the_whole_tree() -> None:
    found = modules()
    for module in ("gpu_health.cli", "gpu_health.exporter.cli", "gpu_health.scorer.cli"):
        assert module in found
    assert len(found) > 80
    assert is_base("gpu_health.stack") and is_base("gpu_health.health.policy")
    assert not is_base("gpu_health.report.cli") and not is_base("gpu_health.exporter")


def test_the_checker_finds_each_kind_of_import() -> None:
    source = (
        "import gpu_health.scorer.model\n"
        "from gpu_health.sim import fleet\n"
        "from ..report import html\n"
        "def later():\n"
        "    importlib.import_module('gpu_health.demo.cli')\n"
    )
    names = imports_of(source, "gpu_health.web.server")
    assert names == {
        "gpu_health.scorer.model",
        "gpu_health.sim.fleet",
        "gpu_health.report.html",
        "gpu_health.demo.cli",
    }
