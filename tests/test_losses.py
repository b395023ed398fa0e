"""Tests of qinn_lib.training.objectives: every loss against a hand or brute-force computation, and the QINN
objective (sec. 4, Table 1) on a small invertible test double."""

from __future__ import annotations

import math

import pytest
import torch

from qinn_lib.training.config import QINNRunConfig
from qinn_lib.training.losses.invertibility import fidelity_invertibility, mse_invertibility
from qinn_lib.training.losses.mmd import breit_wigner_mmd, gaussian_mmd, mmd_reference, stacked_mmd
from qinn_lib.training.losses.nll import nll, nll_per_event
from qinn_lib.training.objectives import QINNObjective

WIDTHS = (0.02, 0.1, 0.4, 1.0, 5.0)


# -- test doubles ----------------------------------------------------------------------------------
class AffineFlow(torch.nn.Module):
    """z = (x - shift) * exp(log_scale); log|det| = sum(log_scale). The inverse carries a
    trainable bias so that it is *not* exact and the invertibility terms are non-trivial."""

    def __init__(self, n: int = 5, seed: int = 0, dtype: torch.dtype = torch.float64) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.log_scale = torch.nn.Parameter(0.3 * torch.randn(n, generator=g, dtype=dtype))
        self.shift = torch.nn.Parameter(torch.rand(n, generator=g, dtype=dtype) * math.pi)
        self.inv_bias = torch.nn.Parameter(0.05 * torch.randn(n, generator=g, dtype=dtype))
        self.calls = {"forward_and_logdet": 0, "inverse": 0, "fidelity": 0}

    def forward(self, x):
        return (x - self.shift) * torch.exp(self.log_scale)

    def forward_and_logdet(self, x):
        self.calls["forward_and_logdet"] += 1
        return self.forward(x), self.log_scale.sum().expand(x.shape[0])

    def inverse(self, z):
        self.calls["inverse"] += 1
        return z * torch.exp(-self.log_scale) + self.shift + self.inv_bias

    def fidelity(self, x):
        self.calls["fidelity"] += 1
        x_tilde = self.forward(x) * torch.exp(-self.log_scale) + self.shift + self.inv_bias
        return torch.exp(-(x - x_tilde).pow(2).sum(dim=1))


class LinearScaler:
    """Stands in for AngleScaler: physical = u * scale + offset."""

    def __init__(self, n: int = 5) -> None:
        self.scale = torch.linspace(10.0, 50.0, n, dtype=torch.float64)
        self.offset = torch.linspace(-3.0, 20.0, n, dtype=torch.float64)
        self.calls = 0

    def inverse_torch(self, u):
        self.calls += 1
        return u * self.scale.to(u) + self.offset.to(u)


def toy_mass(features):
    """Stands in for invariant_mass_torch: any smooth scalar of the physical features."""
    return torch.sqrt(features[:, 0] * features[:, 1] + features[:, 4] ** 2)


def scaled_data(n: int, seed: int, dtype=torch.float64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 5, generator=g, dtype=dtype) * math.pi


# -- NLL (eq. 5, 7) --------------------------------------------------------------------------------
def test_nll_hand_computation():
    z = torch.tensor([[1.0, 2.0], [0.0, 0.0]], dtype=torch.float64)
    logdet = torch.tensor([0.5, -1.0], dtype=torch.float64)
    # per event: (1 + 4)/2 - 0.5 = 2.0 and 0 + 1 = 1.0
    assert nll(z, logdet).item() == pytest.approx(1.5, abs=1e-15)
    per_event = nll_per_event(z, logdet, include_constant=True)
    assert per_event.tolist() == pytest.approx([2.0 + math.log(2 * math.pi), 1.0 + math.log(2 * math.pi)], abs=1e-14)
    assert nll_per_event(z, logdet, include_constant=False).tolist() == pytest.approx([2.0, 1.0], abs=1e-15)


def test_nll_of_standard_normal_with_zero_logdet():
    g = torch.Generator().manual_seed(3)
    z = torch.randn(200_000, 5, generator=g, dtype=torch.float64)
    # E[||z||^2 / 2] = n / 2; std of the mean = sqrt(2 n) / 2 / sqrt(N) = 0.0035.
    assert nll(z, torch.zeros(z.shape[0], dtype=torch.float64)).item() == pytest.approx(2.5, abs=0.02)


def test_nll_per_event_is_the_true_negative_log_density():
    # x ~ N(mu, s^2) per feature, flow z = (x - mu) / s, log|det dz/dx| = -sum(log s).
    g = torch.Generator().manual_seed(4)
    mu = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
    s = torch.tensor([0.3, 1.5, 2.0], dtype=torch.float64)
    x = mu + s * torch.randn(7, 3, generator=g, dtype=torch.float64)
    z = (x - mu) / s
    logdet = (-torch.log(s).sum()).expand(7)
    expected = -torch.distributions.Normal(mu, s).log_prob(x).sum(dim=1)
    torch.testing.assert_close(nll_per_event(z, logdet), expected, rtol=0, atol=1e-12)


def test_nll_training_loss_floors_log_det_on_a_fold_and_is_unchanged_above_it():
    """Regression: an NLL-only run stopped with loss=inf when one event landed where det J = 0
    (float32 slogdet gives -inf there). The training loss floors log|J|; the metric does not."""
    from qinn_lib.training.losses.nll import LOGDET_FLOOR

    g = torch.Generator().manual_seed(3)
    z = torch.randn(6, 5, generator=g)
    logdet = torch.randn(6, generator=g, requires_grad=True)
    assert torch.equal(nll(z, logdet), nll_per_event(z, logdet, include_constant=False).mean())  # bit for bit
    folded = torch.cat([logdet.detach()[:5], torch.tensor([float("-inf")])]).requires_grad_()
    value = nll(z, folded)
    assert torch.isfinite(value)
    expected = (0.5 * z.pow(2).sum(1) - torch.cat([folded.detach()[:5], torch.tensor([LOGDET_FLOOR])])).mean()
    assert value.item() == pytest.approx(expected.item(), rel=1e-6)
    value.backward()
    assert folded.grad[5] == 0 and bool((folded.grad[:5] == -1 / 6).all())
    assert torch.isinf(nll_per_event(z, folded.detach())[5])  # the metric still says: not a density there
    assert torch.isnan(nll(z, torch.full((6,), float("nan"))))  # NaN still reaches the divergence check


def test_nll_shape_errors_name_the_argument():
    with pytest.raises(ValueError, match="logdet"):
        nll(torch.zeros(4, 2), torch.zeros(3))
    with pytest.raises(ValueError, match="z must"):
        nll(torch.zeros(4), torch.zeros(4))


# -- MMD (eq. 9-11) --------------------------------------------------------------------------------
def brute_force_mmd(x, y, widths, kernel):
    x = [list(map(float, row)) for row in (x.reshape(len(x), -1))]
    y = [list(map(float, row)) for row in (y.reshape(len(y), -1))]

    def d2(a, b):
        return sum((ai - bi) ** 2 for ai, bi in zip(a, b))

    total = 0.0
    for w in widths:
        kxx = sum(kernel(d2(a, b), w) for a in x for b in x) / (len(x) * len(x))
        kyy = sum(kernel(d2(a, b), w) for a in y for b in y) / (len(y) * len(y))
        kxy = sum(kernel(d2(a, b), w) for a in x for b in y) / (len(x) * len(y))
        total += kxx + kyy - 2 * kxy
    return total


def gauss(d2, w):
    return math.exp(-d2 / (2 * w * w))


def breit_wigner(d2, w):
    return w * w / (w * w + d2)


def four_points(seed):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(4, 3, generator=g, dtype=torch.float64),
            torch.randn(4, 3, generator=g, dtype=torch.float64) + 0.7)


@pytest.mark.parametrize("seed", [0, 1])
def test_gaussian_mmd_matches_brute_force_double_loop(seed):
    x, y = four_points(seed)
    widths = (0.3, 1.0, 2.5)
    assert gaussian_mmd(x, y, widths).item() == pytest.approx(brute_force_mmd(x, y, widths, gauss), rel=1e-12)
    # unequal sample sizes
    assert gaussian_mmd(x, y[:3], widths).item() == pytest.approx(
        brute_force_mmd(x, y[:3], widths, gauss), rel=1e-12)


@pytest.mark.parametrize("seed", [0, 1])
def test_breit_wigner_mmd_matches_brute_force_double_loop(seed):
    x, y = four_points(seed)
    widths = (0.3, 1.0, 2.5)
    assert breit_wigner_mmd(x, y, widths).item() == pytest.approx(
        brute_force_mmd(x, y, widths, breit_wigner), rel=1e-12)
    # 1-D inputs (M_ll values) are treated as (N, 1)
    m1, m2 = x[:, 0] * 10 + 91, y[:, 0] * 10 + 91
    assert breit_wigner_mmd(m1, m2, (2.0, 5.0)).item() == pytest.approx(
        brute_force_mmd(m1, m2, (2.0, 5.0), breit_wigner), rel=1e-12)
    torch.testing.assert_close(breit_wigner_mmd(m1, m2, (2.0, 5.0)),
                               breit_wigner_mmd(m1[:, None], m2[:, None], (2.0, 5.0)))


def test_single_width_scalar_equals_one_element_list():
    x, y = four_points(2)
    torch.testing.assert_close(gaussian_mmd(x, y, 0.7), gaussian_mmd(x, y, [0.7]))


@pytest.mark.parametrize("mmd", [gaussian_mmd, breit_wigner_mmd])
def test_mmd_of_identical_samples_is_zero_and_of_shifted_samples_positive(mmd):
    g = torch.Generator().manual_seed(5)
    x = torch.randn(64, 5, generator=g, dtype=torch.float64)
    assert abs(mmd(x, x, WIDTHS).item()) < 1e-13
    small = mmd(x, x + 0.1, WIDTHS).item()
    large = mmd(x, x + 1.0, WIDTHS).item()
    assert 0 < small < large


@pytest.mark.parametrize("mmd", [gaussian_mmd, breit_wigner_mmd])
def test_mmd_separates_distributions_and_same_distribution_bias_falls_as_one_over_n(mmd):
    g = torch.Generator().manual_seed(6)

    def sample(n, scale=1.0, shift=0.0):
        return torch.randn(n, 2, generator=g, dtype=torch.float64) * scale + shift

    # Two samples of one distribution: the V-statistic's expectation is its bias,
    # (1/N + 1/M) (E k(x, x) - E k(x, x')), so it falls like 1/N ...
    same_250 = mmd(sample(250), sample(250), WIDTHS).item()
    same_1000 = mmd(sample(1000), sample(1000), WIDTHS).item()
    assert 2.0 < same_250 / same_1000 < 8.0
    # ... while a real difference stays.
    different = mmd(sample(1000), sample(1000, 1.5, 0.5), WIDTHS).item()
    assert different > 10 * same_1000


@pytest.mark.parametrize("mmd", [gaussian_mmd, breit_wigner_mmd])
def test_mmd_v_statistic_is_never_negative(mmd):
    # The unbiased U-statistic goes negative for samples of one distribution; eq. 9's V-statistic
    # is a squared norm and must not.
    for seed in range(20):
        g = torch.Generator().manual_seed(seed)
        x = torch.randn(8, 2, generator=g, dtype=torch.float64)
        y = torch.randn(8, 2, generator=g, dtype=torch.float64)
        assert mmd(x, y, WIDTHS).item() >= -1e-14


def test_mmd_gradients_match_finite_differences():
    x, y = four_points(7)
    x.requires_grad_(True)
    y.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, b: gaussian_mmd(a, b, (0.5, 2.0)), (x, y))
    assert torch.autograd.gradcheck(lambda a, b: breit_wigner_mmd(a, b, (0.5, 2.0)), (x, y))


FAST_MMD = {"gauss": gaussian_mmd, "breit_wigner": breit_wigner_mmd}


def _mmd_grads(fn, x, y):
    x, y = x.clone().requires_grad_(True), y.clone().requires_grad_(True)
    value = fn(x, y)
    gx, gy = torch.autograd.grad(value, (x, y))
    return value.detach(), gx, gy


@pytest.mark.parametrize("kernel", ["gauss", "breit_wigner"])
@pytest.mark.parametrize("n, m, d", [(9, 9, 5), (7, 4, 3), (6, 11, 1)])
def test_fast_mmd_equals_autograd_of_the_readable_eq9(kernel, n, m, d):
    """Value and both input gradients of the quadratic-form MMD with its hand-written gradient
    against plain autograd of eq. 9 as the paper writes it (float64)."""
    g = torch.Generator().manual_seed(n * 100 + m * 10 + d)
    x = torch.randn(n, d, generator=g, dtype=torch.float64) * 0.3
    y = torch.randn(m, d, generator=g, dtype=torch.float64) * 0.4 + 0.1
    fast = _mmd_grads(lambda a, b: FAST_MMD[kernel](a, b, WIDTHS), x, y)
    ref = _mmd_grads(lambda a, b: mmd_reference(a, b, WIDTHS, kernel), x, y)
    assert ref[1].abs().max() > 1e-3  # a gradient to compare, not two zeros
    for f, r, name in zip(fast, ref, ("value", "dx", "dy")):
        torch.testing.assert_close(f, r, rtol=1e-12, atol=1e-15, msg=name)


@pytest.mark.parametrize("kernel", ["gauss", "breit_wigner"])
@pytest.mark.parametrize("n, m, d", [(5, 5, 3), (4, 3, 2), (1, 1, 2), (1, 2, 1), (64, 64, 4)])
def test_stacked_mmd_equals_autograd_of_the_readable_eq9_per_member(kernel, n, m, d):
    """The K-member MMD computes each pair once (the pairs i < j, by cyclic offset): every member's
    value and input gradients against autograd of eq. 9 on that member alone (float64), for even
    and odd joint sizes P = n + m (an even P has the offset P/2, whose pairs appear twice), P = 2
    included. Each member's loss gets its own weight, so a gradient leaking between members or
    between the two samples would show."""
    g = torch.Generator().manual_seed(n * 100 + m * 10 + d)
    k = 3
    x = torch.randn(k, n, d, generator=g, dtype=torch.float64) * 0.3
    y = torch.randn(k, m, d, generator=g, dtype=torch.float64) * 0.4 + 0.1
    member_w = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    xs, ys = x.clone().requires_grad_(True), y.clone().requires_grad_(True)
    values = stacked_mmd(xs, ys, WIDTHS, kernel)
    gx, gy = torch.autograd.grad((values * member_w).sum(), (xs, ys))
    for i in range(k):
        ref = _mmd_grads(lambda a, b: member_w[i] * mmd_reference(a, b, WIDTHS, kernel), x[i], y[i])
        assert ref[1].abs().max() > 1e-4  # a gradient to compare, not two zeros
        torch.testing.assert_close(member_w[i] * values[i].detach(), ref[0], rtol=1e-12, atol=1e-15)
        torch.testing.assert_close(gx[i], ref[1], rtol=1e-12, atol=1e-15)
        torch.testing.assert_close(gy[i], ref[2], rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("kernel", ["gauss", "breit_wigner"])
def test_stacked_mmd_traced_for_the_compiler_equals_the_readable_eq9(kernel):
    """Traced by dynamo (``torch.compiler.is_compiling()``), the MMD takes its compiler-shaped
    formulation of the second points' gradient; run by the eager backend (no inductor, so fast),
    its values and gradients must equal autograd of eq. 9 too (float64; even and odd P)."""
    torch._dynamo.reset()

    traced = torch.compile(lambda a, b: stacked_mmd(a, b, WIDTHS, kernel), backend="eager", fullgraph=True)

    def value_and_grads(a, b):
        a = a.clone().requires_grad_(True)
        v = traced(a, b)
        (ga,) = torch.autograd.grad(v.sum(), (a,))
        return v.detach(), ga

    g = torch.Generator().manual_seed(11)
    for n, m in ((6, 6), (5, 4)):
        x = torch.randn(2, n, 3, generator=g, dtype=torch.float64) * 0.3
        y = torch.randn(2, m, 3, generator=g, dtype=torch.float64) * 0.4 + 0.1
        values, gx = value_and_grads(x, y)
        for i in range(2):
            ref = _mmd_grads(lambda a, b: mmd_reference(a, b, WIDTHS, kernel), x[i], y[i])
            torch.testing.assert_close(values[i], ref[0], rtol=1e-12, atol=1e-15)
            torch.testing.assert_close(gx[i], ref[1], rtol=1e-12, atol=1e-15)


def _breit_wigner_masses(n: int, g: torch.Generator, centre: float, gamma: float) -> torch.Tensor:
    """M_ll in GeV: a Breit-Wigner (Cauchy) peak, cut to the 60-120 GeV window."""
    u = torch.rand(n, generator=g, dtype=torch.float64)
    return (centre + 0.5 * gamma * torch.tan(math.pi * (u - 0.5))).clamp(60.0, 120.0)


def _float32_relative_errors(kernel, x, y):
    """(value, gradient) error of the float32 MMD against float64, relative to the float64 sizes.

    The float64 reference is evaluated at the float32-rounded inputs: the quantity tested is the
    arithmetic, not the rounding of the inputs (M_ll = 91 GeV in float32 is already off by 4e-6)."""
    x32, y32 = x.float(), y.float()
    v32, gx32, gy32 = _mmd_grads(lambda a, b: FAST_MMD[kernel](a, b, WIDTHS), x32, y32)
    v64, gx64, gy64 = _mmd_grads(lambda a, b: mmd_reference(a, b, WIDTHS, kernel), x32.double(), y32.double())
    g32 = torch.cat([gx32.flatten(), gy32.flatten()]).double()
    g64 = torch.cat([gx64.flatten(), gy64.flatten()])
    return abs(v32.item() - v64.item()) / abs(v64.item()), ((g32 - g64).norm() / g64.norm()).item()


def test_float32_mmd_gradients_match_float64_at_training_scales():
    """Regression test of a precision defect: the float32 gradient was formed as
    sum_j A_ij p_i - (A p)_i, which cancels; relative gradient errors were 4e-4 (5-d Gaussian
    latents, Gaussian kernel) and 3e-3 (M_ll in GeV, Breit-Wigner kernel). Built from the pairwise
    differences p_i - p_j it is ~1e-7 in both; 1e-5 is two orders above float32 rounding."""
    g = torch.Generator().manual_seed(2024)
    # Gaussian kernel: a batch of latents z against a N(0, 1) sample (the latent MMD), B = 128.
    z = torch.randn(128, 5, generator=g, dtype=torch.float64) * 1.1 + 0.1
    z_s = torch.randn(128, 5, generator=g, dtype=torch.float64)
    value_err, grad_err = _float32_relative_errors("gauss", z, z_s)
    assert value_err < 1e-5 and grad_err < 1e-5, (value_err, grad_err)
    # Breit-Wigner kernel: M_ll of data and of a generated sample around the Z peak, in GeV.
    m_data = _breit_wigner_masses(128, g, 91.19, 2.5)
    m_gen = _breit_wigner_masses(128, g, 90.8, 3.2)
    value_err, grad_err = _float32_relative_errors("breit_wigner", m_data, m_gen)
    assert value_err < 1e-5 and grad_err < 1e-5, (value_err, grad_err)


def test_mmd_reference_matches_brute_force_and_rejects_unknown_kernel():
    x, y = four_points(3)
    assert mmd_reference(x, y, (0.3, 1.0), "gauss").item() == pytest.approx(
        brute_force_mmd(x, y, (0.3, 1.0), gauss), rel=1e-12)
    assert mmd_reference(x, y, (0.3, 1.0), "breit_wigner").item() == pytest.approx(
        brute_force_mmd(x, y, (0.3, 1.0), breit_wigner), rel=1e-12)
    with pytest.raises(ValueError, match="kernel must be"):
        mmd_reference(x, y, WIDTHS, "cauchy")


def test_mmd_rejects_bad_input():
    x, y = four_points(8)
    with pytest.raises(ValueError, match="feature dimension"):
        gaussian_mmd(x, y[:, :2], WIDTHS)
    with pytest.raises(ValueError, match="widths"):
        gaussian_mmd(x, y, [1.0, 0.0])
    with pytest.raises(ValueError, match="widths"):
        breit_wigner_mmd(x, y, [])
    with pytest.raises(ValueError, match="shape"):
        gaussian_mmd(x[None], y, WIDTHS)


# -- invertibility (eq. 17-20) ---------------------------------------------------------------------
def test_mse_invertibility_hand_computation():
    x = torch.tensor([[0.0, 1.0], [2.0, 3.0]])
    x_tilde = torch.tensor([[1.0, 1.0], [2.0, 5.0]])
    assert mse_invertibility(x, x_tilde).item() == pytest.approx((1 + 0 + 0 + 4) / 4)
    with pytest.raises(ValueError, match="same shape"):
        mse_invertibility(x, x_tilde[:1])


def test_fidelity_loss_values_sign_and_clamp():
    assert fidelity_invertibility(torch.ones(3)).item() == 0.0
    f = torch.tensor([0.5, 0.25], dtype=torch.float64, requires_grad=True)
    loss = fidelity_invertibility(f)
    assert loss.item() == pytest.approx((math.log(2) + math.log(4)) / 2, rel=1e-14)
    loss.backward()
    assert (f.grad < 0).all()  # minimising the loss raises F (the sign eq. 18 omits)
    assert math.isfinite(fidelity_invertibility(torch.tensor([0.0, 1.0])).item())


# -- the QINN objective ----------------------------------------------------------------------------
def cfg(**kw):
    return QINNRunConfig(profile="quick", **kw)


def test_objective_uses_table1_weights():
    obj = QINNObjective(QINNRunConfig(), LinearScaler(), mass_fn=toy_mass)
    assert obj.weights == {"mmd_latent": 0.5, "mmd_input": 1.0, "mmd_mz": 0.375, "inv": 10.0}
    assert obj.widths == WIDTHS
    assert obj.invertibility == "mse"


def test_objective_terms_match_direct_computation():
    model, scaler = AffineFlow(seed=1), LinearScaler()
    obj = QINNObjective(cfg(), scaler, mass_fn=toy_mass)
    x = scaled_data(32, seed=2)
    out = obj(model, x, torch.Generator().manual_seed(11))
    assert set(out) == {"loss", "nll", "mmd_latent", "mmd_input", "mmd_mz", "inv"}
    assert model.calls["forward_and_logdet"] == 1  # one forward pass feeds nll, latent MMD and MSE

    with torch.no_grad():
        z = model(x)
        logdet = model.log_scale.sum().expand(32)
        z_s = torch.randn(32, 5, generator=torch.Generator().manual_seed(11), dtype=torch.float64)
        x_gen = z_s * torch.exp(-model.log_scale) + model.shift + model.inv_bias
        x_tilde = z * torch.exp(-model.log_scale) + model.shift + model.inv_bias
        m_data = toy_mass(x * scaler.scale + scaler.offset)
        m_gen = toy_mass(x_gen * scaler.scale + scaler.offset)
        expected = {
            "nll": nll(z, logdet),
            "mmd_latent": gaussian_mmd(z, z_s, WIDTHS),
            "mmd_input": gaussian_mmd(x, x_gen, WIDTHS),
            "mmd_mz": breit_wigner_mmd(m_data, m_gen, WIDTHS),
            "inv": mse_invertibility(x, x_tilde),
        }
    for name, value in expected.items():
        torch.testing.assert_close(out[name].detach(), value, rtol=1e-12, atol=1e-14, msg=name)
    total = expected["nll"] + 0.5 * expected["mmd_latent"] + 1.0 * expected["mmd_input"] \
        + 0.375 * expected["mmd_mz"] + 10.0 * expected["inv"]
    torch.testing.assert_close(out["loss"].detach(), total, rtol=1e-12, atol=1e-14)
    for name in expected:  # every term is non-trivial on this double
        assert out[name].item() != 0.0, name

    out["loss"].backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_objective_is_reproducible_from_the_generator():
    model, obj = AffineFlow(seed=1), QINNObjective(cfg(), LinearScaler(), mass_fn=toy_mass)
    x = scaled_data(16, seed=3)
    a = obj(model, x, torch.Generator().manual_seed(5))
    b = obj(model, x, torch.Generator().manual_seed(5))
    c = obj(model, x, torch.Generator().manual_seed(6))
    assert torch.equal(a["loss"], b["loss"])
    assert not torch.equal(a["mmd_latent"], c["mmd_latent"])


def test_objective_skips_terms_with_zero_weight():
    model = AffineFlow(seed=1)
    obj = QINNObjective(cfg(lambda_mmd_input=0.0, lambda_mz=0.0, lambda_inv=0.0), scaler=None, mass_fn=toy_mass)
    out = obj(model, scaled_data(16, seed=3), torch.Generator().manual_seed(0))
    assert set(out) == {"loss", "nll", "mmd_latent"}
    assert model.calls["inverse"] == 0  # no x_gen, no x_tilde
    torch.testing.assert_close(out["loss"], out["nll"] + 0.5 * out["mmd_latent"])


def test_objective_needs_scaler_for_mass_term():
    with pytest.raises(ValueError, match="scaler"):
        QINNObjective(cfg(), scaler=None)


def test_objective_fidelity_mode_uses_model_fidelity():
    model = AffineFlow(seed=1)
    obj = QINNObjective(cfg(invertibility="fidelity", lambda_mmd_input=0.0, lambda_mz=0.0,
                            lambda_mmd_latent=0.0), scaler=None)
    x = scaled_data(16, seed=3)
    out = obj(model, x, torch.Generator().manual_seed(0))
    assert model.calls["fidelity"] == 1
    with torch.no_grad():
        expected = fidelity_invertibility(model.fidelity(x))
    torch.testing.assert_close(out["inv"].detach(), expected)
    torch.testing.assert_close(out["loss"], out["nll"] + 10.0 * out["inv"])


def test_objective_caches_angle_scaler_inverse_bitwise_equal(monkeypatch):
    preprocessing = pytest.importorskip("qinn_lib.events.scaling")
    g = torch.Generator().manual_seed(9)
    physical = torch.rand(200, 5, generator=g, dtype=torch.float64) * torch.tensor([100, 100, 6, 5, 5.0])
    scaler = preprocessing.AngleScaler.fit(physical.numpy())
    obj = QINNObjective(cfg(), scaler, mass_fn=toy_mass)
    for dtype, rtol in ((torch.float32, 1e-6), (torch.float64, 1e-14)):
        u = scaled_data(50, seed=1, dtype=dtype)
        torch.testing.assert_close(obj._to_physical(u), scaler.inverse_torch(u), rtol=rtol, atol=0)

    # After the first use no per-step conversion through inverse_torch happens.
    def fail(*a, **k):
        raise AssertionError("inverse_torch called per step")

    monkeypatch.setattr(scaler, "inverse_torch", fail)
    model = AffineFlow(seed=1)
    for seed in range(2):
        obj(model, scaled_data(8, seed=seed), torch.Generator().manual_seed(seed))


def test_objective_default_mass_is_invariant_mass_torch():
    observables = pytest.importorskip("qinn_lib.events.observables")
    model, scaler = AffineFlow(seed=1), LinearScaler()
    x = scaled_data(16, seed=3)
    a = QINNObjective(cfg(), scaler)(model, x, torch.Generator().manual_seed(1))
    b = QINNObjective(cfg(), scaler, mass_fn=observables.invariant_mass_torch)(model, x, torch.Generator().manual_seed(1))
    assert torch.equal(a["mmd_mz"], b["mmd_mz"])


def test_inn_objective_is_nll_plus_mass_mmd():
    from qinn_lib.training.config import INNRunConfig

    model, scaler = AffineFlow(seed=1), LinearScaler()
    inn_cfg = INNRunConfig(profile="quick")
    from qinn_lib.training.objectives import INNObjective

    inn = INNObjective(inn_cfg, scaler, mass_fn=toy_mass)
    x = scaled_data(16, seed=3)
    out = inn(model, x, torch.Generator().manual_seed(2))
    assert set(out) == {"loss", "nll", "mmd_mz"}
    torch.testing.assert_close(out["loss"], out["nll"] + 0.5 * out["mmd_mz"])  # Table 1: lambda_MZ = 0.5
    # identical to the QINN objective with only the mass MMD switched on
    ref = QINNObjective(cfg(lambda_mmd_latent=0.0, lambda_mmd_input=0.0, lambda_inv=0.0, lambda_mz=0.5),
                        scaler, mass_fn=toy_mass)(model, x, torch.Generator().manual_seed(2))
    torch.testing.assert_close(out["loss"], ref["loss"], rtol=0, atol=0)


def test_objective_evaluate_builds_no_graph():
    model, obj = AffineFlow(seed=1), QINNObjective(cfg(), LinearScaler(), mass_fn=toy_mass)
    x = scaled_data(16, seed=3)
    out = obj.evaluate(model, x, torch.Generator().manual_seed(5))
    assert all(not v.requires_grad for v in out.values())
    ref = obj(model, x, torch.Generator().manual_seed(5))
    torch.testing.assert_close(out["loss"], ref["loss"].detach())


# -- compiled_terms: the traceable training-step loss ------------------------------------------------
def _terms_and_grads(model, terms):
    grads = torch.autograd.grad(terms["loss"], list(model.parameters()))
    return {k: v.detach() for k, v in terms.items()}, grads


@pytest.mark.parametrize("invertibility", ["mse", "fidelity"])
def test_compiled_terms_uncompiled_equal_the_objective_on_any_model(invertibility):
    """A model without step_maps() goes through its own forward_and_logdet / inverse / fidelity:
    the same terms, values and gradients, as __call__ (same latent draw from the generator)."""
    model, scaler = AffineFlow(seed=1), LinearScaler()
    obj = QINNObjective(cfg(invertibility=invertibility), scaler, mass_fn=toy_mass)
    x = scaled_data(32, seed=2)
    lean = obj.compiled_terms(model, compile=False)
    assert not lean.is_compiled()
    ref, ref_grads = _terms_and_grads(model, obj(model, x, torch.Generator().manual_seed(11)))
    got, got_grads = _terms_and_grads(model, lean(x, torch.Generator().manual_seed(11)))
    assert set(got) == set(ref)
    for name in ref:
        torch.testing.assert_close(got[name], ref[name], rtol=0, atol=0, msg=name)
    for g, r in zip(got_grads, ref_grads):
        torch.testing.assert_close(g, r, rtol=0, atol=0)
    with pytest.raises(ValueError, match=r"x must have shape \(B, n\)"):
        lean(x[0], torch.Generator().manual_seed(11))


def test_compiled_terms_without_mmd_terms_draw_no_latent_sample():
    model = AffineFlow(seed=1)
    obj = QINNObjective(cfg(lambda_mmd_latent=0.0, lambda_mmd_input=0.0, lambda_mz=0.0), scaler=None)
    gen = torch.Generator().manual_seed(3)
    state = gen.get_state()
    out = obj.compiled_terms(model, compile=False)(scaled_data(8, seed=1), gen)
    assert set(out) == {"loss", "nll", "inv"}
    assert torch.equal(gen.get_state(), state)  # as __call__: no draw when no term needs it
