"""FPD and KPD (Kansal et al. 2023) on cases with known answers: identical samples, Gaussians with
known moments, shifted samples; the kernel sums against the brute-force kernel matrix; bad input."""

import math

import numpy as np
import pytest
from sklearn.metrics.pairwise import polynomial_kernel

from qinn_lib.evaluation import physics_distances as pdist

# small batches keep every FPD here below a second (the defaults are 20k-50k events)
FAST = dict(min_samples=4_000, max_samples=10_000, num_batches=10, num_points=6)


def exact_moments(n: int, mean: np.ndarray, cov: np.ndarray, seed: int) -> np.ndarray:
    """n events whose sample mean and covariance (ddof = 1) are exactly ``mean`` and ``cov``."""
    z = np.random.default_rng(seed).normal(size=(n, len(mean)))
    z -= z.mean(axis=0)
    z = z @ np.linalg.inv(np.linalg.cholesky(np.cov(z, rowvar=False))).T  # sample covariance exactly 1
    return mean + z @ np.linalg.cholesky(cov).T


def closed_form(mu1, s1, mu2, s2) -> float:
    """||mu1 - mu2||² + Tr(s1 + s2 - 2 (s1^½ s2 s1^½)^½), by eigendecompositions (no sqrtm)."""
    w, v = np.linalg.eigh(s1)
    root1 = v @ np.diag(np.sqrt(w)) @ v.T
    inner = np.linalg.eigvalsh(root1 @ s2 @ root1)
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.sum(np.sqrt(inner)))


MU1 = np.array([0.0, 1.0, -0.5, 2.0, 0.3])
MU2 = np.array([0.4, 0.7, -0.5, 1.5, 0.0])
A1 = np.random.default_rng(1).normal(size=(5, 5))
A2 = np.random.default_rng(2).normal(size=(5, 5))
S1 = A1 @ A1.T / 5 + 0.5 * np.eye(5)
S2 = A2 @ A2.T / 5 + 0.5 * np.eye(5)


# -- the Fréchet distance itself ----------------------------------------------------------------------
def test_frechet_distance_matches_the_closed_form():
    expected = closed_form(MU1, S1, MU2, S2)
    assert expected > 0.5, "non-commuting covariances and shifted means: a real test"
    assert pdist.frechet_distance(MU1, S1, MU2, S2) == pytest.approx(expected, rel=1e-10)
    assert pdist.frechet_distance(MU1, S1, MU1, S1) == pytest.approx(0.0, abs=1e-10)
    # diagonal covariances: ||Δμ||² + Σ (σ1 - σ2)²
    d1, d2 = np.array([1.0, 4.0]), np.array([9.0, 1.0])
    assert pdist.frechet_distance([0, 0], np.diag(d1), [3, 4], np.diag(d2)) == pytest.approx(25 + 4 + 1)


# -- FPD ---------------------------------------------------------------------------------------------
def test_fpd_of_gaussians_with_known_moments_is_the_closed_form():
    """Samples whose moments are exactly (MU, S): the extrapolated FPD is the Gaussians' distance."""
    a = exact_moments(10_000, MU1, S1, seed=3)
    b = exact_moments(10_000, MU2, S2, seed=4)
    out = pdist.fpd(a, b, seed=5, standardisation=None, **FAST)
    expected = closed_form(MU1, S1, MU2, S2)
    assert abs(out["fpd"] - expected) < 4 * out["fpd_err"], (out["fpd"], out["fpd_err"], expected)
    assert out["fpd_err"] < 0.02 * expected
    assert len(out["batch_sizes"]) == len(out["values"]) == FAST["num_points"]
    assert out["batch_sizes"][0] == 4_000 and out["batch_sizes"][-1] == 10_000


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fpd_of_identical_samples_is_zero_within_its_error(seed):
    a = np.random.default_rng(10 + seed).normal(size=(10_000, 5)) * [1, 2, 3, 4, 5]
    out = pdist.fpd(a, a, seed=seed, **FAST)
    assert abs(out["fpd"]) < 4 * out["fpd_err"], out
    assert out["fpd_err"] < 2e-3, "small beside the FPD of a 4000-event batch (~25 / 4000 = 6e-3)"


def test_fpd_grows_with_a_shift_and_equals_its_square():
    a = np.random.default_rng(20).normal(size=(10_000, 5))
    std = a.std(axis=0)
    previous = -1.0
    for shift in (0.02, 0.05, 0.1, 0.2):
        out = pdist.fpd(a, a + shift, seed=21, **FAST)
        # same covariance, means apart by shift / std per standardised feature
        expected = float(np.sum((shift / std) ** 2))
        assert abs(out["fpd"] - expected) < 4 * out["fpd_err"] + 1e-12, (shift, out["fpd"], expected)
        assert out["fpd"] > previous
        previous = out["fpd"]


def test_fpd_standardises_with_the_truth_and_is_seeded():
    a = np.random.default_rng(30).normal(3.0, 10.0, size=(5_000, 5))
    b = np.random.default_rng(31).normal(3.5, 12.0, size=(5_000, 5))
    mean, std = a.mean(axis=0), a.std(axis=0)
    by_hand = pdist.fpd((a - mean) / std, (b - mean) / std, seed=7, standardisation=None, **FAST)
    assert pdist.fpd(a, b, seed=7, **FAST)["fpd"] == pytest.approx(by_hand["fpd"], rel=1e-9)
    assert pdist.fpd(a, b, seed=7, **FAST) == pdist.fpd(a, b, seed=np.random.default_rng(7), **FAST)
    assert pdist.fpd(a, b, seed=8, **FAST)["values"] != by_hand["values"]
    # jetnet's normalisation divides by the largest |truth| instead: another number
    assert pdist.fpd(a, b, seed=7, standardisation="max_abs", **FAST)["fpd"] != pytest.approx(by_hand["fpd"])


def test_fpd_caps_the_batch_sizes_at_a_small_sample():
    a = np.random.default_rng(40).normal(size=(2_000, 5))
    out = pdist.fpd(a, a + 0.1, seed=1)  # jetnet's defaults ask for 20k-50k
    assert out["batch_sizes"][-1] == 2_000 and out["batch_sizes"][0] == 800


def test_an_event_so_far_out_that_its_square_overflows_gives_an_infinite_distance():
    a = np.random.default_rng(41).normal(size=(1_000, 5))
    b = a.copy()
    b[0, 0] = 1e200
    assert pdist.fpd(a, b, seed=1)["fpd"] == math.inf
    assert pdist.kpd(a, b, seed=1, batch_size=1_000)["kpd"] == math.inf


# -- KPD ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("degree", [3, 4])
def test_polynomial_features_reproduce_the_kernel(degree):
    rng = np.random.default_rng(50)
    x, y = rng.normal(size=(40, 5)), rng.normal(size=(30, 5))
    phi_x, phi_y = pdist.polynomial_features(x, degree), pdist.polynomial_features(y, degree)
    assert phi_x.shape[1] == sum(5 ** k for k in range(degree + 1))
    ref = polynomial_kernel(x, y, degree=degree, gamma=1 / 5, coef0=1)
    np.testing.assert_allclose(phi_x @ phi_y.T, ref, rtol=1e-10, atol=1e-13)


def test_mmd2_matches_the_brute_force_u_statistic():
    rng = np.random.default_rng(51)
    x, y = rng.normal(size=(300, 5)), rng.normal(0.2, 1.1, size=(250, 5))
    k = lambda a, b: polynomial_kernel(a, b, degree=3, gamma=1 / 5, coef0=1)  # noqa: E731
    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    brute = ((kxx.sum() - np.trace(kxx)) / (300 * 299) + (kyy.sum() - np.trace(kyy)) / (250 * 249)
             - 2 * kxy.mean())
    assert pdist.mmd2_unbiased(x, y) == pytest.approx(brute, rel=1e-10)
    assert pdist.mmd2_unbiased(x, y) > 0.05


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kpd_of_identical_samples_is_zero_within_its_error(seed):
    a = np.random.default_rng(60 + seed).normal(size=(20_000, 5))
    out = pdist.kpd(a, a, seed=seed)
    assert abs(out["kpd"]) < 3 * out["kpd_err"], out
    assert len(out["values"]) == 10 and out["batch_size"] == 5_000


def test_kpd_grows_with_a_shift():
    a = np.random.default_rng(70).normal(size=(20_000, 5))
    outs = [pdist.kpd(a, a + s, seed=71) for s in (0.0, 0.1, 0.3)]
    assert outs[1]["kpd"] > 3 * outs[1]["kpd_err"], "a shift of 0.1 sigma per feature is seen"
    assert outs[0]["kpd"] < outs[1]["kpd"] < outs[2]["kpd"]
    assert pdist.kpd(a, a + 0.1, seed=71) == outs[1], "seeded"


# -- bad input ---------------------------------------------------------------------------------------
GOOD = np.random.default_rng(80).normal(size=(500, 5))


@pytest.mark.parametrize("fn", [pdist.fpd, pdist.kpd])
@pytest.mark.parametrize("truth, generated, match", [
    (GOOD, GOOD[:, :4], r"\(generated\) has 4 features, truth has 5"),
    (np.where(np.arange(500)[:, None] == 3, np.nan, GOOD), GOOD, r"\(truth\) has 1 of 500 rows with NaN or inf"),
    (GOOD, GOOD[:50], r"\(generated\) has 50 events; at least 100 are needed"),
    (GOOD[:, 0], GOOD, r"\(truth\) must be a 2-D \(events, features\) array"),
])
def test_bad_input_is_a_one_line_error_naming_the_argument(fn, truth, generated, match):
    with pytest.raises(ValueError, match=fn.__name__ + match) as info:
        fn(truth, generated, seed=0)
    assert "\n" not in str(info.value)


def test_bad_parameters_are_refused():
    with pytest.raises(ValueError, match="standardisation must be one of"):
        pdist.fpd(GOOD, GOOD, seed=0, standardisation="minmax")
    with pytest.raises(ValueError, match="min_samples .* must not exceed max_samples"):
        pdist.fpd(GOOD, GOOD, seed=0, min_samples=600, max_samples=500)
    with pytest.raises(ValueError, match="num_batches must be an integer >= 2"):
        pdist.kpd(GOOD, GOOD, seed=0, num_batches=1)
    with pytest.raises(ValueError, match="seed must be an int or a numpy Generator"):
        pdist.kpd(GOOD, GOOD, seed=1.5)
