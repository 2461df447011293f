"""The failure model on disk and in memory: XGBoost per horizon, calibration, isolation forest.

Nothing here is pickled. Each horizon's booster is saved in XGBoost's own UBJ format; the
calibration (Platt: two numbers), the alert thresholds, the feature list and the isolation forest
(its trees as plain integer/float arrays) are JSON. A ``checksums.sha256`` file lists every file; a
model directory whose files are missing, truncated or altered is refused with a message naming
the file, before any byte of it is parsed.
"""

from __future__ import annotations

import errno
import hashlib
import json
import math
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import numpy.typing as npt

from gpu_health.errors import UserError
from gpu_health.output_file import current_umask
from gpu_health.safetext import shown

if TYPE_CHECKING:
    import xgboost as xgb

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
CHECKSUMS = "checksums.sha256"
IFOREST = "iforest.json"
#: Horizons published (``gpu_failure_probability{horizon}``); every model gives all of them.
HORIZONS: tuple[str, ...] = ("7d", "30d", "90d")
#: Horizons the XGBoost model trains a booster for; longer ones follow its 30-day hazard.
TRAINED_HORIZONS: tuple[str, ...] = ("7d", "30d")
HORIZON_SECONDS = {"7d": 7 * 86400.0, "30d": 30 * 86400.0, "90d": 90 * 86400.0}
#: Name that selects the rule baseline wherever a model directory is expected.
RULES = "rules"
#: Name that selects the XGBoost model shipped in :data:`DEFAULT_MODEL_DIR`.
XGBOOST = "xgboost"
#: The model shipped in the package.
DEFAULT_MODEL_DIR = Path(__file__).resolve().parent / "default_model"

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


class ModelError(UserError):
    """The model directory cannot be used; the message says which file and why."""


def _euler_path_length(n: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Average path length of an unsuccessful BST search among ``n`` points (Liu et al. 2008)."""
    n = np.asarray(n, dtype=np.float64)
    out = np.zeros_like(n)
    two = n == 2
    big = n > 2
    out[two] = 1.0
    out[big] = 2.0 * (np.log(n[big] - 1.0) + np.euler_gamma) - 2.0 * (n[big] - 1.0) / n[big]
    return out


@dataclass
class IsolationForestArrays:
    """An isolation forest as arrays: scores without scikit-learn objects or pickle."""

    max_samples: int
    #: per tree: feature subset (indices into the model features), children, split feature,
    #: threshold and samples per node.
    trees: list[dict[str, list[float] | list[int]]]

    @classmethod
    def from_sklearn(cls, forest: Any) -> IsolationForestArrays:
        trees: list[dict[str, list[float] | list[int]]] = []
        for estimator, features in zip(
            forest.estimators_, forest.estimators_features_, strict=True
        ):
            t = estimator.tree_
            trees.append(
                {
                    "features": [int(f) for f in features],
                    "left": t.children_left.tolist(),
                    "right": t.children_right.tolist(),
                    "feature": t.feature.tolist(),
                    "threshold": t.threshold.tolist(),
                    "n": t.n_node_samples.tolist(),
                }
            )
        return cls(int(forest.max_samples_), trees)

    def score(self, x: FloatArray) -> FloatArray:
        """Anomaly score in (0, 1): 2^(-E[path length] / c(max_samples)); ~0.5 is typical."""
        depths = np.zeros(x.shape[0])
        for tree in self.trees:
            feats = np.asarray(tree["features"], dtype=np.int64)
            left = np.asarray(tree["left"], dtype=np.int64)
            right = np.asarray(tree["right"], dtype=np.int64)
            feature = np.asarray(tree["feature"], dtype=np.int64)
            threshold = np.asarray(tree["threshold"], dtype=np.float64)
            n = np.asarray(tree["n"], dtype=np.float64)
            sub = x[:, feats]
            node = np.zeros(x.shape[0], dtype=np.int64)
            depth = np.zeros(x.shape[0])
            active = left[node] != -1
            while active.any():
                idx = np.nonzero(active)[0]
                cur = node[idx]
                go_left = sub[idx, feature[cur]] <= threshold[cur]
                node[idx] = np.where(go_left, left[cur], right[cur])
                depth[idx] += 1.0
                active = left[node] != -1
            depths += depth + _euler_path_length(n[node])
        mean = depths / max(1, len(self.trees))
        c = float(_euler_path_length(np.array([float(self.max_samples)]))[0])
        result: FloatArray = np.power(2.0, -mean / c)
        return result

    def to_json(self) -> dict[str, Any]:
        return {"max_samples": self.max_samples, "trees": self.trees}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> IsolationForestArrays:
        return cls(int(data["max_samples"]), list(data["trees"]))


class RiskModel(Protocol):
    """What the service, ``score`` and ``evaluate`` need from a model (XGBoost or the rule)."""

    @property
    def kind(self) -> str: ...

    @property
    def features(self) -> tuple[str, ...]: ...

    @property
    def metadata(self) -> dict[str, Any]: ...

    def predict(self, horizon: str, x: FloatArray) -> FloatArray: ...

    def threshold(self, horizon: str) -> float: ...

    def flags(self, horizon: str, x: FloatArray, probabilities: FloatArray) -> BoolArray: ...

    def hazard(self, x: FloatArray) -> FloatArray: ...

    def factors(self, horizon: str, x: FloatArray) -> tuple[tuple[str, ...], FloatArray]: ...

    def anomaly(self, x: FloatArray) -> FloatArray: ...


def load_model(spec: Path | str | None = None) -> RiskModel:
    """``rules`` -> the rule baseline; a directory -> a verified XGBoost model; None -> default.

    The default is the rule baseline unless a trained model beat it on held-out evaluation
    (docs/model-card.md); :data:`DEFAULT_MODEL_DIR` then holds that model.
    """
    from gpu_health.scorer.rules import RuleModel

    if spec is None:
        if (DEFAULT_MODEL_DIR / DEFAULT_KIND_FILE).read_text(encoding="utf-8").strip() == RULES:
            return RuleModel(anomaly_model=FailureModel.load(DEFAULT_MODEL_DIR, boosters=False))
        return FailureModel.load(DEFAULT_MODEL_DIR)
    if not str(spec):  # else Path("") is ".": the current directory was loaded as a model
        raise ModelError("--model: empty path")
    if str(spec) == RULES:
        # The shipped isolation forest still gives the anomaly score next to the rule.
        return RuleModel(anomaly_model=FailureModel.load(DEFAULT_MODEL_DIR, boosters=False))
    if str(spec) == XGBOOST:
        return FailureModel.load(DEFAULT_MODEL_DIR)
    return FailureModel.load(Path(spec))


#: A one-word file in the shipped model directory: ``rules`` or ``xgboost`` (what serves).
DEFAULT_KIND_FILE = "DEFAULT"


@dataclass
class HorizonModel:
    booster: xgb.Booster
    #: Platt scaling of the raw margin: p = 1 / (1 + exp(-(a * margin + b))).
    calib_a: float
    calib_b: float
    #: Probability at which a GPU is "flagged" (chosen at the target false-positive rate).
    threshold: float


@dataclass
class FailureModel:
    features: tuple[str, ...]
    horizons: dict[str, HorizonModel]
    #: Medians from training, used to fill NaN for the isolation forest only.
    impute: FloatArray
    iforest: IsolationForestArrays
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return "xgboost"

    def threshold(self, horizon: str) -> float:
        if horizon in self.horizons:
            return self.horizons[horizon].threshold
        return float(_extend(self.horizons["30d"].threshold, horizon))

    def flags(self, horizon: str, x: FloatArray, probabilities: FloatArray) -> BoolArray:
        """A row is flagged at the calibrated threshold: chosen at the target false-positive
        rate on held-out GPU-times, so it already is relative to the training fleet."""
        del x  # a row-wise model needs nothing else
        result: BoolArray = np.asarray(probabilities, dtype=np.float64) >= self.threshold(horizon)
        return result

    def hazard(self, x: FloatArray) -> FloatArray:
        """Constant hazard per second implied by the 30-day probability."""
        p30 = np.clip(self.predict("30d", x), 0.0, 1.0 - 1e-12)
        result: FloatArray = -np.log1p(-p30) / HORIZON_SECONDS["30d"]
        return result

    def factors(self, horizon: str, x: FloatArray) -> tuple[tuple[str, ...], FloatArray]:
        trained = horizon if horizon in self.horizons else "30d"
        return self.features, self.contributions(trained, x)

    def margins(self, horizon: str, x: FloatArray) -> FloatArray:
        import xgboost as xgb

        dm = xgb.DMatrix(x, missing=np.nan, feature_names=list(self.features))
        out: FloatArray = self.horizons[horizon].booster.predict(dm, output_margin=True)
        return out.astype(np.float64)

    def predict(self, horizon: str, x: FloatArray) -> FloatArray:
        """Calibrated failure probability within ``horizon`` for each row of ``x``.

        The two boosters are trained apart and can disagree, but failing within 7 days is
        failing within 30: the 30-day value is never below the 7-day one, and a horizon without
        its own booster (90d) follows the 30-day hazard held constant, so the curve is monotone.
        """
        if horizon not in self.horizons:
            p30 = self.predict("30d", x)
            result_ext: FloatArray = _extend(p30, horizon)
            return result_ext
        if horizon == "30d":
            longer: FloatArray = np.maximum(self._calibrated("30d", x), self._calibrated("7d", x))
            return longer
        return self._calibrated(horizon, x)

    def _calibrated(self, horizon: str, x: FloatArray) -> FloatArray:
        h = self.horizons[horizon]
        z = h.calib_a * self.margins(horizon, x) + h.calib_b
        result: FloatArray = 1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))
        return result

    def contributions(self, horizon: str, x: FloatArray) -> FloatArray:
        """Per-feature contributions to the log-odds (XGBoost SHAP values), bias dropped."""
        import xgboost as xgb

        dm = xgb.DMatrix(x, missing=np.nan, feature_names=list(self.features))
        out = self.horizons[horizon].booster.predict(dm, pred_contribs=True)
        contrib: FloatArray = np.asarray(out, dtype=np.float64)[:, :-1]
        return contrib * self.horizons[horizon].calib_a

    def anomaly(self, x: FloatArray) -> FloatArray:
        filled = np.where(np.isnan(x), self.impute[np.newaxis, :], x)
        return self.iforest.score(filled)

    # ---- persistence --------------------------------------------------------------------

    def save(self, directory: Path) -> None:
        """Write the model to ``directory`` whole or not at all.

        Written file by file in place, a save that failed half-way (a full disk, a killed
        ``train``) left new boosters beside the old manifest and checksums. The files are now
        written into a new directory beside the target (same parent, so the rename stays on one
        file system) and swapped in by rename: a reader sees the old model or the new one, and a
        failure leaves the old one intact and no temporary behind. A symlink to a model
        directory is followed, so the directory it names is replaced. Only an empty directory
        or a model directory is replaced (:func:`refuse_to_replace`).
        """
        target = Path(os.path.realpath(directory))
        refuse_to_replace(target, shown(directory, 200))
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
        try:
            os.chmod(tmp, 0o777 & ~current_umask())  # what a plain mkdir gives, not mkdtemp's 0700
            self._write_files(tmp)
            _swap_in(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)  # the new files on failure, else the old

    def _write_files(self, directory: Path) -> None:
        manifest: dict[str, Any] = {
            "format_version": FORMAT_VERSION,
            "features": list(self.features),
            "impute": [None if math.isnan(v) else float(v) for v in self.impute],
            "iforest": IFOREST,
            "horizons": {},
            "metadata": self.metadata,
        }
        files: list[str] = []
        for name, h in self.horizons.items():
            booster_file = f"xgb-{name}.ubj"
            h.booster.save_model(str(directory / booster_file))
            files.append(booster_file)
            manifest["horizons"][name] = {
                "booster": booster_file,
                "calibration": {"method": "platt", "a": h.calib_a, "b": h.calib_b},
                "threshold": h.threshold,
            }
        (directory / IFOREST).write_text(json.dumps(self.iforest.to_json(), separators=(",", ":")))
        files.append(IFOREST)
        (directory / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        files.append(MANIFEST)
        lines = [f"{_sha256((directory / f).read_bytes())}  {f}" for f in sorted(files)]
        (directory / CHECKSUMS).write_text("\n".join(lines) + "\n")

    @classmethod
    def load(cls, directory: Path | None = None, *, boosters: bool = True) -> FailureModel:
        """Load and verify a model directory (default: the shipped model).

        ``boosters=False`` leaves the boosters unparsed (every file is still checked against
        its checksum): the rule reads only the isolation forest, and XGBoost, imported for the
        boosters alone, took 1.2 s of each ``score --model rules`` start."""
        directory = Path(directory) if directory else DEFAULT_MODEL_DIR
        blobs = _verified_files(directory)
        try:
            manifest = json.loads(blobs[MANIFEST])
        except ValueError as exc:
            raise ModelError(f"{directory / MANIFEST}: not valid JSON ({exc})") from None
        try:
            if not isinstance(manifest, dict):
                raise ModelError(f"{directory / MANIFEST}: expected a JSON object")
            if manifest.get("format_version") != FORMAT_VERSION:
                raise ModelError(
                    f"{directory}: model format {manifest.get('format_version')!r} is not "
                    f"supported (expected {FORMAT_VERSION})"
                )
            features = tuple(str(f) for f in manifest["features"])
            horizons: dict[str, HorizonModel] = {}
            for name, spec in (manifest["horizons"] if boosters else {}).items():
                import xgboost as xgb  # here, not at the top: only a trained model needs it

                booster = xgb.Booster()
                try:
                    booster.load_model(bytearray(blobs[spec["booster"]]))
                except xgb.core.XGBoostError:
                    # XGBoost's own message is a multi-line C++ trace: name the file instead.
                    raise ModelError(
                        f"{directory / spec['booster']}: not an XGBoost model (damaged?)"
                    ) from None
                cal = spec["calibration"]
                horizons[name] = HorizonModel(
                    booster, float(cal["a"]), float(cal["b"]), float(spec["threshold"])
                )
            impute = np.array(
                [np.nan if v is None else float(v) for v in manifest["impute"]], dtype=np.float64
            )
            iforest = IsolationForestArrays.from_json(json.loads(blobs[manifest["iforest"]]))
        except ModelError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            detail = " ".join(str(exc).split())[:200]
            raise ModelError(f"{directory}: model files are inconsistent: {detail}") from None
        if len(impute) != len(features) or (boosters and set(horizons) != set(TRAINED_HORIZONS)):
            raise ModelError(f"{directory}: manifest lists mismatched features or horizons")
        return cls(features, horizons, impute, iforest, dict(manifest.get("metadata", {})))


def _extend(p30: Any, horizon: str) -> Any:
    """P(fail within horizon) from P(fail within 30 d) under a constant hazard."""
    return 1.0 - np.power(1.0 - np.asarray(p30), HORIZON_SECONDS[horizon] / HORIZON_SECONDS["30d"])


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


#: Entries an existing directory may hold for ``save`` to replace it (a model has about 12).
_REPLACEABLE_ENTRIES = 200


def refuse_to_replace(directory: Path, name: str) -> None:
    """Refuse, in one line naming ``name``, to replace ``directory`` unless it is absent, empty
    or a model directory (a manifest or checksums file and no sub-directory).

    :meth:`FailureModel.save` swaps a whole directory in: ``train --out ~`` wrote five files
    into the home directory when models were written in place; replaced whole, it would be
    gone. Called by ``save`` and, before any history is read, by ``train``'s checks."""
    try:
        if not directory.exists():
            return
        if not directory.is_dir():
            raise ModelError(f"{name}: exists and is not a directory")
        entries = []
        for entry in directory.iterdir():
            entries.append(entry)
            if len(entries) > _REPLACEABLE_ENTRIES:
                break
        subdirectories = sorted(e.name for e in entries if e.is_dir())
    except OSError as exc:
        raise ModelError(f"{name}: cannot use it: {exc.strerror or exc}") from None
    if not entries:
        return
    names = {e.name for e in entries}
    if subdirectories or len(entries) > _REPLACEABLE_ENTRIES or not names & {MANIFEST, CHECKSUMS}:
        what = f"a sub-directory {subdirectories[0]!r}" if subdirectories else "other files"
        raise ModelError(
            f"{name}: holds {what}, not a model; a model directory is replaced whole, "
            "so give a new directory or one that holds a model"
        )


def _swap_in(new: Path, target: Path) -> None:
    """Put the complete directory ``new`` at ``target``; ``new`` then names the old one, or
    nothing. Both sit in one parent directory."""
    if not target.exists():
        os.rename(new, target)  # replaces at most an empty directory created meanwhile
        return
    if _exchange(new, target):
        return
    # No atomic exchange here: two renames. In between ``target`` is absent for an instant (a
    # reader finds no model, never a mixed one; ``serve`` keeps its last good model).
    old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
    try:
        os.rename(target, old)  # over the empty directory ``old``
    except OSError:
        old.rmdir()
        raise
    try:
        os.rename(new, target)
    except OSError:
        os.rename(old, target)  # should this fail too, the old model stays whole under ``old``
        raise
    shutil.rmtree(old, ignore_errors=True)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two directories in one step (Linux ``renameat2(RENAME_EXCHANGE)``); False where the
    system or the file system cannot, so the caller falls back to two renames."""
    if sys.platform != "linux":
        return False
    import ctypes

    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if renameat2 is None:
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(b))


def _verified_files(directory: Path) -> dict[str, bytes]:
    """Read every file named in SHA256SUMS and check its digest; refuse on any mismatch."""
    sums_path = directory / CHECKSUMS
    try:
        is_dir, exists = directory.is_dir(), directory.exists()
    except OSError as exc:  # a name too long, a loop of links: one line, the path cut short
        why = exc.strerror or exc
        raise ModelError(f"model directory {shown(directory, 200)}: {why}") from None
    if not is_dir:
        if exists:  # /dev/null, a file: "does not exist" sent the operator looking elsewhere
            raise ModelError(f"model directory {shown(directory, 200)} is not a directory")
        raise ModelError(f"model directory {shown(directory, 200)} does not exist")
    try:
        sums = sums_path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        raise ModelError(
            f"{sums_path}: checksum file missing or unreadable; refusing an unverified model"
        ) from None
    blobs: dict[str, bytes] = {}
    for line in sums.splitlines():
        if not line.strip():
            continue
        digest, _, name = line.partition("  ")
        if not name or "/" in name or name.startswith("."):
            raise ModelError(f"{sums_path}: malformed line {line[:80]!r}")
        try:
            data = (directory / name).read_bytes()
        except OSError:
            raise ModelError(f"{directory / name}: listed in {CHECKSUMS} but missing") from None
        if _sha256(data) != digest.strip():
            raise ModelError(
                f"{directory / name}: checksum mismatch (truncated or altered); refusing to load"
            )
        blobs[name] = data
    if MANIFEST not in blobs:
        raise ModelError(f"{sums_path}: does not cover {MANIFEST}")
    return blobs
