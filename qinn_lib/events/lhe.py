"""A user's own events from a Les Houches (LHE) file, e.g. MadGraph output as in the paper.

:func:`read_lhe` reads a plain or gzipped LHE file into the five features and applies the
paper's cuts (:func:`qinn_lib.events.sample.passes_cuts`), so a MadGraph sample of the paper's
process can replace the Pythia one. Per event the final-state leptons must be exactly one l+ and
one l- of the same flavour; other events are skipped and counted. The features are an unweighted
sample: a file with negative event weights (an NLO sample's counter-events, which an unweighted
sample cannot represent) is refused, naming the file and the count; unequal positive weights are
used for the cross-section after the cuts (the weighted fraction passing) and a warning says that
the features ignore them. The cached, split sample of a file is
:func:`qinn_lib.events.cache.load_lhe_events`.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from pathlib import Path

import numpy as np

from qinn_lib.events.observables import FEATURES, features_from_momenta
from qinn_lib.events.sample import CUTS, DataError, passes_cuts

#: Version of what :func:`read_lhe` returns; a cached sample of an older reader is parsed again
#: (version 2: negative weights refused, the fiducial cross-section weighted).
READER_VERSION = 2


# --------------------------------------------------------------------------------------------
# users' own samples
# --------------------------------------------------------------------------------------------
def lhe_path(path: str | os.PathLike) -> Path:
    """``path`` as a Path, or a :class:`DataError` saying why it is no LHE file to read."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"LHE file {path} " + ("is a folder" if path.is_dir() else "does not exist"))
    return path


def read_lhe(path: str | os.PathLike) -> tuple[np.ndarray, dict]:
    """Features of the events in a Les Houches file (plain or gzipped), with the paper's cuts.

    Per event the final-state (status 1) charged leptons (|id| = 11, 13) must be exactly one l+ and
    one l- of the same flavour; other events are counted in ``meta["n_no_lepton_pair"]`` and reported
    with a warning. The features are an unweighted sample: negative event weights raise a
    :class:`DataError` naming the file and their count; unequal positive weights give the
    cross-section after the cuts as the weighted fraction passing (``sigma_fiducial_pb``), with a
    warning that the features do not use them.
    """
    import xml.etree.ElementTree as ET

    import pylhe

    path = lhe_path(path)
    t0 = time.perf_counter()
    mom: list[tuple[float, ...]] = []
    flav: list[int] = []
    weights: list[float] = []
    paired: list[int] = []  # index in ``weights`` of each event with an l+ l- pair
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
                    continue
                a, b = plus[0], minus[0]
                mom.append((a.px, a.py, a.pz, b.px, b.py, b.pz))
                flav.append(abs(int(b.id)))
                paired.append(len(weights) - 1)
        except (ValueError, IndexError, TypeError, OverflowError, OSError, EOFError, ET.ParseError) as exc:
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
    w = np.asarray(weights, dtype=np.float64)
    if not np.isfinite(w).all():
        raise DataError(f"LHE file {path}: {int((~np.isfinite(w)).sum())} of {n_read} events have a weight that is "
                        "not a finite number")
    n_negative = int((w < 0).sum())
    if n_negative:
        raise DataError(
            f"LHE file {path}: {n_negative:,} of {n_read:,} events have negative weights (an NLO sample?); the "
            "features are used as an unweighted sample, which cannot represent them, and the cross-section after "
            "the cuts would be wrong: use a sample with positive weights only (e.g. LO, or unweighted first)"
        )
    if w.sum() <= 0:
        raise DataError(f"LHE file {path}: the event weights sum to {w.sum():g}; no cross-section can be derived")
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
    uniform = bool(np.all(w == w[0]))
    if not uniform:
        warnings.warn(
            f"LHE file {path}: event weights differ (min {w.min():.4g}, max {w.max():.4g}); the features are "
            "used as an unweighted sample (the cross-section after the cuts is the weighted fraction passing)",
            stacklevel=2,
        )
    sigma = sum(p.xSection for p in init.procInfo)
    sigma_err = math.sqrt(sum(p.error ** 2 for p in init.procInfo))
    eff = len(features) / n_read
    # A weighted sample's cross-section after the cuts: sigma * sum(w passing) / sum(w all); with
    # equal weights this is sigma * n_passed / n_read.
    w_passed = w[np.asarray(paired, dtype=np.int64)[mask]]
    eff_weighted = float(w_passed.sum() / w.sum())
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
        "sigma_fiducial_pb": float(sigma) * eff_weighted,
        "cut_efficiency_weighted": eff_weighted,
        "weights_uniform": uniform,
        "n_negative_weights": n_negative,
        "reader_version": READER_VERSION,
        "n_ee": int((flav_arr == 11).sum()),
        "n_mumu": int((flav_arr == 13).sum()),
        "seconds": time.perf_counter() - t0,
    }
    return features, meta
