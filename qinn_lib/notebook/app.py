"""Notebook 02's live panels as an app: the depth explorer and the model viewer, served by Voila
from their own slim notebook, ``notebooks/explore.ipynb`` (``python -m qinn_lib.app``, or
``voila notebooks/explore.ipynb`` from the repository root, which reads ``voila.json``).

One visitor, one kernel, one folder. Voila gives every page view a kernel of its own; with the
preheated pool of ``voila.json`` one is waiting, the notebook already run, so a visitor sees the
panels at once. Each kernel starts a session (:func:`start_session`) with its own folder
``build/app/<session>/`` (``$QINN_APP_DIR`` moves the parent): it is the kernel's output folder
(``$QINN_OUTPUT_DIR``), and every fit the visitor makes in the explorer is written there as it
finishes (``fits.json``, and the comparison as ``depth_fits.png``), atomically. Nothing a visitor
does touches another visitor's folder, the committed reports or ``figures/``. The folders are
kept after the visitor leaves (a few kB each); delete ``build/app/`` to clear them.

The profile is the environment's (``$QINN_PROFILE``; unset: paper, notebook 02's 300 fit steps
and 20k generated events); ``QINN_PROFILE=quick`` caps them (30 steps, 4k events) for a fast trial.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from qinn_lib import env, paths
from qinn_lib.atomic import atomic_write, atomic_write_text, check_writable
from qinn_lib.errors import QinnError, add_debug_option, run_cli
from qinn_lib.experiments import one_model
from qinn_lib.notebook import depth_explorer, model_viewer, stills
from qinn_lib.notebook.serving import voila_command
from qinn_lib.paths import OUTPUT_DIR_ENV
from qinn_lib.settings import context
from qinn_lib.threads import set_notebook_threads
from qinn_lib.training.budget import budget
from qinn_lib.training.config import CircuitDemoConfig, QINNRunConfig

APP_DIR_ENV = "QINN_APP_DIR"
#: CSS classes of the two panels' outer boxes (the browser test and the stills find them by these).
EXPLORER_CLASS, VIEWER_CLASS = "qinn-depth-explorer", "qinn-model-viewer"
#: The model viewer's generated events (notebook 02's, before the profile's cap) and the explorer's
#: largest depth (notebook 02's panel: ``max(max_depth, 16)``).
N_GENERATE, MAX_DEPTH = 20_000, 16


def app_dir() -> Path:
    """Parent of the sessions' folders: ``$QINN_APP_DIR`` (relative: to the repository) or ``build/app``."""
    path = env.folder(APP_DIR_ENV)  # one line naming the variable for a value that is no path
    if path is None:
        return paths.repo_root() / "build" / "app"
    return path if path.is_absolute() else paths.repo_root() / path


@dataclass(frozen=True)
class Session:
    """One visitor's kernel: its id, its folder and the profile its panels use."""

    id: str
    folder: Path
    profile: str

    def describe(self) -> str:
        try:
            shown = self.folder.relative_to(paths.repo_root())
        except ValueError:
            shown = self.folder
        return (f"[qinn] app session {self.id}: profile {self.profile}; your fits are kept in {shown}/ "
                "(this page's own kernel and folder: nothing you do here changes the reports)")


def start_session(root: Path | None = None) -> Session:
    """A new session folder under ``root`` (default :func:`app_dir`), made the kernel's output
    folder; the kernel runs torch on one thread (:func:`qinn_lib.threads.set_notebook_threads`)."""
    root = app_dir() if root is None else Path(root)
    check_writable(root, "app folder", hint=f"set ${APP_DIR_ENV} to a writable folder")
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    while True:
        sid = f"{stamp}-{secrets.token_hex(4)}"
        folder = root / sid
        try:
            folder.mkdir()
            break
        except FileExistsError:
            continue
    profile = context().profile or "paper"
    os.environ[OUTPUT_DIR_ENV] = str(folder)
    set_notebook_threads()
    atomic_write_text(folder / "session.json", json.dumps(
        {"session": sid, "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
         "profile": profile, "pid": os.getpid()}, indent=1))
    return Session(sid, folder, profile)


def fit_record(result: dict) -> dict:
    """A kept explorer fit as JSON-ready values (the trained model is not kept)."""
    out = {}
    for k, v in result.items():
        if k == "model":
            continue
        out[k] = v.tolist() if isinstance(v, (np.ndarray, np.generic)) else v
    return out


class FitLog:
    """Writes a session's kept fits: ``fits.json`` (all of them, rewritten atomically after each
    fit) and the explorer's comparison as ``depth_fits.png``."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.fits: list[dict] = []

    def add(self, result: dict, png: bytes = b"") -> Path:
        self.fits.append(fit_record(result))
        path = atomic_write_text(self.folder / "fits.json", json.dumps(self.fits, indent=1))
        if png:
            atomic_write(self.folder / "depth_fits.png", lambda fh: fh.write(png))
        return path


def panels(session: Session):
    """The depth explorer and the model viewer as notebook 02 makes them (its configuration's
    defaults, the paper's; counts capped by the session's profile), the explorer writing every
    kept fit to the session's folder."""
    profile = session.profile
    cfg = CircuitDemoConfig(profile=profile)
    data = one_model.prepare_data(budget(profile, "n_events", cfg.n_events), cfg.data_seed, dtype="float64")
    log = FitLog(session.folder)
    explorer = depth_explorer.depth_panel(data.train[:4000], max_depth=max(cfg.max_depth, MAX_DEPTH), seed=cfg.seed,
                                          isp_layers=cfg.isp_layers, steps=budget(profile, "fit_steps", cfg.fit_steps))

    def keep(result: dict) -> None:
        try:
            path = log.add(result, bytes(explorer.plot.value))
        except (QinnError, OSError) as exc:  # in the panel: the fit itself is kept in the comparison
            explorer.job.status.value += f"<br><span style='color:#b00'>not saved: {html.escape(str(exc))}</span>"
            return
        explorer.job.status.value += f" — saved to {html.escape(path.name)} ({len(log.fits)} in this session)"

    explorer.on_fit = keep
    explorer.widget.add_class(EXPLORER_CLASS)
    viewer = model_viewer.ModelViewer(n_generate=budget(profile, "n_generate", N_GENERATE), seed=cfg.seed)
    if viewer.candidates:  # open on notebook 03's QINN (Table 1), so "load" loads the report's model
        default = QINNRunConfig(profile="paper")
        viewer.choice.value = next((i for i, c in enumerate(viewer.candidates) if c.cfg == default), 0)
    viewer.widget.add_class(VIEWER_CLASS)
    return explorer, viewer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m qinn_lib.app",
        description="Serve notebook 02's live panels (depth explorer, model viewer) as a Voila app from "
                    "notebooks/explore.ipynb; every visitor gets a kernel and a folder under build/app/ of their own.")
    sub = parser.add_subparsers(dest="command")
    parser.add_argument("--port", type=int, default=8866)
    parser.add_argument("--ip", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    parser.add_argument("--browser", action="store_true", help="open a browser on it")
    shots = sub.add_parser("stills", help="screenshot both panels in the running app for the web book "
                                           "(figures/app/*.png; needs Playwright and Chromium)")
    shots.add_argument("--out", type=Path, default=None, help="folder (default figures/app)")
    add_debug_option(parser)
    args, extra = parser.parse_known_args(argv)  # the rest goes to voila (e.g. --show_tracebacks=True)
    if args.command == "stills" and extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")

    def body() -> int:
        if args.command == "stills":
            for path in stills.make_stills(args.out):
                print(f"still: {path}")
            return 0
        cmd = voila_command(args.port, ip=args.ip, browser=args.browser, extra=tuple(extra))
        print(f"[qinn] app: http://{args.ip}:{args.port}/  (Ctrl-C stops it)", flush=True)
        os.chdir(paths.repo_root())
        os.execv(cmd[0], cmd)  # voila in this process: a signal to it stops the server and its kernels
        return 0

    return run_cli(body, prog=parser.prog, debug=args.debug)
