"""The QINN model (sec. 3 of the paper) with a fast batched torch simulation of its circuits.

The circuits are those of :mod:`qinn_lib.circuits` (the PennyLane reference, against which
``tests/test_qinn.py`` checks values, gradients and Jacobians). Simulating them here instead of
through ``default.qubit`` is what makes training affordable:

- every circuit unitary depends on parameters only, never on the event, so U (2^n x 2^n) is built
  once per call from its layers (Kronecker product of the per-qubit Rot matrices, then the CNOT
  ring as a fixed permutation of basis states) and a whole batch is one matrix product;
- angle encoding gives a product state, i.e. an outer product of n two-vectors;
- the full Jacobian dz/dx (eq. 5-7) is forward-mode by hand: d|x'>/dx'_i is the product state with
  qubit i's factor differentiated, so the n tangent states ride through U in the same matrix
  product as the state itself.

At these sizes (a 32-dim state, batch 128) the cost is per-operation overhead, not arithmetic, so
the heavy pieces are custom autograd Functions with hand-written backward passes (the circuit
unitary; forward measurement with Jacobian; inverse measurement with angle decoding; the ISP
product state), each checked with ``torch.autograd.gradcheck`` and against PennyLane in the tests.
Inside them the events sit in the last (contiguous) dimension so that elementwise kernels
vectorise over the batch. A training step may wrap itself in ``with model.reuse_circuits():`` to
build each circuit unitary once instead of once per call, or take its maps from
:meth:`QINN.step_maps` (unitaries built once, no input checks), which ``torch.compile`` traces
into one graph (:meth:`qinn_lib.losses.QINNObjective.compiled_terms`).

Conventions (identical to PennyLane): wire 0 is the most significant bit of a basis index,
``RY(x)|0> = cos(x/2)|0> + sin(x/2)|1>`` and ``Rot(phi, theta, omega) = RZ(omega) RY(theta) RZ(phi)``.
Complex gradients follow torch's convention g = dL/dRe + i dL/dIm, so for a real parameter w
feeding a complex tensor T, dL/dw = Re sum(conj(g_T) dT/dw).
"""

from __future__ import annotations

import contextlib
import math
from typing import TYPE_CHECKING, Any, Callable, Iterator, NamedTuple

import torch
from torch import nn

if TYPE_CHECKING:  # pragma: no cover - typing only
    from .config import QINNRunConfig

__all__ = [
    "QINN",
    "StepMaps",
    "rot_matrices",
    "ry_state",
    "cnot_ring_permutation",
    "circuit_unitary",
]

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


def _product_state(f: torch.Tensor) -> torch.Tensor:
    """Product state from per-qubit factors: ``(..., n, 2) -> (..., 2^n)``, wire 0 most significant."""
    out = f[..., 0, :]
    for i in range(1, f.shape[-2]):
        out = (out[..., :, None] * f[..., i, None, :]).flatten(-2)
    return out


def _product_state_fm(f: torch.Tensor) -> torch.Tensor:
    """Same in "feature-major" layout: factors ``(n, 2, *rest) -> (2^n, *rest)``.

    The events/rows sit in the contiguous trailing dimensions, so each Kronecker step is one
    vectorised broadcast over them (events leading would leave an innermost dimension of 2).
    """
    factors = f.unbind(0)
    out = factors[0]
    for factor in factors[1:]:
        out = (out.unsqueeze(1) * factor.unsqueeze(0)).flatten(0, 1)
    return out


def ry_state(angles: torch.Tensor) -> torch.Tensor:
    """prod_i R_y(angles_i)|0> with R_y(x)|0> = (cos(x/2), sin(x/2)) (eq. 12); ``(..., n) -> (..., 2^n)``."""
    half = 0.5 * angles
    return _product_state(torch.stack([torch.cos(half), torch.sin(half)], -1))


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
    one there is none (as :func:`qinn_lib.circuits.cnot_ring`).
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
    }
    return {k: v.to(device) for k, v in t.items()}


# ---------------------------------------------------------------------------------------------
# custom autograd Functions
# ---------------------------------------------------------------------------------------------
class _CircuitUnitary(torch.autograd.Function):
    """U = K_{L-1} ... K_0 from weights (L, n, 3), K_l = C (Rot x ... x Rot) (Fig. 2).

    Backward without touching the Kronecker structure: every Rot derivative is the Rot times a
    Pauli generator, d Rot/d phi = Rot (-i Z/2), d Rot/d omega = (-i Z/2) Rot,
    d Rot/d theta = Rot (-i/2)(cos phi Y + sin phi X). With the suffix products
    Q_l = K_{L-1} ... K_l (Q_0 = U, A_l = Q_{l+1}) and H = U g_U^dagger, the gradient of layer l
    is g_K = A_l^dagger (g_U U^dagger) A_l K_l, so g_K^dagger K = Q_l^dagger H Q_l =: M_l and
    K g_K^dagger = A_l^dagger H A_l = M_{l+1}: every Rot-angle gradient is a diagonal or a
    "bit-flip" entry of M, two batched matmuls for all layers.
    """

    @staticmethod
    def forward(ctx, weights: torch.Tensor) -> torch.Tensor:
        n = weights.shape[1]
        tab = _tables(n, weights.device, weights.dtype)
        layers = _kron_qubits(rot_matrices(weights)).index_select(1, tab["ring"]).unbind(0)  # K_l
        q = [layers[-1]]
        for k in reversed(layers[:-1]):
            q.append(q[-1] @ k)
        q = torch.stack(q[::-1])  # Q_l
        ctx.save_for_backward(weights, q)
        return q[0].clone()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_u: torch.Tensor):
        weights, q = ctx.saved_tensors
        n_layers, n, _ = weights.shape
        tab = _tables(n, weights.device, weights.dtype)
        h = q[0] @ grad_u.mH  # H = U g_U^dagger
        m = q.mH @ (h @ q)  # M_l, (L, dim, dim)
        diag_m = torch.diagonal(m, dim1=-2, dim2=-1).imag
        # N_l = M_{l+1} (H for the last layer), read in the pre-ring basis:
        # (C^T N C)[s, s] = N[image[s], image[s]].
        diag_n = torch.cat([diag_m[1:], torch.diagonal(h).imag[None]], 0).index_select(1, tab["image"])
        g_phi = 0.5 * (diag_m @ tab["zsign"])
        g_omega = 0.5 * (diag_n @ tab["zsign"])
        off = m.reshape(n_layers, -1).index_select(1, tab["flip"]).view(n_layers, n, -1)  # M[s, s^e_i]
        re_z = (off.real * tab["zsign"].T).sum(-1)
        im_sum = off.imag.sum(-1)
        phi = weights[..., 0]
        g_theta = 0.5 * (torch.cos(phi) * re_z + torch.sin(phi) * im_sum)
        return torch.stack([g_phi, g_theta, g_omega], -1)


def _ry_factors(x_prime: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """R_y(x')|0> factors (cos, sin)(x'/2) and their x'-derivatives, laid out (n, 2, B)."""
    half = 0.5 * x_prime.T
    cos, sin = torch.cos(half), torch.sin(half)
    return torch.stack([cos, sin], 1), 0.5 * torch.stack([-sin, cos], 1)


def _ry_input_grad(g: torch.Tensor, f: torch.Tensor, df: torch.Tensor, states: torch.Tensor, tab) -> torch.Tensor:
    """dL/dx' (n, B) given dL/d(states) ``g`` (dim, R, B) of the angle-encoded states.

    ``states`` (dim, R, B) holds row 0 = psi, or rows 0..n = psi and d psi/dx'_i, built from the
    factors ``f`` and derivatives ``df`` of :func:`_ry_factors`. Differentiating
    again by x'_j: row 0 gives d psi/dx'_j (row 1 + j itself), row 1 + j gives f'' = -f/4, i.e.
    -psi/4, and row 1 + i (i != j) the mixed second derivative, one product state per pair i < j.
    """
    if states.shape[1] == 1:
        first = _product_state_fm(torch.where(tab["diag_mask"], df[:, :, None], f[:, :, None]))
        return (g[:, :1] * first).sum(0)
    grad = (g[:, :1] * states[:, 1:] - 0.25 * g[:, 1:] * states[:, :1]).sum(0)
    if f.shape[0] > 1:
        # pair p = (i, j): <g_{1+i}, mixed_p> goes to x'_j and <g_{1+j}, mixed_p> to x'_i
        mixed = _product_state_fm(torch.where(tab["pair_mask"], df[:, :, None], f[:, :, None]))
        rows = g.index_select(1, tab["pair_rows"]).unflatten(1, (2, -1))  # (dim, 2, P, B)
        contrib = (rows * mixed[:, None]).sum(0).flatten(0, 1)
        grad = grad.index_add(0, tab["pair_targets"], contrib)
    return grad


class _ForwardMeasure(torch.autograd.Function):
    """(P, dP/dx') for angles x' (B, n) and the model unitary U: eq. 12-16 before c, d.

    P_k = sum_{s: bit_k(s)=1} |y_s|^2 with y = U psi(x'); with ``jacobian`` also
    dP_k/dx'_i = 2 Re sum_{bit_k(s)=1} conj(y_s) (U d psi/dx'_i)_s, output (B, k, i). The state and
    its n tangents go through U as one real matmul with [Re U; Im U].
    """

    @staticmethod
    def forward(ctx, x_prime: torch.Tensor, u: torch.Tensor, jacobian: bool):
        batch, n = x_prime.shape
        dim = 1 << n
        tab = _tables(n, x_prime.device, x_prime.dtype)
        f, df = _ry_factors(x_prime)
        if jacobian:
            states = _product_state_fm(torch.where(tab["tangent_mask"], df[:, :, None], f[:, :, None]))
        else:
            states = _product_state_fm(f)[:, None]
        rows = states.shape[1]
        w = torch.cat([u.real, u.imag], 0)  # (2 dim, dim)
        y = (w @ states.reshape(dim, rows * batch)).view(2, dim, rows, batch)
        yr, yi = y[0], y[1]
        prob = yr[:, 0].square() + yi[:, 0].square()  # (dim, B)
        probs = (tab["bits"].T @ prob).T
        ctx.save_for_backward(f, df, states, y, w)
        ctx.jacobian = jacobian
        if not jacobian:
            return probs
        dprob = 2.0 * (yr[:, :1] * yr[:, 1:] + yi[:, :1] * yi[:, 1:])  # (dim, i, B)
        dprobs = (tab["bits"].T @ dprob.reshape(dim, n * batch)).view(n, n, batch).permute(2, 0, 1)
        return probs, dprobs

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_p, grad_dp=None):
        f, df, states, y, w = ctx.saved_tensors
        n, _, batch = f.shape
        dim, rows = states.shape[0], states.shape[1]
        tab = _tables(n, f.device, f.dtype)
        # P_k = sum_s bits[s, k] (yr0^2 + yi0^2), dP_ki = 2 sum_s bits[s, k] (yr0 yr_i + yi0 yi_i);
        # real and imaginary parts handled together along y's leading axis.
        y0 = y[:, :, :1]
        gprob = tab["bits"] @ grad_p.T if grad_p is not None else torch.zeros_like(y0[0, :, 0])
        grad_y0 = y0 * gprob[None, :, None]
        if ctx.jacobian and grad_dp is not None:
            gd = (tab["bits"] @ grad_dp.permute(1, 2, 0).reshape(n, n * batch)).view(1, dim, n, batch)
            grad_y = 2.0 * torch.cat([grad_y0 + (y[:, :, 1:] * gd).sum(2, keepdim=True), y0 * gd], 2)
        elif ctx.jacobian:
            grad_y = 2.0 * torch.cat([grad_y0, torch.zeros_like(y[:, :, 1:])], 2)
        else:
            grad_y = 2.0 * grad_y0
        gy = grad_y.view(2 * dim, rows * batch)
        grad_u = None
        if ctx.needs_input_grad[1]:
            gw = gy @ states.reshape(dim, rows * batch).T  # (2 dim, dim)
            grad_u = torch.complex(gw[:dim], gw[dim:])
        grad_x = None
        if ctx.needs_input_grad[0]:
            gs = (w.T @ gy).view(dim, rows, batch)
            grad_x = _ry_input_grad(gs, f, df, states, tab).T
        return grad_x, grad_u, None


def _rot_factors(psi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Rot(psi)|0> factors for ISP angles psi (B, n, 3), laid out (n, 2, B) (contiguous, so the
    product-state kernels vectorise over events): complex factors, magnitudes
    (cos, sin)(theta/2) and phases -(alpha, beta)."""
    mix = _rot_constants(psi.device, psi.dtype)[0]
    ang = (psi @ mix).permute(1, 2, 0).contiguous()  # (n, 3, B): theta/2, alpha, beta
    mags = torch.stack([torch.cos(ang[:, 0]), torch.sin(ang[:, 0])], 1)
    phases = -ang[:, 1:]
    return torch.polar(mags, phases), mags, phases


def _rot_input_grad(grad_s: torch.Tensor, f, mags, phases, tab) -> torch.Tensor:
    """dL/dpsi (B, n, 3) given dL/d(state) (dim, B) of the ISP product state prod_i Rot(psi_i)|0>.

    dL/df_i[a] is the contraction of g with the product state whose factor i is replaced by the
    basis vector e_a (2n states). With f = (e^{-i alpha} c, e^{-i beta} s): d/dphi = -i f/2,
    d/domega = (-i f_0, i f_1)/2, d/dtheta = (-e^{-i alpha} s, e^{-i beta} c)/2.
    """
    n, _, batch = f.shape
    replaced = _product_state_fm(torch.where(tab["basis_mask"], tab["basis"], f.conj()[:, :, None]))
    env_c = (grad_s[:, None] * replaced).sum(0).view(n, 2, batch).conj()  # conj(dL/df), (n, 2, B)
    h = (env_c * f).imag  # (n, 2, B)
    shifted = torch.polar(torch.stack([-mags[:, 1], mags[:, 0]], 1), phases)
    g_theta = 0.5 * (env_c * shifted).real.sum(1)  # (n, B)
    g_phi = 0.5 * (h[:, 0] + h[:, 1])
    g_omega = 0.5 * (h[:, 0] - h[:, 1])
    return torch.stack([g_phi, g_theta, g_omega], -1).transpose(0, 1)  # (B, n, 3)


class _RotProductState(torch.autograd.Function):
    """|psi> = prod_i Rot(psi_i0, psi_i1, psi_i2)|0> from ISP angles (B, n, 3); (B, 2^n) complex."""

    @staticmethod
    def forward(ctx, psi: torch.Tensor) -> torch.Tensor:
        f, mags, phases = _rot_factors(psi)
        ctx.save_for_backward(f, mags, phases)
        return _product_state_fm(f).T

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_s: torch.Tensor):
        f, mags, phases = ctx.saved_tensors
        return _rot_input_grad(grad_s.T, f, mags, phases, _tables(f.shape[0], f.device, mags.dtype))


class _InverseMeasure(torch.autograd.Function):
    """x'~ (B, n) from ISP angles psi (B, n, 3), the model unitary U and the ISP circuit g_Q.

    |y~> = g_Q prod_i Rot(psi_i)|0> (eq. 22), U^dagger |y~> (eq. 13-15), p0/p1 = P(qubit = 0/1),
    x'~ = 2 atan2(sqrt(p1), sqrt(p0)): the paper's 2 arcsin(sqrt(p1)) since p0 + p1 = 1, but with
    full precision at both ends of [0, pi] (1 - p1 cancels near x' = pi in float32).
    """

    @staticmethod
    def forward(ctx, psi: torch.Tensor, u: torch.Tensor, g_q: torch.Tensor) -> torch.Tensor:
        n = psi.shape[1]
        tab = _tables(n, psi.device, psi.dtype)
        f, mags, phases = _rot_factors(psi)
        state = _product_state_fm(f)  # (dim, B)
        v = u.mH @ g_q
        back = v @ state  # (dim, B)
        p01 = tab["bits01_t"] @ (back.real.square() + back.imag.square())  # (2n, B)
        live = p01 > _PROB_EPS
        r = torch.sqrt(torch.clamp(p01, min=_PROB_EPS))
        ctx.save_for_backward(f, mags, phases, state, back, v, u, g_q, r, live)
        return 2.0 * torch.atan2(r[n:], r[:n]).T

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_x: torch.Tensor):
        f, mags, phases, state, back, v, u, g_q, r, live = ctx.saved_tensors
        n = f.shape[0]
        tab = _tables(n, f.device, mags.dtype)
        g = grad_x.T  # (n, B)
        r0, r1 = r[:n], r[n:]
        denom = r0.square() + r1.square()
        # d(2 atan2(r1, r0)) = 2 (r0 dr1 - r1 dr0) / (r0^2 + r1^2), dr = dp / (2 r); 0 where clamped
        gp = torch.cat([-g * r1 / (denom * r0), g * r0 / (denom * r1)], 0) * live
        gback = 2.0 * back * (tab["bits01_t"].T @ gp)  # (dim, B) complex
        grad_psi = grad_u = grad_g = None
        if ctx.needs_input_grad[0]:
            grad_psi = _rot_input_grad(v.mH @ gback, f, mags, phases, tab)
        if ctx.needs_input_grad[1] or ctx.needs_input_grad[2]:
            gv = gback @ state.mH  # back = v state
            grad_u = g_q @ gv.mH  # v = U^dagger g_Q
            grad_g = u @ gv
        return grad_psi, grad_u, grad_g


def circuit_unitary(weights: torch.Tensor) -> torch.Tensor:
    """U = U_L ... U_1 of the hardware-efficient ansatz (Fig. 2) for weights (L, n, 3), complex."""
    if weights.ndim != 3 or weights.shape[2] != 3:
        raise ValueError(f"circuit_unitary: weights must have shape (L, n, 3), got {tuple(weights.shape)}")
    return _CircuitUnitary.apply(weights)


# ---------------------------------------------------------------------------------------------
# the model
# ---------------------------------------------------------------------------------------------
def _check_int(name: str, value: Any, lo: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        raise ValueError(f"QINN: {name} must be an integer >= {lo}, got {value!r}")
    return value


def _check_dtype(dtype: Any) -> torch.dtype:
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype, None) if dtype in ("float32", "float64") else None
    if dtype not in _COMPLEX:
        raise ValueError(f"QINN: dtype must be torch.float32 or torch.float64, got {dtype!r}")
    return dtype


def _abs2(t: torch.Tensor) -> torch.Tensor:
    """|t|^2 for complex t as a real tensor."""
    return t.real.square() + t.imag.square()


class QINN(nn.Module):
    """Quantum invertible neural network of sec. 3 (Fig. 2-4), simulated exactly.

    Parameters
    ----------
    n_features : number of features = qubits n.
    n_layers : layers L of the model circuit U (Table 1: 12).
    isp_layers : layers L' of the ISP circuit g_Q (Table 1: 8).
    isp_nn_layers : linear layers of the ISP network g_C (Table 1: 3).
    isp_hidden : hidden width of g_C (Table 1: 32).
    seed : seeds every initial value (circuit weights, g_C).
    dtype : torch.float32 (training default) or torch.float64; states use the matching complex type.

    Trainable parameters: ``a, b`` (state preparation, sec. 3), ``weights`` (L, n, 3) of U,
    ``c, d`` (measurement map, eq. 16), ``isp_weights`` (L', n, 3) of g_Q and ``isp_net`` (g_C).
    """

    def __init__(
        self,
        n_features: int = 5,
        n_layers: int = 12,
        isp_layers: int = 8,
        isp_nn_layers: int = 3,
        isp_hidden: int = 32,
        *,
        seed: int = 0,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__()
        n = _check_int("n_features", n_features, 1)
        self.n_features = n
        self.n_layers = _check_int("n_layers", n_layers, 1)
        self.isp_layers = _check_int("isp_layers", isp_layers, 1)
        self.isp_nn_layers = _check_int("isp_nn_layers", isp_nn_layers, 1)
        self.isp_hidden = _check_int("isp_hidden", isp_hidden, 1)
        _check_int("seed", seed, 0)
        dtype = _check_dtype(dtype)
        gen = torch.Generator().manual_seed(seed)

        def uniform(shape: tuple[int, ...], lo: float, hi: float) -> torch.Tensor:
            # Drawn in float64 so float32 and float64 models with one seed start from the same values.
            return (lo + (hi - lo) * torch.rand(shape, generator=gen, dtype=torch.float64)).to(dtype)

        # State preparation x' = a x + pi b (sec. 3), initialised to the identity.
        self.a = nn.Parameter(torch.ones(n, dtype=dtype))
        self.b = nn.Parameter(torch.zeros(n, dtype=dtype))
        # Circuit weights uniform in [0, 2 pi): every single-qubit rotation up to a global sign.
        self.weights = nn.Parameter(uniform((n_layers, n, 3), 0.0, 2.0 * math.pi))
        self.isp_weights = nn.Parameter(uniform((isp_layers, n, 3), 0.0, 2.0 * math.pi))
        # Measurement map z = c P + d (eq. 16). P lies in [0, 1]; c = 4, d = -2 sends it to
        # [-2, 2], i.e. +-2 sigma of the N(0, 1) latent target, so the NLL starts on the right
        # scale. (z is bounded by [d, c + d]; training widens c when the tails need it.)
        self.c = nn.Parameter(torch.full((n,), 4.0, dtype=dtype))
        self.d = nn.Parameter(torch.full((n,), -2.0, dtype=dtype))
        # ISP network g_C: P (n) -> 3n Rot angles psi (eq. 21). SiLU because it is smooth: the
        # generated x~ = f^{-1}(z) is then a smooth function of z (ReLU kinks would imprint kinks
        # on generated distributions) and, unlike tanh, it does not saturate.
        widths = [n] + [isp_hidden] * (isp_nn_layers - 1) + [3 * n]
        layers: list[nn.Module] = []
        for k in range(isp_nn_layers):
            # skip_init: no draw from torch's global RNG (constructing a model has no side effects)
            lin = nn.utils.skip_init(nn.Linear, widths[k], widths[k + 1], dtype=dtype)
            bound = 1.0 / math.sqrt(widths[k])  # torch's default Linear init range, but seeded
            with torch.no_grad():
                lin.weight.copy_(uniform(tuple(lin.weight.shape), -bound, bound))
                lin.bias.copy_(uniform(tuple(lin.bias.shape), -bound, bound))
            layers.append(lin)
            if k < isp_nn_layers - 1:
                layers.append(nn.SiLU())
        self.isp_net = nn.Sequential(*layers)

        # Circuit-unitary cache, active only inside ``with model.reuse_circuits():``.
        self._circuit_cache: dict | None = None

    # -- construction -----------------------------------------------------------------------------
    @classmethod
    def from_config(cls, cfg: "QINNRunConfig", n_features: int = 5) -> "QINN":
        """Build from a :class:`~qinn_lib.config.QINNRunConfig` (architecture, seed, dtype, device)."""
        model = cls(
            n_features,
            cfg.n_layers,
            cfg.isp_layers,
            cfg.isp_nn_layers,
            cfg.isp_hidden,
            seed=cfg.seed,
            dtype=_check_dtype(cfg.dtype),
        )
        return model.to(torch.device(cfg.device))

    def _tab(self) -> dict[str, torch.Tensor]:
        return _tables(self.n_features, self.a.device, self.a.dtype)

    @property
    def dtype(self) -> torch.dtype:
        return self.a.dtype

    @property
    def cdtype(self) -> torch.dtype:
        return _COMPLEX[self.a.dtype]

    def extra_repr(self) -> str:
        return (
            f"n_features={self.n_features}, n_layers={self.n_layers}, isp_layers={self.isp_layers}, "
            f"isp_nn_layers={self.isp_nn_layers}, isp_hidden={self.isp_hidden}, dtype={self.dtype}"
        )

    # -- parameters -------------------------------------------------------------------------------
    def quantum_parameters(self) -> list[nn.Parameter]:
        """Rotation angles of U and g_Q (the paper puts no weight prior on these, footnote 1)."""
        return [self.weights, self.isp_weights]

    def classical_parameters(self) -> list[nn.Parameter]:
        """a, b, c, d and the ISP network g_C."""
        return [self.a, self.b, self.c, self.d, *self.isp_net.parameters()]

    def parameter_counts(self) -> dict[str, int]:
        """Trainable parameter counts; Table 1: ~300 quantum, ~1.7k classical."""
        q = sum(p.numel() for p in self.quantum_parameters())
        c = sum(p.numel() for p in self.classical_parameters())
        return {"quantum": q, "classical": c, "total": q + c}

    def clamped_ab(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(a, b) projected on a in [0, 1], b in [0, 1 - a] (sec. 3), differentiably.

        clamp passes the gradient on the closed interval, so a parameter sitting on the boundary
        (a = 1, b = 0 at init) still receives its gradient; :meth:`constrain_` projects after the
        optimizer step (projected gradient descent).
        """
        a = torch.clamp(self.a, 0.0, 1.0)
        b = torch.clamp(self.b, min=torch.zeros_like(a), max=1.0 - a)
        return a, b

    @torch.no_grad()
    def constrain_(self) -> None:
        """Project the raw a, b onto the feasible set in place; call after each optimizer step."""
        self.a.clamp_(0.0, 1.0)
        self.b.copy_(torch.clamp(self.b, min=torch.zeros_like(self.a), max=1.0 - self.a))

    # -- input checks -----------------------------------------------------------------------------
    def _batch(self, name: str, t: Any, width: int | None = None) -> torch.Tensor:
        width = self.n_features if width is None else width
        if not isinstance(t, torch.Tensor):
            t = torch.as_tensor(t)
        if t.is_complex() or t.dtype == torch.bool:
            raise ValueError(f"QINN: {name} must be a real tensor, got dtype {t.dtype}")
        if t.ndim != 2 or t.shape[1] != width:
            raise ValueError(f"QINN: {name} must have shape (batch, {width}), got {tuple(t.shape)}")
        t = t.to(dtype=self.dtype, device=self.a.device)
        bad = ~torch.isfinite(t)
        if bool(bad.any()):
            raise ValueError(
                f"QINN: {name} of shape {tuple(t.shape)} has {int(bad.sum())} non-finite (NaN/inf) entries"
            )
        return t

    def _state_batch(self, name: str, t: Any) -> torch.Tensor:
        dim = 1 << self.n_features
        if not isinstance(t, torch.Tensor) or t.ndim != 2 or t.shape[1] != dim:
            shape = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
            raise ValueError(f"QINN: {name} must be a tensor of shape (batch, {dim}), got {shape}")
        return t.to(dtype=self.cdtype, device=self.a.device)

    # -- circuit unitaries ------------------------------------------------------------------------
    def unitary(self) -> torch.Tensor:
        """U = U_L ... U_1 of the model circuit (Fig. 2), ``(2^n, 2^n)`` complex."""
        return self._circuit(self.weights)

    def isp_unitary(self) -> torch.Tensor:
        """g_Q of the learned ISP (Fig. 4), ``(2^n, 2^n)`` complex."""
        return self._circuit(self.isp_weights)

    def _circuit(self, weights: torch.Tensor) -> torch.Tensor:
        cache = self._circuit_cache
        if cache is None:
            return _CircuitUnitary.apply(weights)
        key = (id(weights), weights._version, torch.is_grad_enabled(), weights.device, weights.dtype)
        u = cache.get(key)
        if u is None:
            u = _CircuitUnitary.apply(weights)
            if u.requires_grad:
                # Once a backward pass has gone through U its saved tensors are freed: forget it.
                def forget(grad: torch.Tensor, key: tuple = key) -> None:
                    cache.pop(key, None)

                u.register_hook(forget)
            cache[key] = u
        return u

    @contextlib.contextmanager
    def reuse_circuits(self) -> Iterator["QINN"]:
        """Build U and g_Q once and share them between all calls inside the block.

        A training step calls the circuits up to five times (forward, inverse of z, inverse of
        sampled z), each rebuilding the same unitaries from unchanged weights. Inside this block
        each unitary is built once per weight state; an entry is dropped when the weights change
        in place (their version counter moves, e.g. ``optimizer.step()``) and as soon as a
        backward pass has gone through it (its graph is then freed). Outside the block nothing is
        cached. Wrap one training step (forward, losses, backward) per block.
        """
        previous = self._circuit_cache
        self._circuit_cache = {}
        try:
            yield self
        finally:
            self._circuit_cache = previous

    # -- forward direction ------------------------------------------------------------------------
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """x' = a x + pi b (sec. 3). Not clipped: events slightly outside [0, pi] stay smooth."""
        return self._encode(self._batch("x", x))

    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.clamped_ab()
        return a * x + math.pi * b

    def decode(self, x_prime: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`encode`: x = (x' - pi b) / a."""
        x_prime = self._batch("x_prime", x_prime)
        a, b = self.clamped_ab()
        return (x_prime - math.pi * b) / a

    def output_state(self, x: torch.Tensor) -> torch.Tensor:
        """|y> = U|x'>, ``(B, 2^n)`` complex."""
        return self._output_state(self._batch("x", x), self.unitary())

    def _output_state(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        return ry_state(self._encode(x)).to(self.cdtype) @ u.transpose(0, 1)

    def measure(self, state: torch.Tensor) -> torch.Tensor:
        """P(qubit i = 1) of each state, ``(B, n)`` (the measurement of eq. 16)."""
        return _abs2(self._state_batch("state", state)) @ self._tab()["bits"]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """z = c P(U|a x + pi b>) + d (eq. 12-16), ``(B, n)``."""
        probs = _ForwardMeasure.apply(self.encode(x), self.unitary(), False)
        return self.c * probs + self.d

    def forward_and_jacobian(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(z, J) with the full Jacobian ``J[b, k, i] = dz_k / dx_i``, ``(B, n, n)``.

        Forward mode by hand: d psi / dx'_i is the product state with factor i differentiated,
        so state and n tangents go through U in one matmul; dP_k/dx'_i =
        2 Re sum_{bit_k(s)=1} conj(y_s) dy_{i,s}; J = diag(c) (dP/dx') diag(a). Differentiable
        w.r.t. all parameters (log det J enters the NLL, eq. 7).
        """
        return self._forward_and_jacobian(self._batch("x", x), self.unitary())

    def _forward_and_jacobian(self, x: torch.Tensor, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a, b = self.clamped_ab()
        probs, dprobs = _ForwardMeasure.apply(a * x + math.pi * b, u, True)
        return self.c * probs + self.d, dprobs * (self.c[:, None] * a)

    def jacobian(self, x: torch.Tensor) -> torch.Tensor:
        """Full Jacobian dz/dx, ``(B, n, n)`` with ``[b, k, i] = dz_k/dx_i``."""
        return self.forward_and_jacobian(x)[1]

    def forward_and_logdet(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(z, log|det dz/dx|) for the change of variables of eq. 5-7; shapes (B, n), (B,)."""
        return self._forward_and_logdet(self._batch("x", x), self.unitary())

    def _forward_and_logdet(self, x: torch.Tensor, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z, jac = self._forward_and_jacobian(x, u)
        return z, torch.linalg.slogdet(jac).logabsdet

    # -- inverse direction ------------------------------------------------------------------------
    def _isp_angles(self, probs: torch.Tensor) -> torch.Tensor:
        """psi = g_C(P), the 3n Rot angles of eq. 21, as (B, n, 3)."""
        return self.isp_net(probs).unflatten(-1, (self.n_features, 3))

    def isp_state(self, probs: torch.Tensor) -> torch.Tensor:
        """|y~> = g_Q Rot(psi)|0>, psi = g_C(P) (eq. 21-22, Fig. 4); ``(B, 2^n)`` complex."""
        probs = self._batch("probs", probs)
        prepared = _RotProductState.apply(self._isp_angles(probs))
        return prepared @ self.isp_unitary().transpose(0, 1)

    def inverse_from_state(self, state: torch.Tensor) -> torch.Tensor:
        """x~ from a state |y~>: U^dagger (eq. 13-15), measure, decode the angles, undo a, b.

        With |y~> = |y> = U|x'> this returns x exactly: the round trip the ISP is trained for.
        """
        state = self._state_batch("state", state)
        back = state @ self.unitary().conj()  # rows: (U^dagger s)^T = s^T conj(U)
        p01 = torch.clamp(_abs2(back) @ self._tab()["bits01_t"].T, min=_PROB_EPS)
        n = self.n_features
        x_prime = 2.0 * torch.atan2(torch.sqrt(p01[:, n:]), torch.sqrt(p01[:, :n]))
        a, b = self.clamped_ab()
        return (x_prime - math.pi * b) / a

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        """x~ = f^{-1}(z): P = (z - d)/c, ISP (eq. 21-22), U^dagger (eq. 13-15), decode; ``(B, n)``."""
        return self._inverse(self._batch("z", z), self.unitary(), self.isp_unitary())

    def _inverse(self, z: torch.Tensor, u: torch.Tensor, g_q: torch.Tensor) -> torch.Tensor:
        psi = self._isp_angles((z - self.d) / self.c)
        x_prime = _InverseMeasure.apply(psi, u, g_q)
        a, b = self.clamped_ab()
        return (x_prime - math.pi * b) / a

    def fidelity(self, x: torch.Tensor) -> torch.Tensor:
        """F = |<y~|y>|^2 per event (eq. 17, what the SWAP test of Fig. 3 estimates), ``(B,)``.

        |y> = U|x'>; |y~> is built by the ISP from the P measured on |y>.
        """
        return self._fidelity(self._batch("x", x), self.unitary(), self.isp_unitary())

    def _fidelity(self, x: torch.Tensor, u: torch.Tensor, g_q: torch.Tensor) -> torch.Tensor:
        y = self._output_state(x, u)
        prepared = _RotProductState.apply(self._isp_angles(_abs2(y) @ self._tab()["bits"]))
        y_tilde = prepared @ g_q.transpose(0, 1)
        return _abs2((y_tilde.conj() * y).sum(-1))

    # -- one training step, traceable -------------------------------------------------------------
    def step_maps(self) -> "StepMaps":
        """The maps one training step needs, on trusted input, sharing U and g_Q built by this call.

        :meth:`forward_and_logdet`, :meth:`inverse` and :meth:`fidelity` without their input
        checks (a check on the values, ``bool(isnan(x).any())``, cannot be traced into a graph;
        the trainer's batches come from prepared data, checked once) and without the circuit
        cache of :meth:`reuse_circuits` (the two unitaries are built here, once, and every map
        uses them). The arithmetic is the checked methods' own: they call the same functions.
        This is what :meth:`qinn_lib.losses.QINNObjective.compiled_terms` traces into one
        ``torch.compile`` graph. Inputs must already have the model's dtype and device.
        """
        u = _CircuitUnitary.apply(self.weights)
        g_q = _CircuitUnitary.apply(self.isp_weights)
        return StepMaps(
            forward_and_logdet=lambda x: self._forward_and_logdet(x, u),
            inverse=lambda z: self._inverse(z, u, g_q),
            fidelity=lambda x: self._fidelity(x, u, g_q),
        )


class StepMaps(NamedTuple):
    """See :meth:`QINN.step_maps`."""

    forward_and_logdet: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
    inverse: Callable[[torch.Tensor], torch.Tensor]
    fidelity: Callable[[torch.Tensor], torch.Tensor]
