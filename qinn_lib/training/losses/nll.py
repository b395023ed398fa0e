"""The density-estimation loss (sec. 2.1): negative log-likelihood under a standard normal latent.

- :func:`nll_per_event`: ``-log p(x|theta)`` per event from the change of variables, eq. 5,
  constant included, so that values of different models (and an analytic density) can be
  compared: the metric.
- :func:`nll`: the training loss eq. 7 with ``tau = 0`` (footnote 1), its ``log|J|`` floored at
  :data:`LOGDET_FLOOR` so that one event on a fold of the forward map cannot make a batch loss
  infinite.

``z`` is the latent ``f(x)`` of shape ``(B, n)`` and ``logdet`` is ``log|det dz/dx|`` per event,
shape ``(B,)``.
"""

from __future__ import annotations

import math

import torch

__all__ = ['nll_per_event', 'nll']


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


#: Floor of log|det J| in the training loss :func:`nll`: the log of float32's smallest normal number.
LOGDET_FLOOR = math.log(torch.finfo(torch.float32).tiny)


def nll(z: torch.Tensor, logdet: torch.Tensor) -> torch.Tensor:
    """Training loss eq. 7 with ``tau = 0``: ``mean(||z||^2 / 2 - log|J|)``.

    The paper drops the weight prior for the quantum parameters (footnote 1), and the additive
    constant ``(n/2) log(2 pi)`` does not change gradients, so it is left out (as in eq. 7).

    ``log|J|`` is floored at :data:`LOGDET_FLOOR` (about -87). Why: a forward map that folds
    (notebook 06; the QINN's is not injective) has ``det J = 0`` on the fold, and an event that
    lands there in float32 gets ``-log|J| = +inf``: one such event made the whole batch loss
    infinite and stopped a 200-epoch NLL-only run in epoch 12, although its density is merely
    below what float32 represents. Above the floor the loss is unchanged bit for bit; at the floor
    the event's ``log|J|`` passes no gradient (a singular J gives a non-finite one, which the
    trainer then skips as one batch, counted in the history). The metric
    :func:`nll_per_event` is not floored: a test event on a fold still reports an infinite NLL.
    """
    _check_latent(z, logdet)
    return (0.5 * z.pow(2).sum(dim=1) - logdet.clamp(min=LOGDET_FLOOR)).mean()
