"""Every multi-run job through Dask: seed ensembles, scans, ablations, searches.

Why Dask: the models here are tiny, so one training uses one core well and a second thread in the
same process only slows it down (measured: two intra-op threads 0.55x at best). Two single-thread
*processes* do use two cores. ``dask.distributed`` gives that with no code of ours for process
management, and the same call runs on a user's cluster (a scheduler address, or a
``dask_jobqueue`` SLURM/HTCondor cluster object).

Checkpoints stay the source of truth. A training job runs in a worker, writes its checkpoint every
epoch, and returns only a small summary; the caller then *reloads* the finished runs from disk
(:func:`qinn_lib.runs.train_qinn` / ``train_inn`` resume a finished run instantly). A worker that
dies loses at most its current epoch: Dask reschedules the job, which resumes from the checkpoint,
and training is deterministic per seed, so the final numbers equal those of an uninterrupted run
(tests/test_cluster.py kills a worker to check this).

Which cluster (first that applies):

1. the ``client`` argument: a ``distributed.Client``, a cluster object (``LocalCluster``,
   ``dask_jobqueue.SLURMCluster``, ...), or a scheduler address ``"tcp://host:8786"``;
2. the ``QINN_DASK_SCHEDULER`` environment variable (an address; ``python -m qinn_lib.reports
   --scheduler ADDRESS`` sets it for the notebooks);
3. an embedded ``LocalCluster`` with one single-threaded worker process per core, started on
   first use and reused for the rest of the process.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

from .errors import QinnError

__all__ = ["ClusterError", "SCHEDULER_ENV", "get_client", "close_default_client", "map_jobs",
           "TrainJob", "group_jobs", "plan_training", "pack_jobs", "train_runs", "estimated_cost",
           "submitter_env", "job_env", "trainers"]

#: Environment variable naming a Dask scheduler address for every multi-run job.
SCHEDULER_ENV = "QINN_DASK_SCHEDULER"
#: Seconds to wait for a scheduler at an address before giving up with a clear error.
CONNECT_TIMEOUT = 10.0

# Single-threaded workers: set before any worker process starts, inherited by them.
_WORKER_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
               "TORCHINDUCTOR_COMPILE_THREADS": "1"}

_lock = threading.Lock()
_default: dict[str, Any] = {}


class ClusterError(QinnError, RuntimeError):
    """No Dask cluster could be reached or started; the message names the address."""


def _local_cluster(n_workers: int | None = None) -> Any:
    from distributed import LocalCluster

    n = n_workers or os.cpu_count() or 1
    for k, v in _WORKER_ENV.items():
        os.environ.setdefault(k, v)
    # processes=True: one interpreter per core (torch ops release the GIL only partly, and each
    # worker sets its own intra-op threads to 1). No dashboard: nothing should bind a public port.
    return LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None,
                        scheduler_kwargs={"dashboard": False}, silence_logs=logging.ERROR)


def _connect(address: str, timeout: float) -> Any:
    from distributed import Client

    if not isinstance(address, str) or not address.strip():
        raise ClusterError(f"Dask scheduler address must be a non-empty string, got {address!r}")
    try:
        return Client(address, timeout=timeout)
    except (OSError, TimeoutError) as exc:
        raise ClusterError(f"no Dask scheduler answers at {address!r} within {timeout:g} s "
                           f"({type(exc).__name__}); start one (`dask scheduler`) or unset {SCHEDULER_ENV}") from None


def get_client(client: Any = None, *, n_workers: int | None = None, timeout: float = CONNECT_TIMEOUT) -> Any:
    """A ``distributed.Client`` for ``client`` (module docstring: argument, environment, embedded
    LocalCluster). The embedded cluster is created once per process and closed at exit."""
    from distributed import Client

    if isinstance(client, Client):
        return client
    if isinstance(client, str):
        return _connect(client, timeout)
    if client is not None:  # a cluster object (LocalCluster, dask_jobqueue.*Cluster, ...)
        if not hasattr(client, "scheduler_address"):
            raise ClusterError(f"client must be a distributed.Client, a cluster object or an address, "
                               f"got {type(client).__name__}")
        return Client(client, timeout=timeout)
    address = os.environ.get(SCHEDULER_ENV)
    if address:
        return _connect(address, timeout)
    with _lock:
        c = _default.get("client")
        if c is None or c.status not in ("running", "connecting"):
            cluster = _local_cluster(n_workers)
            c = Client(cluster)
            _default.update(client=c, cluster=cluster)
        return c


def close_default_client() -> None:
    """Shut the embedded LocalCluster down (it is also closed at interpreter exit)."""
    with _lock:
        c, cluster = _default.pop("client", None), _default.pop("cluster", None)
    for obj in (c, cluster):
        if obj is not None:
            try:
                obj.close()
            except Exception:  # closing at exit: the loop may already be gone
                pass


atexit.register(close_default_client)


def map_jobs(fn: Callable[..., Any], jobs: Sequence[tuple], *, client: Any = None, keys: Sequence[str] | None = None,
             on_done: Callable[[int, Any], None] | None = None, retries: int = 2) -> list[Any]:
    """Run ``fn(*args)`` for every ``args`` in ``jobs`` on the cluster; results in submission order.

    Jobs are queued in the order given (put the longest first for the best packing on few cores).
    ``on_done(index, result)`` is called in this process as each job finishes. ``retries``:
    resubmissions after a worker died or the job raised (a training job then resumes from its
    checkpoint). The first job error is raised here, after the other jobs were cancelled."""
    from distributed import as_completed

    if not jobs:
        return []
    c = get_client(client)
    futures = []
    for i, args in enumerate(jobs):
        key = None if keys is None else f"{keys[i]}-{time.time_ns()}"
        futures.append(c.submit(fn, *args, key=key, pure=False, retries=retries, priority=len(jobs) - i))
    index = {f.key: i for i, f in enumerate(futures)}
    results: list[Any] = [None] * len(futures)
    try:
        for fut in as_completed(futures):
            i = index[fut.key]
            results[i] = fut.result()  # raises the job's exception
            if on_done is not None:
                on_done(i, results[i])
    except BaseException:
        for f in futures:
            f.cancel()
        raise
    return results


# --------------------------------------------------------------------------------------------
# Training jobs
# --------------------------------------------------------------------------------------------

#: Rough ms per optimiser step and seed on one core, only to queue the longest jobs first (LPT
#: packing): compiled QINN (Table 1 depth) and INN steps of ``python -m qinn_lib.bench`` (an INN
#: seed costs 0.6x of this in a lockstep stack), the eager re-uploading step (measured 10 ms).
_STEP_COST_MS = {"qinn": 4.5, "reuploading": 10.0, "inn 2k": 7.8, "inn 6k": 12.3, "inn 16k": 14.2}
#: Circuit layers (model + ISP) of Table 1's QINN, the depth _STEP_COST_MS["qinn"] was measured at.
_TABLE1_CIRCUIT_LAYERS = 20


@dataclass(frozen=True)
class TrainJob:
    """One training job: a single run, or INN seeds trained in lockstep (configs equal but for seed)."""

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
    from .data import split_sizes

    return int(cfg.epochs) * (split_sizes(cfg.n_events)[0] // int(cfg.batch_size))


def estimated_cost(job: TrainJob) -> float:
    """Relative cost of a job (ms of training steps), for ordering only."""
    c = job.configs[0]
    key = c.kind + (f" {c.size}" if hasattr(c, "size") else "")
    per_seed = _STEP_COST_MS.get(key, 10.0) * (0.6 if len(job.configs) > 1 else 1.0)
    if c.kind == "qinn":  # a QINN step scales with its circuit depth (e.g. notebook 06's 24 layers)
        per_seed *= (int(c.n_layers) + int(c.isp_layers)) / _TABLE1_CIRCUIT_LAYERS
    return per_seed * len(job.configs) * max(c.epochs, training_steps(c))


def _identity(cfg: Any) -> tuple:
    return (type(cfg).__name__, tuple(sorted((k, repr(v)) for k, v in cfg.to_dict().items() if k != "seed")))


def group_jobs(configs: Iterable[Any], *, lockstep: bool = True,
               completed: Callable[[Any], int] | None = None) -> list[TrainJob]:
    """Group ``configs`` into jobs, longest first (by :func:`estimated_cost`). INN configs that
    differ only in their seed and have completed the same number of epochs (``completed(cfg)``,
    0 when not given) train as one lockstep stack (INNStack: 2-3x less time per seed); everything
    else is one job per run. A run asked for twice gets one job; finished runs get none."""
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
        if lockstep and cfg.kind == "inn":
            groups.setdefault((_identity(cfg), done), []).append(cfg)
        else:
            singles.append(TrainJob((cfg,)))
    jobs = singles + [TrainJob(tuple(g)) for g in groups.values()]
    return sorted(jobs, key=estimated_cost, reverse=True)


def plan_training(configs: Iterable[Any], *, lockstep: bool = True,
                  prepared: dict[tuple, Any] | None = None) -> list[TrainJob]:
    """:func:`group_jobs` with each run's progress read from its checkpoint (validated like a
    resume), so finished runs are skipped and partly trained INN seeds stack by epoch.
    ``prepared``: a ``{runs.data_key: PreparedData}`` cache to use and fill (the caller reloads
    the runs with the same data afterwards)."""
    from . import runs

    data: dict[tuple, Any] = {} if prepared is None else prepared

    def completed(cfg: Any) -> int:
        if runs._shipped_entry(cfg) is not None:  # a model shipped with the package: nothing to train
            return cfg.epochs
        key = runs.data_key(cfg)
        if key not in data:
            data[key] = runs.prepare_data(*key)
        return runs.completed_epochs(cfg, data[key])

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


#: Settings a training job takes from the process that submits it, not from the worker's own
#: environment (a worker may have started before they were set, or on another machine).
_JOB_ENV = ("QINN_DATA_DIR", "QINN_RUNS_DIR", "QINN_COMPILE")


def submitter_env() -> dict[str, str]:
    """The settings (data and runs folders, compile policy) a job must take from the process that
    submits it; pass them to the job and apply them there with :func:`job_env`."""
    from . import paths

    env = {k: os.environ[k] for k in _JOB_ENV if k in os.environ}
    env.update(QINN_DATA_DIR=str(paths.data_dir()), QINN_RUNS_DIR=str(paths.runs_dir()))
    return env


def job_env(env: dict[str, str] | None) -> contextlib.AbstractContextManager[None]:
    """Inside a worker: ``env`` (from :func:`submitter_env`) set for the duration of one job."""
    from .profiles import environment

    return environment(env or {})


def trainers() -> dict[str, tuple[type, Callable[..., Any]]]:
    """Config kind -> (its config class, the function that trains or reloads one run of it): the
    kinds of run :func:`train_runs` takes."""
    from . import reuploading, runs
    from .config import INNRunConfig, QINNRunConfig, ReuploadingRunConfig

    return {"qinn": (QINNRunConfig, runs.train_qinn), "inn": (INNRunConfig, runs.train_inn),
            "reuploading": (ReuploadingRunConfig, reuploading.train_reuploading)}


def _run_training_job(kind: str, cfg_dicts: list[dict[str, Any]], env: dict[str, str] | None = None,
                      threads: int = 1) -> dict[str, Any]:
    """Executed in a worker: train (or resume) the job's runs; return a small summary."""
    import torch

    from . import runs

    with job_env(env):
        torch.set_num_threads(threads)
        cls, train = trainers()[kind]
        cfgs = [cls(**d) for d in cfg_dicts]
        t0 = time.perf_counter()
        if len(cfgs) > 1:
            trained = runs.train_inn_lockstep(cfgs, progress=False)
        else:
            trained = [train(cfgs[0], progress=False)]
        return {"run_dirs": [str(t.run_dir) for t in trained], "seconds": time.perf_counter() - t0,
                "epochs": [len(t.history) for t in trained], "worker_pid": os.getpid()}


def train_runs(configs: Sequence[Any], *, client: Any = None, lockstep: bool = True,
               log: Callable[[str], None] | None = print, data: Any = None) -> list[Any]:
    """Train (or resume) every config on the Dask cluster, then reload them here.

    Returns one :class:`qinn_lib.runs.TrainedModel` per config, in the order given, identical to
    training them one by one in this process with the same seeds (the runs are deterministic and
    reloaded from their checkpoints). Finished runs are not resubmitted. ``data``: an already prepared
    :class:`~qinn_lib.runs.PreparedData` to reload with, where the configs' data match it.
    The configs may mix the kinds of :func:`trainers` (QINN, INN, re-uploading flow)."""
    from . import runs

    configs = list(configs)
    trainer = trainers()
    unknown = sorted({f"{type(c).__name__} ({c.kind!r})" for c in configs if c.kind not in trainer})
    if unknown:
        raise ValueError(f"train_runs: cannot train {', '.join(unknown)}; known kinds: {sorted(trainer)}")
    prepared: dict[tuple, Any] = {} if data is None else {data.key: data}
    jobs = plan_training(configs, lockstep=lockstep, prepared=prepared)
    if jobs:
        if log:
            log(f"training {sum(len(j.configs) for j in jobs)} run(s) as {len(jobs)} Dask job(s): "
                + ", ".join(j.label for j in jobs))

        def done(i: int, summary: dict[str, Any]) -> None:
            if log:
                log(f"  done: {jobs[i].label} in {summary['seconds'] / 60:.1f} min (worker pid {summary['worker_pid']})")

        env = submitter_env()
        map_jobs(_run_training_job, [(j.configs[0].kind, [c.to_dict() for c in j.configs], env) for j in jobs],
                 client=client, keys=[j.label for j in jobs], on_done=done)
    out = []
    for cfg in configs:
        key = runs.data_key(cfg)
        if key not in prepared:  # only runs whose progress was not read above (shipped models)
            prepared[key] = runs.prepare_data(*key)
        out.append(trainer[cfg.kind][1](cfg, progress=False, data=prepared[key]))
    return out
