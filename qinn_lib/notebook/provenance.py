"""Which run made which figure (issue 24, case 3).

Every figure :func:`qinn_lib.notebook.plots.save` writes is recorded in ``figures.json`` beside
it: the notebook (the figure name's number), the profile, the seed, the run configuration's
fingerprint and the parameters that differ from its defaults (the last configuration
:func:`qinn_lib.notebook.profiles.notebook_config` built in this kernel), and when it was written
(UTC). So a figure in ``figures/`` says which report it belongs to.

The reports runner publishes a notebook's figures only when the notebook succeeds
(:func:`staged_figures`): the kernel writes them into a staging folder ``.staging-<notebook>``
inside the figures folder (``$QINN_FIGURE_STAGING``), and they are moved into place (each file
with ``os.replace``, their ``figures.json`` entries merged) after the last cell ran. A notebook
that fails or is interrupted leaves the published figures as they were; what it drew is kept in
``build/failed-figures/<notebook>/`` for a look. (Results files are not staged: ``record`` is a
notebook's last step, under the results lock.)
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from qinn_lib import paths
from qinn_lib.atomic import atomic_write_text
from qinn_lib.settings import environment

__all__ = ["MANIFEST", "STAGING_ENV", "figure_folder", "note_config", "record", "staged_figures", "read_manifest", "failed_figures_dir"]

#: The provenance file of a figures folder.
MANIFEST = "figures.json"
#: Set by the reports runner for its kernel: where :func:`qinn_lib.notebook.plots.save` writes.
STAGING_ENV = "QINN_FIGURE_STAGING"

_CURRENT: dict[str, Any] = {}


def figure_folder() -> Path:
    """Where a figure goes: the runner's staging folder (``$QINN_FIGURE_STAGING``) if set, else the
    run's output folder (:func:`qinn_lib.paths.output_dir`)."""
    staging = os.environ.get(STAGING_ENV, "").strip()
    return Path(staging) if staging else paths.output_dir()


def note_config(cfg: Any) -> None:
    """Remember the notebook's run configuration (called by ``notebook_config``) for the figures' provenance."""
    import dataclasses

    defaults = type(cfg)() if dataclasses.is_dataclass(cfg) else None
    changed = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)
               if f.name != "profile" and defaults is not None and getattr(cfg, f.name) != getattr(defaults, f.name)}
    _CURRENT.clear()
    _CURRENT.update({"config": type(cfg).__name__, "profile": getattr(cfg, "profile", None),
                     "seed": getattr(cfg, "seed", None), "fingerprint": cfg.fingerprint(),
                     "parameters": json.loads(json.dumps(changed, default=str))})


def read_manifest(folder: Path) -> dict[str, Any]:
    """The figures folder's ``figures.json`` (``{}`` if absent or unreadable: it is rewritten whole)."""
    try:
        data = json.loads((Path(folder) / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _lock(folder: Path):
    from filelock import FileLock

    return FileLock(Path(folder) / f".{MANIFEST}.lock", timeout=120)


def _merge(folder: Path, entries: dict[str, Any]) -> None:
    with _lock(folder):
        manifest = read_manifest(folder)
        manifest.update(entries)
        atomic_write_text(Path(folder) / MANIFEST, json.dumps(dict(sorted(manifest.items())), indent=1) + "\n")


def record(files: Sequence[Path]) -> None:
    """Record the provenance of the figure ``files`` (one folder) in that folder's ``figures.json``."""
    if not files:
        return
    written = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    entries = {Path(f).name: {"notebook": Path(f).stem.split("_")[0], **_CURRENT, "written": written} for f in files}
    _merge(Path(files[0]).parent, entries)


def _publish(stage: Path, folder: Path) -> int:
    staged = read_manifest(stage)
    moved = 0
    for f in sorted(stage.iterdir()):
        if f.is_file() and not f.name.startswith(".") and f.name != MANIFEST:
            os.replace(f, folder / f.name)
            moved += 1
    if staged:
        _merge(folder, staged)
    shutil.rmtree(stage, ignore_errors=True)
    return moved


def failed_figures_dir(notebook: str) -> Path:
    """Where the figures of a notebook that did not finish are kept: ``build/failed-figures/<notebook>/``."""
    return paths.repo_root() / "build" / "failed-figures" / notebook


@contextlib.contextmanager
def staged_figures(folder: Path, notebook: str, *, log=print) -> Iterator[Path]:
    """Inside the block, figures go to a staging folder (module docstring); they replace those in
    ``folder`` only if the block ends normally. Otherwise they are moved to
    ``build/failed-figures/<notebook>/`` and ``log`` says so; the exception goes on."""
    folder = Path(folder)
    stage = folder / f".staging-{notebook}"
    shutil.rmtree(stage, ignore_errors=True)  # left by a runner that was killed
    stage.mkdir(parents=True)
    try:
        with environment({STAGING_ENV: str(stage)}):
            yield stage
    except BaseException:
        drawn = [f for f in stage.iterdir() if f.is_file() and f.name != MANIFEST]
        if drawn:
            failed = failed_figures_dir(notebook)
            shutil.rmtree(failed, ignore_errors=True)
            failed.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(stage), str(failed))
            log(f"[qinn] {notebook} did not finish: the {len(drawn)} figure file(s) it wrote are in {failed}; "
                f"{folder} keeps its figures as they were")
        shutil.rmtree(stage, ignore_errors=True)
        raise
    _publish(stage, folder)
