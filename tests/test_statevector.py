"""The gate-by-gate simulation (qinn_lib.models.qinn.statevector) against the dense fast path and
PennyLane, and the choice of path by width (qinn_lib.models.qinn.path_by_width). float64 throughout."""

from __future__ import annotations

import math

import pytest
import torch

from qinn_lib.models.qinn import circuits, path_by_width, statevector
from qinn_lib.models.qinn.autograd import circuit_unitary
from qinn_lib.models.qinn.model import QINN
from qinn_lib.models.qinn.simulator import rot_matrices

F64 = torch.float64


def _model(n: int, n_layers: int = 3, seed: int = 5) -> QINN:
    """A QINN with a, b inside their feasible set (so clamping passes gradients) and c, d off init."""
    model = QINN(n, n_layers, 2, seed=seed, dtype=F64)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        model.a.copy_(0.6 + 0.3 * torch.rand(n, generator=gen, dtype=F64))
        model.b.copy_(0.05 + 0.05 * torch.rand(n, generator=gen, dtype=F64))
        model.c.copy_(3.0 + torch.rand(n, generator=gen, dtype=F64))
        model.d.copy_(-2.0 + 0.5 * torch.rand(n, generator=gen, dtype=F64))
    return model


def _x(n: int, batch: int = 5, seed: int = 1) -> torch.Tensor:
    return torch.rand(batch, n, generator=torch.Generator().manual_seed(seed), dtype=F64) * math.pi


def _grads(model: QINN, scalar: torch.Tensor) -> dict[str, torch.Tensor]:
    names, params = zip(*model.named_parameters())
    grads = torch.autograd.grad(scalar, params, allow_unused=True)
    return {k: (torch.zeros_like(p) if g is None else g) for k, p, g in zip(names, params, grads)}


def test_rot_gates_equal_rot_matrices_and_pass_gradcheck():
    w = torch.rand(4, 3, 3, generator=torch.Generator().manual_seed(0), dtype=F64) * 2 * math.pi
    torch.testing.assert_close(statevector.rot_gates(w), rot_matrices(w), atol=1e-15, rtol=0)
    assert torch.autograd.gradcheck(statevector.rot_gates, (w.requires_grad_(),))


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_apply_circuit_equals_dense_unitary_and_passes_gradcheck(n):
    gen = torch.Generator().manual_seed(n)
    w = (torch.rand(2, n, 3, generator=gen, dtype=F64) * 2 * math.pi).requires_grad_()
    s = torch.randn(1 << n, 3, generator=gen, dtype=torch.complex128).requires_grad_()
    torch.testing.assert_close(statevector.apply_circuit(w, s), circuit_unitary(w) @ s, atol=1e-13, rtol=0)
    assert torch.autograd.gradcheck(statevector.apply_circuit, (w, s))


@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_values_and_jacobian_match_dense_path(n):
    model, x = _model(n), _x(n)
    z_gate, j_gate = statevector.forward_and_jacobian(model, x)
    z_dense, j_dense = model.forward_and_jacobian(x)
    torch.testing.assert_close(z_gate, z_dense, atol=1e-12, rtol=0)
    torch.testing.assert_close(j_gate, j_dense, atol=1e-12, rtol=0)


@pytest.mark.parametrize("n", [2, 3])
def test_values_and_jacobian_match_pennylane(n):
    model, x = _model(n), _x(n, batch=3)
    z_gate, j_gate = statevector.forward_and_jacobian(model, x)
    torch.testing.assert_close(z_gate, circuits.reference_forward(model, x), atol=1e-10, rtol=0)
    j_ref = torch.autograd.functional.jacobian(lambda t: circuits.reference_forward(model, t).sum(0), x)
    torch.testing.assert_close(j_gate, j_ref.permute(1, 0, 2), atol=1e-10, rtol=0)


@pytest.mark.parametrize("n", [1, 3, 4])
def test_nll_gradients_match_dense_path(n):
    """The NLL's pieces (eq. 7): d/d(every parameter) of mean(z^2/2 - log|det J|) agree."""
    model, x = _model(n, seed=7 + n), _x(n, batch=6)

    def nll(forward_and_logdet):
        z, logdet = forward_and_logdet(x)
        return (0.5 * z.square().sum(1) - logdet).mean()

    gate = _grads(model, nll(lambda t: statevector.forward_and_logdet(model, t)))
    dense = _grads(model, nll(model.forward_and_logdet))
    for name in ("a", "b", "weights", "c", "d"):
        assert dense[name].abs().max() > 0, f"gradient of {name} vanishes: test would be vacuous"
        torch.testing.assert_close(gate[name], dense[name], atol=1e-10, rtol=1e-10, msg=name)


def test_logdet_gradients_match_pennylane():
    model, x = _model(3, seed=31), _x(3, batch=3)
    _, logdet = statevector.forward_and_logdet(model, x)
    gate = _grads(model, logdet.sum())
    jac_ref = torch.autograd.functional.jacobian(
        lambda t: circuits.reference_forward(model, t).sum(0), x, create_graph=True).permute(1, 0, 2)
    logdet_ref = torch.linalg.slogdet(jac_ref).logabsdet
    torch.testing.assert_close(logdet, logdet_ref, atol=1e-10, rtol=0)
    ref = _grads(model, logdet_ref.sum())
    for name in ("a", "b", "weights", "c"):
        assert ref[name].abs().max() > 0, f"reference gradient of {name} vanishes: test would be vacuous"
        torch.testing.assert_close(gate[name], ref[name], atol=1e-8, rtol=1e-8, msg=name)


def test_input_gradient_of_jacobian_matches_dense_path():
    model = _model(3)
    x1 = _x(3).requires_grad_()
    x2 = x1.detach().clone().requires_grad_()
    (g_gate,) = torch.autograd.grad(statevector.forward_and_logdet(model, x1)[1].sum(), x1)
    (g_dense,) = torch.autograd.grad(model.forward_and_logdet(x2)[1].sum(), x2)
    torch.testing.assert_close(g_gate, g_dense, atol=1e-10, rtol=1e-10)


def test_bad_input_is_rejected_with_the_models_message():
    model = _model(3)
    with pytest.raises(ValueError, match=r"x must have shape \(batch, 3\)"):
        statevector.forward_and_jacobian(model, torch.zeros(4, 2, dtype=F64))
    with pytest.raises(ValueError, match="weights must have shape"):
        statevector.apply_circuit(torch.zeros(2, 3), torch.zeros(8, 1, dtype=torch.complex64))
    with pytest.raises(ValueError, match="states must be complex of shape"):
        statevector.apply_circuit(torch.zeros(2, 3, 3), torch.zeros(4, 1, dtype=torch.complex64))


def test_preferred_path_switches_at_the_measured_crossover():
    cross = path_by_width.GATE_FROM_QUBITS
    assert path_by_width.preferred_path(5) == "dense"  # the paper's width trains on the dense path
    assert path_by_width.preferred_path(cross - 1) == "dense"
    assert path_by_width.preferred_path(cross) == "gate"
    assert path_by_width.preferred_path(cross + 4) == "gate"
    for bad in (0, -3, 2.5, True, "5"):
        with pytest.raises(ValueError, match="n_qubits must be an integer >= 1"):
            path_by_width.preferred_path(bad)


def test_auto_dispatch_follows_the_width_and_agrees(monkeypatch):
    model, x = _model(3), _x(3)
    called = []
    real = statevector.forward_and_jacobian
    monkeypatch.setattr(statevector, "forward_and_jacobian", lambda m, t: called.append(1) or real(m, t))
    dense = path_by_width.forward_and_jacobian_auto(model, x)  # 3 qubits: dense
    assert not called
    monkeypatch.setattr(path_by_width, "GATE_FROM_QUBITS", 3)
    gate = path_by_width.forward_and_jacobian_auto(model, x)
    assert called
    for a, b in zip(gate, dense):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=0)
    z, logdet = path_by_width.forward_and_logdet_auto(model, x, path="dense")
    torch.testing.assert_close(logdet, torch.linalg.slogdet(dense[1]).logabsdet, atol=1e-12, rtol=0)
    with pytest.raises(ValueError, match="path must be one of"):
        path_by_width.forward_and_jacobian_auto(model, x, path="sparse")
