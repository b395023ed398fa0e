"""QINN seeds in lockstep (qinn_lib.models.qinn.stack.QINNStack): the batched circuit Functions, the
stacked objective and lockstep training agree with every member evaluated and trained alone."""

from __future__ import annotations

import math

import pytest
import torch

from qinn_lib.models.qinn.autograd import _CircuitUnitary, _ForwardMeasure, _InverseMeasure, _RotProductState
from qinn_lib.models.qinn.model import QINN
from qinn_lib.models.qinn.stack import QINNStack
from qinn_lib.training.config import QINNRunConfig
from qinn_lib.training.loop import train, train_lockstep
from qinn_lib.training.objectives import QINNObjective
from tests.test_train import LinearScaler, make_data, toy_mass

SMALL = dict(n_layers=2, isp_layers=2, isp_nn_layers=2, isp_hidden=8)


def _members(seeds=(3, 4, 5), dtype="float64", invertibility="mse", **kw):
    cfgs = [QINNRunConfig(profile="quick", seed=s, dtype=dtype, invertibility=invertibility, epochs=2,
                          batch_size=16, **{**SMALL, **kw}) for s in seeds]
    return cfgs, [QINN.from_config(c) for c in cfgs]


# -- the Functions with a leading model axis ------------------------------------------------------
def test_functions_with_a_model_axis_equal_each_model_alone_and_pass_gradcheck():
    g = torch.Generator().manual_seed(0)
    k, n, b, layers = 2, 2, 2, 1
    w = torch.rand(k, layers, n, 3, generator=g, dtype=torch.float64) * 6
    x = torch.rand(k, b, n, generator=g, dtype=torch.float64) * 3
    psi = torch.rand(k, b, n, 3, generator=g, dtype=torch.float64) * 6
    u = _CircuitUnitary.apply(w)
    g_q = _CircuitUnitary.apply(w.flip(0))
    for i in range(k):
        torch.testing.assert_close(u[i], _CircuitUnitary.apply(w[i]))
        p, dp = _ForwardMeasure.apply(x, u, True)
        p_i, dp_i = _ForwardMeasure.apply(x[i], u[i], True)
        torch.testing.assert_close(p[i], p_i)
        torch.testing.assert_close(dp[i], dp_i)
        torch.testing.assert_close(_InverseMeasure.apply(psi, u, g_q)[i], _InverseMeasure.apply(psi[i], u[i], g_q[i]))
        torch.testing.assert_close(_RotProductState.apply(psi)[i], _RotProductState.apply(psi[i]))
    # hand-written backward passes with the model axis, against finite differences
    for args, fn in [((w.requires_grad_(),), lambda w: _CircuitUnitary.apply(w)),
                     ((x.clone().requires_grad_(),), lambda x: _ForwardMeasure.apply(x, u.detach(), True)),
                     ((x.clone().requires_grad_(),), lambda x: _ForwardMeasure.apply(x, u.detach(), False)),
                     ((psi.clone().requires_grad_(),), lambda p: _InverseMeasure.apply(p, u.detach(), g_q.detach())),
                     ((psi.clone().requires_grad_(),), lambda p: _RotProductState.apply(p))]:
        assert torch.autograd.gradcheck(fn, args, eps=1e-6, atol=1e-6)
    uu = u.detach().clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda v: _ForwardMeasure.apply(x.detach(), v, True), (uu,), eps=1e-6, atol=1e-6)
    assert torch.autograd.gradcheck(lambda v: _InverseMeasure.apply(psi.detach(), v, g_q.detach()), (uu,),
                                    eps=1e-6, atol=1e-6)


# -- the stack against its members ----------------------------------------------------------------
@pytest.mark.parametrize("invertibility", ["mse", "fidelity"])
def test_stacked_objective_equals_each_member_alone(invertibility):
    cfgs, members = _members(invertibility=invertibility)
    _, alone = _members(invertibility=invertibility)
    obj = QINNObjective(cfgs[0], LinearScaler(), mass_fn=toy_mass)
    xs = [make_data(n_train=16, n_val=1, seed=s)[0].double() for s in range(3)]
    stacked = obj.stacked(QINNStack(members), xs, [torch.Generator().manual_seed(c.seed) for c in cfgs])
    sum(t["loss"] for t in stacked).backward()
    for cfg, m_alone, m_stack, x, terms in zip(cfgs, alone, members, xs, stacked):
        ref = obj(m_alone, x, torch.Generator().manual_seed(cfg.seed))
        ref["loss"].backward()
        assert ref.keys() == terms.keys() and "inv" in terms
        for key in ref:
            torch.testing.assert_close(terms[key], ref[key], rtol=1e-10, atol=1e-12)
        for (name, p_a), p_s in zip(m_alone.named_parameters(), m_stack.parameters()):
            torch.testing.assert_close(p_s.grad, p_a.grad, rtol=1e-9, atol=1e-12, msg=name)
    # the maps too: forward, log-det, inverse and fidelity per member
    stack = QINNStack(members)
    zl = stack.forward_and_logdet(xs)
    for m, x, (z, logdet), x_inv, fid in zip(members, xs, zl, stack.inverse([z for z, _ in zl]), stack.fidelity(xs)):
        z_ref, ld_ref = m.forward_and_logdet(x)
        torch.testing.assert_close(z, z_ref)
        torch.testing.assert_close(logdet, ld_ref)
        torch.testing.assert_close(x_inv, m.inverse(z_ref))
        torch.testing.assert_close(fid, m.fidelity(x))


def test_compiled_stacked_terms_equal_the_eager_ones():
    cfgs, members = _members(dtype="float32")
    obj = QINNObjective(cfgs[0], LinearScaler(), mass_fn=toy_mass)
    stack = QINNStack(members)
    xs = [make_data(n_train=16, n_val=1, seed=s)[0] for s in range(3)]
    gens = lambda: [torch.Generator().manual_seed(c.seed) for c in cfgs]  # noqa: E731
    eager = obj.stacked(stack, xs, gens())
    traced = obj.compiled_stacked(stack, compile=False)(xs, gens())
    for a, b in zip(eager, traced):
        for key in a:
            torch.testing.assert_close(a[key], b[key], rtol=1e-6, atol=1e-7)


def test_stack_refuses_members_it_cannot_batch():
    _, members = _members(seeds=(1, 2))
    _, deeper = _members(seeds=(3,), n_layers=3)
    with pytest.raises(ValueError, match="share one architecture"):
        QINNStack(members + deeper)
    with pytest.raises(ValueError, match="at least one member"):
        QINNStack([])
    with pytest.raises(ValueError, match="3 x batches for 2 members"):
        QINNStack(members).forward_and_logdet([torch.rand(4, 5, dtype=torch.float64)] * 3)


# -- lockstep training ----------------------------------------------------------------------------
def test_qinn_lockstep_training_matches_training_each_seed_alone(tmp_path):
    cfgs, members = _members(seeds=(3, 4))
    _, alone = _members(seeds=(3, 4))
    train_x, val_x = (t.double() for t in make_data(n_train=48, n_val=24))
    obj = QINNObjective(cfgs[0], LinearScaler(), mass_fn=toy_mass)
    results = train_lockstep(QINNStack(members), obj, train_x, val_x, cfgs,
                             run_dirs=[tmp_path / f"lock{c.seed}" for c in cfgs], data_fingerprint="fp", progress=False)
    for cfg, m_lock, m_alone, res in zip(cfgs, members, alone, results):
        ref = train(m_alone, obj, train_x, val_x, cfg, run_dir=tmp_path / f"alone{cfg.seed}", data_fingerprint="fp",
                    progress=False)
        assert res.epochs_run == 2 and res.history[-1]["lockstep_members"] == 2
        for a, b in zip(m_lock.state_dict().values(), m_alone.state_dict().values()):
            torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11)
        for h_l, h_a in zip(res.history, ref.history):
            for key, value in h_a.items():
                if key != "seconds":
                    assert h_l[key] == pytest.approx(value, rel=1e-8, abs=1e-11), key
        # each member's checkpoint is an ordinary QINN run: train() reloads it without training
        fresh = QINN.from_config(cfg)
        again = train(fresh, obj, train_x, val_x, cfg, run_dir=tmp_path / f"lock{cfg.seed}", data_fingerprint="fp",
                      progress=False)
        assert again.epochs_run == 0
        for a, b in zip(fresh.state_dict().values(), m_lock.state_dict().values()):
            assert torch.equal(a, b)
    assert not torch.allclose(members[0].weights, members[1].weights)  # two different runs


def test_qinn_seeds_are_grouped_into_one_lockstep_job():
    from qinn_lib.experiments.jobs import group_jobs

    cfgs = [QINNRunConfig(profile="quick", seed=s) for s in (1, 2, 3)]
    other = QINNRunConfig(profile="quick", seed=1, invertibility="fidelity")
    jobs = group_jobs(cfgs + [other])
    assert sorted(len(j.configs) for j in jobs) == [1, 3]
    assert {c.seed for j in jobs if len(j.configs) == 3 for c in j.configs} == {1, 2, 3}
    assert math.isfinite(sum(len(j.configs) for j in jobs))


def test_balance_splits_a_lone_stack_so_both_workers_train():
    from qinn_lib.experiments.jobs import balance, group_jobs

    jobs = group_jobs([QINNRunConfig(profile="quick", seed=s) for s in range(1, 7)])
    assert [len(j.configs) for j in jobs] == [6]
    split = balance(jobs, n_workers=2)
    assert sorted(len(j.configs) for j in split) == [3, 3]
    assert sorted(c.seed for j in split for c in j.configs) == list(range(1, 7))
    assert balance(jobs, n_workers=1) == jobs  # one worker: nothing to gain
