"""pp -> Z j -> l+ l- j events (sec. 4, eq. 23) generated with Pythia 8 at parton level.

The paper simulates 100k events with MadGraph5 at leading order. We generate the same process
with Pythia 8's built-in LO 2 -> 2 matrix elements (``q qbar -> Z g`` and ``q g -> Z q``) at
*parton level* (no shower, no hadronisation, no MPI): every event is exactly l+ l- plus one parton.
Differences to the paper's setup, stated so nobody is surprised:

* pure Z exchange (``WeakZ0:gmZmode = 2``, no gamma*/interference), Z -> e+e- or mu+mu-;
* the hard process needs a jet threshold; we use ``PhaseSpace:pTHatMin = 20`` GeV;
* Pythia's default PDF set and scales instead of MadGraph's run card.

:func:`generate_events` generates until the requested number of events pass the paper's cuts
(:func:`qinn_lib.events.sample.passes_cuts`); the same seed gives bit-identical features, and
every setting passed to Pythia (:func:`pythia_settings`) is stored in the metadata. The cache
that keeps a generated sample is :mod:`qinn_lib.events.cache`.
"""

from __future__ import annotations

import math
import time
import warnings
from typing import Any

import numpy as np

from qinn_lib.events.observables import FEATURES, features_from_momenta
from qinn_lib.events.sample import CUTS, passes_cuts

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


# --------------------------------------------------------------------------------------------
# Pythia generation
# --------------------------------------------------------------------------------------------
def check_n_seed(n_events: Any, seed: Any) -> tuple[int, int]:
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
    n_events, seed = check_n_seed(n_events, seed)
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
