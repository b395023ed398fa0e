"""Benchmark QINN seeds in lockstep: the cost per model of one training step for k = 1, 3, 6.

Part of ``python -m qinn_lib.bench``. A step is what :func:`qinn_lib.training.loop.train_lockstep`
does per batch for a :class:`~qinn_lib.models.qinn.stack.QINNStack` of k Table-1 QINNs (batch 128
each): the stacked objective (every circuit map one batched call for all members, the loss terms
per member), backward of the summed loss, the members' Adam steps (one fused update,
:func:`~qinn_lib.training.optimiser.step_together`) and each member's a, b projection. It is
timed eager and compiled (:meth:`qinn_lib.training.objectives.QINNObjective.compiled_stacked`),
the sizes interleaved round by round so that all see the same share of a loaded machine.

Two clocks are reported: wall time (min over steps, the usual figure on a free core) and the
process's CPU time per step (``time.process_time``; with one thread it is what the step costs
this core even when other processes share the machine). No number is asserted: a measurement.
"""

from __future__ import annotations

import math
import statistics
import time
from typing import Callable, Sequence

import torch

from qinn_lib.experiments.one_model import prepare_data
from qinn_lib.experiments.timing import interleaved_times
from qinn_lib.models.qinn.model import QINN
from qinn_lib.models.qinn.stack import QINNStack
from qinn_lib.threads import torch_threads
from qinn_lib.training.config import QINNRunConfig
from qinn_lib.training.objectives import QINNObjective
from qinn_lib.training.optimiser import make_optimizer, step_together, tune_allocator

__all__ = ["run_lockstep"]


def _stack_step(k: int, cfg: QINNRunConfig, data, compiled: bool) -> tuple[Callable[[], None], Callable[[], bool]]:
    members = [QINN.from_config(cfg.replace(seed=cfg.seed + i)) for i in range(k)]
    stack = QINNStack(members)
    optimizers = [make_optimizer(m, cfg) for m in members]
    objective = QINNObjective(cfg, data.scaler)
    xs = [data.train[i * cfg.batch_size:(i + 1) * cfg.batch_size] for i in range(k)]
    gens = [torch.Generator().manual_seed(cfg.seed + i) for i in range(k)]
    terms = objective.compiled_stacked(stack) if compiled else (lambda xb, g: objective.stacked(stack, xb, g))

    def step() -> None:
        for opt in optimizers:
            opt.zero_grad(set_to_none=True)
        out = terms(xs, gens)
        losses = [float(t["loss"].detach()) for t in out]  # the trainer reads every member's loss
        sum(t["loss"] for t in out).backward()
        if k > 1:  # as train_lockstep steps them
            step_together(optimizers)
        else:
            optimizers[0].step()
        for m in members:
            m.constrain_()
        if not all(math.isfinite(v) for v in losses):
            raise RuntimeError("benchmark step produced a NaN loss")

    return step, getattr(terms, "is_compiled", lambda: False)


def run_lockstep(ks: Sequence[int] = (1, 3, 6), *, repeats: int = 30, rounds: int = 3, batch_size: int = 128,
                 seed: int = 0, compile: bool = True, threads: int | None = 1, log=print) -> dict:
    """Per-model ms per training step of k QINNs in lockstep, eager and (``compile``) compiled, on
    ``threads`` torch threads (1, as training uses; see :func:`qinn_lib.training.loop.train`)."""
    with torch_threads(threads):
        return _run_lockstep(ks, repeats=repeats, rounds=rounds, batch_size=batch_size, seed=seed,
                             compile=compile, log=log)


def _run_lockstep(ks: Sequence[int], *, repeats: int, rounds: int, batch_size: int, seed: int, compile: bool,
                  log) -> dict:
    tune_allocator()
    if rounds < 1 or repeats < rounds:
        raise ValueError(f"need 1 <= rounds <= repeats, got rounds={rounds}, repeats={repeats}")
    cfg = QINNRunConfig(batch_size=batch_size, seed=seed)
    data = prepare_data(8_000, cfg.data_seed, "float32")
    if len(data.train) < max(ks) * batch_size:
        raise ValueError(f"{max(ks)} x batch {batch_size} exceeds the {len(data.train)} benchmark events")
    modes = ["eager"] + (["compiled"] if compile else [])
    steps: dict[tuple[str, int], Callable[[], None]] = {}
    compile_s: dict[int, float] = {}
    ok: dict[int, bool] = {}
    for k in ks:
        steps["eager", k], _ = _stack_step(k, cfg, data, compiled=False)
        if compile:
            steps["compiled", k], is_compiled = _stack_step(k, cfg, data, compiled=True)
            t0 = time.perf_counter()
            steps["compiled", k]()  # the first call compiles (on-disk inductor cache: seconds when warm)
            compile_s[k] = time.perf_counter() - t0
            ok[k] = is_compiled()
    wall, cpu = interleaved_times(steps, repeats, rounds)
    rows = {}
    for mode in modes:
        for k in ks:
            key = (mode, k)
            rows[f"{mode} k={k}"] = {
                "mode": mode, "k": k,
                "ms_min": 1e3 * min(wall[key]), "ms_median": 1e3 * statistics.median(wall[key]),
                "cpu_ms_median": 1e3 * statistics.median(cpu[key]),
                "per_model_ms_min": 1e3 * min(wall[key]) / k,
                "per_model_cpu_ms": 1e3 * statistics.median(cpu[key]) / k,
                **({"compile_seconds": compile_s[k], "compiled": ok[k]} if mode == "compiled" else {}),
            }
    log(f"QINN seeds in lockstep (QINNStack, Table 1 model, batch {batch_size} per seed, float32; "
        f"{len(ks)} sizes interleaved in {rounds} rounds):")
    log("  path      k   step ms (min, median)   per model: ms (min)   CPU ms   vs k=1")
    for mode in modes:
        base = rows[f"{mode} k={ks[0]}"]
        for k in ks:
            row = rows[f"{mode} k={k}"]
            row["per_model_vs_k1"] = row["per_model_ms_min"] / base["per_model_ms_min"]
            row["per_model_cpu_vs_k1"] = row["per_model_cpu_ms"] / base["per_model_cpu_ms"]
            note = (f"   compile {row['compile_seconds']:.0f} s" + ("" if row["compiled"] else " [FAILED: eager]")
                    if mode == "compiled" else "")
            log(f"  {mode:<9} {k:>2}   {row['ms_min']:7.2f} {row['ms_median']:8.2f}        "
                f"{row['per_model_ms_min']:7.2f}           {row['per_model_cpu_ms']:6.2f}   "
                f"{row['per_model_vs_k1']:.2f}x{note}")
    return {"ks": list(ks), "batch_size": batch_size, "rows": rows}
