"""Tests of qinn_lib.training.optimiser.step_together: the Adam steps of a lockstep stack's members as
one fused update, bit for bit equal to each member's own ``optimizer.step()``
(qinn_lib.training.step_checks), every member keeping its own state and schedule."""

from __future__ import annotations

import itertools
import warnings

import torch

from qinn_lib.models.qinn.model import QINN
from qinn_lib.training.config import QINNRunConfig
from qinn_lib.training.optimiser import make_optimizer, make_scheduler, step_together
from qinn_lib.training.step_checks import steps_agree

CFG = QINNRunConfig()


def _members(k=3):
    return [QINN.from_config(CFG.replace(seed=s)) for s in range(k)]


def _with_schedule(model):
    opt = make_optimizer(model, CFG)
    return opt, make_scheduler(opt, CFG, total_steps=40)


def _random_gradients(models, step):
    """A gradient of a different size per member and step, plus an L2 pull (the update depends on
    the parameters too), through autograd as in training."""
    g = torch.Generator().manual_seed(step)
    for i, m in enumerate(models):
        loss = sum(((1 + i) * torch.randn(p.shape, generator=g, dtype=p.dtype) * p).sum() + p.pow(2).sum()
                   for p in m.parameters())
        loss.backward()


def test_step_together_equals_each_members_own_step_bit_for_bit():
    """Twenty steps of the one-cycle schedule (warm-up included) with the a, b projection after each:
    every parameter, every Adam moment and step count, every lr identical (torch.equal)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the lr scheduler's "step() before optimizer.step()" check included
        bad = steps_agree(_members(), _with_schedule, _random_gradients, step_together, steps=20,
                          after_step=lambda ms: [m.constrain_() for m in ms])
    assert bad == []


def test_members_with_other_settings_or_no_gradient_still_get_exactly_their_own_update():
    """Groups are joined only where every setting agrees: members on another lr (as after a skipped
    schedule step) or other betas get their own update, a member without gradients this step is
    left alone, and an optimiser that is not a plain Adam is stepped on its own."""
    def lr(factor):
        def make(model):
            opt = make_optimizer(model, CFG)
            opt.param_groups[0]["lr"] *= factor
            return opt, None
        return make

    def betas(model):
        opt = make_optimizer(model, CFG)
        opt.param_groups[0]["betas"] = (0.5, 0.9)
        return opt, None

    makers = [lr(1.0), lr(2.0), lr(1.0), betas, lambda m: (torch.optim.SGD(m.parameters(), lr=1e-2), None)]
    per_copy = itertools.cycle(makers)  # steps_agree makes copy A's members, then copy B's, in order

    def some_without_gradient(models, step):
        _random_gradients([m for i, m in enumerate(models) if i != 2 or step % 2 == 1], step)

    bad = steps_agree(_members(len(makers)), lambda m: next(per_copy)(m), some_without_gradient, step_together,
                      steps=6)
    assert bad == []


def test_the_check_sees_a_step_that_is_not_equal():
    """steps_agree must fail on an update that differs in one float of one member."""
    def off_by_one_ulp(opts):
        for o in opts:
            o.step()
        with torch.no_grad():
            p = opts[1].param_groups[0]["params"][2]
            p.view(-1)[0] = torch.nextafter(p.view(-1)[0], torch.tensor(1e9))

    bad = steps_agree(_members(), _with_schedule, _random_gradients, off_by_one_ulp, steps=3)
    assert bad == ["after step 1: member 1: parameter weights"]
