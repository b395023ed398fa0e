"""Shared test setup: a developer's shell may set the run-context variables (QINN_PROFILE, ...);
tests must not inherit them. And fixtures shared by several test files."""

import warnings

import pytest
import torch

RUN_CONTEXT_VARIABLES = ("QINN_PROFILE", "QINN_MODELS", "QINN_RUNNER", "QINN_OUTPUT_DIR", "QINN_SHIPPED_DIR",
                         "QINN_THREADS", "QINN_TRAINED_BY_RUNNER")


@pytest.fixture(autouse=True)
def _clean_run_context(monkeypatch):
    for name in RUN_CONTEXT_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    threads = torch.get_num_threads()  # profiles.notebook_config sets the process's threads, as in a kernel
    formatwarning = warnings.formatwarning  # ... and the kernel's warning format
    yield
    torch.set_num_threads(threads)
    warnings.formatwarning = formatwarning


@pytest.fixture(scope="module")
def one_thread():
    """Small tensors: one thread is faster than two fighting over a shared CPU. Use with
    ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
