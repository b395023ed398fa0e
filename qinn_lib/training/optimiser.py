"""The optimiser and its schedule (Table 1), and the seeds of every epoch of a training run.

- :func:`make_optimizer`: Adam with Table 1's ``beta1, beta2``;
- :func:`make_scheduler`: Table 1's one-cycle schedule [70], stepped once per batch, with its
  start and final LR factors mapped onto torch's ``OneCycleLR``;
- :func:`step_together`: the Adam steps of the members of a lockstep stack as one fused update,
  equal bit for bit to each member's own ``optimizer.step()``;
- :func:`epoch_seed`: one seed per ``(run seed, epoch, stream)``, a stream each for the shuffling,
  the objective's latent samples and validation. Nothing touches the global RNG, so a resumed
  run replays an uninterrupted one;
- :func:`tune_allocator`: keeps glibc from returning every freed ~1 MB tensor buffer to the
  kernel, which made a batch-128 MMD take 3.4 ms instead of 1.3 ms (measured). The numbers
  computed are unchanged.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.optim import optimizer as _opt
from torch.optim.adam import adam

__all__ = ['epoch_seed', 'make_optimizer', 'make_scheduler', 'step_together']


# Streams of epoch_seed: one independent generator per purpose.
STREAM_SHUFFLE = 0
STREAM_OBJECTIVE = 1
STREAM_VALIDATION = 2


# -- the allocator ---------------------------------------------------------------------------------
_ALLOCATOR_TUNED = False


def tune_allocator() -> bool:
    """Keep glibc from returning every freed ~1 MB tensor buffer to the kernel.

    A training step allocates and frees the same few (W, P, P) kernel buffers (1.3 MB each)
    thousands of times. Above glibc's default mmap threshold each allocation is a fresh mmap whose
    pages fault in one by one on first touch; on this VM that made a 0.1 ms elementwise op take
    ~0.9 ms and a batch-128 MMD 3.4 ms instead of 1.3 ms (measured). Raising the mmap and trim
    thresholds (mallopt M_MMAP_THRESHOLD, M_TRIM_THRESHOLD) lets the heap reuse the pages. The
    numbers computed are unchanged. Process-wide, idempotent; a no-op (returns False) off glibc."""
    global _ALLOCATOR_TUNED
    if _ALLOCATOR_TUNED:
        return True
    import ctypes
    import ctypes.util
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # from <malloc.h>
    ok = mallopt(m_mmap_threshold, 32 * 1024 * 1024) == 1 and mallopt(m_trim_threshold, 512 * 1024 * 1024) == 1
    _ALLOCATOR_TUNED = ok
    return ok


# -- seeds, optimiser, schedule ------------------------------------------------------------------
def epoch_seed(seed: int, epoch: int, stream: int) -> int:
    """A 63-bit seed for ``torch.Generator.manual_seed`` derived from ``(seed, epoch, stream)``.

    numpy's SeedSequence hashes the triple, so neighbouring seeds/epochs give unrelated streams
    (``seed + epoch`` would make run ``seed=1`` at epoch 0 replay run ``seed=0`` at epoch 1).
    """
    state = np.random.SeedSequence([int(seed), int(epoch), int(stream)]).generate_state(2, dtype=np.uint32)
    return ((int(state[0]) << 32) | int(state[1])) & ((1 << 63) - 1)


def stream_generator(seed: int, epoch: int, stream: int) -> torch.Generator:
    g = torch.Generator(device="cpu")
    g.manual_seed(epoch_seed(seed, epoch, stream))
    return g


def make_optimizer(model: torch.nn.Module, cfg: Any) -> torch.optim.Adam:
    """Adam with ``betas=(cfg.beta1, cfg.beta2)`` and ``lr=cfg.max_lr`` (the schedule overrides lr)."""
    # fused=True: one kernel for all parameters instead of a dozen small ops per tensor; on these
    # tiny models that alone saves ~0.5 ms of a ~10 ms step (measured).
    fused = all(p.dtype in (torch.float32, torch.float64) for p in model.parameters())
    return torch.optim.Adam(model.parameters(), lr=cfg.max_lr, betas=(cfg.beta1, cfg.beta2), fused=fused)


def make_scheduler(optimizer: torch.optim.Optimizer, cfg: Any, total_steps: int) -> torch.optim.lr_scheduler.OneCycleLR:
    """One-cycle schedule [70] (Table 1), stepped once per batch.

    torch's OneCycleLR starts at ``max_lr / div_factor`` and ends at
    ``max_lr / (div_factor * final_div_factor)``. With ``div_factor = 1 / start_factor`` the start is
    ``max_lr * start_factor``; the end equals ``max_lr * final_factor`` when
    ``final_div_factor = start_factor / final_factor`` (Table 1: 0.04 / 1e-4 = 400, i.e. 1e-3 ->
    4e-5 -> peak 1e-3 -> 1e-7). ``pct_start`` (30 % warm-up, ``cfg.warmup_fraction`` where the
    config has it) and cosine annealing are torch's defaults; the paper does not state them.
    ``cycle_momentum=False`` because torch would otherwise cycle Adam's beta1 between 0.85 and
    0.95, overriding Table 1's beta1.
    """
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1, got {total_steps}")
    return torch.optim.lr_scheduler.OneCycleLR(
        optimizer,
        max_lr=cfg.max_lr,
        total_steps=total_steps,
        div_factor=1.0 / cfg.start_factor,
        final_div_factor=cfg.start_factor / cfg.final_factor,
        pct_start=float(getattr(cfg, "warmup_fraction", 0.3)),
        cycle_momentum=False,
    )


# -- the members' Adam steps as one -----------------------------------------------------------------
#: The settings of an Adam parameter group that its update depends on: groups equal in all of them
#: can be updated by one call (the scheduler's own keys, initial_lr, max_lr, ..., do not enter).
_ADAM_KEYS = ("lr", "betas", "eps", "weight_decay", "amsgrad", "maximize", "foreach", "fused", "capturable",
              "differentiable", "decoupled_weight_decay")


def _joinable(opt: torch.optim.Optimizer) -> bool:
    """A plain torch Adam whose ``step()`` is nothing but its update: no step hooks, no gradient
    scaler attributes, a float lr (one fused call takes one lr for all its tensors)."""
    return (type(opt) is torch.optim.Adam and not opt._optimizer_step_pre_hooks and not opt._optimizer_step_post_hooks
            and not _opt._global_optimizer_pre_hooks and not _opt._global_optimizer_post_hooks
            and getattr(opt, "grad_scale", None) is None and getattr(opt, "found_inf", None) is None
            and all(not g["differentiable"] and not torch.is_tensor(g["lr"]) for g in opt.param_groups))


def step_together(optimizers: list[torch.optim.Optimizer]) -> None:
    """``opt.step()`` of every optimizer in ``optimizers`` (the members of a lockstep stack), as one
    fused Adam update over all their parameters.

    Why: each ``step()`` costs its Python bookkeeping (hooks, profiler scope, gathering the group's
    tensors, grouping them by device and dtype) and a fused kernel launch for a few small tensors;
    k members paid that k times per batch. Every member keeps its own optimiser state (its
    ``exp_avg``, ``exp_avg_sq`` and step count, in its own ``state_dict``), its own param groups and
    therefore its own schedule: groups are joined only where every setting the update reads,
    the lr included, is equal (the members of one ensemble follow the same schedule), and the
    update is elementwise per tensor, so the result equals each member's own ``step()`` bit for bit
    (:func:`qinn_lib.training.step_checks.steps_agree` checks it). Anything else, an optimiser that
    is not a plain :class:`torch.optim.Adam` or one with step hooks, is stepped on its own."""
    joined: dict[tuple, tuple[list, ...]] = {}
    for opt in optimizers:
        if not _joinable(opt):
            opt.step()
            continue
        for group in opt.param_groups:
            key = tuple(group[k] for k in _ADAM_KEYS)
            lists = joined.setdefault(key, ([], [], [], [], [], [], [False]))
            # Adam's own gathering and lazy state initialisation, so the state is what step() makes
            lists[6][0] |= opt._init_group(group, *lists[:6])
        opt._opt_called = True  # what the lr scheduler's wrapper of step() records (its order warning)
    with torch.no_grad():
        for key, (params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, steps, has_complex) in joined.items():
            g = dict(zip(_ADAM_KEYS, key))
            adam(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, steps, foreach=g["foreach"],
                 capturable=g["capturable"], differentiable=False, fused=g["fused"], has_complex=has_complex[0],
                 decoupled_weight_decay=g["decoupled_weight_decay"], amsgrad=g["amsgrad"], beta1=g["betas"][0],
                 beta2=g["betas"][1], lr=g["lr"], weight_decay=g["weight_decay"], eps=g["eps"],
                 maximize=g["maximize"])
