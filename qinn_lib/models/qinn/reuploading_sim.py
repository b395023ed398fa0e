"""The re-uploading flow's fast simulation: state and Jacobian tangents in real arithmetic, one
encoding matrix per event, one circuit unitary per upload block.

Why a formulation of its own: the readable path
(:meth:`qinn_lib.models.qinn.reuploading.ReuploadingFlow._rows_gatewise`, kept as the oracle)
applies the encoding gate by gate, n complex einsums and concatenations per block plus their
autograd graph, and its cost is that per-op overhead. Here every block is three tensor ops:

- the encoding ``E(x') = prod_i R_y(x'_i)`` is the same in every block, so it is built once per call
  as a real ``(B, 2^n, 2^n)`` matrix (Kronecker product of the per-event 2x2 rotations, the QINN's
  :func:`~qinn_lib.models.qinn.simulator._kron_qubits`) and applied to the state and all its
  tangents in one batched matmul;
- the product rule needs no second matrix: ``dR_y(x)/dx = R_y(x) G`` with the constant
  ``G = -iY/2 = [[0, -1/2], [1/2, 0]]``, so ``d E/dx'_i = E G_i`` (G on qubit i) and before each
  encoding the tangent i just gains ``G_i |psi>``, a fixed signed permutation of the state's
  amplitudes (a gather);
- the block's circuit unitary U (the QINN's :func:`~qinn_lib.models.qinn.autograd.circuit_unitary`,
  built once per call from the block's layers; equal blocks in one batched call) acts on the
  real and imaginary parts stacked, as the real ``2^{n+1}`` matrix ``[[Re U, -Im U], [Im U, Re U]]``.

Everything but U's construction is real, so ``torch.compile`` fuses it
(:meth:`~qinn_lib.models.qinn.reuploading.ReuploadingFlow.compile_`); gradients w.r.t. every
parameter come from autograd through these few ops (and U's own hand-written backward). The
state layout is ``(B, R, 2, 2^n)``: rows R = the state (row 0) and its n tangents d/dx'_i, then
(real, imaginary), then the amplitudes.
"""

from __future__ import annotations

import torch

from qinn_lib.models.qinn.autograd import circuit_unitary
from qinn_lib.models.qinn.simulator import _constant, _kron_qubits

__all__ = ['block_unitaries', 'encoding_matrix', 'propagate', 'measure']


def _tangent_tables(n: int, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """(flip, sign) with ``(G_i v)[s] = sign[i, s] * v[flip[i * 2^n + s]]``: G on qubit i flips its bit,
    with -1/2 where that bit of s is 0 and +1/2 where it is 1 (wire 0 most significant)."""
    def build() -> tuple[torch.Tensor, torch.Tensor]:
        dim = 1 << n
        s = torch.arange(dim)
        masks = 1 << torch.arange(n - 1, -1, -1)  # (n,) bit of qubit i
        flip = (s[None, :] ^ masks[:, None]).flatten()
        sign = torch.where((s[None, :] & masks[:, None]) != 0, 0.5, -0.5).to(dtype)
        return flip.to(device), sign.to(device)

    return _constant(("reupload-tangent", n, device, dtype), build)


class _EncodingMatrix(torch.autograd.Function):
    """E(x') = prod_i R_y(x'_i) as a real matrix per event, (B, n) -> (B, 2^n, 2^n).

    Backward without autograd through the Kronecker product (whose broadcast reductions cost
    more than the rest of the step): dE/dx'_i = E G_i, so with M = g_E^T E,
    dL/dx'_i = sum_{s,t} g_E[s, t] (E G_i)[s, t] = sum_t csign_i(t) M[t, t xor e_i], where
    ``csign_i(t) = +1/2`` if bit i of t is 0, ``-1/2`` if it is 1: one batched matmul and a gather.
    """

    @staticmethod
    def forward(ctx, x_prime: torch.Tensor) -> torch.Tensor:
        half = 0.5 * x_prime
        cos, sin = torch.cos(half), torch.sin(half)
        gates = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)  # (B, n, 2, 2)
        enc = _kron_qubits(gates)
        ctx.save_for_backward(enc)
        return enc

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_e: torch.Tensor) -> torch.Tensor:
        (enc,) = ctx.saved_tensors
        batch, dim = enc.shape[0], enc.shape[-1]
        n = dim.bit_length() - 1
        pairs, csign = _encoding_grad_tables(n, enc.device, enc.dtype)
        m = (grad_e.transpose(1, 2) @ enc).reshape(batch, dim * dim)
        return (m.index_select(1, pairs).view(batch, n, dim) * csign).sum(-1)


def _encoding_grad_tables(n: int, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """(pairs, csign) for :class:`_EncodingMatrix`'s backward: flat index ``t * 2^n + (t xor e_i)``
    (n * 2^n,) and ``csign_i(t)`` (n, 2^n)."""
    def build() -> tuple[torch.Tensor, torch.Tensor]:
        dim = 1 << n
        t = torch.arange(dim)
        masks = 1 << torch.arange(n - 1, -1, -1)
        pairs = (t[None, :] * dim + (t[None, :] ^ masks[:, None])).flatten()
        csign = torch.where((t[None, :] & masks[:, None]) != 0, -0.5, 0.5).to(dtype)
        return pairs.to(device), csign.to(device)

    return _constant(("reupload-encoding-grad", n, device, dtype), build)


def encoding_matrix(x_prime: torch.Tensor) -> torch.Tensor:
    """``prod_i R_y(x'_i)`` per event as a real (B, 2^n, 2^n) matrix (wire 0 most significant)."""
    return _EncodingMatrix.apply(x_prime)


def _initial_rows(n: int, jacobian: bool, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """``|0>`` and, with ``jacobian``, its tangents before the first encoding, ``G_i|0>``: (R, 2, 2^n)."""
    def build() -> torch.Tensor:
        dim = 1 << n
        rows = torch.zeros(n + 1 if jacobian else 1, 2, dim, dtype=dtype)
        rows[0, 0, 0] = 1.0
        if jacobian:
            for i in range(n):  # G_i |0> = +1/2 |e_i>: the basis state with qubit i set
                rows[1 + i, 0, 1 << (n - 1 - i)] = 0.5
        return rows.to(device)

    return _constant(("reupload-initial", n, jacobian, device, dtype), build)


def block_unitaries(weights: torch.Tensor, blocks: list[int]) -> list[torch.Tensor]:
    """Per block of ``blocks`` layers, its circuit unitary in real form (2^{n+1}, 2^{n+1}) to
    right-multiply rows ``[Re psi, Im psi]``: ``[[Re U^T, Im U^T], [-Im U^T, Re U^T]]``."""
    if len(set(blocks)) == 1:  # equal blocks: one batched circuit_unitary call for all of them
        us = circuit_unitary(weights.reshape(len(blocks), blocks[0], *weights.shape[1:]))
    else:
        starts = [sum(blocks[:k]) for k in range(len(blocks))]
        us = torch.stack([circuit_unitary(weights[s:s + size]) for s, size in zip(starts, blocks)])
    ur, ui = us.real.transpose(-1, -2), us.imag.transpose(-1, -2)
    real = torch.cat([torch.cat([ur, ui], -1), torch.cat([-ui, ur], -1)], -2)  # (U, 2 dim, 2 dim)
    return list(real.unbind(0))


def propagate(x_prime: torch.Tensor, unitaries: list[torch.Tensor], jacobian: bool) -> torch.Tensor:
    """Rows ``(B, R, 2, 2^n)`` of ``W_u E ... W_1 E |0>`` (R = 1, or n + 1 with the tangents d/dx'_i)
    for angles ``x_prime`` (B, n) and the real-form block unitaries of :func:`block_unitaries`."""
    batch, n = x_prime.shape
    dim = 1 << n
    enc_t = encoding_matrix(x_prime).transpose(1, 2)  # E^T, (B, dim, dim): rows @ E^T = (E rows^T)^T
    init = _initial_rows(n, jacobian, x_prime.device, x_prime.dtype)
    n_rows = init.shape[0]
    rows = init.expand(batch, n_rows, 2, dim)
    if jacobian:
        flip, sign = _tangent_tables(n, x_prime.device, x_prime.dtype)
    for k, w in enumerate(unitaries):
        if jacobian and k > 0:  # product rule: tangent i gains G_i |psi> before the encoding
            psi = rows[:, 0]  # (B, 2, dim)
            extra = (psi.index_select(-1, flip).view(batch, 2, n, dim) * sign).transpose(1, 2)
            rows = torch.cat([rows[:, :1], rows[:, 1:] + extra], 1)
        rows = torch.bmm(rows.reshape(batch, n_rows * 2, dim), enc_t)  # the encoding E on every row
        rows = (rows.view(batch * n_rows, 2 * dim) @ w).view(batch, n_rows, 2, dim)  # the block's U
    return rows


def measure(rows: torch.Tensor, bits: torch.Tensor, jacobian: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """P(qubit k = 1) (B, n) and, with ``jacobian``, ``dP_k/dx'_i`` (B, k, i):
    dP_k/dx'_i = 2 Re sum_{bit_k(s)=1} conj(psi_s) dpsi_{i,s}."""
    psi = rows[:, :1]
    probs = psi.square().sum((1, 2)) @ bits
    if not jacobian:
        return probs, None
    overlap = (psi * rows[:, 1:]).sum(2)  # (B, i, s): Re conj(psi) dpsi_i
    # Laid out (B, k, i) contiguously: inductor (torch 2.13) computes slogdet's backward wrongly
    # for a transposed Jacobian made inside the graph (wrong gradients, right values; tested).
    return probs, 2.0 * (bits.transpose(0, 1) @ overlap.transpose(1, 2))
