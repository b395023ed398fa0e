"""The QINN's forward map and Jacobian simulated gate by gate: the path for wide circuits.

The dense fast path of :mod:`qinn_lib.models.qinn.model` builds the circuit unitary U
(2^n x 2^n) once per call, which at the paper's 5 qubits is the cheapest way to push a whole
batch through the circuit (one matrix product). Building U costs L products of 2^n x 2^n
matrices, i.e. O(L 8^n), and holding it O(4^n): by about 10 qubits that dominates everything
(measured by :mod:`qinn_lib.experiments.bench_scaling`). Applying the gates one at a time to the
batch of states costs O(L n 2^n) per state instead, which is what this module does:

- the angle-encoded product state |x'> (eq. 12) and its n tangents d|x'>/dx'_i (the product
  state with factor i differentiated, as in the dense path's forward mode) are built as rows of
  one batch of 1 + n states per event;
- every layer of Fig. 2 is applied to all rows: ``Rot`` on each qubit in turn (a 2 x 2 matrix on
  the state tensor-reshaped so that qubit q is its own axis of length 2), then the CNOT ring as
  the fixed permutation of basis states of :func:`qinn_lib.models.qinn.simulator.cnot_ring_permutation`
  (the ring's n CNOTs are themselves a permutation; composing them is one gather instead of n);
- P(qubit k = 1) of the output state and dP_k/dx'_i = 2 Re sum_{bit_k(s)=1} conj(y_s) dy_{i,s}
  (eq. 5-7, 16) are read off the rows; z = c P + d and J = diag(c) (dP/dx') diag(a).

The circuit application is a custom autograd Function whose backward runs the gates in reverse,
recomputing each intermediate state from the next with the inverse gate (the gates are unitary)
rather than storing it: memory stays that of a few batches of states, whatever the depth (the
"adjoint" method of statevector simulators). Everything around it is plain torch, so
:func:`forward_and_jacobian` is differentiable by autograd w.r.t. every parameter (log det J
enters the NLL, eq. 7). Conventions as in :mod:`qinn_lib.models.qinn.simulator` (wire 0 most
significant; ``Rot(phi, theta, omega) = RZ(omega) RY(theta) RZ(phi)``). Tested against the dense
path and PennyLane in ``tests/test_statevector.py``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch

from qinn_lib.models.qinn.autograd import _ry_factors
from qinn_lib.models.qinn.simulator import _product_state_fm, _tables

if TYPE_CHECKING:  # pragma: no cover - typing only
    from qinn_lib.models.qinn.model import QINN

__all__ = ["rot_gates", "apply_circuit", "forward_and_jacobian", "forward_and_logdet"]


def _apply_1q(state: torch.Tensor, gate: torch.Tensor, q: int) -> torch.Tensor:
    """``gate`` (2, 2) on qubit q of contiguous states laid out (..., 2^n, M) (basis index, then columns).

    Viewed as (... 2^q, 2, 2^(n-1-q) M) the middle axis is qubit q's bit (wire 0 most significant);
    one batched matmul with the gate broadcast over the leading axis reads and writes the states
    once, without the transposing copies ``torch.matmul`` makes for a (2, 2) @ (b, 2, k) product
    (about half the time of the gate at 10 qubits, by torch.profiler).
    """
    v = state.view(-1, 2, state.shape[-2] * state.shape[-1] >> (q + 1))
    return torch.bmm(gate.expand(v.shape[0], 2, 2), v).view_as(state)


def rot_gates(weights: torch.Tensor) -> torch.Tensor:
    """``Rot(phi, theta, omega)`` matrices (..., 2, 2) for weights (..., 3), differentiable by autograd.

    The same matrices as :func:`qinn_lib.models.qinn.simulator.rot_matrices` (whose gradient the
    dense path computes by hand), assembled from real and imaginary parts: ``torch.polar``, which
    that function uses, has a wrong autograd gradient for negative magnitudes (torch 2.13; -sin and
    cos(theta/2) < 0 occur), so it is avoided here. Rot = [[e^{-i alpha} c, -e^{i beta} s],
    [e^{-i beta} s, e^{i alpha} c]] with c, s = cos, sin(theta/2), alpha = (phi+omega)/2,
    beta = (phi-omega)/2.
    """
    phi, theta, omega = weights.unbind(-1)
    c, s = torch.cos(0.5 * theta), torch.sin(0.5 * theta)
    alpha, beta = 0.5 * (phi + omega), 0.5 * (phi - omega)
    ca, sa, cb, sb = torch.cos(alpha), torch.sin(alpha), torch.cos(beta), torch.sin(beta)
    re = torch.stack([ca * c, -cb * s, cb * s, ca * c], -1)
    im = torch.stack([-sa * c, -sb * s, -sb * s, sa * c], -1)
    return torch.complex(re, im).unflatten(-1, (2, 2))


class _GateCircuit(torch.autograd.Function):
    """y = C R_{n-1} ... R_0 ... (layer by layer) applied to states (2^n, M), from the Rot matrices
    ``rots`` (L, n, 2, 2) of the layers (Fig. 2) and the ring's gather index.

    Backward (torch's complex convention, g = dL/dRe + i dL/dIm): for y_after = G y_before on one
    qubit, dL/dG = sum g_after y_before^H and g_before = G^H g_after; y_before = G^H y_after is
    recomputed, so nothing but the output is saved. State and gradient ride as one tensor
    (2, 2^n, M), so each inverse gate is one matmul for both. The ring is a permutation
    (y_after = y_before[ring]); its inverse is the gather by ``image`` (= ring^-1), for states
    and gradients alike.
    """

    @staticmethod
    def forward(ctx, rots: torch.Tensor, states: torch.Tensor, ring: torch.Tensor, image: torch.Tensor):
        n_layers, n = rots.shape[0], rots.shape[1]
        y = states
        for layer in range(n_layers):
            for q in range(n):
                y = _apply_1q(y, rots[layer, q], q)
            y = y.index_select(0, ring)
        ctx.save_for_backward(rots, y, image)
        return y

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_y: torch.Tensor):
        rots, y, image = ctx.saved_tensors
        n_layers, n = rots.shape[0], rots.shape[1]
        both = torch.stack([y, grad_y])  # (2, dim, M): the state and its gradient, one matmul per gate
        grad_rots = torch.empty_like(rots)
        adjoint = rots.mH
        for layer in reversed(range(n_layers)):
            both = both.index_select(1, image)
            for q in reversed(range(n)):
                g_after = both[1].view(1 << q, 2, -1)
                both = _apply_1q(both, adjoint[layer, q], q)  # the state before this gate, and g_before
                y_before = both[0].view(1 << q, 2, -1)
                grad_rots[layer, q] = torch.bmm(g_after, y_before.mH).sum(0)
        return grad_rots, both[1], None, None


def apply_circuit(weights: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
    """The model circuit U (Fig. 2) with layer weights (L, n, 3) applied gate by gate to complex
    states laid out (2^n, M) (basis index first, one column per state); returns (2^n, M).

    Equals ``circuit_unitary(weights) @ states`` (the dense path) without ever forming U.
    """
    if weights.ndim != 3 or weights.shape[-1] != 3:
        raise ValueError(f"apply_circuit: weights must have shape (L, n, 3), got {tuple(weights.shape)}")
    n = weights.shape[1]
    if not states.is_complex() or states.ndim != 2 or states.shape[0] != 1 << n:
        raise ValueError(f"apply_circuit: states must be complex of shape ({1 << n}, M), got "
                         f"{states.dtype} {tuple(states.shape)}")
    tab = _tables(n, weights.device, weights.dtype)
    return _GateCircuit.apply(rot_gates(weights), states.contiguous(), tab["ring"], tab["image"])


def forward_and_jacobian(model: "QINN", x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(z, J) of ``model`` at events x (B, n), gate by gate: what :meth:`QINN.forward_and_jacobian`
    returns (z = c P + d, eq. 16; ``J[b, k, i] = dz_k/dx_i``, eq. 5-7), to float rounding."""
    x = model._batch("x", x)
    n, batch = model.n_features, x.shape[0]
    dim = 1 << n
    tab = _tables(n, x.device, x.dtype)
    a, b = model.clamped_ab()
    f, df = _ry_factors(a * x + math.pi * b)  # (n, 2, B)
    # row 0 = |x'>, row 1 + i = d|x'>/dx'_i (factor i differentiated): (dim, 1 + n, B)
    states = _product_state_fm(torch.where(tab["tangent_mask"], df.unsqueeze(-2), f.unsqueeze(-2)))
    y = apply_circuit(model.weights, states.to(model.cdtype).reshape(dim, (n + 1) * batch))
    y = y.view(dim, n + 1, batch)
    yr, yi = y.real, y.imag
    prob = yr[:, 0].square() + yi[:, 0].square()  # (dim, B)
    probs = (tab["bits"].T @ prob).T  # (B, n)
    dprob = 2.0 * (yr[:, :1] * yr[:, 1:] + yi[:, :1] * yi[:, 1:])  # (dim, i, B)
    dprobs = (tab["bits"].T @ dprob.reshape(dim, n * batch)).view(n, n, batch).movedim(-1, 0)  # (B, k, i)
    return model.c * probs + model.d, dprobs * (model.c[:, None] * a)


def forward_and_logdet(model: "QINN", x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(z, log|det dz/dx|) gate by gate, as :meth:`QINN.forward_and_logdet` (eq. 5-7)."""
    z, jac = forward_and_jacobian(model, x)
    return z, torch.linalg.slogdet(jac).logabsdet
