"""The notebooks, their ``parameters`` cells and the configuration classes behind them.

Every notebook ``notebooks/NN_name.ipynb`` has one cell tagged ``parameters`` whose names are
exactly the fields of its run-configuration dataclass (:data:`NOTEBOOK_CONFIGS`). Papermill only
warns about an unknown name, so a typo (``-p epocs 5``) would otherwise run the paper defaults
for hours: :func:`check_parameters` validates requested values against the cell and the
dataclass (profile caps applied, as the notebook will run) before anything runs, and
:func:`parse_parameters` parses ``-p NOTEBOOK NAME VALUE`` by the field's type (no YAML).
:func:`discover_notebooks` lists the notebooks in order. The runner that uses all this is
:mod:`qinn_lib.notebook.runner` (``python -m qinn_lib.reports``).
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

from qinn_lib import paths
from qinn_lib.errors import QinnError
from qinn_lib.settings import RUNNER_OWNED
from qinn_lib.training import config as cfgmod
from qinn_lib.training.budget import effective_config, quick_value
from qinn_lib.training.config import ConfigError, DataConfig, RunConfig

#: Notebook stem -> the dataclass whose fields are its papermill parameters.
NOTEBOOK_CONFIGS: dict[str, type[RunConfig]] = {
    "01_data_exploration": DataConfig,
}


class ReportError(QinnError, RuntimeError):
    """A notebook failed or was asked for something it cannot do; the message names it."""


def _register_optional_configs() -> None:
    # Notebooks added by later work register their config here; importing lazily keeps this
    # module usable while a config class does not exist yet.
    for stem, name in (("02_circuit_and_inverse", "CircuitDemoConfig"),
                       ("03_isp_training", "QINNRunConfig"),
                       ("04_fidelity_vs_mse", "FidelityVsMSEConfig"),
                       ("05_qinn_vs_inn", "ComparisonConfig"),
                       ("06_why_the_gap", "DiagnosisConfig"),
                       ("07_hardware_realism", "HardwareRealismConfig")):
        cls = getattr(cfgmod, name, None)
        if cls is not None:
            NOTEBOOK_CONFIGS.setdefault(stem, cls)


_register_optional_configs()


def discover_notebooks() -> list[Path]:
    """The ordered source notebooks ``notebooks/NN_*.ipynb`` (not a kept ``NN_*.failed.ipynb``)."""
    found = sorted(p for p in paths.notebooks_dir().glob("[0-9][0-9]_*.ipynb") if "." not in p.stem)
    return found


def declared_parameters(notebook: Path) -> dict[str, Any]:
    """Names and default values of the notebook's ``parameters`` cell (via papermill)."""
    import papermill
    from nbformat.reader import NotJSONError

    try:
        info = papermill.inspect_notebook(str(notebook))
    except (NotJSONError, ValueError, KeyError, TypeError, AttributeError) as exc:
        # A notebook file that is not JSON (a merge conflict, a truncated save) or not a notebook:
        # say which file, and how to get it back, instead of nbformat's traceback.
        twin = Path(notebook).with_suffix(".py")
        fix = (f"re-create it from its twin with `jupytext --to notebook {twin.name}`" if twin.is_file()
               else "restore it (e.g. git checkout -- FILE) or move it out of the folder")
        raise ReportError(f"{notebook}: not a readable notebook ({type(exc).__name__}: "
                          f"{str(exc).splitlines()[0][:120] if str(exc) else '-'}); {fix}") from None
    if not info:
        raise ReportError(f"{notebook}: no cell tagged 'parameters'")
    return {name: spec["default"] for name, spec in info.items()}


def config_class(notebook: Path) -> type[RunConfig]:
    try:
        return NOTEBOOK_CONFIGS[notebook.stem]
    except KeyError:
        raise ReportError(
            f"{notebook}: no run configuration registered for this notebook in "
            f"qinn_lib.notebook.parameters.NOTEBOOK_CONFIGS"
        ) from None


def check_parameters(notebook: Path, overrides: dict[str, Any], profile: str) -> dict[str, Any]:
    """Validate ``overrides`` against the notebook's parameters and its config dataclass.

    Returns the full parameter set papermill will inject. Raises :class:`ConfigError` naming the
    notebook and the parameter for unknown names or out-of-range values."""
    cls = config_class(notebook)
    declared = declared_parameters(notebook)
    fields = set(cls.field_names()) - set(RUNNER_OWNED)
    if set(declared) != fields:
        missing = sorted(fields - set(declared))
        extra = sorted(set(declared) - fields)
        raise ConfigError(
            f"{notebook.name}: the parameters cell does not match {cls.__name__}"
            f" (missing: {missing}, not in the dataclass: {extra})"
        )
    if "profile" in overrides:
        raise ConfigError(
            f"{notebook.name}: 'profile' is not a notebook parameter here; the runner's profile "
            f"({profile!r}) decides it: use --profile quick|paper (run(profile=...))"
        )
    owned = [name for name in overrides if name in RUNNER_OWNED]
    if owned:
        raise ConfigError(f"{notebook.name}: {owned} is chosen by the runner (--profile), not a notebook parameter")
    cls.check_names(overrides, where=notebook.name)
    params = dict(overrides)
    values = {"profile": profile}
    for name, default in declared.items():
        values[name] = params[name] if name in params else parse_literal(default)
    try:
        effective_config(cls(**values))  # as the notebook will run it: profile caps applied
    except ConfigError as err:
        raise ConfigError(f"{notebook.name}: {err}") from None
    return params


def parse_literal(text: str) -> Any:
    """papermill reports defaults as source text; evaluate plain literals only."""
    import ast

    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        raise ReportError(f"parameter default {text!r} is not a plain literal") from None


def notebook_matches(key: str, stem: str) -> bool:
    return key == ALL_NOTEBOOKS or stem.startswith(key)


#: ``-p all NAME VALUE`` sets a parameter in every selected notebook (e.g. ``lhe_file``).
ALL_NOTEBOOKS = "all"


def parse_parameters(items: list[list[str]], notebooks: list[Path] | None = None) -> dict[str, dict[str, Any]]:
    """``-p NOTEBOOK NAME VALUE`` triples -> typed overrides per notebook stem. Each VALUE is parsed
    by the type of NAME in that notebook's config dataclass (:meth:`RunConfig.parse_text`: no
    YAML, so ``1e-3`` is a float, ``010`` is 10 and ``1:30`` an error)."""
    notebooks = discover_notebooks() if notebooks is None else notebooks
    out: dict[str, dict[str, Any]] = {}
    for target, name, value in items:
        matched = [nb for nb in notebooks if notebook_matches(target, nb.stem)]
        if not matched:
            raise ReportError(f"-p {target} {name} {value}: no notebook matches {target!r}; have "
                              f"{[nb.stem for nb in notebooks]}")
        for nb in matched:
            if name == "profile":
                raise ConfigError(f"-p {target} profile {value}: the profile is not a notebook parameter; "
                                  f"choose it with --profile {value}")
            out.setdefault(nb.stem, {})[name] = config_class(nb).parse_text(name, value, where=nb.name)
    return out


#: Prefix of the folder of a run with parameters of its own (:func:`parameter_set_name`).
PARAMETER_SET_PREFIX = "params-"
#: A readable folder name longer than this is cut and made unique by a hash.
_MAX_NAME = 60


def _name_text(name: str, value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(f"{v:g}" for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, str) and getattr(config_class_field(name), "metadata", {}).get("path"):
        return Path(value).name  # a file: its name (the hash below tells two folders' files apart)
    return str(value)


def config_class_field(name: str):
    """The dataclass field ``name`` of any notebook configuration (for its metadata), or None."""
    import dataclasses

    for cls in NOTEBOOK_CONFIGS.values():
        for f in dataclasses.fields(cls):
            if f.name == name:
                return f
    return None


def changed_parameters(notebook: Path, overrides: dict[str, Any]) -> dict[str, Any]:
    """The overrides that differ from the notebook's declared defaults, compared as the config
    dataclass normalises them (``[0.1, 1]`` equals ``(0.1, 1.0)``; ``1e5`` equals ``100_000``)."""
    cls = config_class(notebook)
    declared = {name: parse_literal(default) for name, default in declared_parameters(notebook).items()}
    base, mine = cls(**declared), cls(**{**declared, **overrides})
    return {name: overrides[name] for name in sorted(overrides) if getattr(mine, name) != getattr(base, name)}


def parameter_set_name(changed: dict[str, Any]) -> str:
    """The folder name of a run with these changed parameters, e.g. ``params-n_layers-6_seed-7``;
    "" for none (the default report). Readable when it can be: names and values joined, any other
    character as ``-``. A file parameter shows its file name only, and a name that had to be
    shortened or lost characters gets 8 hex digits of the parameters' sha256 appended, so two
    different parameter sets never share a folder."""
    if not changed:
        return ""
    raw = "_".join(f"{name}-{_name_text(name, value)}" for name, value in sorted(changed.items()))
    readable = re.sub(r"[^A-Za-z0-9._,+-]", "-", raw)
    lossy = readable != raw or len(readable) > _MAX_NAME or any(
        isinstance(v, str) and _name_text(k, v) != v for k, v in changed.items())
    if lossy:
        blob = json.dumps({k: list(v) if isinstance(v, tuple) else v for k, v in changed.items()}, sort_keys=True)
        readable = f"{readable[:_MAX_NAME]}-{hashlib.sha256(blob.encode()).hexdigest()[:8]}"
    return PARAMETER_SET_PREFIX + readable


def list_parameters(notebooks: list[Path] | None = None) -> list[str]:
    """``python -m qinn_lib.reports --list``: every notebook, its configuration class and its
    parameters with their paper-profile defaults and, where the quick profile caps one, the value a
    default run (``--profile quick``) uses."""
    notebooks = discover_notebooks() if notebooks is None else notebooks
    lines = ["parameters: NAME = paper-profile default; [quick: N] = the value a default run (--profile quick) uses"]
    for nb in notebooks:
        lines.append(f"{nb.stem}  [{config_class(nb).__name__}]")
        for name, default in declared_parameters(nb).items():
            text = f"{name} = {default}"
            value = parse_literal(default)
            quick = quick_value(name, value)
            if isinstance(quick, list) and quick != list(value):  # a thinned grid, in the cell's own spelling
                tokens = [t.strip() for t in default.strip().strip("[]()").split(",") if t.strip()]
                shown = [tokens[list(value).index(q)] for q in quick] if len(tokens) == len(value) else quick
                quick = "[" + ", ".join(map(str, shown)) + "]"
                value = None  # listed: it differs from the default
            lines.append(f"    {text:<24} [quick: {quick}]" if quick is not None and quick != value else f"    {text}")
    return lines
