"""pp -> Z j -> l+ l- j events (sec. 4, eq. 23): generation with Pythia 8, cuts, splits, cache.

The paper simulates 100k events with MadGraph5 at leading order. We generate the same process
with Pythia 8's built-in LO 2 -> 2 matrix elements (``q qbar -> Z g`` and ``q g -> Z q``) at
*parton level* (no shower, no hadronisation, no MPI): every event is exactly l+ l- plus one parton.
Differences to the paper's setup, stated so nobody is surprised:

* pure Z exchange (``WeakZ0:gmZmode = 2``, no gamma*/interference), Z -> e+e- or mu+mu-;
* the hard process needs a jet threshold; we use ``PhaseSpace:pTHatMin = 20`` GeV;
* Pythia's default PDF set and scales instead of MadGraph's run card.

The paper's generator-level cuts are applied to every event (:data:`CUTS`, :func:`passes_cuts`):
``15 < pT_l < 150`` GeV for both leptons, ``|eta_l| < 4.5`` and ``E_Z = E_l+ + E_l- < 1900`` GeV,
with massless leptons (see :mod:`qinn_lib.observables`). Events are generated until the requested
number pass.

Split (:data:`SPLIT_FRACTIONS`, 37.5% / 12.5% / 50% as in the paper): the first 37.5% of the events
are the training split, the next 12.5% validation, the rest test. Generated events are i.i.d., so
a contiguous split is as random as a shuffled one and needs no extra seed.

Users can bring their own events: :func:`read_lhe` / :func:`load_lhe_events` (e.g. MadGraph
output, as in the paper) and :func:`load_features_file` (an ``.npy``/``.npz``/``.csv`` array).

Command line: ``python -m qinn_lib.data --n-events 100000 --seed 1234 [--lhe FILE] [--regenerate]``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
import time
import warnings
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from . import paths
from .atomic import atomic_write, check_writable
from .errors import QinnError, add_debug_option, run_cli
from .observables import FEATURES, N_FEATURES, features_from_momenta

#: Fractions of (train, validation, test), sec. 4 of the paper.
SPLIT_FRACTIONS: tuple[float, float, float] = (0.375, 0.125, 0.5)
SPLIT_NAMES: tuple[str, str, str] = ("train", "val", "test")

#: Generator-level cuts of the paper (sec. 4). All inequalities are strict.
CUTS: dict[str, float] = {"pt_min": 15.0, "pt_max": 150.0, "abs_eta_max": 4.5, "e_z_max": 1900.0}

#: Pythia settings of the process (the seed settings are appended per run).
PROCESS_SETTINGS: tuple[str, ...] = (
    "Beams:eCM = 13000.",
    "WeakBosonAndParton:qqbar2gmZg = on",
    "WeakBosonAndParton:qg2gmZq = on",
    "WeakZ0:gmZmode = 2",          # pure Z, no gamma* and no interference
    "23:onMode = off",
    "23:onIfAny = 11 13",          # Z -> e+e-, mu+mu- (sigma includes this branching fraction)
    "PhaseSpace:pTHatMin = 20.",   # LO jet threshold of the hard 2 -> 2 process
    "PartonLevel:all = off",       # parton level: no shower / MPI
    "HadronLevel:all = off",       # no hadronisation
)

#: Settings that silence Pythia (banner, init listings, event listings, progress counter).
QUIET_SETTINGS: tuple[str, ...] = (
    "Print:quiet = on",
    "Init:showProcesses = off",
    "Init:showChangedSettings = off",
    "Init:showChangedParticleData = off",
    "Init:showMultipartonInteractions = off",
    "Next:numberCount = 0",
    "Next:numberShowEvent = 0",
    "Next:numberShowProcess = 0",
    "Next:numberShowInfo = 0",
    "Next:numberShowLHA = 0",
)

#: Pythia accepts seeds 1..900_000_000; 0 would mean "seed from the clock" (not reproducible).
SEED_RANGE: tuple[int, int] = (1, 900_000_000)

_MB_TO_PB = 1e9
_CHUNK = 2_000            # events per vectorised cut step; does not affect the result
_MAX_FAILED_NEXT = 100    # consecutive Pythia::next() failures before giving up
_CACHE_FORMAT = 1


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


# --------------------------------------------------------------------------------------------
# Pythia generation
# --------------------------------------------------------------------------------------------
def _check_n_seed(n_events: Any, seed: Any) -> tuple[int, int]:
    if isinstance(n_events, bool) or not isinstance(n_events, (int, np.integer)) or n_events < 1:
        raise ValueError(f"n_events must be a positive integer, got {n_events!r}")
    lo, hi = SEED_RANGE
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not lo <= seed <= hi:
        raise ValueError(
            f"seed must be an integer in [{lo}, {hi}] (Pythia's range; 0 would seed from the clock), "
            f"got {seed!r}"
        )
    return int(n_events), int(seed)


def pythia_settings(seed: int) -> list[str]:
    """Every setting string passed to Pythia for ``seed`` (stored in the metadata)."""
    return [*QUIET_SETTINGS, *PROCESS_SETTINGS, "Random:setSeed = on", f"Random:seed = {int(seed)}"]


def _package_version(name: str) -> str:
    try:
        from importlib.metadata import version

        return version(name)
    except Exception:  # metadata missing in odd installs: the version is informative only
        return "unknown"


def generate_events(n_events: int, seed: int, progress: bool = False) -> tuple[np.ndarray, dict]:
    """Generate events with Pythia 8 until ``n_events`` pass :data:`CUTS`.

    Returns ``(features, meta)``: float64 ``(n_events, 5)`` in :data:`FEATURES` order and a JSON-able
    record (settings, seed, counts, cut efficiency, cross-sections in pb, timing). The same seed
    gives bit-identical features.
    """
    n_events, seed = _check_n_seed(n_events, seed)
    import pythia8mc
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    settings = pythia_settings(seed)
    py = pythia8mc.Pythia("", False)  # False: no banner
    for s in settings:
        if not py.readString(s):
            raise RuntimeError(f"Pythia rejected the setting {s!r} (pythia8mc {_package_version('pythia8mc')})")
    if not py.init():
        raise RuntimeError("Pythia initialisation failed; settings were:\n  " + "\n  ".join(settings))

    kept: list[np.ndarray] = []
    kept_flavour: list[np.ndarray] = []
    n_kept = n_generated = n_no_pair = 0
    bar = tqdm(total=n_events, disable=not progress, unit="ev", desc="Pythia pp -> Z j")
    try:
        while n_kept < n_events:
            mom = np.empty((_CHUNK, 6))
            flav = np.empty(_CHUNK, dtype=np.int64)
            filled = 0
            failures = 0
            while filled < _CHUNK:
                if not py.next():
                    failures += 1
                    if failures > _MAX_FAILED_NEXT:
                        raise RuntimeError(f"Pythia::next() failed {failures} times in a row (seed {seed})")
                    continue
                failures = 0
                lp = lm = None
                ev = py.process  # hard-process record: with parton level off it is the whole event
                for i in range(ev.size()):
                    p = ev[i]
                    if not p.isFinal():
                        continue
                    pid = p.id()
                    if pid in (-11, -13):      # negative PDG id = antilepton = l+
                        lp = (p, pid) if lp is None else (None, 0)
                    elif pid in (11, 13):
                        lm = (p, pid) if lm is None else (None, 0)
                if lp is None or lm is None or lp[0] is None or lm[0] is None or lp[1] != -lm[1]:
                    n_no_pair += 1  # cannot happen for Z -> l+l- at parton level; counted to be sure
                    continue
                a, b = lp[0], lm[0]
                mom[filled] = (a.px(), a.py(), a.pz(), b.px(), b.py(), b.pz())
                flav[filled] = abs(lm[1])
                filled += 1
            feats = features_from_momenta(*mom.T)
            ok = np.flatnonzero(passes_cuts(feats))
            need = n_events - n_kept
            if len(ok) >= need:
                # The n-th passing event closes the sample; count generated events up to it only,
                # so n_passed / n_generated is an unbiased efficiency.
                n_generated += int(ok[need - 1]) + 1
                ok = ok[:need]
            else:
                n_generated += _CHUNK
            kept.append(feats[ok])
            kept_flavour.append(flav[ok])
            n_kept += len(ok)
            bar.update(len(ok))
    finally:
        bar.close()

    features = np.ascontiguousarray(np.concatenate(kept), dtype=np.float64)
    flavour = np.concatenate(kept_flavour)
    info = py.infoPython()
    sigma_pb = float(info.sigmaGen()) * _MB_TO_PB
    sigma_err_pb = float(info.sigmaErr()) * _MB_TO_PB
    eff = n_events / n_generated
    eff_err = math.sqrt(eff * (1.0 - eff) / n_generated)
    sigma_fid = sigma_pb * eff
    sigma_fid_err = math.hypot(sigma_err_pb * eff, sigma_pb * eff_err)
    if n_no_pair:
        warnings.warn(f"Pythia: {n_no_pair} events without exactly one l+ l- pair of one flavour were skipped")
    meta = {
        "generator": "Pythia 8",
        "version": f"{py.parm('Pythia:versionNumber'):.3f}",
        "pythia8mc_version": _package_version("pythia8mc"),
        "process": "pp -> Z j -> l+ l- j (l = e, mu), LO 2->2, parton level",
        "settings": settings,
        "seed": seed,
        "features": list(FEATURES),
        "cuts": dict(CUTS),
        "n_requested": n_events,
        "n_generated": n_generated,
        "n_passed": n_events,
        "n_no_lepton_pair": n_no_pair,
        "cut_efficiency": eff,
        "cut_efficiency_err": eff_err,
        "sigma_pb": sigma_pb,
        "sigma_err_pb": sigma_err_pb,
        "sigma_fiducial_pb": sigma_fid,
        "sigma_fiducial_err_pb": sigma_fid_err,
        "n_ee": int((flavour == 11).sum()),
        "n_mumu": int((flavour == 13).sum()),
        "seconds": time.perf_counter() - t0,
    }
    return features, meta


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
            f"regenerate=True) / `python -m qinn_lib.data --n-events {n_events} --seed {seed} --regenerate`")
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
    n_events, seed = _check_n_seed(n_events, seed)
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


# --------------------------------------------------------------------------------------------
# users' own samples
# --------------------------------------------------------------------------------------------
def _lhe_path(path: str | os.PathLike) -> Path:
    """``path`` as a Path, or a :class:`DataError` saying why it is no LHE file to read."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"LHE file {path} " + ("is a folder" if path.is_dir() else "does not exist"))
    return path


def read_lhe(path: str | os.PathLike) -> tuple[np.ndarray, dict]:
    """Features of the events in a Les Houches file (plain or gzipped), with the paper's cuts.

    Per event the final-state (status 1) charged leptons (|id| = 11, 13) must be exactly one l+ and
    one l- of the same flavour; other events are counted in ``meta["n_no_lepton_pair"]`` and reported
    with a warning. Event weights are not used (the features are an unweighted sample); a warning
    says so if the weights differ.
    """
    import xml.etree.ElementTree as ET

    import pylhe

    path = _lhe_path(path)
    t0 = time.perf_counter()
    mom: list[tuple[float, ...]] = []
    flav: list[int] = []
    weights: list[float] = []
    n_read = n_no_pair = 0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            lhe = pylhe.LHEFile.fromfile(path, with_attributes=False)
            init = lhe.init
            for event in lhe.events:
                n_read += 1
                weights.append(float(event.eventinfo.weight))
                plus = [p for p in event.particles if p.status == 1 and p.id in (-11, -13)]
                minus = [p for p in event.particles if p.status == 1 and p.id in (11, 13)]
                if len(plus) != 1 or len(minus) != 1 or plus[0].id != -minus[0].id:
                    n_no_pair += 1
                    weights[-1] = math.nan
                    continue
                a, b = plus[0], minus[0]
                mom.append((a.px, a.py, a.pz, b.px, b.py, b.pz))
                flav.append(abs(int(b.id)))
        except (ValueError, IndexError, TypeError, OSError, EOFError, ET.ParseError) as exc:
            raise DataError(f"LHE file {path} is malformed: {exc}") from None
    # pylhe reports XML errors (e.g. a truncated file) as a RuntimeWarning and stops reading.
    parse_errors = [str(w.message) for w in caught if "Parse Error" in str(w.message)]
    for w in caught:
        if str(w.message) not in parse_errors:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if parse_errors:
        raise DataError(
            f"LHE file {path} is malformed or truncated after {n_read} events ({parse_errors[0]})"
        )
    if n_read == 0:
        raise DataError(f"LHE file {path} contains no <event> blocks")
    if not mom:
        raise DataError(
            f"LHE file {path}: none of its {n_read} events has exactly one final-state l+ l- pair "
            "(e+e- or mu+mu-); is it a Z -> l+l- sample?"
        )
    if n_no_pair:
        warnings.warn(
            f"LHE file {path}: {n_no_pair} of {n_read} events have no final-state l+ l- pair of one "
            "flavour and were skipped", stacklevel=2,
        )
    momenta = np.asarray(mom, dtype=np.float64)
    try:
        feats = features_from_momenta(*momenta.T)
    except ValueError as exc:
        raise DataError(f"LHE file {path}: {exc}") from None
    mask = passes_cuts(feats)
    features = np.ascontiguousarray(feats[mask])
    if len(features) == 0:
        raise DataError(f"LHE file {path}: no event passes the cuts {CUTS}")
    w = np.asarray(weights)
    w_pair = w[np.isfinite(w)]
    uniform = bool(np.all(w_pair == w_pair[0]))
    if not uniform:
        warnings.warn(
            f"LHE file {path}: event weights differ (min {w_pair.min():.4g}, max {w_pair.max():.4g}); "
            "the features are used as an unweighted sample", stacklevel=2,
        )
    sigma = sum(p.xSection for p in init.procInfo)
    sigma_err = math.sqrt(sum(p.error ** 2 for p in init.procInfo))
    eff = len(features) / n_read
    flav_arr = np.asarray(flav)[mask]
    meta = {
        "generator": "LHE file",
        "source": str(path.resolve()),
        "lhe_generators": [f"{g.name} {g.version}".strip() for g in init.generators],
        "features": list(FEATURES),
        "cuts": dict(CUTS),
        "n_read": n_read,
        "n_no_lepton_pair": n_no_pair,
        "n_failed_cuts": int((~mask).sum()),
        "n_passed": int(len(features)),
        "cut_efficiency": eff,
        "sigma_pb": float(sigma),  # as written in <init> (MadGraph: pb); not checked
        "sigma_err_pb": float(sigma_err),
        "sigma_fiducial_pb": float(sigma) * eff,
        "weights_uniform": uniform,
        "n_ee": int((flav_arr == 11).sum()),
        "n_mumu": int((flav_arr == 13).sum()),
        "seconds": time.perf_counter() - t0,
    }
    return features, meta


def load_lhe_events(path: str | os.PathLike, *, cache_dir: str | os.PathLike | None = None,
                    use_cache: bool = True) -> EventSample:
    """:func:`read_lhe` split into train/val/test like the Pythia sample.

    Parsing a large LHE file takes a while (about 20 s per 100k events), and every notebook loads
    the sample again, so the features are cached in ``cache_dir`` (default
    :func:`qinn_lib.paths.data_dir`) under the sha256 of the file's bytes: an edited file is a
    new sample, and a renamed or moved one is found again."""
    path = _lhe_path(path)
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


def load_sample(n_events: int, seed: int, *, lhe_file: str | os.PathLike = "", progress: bool = False) -> EventSample:
    """The events a run uses: the Pythia sample of ``(n_events, seed)`` (:func:`load_events`), or,
    with ``lhe_file``, the first ``n_events`` events of that LHE file that pass the cuts (all of
    them if it holds fewer; ``seed`` is then unused), split like the Pythia sample. The sample's
    fingerprint identifies exactly the events used, so checkpoints and results records carry it."""
    if not lhe_file:
        return load_events(n_events, seed, progress=progress)
    if isinstance(n_events, bool) or not isinstance(n_events, (int, np.integer)) or n_events < 1:
        raise ValueError(f"n_events must be a positive integer, got {n_events!r}")
    full = load_lhe_events(lhe_file)
    events = full.all()
    n = min(int(n_events), len(events))
    meta = dict(full.meta, n_available=int(len(events)), n_used=int(n))
    return EventSample.from_array(events[:n], meta)


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


# --------------------------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------------------------
def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _seed(text: str) -> int:
    lo, hi = SEED_RANGE
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer seed, got {text!r}") from None
    if not lo <= value <= hi:
        raise argparse.ArgumentTypeError(f"seed must be in [{lo}, {hi}] (Pythia's range), got {value}")
    return value


def _summary(sample: EventSample) -> Iterable[str]:
    m = sample.meta
    yield (f"events     : {sample.n_events} (train {len(sample.train)}, val {len(sample.val)}, "
           f"test {len(sample.test)}), fingerprint {sample.fingerprint}")
    yield f"source     : {m.get('generator')} {m.get('version', '')}".rstrip() + (
        f", seed {m['seed']}" if "seed" in m else f", {m.get('source')}")
    n_total = m.get("n_generated", m.get("n_read"))
    eff_err = f" +- {m['cut_efficiency_err']:.4f}" if "cut_efficiency_err" in m else ""
    yield f"efficiency : {m['cut_efficiency']:.4f}{eff_err} ({m['n_passed']} of {n_total} pass the cuts)"
    if "n_no_lepton_pair" in m and m["n_no_lepton_pair"]:
        yield f"no l+l- pair: {m['n_no_lepton_pair']} events skipped"
    sig_err = f" +- {m['sigma_err_pb']:.4g}" if "sigma_err_pb" in m else ""
    yield f"sigma      : {m['sigma_pb']:.4g}{sig_err} pb before cuts, {m['sigma_fiducial_pb']:.4g} pb after cuts"
    yield f"flavours   : {m.get('n_ee')} ee, {m.get('n_mumu')} mumu"
    if m.get("loaded_from_cache"):
        yield f"time       : loaded from cache in {m['load_seconds']:.2f} s (generation took {m['seconds']:.1f} s)"
    else:
        yield f"time       : {m['seconds']:.2f} s"
    if "cache_file" in m:
        yield f"cache      : {m['cache_file']}"


def main(argv: list[str] | None = None) -> int:
    """``python -m qinn_lib.data``: generate (or load) the event sample and print a summary."""
    parser = argparse.ArgumentParser(
        prog="python -m qinn_lib.data",
        description="Generate pp -> Z j -> l+l- j events with Pythia 8 (cached), or read an LHE file.",
    )
    parser.add_argument("--n-events", type=_positive_int, default=None,
                        help="events after cuts (default 100000, the paper's sample size)")
    parser.add_argument("--seed", type=_seed, default=None, help="Pythia random seed (default 1234)")
    parser.add_argument("--lhe", metavar="FILE", default=None,
                        help="read this LHE file (e.g. MadGraph output) instead of running Pythia")
    parser.add_argument("--cache-dir", metavar="DIR", default=None,
                        help="cache folder (default: data/ in the repository, or $QINN_DATA_DIR)")
    parser.add_argument("--regenerate", action="store_true", help="regenerate even if a cache exists")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_debug_option(parser)
    args = parser.parse_args(argv)
    if args.lhe is not None:
        clash = [flag for flag, v in (("--n-events", args.n_events), ("--seed", args.seed),
                                      ("--cache-dir", args.cache_dir), ("--regenerate", args.regenerate))
                 if v not in (None, False)]
        if clash:
            parser.error(f"--lhe reads events from a file; {', '.join(clash)} do(es) not apply")

    def body() -> int:
        if args.lhe is not None:
            sample = load_lhe_events(args.lhe)
        else:
            sample = load_events(
                100_000 if args.n_events is None else args.n_events,
                1234 if args.seed is None else args.seed,
                cache_dir=args.cache_dir, progress=not args.no_progress, regenerate=args.regenerate,
            )
        for line in _summary(sample):
            print(line)
        return 0

    return run_cli(body, prog=parser.prog, debug=args.debug,
                   interrupted="nothing was cached (the cache is written only once generation is complete)")


if __name__ == "__main__":
    sys.exit(main())
