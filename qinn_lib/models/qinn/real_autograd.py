"""The circuit Functions of :mod:`qinn_lib.models.qinn.autograd` in real arithmetic, for the compiled step.

Why: inductor generates no code for complex operators. In the compiled training step the ~50
complex matrix products and the complex elementwise ops of the circuits ran one by one as eager
fallbacks between the fused kernels (~0.5 ms of a ~3 ms step, by torch.profiler). Here every
complex tensor is a pair ``(re, im)`` of real tensors and every complex product is written out in
real ones (a complex matmul is one real matmul of the stacked parts, :func:`_cmm`), so the whole
step is real and inductor fuses its elementwise work (the matmuls stay library calls). Measured
side by side (issue 20): 0.94x the step's time with inductor's Python wrapper, 0.97x with its C++
wrapper (:func:`qinn_lib.compiling.step_compile_options`), which removes most of the per-op cost
of the fallbacks anyway.

Same math, same hand-written backward passes as the complex Functions (their docstrings explain
them), term by term: a complex gradient g = dL/dRe + i dL/dIm is here the pair of the real
gradients of the two parts. Leading model dimensions (:class:`qinn_lib.models.qinn.stack.QINNStack`)
are carried as there. The complex Functions stay the readable definition and the eager path; these
are tested against them in float64 (and thus, transitively, against PennyLane) and by gradcheck.
Which of the two a step uses is :func:`use_real` (``step_arithmetic`` of the QINN and the stack).
"""

from __future__ import annotations

from typing import Callable

import torch

from qinn_lib.models.qinn.autograd import _measure_backward, _measure_forward
from qinn_lib.models.qinn.simulator import _PROB_EPS, _rot_constants, _tables

__all__ = ["STEP_ARITHMETICS", "use_real", "circuit_unitary", "forward_measure", "inverse_measure",
           "rot_product_state", "fidelity"]

Pair = tuple[torch.Tensor, torch.Tensor]

#: ``step_arithmetic`` values: ``auto`` = real pairs while ``torch.compile`` traces the step (the
#: eager step stays complex, unchanged bit for bit), ``complex`` or ``real`` always.
STEP_ARITHMETICS = ("auto", "complex", "real")


def use_real(mode: str) -> bool:
    """Whether a step with ``step_arithmetic = mode`` runs its circuits in real arithmetic now."""
    if mode not in STEP_ARITHMETICS:
        raise ValueError(f"step_arithmetic must be one of {STEP_ARITHMETICS}, got {mode!r}")
    return mode == "real" or (mode == "auto" and torch.compiler.is_compiling())


# ---------------------------------------------------------------------------------------------
# complex arithmetic on (re, im) pairs
# ---------------------------------------------------------------------------------------------
def _cmul(a: Pair, b: Pair) -> Pair:
    return a[0] * b[0] - a[1] * b[1], a[0] * b[1] + a[1] * b[0]


def _cmm(a: Pair, b: Pair, conj_a: bool = False, conj_b: bool = False) -> Pair:
    """a @ b of complex matrices (conjugating a and/or b, no transpose) as ONE real matmul:
    [a_r; a_i] @ [b_r, b_i] holds the four real products as blocks (the same multiply-adds as four
    matmuls, one kernel call)."""
    m, n = a[0].shape[-2], b[0].shape[-1]
    p = torch.cat(a, -2) @ torch.cat(b, -1)
    rr, ri, ir, ii = p[..., :m, :n], p[..., :m, n:], p[..., m:, :n], p[..., m:, n:]
    sa, sb = (-1.0 if conj_a else 1.0), (-1.0 if conj_b else 1.0)
    re = rr - ii if sa * sb > 0 else rr + ii
    im = (ri if sb > 0 else -ri) + (ir if sa > 0 else -ir)
    return re, im


def _mh(a: Pair) -> Pair:
    """The transpose of both parts (with conj_* of :func:`_cmm`: the conjugate transpose)."""
    return a[0].mT, a[1].mT


def _product_state(f: Pair, lead: int) -> Pair:
    """:func:`qinn_lib.models.qinn.simulator._product_state_fm` of complex factors."""
    re, im = f[0].unbind(lead), f[1].unbind(lead)
    out = re[0], im[0]
    for factor in zip(re[1:], im[1:]):
        out = _cmul((out[0].unsqueeze(lead + 1), out[1].unsqueeze(lead + 1)),
                    (factor[0].unsqueeze(lead), factor[1].unsqueeze(lead)))
        out = out[0].flatten(lead, lead + 1), out[1].flatten(lead, lead + 1)
    return out


def _kron_qubits(m: Pair) -> Pair:
    """:func:`qinn_lib.models.qinn.simulator._kron_qubits` of complex (L, n, 2, 2) factors."""
    re, im = m[0].unbind(1), m[1].unbind(1)
    out = re[0], im[0]
    n_batch = m[0].shape[0]
    for factor in zip(re[1:], im[1:]):
        k = out[0].shape[-1]
        prod = _cmul((out[0].view(n_batch, k, 1, k, 1), out[1].view(n_batch, k, 1, k, 1)),
                     (factor[0].view(n_batch, 1, 2, 1, 2), factor[1].view(n_batch, 1, 2, 1, 2)))
        out = prod[0].view(n_batch, 2 * k, 2 * k), prod[1].view(n_batch, 2 * k, 2 * k)
    return out


def _polar(mags: torch.Tensor, phases: torch.Tensor) -> Pair:
    return mags * torch.cos(phases), mags * torch.sin(phases)


def _rot_matrices(w: torch.Tensor) -> Pair:
    """:func:`qinn_lib.models.qinn.simulator.rot_matrices` as a pair ``(..., 2, 2)``."""
    mix, to_mags, to_phases = _rot_constants(w.device, w.dtype)
    ang = w @ mix
    half_theta = ang[..., 0]
    mags = torch.stack([torch.cos(half_theta), torch.sin(half_theta)], -1) @ to_mags
    re, im = _polar(mags, ang[..., 1:] @ to_phases)
    return re.unflatten(-1, (2, 2)), im.unflatten(-1, (2, 2))


# ---------------------------------------------------------------------------------------------
# the Functions
# ---------------------------------------------------------------------------------------------
class _CircuitUnitary(torch.autograd.Function):
    """:class:`qinn_lib.models.qinn.autograd._CircuitUnitary`: weights (..., L, n, 3) -> (Re U, Im U)."""

    @staticmethod
    def forward(ctx, weights: torch.Tensor):
        n_layers, n = weights.shape[-3], weights.shape[-2]
        tab = _tables(n, weights.device, weights.dtype)
        rots = _rot_matrices(weights)
        kron = _kron_qubits((rots[0].reshape(-1, *rots[0].shape[-3:]), rots[1].reshape(-1, *rots[1].shape[-3:])))
        kron = tuple(k.view(*weights.shape[:-3], n_layers, *k.shape[-2:]).index_select(-2, tab["ring"]) for k in kron)
        layers = list(zip(kron[0].unbind(-3), kron[1].unbind(-3)))  # K_l
        q = [layers[-1]]
        for k in reversed(layers[:-1]):
            q.append(_cmm(q[-1], k))
        q = q[::-1]
        qr, qi = torch.stack([p[0] for p in q], -3), torch.stack([p[1] for p in q], -3)  # Q_l
        ctx.save_for_backward(weights, qr, qi)
        return qr.select(-3, 0).clone(), qi.select(-3, 0).clone()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_re: torch.Tensor, grad_im: torch.Tensor):
        weights, qr, qi = ctx.saved_tensors
        n = weights.shape[-2]
        tab = _tables(n, weights.device, weights.dtype)
        h = _cmm((qr.select(-3, 0), qi.select(-3, 0)), _mh((grad_re, grad_im)), conj_b=True)  # H = U g_U^dagger
        hq = _cmm((h[0].unsqueeze(-3), h[1].unsqueeze(-3)), (qr, qi))
        m = _cmm(_mh((qr, qi)), hq, conj_a=True)  # M_l = Q_l^dagger H Q_l
        diag_m = torch.diagonal(m[1], dim1=-2, dim2=-1)
        diag_h = torch.diagonal(h[1], dim1=-2, dim2=-1).unsqueeze(-2)
        diag_n = torch.cat([diag_m[..., 1:, :], diag_h], -2).index_select(-1, tab["image"])
        g_phi = 0.5 * (diag_m @ tab["zsign"])
        g_omega = 0.5 * (diag_n @ tab["zsign"])
        lead = m[0].shape[:-2]
        off = [part.reshape(*lead, -1).index_select(-1, tab["flip"]).view(*lead, n, -1) for part in m]  # M[s, s^e_i]
        re_z = (off[0] * tab["zsign"].T).sum(-1)
        im_sum = off[1].sum(-1)
        phi = weights[..., 0]
        g_theta = 0.5 * (torch.cos(phi) * re_z + torch.sin(phi) * im_sum)
        return torch.stack([g_phi, g_theta, g_omega], -1)


class _ForwardMeasure(torch.autograd.Function):
    """:class:`qinn_lib.models.qinn.autograd._ForwardMeasure` with U as (Re U, Im U): the same code,
    which works on ``[Re U; Im U]`` already."""

    @staticmethod
    def forward(ctx, x_prime: torch.Tensor, u_re: torch.Tensor, u_im: torch.Tensor, jacobian: bool):
        return _measure_forward(ctx, x_prime, torch.cat([u_re, u_im], -2), jacobian)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_p, grad_dp=None):
        need = ctx.needs_input_grad
        grad_x, gw = _measure_backward(ctx, grad_p, grad_dp, need[0], need[1] or need[2])
        if gw is None:
            return grad_x, None, None, None
        dim = gw.shape[-1]
        return grad_x, gw[..., :dim, :], gw[..., dim:, :], None


def _rot_factors(psi: torch.Tensor) -> tuple[Pair, torch.Tensor, torch.Tensor]:
    """:func:`qinn_lib.models.qinn.autograd._rot_factors` with the complex factors as a pair."""
    mix = _rot_constants(psi.device, psi.dtype)[0]
    ang = (psi @ mix).movedim(-3, -1).contiguous()  # (..., n, 3, B): theta/2, alpha, beta
    mags = torch.stack([torch.cos(ang[..., 0, :]), torch.sin(ang[..., 0, :])], -2)
    phases = -ang[..., 1:, :]
    return _polar(mags, phases), mags, phases


def _rot_input_grad(grad_s: Pair, f: Pair, mags, phases, tab, lead: int) -> torch.Tensor:
    """:func:`qinn_lib.models.qinn.autograd._rot_input_grad` on pairs."""
    n, batch = f[0].shape[-3], f[0].shape[-1]
    mask = tab["basis_mask"]
    replaced = _product_state((torch.where(mask, tab["basis_real"], f[0].unsqueeze(-2)),
                               torch.where(mask, 0.0, -f[1].unsqueeze(-2))), lead)  # factor j: conj(f) or e_a
    env = _cmul((grad_s[0].unsqueeze(-2), grad_s[1].unsqueeze(-2)), replaced)
    shape = (*f[0].shape[:-3], n, 2, batch)
    env_c = env[0].sum(-3).view(shape), -env[1].sum(-3).view(shape)  # conj(dL/df)
    h = _cmul(env_c, f)[1]  # (..., n, 2, B)
    shifted = _polar(torch.stack([-mags[..., 1, :], mags[..., 0, :]], -2), phases)
    g_theta = 0.5 * _cmul(env_c, shifted)[0].sum(-2)  # (..., n, B)
    g_phi = 0.5 * (h[..., 0, :] + h[..., 1, :])
    g_omega = 0.5 * (h[..., 0, :] - h[..., 1, :])
    return torch.stack([g_phi, g_theta, g_omega], -1).transpose(-3, -2)  # (..., B, n, 3)


class _RotProductState(torch.autograd.Function):
    """:class:`qinn_lib.models.qinn.autograd._RotProductState`: ISP angles (..., B, n, 3) -> the
    state's (re, im), each (..., B, 2^n)."""

    @staticmethod
    def forward(ctx, psi: torch.Tensor):
        f, mags, phases = _rot_factors(psi)
        ctx.save_for_backward(*f, mags, phases)
        re, im = _product_state(f, f[0].ndim - 3)
        return re.transpose(-1, -2), im.transpose(-1, -2)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_re: torch.Tensor, grad_im: torch.Tensor):
        f_re, f_im, mags, phases = ctx.saved_tensors
        return _rot_input_grad((grad_re.transpose(-1, -2), grad_im.transpose(-1, -2)), (f_re, f_im), mags, phases,
                               _tables(f_re.shape[-3], f_re.device, mags.dtype), f_re.ndim - 3)


class _InverseMeasure(torch.autograd.Function):
    """:class:`qinn_lib.models.qinn.autograd._InverseMeasure` with U and g_Q as (re, im) pairs."""

    @staticmethod
    def forward(ctx, psi: torch.Tensor, u_re, u_im, g_re, g_im) -> torch.Tensor:
        n = psi.shape[-2]
        tab = _tables(n, psi.device, psi.dtype)
        f, mags, phases = _rot_factors(psi)
        state = _product_state(f, psi.ndim - 3)  # (..., dim, B)
        v = _cmm(_mh((u_re, u_im)), (g_re, g_im), conj_a=True)  # U^dagger g_Q
        back = _cmm(v, state)  # (..., dim, B)
        p01 = tab["bits01_t"] @ (back[0].square() + back[1].square())  # (..., 2n, B)
        live = p01 > _PROB_EPS
        r = torch.sqrt(torch.clamp(p01, min=_PROB_EPS))
        ctx.save_for_backward(*f, mags, phases, *state, *back, *v, u_re, u_im, g_re, g_im, r, live)
        return 2.0 * torch.atan2(r[..., n:, :], r[..., :n, :]).transpose(-1, -2)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_x: torch.Tensor):
        (f_re, f_im, mags, phases, s_re, s_im, b_re, b_im, v_re, v_im,
         u_re, u_im, g_re, g_im, r, live) = ctx.saved_tensors
        n = f_re.shape[-3]
        lead = f_re.ndim - 3
        tab = _tables(n, f_re.device, mags.dtype)
        g = grad_x.transpose(-1, -2)  # (..., n, B)
        r0, r1 = r[..., :n, :], r[..., n:, :]
        denom = r0.square() + r1.square()
        gp = torch.cat([-g * r1 / (denom * r0), g * r0 / (denom * r1)], -2) * live
        scale = tab["bits01_t"].T @ gp
        gback = 2.0 * b_re * scale, 2.0 * b_im * scale  # (..., dim, B)
        need = ctx.needs_input_grad
        grad_psi = None
        grads_u: tuple = (None, None)
        grads_g: tuple = (None, None)
        if need[0]:
            grad_psi = _rot_input_grad(_cmm(_mh((v_re, v_im)), gback, conj_a=True), (f_re, f_im), mags, phases,
                                       tab, lead)
        if any(need[1:]):
            gv = _cmm(gback, _mh((s_re, s_im)), conj_b=True)  # back = v state
            grads_u = _cmm((g_re, g_im), _mh(gv), conj_b=True)  # v = U^dagger g_Q
            grads_g = _cmm((u_re, u_im), gv)
        return grad_psi, *grads_u, *grads_g


# ---------------------------------------------------------------------------------------------
# the maps' pieces, as the step uses them
# ---------------------------------------------------------------------------------------------
def circuit_unitary(weights: torch.Tensor) -> Pair:
    """(Re U, Im U) of :func:`qinn_lib.models.qinn.autograd.circuit_unitary`."""
    return _CircuitUnitary.apply(weights)


def forward_measure(x_prime: torch.Tensor, u: Pair, jacobian: bool):
    """``_ForwardMeasure.apply(x_prime, u, jacobian)`` with ``u`` a pair."""
    return _ForwardMeasure.apply(x_prime, u[0], u[1], jacobian)


def inverse_measure(psi: torch.Tensor, u: Pair, g_q: Pair) -> torch.Tensor:
    """``_InverseMeasure.apply(psi, u, g_q)`` with ``u``, ``g_q`` pairs."""
    return _InverseMeasure.apply(psi, u[0], u[1], g_q[0], g_q[1])


def rot_product_state(psi: torch.Tensor) -> Pair:
    """``_RotProductState.apply(psi)`` as a pair."""
    return _RotProductState.apply(psi)


def fidelity(encoded: torch.Tensor, u: Pair, g_q: Pair, isp_angles: Callable[[torch.Tensor], torch.Tensor],
             bits: torch.Tensor) -> torch.Tensor:
    """F = |<y~|y>|^2 (eq. 17) from the real encoded state ``encoded`` (..., B, dim) (``ry_state``
    of x'), as :meth:`qinn_lib.models.qinn.model.QINN.fidelity`: |y> = U|x'>, P measured on it, psi =
    ``isp_angles(P)``, |y~> = g_Q Rot(psi)|0>."""
    y = encoded @ u[0].mT, encoded @ u[1].mT
    prepared = rot_product_state(isp_angles((y[0].square() + y[1].square()) @ bits))
    y_tilde = _cmm(prepared, _mh(g_q))
    overlap = _cmul((y_tilde[0], -y_tilde[1]), y)
    return overlap[0].sum(-1).square() + overlap[1].sum(-1).square()
