"""Honest likelihoods: how much probability a model's change-of-variables density puts on the box
the features live in, and the NLL of the density normalised to 1 there.

Units and conventions. Every model here maps the features scaled to ``u ∈ [0, π]^n`` (the box, sec. 3;
:mod:`qinn_lib.events.scaling`) to a latent ``z = f(u)``, and ``model.forward_and_logdet(u)`` gives
``z`` and ``log|det J(u)|`` with ``J = dz/du`` (for the QINN this includes the learned state
preparation ``u' = a u + π b``). Eq. 5 with a standard-normal latent gives the density
``p(u) = N(f(u); 0, 1) |det J(u)|``. It integrates to 1 only if ``f`` is a bijection onto the
latent space. The QINN's map folds (``det J`` changes sign inside the box: two inputs map to one
latent point), so ``p`` over-counts and

    ``Z = ∫_box N(f(u)) |det J(u)| du``

can exceed 1; for an exact bijection of all of ``R^n`` (the classical INN) ``Z`` is the model's
probability of the box, 1 up to the little mass the model puts outside the training range. The
normalised density is ``p(u) / Z`` and its NLL ``NLL + ln Z``; the scaling ``x → u`` has a
constant Jacobian (:attr:`qinn_lib.events.scaling.AngleScaler.log_abs_det`), so the same ``ln Z``
normalises the NLL in physical units of :func:`qinn_lib.evaluation.evaluate.test_nll`.
``ln Z`` is the number of nats by which the unnormalised NLL is optimistic.

Two estimates of ``Z``, each with its error:

- :func:`box_normalisation`, for any model: ``Z = volume × mean p(u)`` over points in the box,
  computed as ``n_replicates`` independent estimates, each on ``n_points / n_replicates`` points.
  With ``method="sobol"`` (the default) each replicate is a scrambled Sobol' set
  (:class:`scipy.stats.qmc.Sobol`, scrambled independently per replicate: randomised quasi-Monte
  Carlo); with ``"uniform"`` plain pseudo-random points. The estimate is the mean of the replicates
  and its error their standard deviation over ``sqrt(n_replicates)``: an honest error for either
  method (one Sobol' set alone has none), seeded by ``seed``. Measured on the paper profile's
  shipped QINN (seed 1234; 2^17 points, 16 replicates, 0.4-0.7 s): Sobol' Z = 1.004 ± 0.005, uniform
  1.009 ± 0.015. A density as peaked as a good INN's is another matter: the same points give the
  shipped INNs ±3-6 % (uniform or Sobol'; the INN's density is ~200 times more concentrated than
  the box), and importance sampling from a Gaussian mixture fitted to the training events did no
  better (±1-2.5 % on 2^15 points, 6-30 s to fit the mixture; tried and dropped).
- :func:`bijection_box_mass`, for a model whose ``inverse`` is the exact inverse of its forward
  map on all of ``R^n`` (the classical INN; ``model.exact_bijection``): its samples ``f⁻¹(z)``,
  ``z ~ N(0, 1)``, have exactly the density ``p``, so ``Z`` is the fraction of them inside the box,
  with the binomial error. On the 50 000 events an evaluation generates anyway this is free and
  good to ±0.1 %: the shipped INNs put 1.5-4 % of their mass outside the training range, so their
  ``Z`` is 0.96-0.985, not 1, and normalising over the box *lowers* their NLL by ``-ln Z``.

``ln Z`` and the normalised NLL take their errors by the delta method: ``σ(ln Z) = σ(Z) / Z`` and
``σ(NLL + ln Z)² = σ(NLL)² + σ(ln Z)²`` (:func:`normalised_nll`; the test events and the points
of the integral are independent). The few test events outside the box (beyond the training range)
keep their density divided by ``Z``.

Folds. For models with ``forward_and_jacobian`` (the QINN) the same points also give the share of
the box where ``det J < 0`` and the share of the model's mass (of ``Z``) on the *minority* sign, the
sign opposite the one most test events see (:func:`jacobian_signs`); a fold-free map has 0 for the
latter.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from scipy.stats import qmc

from qinn_lib.training.losses.nll import nll_per_event

__all__ = ["METHODS", "jacobian_signs", "majority_sign", "box_normalisation", "bijection_box_mass", "normalised_nll"]

#: Point sets of :func:`box_normalisation`.
METHODS: tuple[str, ...] = ("sobol", "uniform")


def _param_like(model: torch.nn.Module) -> torch.Tensor:
    return next(model.parameters())


@torch.no_grad()
def jacobian_signs(model: torch.nn.Module, x: Any, *, batch_size: int = 4096) -> np.ndarray:
    """Sign of ``det dz/dx`` per event (+1, -1, or 0 for a singular Jacobian), ``(N,)`` int8.

    ``model.forward_and_jacobian(x) -> (z, J)`` gives the full Jacobian (QINN, eq. 5-7); its
    determinant's sign is taken in float64."""
    if not callable(getattr(model, "forward_and_jacobian", None)):
        raise TypeError(f"jacobian_signs: {type(model).__name__} has no forward_and_jacobian(x) method")
    if not isinstance(x, torch.Tensor):
        x = torch.as_tensor(np.asarray(x, dtype=np.float64))
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"x must be a non-empty (events, features) array, got shape {tuple(x.shape)}")
    p = _param_like(model)
    out = []
    for s in range(0, x.shape[0], batch_size):
        _, jac = model.forward_and_jacobian(x[s:s + batch_size].to(dtype=p.dtype, device=p.device))
        out.append(torch.linalg.slogdet(jac.double()).sign.cpu())
    return torch.cat(out).numpy().astype(np.int8)


def majority_sign(signs: np.ndarray) -> int:
    """+1 or -1, the more frequent sign of ``det J`` (+1 on a tie), as in
    :func:`qinn_lib.evaluation.diagnostics.fold_statistics`."""
    return 1 if int((signs > 0).sum()) >= int((signs < 0).sum()) else -1


@torch.no_grad()
def _density_and_sign(model: torch.nn.Module, u: torch.Tensor, with_sign: bool) -> tuple[np.ndarray, np.ndarray | None]:
    p = _param_like(model)
    u = u.to(dtype=p.dtype, device=p.device)
    if with_sign:
        z, jac = model.forward_and_jacobian(u)
        sign, logdet = torch.linalg.slogdet(jac.double())
        sign = sign.cpu().numpy()
    else:
        z, logdet = model.forward_and_logdet(u)
        sign = None
    dens = torch.exp(-nll_per_event(z.double(), logdet.double(), include_constant=True)).cpu().numpy()
    # a singular Jacobian (logdet = -inf) has density 0 there; NaN can only come from such points
    return np.where(np.isfinite(dens), dens, 0.0), sign


def _check_int(name: str, value: Any, lo: int, where: str = "box_normalisation") -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo:
        raise ValueError(f"{where}: {name} must be an integer >= {lo}, got {value!r}")
    return int(value)


def box_normalisation(model: torch.nn.Module, n_features: int, *, seed: int | np.random.Generator,
                      n_points: int = 1 << 17, n_replicates: int = 16, method: str = "sobol",
                      lo: float = 0.0, hi: float = math.pi, majority: int | None = None,
                      folds: bool | None = None, batch_size: int = 8192) -> dict[str, Any]:
    """``Z = ∫ p(u) du`` over the box ``[lo, hi]^n_features`` (module docstring) with its error.

    ``n_points`` points in all, in ``n_replicates`` independent replicates (for ``"sobol"``
    ``n_points / n_replicates`` is rounded up to a power of 2, the sizes at which a Sobol' set is
    balanced). ``folds`` (default: whether the model has ``forward_and_jacobian``) adds the fold
    statistics; ``majority`` is the sign of ``det J`` that the data see (+1/-1, e.g.
    :func:`majority_sign` of the test events' :func:`jacobian_signs`); without it, the sign that
    carries more of the model's mass in the box.

    Returns ``{"z", "z_err", "log_z", "log_z_err", "method", "n_points", "n_replicates"}`` and, with
    folds, ``"negative_fraction"`` (share of the box volume with det J < 0) with
    ``"negative_fraction_err"``, ``"minority_mass"`` (share of Z on the minority sign) with
    ``"minority_mass_err"``, and ``"majority_sign"``.
    """
    n_features = _check_int("n_features", n_features, 1)
    n_points = _check_int("n_points", n_points, 2)
    n_replicates = _check_int("n_replicates", n_replicates, 2)
    if method not in METHODS:
        raise ValueError(f"box_normalisation: method must be one of {METHODS}, got {method!r}")
    if not (math.isfinite(lo) and math.isfinite(hi) and hi > lo):
        raise ValueError(f"box_normalisation: need finite hi > lo, got [{lo}, {hi}]")
    if majority not in (None, 1, -1):
        raise ValueError(f"box_normalisation: majority must be +1, -1 or None, got {majority!r}")
    if folds is None:
        folds = callable(getattr(model, "forward_and_jacobian", None))
    elif folds and not callable(getattr(model, "forward_and_jacobian", None)):
        raise TypeError(f"box_normalisation: folds need forward_and_jacobian, which {type(model).__name__} lacks")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    per = -(-n_points // n_replicates)
    if method == "sobol":
        per = 1 << max(1, math.ceil(math.log2(per)))
    volume = (hi - lo) ** n_features

    z_rep, neg_rep, mass_pos, mass_neg = [], [], [], []
    was_training = model.training
    model.eval()
    try:
        for _ in range(n_replicates):
            if method == "sobol":
                pts = qmc.Sobol(n_features, scramble=True, rng=rng).random_base2(int(math.log2(per)))
            else:
                pts = rng.random((per, n_features))
            u = torch.as_tensor(lo + (hi - lo) * pts, dtype=torch.float64)
            dens, signs = [], []
            for s in range(0, per, batch_size):
                d, sg = _density_and_sign(model, u[s:s + batch_size], folds)
                dens.append(d)
                signs.append(sg)
            d = np.concatenate(dens)
            z_rep.append(volume * d.mean())
            if folds:
                sg = np.concatenate(signs)
                neg_rep.append(float((sg < 0).mean()))
                mass_pos.append(volume * float(d[sg > 0].sum()) / per)
                mass_neg.append(volume * float(d[sg < 0].sum()) / per)
    finally:
        model.train(was_training)

    def mean_err(values: list[float]) -> tuple[float, float]:
        a = np.asarray(values, dtype=np.float64)
        return float(a.mean()), float(a.std(ddof=1) / math.sqrt(a.size))

    z, z_err = mean_err(z_rep)
    out: dict[str, Any] = {"z": z, "z_err": z_err, "log_z": math.log(z) if z > 0 else float("-inf"),
                           "log_z_err": z_err / z if z > 0 else float("nan"), "method": method,
                           "n_points": int(per * n_replicates), "n_replicates": int(n_replicates)}
    if folds:
        out["negative_fraction"], out["negative_fraction_err"] = mean_err(neg_rep)
        if majority is None:
            majority = 1 if sum(mass_pos) >= sum(mass_neg) else -1
        minority = mass_neg if majority == 1 else mass_pos
        share = [m / zr if zr > 0 else float("nan") for m, zr in zip(minority, z_rep)]
        out["minority_mass"], out["minority_mass_err"] = mean_err(share)
        out["majority_sign"] = int(majority)
    return out


def bijection_box_mass(u: Any, n_drawn: int, *, lo: float = 0.0, hi: float = math.pi) -> dict[str, Any]:
    """``Z`` of an exact bijection from its own samples (module docstring): the share of ``n_drawn``
    latent draws whose image ``u`` (scaled features, ``(N, n)``, the finite ones of the draws; rows
    missing from ``n_drawn`` count as outside) lies in ``[lo, hi]^n``. The error is binomial,
    ``sqrt(p̃ (1 - p̃) / n_drawn)`` with ``p̃ = (k + 1) / (n_drawn + 2)``, so that it does not
    vanish when every sample lies inside. Returns the keys of :func:`box_normalisation` (without
    folds), ``method = "samples"``."""
    if isinstance(u, torch.Tensor):
        u = u.detach().cpu().double().numpy()
    u = np.asarray(u, dtype=np.float64)
    if u.ndim != 2:
        raise ValueError(f"bijection_box_mass: u must be a 2-D (events, features) array, got shape {u.shape}")
    n_drawn = _check_int("n_drawn", n_drawn, 1, "bijection_box_mass")
    if u.shape[0] > n_drawn:
        raise ValueError(f"bijection_box_mass: {u.shape[0]} samples but n_drawn = {n_drawn}")
    k = int(np.all((u >= lo) & (u <= hi), axis=1).sum())
    z = k / n_drawn
    p = (k + 1) / (n_drawn + 2)
    z_err = math.sqrt(p * (1.0 - p) / n_drawn)
    return {"z": z, "z_err": z_err, "log_z": math.log(z) if z > 0 else float("-inf"),
            "log_z_err": z_err / z if z > 0 else float("nan"), "method": "samples",
            "n_points": int(n_drawn), "n_replicates": 1}


def normalised_nll(nll: float, nll_err: float, log_z: float, log_z_err: float) -> tuple[float, float]:
    """``(NLL + ln Z, its error)``: the NLL of the density normalised over the box, errors added in
    quadrature (delta method; the test events and the box points are independent)."""
    return float(nll + log_z), float(math.hypot(nll_err, log_z_err))
