"""qinn_lib.evaluation.diagnostics: fold fraction on a map with a known fold, the Fourier check on the QINN
(degree 1 at any depth) and on re-uploading models (not degree 1), every reading of the 2.1 %
metric on a hand-computed example, and the NLL flag."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from qinn_lib.evaluation import diagnostics as dg
from qinn_lib.evaluation import evaluate
from qinn_lib.events.scaling import AngleScaler
from qinn_lib.models.qinn.model import QINN
from qinn_lib.models.qinn.reuploading import ReuploadingFlow

torch.set_num_threads(1)
F64 = torch.float64


class FoldMap(torch.nn.Module):
    """z0 = cos(x0), z1 = x1: det J = -sin(x0) changes sign at x0 = 0 (a fold). The inverse
    x0 = arccos(z0) returns the preimage in [0, pi], so events with x0 < 0 come back as -x0."""

    def __init__(self) -> None:
        super().__init__()
        self.dummy = torch.nn.Parameter(torch.zeros(1, dtype=F64))

    def forward(self, x):
        return torch.stack([torch.cos(x[:, 0]), x[:, 1]], 1)

    def forward_and_jacobian(self, x):
        jac = torch.zeros(x.shape[0], 2, 2, dtype=x.dtype)
        jac[:, 0, 0] = -torch.sin(x[:, 0])
        jac[:, 1, 1] = 1.0
        return self(x), jac

    def forward_and_logdet(self, x):
        z, jac = self.forward_and_jacobian(x)
        return z, torch.linalg.slogdet(jac).logabsdet

    def inverse(self, z):
        return torch.stack([torch.arccos(z[:, 0]), z[:, 1]], 1)


def fold_sample():
    x0 = torch.cat([torch.linspace(-0.9, -0.1, 10, dtype=F64), torch.linspace(0.1, 2.9, 30, dtype=F64)])
    x1 = torch.linspace(0.5, 2.0, 40, dtype=F64)
    return torch.stack([x0, x1], 1)


def test_fold_fraction_and_split_errors_on_a_known_fold():
    x = fold_sample()
    stats = dg.fold_statistics(FoldMap(), x)
    # det J = -sin(x0): positive for the 10 events with x0 < 0, negative for the 30 with x0 in (0, pi)
    assert (stats["n_positive"], stats["n_negative"], stats["n_singular"]) == (10, 30, 0)
    assert stats["majority_sign"] == -1
    assert stats["fold_fraction"] == pytest.approx(10 / 40)
    # the majority is reconstructed exactly, the folded events come back mirrored: x0 -> -x0
    assert stats["recon_majority_mean"] < 1e-12
    xn = x.numpy()[:10]
    expected = 2 * np.abs(xn[:, 0]) / np.linalg.norm(xn, axis=1)
    assert stats["recon_minority_mean"] == pytest.approx(expected.mean(), rel=1e-12)
    assert stats["recon_minority_median"] == pytest.approx(np.median(expected), rel=1e-12)


def test_no_fold_gives_zero_fraction_and_no_minority_errors():
    x = fold_sample()[10:]
    stats = dg.fold_statistics(FoldMap(), x)
    assert stats["fold_fraction"] == 0.0 and stats["n_positive"] == 0
    assert math.isnan(stats["recon_minority_mean"])


def test_signs_on_a_qinn_agree_with_the_determinant():
    model = QINN(5, 3, 2, 2, 8, seed=4, dtype=F64)
    x = torch.rand(64, 5, generator=torch.Generator().manual_seed(1), dtype=F64) * math.pi
    signs = dg.jacobian_signs(model, x, batch_size=16)
    with torch.no_grad():
        expected = torch.sign(torch.linalg.det(model.jacobian(x))).numpy()
    np.testing.assert_array_equal(signs, expected)
    stats = dg.fold_statistics(model, x)
    assert stats["n_positive"] + stats["n_negative"] + stats["n_singular"] == 64
    assert stats["fold_fraction"] == min(stats["n_positive"], stats["n_negative"]) / 64
    assert np.isfinite(stats["recon_majority_median"])


def test_fold_statistics_rejects_a_model_without_jacobian():
    with pytest.raises(TypeError, match="forward_and_jacobian"):
        dg.fold_statistics(torch.nn.Linear(2, 2), torch.zeros(3, 2))


# -- the Fourier check -------------------------------------------------------------------------------
def base_points(n=5, k=4, seed=0):
    return torch.rand(k, n, generator=torch.Generator().manual_seed(seed), dtype=F64) * math.pi


@pytest.mark.parametrize("n_layers", [1, 4, 12])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_single_encoding_qinn_is_degree_one_at_any_depth(n_layers, dtype):
    model = QINN(5, n_layers, seed=n_layers, dtype=dtype)
    res = dg.fourier_check(dg.angle_map(model), base_points(), degree=1)
    assert res["output_scale"] > 0.1  # the outputs are not trivially constant
    assert res["max_residual"] < 1e-12, res
    assert model.dtype == dtype  # the check ran on a float64 copy, the model is untouched


@pytest.mark.parametrize("uploads", [2, 3])
def test_reuploading_is_not_degree_one_but_degree_uploads(uploads):
    model = ReuploadingFlow(5, 6, uploads, seed=2, dtype=F64)
    fn = dg.angle_map(model)
    assert dg.fourier_check(fn, base_points(), degree=uploads - 1)["max_residual"] > 1e-3
    assert dg.fourier_check(fn, base_points(), degree=uploads)["max_residual"] < 1e-12


def test_fourier_residual_of_a_known_function():
    # cos(2t) is orthogonal to 1, cos t, sin t on any uniform grid of more than 4 points, so the
    # degree-1 fit is 0 and the residual is max |cos 2t| = 1 (at t = 0); degree 2 fits it exactly.
    fn = lambda t: torch.cos(2 * t[:, :1]) + 0 * t  # noqa: E731
    assert dg.fourier_check(fn, base_points(2, 3), degree=1)["max_residual"] == pytest.approx(1.0, abs=1e-12)
    assert dg.fourier_check(fn, base_points(2, 3), degree=2)["max_residual"] < 1e-12
    with pytest.raises(ValueError, match="n_grid"):
        dg.fourier_check(fn, base_points(2, 3), degree=2, n_grid=5)
    with pytest.raises(ValueError, match="degree"):
        dg.fourier_check(fn, base_points(2, 3), degree=-1)


# -- readings of the reconstruction deviation ----------------------------------------------------------
def test_readings_on_a_hand_computed_example():
    x = np.array([[1.0, 2.0], [2.0, 2.0], [1.0, 1.0]])
    x_rec = np.array([[1.5, 2.0], [2.0, 1.0], [np.nan, 1.0]])  # the third row is not finite: left out
    scaler = AngleScaler([0.0, 10.0], [math.pi, 10.0 + math.pi], names=("a", "b"))  # physical = x + (0, 10)
    r = dg.reconstruction_readings(x, x_rec, scaler=scaler)
    assert r["headline"] == dg.HEADLINE_READING == "scaled_vector"
    assert r["n_nonfinite"] == 1
    # range: |dx| / pi over the entries (0.5, 0, 0, 1)
    assert r["range"]["mean"] == pytest.approx(1.5 / math.pi / 4)
    assert r["range"]["median"] == pytest.approx(0.25 / math.pi)
    assert r["range"]["per_feature_median"] == pytest.approx([0.25 / math.pi, 0.5 / math.pi])
    # scaled vector: ||dx|| / ||x|| per event = (0.5 / sqrt 5, 1 / sqrt 8)
    vec = [0.5 / math.sqrt(5), 1 / math.sqrt(8)]
    assert r["scaled_vector"]["mean"] == pytest.approx(np.mean(vec))
    assert r["scaled_vector"]["median"] == pytest.approx(np.median(vec))
    # it is the project's current reading (metrics.reconstruction_deviation)
    assert r["scaled_vector"]["mean"] == pytest.approx(evaluate.reconstruction_deviation(x[:2], x_rec[:2])["mean"])
    # scaled componentwise: (0.5, 0, 0, 0.5)
    assert (r["scaled_componentwise"]["mean"], r["scaled_componentwise"]["median"]) == pytest.approx((0.25, 0.25))
    # physical: x + (0, 10) -> entries (0.5 / 1, 0, 0, 1 / 12)
    assert r["physical"]["mean"] == pytest.approx((0.5 + 1 / 12) / 4)
    # p_space with the identity encoding: |sin^2(x~/2) - sin^2(x/2)|
    p = lambda v: math.sin(v / 2) ** 2  # noqa: E731
    entries = [abs(p(1.5) - p(1.0)), 0.0, 0.0, abs(p(1.0) - p(2.0))]
    assert r["p_space"]["mean"] == pytest.approx(np.mean(entries))
    assert set(dg.READINGS) == {k for k in r if k not in ("headline", "n_nonfinite")}


def test_readings_use_the_encoding_and_skip_physical_without_scaler():
    x = np.array([[1.0, 2.0], [2.0, 2.0]])
    x_rec = x + 0.1
    enc = lambda u: 0.5 * u + 0.3  # noqa: E731
    r = dg.reconstruction_readings(x, x_rec, encode=enc)
    assert "physical" not in r
    expected = np.abs(np.sin(0.5 * enc(x_rec)) ** 2 - np.sin(0.5 * enc(x)) ** 2).mean()
    assert r["p_space"]["mean"] == pytest.approx(expected)
    with pytest.raises(ValueError, match="same shape"):
        dg.reconstruction_readings(x, x_rec[:1])


# -- the NLL, flagged ------------------------------------------------------------------------------
def test_flagged_nll_warns_where_the_map_folds():
    data = SimpleNamespace(test=fold_sample(), scaler=SimpleNamespace(log_abs_det=0.0))
    with pytest.warns(dg.FoldWarning, match="folds on 25.00 %"):
        out = dg.flagged_nll(FoldMap(), data)
    assert out["valid_density"] is False and out["fold_fraction"] == pytest.approx(0.25)
    assert out["nll"] == pytest.approx(evaluate.test_nll(FoldMap(), data)["nll"])
    ok = SimpleNamespace(test=fold_sample()[10:], scaler=SimpleNamespace(log_abs_det=0.0))
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", dg.FoldWarning)
        out = dg.flagged_nll(FoldMap(), ok)
    assert out["valid_density"] is True and out["warning"] == ""


class Map1D(torch.nn.Module):
    def __init__(self, fn, dfn):
        super().__init__()
        self.dummy = torch.nn.Parameter(torch.zeros(1, dtype=F64))
        self.fn, self.dfn = fn, dfn

    def forward_and_logdet(self, u):
        return self.fn(u), torch.log(torch.abs(self.dfn(u[:, 0])))


def test_density_normalisation_detects_over_counting():
    # z = 2 cos(2u) on [0, pi]: every z in (-2, 2) has two preimages -> integral 2 P(|N| < 2)
    folded = Map1D(lambda u: 2 * torch.cos(2 * u), lambda u: -4 * torch.sin(2 * u))
    out = dg.density_normalisation(folded, 1, n_samples=200_000, seed=1)
    expected = 2 * math.erf(2 / math.sqrt(2))
    assert abs(out["normalisation"] - expected) < 4 * out["normalisation_sem"]
    assert out["normalisation"] > 1.5
    # an injective map: z = (u - pi/2) / 0.3 -> the integral is P(|N| < (pi/2) / 0.3) = 1 - 1.6e-7
    # (the mass outside the box; quasi-Monte Carlo resolves it, its error is ~1e-8)
    affine = Map1D(lambda u: (u - math.pi / 2) / 0.3, lambda u: torch.full_like(u, 1 / 0.3))
    out = dg.density_normalisation(affine, 1, n_samples=200_000, seed=1)
    assert abs(out["normalisation"] - math.erf(math.pi / 2 / 0.3 / math.sqrt(2))) < 4 * out["normalisation_sem"]


def test_diagnose_gives_flat_finite_scalars():
    model = QINN(5, 2, 2, 2, 4, seed=1, dtype=F64)
    x = torch.rand(50, 5, generator=torch.Generator().manual_seed(2), dtype=F64) * math.pi
    scaler = AngleScaler(np.zeros(5), np.full(5, 2 * math.pi))
    out = dg.diagnose(SimpleNamespace(model=model, data=SimpleNamespace(test=x, scaler=scaler)),
                      normalisation_samples=1000)
    assert {"fold_fraction", "recon_majority_median", "reading/scaled_vector_mean", "reading/physical_median",
            "density_normalisation"} <= set(out)
    assert all(isinstance(v, float) for v in out.values())
    assert 0.0 <= out["fold_fraction"] <= 0.5
