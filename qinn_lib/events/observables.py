"""The five training features and the physics reconstructed from them.

Every model in the project learns the same five numbers per event, always in this column order
(:data:`FEATURES`)::

    pt_lp    transverse momentum of l+                  [GeV]
    pt_lm    transverse momentum of l-                  [GeV]
    dphi_ll  azimuthal angle of l- relative to l+       [rad], in [0, 2 pi)
    eta_lp   pseudorapidity of l+
    eta_lm   pseudorapidity of l-

These are the observables of sec. 4 of the paper ("p_T,l+-, Delta phi_ll, eta_l+-").

Azimuth convention
------------------
``Delta phi_ll := (phi_l- - phi_l+) mod 2 pi``, a *signed* angle stored in ``[0, 2 pi)``.  The
process is symmetric under rotations about the beam axis, so the absolute azimuth carries no
information; we rotate every event so that ``phi_l+ = 0``, and then ``phi_l- = Delta phi_ll``.
Keeping the sign (instead of ``|Delta phi| in [0, pi]``) keeps the full information, and the
``[0, 2 pi)`` range puts the back-to-back peak at ``pi`` in the *middle* of the range rather than
splitting it across ``+-pi`` -- easier to learn after the scaling to ``[0, pi]``.
Consequence for plots: in this frame ``px_lp == pt_lp`` and ``py_lp == 0`` identically.

Leptons are treated as massless (``E = |p|``, ``p_z = p_T sinh(eta)``); at LHC energies the
electron/muon masses change nothing visible.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # torch and vector are imported lazily: importing this module stays cheap
    import torch

FEATURES: tuple[str, ...] = ("pt_lp", "pt_lm", "dphi_ll", "eta_lp", "eta_lm")
N_FEATURES = len(FEATURES)

FEATURE_LABELS: dict[str, str] = {
    "pt_lp": r"$p_{T,\ell^+}$ [GeV]",
    "pt_lm": r"$p_{T,\ell^-}$ [GeV]",
    "dphi_ll": r"$\Delta\phi_{\ell\ell}$ [rad]",
    "eta_lp": r"$\eta_{\ell^+}$",
    "eta_lm": r"$\eta_{\ell^-}$",
}

OBSERVABLE_LABELS: dict[str, str] = {
    **FEATURE_LABELS,
    "m_ll": r"$M_{\ell\ell}$ [GeV]",
    "pt_z": r"$p_{T,Z}$ [GeV]",
    "y_z": r"$y_Z$",
    "e_z": r"$E_Z$ [GeV]",
    "delta_r": r"$\Delta R_{\ell^+\ell^-}$",
    "delta_eta": r"$\Delta\eta_{\ell\ell}$",
    "px_lp": r"$p_{x,\ell^+}$ [GeV]",
    "py_lp": r"$p_{y,\ell^+}$ [GeV]",
    "pz_lp": r"$p_{z,\ell^+}$ [GeV]",
    "e_lp": r"$E_{\ell^+}$ [GeV]",
    "px_lm": r"$p_{x,\ell^-}$ [GeV]",
    "py_lm": r"$p_{y,\ell^-}$ [GeV]",
    "pz_lm": r"$p_{z,\ell^-}$ [GeV]",
    "e_lm": r"$E_{\ell^-}$ [GeV]",
}

TWO_PI = 2.0 * np.pi


def check_features(x: object, where: str = "features") -> np.ndarray:
    """Return ``x`` as a float64 ``(N, 5)`` array or raise ``ValueError`` naming ``where``.

    Rejects a wrong shape (message gives the expected width 5 and the actual shape) and rows with
    NaN/inf (message gives how many rows and which feature columns).
    """
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: cannot convert to a float array of features: {exc}") from None
    if arr.ndim != 2 or arr.shape[1] != N_FEATURES:
        raise ValueError(
            f"{where}: expected an array of shape (N, {N_FEATURES}) with columns {FEATURES}, "
            f"got shape {arr.shape}"
        )
    finite = np.isfinite(arr)
    if not finite.all():
        bad_rows = int((~finite.all(axis=1)).sum())
        bad_cols = [FEATURES[j] for j in range(N_FEATURES) if not finite[:, j].all()]
        raise ValueError(
            f"{where}: {bad_rows} of {arr.shape[0]} rows contain NaN or inf "
            f"(in feature column(s) {bad_cols})"
        )
    return arr


def wrap_dphi(dphi: np.ndarray) -> np.ndarray:
    """Map any azimuth difference to ``[0, 2 pi)``."""
    out = np.mod(dphi, TWO_PI)
    # np.mod(-1e-20, 2 pi) rounds to exactly 2 pi; fold that back onto 0.
    return np.where(out >= TWO_PI, 0.0, out)


def abs_dphi(dphi: np.ndarray) -> np.ndarray:
    """``|Delta phi|`` wrapped to ``[0, pi]``: ``min(d, 2 pi - d)`` with ``d = dphi mod 2 pi``."""
    d = wrap_dphi(dphi)
    return np.minimum(d, TWO_PI - d)


def lepton_vectors(features: np.ndarray):
    """Massless four-vectors ``(lp, lm)`` (``vector.MomentumNumpy4D``) in the frame ``phi_l+ = 0``."""
    import vector

    x = check_features(features, "lepton_vectors(features)")
    zeros = np.zeros(x.shape[0])
    lp = vector.array({"pt": x[:, 0], "eta": x[:, 3], "phi": zeros, "mass": zeros})
    lm = vector.array({"pt": x[:, 1], "eta": x[:, 4], "phi": x[:, 2], "mass": zeros})
    return lp, lm


def four_momenta(features: np.ndarray) -> np.ndarray:
    """``(N, 2, 4)`` array: ``[:, 0]`` is l+, ``[:, 1]`` is l-, columns ``(px, py, pz, E)``."""
    lp, lm = lepton_vectors(features)
    out = np.empty((len(lp), 2, 4))
    for i, v in enumerate((lp, lm)):
        out[:, i, 0] = v.px
        out[:, i, 1] = v.py
        out[:, i, 2] = v.pz  # = pT sinh(eta): sign follows eta
        out[:, i, 3] = v.E
    return out


def _mass_squared_np(x: np.ndarray) -> np.ndarray:
    # M^2 = 2 pT1 pT2 (cosh(eta1 - eta2) - cos(dphi)) for massless leptons. Algebraically equal to
    # (E1+E2)^2 - |p1+p2|^2 but without the cancellation between two large numbers.
    return 2.0 * x[:, 0] * x[:, 1] * (np.cosh(x[:, 3] - x[:, 4]) - np.cos(x[:, 2]))


def reconstruct(features: np.ndarray) -> dict[str, np.ndarray]:
    """Observables reconstructed from the five features.

    Keys: the five features, ``m_ll``, ``pt_z``, ``y_z``, ``e_z``, ``delta_r``, ``delta_eta``
    and ``{px,py,pz,e}_{lp,lm}``; labels in :data:`OBSERVABLE_LABELS`.
    ``delta_r = sqrt(delta_eta^2 + |dphi|^2)`` with ``|dphi|`` wrapped to ``[0, pi]``.
    """
    x = check_features(features, "reconstruct(features)")
    lp, lm = lepton_vectors(x)
    z = lp + lm
    out: dict[str, np.ndarray] = {name: x[:, j].copy() for j, name in enumerate(FEATURES)}
    out["m_ll"] = np.sqrt(np.maximum(_mass_squared_np(x), 0.0))
    out["pt_z"] = np.asarray(z.pt, dtype=np.float64)
    out["y_z"] = np.asarray(z.rapidity, dtype=np.float64)
    out["e_z"] = np.asarray(z.E, dtype=np.float64)
    delta_eta = x[:, 3] - x[:, 4]
    out["delta_eta"] = delta_eta
    out["delta_r"] = np.hypot(delta_eta, abs_dphi(x[:, 2]))
    for tag, v in (("lp", lp), ("lm", lm)):
        out[f"px_{tag}"] = np.asarray(v.px, dtype=np.float64)
        out[f"py_{tag}"] = np.asarray(v.py, dtype=np.float64)
        out[f"pz_{tag}"] = np.asarray(v.pz, dtype=np.float64)
        out[f"e_{tag}"] = np.asarray(v.E, dtype=np.float64)
    return out


def invariant_mass_torch(features: "torch.Tensor", eps: float = 1e-12) -> "torch.Tensor":
    """Differentiable ``M_ll`` [GeV] from features in physical units, shape ``(..., 5) -> (...)``.

    ``M^2 = 2 pT1 pT2 (cosh(eta1 - eta2) - cos(dphi))``; ``M^2`` is clamped at ``eps`` [GeV^2]
    before the square root so the gradient stays finite for (nearly) collinear leptons or
    unphysical generated values (negative M^2 from negative pT). Used by the M_Z MMD loss.
    """
    import torch

    if not isinstance(features, torch.Tensor):
        raise TypeError(f"invariant_mass_torch expects a torch.Tensor, got {type(features).__name__}")
    if features.shape[-1] != N_FEATURES:
        raise ValueError(
            f"invariant_mass_torch: expected last dimension {N_FEATURES} ({FEATURES}), "
            f"got shape {tuple(features.shape)}"
        )
    pt1, pt2, dphi, eta1, eta2 = features.unbind(-1)
    m2 = 2.0 * pt1 * pt2 * (torch.cosh(eta1 - eta2) - torch.cos(dphi))
    return torch.sqrt(torch.clamp(m2, min=eps))


def features_from_momenta(
    lp_px: np.ndarray, lp_py: np.ndarray, lp_pz: np.ndarray,
    lm_px: np.ndarray, lm_py: np.ndarray, lm_pz: np.ndarray,
) -> np.ndarray:
    """``(N, 5)`` features from the three-momenta of l+ and l- (generator or LHE output).

    pT, eta and phi do not depend on the mass, so the massless treatment is exact for them.
    Raises ``ValueError`` for a lepton with zero pT (eta undefined) or non-finite input.
    """
    import vector

    cols = [np.atleast_1d(np.asarray(c, dtype=np.float64))
            for c in (lp_px, lp_py, lp_pz, lm_px, lm_py, lm_pz)]
    names = ("lp_px", "lp_py", "lp_pz", "lm_px", "lm_py", "lm_pz")
    n = cols[0].shape
    for name, c in zip(names, cols):
        if c.ndim != 1 or c.shape != n:
            raise ValueError(f"features_from_momenta: {name} has shape {c.shape}, expected {n} (1-d, equal lengths)")
        if not np.isfinite(c).all():
            raise ValueError(f"features_from_momenta: {name} has {int((~np.isfinite(c)).sum())} non-finite values")
    lp = vector.array({"px": cols[0], "py": cols[1], "pz": cols[2]})
    lm = vector.array({"px": cols[3], "py": cols[4], "pz": cols[5]})
    for tag, v in (("l+", lp), ("l-", lm)):
        zero = np.asarray(v.pt) <= 0.0
        if zero.any():
            raise ValueError(
                f"features_from_momenta: {int(zero.sum())} {tag} momenta have pT = 0 "
                "(pseudorapidity undefined)"
            )
    out = np.empty((n[0], N_FEATURES))
    out[:, 0] = lp.pt
    out[:, 1] = lm.pt
    out[:, 2] = wrap_dphi(np.asarray(lm.phi) - np.asarray(lp.phi))
    out[:, 3] = lp.eta
    out[:, 4] = lm.eta
    return out
