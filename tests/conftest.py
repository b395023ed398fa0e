"""Shared test setup: a developer's shell may set the run-context variables (QINN_PROFILE, ...);
tests must not inherit them."""

import pytest

RUN_CONTEXT_VARIABLES = ("QINN_PROFILE", "QINN_MODELS", "QINN_RUNNER", "QINN_OUTPUT_DIR", "QINN_SHIPPED_DIR")


@pytest.fixture(autouse=True)
def _clean_run_context(monkeypatch):
    for name in RUN_CONTEXT_VARIABLES:
        monkeypatch.delenv(name, raising=False)
