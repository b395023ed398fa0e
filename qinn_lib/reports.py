"""Run the notebooks as reports: ``python -m qinn_lib.reports [--profile quick|paper]``.

Every notebook ``notebooks/NN_name.ipynb`` (paired with ``NN_name.py`` by jupytext) has one cell
tagged ``parameters`` whose names are exactly the fields of its run-configuration dataclass
(:data:`NOTEBOOK_CONFIGS`). This runner

1. validates every requested parameter *before running anything*: papermill only warns about an
   unknown name, so a typo (``-p epocs 5``) would otherwise run the paper defaults for hours;
2. runs the notebooks in order through papermill into executed reports (quick profile:
   ``build/reports/quick/``; paper profile: the committed ``notebooks/`` themselves);
3. strips saved widget state from the executed notebooks and fails loudly, naming the notebook and
   the cell, if any cell raises.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from . import paths
from .config import ConfigError, DataConfig, QINNRunConfig, RunConfig
from .profiles import check_profile

#: Notebook stem -> the dataclass whose fields are its papermill parameters.
NOTEBOOK_CONFIGS: dict[str, type[RunConfig]] = {
    "01_data_exploration": DataConfig,
}

KERNEL_NAME = "python3"


class ReportError(RuntimeError):
    """A notebook failed or was asked for something it cannot do; the message names it."""


def _register_optional_configs() -> None:
    # Notebooks added by later work register their config here; importing lazily keeps this
    # module usable while a config class does not exist yet.
    from . import config as cfgmod
    for stem, name in (("02_circuit_and_inverse", "CircuitDemoConfig"),
                       ("03_isp_training", "QINNRunConfig"),
                       ("04_fidelity_vs_mse", "FidelityVsMSEConfig"),
                       ("05_qinn_vs_inn", "ComparisonConfig")):
        cls = getattr(cfgmod, name, None)
        if cls is not None:
            NOTEBOOK_CONFIGS.setdefault(stem, cls)


_register_optional_configs()


def discover_notebooks() -> list[Path]:
    """The ordered source notebooks ``notebooks/NN_*.ipynb``."""
    found = sorted(p for p in paths.notebooks_dir().glob("[0-9][0-9]_*.ipynb"))
    return found


def declared_parameters(notebook: Path) -> dict[str, Any]:
    """Names and default values of the notebook's ``parameters`` cell (via papermill)."""
    import papermill

    info = papermill.inspect_notebook(str(notebook))
    if not info:
        raise ReportError(f"{notebook}: no cell tagged 'parameters'")
    return {name: spec["default"] for name, spec in info.items()}


def config_class(notebook: Path) -> type[RunConfig]:
    try:
        return NOTEBOOK_CONFIGS[notebook.stem]
    except KeyError:
        raise ReportError(
            f"{notebook}: no run configuration registered for this notebook in "
            f"qinn_lib.reports.NOTEBOOK_CONFIGS"
        ) from None


def check_parameters(notebook: Path, overrides: dict[str, Any], profile: str) -> dict[str, Any]:
    """Validate ``overrides`` against the notebook's parameters and its config dataclass.

    Returns the full parameter set papermill will inject. Raises :class:`ConfigError` naming the
    notebook and the parameter for unknown names or out-of-range values."""
    cls = config_class(notebook)
    declared = declared_parameters(notebook)
    fields = set(cls.field_names())
    if set(declared) != fields:
        missing = sorted(fields - set(declared))
        extra = sorted(set(declared) - fields)
        raise ConfigError(
            f"{notebook.name}: the parameters cell does not match {cls.__name__}"
            f" (missing: {missing}, not in the dataclass: {extra})"
        )
    cls.check_names(overrides, where=notebook.name)
    params = {"profile": profile, **overrides}
    values = {}
    for name, default in declared.items():
        values[name] = params[name] if name in params else _literal(default)
    try:
        cls(**values)
    except ConfigError as err:
        raise ConfigError(f"{notebook.name}: {err}") from None
    return params


def _literal(text: str) -> Any:
    """papermill reports defaults as source text; evaluate plain literals only."""
    import ast

    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        raise ReportError(f"parameter default {text!r} is not a plain literal") from None


def strip_widget_state(path: Path) -> None:
    """Drop saved ipywidgets state: it is large, machine-specific and useless without a kernel."""
    nb = json.loads(path.read_text())
    if nb.get("metadata", {}).pop("widgets", None) is not None:
        _atomic_write_text(path, json.dumps(nb, indent=1, ensure_ascii=False) + "\n")


def _atomic_write_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def run(profile: str = "quick", only: list[str] | None = None,
        parameters: dict[str, dict[str, Any]] | None = None, *, progress: bool = True,
        log=print) -> list[Path]:
    """Execute the notebooks in order. ``only`` selects notebooks by number or stem prefix
    (``["01", "03"]``); ``parameters`` maps a notebook stem or number to overrides.
    Returns the executed report paths."""
    import papermill

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
        if not any(nb.stem.startswith(key) for nb in notebooks):
            raise ReportError(f"parameters given for {key!r}, which is not among {[nb.stem for nb in notebooks]}")
    # Validate everything up front: a typo in the last notebook must not cost an hour of the first.
    plan = []
    for nb in notebooks:
        overrides: dict[str, Any] = {}
        for key, values in parameters.items():
            if nb.stem.startswith(key):
                overrides.update(values)
        plan.append((nb, check_parameters(nb, overrides, profile)))

    out_dir = paths.reports_dir(profile)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for nb, params in plan:
        out = out_dir / nb.name
        log(f"[qinn] {profile}: running {nb.name} with {params}")
        start = time.perf_counter()
        # Execute into a temporary file and move it into place: in the paper profile the output
        # is the source notebook itself, which must never be left half-written.
        fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=f".{nb.stem}.", suffix=".ipynb")
        os.close(fd)
        try:
            papermill.execute_notebook(
                str(nb), tmp, parameters=params, kernel_name=KERNEL_NAME,
                cwd=str(paths.notebooks_dir()), progress_bar=progress, log_output=False,
            )
        except papermill.PapermillExecutionError as err:
            failed = out_dir / f"{nb.stem}.failed.ipynb"
            os.replace(tmp, failed)
            raise ReportError(
                f"{nb.name} failed in cell {err.exec_count} ({err.ename}: {err.evalue}); "
                f"the partly executed notebook is {failed}"
            ) from None
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        strip_widget_state(Path(tmp))
        os.replace(tmp, out)
        (out_dir / f"{nb.stem}.failed.ipynb").unlink(missing_ok=True)
        log(f"[qinn] {nb.name} done in {time.perf_counter() - start:.1f} s -> {out}")
        written.append(out)
    return written


def _parse_assignments(items: list[list[str]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for target, name, value in items:
        out.setdefault(target, {})[name] = yaml.safe_load(value)
    return out


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
                        help="override a parameter, e.g. -p 03 epochs 50 (VALUE is parsed as YAML)")
    parser.add_argument("--list", action="store_true", help="list notebooks and their parameters")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    try:
        if args.list:
            for nb in discover_notebooks():
                print(f"{nb.stem}  [{config_class(nb).__name__}]")
                for name, default in declared_parameters(nb).items():
                    print(f"    {name} = {default}")
            return 0
        start = time.perf_counter()
        written = run(args.profile, args.only, _parse_assignments(args.parameter),
                      progress=not args.no_progress)
    except (ConfigError, ReportError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"[qinn] {len(written)} notebook(s) executed in {time.perf_counter() - start:.1f} s "
          f"(profile {args.profile}); figures in {paths.figures_dir(args.profile)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
