"""JupyterLab: the committed reports open read-only, so Run All can never rewrite them.

The notebooks in ``notebooks/`` are the executed paper-profile reports. Run by hand, a notebook
writes its figures and results under ``build/interactive/`` (:mod:`qinn_lib.notebook.profiles`), but
JupyterLab itself would autosave the re-run notebook over the committed one (and jupytext its
``.py`` twin). This Jupyter server extension marks ``notebooks/NN_*.ipynb`` and their ``.py``
twins as not writable: JupyterLab then shows them as read-only, never autosaves them, and offers
*Save as* instead of *Save*; a save request that arrives anyway is refused. Set
``QINN_EDIT_NOTEBOOKS=1`` before starting JupyterLab to edit the notebooks themselves.

Enable it once per environment (writes a config file into the environment's ``etc/jupyter``)::

    python -m qinn_lib.lab install      # or: jupyter server extension enable --sys-prefix qinn_lib.lab
    jupyter lab notebooks/              # as root (e.g. in a container) add --allow-root

``python -m qinn_lib.lab status`` says whether it is enabled.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path

from qinn_lib import paths
from qinn_lib.atomic import atomic_write_text
from qinn_lib.settings import root_folders

EDIT_ENV = "QINN_EDIT_NOTEBOOKS"
#: Set by the extension in the server's environment, which every kernel it starts inherits: lets a
#: notebook tell whether its JupyterLab protects the committed reports.
PROTECTED_ENV = "QINN_LAB_PROTECTED"
#: The name the Jupyter config file holds (written by `install`): the command module `qinn_lib.lab`,
#: which hands on the hooks below, so a config written before the layered layout still loads.
EXTENSION = "qinn_lib.lab"
CONFIG_NAME = "qinn_lib.json"
_REPORT_NAME = re.compile(r"[0-9][0-9]_[^/]*\.(ipynb|py)")


def is_committed_report(os_path: str | os.PathLike) -> bool:
    """True for ``notebooks/NN_*.ipynb`` and their ``.py`` twins (unless ``QINN_EDIT_NOTEBOOKS=1``)."""
    if os.environ.get(EDIT_ENV) == "1":
        return False
    p = Path(os_path).resolve()
    return p.parent == paths.notebooks_dir().resolve() and bool(_REPORT_NAME.fullmatch(p.name))


def protect(base: type) -> type:
    """A contents manager class derived from ``base`` that reports committed notebooks as not
    writable and refuses to save them."""
    from tornado import web

    class ProtectedReports(base):  # type: ignore[misc, valid-type]
        def _protected(self, path: str) -> bool:
            try:
                return is_committed_report(self._get_os_path(path.strip("/")))
            except web.HTTPError:  # a path outside the root
                return False

        def _mark(self, model):
            if model is None:
                return model
            if model.get("type") != "directory" and self._protected(model.get("path", "")):
                model["writable"] = False
            children = model.get("content") if model.get("type") == "directory" else None
            for child in children or []:
                if self._protected(child.get("path", "")):
                    child["writable"] = False
            return model

        def get(self, path, *args, **kwargs):
            model = super().get(path, *args, **kwargs)
            if hasattr(model, "__await__"):
                async def marked():
                    return self._mark(await model)
                return marked()
            return self._mark(model)

        def save(self, model, path=""):
            if self._protected(path):
                raise web.HTTPError(
                    403, f"{path} is a committed qinn report and opens read-only; use File > Save As "
                    f"(e.g. into build/), or start JupyterLab with {EDIT_ENV}=1 to edit the notebooks")
            return super().save(model, path)

    ProtectedReports.__name__ = ProtectedReports.__qualname__ = f"QinnProtected{base.__name__}"
    return ProtectedReports


def _jupyter_server_extension_points():
    return [{"module": EXTENSION}]


def _load_jupyter_server_extension(serverapp) -> None:
    """Replace the server's contents manager by :func:`protect` of its class (after or before
    jupytext's extension, which derives its own class the same way: either order composes)."""
    cls = serverapp.contents_manager_class
    if not getattr(cls, "_qinn_protected", False):
        cls = protect(cls)
        cls._qinn_protected = True
        serverapp.contents_manager_class = cls
        serverapp.contents_manager = cls(parent=serverapp, log=serverapp.log)
        serverapp.session_manager.contents_manager = serverapp.contents_manager
        serverapp.web_app.settings["contents_manager"] = serverapp.contents_manager
    os.environ[PROTECTED_ENV] = "1"
    # The kernels run in their notebook's folder: a relative QINN_*_DIR means the folder where
    # JupyterLab was started, so it is made absolute here, where that folder is known.
    for name, value in root_folders().items():
        serverapp.log.info(f"[qinn] {name} is {value} for the kernels")

    serverapp.log.info(f"[qinn] the committed notebooks in {paths.notebooks_dir()} open read-only "
                       f"({EDIT_ENV}=1 to edit them)")


load_jupyter_server_extension = _load_jupyter_server_extension  # older servers' name


def config_path(prefix: str | os.PathLike | None = None) -> Path:
    """Where ``install`` writes the extension's switch: ``<prefix>/etc/jupyter/jupyter_server_config.d``."""
    return Path(prefix or sys.prefix) / "etc" / "jupyter" / "jupyter_server_config.d" / CONFIG_NAME


def install(prefix: str | os.PathLike | None = None) -> Path:
    """Enable the extension for every Jupyter server of the environment at ``prefix`` (default:
    this Python's)."""
    path = config_path(prefix)
    atomic_write_text(path, json.dumps({"ServerApp": {"jpserver_extensions": {EXTENSION: True}}}, indent=2) + "\n")
    return path


def unprotected_session_warning() -> str:
    """A warning when this kernel runs a committed notebook in a Jupyter server that does not
    protect it (so autosave would overwrite the report), else ''."""
    session = os.environ.get("JPY_SESSION_NAME", "")
    if not session or os.environ.get(PROTECTED_ENV) == "1" or not is_committed_report(session):
        return ""
    return (f"this JupyterLab will autosave your run over the committed report {Path(session).name}. "
            "Stop it, run `python -m qinn_lib.lab install` once, and start JupyterLab again "
            "(the reports then open read-only), or work on a copy (File > Save As into build/).")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m qinn_lib.lab", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("install", "status"))
    parser.add_argument("--prefix", default=None, help="environment to configure (default: this Python's)")
    args = parser.parse_args(argv)
    if args.command == "install":
        print(f"[qinn] enabled {EXTENSION} in {install(args.prefix)}: committed notebooks open read-only in JupyterLab")
        return 0
    path = config_path(args.prefix)
    on = path.is_file() and json.loads(path.read_text()).get("ServerApp", {}).get("jpserver_extensions", {}).get(EXTENSION)
    print(f"{EXTENSION}: {'enabled' if on else 'not enabled'} ({path})")
    return 0 if on else 1

