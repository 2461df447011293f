"""The model store: every promoted model version, which one serves, and how it got there.

Layout of a store directory::

    versions/0001/   a model directory (FailureModel.save) plus evaluation.json, all checksummed
    versions/0002/
    current/         a copy of the serving version: point ``serve --model`` here
    registry.json    {"current": "0002", "history": [{"version", "action", "time", "reason"}]}

``current`` is a plain directory rather than a symlink so that ``serve``'s hot reload (which
watches the checksums file and verifies every file before swapping models) works unchanged:
promote and rollback rewrite it file by file, each through a rename, checksums last — a scorer
that looks in between still sees the old checksums and keeps the old model.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gpu_health.errors import UserError
from gpu_health.output_file import write_atomically
from gpu_health.scorer.model import CHECKSUMS, MANIFEST, FailureModel, ModelError

EVALUATION = "evaluation.json"
REGISTRY = "registry.json"
VERSIONS = "versions"
CURRENT = "current"


@dataclass(frozen=True)
class Version:
    name: str
    path: Path
    created: float
    evaluation: dict[str, Any]
    metadata: dict[str, Any]


def _sha256_file(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def _write_checksums(directory: Path) -> None:
    files = sorted(p.name for p in directory.iterdir() if p.is_file() and p.name != CHECKSUMS)
    lines = [f"{_sha256_file(directory / f)}  {f}" for f in files]
    write_atomically(directory / CHECKSUMS, "\n".join(lines) + "\n", "--store")


class Store:
    """A model store directory (created on first promotion)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    # ---- reading ------------------------------------------------------------------------

    def _state(self) -> dict[str, Any]:
        path = self.root / REGISTRY
        if not path.exists():
            return {"current": None, "history": []}
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise UserError(f"{path}: unreadable registry ({exc})") from None
        if not isinstance(state, dict) or not isinstance(state.get("history"), list):
            raise UserError(f"{path}: not a model registry (expected current and history)")
        return state

    @property
    def current(self) -> str | None:
        value = self._state().get("current")
        return str(value) if value else None

    @property
    def history(self) -> list[dict[str, Any]]:
        return list(self._state()["history"])

    @property
    def serving_dir(self) -> Path:
        return self.root / CURRENT

    def versions(self) -> list[Version]:
        out = []
        for path in sorted((self.root / VERSIONS).glob("[0-9]*")):
            out.append(self.version(path.name))
        return out

    def version(self, name: str) -> Version:
        path = self.root / VERSIONS / name
        if not path.is_dir():
            raise UserError(f"{self.root}: no model version {name!r} (see 'models list')")
        try:
            model = FailureModel.load(path)  # verifies every checksum, evaluation included
        except ModelError as exc:
            raise UserError(f"version {name}: {exc}") from None
        evaluation: dict[str, Any] = {}
        if (path / EVALUATION).exists():
            evaluation = json.loads((path / EVALUATION).read_text(encoding="utf-8"))
        return Version(
            name, path, float(evaluation.get("promoted_at", 0.0)), evaluation, model.metadata
        )

    # ---- writing ------------------------------------------------------------------------

    def add(self, candidate: Path, evaluation: dict[str, Any]) -> Version:
        """Copy a verified model directory in as the next version, with its evaluation."""
        try:
            FailureModel.load(candidate)
        except ModelError as exc:
            raise UserError(f"candidate refused: {exc}") from None
        versions = self.root / VERSIONS
        versions.mkdir(parents=True, exist_ok=True)
        existing = [int(p.name) for p in versions.glob("[0-9]*") if p.name.isdigit()]
        name = f"{max(existing, default=0) + 1:04d}"
        tmp = versions / f".{name}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        for f in _listed_files(candidate):
            shutil.copy2(candidate / f, tmp / f)
        record = {**evaluation, "version": name, "promoted_at": time.time()}
        (tmp / EVALUATION).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
        _write_checksums(tmp)
        os.replace(tmp, versions / name)
        return self.version(name)

    def activate(self, name: str, action: str, reason: str) -> None:
        """Make ``name`` the serving version and log why."""
        version = self.version(name)
        _install(version.path, self.serving_dir)
        state = self._state()
        state["current"] = name
        state["history"].append(
            {
                "version": name,
                "action": action,
                "time": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "reason": reason,
            }
        )
        self.root.mkdir(parents=True, exist_ok=True)
        write_atomically(self.root / REGISTRY, json.dumps(state, indent=2) + "\n", "--store")

    def rollback(self, to: str | None = None) -> str:
        """Serve the version that served before the current one (or ``to``)."""
        current = self.current
        if current is None:
            raise UserError(f"{self.root}: nothing is promoted yet, nothing to roll back")
        if to is None:
            served = [h["version"] for h in self.history if h["action"] in ("promote", "rollback")]
            # walk back over the serving sequence to the version before the current one
            earlier = [v for v in _distinct_before(served, current)]
            if not earlier:
                raise UserError(f"{self.root}: version {current} is the first; no earlier one")
            to = earlier[-1]
        if to == current:
            raise UserError(f"version {to} is already serving")
        self.activate(to, "rollback", f"rolled back from {current}")
        return to


def _distinct_before(served: list[str], current: str) -> list[str]:
    """Versions promoted before ``current`` was first promoted, oldest first, no repeats."""
    try:
        first = served.index(current)
    except ValueError:
        return []
    return list(dict.fromkeys(v for v in served[:first] if v != current))


def _listed_files(directory: Path) -> list[str]:
    names = []
    for line in (directory / CHECKSUMS).read_text(encoding="utf-8").splitlines():
        _digest, _, name = line.partition("  ")
        if name and name != EVALUATION:
            names.append(name)
    if MANIFEST not in names:
        raise UserError(f"{directory}: checksums do not cover {MANIFEST}")
    return names


def _install(source: Path, target: Path) -> None:
    """Rewrite ``target`` to hold ``source``'s files: each by rename, checksums last, then
    remove files the new version does not list."""
    target.mkdir(parents=True, exist_ok=True)
    files = [p.name for p in source.iterdir() if p.is_file()]
    for name in sorted(files):
        if name == CHECKSUMS:
            continue
        tmp = target / f".{name}.tmp"
        shutil.copy2(source / name, tmp)
        os.replace(tmp, target / name)
    tmp = target / f".{CHECKSUMS}.tmp"
    shutil.copy2(source / CHECKSUMS, tmp)
    os.replace(tmp, target / CHECKSUMS)
    # A bumped mtime even when two versions' checksum files are the same size.
    now = time.time_ns()
    os.utime(target / CHECKSUMS, ns=(now, now))
    for p in target.iterdir():
        if p.is_file() and p.name not in files:
            p.unlink()
