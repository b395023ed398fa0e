"""AngleScaler: exact [0, pi] mapping, round trips, torch agreement, Jacobian, serialisation, errors."""

import json
import math

import numpy as np
import pytest
import torch

from qinn_lib.events.observables import FEATURES
from qinn_lib.events.scaling import AngleScaler


def _data(n, seed):
    rng = np.random.default_rng(seed)
    return np.column_stack([
        rng.uniform(15, 150, n), rng.uniform(15, 150, n), rng.uniform(0, 2 * np.pi, n),
        rng.normal(0, 2, n), rng.normal(0, 2, n),
    ])


@pytest.fixture
def train():
    return _data(400, seed=0)


def test_train_min_max_map_to_exactly_0_and_pi(train):
    sc = AngleScaler.fit(train)
    u = sc.transform(train)
    assert np.all(u.min(axis=0) == 0.0)
    assert np.all(u.max(axis=0) == math.pi)
    np.testing.assert_array_equal(sc.lo, train.min(axis=0))
    np.testing.assert_array_equal(sc.hi, train.max(axis=0))


def test_class_and_instance_fit_agree(train):
    a = AngleScaler.fit(train)
    b = AngleScaler()
    assert b.fit(train) is b
    np.testing.assert_array_equal(a.lo, b.lo)
    np.testing.assert_array_equal(a.hi, b.hi)


def test_round_trip_including_out_of_range(train):
    sc = AngleScaler.fit(train)
    other = _data(300, seed=1) * 1.3  # partly outside the training range
    u = sc.transform(other)
    assert (u < 0).any() or (u > math.pi).any()  # no silent clipping
    np.testing.assert_allclose(sc.inverse(u), other, rtol=1e-12, atol=1e-12)
    angles = np.random.default_rng(2).uniform(0, math.pi, (50, 5))
    np.testing.assert_allclose(sc.transform(sc.inverse(angles)), angles, rtol=1e-12, atol=1e-12)


def test_torch_matches_numpy_and_follows_dtype(train):
    sc = AngleScaler.fit(train)
    x = _data(100, seed=3)
    u_np = sc.transform(x)
    u64 = sc.transform_torch(torch.tensor(x, dtype=torch.float64))
    assert u64.dtype == torch.float64
    np.testing.assert_allclose(u64.numpy(), u_np, rtol=1e-13, atol=1e-13)
    u32 = sc.transform_torch(torch.tensor(x, dtype=torch.float32))
    assert u32.dtype == torch.float32
    np.testing.assert_allclose(u32.numpy(), u_np, rtol=1e-5, atol=1e-5)
    back = sc.inverse_torch(u64)
    np.testing.assert_allclose(back.numpy(), x, rtol=1e-12, atol=1e-12)
    # the exact endpoints also hold in float32
    t32 = torch.tensor(train, dtype=torch.float32)
    u = sc.transform_torch(t32)
    assert torch.all(u.max(dim=0).values == torch.tensor(math.pi, dtype=torch.float32))


def test_torch_is_differentiable(train):
    sc = AngleScaler.fit(train)
    x = torch.tensor(_data(4, seed=4), dtype=torch.float64, requires_grad=True)
    sc.transform_torch(x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.broadcast_to(math.pi / (sc.hi - sc.lo), (4, 5)), rtol=1e-13)


def test_log_abs_det_matches_autograd_jacobian(train):
    sc = AngleScaler.fit(train)
    x0 = torch.tensor(_data(1, seed=5)[0], dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(sc.transform_torch, x0)
    assert jac.shape == (5, 5)
    sign, logdet = torch.linalg.slogdet(jac)
    assert sign.item() == 1.0
    assert logdet.item() == pytest.approx(sc.log_abs_det, rel=1e-12)
    # inverse map: the negative log-determinant
    jac_inv = torch.autograd.functional.jacobian(sc.inverse_torch, sc.transform_torch(x0))
    assert torch.linalg.slogdet(jac_inv)[1].item() == pytest.approx(-sc.log_abs_det, rel=1e-12)


def test_density_conversion_with_log_abs_det(train):
    # A uniform density on [0, pi]^5 in scaled space is uniform on the box [lo, hi] in physical
    # space: log p_x = log p_u + log_abs_det must equal -log(volume of the box).
    sc = AngleScaler.fit(train)
    log_p_u = -5 * math.log(math.pi)
    assert log_p_u + sc.log_abs_det == pytest.approx(-np.sum(np.log(sc.hi - sc.lo)), rel=1e-12)


def test_dict_round_trip_plain_types(train, tmp_path):
    sc = AngleScaler.fit(train)
    d = sc.to_dict()
    json.dumps(d)  # plain types only
    torch.save({"scaler": d}, tmp_path / "ck.pt")
    loaded = torch.load(tmp_path / "ck.pt", weights_only=True)["scaler"]
    sc2 = AngleScaler.from_dict(loaded)
    np.testing.assert_array_equal(sc2.lo, sc.lo)
    np.testing.assert_array_equal(sc2.hi, sc.hi)
    assert sc2.names == FEATURES
    np.testing.assert_array_equal(sc2.transform(train), sc.transform(train))


def test_errors_name_the_feature(train):
    const = train.copy()
    const[:, 2] = 1.0
    with pytest.raises(ValueError, match="dphi_ll"):
        AngleScaler.fit(const)
    bad = train.copy()
    bad[3, 4] = np.nan
    with pytest.raises(ValueError, match="eta_lm"):
        AngleScaler.fit(bad)
    sc = AngleScaler.fit(train)
    with pytest.raises(ValueError, match="eta_lm"):
        sc.transform(bad)
    with pytest.raises(ValueError, match=r"\(N, 5\).*\(400, 4\)"):
        sc.transform(train[:, :4])
    with pytest.raises(ValueError, match="last dimension 5"):
        sc.transform_torch(torch.zeros(3, 4))
    t = torch.tensor(train)
    t[0, 0] = float("inf")
    with pytest.raises(ValueError, match="pt_lp"):
        sc.inverse_torch(t)
    assert torch.isinf(sc.inverse_torch(t, check_finite=False)[0, 0])


def test_use_before_fit_and_bad_dict():
    sc = AngleScaler()
    with pytest.raises(RuntimeError, match="before the scaler was fitted"):
        sc.transform(np.zeros((2, 5)))
    with pytest.raises(RuntimeError, match="log_abs_det"):
        _ = sc.log_abs_det
    with pytest.raises(RuntimeError):
        sc.inverse_torch(torch.zeros(2, 5))
    with pytest.raises(ValueError, match="missing key"):
        AngleScaler.from_dict({"lo": [0.0] * 5})
    with pytest.raises(ValueError, match="shape"):
        AngleScaler(lo=[0.0] * 4, hi=[1.0] * 4)
    with pytest.raises(ValueError, match="hi <= lo"):
        AngleScaler(lo=[0.0] * 5, hi=[1.0, 1.0, 0.0, 1.0, 1.0])
