"""An event sample: the paper's generator-level cuts, the train/val/test split, its fingerprint.

- :data:`CUTS`, :func:`passes_cuts`: the cuts of sec. 4, ``15 < pT_l < 150`` GeV for both
  leptons, ``|eta_l| < 4.5`` and ``E_Z = E_l+ + E_l- < 1900`` GeV, with massless leptons
  (``E = pT cosh(eta)``, see :mod:`qinn_lib.events.observables`); all inequalities are strict.
- :data:`SPLIT_FRACTIONS`, :func:`split_sizes`, :class:`EventSample`: the split of sec. 4,
  37.5% / 12.5% / 50%. The first 37.5% of the events are the training split, the next 12.5%
  validation, the rest test. Generated events are i.i.d., so a contiguous split is as random as a
  shuffled one and needs no extra seed.
- :func:`fingerprint`: the sha256 of the events. Checkpoints and results records carry it, so a
  run is never resumed, reloaded or compared on other events than it was trained on.
- :class:`DataError`: a data file (cache, LHE, user array) is missing, corrupted or unusable.

Every source of events (:mod:`~qinn_lib.events.pythia`, :mod:`~qinn_lib.events.lhe`, the cache
:mod:`~qinn_lib.events.cache`) ends in an :class:`EventSample`.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field

import numpy as np

from qinn_lib.errors import QinnError
from qinn_lib.events.observables import N_FEATURES

#: Fractions of (train, validation, test), sec. 4 of the paper.
SPLIT_FRACTIONS: tuple[float, float, float] = (0.375, 0.125, 0.5)
SPLIT_NAMES: tuple[str, str, str] = ("train", "val", "test")

#: Generator-level cuts of the paper (sec. 4). All inequalities are strict.
CUTS: dict[str, float] = {"pt_min": 15.0, "pt_max": 150.0, "abs_eta_max": 4.5, "e_z_max": 1900.0}


class DataError(QinnError, ValueError):
    """A data file (cache, LHE, user array) is missing, corrupted or unusable; names the file."""


# --------------------------------------------------------------------------------------------
# cuts and splits
# --------------------------------------------------------------------------------------------
def passes_cuts(features: np.ndarray) -> np.ndarray:
    """Boolean mask of events passing :data:`CUTS` (massless leptons: ``E = pT cosh(eta)``)."""
    x = np.asarray(features, dtype=np.float64)
    pt, eta = x[:, 0:2], x[:, 3:5]
    e_z = (pt * np.cosh(eta)).sum(axis=1)
    return (
        (pt > CUTS["pt_min"]).all(axis=1)
        & (pt < CUTS["pt_max"]).all(axis=1)
        & (np.abs(eta) < CUTS["abs_eta_max"]).all(axis=1)
        & (e_z < CUTS["e_z_max"])
    )


def split_sizes(n: int) -> tuple[int, int, int]:
    """``(n_train, n_val, n_test)``: floor of 37.5% and 12.5%, the rest is test."""
    n_train = int(math.floor(n * SPLIT_FRACTIONS[0]))
    n_val = int(math.floor(n * SPLIT_FRACTIONS[1]))
    return n_train, n_val, n - n_train - n_val


def fingerprint(*arrays: np.ndarray) -> str:
    """sha256 of the arrays' float64 little-endian bytes in order (= of their concatenation), 16 hex."""
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a, dtype="<f8").tobytes())
    return h.hexdigest()[:16]


@dataclass
class EventSample:
    """Train/validation/test splits of ``(N, 5)`` float64 features (columns :data:`FEATURES`)."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    meta: dict = field(default_factory=dict)
    fingerprint: str = ""

    @classmethod
    def from_array(cls, events: np.ndarray, meta: dict | None = None) -> "EventSample":
        """Split ``events`` contiguously by :data:`SPLIT_FRACTIONS` (no shuffle; events are i.i.d.)."""
        x = np.ascontiguousarray(events, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != N_FEATURES:
            raise ValueError(f"EventSample.from_array: expected shape (N, {N_FEATURES}), got {x.shape}")
        n_train, n_val, _ = split_sizes(len(x))
        train, val, test = x[:n_train], x[n_train:n_train + n_val], x[n_train + n_val:]
        return cls(train=train.copy(), val=val.copy(), test=test.copy(), meta=dict(meta or {}),
                   fingerprint=fingerprint(train, val, test))

    def all(self) -> np.ndarray:
        """All events in their original order (train, val, test concatenated)."""
        return np.concatenate([self.train, self.val, self.test], axis=0)

    def split(self, name: str) -> np.ndarray:
        if name not in SPLIT_NAMES:
            raise KeyError(f"unknown split {name!r}; choose one of {SPLIT_NAMES}")
        return getattr(self, name)

    @property
    def n_events(self) -> int:
        return len(self.train) + len(self.val) + len(self.test)

    def __repr__(self) -> str:
        return (f"EventSample(train={len(self.train)}, val={len(self.val)}, test={len(self.test)}, "
                f"fingerprint={self.fingerprint!r}, source={self.meta.get('generator', '?')!r})")
