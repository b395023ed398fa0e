"""The fast QINN simulation (qinn_lib.models.qinn.model) against the PennyLane reference (qinn_lib.models.qinn.circuits).

Everything in float64 with fixed seeds. The QNode comparisons use a handful of events so the file
stays fast; the custom autograd Functions are additionally gradchecked on small circuits.
"""

from __future__ import annotations

import math

import pennylane as qml
import pytest
import torch

from qinn_lib.models.qinn import circuits
from qinn_lib.models.qinn.autograd import _ForwardMeasure, _InverseMeasure, _RotProductState, circuit_unitary
from qinn_lib.models.qinn.model import QINN
from qinn_lib.models.qinn.simulator import rot_matrices
from qinn_lib.training.config import QINNRunConfig

F64 = torch.float64
N = 5
BATCH = 6


def _random_model(seed: int = 11, **kwargs) -> QINN:
    """Default architecture, float64, with the classical parameters moved off their init values
    (a, b strictly inside their feasible set so their gradients are not clamped)."""
    model = QINN(seed=seed, dtype=F64, **kwargs)
    gen = torch.Generator().manual_seed(seed + 1)
    n = model.n_features
    with torch.no_grad():
        model.a.copy_(0.4 + 0.5 * torch.rand(n, generator=gen, dtype=F64))
        model.b.copy_((1.0 - model.a) * (0.1 + 0.8 * torch.rand(n, generator=gen, dtype=F64)))
        model.c.copy_(1.0 + 4.0 * torch.rand(n, generator=gen, dtype=F64))
        model.d.copy_(-3.0 + 2.0 * torch.rand(n, generator=gen, dtype=F64))
    return model


def _x(batch: int = BATCH, seed: int = 5) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand((batch, N), generator=gen, dtype=F64) * math.pi
    x[0, 0] = -0.05  # slightly outside the training range: must stay smooth, not clipped
    x[1, 1] = math.pi + 0.05
    return x


def _z(batch: int = BATCH, seed: int = 6) -> torch.Tensor:
    return torch.randn((batch, N), generator=torch.Generator().manual_seed(seed), dtype=F64)


@pytest.fixture(scope="module")
def model() -> QINN:
    return _random_model()


# ---------------------------------------------------------------------------------------------
# values against the QNodes
# ---------------------------------------------------------------------------------------------
def test_unitaries_match_pennylane_matrices(model):
    wires = list(range(N))
    u_ref = qml.matrix(circuits.model_circuit, wire_order=wires)(model.weights.detach(), wires)
    g_ref = qml.matrix(circuits.isp_circuit, wire_order=wires)(model.isp_weights.detach(), wires)
    torch.testing.assert_close(model.unitary().detach(), torch.as_tensor(u_ref), atol=1e-12, rtol=0)
    torch.testing.assert_close(model.isp_unitary().detach(), torch.as_tensor(g_ref), atol=1e-12, rtol=0)


@pytest.mark.parametrize("n", [1, 2, 3])
def test_unitary_small_n_matches_pennylane(n):
    """Edge cases of the CNOT ring: none for one wire, CNOT(0,1) then CNOT(1,0) for two."""
    w = torch.rand((3, n, 3), generator=torch.Generator().manual_seed(n), dtype=F64) * 6.0
    wires = list(range(n))
    ref = qml.matrix(circuits.model_circuit, wire_order=wires)(w, wires)
    torch.testing.assert_close(circuit_unitary(w), torch.as_tensor(ref), atol=1e-12, rtol=0)


def test_rot_matrices_match_pennylane():
    w = torch.tensor([[0.3, 1.2, -2.0], [4.0, 0.0, 6.0], [-1.0, math.pi, 0.5]], dtype=F64)
    for row in w:
        torch.testing.assert_close(
            rot_matrices(row), torch.as_tensor(qml.Rot.compute_matrix(*row.tolist())), atol=1e-14, rtol=0
        )


def test_forward_matches_reference(model):
    x = _x()
    torch.testing.assert_close(model(x), circuits.reference_forward(model, x), atol=1e-10, rtol=0)
    z, _ = model.forward_and_logdet(x)
    torch.testing.assert_close(z, model(x), atol=1e-13, rtol=0)


def test_output_state_and_measure_match_reference(model):
    x = _x()
    y_ref, _ = circuits.reference_states(model, x)
    y = model.output_state(x)
    torch.testing.assert_close(y, y_ref, atol=1e-12, rtol=0)
    torch.testing.assert_close(model.c * model.measure(y) + model.d, model(x), atol=1e-12, rtol=0)


def test_inverse_matches_reference(model):
    z = _z()
    torch.testing.assert_close(model.inverse(z), circuits.reference_inverse(model, z), atol=1e-10, rtol=0)


def test_isp_state_matches_reference(model):
    x = _x()
    _, y_tilde_ref = circuits.reference_states(model, x)
    probs = model.measure(model.output_state(x))
    torch.testing.assert_close(model.isp_state(probs), y_tilde_ref, atol=1e-12, rtol=0)


def test_fidelity_matches_swap_test_and_states(model):
    x = _x()
    fast = model.fidelity(x)
    torch.testing.assert_close(fast, circuits.reference_fidelity(model, x), atol=1e-10, rtol=0)
    y, y_tilde = circuits.reference_states(model, x)
    torch.testing.assert_close(fast, (y_tilde.conj() * y).sum(-1).abs() ** 2, atol=1e-12, rtol=0)
    assert ((fast >= 0) & (fast <= 1 + 1e-12)).all()


# ---------------------------------------------------------------------------------------------
# gradients against the QNodes
# ---------------------------------------------------------------------------------------------
def _grads(model: QINN, loss: torch.Tensor) -> dict[str, torch.Tensor]:
    names, params = zip(*model.named_parameters())
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    return {k: torch.zeros_like(p) if g is None else g for k, p, g in zip(names, params, grads)}


def test_parameter_gradients_match_reference():
    """A scalar mixing forward, inverse and fidelity outputs: d/d(all parameters) agree."""
    model = _random_model(seed=21)
    x, z = _x(4), _z(4)
    gen = torch.Generator().manual_seed(3)
    w1, w2 = torch.randn((2, 4, N), generator=gen, dtype=F64)
    w3 = torch.randn(4, generator=gen, dtype=F64)

    def scalar(forward, inverse, fidelity):
        return (w1 * forward(x)).sum() + (w2 * inverse(z)).sum() + (w3 * fidelity(x)).sum()

    fast = _grads(model, scalar(model, model.inverse, model.fidelity))
    ref = _grads(
        model,
        scalar(
            lambda t: circuits.reference_forward(model, t),
            lambda t: circuits.reference_inverse(model, t),
            lambda t: circuits.reference_fidelity(model, t),
        ),
    )
    for name in ref:
        assert ref[name].abs().max() > 0, f"reference gradient of {name} vanishes: test would be vacuous"
        torch.testing.assert_close(fast[name], ref[name], atol=1e-9, rtol=1e-9, msg=name)


def test_logdet_gradients_match_reference():
    """log|det dz/dx| enters the NLL (eq. 7): its parameter gradients through the hand-written
    forward-mode Jacobian agree with double backprop through the QNode reference."""
    model = _random_model(seed=31)
    x = _x(3)
    _, logdet = model.forward_and_logdet(x)
    fast = _grads(model, logdet.sum())

    jac_ref = torch.autograd.functional.jacobian(
        lambda t: circuits.reference_forward(model, t).sum(0), x, create_graph=True
    ).permute(1, 0, 2)  # (B, k, i)
    logdet_ref = torch.linalg.slogdet(jac_ref).logabsdet
    torch.testing.assert_close(logdet, logdet_ref, atol=1e-10, rtol=0)
    ref = _grads(model, logdet_ref.sum())
    for name in ref:
        if name == "d" or name.startswith("isp"):  # shift d and the ISP do not enter dz/dx
            assert fast[name].abs().max() == 0
            continue
        assert ref[name].abs().max() > 0, f"reference gradient of {name} vanishes: test would be vacuous"
        torch.testing.assert_close(fast[name], ref[name], atol=1e-8, rtol=1e-8, msg=name)


def test_input_gradient_of_inverse_matches_reference(model):
    z = _z(4).requires_grad_()
    (g_fast,) = torch.autograd.grad(model.inverse(z).sum(), z)
    (g_ref,) = torch.autograd.grad(circuits.reference_inverse(model, z).sum(), z)
    torch.testing.assert_close(g_fast, g_ref, atol=1e-9, rtol=1e-9)


# ---------------------------------------------------------------------------------------------
# Jacobian and log-determinant
# ---------------------------------------------------------------------------------------------
def test_jacobian_matches_central_finite_differences(model):
    x = _x()
    jac = model.jacobian(x)
    h = 1e-6
    fd = torch.empty_like(jac)
    with torch.no_grad():
        for i in range(N):
            step = torch.zeros_like(x)
            step[:, i] = h
            fd[:, :, i] = (model(x + step) - model(x - step)) / (2 * h)
    torch.testing.assert_close(jac, fd, atol=1e-8, rtol=0)


def test_jacobian_matches_autograd_of_reference(model):
    x = _x(4)
    ref = torch.autograd.functional.jacobian(lambda t: circuits.reference_forward(model, t).sum(0), x)
    torch.testing.assert_close(model.jacobian(x), ref.permute(1, 0, 2), atol=1e-11, rtol=0)
    # the QINN Jacobian is full, not triangular like a coupling block's (sec. 3.1)
    assert (ref.permute(1, 0, 2).abs() > 1e-6).all()


def test_logdet_matches_slogdet_of_brute_force_jacobian(model):
    x = _x()
    _, logdet = model.forward_and_logdet(x)
    brute = torch.autograd.functional.jacobian(lambda t: model(t).sum(0), x).permute(1, 0, 2)
    torch.testing.assert_close(logdet, torch.linalg.slogdet(brute).logabsdet, atol=1e-10, rtol=0)


def test_jacobian_input_gradient_matches_finite_differences(model):
    """d/dx of a scalar of the Jacobian (second derivatives of the circuit, used when a and b
    are trained through log det J) against central differences."""
    x = _x(3).requires_grad_()
    gen = torch.Generator().manual_seed(9)
    wz, wj = torch.randn((3, N), generator=gen, dtype=F64), torch.randn((3, N, N), generator=gen, dtype=F64)

    def scalar(t):
        z, jac = model.forward_and_jacobian(t)
        return (wz * z).sum() + (wj * jac).sum()

    (grad,) = torch.autograd.grad(scalar(x), x)
    h = 1e-6
    fd = torch.empty_like(grad)
    with torch.no_grad():
        for b in range(3):
            for i in range(N):
                step = torch.zeros_like(x)
                step[b, i] = h
                fd[b, i] = (scalar(x + step) - scalar(x - step)) / (2 * h)
    torch.testing.assert_close(grad, fd, atol=1e-7, rtol=0)


# ---------------------------------------------------------------------------------------------
# custom autograd Functions
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n, n_layers", [(1, 2), (2, 3), (3, 2), (4, 2)])
def test_custom_functions_pass_gradcheck(n, n_layers):
    """Every input of every Function, in float64 (n = 5 is covered against PennyLane above)."""
    gen = torch.Generator().manual_seed(100 + n)
    w = (torch.rand((n_layers, n, 3), generator=gen, dtype=F64) * 6.0).requires_grad_()
    assert torch.autograd.gradcheck(circuit_unitary, (w,))
    u = circuit_unitary(torch.rand((n_layers, n, 3), generator=gen, dtype=F64) * 6.0).detach().requires_grad_()
    g = circuit_unitary(torch.rand((n_layers, n, 3), generator=gen, dtype=F64) * 6.0).detach().requires_grad_()
    xp = (torch.rand((3, n), generator=gen, dtype=F64) * math.pi).requires_grad_()
    assert torch.autograd.gradcheck(lambda t, v: _ForwardMeasure.apply(t, v, True), (xp, u))
    assert torch.autograd.gradcheck(lambda t, v: _ForwardMeasure.apply(t, v, False), (xp, u))
    psi = torch.randn((3, n, 3), generator=gen, dtype=F64).requires_grad_()
    assert torch.autograd.gradcheck(_RotProductState.apply, (psi,))
    assert torch.autograd.gradcheck(_InverseMeasure.apply, (psi, u, g))


def test_unitary_gradient_at_zero_angles():
    """All-zero weights make Rot the identity (zero off-diagonals): no division by zero anywhere."""
    w = torch.zeros((2, 3, 3), dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(circuit_unitary, (w,))


# ---------------------------------------------------------------------------------------------
# invertible pieces: round trips
# ---------------------------------------------------------------------------------------------
def test_encode_decode_round_trip(model):
    x = _x()
    torch.testing.assert_close(model.decode(model.encode(x)), x, atol=1e-14, rtol=0)
    a, b = model.clamped_ab()
    torch.testing.assert_close(model.encode(x), a * x + math.pi * b, atol=0, rtol=0)


def test_model_circuit_is_unitary(model):
    for u in (model.unitary(), model.isp_unitary()):
        torch.testing.assert_close(u.mH @ u, torch.eye(2**N, dtype=u.dtype), atol=1e-12, rtol=0)


def test_angle_decoding_inverts_state_preparation():
    """With U = identity in effect (inverse_from_state undoes it), measuring and decoding the
    prepared state gives x back: the arcsin inverse of the angle encoding (eq. 12)."""
    model = _random_model(seed=41)
    x = _x()
    x[2] = torch.tensor([0.0, math.pi, 1e-4, math.pi - 1e-4, 1.0], dtype=F64)
    with torch.no_grad():
        model.b.zero_()  # put events exactly on x' = 0 and x' = pi
        model.a.fill_(1.0)
    x = x.clamp(0.0, math.pi)
    torch.testing.assert_close(model.inverse_from_state(model.output_state(x)), x, atol=1e-9, rtol=0)


def test_inverse_pipeline_round_trip_through_the_state(model):
    """Everything but the learned ISP: x -> |y> = U|x'> -> U^dagger -> measure -> decode -> x."""
    x = _x()
    torch.testing.assert_close(model.inverse_from_state(model.output_state(x)), x, atol=1e-11, rtol=0)


def test_float32_decoding_keeps_precision_near_pi():
    """The atan2(sqrt p1, sqrt p0) decoding stays accurate at both ends of [0, pi] in float32."""
    model = QINN(seed=3)
    x = torch.tensor([[1e-3, math.pi - 1e-3, math.pi / 2, 0.2, math.pi - 0.2]])
    assert (model.inverse_from_state(model.output_state(x)) - x).abs().max() < 1e-4


# ---------------------------------------------------------------------------------------------
# parameters, constraints, construction
# ---------------------------------------------------------------------------------------------
def test_parameter_counts_match_table_1():
    counts = QINN().parameter_counts()
    assert counts == {"quantum": 300, "classical": 1763, "total": 2063}
    assert sum(p.numel() for p in QINN().parameters()) == 2063


def test_parameter_counts_scale_with_architecture():
    m = QINN(n_features=3, n_layers=2, isp_layers=4, isp_nn_layers=2, isp_hidden=7)
    assert m.parameter_counts()["quantum"] == 2 * 3 * 3 + 4 * 3 * 3
    assert m.parameter_counts()["classical"] == 4 * 3 + (3 * 7 + 7) + (7 * 9 + 9)
    single = QINN(n_features=2, isp_nn_layers=1)
    assert single.parameter_counts()["classical"] == 4 * 2 + (2 * 6 + 6)


def test_init_is_identity_state_preparation_and_seeded():
    m1, m2, m3 = QINN(seed=4), QINN(seed=4), QINN(seed=5)
    assert torch.equal(m1.a, torch.ones(N)) and torch.equal(m1.b, torch.zeros(N))
    for (name, p1), p2 in zip(m1.named_parameters(), m2.parameters()):
        assert torch.equal(p1, p2), name
    assert not torch.equal(m1.weights, m3.weights)
    assert (m1.weights >= 0).all() and (m1.weights < 2 * math.pi).all()
    z = m1(torch.rand(64, N) * math.pi)
    assert z.min() >= -2.0 and z.max() <= 2.0  # c = 4, d = -2: z in [-2, 2] at init


def test_construction_has_no_side_effects_on_global_rng():
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    QINN(seed=9)
    assert torch.equal(torch.rand(3), expected)


def test_quantum_and_classical_parameters_partition_all_parameters():
    m = QINN()
    ids = [id(p) for p in m.quantum_parameters() + m.classical_parameters()]
    assert sorted(ids) == sorted(id(p) for p in m.parameters())


def test_constrain_projects_onto_feasible_set():
    m = QINN(dtype=F64)
    with torch.no_grad():
        m.a.copy_(torch.tensor([-0.5, 0.3, 1.7, 0.9, 0.5], dtype=F64))
        m.b.copy_(torch.tensor([-1.0, 0.9, 0.2, 0.05, 0.4], dtype=F64))
    x = _x()
    z_before = m(x)  # the forward pass already uses the clamped values
    m.constrain_()
    torch.testing.assert_close(m.a.detach(), torch.tensor([0.0, 0.3, 1.0, 0.9, 0.5], dtype=F64))
    torch.testing.assert_close(m.b.detach(), torch.tensor([0.0, 0.7, 0.0, 0.05, 0.4], dtype=F64))
    assert ((m.a >= 0) & (m.a <= 1) & (m.b >= 0) & (m.b <= 1 - m.a)).all()
    torch.testing.assert_close(m(x), z_before, atol=1e-14, rtol=0)
    xp = m.encode(x.clamp(0, math.pi))
    assert xp.min() >= 0 and xp.max() <= math.pi + 1e-12


def test_gradients_reach_a_and_b_at_initialisation():
    """At init a = 1, b = 0 sit on the boundary; the clamp must still pass their gradients so
    projected gradient descent can move them."""
    m = QINN(dtype=F64)
    z, logdet = m.forward_and_logdet(_x())
    (0.5 * (z**2).sum(1) - logdet).mean().backward()
    assert m.a.grad.abs().min() > 0 and m.b.grad.abs().min() > 0


def test_from_config():
    cfg = QINNRunConfig(n_layers=3, isp_layers=2, isp_nn_layers=2, isp_hidden=8, seed=7, dtype="float64")
    m = QINN.from_config(cfg, n_features=4)
    assert (m.n_features, m.n_layers, m.isp_layers, m.isp_nn_layers, m.isp_hidden) == (4, 3, 2, 2, 8)
    assert m.dtype == F64 and m.weights.dtype == F64
    assert torch.equal(m.weights, QINN(4, 3, 2, 2, 8, seed=7, dtype=F64).weights)
    assert QINN.from_config(QINNRunConfig()).parameter_counts()["total"] == 2063


def test_float32_model_matches_float64():
    m32, m64 = QINN(seed=8), QINN(seed=8, dtype=F64)
    x = _x()
    z32, ld32 = m32.forward_and_logdet(x.float())
    z64, ld64 = m64.forward_and_logdet(x)
    assert z32.dtype == torch.float32 and m32.unitary().dtype == torch.complex64
    torch.testing.assert_close(z32.double(), z64, atol=1e-5, rtol=0)
    torch.testing.assert_close(ld32.double(), ld64, atol=1e-3, rtol=1e-4)
    z = _z()
    torch.testing.assert_close(m32.inverse(z.float()).double(), m64.inverse(z), atol=1e-4, rtol=0)


# ---------------------------------------------------------------------------------------------
# circuit cache
# ---------------------------------------------------------------------------------------------
def _step_loss(m: QINN, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    zx, logdet = m.forward_and_logdet(x)
    return (0.5 * (zx**2).sum(1) - logdet).mean() + ((m.inverse(zx) - x) ** 2).mean() + m.inverse(z).mean()


def test_reuse_circuits_gives_identical_gradients_and_invalidates():
    m = _random_model(seed=51)
    x, z = _x(), _z()
    plain = _grads(m, _step_loss(m, x, z))
    with m.reuse_circuits():
        cached = _grads(m, _step_loss(m, x, z))
        assert m.unitary() is m.unitary()  # shared within the block (no backward in between)
        u_before = m.unitary()
        # a second backward without a weight change rebuilds instead of reusing a freed graph
        second = _grads(m, _step_loss(m, x, z))
        with torch.no_grad():
            m.weights.add_(0.1)  # in-place update: the version counter invalidates the entry
        assert not torch.equal(m.unitary(), u_before)
        after_update = _step_loss(m, x, z)
    for name in plain:
        torch.testing.assert_close(cached[name], plain[name], atol=1e-12, rtol=0, msg=name)
        torch.testing.assert_close(second[name], plain[name], atol=1e-12, rtol=0, msg=name)
    assert m._circuit_cache is None
    torch.testing.assert_close(after_update, _step_loss(m, x, z), atol=1e-12, rtol=0)


# ---------------------------------------------------------------------------------------------
# input validation
# ---------------------------------------------------------------------------------------------
def test_input_validation_errors(model):
    with pytest.raises(ValueError, match=r"x must have shape \(batch, 5\), got \(4, 3\)"):
        model(torch.zeros(4, 3, dtype=F64))
    with pytest.raises(ValueError, match=r"x must have shape \(batch, 5\), got \(5,\)"):
        model.forward_and_logdet(torch.zeros(5, dtype=F64))
    bad = _x()
    bad[1, 2], bad[3, 0] = float("nan"), float("inf")
    with pytest.raises(ValueError, match=r"x of shape \(6, 5\) has 2 non-finite"):
        model.jacobian(bad)
    with pytest.raises(ValueError, match=r"z must have shape \(batch, 5\)"):
        model.inverse(torch.zeros(2, 6, dtype=F64))
    with pytest.raises(ValueError, match=r"z of shape \(6, 5\) has 2 non-finite"):
        model.inverse(bad)
    with pytest.raises(ValueError, match=r"state must be a tensor of shape \(batch, 32\)"):
        model.measure(torch.zeros(3, 16, dtype=torch.complex128))
    with pytest.raises(ValueError, match="x must be a real tensor"):
        model(torch.zeros(2, 5, dtype=torch.complex128))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"n_features": 0}, "n_features must be an integer >= 1, got 0"),
        ({"n_layers": 0}, "n_layers must be an integer >= 1, got 0"),
        ({"isp_layers": -1}, "isp_layers must be an integer >= 1, got -1"),
        ({"isp_nn_layers": 0}, "isp_nn_layers must be an integer >= 1, got 0"),
        ({"isp_hidden": 0}, "isp_hidden must be an integer >= 1, got 0"),
        ({"n_layers": 2.5}, "n_layers must be an integer >= 1, got 2.5"),
        ({"n_layers": True}, "n_layers must be an integer >= 1, got True"),
        ({"dtype": torch.float16}, "dtype must be torch.float32 or torch.float64"),
        ({"seed": -1}, "seed must be an integer >= 0, got -1"),
    ],
)
def test_constructor_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        QINN(**kwargs)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_runs_on_cuda():
    m = _random_model(seed=61).cuda()
    x = _x().cuda()
    z, logdet = m.forward_and_logdet(x)
    torch.testing.assert_close(z.cpu(), _random_model(seed=61)(x.cpu()), atol=1e-10, rtol=0)
    (logdet.sum() + m.inverse(z).sum()).backward()


# ---------------------------------------------------------------------------------------------
# the traceable training step: step_maps and QINNObjective.compiled_terms
# ---------------------------------------------------------------------------------------------
def test_step_maps_match_reference_values_and_gradients():
    """The unchecked maps of one training step (shared U and g_Q, what torch.compile traces)
    against the PennyLane QNodes: values, and the gradients of a scalar mixing all three."""
    model = _random_model(seed=23)
    x, z = _x(4), _z(4)
    maps = model.step_maps()
    zx, logdet = maps.forward_and_logdet(x)
    torch.testing.assert_close(zx, circuits.reference_forward(model, x), atol=1e-10, rtol=0)
    torch.testing.assert_close(maps.inverse(z), circuits.reference_inverse(model, z), atol=1e-10, rtol=0)
    torch.testing.assert_close(maps.fidelity(x), circuits.reference_fidelity(model, x), atol=1e-10, rtol=0)
    # log det: the checked method's value exactly (tested against the QNodes' Jacobian above)
    assert torch.equal(logdet, model.forward_and_logdet(x)[1])

    gen = torch.Generator().manual_seed(4)
    w1, w2 = torch.randn((2, 4, N), generator=gen, dtype=F64)
    w3 = torch.randn(4, generator=gen, dtype=F64)

    def scalar(forward, inverse, fidelity):
        return (w1 * forward(x)).sum() + (w2 * inverse(z)).sum() + (w3 * fidelity(x)).sum()

    maps = model.step_maps()
    fast = _grads(model, scalar(lambda t: maps.forward_and_logdet(t)[0], maps.inverse, maps.fidelity))
    ref = _grads(model, scalar(lambda t: circuits.reference_forward(model, t),
                               lambda t: circuits.reference_inverse(model, t),
                               lambda t: circuits.reference_fidelity(model, t)))
    for name in ref:
        assert ref[name].abs().max() > 0, f"reference gradient of {name} vanishes: test would be vacuous"
        torch.testing.assert_close(fast[name], ref[name], atol=1e-9, rtol=1e-9, msg=name)


def _angle_scaler():
    from qinn_lib.events.scaling import AngleScaler

    gen = torch.Generator().manual_seed(12)
    u = torch.rand((400, N), generator=gen, dtype=F64)
    lo = torch.tensor([20.0, 20.0, 0.0, -2.5, -2.5], dtype=F64)
    hi = torch.tensor([100.0, 100.0, math.pi, 2.5, 2.5], dtype=F64)
    return AngleScaler.fit((lo + u * (hi - lo)).numpy())  # pT1, pT2, dphi, eta1, eta2


def _objective_terms_and_grads(model, terms):
    names, params = zip(*model.named_parameters())
    grads = torch.autograd.grad(terms["loss"], params)
    return {k: v.detach() for k, v in terms.items()}, dict(zip(names, grads))


def _assert_same_terms(got, ref, tol):
    (got_terms, got_grads), (ref_terms, ref_grads) = got, ref
    assert set(got_terms) == set(ref_terms)
    for name in ref_terms:
        torch.testing.assert_close(got_terms[name], ref_terms[name], atol=tol, rtol=tol, msg=name)
    for name in ref_grads:
        assert ref_grads[name].abs().max() > 0, name
        torch.testing.assert_close(got_grads[name], ref_grads[name], atol=tol, rtol=tol, msg=name)


@pytest.mark.parametrize("invertibility", ["mse", "fidelity"])
def test_compiled_terms_uncompiled_match_the_objective(invertibility):
    """The traceable step (through step_maps) computes the objective's terms and gradients
    (Table 1 architecture, every loss term switched on)."""
    from qinn_lib.training.objectives import QINNObjective

    model = _random_model(seed=31)
    obj = QINNObjective(QINNRunConfig(profile="quick", invertibility=invertibility), _angle_scaler())
    x = _x(16, seed=8).clamp(0.0, math.pi)
    ref = _objective_terms_and_grads(model, obj(model, x, torch.Generator().manual_seed(5)))
    got = _objective_terms_and_grads(model, obj.compiled_terms(model, compile=False)(x, torch.Generator().manual_seed(5)))
    assert set(ref[0]) == {"loss", "nll", "mmd_latent", "mmd_input", "mmd_mz", "inv"}
    _assert_same_terms(got, ref, tol=1e-12)


def test_compiled_terms_compile_to_one_graph_with_the_objective_s_values_and_gradients():
    """torch.compile of the whole loss: one graph (no break: that is what makes it pay), the
    same terms and gradients as the eager objective to float64 rounding, on two steps with an
    optimiser step in between (the compiled graph reads the updated parameters); a second model
    of the same architecture (another seed, its own objective) reuses the graph: no recompile."""
    import torch._dynamo

    from qinn_lib.training.objectives import QINNObjective

    arch = dict(n_layers=2, isp_layers=2, isp_nn_layers=2, isp_hidden=8, dtype=F64)
    x = _x(16, seed=9).clamp(0.0, math.pi)
    scaler = _angle_scaler()
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    for seed in (2, 3):
        model = QINN(seed=seed, **arch)
        obj = QINNObjective(QINNRunConfig(profile="quick"), scaler)
        fast = obj.compiled_terms(model, compile=True)
        opt = torch.optim.SGD(model.parameters(), lr=1e-2)
        for step in range(2):
            ref = _objective_terms_and_grads(model, obj(model, x, torch.Generator().manual_seed(step)))
            got = _objective_terms_and_grads(model, fast(x, torch.Generator().manual_seed(step)))
            assert fast.is_compiled()
            _assert_same_terms(got, ref, tol=1e-10)
            for p, g in zip(model.parameters(), ref[1].values()):
                p.grad = g
            opt.step()
            model.constrain_()
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == 1
    assert not torch._dynamo.utils.counters["graph_break"]
