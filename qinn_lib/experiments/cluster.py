"""The Dask runner: maps jobs onto single-threaded worker processes, and knows no model.

Why Dask: the models here are tiny, so one training uses one core well and a second thread in the
same process only slows it down (measured: two intra-op threads 0.55x at best). Two single-thread
*processes* do use two cores. ``dask.distributed`` gives that with no code of ours for process
management, and the same call runs on a user's cluster (a scheduler address, or a
``dask_jobqueue`` SLURM/HTCondor cluster object).

Which cluster (first that applies):

1. the ``client`` argument: a ``distributed.Client``, a cluster object (``LocalCluster``,
   ``dask_jobqueue.SLURMCluster``, ...), or a scheduler address ``"tcp://host:8786"``;
2. the ``QINN_DASK_SCHEDULER`` environment variable (an address; ``python -m qinn_lib.reports
   --scheduler ADDRESS`` sets it for the notebooks);
3. an embedded ``LocalCluster`` with one single-threaded worker process per core, started on
   first use and reused for the rest of the process.

:func:`map_jobs` runs a function over many argument tuples there, results in submission order,
resubmitting a job whose worker died. :func:`submitter_env` and :func:`job_env` carry the data
and runs folders and the compile policy from the submitting process into each job. The training
jobs themselves are :mod:`qinn_lib.experiments.jobs`.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import threading
import time
from typing import Any, Callable, Sequence

from qinn_lib import paths
from qinn_lib.errors import QinnError
from qinn_lib.settings import environment

__all__ = ['SCHEDULER_ENV', 'ClusterError', 'get_client', 'close_default_client', 'map_jobs', 'submitter_env', 'job_env']


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


#: Settings a training job takes from the process that submits it, not from the worker's own
#: environment (a worker may have started before they were set, or on another machine).
_JOB_ENV = ("QINN_DATA_DIR", "QINN_RUNS_DIR", "QINN_COMPILE")


def submitter_env() -> dict[str, str]:
    """The settings (data and runs folders, compile policy) a job must take from the process that
    submits it; pass them to the job and apply them there with :func:`job_env`."""
    env = {k: os.environ[k] for k in _JOB_ENV if k in os.environ}
    env.update(QINN_DATA_DIR=str(paths.data_dir()), QINN_RUNS_DIR=str(paths.runs_dir()))
    return env


def job_env(env: dict[str, str] | None) -> contextlib.AbstractContextManager[None]:
    """Inside a worker: ``env`` (from :func:`submitter_env`) set for the duration of one job."""
    return environment(env or {})
