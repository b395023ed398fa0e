"""Corrupt entries in torch's compile cache: found and removed, so they cannot change a run's numbers.

Why: inductor reuses what it finds in its cache folder (``TORCHINDUCTOR_CACHE_DIR``, set up by
:mod:`qinn_lib.compiling`) without checking it. A kernel library (``.so``) or generated module
(``.py``) truncated by a crash, a full disk or a copy is loaded as it is; loading fails, and the
compiled step falls back to eager. Eager and compiled arithmetic agree only to float rounding
(the compiler fuses and reorders operations), so after a few hundred optimiser steps the same
seed gave weights differing by 4e-3 (issue 24, case 10): the numbers depended on the cache's
state. Inductor's own graph pickles (``fxgraph/``, ``aotautograd/``) are skipped by torch when
unreadable, but with a traceback in the log of every process that meets them.

:func:`corrupt_entries` checks each entry's structure without loading it: an ELF library must
hold its section-header table (the linker writes it last, so a truncated file lacks it), a C++
source with no library beside it (the next compile builds it) must have balanced braces, and in a
``thorough`` check also a Python module must compile and a graph pickle must parse to its STOP
opcode. :func:`repair` removes what fails; every entry is regenerated on the next compile (the
cache only saves compile time).

The quick check (30 ms on a 155 MB cache of 1800 files) runs once per process before the first
compile, because one truncated entry changes the arithmetic *without* a failure: inductor probes
the CPU's vector instruction sets by building and loading a small library in the cache, and a
probe that does not load silently selects other (or no) vector kernels. The thorough check (about
1 s more) runs after a compile failed, before the compile is tried again.
"""

from __future__ import annotations

import os
import pickletools
import struct
from pathlib import Path

__all__ = ["cache_folder", "corrupt_entries", "repair"]

#: Sub-folders holding inductor's pickled graphs (each file one pickle).
_PICKLE_FOLDERS = ("fxgraph", "aotautograd")


def cache_folder() -> Path | None:
    """The compile cache folder in use (``TORCHINDUCTOR_CACHE_DIR``), ``None`` if it is not set."""
    value = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    return Path(value) if value else None


def _elf_truncated(path: Path) -> bool:
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(64)
    except OSError:
        return False  # gone or unreadable: nothing inductor could load either
    if len(head) < 64 or head[:4] != b"\x7fELF":
        return True
    if head[4] == 2:  # 64-bit
        endian = "<" if head[5] == 1 else ">"
        (shoff,) = struct.unpack_from(endian + "Q", head, 0x28)
        shentsize, shnum = struct.unpack_from(endian + "HH", head, 0x3A)
    else:
        endian = "<" if head[5] == 1 else ">"
        (shoff,) = struct.unpack_from(endian + "I", head, 0x20)
        shentsize, shnum = struct.unpack_from(endian + "HH", head, 0x2E)
    return shoff + shentsize * shnum > size


def _python_broken(path: Path) -> bool:
    try:
        source = path.read_bytes()
    except OSError:
        return False
    try:
        compile(source, str(path), "exec", dont_inherit=True)
    except (SyntaxError, ValueError):  # ValueError: null bytes
        return True
    return False


def _pickle_broken(path: Path) -> bool:
    try:
        blob = path.read_bytes()
    except OSError:
        return False
    try:
        for opcode, _arg, _pos in pickletools.genops(blob):
            if opcode.name == "STOP":
                return False
    except Exception:  # truncated or garbage: genops raises ValueError and friends
        return True
    return True


def _orphan_cpp_broken(path: Path) -> bool:
    # A source whose library exists is never read again; one without is compiled next time.
    if path.with_suffix(".so").exists():
        return False
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return text.count("{") != text.count("}") or not text.rstrip().endswith("}")


def corrupt_entries(folder: str | os.PathLike | None = None, *, thorough: bool = False) -> list[Path]:
    """Entries of the compile cache ``folder`` (default :func:`cache_folder`) that inductor would
    fail to load or build: truncated or non-ELF ``.so`` files and truncated C++ sources awaiting
    their build; with ``thorough``, also ``.py`` files that do not compile and unreadable graph
    pickles. Temporary files (inductor's writes in progress start with ``.``) are skipped."""
    root = Path(folder) if folder is not None else cache_folder()
    if root is None or not root.is_dir():
        return []
    bad: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".") and d != "locks"]
        rel = Path(dirpath).relative_to(root).parts
        in_pickles = bool(rel) and rel[0] in _PICKLE_FOLDERS
        for name in filenames:
            if name.startswith("."):
                continue
            path = Path(dirpath) / name
            if name.endswith(".so"):
                broken = _elf_truncated(path)
            elif name.endswith(".cpp"):
                broken = _orphan_cpp_broken(path)
            elif not thorough:
                continue
            elif name.endswith(".py"):
                broken = _python_broken(path)
            elif in_pickles:
                broken = _pickle_broken(path)
            else:
                continue
            if broken:
                bad.append(path)
    return sorted(bad)


def repair(folder: str | os.PathLike | None = None, *, thorough: bool = False) -> list[Path]:
    """Remove the :func:`corrupt_entries` of ``folder``; returns the paths removed."""
    removed = []
    for path in corrupt_entries(folder, thorough=thorough):
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        except OSError:
            continue  # a read-only cache: the caller falls back to eager and says so
        removed.append(path)
    return removed
