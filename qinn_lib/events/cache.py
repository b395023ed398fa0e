"""The event cache: every sample a run uses, generated or parsed once and kept on disk.

- :func:`load_events`: the Pythia sample of ``(n_events, seed)``, generated on first use
  (:mod:`qinn_lib.events.pythia`) and cached in ``data/`` (or ``$QINN_DATA_DIR``) as
  ``zjets_pythia_n{n}_seed{seed}.npz`` plus a ``.json`` record of its metadata and fingerprint;
- :func:`load_lhe_events`: a user's LHE file (:mod:`qinn_lib.events.lhe`), cached under the
  sha256 of the file's bytes, since parsing takes about 20 s per 100k events and every notebook
  loads the sample again: an edited file is a new sample, a renamed or moved one is found again;
- :func:`load_sample`: the events a run uses, the Pythia sample or (a run's ``lhe_file``) the
  first ``n_events`` events of an LHE file that pass the cuts; a file with fewer is an error
  (:func:`check_lhe_count`), never a smaller sample in silence.

Cache files are written atomically, and a cache that fails verification (unreadable, wrong
shape, fingerprint mismatch) raises :class:`~qinn_lib.events.sample.DataError` saying how to
regenerate it, so a damaged cache is never used silently.

The rest of the events: cuts and splits in :mod:`qinn_lib.events.sample`, a user's own feature
arrays in :mod:`qinn_lib.events.feature_files`, the command line ``python -m qinn_lib.events`` in
:mod:`qinn_lib.events.cli`.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import zipfile
import zlib
from pathlib import Path
from typing import Any, Callable

import numpy as np

from qinn_lib import paths
from qinn_lib.atomic import atomic_write, check_writable
from qinn_lib.events.lhe import lhe_path, read_lhe
from qinn_lib.events.observables import FEATURES, N_FEATURES
from qinn_lib.events.pythia import check_n_seed, generate_events
from qinn_lib.events.sample import DataError, EventSample

_CACHE_FORMAT = 1


# --------------------------------------------------------------------------------------------
# cache
# --------------------------------------------------------------------------------------------
def cache_paths(n_events: int, seed: int, cache_dir: str | os.PathLike | None = None) -> tuple[Path, Path]:
    """``(npz, json)`` paths of the cached sample for ``(n_events, seed)``."""
    folder = Path(cache_dir) if cache_dir is not None else paths.data_dir()
    stem = f"zjets_pythia_n{int(n_events)}_seed{int(seed)}"
    return folder / f"{stem}.npz", folder / f"{stem}.json"


def _atomic_write(path: Path, write: Callable[[Any], None]) -> None:
    """:func:`qinn_lib.atomic.atomic_write`, with an OS failure reported as a DataError naming the file."""
    try:
        atomic_write(path, write)
    except OSError as exc:
        raise DataError(f"cannot write {path}: {exc}") from exc


def _ensure_dir(folder: Path) -> None:
    """Check, before generating anything, that the cache can be written (a read-only cache is fine
    as long as it already holds the sample)."""
    try:
        check_writable(folder, "event cache folder",
                       "pass cache_dir=... (or --cache-dir, or set QINN_DATA_DIR) to a writable folder")
    except OSError as exc:
        raise DataError(str(exc)) from None


def _write_cache(npz: Path, js: Path, features: np.ndarray, meta: dict, fp: str) -> None:
    _atomic_write(npz, lambda fh: np.savez(fh, features=features))
    record = {"format": _CACHE_FORMAT, "fingerprint": fp, "shape": list(features.shape),
              "features": list(FEATURES), "meta": meta}
    _atomic_write(js, lambda fh: fh.write(json.dumps(record, indent=2).encode()))


def _read_cache(npz: Path, js: Path, n_events: int, seed: int) -> EventSample:
    hint = (f"delete it, or regenerate with load_events(n_events={n_events}, seed={seed}, "
            f"regenerate=True) / `python -m qinn_lib.events --n-events {n_events} --seed {seed} --regenerate`")
    if not js.is_file():
        raise DataError(f"event cache {npz} has no metadata record {js.name} (interrupted write?); {hint}")
    try:
        record = json.loads(js.read_text())
        fp_stored, meta = str(record["fingerprint"]), dict(record["meta"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"event cache metadata {js} is unreadable ({exc!r}); {hint}") from None
    try:
        with np.load(npz, allow_pickle=False) as f:
            features = np.array(f["features"])
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise DataError(f"event cache {npz} is corrupted or truncated ({exc!r}); {hint}") from None
    if features.shape != (n_events, N_FEATURES) or features.dtype != np.float64:
        raise DataError(
            f"event cache {npz} holds an array of shape {features.shape} and dtype {features.dtype}, "
            f"expected ({n_events}, {N_FEATURES}) float64; {hint}"
        )
    sample = EventSample.from_array(features, meta)
    if sample.fingerprint != fp_stored:
        raise DataError(
            f"event cache {npz} does not match its record {js.name} (fingerprint {sample.fingerprint} "
            f"!= {fp_stored}); {hint}"
        )
    return sample


def load_events(n_events: int = 100_000, seed: int = 1234, *, cache_dir: str | os.PathLike | None = None,
                progress: bool = False, regenerate: bool = False) -> EventSample:
    """The Pythia sample for ``(n_events, seed)``, generated on first use and cached.

    The cache lives in ``cache_dir`` (default :func:`qinn_lib.paths.data_dir`, i.e. ``data/`` or
    ``$QINN_DATA_DIR``) as ``zjets_pythia_n{n}_seed{seed}.npz`` plus a ``.json`` record. A cache
    that fails verification (unreadable, wrong shape, fingerprint mismatch) raises
    :class:`DataError`; ``regenerate=True`` overwrites it.
    """
    n_events, seed = check_n_seed(n_events, seed)
    npz, js = cache_paths(n_events, seed, cache_dir)
    if npz.exists() and not regenerate:
        t0 = time.perf_counter()
        sample = _read_cache(npz, js, n_events, seed)
        sample.meta.update(cache_file=str(npz), loaded_from_cache=True,
                           load_seconds=time.perf_counter() - t0)
        return sample
    _ensure_dir(npz.parent)
    features, meta = generate_events(n_events, seed, progress=progress)
    sample = EventSample.from_array(features, meta)
    _write_cache(npz, js, features, meta, sample.fingerprint)
    sample.meta.update(cache_file=str(npz), loaded_from_cache=False)
    return sample


def load_lhe_events(path: str | os.PathLike, *, cache_dir: str | os.PathLike | None = None,
                    use_cache: bool = True) -> EventSample:
    """:func:`read_lhe` split into train/val/test like the Pythia sample.

    Parsing a large LHE file takes a while (about 20 s per 100k events), and every notebook loads
    the sample again, so the features are cached in ``cache_dir`` (default
    :func:`qinn_lib.paths.data_dir`) under the sha256 of the file's bytes: an edited file is a
    new sample, and a renamed or moved one is found again."""
    path = lhe_path(path)
    if not use_cache:
        features, meta = read_lhe(path)
        return EventSample.from_array(features, meta)
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    folder = Path(cache_dir) if cache_dir is not None else paths.data_dir()
    npz, js = folder / f"lhe_{h.hexdigest()[:16]}.npz", folder / f"lhe_{h.hexdigest()[:16]}.json"
    if npz.exists():
        t0 = time.perf_counter()
        record = {}
        try:
            record = json.loads(js.read_text())
            with np.load(npz, allow_pickle=False) as f:
                features = np.array(f["features"])
            sample = EventSample.from_array(features, record["meta"])
        except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile, zlib.error):
            sample = None  # a damaged cache of a file we still have: parse the file again
        if sample is not None and sample.fingerprint == record.get("fingerprint"):
            sample.meta.update(source=str(path.resolve()), cache_file=str(npz), loaded_from_cache=True,
                               load_seconds=time.perf_counter() - t0)
            return sample
    features, meta = read_lhe(path)
    sample = EventSample.from_array(features, meta)
    _ensure_dir(folder)
    _write_cache(npz, js, features, meta, sample.fingerprint)
    sample.meta.update(cache_file=str(npz), loaded_from_cache=False)
    return sample


def check_lhe_count(path: str | os.PathLike, n_available: int, n_events: int) -> None:
    """Refuse to run on fewer events than asked for: a file with ``n_available`` events passing
    the cuts cannot give ``n_events`` (a run would silently train on fewer and report numbers of
    another sample size). Raises :class:`DataError` naming the file and both counts."""
    if int(n_events) > int(n_available):
        raise DataError(
            f"LHE file {path}: {int(n_available):,} events pass the cuts, fewer than the {int(n_events):,} asked for "
            f"(n_events, after the profile's cap); set n_events to at most {int(n_available)} "
            f"(e.g. -p all n_events {int(n_available)}) or use a larger file"
        )


def lhe_events_available(path: str | os.PathLike) -> int:
    """How many events of the LHE file pass the cuts (parsed once, then cached: :func:`load_lhe_events`)."""
    return load_lhe_events(path).n_events


def load_sample(n_events: int, seed: int, *, lhe_file: str | os.PathLike = "", progress: bool = False) -> EventSample:
    """The events a run uses: the Pythia sample of ``(n_events, seed)`` (:func:`load_events`), or,
    with ``lhe_file``, the first ``n_events`` events of that LHE file that pass the cuts (``seed``
    is then unused), split like the Pythia sample; a file with fewer is an error naming it and
    both counts (:func:`check_lhe_count`). The sample's fingerprint identifies exactly the events
    used, so checkpoints and results records carry it."""
    if not lhe_file:
        return load_events(n_events, seed, progress=progress)
    if isinstance(n_events, bool) or not isinstance(n_events, (int, np.integer)) or n_events < 1:
        raise ValueError(f"n_events must be a positive integer, got {n_events!r}")
    full = load_lhe_events(lhe_file)
    events = full.all()
    check_lhe_count(lhe_file, len(events), n_events)
    n = int(n_events)
    meta = dict(full.meta, n_available=int(len(events)), n_used=n)
    return EventSample.from_array(events[:n], meta)
