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
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch

from qinn_lib import paths
from qinn_lib.atomic import atomic_write_text
from qinn_lib.training.checkpoints import CheckpointError
from qinn_lib.training.checkpoints import load_checkpoint as load_training_checkpoint

SHIPPED_DIR_ENV = "QINN_SHIPPED_DIR"
MANIFEST_NAME = "manifest.json"
FORMAT = 1


class ShippedModelError(RuntimeError):
    """A shipped model file or the manifest is missing, altered or does not fit; names the file."""


def shipped_dir() -> Path:
    """``$QINN_SHIPPED_DIR`` if set, else the package's ``shipped_models/`` folder."""
    env = os.environ.get(SHIPPED_DIR_ENV)
    return Path(env) if env else paths.shipped_models_dir()


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_manifest(folder: Path | None = None) -> dict[str, Any]:
    """The manifest of ``folder`` (default :func:`shipped_dir`); an empty one if there is none."""
    folder = shipped_dir() if folder is None else Path(folder)
    path = folder / MANIFEST_NAME
    if not path.is_file():
        return {"format": FORMAT, "models": {}}
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ShippedModelError(f"shipped-model manifest {path} is unreadable ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or not isinstance(manifest.get("models"), dict):
        raise ShippedModelError(f"shipped-model manifest {path} is not a format-{FORMAT} manifest")
    return manifest


def find(cfg: Any, folder: Path | None = None) -> dict[str, Any] | None:
    """The manifest entry of the shipped model trained with ``cfg`` (same kind and configuration
    fingerprint), or None. The data are checked when the model is loaded."""
    folder = shipped_dir() if folder is None else Path(folder)
    key = f"{cfg.kind}-{cfg.fingerprint()}"
    for name, entry in read_manifest(folder)["models"].items():
        if entry.get("key") == key:
            return dict(entry, file=name, folder=str(folder))
    return None


def file_path(entry: dict[str, Any]) -> Path:
    return Path(entry["folder"]) / entry["file"]


def load_checkpoint(entry: dict[str, Any], *, expected_cfg: Any = None, expected_fingerprint: str | None = None) -> dict:
    """The checkpoint of a manifest entry, after checking the file's sha256 against the manifest
    and (optionally) its configuration and data fingerprint (:func:`qinn_lib.training.checkpoints.load_checkpoint`)."""
    path = file_path(entry)
    if not path.is_file():
        raise ShippedModelError(f"shipped model {path} is listed in {MANIFEST_NAME} but missing; "
                                "reinstall the package or run `python -m qinn_lib.shipped refresh`")
    digest = file_sha256(path)
    if digest != entry["sha256"]:
        raise ShippedModelError(f"shipped model {path} does not match its sha256 in {MANIFEST_NAME} "
                                f"({digest[:16]}... != {entry['sha256'][:16]}...): the file was altered or damaged")
    if expected_fingerprint is not None and entry["data_fingerprint"] != expected_fingerprint:
        raise ShippedModelError(
            f"shipped model {path} was trained on events with fingerprint {entry['data_fingerprint']}, but this run's "
            f"events have fingerprint {expected_fingerprint} (another event generator build, or other events?). "
            "Set QINN_MODELS=train to train on your events instead")
    try:
        return load_training_checkpoint(path, expected_cfg=expected_cfg, expected_fingerprint=expected_fingerprint)
    except CheckpointError as exc:
        raise ShippedModelError(f"shipped model: {exc}") from None


def load_into(model: torch.nn.Module, entry: dict[str, Any], *, expected_cfg: Any = None,
              expected_fingerprint: str | None = None) -> dict:
    """:func:`load_checkpoint`, then its weights into ``model``; returns the checkpoint."""
    ckpt = load_checkpoint(entry, expected_cfg=expected_cfg, expected_fingerprint=expected_fingerprint)
    try:
        model.load_state_dict(ckpt["model"])
    except (RuntimeError, KeyError, ValueError) as exc:
        raise ShippedModelError(f"shipped model {file_path(entry)} does not fit this model: {exc}") from None
    return ckpt


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
    """Copy a shipped journal to ``dest`` (where the study will run), after checking its sha256."""
    import shutil

    src = Path(entry["folder"]) / entry["file"]
    if not src.is_file():
        raise ShippedModelError(f"shipped search journal {src} is listed in {MANIFEST_NAME} but missing")
    if file_sha256(src) != entry["sha256"]:
        raise ShippedModelError(f"shipped search journal {src} does not match its sha256 in {MANIFEST_NAME}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dest)


def verify(folder: Path | None = None) -> list[str]:
    """Problems of the shipped set (empty if none): files missing or altered, files not listed."""
    folder = shipped_dir() if folder is None else Path(folder)
    manifest = read_manifest(folder)
    problems = []
    for name, entry in manifest["models"].items():
        path = folder / name
        if not path.is_file():
            problems.append(f"{path}: listed in {MANIFEST_NAME} but missing")
        elif file_sha256(path) != entry["sha256"]:
            problems.append(f"{path}: sha256 differs from {MANIFEST_NAME}")
    for name, entry in manifest.get("searches", {}).items():
        path = folder / entry["file"]
        if not path.is_file():
            problems.append(f"{path}: search {name} listed in {MANIFEST_NAME} but missing")
        elif file_sha256(path) != entry["sha256"]:
            problems.append(f"{path}: sha256 differs from {MANIFEST_NAME}")
    listed = set(manifest["models"]) | {e["file"] for e in manifest.get("searches", {}).values()}
    files = [*folder.glob("*.pt"), *folder.glob(f"{SEARCH_SUBDIR}/*.journal")]
    problems += [f"{p}: not listed in {MANIFEST_NAME}" for p in sorted(files) if p.relative_to(folder).as_posix() not in listed]
    return problems
