"""Checkpoints and run folders: the files a training run leaves behind and who may write them.

``run_dir/checkpoint.pt`` is rewritten atomically after every epoch (temp file in the same folder,
fsync, ``os.replace``), holds only tensors and plain Python types, and is always read with
``torch.load(..., weights_only=True)``. Loading is strict: the stored configuration must equal the
requested one in every field except ``profile``, and the data fingerprint must match.

Integrity: torch does not verify a checkpoint's zip checksums, so a flipped byte inside a weight
would load silently and produce wrong published numbers. Every checkpoint therefore has its sha256
in ``checkpoint.pt.sha256`` beside it (``sha256sum`` format), verified before the file is
unpickled; a mismatch is a :class:`CheckpointError` naming the file. The new hash is recorded
(next to the current file's) before the file is replaced, so a crash between the two writes leaves
a consistent pair. Checkpoints written before hashes were stored are checked against their zip
entries' CRC-32 instead.

Run folders: training holds a lock (``run_dir/.lock``, ``filelock``) while it trains, so a second
process training the same run folder stops at once with :class:`RunFolderLocked` naming the
folder; and the folder's writability is checked before the first epoch, not after it. Reloading a
finished run takes no lock (nothing is written), so it works while another process holds it.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch

from qinn_lib.atomic import atomic_write, atomic_write_text, check_writable
from qinn_lib.errors import QinnError

CHECKPOINT_NAME = "checkpoint.pt"
#: Suffix of the file holding a checkpoint's sha256 (``checkpoint.pt.sha256``).
DIGEST_SUFFIX = ".sha256"
#: The lock file a training process holds in its run folder.
LOCK_NAME = ".lock"
#: Bumped whenever the checkpoint layout changes; older files are refused with a clear message.
FORMAT_VERSION = 1
#: Config fields that may differ between a checkpoint and the run that resumes it.
#: Config fields that may differ between a checkpoint and the run that resumes it. ``lhe_file``
#: names where the events came from; the events themselves are checked by the data fingerprint.
_IGNORED_CFG_FIELDS = frozenset({"profile", "lhe_file"})
_REQUIRED_KEYS = (
    "format_version", "model", "optimizer", "scheduler", "epoch", "history", "cfg", "cfg_kind",
    "data_fingerprint", "extra_state", "steps_per_epoch",
)


class CheckpointError(QinnError, RuntimeError):
    """A checkpoint is missing, unreadable, or belongs to a different run; the message names the file."""


class RunFolderLocked(QinnError, RuntimeError):
    """Another process is training the same run folder; the message names the folder."""


def check_plain(obj: Any, where: str) -> None:
    """Refuse anything ``torch.load(weights_only=True)`` could not read back."""
    # Exact types: a str/int subclass (e.g. torch.__version__, a TorchVersion) pickles as its own
    # class, which weights_only loading refuses.
    if obj is None or type(obj) in (bool, int, float, str) or isinstance(obj, torch.Tensor):
        return
    if type(obj) in (list, tuple):
        for i, v in enumerate(obj):
            check_plain(v, f"{where}[{i}]")
        return
    if type(obj) in (dict, OrderedDict):  # state_dicts are OrderedDicts (allowed by weights_only)
        for k, v in obj.items():
            if type(k) not in (str, int):
                raise TypeError(f"checkpoint entry {where} has a key of type {type(k).__name__}; use str or int keys")
            check_plain(v, f"{where}[{k!r}]")
        return
    raise TypeError(
        f"checkpoint entry {where} has type {type(obj).__module__}.{type(obj).__name__}; only tensors, "
        "dicts, lists and plain numbers/strings can be stored (convert numpy arrays with .tolist() or "
        "torch.as_tensor)"
    )


def digest_path(path: str | os.PathLike) -> Path:
    """Where the sha256 of checkpoint ``path`` is stored."""
    path = Path(path)
    return path.with_name(path.name + DIGEST_SUFFIX)


def _recorded_digests(path: Path) -> list[str] | None:
    """The hex digests listed in ``path``'s digest file (current first); ``None`` if there is no
    such file, ``[]`` if it is unreadable."""
    sidecar = digest_path(path)
    try:
        text = sidecar.read_text(encoding="ascii")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError):
        return []
    digests = [line.split()[0].lower() for line in text.splitlines() if line.strip()]
    return [d for d in digests if len(d) == 64 and all(c in "0123456789abcdef" for c in d)]


def _zip_crc_failure(blob: bytes) -> str | None:
    """The first zip entry whose CRC-32 does not match (a pre-hash checkpoint's own check)."""
    try:
        with zipfile.ZipFile(io.BytesIO(blob)) as zf:
            return zf.testzip()
    except Exception:  # not a zip at all: torch.load reports that, naming the file
        return None


def _verified_bytes(path: Path) -> bytes:
    """The bytes of checkpoint ``path``, verified against its recorded sha256 (or, for a checkpoint
    written before hashes were stored, against its zip CRCs). Raises CheckpointError."""
    if path.is_dir():
        raise CheckpointError(f"checkpoint {path} is a folder, not a file")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        blob = path.read_bytes()
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc.strerror or exc}") from None
    recorded = _recorded_digests(path)
    sidecar = digest_path(path).name
    if recorded is None:
        bad_entry = _zip_crc_failure(blob)
        if bad_entry is not None:
            raise CheckpointError(f"checkpoint {path} is corrupted (CRC mismatch in {bad_entry}); delete it "
                                  "to start the run afresh")
        return blob
    if not recorded:
        raise CheckpointError(f"the checksum file {sidecar} beside checkpoint {path} is unreadable; delete "
                              f"both to start the run afresh")
    actual = hashlib.sha256(blob).hexdigest()
    if actual not in recorded:
        raise CheckpointError(
            f"checkpoint {path} does not match the sha256 recorded in {sidecar} ({actual[:12]}... vs "
            f"{recorded[0][:12]}...): it was changed or corrupted after it was written, so its weights cannot "
            f"be trusted; delete {path.name} and {sidecar} to start the run afresh"
        )
    return blob


def _digest_text(digests: list[str], name: str) -> str:
    return "".join(f"{d}  {name}\n" for d in digests)


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Write ``state`` to ``path`` atomically (a temp file in the same folder, flushed and fsynced,
    then ``os.replace``), with its sha256 in ``path.sha256``. A crash, an exception or a full disk
    mid-write leaves the previous checkpoint intact and loadable; a write failure is a
    :class:`CheckpointError` naming the file."""
    path = Path(path)
    check_plain(state, "checkpoint")
    buf = io.BytesIO()
    torch.save(state, buf)
    blob = buf.getvalue()
    digest = hashlib.sha256(blob).hexdigest()
    sidecar = digest_path(path)
    previous: list[str] = []
    if path.exists():
        try:
            previous = [hashlib.sha256(_verified_bytes(path)).hexdigest()]
        except CheckpointError:
            previous = []  # the file being replaced is broken: nothing to keep valid
    try:
        # 1. record the new hash beside the current file's, 2. replace the file, 3. drop the old hash.
        # Interrupted anywhere, the file on disk matches one of the recorded hashes.
        atomic_write_text(sidecar, _digest_text([digest, *[p for p in previous if p != digest]], path.name))
        atomic_write(path, lambda fh: fh.write(blob))
        if previous and previous != [digest]:
            atomic_write_text(sidecar, _digest_text([digest], path.name))
    except OSError as exc:
        kept = "the previous checkpoint is intact; " if path.exists() else ""
        raise CheckpointError(
            f"cannot write checkpoint {path}: {exc.strerror or exc}; {kept}free space or make the folder writable "
            "(or set QINN_RUNS_DIR), then run again to resume"
        ) from None
    return path


def _cfg_differences(stored: dict[str, Any], expected: dict[str, Any]) -> list[str]:
    diffs = []
    for name in sorted(set(stored) | set(expected)):
        if name in _IGNORED_CFG_FIELDS:
            continue
        a = stored.get(name, "<absent>")
        b = expected.get(name, "<absent>")
        if a != b:
            diffs.append(f"{name}: checkpoint {a!r} vs requested {b!r}")
    return diffs


def load_checkpoint(path: str | os.PathLike, *, expected_cfg: Any = None,
                    expected_fingerprint: str | None = None) -> dict[str, Any]:
    """Read a checkpoint written by :func:`train` (``weights_only=True``) and validate it.

    Raises :class:`CheckpointError` naming ``path`` if the file is missing, unreadable or truncated,
    does not match its recorded sha256 (a flipped byte), of another format version, lacks entries, was written for a different configuration (every
    field except ``profile`` must match; the message lists each differing field with both values),
    or for different data (``expected_fingerprint``).
    """
    path = Path(path)
    blob = _verified_bytes(path)
    try:
        ckpt = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated zip, garbage bytes, disallowed pickle globals, ...
        raise CheckpointError(
            f"checkpoint {path} is corrupted or not a plain checkpoint ({type(exc).__name__}: {exc}); "
            "delete it to start the run afresh"
        ) from exc
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"checkpoint {path} does not hold a dict (got {type(ckpt).__name__})")
    version = ckpt.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {path} has format version {version!r}, this code reads version {FORMAT_VERSION}"
        )
    missing = [k for k in _REQUIRED_KEYS if k not in ckpt]
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks entries {missing}")
    if expected_cfg is not None:
        if ckpt["cfg_kind"] != expected_cfg.kind:
            raise CheckpointError(
                f"checkpoint {path} belongs to a {ckpt['cfg_kind']!r} run, not a {expected_cfg.kind!r} run"
            )
        diffs = _cfg_differences(ckpt["cfg"], expected_cfg.to_dict())
        if diffs:
            raise CheckpointError(
                f"checkpoint {path} was written with a different configuration: " + "; ".join(diffs)
                + ". Use another run directory, or delete the checkpoint to retrain"
            )
    if expected_fingerprint is not None and ckpt["data_fingerprint"] != expected_fingerprint:
        raise CheckpointError(
            f"checkpoint {path} was trained on different data: fingerprint {ckpt['data_fingerprint']!r} "
            f"vs requested {expected_fingerprint!r}"
        )
    return ckpt


def load_model_state(model: torch.nn.Module, ckpt: dict[str, Any], path: Path) -> None:
    try:
        model.load_state_dict(ckpt["model"])
    except (RuntimeError, KeyError, ValueError) as exc:
        raise CheckpointError(f"checkpoint {path} does not fit this model: {exc}") from exc


def load_trained(model: torch.nn.Module, path: str | os.PathLike, expected_cfg: Any = None,
                 expected_fingerprint: str | None = None) -> dict[str, Any]:
    """Load the weights stored at ``path`` into ``model`` (validated as in :func:`load_checkpoint`)
    and return the checkpoint dict (history, cfg, extra_state, ...)."""
    path = Path(path)
    ckpt = load_checkpoint(path, expected_cfg=expected_cfg, expected_fingerprint=expected_fingerprint)
    load_model_state(model, ckpt, path)
    return ckpt



# -- run folders -----------------------------------------------------------------------------------
@contextlib.contextmanager
def claimed(run_dirs: list[Path], cfgs: list[Any], data_fingerprint: str, resume: bool):
    """``with claimed(run_dirs, cfgs, data_fingerprint, resume):`` hold the lock of every run folder while training in it (:class:`RunFolderLocked` if another
    process holds one), after checking each folder is writable -- before the first epoch, not after.
    A finished run (``resume``) is reloaded without either: nothing is written."""
    from filelock import FileLock, Timeout

    with contextlib.ExitStack() as stack:
        for run_dir, cfg in zip(run_dirs, cfgs):
            # A finished run is only read (its checkpoint is replaced atomically and verified by its
            # sha256), so it needs neither the lock nor a writable folder. Reloading took the lock too,
            # so two processes reloading one finished run (two notebooks, a kernel and the reports
            # runner) refused the second at once (issue 24, case 14).
            if resume and _is_complete(run_dir / CHECKPOINT_NAME, cfg, data_fingerprint):
                continue
            check_writable(run_dir, "run folder", "set QINN_RUNS_DIR to a writable folder")
            lock = FileLock(run_dir / LOCK_NAME)
            try:
                lock.acquire(timeout=0)
            except Timeout:
                raise RunFolderLocked(
                    f"run folder {run_dir} is being trained by another process (it holds {lock.lock_file}); wait "
                    "for that process to finish (this run then reloads its result), or stop it and run again to resume"
                ) from None
            stack.callback(lock.release)
        yield


def _is_complete(ckpt_path: Path, cfg: Any, data_fingerprint: str) -> bool:
    if not ckpt_path.is_file():
        return False
    ckpt = load_checkpoint(ckpt_path, expected_cfg=cfg, expected_fingerprint=data_fingerprint)
    return int(ckpt["epoch"]) >= int(cfg.epochs)
