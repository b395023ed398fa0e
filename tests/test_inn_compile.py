"""Compiled INN passes (INN.compile_ / INNStack.compile_ through qinn_lib.compiling.compiled_step):
the same function as eager, one graph per direction, eager for the calls that are not a training
step, and eager with exactly one warning when torch.compile fails.

Only ``test_inductor_compiled_inn_equals_eager`` runs the real compiler (marked slow: ~70 s cold
on an idle 2-core machine, a few seconds once build/torch_compile_cache holds the graphs). The
others use torch.compile stand-ins or the ``aot_eager`` backend (tracing only) and take seconds.
"""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from qinn_lib.compiling import CompileFallbackWarning, compiled_step
from qinn_lib.models.inn.coupling import CubicSplineCoupling
from qinn_lib.models.inn.model import INN, INNStack

F64 = torch.float64


# Thousands of tiny ops: one intra-op thread is faster (tests/conftest.py, one_thread).
pytestmark = pytest.mark.usefixtures("one_thread")


def _randomised(size: str, seed: int, dtype=torch.float32) -> INN:
    """An INN with curved splines (last layers at torch's default range, not the near-identity start)."""
    model = INN(size, seed=seed, dtype=dtype)
    gen = torch.Generator().manual_seed(100 + seed)
    with torch.no_grad():
        for mod in model.flow:
            if isinstance(mod, CubicSplineCoupling):
                lin = mod.subnet1[-1]
                b = 1.0 / math.sqrt(lin.in_features)
                for p in (lin.weight, lin.bias):
                    p.copy_(torch.empty(p.shape, dtype=F64).uniform_(-b, b, generator=gen).to(dtype))
    return model


def _step(model, x: torch.Tensor, z: torch.Tensor):
    """What a training step asks of the model: forward with log-det, inverse, backward."""
    model.zero_grad(set_to_none=True)
    zz, ld = model.forward_and_logdet(x)
    x_gen = model.inverse(z)
    ((0.5 * zz.pow(2).sum(1) - ld).mean() + x_gen.pow(2).mean()).backward()
    return zz.detach(), ld.detach(), x_gen.detach(), [p.grad.clone() for p in model.parameters()]


def _batch(n: int, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(n, 5, generator=gen) * math.pi, torch.randn(n, 5, generator=gen)


class _CountingCompile:
    """A torch.compile stand-in: returns fn itself, counting the calls that go through it."""

    def __init__(self):
        self.calls = 0

    def __call__(self, fn, **kwargs):
        def run(*args, **kw):
            self.calls += 1
            return fn(*args, **kw)
        return run


# -- fallback ------------------------------------------------------------------------------------------
def test_compile_failure_falls_back_to_eager_with_one_warning(monkeypatch):
    def broken(fn, **kwargs):
        raise RuntimeError("no compiler on this platform")

    x, z = _batch(16)
    ref = _step(INN("2k", seed=1), x, z)
    monkeypatch.setattr(torch, "compile", broken)
    model = INN("2k", seed=1)
    with pytest.warns(CompileFallbackWarning, match="no compiler") as record:
        model.compile_()
        out = _step(model, x, z)
    assert len(record) == 1
    assert not model.is_compiled
    for a, b in zip(out[:3] + tuple(out[3]), ref[:3] + tuple(ref[3])):
        assert torch.equal(a, b)


def test_compiled_call_failure_falls_back_to_eager_with_one_warning(monkeypatch):
    def fails_when_run(fn, **kwargs):
        def run(*args, **kw):
            raise RuntimeError("inductor: C++ compiler not found")
        return run

    x, z = _batch(16)
    monkeypatch.setattr(torch, "compile", fails_when_run)
    stack = INNStack([INN("2k", seed=s) for s in (1, 2)]).compile_()
    eager = INNStack([INN("2k", seed=s) for s in (1, 2)])
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        for _ in range(3):  # forward and inverse, three steps: one warning in all
            got = [(z_, ld) for z_, ld in stack.forward_and_logdet([x, x])] + [stack.inverse([z, z])]
    fallbacks = [w for w in record if issubclass(w.category, CompileFallbackWarning)]
    assert len(fallbacks) == 1 and "C++ compiler not found" in str(fallbacks[0].message)
    assert not stack.is_compiled
    with torch.no_grad():
        want = eager.forward_and_logdet([x, x])
    for (z_, ld), (z_ref, ld_ref) in zip(got[:2], want):
        assert torch.equal(z_.detach(), z_ref) and torch.equal(ld.detach(), ld_ref)


# -- which calls are compiled --------------------------------------------------------------------------
def test_only_training_step_calls_go_through_the_compiled_function(monkeypatch):
    counter = _CountingCompile()
    monkeypatch.setattr(torch, "compile", counter)
    model = INN("2k", seed=0).compile_()
    assert model.is_compiled
    x, z = _batch(32)
    _step(model, x, z)
    assert counter.calls == 2  # forward and inverse, with grad, batch 32
    _step(model, x, z)
    assert counter.calls == 4
    with torch.no_grad():  # validation and generation: eager (no second graph)
        model.forward_and_logdet(x)
        model.inverse(z)
    model.forward_and_logdet(x[:7])  # another batch size: eager
    model.inverse(torch.cat([z, z]))
    assert counter.calls == 4
    _step(model, *_batch(32, seed=1))  # the training shape again: compiled
    assert counter.calls == 6


def test_compiled_step_keys_on_static_arguments_and_shapes(monkeypatch):
    counter = _CountingCompile()
    monkeypatch.setattr(torch, "compile", counter)
    f = compiled_step(lambda t, flag: t * 2 if flag else t + 1, label="toy")
    a = torch.ones(3, requires_grad=True)
    f(a, True)
    f(torch.ones(4), False)  # first call with flag=False: its own shape
    f(a, False)  # flag=False with another shape: eager
    f(torch.ones(4), True)  # flag=True with another shape: eager
    f(a, True)
    assert counter.calls == 3


# -- one graph per direction, same function (tracing only) ------------------------------------------------
@pytest.mark.parametrize("stacked", [False, True], ids=["INN", "INNStack"])
def test_flows_trace_to_one_graph_and_match_eager(stacked):
    # fullgraph=True makes a graph break an error (which compiled() would turn into a fallback
    # warning): the mask-free spline and the rest of the flow must trace as one graph each way.
    members = [_randomised("2k", s, F64) for s in (1, 2)]
    target = INNStack(members) if stacked else members[0]
    eager = INNStack([_randomised("2k", s, F64) for s in (1, 2)]) if stacked else _randomised("2k", 1, F64)
    x, z = (t.double() for t in _batch(24))
    args = ([x, x], [z, z]) if stacked else (x, z)
    ref = _stacked_step(eager, *args) if stacked else _step(eager, *args)
    torch._dynamo.reset()
    target.compile_(backend="aot_eager", fullgraph=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CompileFallbackWarning)
        out = _stacked_step(target, *args) if stacked else _step(target, *args)
    assert target.is_compiled
    for a, b in zip(_flat(out), _flat(ref)):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-12)


def _stacked_step(stack, xs, zs):
    stack.zero_grad(set_to_none=True)
    outs = stack.forward_and_logdet(xs)
    x_gens = stack.inverse(zs)
    sum((0.5 * zz.pow(2).sum(1) - ld).mean() + xg.pow(2).mean() for (zz, ld), xg in zip(outs, x_gens)).backward()
    return ([t.detach() for pair in outs for t in pair], [t.detach() for t in x_gens],
            [p.grad.clone() for p in stack.parameters()])


def _flat(out):
    flat = []
    for item in out:
        flat.extend(item if isinstance(item, list) else [item])
    return flat


# -- the real compiler -------------------------------------------------------------------------------------
@pytest.mark.slow
def test_inductor_compiled_inn_equals_eager():
    eager = _randomised("2k", 3)  # float32, as trained
    fast = _randomised("2k", 3).compile_()
    x, z = _batch(32, seed=3)
    ref = _step(eager, x, z)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CompileFallbackWarning)  # a fallback would make this test vacuous
        out = _step(fast, x, z)
        out2 = _step(fast, *_batch(32, seed=4))
    assert fast.is_compiled
    ref2 = _step(eager, *_batch(32, seed=4))
    for got, want in ((out, ref), (out2, ref2)):
        for a, b in zip(_flat(got), _flat(want)):
            # float32 model, float64 spline: the compiler reorders float arithmetic, so agreement is
            # to float32 rounding, not bit for bit
            torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)
