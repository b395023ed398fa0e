"""Line-shape fits: the Breit–Wigner fit of the reconstructed M_ll peak (notebook 01, and a check
that generated events put the Z where nature does)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import curve_fit

#: PDG 2024 values (pdg.lbl.gov): M_Z = 91.1880 ± 0.0020 GeV, Γ_Z = 2.4955 ± 0.0023 GeV.
PDG_MZ = 91.1880
PDG_GAMMA_Z = 2.4955


def relativistic_breit_wigner(m: np.ndarray, mass: float, width: float) -> np.ndarray:
    """Relativistic Breit–Wigner shape, normalised to unit area over all m > 0:
    f(m) = k / ((m² − M²)² + M²Γ²), k = 2√2 MΓγ / (π√(M²+γ)), γ = √(M²(M²+Γ²))."""
    gamma = np.sqrt(mass**2 * (mass**2 + width**2))
    k = 2.0 * np.sqrt(2.0) * mass * width * gamma / (np.pi * np.sqrt(mass**2 + gamma))
    return k / ((m**2 - mass**2) ** 2 + mass**2 * width**2)


@dataclass(frozen=True)
class BreitWignerFit:
    mass: float
    mass_err: float
    width: float
    width_err: float
    norm: float
    chi2: float
    ndf: int
    window: tuple[float, float]
    n_in_window: int

    def summary(self) -> str:
        return (
            f"M = {self.mass:.3f} ± {self.mass_err:.3f} GeV (PDG {PDG_MZ:.4f}),  "
            f"Γ = {self.width:.3f} ± {self.width_err:.3f} GeV (PDG {PDG_GAMMA_Z:.4f}),  "
            f"χ²/ndf = {self.chi2:.1f}/{self.ndf}  [{self.n_in_window} events in "
            f"{self.window[0]:g}–{self.window[1]:g} GeV]"
        )


def fit_breit_wigner(m_ll: np.ndarray, window: tuple[float, float] = (84.0, 98.0),
                     bins: int = 56) -> BreitWignerFit:
    """Binned least-squares fit (Poisson errors) of a relativistic Breit–Wigner to ``m_ll`` in
    ``window``. The window is ±~3Γ around the pole: wide enough to pin the width, narrow enough
    that the falling parton luminosity (which skews the tails) hardly matters."""
    m_ll = np.asarray(m_ll, dtype=float)
    if m_ll.ndim != 1 or m_ll.size == 0:
        raise ValueError(f"m_ll must be a non-empty 1-D array, got shape {m_ll.shape}")
    if not np.all(np.isfinite(m_ll)):
        raise ValueError(f"m_ll has {int(np.sum(~np.isfinite(m_ll)))} non-finite values")
    lo, hi = window
    if not lo < hi:
        raise ValueError(f"window must be (low, high) with low < high, got {window}")
    counts, edges = np.histogram(m_ll, bins=bins, range=window)
    n_in = int(counts.sum())
    if n_in < 50:
        raise ValueError(f"only {n_in} events in the fit window {window}; need at least 50")
    centres = 0.5 * (edges[1:] + edges[:-1])
    bin_width = edges[1] - edges[0]
    sigma = np.sqrt(np.maximum(counts, 1.0))

    def model(m, norm, mass, width):
        return norm * bin_width * relativistic_breit_wigner(m, mass, width)

    p0 = (float(n_in), centres[np.argmax(counts)], 2.5)
    popt, pcov = curve_fit(model, centres, counts, p0=p0, sigma=sigma, absolute_sigma=True,
                           bounds=([0.0, lo, 0.01], [np.inf, hi, hi - lo]))
    perr = np.sqrt(np.diag(pcov))
    chi2 = float(np.sum(((counts - model(centres, *popt)) / sigma) ** 2))
    return BreitWignerFit(mass=float(popt[1]), mass_err=float(perr[1]), width=float(popt[2]),
                          width_err=float(perr[2]), norm=float(popt[0]), chi2=chi2,
                          ndf=int(bins - 3), window=(float(lo), float(hi)), n_in_window=n_in)
