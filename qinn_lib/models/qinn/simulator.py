"""The state-vector pieces of the QINN's fast simulation: gates, product states, the CNOT ring.

Plain torch, differentiable by autograd, in PennyLane's conventions: wire 0 is the most
significant bit of a basis index, ``RY(x)|0> = cos(x/2)|0> + sin(x/2)|1>`` and
``Rot(phi, theta, omega) = RZ(omega) RY(theta) RZ(phi)``.

- :func:`rot_matrices`: the ``Rot`` gates of the hardware-efficient layers (Fig. 2);
- :func:`ry_state`: the angle-encoded product state of eq. 12, an outer product of n two-vectors;
- :func:`cnot_ring_permutation`: a layer's CNOT ring as a fixed permutation of basis states, so
  applying it is a row gather instead of a matrix product;
- the constant index, mask and sign tables that the Functions of
  :mod:`qinn_lib.models.qinn.autograd` read, built once per (n, device, dtype) and kept in a plain
  dict, whose tensors ``torch.compile`` reads as constants of the graph.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ['rot_matrices', 'ry_state', 'cnot_ring_permutation']


_COMPLEX = {torch.float32: torch.complex64, torch.float64: torch.complex128}

#: Lower clamp of the measured probabilities before the square root in the angle decoding. Only
#: an exact 0 needs it (d sqrt(p)/dp is infinite there); 1e-30 is a normal number in float32 and
#: far below any probability a simulated state produces otherwise, so values are unaffected.
_PROB_EPS = 1e-30


# ---------------------------------------------------------------------------------------------
# gates and states (plain torch, differentiable by autograd)
# ---------------------------------------------------------------------------------------------
#: Constant tensors (Rot maps, index/mask tables) by (what, n, device, dtype). A plain dict and
#: not functools.lru_cache: torch.compile reads the tensors of a global dict as constants of the
#: graph, whereas it traces an lru_cache-wrapped builder afresh (rebuilding the tables inside the
#: graph, with a warning). Entries are never written to and carry no gradient: nothing goes stale.
_CONSTANTS: dict[tuple, Any] = {}


def _constant(key: tuple, build: Any) -> Any:
    value = _CONSTANTS.get(key)
    if value is None:
        with torch.inference_mode(False):  # usable by autograd even if first built in inference mode
            value = _CONSTANTS[key] = build()
    return value


def _rot_constants(device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(phi, theta, omega) -> (theta/2, alpha, beta) with alpha = (phi+omega)/2, beta = (phi-omega)/2,
    and the maps from (cos, sin)(theta/2) and (alpha, beta) to the magnitudes and phases of the
    flattened Rot entries (00, 01, 10, 11)."""
    def build() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mix = torch.tensor([[0.0, 0.5, 0.5], [0.5, 0.0, 0.0], [0.0, 0.5, -0.5]], dtype=dtype, device=device)
        mags = torch.tensor([[1.0, 0.0, 0.0, 1.0], [0.0, -1.0, 1.0, 0.0]], dtype=dtype, device=device)
        phases = torch.tensor([[-1.0, 0.0, 0.0, 1.0], [0.0, 1.0, -1.0, 0.0]], dtype=dtype, device=device)
        return mix, mags, phases

    return _constant(("rot", device, dtype), build)


def rot_matrices(w: torch.Tensor) -> torch.Tensor:
    """``qml.Rot`` matrices for angles ``w[..., 0:3] = (phi, theta, omega)``; shape ``(..., 2, 2)``.

    Rot = RZ(omega) RY(theta) RZ(phi)
        = [[e^{-i(phi+omega)/2} cos(theta/2), -e^{i(phi-omega)/2} sin(theta/2)],
           [e^{-i(phi-omega)/2} sin(theta/2),  e^{i(phi+omega)/2} cos(theta/2)]].
    """
    mix, to_mags, to_phases = _rot_constants(w.device, w.dtype)
    ang = w @ mix  # (theta/2, alpha, beta)
    half_theta = ang[..., 0]
    mags = torch.stack([torch.cos(half_theta), torch.sin(half_theta)], -1) @ to_mags
    return torch.polar(mags, ang[..., 1:] @ to_phases).unflatten(-1, (2, 2))


def product_state(f: torch.Tensor) -> torch.Tensor:
    """Product state from per-qubit factors: ``(..., n, 2) -> (..., 2^n)``, wire 0 most significant."""
    out = f[..., 0, :]
    for i in range(1, f.shape[-2]):
        out = (out[..., :, None] * f[..., i, None, :]).flatten(-2)
    return out


def _product_state_fm(f: torch.Tensor, lead: int = 0) -> torch.Tensor:
    """Same in "feature-major" layout: factors ``(*L, n, 2, *rest) -> (*L, 2^n, *rest)``.

    The events/rows sit in the contiguous trailing dimensions, so each Kronecker step is one
    vectorised broadcast over them (events leading would leave an innermost dimension of 2).
    ``lead`` leading dimensions ``L`` (the models of a lockstep stack) are carried along; with
    none this is exactly the single model's computation.
    """
    factors = f.unbind(lead)
    out = factors[0]
    for factor in factors[1:]:
        out = (out.unsqueeze(lead + 1) * factor.unsqueeze(lead)).flatten(lead, lead + 1)
    return out


def ry_state(angles: torch.Tensor) -> torch.Tensor:
    """prod_i R_y(angles_i)|0> with R_y(x)|0> = (cos(x/2), sin(x/2)) (eq. 12); ``(..., n) -> (..., 2^n)``."""
    half = 0.5 * angles
    return product_state(torch.stack([torch.cos(half), torch.sin(half)], -1))


def _kron_qubits(m: torch.Tensor) -> torch.Tensor:
    """Kronecker product over the qubit axis: ``(L, n, 2, 2) -> (L, 2^n, 2^n)``, wire 0 leftmost."""
    factors = m.unbind(1)
    out = factors[0]
    n_batch = m.shape[0]
    for factor in factors[1:]:
        k = out.shape[-1]
        out = (out.view(n_batch, k, 1, k, 1) * factor.view(n_batch, 1, 2, 1, 2)).view(n_batch, 2 * k, 2 * k)
    return out


def cnot_ring_permutation(n: int) -> torch.Tensor:
    """Row gather index ``g`` with ``C @ M == M[g]`` for the CNOT ring C of one layer (Fig. 2).

    C = CNOT(n-1, 0) ... CNOT(1, 2) CNOT(0, 1) permutes basis states: C|s> = |pi(s)>; hence
    (C M)[pi(s)] = M[s], i.e. ``g = pi^{-1}``. With two wires the closing CNOT(1, 0) is kept, with
    one there is none (as :func:`qinn_lib.models.qinn.circuits.cnot_ring`).
    """
    pairs = [(i, i + 1) for i in range(n - 1)] + ([(n - 1, 0)] if n >= 2 else [])
    dim = 1 << n
    image = []
    for s in range(dim):
        t = s
        for control, target in pairs:
            if (t >> (n - 1 - control)) & 1:
                t ^= 1 << (n - 1 - target)
        image.append(t)
    inverse = [0] * dim
    for s, t in enumerate(image):
        inverse[t] = s
    return torch.tensor(inverse, dtype=torch.long)


def _tables(n: int, device: torch.device, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Constant index, mask and sign tables for n qubits (depend on n, device and dtype only).

    Built once and shared (see :data:`_CONSTANTS`). The masks select factors in the
    (qubit, 2, row, event) layout of the Functions.
    """
    return _constant(("tables", n, device, dtype), lambda: _build_tables(n, device, dtype))


def _build_tables(n: int, device: torch.device, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    dim = 1 << n
    s = torch.arange(dim)
    shifts = torch.arange(n - 1, -1, -1)
    bits = (s[:, None] >> shifts) & 1  # (dim, n): bit of qubit i in basis state s
    q = torch.arange(n)
    ring = cnot_ring_permutation(n)
    image = torch.empty_like(ring)
    image[ring] = s
    first, second = torch.triu_indices(n, n, offset=1)  # qubit pairs i < j
    rows = torch.arange(2 * n)
    t = {
        "bits": bits.to(dtype),
        "bits01_t": torch.cat([1 - bits, bits], 1).T.contiguous().to(dtype),  # (2n, dim)
        "zsign": (1 - 2 * bits).to(dtype),  # Z eigenvalue of qubit i in state s
        "ring": ring,
        "image": image,
        # flat index s * dim + (s xor e_i): the entry coupling s to s with qubit i flipped
        "flip": (s[None, :] * dim + (s[None, :] ^ (1 << shifts)[:, None])).flatten(),
        # row 0 = state, row 1 + i = factor i differentiated
        "tangent_mask": (q[:, None] == torch.arange(-1, n)[None, :])[:, None, :, None],
        # row j = factor j differentiated
        "diag_mask": (q[:, None] == q[None, :])[:, None, :, None],
        "pair_rows": torch.cat([1 + first, 1 + second]),  # state rows contracted per pair ...
        "pair_targets": torch.cat([second, first]),  # ... and the x' component they feed
        "pair_mask": ((q[:, None] == first[None, :]) | (q[:, None] == second[None, :]))[:, None, :, None],
        # row (j, a): factor j replaced by the basis vector e_a
        "basis_mask": (q[:, None] == rows[None, :] // 2)[:, None, :, None],
        "basis": (torch.arange(2)[:, None] == rows[None, :] % 2)[None, :, :, None].to(_COMPLEX[dtype]),
        "basis_real": (torch.arange(2)[:, None] == rows[None, :] % 2)[None, :, :, None].to(dtype),  # real_autograd
    }
    return {k: v.to(device) for k, v in t.items()}


def _abs2(t: torch.Tensor) -> torch.Tensor:
    """|t|^2 for complex t as a real tensor."""
    return t.real.square() + t.imag.square()
