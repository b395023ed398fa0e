"""Atomic file writes, shared by the event cache, checkpoints, results files and reports.

Nothing already computed may be lost to a crash mid-write: every file is written to a temporary
file in the same folder, flushed and fsynced, then moved over the target with ``os.replace``
(atomic on POSIX). A failure at any point leaves the previous file intact and no temporary behind,
and is raised as a :class:`WriteError` naming the target (a full disk, a read-only folder).

Permissions: the written file keeps the mode of the file it replaces; a new file gets the usual
``0666 & ~umask`` (the temporary is created with ``os.open(..., 0o666)``, so the kernel applies the
umask and any default ACL). ``tempfile.mkstemp`` would make every file ``0600``, unreadable to the
other users of a shared data folder or to a container running as another uid.

:func:`check_writable` tries a folder the same way before a long computation is started.
"""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from qinn_lib.errors import QinnError

_TEMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)


class WriteError(QinnError, OSError):
    """A file or folder cannot be written; the message names it (``errno`` and ``strerror`` are kept)."""

    def __str__(self) -> str:  # the message, not OSError's "[Errno N] strerror"
        return str(self.args[0]) if self.args else super().__str__()


def _write_error(message: str, exc: OSError, tail: str = "") -> WriteError:
    err = WriteError(f"{message}: {exc.strerror or exc}{tail}")
    err.errno, err.strerror = exc.errno, exc.strerror
    return err


def create_sibling_temp(path: str | os.PathLike, suffix: str = ".tmp") -> tuple[int, Path]:
    """Create an empty temporary file next to ``path`` (``.<name>.<random><suffix>``) and return its
    open descriptor and path. Its mode is that of ``path`` if ``path`` exists, else
    ``0666 & ~umask``; moving it over ``path`` with ``os.replace`` therefore changes no permission."""
    path = Path(path)
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        mode = None
    for _ in range(100):
        tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}{suffix}"
        try:
            fd = os.open(tmp, _TEMP_FLAGS, 0o666)
        except FileExistsError:
            continue
        if mode is not None:
            try:
                os.chmod(tmp, mode)
            except BaseException:
                os.close(fd)
                tmp.unlink(missing_ok=True)
                raise
        return fd, tmp
    raise FileExistsError(f"cannot create a temporary file next to {path}: 100 names taken")


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], object]) -> Path:
    """Call ``write(fh)`` on a temporary binary file, then atomically replace ``path`` with it.

    Any ``OSError`` (no space left, permission denied, the folder is a file) is raised as a
    :class:`WriteError` naming ``path``; the previous file is untouched."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = create_sibling_temp(path)
    except OSError as exc:
        raise _write_error(f"cannot write {path}", exc) from None
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError) and not isinstance(exc, WriteError):
            raise _write_error(f"cannot write {path}", exc) from None
        raise
    # Persist the rename itself (POSIX); best effort, not available on every filesystem.
    try:
        dir_fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return path
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """:func:`atomic_write` for UTF-8 text."""
    return atomic_write(path, lambda fh: fh.write(text.encode("utf-8")))


def check_writable(folder: str | os.PathLike, what: str = "folder", hint: str = "") -> Path:
    """Create ``folder`` if needed and check that a file can be created in it, before any long
    computation whose results would go there. Raises :class:`WriteError` naming the folder (and
    ``hint``, e.g. which environment variable moves it) if it is a file or not writable."""
    folder = Path(folder)
    tail = f"; {hint}" if hint else ""
    if folder.exists() and not folder.is_dir():
        raise WriteError(f"the {what} {folder} is a file, not a folder{tail}")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = create_sibling_temp(folder / "write-test")
    except OSError as exc:
        raise _write_error(f"cannot write in the {what} {folder}", exc, tail) from None
    os.close(fd)
    tmp.unlink(missing_ok=True)
    return folder
