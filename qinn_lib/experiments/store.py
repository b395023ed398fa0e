"""Trained models shipped with the package, read side: find, load and verify them.

Shipped models save anyone from training for hours just to explore them. The models of the
notebooks are tiny (QINN 2,063 parameters, INNs 1.9k-16k): their weights are kilobytes. They live
in ``qinn_lib/shipped_models/`` (or ``$QINN_SHIPPED_DIR``) as package data: one file per run, and
``manifest.json`` listing for each file its sha256, the run configuration, its fingerprint and the
fingerprint of the events it was trained on (notebook 06's search ships as an Optuna journal).

:func:`qinn_lib.experiments.one_model.train_qinn` / ``train_inn`` load a shipped model instead of
training when one matches the run's configuration (:func:`find`); loading checks the file's
sha256 and the data fingerprint, and a mismatch is an error naming the file (:func:`load_into`).
``QINN_MODELS=train`` turns shipped models off. A shipped file is an ordinary training checkpoint
(:mod:`qinn_lib.training.checkpoints`) without the optimiser and scheduler state, which only
resuming needs. Writing the shipped set is :mod:`qinn_lib.experiments.publish`.

Each entry also records the model's behavioural fingerprint (its outputs on a fixed probe batch,
:mod:`qinn_lib.experiments.probe`), checked on load and by :func:`verify`: weights changed together
with their sha256, or a torch version that computes differently, are an error naming the file.

A refresh replaces part of the set as one transaction (:mod:`qinn_lib.experiments.swap`): while
it runs, an entry may name a ``staged`` file beside its final one; :func:`file_path` takes
whichever exists (the sha256 decides), so the set verifies at every moment.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path
from typing import Any

import torch

from qinn_lib import paths
from qinn_lib.atomic import atomic_write, atomic_write_text
from qinn_lib.errors import QinnError
from qinn_lib.experiments import probe
from qinn_lib.training.checkpoints import CheckpointError
from qinn_lib.training.checkpoints import load_checkpoint as load_training_checkpoint

SHIPPED_DIR_ENV = "QINN_SHIPPED_DIR"
MANIFEST_NAME = "manifest.json"
FORMAT = 1
#: Suffix of a file written by a refresh that has not been switched to yet (:mod:`qinn_lib.experiments.swap`).
STAGED_SUFFIX = ".staged"
#: Fields every model entry must hold, with their types; and every search entry.
_MODEL_FIELDS = {"key": str, "kind": str, "sha256": str, "config": dict, "data_fingerprint": str}
_SEARCH_FIELDS = {"file": str, "sha256": str, "finished": int}


class ShippedModelError(QinnError, RuntimeError):
    """A shipped model file or the manifest is missing, altered or does not fit; names the file."""


def shipped_dir() -> Path:
    """``$QINN_SHIPPED_DIR`` if set (a relative value rooted as every folder variable is:
    :func:`qinn_lib.paths.env_folder`), else the package's ``shipped_models/`` folder."""
    return paths.env_folder(SHIPPED_DIR_ENV, paths.shipped_models_dir())


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _check_entries(path: Path, section: str, entries: Any, fields: dict[str, type]) -> None:
    if not isinstance(entries, dict):
        raise ShippedModelError(f"shipped-model manifest {path}: field {section!r} is not a mapping; "
                                "restore the file (git checkout, or reinstall the package)")
    for name, entry in entries.items():
        for field, kind in fields.items():
            value = entry.get(field) if isinstance(entry, dict) else None
            if not isinstance(value, kind) or (field == "sha256" and len(value) != 64):
                raise ShippedModelError(
                    f"shipped-model manifest {path}: entry {section}.{name} has no valid field {field!r}; "
                    "restore the file (git checkout, or reinstall the package)")


def read_manifest(folder: Path | None = None) -> dict[str, Any]:
    """The manifest of ``folder`` (default :func:`shipped_dir`); an empty one if there is none.
    A manifest that is not JSON, or an entry lacking a field, is an error naming it."""
    folder = shipped_dir() if folder is None else Path(folder)
    path = folder / MANIFEST_NAME
    if not path.is_file():
        return {"format": FORMAT, "models": {}}
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ShippedModelError(f"shipped-model manifest {path} is unreadable ({exc}); restore it (git checkout, "
                                "or reinstall the package)") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or not isinstance(manifest.get("models"), dict):
        raise ShippedModelError(f"shipped-model manifest {path} is not a format-{FORMAT} manifest")
    _check_entries(path, "models", manifest["models"], _MODEL_FIELDS)
    _check_entries(path, "searches", manifest.get("searches", {}), _SEARCH_FIELDS)
    return manifest


_WARNED_EMPTY: set[str] = set()


def find(cfg: Any, folder: Path | None = None) -> dict[str, Any] | None:
    """The manifest entry of the shipped model trained with ``cfg`` (same kind and configuration
    fingerprint), or None. The data are checked when the model is loaded. A ``$QINN_SHIPPED_DIR``
    that holds no manifest is said once (a warning): every run would otherwise train silently."""
    folder = shipped_dir() if folder is None else Path(folder)
    if not (folder / MANIFEST_NAME).is_file() and str(folder) not in _WARNED_EMPTY:
        _WARNED_EMPTY.add(str(folder))
        warnings.warn(f"no shipped models: {folder} holds no {MANIFEST_NAME} (is {SHIPPED_DIR_ENV} right?); "
                      "runs are reloaded from or trained under the runs folder", stacklevel=2)
    key = f"{cfg.kind}-{cfg.fingerprint()}"
    for name, entry in read_manifest(folder)["models"].items():
        if entry.get("key") == key:
            return dict(entry, file=name, folder=str(folder))
    return None


def candidates(folder: Path, entry: dict[str, Any], name: str) -> list[Path]:
    """Where the file of an entry may be: its staged file while a refresh switches to it, then its
    own name (:mod:`qinn_lib.experiments.swap`)."""
    staged = entry.get("staged")
    return [folder / staged, folder / name] if staged else [folder / name]


def file_path(entry: dict[str, Any]) -> Path:
    """The file of a :func:`find` entry: the first of :func:`candidates` that exists."""
    options = candidates(Path(entry["folder"]), entry, entry["file"])
    return next((p for p in options if p.is_file()), options[-1])


def _matching_file(entry: dict[str, Any], what: str = "shipped model") -> Path:
    """The first candidate file of ``entry`` whose sha256 is the manifest's (a refresh may rename
    the staged file between two looks: the sha256 decides, not the name)."""
    options = candidates(Path(entry["folder"]), entry, entry["file"])
    seen = None
    for path in options:
        try:
            digest = file_sha256(path)
        except FileNotFoundError:
            continue
        except IsADirectoryError:
            digest = "a folder"
        if digest == entry["sha256"]:
            return path
        seen = seen or (path, digest)
    if seen is None:
        raise ShippedModelError(f"{what} {options[-1]} is listed in {MANIFEST_NAME} but missing; "
                                "reinstall the package or run `python -m qinn_lib.shipped refresh`")
    path, digest = seen
    raise ShippedModelError(f"{what} {path} does not match its sha256 in {MANIFEST_NAME} "
                            f"({digest[:16]}... != {entry['sha256'][:16]}...): the file was altered or damaged")


def load_checkpoint(entry: dict[str, Any], *, expected_cfg: Any = None, expected_fingerprint: str | None = None) -> dict:
    """The checkpoint of a manifest entry, after checking the file's sha256 against the manifest
    and (optionally) its configuration and data fingerprint (:func:`qinn_lib.training.checkpoints.load_checkpoint`)."""
    path = _matching_file(entry)
    if expected_fingerprint is not None and entry["data_fingerprint"] != expected_fingerprint:
        raise ShippedModelError(
            f"shipped model {path} was trained on events with fingerprint {entry['data_fingerprint']}, but this run's "
            f"events have fingerprint {expected_fingerprint} (another event generator build, or other events?). "
            "Set QINN_MODELS=train to train on your events instead")
    try:
        return load_training_checkpoint(path, expected_cfg=expected_cfg, expected_fingerprint=expected_fingerprint)
    except CheckpointError as exc:
        raise ShippedModelError(f"shipped model: {exc}") from None


def check_behaviour(model: torch.nn.Module, entry: dict[str, Any], path: Path) -> float:
    """Compare ``model`` (the entry's weights loaded) with the entry's behavioural fingerprint;
    returns the deviation in units of the tolerance. Raises ShippedModelError naming the file
    if there is no fingerprint or the model computes something else."""
    recorded = entry.get("behaviour")
    if not recorded:
        raise ShippedModelError(f"shipped model {path} has no behavioural fingerprint in {MANIFEST_NAME}; "
                                "run `python -m qinn_lib.shipped fingerprint` to record it, or set QINN_MODELS=train")
    if not probe.is_current(recorded):
        raise ShippedModelError(f"shipped model {path}: its behavioural fingerprint in {MANIFEST_NAME} was recorded by "
                                f"an older version of the probe ({str(recorded).partition(':')[0]}, this is "
                                f"v{probe.VERSION}); run `python -m qinn_lib.shipped fingerprint` to re-record it")
    try:
        dev = probe.deviation(model, recorded)
    except (ValueError, TypeError) as exc:
        raise ShippedModelError(f"shipped model {path}: its behavioural fingerprint in {MANIFEST_NAME} is "
                                f"unreadable ({exc}); restore the manifest") from None
    if dev > 1.0:
        raise ShippedModelError(
            f"shipped model {path} computes other outputs than when it was published (probe batch off by "
            f"{dev:.3g} x the tolerance {probe.RTOL:g}): its weights were changed with its manifest entry, or this "
            f"torch {torch.__version__} computes differently from torch {entry.get('torch', '?')}; "
            "set QINN_MODELS=train to train instead, or `python -m qinn_lib.shipped refresh`")
    return dev


def load_into(model: torch.nn.Module, entry: dict[str, Any], *, expected_cfg: Any = None,
              expected_fingerprint: str | None = None) -> dict:
    """:func:`load_checkpoint`, then its weights into ``model`` and :func:`check_behaviour`;
    returns the checkpoint."""
    ckpt = load_checkpoint(entry, expected_cfg=expected_cfg, expected_fingerprint=expected_fingerprint)
    try:
        model.load_state_dict(ckpt["model"])
    except (RuntimeError, KeyError, ValueError) as exc:
        raise ShippedModelError(f"shipped model {file_path(entry)} does not fit this model: {exc}") from None
    check_behaviour(model, entry, file_path(entry))
    return ckpt


def behaviour_of(folder: Path, name: str, entry: dict[str, Any]) -> torch.nn.Module:
    """The model of manifest entry ``name``, built from its configuration, its file's weights
    loaded (the sha256 checked)."""
    model = probe.build_model(entry["kind"], entry["config"], where=f"{folder / MANIFEST_NAME}: {name}")
    ckpt = load_checkpoint(dict(entry, file=name, folder=str(folder)))
    try:
        model.load_state_dict(ckpt["model"])
    except (RuntimeError, KeyError, ValueError) as exc:
        raise ShippedModelError(f"shipped model {folder / name} does not fit its configuration: {exc}") from None
    return model


# -- shipped search studies (notebook 06) --------------------------------------------------------------
SEARCH_SUBDIR = "search"


def write_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    atomic_write_text(folder / MANIFEST_NAME, json.dumps(manifest, indent=1, sort_keys=True) + "\n")


def find_search(name: str, folder: Path | None = None) -> dict[str, Any] | None:
    """The manifest entry of the shipped Optuna journal of study ``name``, or None."""
    folder = shipped_dir() if folder is None else Path(folder)
    entry = read_manifest(folder).get("searches", {}).get(name)
    return dict(entry, name=name, folder=str(folder)) if entry else None


def copy_search(entry: dict[str, Any], dest: Path) -> None:
    """Copy a shipped journal to ``dest`` (where the study will run), after checking its sha256;
    atomically: an interrupted copy leaves no partial journal, which would read as a torn one."""
    import shutil

    src = _matching_file(entry, "shipped search journal")
    with open(src, "rb") as fh:
        atomic_write(dest, lambda out: shutil.copyfileobj(fh, out))


# -- verifying the whole set ------------------------------------------------------------------------------
def _file_problem(folder: Path, entry: dict[str, Any], name: str, what: str) -> str | None:
    options = candidates(folder, entry, name)
    present = [p for p in options if p.is_file()]
    if not present:
        return f"{options[-1]}: {what}listed in {MANIFEST_NAME} but missing"
    if not any(file_sha256(p) == entry["sha256"] for p in present):
        return f"{present[0]}: sha256 differs from {MANIFEST_NAME}"
    return None


def verify(folder: Path | None = None, *, behaviour: bool = True) -> list[str]:
    """Problems of the shipped set (empty if none): files missing or altered, files not listed, and
    (``behaviour``) models whose outputs on the probe batch differ from their fingerprint."""
    return check_set(folder, behaviour=behaviour)[0]


def check_set(folder: Path | None = None, *, behaviour: bool = True) -> tuple[list[str], list[str], float]:
    """``(problems, notes, largest deviation)`` of the shipped set: :func:`verify`'s problems; notes
    on what an interrupted refresh left (which the next refresh or ``recover`` tidies); and the
    largest deviation of a model from its behavioural fingerprint, in units of the tolerance."""
    folder = shipped_dir() if folder is None else Path(folder)
    manifest = read_manifest(folder)
    problems: list[str] = []
    worst = 0.0
    for name, entry in manifest["models"].items():
        problem = _file_problem(folder, entry, name, "")
        if problem:
            problems.append(problem)
            continue
        if not behaviour:
            continue
        try:
            model = behaviour_of(folder, name, entry)
            worst = max(worst, check_behaviour(model, entry, folder / name))
        except (ShippedModelError, QinnError, KeyError, TypeError) as exc:
            problems.append(str(exc).strip("'\""))
    for name, entry in manifest.get("searches", {}).items():
        problem = _file_problem(folder, entry, entry["file"], f"search {name} ")
        if problem:
            problems.append(problem)
    referenced = set(manifest["models"]) | {e["file"] for e in manifest.get("searches", {}).values()}
    referenced |= {e["staged"] for sec in ("models", "searches") for e in manifest.get(sec, {}).values() if e.get("staged")}
    superseded = set(manifest.get("pending", {}).get("remove", []))
    files = [*folder.glob("*.pt"), *folder.glob(f"{SEARCH_SUBDIR}/*.journal")]
    notes = []
    for p in sorted(files):
        rel = p.relative_to(folder).as_posix()
        if rel in superseded:
            notes.append(f"{p}: superseded by an interrupted refresh, still to be removed")
        elif rel not in referenced:
            problems.append(f"{p}: not listed in {MANIFEST_NAME}")
    staged = [p for p in [*folder.glob(f".*{STAGED_SUFFIX}"), *folder.glob(f"{SEARCH_SUBDIR}/.*{STAGED_SUFFIX}")]
              if p.relative_to(folder).as_posix() not in referenced]
    notes += [f"{p}: written by an interrupted refresh and never switched to (not part of the set)" for p in sorted(staged)]
    if notes:
        notes.append("run `python -m qinn_lib.shipped recover` (or the next refresh does it) to tidy up")
    return problems, notes, worst
