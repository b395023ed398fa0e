"""Benchmark one complete QINN training step (and the classical INN's): ``python -m qinn_lib.bench``.

A step is everything training does per batch (Table 1 QINN, batch 128): forward pass, full
Jacobian and log-determinant, the inverse through the learned ISP (for the MSE loss and for the
generated sample of the input and M_Z MMDs), every loss term, backward, the Adam step and the
projection of a, b. It is timed twice in the same run:

- **fast**: :class:`qinn_lib.qinn.QINN`, the batched torch simulation used for training;
- **reference**: the same model evaluated through PennyLane ``default.qubit`` QNodes with
  backprop (:mod:`qinn_lib.circuits`), the Jacobian by reverse-mode autograd through them.

It prints ms/step for both, the projected wall time of the paper profile, and the speed-up on the
last line. No number here is asserted anywhere: this is a measurement, not a test.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import statistics
import time

import torch

from .config import QINNRunConfig
from .errors import add_debug_option, run_cli
from .losses import QINNObjective
from .train import make_optimizer, tune_allocator


class ReferenceQINN(torch.nn.Module):
    """The QINN's training interface computed through PennyLane QNodes (the yardstick).

    Wraps a :class:`~qinn_lib.qinn.QINN` and shares its parameters, so the fast and the reference
    path compute the same function of the same weights."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from .circuits import reference_forward

        return reference_forward(self.model, x)

    def forward_and_logdet(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # Events are independent, so row k of every event's Jacobian is one vector-Jacobian
        # product with e_k broadcast over the batch: n backward passes, kept in the graph so the
        # log-determinant can itself be differentiated (eq. 7).
        x = x.detach().requires_grad_(True)
        z = self.forward(x)
        rows = []
        for k in range(z.shape[1]):
            (g,) = torch.autograd.grad(z[:, k].sum(), x, create_graph=True)
            rows.append(g)
        jac = torch.stack(rows, dim=1)  # (B, n_out, n_in)
        return z, torch.linalg.slogdet(jac)[1]

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        from .circuits import reference_inverse

        return reference_inverse(self.model, z)

    def fidelity(self, x: torch.Tensor) -> torch.Tensor:
        from .circuits import reference_fidelity

        return reference_fidelity(self.model, x)

    def constrain_(self) -> None:
        self.model.constrain_()


def _step_fn(model, objective, x, generator, optimizer):
    """What qinn_lib.train.train does per batch (minus bookkeeping)."""
    reuse = getattr(model, "reuse_circuits", None)

    def step():
        optimizer.zero_grad(set_to_none=True)
        with reuse() if reuse is not None else contextlib.nullcontext():
            terms = objective(model, x, generator)
            terms["loss"].backward()
        optimizer.step()
        model.constrain_()
        return terms["loss"].item()
    return step


def _time(step, repeats: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        step()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return times


def run(batch_size: int = 128, repeats: int = 50, reference_repeats: int = 3, seed: int = 0,
        n_train: int = 37_500, epochs: int = 200, threads: int | None = 1, log=print) -> dict:
    """Time both paths; return the measurements (also printed through ``log``)."""
    from .qinn import QINN
    from .runs import prepare_data

    tune_allocator()  # as train() does
    if threads is not None:
        torch.set_num_threads(threads)
    cfg = QINNRunConfig(batch_size=batch_size, seed=seed)
    data = prepare_data(8_000, cfg.data_seed, "float32")
    x = data.train[:batch_size]
    if len(x) < batch_size:
        raise ValueError(f"batch_size {batch_size} exceeds the {len(data.train)} benchmark events")
    objective = QINNObjective(cfg, data.scaler)

    torch.manual_seed(seed)
    fast = QINN.from_config(cfg)
    opt = make_optimizer(fast, cfg)
    fast_times = _time(_step_fn(fast, objective, x, torch.Generator().manual_seed(seed), opt),
                       repeats, warmup=5)

    torch.manual_seed(seed)
    ref_model = QINN.from_config(cfg)
    ref = ReferenceQINN(ref_model)
    opt_ref = make_optimizer(ref_model, cfg)
    ref_times = _time(_step_fn(ref, objective, x, torch.Generator().manual_seed(seed), opt_ref),
                      reference_repeats, warmup=1)

    fast_ms = 1e3 * statistics.median(fast_times)
    ref_ms = 1e3 * statistics.median(ref_times)
    steps = (n_train // batch_size) * epochs
    out = {
        "batch_size": batch_size, "threads": torch.get_num_threads(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}",
        "fast_ms": fast_ms, "fast_ms_min": 1e3 * min(fast_times),
        "reference_ms": ref_ms, "speedup": ref_ms / fast_ms,
        "paper_steps": steps, "paper_fast_minutes": steps * fast_ms / 6e4,
        "paper_reference_hours": steps * ref_ms / 3.6e6,
    }
    log(f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"{out['threads']} thread(s)")
    log(f"one QINN training step, batch {batch_size}, Table 1 model "
        f"({fast.parameter_counts()['total']} parameters), float32:")
    log(f"  fast torch simulation   : {fast_ms:8.2f} ms/step (median of {repeats}, min {out['fast_ms_min']:.2f})")
    log(f"  PennyLane default.qubit : {ref_ms:8.2f} ms/step (median of {reference_repeats})")
    log(f"paper profile ({n_train // batch_size} steps/epoch x {epochs} epochs = {steps} steps): "
        f"fast {out['paper_fast_minutes']:.1f} min, PennyLane {out['paper_reference_hours']:.1f} h "
        "(training steps only)")
    log(f"speed-up: {out['speedup']:.1f}x")
    return out


def run_inn(sizes: tuple[str, ...] = ("2k", "6k", "16k"), members: int = 3, batch_size: int = 128,
            repeats: int = 10, seed: int = 0, n_train: int = 37_500, epochs: int = 200,
            threads: int | None = 1, log=print) -> dict:
    """Time one classical-INN training step (Table 1 INN, NLL + M_Z MMD, backward, Adam) for a
    single model and for ``members`` seeds in lockstep (:class:`qinn_lib.inn.INNStack`, how
    :func:`qinn_lib.runs.train_ensemble` trains INN seed ensembles); print ms/step, the time per
    seed and the projected paper-profile hours of a 3-seed ensemble both ways."""
    from .config import INNRunConfig
    from .inn import INN, INNStack
    from .losses import INNObjective
    from .runs import prepare_data

    tune_allocator()
    if threads is not None:
        torch.set_num_threads(threads)
    if members < 2:
        raise ValueError(f"members must be >= 2, got {members}")
    data = prepare_data(8_000, INNRunConfig().data_seed, "float32")
    xs = [data.train[i * batch_size:(i + 1) * batch_size] for i in range(members)]
    if len(xs[-1]) < batch_size:
        raise ValueError(f"{members} x batch_size {batch_size} exceeds the {len(data.train)} benchmark events")
    steps = (n_train // batch_size) * epochs
    out: dict = {"batch_size": batch_size, "members": members, "threads": torch.get_num_threads(), "sizes": {}}
    log(f"one classical-INN training step, batch {batch_size}, float32 model (float64 spline):")
    for size in sizes:
        cfgs = [INNRunConfig(size=size, seed=seed + i, batch_size=batch_size) for i in range(members)]
        objective = INNObjective(cfgs[0], data.scaler)
        single = INN.from_config(cfgs[0])
        opt = make_optimizer(single, cfgs[0])
        gen = torch.Generator().manual_seed(seed)
        t_single = _time(_step_fn(_Unconstrained(single), objective, xs[0], gen, opt), repeats, warmup=3)
        models = [INN.from_config(c) for c in cfgs]
        stack = INNStack(models)
        opts = [make_optimizer(m, c) for m, c in zip(models, cfgs)]
        gens = [torch.Generator().manual_seed(seed + i) for i in range(members)]

        def lockstep_step():
            for o in opts:
                o.zero_grad(set_to_none=True)
            sum(t["loss"] for t in objective.stacked(stack, xs, gens)).backward()
            for o in opts:
                o.step()

        t_stack = _time(lockstep_step, repeats, warmup=3)
        one = 1e3 * statistics.median(t_single)
        both = 1e3 * statistics.median(t_stack)
        row = {"params": single.parameter_counts()["total"], "single_ms": one, "lockstep_ms": both,
               "lockstep_ms_per_seed": both / members, "speedup_per_seed": one * members / both,
               "paper_hours_3_seeds_single": 3 * steps * one / 3.6e6,
               "paper_hours_3_seeds_lockstep": 3 * steps * both / members / 3.6e6}
        out["sizes"][size] = row
        log(f"  INN {size:>3} ({row['params']} parameters): alone {one:7.1f} ms/step; {members} seeds in lockstep "
            f"{both:7.1f} ms/step = {row['lockstep_ms_per_seed']:6.1f} ms per seed "
            f"({row['speedup_per_seed']:.2f}x); 3 seeds x {steps} steps: {row['paper_hours_3_seeds_single']:.1f} h "
            f"alone, {row['paper_hours_3_seeds_lockstep']:.1f} h in lockstep")
    return out


class _Unconstrained(torch.nn.Module):
    """An INN seen through _step_fn, which calls constrain_() (the INN has nothing to constrain)."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward_and_logdet(self, x):
        return self.model.forward_and_logdet(x)

    def inverse(self, z):
        return self.model.inverse(z)

    def constrain_(self) -> None:
        pass


def project_paper_profile(step_ms: dict[str, float], *, n_workers: int = 2,
                          compile_seconds: float = 0.0) -> dict[str, float]:
    """Projected wall time of training every run of the paper profile (notebooks 03-05, default
    parameters) from measured per-seed ms/step: ``step_ms`` maps ``"qinn"`` and ``"inn 2k"`` /
    ``"inn 6k"`` / ``"inn 16k"`` (per seed, in lockstep) to milliseconds. The runs are grouped
    into Dask jobs exactly as :mod:`qinn_lib.cluster` groups them and packed onto ``n_workers``
    single-threaded workers in the same queue order; each job adds ``compile_seconds``. Training
    steps only: validation, data and evaluation come on top (the report run measures those)."""
    from . import cluster, runs
    from .config import ComparisonConfig, FidelityVsMSEConfig, QINNRunConfig

    configs = []
    for nb_cfg in (QINNRunConfig(), FidelityVsMSEConfig(), ComparisonConfig()):
        for cfgs in runs.planned_runs(nb_cfg).values():
            configs.extend(cfgs)
    jobs = cluster.group_jobs(configs)
    costs = []
    for job in jobs:
        c = job.configs[0]
        key = c.kind + (f" {c.size}" if c.kind == "inn" else "")
        steps = c.epochs * (int(c.n_events * 0.375) // c.batch_size)
        costs.append(steps * step_ms[key] * len(job.configs) / 1e3 + compile_seconds)
    wall = cluster.pack_jobs(costs, n_workers)
    return {"jobs": len(jobs), "runs": sum(len(j.configs) for j in jobs), "core_hours": sum(costs) / 3600,
            "wall_minutes": wall / 60, "n_workers": n_workers}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m qinn_lib.bench", description=__doc__.split("\n")[0])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=50, help="timed fast steps")
    parser.add_argument("--reference-repeats", type=int, default=3, help="timed PennyLane steps")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads (default 1, as training uses; see qinn_lib.train)")
    parser.add_argument("--inn-repeats", type=int, default=10,
                        help="timed classical-INN steps per size and mode (0 skips the INN benchmark)")
    parser.add_argument("--record", action="store_true",
                        help="store the numbers in figures/results.json for the README's results table")
    add_debug_option(parser)
    args = parser.parse_args(argv)
    if args.inn_repeats < 0:
        parser.error("--inn-repeats must be >= 0")
    for name in ("batch_size", "repeats", "reference_repeats", "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")

    def body() -> int:
        from .results import check_recordable, record

        if args.record:  # before minutes of timing, not after
            check_recordable("paper")
        out = run(args.batch_size, args.repeats, args.reference_repeats, threads=args.threads)
        inn = (run_inn(batch_size=args.batch_size, repeats=args.inn_repeats, threads=args.threads)
               if args.inn_repeats else None)
        if args.record:
            path = record("bench", out, "paper")
            if inn is not None:
                record("bench_inn", inn, "paper")
            print(f"recorded in {path} (README: python -m qinn_lib.reports --update-readme)")
        return 0

    return run_cli(body, prog=parser.prog, debug=args.debug, interrupted="nothing was recorded")


if __name__ == "__main__":
    raise SystemExit(main())
