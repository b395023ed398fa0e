"""The mask-free cubic spline (qinn_lib.models.inn.spline) against nflows' ``unconstrained_cubic_spline``, the
oracle it replaces on the fast path [54].

Everything in float64 with the INN's settings (linear tails, ``quadratic_threshold=1e-9``, the
``-ln 2`` derivative offset of ``inn.apply_spline``), on three kinds of random splines: near the
identity (where every INN starts), smooth, and sharp; at random points inside, points in the
linear tails, points exactly at the tail bound and exactly at the knots.

* Values, inverse values and log|det|: equal to nflows to 1e-12 (in fact bit for bit in eager mode).
* Forward gradients w.r.t. inputs and knot parameters: equal to nflows' autograd to 1e-12.
* Inverse gradients: equal to 1e-12 to the derivative of nflows' inverse by the implicit function
  theorem, built from nflows' *forward* spline at nflows' inverse root (``dx/dtheta =
  -ds/dtheta / ds/dx``). Not to nflows' autograd through its closed-form inverse: that one loses up
  to ~1e-6 relative to cancellation, which a 50-digit mpmath reference shows below.
"""

from __future__ import annotations

import math

import mpmath
import pytest
import torch
from nflows.transforms.splines.cubic import unconstrained_cubic_spline as nflows_spline
from torch.autograd.functional import jacobian

from qinn_lib.models.inn import spline
from qinn_lib.models.inn.coupling import (
    _IDENTITY_DERIVATIVE_LOGIT,
    _QUADRATIC_THRESHOLD,
    CubicSplineCoupling,
    apply_spline,
)
from qinn_lib.models.inn.model import INN

F64 = torch.float64
B = 4.0
TOL = dict(atol=1e-12, rtol=1e-12)
#: theta scale -> kind of spline: near-identity (the INN's start), smooth, moderately sharp (bin
#: slopes over ~2 decades), and sharp (slopes over ~6 decades, down to ~1e-3 of the mean)
SCALES = {"near_identity": 1e-3, "smooth": 0.3, "moderate": 1.0, "sharp": 3.0}
#: The kinds on which gradients and round trips are checked to 1e-12 / 1e-9. On "sharp" splines
#: the float64 rounding of either side, amplified by slopes of ~1e-3, reaches a few 1e-12
#: relative, and nflows' inverse sometimes picks a wrong root (_NFLOWS_WRONG_ROOT): there the
#: values are checked (equal to nflows), and the gradients for finiteness.
CONDITIONED = ["near_identity", "smooth", "moderate"]


# Thousands of tiny ops: one intra-op thread is faster (tests/conftest.py, one_thread).
pytestmark = pytest.mark.usefixtures("one_thread")


# -- helpers ----------------------------------------------------------------------------------------
def _split(theta: torch.Tensor, bins: int) -> dict[str, torch.Tensor]:
    """theta (N, 2K + 2) -> the spline arguments exactly as inn.apply_spline builds them."""
    k = bins
    return dict(unnormalized_widths=theta[..., :k], unnormalized_heights=theta[..., k:2 * k],
                unnorm_derivatives_left=theta[..., 2 * k:2 * k + 1] + _IDENTITY_DERIVATIVE_LOGIT,
                unnorm_derivatives_right=theta[..., 2 * k + 1:] + _IDENTITY_DERIVATIVE_LOGIT)


def _nflows(x, theta, bins, inverse, threshold=_QUADRATIC_THRESHOLD):
    return nflows_spline(x, **_split(theta, bins), inverse=inverse, tail_bound=B, tails="linear",
                         quadratic_threshold=threshold)


def _ours(x, theta, bins, inverse, threshold=_QUADRATIC_THRESHOLD):
    return spline.unconstrained_cubic_spline(x, **_split(theta, bins), inverse=inverse, tail_bound=B,
                                             quadratic_threshold=threshold)


def _knots(theta: torch.Tensor, bins: int, inverse: bool) -> torch.Tensor:
    """Every knot of every row's spline, (N, K + 1), on [-B, B]: x-knots (cumulative widths) for
    the forward direction, y-knots (cumulative heights) for the inverse. nflows' construction."""
    u = theta[:, bins:2 * bins] if inverse else theta[:, :bins]
    w = 1e-3 + (1 - 1e-3 * bins) * torch.softmax(u, dim=-1)
    c = torch.cumsum(w, dim=-1)
    c[:, -1] = 1.0
    c = torch.cat([torch.zeros_like(c[:, :1]), c], dim=-1)
    return c * 2 * B - B


def _case(kind: str, bins: int, inverse: bool, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x, theta, at_inner_knot): one spline per row; points at random inside (-B, B), exactly at
    a knot of the row's own spline, exactly at +-B and just inside/outside it, and in the tails."""
    gen = torch.Generator().manual_seed(seed + 1000 * bins + (17 if inverse else 0))
    n_in, n_knot, n_out = 400, 120, 80
    special = torch.tensor([B, -B, B - 1e-12, -B + 1e-12, B + 1e-12, -B - 1e-12, B + 1e-3, -B - 1e-3,
                            1e3, -1e3, 0.0], dtype=F64)
    n = n_in + n_knot + n_out + len(special)
    theta = torch.randn(n, 2 * bins + 2, generator=gen, dtype=F64) * SCALES[kind]
    inside = (torch.rand(n_in, generator=gen, dtype=F64) * 2 - 1) * B
    knots = _knots(theta[n_in:n_in + n_knot], bins, inverse)
    pick = torch.randint(0, bins + 1, (n_knot,), generator=gen)
    at_knot = knots[torch.arange(n_knot), pick]
    sign = torch.where(torch.rand(n_out, generator=gen) < 0.5, -1.0, 1.0).to(F64)
    tails = sign * (B + torch.rand(n_out, generator=gen, dtype=F64) * 10)
    x = torch.cat([inside, at_knot, tails, special])
    inner_knot = torch.zeros(n, dtype=torch.bool)
    inner_knot[n_in:n_in + n_knot] = (pick > 0) & (pick < bins)
    return x, theta, inner_knot


def _weights(n: int, seed: int = 7) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, generator=gen, dtype=F64), torch.randn(n, generator=gen, dtype=F64)


def _grads(fn, x, theta, bins, inverse, w_out, w_ld, threshold=_QUADRATIC_THRESHOLD):
    """Values and the gradient of sum(w_out * out + w_ld * logabsdet) w.r.t. inputs and theta."""
    x = x.clone().requires_grad_(True)
    theta = theta.clone().requires_grad_(True)
    out, ld = fn(x, theta, bins, inverse, threshold)
    gx, gt = torch.autograd.grad((w_out * out + w_ld * ld).sum(), [x, theta])
    return out.detach(), ld.detach(), gx, gt


def _implicit_inverse_grads(x_root, y, theta, bins, w_out, w_ld):
    """The gradient of sum(w_out * x(y) + w_ld * logabsdet_inverse) from nflows' FORWARD spline
    at nflows' inverse root, by the implicit function theorem (rows are independent):
    dx/dy = 1/s', dx/dtheta = -ds/dtheta / s', and logabsdet_inverse = -L(x, theta) with L the
    forward log-slope, so dld = -(dL/dtheta + dL/dx dx)."""
    inside = y.abs() <= B
    x0 = torch.where(inside, x_root.clamp(-B, B), x_root).clone().requires_grad_(True)  # root at +-B: not a tail
    th = theta.clone().requires_grad_(True)
    s, L = _nflows(x0, th, bins, inverse=False)
    ds_dx, ds_dth = torch.autograd.grad(s.sum(), [x0, th], retain_graph=True)
    dL_dx, dL_dth = torch.autograd.grad(L.sum(), [x0, th])
    dx_dy = 1 / ds_dx
    dx_dth = -ds_dth / ds_dx[:, None]
    gy = w_out * dx_dy - w_ld * dL_dx * dx_dy
    gth = w_out[:, None] * dx_dth - w_ld[:, None] * (dL_dth + dL_dx[:, None] * dx_dth)
    return gy, gth


# -- values ------------------------------------------------------------------------------------------
#: _NFLOWS_WRONG_ROOT: nflows' inverse can pick the wrong root of a sharp bin's cubic. It takes
#: the first of the three roots within eps = 1e-5 of the bin, and for a y at (or just above) a
#: knot where the spline's slope is tiny, a spurious root lies a few 1e-6 *left* of the knot,
#: where the cubic falls: the value is then off by up to ~1e-5 and log|det| is the log of a
#: negative number (NaN). The mask-free spline is the same function, so it does the same. In
#: these tests that happens only for "sharp" splines at points exactly on an inner knot (13 and 8
#: of 611 points for 5 and 8 bins).

@pytest.mark.parametrize("kind", list(SCALES))
@pytest.mark.parametrize("bins", [5, 8])
@pytest.mark.parametrize("inverse", [False, True], ids=["forward", "inverse"])
def test_values_and_logdet_equal_nflows(kind, bins, inverse):
    x, theta, inner_knot = _case(kind, bins, inverse)
    with torch.no_grad():
        out_ref, ld_ref = _nflows(x, theta, bins, inverse)
        out, ld = _ours(x, theta, bins, inverse)
    # equal_nan: ours is NaN exactly where nflows is (see _NFLOWS_WRONG_ROOT)
    torch.testing.assert_close(out, out_ref, equal_nan=True, **TOL)
    torch.testing.assert_close(ld, ld_ref, equal_nan=True, **TOL)
    assert bool(torch.isfinite(out).all())
    bad = ~torch.isfinite(ld)
    assert not bool(bad.any()) or (inverse and kind == "sharp" and bool(inner_knot[bad].all()))
    tails = x.abs() > B
    assert torch.equal(out[tails], x[tails]) and bool((ld[tails] == 0).all())
    assert float(ld[~bad].abs().max()) > (1e-4 if kind == "near_identity" else 0.5)  # a real spline


@pytest.mark.parametrize("threshold", [1e-3, 10.0])
def test_near_quadratic_branch_equals_nflows(threshold):
    # A larger threshold sends many (10.0: all) elements through nflows' quadratic formula.
    x, theta, _ = _case("smooth", 8, inverse=True, seed=3)
    with torch.no_grad():
        out_ref, ld_ref = _nflows(x, theta, 8, True, threshold)
        out, ld = _ours(x, theta, 8, True, threshold)
    ok = torch.isfinite(out_ref) & torch.isfinite(ld_ref)
    assert int(ok.sum()) > 0.9 * len(x)
    torch.testing.assert_close(out[ok], out_ref[ok], **TOL)
    torch.testing.assert_close(ld[ok], ld_ref[ok], **TOL)
    # where nflows' quadratic formula has no real root (NaN), so has ours
    assert torch.equal(torch.isnan(out), torch.isnan(out_ref))


# -- gradients ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", list(SCALES))
@pytest.mark.parametrize("bins", [5, 8])
def test_forward_gradients_equal_nflows(kind, bins):
    x, theta, _ = _case(kind, bins, inverse=False)
    w_out, w_ld = _weights(len(x))
    _, _, gx_ref, gt_ref = _grads(_nflows, x, theta, bins, False, w_out, w_ld)
    _, _, gx, gt = _grads(_ours, x, theta, bins, False, w_out, w_ld)
    torch.testing.assert_close(gx, gx_ref, **TOL)
    torch.testing.assert_close(gt, gt_ref, **TOL)
    tails = x.abs() > B
    assert bool((gx[tails] == w_out[tails]).all()) and bool((gt[tails] == 0).all())


@pytest.mark.parametrize("kind", CONDITIONED)
@pytest.mark.parametrize("bins", [5, 8])
def test_inverse_gradients_equal_the_implicit_derivative_of_nflows(kind, bins):
    y, theta, inner_knot = _case(kind, bins, inverse=True)
    with torch.no_grad():
        x_root, ld_root = _nflows(y, theta, bins, True)
    ok = torch.isfinite(ld_root)  # not nflows' wrong roots (see _NFLOWS_WRONG_ROOT)
    y, theta, inner_knot, x_root = y[ok], theta[ok], inner_knot[ok], x_root[ok]
    w_out, w_ld = _weights(len(y))
    gy_ref, gt_ref = _implicit_inverse_grads(x_root, y, theta, bins, w_out, w_ld)
    _, _, gy, gt = _grads(_ours, y, theta, bins, True, w_out, w_ld)
    assert bool(torch.isfinite(gy).all() and torch.isfinite(gt).all())
    # The log-slope of a C^1 cubic spline jumps at an inner knot (s'' does), so there the
    # log-det's derivative depends on which bin's cubic is used: compare the value part only.
    keep = ~inner_knot
    torch.testing.assert_close(gy[keep], gy_ref[keep], **TOL)
    torch.testing.assert_close(gt[keep], gt_ref[keep], **TOL)
    _, _, gy0, gt0 = _grads(_ours, y, theta, bins, True, w_out, torch.zeros_like(w_ld))
    gy0_ref, gt0_ref = _implicit_inverse_grads(x_root, y, theta, bins, w_out, torch.zeros_like(w_ld))
    torch.testing.assert_close(gy0, gy0_ref, **TOL)
    torch.testing.assert_close(gt0, gt0_ref, **TOL)


def _mp_forward(x: mpmath.mpf, theta: list, bins: int) -> mpmath.mpf:
    """nflows' cubic spline with linear tails (inside [-B, B] only) in mpmath: the 50-digit yardstick."""
    k = bins
    mbw = mpmath.mpf("1e-3")

    def sizes(u):
        e = [mpmath.exp(v) for v in u]
        return [mbw + (1 - mbw * k) * v / sum(e) for v in e]

    w, h = sizes(theta[:k]), sizes(theta[k:2 * k])
    cw, ch = [mpmath.mpf(0)], [mpmath.mpf(0)]
    for i in range(k):
        cw.append(cw[-1] + w[i])
        ch.append(ch[-1] + h[i])
    s = [h[i] / w[i] for i in range(k)]
    sig = lambda v: 1 / (1 + mpmath.exp(-(v - mpmath.log(2))))  # noqa: E731  (the -ln 2 offset)
    der = [sig(theta[2 * k]) * 3 * s[0]]
    for i in range(k - 1):
        m = min(abs(s[i]), abs(s[i + 1]), mpmath.mpf("0.5") * (w[i + 1] * s[i] + w[i] * s[i + 1]) / (w[i] + w[i + 1]))
        der.append(m * 2)
    der.append(sig(theta[2 * k + 1]) * 3 * s[-1])
    u = (x + B) / (2 * B)
    j = max(i for i in range(k) if u >= cw[i])
    a = (der[j] + der[j + 1] - 2 * s[j]) / w[j] ** 2
    b = (3 * s[j] - 2 * der[j] - der[j + 1]) / w[j]
    t = u - cw[j]
    return (((a * t + b) * t + der[j]) * t + ch[j]) * 2 * B - B


def test_inverse_gradient_is_more_accurate_than_nflows_autograd():
    # Why the inverse's gradient is implicit, not autograd through the closed form (qinn_lib.models.inn.spline,
    # _implicit_root): near the identity the closed form cancels large terms, and so does its
    # derivative. The exact derivative, from 50-digit arithmetic, decides.
    bins = 8
    y, theta, _ = _case("near_identity", bins, inverse=True, seed=5)
    y, theta = y[:400], theta[:400]
    w_out = torch.ones(len(y), dtype=F64)
    _, _, _, gt_nflows = _grads(_nflows, y, theta, bins, True, w_out, torch.zeros_like(w_out))
    x_ours, _, _, gt_ours = _grads(_ours, y, theta, bins, True, w_out, torch.zeros_like(w_out))
    worst = (gt_nflows - gt_ours).abs().flatten().topk(3).indices
    mpmath.mp.dps = 50
    nflows_errors = []
    for flat in worst.tolist():
        i, j = divmod(flat, 2 * bins + 2)
        th = [mpmath.mpf(v) for v in theta[i].tolist()]
        yi = mpmath.mpf(y[i].item())

        def root(tj, i=i, j=j, th=th, yi=yi):
            t = list(th)
            t[j] = tj
            return mpmath.findroot(lambda x: _mp_forward(x, t, bins) - yi, mpmath.mpf(x_ours[i].item()))

        exact = mpmath.diff(root, th[j])
        assert abs(float(gt_ours[i, j]) - float(exact)) <= 1e-12 * max(1.0, abs(float(exact)))
        nflows_errors.append(abs(float(gt_nflows[i, j]) - float(exact)))
    print(f"nflows' autograd inverse gradient, worst errors vs 50-digit reference: {nflows_errors}")
    assert max(nflows_errors) > 1e-9  # the defect the implicit gradient avoids


def test_inverse_gradients_finite_where_values_are():
    # nflows: masked-out branches can send 0 * inf = NaN into the gradient of an element with a
    # finite value (sharp splines); here every element with a finite value has a finite gradient.
    y, theta, _ = _case("sharp", 8, inverse=True, seed=11)
    y = torch.cat([y, (torch.rand(3000, generator=torch.Generator().manual_seed(0), dtype=F64) * 2 - 1) * B])
    theta = torch.cat([theta, torch.randn(3000, 18, generator=torch.Generator().manual_seed(1), dtype=F64) * 6.0])
    w_out, w_ld = _weights(len(y))
    out, ld, gy, gt = _grads(_ours, y, theta, 8, True, w_out, w_ld)
    ok = torch.isfinite(out) & torch.isfinite(ld)
    assert int(ok.sum()) > 0.99 * len(y)
    assert bool(torch.isfinite(gy[ok]).all() and torch.isfinite(gt[ok]).all())


# -- invertibility and log|det| (FrEIA-test style) ----------------------------------------------------
@pytest.mark.parametrize("kind", CONDITIONED)
def test_round_trip_and_inverse_logdet(kind):
    x, theta, _ = _case(kind, 8, inverse=False, seed=2)
    with torch.no_grad():
        y, ld = _ours(x, theta, 8, False)
        x_hat, ld_rev = _ours(y, theta, 8, True)
    torch.testing.assert_close(x_hat, x, atol=1e-9, rtol=0)
    # log|det| of the inverse is minus the forward one, except exactly at +-B where the map has a
    # kink (spline end slope vs tail slope 1) and y = +-B may round to the tail side.
    keep = (x.abs() - B).abs() > 1e-9
    torch.testing.assert_close(ld_rev[keep], -ld[keep], atol=1e-9, rtol=0)


@pytest.mark.parametrize("inverse", [False, True], ids=["forward", "inverse"])
def test_logdet_matches_bruteforce_jacobian(inverse):
    x, theta, _ = _case("sharp", 5, inverse=inverse, seed=4)
    keep = (x.abs() - B).abs() > 1e-6  # the kink at +-B has no derivative
    x, theta = x[keep][::5], theta[keep][::5]
    _, ld = _ours(x, theta, 5, inverse)
    jac = jacobian(lambda t: _ours(t, theta, 5, inverse)[0], x)  # (N, N), diagonal: rows are independent
    assert torch.equal(jac, torch.diag(torch.diagonal(jac)))
    torch.testing.assert_close(ld, torch.log(torch.diagonal(jac).abs()), atol=1e-10, rtol=1e-10)


# -- the INN with either spline ------------------------------------------------------------------------
def test_apply_spline_rejects_unknown_impl():
    with pytest.raises(ValueError, match="impl"):
        apply_spline(torch.zeros(2, 2), torch.zeros(2, 2, 12), 5, B, False, impl="fast")
    with pytest.raises(ValueError, match="spline"):
        INN("2k", spline="zuko")
    with pytest.raises(ValueError, match="spline"):
        CubicSplineCoupling([(5,)], subnet_constructor=lambda i, o: torch.nn.Linear(i, o), spline="nflows2")


def _sharp_pair(size: str, seed: int = 3) -> tuple[INN, INN]:
    """The same random float64 INN twice, with the nflows and the mask-free spline."""
    models = [INN(size, seed=seed, dtype=F64, spline=impl) for impl in ("nflows", "maskfree")]
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for mods in zip(*(m.flow for m in models)):
            if isinstance(mods[0], CubicSplineCoupling):
                lin = mods[0].subnet1[-1]
                b = 1.0 / math.sqrt(lin.in_features)
                for name in ("weight", "bias"):
                    new = torch.empty(getattr(lin, name).shape, dtype=F64).uniform_(-b, b, generator=gen)
                    for m in mods:
                        getattr(m.subnet1[-1], name).copy_(new)
    return models[0], models[1]


def test_inn_with_maskfree_spline_equals_nflows_forward_inverse_and_gradients():
    ref, fast = _sharp_pair("2k")
    gen = torch.Generator().manual_seed(0)
    x = torch.cat([torch.rand(64, 5, generator=gen, dtype=F64) * math.pi,
                   torch.tensor([[-6.0, 9.0, -5.0, 12.0, 7.5]], dtype=F64)])
    z = torch.randn(65, 5, generator=gen, dtype=F64) * 1.5
    outs = []
    for m in (ref, fast):
        m.zero_grad()
        z_m, ld = m.forward_and_logdet(x)
        (0.5 * z_m.pow(2).sum(1) - ld).mean().backward()  # the NLL, eq. 7
        grads = [p.grad.clone() for p in m.parameters()]
        outs.append((z_m.detach(), ld.detach(), m.inverse(z).detach(), grads))
    (z_r, ld_r, x_r, g_r), (z_f, ld_f, x_f, g_f) = outs
    torch.testing.assert_close(z_f, z_r, **TOL)
    torch.testing.assert_close(ld_f, ld_r, **TOL)
    torch.testing.assert_close(x_f, x_r, **TOL)
    for a, b in zip(g_f, g_r):
        torch.testing.assert_close(a, b, **TOL)


def test_inn_inverse_gradient_equals_the_implicit_derivative_of_the_nflows_forward_pass():
    # dL(f^-1(z))/dtheta = -u^T df/dtheta at x = f^-1(z), with J^T u = dL/dx and J = df/dx: the
    # gradient through the whole inverse INN from the nflows model's forward pass only.
    ref, fast = _sharp_pair("2k", seed=4)
    z = torch.randn(24, 5, generator=torch.Generator().manual_seed(1), dtype=F64)
    x = fast.inverse(z)
    loss = (x.pow(2).sum(1) * torch.linspace(0.5, 1.5, 24, dtype=F64)).sum()
    grads = torch.autograd.grad(loss, list(fast.parameters()))
    x0 = ref.inverse(z).detach()
    torch.testing.assert_close(x.detach(), x0, **TOL)
    dl_dx = 2 * x0 * torch.linspace(0.5, 1.5, 24, dtype=F64)[:, None]
    jac = torch.stack([jacobian(lambda r: ref(r.unsqueeze(0)).squeeze(0), row) for row in x0])  # (N, 5, 5)
    u = torch.linalg.solve(jac.transpose(1, 2), dl_dx)
    oracle = torch.autograd.grad(-(u * ref(x0)).sum(), list(ref.parameters()))
    for g, o in zip(grads, oracle):
        torch.testing.assert_close(g, o, **TOL)
