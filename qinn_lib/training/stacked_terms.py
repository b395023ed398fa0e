"""The QINN loss terms of every member of a lockstep stack at once, on stacked ``(K, B, n)`` tensors.

:meth:`qinn_lib.training.objectives.QINNObjective._terms` computes each member's terms in a loop
(one NLL, three MMDs and one invertibility loss per member): at these sizes each of those ops costs
its dispatch, so K members cost K times as much. Here every term is one computation over the
member axis: the NLL and the invertibility losses reduce over the event axis only, the three MMDs
are :func:`qinn_lib.training.losses.mmd.stacked_mmd` (the same quadratic form on a (K, ...) tensor).
The terms, their weights and their order are the objective's own (sec. 4, Table 1); each member's
values equal :meth:`~qinn_lib.training.objectives.QINNObjective.__call__` on that member to float
rounding (tested in ``tests/test_qinn_stack.py``).
"""

from __future__ import annotations

from typing import Any

import torch

from qinn_lib.training.losses.mmd import stacked_mmd
from qinn_lib.training.losses.nll import LOGDET_FLOOR

__all__ = ["stacked_terms"]


def _feature_mmd(objective: Any, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """:meth:`QINNObjective._feature_mmd` per member: one joint n-d MMD or the sum of 1-d MMDs."""
    if objective.mmd_mode == "joint":
        return stacked_mmd(a, b, objective.widths, "gauss")
    return sum(stacked_mmd(a[..., i:i + 1], b[..., i:i + 1], objective.widths, "gauss") for i in range(a.shape[-1]))


def _mass(objective: Any, u: torch.Tensor) -> torch.Tensor:
    """M_ll in GeV of scaled features ``(K, B, n)`` -> ``(K, B)`` (the objective's scaler and mass map)."""
    flat = u.reshape(-1, u.shape[-1])
    return objective._mass(objective._to_physical(flat)).view(u.shape[:-1])


def stacked_terms(objective: Any, maps: Any, x: torch.Tensor, z_s: torch.Tensor | None) -> list[dict[str, torch.Tensor]]:
    """Every member's loss terms: ``x`` and the latent samples ``z_s`` are ``(K, B, n)``; ``maps``
    are a stack's :meth:`~qinn_lib.models.qinn.stack.QINNStack.step_maps`. Returns one dict per
    member, keys in the order of :meth:`QINNObjective._terms` (``loss`` first)."""
    w = objective.weights
    batch = x.shape[1]
    terms: dict[str, torch.Tensor] = {}
    z, logdet = maps.forward_and_logdet(x)
    terms["nll"] = (0.5 * z.pow(2).sum(-1) - logdet.clamp(min=LOGDET_FLOOR)).mean(-1)  # eq. 7 (tau = 0)
    if w["mmd_latent"] > 0:
        terms["mmd_latent"] = _feature_mmd(objective, z, z_s)  # eq. 9-10 on the latent side
    need_gen = w["mmd_input"] > 0 or w["mmd_mz"] > 0
    need_rec = w["inv"] > 0 and objective.invertibility == "mse"
    x_gen = x_rec = None
    if need_gen and need_rec:  # one inverse call for the round trip and the generated sample
        x_rec, x_gen = maps.inverse(torch.cat([z, z_s], dim=1)).split(batch, dim=1)
    elif need_gen:
        x_gen = maps.inverse(z_s)
    elif need_rec:
        x_rec = maps.inverse(z)
    if need_gen:
        if w["mmd_input"] > 0:
            terms["mmd_input"] = _feature_mmd(objective, x, x_gen)
        if w["mmd_mz"] > 0:  # eq. 9, 11 on M_ll in GeV
            terms["mmd_mz"] = stacked_mmd(_mass(objective, x).unsqueeze(-1), _mass(objective, x_gen).unsqueeze(-1),
                                          objective.widths, "breit_wigner")
    if w["inv"] > 0:
        if objective.invertibility == "mse":  # eq. 20
            sq = (x - x_rec).pow(2)
            terms["inv"] = sq.mean((-2, -1)) if objective.mse_reduction == "mean" else sq.sum(-1).mean(-1)
        else:  # eq. 17-18
            fid = maps.fidelity(x)
            terms["inv"] = -torch.log(fid.clamp_min(torch.finfo(fid.dtype).tiny)).mean(-1)
    loss = objective._total(terms)  # the objective's own weighting, elementwise over the members
    return [{"loss": loss[k], **{name: value[k] for name, value in terms.items()}} for k in range(x.shape[0])]
