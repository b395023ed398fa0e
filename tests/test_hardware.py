"""A QINN on an emulated device (qinn_lib.hardware.device): with neither shots nor noise it is the model's
own exact simulation; with shots it converges to it at the binomial rate; bad devices are rejected."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from qinn_lib.events.scaling import AngleScaler
from qinn_lib.experiments.one_model import TrainedModel
from qinn_lib.hardware.device import Device, DeviceQINN
from qinn_lib.hardware.noise import NoiseModel
from qinn_lib.models.qinn.model import QINN
from qinn_lib.training.losses.nll import nll_per_event

F64 = torch.float64


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def model() -> QINN:
    """Table 1 architecture with a, b, c, d moved off their initial values."""
    m = QINN(seed=31, dtype=F64)
    gen = torch.Generator().manual_seed(32)
    with torch.no_grad():
        m.a.copy_(0.4 + 0.5 * torch.rand(5, generator=gen, dtype=F64))
        m.b.copy_((1.0 - m.a) * 0.3)
        m.c.copy_(2.0 + 2.0 * torch.rand(5, generator=gen, dtype=F64))
        m.d.copy_(-2.0 + 0.5 * torch.rand(5, generator=gen, dtype=F64))
    return m


def _x(batch: int = 8, seed: int = 3) -> torch.Tensor:
    return torch.rand((batch, 5), generator=torch.Generator().manual_seed(seed), dtype=F64) * math.pi


@pytest.mark.parametrize("kwargs,match", [
    ({"shots": 0}, "shots must be a positive integer"),
    ({"shots": 12.5}, "shots must be a positive integer"),
    ({"shots": -1}, "shots must be a positive integer"),
    ({"noise": "depolarizing"}, "noise must be None or a qinn_lib.hardware.noise.NoiseModel"),
])
def test_bad_devices_are_rejected(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Device(**kwargs)


def test_device_labels():
    assert Device().label == "exact" and Device().exact
    assert Device(shots=1e4).shots == 10_000
    assert Device(shots=1e4).label == "N=1e4"
    assert Device(noise=NoiseModel("amplitude_damping", 1e-3)).label == "amplitude_damping p=0.001"
    with pytest.raises(ValueError, match="device must be"):
        DeviceQINN(QINN(n_layers=1, isp_layers=1), "exact", seed=0)


@pytest.mark.parametrize("device", [Device(), Device(noise=NoiseModel("depolarizing", 0.0)),
                                    Device(noise=NoiseModel("amplitude_damping", 0.0))])
def test_exact_device_is_the_exact_simulation(model, device):
    """Forward, parameter-shift Jacobian, inverse and NLL equal the model's own (analytic) ones."""
    x, z = _x(), torch.randn((8, 5), generator=torch.Generator().manual_seed(4), dtype=F64)
    dq = DeviceQINN(model, device, seed=0)
    with torch.no_grad():
        z_ref, jac_ref = model.forward_and_jacobian(x)
        x_rec = model.inverse(model(x))
        nll_ref = nll_per_event(z_ref, torch.linalg.slogdet(jac_ref).logabsdet) - 1.5
        inv_ref = model.inverse(z)
    z_dev, jac_dev = dq.forward_and_jacobian(x)
    assert torch.allclose(dq.forward(x), z_ref, rtol=0, atol=1e-12)
    assert torch.allclose(z_dev, z_ref, rtol=0, atol=1e-12)
    assert torch.allclose(jac_dev, jac_ref, rtol=0, atol=1e-11)
    assert torch.allclose(dq.inverse(z), inv_ref, rtol=0, atol=1e-10)
    assert torch.allclose(dq.reconstruct(x), x_rec, rtol=0, atol=1e-10)
    assert np.allclose(dq.nll_per_event(x, log_abs_det_scaling=1.5), nll_ref.numpy(), rtol=0, atol=1e-10)


def test_shots_converge_to_the_exact_simulation(model):
    """Errors of z, J and the inverse shrink as 1/sqrt(N): the shots -> infinity limit."""
    x, z = _x(64, seed=5), torch.randn((64, 5), generator=torch.Generator().manual_seed(6), dtype=F64)
    with torch.no_grad():
        z_ref, jac_ref = model.forward_and_jacobian(x)
        inv_ref = model.inverse(z)
    errors = {}
    for n_shots in (10**4, 10**8, 10**12):
        dq = DeviceQINN(model, Device(shots=n_shots), seed=7)
        z_dev, jac_dev = dq.forward_and_jacobian(x)
        errors[n_shots] = [float((a - b).pow(2).mean().sqrt()) for a, b in
                           ((z_dev, z_ref), (jac_dev, jac_ref), (dq.inverse(z), inv_ref))]
    for small, large in ((10**4, 10**8), (10**8, 10**12)):
        for e_small, e_large in zip(errors[small], errors[large]):
            assert e_large * 100 == pytest.approx(e_small, rel=0.3)  # sqrt(10^4) = 100
    assert max(errors[10**12]) < 1e-5


def test_shot_estimates_of_z_are_unbiased(model):
    """z is linear in the measured P, so its shot estimate averages to the exact z (4 standard errors)."""
    x = _x(1, seed=8).expand(20_000, -1)
    with torch.no_grad():
        z_ref = model(x[:1])[0]
    z_dev = DeviceQINN(model, Device(shots=100), seed=9).forward(x)
    se = z_dev.std(0) / math.sqrt(len(x))
    assert bool(((z_dev.mean(0) - z_ref).abs() < 4 * se).all())


def test_the_emulation_leaves_the_model_alone():
    m = QINN(n_layers=2, isp_layers=2)  # float32, as trained
    DeviceQINN(m, Device(shots=10), seed=0)
    assert m.dtype == torch.float32 and m.weights.requires_grad


def test_exact_device_generates_what_the_trained_model_generates():
    """Same latent draws as TrainedModel.generate; the only difference is float32 vs float64 arithmetic."""
    m = QINN(n_layers=3, isp_layers=2, seed=2)  # float32
    rng = np.random.default_rng(0)
    physical = np.column_stack([rng.uniform(20, 80, 200), rng.uniform(20, 80, 200), rng.uniform(-3, 3, 200),
                                rng.uniform(-2.4, 2.4, 200), rng.uniform(-2.4, 2.4, 200)])
    scaler = AngleScaler.fit(physical)
    data = SimpleNamespace(scaler=scaler, train=torch.as_tensor(scaler.transform(physical), dtype=torch.float32))
    reference = TrainedModel(None, m, data, None, None).generate(300, seed=11)
    ours = DeviceQINN(m, Device(), seed=0).generate(300, latent_seed=11, scaler=scaler, latent_dtype=torch.float32)
    assert ours.shape == reference.shape
    assert np.allclose(ours, reference, rtol=1e-4, atol=1e-3)
