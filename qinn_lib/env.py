"""The package's environment variables, each with one parser, so that a bad value is reported in
one line naming the variable, and the same way wherever it is read.

Every ``QINN_*`` variable the package reads is listed in :data:`VARIABLES` with what it holds. The
modules that use a variable read it through the parsers here (:func:`choice`, :func:`positive_int`,
:func:`positive_number`, :func:`folder`, :func:`address`); a value they cannot use raises :class:`EnvError`, a
:class:`~qinn_lib.errors.QinnError` (so a command prints one line and exits 2, never "internal
error"). :func:`qinn_lib.settings.check_environment` parses every variable at once when a command
starts, before any work.

An empty value means unset, for every variable.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from qinn_lib.errors import QinnError

#: Every environment variable the package reads: name -> what it holds (the accepted values).
#: ``QINN_RUNNER``, ``QINN_TRAINED_BY_RUNNER``, ``QINN_FIGURE_STAGING`` and ``QINN_LAB_PROTECTED`` are set by the package
#: itself for the processes it starts; they are listed so that nothing reads an unlisted variable.
VARIABLES: dict[str, str] = {
    "QINN_PROFILE": "quick or paper",
    "QINN_MODELS": "shipped or train",
    "QINN_OUTPUT_DIR": "a folder for a notebook run's figures and results",
    "QINN_DATA_DIR": "a folder for the event cache",
    "QINN_RUNS_DIR": "a folder for checkpoints",
    "QINN_SHIPPED_DIR": "a folder of shipped models",
    "QINN_THREADS": "an integer >= 1 (torch threads of a notebook kernel)",
    "QINN_COMPILE": "auto, always or never (or 1/0, true/false)",
    "QINN_DASK_SCHEDULER": "a Dask scheduler address, e.g. tcp://host:8786",
    "QINN_DASK_TIMEOUT": "seconds (a number > 0, default 120) to wait for a Dask scheduler to have a worker",
    "QINN_EDIT_NOTEBOOKS": "1 to let JupyterLab save the committed notebooks (anything else: protected)",
    "QINN_RUNNER": "set by the reports runner for its kernels",
    "QINN_TRAINED_BY_RUNNER": "set by the reports runner for its kernels",
    "QINN_LAB_PROTECTED": "set by the JupyterLab extension for its kernels",
    "QINN_FIGURE_STAGING": "set by the reports runner for its kernels (the folder a notebook's figures are staged in)",
    "QINN_APP_DIR": "a folder for the app's visitor sessions (default build/app)",
    "QINN_CHROMIUM": "the Chromium executable the stills are taken with (default /usr/bin/chromium)",
}


#: ``QINN_COMPILE``'s accepted spellings -> the policy (:func:`qinn_lib.compiling.compile_policy`).
COMPILE_POLICIES: dict[str, str] = {"auto": "auto", "1": "always", "always": "always", "true": "always",
                                    "0": "never", "never": "never", "false": "never"}


class EnvError(QinnError, ValueError):
    """An environment variable holds a value the package cannot use; the message names it."""


def raw(name: str) -> str:
    """``$name`` stripped; "" when unset or empty."""
    if name not in VARIABLES:
        raise KeyError(f"{name} is not a known variable of the package (qinn_lib.env.VARIABLES)")
    return os.environ.get(name, "").strip()


def _bad(name: str, value: str, must: str) -> EnvError:
    return EnvError(f"environment variable {name}={value!r}: must be {must}; "
                    f"set it to such a value or unset it")


def choice(name: str, choices: tuple[str, ...] | dict[str, str], default: str | None) -> str | None:
    """One of ``choices`` (a dict maps accepted spellings to the value), or ``default`` when unset."""
    value = raw(name)
    if not value:
        return default
    key = value.lower() if isinstance(choices, dict) else value
    if key not in choices:
        names = list(dict.fromkeys(choices.values())) if isinstance(choices, dict) else list(choices)
        raise _bad(name, value, f"one of {names}")
    return choices[key] if isinstance(choices, dict) else value


def positive_int(name: str, default: int) -> int:
    """An integer >= 1, or ``default`` when unset."""
    value = raw(name)
    if not value:
        return default
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise _bad(name, value, "an integer >= 1")
    return number


def positive_number(name: str, default: float) -> float:
    """A finite number > 0, or ``default`` when unset."""
    value = raw(name)
    if not value:
        return default
    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    if not (0 < number < float("inf")):
        raise _bad(name, value, "a number of seconds > 0")
    return number


def folder(name: str) -> Path | None:
    """The folder ``$name`` (``~`` expanded; a relative one is left relative for the caller to
    root), or None when unset. Refused: a value holding a NUL byte or a newline (a pasted command,
    not a path)."""
    value = raw(name)
    if not value:
        return None
    if "\0" in value or "\n" in value:
        raise _bad(name, value, "a folder path")
    return Path(value).expanduser()


#: A Dask scheduler address: ``[tcp|tls|inproc|ucx|ws|wss]://host[:port]`` or ``host:port``.
_ADDRESS = re.compile(r"(?:(?:tcp|tls|inproc|ucx|ws|wss)://)?[^\s/:]+(?::\d{1,5})?(?:/[^\s]*)?")


def address(name: str) -> str | None:
    """A scheduler address (checked for form only: whether it answers is the cluster's business,
    with a timeout), or None when unset."""
    value = raw(name)
    if not value:
        return None
    if not _ADDRESS.fullmatch(value) or ("://" not in value and ":" not in value):
        raise _bad(name, value, "a Dask scheduler address such as tcp://host:8786")
    return value
