"""Gate noise (qinn_lib.hardware.noise): the batched density-matrix path against PennyLane default.mixed
(with the channel inserted after every gate by qml.noise.insert), the noiseless limit against the
pure-state simulation, and the channels' known fixed points."""

from __future__ import annotations

import math

import pytest
import torch

from qinn_lib.hardware import noise
from qinn_lib.hardware.device import Device, DeviceQINN
from qinn_lib.models.qinn.model import QINN
from qinn_lib.models.qinn.simulator import ry_state

F64 = torch.float64


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def model() -> QINN:
    """Table 1 architecture (12 model layers, 8 ISP layers), float64."""
    return QINN(seed=21, dtype=F64)


def _angles(batch: int = 3, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return (torch.rand((batch, 5), generator=gen, dtype=F64) * math.pi,
            torch.randn((batch, 5, 3), generator=gen, dtype=F64))


@pytest.mark.parametrize("channel,p,match", [
    ("bitflip", 0.1, "noise channel must be one of"),
    ("depolarizing", -0.1, "noise p must be in \\[0, 1\\]"),
    ("depolarizing", 1.5, "noise p must be in \\[0, 1\\]"),
    ("amplitude_damping", float("nan"), "noise p must be a number"),
    ("amplitude_damping", "0.1", "noise p must be a number"),
    ("depolarizing", True, "noise p must be a number"),
])
def test_bad_noise_names_the_parameter(channel, p, match):
    with pytest.raises(ValueError, match=match):
        noise.NoiseModel(channel, p)


def test_noise_must_be_a_noise_model(model):
    with pytest.raises(ValueError, match="noise must be None or a qinn_lib.hardware.noise.NoiseModel"):
        noise.NoisyCircuits(model, "depolarizing")
    with pytest.raises(ValueError, match="noise must be None"):
        Device(noise=0.01)


@pytest.mark.parametrize("channel", noise.CHANNELS)
@pytest.mark.parametrize("p", [0.0, 0.3, 1.0])
def test_kraus_operators_are_complete(channel, p):
    k = noise.NoiseModel(channel, p).kraus()
    assert torch.allclose((k.mH @ k).sum(0), torch.eye(2, dtype=k.dtype), atol=1e-14)


@pytest.mark.parametrize("channel", noise.CHANNELS)
@pytest.mark.parametrize("p", [1e-3, 0.05])
def test_density_matrix_path_matches_default_mixed(model, channel, p):
    x_prime, psi = _angles()
    nm = noise.NoiseModel(channel, p)
    fast = noise.NoisyCircuits(model, nm)
    forward = fast.forward_distribution(x_prime)
    inverse = fast.inverse_distribution(psi)
    assert torch.allclose(forward, noise.reference_forward_probs(model, x_prime, nm), rtol=0, atol=1e-10)
    assert torch.allclose(inverse, noise.reference_inverse_probs(model, psi, nm), rtol=0, atol=1e-10)
    assert torch.allclose(forward.sum(1), torch.ones(3, dtype=F64), atol=1e-12)
    # and the noise did something measurable
    assert (forward - noise.NoisyCircuits(model, None).forward_distribution(x_prime)).abs().max() > 10 * p**2


@pytest.mark.parametrize("channel", noise.CHANNELS)
def test_zero_noise_is_the_exact_pure_state_simulation(model, channel):
    x_prime, psi = _angles(batch=6, seed=2)
    fast = noise.NoisyCircuits(model, noise.NoiseModel(channel, 0.0))
    with torch.no_grad():
        y = ry_state(x_prime).to(torch.complex128) @ model.unitary().T
        pure = DeviceQINN(model, Device(), seed=0)
    assert torch.allclose(fast.forward_distribution(x_prime), y.abs() ** 2, rtol=0, atol=1e-12)
    assert torch.allclose(fast.inverse_distribution(psi), pure.inverse_distribution(psi), rtol=0, atol=1e-12)


def test_full_depolarisation_gives_the_uniform_distribution(model):
    """p = 3/4 maps every single-qubit state to I/2, so after the last gates nothing is left."""
    x_prime, psi = _angles()
    fast = noise.NoisyCircuits(model, noise.NoiseModel("depolarizing", 0.75))
    uniform = torch.full((3, 32), 1 / 32, dtype=F64)
    assert torch.allclose(fast.forward_distribution(x_prime), uniform, atol=1e-12)
    assert torch.allclose(fast.inverse_distribution(psi), uniform, atol=1e-12)


def test_full_amplitude_damping_resets_to_zero(model):
    """p = 1 sends every qubit to |0> after each gate; the last gate on every wire then leaves |0...0>."""
    x_prime, psi = _angles()
    fast = noise.NoisyCircuits(model, noise.NoiseModel("amplitude_damping", 1.0))
    ground = torch.zeros((3, 32), dtype=F64)
    ground[:, 0] = 1.0
    assert torch.allclose(fast.forward_distribution(x_prime), ground, atol=1e-12)
    assert torch.allclose(fast.inverse_distribution(psi), ground, atol=1e-12)


def test_gate_lists_follow_the_circuits(model):
    """One Rot per wire and the n-CNOT ring per layer; U^dagger's list is U's reversed and adjoint."""
    fwd = noise.layer_gates(model.weights)
    adj = noise.adjoint_layer_gates(model.weights)
    n, layers = model.n_features, model.n_layers
    assert len(fwd) == len(adj) == 2 * n * layers
    assert [g.name for g in fwd[:2 * n]] == ["Rot"] * n + ["CNOT"] * n
    back = list(reversed(adj))
    for start in range(0, len(fwd), 2 * n):  # per layer: the Rots (on different wires, any order), the ring
        rots_f = {g.wires: g.matrix for g in fwd[start:start + n]}
        rots_b = {g.wires: g.matrix for g in back[start:start + n]}
        assert rots_f.keys() == rots_b.keys()
        for wire, mat in rots_f.items():
            assert torch.allclose(rots_b[wire], mat.mH, atol=1e-14)
        assert [g.wires for g in fwd[start + n:start + 2 * n]] == [g.wires for g in back[start + n:start + 2 * n]]


def test_pauli_coefficients_rebuild_the_density_matrix():
    _, psi = _angles()
    rho = noise.prepared_qubits(noise._rot_vectors(psi), noise.NoiseModel("amplitude_damping", 0.2))
    c = noise.pauli_coefficients(rho)
    rebuilt = torch.einsum("xna,aij->xnij", c.to(torch.complex128), noise._paulis())
    assert torch.allclose(rebuilt, rho, atol=1e-14)
    assert torch.allclose(c[..., 0], torch.full_like(c[..., 0], 0.5), atol=1e-14)  # Tr(rho) = 1


@pytest.mark.parametrize("channel", noise.CHANNELS)
def test_marginals_are_the_summed_distribution(model, channel):
    x_prime, psi = _angles(batch=5, seed=4)
    fast = noise.NoisyCircuits(model, noise.NoiseModel(channel, 0.02))
    from qinn_lib.hardware.shots import basis_bits

    bits = basis_bits(5)
    assert torch.allclose(fast.forward_distribution(x_prime, marginals=True),
                          fast.forward_distribution(x_prime) @ bits, atol=1e-13)
    assert torch.allclose(fast.inverse_distribution(psi, marginals=True),
                          fast.inverse_distribution(psi) @ bits, atol=1e-13)
