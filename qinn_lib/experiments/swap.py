"""Replacing part of the shipped set as one transaction: the new files are written beside the old
ones, the manifest is switched atomically, and only then is what it superseded removed.

A refresh used to delete the old models first and write the manifest last: interrupted, it left
neither set. Now (:func:`transaction`), and what an interruption at each step leaves:

1. *stage*: every new file is written (atomically, :func:`qinn_lib.atomic.atomic_write`) as a
   hidden ``.<name>.<random>.staged`` beside the old set. Interrupted: the old manifest and files
   are untouched; the staged files belong to no entry (an exception or Ctrl-C removes them at
   once; after a SIGKILL or a power cut the next transaction, or ``shipped recover``, does).
2. *switch*: ``manifest.json`` is replaced (``os.replace``) by the new one, whose new entries name
   their staged file (``staged``) and which lists the files it supersedes (``pending.remove``).
   From here on the set is the new one and complete: an entry's file is its staged file or its own
   name, whichever exists, and the sha256 decides (:func:`qinn_lib.experiments.store.file_path`).
3. *finish*: the superseded files are removed, each staged file is renamed to its own name
   (``os.replace``, atomic), and the manifest is rewritten without ``staged``/``pending``.
   Interrupted: the next transaction, or ``shipped recover``, finishes it (idempotent).

Concurrent transactions (``refresh --only a`` beside ``refresh --only b``) are serialised by a
lock on ``<folder>/.lock``.
"""

from __future__ import annotations

import contextlib
import copy
import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from qinn_lib.atomic import atomic_write, check_writable
from qinn_lib.experiments.store import (
    MANIFEST_NAME,
    SEARCH_SUBDIR,
    SHIPPED_DIR_ENV,
    STAGED_SUFFIX,
    read_manifest,
    write_manifest,
)

LOCK_NAME = ".lock"


def check_folder(folder: Path) -> Path:
    """The shipped folder is writable (before hours of training whose results would go there)."""
    return check_writable(folder, "shipped-models folder", f"set {SHIPPED_DIR_ENV} to a writable folder")


@contextlib.contextmanager
def locked(folder: Path) -> Iterator[None]:
    """Serialise transactions of concurrent processes on ``folder``."""
    import fcntl

    check_folder(folder)
    with open(folder / LOCK_NAME, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _final(section: str, key: str, entry: dict[str, Any]) -> str:
    """The file an entry names once switched: a model's key, a search's ``file``."""
    return key if section == "models" else entry["file"]


def _finish(folder: Path, manifest: dict[str, Any]) -> tuple[int, int]:
    """Step 3 on a switched manifest: remove the superseded files, move the staged ones into place,
    drop the staging fields. Returns (files removed, files moved)."""
    removed = moved = 0
    for rel in manifest.get("pending", {}).get("remove", []):
        path = folder / rel
        if path.is_file():
            path.unlink()
            removed += 1
    for section in ("models", "searches"):
        for key, entry in manifest.get(section, {}).items():
            staged = entry.pop("staged", None)
            if staged and (folder / staged).is_file():
                os.replace(folder / staged, folder / _final(section, key, entry))
                moved += 1
    manifest.pop("pending", None)
    write_manifest(folder, manifest)
    return removed, moved


def recover(folder: Path, log: Callable[[str], None] | None = print) -> list[str]:
    """Finish an interrupted transaction on ``folder`` (it must be locked: :func:`locked`) and
    remove files staged by one that never switched. Returns what was done (also ``log``-ged)."""
    done = []
    manifest = read_manifest(folder)
    switched = "pending" in manifest or any(e.get("staged") for sec in ("models", "searches")
                                             for e in manifest.get(sec, {}).values())
    if switched:
        removed, moved = _finish(folder, manifest)
        done.append(f"finished an interrupted refresh of {folder}: its new set was complete; "
                    f"{removed} superseded file(s) removed, {moved} staged file(s) moved into place")
    orphans = sorted([*folder.glob(f".*{STAGED_SUFFIX}"), *folder.glob(f"{SEARCH_SUBDIR}/.*{STAGED_SUFFIX}")])
    for path in orphans:
        path.unlink(missing_ok=True)
    if orphans:
        done.append(f"removed {len(orphans)} file(s) written by an interrupted refresh of {folder} that never "
                    f"switched to them (the set in {MANIFEST_NAME} was kept as it was): "
                    + ", ".join(p.name for p in orphans))
    for line in done:
        if log:
            log(f"[shipped] {line}")
    return done


class Transaction:
    """The changes of one :func:`transaction`: files staged, entries put and dropped."""

    def __init__(self, folder: Path, manifest: dict[str, Any]):
        self.folder = folder
        self.manifest = manifest  #: the manifest as it was (after recovery), read-only
        self._puts: dict[tuple[str, str], dict[str, Any]] = {}
        self._drops: set[tuple[str, str]] = set()
        self._staged: list[Path] = []
        self.switched = False

    def stage(self, final: str, write: Callable[[BinaryIO], object]) -> Path:
        """Write the content of the file ``final`` (relative to the folder) to a staged file
        beside it; returns the staged file's path."""
        target = self.folder / final
        staged = target.parent / f".{target.name}.{secrets.token_hex(4)}{STAGED_SUFFIX}"
        self._staged.append(staged)
        atomic_write(staged, write)
        return staged

    def put(self, section: str, key: str, entry: dict[str, Any], staged: Path) -> None:
        """The new ``entry`` of ``key`` in ``section`` ("models" or "searches"), its file staged."""
        self._puts[(section, key)] = dict(entry, staged=staged.relative_to(self.folder).as_posix())

    def drop(self, section: str, key: str) -> None:
        """Remove the entry ``key`` of ``section`` (and its file) unless it is also put."""
        self._drops.add((section, key))

    def _switch(self) -> None:
        new = copy.deepcopy(self.manifest)
        finals = {_final(sec, key, e) for (sec, key), e in self._puts.items()}
        remove = set()
        for sec, key in self._drops - set(self._puts):
            old = new.get(sec, {}).pop(key, None)
            if old is not None:
                remove.add(_final(sec, key, old))
        for (sec, key), entry in self._puts.items():
            old = new.setdefault(sec, {}).get(key)
            if old is not None and _final(sec, key, old) != _final(sec, key, entry):
                remove.add(_final(sec, key, old))
            new[sec][key] = entry
        new["models"] = dict(sorted(new["models"].items()))
        new["pending"] = {"remove": sorted(remove - finals)}
        write_manifest(self.folder, new)  # the switch (atomic)
        self.switched = True
        _finish(self.folder, new)


@contextlib.contextmanager
def transaction(folder: Path, log: Callable[[str], None] | None = print) -> Iterator[Transaction]:
    """Lock ``folder``, recover what an interrupted transaction left, and yield a
    :class:`Transaction`; on leaving the block the changes are switched to and finished. An
    exception (or Ctrl-C) before the switch removes the staged files and leaves the set as it was."""
    folder = Path(folder)
    with locked(folder):
        recover(folder, log)
        txn = Transaction(folder, read_manifest(folder))
        try:
            yield txn
            txn._switch()
        except BaseException:
            if not txn.switched:
                for path in txn._staged:
                    path.unlink(missing_ok=True)
            raise
