"""Benchmark one complete QINN training step (and the classical INN's): ``python -m qinn_lib.bench``.

A step is everything training does per batch (Table 1 QINN, batch 128): forward pass, full
Jacobian and log-determinant, the inverse through the learned ISP (for the MSE loss and for the
generated sample of the input and M_Z MMDs), every loss term, backward, the Adam step and the
projection of a, b. It is timed in the same run for:

- **fast**: :class:`qinn_lib.models.qinn.model.QINN`, the batched torch simulation used for training, eager and
  compiled into one graph;
- **reference**: the same model evaluated through PennyLane ``default.qubit`` QNodes with
  backprop (:mod:`qinn_lib.models.qinn.circuits`), the Jacobian by reverse-mode autograd through them.

The fast path is timed eager and compiled (:meth:`qinn_lib.training.objectives.QINNObjective.compiled_terms`)
in the same run. It prints ms/step for each, the compile time, the projected wall time of the paper
profile, and the ratios to the PennyLane reference. No number here is asserted anywhere: this is a
measurement, not a test.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import statistics
import time

import torch

from qinn_lib.errors import add_debug_option, run_cli
from qinn_lib.evaluation.results import ResultsError, check_recordable, load_results, record, results_path
from qinn_lib.experiments import jobs as jobs_lib
from qinn_lib.experiments.bench_floor import run_floor
from qinn_lib.experiments.bench_lockstep import run_lockstep
from qinn_lib.experiments.bench_peers import run_peers
from qinn_lib.experiments.bench_reuploading import run_reuploading
from qinn_lib.experiments.bench_scaling import run_scaling
from qinn_lib.experiments.one_model import prepare_data
from qinn_lib.experiments.peer_jax import hold_xla_threads
from qinn_lib.experiments.projection import project_paper_profile
from qinn_lib.models.inn.model import INN, INNStack
from qinn_lib.models.qinn.model import QINN
from qinn_lib.settings import check_environment
from qinn_lib.training.config import (
    INNRunConfig,
    QINNRunConfig,
)
from qinn_lib.training.objectives import INNObjective, QINNObjective
from qinn_lib.training.optimiser import make_optimizer, tune_allocator


class ReferenceQINN(torch.nn.Module):
    """The QINN's training interface computed through PennyLane QNodes (the yardstick).

    Wraps a :class:`~qinn_lib.models.qinn.model.QINN` and shares its parameters, so the fast and the reference
    path compute the same function of the same weights."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from qinn_lib.models.qinn.circuits import reference_forward  # deferred: PennyLane (~1.3 s to import)

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
        from qinn_lib.models.qinn.circuits import reference_inverse  # deferred: PennyLane (~1.3 s to import)

        return reference_inverse(self.model, z)

    def fidelity(self, x: torch.Tensor) -> torch.Tensor:
        from qinn_lib.models.qinn.circuits import reference_fidelity  # deferred: PennyLane (~1.3 s to import)

        return reference_fidelity(self.model, x)

    def constrain_(self) -> None:
        self.model.constrain_()


def _step_fn(model, objective, x, generator, optimizer):
    """What qinn_lib.training.loop.train does per batch (minus bookkeeping)."""
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


def _compiled_step_fn(model, terms_fn, x, generator, optimizer):
    """The same step with the terms from ``QINNObjective.compiled_terms`` (one compiled graph)."""
    return _step_fn(model, lambda _model, xb, gen: terms_fn(xb, gen), x, generator, optimizer)


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
        n_train: int = 37_500, epochs: int = 200, threads: int | None = 1, rounds: int = 5, log=print) -> dict:
    """Time one QINN training step three ways in the same process: eager (the objective as the
    trainer calls it today), compiled (:meth:`QINNObjective.compiled_terms`, one graph) and the
    PennyLane reference; return the measurements (also printed through ``log``).

    Eager and compiled steps alternate in ``rounds`` blocks of ``repeats / rounds`` steps, so both
    see the same share of a loaded machine; min and median are reported (min is the figure to
    compare under load). The compile time is the wall time of the first compiled step (a warm
    on-disk inductor cache, see :mod:`qinn_lib.compiling`, turns minutes into seconds)."""
    tune_allocator()  # as train() does
    if threads is not None:
        torch.set_num_threads(threads)
    if rounds < 1 or repeats < rounds:
        raise ValueError(f"need 1 <= rounds <= repeats, got rounds={rounds}, repeats={repeats}")
    cfg = QINNRunConfig(batch_size=batch_size, seed=seed)
    data = prepare_data(8_000, cfg.data_seed, "float32")
    x = data.train[:batch_size]
    if len(x) < batch_size:
        raise ValueError(f"batch_size {batch_size} exceeds the {len(data.train)} benchmark events")
    objective = QINNObjective(cfg, data.scaler)

    def model_and_optimizer():
        torch.manual_seed(seed)
        model = QINN.from_config(cfg)
        return model, make_optimizer(model, cfg)

    eager_model, eager_opt = model_and_optimizer()
    eager_step = _step_fn(eager_model, objective, x, torch.Generator().manual_seed(seed), eager_opt)
    comp_model, comp_opt = model_and_optimizer()
    terms_fn = objective.compiled_terms(comp_model, compile=True)
    comp_step = _compiled_step_fn(comp_model, terms_fn, x, torch.Generator().manual_seed(seed), comp_opt)
    t0 = time.perf_counter()
    comp_step()
    compile_s = time.perf_counter() - t0
    compiled_ok = terms_fn.is_compiled()

    eager_times: list[float] = []
    comp_times: list[float] = []
    per_round = repeats // rounds
    for r in range(rounds):
        eager_times += _time(eager_step, per_round, warmup=5 if r == 0 else 1)
        comp_times += _time(comp_step, per_round, warmup=5 if r == 0 else 1)

    torch.manual_seed(seed)
    ref_model = QINN.from_config(cfg)
    ref = ReferenceQINN(ref_model)
    opt_ref = make_optimizer(ref_model, cfg)
    ref_times = _time(_step_fn(ref, objective, x, torch.Generator().manual_seed(seed), opt_ref),
                      reference_repeats, warmup=1)

    eager_ms = 1e3 * statistics.median(eager_times)
    comp_ms = 1e3 * statistics.median(comp_times)
    ref_ms = 1e3 * statistics.median(ref_times)
    steps = (n_train // batch_size) * epochs
    out = {
        "batch_size": batch_size, "threads": torch.get_num_threads(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}",
        "load_average": os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan"),
        # eager: the objective as the trainer calls it (keys kept for the README's results table)
        "fast_ms": eager_ms, "fast_ms_min": 1e3 * min(eager_times),
        "compiled_ms": comp_ms, "compiled_ms_min": 1e3 * min(comp_times), "compiled": compiled_ok,
        "compile_seconds": compile_s,
        "compile_speedup": eager_ms / comp_ms, "compile_speedup_min": min(eager_times) / min(comp_times),
        "reference_ms": ref_ms, "speedup": ref_ms / eager_ms, "compiled_reference_ratio": ref_ms / comp_ms,
        "paper_steps": steps, "paper_fast_minutes": steps * eager_ms / 6e4,
        "paper_compiled_minutes": steps * comp_ms / 6e4 + compile_s / 60.0,
        "paper_reference_hours": steps * ref_ms / 3.6e6,
    }
    log(f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"{out['threads']} thread(s), load average {out['load_average']:.1f} on {os.cpu_count()} cores")
    log(f"one QINN training step, batch {batch_size}, Table 1 model "
        f"({eager_model.parameter_counts()['total']} parameters), float32:")
    log(f"  eager torch simulation    : {eager_ms:8.2f} ms/step (median of {len(eager_times)}, "
        f"min {out['fast_ms_min']:.2f})")
    state = "" if compiled_ok else "  [compilation FAILED: eager fallback timed]"
    log(f"  compiled (one graph)      : {comp_ms:8.2f} ms/step (median of {len(comp_times)}, "
        f"min {out['compiled_ms_min']:.2f}); compile {compile_s:.1f} s (first step){state}")
    log(f"  PennyLane default.qubit   : {ref_ms:8.2f} ms/step (median of {reference_repeats})")
    log(f"compiled vs eager: {out['compile_speedup']:.2f}x (median), {out['compile_speedup_min']:.2f}x (min); "
        f"eager and compiled steps interleaved in {rounds} rounds")
    log(f"paper profile ({n_train // batch_size} steps/epoch x {epochs} epochs = {steps} steps): "
        f"eager {out['paper_fast_minutes']:.1f} min, compiled {out['paper_compiled_minutes']:.1f} min "
        f"(with the compile), PennyLane {out['paper_reference_hours']:.1f} h (training steps only)")
    out["compiled_reference_ratio_min"] = min(ref_times) / min(comp_times)
    log(f"PennyLane / compiled: {out['compiled_reference_ratio']:.0f}x (medians), "
        f"{out['compiled_reference_ratio_min']:.0f}x (mins); PennyLane / eager: {out['speedup']:.0f}x (medians)")
    return out


#: The INN training-step paths timed by :func:`run_inn`: (key, label).
_INN_PATHS = (("nflows", "eager, nflows spline"), ("maskfree", "eager, mask-free spline"),
              ("compiled", "compiled, mask-free spline"))


def run_inn(sizes: tuple[str, ...] = ("2k", "6k", "16k"), members: int = 3, batch_size: int = 128,
            repeats: int = 10, seed: int = 0, n_train: int = 37_500, epochs: int = 200,
            threads: int | None = 1, log=print, compile: bool = True, cold_cache: bool = True) -> dict:
    """Time one classical-INN training step (Table 1 INN, NLL + M_Z MMD, backward, Adam) for a
    single model and for ``members`` seeds in lockstep (:class:`qinn_lib.models.inn.model.INNStack`, how
    :func:`qinn_lib.experiments.ensembles.train_ensemble` trains INN seed ensembles), along three paths in the same
    run: eager with nflows' spline (the reference), eager with the mask-free spline
    (:mod:`qinn_lib.models.inn.spline`), and compiled (``compile_()``, mask-free spline; skipped with
    ``compile=False``). Prints ms/step (min of ``repeats``, the least-disturbed figure on a shared
    machine, median in brackets), the time per seed, the compile time and the projected
    paper-profile hours of a 3-seed ensemble.

    Compile time: with ``cold_cache`` the compiled paths compile into a fresh, empty inductor
    cache ("cold", as on a new machine), then a separate Python process compiles the same graphs
    again from that on-disk cache ("warm", as every later run on the machine); without it the
    project's cache is used as it is and only the first compiled step is reported.

    The returned rows keep the keys of the training path (compiled if measured, else eager
    mask-free) at their top level (``single_ms``, ``lockstep_ms_per_seed``, ...), every path under
    ``paths``.
    """
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
    paths = [p for p in _INN_PATHS if compile or p[0] != "compiled"]
    out: dict = {"batch_size": batch_size, "members": members, "threads": torch.get_num_threads(), "repeats": repeats,
                 "timing": "min", "sizes": {}}
    log(f"one classical-INN training step, batch {batch_size}, float32 model (float64 spline), "
        f"{out['threads']} thread(s); ms/step = min of {repeats} timed steps (median in brackets): "
        "the machine may be shared, the min is the least-disturbed figure")
    with (_fresh_inductor_cache() if compile and cold_cache else contextlib.nullcontext()) as cache_dir:
        for size in sizes:
            cfgs = [INNRunConfig(size=size, seed=seed + i, batch_size=batch_size) for i in range(members)]
            objective = INNObjective(cfgs[0], data.scaler)
            row: dict = {"paths": {}}
            for key, label in paths:
                spline = "nflows" if key == "nflows" else "maskfree"
                res: dict = {"label": label}
                single = INN(size, seed=cfgs[0].seed, spline=spline)
                row["params"] = single.parameter_counts()["total"]
                stack = INNStack([INN(size, seed=c.seed, spline=spline) for c in cfgs])
                opts = [make_optimizer(m, c) for m, c in zip(stack.members, cfgs)]
                gens = [torch.Generator().manual_seed(c.seed) for c in cfgs]

                def lockstep_step():
                    for o in opts:
                        o.zero_grad(set_to_none=True)
                    sum(t["loss"] for t in objective.stacked(stack, xs, gens)).backward()
                    for o in opts:
                        o.step()

                single_step = _step_fn(_Unconstrained(single), objective, xs[0], torch.Generator().manual_seed(seed),
                                       make_optimizer(single, cfgs[0]))
                for mode, target, step in (("single", single, single_step), ("lockstep", stack, lockstep_step)):
                    first = None
                    if key == "compiled":
                        target.compile_()
                        t0 = time.perf_counter()
                        step()  # compiles the forward and inverse graphs (and their backward)
                        first = time.perf_counter() - t0
                    times = _time(step, repeats, warmup=2)
                    res[f"{mode}_ms"] = 1e3 * min(times)
                    res[f"{mode}_ms_median"] = 1e3 * statistics.median(times)
                    if first is not None:
                        if not target.is_compiled:
                            log(f"  warning: {size} {mode} fell back to eager (see the warning above)")
                        res[f"{mode}_compile_s"] = first - min(times)
                        res["compile_cache"] = "cold" if cache_dir else "project cache as found"
                        if cache_dir:
                            res[f"{mode}_compile_s_warm"] = _compile_in_new_process(
                                size, members if mode == "lockstep" else 1, batch_size, threads, cache_dir, log)
                res["lockstep_ms_per_seed"] = res["lockstep_ms"] / members
                res["paper_hours_3_seeds_single"] = 3 * steps * res["single_ms"] / 3.6e6
                res["paper_hours_3_seeds_lockstep"] = 3 * steps * res["lockstep_ms_per_seed"] / 3.6e6
                row["paths"][key] = res
            main = row["paths"]["compiled" if compile else "maskfree"]
            row.update({k: main[k] for k in ("single_ms", "lockstep_ms", "lockstep_ms_per_seed",
                                             "paper_hours_3_seeds_single", "paper_hours_3_seeds_lockstep")})
            row["path"] = main["label"]
            row["speedup_per_seed"] = row["single_ms"] / row["lockstep_ms_per_seed"]
            ref = row["paths"]["nflows"]
            row["speedup_vs_nflows_lockstep"] = ref["lockstep_ms_per_seed"] / row["lockstep_ms_per_seed"]
            out["sizes"][size] = row
            _log_inn_row(log, size, row, members, steps)
    return out


def _log_inn_row(log, size: str, row: dict, members: int, steps: int) -> None:
    log(f"  INN {size} ({row['params']} parameters)         alone, ms/step    {members} in lockstep, ms/step per seed"
        f"    3 seeds x {steps} steps")
    for res in row["paths"].values():
        log(f"    {res['label']:<28} {res['single_ms']:7.1f} ({res['single_ms_median']:6.1f})   "
            f"{res['lockstep_ms_per_seed']:7.1f} ({res['lockstep_ms_median'] / members:6.1f})"
            f"                  {res['paper_hours_3_seeds_single']:.2f} h alone, "
            f"{res['paper_hours_3_seeds_lockstep']:.2f} h in lockstep")
        if "single_compile_s" in res:
            warm = lambda m: (f" / {res[m + '_compile_s_warm']:.1f} s warm" if res.get(m + "_compile_s_warm") else "")  # noqa: E731
            log(f"    compile ({res['compile_cache']}): alone {res['single_compile_s']:.0f} s{warm('single')}, "
                f"lockstep {res['lockstep_compile_s']:.0f} s{warm('lockstep')}")
    log(f"    {row['path']} vs eager nflows, in lockstep: {row['speedup_vs_nflows_lockstep']:.2f}x per seed")


@contextlib.contextmanager
def _fresh_inductor_cache():
    """An empty inductor cache directory for the duration (removed afterwards): cold compiles."""
    import shutil
    import tempfile

    old = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    path = tempfile.mkdtemp(prefix="qinn-inductor-cold-")
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = path
    try:
        torch._dynamo.reset()
        from torch._inductor.utils import clear_caches

        clear_caches()  # in-memory caches of compiled code: nothing may be found but on that disk
        yield path
    finally:
        torch._dynamo.reset()
        if old is None:
            os.environ.pop("TORCHINDUCTOR_CACHE_DIR", None)
        else:
            os.environ["TORCHINDUCTOR_CACHE_DIR"] = old
        shutil.rmtree(path, ignore_errors=True)


def _compile_in_new_process(size: str, members: int, batch_size: int, threads: int | None, cache_dir: str,
                            log) -> float | None:
    """Seconds a fresh Python process spends on its first compiled INN step (compile from the
    on-disk cache ``cache_dir``, minus one compiled step), or None if that process failed."""
    import json
    import subprocess
    import sys

    code = ("import json; from qinn_lib.experiments.bench import _inn_compile_probe as p; "
            f"print(json.dumps(p({size!r}, {members}, {batch_size}, {threads!r})))")
    env = dict(os.environ, TORCHINDUCTOR_CACHE_DIR=cache_dir, QINN_COMPILE="always")
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        log(f"    (warm-compile process failed: {proc.stderr.strip().splitlines()[-1:]})")
        return None
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    return res["first_s"] - res["step_s"]


def _inn_compile_probe(size: str, members: int, batch_size: int, threads: int | None) -> dict:
    """The compiled graphs of one INN training step (``members`` == 1: an INN, else an INNStack):
    forward with log-det, inverse, backward, on inputs of the step's shapes; times the first
    (compiling) and the second call."""
    import math


    if threads is not None:
        torch.set_num_threads(threads)
    models = [INN(size, seed=i) for i in range(members)]
    target = (models[0] if members == 1 else INNStack(models)).compile_()
    gen = torch.Generator().manual_seed(0)

    def call() -> None:
        xs = [torch.rand(batch_size, 5, generator=gen) * math.pi for _ in models]
        zs = [torch.randn(batch_size, 5, generator=gen) for _ in models]
        if members == 1:
            z, ld = target.forward_and_logdet(xs[0])
            loss = (z.pow(2).sum(1) - ld).mean() + target.inverse(zs[0]).pow(2).mean()
        else:
            loss = sum((z.pow(2).sum(1) - ld).mean() for z, ld in target.forward_and_logdet(xs))
            loss = loss + sum(x.pow(2).mean() for x in target.inverse(zs))
        loss.backward()

    t0 = time.perf_counter()
    call()
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    call()
    return {"first_s": first, "step_s": time.perf_counter() - t0, "compiled": bool(target.is_compiled)}


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


def _load_average() -> str:
    try:
        return f"{os.getloadavg()[0]:.1f}"
    except OSError:  # not on every platform
        return "unknown"


def _options_text(args: argparse.Namespace) -> str:
    return (f"batch {args.batch_size}, {args.repeats} fast / {args.reference_repeats} PennyLane / "
            f"{args.inn_repeats} INN repeats, {args.threads} thread(s)")


def expected_duration() -> str:
    """The benchmark's first line: how long the last recorded run took (``wall_seconds`` in the
    ``bench`` section of figures/results.json, written by ``--record``), with its machine, load
    and options; or that no run was recorded yet."""
    try:
        bench = load_results("paper").get("bench", {})
    except ResultsError as err:  # an unreadable results file must not stop a benchmark
        return f"expected duration: unknown ({err})"
    if "wall_seconds" not in bench:
        return "expected duration: unknown, no run recorded yet (--record stores this run's duration for the next)"
    return (f"expected duration: about {bench['wall_seconds'] / 60:.0f} min, as the last recorded run "
            f"({bench.get('machine', '?')}, load average {bench.get('wall_load_average', '?')}, "
            f"{bench.get('wall_options', 'default options')}); longer on a busier machine")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m qinn_lib.bench", description=__doc__.split("\n")[0])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=50, help="timed fast steps")
    parser.add_argument("--reference-repeats", type=int, default=3, help="timed PennyLane steps")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads (default 1, as training uses; see qinn_lib.training.loop)")
    parser.add_argument("--inn-repeats", type=int, default=10,
                        help="timed classical-INN steps per size and mode (0 skips the INN benchmark)")
    parser.add_argument("--lockstep-repeats", type=int, default=30,
                        help="timed QINN lockstep steps per stack size k = 1, 3, 6 (0 skips the lockstep benchmark)")
    parser.add_argument("--floor-repeats", type=int, default=50,
                        help="timed steps of the compiled QINN step against its floor, one fused function "
                             "(qinn_lib.experiments.bench_floor; 0 skips it)")
    parser.add_argument("--reuploading-repeats", type=int, default=30,
                        help="timed re-uploading flow steps per path and upload count (0 skips that benchmark)")
    parser.add_argument("--cold-compile", action="store_true",
                        help="time the INN compiles into an empty cache and again from disk in a new process "
                             "(minutes per size); default: the project's compile cache as it is")
    parser.add_argument("--scaling", action="store_true",
                        help="also time dense / gate-by-gate / lightning.qubit against the qubit count 4-12 "
                             "(qinn_lib.experiments.bench_scaling; slow: tens of minutes)")
    parser.add_argument("--peers", action="store_true",
                        help="also time the NLL piece against default.qubit and PennyLane + JAX side by side "
                             "(qinn_lib.experiments.bench_peers; JAX is the optional jax extra; minutes of compiling)")
    parser.add_argument("--record", action="store_true",
                        help="store the numbers in figures/results.json for the README's results table")
    add_debug_option(parser)
    args = parser.parse_args(argv)
    for name in ("inn_repeats", "lockstep_repeats", "reuploading_repeats", "floor_repeats"):
        if getattr(args, name) < 0:
            parser.error(f"--{name.replace('_', '-')} must be >= 0")
    if 0 < args.lockstep_repeats < 3:
        parser.error("--lockstep-repeats must be 0 or >= 3 (three interleaved rounds)")
    for name in ("batch_size", "repeats", "reference_repeats", "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")

    def body() -> int:
        check_environment()  # every QINN_* variable, before any work
        if args.record:  # before minutes of timing, not after
            check_recordable("paper")
        started = time.perf_counter()
        if args.peers:  # before the PennyLane reference imports JAX (if installed)
            hold_xla_threads(args.threads)
        print(expected_duration())
        out = run(args.batch_size, args.repeats, args.reference_repeats, threads=args.threads)
        floor = (run_floor(repeats=max(5, args.floor_repeats), batch_size=args.batch_size, threads=args.threads)
                 if args.floor_repeats else None)
        reup = (run_reuploading(repeats=max(3, args.reuploading_repeats), threads=args.threads)
                if args.reuploading_repeats else None)
        lockstep = run_lockstep(repeats=args.lockstep_repeats, threads=args.threads) if args.lockstep_repeats else None
        inn = (run_inn(batch_size=args.batch_size, repeats=args.inn_repeats, threads=args.threads,
                       cold_cache=args.cold_compile) if args.inn_repeats else None)
        scaling = run_scaling(threads=args.threads) if args.scaling else None
        peers = run_peers(batch_size=args.batch_size, threads=args.threads) if args.peers else None
        projection = None
        if inn is not None:
            # Per-seed ms/step of the path training uses (compiled, QINN and INN seeds in lockstep).
            # Re-uploading: the mean over upload counts of the path training uses (compiled if it compiled).
            reup_ms = jobs_lib.STEP_COST_MS["reuploading"]
            if reup is not None:
                rows = [r for r in reup["rows"].values() if r["path"] == "compiled" and r["compiled"]] or \
                    [r for r in reup["rows"].values() if r["path"] == "fast"]
                reup_ms = statistics.mean(r["median_ms"] for r in rows)
            step_ms = {"qinn": out.get("compiled_ms", out["fast_ms"]), "reuploading": reup_ms}
            step_ms.update({f"inn {size}": row["lockstep_ms_per_seed"] for size, row in inn["sizes"].items()})
            lock_ms = None
            if lockstep is not None:
                mode = "compiled" if any(r["mode"] == "compiled" for r in lockstep["rows"].values()) else "eager"
                lock_ms = {r["k"]: r["per_model_ms_min"] for r in lockstep["rows"].values() if r["mode"] == mode}
            if len(step_ms) == 5:
                projection = {}
                for label, kw in (("3 seeds everywhere (before issue 21)", {"n_seeds": 3}),
                                  ("the notebooks' seed counts", {}),
                                  ("the notebooks' seed counts, notebook 06's full plan", {"full_diagnosis": True})):
                    p = project_paper_profile(step_ms, n_workers=min(2, os.cpu_count() or 1), qinn_lockstep_ms=lock_ms,
                                              **kw)
                    projection[label] = p
                    print(f"projected paper profile, {label} (notebooks 03-07, training steps only): {p['runs']} runs as "
                          f"{p['jobs']} Dask jobs on {p['n_workers']} workers: "
                          f"{p['core_hours']:.2f} core-hours, {p['wall_minutes']:.0f} min wall")
                # What no speed-up of the quantum models can beat: the same plans with every QINN and
                # re-uploading step free, i.e. the classical INN runs alone (issue 20's 60-min target).
                for label, kw in (("the notebooks' seed counts, INN runs only (every quantum step free)", {}),
                                  ("the notebooks' seed counts, notebook 06's full plan, INN runs only",
                                   {"full_diagnosis": True})):
                    p = project_paper_profile(dict(step_ms, qinn=0.0, reuploading=0.0),
                                              n_workers=min(2, os.cpu_count() or 1), **kw)
                    projection[label] = p
                    print(f"projected paper profile, {label}: {p['core_hours']:.2f} core-hours, "
                          f"{p['wall_minutes']:.0f} min wall")
        seconds = time.perf_counter() - started
        print(f"benchmark took {seconds / 60:.1f} min (load average {_load_average()})")
        if args.record:
            out = dict(out, wall_seconds=seconds, wall_load_average=_load_average(),
                       wall_options=_options_text(args))
            record("bench", out, "paper")
            if inn is not None:
                record("bench_inn", inn, "paper")
            if floor is not None:
                record("bench_floor", floor, "paper")
            if lockstep is not None:
                record("bench_lockstep", lockstep, "paper")
            if reup is not None:
                record("bench_reuploading", reup, "paper")
            if scaling is not None:
                record("bench_scaling", scaling, "paper")
            if peers is not None:
                record("bench_peers", peers, "paper")
            if projection is not None:
                record("bench_projection", projection["the notebooks' seed counts"], "paper")
                record("bench_projection_scenarios", {"scenarios": projection}, "paper")
            print(f"recorded in {results_path('paper')} (README: python -m qinn_lib.reports --update-readme)")
        return 0

    return run_cli(body, prog=parser.prog, debug=args.debug, interrupted="nothing was recorded")

