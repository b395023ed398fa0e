"""Where things live. Every path is rooted at the repository, never at the current directory:
papermill and nbval start kernels in different working directories, so a relative path would
scatter figures around the tree.

Environment overrides (useful on clusters or read-only checkouts):
``QINN_DATA_DIR`` for the event cache, ``QINN_RUNS_DIR`` for checkpoints, ``QINN_OUTPUT_DIR`` for
what a notebook run writes (figures and results; see :func:`output_dir`), ``QINN_SHIPPED_DIR`` for
the shipped models. A relative value is made absolute against the folder where the command was
started (:func:`env_folder`); an empty one means unset.
"""

from __future__ import annotations

from pathlib import Path

from qinn_lib import env

PROFILES = ("quick", "paper")


def shipped_models_dir() -> Path:
    """The package data folder of the trained models shipped with the package (``qinn_lib/shipped_models/``)."""
    return Path(__file__).resolve().parent / "shipped_models"


def repo_root() -> Path:
    """The repository root: the folder holding ``pyproject.toml`` above this package."""
    here = Path(__file__).resolve().parent
    for candidate in (here.parent, *here.parents):
        if (candidate / "pyproject.toml").is_file() and (candidate / "qinn_lib").is_dir():
            return candidate
    raise RuntimeError(
        f"cannot locate the qinn repository root above {here}; install with `pip install -e .` "
        "from a checkout so that figures and reports land inside the repository"
    )


def _check_profile(profile: str) -> str:
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES}, got {profile!r}")
    return profile


def env_folder(name: str, default: Path) -> Path:
    """``$name`` if set and not empty, else ``default``. Every command makes a relative value
    absolute against the folder it was started in, before any work, for itself and every kernel
    or worker it starts (:func:`qinn_lib.settings.check_environment`; the JupyterLab extension
    does so for its kernels). A relative value no command has rooted (a kernel started some other
    way) is taken relative to the repository root, never to the current directory: a notebook
    kernel runs in ``notebooks/``, so the current directory would make a report and
    ``python -m qinn_lib.runs`` use two different folders (and retrain what the other trained)."""
    path = env.folder(name)
    if path is None:
        return default
    return path if path.is_absolute() else repo_root() / path


def data_dir() -> Path:
    """Cache of generated events (git-ignored)."""
    return env_folder("QINN_DATA_DIR", repo_root() / "data")


def runs_dir() -> Path:
    """Checkpoints and training logs (git-ignored)."""
    return env_folder("QINN_RUNS_DIR", repo_root() / "build" / "runs")


def search_dir() -> Path:
    """Journals of the hyper-parameter searches: ``search/`` beside the runs folder (git-ignored)."""
    return runs_dir().parent / "search"


def notebooks_dir() -> Path:
    return repo_root() / "notebooks"


def reports_dir(profile: str) -> Path:
    """Executed notebooks. The paper profile *is* the committed notebooks in ``notebooks/``
    (users open them with outputs); quick-profile reports go to a git-ignored build folder."""
    _check_profile(profile)
    if profile == "paper":
        return notebooks_dir()
    return repo_root() / "build" / "reports" / profile


def parameter_run_dirs(profile: str, name: str) -> tuple[Path, Path]:
    """``(reports, figures)`` folders of a report run with parameters of its own, named ``name``
    (:func:`qinn_lib.notebook.parameters.parameter_set_name`): ``build/reports/<profile>/<name>/``
    and ``<figures_dir(profile)>/<name>/`` (git-ignored: ``figures/quick/`` and ``figures/params-*/``).
    Never the default report's folders, which such a run would otherwise overwrite."""
    _check_profile(profile)
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"parameter-set name must be a plain folder name, got {name!r}")
    reports = reports_dir(profile) if profile != "paper" else repo_root() / "build" / "reports" / profile
    return reports / name, figures_dir(profile) / name


def figures_dir(profile: str = "paper") -> Path:
    """Where the *reports runner* publishes a profile's figures and results: ``figures/`` for the
    paper profile (committed), ``figures/quick/`` for the quick one (ignored). A notebook never
    picks this itself: it writes to :func:`output_dir`, which the runner points here."""
    _check_profile(profile)
    path = repo_root() / "figures"
    return path if profile == "paper" else path / profile


#: Set by ``python -m qinn_lib.reports`` for its kernels (or by a user): where a notebook run writes.
OUTPUT_DIR_ENV = "QINN_OUTPUT_DIR"


def interactive_dir() -> Path:
    """Default output folder of a notebook run outside the reports runner (git-ignored)."""
    return repo_root() / "build" / "interactive"


def output_dir() -> Path:
    """Where the running notebook writes its figures and results: ``$QINN_OUTPUT_DIR`` if set
    (the reports runner sets it to :func:`figures_dir` of its profile), else ``build/interactive/``.

    So running a committed notebook cell by cell in JupyterLab never rewrites ``figures/``: only
    the explicit publish path (``python -m qinn_lib.reports --profile paper``) writes there."""
    return env_folder(OUTPUT_DIR_ENV, interactive_dir())


def figure_path(name: str, suffix: str = ".pdf", folder: Path | None = None) -> Path:
    """Path of a figure file in ``folder`` (default :func:`output_dir`), creating the folder.
    ``name`` has no suffix, e.g. ``"01_mll_fit"``."""
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"figure name must be a plain file stem, got {name!r}")
    if suffix not in (".pdf", ".png", ".svg"):
        raise ValueError(f"figure suffix must be .pdf, .png or .svg, got {suffix!r}")
    folder = output_dir() if folder is None else Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{name}{suffix}"
