"""The QINN's fast path as custom autograd Functions with hand-written backward passes.

At these sizes (a 32-dim state, batch 128) the cost is per-operation overhead, not arithmetic, so
the heavy pieces are Functions of their own, each checked with ``torch.autograd.gradcheck`` and
against PennyLane in the tests:

- the circuit unitary U from its layer weights (Fig. 2, :func:`circuit_unitary`), its gradient
  read off the Pauli generators of the Rot derivatives: two batched matmuls for all layers;
- the forward measurement P(qubit k = 1) of ``U|x'>`` (eq. 12-16 before c, d) with the full
  Jacobian dP/dx' (eq. 5-7) in forward mode: the n tangent states go through U in the same matrix
  product as the state;
- the ISP product state ``prod_i Rot(psi_i)|0>`` (eq. 21-22);
- the inverse measurement with angle decoding, ``U^dagger g_Q |psi>`` (eq. 13-15, 22).

Inside them the events sit in the last (contiguous) dimension so that elementwise kernels
vectorise over the batch. Every Function also takes leading dimensions in front of its inputs'
shapes: the models of a lockstep stack (:class:`qinn_lib.models.qinn.stack.QINNStack`), e.g.
weights ``(K, L, n, 3)`` and angles ``(K, B, n)``; without them the arithmetic is the single
model's, op for op. Complex gradients follow torch's convention g = dL/dRe + i dL/dIm, so
for a real parameter w feeding a complex tensor T, dL/dw = Re sum(conj(g_T) dT/dw).
"""

from __future__ import annotations

import torch

from qinn_lib.models.qinn.simulator import (
    _PROB_EPS,
    _kron_qubits,
    _product_state_fm,
    _rot_constants,
    _tables,
    rot_matrices,
)

__all__ = ['circuit_unitary']


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
        n_layers, n = weights.shape[-3], weights.shape[-2]
        tab = _tables(n, weights.device, weights.dtype)
        rots = rot_matrices(weights)  # (..., L, n, 2, 2)
        kron = _kron_qubits(rots.reshape(-1, *rots.shape[-3:]))
        kron = kron.view(*weights.shape[:-3], n_layers, *kron.shape[-2:])
        layers = kron.index_select(-2, tab["ring"]).unbind(-3)  # K_l
        q = [layers[-1]]
        for k in reversed(layers[:-1]):
            q.append(q[-1] @ k)
        q = torch.stack(q[::-1], -3)  # Q_l
        ctx.save_for_backward(weights, q)
        return q.select(-3, 0).clone()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_u: torch.Tensor):
        weights, q = ctx.saved_tensors
        n = weights.shape[-2]
        tab = _tables(n, weights.device, weights.dtype)
        h = q.select(-3, 0) @ grad_u.mH  # H = U g_U^dagger
        m = q.mH @ (h.unsqueeze(-3) @ q)  # M_l, (..., L, dim, dim)
        diag_m = torch.diagonal(m, dim1=-2, dim2=-1).imag
        # N_l = M_{l+1} (H for the last layer), read in the pre-ring basis:
        # (C^T N C)[s, s] = N[image[s], image[s]].
        diag_h = torch.diagonal(h, dim1=-2, dim2=-1).imag.unsqueeze(-2)
        diag_n = torch.cat([diag_m[..., 1:, :], diag_h], -2).index_select(-1, tab["image"])
        g_phi = 0.5 * (diag_m @ tab["zsign"])
        g_omega = 0.5 * (diag_n @ tab["zsign"])
        lead = m.shape[:-2]
        off = m.reshape(*lead, -1).index_select(-1, tab["flip"]).view(*lead, n, -1)  # M[s, s^e_i]
        re_z = (off.real * tab["zsign"].T).sum(-1)
        im_sum = off.imag.sum(-1)
        phi = weights[..., 0]
        g_theta = 0.5 * (torch.cos(phi) * re_z + torch.sin(phi) * im_sum)
        return torch.stack([g_phi, g_theta, g_omega], -1)


def _ry_factors(x_prime: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """R_y(x')|0> factors (cos, sin)(x'/2) and their x'-derivatives, laid out (..., n, 2, B)."""
    half = 0.5 * x_prime.transpose(-1, -2)
    cos, sin = torch.cos(half), torch.sin(half)
    return torch.stack([cos, sin], -2), 0.5 * torch.stack([-sin, cos], -2)


def _ry_input_grad(g: torch.Tensor, f: torch.Tensor, df: torch.Tensor, states: torch.Tensor, tab,
                   lead: int = 0) -> torch.Tensor:
    """dL/dx' (..., n, B) given dL/d(states) ``g`` (..., dim, R, B) of the angle-encoded states
    (``lead`` leading model dimensions).

    ``states`` (dim, R, B) holds row 0 = psi, or rows 0..n = psi and d psi/dx'_i, built from the
    factors ``f`` and derivatives ``df`` of :func:`_ry_factors`. Differentiating
    again by x'_j: row 0 gives d psi/dx'_j (row 1 + j itself), row 1 + j gives f'' = -f/4, i.e.
    -psi/4, and row 1 + i (i != j) the mixed second derivative, one product state per pair i < j.
    """
    if states.shape[-2] == 1:
        first = _product_state_fm(torch.where(tab["diag_mask"], df.unsqueeze(-2), f.unsqueeze(-2)), lead)
        return (g[..., :1, :] * first).sum(-3)
    grad = (g[..., :1, :] * states[..., 1:, :] - 0.25 * g[..., 1:, :] * states[..., :1, :]).sum(-3)
    if f.shape[-3] > 1:
        # pair p = (i, j): <g_{1+i}, mixed_p> goes to x'_j and <g_{1+j}, mixed_p> to x'_i
        mixed = _product_state_fm(torch.where(tab["pair_mask"], df.unsqueeze(-2), f.unsqueeze(-2)), lead)
        rows = g.index_select(-2, tab["pair_rows"]).unflatten(-2, (2, -1))  # (..., dim, 2, P, B)
        contrib = (rows * mixed.unsqueeze(-3)).sum(-4).flatten(-3, -2)
        grad = grad.index_add(-2, tab["pair_targets"], contrib)
    return grad


def _measure_forward(ctx, x_prime: torch.Tensor, w: torch.Tensor, jacobian: bool):
    """The forward pass of :class:`_ForwardMeasure` given ``w = [Re U; Im U]`` (..., 2 dim, dim):
    shared with the real-arithmetic Function of :mod:`qinn_lib.models.qinn.real_autograd`, which
    holds U as two real tensors."""
    batch, n = x_prime.shape[-2:]
    lead = x_prime.shape[:-2]
    dim = 1 << n
    tab = _tables(n, x_prime.device, x_prime.dtype)
    f, df = _ry_factors(x_prime)
    if jacobian:
        states = _product_state_fm(torch.where(tab["tangent_mask"], df.unsqueeze(-2), f.unsqueeze(-2)), len(lead))
    else:
        states = _product_state_fm(f, len(lead)).unsqueeze(-2)
    rows = states.shape[-2]
    y = (w @ states.reshape(*lead, dim, rows * batch)).view(*lead, 2, dim, rows, batch)
    yr, yi = y.unbind(-4)
    prob = yr[..., 0, :].square() + yi[..., 0, :].square()  # (..., dim, B)
    probs = (tab["bits"].T @ prob).transpose(-1, -2)
    ctx.save_for_backward(f, df, states, y, w)
    ctx.jacobian = jacobian
    if not jacobian:
        return probs
    dprob = 2.0 * (yr[..., :1, :] * yr[..., 1:, :] + yi[..., :1, :] * yi[..., 1:, :])  # (..., dim, i, B)
    dprobs = (tab["bits"].T @ dprob.reshape(*lead, dim, n * batch)).view(*lead, n, n, batch).movedim(-1, -3)
    return probs, dprobs


def _measure_backward(ctx, grad_p, grad_dp, need_x: bool, need_w: bool):
    """(dL/dx', dL/dw) of :func:`_measure_forward` (None where not needed), w = [Re U; Im U]."""
    f, df, states, y, w = ctx.saved_tensors
    n, batch = f.shape[-3], f.shape[-1]
    lead = f.shape[:-3]
    dim, rows = states.shape[-3], states.shape[-2]
    tab = _tables(n, f.device, f.dtype)
    # P_k = sum_s bits[s, k] (yr0^2 + yi0^2), dP_ki = 2 sum_s bits[s, k] (yr0 yr_i + yi0 yi_i);
    # real and imaginary parts handled together along y's (real, imag) axis.
    y0 = y[..., :1, :]
    if grad_p is not None:
        gprob = tab["bits"] @ grad_p.transpose(-1, -2)
    else:
        gprob = torch.zeros_like(y0.select(-4, 0).select(-2, 0))
    grad_y0 = y0 * gprob.unsqueeze(-2).unsqueeze(-4)
    if ctx.jacobian and grad_dp is not None:
        gd = (tab["bits"] @ grad_dp.movedim(-3, -1).reshape(*lead, n, n * batch)).view(*lead, 1, dim, n, batch)
        grad_y = 2.0 * torch.cat([grad_y0 + (y[..., 1:, :] * gd).sum(-2, keepdim=True), y0 * gd], -2)
    elif ctx.jacobian:
        grad_y = 2.0 * torch.cat([grad_y0, torch.zeros_like(y[..., 1:, :])], -2)
    else:
        grad_y = 2.0 * grad_y0
    gy = grad_y.view(*lead, 2 * dim, rows * batch)
    grad_w = None
    if need_w:
        grad_w = gy @ states.reshape(*lead, dim, rows * batch).transpose(-1, -2)  # (..., 2 dim, dim)
    grad_x = None
    if need_x:
        gs = (w.transpose(-1, -2) @ gy).view(*lead, dim, rows, batch)
        grad_x = _ry_input_grad(gs, f, df, states, tab, len(lead)).transpose(-1, -2)
    return grad_x, grad_w


class _ForwardMeasure(torch.autograd.Function):
    """(P, dP/dx') for angles x' (B, n) and the model unitary U: eq. 12-16 before c, d.

    P_k = sum_{s: bit_k(s)=1} |y_s|^2 with y = U psi(x'); with ``jacobian`` also
    dP_k/dx'_i = 2 Re sum_{bit_k(s)=1} conj(y_s) (U d psi/dx'_i)_s, output (B, k, i). The state and
    its n tangents go through U as one real matmul with [Re U; Im U].
    """

    @staticmethod
    def forward(ctx, x_prime: torch.Tensor, u: torch.Tensor, jacobian: bool):
        return _measure_forward(ctx, x_prime, torch.cat([u.real, u.imag], -2), jacobian)  # w: (..., 2 dim, dim)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_p, grad_dp=None):
        grad_x, gw = _measure_backward(ctx, grad_p, grad_dp, ctx.needs_input_grad[0], ctx.needs_input_grad[1])
        grad_u = None
        if gw is not None:
            dim = gw.shape[-1]
            grad_u = torch.complex(gw[..., :dim, :], gw[..., dim:, :])
        return grad_x, grad_u, None


def _rot_factors(psi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Rot(psi)|0> factors for ISP angles psi (..., B, n, 3), laid out (..., n, 2, B) (contiguous,
    so the product-state kernels vectorise over events): complex factors, magnitudes
    (cos, sin)(theta/2) and phases -(alpha, beta)."""
    mix = _rot_constants(psi.device, psi.dtype)[0]
    ang = (psi @ mix).movedim(-3, -1).contiguous()  # (..., n, 3, B): theta/2, alpha, beta
    mags = torch.stack([torch.cos(ang[..., 0, :]), torch.sin(ang[..., 0, :])], -2)
    phases = -ang[..., 1:, :]
    return torch.polar(mags, phases), mags, phases


def _rot_input_grad(grad_s: torch.Tensor, f, mags, phases, tab, lead: int = 0) -> torch.Tensor:
    """dL/dpsi (..., B, n, 3) given dL/d(state) (..., dim, B) of the ISP product state
    prod_i Rot(psi_i)|0> (``lead`` leading model dimensions).

    dL/df_i[a] is the contraction of g with the product state whose factor i is replaced by the
    basis vector e_a (2n states). With f = (e^{-i alpha} c, e^{-i beta} s): d/dphi = -i f/2,
    d/domega = (-i f_0, i f_1)/2, d/dtheta = (-e^{-i alpha} s, e^{-i beta} c)/2.
    """
    n, batch = f.shape[-3], f.shape[-1]
    replaced = _product_state_fm(torch.where(tab["basis_mask"], tab["basis"], f.conj().unsqueeze(-2)), lead)
    env_c = (grad_s.unsqueeze(-2) * replaced).sum(-3).view(*f.shape[:-3], n, 2, batch).conj()  # conj(dL/df)
    h = (env_c * f).imag  # (..., n, 2, B)
    shifted = torch.polar(torch.stack([-mags[..., 1, :], mags[..., 0, :]], -2), phases)
    g_theta = 0.5 * (env_c * shifted).real.sum(-2)  # (..., n, B)
    g_phi = 0.5 * (h[..., 0, :] + h[..., 1, :])
    g_omega = 0.5 * (h[..., 0, :] - h[..., 1, :])
    return torch.stack([g_phi, g_theta, g_omega], -1).transpose(-3, -2)  # (..., B, n, 3)


class _RotProductState(torch.autograd.Function):
    """|psi> = prod_i Rot(psi_i0, psi_i1, psi_i2)|0> from ISP angles (..., B, n, 3); (..., B, 2^n) complex."""

    @staticmethod
    def forward(ctx, psi: torch.Tensor) -> torch.Tensor:
        f, mags, phases = _rot_factors(psi)
        ctx.save_for_backward(f, mags, phases)
        return _product_state_fm(f, f.ndim - 3).transpose(-1, -2)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_s: torch.Tensor):
        f, mags, phases = ctx.saved_tensors
        return _rot_input_grad(grad_s.transpose(-1, -2), f, mags, phases,
                               _tables(f.shape[-3], f.device, mags.dtype), f.ndim - 3)


class _InverseMeasure(torch.autograd.Function):
    """x'~ (B, n) from ISP angles psi (B, n, 3), the model unitary U and the ISP circuit g_Q.

    |y~> = g_Q prod_i Rot(psi_i)|0> (eq. 22), U^dagger |y~> (eq. 13-15), p0/p1 = P(qubit = 0/1),
    x'~ = 2 atan2(sqrt(p1), sqrt(p0)): the paper's 2 arcsin(sqrt(p1)) since p0 + p1 = 1, but with
    full precision at both ends of [0, pi] (1 - p1 cancels near x' = pi in float32).
    """

    @staticmethod
    def forward(ctx, psi: torch.Tensor, u: torch.Tensor, g_q: torch.Tensor) -> torch.Tensor:
        n = psi.shape[-2]
        tab = _tables(n, psi.device, psi.dtype)
        f, mags, phases = _rot_factors(psi)
        state = _product_state_fm(f, psi.ndim - 3)  # (..., dim, B)
        v = u.mH @ g_q
        back = v @ state  # (..., dim, B)
        p01 = tab["bits01_t"] @ (back.real.square() + back.imag.square())  # (..., 2n, B)
        live = p01 > _PROB_EPS
        r = torch.sqrt(torch.clamp(p01, min=_PROB_EPS))
        ctx.save_for_backward(f, mags, phases, state, back, v, u, g_q, r, live)
        return 2.0 * torch.atan2(r[..., n:, :], r[..., :n, :]).transpose(-1, -2)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_x: torch.Tensor):
        f, mags, phases, state, back, v, u, g_q, r, live = ctx.saved_tensors
        n = f.shape[-3]
        tab = _tables(n, f.device, mags.dtype)
        g = grad_x.transpose(-1, -2)  # (..., n, B)
        r0, r1 = r[..., :n, :], r[..., n:, :]
        denom = r0.square() + r1.square()
        # d(2 atan2(r1, r0)) = 2 (r0 dr1 - r1 dr0) / (r0^2 + r1^2), dr = dp / (2 r); 0 where clamped
        gp = torch.cat([-g * r1 / (denom * r0), g * r0 / (denom * r1)], -2) * live
        gback = 2.0 * back * (tab["bits01_t"].T @ gp)  # (..., dim, B) complex
        grad_psi = grad_u = grad_g = None
        if ctx.needs_input_grad[0]:
            grad_psi = _rot_input_grad(v.mH @ gback, f, mags, phases, tab, f.ndim - 3)
        if ctx.needs_input_grad[1] or ctx.needs_input_grad[2]:
            gv = gback @ state.mH  # back = v state
            grad_u = g_q @ gv.mH  # v = U^dagger g_Q
            grad_g = u @ gv
        return grad_psi, grad_u, grad_g


def circuit_unitary(weights: torch.Tensor) -> torch.Tensor:
    """U = U_L ... U_1 of the hardware-efficient ansatz (Fig. 2) for weights (..., L, n, 3), complex
    (leading dimensions: one unitary per model of a stack)."""
    if weights.ndim < 3 or weights.shape[-1] != 3:
        raise ValueError(f"circuit_unitary: weights must have shape (L, n, 3) or (..., L, n, 3), got {tuple(weights.shape)}")
    return _CircuitUnitary.apply(weights)
