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


@pytest.fixture
def browser_needs():
    """``browser_needs("sphinx", ...)``: skip (fail where CI sets QINN_REQUIRE_BROWSER=1) unless
    Playwright, the system Chromium and the named modules are there. For the book's and the app's
    browser tests (tests/test_browser.py has its own check for JupyterLab)."""
    import importlib.util
    import os
    from pathlib import Path

    from qinn_lib.notebook.stills import CHROMIUM

    def check(*modules: str) -> str:
        missing = [f"the {m} package (pip install -e '.[dev]')" for m in ("playwright", *modules)
                   if importlib.util.find_spec(m) is None]
        if not Path(CHROMIUM).is_file():
            missing.append(f"Chromium at {CHROMIUM} (apt-get install -y chromium, or set QINN_CHROMIUM)")
        if missing:
            message = "browser test needs " + " and ".join(missing)
            if os.environ.get("QINN_REQUIRE_BROWSER") == "1":
                pytest.fail(message)
            pytest.skip(message)
        return CHROMIUM

    return check
