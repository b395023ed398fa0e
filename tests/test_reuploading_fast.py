"""The re-uploading flow's fast path (qinn_lib.models.qinn.reuploading_sim) against its oracles:
the gate-by-gate recursion (values, log-det, gradients w.r.t. every parameter, float64), PennyLane
(the fast path directly, small case), the QINN's forward map (one upload); its compiled step
(ReuploadingFlow.compile_) equals eager and falls back to eager with one warning; and the shipped
re-uploading models give the validation NLL stored with them."""

from __future__ import annotations

import contextlib
import math
import warnings

import pytest
import torch

from qinn_lib.compiling import CompileFallbackWarning
from qinn_lib.models.qinn.model import QINN
from qinn_lib.models.qinn.reuploading import ReuploadingFlow, pennylane_reference
from qinn_lib.models.qinn.reuploading_sim import encoding_matrix
from qinn_lib.models.qinn.simulator import _kron_qubits
from qinn_lib.training.objectives import NLLObjective

pytestmark = pytest.mark.usefixtures("one_thread")
F64 = torch.float64


def events(n=16, seed=0, dtype=F64):
    return torch.rand(n, 5, generator=torch.Generator().manual_seed(seed), dtype=dtype) * math.pi


def flow(n_layers, uploads, seed, dtype=F64):
    model = ReuploadingFlow(5, n_layers, uploads, seed=seed, dtype=dtype)
    with torch.no_grad():  # a state preparation away from the identity, so a and b matter
        model.a.copy_(torch.linspace(0.6, 0.9, 5, dtype=dtype))
        model.b.copy_(torch.linspace(0.05, 0.1, 5, dtype=dtype))
        model.c.copy_(torch.linspace(3.0, 5.0, 5, dtype=dtype))
    return model


def nll_and_grads(model, x, logdet_fn):
    model.zero_grad(set_to_none=True)
    z, logdet = logdet_fn(x)
    loss = (0.5 * z.square().sum(1) - logdet).mean()
    loss.backward()
    return z.detach(), logdet.detach(), {k: p.grad.clone() for k, p in model.named_parameters()}


def test_encoding_matrix_is_the_kronecker_product_with_its_gradient():
    x = torch.rand(3, 4, dtype=F64, requires_grad=True)
    half = 0.5 * x.detach()
    c, s = torch.cos(half), torch.sin(half)
    gates = torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)
    torch.testing.assert_close(encoding_matrix(x), _kron_qubits(gates), rtol=0, atol=0)
    assert torch.autograd.gradcheck(encoding_matrix, (x,))


@pytest.mark.parametrize("n_layers,uploads", [(4, 1), (6, 2), (6, 3), (7, 3), (12, 3)])
def test_fast_path_equals_the_gatewise_reference(n_layers, uploads):
    """Values, Jacobian, log-det and the gradient of an NLL w.r.t. a, b, weights, c, d (equal and
    uneven blocks)."""
    model = flow(n_layers, uploads, seed=3 + uploads)
    x = events(32, seed=uploads)
    z, jac = model.forward_and_jacobian(x)
    z_ref, jac_ref = model.forward_and_jacobian_gatewise(x)
    torch.testing.assert_close(z, z_ref, rtol=0, atol=1e-13)
    torch.testing.assert_close(jac, jac_ref, rtol=0, atol=1e-12)
    torch.testing.assert_close(model(x), z_ref, rtol=0, atol=1e-13)
    got = nll_and_grads(model, x, model.forward_and_logdet)
    want = nll_and_grads(model, x, model.forward_and_logdet_gatewise)
    torch.testing.assert_close(got[1], want[1], rtol=0, atol=1e-11)
    assert set(got[2]) == {"a", "b", "weights", "c", "d"}
    for name in got[2]:
        assert want[2][name].abs().sum() > 0, name
        torch.testing.assert_close(got[2][name], want[2][name], rtol=0, atol=1e-11, msg=name)


def test_fast_path_matches_pennylane():
    model = flow(4, 2, seed=21)
    ref = pennylane_reference(model)
    x = events(3, seed=4)
    x_prime = model.encode(x).detach()
    z, jac = model.forward_and_jacobian(x)
    a = model.clamped_ab()[0].detach()
    for b in range(x.shape[0]):
        torch.testing.assert_close(z[b].detach(), ref(x_prime[b]), rtol=0, atol=1e-12)
        jac_ref = torch.autograd.functional.jacobian(ref, x_prime[b]) * a
        torch.testing.assert_close(jac[b].detach(), jac_ref, rtol=0, atol=1e-12)


def test_one_upload_fast_path_is_the_qinn_forward_map():
    q = QINN(5, 12, seed=9, dtype=F64)
    r = ReuploadingFlow(5, 12, 1, seed=9, dtype=F64)
    x = events(64, seed=5)
    zq, lq = q.forward_and_logdet(x)
    zr, lr = r.forward_and_logdet(x)
    torch.testing.assert_close(zr, zq, rtol=0, atol=1e-13)
    torch.testing.assert_close(lr, lq, rtol=0, atol=1e-11)


# -- compiled ------------------------------------------------------------------------------------------
def test_the_jacobian_is_contiguous():
    """Regression: inductor (torch 2.13) got slogdet's backward wrong (gradients off by O(100), values
    right) for the transposed Jacobian the fast path first made; the real-compiler test below
    caught it. The Jacobian is now laid out (B, k, i) contiguously."""
    model = flow(4, 2, seed=1)
    assert model.forward_and_jacobian(events(8))[1].is_contiguous()


def test_compiled_step_equals_eager_and_validation_stays_eager():
    """aot_eager traces the whole forward_and_logdet (with the custom Functions) into one graph:
    the same numbers as eager, bit for bit here (no inductor fusion)."""
    x = events(32, seed=7)
    eager = flow(6, 3, seed=2)
    comp = flow(6, 3, seed=2).compile_(backend="aot_eager")
    want = nll_and_grads(eager, x, eager.forward_and_logdet)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CompileFallbackWarning)
        got = nll_and_grads(comp, x, comp.forward_and_logdet)
    assert comp.is_compiled and not eager.is_compiled
    torch.testing.assert_close(got[0], want[0], rtol=0, atol=1e-13)
    torch.testing.assert_close(got[1], want[1], rtol=0, atol=1e-12)
    for name in want[2]:
        torch.testing.assert_close(got[2][name], want[2][name], rtol=0, atol=1e-12, msg=name)
    with torch.no_grad():  # validation: the eager function (compiled_step), same numbers
        torch.testing.assert_close(comp.forward_and_logdet(x)[1], want[1], rtol=0, atol=1e-12)


def test_compile_failure_falls_back_to_eager_with_one_warning(monkeypatch):
    def fails_when_run(fn, **kwargs):
        def run(*args, **kw):
            raise RuntimeError("inductor: C++ compiler not found")
        return run

    from qinn_lib.models.qinn import reuploading

    monkeypatch.setattr(torch, "compile", fails_when_run)
    monkeypatch.setattr(reuploading, "_COMPILED", {})  # a fresh process's compiled function
    x = events(16, seed=8)
    ref = flow(4, 2, seed=6)
    model = flow(4, 2, seed=6).compile_()
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        for _ in range(3):
            got = nll_and_grads(model, x, model.forward_and_logdet)
    fallbacks = [w for w in record if issubclass(w.category, CompileFallbackWarning)]
    assert len(fallbacks) == 1 and "C++ compiler not found" in str(fallbacks[0].message)
    assert not model.is_compiled
    want = nll_and_grads(ref, x, ref.forward_and_logdet)
    assert torch.equal(got[1], want[1])
    assert all(torch.equal(got[2][k], want[2][k]) for k in want[2])


def test_the_trainer_compiles_the_flow_when_the_run_is_long(monkeypatch):
    from qinn_lib.training.loop import _step_terms

    calls = []
    monkeypatch.setattr(ReuploadingFlow, "compile_", lambda self, **kw: calls.append(self) or self)
    model = flow(4, 2, seed=1)
    monkeypatch.setenv("QINN_COMPILE", "never")
    _step_terms(model, NLLObjective(), 10**6)
    assert calls == []
    monkeypatch.setenv("QINN_COMPILE", "always")
    _step_terms(model, NLLObjective(), 10)
    assert calls == [model]


@pytest.mark.slow
def test_inductor_compiled_step_equals_eager():
    """The real compiler (inductor fuses and reorders float64 arithmetic: equal to rounding)."""
    x = events(32, seed=11)
    eager, comp = flow(6, 2, seed=4), flow(6, 2, seed=4).compile_()
    want = nll_and_grads(eager, x, eager.forward_and_logdet)
    got = nll_and_grads(comp, x, comp.forward_and_logdet)
    assert comp.is_compiled
    torch.testing.assert_close(got[1], want[1], rtol=0, atol=1e-10)
    for name in want[2]:
        torch.testing.assert_close(got[2][name], want[2][name], rtol=1e-9, atol=1e-10, msg=name)


# -- shipped models --------------------------------------------------------------------------------------
def _shipped_reuploading():
    from qinn_lib.paths import repo_root

    return sorted((repo_root() / "qinn_lib" / "shipped_models").glob("reuploading-*.pt"))


@pytest.mark.skipif(not _shipped_reuploading(), reason="no shipped re-uploading models")
def test_shipped_models_give_their_stored_validation_nll():
    """Every shipped flow, loaded unchanged, on the validation split it was trained with: the fast
    path equals the gatewise reference in float64 (1e-12), and its float32 NLL (the trainer's
    computation: mean over batch-128 chunks) reproduces the stored final ``val_nll`` to float32
    rounding. Both float32 paths differ from the float64 value by up to 2e-5 here (measured), so
    5e-5 is that rounding, not a change of the function."""
    from qinn_lib.events.cache import cache_paths
    from qinn_lib.experiments.one_model import prepare_data
    from qinn_lib.training.checkpoints import load_checkpoint
    from qinn_lib.training.config import ReuploadingRunConfig
    from qinn_lib.training.loop import _validate

    objective = NLLObjective()
    datasets = {}
    for path in _shipped_reuploading():
        ckpt = load_checkpoint(path)
        cfg = ReuploadingRunConfig(**ckpt["cfg"])
        key = (cfg.n_events, cfg.data_seed)
        if key not in datasets:
            if not cache_paths(*key)[0].exists():
                pytest.skip(f"events {key} not cached (generating them takes minutes)")
            datasets[key] = prepare_data(*key)
        data = datasets[key]
        assert data.fingerprint == ckpt["data_fingerprint"]
        nll = {}
        for dtype, fast in (("float32", True), ("float64", True), ("float64", False)):
            model = ReuploadingFlow.from_config(cfg.replace(dtype=dtype))
            model.load_state_dict({k: v.to(model.dtype) for k, v in ckpt["model"].items()})
            if not fast:
                model.forward_and_logdet = model.forward_and_logdet_gatewise
            (terms,) = _validate([model], lambda xs, gens, m=model: [objective.evaluate(m, xs[0], gens[0])],
                                 data.val.to(model.dtype), cfg.batch_size, [cfg.seed], contextlib.nullcontext)
            nll[dtype, fast] = terms["nll"]
        stored = ckpt["history"][-1]["val_nll"]
        assert nll["float64", True] == pytest.approx(nll["float64", False], abs=1e-12), path.name
        assert nll["float32", True] == pytest.approx(stored, abs=5e-5), path.name
        assert nll["float64", True] == pytest.approx(stored, abs=5e-5), path.name


def test_the_benchmark_times_every_path_it_is_asked_for():
    from qinn_lib.experiments.bench_reuploading import run_reuploading

    lines = []
    out = run_reuploading((1, 2), n_layers=4, batch_size=16, repeats=3, rounds=3, compile=False, log=lines.append)
    assert set(out["rows"]) == {f"u{u} {p}" for u in (1, 2) for p in ("gatewise", "fast")}
    assert all(r["steps"] == 3 and r["min_ms"] > 0 for r in out["rows"].values())
    assert len(lines) == 2 and "gatewise" in lines[0]
