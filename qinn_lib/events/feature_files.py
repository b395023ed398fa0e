"""A user's own ``(N, 5)`` feature array from a ``.npy``, ``.npz`` or ``.csv`` file.

:func:`load_features_file` is for events that come from neither Pythia nor an LHE file. The
columns must be the five features in :data:`~qinn_lib.events.observables.FEATURES` order and in
physical units (a CSV header, if any, must name them in that order). No cuts are applied. A file
of the wrong shape or type, or with NaN/inf, raises :class:`~qinn_lib.events.sample.DataError`
naming the file.
"""

from __future__ import annotations

import os
import zipfile
import zlib
from pathlib import Path

import numpy as np

from qinn_lib.events.observables import FEATURES, N_FEATURES
from qinn_lib.events.sample import DataError


def _read_csv(path: Path) -> np.ndarray:
    with open(path) as fh:
        first = fh.readline()
    tokens = [t.strip() for t in first.split(",")]
    try:
        [float(t) for t in tokens]
        header = False
    except ValueError:
        header = True
        if tuple(tokens) != FEATURES:
            raise DataError(
                f"{path}: CSV header {tokens} does not match the expected columns {list(FEATURES)} "
                "(give them in this order, or no header)"
            ) from None
    return np.loadtxt(path, delimiter=",", skiprows=1 if header else 0, ndmin=2, dtype=np.float64)


def load_features_file(path: str | os.PathLike) -> np.ndarray:
    """A user's own ``(N, 5)`` feature array from ``.npy``, ``.npz`` (key ``features`` or a single
    array) or ``.csv`` (comma separated, optional header ``pt_lp,pt_lm,dphi_ll,eta_lp,eta_lm``).

    Columns must be in :data:`FEATURES` order and physical units; no cuts are applied.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"feature file {path} does not exist")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            arr = np.load(path, allow_pickle=False)
        elif suffix == ".npz":
            with np.load(path, allow_pickle=False) as f:
                keys = list(f.keys())
                if "features" in keys:
                    arr = np.array(f["features"])
                elif len(keys) == 1:
                    arr = np.array(f[keys[0]])
                else:
                    raise DataError(f"{path}: found arrays {keys}; name the feature array 'features'")
        elif suffix in (".csv", ".txt"):
            arr = _read_csv(path)
        else:
            raise DataError(f"{path}: unsupported file type {suffix!r}; use .npy, .npz or .csv")
    except DataError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise DataError(f"cannot read feature file {path}: {exc}") from None
    if arr.dtype.kind not in "fiu":
        raise DataError(f"{path}: expected a numeric array, got dtype {arr.dtype}")
    if arr.ndim != 2 or arr.shape[1] != N_FEATURES:
        raise DataError(
            f"{path}: expected an array of shape (N, {N_FEATURES}) with columns {list(FEATURES)}, "
            f"got shape {arr.shape}"
        )
    arr = np.ascontiguousarray(arr, dtype=np.float64)
    finite = np.isfinite(arr)
    if not finite.all():
        cols = [FEATURES[j] for j in range(N_FEATURES) if not finite[:, j].all()]
        raise DataError(
            f"{path}: {int((~finite.all(axis=1)).sum())} rows of shape {arr.shape} contain NaN or inf "
            f"(column(s) {cols})"
        )
    return arr
