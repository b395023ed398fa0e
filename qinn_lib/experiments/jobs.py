"""Training jobs on the Dask cluster: which runs train together, in which order, and where.

- :func:`group_jobs` / :func:`plan_training`: one job per run, except QINN or INN configs that
  differ only in their seed and have the same progress, which train as one lockstep stack; finished
  runs and shipped models get no job;
- :func:`estimated_cost` / :func:`pack_jobs`: a rough cost per job, so that the longest jobs are
  queued first (LPT packing) and both cores stay busy until the last run;
- :func:`train_runs`: train (or resume) every config on the cluster, then reload the runs here.
  Seed ensembles, ablations and the reports runner all train through it.

Checkpoints stay the source of truth. A training job runs in a worker, writes its checkpoint every
epoch, and returns only a small summary; the caller then *reloads* the finished runs from disk
(:func:`qinn_lib.experiments.one_model.train_qinn` / ``train_inn`` resume a finished run instantly). A worker that
dies loses at most its current epoch: Dask reschedules the job, which resumes from the checkpoint,
and training is deterministic per seed, so the final numbers equal those of an uninterrupted run
(tests/test_cluster.py kills a worker to check this).

The cluster itself (why Dask, which cluster, how jobs are mapped onto workers) is
:mod:`qinn_lib.experiments.cluster`, which knows no model.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

from qinn_lib.events.sample import split_sizes
from qinn_lib.experiments import one_model
from qinn_lib.experiments.cluster import job_env, map_jobs, submitter_env
from qinn_lib.experiments.one_model import trainers

__all__ = ['TrainJob', 'balance', 'estimated_cost', 'group_jobs', 'plan_training', 'pack_jobs', 'train_runs']


# --------------------------------------------------------------------------------------------
# Training jobs
# --------------------------------------------------------------------------------------------

#: Rough ms per optimiser step and seed on one core, only to queue the longest jobs first (LPT
#: packing): compiled QINN (Table 1 depth) and INN steps of ``python -m qinn_lib.bench`` (an INN
#: seed costs 0.6x of this in a lockstep stack); the compiled re-uploading step of
#: ``python -m qinn_lib.experiments.bench_reuploading`` (CPU ms, one thread, batch 128, 12 layers:
#: 3.1 / 3.6 / 4.4 ms median for 1 / 2 / 3 uploads, their mean; eager fast path 3.5 / 4.7 / 5.6 ms, the
#: former gate-by-gate step 7.3 / 14.5 / 20.7 ms, measured side by side on the shared 2-core machine).
STEP_COST_MS = {"qinn": 4.5, "reuploading": 3.7, "inn 2k": 7.8, "inn 6k": 12.3, "inn 16k": 14.2}
#: Cost per seed in a lockstep stack relative to a run alone (``python -m qinn_lib.bench``: INN 3
#: seeds; QINN the compiled per-model ratio at k = 3-6 measured on this 2-core machine).
LOCKSTEP_FACTOR = {"inn": 0.6, "qinn": 0.5}
#: Circuit layers (model + ISP) of Table 1's QINN, the depth STEP_COST_MS["qinn"] was measured at.
TABLE1_CIRCUIT_LAYERS = 20


@dataclass(frozen=True)
class TrainJob:
    """One training job: a single run, or QINN or INN seeds trained in lockstep (configs equal but for seed)."""

    configs: tuple[Any, ...]

    @property
    def label(self) -> str:
        c = self.configs[0]
        name = c.kind + (f"-{c.size}" if hasattr(c, "size") else "")
        extra = (f"-{c.invertibility}" if hasattr(c, "invertibility") else
                 f"-u{c.uploads}" if hasattr(c, "uploads") else "")
        # The configuration's fingerprint tells ensembles of one kind apart (notebook 06's ablations
        # are all "qinn-mse") and names its run folder (build/runs/<kind>-<fingerprint>-<data>).
        return f"{name}{extra}-{c.fingerprint()[:8]}-seeds-{'-'.join(str(x.seed) for x in self.configs)}"


def training_steps(cfg: Any) -> int:
    """Optimiser steps of a whole run: epochs x full batches of the training split (the trainer
    drops the last incomplete batch)."""
    return int(cfg.epochs) * (split_sizes(cfg.n_events)[0] // int(cfg.batch_size))


def estimated_cost(job: TrainJob) -> float:
    """Relative cost of a job (ms of training steps), for ordering only."""
    c = job.configs[0]
    key = c.kind + (f" {c.size}" if hasattr(c, "size") else "")
    per_seed = STEP_COST_MS.get(key, 10.0) * (LOCKSTEP_FACTOR.get(c.kind, 1.0) if len(job.configs) > 1 else 1.0)
    if c.kind == "qinn":  # a QINN step scales with its circuit depth (e.g. notebook 06's 24 layers)
        per_seed *= (int(c.n_layers) + int(c.isp_layers)) / TABLE1_CIRCUIT_LAYERS
    return per_seed * len(job.configs) * max(c.epochs, training_steps(c))


def _identity(cfg: Any) -> tuple:
    return (type(cfg).__name__, tuple(sorted((k, repr(v)) for k, v in cfg.to_dict().items() if k != "seed")))


def group_jobs(configs: Iterable[Any], *, lockstep: bool = True,
               completed: Callable[[Any], int] | None = None) -> list[TrainJob]:
    """Group ``configs`` into jobs, longest first (by :func:`estimated_cost`). QINN or INN configs
    that differ only in their seed and have completed the same number of epochs (``completed(cfg)``,
    0 when not given) train as one lockstep stack (QINNStack, INNStack: several times less time
    per seed); everything else is one job per run. A run asked for twice gets one job; finished runs get none."""
    groups: dict[tuple, list[Any]] = {}
    singles: list[TrainJob] = []
    seen: set[tuple] = set()
    for cfg in configs:
        ident = (_identity(cfg), cfg.seed)
        if ident in seen:  # the same run asked for twice (e.g. notebook 04's MSE runs in 05)
            continue
        seen.add(ident)
        done = completed(cfg) if completed is not None else 0
        if done >= cfg.epochs:
            continue
        if lockstep and cfg.kind in one_model.LOCKSTEP_TRAINERS:
            groups.setdefault((_identity(cfg), done), []).append(cfg)
        else:
            singles.append(TrainJob((cfg,)))
    jobs = singles + [TrainJob(tuple(g)) for g in groups.values()]
    return sorted(jobs, key=estimated_cost, reverse=True)


def balance(jobs: Sequence[TrainJob], n_workers: int) -> list[TrainJob]:
    """Split lockstep jobs until there are at least ``n_workers`` jobs (or nothing left to split),
    the costliest first: a single stack of six seeds would otherwise leave every other core idle.
    Two stacks of three cost a little more per seed than one of six, far less than an idle core."""
    out = sorted(jobs, key=estimated_cost, reverse=True)
    while len(out) < n_workers:
        big = [j for j in out if len(j.configs) > 1]
        if not big:
            break
        job = max(big, key=estimated_cost)
        half = len(job.configs) // 2
        out.remove(job)
        out += [TrainJob(job.configs[:half]), TrainJob(job.configs[half:])]
        out.sort(key=estimated_cost, reverse=True)
    return out


def plan_training(configs: Iterable[Any], *, lockstep: bool = True,
                  prepared: dict[tuple, Any] | None = None) -> list[TrainJob]:
    """:func:`group_jobs` with each run's progress read from its checkpoint (validated like a
    resume), so finished runs are skipped and partly trained INN seeds stack by epoch.
    ``prepared``: a ``{one_model.data_key: PreparedData}`` cache to use and fill (the caller reloads
    the runs with the same data afterwards)."""
    data: dict[tuple, Any] = {} if prepared is None else prepared

    def completed(cfg: Any) -> int:
        if one_model._shipped_entry(cfg) is not None:  # a model shipped with the package: nothing to train
            return cfg.epochs
        key = one_model.data_key(cfg)
        if key not in data:
            data[key] = one_model.prepare_data(*key)
        return one_model.completed_epochs(cfg, data[key])

    return group_jobs(configs, lockstep=lockstep, completed=completed)


def pack_jobs(costs: Sequence[float], n_workers: int) -> float:
    """Wall time of running jobs of the given costs, in the given (queue) order, on ``n_workers``
    workers that each take the next job when free: what the scheduler does with our queue."""
    if n_workers < 1:
        raise ValueError(f"n_workers must be >= 1, got {n_workers}")
    free = [0.0] * n_workers
    for c in costs:
        i = free.index(min(free))
        free[i] += c
    return max(free, default=0.0)


def _run_training_job(kind: str, cfg_dicts: list[dict[str, Any]], env: dict[str, str] | None = None,
                      threads: int = 1) -> dict[str, Any]:
    """Executed in a worker: train (or resume) the job's runs; return a small summary."""
    import torch


    with job_env(env):
        torch.set_num_threads(threads)
        cls, train = trainers()[kind]
        cfgs = [cls(**d) for d in cfg_dicts]
        t0 = time.perf_counter()
        if len(cfgs) > 1:
            trained = one_model.LOCKSTEP_TRAINERS[kind](cfgs, progress=False)
        else:
            trained = [train(cfgs[0], progress=False)]
        return {"run_dirs": [str(t.run_dir) for t in trained], "seconds": time.perf_counter() - t0,
                "epochs": [len(t.history) for t in trained], "worker_pid": os.getpid()}


def _worker_count(client: Any) -> int:
    """Workers of ``client`` (a Dask client or scheduler address), else of the local cluster."""
    info = getattr(client, "scheduler_info", None)
    if callable(info):
        try:
            return max(1, len(info().get("workers", {})))
        except Exception:  # a closed client: the local cluster's count is the best guess
            pass
    return os.cpu_count() or 1


def train_runs(configs: Sequence[Any], *, client: Any = None, lockstep: bool = True,
               log: Callable[[str], None] | None = print, data: Any = None) -> list[Any]:
    """Train (or resume) every config on the Dask cluster, then reload them here.

    Returns one :class:`qinn_lib.experiments.one_model.TrainedModel` per config, in the order given, identical to
    training them one by one in this process with the same seeds (the runs are deterministic and
    reloaded from their checkpoints). Finished runs are not resubmitted. ``data``: an already prepared
    :class:`~qinn_lib.experiments.one_model.PreparedData` to reload with, where the configs' data match it.
    The configs may mix the kinds of :func:`trainers` (QINN, INN, re-uploading flow)."""
    configs = list(configs)
    trainer = trainers()
    unknown = sorted({f"{type(c).__name__} ({c.kind!r})" for c in configs if c.kind not in trainer})
    if unknown:
        raise ValueError(f"train_runs: cannot train {', '.join(unknown)}; known kinds: {sorted(trainer)}")
    prepared: dict[tuple, Any] = {} if data is None else {data.key: data}
    workers = _worker_count(client)
    jobs = balance(plan_training(configs, lockstep=lockstep, prepared=prepared), workers)
    if jobs:
        if log:
            projected = pack_jobs([estimated_cost(j) / 1e3 for j in jobs], workers)
            log(f"training {sum(len(j.configs) for j in jobs)} run(s) as {len(jobs)} Dask job(s): "
                + ", ".join(j.label for j in jobs)
                + f"; projected {projected / 60:.0f} min of training steps on {workers} worker(s) "
                "(rough step costs; `python -m qinn_lib.bench` measures them)")

        def done(i: int, summary: dict[str, Any]) -> None:
            if log:
                log(f"  done: {jobs[i].label} in {summary['seconds'] / 60:.1f} min (worker pid {summary['worker_pid']})")

        env = submitter_env()
        map_jobs(_run_training_job, [(j.configs[0].kind, [c.to_dict() for c in j.configs], env) for j in jobs],
                 client=client, keys=[j.label for j in jobs], on_done=done)
    out = []
    for cfg in configs:
        key = one_model.data_key(cfg)
        if key not in prepared:  # only runs whose progress was not read above (shipped models)
            prepared[key] = one_model.prepare_data(*key)
        out.append(trainer[cfg.kind][1](cfg, progress=False, data=prepared[key]))
    return out
