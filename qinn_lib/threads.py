"""How many threads torch's CPU ops use inside a block.

Every network here is tiny (5 features, hidden widths 32-64, batches of 128-512), so an op is far
too small to split across cores: a second intra-op thread only adds synchronisation, and on a
loaded 2-core machine OpenMP's spin-waiting makes it much worse (a 32x32 matmul went from 9 us on
one thread to 24 ms on two; notebook 04's classifier AUCs took minutes instead of seconds in a
JupyterLab kernel beside two training workers). The trainer, the depth explorer and the Dask
workers therefore run on one thread; :func:`torch_threads` is the one place that sets and
restores it. The same holds for the native thread pools of numpy/scipy (BLAS) and scikit-learn
(OpenMP): :func:`native_threads` limits them for a block (measured beside two training workers: the
boosted-tree classifier of :mod:`qinn_lib.evaluation.boosted_two_sample`, 5 folds on 20 000 events
per class, took 3 s on one OpenMP thread and 60-140 s on two).
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch
from threadpoolctl import threadpool_limits

__all__ = ["torch_threads", "native_threads", "THREADS_ENV", "set_notebook_threads"]

#: Environment variable: torch threads of a notebook kernel (default 1, see set_notebook_threads).
THREADS_ENV = "QINN_THREADS"


@contextlib.contextmanager
def torch_threads(threads: int | None = 1) -> Iterator[None]:
    """Run the block with ``threads`` intra-op threads (``None``: leave torch's setting alone);
    the previous number is restored afterwards, also after an exception."""
    if threads is None:
        yield
        return
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be an integer >= 1 or None, got {threads!r}")
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(old)


@contextlib.contextmanager
def native_threads(threads: int | None = 1) -> Iterator[None]:
    """Run the block with at most ``threads`` threads in every native pool threadpoolctl knows
    (OpenMP: scikit-learn's gradient boosting; BLAS: numpy and scipy); ``None``: leave them alone.
    The previous limits are restored afterwards, also after an exception."""
    if threads is None:
        yield
        return
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be an integer >= 1 or None, got {threads!r}")
    with threadpool_limits(limits=threads):
        yield


def set_notebook_threads() -> int:
    """Set the calling process's torch intra-op threads for a notebook kernel: ``$QINN_THREADS``,
    default 1; returns the number set. Called by :func:`qinn_lib.notebook.profiles.notebook_config`, i.e.
    at the top of every notebook. Why 1: a kernel's work (evaluating models on batches of 8192
    events, the classifier AUCs) is small ops, and the kernel usually shares the cores with Dask
    workers or a training; on two threads notebook 05's Run All spent minutes in spline inverses
    while two workers trained. On a big idle machine, ``QINN_THREADS=4`` may be faster."""
    import os

    value = os.environ.get(THREADS_ENV, "").strip() or "1"
    try:
        threads = int(value)
    except ValueError:
        threads = 0
    if threads < 1:
        raise ValueError(f"environment variable {THREADS_ENV}={value!r}: must be an integer >= 1")
    torch.set_num_threads(threads)
    return threads
