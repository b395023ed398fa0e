"""The circuit Functions in real arithmetic (qinn_lib.models.qinn.real_autograd) against the complex ones.

The complex Functions are checked against PennyLane in tests/test_qinn.py; the real ones must
compute the same values and gradients (float64, to rounding), so the chain of trust reaches them.
Their hand-written backward passes are also gradchecked on their own, with and without the model
axis of QINNStack.
"""

from __future__ import annotations

import math

import pytest
import torch

from qinn_lib.models.qinn import real_autograd as real
from qinn_lib.models.qinn.autograd import _ForwardMeasure, _InverseMeasure, _RotProductState, circuit_unitary
from qinn_lib.models.qinn.model import QINN
from qinn_lib.models.qinn.stack import QINNStack

F64 = torch.float64


def _pair(u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return u.real.contiguous(), u.imag.contiguous()


@pytest.mark.parametrize("lead", [(), (2,)])
def test_real_functions_equal_the_complex_ones(lead):
    """Values and every input's gradient (a random cotangent), with and without a model axis."""
    gen = torch.Generator().manual_seed(7)
    n, layers, batch = 3, 2, 4
    w = torch.rand((*lead, layers, n, 3), generator=gen, dtype=F64) * 6.0
    wg = torch.rand((*lead, layers, n, 3), generator=gen, dtype=F64) * 6.0
    xp = torch.rand((*lead, batch, n), generator=gen, dtype=F64) * math.pi
    psi = torch.randn((*lead, batch, n, 3), generator=gen, dtype=F64)

    def run(arith: str):
        leaves = [t.clone().requires_grad_() for t in (w, wg, xp, psi)]
        w_, wg_, xp_, psi_ = leaves
        if arith == "complex":
            u, g = circuit_unitary(w_), circuit_unitary(wg_)
            outs = [*_ForwardMeasure.apply(xp_, u, True), _ForwardMeasure.apply(xp_, u, False),
                    _InverseMeasure.apply(psi_, u, g), *_pair(_RotProductState.apply(psi_)), *_pair(u)]
        else:
            u, g = real.circuit_unitary(w_), real.circuit_unitary(wg_)
            outs = [*real.forward_measure(xp_, u, True), real.forward_measure(xp_, u, False),
                    real.inverse_measure(psi_, u, g), *real.rot_product_state(psi_), *u]
        cot = torch.Generator().manual_seed(8)
        loss = sum((o * torch.randn(o.shape, generator=cot, dtype=F64)).sum() for o in outs)
        return [o.detach() for o in outs] + list(torch.autograd.grad(loss, leaves))

    for got, want in zip(run("real"), run("complex")):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("n, n_layers", [(1, 2), (2, 3), (3, 2)])
def test_real_functions_pass_gradcheck(n, n_layers):
    gen = torch.Generator().manual_seed(100 + n)
    w = (torch.rand((n_layers, n, 3), generator=gen, dtype=F64) * 6.0).requires_grad_()
    assert torch.autograd.gradcheck(real.circuit_unitary, (w,))
    u = [t.detach().requires_grad_() for t in real.circuit_unitary(w * 0.7)]
    g = [t.detach().requires_grad_() for t in real.circuit_unitary(w * 1.3)]
    xp = (torch.rand((3, n), generator=gen, dtype=F64) * math.pi).requires_grad_()
    assert torch.autograd.gradcheck(lambda t, a, b: real.forward_measure(t, (a, b), True), (xp, *u))
    assert torch.autograd.gradcheck(lambda t, a, b: real.forward_measure(t, (a, b), False), (xp, *u))
    psi = torch.randn((3, n, 3), generator=gen, dtype=F64).requires_grad_()
    assert torch.autograd.gradcheck(real.rot_product_state, (psi,))
    assert torch.autograd.gradcheck(lambda p, a, b, c, d: real.inverse_measure(p, (a, b), (c, d)), (psi, *u, *g))


def test_real_functions_with_a_model_axis_pass_gradcheck():
    gen = torch.Generator().manual_seed(3)
    k, n, b, layers = 2, 2, 2, 2
    w = (torch.rand(k, layers, n, 3, generator=gen, dtype=F64) * 6).requires_grad_()
    x = (torch.rand(k, b, n, generator=gen, dtype=F64) * 3).requires_grad_()
    psi = torch.rand(k, b, n, 3, generator=gen, dtype=F64).requires_grad_()
    assert torch.autograd.gradcheck(real.circuit_unitary, (w,), eps=1e-6, atol=1e-6)
    u = [t.detach().requires_grad_() for t in real.circuit_unitary(w)]
    g = [t.detach().requires_grad_() for t in real.circuit_unitary(w.flip(0))]
    assert torch.autograd.gradcheck(lambda t, a, c: real.forward_measure(t, (a, c), True), (x, *u), eps=1e-6, atol=1e-6)
    assert torch.autograd.gradcheck(real.rot_product_state, (psi,), eps=1e-6, atol=1e-6)
    assert torch.autograd.gradcheck(lambda p, a, c, d, e: real.inverse_measure(p, (a, c), (d, e)), (psi, *u, *g),
                                    eps=1e-6, atol=1e-6)


def _maps_values_and_grads(target, x, z):
    target.zero_grad(set_to_none=True)
    maps = target.step_maps()
    z_out, logdet = maps.forward_and_logdet(x)
    outs = [z_out, logdet, maps.inverse(z), maps.fidelity(x)]
    sum(o.square().sum() for o in outs).backward()
    return [o.detach() for o in outs] + [p.grad.clone() for p in target.parameters()]


@pytest.mark.parametrize("stacked", [False, True])
def test_real_step_maps_equal_the_complex_ones(stacked):
    """QINN.step_maps and QINNStack.step_maps (forward with log det, inverse, fidelity and every
    parameter gradient) in either arithmetic."""
    gen = torch.Generator().manual_seed(11)
    models = [QINN(seed=s, n_layers=3, isp_layers=2, dtype=F64) for s in range(2 if stacked else 1)]
    target = QINNStack(models) if stacked else models[0]
    shape = (2, 12, 5) if stacked else (12, 5)
    x = torch.rand(shape, generator=gen, dtype=F64) * math.pi
    z = torch.randn(shape, generator=gen, dtype=F64)
    results = {}
    for arith in ("real", "complex"):
        target.step_arithmetic = arith
        results[arith] = _maps_values_and_grads(target, x, z)
    for got, want in zip(results["real"], results["complex"]):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)


def test_auto_arithmetic_is_complex_outside_a_compiled_step():
    """Eager steps keep the complex Functions (their numbers unchanged bit for bit); a wrong value is refused."""
    assert QINN.step_arithmetic == "auto" and QINNStack.step_arithmetic == "auto"
    assert not real.use_real("auto") and real.use_real("real") and not real.use_real("complex")
    model = QINN(n_layers=2, isp_layers=2)
    z = torch.randn(6, 5, generator=torch.Generator().manual_seed(1))
    auto = model.step_maps().inverse(z)
    model.step_arithmetic = "complex"
    assert torch.equal(auto, model.step_maps().inverse(z))
    with pytest.raises(ValueError, match="step_arithmetic"):
        real.use_real("fast")
