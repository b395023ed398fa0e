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
from .atomic import atomic_write_text
from .config import ConfigError, DataConfig, QINNRunConfig, RunConfig
from .profiles import check_profile

#: Notebook stem -> the dataclass whose fields are its papermill parameters.
NOTEBOOK_CONFIGS: dict[str, type[RunConfig]] = {
    "01_data_exploration": DataConfig,
}

KERNEL_NAME = "python3"
# A quick-profile cell that runs longer than this is stuck, not slow (the slowest quick cell takes
# about a minute): fail with the notebook's name instead of letting CI run into its 90-minute
# limit. The paper profile has no limit, since one cell may train for hours.
QUICK_CELL_TIMEOUT = 1200


class ReportError(RuntimeError):
    """A notebook failed or was asked for something it cannot do; the message names it."""


def _register_optional_configs() -> None:
    # Notebooks added by later work register their config here; importing lazily keeps this
    # module usable while a config class does not exist yet.
    from . import config as cfgmod
    for stem, name in (("02_circuit_and_inverse", "CircuitDemoConfig"),
                       ("03_isp_training", "QINNRunConfig"),
                       ("04_fidelity_vs_mse", "FidelityVsMSEConfig"),
                       ("05_qinn_vs_inn", "ComparisonConfig"),
                       ("07_hardware_realism", "HardwareRealismConfig")):
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
        atomic_write_text(path, json.dumps(nb, indent=1, ensure_ascii=False) + "\n")


def _drop_redundant_injection(path: Path, source: Path) -> None:
    """In the committed paper reports, drop papermill's injected-parameters cell when it only
    repeats the parameters cell's own defaults, so the notebook and its .py twin stay identical.
    A run with other parameters keeps the cell: the report must say what it was run with."""
    nb = json.loads(path.read_text())
    declared = {k: _literal(v) for k, v in declared_parameters(source).items()}
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


def run(profile: str = "quick", only: list[str] | None = None,
        parameters: dict[str, dict[str, Any]] | None = None, *, progress: bool = True,
        log=print) -> list[Path]:
    """Execute the notebooks in order. ``only`` selects notebooks by number or stem prefix
    (``["01", "03"]``); ``parameters`` maps a notebook stem or number to overrides.
    Returns the executed report paths."""
    import papermill
    from nbclient.exceptions import CellTimeoutError

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
                execution_timeout=QUICK_CELL_TIMEOUT if profile == "quick" else None,
            )
        except (CellTimeoutError, papermill.PapermillExecutionError) as err:
            failed = out_dir / f"{nb.stem}.failed.ipynb"
            os.replace(tmp, failed)
            if isinstance(err, CellTimeoutError):
                what = f": a cell ran longer than {QUICK_CELL_TIMEOUT} s in the {profile} profile and was stopped"
            else:
                what = f" failed in cell {err.exec_count} ({err.ename}: {err.evalue})"
            raise ReportError(f"{nb.name}{what}; the partly executed notebook is {failed}") from None
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        strip_widget_state(Path(tmp))
        if profile == "paper":
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


# -- machine-readable results and the README's results section --------------------------------------
RESULTS_FILE = "results.json"
README_START = "<!-- results:start -->"
README_END = "<!-- results:end -->"


def results_path(profile: str) -> Path:
    """``figures/results.json`` (paper) or ``figures/quick/results.json``: what the notebooks measured."""
    return paths.figures_dir(profile) / RESULTS_FILE


def load_results(profile: str) -> dict[str, Any]:
    path = results_path(profile)
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ReportError(f"{path}: not valid JSON ({err}); delete it and re-run the notebooks") from None


def record(section: str, values: dict[str, Any], profile: str) -> Path:
    """Store ``values`` (plain JSON types) under ``section`` in the profile's results file. Notebooks
    call this with what they measured; :func:`render_results` turns it into the README table."""
    path = results_path(profile)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = load_results(profile)
    data[section] = values
    atomic_write_text(path, json.dumps(data, indent=1, sort_keys=True) + "\n")
    return path


def _fmt(value: Any, digits: int = 3) -> str:
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) < 1e4 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def render_results(results: dict[str, Any]) -> str:
    """Markdown for the README from a results file: every number comes from the code."""
    lines = []
    data = results.get("01_data_exploration")
    if data:
        lines += [
            "**Events** (notebook 01, Pythia 8 LO, seed {seed}):".format(**data),
            "",
            "| quantity | value |",
            "| --- | --- |",
            f"| events after cuts (train / val / test) | {_fmt(data['n_events'])} ({_fmt(data['n_train'])} / {_fmt(data['n_val'])} / {_fmt(data['n_test'])}) |",
            f"| generated, cut efficiency | {_fmt(data['n_generated'])}, {data['cut_efficiency']:.4f} |",
            f"| σ(pp → Zj → ℓℓj), LO, before / after cuts | {data['sigma_pb']:.1f} ± {data['sigma_err_pb']:.1f} pb / {data['sigma_fiducial_pb']:.1f} pb |",
            f"| Breit–Wigner fit of M_ℓℓ: mass | {data['fit_mass']:.3f} ± {data['fit_mass_err']:.3f} GeV (PDG {data['pdg_mass']:.4f}) |",
            f"| Breit–Wigner fit of M_ℓℓ: width | {data['fit_width']:.3f} ± {data['fit_width_err']:.3f} GeV (PDG {data['pdg_width']:.4f}) |",
            f"| generation time | {data['generation_seconds']:.1f} s |",
            "",
        ]
    qinn = results.get("03_isp_training")
    if qinn:
        lines += [
            "**QINN training** (notebook 03, Table 1 settings, MSE invertibility loss, seed {seed}):".format(**qinn),
            "",
            "| quantity | value |",
            "| --- | --- |",
            f"| parameters (quantum + classical) | {qinn['params_quantum']} + {qinn['params_classical']} = {qinn['params_total']} (Table 1: ~300 + ~1.7k) |",
            f"| epochs × steps per epoch, training time | {qinn['epochs']} × {qinn['steps_per_epoch']}, {qinn['train_seconds'] / 60:.1f} min ({qinn['device']}, {qinn['threads']} thread) |",
            f"| final validation loss / NLL | {qinn['val_loss']:.3f} / {qinn['val_nll']:.3f} |",
            f"| test NLL in physical units (GeV, rad) | {qinn['test_nll']:.3f} ± {qinn['test_nll_sem']:.3f} nats/event |",
            f"| reconstruction deviation ‖x̃ − x‖/‖x‖ on {_fmt(qinn['n_test'])} test events | mean {100 * qinn['recon_mean']:.2f} %, median {100 * qinn['recon_median']:.2f} % (paper: < 2.1 %) |",
            "",
        ]
    fid = results.get("04_fidelity_vs_mse")
    if fid:
        lines += [f"**Fidelity vs MSE invertibility loss** (notebook 04, seeds {fid['seeds']}; mean ± std over seeds):",
                  "", fid["table"], "", f"Sec. 4.1's statements (Fig. 5) tested against the seed spread: {fid['verdict']}.", ""]
    cmp_ = results.get("05_qinn_vs_inn")
    if cmp_:
        lines += [f"**QINN vs classical spline INNs** (notebook 05, seeds {cmp_['seeds']}; mean ± std over seeds; "
                  "NLL in nats/event in physical units, AUC of a classifier two-sample test, JS base 2):",
                  "", cmp_["table"], "", "```", cmp_["conclusion"], "```", ""]
        if cmp_.get("claims"):  # records written before the claims cell existed have none
            lines += ["Sec. 4.2's statements (Fig. 7) tested against the seed spread:", "", "```", cmp_["claims"], "```", ""]
    hw = results.get("07_hardware_realism")
    if hw:
        lines += [f"**The QINN on an emulated quantum computer** (notebook 07, evaluation seeds {hw['seeds']}; "
                  "mean ± std over seeds; NLL with the Jacobian measured by parameter shift):", "",
                  hw["statement"], "", hw["shots_table"], "", hw["noise_table"], "",
                  "Circuits and what the paper's tasks would cost on a device:", "", hw["resources_table"], "",
                  hw["cost_table"], ""]
    bench = results.get("bench")
    if bench:
        lines += [
            "**Speed** (`python -m qinn_lib.bench --record`; one full training step, batch {batch_size}, {threads} thread, {machine}):".format(**bench),
            "",
            "| path | ms / step | paper profile (58k steps) |",
            "| --- | --- | --- |",
            f"| fast torch simulation | {bench['fast_ms']:.1f} (min {bench['fast_ms_min']:.1f}) | {bench['paper_fast_minutes']:.1f} min |",
            f"| PennyLane default.qubit (backprop) | {bench['reference_ms']:.0f} | {bench['paper_reference_hours']:.1f} h |",
            f"| speed-up | {bench['speedup']:.1f}× | |",
            "",
        ]
    bench_inn = results.get("bench_inn")
    if bench_inn:
        lines += [
            f"**Classical INN training step** (same command; batch {bench_inn['batch_size']}; one seed alone vs "
            f"{bench_inn['members']} seeds in lockstep through `INNStack`, as seed ensembles are trained; "
            "hours for training steps only):",
            "",
            "| INN | parameters | alone, ms / step | lockstep, ms / step per seed | speed-up | 3 seeds × 200 epochs |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for size, row in sorted(bench_inn["sizes"].items(), key=lambda item: item[1]["params"]):
            lines.append(f"| {size} | {row['params']:,} | {row['single_ms']:.0f} | {row['lockstep_ms_per_seed']:.0f} | "
                         f"{row['speedup_per_seed']:.2f}× | {row['paper_hours_3_seeds_single']:.1f} h → "
                         f"{row['paper_hours_3_seeds_lockstep']:.1f} h |")
        lines.append("")
    if not lines:
        return "No results recorded yet: run `python -m qinn_lib.reports --profile paper`."
    return "\n".join(lines).rstrip()


def update_readme(profile: str = "paper") -> Path:
    """Replace the README's results block with :func:`render_results` of the profile's results."""
    readme = paths.repo_root() / "README.md"
    text = readme.read_text()
    if README_START not in text or README_END not in text:
        raise ReportError(f"{readme}: missing the {README_START} / {README_END} markers")
    head, rest = text.split(README_START, 1)
    _, tail = rest.split(README_END, 1)
    body = render_results(load_results(profile))
    note = (f"<!-- generated by `python -m qinn_lib.reports --update-readme` from "
            f"{results_path(profile).relative_to(paths.repo_root())}; do not edit by hand -->")
    atomic_write_text(readme, f"{head}{README_START}\n{note}\n\n{body}\n{README_END}{tail}")
    return readme


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
    parser.add_argument("--update-readme", action="store_true",
                        help="only regenerate the README's results section from figures/results.json (paper profile)")
    args = parser.parse_args(argv)
    try:
        if args.update_readme:  # the README shows the paper profile's results, whatever --profile says
            print(f"[qinn] updated {update_readme('paper')} from {results_path('paper')}")
            return 0
        if args.list:
            for nb in discover_notebooks():
                print(f"{nb.stem}  [{config_class(nb).__name__}]")
                for name, default in declared_parameters(nb).items():
                    print(f"    {name} = {default}")
            return 0
        start = time.perf_counter()
        written = run(args.profile, args.only, _parse_assignments(args.parameter),
                      progress=not args.no_progress)
        if args.profile == "paper":
            update_readme("paper")
    except (ConfigError, ReportError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"[qinn] {len(written)} notebook(s) executed in {time.perf_counter() - start:.1f} s "
          f"(profile {args.profile}); figures in {paths.figures_dir(args.profile)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
