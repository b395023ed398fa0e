"""Is the optional ``[hardware]`` extra installed? If not, say so in one line.

The extra (pyproject.toml, ``[project.optional-dependencies] hardware``) brings Qiskit, Qiskit Aer
and Qiskit IBM Runtime (its fake backends carry the calibration snapshots). This module imports
none of them: it only looks them up, so the base package can ask whether the device section can run.
Every module of this room that imports Qiskit does so in a ``try`` that turns the ImportError into
:class:`MissingExtraError`, whose message names the missing packages and the install command.
"""

from __future__ import annotations

import importlib.util

from qinn_lib.errors import QinnError

__all__ = ["MODULES", "INSTALL", "MissingExtraError", "missing", "available", "require", "missing_extra"]

#: The top-level modules the extra provides.
MODULES = ("qiskit", "qiskit_aer", "qiskit_ibm_runtime", "qiskit_qasm3_import")
#: What to type.
INSTALL = 'pip install -e ".[hardware]"'


class MissingExtraError(QinnError, ImportError):
    """The optional ``[hardware]`` extra is not installed; the message names the command."""


def missing() -> list[str]:
    """The modules of the extra that cannot be imported here."""
    out = []
    for name in MODULES:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):  # a module set to None in sys.modules, or a broken package
            found = False
        if not found:
            out.append(name)
    return out


def available() -> bool:
    """True when every module of the extra is importable."""
    return not missing()


def missing_extra(what: str, absent: list[str] | None = None) -> MissingExtraError:
    """The error for ``what`` (a module or a task) when the extra is missing."""
    absent = missing() if absent is None else absent
    names = ", ".join(absent) or "a Qiskit package"
    return MissingExtraError(f"{what} needs the optional [hardware] extra ({names} not installed): {INSTALL}")


def require(what: str) -> None:
    """Raise :class:`MissingExtraError` naming ``what`` if the extra is not installed."""
    absent = missing()
    if absent:
        raise missing_extra(what, absent)
