"""Diagnostics of a trained QINN: where its forward map folds, what function class it can
represent, how its reconstruction deviation reads under each reading of the paper, and whether its
NLL is the NLL of a density. Used by notebook 06 (why our QINN misses the paper); each function
works on any trained :class:`~qinn_lib.models.qinn.model.QINN` (and on the forward-only
:class:`~qinn_lib.models.qinn.reuploading.ReuploadingFlow` where a function says so).

Folds (sec. 2.1, eq. 5-7). The change of variables ``p(x) = N(f(x)) |det J_f(x)|`` is a density
only if ``f`` is injective. A smooth map whose ``det J`` takes both signs on a connected domain
passes through ``det J = 0`` and there folds: near the fold two inputs map to one latent point, so
``integral N(f(x)) |det J| dx = integral N(z) m(z) dz`` with ``m(z)`` the number of preimages, and
the NLL is optimistic (too low) by the over-counted mass. :func:`fold_statistics` counts the share
of events whose ``det J`` has the minority sign (the *fold fraction*); :func:`flagged_nll`
reports the NLL together with it and warns; :func:`density_normalisation` estimates the integral
of the model's density over the scaling box by randomised quasi-Monte Carlo
(:mod:`qinn_lib.evaluation.normalisation`; above 1: over-counting).

Function class (sec. 3, eq. 12-16). With single angle encoding ``R_y(x'_i)|0>`` each amplitude is
linear in ``(cos x'_i/2, sin x'_i/2)``, so every probability, hence every output ``z_k``, is
``A + B cos x'_i + C sin x'_i`` along each coordinate ``x'_i`` with the others fixed: a degree-1
trigonometric polynomial, however deep the model circuit. :func:`fourier_check` fits that form
(or degree ``d``, for a model that uploads the input ``d`` times) and reports the worst residual.

Readings of the paper's "||(x^ - x)/x|| < 2.1 %" (sec. 4.2): :data:`READINGS`, computed by
:func:`reconstruction_readings`. The project headlines :data:`HEADLINE_READING` ("scaled_vector",
the one of :func:`qinn_lib.evaluation.evaluate.reconstruction_deviation`, reported by notebooks 03-05):

* it is the paper's formula read literally, a relative error ``||x^ - x|| / ||x||``, in the space
  the model works in (the features scaled to [0, pi], sec. 3);
* it is defined for every event (``||x|| > 0``), whereas the element-wise ratio ``|dx_i| / |x_i|``
  divides by 0 at each feature's minimum (scaled) or wherever eta or Delta phi cross 0
  (physical), so those readings are dominated by a few events near 0;
* the range-normalised readings (``|dx| / pi``, the qubit-probability error) divide by the range,
  not by x: a different quantity, an absolute error in units of the range. They are the only ones
  that come near 2.1 %; adopting one *because* it matches the paper would pick the metric by its
  result, so they are reported next to the headline, not instead of it.
"""

from __future__ import annotations

import copy
import math
import warnings
from typing import Any, Callable

import numpy as np
import torch

from qinn_lib.evaluation.evaluate import test_nll
from qinn_lib.evaluation.normalisation import box_normalisation, jacobian_signs
from qinn_lib.models.qinn.simulator import ry_state

__all__ = [
    "HEADLINE_READING",
    "READINGS",
    "FoldWarning",
    "jacobian_signs",
    "fold_statistics",
    "angle_map",
    "fourier_check",
    "reconstruction_readings",
    "density_normalisation",
    "flagged_nll",
    "diagnose",
]

#: The reading of sec. 4.2's "||(x^ - x)/x||" the project headlines (justified in the module docstring).
HEADLINE_READING = "scaled_vector"

#: Every reading :func:`reconstruction_readings` computes, with its definition.
READINGS: dict[str, str] = {
    "range": "|x~_i - x_i| / pi: error of each scaled feature relative to its range [0, pi]",
    "p_space": "|sin^2(x~'_i/2) - sin^2(x'_i/2)|, x' = a x + pi b: error of the qubit-1 probability "
               "each encoded angle prepares (eq. 12), range [0, 1]",
    "scaled_vector": "||x~ - x||_2 / ||x||_2 of the scaled features per event "
                     "(metrics.reconstruction_deviation; the project's headline)",
    "scaled_componentwise": "|x~_i - x_i| / |x_i| of the scaled features (entries with x_i = 0 left out)",
    "physical": "|x~_i - x_i| / |x_i| in physical units, GeV / rad / 1 (entries with x_i = 0 left out)",
}


class FoldWarning(UserWarning):
    """A model's forward map folds on the sample: its change-of-variables NLL is not that of a density."""


def _rows(x: Any, name: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        x = torch.as_tensor(np.asarray(x, dtype=np.float64))
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty (events, features) array, got shape {tuple(x.shape)}")
    return x


def _param_like(model: torch.nn.Module) -> torch.Tensor:
    return next(model.parameters())


# -- folds ---------------------------------------------------------------------------------------
def _relative_errors(x: np.ndarray, x_rec: np.ndarray) -> np.ndarray:
    """Per-event headline error ||x~ - x|| / ||x|| (NaN where x_rec is not finite)."""
    err = np.linalg.norm(x_rec - x, axis=1) / np.linalg.norm(x, axis=1)
    return np.where(np.all(np.isfinite(x_rec), axis=1), err, np.nan)


@torch.no_grad()
def _reconstruct(model: torch.nn.Module, x: torch.Tensor, batch_size: int) -> np.ndarray:
    p = _param_like(model)
    parts = []
    for s in range(0, x.shape[0], batch_size):
        xb = x[s:s + batch_size].to(dtype=p.dtype, device=p.device)
        parts.append(model.inverse(model(xb)).double().cpu())
    return torch.cat(parts).numpy()


def fold_statistics(model: torch.nn.Module, x: Any, *, x_rec: Any = None, reconstruct: bool = True,
                    batch_size: int = 4096) -> dict[str, Any]:
    """Where the forward map folds: the sign of ``det J`` over the events ``x`` (scaled features).

    Returns ``n_events``, ``n_positive``, ``n_negative``, ``n_singular``, ``majority_sign`` (+1 on a
    tie), ``fold_fraction`` (share of events whose sign is the minority one; 0 for a map that keeps
    orientation everywhere on the sample) and, when a reconstruction is available (``x_rec``
    given, or ``reconstruct`` and the model has ``inverse``), the headline reconstruction error
    ``||x~ - x|| / ||x||`` split by sign: ``recon_majority_mean/median`` and
    ``recon_minority_mean/median`` (NaN where a group is empty or not finite)."""
    x = _rows(x, "x")
    signs = jacobian_signs(model, x, batch_size=batch_size)
    n = signs.size
    n_pos, n_neg = int((signs > 0).sum()), int((signs < 0).sum())
    majority = 1 if n_pos >= n_neg else -1
    out: dict[str, Any] = {"n_events": int(n), "n_positive": n_pos, "n_negative": n_neg,
                           "n_singular": int((signs == 0).sum()), "majority_sign": majority,
                           "fold_fraction": float(min(n_pos, n_neg) / n)}
    if x_rec is None and reconstruct and callable(getattr(model, "inverse", None)):
        x_rec = _reconstruct(model, x, batch_size)
    if x_rec is not None:
        rec = _rows(x_rec, "x_rec").detach().cpu().double().numpy()
        if rec.shape != tuple(x.shape):
            raise ValueError(f"fold_statistics: x_rec has shape {rec.shape}, x has {tuple(x.shape)}")
        err = _relative_errors(x.detach().cpu().double().numpy(), rec)
        for group, mask in (("majority", signs == majority), ("minority", signs == -majority)):
            e = err[mask]
            e = e[np.isfinite(e)]
            out[f"recon_{group}_mean"] = float(e.mean()) if e.size else float("nan")
            out[f"recon_{group}_median"] = float(np.median(e)) if e.size else float("nan")
    return out


# -- the function class ------------------------------------------------------------------------------
def angle_map(model: torch.nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """``z`` as a function of the encoded angles ``x'`` (``(B, n) -> (B, n)``), on a float64 copy of
    ``model`` (the model itself is left alone).

    A model with ``forward_angles(x')`` (e.g. :class:`~qinn_lib.models.qinn.reuploading.ReuploadingFlow`) uses
    it; a QINN is evaluated from its public pieces: ``z = c P(U R_y(x')|0>) + d`` (eq. 12-16)."""
    m = copy.deepcopy(model).to(torch.float64)
    m.eval()
    if callable(getattr(m, "forward_angles", None)):
        return m.forward_angles

    for name in ("unitary", "measure", "c", "d", "cdtype"):
        if not hasattr(m, name):
            raise TypeError(f"angle_map: {type(model).__name__} has neither forward_angles() nor the QINN's {name}")

    def f(x_prime: torch.Tensor) -> torch.Tensor:
        state = ry_state(x_prime).to(m.cdtype) @ m.unitary().transpose(0, 1)
        return m.c * m.measure(state) + m.d

    return f


@torch.no_grad()
def fourier_check(fn: Callable[[torch.Tensor], torch.Tensor], base_points: Any, *, degree: int = 1,
                  n_grid: int | None = None) -> dict[str, Any]:
    """Is every output of ``fn`` a trigonometric polynomial of ``degree`` along each coordinate?

    For each base point (``(P, n)`` angles) and each coordinate ``i``, the outputs are evaluated on
    ``n_grid`` equally spaced angles ``t`` in ``[0, 2 pi)`` (default ``4 degree + 5``, more points
    than the ``2 degree + 1`` basis functions, so the fit is over-determined) with the other
    coordinates fixed, and fitted by least squares to ``A + sum_k B_k cos(k t) + C_k sin(k t)``.

    Returns ``max_residual`` (largest absolute misfit over points, coordinates and outputs),
    ``residual_per_coordinate`` (n), ``output_scale`` (largest |output|, for scale), ``degree``,
    ``n_grid`` and ``n_points``. A single-encoding QINN gives ~1e-15 at degree 1 in float64
    (module docstring); a model that uploads the input twice does not.
    """
    if isinstance(degree, bool) or not isinstance(degree, int) or degree < 0:
        raise ValueError(f"fourier_check: degree must be an integer >= 0, got {degree!r}")
    n_basis = 2 * degree + 1
    n_grid = 4 * degree + 5 if n_grid is None else int(n_grid)
    if n_grid <= n_basis:
        raise ValueError(f"fourier_check: n_grid must exceed the {n_basis} basis functions, got {n_grid}")
    base = _rows(base_points, "base_points").to(torch.float64)
    n_pts, n = base.shape
    t = torch.arange(n_grid, dtype=torch.float64) * (2.0 * math.pi / n_grid)
    k = torch.arange(1, degree + 1, dtype=torch.float64)
    basis = torch.cat([torch.ones(n_grid, 1, dtype=torch.float64), torch.cos(t[:, None] * k),
                       torch.sin(t[:, None] * k)], dim=1).numpy()  # (N, 2d+1)
    residuals, scale = [], 0.0
    for i in range(n):
        pts = base.repeat_interleave(n_grid, dim=0)  # (P*N, n), point-major
        pts[:, i] = t.repeat(n_pts)
        out = torch.as_tensor(fn(pts)).detach().double().cpu().numpy()
        vals = out.reshape(n_pts, n_grid, -1).transpose(1, 0, 2).reshape(n_grid, -1)  # (N, P*m)
        coef, *_ = np.linalg.lstsq(basis, vals, rcond=None)
        residuals.append(float(np.abs(basis @ coef - vals).max()))
        scale = max(scale, float(np.abs(vals).max()))
    return {"degree": degree, "max_residual": max(residuals), "residual_per_coordinate": residuals,
            "output_scale": scale, "n_grid": n_grid, "n_points": int(n_pts)}


# -- readings of the reconstruction deviation ---------------------------------------------------------
def _summary(values: np.ndarray) -> dict[str, Any]:
    """mean, median and per-feature median of an (events, features) or (events,) array, NaNs left out."""
    flat = values[np.isfinite(values)]
    out: dict[str, Any] = {"mean": float(flat.mean()) if flat.size else float("nan"),
                           "median": float(np.median(flat)) if flat.size else float("nan")}
    if values.ndim == 2:
        out["per_feature_median"] = [float(np.nanmedian(col)) if np.isfinite(col).any() else float("nan")
                                     for col in values.T]
    return out


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den != 0, np.abs(num) / np.abs(den), np.nan)


def reconstruction_readings(x: Any, x_rec: Any, *, scaler: Any = None,
                            encode: Callable[[torch.Tensor], torch.Tensor] | None = None) -> dict[str, dict[str, Any]]:
    """The round-trip error ``x -> z -> x~`` under every reading of :data:`READINGS`.

    ``x``, ``x_rec``: scaled features ``(N, n)`` in [0, pi] (rows of ``x_rec`` with NaN/inf are left
    out of every reading). ``scaler`` (:class:`~qinn_lib.events.scaling.AngleScaler`) is needed for
    the "physical" reading (left out without it); ``encode`` maps scaled features to the encoded
    angles ``x' = a x + pi b`` (``model.encode`` of a QINN; the identity if not given) for
    "p_space". Each reading is ``{"mean", "median", "definition"}`` over all its entries
    (events x features, or events for "scaled_vector"), plus ``per_feature_median``, and the
    dict holds ``"headline": HEADLINE_READING`` and ``n_nonfinite``.
    """
    xt, rt = _rows(x, "x"), _rows(x_rec, "x_rec")
    if xt.shape != rt.shape:
        raise ValueError(f"reconstruction_readings: x and x_rec must have the same shape, got "
                         f"{tuple(xt.shape)} and {tuple(rt.shape)}")
    xn, rn = xt.detach().cpu().double().numpy(), rt.detach().cpu().double().numpy()
    finite = np.all(np.isfinite(rn), axis=1)
    xn, rn = xn[finite], rn[finite]
    if xn.shape[0] == 0:
        raise ValueError("reconstruction_readings: no finite reconstructed event")
    diff = rn - xn
    out: dict[str, Any] = {"range": _summary(np.abs(diff) / math.pi)}
    with torch.no_grad():
        enc = encode or (lambda u: u)
        p = np.sin(0.5 * enc(torch.as_tensor(xn)).double().numpy()) ** 2
        p_rec = np.sin(0.5 * enc(torch.as_tensor(rn)).double().numpy()) ** 2
    out["p_space"] = _summary(np.abs(p_rec - p))
    out["scaled_vector"] = _summary(np.linalg.norm(diff, axis=1) / np.linalg.norm(xn, axis=1))
    out["scaled_componentwise"] = _summary(_ratio(diff, xn))
    if scaler is not None:
        phys, phys_rec = scaler.inverse(xn), scaler.inverse(rn)
        out["physical"] = _summary(_ratio(phys_rec - phys, phys))
    for name, reading in out.items():
        reading["definition"] = READINGS[name]
    return {**out, "headline": HEADLINE_READING, "n_nonfinite": int((~finite).sum())}


# -- the NLL, flagged ------------------------------------------------------------------------------
def density_normalisation(model: torch.nn.Module, n_features: int, *, n_samples: int = 100_000, seed: int = 0,
                          lo: float = 0.0, hi: float = math.pi, batch_size: int = 8192) -> dict[str, float]:
    """The integral of the model's density (eq. 5, scaled features) over the box ``[lo, hi]^n``, with
    its standard error: :func:`qinn_lib.evaluation.normalisation.box_normalisation` (randomised
    quasi-Monte Carlo on about ``n_samples`` points). An injective map gives at most 1 (mass can also
    lie outside the box, or be unreachable where ``z = c P + d`` is bounded); a value above 1 beyond
    its error means the density over-counts, i.e. the map folds."""
    if n_samples < 2:
        raise ValueError(f"density_normalisation: n_samples must be >= 2, got {n_samples}")
    if not hi > lo:
        raise ValueError(f"density_normalisation: need hi > lo, got [{lo}, {hi}]")
    out = box_normalisation(model, n_features, seed=seed, n_points=n_samples, lo=lo, hi=hi, folds=False,
                            batch_size=batch_size)
    return {"normalisation": out["z"], "normalisation_sem": out["z_err"], "n_samples": out["n_points"]}


def flagged_nll(model: torch.nn.Module, data: Any, *, split: str = "test", normalisation_samples: int = 0,
                seed: int = 0) -> dict[str, Any]:
    """The test NLL of :func:`qinn_lib.evaluation.evaluate.test_nll` together with the evidence on whether it is
    the NLL of a density: the fold fraction on the same events (:func:`fold_statistics`), and
    with ``normalisation_samples > 0`` the :func:`density_normalisation` over the scaling box.

    ``valid_density`` is False when the map folds on the sample (events of both ``det J`` signs, or
    a singular Jacobian): the change of variables then over-counts and the NLL is optimistic.
    True means no fold was *seen* on these events, not a proof of injectivity. A
    :class:`FoldWarning` is issued and ``warning`` holds the same text when it is False."""
    out: dict[str, Any] = dict(test_nll(model, data, split=split))
    folds = fold_statistics(model, getattr(data, split), reconstruct=False)
    out.update({"fold_fraction": folds["fold_fraction"], "n_singular": folds["n_singular"]})
    out["valid_density"] = bool(folds["fold_fraction"] == 0 and folds["n_singular"] == 0)
    if normalisation_samples:
        n_features = int(getattr(data, split).shape[1])
        out.update(density_normalisation(model, n_features, n_samples=normalisation_samples, seed=seed))
    out["warning"] = ""
    if not out["valid_density"]:
        out["warning"] = (f"the forward map folds on {100 * folds['fold_fraction']:.2f} % of the {split} events "
                          f"(det J of the minority sign; {folds['n_singular']} singular): the NLL "
                          f"{out['nll']:.3f} is not that of a normalised density and is optimistic")
        warnings.warn(out["warning"], FoldWarning, stacklevel=2)
    return out


def diagnose(trained: Any, *, normalisation_samples: int = 0, seed: int = 0, batch_size: int = 4096) -> dict[str, float]:
    """Flat scalar diagnostics of a :class:`~qinn_lib.experiments.one_model.TrainedModel` on its test split, for a
    results record: ``fold_fraction``, ``recon_majority_median``, ``recon_minority_median`` (the
    headline error split by the sign of det J), ``reading/<name>_mean`` and ``_median`` for every
    reading, and with ``normalisation_samples`` the ``density_normalisation`` (and its sem)."""
    model, data = trained.model, trained.data
    x = data.test
    x_rec = _reconstruct(model, x, batch_size)
    folds = fold_statistics(model, x, x_rec=x_rec, batch_size=batch_size)
    out = {"fold_fraction": folds["fold_fraction"],
           "recon_majority_median": folds["recon_majority_median"],
           "recon_minority_median": folds["recon_minority_median"]}
    readings = reconstruction_readings(x, x_rec, scaler=data.scaler, encode=getattr(model, "encode", None))
    for name in READINGS:
        if name in readings:
            out[f"reading/{name}_mean"] = readings[name]["mean"]
            out[f"reading/{name}_median"] = readings[name]["median"]
    if normalisation_samples:
        norm = density_normalisation(model, int(x.shape[1]), n_samples=normalisation_samples, seed=seed)
        out["density_normalisation"] = norm["normalisation"]
        out["density_normalisation_sem"] = norm["normalisation_sem"]
    return out
