"""Run the notebooks as reports: ``python -m qinn_lib.reports [--profile quick|paper]``.

Every notebook ``notebooks/NN_name.ipynb`` (paired with ``NN_name.py`` by jupytext) has one cell
tagged ``parameters`` whose names are exactly the fields of its run-configuration dataclass
(:data:`~qinn_lib.notebook.parameters.NOTEBOOK_CONFIGS`). This runner

1. validates every requested parameter *before running anything*: papermill only warns about an
   unknown name, so a typo (``-p epocs 5``) would otherwise run the paper defaults for hours;
2. runs the notebooks in order through papermill into executed reports (quick profile:
   ``build/reports/quick/``; paper profile: the committed ``notebooks/`` themselves). The profile
   is not a notebook parameter: the runner gives its kernels ``QINN_PROFILE`` and points
   ``QINN_OUTPUT_DIR`` at ``figures/`` (paper) or ``figures/quick/`` (see
   :func:`qinn_lib.settings.runner_environment`); this is the only path that writes there;
3. strips saved widget state and this machine's paths from the executed notebooks
   (:func:`clean_report`) and fails loudly, naming the notebook and the cell, if any cell raises.

A notebook run with parameters of its own (``-p 03 n_layers 6``) never overwrites the default
report: its report, figures and ``results.json`` go to folders named by its parameter set
(:func:`qinn_lib.paths.parameter_run_dirs`, e.g. ``build/reports/quick/params-n_layers-6/`` and
``figures/quick/params-n_layers-6/``), and the runner says so. A notebook on a user's LHE file is
checked before anything runs: the file must hold the ``n_events`` the run asks for.

Before running any notebook it trains every run they will ask for in one Dask batch
(:func:`pretrain_runs`), and after the paper profile it regenerates the README's results table.
Finding the notebooks and checking their parameters is :mod:`qinn_lib.notebook.parameters`; the
README table is :mod:`qinn_lib.notebook.readme`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import time
from pathlib import Path
from typing import Any

from qinn_lib import paths
from qinn_lib.atomic import atomic_write_text, check_writable, create_sibling_temp
from qinn_lib.errors import add_debug_option, run_cli
from qinn_lib.evaluation.results import check_recordable, results_path
from qinn_lib.events.cache import check_lhe_count, lhe_events_available
from qinn_lib.events.sample import DataError
from qinn_lib.experiments import cluster
from qinn_lib.notebook.parameters import (
    ReportError,
    changed_parameters,
    check_parameters,
    config_class,
    declared_parameters,
    discover_notebooks,
    list_parameters,
    notebook_matches,
    parameter_set_name,
    parse_literal,
    parse_parameters,
)
from qinn_lib.notebook.readme import update_readme
from qinn_lib.settings import INJECTED_PROFILE, check_profile, environment, runner_environment
from qinn_lib.training.budget import budget
from qinn_lib.training.config import ConfigError, RunConfig

KERNEL_NAME = "python3"
# A quick-profile cell that runs longer than this is stuck, not slow (the slowest quick cell takes
# about a minute): fail with the notebook's name instead of letting CI run into its 90-minute
# limit. The paper profile has no limit, since one cell may train for hours.
QUICK_CELL_TIMEOUT = 1200


def strip_widget_state(path: Path) -> None:
    """Drop saved ipywidgets state (large, machine-specific and useless without a kernel) and the
    empty ``tags`` lists papermill adds to every cell (jupytext drops them, so a committed report
    holding them would be rewritten by the first ``jupytext --sync`` in a fresh clone)."""
    nb = json.loads(path.read_text())
    if _strip_widget_state(nb):
        atomic_write_text(path, json.dumps(nb, indent=1, ensure_ascii=False) + "\n")


def _strip_widget_state(nb: dict) -> bool:
    changed = nb.get("metadata", {}).pop("widgets", None) is not None
    for cell in nb.get("cells", []):
        if cell.get("metadata", {}).get("tags", None) == []:
            del cell["metadata"]["tags"]
            changed = True
    return changed


#: A notebook cell's code as ipykernel names it in warnings and tracebacks.
_KERNEL_CELL = re.compile(r"/tmp/ipykernel_\d+/\d+\.py")
#: An installed package's file, whatever the environment's prefix: kept from site-packages/ on.
_SITE_PACKAGES = re.compile(r"(?<![\w.])/(?:[\w.+-]+/)*site-packages/")


def scrub_paths(text: str, root: Path | str | None = None) -> str:
    """``text`` without this machine's paths: the repository root ``root`` (default
    :func:`qinn_lib.paths.repo_root`) dropped so its paths read relative, an installed package's
    file from ``site-packages/`` on, and ipykernel's temporary file of a cell as ``<cell>``."""
    root = str(paths.repo_root() if root is None else root).rstrip("/") + "/"
    return _SITE_PACKAGES.sub("site-packages/", _KERNEL_CELL.sub("<cell>", text.replace(root, "")))


def _scrub(value: Any, root: str) -> Any:
    if isinstance(value, str):
        return scrub_paths(value, root)
    if isinstance(value, list):
        return [_scrub(v, root) for v in value]
    if isinstance(value, dict):  # an output's data: its pictures hold no paths (and base64 could look like one)
        return {k: v if k.startswith("image/") else _scrub(v, root) for k, v in value.items()}
    return value


def _relative(path: Path | str, root: Path | str) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path(root).resolve()))
    except ValueError:
        return str(path)


def clean_report(path: Path, *, source: Path, published: Path, root: Path | None = None) -> None:
    """Make the executed report ``path`` (of notebook ``source``, to be published as
    ``published``) hold nothing of this machine: saved widget state and empty tags go
    (:func:`strip_widget_state`), papermill's ``input_path`` / ``output_path`` become paths
    relative to the repository, and the outputs' text loses the repository root and other
    machine paths (:func:`scrub_paths`). A committed report is then the same wherever it was made."""
    root = paths.repo_root() if root is None else Path(root)
    nb = json.loads(path.read_text())
    before = json.dumps(nb, sort_keys=True)
    _strip_widget_state(nb)
    meta = nb.get("metadata", {}).get("papermill")
    if isinstance(meta, dict):
        meta["input_path"], meta["output_path"] = _relative(source, root), _relative(published, root)
    for cell in nb.get("cells", []):
        if "outputs" in cell:
            cell["outputs"] = [_scrub(o, str(root)) for o in cell["outputs"]]
    if json.dumps(nb, sort_keys=True) != before:
        atomic_write_text(path, json.dumps(nb, indent=1, ensure_ascii=False) + "\n")


def _drop_redundant_injection(path: Path, source: Path) -> None:
    """In the committed paper reports, drop papermill's injected-parameters cell when it only
    repeats the parameters cell's own defaults, so the notebook and its .py twin stay identical.
    A run with other parameters keeps the cell: the report must say what it was run with."""
    nb = json.loads(path.read_text())
    declared = {k: parse_literal(v) for k, v in declared_parameters(source).items()}
    keep = []
    for cell in nb["cells"]:
        if "injected-parameters" in cell.get("metadata", {}).get("tags", []):
            import ast

            values = {}
            for node in ast.parse("".join(cell["source"])).body:
                if isinstance(node, ast.Assign) and len(node.targets) == 1:
                    values[node.targets[0].id] = ast.literal_eval(node.value)
            if all(declared.get(k) == v for k, v in values.items()):
                continue
        keep.append(cell)
    if len(keep) != len(nb["cells"]):
        nb["cells"] = keep
        atomic_write_text(path, json.dumps(nb, indent=1, ensure_ascii=False) + "\n")


def _planned_config(notebook: Path, params: dict[str, Any], profile: str) -> RunConfig:
    """The run configuration a notebook will build from ``params`` (its declared defaults with
    ``params`` on top), as checked by :func:`check_parameters`."""
    values = {name: params[name] if name in params else parse_literal(default)
              for name, default in declared_parameters(notebook).items()}
    values["profile"] = profile
    return config_class(notebook)(**values)


def pretrain_runs(plan: list[tuple[Path, dict[str, Any]]], profile: str, *, models: str = "shipped",
                  log=print) -> set[str]:
    """Train every run that the planned notebooks will ask for, in ONE Dask batch (longest first,
    both cores busy until the last run; :mod:`qinn_lib.experiments.jobs`), before any notebook executes.
    The notebooks then reload the finished checkpoints. Without this, each notebook would train
    its own runs and leave a core idle at the end of every ensemble. Returns the runs it trained
    (:func:`qinn_lib.experiments.one_model.run_key`), which the kernels are told
    (:data:`qinn_lib.settings.TRAINED_BY_RUNNER_ENV`) so that a report says it trained them."""
    from qinn_lib.experiments import jobs, one_model, plans  # deferred: torch and FrEIA (~1.6 s), only for runs to plan

    configs = []
    for nb, params in plan:
        for run_cfgs in plans.planned_runs(_planned_config(nb, params, profile)).values():
            configs.extend(run_cfgs)
    if not configs:
        return set()
    start = time.perf_counter()
    with environment({"QINN_MODELS": models}):
        to_train = {one_model.run_key(c) for c in configs if one_model.availability(c, models) is None}
    try:
        with environment({"QINN_MODELS": models}):  # shipped models count as trained, as in the kernels
            jobs.train_runs(configs, log=lambda msg: log(f"[qinn] {msg}"))
    finally:
        # The notebooks run in kernels of their own: the runner's idle workers would only hold
        # memory (and log heartbeat errors at exit) until the last notebook finishes.
        cluster.close_default_client()
    log(f"[qinn] every run of the planned notebooks is trained ({time.perf_counter() - start:.1f} s)")
    return to_train


def check_event_files(plan: list[tuple[Path, dict[str, Any]]], profile: str) -> None:
    """Every notebook on a user's LHE file must find the ``n_events`` it asks for (after the
    profile's cap) among the file's events that pass the cuts; checked before anything runs
    (the file is parsed once and cached, as the notebooks would). Raises :class:`ConfigError`
    naming the notebook, the file and both counts."""
    available: dict[str, int] = {}
    for nb, params in plan:
        cfg = _planned_config(nb, params, profile)
        if not getattr(cfg, "lhe_file", ""):
            continue
        try:
            if cfg.lhe_file not in available:
                available[cfg.lhe_file] = lhe_events_available(cfg.lhe_file)
            check_lhe_count(cfg.lhe_file, available[cfg.lhe_file], budget(profile, "n_events", cfg.n_events))
        except DataError as err:
            raise ConfigError(f"{nb.name}: {err}") from None


def output_folders(notebook: Path, params: dict[str, Any], profile: str) -> tuple[Path, Path, str]:
    """``(reports folder, figures folder, parameter-set name)`` of one notebook run: the profile's
    own folders for the default parameters, else folders named by the parameters that differ
    from the notebook's defaults (:func:`qinn_lib.paths.parameter_run_dirs`)."""
    name = parameter_set_name(changed_parameters(notebook, params))
    if not name:
        return paths.reports_dir(profile), paths.figures_dir(profile), ""
    reports, figures = paths.parameter_run_dirs(profile, name)
    return reports, figures, name


def _shown(path: Path) -> str:
    try:
        return f"{path.relative_to(paths.repo_root())}/"
    except ValueError:
        return f"{path}/"


class _quiet_about:
    """Drop papermill's "Passed unknown parameter: NAME" warning for the runner's own variable."""

    def __init__(self, name: str):
        import logging

        self.logger, self.message = logging.getLogger("papermill"), f"Passed unknown parameter: {name}"

    def filter(self, record) -> bool:
        return record.getMessage() != self.message

    def __enter__(self):
        self.logger.addFilter(self)

    def __exit__(self, *exc):
        self.logger.removeFilter(self)


def run(profile: str = "quick", only: list[str] | None = None,
        parameters: dict[str, dict[str, Any]] | None = None, *, progress: bool = True,
        log=print, models: str = "shipped", pretrain: bool = True) -> list[Path]:
    """Execute the notebooks in order. ``only`` selects notebooks by number or stem prefix
    (``["01", "03"]``); ``parameters`` maps a notebook stem or number (or "all") to overrides;
    ``models="train"`` makes the kernels ignore shipped models (``QINN_MODELS``).
    ``pretrain``: first train every run the notebooks need, in one Dask batch (:func:`pretrain_runs`).
    Returns the executed report paths."""
    import papermill
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    check_profile(profile)
    notebooks = discover_notebooks()
    if not notebooks:
        raise ReportError(f"no notebooks found in {paths.notebooks_dir()}")
    if only:
        chosen = [nb for nb in notebooks if any(nb.stem.startswith(sel) for sel in only)]
        unknown = [sel for sel in only if not any(nb.stem.startswith(sel) for nb in notebooks)]
        if unknown:
            raise ReportError(f"no notebook matches {unknown}; have {[nb.stem for nb in notebooks]}")
        notebooks = chosen
    parameters = parameters or {}
    for key in parameters:
        if not any(notebook_matches(key, nb.stem) for nb in notebooks):
            raise ReportError(f"parameters given for {key!r}, which is not among {[nb.stem for nb in notebooks]}")
    # Validate everything up front: a typo in the last notebook must not cost an hour of the first.
    plan = []
    for nb in notebooks:
        overrides: dict[str, Any] = {}
        for key, values in parameters.items():
            if notebook_matches(key, nb.stem):
                overrides.update(values)
        plan.append((nb, check_parameters(nb, overrides, profile)))

    # Everything the notebooks write must be writable before the first one computes anything.
    folders = {nb: output_folders(nb, params, profile) for nb, params in plan}
    for out_dir, fig_dir, _ in dict.fromkeys(folders.values()):
        check_writable(out_dir, "reports folder")
        check_recordable(folder=fig_dir)  # the figures folder is writable and its results file readable
    check_writable(paths.runs_dir(), "runs folder", "set QINN_RUNS_DIR to a writable folder")
    check_writable(paths.data_dir(), "event cache folder", "set QINN_DATA_DIR to a writable folder")
    check_event_files(plan, profile)
    trained = pretrain_runs(plan, profile, models=models, log=log) if pretrain else set()
    written = []
    for nb, params in plan:
        out_dir, fig_dir, name = folders[nb]
        out = out_dir / nb.name
        if name:
            log(f"[qinn] {nb.name} runs with parameters of its own ({', '.join(f'{k}={v}' for k, v in changed_parameters(nb, params).items())}): "
                f"its report goes to {_shown(out_dir)}, its figures and results.json to {_shown(fig_dir)}; "
                "the default report is left as it is")
        log(f"[qinn] {profile}: running {nb.name} with {params}")
        start = time.perf_counter()
        # Execute into a temporary file and move it into place: in the paper profile the output
        # is the source notebook itself, which must never be left half-written. (The temporary
        # has the mode of the notebook it replaces: see qinn_lib.atomic.)
        fd, tmp = create_sibling_temp(out, suffix=".ipynb")
        os.close(fd)
        failed = out_dir / f"{nb.stem}.failed.ipynb"
        # A quick report records its profile (not a parameter: papermill's warning about it is
        # dropped), so that nbval re-executes it as it was made; the published paper reports do not.
        injected = params if profile == "paper" else {**params, INJECTED_PROFILE: profile}
        try:
            with environment(runner_environment(profile, models=models, output_dir=fig_dir, trained=sorted(trained))), \
                    _quiet_about(INJECTED_PROFILE):
                papermill.execute_notebook(
                    str(nb), str(tmp), parameters=injected, kernel_name=KERNEL_NAME,
                    cwd=str(paths.notebooks_dir()), progress_bar=progress, log_output=False,
                    execution_timeout=QUICK_CELL_TIMEOUT if profile == "quick" else None,
                )
        except BaseException as err:
            # Whatever stopped it (a failing cell, a stuck cell, a dead kernel, Ctrl-C), papermill
            # has saved the cells executed so far: keep them, never over the report itself.
            kept = _keep_partial(tmp, failed)
            where = f"the partly executed notebook is {failed}" if kept else "no cell had run"
            if isinstance(err, CellTimeoutError):
                what = f": a cell ran longer than {QUICK_CELL_TIMEOUT} s in the {profile} profile and was stopped"
            elif isinstance(err, papermill.PapermillExecutionError):
                what = f" failed in cell {err.exec_count} ({err.ename}: {err.evalue})"
            elif isinstance(err, DeadKernelError):
                what = f": execution stopped ({type(err).__name__}: {err}; was the kernel killed, e.g. out of memory?)"
            elif isinstance(err, Exception):
                what = f": execution stopped ({type(err).__name__}: {err})"
            else:  # KeyboardInterrupt, SystemExit: say what was kept, then let it through
                log(f"[qinn] {nb.name} interrupted; {where}")
                raise
            raise ReportError(f"{nb.name}{what}; {where}") from None
        clean_report(Path(tmp), source=nb, published=out)
        if profile == "paper" and not name:
            _drop_redundant_injection(Path(tmp), nb)
        os.replace(tmp, out)
        twin = nb.with_suffix(".py")
        if out.parent == nb.parent and twin.is_file():
            # Keep the jupytext pair consistent: the .py (the source of truth for inputs) must not
            # look older than the executed notebook written next to it.
            os.utime(twin)
        (out_dir / f"{nb.stem}.failed.ipynb").unlink(missing_ok=True)
        log(f"[qinn] {nb.name} done in {time.perf_counter() - start:.1f} s -> {out}")
        written.append(out)
    return written


def _keep_partial(tmp: Path, failed: Path) -> bool:
    """Move papermill's partly written output ``tmp`` to ``failed``; drop it if nothing was written."""
    try:
        if tmp.stat().st_size == 0:
            tmp.unlink()
            return False
        os.replace(tmp, failed)
        return True
    except FileNotFoundError:
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m qinn_lib.reports",
        description="Run the qinn notebooks in order through papermill as executed reports.")
    parser.add_argument("--profile", default="quick", choices=paths.PROFILES,
                        help="quick: capped counts, reports in build/reports/quick (default); "
                             "paper: Table 1 settings, executed notebooks written to notebooks/")
    parser.add_argument("--only", nargs="+", metavar="NN", help="run only these notebooks (e.g. 01 03)")
    parser.add_argument("-p", "--parameter", nargs=3, action="append", default=[],
                        metavar=("NOTEBOOK", "NAME", "VALUE"),
                        help="override a parameter, e.g. -p 03 epochs 50 (VALUE is parsed by the "
                             "parameter's type: integer, number, text, or comma-separated numbers); "
                             "NOTEBOOK 'all' sets it in every notebook, e.g. -p all lhe_file events.lhe.gz")
    parser.add_argument("--retrain", action="store_true",
                        help="ignore the shipped trained models (qinn_lib.experiments.store): reload or train runs under build/runs")
    parser.add_argument("--list", action="store_true", help="list notebooks and their parameters")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--scheduler", metavar="ADDRESS",
                        help="train on this Dask scheduler (e.g. tcp://host:8786) instead of one local "
                             "worker per core; the notebooks inherit it (QINN_DASK_SCHEDULER)")
    parser.add_argument("--update-readme", action="store_true",
                        help="only regenerate the README's results section from figures/results.json (paper profile)")
    add_debug_option(parser)
    args = parser.parse_args(argv)

    def body() -> int:
        if args.update_readme:  # the README shows the paper profile's results, whatever --profile says
            print(f"[qinn] updated {update_readme('paper')} from {results_path('paper')}")
            return 0
        if args.list:
            print("\n".join(list_parameters()))
            return 0
        if args.scheduler:

            cluster.get_client(args.scheduler)  # fails within seconds, naming the address, before any work
            os.environ[cluster.SCHEDULER_ENV] = args.scheduler  # inherited by the notebook kernels
        start = time.perf_counter()
        written = run(args.profile, args.only, parse_parameters(args.parameter),
                      progress=not args.no_progress, models="train" if args.retrain else "shipped")
        published = [p for p in written if p.parent == paths.reports_dir(args.profile)]
        if args.profile == "paper" and published:
            update_readme("paper")  # from the default reports' results only (a parameter run has its own file)
        where = (f"figures in {paths.figures_dir(args.profile)}" if len(published) == len(written)
                 else "runs with parameters of their own went to their own folders (see above)")
        print(f"[qinn] {len(written)} notebook(s) executed in {time.perf_counter() - start:.1f} s "
              f"(profile {args.profile}); {where}")
        return 0

    return run_cli(body, prog=parser.prog, debug=args.debug,
                   interrupted="the notebooks finished before are kept and the one running was kept as "
                               "NN_name.failed.ipynb (see above); no finished report was overwritten")

