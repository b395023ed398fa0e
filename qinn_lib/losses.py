"""Loss functions of the paper (sec. 2.1, 2.2, 3.1) and the full QINN objective (sec. 4, Table 1).

The functions are pure: tensors in, scalar (or per-event) tensors out, differentiable wherever the
equation is. :class:`QINNObjective` combines them with the weights of Table 1.

Conventions
-----------
* Features ``x`` are the scaled features in ``[0, pi]`` of shape ``(B, n)``; latents ``z`` have the
  same shape; ``logdet`` is ``log|det dz/dx|`` per event, shape ``(B,)``.
* MMD losses return the *squared* MMD of eq. 9 (that is what the paper minimises), as the biased
  V-statistic: every mean runs over all pairs, the diagonal ``k(x, x)`` included, exactly as eq. 9
  writes ``mean k(X, X)``. Unlike the unbiased U-statistic it is a squared RKHS norm (eq. 8) and
  therefore never negative (up to rounding), and two identical samples give exactly zero. Its bias,
  ``(mean k(x,x) - mean k(x,x'))/N`` per sample, depends on the batch size only, so losses computed
  with the same batch size stay comparable.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import torch

__all__ = [
    "nll",
    "nll_per_event",
    "gaussian_mmd",
    "breit_wigner_mmd",
    "mse_invertibility",
    "fidelity_invertibility",
    "QINNObjective",
    "INNObjective",
    "LOSS_TERMS",
]

#: Names of the unweighted terms :class:`QINNObjective` may return (besides ``"loss"``).
LOSS_TERMS = ("nll", "mmd_latent", "mmd_input", "mmd_mz", "inv")


# -- density estimation (sec. 2.1) ---------------------------------------------------------------
def _check_latent(z: torch.Tensor, logdet: torch.Tensor) -> None:
    if z.ndim != 2:
        raise ValueError(f"z must have shape (B, n), got {tuple(z.shape)}")
    if logdet.shape != (z.shape[0],):
        raise ValueError(
            f"logdet must have shape (B,) = ({z.shape[0]},) matching z, got {tuple(logdet.shape)}"
        )


def nll_per_event(z: torch.Tensor, logdet: torch.Tensor, include_constant: bool = True) -> torch.Tensor:
    """Negative log-density ``-log p(x|theta)`` per event, from eq. 5.

    ``-log p(x) = ||z||^2 / 2 + (n/2) log(2 pi) - log|det dz/dx|`` with ``z = f(x)``. The constant
    makes it a true negative log-density, so values of different models (and the analytic density
    of a test distribution) can be compared; ``include_constant=False`` gives the per-event
    summand of eq. 7.
    """
    _check_latent(z, logdet)
    out = 0.5 * z.pow(2).sum(dim=1) - logdet
    if include_constant:
        out = out + 0.5 * z.shape[1] * math.log(2.0 * math.pi)
    return out


def nll(z: torch.Tensor, logdet: torch.Tensor) -> torch.Tensor:
    """Training loss eq. 7 with ``tau = 0``: ``mean(||z||^2 / 2 - log|J|)``.

    The paper drops the weight prior for the quantum parameters (footnote 1), and the additive
    constant ``(n/2) log(2 pi)`` does not change gradients, so it is left out (as in eq. 7).
    """
    return nll_per_event(z, logdet, include_constant=False).mean()


# -- maximum mean discrepancy (sec. 2.2) ---------------------------------------------------------
def _as_points(t: torch.Tensor, name: str) -> torch.Tensor:
    if t.ndim == 1:
        return t.unsqueeze(1)
    if t.ndim != 2:
        raise ValueError(f"{name} must have shape (N,) or (N, d), got {tuple(t.shape)}")
    if t.shape[0] == 0:
        raise ValueError(f"{name} is empty; MMD needs at least one sample")
    return t


def _squared_distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    # Direct differences instead of ||a||^2 + ||b||^2 - 2 a.b: the expansion cancels
    # catastrophically for close points (and can turn negative), while the direct form gives
    # exactly 0 on the diagonal. Memory is N*M*d, tiny for the batch sizes used here.
    return (a.unsqueeze(1) - b.unsqueeze(0)).pow(2).sum(dim=-1)


def _widths(widths: Sequence[float] | float) -> tuple[float, ...]:
    ws = (float(widths),) if isinstance(widths, (int, float)) else tuple(float(w) for w in widths)
    if not ws or any(not (w > 0.0) or math.isinf(w) for w in ws):
        raise ValueError(f"kernel widths must be a non-empty list of positive finite numbers, got {widths!r}")
    return ws


def _mmd(x: torch.Tensor, y: torch.Tensor, widths: Sequence[float] | float,
         kernel: Callable[[torch.Tensor, float], torch.Tensor]) -> torch.Tensor:
    x = _as_points(x, "x")
    y = _as_points(y, "y")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y must have the same feature dimension, got {x.shape[1]} and {y.shape[1]}")
    ws = _widths(widths)
    d_xx = _squared_distances(x, x)
    d_yy = _squared_distances(y, y)
    d_xy = _squared_distances(x, y)
    total = x.new_zeros(())
    # Multi-kernel MMD (end of sec. 2.2): sum of the single-width MMDs, i.e. the MMD of the summed
    # kernel, so at least one width gives a non-vanishing gradient.
    for w in ws:
        total = total + kernel(d_xx, w).mean() + kernel(d_yy, w).mean() - 2.0 * kernel(d_xy, w).mean()
    return total


def _gauss_kernel(d2: torch.Tensor, sigma: float) -> torch.Tensor:
    return torch.exp(-d2 / (2.0 * sigma * sigma))  # eq. 10


def _breit_wigner_kernel(d2: torch.Tensor, sigma: float) -> torch.Tensor:
    s2 = sigma * sigma
    return s2 / (s2 + d2)  # eq. 11


def gaussian_mmd(x: torch.Tensor, y: torch.Tensor, widths: Sequence[float] | float) -> torch.Tensor:
    """Squared MMD, eq. 9, with the Gaussian kernel eq. 10 summed over ``widths``.

    ``x``: ``(N, d)`` or ``(N,)``; ``y``: ``(M, d)`` or ``(M,)``. V-statistic (see module docstring).
    """
    return _mmd(x, y, widths, _gauss_kernel)


def breit_wigner_mmd(x: torch.Tensor, y: torch.Tensor, widths: Sequence[float] | float) -> torch.Tensor:
    """Squared MMD, eq. 9, with the Breit-Wigner kernel eq. 11, ``s^2 / (s^2 + ||x-y||^2)``,
    summed over ``widths`` (in the units of ``x``, e.g. GeV for ``M_ll``)."""
    return _mmd(x, y, widths, _breit_wigner_kernel)


# -- invertibility (sec. 3.1) --------------------------------------------------------------------
def mse_invertibility(x: torch.Tensor, x_tilde: torch.Tensor) -> torch.Tensor:
    """Eq. 20 without its weight: mean over events and features of ``(x - x_tilde)^2``."""
    if x.shape != x_tilde.shape:
        raise ValueError(f"x and x_tilde must have the same shape, got {tuple(x.shape)} and {tuple(x_tilde.shape)}")
    return (x - x_tilde).pow(2).mean()


def fidelity_invertibility(fidelity: torch.Tensor) -> torch.Tensor:
    """Eq. 18 without its weight, signed so that minimising it raises the fidelity: ``-mean(log F)``.

    The paper writes ``L_F = lambda_F log(F)``, which would be *minimised* by driving ``F`` to 0;
    the minus sign is evidently omitted there (``F <= 1``, so ``-log F >= 0`` with its minimum at
    ``F = 1``, a perfect inverse state preparation). ``F`` is clamped below at the smallest normal
    number of its dtype so that an orthogonal pair of states gives a large finite loss, not ``inf``
    (the clamp zeroes the gradient of such events; they are rare once training has started).
    """
    if fidelity.ndim != 1:
        raise ValueError(f"fidelity must have shape (B,), got {tuple(fidelity.shape)}")
    tiny = torch.finfo(fidelity.dtype).tiny
    return -torch.log(fidelity.clamp_min(tiny)).mean()


# -- the training objectives (sec. 4, Table 1) ----------------------------------------------------
class QINNObjective:
    """The weighted QINN training loss of sec. 4 with the weights of Table 1.

    ``loss = nll + lambda_mmd_latent * mmd_latent + lambda_mmd_input * mmd_input
    + lambda_mz * mmd_mz + lambda_inv * inv`` where

    * ``nll``: eq. 7 (tau = 0) on ``z, logdet = model.forward_and_logdet(x)``;
    * ``mmd_latent``: Gaussian MMD (eq. 9-10) between ``z`` and a fresh ``N(0, 1)`` sample
      ``z_s`` of the same size (sec. 2.2: "MMD on both the latent and input sides");
    * ``mmd_input``: Gaussian MMD between ``x`` and ``x_gen = model.inverse(z_s)``;
    * ``mmd_mz``: Breit-Wigner MMD (eq. 9, 11) between ``M_ll`` of the data and of ``x_gen``, both
      mapped back to physical units with the scaler, widths in GeV;
    * ``inv``: eq. 20 between ``x`` and ``model.inverse(z)`` (``cfg.invertibility == "mse"``) or
      eq. 17-18 on ``model.fidelity(x)`` (``"fidelity"``).

    Terms whose weight is 0 are not computed and do not appear in the returned dict. The same
    kernel widths ``cfg.mmd_widths`` serve every MMD (Table 1 lists one set).

    Parameters
    ----------
    cfg : QINNRunConfig (any object with the ``lambda_*``, ``mmd_widths`` and ``invertibility``
        fields).
    scaler : AngleScaler (needed only when ``lambda_mz > 0``). Its inverse is converted to torch
        tensors once per dtype/device and cached, so no numpy -> torch conversion (and no NaN
        check that would pre-empt the trainer's divergence report) happens per step. Any other
        object with ``inverse_torch(u)`` also works (called as is).
    mass_fn : maps physical features ``(B, 5)`` to ``M_ll`` in GeV ``(B,)``; defaults to
        :func:`qinn_lib.observables.invariant_mass_torch` (imported on first use).
    """

    def __init__(self, cfg: Any, scaler: Any = None, *,
                 mass_fn: Callable[[torch.Tensor], torch.Tensor] | None = None) -> None:
        self._setup(
            weights={
                "mmd_latent": float(cfg.lambda_mmd_latent),
                "mmd_input": float(cfg.lambda_mmd_input),
                "mmd_mz": float(cfg.lambda_mz),
                "inv": float(cfg.lambda_inv),
            },
            widths=cfg.mmd_widths, invertibility=cfg.invertibility, scaler=scaler, mass_fn=mass_fn,
        )

    def _setup(self, *, weights: dict[str, float], widths: Any, invertibility: str, scaler: Any,
               mass_fn: Callable[[torch.Tensor], torch.Tensor] | None) -> None:
        if invertibility not in ("mse", "fidelity"):
            raise ValueError(f"invertibility must be 'mse' or 'fidelity', got {invertibility!r}")
        self.invertibility = invertibility
        self.widths = _widths(widths)
        self.weights = weights
        if self.weights["mmd_mz"] > 0.0 and scaler is None:
            raise ValueError(f"{type(self).__name__} needs the AngleScaler (scaler=...) when lambda_mz > 0")
        self.scaler = scaler
        self._mass_fn = mass_fn
        self._inverse_cache: dict[tuple[torch.dtype, torch.device], tuple[torch.Tensor, torch.Tensor]] = {}

    def _to_physical(self, u: torch.Tensor) -> torch.Tensor:
        lo, hi = getattr(self.scaler, "lo", None), getattr(self.scaler, "hi", None)
        if lo is None or hi is None:
            return self.scaler.inverse_torch(u)
        key = (u.dtype, u.device)
        cached = self._inverse_cache.get(key)
        if cached is None:
            # AngleScaler's inverse map x = lo + (u / pi) (hi - lo) with the constants converted
            # once, in the input's dtype (agrees with AngleScaler.inverse_torch to rounding; tested).
            lo_t = torch.as_tensor(lo, dtype=u.dtype, device=u.device)
            width = torch.as_tensor(hi, dtype=u.dtype, device=u.device) - lo_t
            cached = self._inverse_cache[key] = (lo_t, width)
        lo_t, width = cached
        if u.shape[-1] != lo_t.shape[0]:
            raise ValueError(f"expected {lo_t.shape[0]} features to map back to physical units, got shape {tuple(u.shape)}")
        return lo_t + (u / math.pi) * width

    def _mass(self, features_physical: torch.Tensor) -> torch.Tensor:
        if self._mass_fn is None:
            from .observables import invariant_mass_torch  # lazy: keep `import losses` light

            self._mass_fn = invariant_mass_torch
        return self._mass_fn(features_physical)

    def __call__(self, model: torch.nn.Module, x: torch.Tensor,
                 generator: torch.Generator | None) -> dict[str, torch.Tensor]:
        """Loss terms on the batch ``x`` (scaled features, ``(B, n)``).

        ``generator`` drives the latent sample (``torch.randn`` on the CPU, then moved to
        ``x.device``), so a run is reproducible from its seed.
        """
        if x.ndim != 2:
            raise ValueError(f"x must have shape (B, n), got {tuple(x.shape)}")
        w = self.weights
        terms: dict[str, torch.Tensor] = {}

        # One forward pass serves the NLL, the latent MMD and the MSE inverse.
        z, logdet = model.forward_and_logdet(x)
        terms["nll"] = nll(z, logdet)

        need_sample = w["mmd_latent"] > 0 or w["mmd_input"] > 0 or w["mmd_mz"] > 0
        if need_sample:
            z_s = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
        if w["mmd_latent"] > 0:
            terms["mmd_latent"] = gaussian_mmd(z, z_s, self.widths)
        if w["mmd_input"] > 0 or w["mmd_mz"] > 0:
            x_gen = model.inverse(z_s)
            if w["mmd_input"] > 0:
                terms["mmd_input"] = gaussian_mmd(x, x_gen, self.widths)
            if w["mmd_mz"] > 0:
                m_data = self._mass(self._to_physical(x))
                m_gen = self._mass(self._to_physical(x_gen))
                terms["mmd_mz"] = breit_wigner_mmd(m_data, m_gen, self.widths)
        if w["inv"] > 0:
            if self.invertibility == "mse":
                terms["inv"] = mse_invertibility(x, model.inverse(z))  # eq. 20
            else:
                terms["inv"] = fidelity_invertibility(model.fidelity(x))  # eq. 17-18

        loss = terms["nll"]
        for name, value in terms.items():
            if name != "nll":
                loss = loss + w[name] * value
        return {"loss": loss, **terms}

    @torch.no_grad()
    def evaluate(self, model: torch.nn.Module, x_val: torch.Tensor,
                 generator: torch.Generator | None) -> dict[str, torch.Tensor]:
        """The same terms as :meth:`__call__`, without building a graph (validation)."""
        return self(model, x_val, generator)


class INNObjective(QINNObjective):
    """The classical INN's loss (sec. 4, Table 1 INN column): ``nll + lambda_mz * mmd_mz``.

    The INN is exactly invertible, and the paper uses the input/latent MMDs for the QINN only
    ("The MMD loss on input and latent observables for the QINN ..."), so those weights are 0.
    ``cfg`` is an INNRunConfig (``lambda_mz``, ``mmd_widths``); the model needs
    ``forward_and_logdet`` and ``inverse``.
    """

    def __init__(self, cfg: Any, scaler: Any = None, *,
                 mass_fn: Callable[[torch.Tensor], torch.Tensor] | None = None) -> None:
        self._setup(
            weights={"mmd_latent": 0.0, "mmd_input": 0.0, "mmd_mz": float(cfg.lambda_mz), "inv": 0.0},
            widths=cfg.mmd_widths, invertibility="mse", scaler=scaler, mass_fn=mass_fn,
        )
