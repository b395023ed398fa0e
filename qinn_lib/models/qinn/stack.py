"""Several QINNs of one architecture evaluated as one batched computation (seeds in lockstep).

Why: a QINN training step is ~860 tiny tensor ops on a 32-amplitude state, so its cost is the
per-op dispatch, not the arithmetic. K models of the same architecture (the seeds of an ensemble,
or ablations that change only the loss) run the *same* ops on K times the data when their
parameters are stacked along a leading model axis: the custom Functions of
:mod:`qinn_lib.models.qinn.autograd` take that axis (weights ``(K, L, n, 3)``, angles
``(K, B, n)``), and the ISP network g_C becomes K batched matrix products. The cost per model
then falls roughly as 1/K until the arithmetic itself dominates (``python -m qinn_lib.bench``).

Every member stays an ordinary :class:`~qinn_lib.models.qinn.model.QINN` with its own parameters
(the stack holds no weights of its own; it stacks the members' tensors in every call, so autograd
sends each member exactly its own gradient), so each member keeps its own optimiser, schedule,
checkpoint and divergence decision in :func:`qinn_lib.training.loop.train_lockstep`, and a
member's checkpoint is a plain QINN checkpoint.

Agreement with a member evaluated alone: the circuit Functions do the same arithmetic per model;
the matrix products are batched (``bmm`` instead of ``mm``), whose summation order may differ, so
values agree to float rounding, not bit for bit (tested against the members alone, and the
members against PennyLane in ``tests/test_qinn.py``).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from qinn_lib.models.qinn import real_autograd
from qinn_lib.models.qinn.autograd import _CircuitUnitary, _ForwardMeasure, _InverseMeasure, _RotProductState
from qinn_lib.models.qinn.model import QINN, StepMaps
from qinn_lib.models.qinn.simulator import _abs2, _tables, ry_state

__all__ = ["QINNStack"]


def _architecture(m: QINN) -> tuple:
    return (m.n_features, m.n_layers, m.isp_layers, m.isp_nn_layers, m.isp_hidden, m.dtype, m.a.device)


class QINNStack(nn.Module):
    """K QINNs of one architecture, dtype and device, evaluated together.

    The maps take and return lists (member ``k`` gets ``xs[k]``), the protocol of the lockstep
    objective (:meth:`qinn_lib.training.objectives.QINNObjective.stacked`); :meth:`step_maps`
    gives the same maps on stacked ``(K, B, n)`` tensors, sharing one build of the unitaries.
    """

    def __init__(self, members: Sequence[QINN]) -> None:
        super().__init__()
        members = list(members)
        if not members:
            raise ValueError("QINNStack needs at least one member")
        for i, m in enumerate(members):
            if not isinstance(m, QINN):
                raise TypeError(f"QINNStack: member {i} is a {type(m).__name__}, not a QINN")
        arch = {_architecture(m) for m in members}
        if len(arch) != 1:
            raise ValueError(f"QINNStack: the members must share one architecture, dtype and device; got {sorted(map(str, arch))}")
        self.members = nn.ModuleList(members)
        self.n_features = members[0].n_features

    #: As :attr:`QINN.step_arithmetic`: real (re, im) pairs inside a compiled step, complex otherwise.
    step_arithmetic = "auto"

    def __len__(self) -> int:
        return len(self.members)

    # -- stacked parameters --------------------------------------------------------------------
    def _stacked(self, name: str) -> torch.Tensor:
        return torch.stack([getattr(m, name) for m in self.members])

    def _clamped_ab(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Each member's :meth:`QINN.clamped_ab`, stacked ``(K, 1, n)`` (elementwise, so equal bit for bit)."""
        a = torch.clamp(self._stacked("a"), 0.0, 1.0)
        b = torch.clamp(self._stacked("b"), min=torch.zeros_like(a), max=1.0 - a)
        return a.unsqueeze(1), b.unsqueeze(1)

    def _isp_net(self, probs: torch.Tensor) -> torch.Tensor:
        """g_C of every member on its own rows: ``(K, B, n) -> (K, B, 3n)``; the Linear layers as
        batched products with the members' stacked weights, SiLU between them (as QINN.isp_net)."""
        h = probs
        layers = [list(m.isp_net) for m in self.members]
        for j, layer in enumerate(layers[0]):
            if isinstance(layer, nn.Linear):
                weight = torch.stack([ls[j].weight for ls in layers])  # (K, out, in)
                bias = torch.stack([ls[j].bias for ls in layers])  # (K, out)
                h = torch.baddbmm(bias.unsqueeze(1), h, weight.transpose(1, 2))
            else:
                h = layer(h)
        return h

    # -- the maps, on stacked tensors ------------------------------------------------------------
    def step_maps(self) -> StepMaps:
        """Like :meth:`QINN.step_maps`, for all members at once on stacked ``(K, B, n)`` inputs:
        both unitaries of every member built once for the call, no input checks (the trainer's
        batches are prepared data). Real or complex arithmetic as :meth:`QINN.step_maps`
        (:attr:`step_arithmetic`)."""
        real = real_autograd.use_real(self.step_arithmetic)
        unitary = real_autograd.circuit_unitary if real else _CircuitUnitary.apply
        measure = real_autograd.forward_measure if real else _ForwardMeasure.apply
        inverse_measure = real_autograd.inverse_measure if real else _InverseMeasure.apply
        u = unitary(self._stacked("weights"))  # (K, dim, dim), a (re, im) pair if real
        g_q = unitary(self._stacked("isp_weights"))
        a, b = self._clamped_ab()
        c, d = self._stacked("c").unsqueeze(1), self._stacked("d").unsqueeze(1)  # (K, 1, n)
        n = self.n_features
        tab = _tables(n, a.device, a.dtype)

        def encode(x: torch.Tensor) -> torch.Tensor:
            return a * x + math.pi * b  # eq. 12's state preparation, sec. 3

        def forward_and_logdet(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            probs, dprobs = measure(encode(x), u, True)
            jac = dprobs * (c.transpose(1, 2) * a).unsqueeze(1)  # J = diag(c) dP/dx' diag(a), eq. 5-7
            return c * probs + d, torch.linalg.slogdet(jac).logabsdet

        def inverse(z: torch.Tensor) -> torch.Tensor:
            psi = self._isp_net((z - d) / c).unflatten(-1, (n, 3))  # eq. 21
            return (inverse_measure(psi, u, g_q) - math.pi * b) / a  # eq. 13-15, 22

        def fidelity(x: torch.Tensor) -> torch.Tensor:
            if real:
                return real_autograd.fidelity(ry_state(encode(x)), u, g_q,
                                              lambda p: self._isp_net(p).unflatten(-1, (n, 3)), tab["bits"])
            y = ry_state(encode(x)).to(u.dtype) @ u.transpose(-1, -2)
            prepared = _RotProductState.apply(self._isp_net(_abs2(y) @ tab["bits"]).unflatten(-1, (n, 3)))
            y_tilde = prepared @ g_q.transpose(-1, -2)
            return _abs2((y_tilde.conj() * y).sum(-1))  # eq. 17

        return StepMaps(forward_and_logdet=forward_and_logdet, inverse=inverse, fidelity=fidelity)

    # -- the maps, on lists (the lockstep objective's protocol) ---------------------------------
    def _check(self, name: str, xs: Sequence[torch.Tensor]) -> torch.Tensor:
        if len(xs) != len(self.members):
            raise ValueError(f"QINNStack: {len(xs)} {name} batches for {len(self.members)} members")
        return torch.stack([m._batch(f"{name}[{k}]", x) for k, (m, x) in enumerate(zip(self.members, xs))])

    def forward_and_logdet(self, xs: Sequence[torch.Tensor]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        z, logdet = self.step_maps().forward_and_logdet(self._check("x", xs))
        return list(zip(z.unbind(0), logdet.unbind(0)))

    def inverse(self, zs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        return list(self.step_maps().inverse(self._check("z", zs)).unbind(0))

    def fidelity(self, xs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        return list(self.step_maps().fidelity(self._check("x", xs)).unbind(0))
