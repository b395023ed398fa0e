"""The invertibility losses of the QINN's learned inverse state preparation (sec. 3.1).

Both are returned without their weight lambda (the objective applies it):

- :func:`mse_invertibility`: eq. 20, ``(x - x_tilde)^2`` between the input and its round trip
  through the measurement, the ISP and ``U^dagger`` (eq. 19). How the n features combine is a
  reading of the paper (``reduction``).
- :func:`fidelity_invertibility`: eq. 18 on the SWAP-test fidelity ``F`` of eq. 17, as
  ``-mean(log F)``: with the paper's sign, minimising would drive ``F`` to 0.

Which of the two a QINN trains with is its config's ``invertibility``; sec. 4 compares them.
"""

from __future__ import annotations

import torch

__all__ = ['mse_invertibility', 'fidelity_invertibility']


# -- invertibility (sec. 3.1) --------------------------------------------------------------------
def mse_invertibility(x: torch.Tensor, x_tilde: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Eq. 20 without its weight. The paper writes ``(x - x_tilde)^2`` without saying how the n
    features combine: ``reduction="mean"`` (the default, used by every run so far) averages over
    events and features; ``"sum"`` sums over the features and averages over events,
    ``mean ||x - x_tilde||^2``, i.e. n times "mean" (with Table 1's lambda = 10 an effective 10 n)."""
    if x.shape != x_tilde.shape:
        raise ValueError(f"x and x_tilde must have the same shape, got {tuple(x.shape)} and {tuple(x_tilde.shape)}")
    if reduction == "mean":
        return (x - x_tilde).pow(2).mean()
    if reduction == "sum":
        return (x - x_tilde).pow(2).sum(dim=-1).mean()
    raise ValueError(f"mse_invertibility: reduction must be 'mean' or 'sum', got {reduction!r}")


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
