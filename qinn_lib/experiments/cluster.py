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

:func:`map_jobs` runs a function over many argument tuples there, results in submission order.
:func:`submitter_env` and :func:`job_env` carry the data and runs folders and the compile policy
from the submitting process into each job. The training jobs themselves are
:mod:`qinn_lib.experiments.jobs`.

What is retried, and what is waited for (issue 24, cases 12 and 13):

* a job whose *worker died* (killed, out of memory) is run again by the scheduler on another
  worker, up to its ``distributed.scheduler.allowed-failures`` times (Dask's default 3; a training
  job resumes from its checkpoint); after that the job fails with one line (:class:`ClusterError`)
  naming it, the worker address and what to do;
* a job that *raised* is never retried: a user error (:class:`~qinn_lib.errors.QinnError`, e.g. a
  corrupted checkpoint) fails once and reaches the caller as it is, so a command prints it in one
  line; the embedded cluster's workers do not log the failure a second time;
* every wait on the network is bounded and names the address: connecting (``timeout``, default
  :data:`CONNECT_TIMEOUT`), and waiting for a scheduler to have a worker, at the start and whenever
  a running :func:`map_jobs` finds none (``QINN_DASK_TIMEOUT`` seconds, default
  :data:`WORKER_TIMEOUT`; a SLURM queue may need more), and a lost scheduler.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import logging
import os
import signal
import sys
import threading
import time
from typing import Any, Callable, Sequence

from qinn_lib import env, paths
from qinn_lib.errors import QinnError
from qinn_lib.settings import environment

__all__ = ['SCHEDULER_ENV', 'WORKER_TIMEOUT_ENV', 'ClusterError', 'get_client', 'close_default_client', 'map_jobs',
           'worker_timeout', 'submitter_env', 'job_env']


#: Environment variable naming a Dask scheduler address for every multi-run job.
SCHEDULER_ENV = "QINN_DASK_SCHEDULER"
#: Seconds to wait for a scheduler at an address before giving up with a clear error.
CONNECT_TIMEOUT = 10.0
#: Environment variable: seconds to wait for a scheduler to have a worker (default WORKER_TIMEOUT).
WORKER_TIMEOUT_ENV = "QINN_DASK_TIMEOUT"
WORKER_TIMEOUT = 120.0
#: Seconds the embedded cluster may take to close (at exit).
CLOSE_TIMEOUT = 10.0
#: Seconds between two looks at the cluster while map_jobs waits for results.
_POLL = 1.0

# Single-threaded workers: set before any worker process starts, inherited by them.
_WORKER_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
               "TORCHINDUCTOR_COMPILE_THREADS": "1",
               # A worker a nanny restarts (after a KilledWorker) configures its logging from dask's
               # config, not from LocalCluster(silence_logs=...): without this its INFO lines and a
               # close-time traceback followed the command's one-line error (issue 24, case 12).
               "DASK_LOGGING__DISTRIBUTED": "critical"}

_lock = threading.Lock()
_default: dict[str, Any] = {}


class ClusterError(QinnError, RuntimeError):
    """No Dask cluster could be reached or started; the message names the address."""


def _local_cluster(n_workers: int | None = None) -> Any:
    from distributed import LocalCluster, Nanny  # deferred: distributed takes ~1 s to import, needed only here

    from qinn_lib.experiments.dask_worker import OnceClosedWorker  # deferred: imports distributed

    n = n_workers or os.cpu_count() or 1
    for k, v in _WORKER_ENV.items():
        os.environ.setdefault(k, v)
    # processes=True: one interpreter per core (torch ops release the GIL only partly, and each
    # worker sets its own intra-op threads to 1). No dashboard; the scheduler's HTTP endpoints (it
    # always has some) on a free loopback port: port 8787 taken by another cluster on the machine
    # printed a four-line "Port 8787 is already in use" warning in every notebook.
    # Logs at CRITICAL only: a job's error comes back to the caller (and a command prints it in one
    # line); the workers' "Compute Failed" dumps and the scheduler's KilledWorker line would repeat it.
    # OnceClosedWorker: closing the cluster while a nanny restarts a killed worker printed
    # distributed's "ConnectionPool is closed" traceback after our line (that module says why).
    # SIGINT blocked while the cluster starts: its event-loop thread, every thread that thread starts
    # and every worker process those start (now and when a nanny restarts one) inherit the mask, so
    # the workers never see a Ctrl-C. A terminal sends it to the whole process group, and workers it
    # killed mid-start or mid-job printed tracebacks and multiprocessing's "leaked semaphore objects"
    # warning after the command's line (issue 24, case 11); the command shuts its workers down itself
    # (close_default_client). A Ctrl-C meanwhile is held back and raised once the cluster is up: one
    # that cut the start short left nannies half-started, and distributed's own exit hook then
    # printed an AssertionError traceback.
    with _sigint_held_back():
        try:
            return LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None,
                                scheduler_kwargs={"dashboard": False, "dashboard_address": "127.0.0.1:0"},
                                worker_class=functools.partial(Nanny, worker_class=OnceClosedWorker),
                                silence_logs=logging.CRITICAL)
        except RuntimeError as exc:  # e.g. the multiprocessing "bootstrapping phase" error of a script
            raise ClusterError(f"cannot start the local Dask cluster's worker processes ({exc}); in a script, "
                               "call the training under `if __name__ == \"__main__\":` (worker processes import "
                               f"the script), or name a running scheduler with {SCHEDULER_ENV}") from None


@contextlib.contextmanager
def _sigint_held_back() -> Any:
    """SIGINT blocked in this thread (and so in the threads and processes started inside), and a
    Ctrl-C arriving meanwhile (other threads still take it) raised only after the block.

    multiprocessing's resource tracker is started first: starting it (at the first semaphore, e.g.
    a nanny's first queue) *unblocks* SIGINT in the thread that starts it, which undid the mask.
    It is started without its shutdown warnings: after a Ctrl-C the nannies SIGKILL the workers
    whose job is still running (a thread cannot be stopped), the semaphores those had made are
    left to the tracker, which removes them at exit, saying "There appear to be N leaked semaphore
    objects to clean up at shutdown" after the command's line (issue 24, case 11)."""
    if not hasattr(signal, "pthread_sigmask"):  # Windows: no masks, no resource tracker
        yield
        return
    from multiprocessing import resource_tracker  # deferred: only where signal masks exist (POSIX)

    quiet = "ignore:resource_tracker:UserWarning"  # -W for the tracker process (only it warns so)
    sys.warnoptions.append(quiet)
    try:
        resource_tracker.ensure_running()
    finally:
        sys.warnoptions.remove(quiet)
    held: list[int] = []
    handler = None
    if threading.current_thread() is threading.main_thread():
        handler = signal.getsignal(signal.SIGINT)
        if handler is not None:  # None: set outside Python, left alone
            signal.signal(signal.SIGINT, lambda signum, frame: held.append(signum))
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        if handler is not None:
            signal.signal(signal.SIGINT, handler)
            if held:
                signal.raise_signal(signal.SIGINT)  # the Ctrl-C, now: KeyboardInterrupt under run_cli


def worker_timeout() -> float:
    """Seconds to wait for a scheduler to have a worker: ``QINN_DASK_TIMEOUT`` (default :data:`WORKER_TIMEOUT`)."""
    return env.positive_number(WORKER_TIMEOUT_ENV, WORKER_TIMEOUT)


def _address_of(c: Any) -> str:
    try:
        return str(c.scheduler.address)
    except Exception:  # a closed client: no address left to name
        return "(unknown address)"


def _wait_for_a_worker(c: Any, timeout: float) -> None:
    """Return once the scheduler of ``c`` has a worker; :class:`ClusterError` after ``timeout`` s."""
    try:
        c.wait_for_workers(1, timeout=timeout)
    except (TimeoutError, OSError):
        address = _address_of(c)
        with contextlib.suppress(Exception):
            c.close()
        raise ClusterError(f"the Dask scheduler at {address} has no worker after {timeout:g} s; start one "
                           f"(`dask worker {address}`), or wait longer with {WORKER_TIMEOUT_ENV}=SECONDS") from None


def _connect(address: str, timeout: float) -> Any:
    from distributed import Client

    if not isinstance(address, str) or not address.strip():
        raise ClusterError(f"Dask scheduler address must be a non-empty string, got {address!r}")
    wait = worker_timeout()  # validated before anything waits
    try:
        _check_port(address)  # out of range: Client waited the whole timeout, then said "no scheduler answers"
        c = Client(address, timeout=timeout)
    except (OSError, TimeoutError) as exc:
        raise ClusterError(f"no Dask scheduler answers at {address!r} within {timeout:g} s "
                           f"({type(exc).__name__}); start one (`dask scheduler`) or unset {SCHEDULER_ENV}") from None
    except ValueError as exc:  # a malformed address, e.g. an unknown protocol
        raise ClusterError(f"Dask scheduler address {address!r} is not usable ({exc}); give one such as "
                           "tcp://host:8786") from None
    _wait_for_a_worker(c, wait)
    return c


def _check_port(address: str) -> None:
    """ValueError if a tcp/tls address's port is not in 1-65535 (other schemes are left to distributed)."""
    from distributed.comm.addressing import parse_address, parse_host_port  # deferred: distributed, ~1 s to import

    scheme, location = parse_address(address)
    if scheme in ("tcp", "tls"):
        port = parse_host_port(location, 8786)[1]
        if not 0 < int(port) < 65536:
            raise ValueError(f"port {port} is not in 1-65535")


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
        wait = worker_timeout()
        c = Client(client, timeout=timeout)
        _wait_for_a_worker(c, wait)  # a dask_jobqueue cluster's workers wait in the batch queue
        return c
    address = env.address(SCHEDULER_ENV)
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
                # Bounded: after a KilledWorker the nannies may be restarting a worker, and an
                # unbounded close hung the process at exit (issue 24, case 12).
                obj.close(timeout=CLOSE_TIMEOUT)
            except Exception:  # closing at exit: the loop may already be gone, or the close timed out
                pass


atexit.register(close_default_client)


def map_jobs(fn: Callable[..., Any], jobs: Sequence[tuple], *, client: Any = None, keys: Sequence[str] | None = None,
             on_done: Callable[[int, Any], None] | None = None) -> list[Any]:
    """Run ``fn(*args)`` for every ``args`` in ``jobs`` on the cluster; results in submission order.

    Jobs are queued in the order given (put the longest first for the best packing on few cores).
    ``on_done(index, result)`` is called in this process as each job finishes. A job whose worker
    died is run again by the scheduler; one that raised is not (module docstring). The first job
    error is raised here, after the other jobs were cancelled: the job's own exception (a
    :class:`~qinn_lib.errors.QinnError` as it is), or a :class:`ClusterError` naming the job and the
    address when its workers kept dying, the scheduler was lost, or no worker was left for
    ``QINN_DASK_TIMEOUT`` seconds."""
    from distributed import wait

    if not jobs:
        return []
    c = get_client(client)
    timeout = worker_timeout()
    address = _address_of(c)
    futures = []
    for i, args in enumerate(jobs):
        key = None if keys is None else f"{keys[i]}-{time.time_ns()}"
        futures.append(c.submit(fn, *args, key=key, pure=False, retries=0, priority=len(jobs) - i))
    names = [f"job {keys[i]!r}" if keys is not None else f"job {i + 1} of {len(jobs)}" for i in range(len(jobs))]
    results: list[Any] = [None] * len(futures)
    pending = dict(enumerate(futures))
    idle_since: float | None = None
    try:
        while pending:
            try:
                done, _ = wait(list(pending.values()), timeout=_POLL, return_when="FIRST_COMPLETED")
            except TimeoutError:  # nothing finished within _POLL s: look at the cluster
                done = set()
            for i in [i for i, f in pending.items() if f in done]:
                results[i] = _result(pending.pop(i), names[i], address)
                if on_done is not None:
                    on_done(i, results[i])
            if done:
                idle_since = None
                continue
            idle_since = _check_cluster(c, address, timeout, idle_since)
    except BaseException:
        for f in futures:
            f.cancel()
        raise
    return results


def _result(fut: Any, name: str, address: str) -> Any:
    """The result of a finished future; its worker dying again and again is a :class:`ClusterError`."""
    from distributed.scheduler import KilledWorker

    try:
        return fut.result()
    except KilledWorker as exc:
        worker = getattr(getattr(exc, "last_worker", None), "address", "?")
        tries = getattr(exc, "allowed_failures", 0) + 1
        raise ClusterError(f"{name}: the Dask worker running it died {tries} times (last {worker}, scheduler "
                           f"{address}): killed, or out of memory (see that worker's log); what it finished is kept "
                           "(a training job's last epoch is in its checkpoint), run again to resume") from None


def _n_workers(c: Any) -> int | None:
    """Workers the scheduler of ``c`` has now; None if it cannot be asked (connection lost)."""
    if c.status != "running":
        return None
    try:
        return int(c.scheduler_info(n_workers=0).get("n_workers", 0))
    except Exception:  # the scheduler went away between the status and the call
        return None


def _check_cluster(c: Any, address: str, timeout: float, idle_since: float | None) -> float | None:
    """Between results: the scheduler closed, or unreachable or without a worker for ``timeout`` s,
    is a :class:`ClusterError`. Returns since when it has been so (None: it has workers)."""
    if c.status not in ("running", "connecting"):
        raise ClusterError(f"lost the Dask scheduler at {address} (client {c.status}); the jobs' finished work "
                           "is kept (training jobs in their checkpoints); restart it and run again to resume")
    n = _n_workers(c)
    if n:
        return None
    now = time.monotonic()
    since = now if idle_since is None else idle_since
    if now - since > timeout:
        what = "has had no worker" if n == 0 else "has not answered"
        raise ClusterError(f"the Dask scheduler at {address} {what} for {timeout:g} s while jobs were waiting; "
                           f"restart its workers (`dask worker {address}`) and run again to resume (finished work is "
                           f"kept in the checkpoints), or wait longer with {WORKER_TIMEOUT_ENV}=SECONDS")
    return since


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
