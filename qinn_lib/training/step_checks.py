"""Bit-for-bit checks of a fast optimiser path against the plain one.

:func:`qinn_lib.training.optimiser.step_together` replaces the members' own ``optimizer.step()``
calls by one fused update; it is right only if it leaves every parameter and every optimiser state
tensor exactly as those calls would. :func:`mismatches` compares two copies of a set of models and
their optimisers with ``torch.equal`` (no tolerance: the claim is equality, not closeness), and
:func:`steps_agree` drives two copies through the same steps, one each way.
"""

from __future__ import annotations

import copy
from typing import Any, Callable, Sequence

import torch

__all__ = ["mismatches", "steps_agree"]


def mismatches(models_a: Sequence[torch.nn.Module], opts_a: Sequence[torch.optim.Optimizer],
               models_b: Sequence[torch.nn.Module], opts_b: Sequence[torch.optim.Optimizer]) -> list[str]:
    """The names of every parameter and optimiser state entry that differs between two copies
    (``torch.equal``: same shape and identical values), and of the lrs that differ; empty if none."""
    out = []
    for i, (ma, mb, oa, ob) in enumerate(zip(models_a, models_b, opts_a, opts_b, strict=True)):
        pa, pb = dict(ma.named_parameters()), dict(mb.named_parameters())
        out += [f"member {i}: parameter {n}" for n in pa if not torch.equal(pa[n], pb[n])]
        sa, sb = oa.state_dict(), ob.state_dict()
        if sa["state"].keys() != sb["state"].keys():
            out.append(f"member {i}: optimiser state of parameters {sorted(sa['state'])} vs {sorted(sb['state'])}")
            continue
        for idx, entry in sa["state"].items():
            out += [f"member {i}: optimiser state {idx}.{k}" for k, v in entry.items()
                    if not torch.equal(torch.as_tensor(v), torch.as_tensor(sb["state"][idx][k]))]
        out += [f"member {i}: lr of group {g}" for g, (ga, gb) in enumerate(zip(sa["param_groups"], sb["param_groups"]))
                if ga["lr"] != gb["lr"]]
    return out


def steps_agree(models: Sequence[torch.nn.Module], make: Callable[[torch.nn.Module], tuple[Any, Any]],
                backward: Callable[[Sequence[torch.nn.Module], int], None],
                together: Callable[[list[torch.optim.Optimizer]], None], steps: int,
                after_step: Callable[[Sequence[torch.nn.Module]], None] | None = None) -> list[str]:
    """Train two deep copies of ``models`` for ``steps`` steps, each member with its own
    ``make(model) -> (optimizer, scheduler or None)``: ``backward(models, step)`` puts the gradients
    of a step, then one copy's optimisers step one by one (``opt.step()``), the other's through
    ``together(optimizers)``; then on both every scheduler steps and ``after_step(models)`` runs (a
    projection). Returns :func:`mismatches` after the first step that differs, or after the last
    (empty: equal bit for bit)."""
    copies = []
    for _ in range(2):
        ms = [copy.deepcopy(m) for m in models]
        made = [make(m) for m in ms]
        copies.append((ms, [o for o, _ in made], [s for _, s in made if s is not None]))
    (ma, oa, _), (mb, ob, _) = copies
    for step in range(steps):
        for ms, opts, _ in copies:
            for opt in opts:
                opt.zero_grad(set_to_none=True)
            backward(ms, step)
        for opt in oa:
            opt.step()
        together(list(ob))
        for ms, _, scheds in copies:
            for sched in scheds:
                sched.step()
            if after_step is not None:
                after_step(ms)
        bad = mismatches(ma, oa, mb, ob)
        if bad:
            return [f"after step {step + 1}: {b}" for b in bad]
    return []
