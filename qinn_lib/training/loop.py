"""One training loop for every model (the QINN and the classical INN): one-cycle Adam, per-epoch
atomic checkpoints, exact resume, divergence detection.

:func:`train` trains one model; :func:`train_lockstep` trains the members of a stack together
(the seeds of an INN ensemble, :class:`~qinn_lib.models.inn.model.INNStack`), each an ordinary run.
The optimiser, its schedule and the epoch seeds are :mod:`qinn_lib.training.optimiser`; the checks
of the data a run is given are :mod:`qinn_lib.training.inputs`.

Objective protocol
------------------
``objective(model, x, generator) -> dict[str, Tensor]`` returns a scalar ``"loss"`` (the weighted
total that is minimised) plus any number of scalar, unweighted terms; ``objective.evaluate(model,
x, generator)`` returns the same without grad. :class:`qinn_lib.training.objectives.QINNObjective` is one.

Reproducibility
---------------
Nothing here touches the global RNG. Every epoch ``e`` (0-based) uses fresh generators seeded
from ``(cfg.seed, e)`` (:func:`~qinn_lib.training.optimiser.epoch_seed`): one for the shuffling
permutation, one for the objective's latent samples. Validation uses a generator seeded from ``cfg.seed`` alone, re-created every epoch, so the
validation loss of different epochs is measured with the same latent samples. Together with the
model, Adam and scheduler states stored in the checkpoint, resuming after epoch ``k`` reproduces an
uninterrupted run bit for bit (same machine, same thread count).

Batches
-------
The last incomplete batch of every epoch is dropped (``drop_last``): the MMD terms are
V-statistics whose bias depends on the batch size (see :mod:`qinn_lib.training.losses.mmd`), so a small
remainder batch would give a differently biased, noisy step. Because the permutation changes every
epoch, every event is still used. Validation runs on chunks of exactly ``batch_size`` events for the
same reason; the remainder (fewer than ``batch_size`` events) is not evaluated, unless the whole
validation set is smaller than one batch, in which case it is one chunk.

Checkpoints
-----------
``run_dir/checkpoint.pt`` is rewritten after every epoch, so an interrupted run loses at most the
epoch it was in. Resuming is strict: the stored configuration must equal the requested one
(``epochs`` included, so a finished run cannot be silently extended; train a new run directory
for that), and the data fingerprint must match. How checkpoints are written and checked, their
sha256 and the run folder's lock are :mod:`qinn_lib.training.checkpoints`.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from qinn_lib.compiling import should_compile
from qinn_lib.errors import QinnError
from qinn_lib.threads import torch_threads
from qinn_lib.training.checkpoints import (
    CHECKPOINT_NAME,
    FORMAT_VERSION,
    CheckpointError,
    check_plain,
    claimed,
    load_checkpoint,
    load_model_state,
    save_checkpoint,
)
from qinn_lib.training.inputs import check_inputs
from qinn_lib.training.optimiser import (
    STREAM_OBJECTIVE,
    STREAM_SHUFFLE,
    STREAM_VALIDATION,
    make_optimizer,
    make_scheduler,
    step_together,
    stream_generator,
    tune_allocator,
)

__all__ = ['TrainingDiverged', 'TrainResult', 'train', 'train_lockstep']


#: Batches per epoch whose update may be skipped for a non-finite gradient (with a finite loss)
#: before the run counts as diverged: 1 % of the epoch's batches, at least 1.
MAX_SKIPPED_FRACTION = 0.01


class TrainingDiverged(QinnError, RuntimeError):
    """A batch loss became NaN/inf or exceeded ``cfg.max_loss``; the last good checkpoint is untouched."""


@dataclass
class TrainResult:
    """What :func:`train` returns."""

    history: list[dict[str, float]]
    checkpoint: Path
    seconds: float  #: wall time of this call
    epochs_run: int  #: epochs trained by this call (0 if the run was already complete)
    resumed_from: int | None = None  #: completed epochs found in the checkpoint, None for a fresh run
    extra_state: Any = field(default=None, repr=False)


def _format_terms(terms: dict[str, float]) -> str:
    return ", ".join(f"{k}={v:.6g}" for k, v in terms.items())


def _validate(models: list[torch.nn.Module], evaluate: Callable, val_x: torch.Tensor, batch_size: int,
              seeds: list[int], context: Callable, evaluate_all: Callable | None = None) -> list[dict[str, float]]:
    """Mean validation terms per model: ``evaluate(xs, generators)`` returns one dict per model;
    every model sees the same chunks, with its own generator seeded from its seed alone.
    ``evaluate_all(chunks, generators)``, if given, returns those means for all chunks at once."""
    gens = [stream_generator(seed, 0, STREAM_VALIDATION) for seed in seeds]
    n = val_x.shape[0]
    n_chunks = max(1, n // batch_size)
    size = batch_size if n >= batch_size else n
    chunks = [val_x[i * size:(i + 1) * size] for i in range(n_chunks)]
    sums: list[dict[str, float]] = [{} for _ in models]
    was_training = [m.training for m in models]
    for m in models:
        m.eval()
    try:
        with torch.no_grad(), context():
            if evaluate_all is not None:
                return evaluate_all(chunks, gens)
            for chunk in chunks:
                for acc, terms in zip(sums, evaluate([chunk] * len(models), gens)):
                    for k, v in terms.items():
                        acc[k] = acc.get(k, 0.0) + float(v)
    finally:
        for m, mode in zip(models, was_training):
            m.train(mode)
    return [{k: v / n_chunks for k, v in acc.items()} for acc in sums]


@dataclass
class _Member:
    """One model of a training call (a single run, or one seed of a lockstep stack)."""

    model: torch.nn.Module
    cfg: Any
    ckpt_path: Path
    extra_state: Any
    label: str  #: prefix of error messages: "" for a single run, "seed 1235: " in a stack
    optimizer: Any = None
    scheduler: Any = None
    history: list = field(default_factory=list)
    start_epoch: int = 0
    resumed_from: int | None = None


def _prepare_member(model: torch.nn.Module, cfg: Any, run_dir: str | os.PathLike, extra_state: Any,
                    data_fingerprint: str, steps_per_epoch: int, resume: bool, label: str) -> _Member:
    """Optimiser and schedule for ``model``, restored from ``run_dir``'s checkpoint when resuming."""
    check_plain(extra_state, "extra_state")
    m = _Member(model, cfg, Path(run_dir) / CHECKPOINT_NAME, extra_state, label)
    m.optimizer = make_optimizer(model, cfg)
    m.scheduler = make_scheduler(m.optimizer, cfg, int(cfg.epochs) * steps_per_epoch)
    ckpt_path = m.ckpt_path
    if resume and ckpt_path.exists():
        ckpt = load_checkpoint(ckpt_path, expected_cfg=cfg, expected_fingerprint=data_fingerprint)
        if ckpt["steps_per_epoch"] != steps_per_epoch:
            raise CheckpointError(
                f"checkpoint {ckpt_path} was written with {ckpt['steps_per_epoch']} steps per epoch, "
                f"this run has {steps_per_epoch} (different number of training events?)"
            )
        load_model_state(model, ckpt, ckpt_path)
        try:
            m.optimizer.load_state_dict(ckpt["optimizer"])
            m.scheduler.load_state_dict(ckpt["scheduler"])
        except (RuntimeError, KeyError, ValueError) as exc:
            raise CheckpointError(f"checkpoint {ckpt_path} has an unusable optimizer/scheduler state: {exc}") from exc
        m.history = list(ckpt["history"])
        m.start_epoch = m.resumed_from = int(ckpt["epoch"])
        if m.extra_state is None:
            m.extra_state = ckpt["extra_state"]
    return m


def train(model: torch.nn.Module, objective: Callable[..., dict[str, torch.Tensor]],
          train_x: torch.Tensor, val_x: torch.Tensor, cfg: Any, *,
          run_dir: str | os.PathLike, data_fingerprint: str, extra_state: Any = None,
          progress: bool = True, resume: bool = True, stop_after_epoch: int | None = None,
          threads: int | None = 1) -> TrainResult:
    """Train ``model`` on ``train_x`` (scaled features) and checkpoint to ``run_dir`` every epoch.

    ``threads`` sets torch's intra-op threads for the duration of the call (restored afterwards;
    ``None`` leaves them alone). The default of 1 is deliberate: the models here are tiny
    (32-amplitude states, batch 128), so every op is far too small to split across cores, and a
    second thread only adds synchronisation — on a loaded 2-core machine a 32x32 matmul went from
    9 µs on one thread to 24 ms on two (OpenMP spin-waiting against the other load).

    Parameters
    ----------
    model : module built by the caller (its initialisation seeded from ``cfg.seed``); if it has
        ``constrain_()``, that is called after every optimiser step (QINN: projects a, b onto their
        box, sec. 3).
    objective : see the module docstring.
    cfg : run config with ``seed, epochs, batch_size, max_lr, start_factor, final_factor, beta1,
        beta2, max_loss`` (and ``to_dict()``, ``kind``).
    run_dir : folder of ``checkpoint.pt``.
    data_fingerprint : identifies the training data; stored and checked on resume.
    extra_state : plain data stored with the checkpoint (e.g. ``scaler.to_dict()``).
    resume : continue from ``run_dir/checkpoint.pt`` if it exists (a complete run returns at once,
        with its weights loaded into ``model``); ``False`` starts afresh and overwrites it.
    stop_after_epoch : return normally after this many completed epochs (for interrupting a run
        on purpose; the checkpoint allows resuming it later).

    Returns
    -------
    TrainResult. ``history[i]`` holds ``epoch`` (1-based), ``lr`` (learning rate of the epoch's
    last step), ``seconds``, ``skipped_steps``, ``train_<term>`` (mean over the epoch's batches) and
    ``val_<term>``.

    Raises
    ------
    TrainingDiverged : a batch loss is NaN/inf or above ``cfg.max_loss``, gradients are not finite
        in more than ``MAX_SKIPPED_FRACTION`` of an epoch's batches (fewer are skipped: no update
        for that batch, counted as ``skipped_steps`` in the history), or the parameters stop being
        finite; the checkpoint on disk is the last good epoch.
    CheckpointError : the existing checkpoint cannot be resumed (see :func:`load_checkpoint`).
    """
    t_start = time.perf_counter()
    bs = int(cfg.batch_size)
    check_inputs(train_x, val_x, bs, stop_after_epoch)
    reuse = getattr(model, "reuse_circuits", None)

    # The QINN can build its circuit unitaries once per step and share them between the forward
    # pass, both inverses and backward (see QINN.reuse_circuits).
    def context():
        return reuse() if reuse is not None else contextlib.nullcontext()

    with claimed([Path(run_dir)], [cfg], data_fingerprint, resume):
        member = _prepare_member(model, cfg, run_dir, extra_state, data_fingerprint, train_x.shape[0] // bs,
                                 resume, label="")
        terms = _step_terms(model, objective, (int(cfg.epochs) - member.start_epoch) * (train_x.shape[0] // bs))
        (result,) = _fit(
            [member], lambda xs, gens: [terms(xs[0], gens[0])],
            lambda xs, gens: [objective.evaluate(model, xs[0], gens[0])], context,
            train_x, val_x, data_fingerprint=data_fingerprint, progress=progress,
            stop_after_epoch=stop_after_epoch, threads=threads, t_start=t_start)
    return result


def train_lockstep(stack: torch.nn.Module, objective: Any, train_x: torch.Tensor, val_x: torch.Tensor,
                   cfgs: list[Any], *, run_dirs: list[str | os.PathLike], data_fingerprint: str,
                   extra_state: Any = None, progress: bool = True, resume: bool = True,
                   stop_after_epoch: int | None = None, threads: int | None = 1) -> list[TrainResult]:
    """Train the members of ``stack`` (:class:`qinn_lib.models.inn.model.INNStack`,
    :class:`qinn_lib.models.qinn.stack.QINNStack`) together: one seed ensemble, configs equal
    except ``seed``.

    Every member is its own run, exactly as :func:`train` would do it: its own shuffling and
    latent streams from its seed, its own Adam and schedule, its own validation, history and
    checkpoint in ``run_dirs[i]`` (the normal format, so :func:`train` and
    :func:`qinn_lib.experiments.one_model.train_inn` reload or resume it). Only the model evaluation is shared:
    ``objective.stacked(stack, xs, generators)`` runs all members' forward and inverse passes
    through one stack call per block, and the backward pass is of the summed loss (the members
    share no parameters, so each gets exactly its own gradient). See INNStack for why this is
    faster and why it agrees with single-member training to float rounding, not bit for bit.
    Each history record also holds ``lockstep_members``; its ``seconds`` are the wall time of the
    whole stack's epoch.

    Resuming needs every member's checkpoint at the same epoch (or none at all).
    """
    t_start = time.perf_counter()
    members_in = list(getattr(stack, "members", []))
    cfgs = list(cfgs)
    run_dirs = [Path(d) for d in run_dirs]
    if not (len(members_in) == len(cfgs) == len(run_dirs)) or not cfgs:
        raise ValueError(f"train_lockstep: {len(members_in)} stack members, {len(cfgs)} configs and "
                         f"{len(run_dirs)} run_dirs; need the same (non-zero) number of each")
    ref = {k: v for k, v in cfgs[0].to_dict().items() if k not in ("seed", "profile")}
    for i, cfg in enumerate(cfgs[1:], start=1):
        if cfg.kind != cfgs[0].kind:
            raise ValueError(f"train_lockstep: cfgs[{i}] is a {cfg.kind!r} config, cfgs[0] a {cfgs[0].kind!r} config")
        other = {k: v for k, v in cfg.to_dict().items() if k not in ("seed", "profile")}
        diff = sorted(k for k in set(ref) | set(other) if ref.get(k) != other.get(k))
        if diff:
            raise ValueError(f"train_lockstep: the configs may differ only in seed; cfgs[{i}] differs in {diff}")
    seeds = [int(c.seed) for c in cfgs]
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"train_lockstep: seeds must be distinct, got {seeds}")
    if len(set(run_dirs)) != len(run_dirs):
        raise ValueError("train_lockstep: run_dirs must be distinct")
    bs = int(cfgs[0].batch_size)
    check_inputs(train_x, val_x, bs, stop_after_epoch)
    with claimed(run_dirs, cfgs, data_fingerprint, resume):
        members = [_prepare_member(m, cfg, d, extra_state, data_fingerprint, train_x.shape[0] // bs, resume,
                                   label=f"seed {cfg.seed}: ")
                   for m, cfg, d in zip(members_in, cfgs, run_dirs)]
        starts = {m.cfg.seed: m.start_epoch for m in members}
        if len(set(starts.values())) != 1:
            raise CheckpointError(
                f"train_lockstep: the members' checkpoints are at different epochs {starts} (seed: epoch); "
                "a stack resumes only from one common epoch. Finish them one by one with train(), or "
                "delete the checkpoints to restart them together"
            )
        steps_left = (int(cfgs[0].epochs) - members[0].start_epoch) * (train_x.shape[0] // bs)
        def step(xs: list[torch.Tensor], gens: list[torch.Generator]) -> list[dict[str, torch.Tensor]]:
            return objective.stacked(stack, xs, gens)

        if should_compile(steps_left):
            if hasattr(stack, "compile_"):
                stack.compile_()  # compiled flows for the training steps (qinn_lib.compiling)
            elif hasattr(stack, "step_maps") and hasattr(objective, "compiled_stacked"):
                step = objective.compiled_stacked(stack)  # the QINNs' whole step as one graph
        chunked = getattr(objective, "evaluate_stacked_chunks", None)
        return _fit(members, step,
                    lambda xs, gens: objective.evaluate_stacked(stack, xs, gens), contextlib.nullcontext,
                    train_x, val_x, data_fingerprint=data_fingerprint, progress=progress,
                    stop_after_epoch=stop_after_epoch, threads=threads, t_start=t_start,
                    extra_checkpoint={"lockstep_seeds": seeds} if len(members) > 1 else None,
                    val_all=(lambda chunks, gens: chunked(stack, chunks, gens)) if chunked is not None else None)


def _step_terms(model: torch.nn.Module, objective: Any, steps_left: int) -> Callable:
    """``terms(x, generator)`` of one training step: ``objective(model, x, generator)``, compiled
    when the run is long enough to pay for the compile (:func:`qinn_lib.compiling.should_compile`).
    A model that compiles itself (the INN: ``compile_()`` swaps in compiled flows) keeps the eager
    objective; otherwise an objective with ``compiled_terms(model)`` (the QINN's lean one-graph
    loss) provides the compiled step. Either falls back to eager, with one warning, if compiling
    fails (qinn_lib.compiling.compiled)."""
    if should_compile(steps_left):
        if hasattr(model, "compile_"):
            model.compile_()
        elif hasattr(objective, "compiled_terms"):
            return objective.compiled_terms(model)
    return lambda x, gen: objective(model, x, gen)


def _fit(members: list[_Member], step_terms: Callable, val_terms: Callable, context: Callable,
         train_x: torch.Tensor, val_x: torch.Tensor, *, data_fingerprint: str, progress: bool,
         stop_after_epoch: int | None, threads: int | None, t_start: float,
         extra_checkpoint: dict[str, Any] | None = None, val_all: Callable | None = None) -> list[TrainResult]:
    """The epoch loop of :func:`train` and :func:`train_lockstep`.

    ``step_terms(xs, generators)`` / ``val_terms(xs, generators)`` return one dict of loss terms
    per member (with grad / without); ``context()`` wraps each step's forward and backward."""
    cfg0 = members[0].cfg
    bs = int(cfg0.batch_size)
    params = [list(m.model.parameters()) for m in members]
    device = params[0][0].device if params[0] else torch.device("cpu")
    steps_per_epoch = train_x.shape[0] // bs
    epochs = int(cfg0.epochs)
    max_skipped = max(1, int(MAX_SKIPPED_FRACTION * steps_per_epoch))
    start_epoch = members[0].start_epoch
    last_epoch = epochs if stop_after_epoch is None else min(epochs, stop_after_epoch)
    from tqdm.auto import tqdm  # imported here: tqdm.auto probes for Jupyter widgets

    desc = f"{cfg0.kind} training" + (f" ({len(members)} seeds in lockstep)" if len(members) > 1 else "")
    bar = tqdm(total=epochs, initial=start_epoch, desc=desc, unit="epoch", disable=not progress, leave=True)
    epochs_run = 0
    for m in members:
        m.model.train()
    tune_allocator()
    with torch_threads(threads):  # one thread by default (qinn_lib.threads); restored afterwards
        try:
            for epoch in range(start_epoch, last_epoch):
                t_epoch = time.perf_counter()
                perms = [torch.randperm(train_x.shape[0], generator=stream_generator(m.cfg.seed, epoch, STREAM_SHUFFLE))
                         for m in members]
                obj_gens = [stream_generator(m.cfg.seed, epoch, STREAM_OBJECTIVE) for m in members]
                sums: list[dict[str, float]] = [{} for _ in members]
                skipped = [0 for _ in members]
                lr = float("nan")
                for step in range(steps_per_epoch):
                    xs = [train_x[perm[step * bs:(step + 1) * bs]].to(device) for perm in perms]
                    for m in members:
                        m.optimizer.zero_grad(set_to_none=True)
                    with context():
                        terms_list = step_terms(xs, obj_gens)
                        values_list = []
                        for m, terms in zip(members, terms_list):
                            values = {k: float(v.detach()) for k, v in terms.items()}
                            if not math.isfinite(values["loss"]) or values["loss"] > m.cfg.max_loss:
                                bad = {k: v for k, v in values.items() if not math.isfinite(v)}
                                raise TrainingDiverged(
                                    f"{m.label}training diverged in epoch {epoch + 1}, batch {step + 1}/{steps_per_epoch}: "
                                    f"loss {values['loss']:.6g} (max_loss {m.cfg.max_loss:g}); terms: {_format_terms(values)}"
                                    + (f"; non-finite: {sorted(bad)}" if bad else "")
                                    + f". {_last_good(m.ckpt_path, epoch)}"
                                )
                            values_list.append(values)
                        # Members share no parameters: the gradient of the sum is each member's own.
                        loss = terms_list[0]["loss"] if len(members) == 1 else sum(t["loss"] for t in terms_list)
                        loss.backward()
                    skip = []
                    for k, (m, ps, values) in enumerate(zip(members, params, values_list)):
                        grads = [p.grad.reshape(-1) for p in ps if p.grad is not None]
                        if grads and not bool(torch.isfinite(torch.cat(grads)).all()):  # one check, not one per tensor
                            # A finite loss with a non-finite gradient is a numerical edge case of one
                            # batch (e.g. nflows' closed-form spline inverse at a degenerate root), not
                            # divergence: that batch's update is skipped (counted in the history), and
                            # only repeated occurrences stop the run.
                            skipped[k] += 1
                            if skipped[k] > max_skipped:
                                bad_grads = [n for n, p in m.model.named_parameters()
                                             if p.grad is not None and not bool(torch.isfinite(p.grad).all())]
                                raise TrainingDiverged(
                                    f"{m.label}training diverged in epoch {epoch + 1}, batch {step + 1}/{steps_per_epoch}: "
                                    f"non-finite gradients in {skipped[k]} batches of this epoch (at most {max_skipped} "
                                    f"are skipped), last of {bad_grads} (terms: {_format_terms(values)}). "
                                    f"{_last_good(m.ckpt_path, epoch)}"
                                )
                            skip.append(k)
                    lr = float(members[0].optimizer.param_groups[0]["lr"])
                    # One fused Adam update for all members (each its own state and schedule; bit for bit
                    # their own step()s); a lone model steps as it always did.
                    stepped = [m.optimizer for k, m in enumerate(members) if k not in skip]
                    if len(stepped) == 1:
                        stepped[0].step()
                    elif stepped:
                        step_together(stepped)
                    for m in members:
                        m.scheduler.step()
                        if hasattr(m.model, "constrain_"):
                            m.model.constrain_()
                    for acc, values in zip(sums, values_list):
                        for k, v in values.items():
                            acc[k] = acc.get(k, 0.0) + v
                for m in members:
                    bad_params = [n for n, p in m.model.named_parameters() if not bool(torch.isfinite(p).all())]
                    if bad_params:
                        raise TrainingDiverged(
                            f"{m.label}training diverged in epoch {epoch + 1}: parameters {bad_params} are no longer "
                            f"finite. {_last_good(m.ckpt_path, epoch)}"
                        )
                vals = _validate([m.model for m in members], val_terms, val_x.to(device), bs,
                                 [int(m.cfg.seed) for m in members], context, evaluate_all=val_all)
                seconds = time.perf_counter() - t_epoch
                for m, acc, val, skips in zip(members, sums, vals, skipped):
                    record: dict[str, float] = {"epoch": epoch + 1, "lr": lr}
                    record.update({f"train_{k}": v / steps_per_epoch for k, v in acc.items()})
                    record.update({f"val_{k}": v for k, v in val.items()})
                    record["seconds"] = seconds
                    record["skipped_steps"] = skips
                    if len(members) > 1:
                        record["lockstep_members"] = len(members)
                    m.history.append(record)
                    state = {
                        "format_version": FORMAT_VERSION,
                        "model": m.model.state_dict(),
                        "optimizer": m.optimizer.state_dict(),
                        "scheduler": m.scheduler.state_dict(),
                        "epoch": epoch + 1,
                        "steps_per_epoch": steps_per_epoch,
                        "history": m.history,
                        "cfg": m.cfg.to_dict(),
                        "cfg_kind": m.cfg.kind,
                        "data_fingerprint": data_fingerprint,
                        "extra_state": m.extra_state,
                        "torch_version": str(torch.__version__),
                    }
                    state.update(extra_checkpoint or {})
                    save_checkpoint(m.ckpt_path, state)
                epochs_run += 1
                bar.update(1)
                last = members[0].history[-1]
                bar.set_postfix(loss=f"{last['train_loss']:.4g}", val_loss=f"{last['val_loss']:.4g}")
        finally:
            bar.close()
    seconds = time.perf_counter() - t_start
    return [TrainResult(history=m.history, checkpoint=m.ckpt_path, seconds=seconds, epochs_run=epochs_run,
                        resumed_from=m.resumed_from, extra_state=m.extra_state) for m in members]


def _last_good(ckpt_path: Path, epoch: int) -> str:
    if epoch == 0 or not ckpt_path.exists():
        return "No checkpoint was written yet (diverged in the first epoch)"
    return f"The last good checkpoint (epoch {epoch}) is {ckpt_path}"
