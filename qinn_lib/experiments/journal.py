"""The search's Optuna journal, made to survive a torn write (issue 24, case 1).

An Optuna journal (``JournalFileBackend``) is an append-only file of JSON records, one a line. A
search killed in the middle of an append, or a disk that fills during one, leaves the last line
without its line end. Optuna (5.1) reads past such a tail, but appends the *next* record right
after it: the two records then share one line that is not JSON, and every later read stops there
with "Invalid log format": the study is unreadable for good.

:class:`TornTolerantJournal` is Optuna's file backend with two guards, both taken under Optuna's
own journal lock (so a record another process is writing is never mistaken for a torn one):

* on opening, and before every append, :func:`repair` cuts the file back to its last complete
  record (a tail that is a whole JSON record and only lacks its line end is ended instead: nothing
  is lost), keeping the cut bytes in ``<journal>.torn-<UTC time>`` beside it; a line that two
  records share because an older version appended onto a torn tail keeps its second, whole record;
* an append that fails part-way (``OSError``, Ctrl-C) truncates the file back to where it began,
  so the process that saw the error leaves no torn tail either.

What was repaired is said once, by the caller (:func:`qinn_lib.experiments.search.open_study`).
A line in the middle of the file that holds no whole record is not guessed at: :class:`JournalError`
names the file and the line.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from optuna.storages.journal import JournalFileBackend
from optuna.storages.journal._file import get_lock_file

from qinn_lib.atomic import atomic_write
from qinn_lib.errors import QinnError

__all__ = ["JournalError", "TornTolerantJournal", "repair"]

#: How every record Optuna's journal storage writes begins (``json.dumps(..., separators=(",", ":"))``).
_RECORD_START = b'{"op_code":'


class JournalError(QinnError):
    """A search journal cannot be read; the message names the file and the line."""


def _is_record(data: bytes) -> bool:
    try:
        return isinstance(json.loads(data), dict)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError
        return False


def _keep_torn(path: Path, torn: bytes) -> Path:
    """Write the bytes cut from ``path`` to a new ``<name>.torn-<UTC time>[-n]`` beside it."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    for n in range(1000):
        backup = path.with_name(f"{path.name}.torn-{stamp}" + (f"-{n}" if n else ""))
        if not backup.exists():
            atomic_write(backup, lambda fh: fh.write(torn))
            return backup
    raise JournalError(f"{path}: cannot keep its torn record: 1000 backups named {path.name}.torn-{stamp}-* exist")


def _mend_glued(path: Path, data: bytes) -> tuple[bytes, bytes, int]:
    """``(mended data, dropped bytes, lines mended)``: every complete line that is not a record but
    ends in one (a torn record with the next record appended onto it) keeps that whole record."""
    lines = data.split(b"\n")
    body, tail = lines[:-1], lines[-1]  # the tail (after the last line end) is handled by repair
    dropped, mended = [], 0
    for i, line in enumerate(body):
        if not line.strip() or _is_record(line):
            continue
        start = line.rfind(_RECORD_START)
        while start > 0 and not _is_record(line[start:]):
            start = line.rfind(_RECORD_START, 0, start)
        if start <= 0:
            raise JournalError(f"{path}, line {i + 1}: not a journal record ({len(line)} bytes that are not JSON); "
                               f"the study cannot be read past it: move {path.name} aside to start the search afresh")
        prefix, body[i] = line[:start], line[start:]
        if _is_record(prefix):  # a whole record that only lacked its line end: keep both
            body[i] = prefix + b"\n" + body[i]
        else:
            dropped.append(prefix)
        mended += 1
    if not mended:
        return data, b"", 0
    return b"\n".join([*body, tail]), b"\n".join(dropped), mended


def repair(path: str | os.PathLike) -> str | None:
    """Make the journal ``path`` end with a complete record (module docstring); return what was
    done, in words, or None if nothing needed doing. Call it holding the journal's lock."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return None
    if size == 0:
        return None
    data = path.read_bytes()
    notes = []
    mended, glued, n_glued = _mend_glued(path, data)
    if n_glued:
        backup = _keep_torn(path, glued) if glued else None
        atomic_write(path, lambda fh: fh.write(mended))
        kept = f" ({len(glued)} torn bytes kept in {backup.name})" if backup else " (nothing lost)"
        notes.append(f"{n_glued} record(s) written onto a torn one were separated from it{kept}")
        data = mended
    if not data.endswith(b"\n"):
        cut = data.rfind(b"\n") + 1
        tail = data[cut:]
        with open(path, "r+b") as fh:
            if _is_record(tail):  # the record is whole; only its line end is missing
                fh.seek(0, os.SEEK_END)
                fh.write(b"\n")
                notes.append("its last record lacked its line end, which was added (nothing lost)")
            else:
                backup = _keep_torn(path, tail)
                fh.truncate(cut)
                notes.append(f"its last record was torn (an interrupted write: {len(tail)} bytes), cut back to the "
                             f"last complete record; the torn bytes are kept in {backup.name}")
            fh.flush()
            os.fsync(fh.fileno())
    return "; ".join(notes) or None


def _ends_a_line(path: str) -> bool:
    """Whether ``path`` is empty or ends with a line end (one byte read: checked before every append)."""
    with open(path, "rb") as fh:
        if fh.seek(0, os.SEEK_END) == 0:
            return True
        fh.seek(-1, os.SEEK_END)
        return fh.read(1) == b"\n"


class TornTolerantJournal(JournalFileBackend):
    """Optuna's ``JournalFileBackend`` that repairs a torn tail on opening and before each append,
    and undoes an append that fails part-way. ``repaired``: what opening repaired (or None)."""

    def __init__(self, file_path: str | os.PathLike, lock_obj: Any = None) -> None:
        super().__init__(str(file_path), lock_obj)
        with get_lock_file(self._lock):
            self.repaired = repair(self._file_path)

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        data = ("\n".join(json.dumps(log, separators=(",", ":")) for log in logs) + "\n").encode("utf-8")
        with get_lock_file(self._lock):
            if not _ends_a_line(self._file_path):  # torn by another process since we opened it
                repair(self._file_path)
            start = os.path.getsize(self._file_path)
            try:
                with open(self._file_path, "ab") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
            except BaseException:
                try:  # leave no torn tail behind: the records were not written
                    os.truncate(self._file_path, start)
                except OSError:
                    pass  # the next open repairs it
                raise
