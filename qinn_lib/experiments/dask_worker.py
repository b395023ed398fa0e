"""The worker of the embedded Dask cluster: ``distributed.Worker``, closed at most once.

Why (issue 24, case 12; distributed 2026.8): a job that kills its worker again and again races its
nanny. The nanny restarts the worker at once; when the *old* process's start-up message is read
late (it died right after registering), the nanny's ``WorkerProcess`` takes the *new* process for
running while that one is still registering with the scheduler. Closing the cluster then (after
the job's ``KilledWorker``) sends the new process its stop message mid-registration: the worker
closes completely (its connection pool shut), the scheduler's late reply to the registration sets
it ``running`` again, and on its way out the worker process closes it a second time. That second
close asks the nanny over the closed pool, raises ``RuntimeError: ConnectionPool is closed``, and
``multiprocessing`` printed it with a 30-line traceback on the command's stderr, after the
command's one-line error (about half the runs on a loaded two-core machine). Not a log record, so
no logging setting silenced it. A worker that has closed once has nothing left to close; the
second call only stops the periodic callbacks the late registration restarted.

Used by :mod:`qinn_lib.experiments.cluster` as the embedded ``LocalCluster``'s ``worker_class``
(the nanny's worker processes import it by name).
"""

from __future__ import annotations

from typing import Any

from distributed import Worker

__all__ = ["OnceClosedWorker"]


class OnceClosedWorker(Worker):
    """A ``distributed.Worker`` whose :meth:`close` does nothing after one complete close."""

    _closed_once = False

    async def close(self, *args: Any, **kwargs: Any) -> str | None:
        if self._closed_once:
            for pc in self.periodic_callbacks.values():  # restarted by a registration that ended late
                pc.stop()
            return None
        result = await super().close(*args, **kwargs)
        self._closed_once = True
        return result
