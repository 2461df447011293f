"""The model store: every promoted model version, which one serves, and how it got there.

Layout of a store directory::

    versions/0001/   a model directory (FailureModel.save) plus evaluation.json, all checksummed
    versions/0002/
    current/         a copy of the serving version: point ``serve --model`` here
    registry.json    {"current": "0002", "history": [{"version", "action", "time", "reason"}]}

A version is named by ``add`` alone (:data:`VERSION_NAME`); ``rollback --to`` and every name
read from registry.json must be such a name and exist under ``versions/`` (a path there served an
ungated model). registry.json's shape is checked when it is read. ``train --out`` into a store
and a ``--store`` that is a model directory are refused (:func:`refuse_inside_store`,
:func:`refuse_as_store`): a model enters a store only through ``promote``.

``current`` is a plain directory rather than a symlink so that ``serve``'s hot reload (which
watches the checksums file and verifies every file before swapping models) works unchanged:
promote and rollback rewrite it file by file, each through a rename, checksums last — a scorer
that looks in between still sees the old checksums and keeps the old model.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gpu_health.errors import UserError
from gpu_health.output_file import write_atomically
from gpu_health.safetext import shown
from gpu_health.scorer.model import (
    CHECKSUMS,
    MANIFEST,
    FailureModel,
    ModelError,
    refuse_to_replace,
)

EVALUATION = "evaluation.json"
REGISTRY = "registry.json"
VERSIONS = "versions"
CURRENT = "current"
#: How ``add`` names versions (``0001``, ``0002`` …, more digits past 9999). Any other name —
#: ``../../candA``, an absolute path — is not a version: ``rollback --to`` took those and served
#: a model that never went through the gate.
VERSION_NAME = re.compile(r"[0-9]{4,9}")
#: registry.json and evaluation.json larger than this are refused unread (a history entry is
#: about 150 bytes: this is tens of thousands of promotions).
MAX_JSON_BYTES = 8 * 1024 * 1024
#: Version names a message lists at most.
_NAMES_SHOWN = 20
_YEAR_3000 = 32503680000.0


@dataclass(frozen=True)
class Version:
    name: str
    path: Path
    created: float
    evaluation: dict[str, Any]
    metadata: dict[str, Any]


@dataclass(frozen=True)
class Damaged:
    """A version whose files no longer verify: listed with its problem, never served."""

    name: str
    path: Path
    problem: str


def is_version_name(name: object) -> bool:
    return isinstance(name, str) and VERSION_NAME.fullmatch(name) is not None


def _sha256_file(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def _write_checksums(directory: Path) -> None:
    files = sorted(p.name for p in directory.iterdir() if p.is_file() and p.name != CHECKSUMS)
    lines = [f"{_sha256_file(directory / f)}  {f}" for f in files]
    write_atomically(directory / CHECKSUMS, "\n".join(lines) + "\n", "--store")


def _read_json(path: Path, what: str) -> Any:
    """``path`` parsed, refused in one line when too large, unreadable or not JSON."""
    try:
        size = path.stat().st_size
        if size > MAX_JSON_BYTES:
            raise UserError(f"{path}: {size} bytes, more than a {what} holds; refusing to read it")
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: unreadable {what} ({shown(exc)})") from None


def _validated(state: Any, path: Path) -> dict[str, Any]:
    """registry.json's content, or a one-line error naming the file and the field.

    Its version names become directory names (``versions/NAME``) and its history drives
    ``rollback``: an entry that was a number, or had no ``action``, ended in a traceback."""
    if not isinstance(state, dict):
        raise UserError(f"{path}: not a model registry (expected an object: current, history)")
    current = state.get("current")
    if current is not None and not is_version_name(current):
        raise UserError(f"{path}: current: {shown(repr(current))} is not a version name")
    history = state.get("history")
    if not isinstance(history, list):
        raise UserError(f"{path}: history: missing or not a list")
    for i, entry in enumerate(history):
        field = f"{path}: history[{i}]"
        if not isinstance(entry, dict):
            raise UserError(f"{field}: expected an object (version, action, time, reason)")
        if not is_version_name(entry.get("version")):
            raise UserError(
                f"{field}.version: {shown(repr(entry.get('version')))} is not a version name"
            )
        if not isinstance(entry.get("action"), str):
            raise UserError(f"{field}.action: missing or not a string")
        for key in ("time", "reason"):  # optional, shown as they are
            if not isinstance(entry.get(key, ""), str):
                raise UserError(f"{field}.{key}: not a string")
    return state


def _model_directory(path: Path) -> bool:
    return (path / MANIFEST).is_file() and (path / CHECKSUMS).is_file()


def _is_store(path: Path) -> bool:
    return (path / REGISTRY).is_file() and (path / VERSIONS).is_dir()


def _resolved(path: Path, flag: str) -> Path:
    """``path`` made absolute with links followed, checked that the system can look at it."""
    resolved = Path(os.path.realpath(path))
    try:
        resolved.exists()
    except OSError as exc:  # a name too long
        raise UserError(f"{flag} {shown(path)}: cannot use it: {exc.strerror or exc}") from None
    return resolved


def enclosing_store(path: Path, *, include_self: bool = True) -> Path | None:
    """The model store ``path`` lies in (a directory holding registry.json and versions/ at or
    above it), or None."""
    resolved = Path(os.path.realpath(path))
    for directory in [resolved, *resolved.parents][0 if include_self else 1 :]:
        try:
            if _is_store(directory):
                return directory
        except OSError:  # a name too long: not a store we could have written
            continue
    return None


def refuse_inside_store(path: Path, flag: str) -> None:
    """Refuse to write a model at or inside a model store (one line naming ``flag``).

    ``train --out STORE/current`` put an ungated model in front of ``serve``'s hot reload,
    and ``--out STORE/versions/0002`` altered a version the history says the gate passed: a
    model enters a store only through ``models promote``."""
    store = enclosing_store(_resolved(path, flag))
    if store is not None:
        raise UserError(
            f"{flag} {shown(path)}: inside the model store {shown(store)}; a model enters a "
            "store only through the gate: write it elsewhere, then 'models promote' it"
        )


def check_model_out(path: Path, flag: str) -> None:
    """What ``train --out`` is checked for before any history is read (a refusal after the
    run loses the run): not inside a store, and nothing ``save`` would refuse to replace (an
    existing directory that is neither empty nor a model)."""
    refuse_inside_store(path, flag)
    refuse_to_replace(Path(os.path.realpath(path)), f"{flag} {shown(path)}")


def refuse_as_store(path: Path, flag: str = "--store") -> None:
    """Refuse a ``--store`` that is, or lies inside, a model directory or another store.

    ``models promote candB --store candB --force`` turned the model directory into a store
    (versions/, current/ and registry.json among its model files)."""
    resolved = _resolved(path, flag)
    for directory in [resolved, *resolved.parents]:
        try:
            model = _model_directory(directory)
        except OSError:
            continue
        if model:
            where = "is" if directory == resolved else f"lies inside ({shown(directory)})"
            raise UserError(
                f"{flag} {shown(path)}: {where} a model directory ({MANIFEST}), not a model "
                "store; give a new directory or an existing store"
            )
    outer = enclosing_store(resolved, include_self=False)
    if outer is not None:
        raise UserError(f"{flag} {shown(path)}: inside the model store {shown(outer)}")


class Store:
    """A model store directory (created on first promotion)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    # ---- reading ------------------------------------------------------------------------

    def _state(self) -> dict[str, Any]:
        path = self.root / REGISTRY
        if not path.exists():
            return {"current": None, "history": []}
        return _validated(_read_json(path, "model registry"), path)

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

    def names(self) -> list[str]:
        """The version directories, oldest first (a leftover ``.0003.tmp`` is none)."""
        versions = self.root / VERSIONS
        if not versions.is_dir():
            return []
        found = (p.name for p in versions.iterdir() if is_version_name(p.name) and p.is_dir())
        return sorted(found, key=int)

    def versions(self) -> list[Version | Damaged]:
        """Every version; one whose files do not verify is a :class:`Damaged` with its problem
        rather than an error: one damaged version hid the good ones to roll back to."""
        out: list[Version | Damaged] = []
        for name in self.names():
            try:
                out.append(self._load(name))
            except ModelError as exc:
                out.append(Damaged(name, self.root / VERSIONS / name, shown(exc, 300)))
        return out

    def version(self, name: str, flag: str = "version") -> Version:
        """A verified version; ``name`` must be a version's name (not a path) under versions/."""
        self._refuse_unknown(name, f"{flag} {shown(name)}")
        try:
            return self._load(name)
        except ModelError as exc:
            raise UserError(f"version {name}: {exc}") from None

    def _refuse_unknown(self, name: str, named: str) -> None:
        """One line unless ``name`` is a version's name (never a path) under versions/."""
        if not is_version_name(name) or name not in self.names():
            raise UserError(
                f"{named}: not a version of store {shown(self.root)} "
                f"(versions: {self._names_listed()})"
            )

    def _names_listed(self) -> str:
        names = self.names()
        if not names:
            return "none"
        if len(names) > _NAMES_SHOWN:
            return f"{', '.join(names[:3])} … {', '.join(names[-(_NAMES_SHOWN - 3) :])}"
        return ", ".join(names)

    def _load(self, name: str) -> Version:
        path = self.root / VERSIONS / name
        model = FailureModel.load(path)  # verifies every checksum, evaluation included
        evaluation: Any = {}
        if (path / EVALUATION).exists():
            try:
                evaluation = _read_json(path / EVALUATION, "evaluation")
            except UserError as exc:
                raise ModelError(str(exc)) from None
        promoted = evaluation.get("promoted_at", 0.0) if isinstance(evaluation, dict) else None
        if (
            not isinstance(promoted, int | float)
            or isinstance(promoted, bool)
            or not 0 <= promoted < _YEAR_3000  # shown as a date by 'models list'
        ):
            raise ModelError(f"{path / EVALUATION}: not a version's evaluation")
        return Version(name, path, float(promoted), evaluation, model.metadata)

    def serving_problem(self) -> str | None:
        """Why what ``serve`` reads is not sound (None when it is, or nothing is promoted): the
        serving version's files, or the copy of them in ``current/``."""
        current = self.current
        if current is None:
            return None
        if current not in self.names():
            return f"serving version {current} is not under {VERSIONS}/"
        try:  # checksums only: 'models list' has parsed the version whole already
            FailureModel.load(self.root / VERSIONS / current, boosters=False)
        except ModelError as exc:
            return f"serving version {current} is damaged: {shown(exc, 300)}"
        try:  # whole, as serve loads it
            FailureModel.load(self.serving_dir)
        except ModelError as exc:
            return (
                f"{CURRENT}/ (what serve reads, version {current}) is damaged: {shown(exc, 300)}"
            )
        return None

    # ---- writing ------------------------------------------------------------------------

    def refuse_candidate(self, candidate: Path) -> None:
        """A candidate from inside the store (``current/``, a version) is refused: promoting a
        stored version again is a rollback, and copying a store into itself is never meant."""
        root = Path(os.path.realpath(self.root))
        resolved = _resolved(candidate, "candidate")
        if resolved == root or root in resolved.parents:
            raise UserError(
                f"candidate {shown(candidate)}: inside the store {shown(self.root)}; promote a "
                "model directory from outside it ('models rollback --to' serves a stored version)"
            )

    def add(self, candidate: Path, evaluation: dict[str, Any]) -> Version:
        """Copy a verified model directory in as the next version, with its evaluation."""
        self.refuse_candidate(candidate)
        try:
            FailureModel.load(candidate)
        except ModelError as exc:
            raise UserError(f"candidate refused: {exc}") from None
        versions = self.root / VERSIONS
        versions.mkdir(parents=True, exist_ok=True)
        name = f"{max((int(n) for n in self.names()), default=0) + 1:04d}"
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
        """Serve the version that served before the current one (or ``to``, a version name).

        A damaged target is refused with its problem and nothing changes. ``to`` equal to the
        serving version is refused, unless ``current/`` no longer verifies: then it is copied
        in again (the repair)."""
        current = self.current
        if current is None:
            raise UserError(f"{self.root}: nothing is promoted yet, nothing to roll back")
        if to is None:
            served = [h["version"] for h in self.history if h["action"] in ("promote", "rollback")]
            # walk back over the serving sequence to the version before the current one
            earlier = _distinct_before(served, current)
            if not earlier:
                raise UserError(f"{self.root}: version {current} is the first; no earlier one")
            to, named = earlier[-1], f"version {earlier[-1]} (served before {current})"
        else:
            named = f"--to {shown(to)}"
        self._refuse_unknown(to, named)
        try:
            self._load(to)
        except ModelError as exc:
            raise UserError(
                f"{named}: damaged, not served: {shown(exc, 300)} "
                "(nothing changed; see 'models list')"
            ) from None
        if to == current and self.serving_problem() is None:
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
