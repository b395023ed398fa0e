"""The PennyLane reference circuits of qinn_lib.models.qinn.circuits (sec. 3, eq. 12-15, Fig. 2-4).

These are the yardstick for the fast simulation in qinn_lib.models.qinn.model, so they are checked against
PennyLane's own machinery (qml.adjoint, qml.matrix) and against closed forms.
"""

from __future__ import annotations

import math

import numpy as np
import pennylane as qml
import pytest
import torch

from qinn_lib.models.qinn import circuits

RNG_SEED = 20230228


def _weights(n_layers: int, n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0.0, 2.0 * math.pi, size=(n_layers, n, 3))


@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_cnot_ring_pairs(n):
    pairs = circuits.cnot_ring(range(n))
    expected = [(i, i + 1) for i in range(n - 1)] + ([(n - 1, 0)] if n >= 2 else [])
    assert pairs == expected


@pytest.mark.parametrize("n, n_layers", [(2, 3), (3, 2), (5, 2)])
def test_explicit_adjoint_equals_qml_adjoint(n, n_layers):
    """eq. 13-15 written out gate by gate == PennyLane's adjoint of the model circuit."""
    wires = list(range(n))
    w = _weights(n_layers, n, RNG_SEED + n)
    explicit = qml.matrix(circuits.model_circuit_adjoint, wire_order=wires)(w, wires)
    via_qml = qml.matrix(qml.adjoint(circuits.model_circuit), wire_order=wires)(w, wires)
    forward = qml.matrix(circuits.model_circuit, wire_order=wires)(w, wires)
    np.testing.assert_allclose(explicit, via_qml, atol=1e-12)
    np.testing.assert_allclose(explicit, forward.conj().T, atol=1e-12)


@pytest.mark.parametrize("n, n_layers", [(3, 4), (5, 12)])
def test_adjoint_undoes_model_circuit(n, n_layers):
    """U^dagger U = I for the explicit adjoint, as a matrix product and as a circuit."""
    wires = list(range(n))
    w = _weights(n_layers, n, RNG_SEED + 7)
    u = qml.matrix(circuits.model_circuit, wire_order=wires)(w, wires)
    u_dag = qml.matrix(circuits.model_circuit_adjoint, wire_order=wires)(w, wires)
    np.testing.assert_allclose(u_dag @ u, np.eye(2**n), atol=1e-12)

    def both(weights, wires):
        circuits.model_circuit(weights, wires)
        circuits.model_circuit_adjoint(weights, wires)

    np.testing.assert_allclose(qml.matrix(both, wire_order=wires)(w, wires), np.eye(2**n), atol=1e-12)
    # a non-trivial circuit: U alone is far from the identity
    assert np.abs(u - np.eye(2**n)).max() > 0.1


def test_state_preparation_inverts_exactly():
    """x' -> R_y(x')|0> -> P(qubit = 1) = sin^2(x'/2) -> 2 arcsin(sqrt(p)) = x' (eq. 12)."""
    n = 5
    wires = list(range(n))
    angles = torch.tensor(
        [[0.0, math.pi, 0.5, 1.0, 2.0], [1e-3, math.pi - 1e-3, 3.0, 0.1, 1.5], [0.7, 2.2, 2.9, 1.2, 0.3]],
        dtype=torch.float64,
    )

    @qml.qnode(qml.device("default.qubit", wires=n), interface="torch")
    def prepare_and_measure(x):
        circuits.state_preparation(x, wires)
        return [qml.expval(qml.Projector([1], wires=w)) for w in wires]

    p = torch.stack(prepare_and_measure(angles), -1)
    torch.testing.assert_close(p, torch.sin(angles / 2) ** 2, atol=1e-14, rtol=0)
    recovered = 2 * torch.arcsin(torch.sqrt(torch.clamp(p, 0.0, 1.0)))
    torch.testing.assert_close(recovered, angles, atol=1e-7, rtol=0)
    # away from the ends of [0, pi] the arcsin inverse is well conditioned: near machine precision
    inner = (angles > 0.05) & (angles < math.pi - 0.05)
    assert (recovered - angles)[inner].abs().max() < 1e-12


def test_isp_preparation_is_rot_on_zero():
    """Rot(psi_i0, psi_i1, psi_i2)|0> per qubit, qubit-major reading of the 3n angles (eq. 22)."""
    n = 3
    wires = list(range(n))
    psi = torch.tensor([0.3, 1.1, -0.4, 2.0, 0.5, 0.9, -1.3, 2.8, 0.2], dtype=torch.float64)

    @qml.qnode(qml.device("default.qubit", wires=n), interface="torch")
    def prepared(angles):
        circuits.isp_preparation(angles, wires)
        return qml.state()

    expected = torch.tensor([1.0 + 0j], dtype=torch.complex128)
    for k in range(n):
        rot = torch.as_tensor(qml.Rot.compute_matrix(*psi[3 * k : 3 * k + 3].tolist()))
        expected = torch.kron(expected, rot[:, 0])
    torch.testing.assert_close(prepared(psi), expected, atol=1e-14, rtol=0)


def test_swap_test_probability_is_one_plus_fidelity_over_two():
    """Fig. 3: P(ancilla = 0) = (1 + |<y~|y>|^2) / 2, with the states taken from state QNodes."""
    n, n_layers, isp_layers, batch = 3, 2, 2, 4
    gen = torch.Generator().manual_seed(RNG_SEED)
    w = torch.rand((n_layers, n, 3), generator=gen, dtype=torch.float64) * 2 * math.pi
    wi = torch.rand((isp_layers, n, 3), generator=gen, dtype=torch.float64) * 2 * math.pi
    angles = torch.rand((batch, n), generator=gen, dtype=torch.float64) * math.pi
    psi = torch.randn((batch, 3 * n), generator=gen, dtype=torch.float64)
    y = circuits.forward_state_qnode(n, n_layers)(angles, w)
    y_tilde = circuits.isp_state_qnode(n, isp_layers)(psi, wi)
    fidelity = (y_tilde.conj() * y).sum(-1).abs() ** 2
    p0 = circuits.swap_test_qnode(n, n_layers, isp_layers)(angles, w, psi, wi)
    torch.testing.assert_close(p0, (1 + fidelity) / 2, atol=1e-12, rtol=0)
    assert fidelity.min() < 0.9  # random states: the check is not trivially at F = 1

    # identical registers: Rot(0, x, 0) = R_y(x), and g_Q = U, so |y~> = |y> and P(0) = 1
    same_psi = torch.zeros((batch, n, 3), dtype=torch.float64)
    same_psi[..., 1] = angles
    p_same = circuits.swap_test_qnode(n, n_layers, n_layers)(angles, w, same_psi.reshape(batch, 3 * n), w)
    torch.testing.assert_close(p_same, torch.ones(batch, dtype=torch.float64), atol=1e-12, rtol=0)


def test_qnodes_reject_wrong_weight_shapes():
    qnode = circuits.forward_qnode(3, 2)
    with pytest.raises(ValueError, match=r"weights must have shape \(2, 3, 3\)"):
        qnode(torch.zeros(3), torch.zeros(4, 3, 3))
    with pytest.raises(ValueError, match="registers differ in size"):
        circuits.swap_test(0, [1, 2], [3])


def test_reference_functions_validate_input():
    from qinn_lib.models.qinn.model import QINN

    model = QINN(n_features=3, n_layers=1, isp_layers=1, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"x must have shape \(batch, 3\), got \(4, 2\)"):
        circuits.reference_forward(model, torch.zeros(4, 2))
    with pytest.raises(ValueError, match=r"z must have shape \(batch, 3\)"):
        circuits.reference_inverse(model, torch.zeros(3))


@pytest.mark.parametrize("which", ["forward", "inverse", "swap"])
def test_draw_returns_figure(which):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    from qinn_lib.models.qinn.model import QINN

    model = QINN(n_features=3, n_layers=3, isp_layers=2, isp_hidden=4, dtype=torch.float64)
    fig = circuits.draw(model, which, max_layers=1)
    assert isinstance(fig, Figure)
    plt.close(fig)


def test_draw_rejects_unknown_circuit():
    from qinn_lib.models.qinn.model import QINN

    with pytest.raises(ValueError, match="which must be one of"):
        circuits.draw(QINN(n_features=2, n_layers=1, isp_layers=1), "backward")


def test_rot_angles_are_written_at_a_readable_size():
    """Regression: notebook 02's Rot labels (four lines in a one-wire box) were shrunk to 8 pt."""
    import matplotlib

    matplotlib.use("Agg")
    from qinn_lib.models.qinn.model import QINN

    fig = circuits.draw(QINN(3, 2, 1, seed=0), "forward", max_layers=1, decimals=1)
    texts = fig.axes[0].texts
    rot = [t for t in texts if t.get_text() == "Rot"]
    angles = [t for t in texts if len(t.get_text().split(" ")) == 3]
    assert len(rot) == 3 and {t.get_fontsize() for t in rot} == {14}
    assert len(angles) == 3 and {t.get_fontsize() for t in angles} == {circuits.ROT_ANGLE_FONTSIZE}
    assert not [t for t in texts if t.get_text().startswith("Rot\n")]
