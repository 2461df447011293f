"""The model store cannot be bypassed or damaged from its command line, and a model is written
whole or not at all.

Each case was a tester's finding: ``rollback --to ../../candA`` served a model that never went
through the gate; a malformed registry.json ended in a traceback; one damaged version made
``models list`` fail and hid the versions to roll back to; a failed ``train --out`` over a model
left new boosters beside the old manifest; ``train --out STORE/current`` and ``promote candB
--store candB`` mixed models and stores; ``--model ""`` loaded the current directory. No
Prometheus is needed: the stores hold copies of the shipped model.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("xgboost")

from gpu_health.errors import UserError
from gpu_health.scorer import model as model_module
from gpu_health.scorer.cli import main
from gpu_health.scorer.model import (
    CHECKSUMS,
    DEFAULT_MODEL_DIR,
    FailureModel,
    ModelError,
    load_model,
)
from gpu_health.scorer.registry import Store, check_model_out, refuse_inside_store
from gpu_health.scorer.registry import _write_checksums as write_checksums
from tests.base.command_runs import is_one_line_error, run_main


def _variant(out: Path, note: str) -> Path:
    model = FailureModel.load(DEFAULT_MODEL_DIR)
    model.metadata = {**model.metadata, "note": note}
    model.save(out)
    return out


@pytest.fixture
def store(tmp_path: Path) -> Store:
    """Two promoted versions, 0002 serving."""
    store = Store(tmp_path / "store")
    for note in ("first", "second"):
        version = store.add(_variant(tmp_path / note, note), {"reason": note})
        store.activate(version.name, "promote", note)
    return store


def _registry(store: Store) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((store.root / "registry.json").read_text())
    return loaded


def _serving_note(store: Store) -> Any:
    return FailureModel.load(store.serving_dir).metadata["note"]


# ---- 1. rollback --to a path ------------------------------------------------------------------


@pytest.mark.parametrize(
    "to", ["../../first", "ABSOLUTE", "", "2", "0002/", "0001/../0002", "versions/0001", "9999"]
)
def test_rollback_to_anything_but_a_stored_version_is_refused(
    store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str], to: str
) -> None:
    to = str(tmp_path / "first") if to == "ABSOLUTE" else to
    before = (store.root / "registry.json").read_bytes()
    code, err = run_main(
        main, ["models", "rollback", "--store", str(store.root), "--to", to], capsys
    )
    assert is_one_line_error(code, err), err
    assert f"--to {to}: not a version of store {store.root} (versions: 0001, 0002)" in err
    assert (store.root / "registry.json").read_bytes() == before
    assert _serving_note(store) == "second"


def test_rollback_to_a_stored_version_still_works(store: Store) -> None:
    assert main(["models", "rollback", "--store", str(store.root), "--to", "0001"]) == 0
    assert store.current == "0001" and _serving_note(store) == "first"


# ---- 2. registry.json's shape -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("edit", "named"),
    [
        (lambda s: s["history"].insert(0, 5), "history[0]: expected an object"),
        (lambda s: s["history"][0].pop("action"), "history[0].action: missing"),
        (lambda s: s["history"][1].update(action=["promote"]), "history[1].action"),
        (lambda s: s["history"][0].update(version="../../first"), "history[0].version"),
        (lambda s: s["history"][0].update(version=1), "history[0].version"),
        (lambda s: s.update(current="../../first"), "current: '../../first' is not a version"),
        (lambda s: s.update(current=2), "current: 2 is not a version name"),
        (lambda s: s.update(history={"a": 1}), "history: missing or not a list"),
        (lambda s: s.pop("history"), "history: missing or not a list"),
    ],
)
@pytest.mark.parametrize("action", ["rollback", "list"])
def test_malformed_registry_is_one_line_naming_the_field(
    store: Store, capsys: pytest.CaptureFixture[str], edit: Any, named: str, action: str
) -> None:
    state = _registry(store)
    edit(state)
    (store.root / "registry.json").write_text(json.dumps(state))
    code, err = run_main(main, ["models", action, "--store", str(store.root)], capsys)
    assert is_one_line_error(code, err), err
    assert "registry.json: " in err and named in err, err
    assert _serving_note(store) == "second"


@pytest.mark.parametrize(
    ("content", "named"),
    [(b"[]", "not a model registry"), (b"{", "unreadable"), (b"\xff\xfe", "unreadable")],
)
def test_unreadable_registry_is_one_line(
    store: Store, capsys: pytest.CaptureFixture[str], content: bytes, named: str
) -> None:
    (store.root / "registry.json").write_bytes(content)
    code, err = run_main(main, ["models", "rollback", "--store", str(store.root)], capsys)
    assert is_one_line_error(code, err) and "registry.json" in err and named in err, err


def test_oversized_registry_is_refused_unread(
    store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    with (store.root / "registry.json").open("w") as handle:
        handle.write('{"current": "0002", "history": [' + " " * (9 * 1024 * 1024) + "]}")
    code, err = run_main(main, ["models", "list", "--store", str(store.root)], capsys)
    assert is_one_line_error(code, err) and "refusing to read it" in err, err


# ---- 3. list with a damaged version -----------------------------------------------------------


def test_list_shows_every_version_and_marks_the_damaged_one(
    store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    (store.root / "versions" / "0001" / CHECKSUMS).unlink()
    assert main(["models", "list", "--store", str(store.root)]) == 0  # what serves is sound
    rows = capsys.readouterr().out.splitlines()
    assert len(rows) == 3
    assert rows[1].split()[:2] == ["0001", "-"] and "DAMAGED: " in rows[1]
    assert "checksum file missing" in rows[1]
    assert rows[2].split()[:2] == ["0002", "*"] and "DAMAGED" not in rows[2]

    # never rolled back to: one line with the problem, the serving model stays
    code, err = run_main(main, ["models", "rollback", "--store", str(store.root)], capsys)
    assert is_one_line_error(code, err), err
    assert "version 0001 (served before 0002): damaged, not served" in err
    assert store.current == "0002" and _serving_note(store) == "second"


def test_an_evaluation_that_cannot_be_shown_marks_the_version_damaged(
    store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    """A consistent but absurd evaluation.json (checksums recomputed): a date past year 3000
    was an OverflowError traceback in the table."""
    version = store.root / "versions" / "0001"
    evaluation = json.loads((version / "evaluation.json").read_text())
    (version / "evaluation.json").write_text(json.dumps({**evaluation, "promoted_at": 1e300}))
    write_checksums(version)
    assert main(["models", "list", "--store", str(store.root)]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert "DAMAGED: " in rows[1] and "not a version's evaluation" in rows[1], rows


def test_list_exits_1_after_the_table_when_the_serving_version_is_damaged(
    store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    booster = store.root / "versions" / "0002" / "xgb-30d.ubj"
    booster.write_bytes(booster.read_bytes()[:100])
    code = main(["models", "list", "--store", str(store.root)])
    out, err = capsys.readouterr()
    assert code == 1
    assert [r.split()[0] for r in out.splitlines()[1:]] == ["0001", "0002"]
    assert "DAMAGED" in out.splitlines()[2]
    assert err.count("\n") == 1 and "serving version 0002 is damaged" in err, err
    # the table showed 0001 sound: roll back to it
    assert main(["models", "rollback", "--store", str(store.root)]) == 0
    assert _serving_note(store) == "first"


def test_a_damaged_serving_copy_fails_list_and_rollback_to_the_same_version_repairs_it(
    store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    (store.serving_dir / "manifest.json").write_text("{}")
    code, err = run_main(main, ["models", "list", "--store", str(store.root)], capsys)
    assert code == 1 and "current/ (what serve reads, version 0002) is damaged" in err, err
    assert main(["models", "rollback", "--store", str(store.root), "--to", "0002"]) == 0
    assert main(["models", "list", "--store", str(store.root)]) == 0
    assert _serving_note(store) == "second"
    # a sound copy is not reinstalled
    code, err = run_main(
        main, ["models", "rollback", "--store", str(store.root), "--to", "0002"], capsys
    )
    assert is_one_line_error(code, err) and "already serving" in err


# ---- 4. save whole or not at all; train --out inside a store ----------------------------------


def _changed(note: str) -> FailureModel:
    """The shipped model with other booster bytes (an attribute) and a note."""
    model = FailureModel.load(DEFAULT_MODEL_DIR)
    for h in model.horizons.values():
        h.booster.set_attr(note=note)
    model.metadata = {**model.metadata, "note": note}
    return model


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2", "two-renames"])
def test_a_failed_save_leaves_the_old_model_whole_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exchange: bool
) -> None:
    if not exchange:
        monkeypatch.setattr(model_module, "_exchange", lambda a, b: False)
    target = tmp_path / "m"
    _changed("old").save(target)
    sums = (target / CHECKSUMS).read_bytes()

    broken = _changed("new")
    broken.metadata["unserialisable"] = object()  # the manifest fails after the boosters
    with pytest.raises(TypeError):
        broken.save(target)
    assert (target / CHECKSUMS).read_bytes() == sums
    assert FailureModel.load(target).metadata["note"] == "old"  # was: checksum mismatch
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]

    _changed("new").save(target)
    assert FailureModel.load(target).metadata["note"] == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]
    assert oct(target.stat().st_mode & 0o777) != oct(0o700)  # not mkdtemp's private mode


def test_a_failed_swap_puts_the_old_model_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "m"
    _changed("old").save(target)
    monkeypatch.setattr(model_module, "_exchange", lambda a, b: False)
    rename = os.rename

    def failing(src: Any, dst: Any) -> None:
        if str(src).endswith(".tmp") and Path(dst) == target:
            raise OSError(28, "No space left on device")
        rename(src, dst)

    monkeypatch.setattr(model_module.os, "rename", failing)
    with pytest.raises(OSError):
        _changed("new").save(target)
    monkeypatch.undo()
    assert FailureModel.load(target).metadata["note"] == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


def _read_at(directory_fd: int, name: str) -> bytes:
    fd = os.open(name, os.O_RDONLY, dir_fd=directory_fd)
    with os.fdopen(fd, "rb") as handle:
        return handle.read()


def test_a_reader_sees_the_old_model_or_the_new_one(tmp_path: Path) -> None:
    """At every instant the directory holds one whole model: a reader that opens it and reads
    every file from it finds each file matching its checksum (written in place, a booster was
    new while the checksums were old), and never finds it absent."""
    probe = [tmp_path / "a", tmp_path / "b"]
    for p in probe:
        p.mkdir()
    if not model_module._exchange(probe[0], probe[1]):
        pytest.skip("no atomic directory exchange on this system")
    target = tmp_path / "m"
    models = [_changed("one"), _changed("two")]
    models[0].save(target)
    mixed: list[str] = []
    reads = 0
    done = threading.Event()

    def read() -> None:
        nonlocal reads
        while not done.is_set():
            try:
                directory = os.open(target, os.O_RDONLY | os.O_DIRECTORY)
            except OSError as exc:
                mixed.append(f"{target}: {exc}")  # absent, even for an instant
                continue
            try:
                for line in _read_at(directory, CHECKSUMS).decode().splitlines():
                    digest, _, name = line.partition("  ")
                    if hashlib.sha256(_read_at(directory, name)).hexdigest() != digest:
                        mixed.append(name)
                reads += 1
            except FileNotFoundError:
                pass  # the old directory, removed after the swap while this reader held it
            finally:
                os.close(directory)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for i in range(12):
            models[i % 2].save(target)
    finally:
        done.set()
        reader.join()
    assert mixed == [] and reads > 0


def test_save_replaces_only_an_empty_or_a_model_directory(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / "projects").mkdir(parents=True)
    (home / "notes.txt").write_text("keep me")
    with pytest.raises(ModelError, match="holds a sub-directory 'projects', not a model"):
        _changed("x").save(home)
    (home / "projects").rmdir()
    with pytest.raises(ModelError, match="holds other files, not a model"):
        _changed("x").save(home)
    assert (home / "notes.txt").read_text() == "keep me"
    empty = tmp_path / "empty"
    empty.mkdir()
    _changed("x").save(empty)
    assert FailureModel.load(empty).metadata["note"] == "x"


def test_a_model_out_inside_a_store_is_refused(store: Store, tmp_path: Path) -> None:
    link = tmp_path / "link"
    link.symlink_to(store.serving_dir)
    inside = [
        store.serving_dir,
        store.root,
        store.root / "versions" / "0001",
        store.root / "current" / "new",
        store.root / "elsewhere",
        link,
    ]
    for out in inside:
        with pytest.raises(UserError) as caught:
            check_model_out(out, "--out")
        message = str(caught.value)
        assert message.startswith(f"--out {out}: inside the model store "), message
        assert "'models promote'" in message and "\n" not in message
        with pytest.raises(UserError):
            refuse_inside_store(out, "--out")
    for fine in (tmp_path / "candidate", tmp_path / "first"):  # new, or a model to replace
        check_model_out(fine, "--out")
    (tmp_path / "stuff").mkdir()
    (tmp_path / "stuff" / "a.txt").write_text("")
    with pytest.raises(UserError, match=r"--out .*stuff: holds other files"):
        check_model_out(tmp_path / "stuff", "--out")


# ---- 5. promote: a model directory is no store, a stored model no candidate --------------------


def test_promote_refuses_a_model_directory_as_store_and_a_candidate_inside_the_store(
    store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cand = _variant(tmp_path / "cand", "cand")
    files = sorted(p.name for p in cand.iterdir())
    before = (store.root / "registry.json").read_bytes()
    cases = [
        ([str(cand), "--store", str(cand)], f"--store {cand}: is a model directory"),
        ([str(cand), "--store", str(cand / "store")], "lies inside"),
        ([str(cand), "--store", str(store.root / "versions")], "inside the model store"),
        ([str(store.serving_dir), "--store", str(store.root)], "inside the store"),
        ([str(store.root / "versions" / "0001"), "--store", str(store.root)], "inside the store"),
    ]
    for argv, named in cases:
        code, err = run_main(main, ["models", "promote", *argv, "--force"], capsys)
        assert is_one_line_error(code, err), (argv, err)
        assert named in err, (argv, err)
    assert sorted(p.name for p in cand.iterdir()) == files
    assert (store.root / "registry.json").read_bytes() == before
    assert sorted(p.name for p in (store.root / "versions").iterdir()) == ["0001", "0002"]
    with pytest.raises(UserError, match="inside the store"):
        store.add(store.serving_dir, {"reason": "direct"})
    # a candidate from outside still goes in
    assert main(["models", "promote", str(cand), "--store", str(store.root), "--force"]) == 0
    assert store.current == "0003"


# ---- 6. model paths ---------------------------------------------------------------------------


def test_model_paths_empty_not_a_directory_or_too_long_are_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copytree(DEFAULT_MODEL_DIR, tmp_path / "here")
    monkeypatch.chdir(tmp_path / "here")  # "" loaded this model before
    with pytest.raises(ModelError, match=r"^--model: empty path$"):
        load_model("")
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    for path in ("/dev/null", str(a_file)):
        with pytest.raises(ModelError, match=r"is not a directory$"):
            load_model(path)
    with pytest.raises(ModelError, match="does not exist"):
        load_model(str(tmp_path / "nothing"))
    long = "a" * 5000
    code, err = run_main(main, ["score", "--at", "1700000000", "--model", long], capsys)
    assert is_one_line_error(code, err) and len(err) < 400, err[:400]
    code, err = run_main(main, ["score", "--at", "1700000000", "--model", ""], capsys)
    assert is_one_line_error(code, err) and "--model: empty path" in err, err
    code, err = run_main(main, ["models", "list", "--store", long], capsys)
    assert is_one_line_error(code, err) and len(err) < 400, err[:400]
