"""The run context from the environment: the profile, the output folder and the model policy.

:func:`context` reads the environment variables (a user may set them before starting
JupyterLab, too):

``QINN_PROFILE``     ``quick`` or ``paper``. Unset: the interactive default (see
                     :func:`qinn_lib.notebook.profiles.notebook_config`).
``QINN_OUTPUT_DIR``  where figures and results go (:func:`qinn_lib.paths.output_dir`); unset:
                     ``build/interactive/``. Only the runner points it at ``figures/``.
``QINN_MODELS``      ``shipped`` (default: load a shipped model whose configuration and data match,
                     see :mod:`qinn_lib.experiments.store`, else reload or train a run under ``build/runs``)
                     or ``train`` (ignore shipped models: reload or train under ``build/runs``).

The reports runner (``python -m qinn_lib.reports --profile ...``) gives its kernels these
variables (:func:`runner_environment`, which also marks them with ``QINN_RUNNER``);
:func:`environment` sets variables for the duration of a block.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping

from qinn_lib import env, paths
from qinn_lib.paths import OUTPUT_DIR_ENV, PROFILES

PROFILE_ENV = "QINN_PROFILE"
MODELS_ENV = "QINN_MODELS"
#: Set by the reports runner only, so that a notebook can say who chose its profile.
RUNNER_ENV = "QINN_RUNNER"
#: JupyterLab saves the committed notebooks only with this set to 1 (qinn_lib.notebook.lab).
EDIT_NOTEBOOKS_ENV = "QINN_EDIT_NOTEBOOKS"
#: Set by the reports runner for its kernels: the runs (``kind-fingerprint``, comma-separated) it
#: trained before executing the notebooks, so that a report can say "trained just now" rather
#: than "reloaded" of a run it finds finished under build/runs.
TRAINED_BY_RUNNER_ENV = "QINN_TRAINED_BY_RUNNER"
MODEL_POLICIES = ("shipped", "train")

#: Config fields that a notebook's parameters cell does not declare: the runner owns them.
RUNNER_OWNED = ("profile",)
#: The variable the runner injects into the reports it does not publish (the quick ones), so that
#: re-executing such a report (nbval, or a user opening it) runs it in the profile it was made in.
#: The published paper reports carry none: opened by hand they get the interactive default.
INJECTED_PROFILE = "qinn_profile"


def check_profile(profile: str) -> str:
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES}, got {profile!r}")
    return profile


# -- the run context ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class RunContext:
    """What the environment says about the running notebook."""

    profile: str | None  #: ``$QINN_PROFILE``; None when unset (a notebook run by hand)
    output_dir: Path  #: :func:`qinn_lib.paths.output_dir`
    models: str  #: ``$QINN_MODELS``: "shipped" or "train"
    runner: bool  #: started by ``python -m qinn_lib.reports``

    @property
    def interactive(self) -> bool:
        return self.profile is None


def _env_choice(name: str, choices: tuple[str, ...], default: str | None) -> str | None:
    return env.choice(name, choices, default)


def models_from_environment() -> str:
    """``$QINN_MODELS``: "shipped" (default) or "train"."""
    return env.choice(MODELS_ENV, MODEL_POLICIES, "shipped")


def models_set_by_user() -> bool:
    """Whether ``$QINN_MODELS`` is set (not empty)."""
    return bool(env.raw(MODELS_ENV))


def context() -> RunContext:
    """The run context from the environment (see the module docstring)."""
    return RunContext(profile=_env_choice(PROFILE_ENV, PROFILES, None), output_dir=paths.output_dir(),
                      models=models_from_environment(),
                      runner=env.raw(RUNNER_ENV) == "reports")


def runner_environment(profile: str, *, models: str = "shipped", output_dir: Path | None = None,
                       trained: tuple[str, ...] | list[str] = ()) -> dict[str, str]:
    """The environment the reports runner gives its kernels: the profile, the output folder (the
    publish folder :func:`qinn_lib.paths.figures_dir`, or ``output_dir`` for a run with
    parameters of its own), the model policy, and the runs it has just trained (``trained``). Every
    other folder variable that is set is passed on absolute (:func:`rooted_folders`): a kernel
    runs in ``notebooks/``, where a relative one would name another folder."""
    check_profile(profile)
    if models not in MODEL_POLICIES:
        raise ValueError(f"models must be one of {MODEL_POLICIES}, got {models!r}")
    folder = paths.figures_dir(profile) if output_dir is None else Path(output_dir)
    return {**rooted_folders(), PROFILE_ENV: profile, OUTPUT_DIR_ENV: str(folder), MODELS_ENV: models,
            RUNNER_ENV: "reports", TRAINED_BY_RUNNER_ENV: ",".join(sorted(trained))}


def trained_by_runner() -> set[str]:
    """The runs the reports runner trained for this report (``$QINN_TRAINED_BY_RUNNER``)."""
    return {key for key in env.raw(TRAINED_BY_RUNNER_ENV).split(",") if key}


@contextlib.contextmanager
def environment(values: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables inside the block (kernels and threads started there see them),
    restoring the previous values afterwards."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# -- checked when a command starts ---------------------------------------------------------------------
_FOLDERS = {"QINN_OUTPUT_DIR": paths.output_dir, "QINN_DATA_DIR": paths.data_dir, "QINN_RUNS_DIR": paths.runs_dir}
#: The variables that hold a folder; a command makes a relative one absolute (:func:`root_folders`).
FOLDER_VARIABLES = (*_FOLDERS, "QINN_SHIPPED_DIR", "QINN_FIGURE_STAGING")


def root_folders(start: Path | None = None) -> dict[str, str]:
    """Make every folder variable that holds a relative path (or ``~``) absolute against ``start``
    (default: the current directory, i.e. the folder where the command was started), in
    ``os.environ``: the command and everything it starts (notebook kernels, which papermill runs
    in ``notebooks/``; Dask workers) then mean the same folder. Returns the variables changed and
    their new values."""
    start = Path.cwd() if start is None else Path(start)
    changed = {}
    for name in FOLDER_VARIABLES:
        folder = env.folder(name)
        if folder is None or Path(env.raw(name)).is_absolute():
            continue
        changed[name] = os.environ[name] = os.path.abspath(start / folder)
    return changed


def rooted_folders(start: Path | None = None) -> dict[str, str]:
    """The absolute values :func:`root_folders` would set, without changing the environment
    (for the environment of a process about to be started)."""
    start = Path.cwd() if start is None else Path(start)
    return {name: os.path.abspath(start / env.folder(name)) for name in FOLDER_VARIABLES if env.folder(name) is not None}


def check_environment() -> dict[str, str]:
    """Parse every variable of :data:`qinn_lib.env.VARIABLES` that is set, before a command does any
    work; a value the package cannot use raises :class:`qinn_lib.env.EnvError` naming the variable
    (a folder variable naming an existing file, too). A relative folder is made absolute against
    the folder where the command was started (:func:`root_folders`). Returns the set variables
    and their values as the package reads them."""
    env.choice(PROFILE_ENV, PROFILES, None)
    models_from_environment()
    env.positive_int("QINN_THREADS", 1)
    env.choice("QINN_COMPILE", env.COMPILE_POLICIES, "auto")
    env.address("QINN_DASK_SCHEDULER")
    env.positive_number("QINN_DASK_TIMEOUT", 120.0)
    env.choice(EDIT_NOTEBOOKS_ENV, ("0", "1"), "0")
    for name in FOLDER_VARIABLES:
        env.folder(name)  # its form (no NUL byte, no newline), before anything is changed
    root_folders()
    found = {name: env.raw(name) for name in env.VARIABLES if env.raw(name)}
    for name in FOLDER_VARIABLES:
        folder = env.folder(name)
        if folder is None:
            continue
        if folder.exists() and not folder.is_dir():
            raise env.EnvError(f"environment variable {name}={env.raw(name)!r}: {folder} is a file, not a "
                               "folder; point it at a folder or unset it")
        found[name] = str(folder)
    return found
