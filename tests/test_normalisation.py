"""Honest likelihoods: Z = ∫_box N(f(u)) |det J| du against analytic answers (an affine Gaussian, a
folded 1-d map), the classical INN's Z = 1 where the box holds its mass and = its own samples'
share of the box otherwise, the fold statistics of a QINN, and the delta-method errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import norm

from qinn_lib.evaluation import normalisation as nz
from qinn_lib.models.inn.model import INN
from qinn_lib.models.qinn.model import QINN

F64 = torch.float64


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class Affine(torch.nn.Module):
    """z = (u - mu) / s per feature: the density is a diagonal Gaussian N(mu, s²) in u."""

    def __init__(self, mu, s):
        super().__init__()
        self.mu = torch.nn.Parameter(torch.as_tensor(mu, dtype=F64))
        self.s = torch.nn.Parameter(torch.as_tensor(s, dtype=F64))

    def forward_and_logdet(self, u):
        return (u - self.mu) / self.s, (-torch.log(self.s).sum()).expand(u.shape[0])


class Parabola(torch.nn.Module):
    """1-d z = (u - c)² - m on [0, π]: det J = 2 (u - c) < 0 left of c, a fold at u = c."""

    def __init__(self, c: float = 1.0, m: float = 2.0):
        super().__init__()
        self.dummy = torch.nn.Parameter(torch.zeros(1, dtype=F64))
        self.c, self.m = c, m

    def forward_and_jacobian(self, u):
        u = u.to(F64)
        return (u - self.c) ** 2 - self.m, (2 * (u - self.c))[:, :, None]

    def forward_and_logdet(self, u):
        z, jac = self.forward_and_jacobian(u)
        return z, torch.log(torch.abs(jac[:, 0, 0]))


@pytest.mark.parametrize("method", ["sobol", "uniform"])
def test_z_of_an_affine_gaussian_is_its_mass_in_the_box(method):
    mu = np.array([1.0, 1.5, 2.0, 0.5, 1.6])
    s = np.array([0.4, 0.6, 0.5, 0.7, 1.0])
    exact = float(np.prod(norm.cdf((math.pi - mu) / s) - norm.cdf(-mu / s)))
    assert exact < 0.85, "a sizeable share outside the box: the test sees it"
    out = nz.box_normalisation(Affine(mu, s), 5, seed=1, method=method)
    assert abs(out["z"] - exact) < 4 * out["z_err"], (out, exact)
    assert out["z_err"] < 0.01 and out["n_points"] == 1 << 17 and out["n_replicates"] == 16
    assert out["log_z"] == pytest.approx(math.log(out["z"])) and out["log_z_err"] == pytest.approx(out["z_err"] / out["z"])
    assert "negative_fraction" not in out, "no forward_and_jacobian, no fold statistics"


def test_quasi_monte_carlo_beats_plain_monte_carlo_on_a_smooth_density():
    model = Affine([1.0, 1.5, 2.0, 0.5, 1.6], [0.4, 0.6, 0.5, 0.7, 1.0])
    sobol = nz.box_normalisation(model, 5, seed=2, method="sobol")
    uniform = nz.box_normalisation(model, 5, seed=2, method="uniform")
    assert sobol["z_err"] < 0.5 * uniform["z_err"]


def test_a_folded_map_over_counts_and_its_fold_statistics_are_exact():
    c, m = 1.0, 2.0
    f = lambda u: (u - c) ** 2 - m  # noqa: E731
    left = norm.cdf(f(0.0)) - norm.cdf(f(c))  # det J < 0: u in [0, c)
    right = norm.cdf(f(math.pi)) - norm.cdf(f(c))
    out = nz.box_normalisation(Parabola(c, m), 1, seed=3, majority=1)
    assert abs(out["z"] - (left + right)) < 4 * out["z_err"] and out["z"] > 1.05
    assert abs(out["negative_fraction"] - c / math.pi) < 4 * out["negative_fraction_err"] + 1e-9
    assert abs(out["minority_mass"] - left / (left + right)) < 4 * out["minority_mass_err"] + 1e-9
    assert out["majority_sign"] == 1
    # without the data's majority sign: the sign that carries more mass (+1 here)
    assert nz.box_normalisation(Parabola(c, m), 1, seed=3)["majority_sign"] == 1
    flipped = nz.box_normalisation(Parabola(c, m), 1, seed=3, majority=-1)
    assert flipped["minority_mass"] == pytest.approx(1 - out["minority_mass"])


def test_jacobian_signs_and_majority():
    signs = nz.jacobian_signs(Parabola(1.0), torch.tensor([[0.2], [0.5], [2.0]], dtype=F64))
    assert signs.tolist() == [-1, -1, 1] and signs.dtype == np.int8
    assert nz.majority_sign(signs) == -1 and nz.majority_sign(np.array([1, -1])) == 1
    with pytest.raises(TypeError, match="forward_and_jacobian"):
        nz.jacobian_signs(Affine([0.0], [1.0]), np.zeros((2, 1)))


# -- the classical INN: an exact bijection ------------------------------------------------------------
def small_inn() -> INN:
    model = INN("2k", seed=3, dtype=F64)
    model.eval()
    return model


def test_the_inn_density_integrates_to_one_where_the_box_holds_its_mass():
    model = small_inn()
    assert model.exact_bijection
    # near its initial identity the INN is z ≈ Q (u - π/2) (Q orthogonal): the box |u_i - π/2| < 1.25 π
    # misses about 10 Φ(-3.93) = 4e-4 of its mass, well below the integral's error
    out = nz.box_normalisation(model, 5, seed=4, lo=-0.75 * math.pi, hi=1.75 * math.pi, n_points=1 << 16)
    assert abs(out["z"] - 1.0) < 4 * out["z_err"], out
    assert out["z_err"] < 0.01


@torch.no_grad()
def test_the_inn_box_integral_equals_its_own_samples_share_of_the_box():
    model = small_inn()
    z = torch.randn(100_000, 5, generator=torch.Generator().manual_seed(5), dtype=F64)
    u = model.inverse(z).numpy()
    samples = nz.bijection_box_mass(u, len(u))
    integral = nz.box_normalisation(model, 5, seed=6, n_points=1 << 16)
    assert 0.3 < samples["z"] < 0.8, "much of the initial INN's mass lies outside [0, π]^5: a real test"
    assert abs(integral["z"] - samples["z"]) < 4 * math.hypot(integral["z_err"], samples["z_err"])
    assert samples["method"] == "samples" and samples["z_err"] < 0.002


def test_bijection_box_mass_counts_and_its_binomial_error():
    u = np.array([[0.5, 0.5], [1.0, 3.0], [-0.1, 1.0], [3.2, 0.0]])
    out = nz.bijection_box_mass(u, 5)  # one draw was non-finite and dropped: it counts as outside
    assert out["z"] == pytest.approx(2 / 5)
    p = 3 / 7
    assert out["z_err"] == pytest.approx(math.sqrt(p * (1 - p) / 5))
    inside = nz.bijection_box_mass(np.full((10, 2), 1.0), 10)
    assert inside["z"] == 1.0 and inside["z_err"] > 0, "no zero error when every sample is inside"
    with pytest.raises(ValueError, match="4 samples but n_drawn = 3"):
        nz.bijection_box_mass(u, 3)
    with pytest.raises(ValueError, match="bijection_box_mass: u must be a 2-D"):
        nz.bijection_box_mass(np.zeros(3), 3)


# -- the QINN -----------------------------------------------------------------------------------------
def test_a_qinn_gets_fold_statistics_and_is_reproducible():
    model = QINN(5, 2, 2, 2, 4, seed=1, dtype=F64)
    first = nz.box_normalisation(model, 5, seed=7, n_points=1 << 12)
    assert {"negative_fraction", "minority_mass", "majority_sign"} <= set(first)
    assert 0 < first["negative_fraction"] < 1 and 0 <= first["minority_mass"] <= 0.5 + 4 * first["minority_mass_err"]
    assert first["z"] > 0 and math.isfinite(first["log_z"])
    assert nz.box_normalisation(model, 5, seed=7, n_points=1 << 12) == first
    assert nz.box_normalisation(model, 5, seed=8, n_points=1 << 12)["z"] != first["z"]
    assert "negative_fraction" not in nz.box_normalisation(model, 5, seed=7, n_points=1 << 12, folds=False)
    assert model.training, "the model's mode is restored"


# -- the normalised NLL and bad input -----------------------------------------------------------------
def test_normalised_nll_adds_log_z_and_its_error_in_quadrature():
    assert nz.normalised_nll(12.0, 0.03, 0.3, 0.04) == pytest.approx((12.3, 0.05))


@pytest.mark.parametrize("kwargs, match", [
    (dict(method="halton"), "method must be one of"),
    (dict(n_replicates=1), "n_replicates must be an integer >= 2"),
    (dict(n_points=1), "n_points must be an integer >= 2"),
    (dict(lo=1.0, hi=1.0), r"need finite hi > lo"),
    (dict(majority=0), r"majority must be \+1, -1 or None"),
    (dict(folds=True), "folds need forward_and_jacobian"),
])
def test_bad_parameters_are_refused(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        nz.box_normalisation(Affine([1.0], [0.5]), 1, seed=0, **kwargs)
