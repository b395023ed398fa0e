"""Observables: hand-computed events, round trips, torch/numpy agreement, input validation."""

import math

import numpy as np
import pytest
import torch

from qinn_lib.events.observables import (
    FEATURE_LABELS,
    FEATURES,
    OBSERVABLE_LABELS,
    check_features,
    features_from_momenta,
    four_momenta,
    invariant_mass_torch,
    lepton_vectors,
    reconstruct,
)

PT1, PT2, ETA1, ETA2 = 40.0, 30.0, 0.5, -1.2


def _event(dphi):
    return np.array([[PT1, PT2, dphi, ETA1, ETA2]])


def _by_hand(dphi):
    """Four-momenta written out with the math module: l+ along x, l- at azimuth dphi."""
    p1 = (PT1, 0.0, PT1 * math.sinh(ETA1), PT1 * math.cosh(ETA1))
    p2 = (PT2 * math.cos(dphi), PT2 * math.sin(dphi), PT2 * math.sinh(ETA2), PT2 * math.cosh(ETA2))
    px, py, pz, e = (a + b for a, b in zip(p1, p2))
    m = math.sqrt(e * e - px * px - py * py - pz * pz)
    y = 0.5 * math.log((e + pz) / (e - pz))
    wrapped = min(dphi % (2 * math.pi), 2 * math.pi - dphi % (2 * math.pi))
    dr = math.hypot(ETA1 - ETA2, wrapped)
    return p1, p2, {"m_ll": m, "pt_z": math.hypot(px, py), "y_z": y, "e_z": e, "delta_r": dr}


def test_feature_order_and_labels():
    assert FEATURES == ("pt_lp", "pt_lm", "dphi_ll", "eta_lp", "eta_lm")
    assert set(FEATURE_LABELS) == set(FEATURES)
    assert "[GeV]" in FEATURE_LABELS["pt_lp"]


@pytest.mark.parametrize("dphi", [math.pi, math.pi / 3, 5 * math.pi / 3])
def test_hand_computed_event(dphi):
    p1, p2, expect = _by_hand(dphi)
    obs = reconstruct(_event(dphi))
    for key, value in expect.items():
        assert obs[key][0] == pytest.approx(value, rel=1e-12), key
    for tag, p in (("lp", p1), ("lm", p2)):
        for j, comp in enumerate(("px", "py", "pz", "e")):
            assert obs[f"{comp}_{tag}"][0] == pytest.approx(p[j], rel=1e-12, abs=1e-12), f"{comp}_{tag}"
    # p_z keeps the sign of eta: l+ forward, l- backward
    assert obs["pz_lp"][0] > 0 and obs["pz_lm"][0] < 0
    for j, name in enumerate(FEATURES):
        assert obs[name][0] == _event(dphi)[0, j]


def test_back_to_back_numbers():
    # dphi = pi: pT_Z = |40 - 30| and M^2 = 2 pT1 pT2 (cosh(1.7) + 1), written out independently
    obs = reconstruct(_event(math.pi))
    assert obs["pt_z"][0] == pytest.approx(10.0, rel=1e-12)
    assert obs["m_ll"][0] == pytest.approx(math.sqrt(2400.0 * (math.cosh(1.7) + 1.0)), rel=1e-12)
    assert obs["e_z"][0] == pytest.approx(40 * math.cosh(0.5) + 30 * math.cosh(1.2), rel=1e-12)
    assert obs["delta_r"][0] == pytest.approx(math.sqrt(1.7**2 + math.pi**2), rel=1e-12)


def test_mirrored_azimuth_gives_same_z():
    a = reconstruct(_event(math.pi / 3))
    b = reconstruct(_event(5 * math.pi / 3))
    for key in ("m_ll", "pt_z", "y_z", "e_z", "delta_r", "px_lm", "pz_lm", "e_lm"):
        assert b[key][0] == pytest.approx(a[key][0], rel=1e-12), key
    assert b["py_lm"][0] == pytest.approx(-a["py_lm"][0], rel=1e-12)
    assert a["py_lm"][0] > 0
    assert a["delta_r"][0] == pytest.approx(math.hypot(1.7, math.pi / 3), rel=1e-12)


def test_four_momenta_layout_and_vectors():
    x = _event(math.pi / 3)
    p = four_momenta(x)
    assert p.shape == (1, 2, 4)
    p1, p2, _ = _by_hand(math.pi / 3)
    np.testing.assert_allclose(p[0, 0], p1, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(p[0, 1], p2, rtol=1e-12, atol=1e-12)
    lp, lm = lepton_vectors(x)
    assert np.allclose(lp.phi, 0.0) and np.allclose(lm.mass, 0.0, atol=1e-6)


def _random_features(n, seed=0):
    rng = np.random.default_rng(seed)
    return np.column_stack([
        rng.uniform(15, 150, n), rng.uniform(15, 150, n),
        rng.uniform(0.01, 2 * np.pi - 0.01, n),
        rng.uniform(-4.5, 4.5, n), rng.uniform(-4.5, 4.5, n),
    ])


def test_round_trip_features_momenta_features():
    x = _random_features(500)
    p = four_momenta(x)
    back = features_from_momenta(p[:, 0, 0], p[:, 0, 1], p[:, 0, 2], p[:, 1, 0], p[:, 1, 1], p[:, 1, 2])
    np.testing.assert_allclose(back, x, rtol=1e-11, atol=1e-11)


def test_features_are_invariant_under_azimuthal_rotation():
    x = _random_features(200, seed=1)
    p = four_momenta(x)
    alpha = 2.1
    c, s = math.cos(alpha), math.sin(alpha)
    rot = lambda px, py: (c * px - s * py, s * px + c * py)  # noqa: E731
    a = rot(p[:, 0, 0], p[:, 0, 1])
    b = rot(p[:, 1, 0], p[:, 1, 1])
    back = features_from_momenta(a[0], a[1], p[:, 0, 2], b[0], b[1], p[:, 1, 2])
    np.testing.assert_allclose(back, x, rtol=1e-10, atol=1e-10)


def test_dphi_wraps_into_0_2pi():
    # l- slightly clockwise of l+: dphi just below 2 pi; same azimuth: exactly 0
    f = features_from_momenta([1.0, 1.0], [0.0, 0.0], [0.0, 0.0],
                              [math.cos(-1e-3), 1.0], [math.sin(-1e-3), 0.0], [0.0, 0.0])
    assert f[0, 2] == pytest.approx(2 * math.pi - 1e-3, rel=1e-12)
    assert f[1, 2] == 0.0
    assert np.all((f[:, 2] >= 0) & (f[:, 2] < 2 * math.pi))


def test_torch_mass_matches_numpy_and_vector():
    x = _random_features(1000, seed=2)
    m_np = reconstruct(x)["m_ll"]
    m_t = invariant_mass_torch(torch.tensor(x, dtype=torch.float64)).numpy()
    np.testing.assert_allclose(m_t, m_np, rtol=1e-12)
    lp, lm = lepton_vectors(x)
    np.testing.assert_allclose((lp + lm).mass, m_np, rtol=1e-7)  # E^2 - p^2 path, cancellation-limited


def test_torch_mass_gradient_is_finite_for_collinear_leptons():
    x = torch.tensor([[40.0, 30.0, 0.0, 0.3, 0.3], [40.0, 30.0, 1.0, 0.3, -0.2]],
                     dtype=torch.float64, requires_grad=True)
    m = invariant_mass_torch(x)
    m.sum().backward()
    assert torch.isfinite(x.grad).all()
    assert m[0].item() < 1e-5  # collinear massless leptons: M = 0 up to the clamp
    # batch dimensions are kept
    assert invariant_mass_torch(torch.zeros(3, 4, 5) + 1.0).shape == (3, 4)


def test_observable_labels_cover_every_key():
    obs = reconstruct(_event(1.0))
    required = {"m_ll", "pt_z", "y_z", "e_z", "delta_r", "px_lp", "py_lp", "pz_lp", "e_lp",
                "px_lm", "py_lm", "pz_lm", "e_lm", *FEATURES}
    assert required <= set(obs)
    assert set(obs) <= set(OBSERVABLE_LABELS)


def test_check_features_wrong_shape():
    with pytest.raises(ValueError, match=r"my sample.*\(N, 5\).*\(10, 4\)"):
        check_features(np.zeros((10, 4)), where="my sample")
    with pytest.raises(ValueError, match=r"reconstruct.*\(5,\)"):
        reconstruct(np.zeros(5))


def test_check_features_nan_rows_and_columns():
    x = _random_features(10)
    x[2, 3] = np.nan
    x[5, 1] = np.inf
    x[5, 3] = np.nan
    with pytest.raises(ValueError, match=r"gen: 2 of 10 rows.*'pt_lm', 'eta_lp'") as err:
        check_features(x, where="gen")
    assert "eta_lm" not in str(err.value)


def test_bad_input_errors_torch_and_momenta():
    with pytest.raises(ValueError, match="last dimension 5"):
        invariant_mass_torch(torch.zeros(3, 4))
    with pytest.raises(TypeError):
        invariant_mass_torch(np.zeros((3, 5)))
    with pytest.raises(ValueError, match="pT = 0"):
        features_from_momenta([0.0], [0.0], [5.0], [1.0], [0.0], [0.0])
    with pytest.raises(ValueError, match="lm_py"):
        features_from_momenta([1.0], [0.0], [5.0], [1.0], [np.nan], [0.0])
